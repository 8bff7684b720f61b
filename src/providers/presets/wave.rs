//! Wave (Senegal, Côte d'Ivoire, Mali, Burkina Faso...: the Wave wallet, in XOF), Checkout API.
//!
//! - Signature: the "signing secret" security strategy of docs.wave.com/webhook,
//!   `Wave-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, HMAC-SHA256 of the timestamp immediately
//!   followed by the raw body (no separator) with the webhook's secret (`wave_sn_WHS_...`); any
//!   `v1` may match during a rotation; five minutes' tolerance. Wave publishes no SDK and no test
//!   vector: the scheme's unit test pins one computed from the documented recipe
//!   (`timestamped::tests::wave_vector_and_rotation`).
//! - Body: the event, `id` its id and `type` its type; `data` is the Checkout Session
//!   (docs.wave.com/checkout): `id` (`cos-...`) the payment, `amount` a decimal string in major
//!   units, `currency`, `client_reference` the booking, `payment_status`.
//! - Events: `checkout.session.completed` whose session says `payment_status: succeeded`, and
//!   `checkout.session.payment_failed` (an attempt failed; the session may still be paid later).
//! - Confirmation (optional): `GET /v1/checkout/sessions/{id}` at `https://api.wave.com` with the
//!   API key as a bearer token (docs.wave.com/checkout, "Retrieve a checkout").

use serde_json::json;

use super::{Confirmation, Preset, Sample, SampleRequest, fcfa, mapping, path, types};
use crate::domain::money::Money;
use crate::providers::Answer;
use crate::providers::Scheme;
use crate::providers::confirm::{Lookup, Request, Verdict};
use crate::providers::mapping::{AmountFormat, MappedKind, Mapping};
use crate::providers::timestamped::WAVE;

pub const PRESET: Preset = Preset {
    kind: "wave",
    scheme: |secrets, tolerance| {
        Ok(Scheme::Timestamped {
            layout: &WAVE,
            secrets,
            tolerance,
        })
    },
    signed: true,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: wave_mapping,
    confirmation: Confirmation::Optional,
    lookup: Some(lookup),
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &[
        "checkout.session.completed",
        "checkout.session.payment_failed",
    ],
    sample_currency: "XOF",
    sample_secret: "wave_sn_WHS_xz4m6g8rjs9bruwrgbtn0vk7cvgan9dnq1djgca7tq8wwa70ncqg",
};

fn wave_mapping() -> Mapping {
    Mapping {
        // A completed session counts only with its payment succeeded; a failed attempt leaves
        // the session open (processing) or cancelled.
        kind_from: Some(path("{type}:{data.payment_status}")),
        booking_id: Some(path("data.client_reference")),
        amount: Some(path("data.amount")),
        amount_format: AmountFormat::Major,
        currency: Some(path("data.currency")),
        default_currency: Some("XOF".into()),
        failure_message: Some(path("data.last_payment_error.message")),
        types: types(&[
            (
                "checkout.session.completed:succeeded",
                MappedKind::Succeeded,
            ),
            (
                "checkout.session.payment_failed:processing",
                MappedKind::Failed,
            ),
            (
                "checkout.session.payment_failed:cancelled",
                MappedKind::Failed,
            ),
        ]),
        currency_aliases: fcfa(),
        ..mapping("id", "type", "data.id")
    }
}

fn lookup() -> Lookup {
    use MappedKind::*;
    Lookup {
        base_url: "https://api.wave.com".into(),
        credentials: vec!["api_key".into()],
        optional: vec![],
        token: None,
        request: Request::Get,
        path: "/v1/checkout/sessions/{id}".into(),
        headers: vec![("authorization".into(), "Bearer {api_key}".into())],
        id: path("data.id"),
        object: None,
        status: path("payment_status"),
        statuses: [
            ("succeeded", Verdict::Is(Succeeded)),
            // A session whose last attempt failed: the notification said so.
            ("cancelled", Verdict::Is(Failed)),
            ("processing", Verdict::Is(Processing)),
        ]
        .into_iter()
        .map(|(w, v)| (w.to_string(), v))
        .collect(),
        amount: Some(path("amount")),
        amount_format: AmountFormat::Major,
        currency: Some(path("currency")),
        default_currency: Some("XOF".into()),
        booking_id: Some(path("client_reference")),
        failure_message: Some(path("last_payment_error.message")),
        unknown_status: None,
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    let at = chrono::DateTime::from_timestamp(s.now, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Wave writes amounts in major units: 10000 XOF is "10000", 1050 cents "10.50".
    let money = Money::new(s.amount, s.currency.to_ascii_lowercase()).to_string();
    let amount = money.split(' ').next().unwrap_or_default();
    let id = match s.payment_id.starts_with("cos-") {
        true => s.payment_id.to_string(),
        false => format!("cos-{}", s.payment_id),
    };
    let session = |checkout_status: &str, payment_status: &str| {
        json!({
            "id": id,
            "amount": amount,
            "currency": s.currency,
            "client_reference": s.booking_id,
            "business_name": "Booking",
            "checkout_status": checkout_status,
            "payment_status": payment_status,
            "when_created": at,
            "when_expires": at,
        })
    };
    let data = match s.event_type {
        "checkout.session.completed" => {
            let mut data = session("complete", "succeeded");
            data["transaction_id"] = json!(format!("T{}", s.event_id));
            data["when_completed"] = json!(at);
            data
        }
        "checkout.session.payment_failed" => {
            let mut data = session("open", "processing");
            data["last_payment_error"] = json!({
                "code": "insufficient-funds",
                "message": "The payer's balance is too low",
            });
            data
        }
        other => return Err(format!("wave: no sample of {other:?}")),
    };
    SampleRequest::json(&json!({
        "id": format!("AE_{}", s.event_id),
        "type": s.event_type,
        "data": data,
    }))
}
