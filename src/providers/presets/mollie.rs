//! Mollie, classic payments API (cards, iDEAL, Bancontact, SEPA...: EUR and other currencies).
//!
//! - Signature: none. Mollie posts `application/x-www-form-urlencoded` `id=tr_...` to the
//!   payment's `webhookUrl` on every change of the payment (docs.mollie.com/reference/webhooks):
//!   no header, no secret, no timestamp. The payments API confirms every notification.
//! - Event id: the same body comes for every change, so the id is the payment's and the delivery's
//!   (`tr_...:<arrival second>.<random>`, see [`DELIVERY`](crate::providers::mapping::DELIVERY)):
//!   no change is taken for a duplicate. A delivery about a state the ledger already has (Mollie
//!   retries until answered 2xx) is confirmed again and changes nothing.
//! - Confirmation (required): `GET /v2/payments/{id}` with `Bearer <API key>` (`live_...` or
//!   `test_...`), as the official `mollie-api-python` (`client.payments.get(id)`) does; 404 is a
//!   payment Mollie does not have. `amount.value` is a decimal string in the currency's major unit
//!   (`"119.00"`), `metadata.booking_id` the booking the payment was created with.
//! - Statuses: paid (succeeded), failed, canceled and expired (canceled), open, pending and
//!   authorized (processing). A refund or chargeback leaves the payment `paid` at Mollie; payhook
//!   reads it as succeeded.

use super::{Confirmation, Preset, Sample, SampleRequest, mapping, path};
use crate::providers::Answer;
use crate::providers::Scheme;
use crate::providers::confirm::{Lookup, Request, Verdict};
use crate::providers::mapping::{AmountFormat, Extract, Format, MappedKind, Mapping, Part};

pub const PRESET: Preset = Preset {
    kind: "mollie",
    scheme: |_, _| Ok(Scheme::Unsigned),
    signed: false,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: mollie_mapping,
    confirmation: Confirmation::Required,
    lookup: Some(lookup),
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &[EVENT_TYPE],
    sample_currency: "EUR",
    sample_secret: "",
};

/// The type of every Mollie notification: the body says only which payment changed.
const EVENT_TYPE: &str = "payment.changed";

fn mollie_mapping() -> Mapping {
    Mapping {
        format: Format::Form,
        event_type: Extract::Template(vec![Part::Text(EVENT_TYPE.into())]),
        ..mapping("{id}:{$delivery}", "id", "id")
    }
}

fn lookup() -> Lookup {
    use MappedKind::*;
    Lookup {
        base_url: "https://api.mollie.com".into(),
        credentials: vec!["api_key".into()],
        optional: vec![],
        token: None,
        request: Request::Get,
        path: "/v2/payments/{id}".into(),
        headers: vec![("authorization".into(), "Bearer {api_key}".into())],
        id: path("id"),
        object: None,
        status: path("status"),
        statuses: [
            ("paid", Verdict::Is(Succeeded)),
            ("failed", Verdict::Is(Failed)),
            ("canceled", Verdict::Is(Canceled)),
            ("expired", Verdict::Is(Canceled)),
            ("open", Verdict::Is(Processing)),
            ("pending", Verdict::Is(Processing)),
            ("authorized", Verdict::Is(Processing)),
        ]
        .into_iter()
        .map(|(w, v)| (w.to_string(), v))
        .collect(),
        amount: Some(path("amount.value")),
        amount_format: AmountFormat::Major,
        currency: Some(path("amount.currency")),
        default_currency: None,
        booking_id: Some(path("metadata.booking_id")),
        failure_message: Some(path("details.failureMessage")),
        unknown_status: None,
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    if s.event_type != EVENT_TYPE {
        return Err(format!("mollie: no sample of {:?}", s.event_type));
    }
    let id = if s.payment_id.starts_with("tr_") {
        s.payment_id.to_string()
    } else {
        format!("tr_{}", s.payment_id)
    };
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("id", &id)
        .finish();
    Ok(SampleRequest {
        body: body.into_bytes(),
        query: None,
    })
}
