//! PayDunya (Senegal, Côte d'Ivoire, Benin, Togo...: mobile money and cards in XOF), checkout
//! invoices.
//!
//! - Authentication: the IPN's form field `data[hash]` is the SHA-512, in lowercase hex, of the
//!   account's master key (the official WooCommerce gateway `paydunyadev/paydunya-woocommerce-gateway`,
//!   `WC_Paydunya::callback_handler`, and Magento module `paydunyadev/paydunya-magento-module`,
//!   `Controller/Payment/Ipn.php`). The source's `secrets` entry is the master key; the digest is
//!   computed from it and compared in constant time. It is a constant of the account that covers
//!   nothing, so PayDunya's API must confirm every notification.
//! - Body: `application/x-www-form-urlencoded` with `data[...]` fields
//!   (developers.paydunya.com/doc/En/http_json): `data[status]` (`completed`, `cancelled`,
//!   `failed`, `pending`), `data[invoice][token]` the invoice, `data[invoice][total_amount]` in
//!   whole XOF, `data[custom_data][booking_id]` the booking (`addCustomData('booking_id', ...)`
//!   when the invoice is created).
//! - Confirmation (required): `GET /api/v1/checkout-invoice/confirm/{token}` at
//!   `https://app.paydunya.com` (test mode: `https://app.paydunya.com/sandbox-api`) with the
//!   headers `PAYDUNYA-MASTER-KEY`, `PAYDUNYA-PRIVATE-KEY`, `PAYDUNYA-TOKEN`, as the official npm
//!   SDK `paydunya` (`CheckoutInvoice.prototype.confirm`) and `paydunya-php` (`confirm`) send
//!   it; its `status`, `invoice.total_amount` and `custom_data.booking_id` are what the ledger
//!   reads.

use super::{Confirmation, Preset, Sample, SampleRequest, fcfa, mapping, path, types};
use crate::providers::Answer;
use crate::providers::Scheme;
use crate::providers::confirm::{Lookup, Request, Verdict};
use crate::providers::mapping::{AmountFormat, Format, MappedKind, Mapping};
use crate::providers::secret_digest::PAYDUNYA;

pub const PRESET: Preset = Preset {
    kind: "paydunya",
    scheme: |secrets, _| {
        Ok(Scheme::SecretDigest {
            layout: &PAYDUNYA,
            secrets,
        })
    },
    signed: true,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: paydunya_mapping,
    confirmation: Confirmation::Required,
    lookup: Some(lookup),
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &["completed", "cancelled", "failed"],
    sample_currency: "XOF",
    sample_secret: "wQzk9ZwR-Qq9m-0hD2-zpOE-bUac3DWSU6Af",
};

/// PayDunya's invoice statuses, in its IPN and in its confirm API's answer.
const STATUSES: [(&str, MappedKind); 4] = [
    ("completed", MappedKind::Succeeded),
    ("cancelled", MappedKind::Canceled),
    ("failed", MappedKind::Failed),
    ("pending", MappedKind::Processing),
];

fn paydunya_mapping() -> Mapping {
    Mapping {
        format: Format::Form,
        booking_id: Some(path("data.custom_data.booking_id")),
        amount: Some(path("data.invoice.total_amount")),
        amount_format: AmountFormat::Major,
        // PayDunya's invoices are in FCFA (XOF) and name no currency.
        default_currency: Some("XOF".into()),
        types: types(&STATUSES),
        currency_aliases: fcfa(),
        // An invoice reaches each status once.
        ..mapping(
            "{data.invoice.token}:{data.status}",
            "data.status",
            "data.invoice.token",
        )
    }
}

fn lookup() -> Lookup {
    Lookup {
        base_url: "https://app.paydunya.com/api".into(),
        credentials: vec!["master_key".into(), "private_key".into(), "token".into()],
        optional: vec![],
        token: None,
        request: Request::Get,
        path: "/v1/checkout-invoice/confirm/{id}".into(),
        headers: vec![
            ("paydunya-master-key".into(), "{master_key}".into()),
            ("paydunya-private-key".into(), "{private_key}".into()),
            ("paydunya-token".into(), "{token}".into()),
        ],
        id: path("data.invoice.token"),
        object: None,
        status: path("status"),
        statuses: STATUSES
            .iter()
            .map(|(w, k)| (w.to_string(), Verdict::Is(*k)))
            .collect(),
        amount: Some(path("invoice.total_amount")),
        amount_format: AmountFormat::Major,
        currency: None,
        default_currency: Some("XOF".into()),
        booking_id: Some(path("custom_data.booking_id")),
        failure_message: Some(path("fail_reason")),
        unknown_status: None,
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    if !STATUSES.iter().any(|(w, _)| *w == s.event_type) {
        return Err(format!("paydunya: no sample of {:?}", s.event_type));
    }
    if !s.currency.eq_ignore_ascii_case("XOF") {
        return Err(format!("paydunya: invoices are in XOF, not {}", s.currency));
    }
    let amount = s.amount.to_string();
    let fields = [
        ("data[response_code]", "00"),
        ("data[response_text]", "Transaction Found"),
        ("data[invoice][token]", s.payment_id),
        ("data[invoice][total_amount]", &amount),
        ("data[invoice][description]", "Booking"),
        ("data[custom_data][booking_id]", s.booking_id),
        (
            "data[actions][callback_url]",
            "https://payhook.example/webhooks/paydunya",
        ),
        ("data[mode]", "test"),
        ("data[status]", s.event_type),
        ("data[customer][name]", "Awa Diop"),
        ("data[customer][phone]", "770000000"),
        (
            "data[receipt_url]",
            "https://app.paydunya.com/sandbox-checkout/receipt/pdf/x.pdf",
        ),
    ];
    // The hash is added when the source signs it.
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    Ok(SampleRequest {
        body: body.into_bytes(),
        query: None,
    })
}
