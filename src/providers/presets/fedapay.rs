//! FedaPay (Benin, Côte d'Ivoire, Togo, Niger, Senegal...: mobile money and cards in XOF).
//!
//! - Signature: `X-FEDAPAY-SIGNATURE: t=<unix>,s=<hex>`, HMAC-SHA256 of `t.body` with the
//!   webhook's secret (docs.fedapay.com/development/webhooks; the official npm SDK `fedapay`,
//!   `WebhookSignature.computeSignature`), five minutes' tolerance as the SDK's default.
//! - Body: the event, `name` its type (`transaction.approved`), `entity` the transaction, whose
//!   `amount` is in whole XOF (no minor unit) and whose `custom_metadata` carries the booking.
//! - Confirmation (optional): `GET /v1/transactions/{id}` with the secret API key, as the official
//!   WooCommerce plugin does on return (`Transaction::retrieve`).

use serde_json::json;

use super::{Confirmation, Preset, Sample, SampleRequest, fcfa, mapping, path, types};
use crate::providers::Answer;
use crate::providers::Scheme;
use crate::providers::confirm::{Lookup, Request, Verdict};
use crate::providers::mapping::{AmountFormat, MappedKind, Mapping};
use crate::providers::timestamped::FEDAPAY;

pub const PRESET: Preset = Preset {
    kind: "fedapay",
    scheme: |secrets, tolerance| {
        Ok(Scheme::Timestamped {
            layout: &FEDAPAY,
            secrets,
            tolerance,
        })
    },
    signed: true,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: fedapay_mapping,
    confirmation: Confirmation::Optional,
    lookup: Some(lookup),
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &[
        "transaction.approved",
        "transaction.declined",
        "transaction.canceled",
    ],
    sample_currency: "XOF",
    sample_secret: "wh_sandbox_4f3c2b1a0e9d8c7b6a5f4e3d",
};

fn fedapay_mapping() -> Mapping {
    Mapping {
        booking_id: Some(path("entity.custom_metadata.booking_id")),
        amount: Some(path("entity.amount")),
        amount_format: AmountFormat::Minor,
        currency: Some(path("entity.currency.iso")),
        default_currency: Some("XOF".into()),
        types: types(&[
            ("transaction.approved", MappedKind::Succeeded),
            ("transaction.transferred", MappedKind::Succeeded),
            ("transaction.declined", MappedKind::Failed),
            ("transaction.canceled", MappedKind::Canceled),
        ]),
        currency_aliases: fcfa(),
        // FedaPay's event has no id of its own in every delivery: a transaction reaches each
        // state once.
        ..mapping("{entity.id}:{name}", "name", "entity.id")
    }
}

fn lookup() -> Lookup {
    use MappedKind::*;
    Lookup {
        base_url: "https://api.fedapay.com".into(),
        credentials: vec!["secret_key".into()],
        optional: vec![],
        token: None,
        request: Request::Get,
        path: "/v1/transactions/{id}".into(),
        headers: vec![("authorization".into(), "Bearer {secret_key}".into())],
        id: path("entity.id"),
        object: Some(path("v1/transaction")),
        status: path("status"),
        // The SDK's `Transaction.PAID_STATUS`; a partial refund leaves the payment paid.
        statuses: [
            ("approved", Verdict::Is(Succeeded)),
            ("transferred", Verdict::Is(Succeeded)),
            ("approved_partially_refunded", Verdict::Is(Succeeded)),
            ("transferred_partially_refunded", Verdict::Is(Succeeded)),
            ("refunded", Verdict::Is(Refunded)),
            ("declined", Verdict::Is(Failed)),
            ("canceled", Verdict::Is(Canceled)),
            ("expired", Verdict::Is(Canceled)),
            ("pending", Verdict::Is(Processing)),
        ]
        .into_iter()
        .map(|(w, v)| (w.to_string(), v))
        .collect(),
        amount: Some(path("amount")),
        amount_format: AmountFormat::Minor,
        currency: Some(path("currency.iso")),
        default_currency: Some("XOF".into()),
        booking_id: Some(path("custom_metadata.booking_id")),
        failure_message: None,
        unknown_status: None,
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    let status = match s.event_type {
        "transaction.approved" => "approved",
        "transaction.declined" => "declined",
        "transaction.canceled" => "canceled",
        "transaction.transferred" => "transferred",
        other => return Err(format!("fedapay: no sample of {other:?}")),
    };
    let id: i64 = s
        .payment_id
        .parse()
        .map_err(|_| "fedapay: a transaction id is a number".to_string())?;
    let at = chrono::DateTime::from_timestamp(s.now, 0)
        .unwrap_or_default()
        .to_rfc3339();
    let body = json!({
        "name": s.event_type,
        "object": "transaction",
        "entity": {
            "klass": "v1/transaction",
            "id": id,
            "reference": format!("trx_{}", s.event_id),
            "amount": s.amount,
            "description": "Booking",
            "status": status,
            "mode": "mtn_open",
            "custom_metadata": {"booking_id": s.booking_id},
            "currency": {"iso": s.currency, "name": if s.currency == "XOF" { "FCFA" } else { s.currency }},
            "created_at": at,
            "updated_at": at,
        },
    });
    SampleRequest::json(&body)
}
