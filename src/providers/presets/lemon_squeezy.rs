//! Lemon Squeezy (merchant of record for digital goods and subscriptions).
//!
//! - Signature: `X-Signature`, hex HMAC-SHA256 of the raw body with the webhook's signing secret
//!   (docs.lemonsqueezy.com/help/webhooks/signing-requests). No timestamp. The official
//!   `@lemonsqueezy/lemonsqueezy.js` (4.0.0) has no verifier: the unit test pins a vector three
//!   independent HMAC implementations agree on.
//! - Body (JSON:API): `meta.event_name` its type (`order_created`), `meta.custom_data` what the
//!   checkout was given (`checkout[custom][booking_id]`), `data` the order: `data.id`,
//!   `attributes.total` in minor units, `attributes.currency`, `attributes.status`
//!   (`pending|failed|paid|refunded|partial_refund`), `attributes.refunded_amount`.
//! - No event id: an event is `{event_name}:{data.id}:{attributes.updated_at}` (one order changes
//!   once per update). Its meaning is `{event_name}:{status}`: an order created `paid` succeeded.
//! - Confirmation: not offered here (the signature covers the whole body).

use serde_json::json;

use super::{Confirmation, Preset, Sample, SampleRequest, body_hmac_sha256, mapping, path, types};
use crate::providers::Answer;
use crate::providers::mapping::{MappedKind, Mapping};

pub const PRESET: Preset = Preset {
    kind: "lemon-squeezy",
    scheme: |secrets, tolerance| body_hmac_sha256("x-signature", secrets, tolerance),
    signed: true,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: lemon_mapping,
    confirmation: Confirmation::Unavailable,
    lookup: None,
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &["order_created", "order_refunded"],
    sample_currency: "EUR",
    sample_secret: "ls_signing_secret_42",
};

fn lemon_mapping() -> Mapping {
    use MappedKind::*;
    Mapping {
        kind_from: Some(path("{meta.event_name}:{data.attributes.status}")),
        booking_id: Some(path("meta.custom_data.booking_id")),
        amount: Some(path("data.attributes.total")),
        currency: Some(path("data.attributes.currency")),
        amount_refunded: Some(path("data.attributes.refunded_amount")),
        types: types(&[
            ("order_created:paid", Succeeded),
            ("order_created:failed", Failed),
            ("order_refunded:refunded", Refunded),
            ("order_refunded:partial_refund", Refunded),
            ("subscription_payment_success:paid", Succeeded),
            ("subscription_payment_failed:failed", Failed),
            ("subscription_payment_refunded:refunded", Refunded),
            ("subscription_payment_refunded:partial_refund", Refunded),
        ]),
        ..mapping(
            "{meta.event_name}:{data.id}:{data.attributes.updated_at}",
            "meta.event_name",
            "data.id",
        )
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    let (status, refunded) = match s.event_type {
        "order_created" => ("paid", 0),
        "order_refunded" => ("refunded", s.amount),
        other => return Err(format!("lemon-squeezy: no sample of {other:?}")),
    };
    let at = chrono::DateTime::from_timestamp(s.now, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S.000000Z")
        .to_string();
    SampleRequest::json(&json!({
        "meta": {
            "test_mode": true,
            "event_name": s.event_type,
            "custom_data": {"booking_id": s.booking_id},
            "webhook_id": format!("{}", s.event_id),
        },
        "data": {
            "type": "orders",
            "id": s.payment_id,
            "attributes": {
                "store_id": 1,
                "customer_id": 1,
                "identifier": format!("{}-order", s.event_id),
                "order_number": 1,
                "user_name": "Booking Guest",
                "user_email": "guest@example.com",
                "currency": s.currency,
                "subtotal": s.amount,
                "tax": 0,
                "total": s.amount,
                "refunded_amount": refunded,
                "status": status,
                "refunded": refunded > 0,
                "refunded_at": if refunded > 0 { json!(at) } else { json!(null) },
                "test_mode": true,
                "created_at": at,
                "updated_at": at,
            },
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Secret;

    /// The body and secret of the research notes: Python's hmac, `openssl dgst -sha256 -hmac`
    /// and Node's crypto all printed this signature.
    #[test]
    fn own_vector_and_meaning() {
        let body = br#"{"meta":{"test_mode":true,"event_name":"order_created","custom_data":{"booking_id":"bk_42"},"webhook_id":"00000000-0000-0000-0000-000000000000"},"data":{"type":"orders","id":"1","attributes":{"identifier":"104e18a2-d755-4d4b-80c4-a6c1dcbe1c10","order_number":1,"currency":"EUR","total":11900,"refunded_amount":0,"status":"paid","refunded":false}}}"#;
        let scheme = (PRESET.scheme)(
            vec![Secret::new("ls_signing_secret_42")],
            std::time::Duration::from_secs(300),
        )
        .unwrap();
        let source = crate::providers::Source::new("lemon-squeezy", scheme);
        assert_eq!(
            source.sign(body, 0),
            vec![(
                "x-signature".to_string(),
                "6d91b7794a7ba2d0a68e054262d188b9e3133263823a196aab9738a4927701cc".to_string()
            )]
        );
        let m = lemon_mapping();
        let event: serde_json::Value = serde_json::from_slice(body).unwrap();
        let kind = m.kind_from.as_ref().unwrap().text(&event).unwrap();
        assert_eq!(m.types.get(&kind), Some(&MappedKind::Succeeded));
        // This order has no updated_at: no event id, so it would be refused as malformed.
        assert_eq!(m.event_id.text(&event), None);
    }
}
