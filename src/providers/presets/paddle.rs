//! Paddle Billing (merchant of record: checkout, subscriptions, tax, worldwide).
//!
//! - Signature: `Paddle-Signature: ts=<unix>;h1=<hex>`, HMAC-SHA256 of `ts:body` with the
//!   notification destination's secret key, used whole (`pdl_ntfset_...`) as UTF-8; during a
//!   rotation several `h1` come, and any one matching a configured secret is enough
//!   (developer.paddle.com/webhooks/signature-verification; the official SDKs
//!   `@paddle/paddle-node-sdk` 3.10.0 `webhooks.isSignatureValid`, `paddle-python-sdk` 1.16.1
//!   `Verifier`). Paddle's SDKs allow the timestamp 5 s, and so does the preset unless the
//!   source sets `tolerance` (both ways).
//! - Body: one event, `event_id` its id (one event may be notified several times, each with its
//!   own `notification_id`), `event_type` its type, `data` the entity.
//! - A transaction's payment is `data.id`, its amount `data.details.totals.grand_total` (minor units,
//!   a string), `data.currency_code`, the booking `data.custom_data.booking_id` (the `customData`
//!   given at checkout). A refund or chargeback is an adjustment (`adjustment.created|updated`)
//!   about `data.transaction_id`, whose `action` and `status` say what it is (`refund` once
//!   `approved`), for `data.totals.total`.
//! - Confirmation: not offered here (Paddle's API is `GET /transactions/{id}`; the signature
//!   covers the whole body).

use serde_json::json;

use super::{Confirmation, Preset, Sample, SampleRequest, mapping, path, types};
use crate::providers::mapping::{MappedKind, Mapping};
use crate::providers::timestamped::PADDLE;
use crate::providers::{Answer, Scheme};

pub const PRESET: Preset = Preset {
    kind: "paddle",
    scheme: |secrets, tolerance| {
        Ok(Scheme::Timestamped {
            layout: &PADDLE,
            secrets,
            tolerance,
        })
    },
    signed: true,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    // developer.paddle.com/webhooks/signature-verification: the SDKs allow 5 seconds, "manual
    // implementations should apply the same check".
    default_tolerance: Some(std::time::Duration::from_secs(5)),
    mapping: paddle_mapping,
    confirmation: Confirmation::Unavailable,
    lookup: None,
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &[
        "transaction.completed",
        "transaction.payment_failed",
        "transaction.canceled",
        "adjustment.updated",
    ],
    sample_currency: "EUR",
    sample_secret: "pdl_ntfset_01gkpjp8bkm3tm53kdgkx6sms7_6h3qd3uFSi9YCD3OLYAShQI90XTI5vEI",
};

fn paddle_mapping() -> Mapping {
    use MappedKind::*;
    Mapping {
        // An adjustment's meaning is its action once approved; a transaction's, its event type.
        kind_from: Some(path(
            "{event_type}:{data.action}:{data.status}|{event_type}",
        )),
        booking_id: Some(path("data.custom_data.booking_id")),
        // A transaction's total; an adjustment's `totals.total` is the adjustment's own.
        amount: Some(path("data.details.totals.grand_total")),
        refund_id: Some(path("data.id")),
        refund_amount: Some(path("data.totals.total")),
        currency: Some(path("data.currency_code")),
        types: types(&[
            ("transaction.completed", Succeeded),
            ("transaction.paid", Succeeded),
            ("transaction.payment_failed", Failed),
            ("transaction.canceled", Canceled),
            // One adjustment per refund, its own amount; the same adjustment's events are one
            // refund.
            ("adjustment.created:refund:approved", RefundSucceeded),
            ("adjustment.updated:refund:approved", RefundSucceeded),
            ("adjustment.updated:refund:rejected", RefundFailed),
            ("adjustment.created:chargeback:approved", Disputed),
            ("adjustment.updated:chargeback:approved", Disputed),
        ]),
        ..mapping("event_id", "event_type", "data.transaction_id|data.id")
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    let at = chrono::DateTime::from_timestamp(s.now, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let amount = s.amount.to_string();
    let data = match s.event_type {
        "transaction.completed" | "transaction.payment_failed" | "transaction.canceled" => {
            transaction(s, &at, &amount)
        }
        "adjustment.updated" => json!({
            "id": format!("adj_{}", s.event_id),
            "action": "refund",
            "type": "full",
            "transaction_id": s.payment_id,
            "subscription_id": null,
            "customer_id": "ctm_01h8e18bxp9hby49dnm8ewf0m0",
            "reason": "The customer cancelled the booking",
            "credit_applied_to_balance": null,
            "currency_code": s.currency,
            "status": "approved",
            "items": [{
                "id": format!("adjitm_{}", s.event_id),
                "item_id": format!("txnitm_{}", s.event_id),
                "type": "full",
                "amount": amount,
                "proration": null,
                "totals": {"subtotal": amount, "tax": "0", "total": amount},
            }],
            "totals": {"subtotal": amount, "tax": "0", "total": amount, "fee": "0",
                       "earnings": amount, "currency_code": s.currency},
            "payout_totals": null,
            "tax_rates_used": [],
            "created_at": at,
            "updated_at": at,
        }),
        other => return Err(format!("paddle: no sample of {other:?}")),
    };
    SampleRequest::json(&json!({
        "event_id": format!("evt_{}", s.event_id),
        "event_type": s.event_type,
        "occurred_at": at,
        "notification_id": format!("ntf_{}", s.event_id),
        "data": data,
    }))
}

/// A transaction for one booking, as the SDK's `transaction-completed` mock writes it.
fn transaction(s: &Sample<'_>, at: &str, amount: &str) -> serde_json::Value {
    let (status, payment_status, error_code) = match s.event_type {
        "transaction.completed" => ("completed", "captured", None),
        "transaction.payment_failed" => ("ready", "error", Some("declined")),
        _ => ("canceled", "canceled", None),
    };
    let totals = json!({"subtotal": amount, "tax": "0", "discount": "0", "total": amount});
    let items = json!([{
        "price": {
            "id": "pri_01gsz98e27ak2tyhexptwc58yk",
            "product_id": "pro_01gsz97mq9pa4fkyy0wqenepkz",
            "description": "Booking",
            "name": "Booking",
            "type": "standard",
            "billing_cycle": null,
            "trial_period": null,
            "tax_mode": "account_setting",
            "unit_price": {"amount": amount, "currency_code": s.currency},
            "unit_price_overrides": [],
            "quantity": {"minimum": 1, "maximum": 1},
            "status": "active",
            "custom_data": null,
        },
        "quantity": 1,
    }]);
    let details = json!({
        "tax_rates_used": [{"tax_rate": "0", "totals": totals}],
        "totals": {"subtotal": amount, "tax": "0", "discount": "0", "total": amount,
                   "grand_total": amount, "fee": null, "earnings": null, "credit": "0",
                   "credit_to_balance": "0", "balance": "0", "currency_code": s.currency},
        "adjusted_totals": {"subtotal": amount, "tax": "0", "total": amount,
                            "grand_total": amount, "fee": "0", "earnings": "0",
                            "currency_code": s.currency},
        "payout_totals": null,
        "adjusted_payout_totals": null,
        "line_items": [{
            "id": format!("txnitm_{}", s.event_id),
            "price_id": "pri_01gsz98e27ak2tyhexptwc58yk",
            "quantity": 1,
            "proration": null,
            "tax_rate": "0",
            "unit_totals": totals,
            "totals": totals,
            "product": {
                "id": "pro_01gsz97mq9pa4fkyy0wqenepkz",
                "name": "Booking",
                "description": null,
                "type": "standard",
                "tax_category": "standard",
                "image_url": null,
                "custom_data": null,
                "status": "active",
                "created_at": at,
            },
        }],
    });
    let payments = json!([{
        "payment_attempt_id": "72d47ad6-d938-4e70-8743-b8678b4ae1b6",
        "stored_payment_method_id": "7330719b-627c-4bb2-9f83-f34d07ce7d2f",
        "amount": amount,
        "status": payment_status,
        "error_code": error_code,
        "method_details": {"type": "card", "card": {"type": "visa", "last4": "4242",
            "expiry_month": 12, "expiry_year": 2030, "cardholder_name": "Booking Guest"}},
        "created_at": at,
        "captured_at": if payment_status == "captured" { json!(at) } else { json!(null) },
    }]);
    json!({
        "id": s.payment_id,
        "status": status,
        "customer_id": "ctm_01h8e18bxp9hby49dnm8ewf0m0",
        "address_id": "add_01h8e18bzb5av13cd16m5gz214",
        "business_id": null,
        "custom_data": {"booking_id": s.booking_id},
        "currency_code": s.currency,
        "origin": "web",
        "subscription_id": null,
        "invoice_id": null,
        "invoice_number": null,
        "collection_mode": "automatic",
        "discount_id": null,
        "billing_details": null,
        "billing_period": null,
        "items": items,
        "details": details,
        "payments": payments,
        "checkout": {"url": format!("https://pay.example.com/checkout?_ptxn={}", s.payment_id)},
        "created_at": at,
        "updated_at": at,
        "billed_at": at,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;
    use crate::domain::Secret;
    use crate::providers::VerifyError;

    /// The official Node SDK's vector (`webhooks-validator.node.test.ts`), valid from
    /// 2023-11-01T00:00:00Z; and a rotation's two `h1`, in either order.
    #[test]
    fn sdk_vector_and_rotation() {
        let body = br#"{"data": ["1", "2"]}"#;
        let header =
            "ts=1698796800;h1=a300428748dce5c70e4da19bffd60769591ea969c99dea3105d0ec9612cf43f9";
        let at = 1_698_796_800;
        let secrets = [Secret::new("pdl_ntfset_old"), Secret::new("VALID_SECRET")];
        let check = |value: &str, secrets: &[Secret], now| {
            let mut h = HeaderMap::new();
            h.insert("paddle-signature", value.parse().unwrap());
            PADDLE.verify(&h, body, secrets, std::time::Duration::from_secs(5), now)
        };
        assert_eq!(check(header, &secrets, at + 5), Ok(()));
        assert!(matches!(
            check(header, &secrets, at + 6),
            Err(VerifyError::TimestampOutOfTolerance { .. })
        ));
        assert_eq!(
            check(header, &secrets[..1], at),
            Err(VerifyError::InvalidSignature)
        );
        let other = format!("h1={}", "0".repeat(64));
        let (ts, h1) = header.split_once(';').unwrap();
        assert_eq!(check(&format!("{ts};{h1};{other}"), &secrets, at), Ok(()));
        assert_eq!(check(&format!("{ts};{other};{h1}"), &secrets, at), Ok(()));
    }

    #[test]
    fn adjustments_mean_their_action_once_approved() {
        let m = paddle_mapping();
        let kind = |body: serde_json::Value| {
            m.kind_from
                .as_ref()
                .unwrap()
                .text(&body)
                .and_then(|k| m.types.get(&k).copied())
        };
        let adjustment = |action: &str, status: &str| {
            json!({"event_type": "adjustment.updated", "data": {"action": action,
                   "status": status, "transaction_id": "txn_1", "totals": {"total": "500"}}})
        };
        assert_eq!(
            kind(adjustment("refund", "approved")),
            Some(MappedKind::RefundSucceeded)
        );
        assert_eq!(kind(adjustment("refund", "pending_approval")), None);
        assert_eq!(kind(adjustment("credit", "approved")), None);
        let txn = json!({"event_type": "transaction.completed",
                         "data": {"id": "txn_1", "status": "completed"}});
        assert_eq!(kind(txn.clone()), Some(MappedKind::Succeeded));
        assert_eq!(m.payment_id.text(&txn).as_deref(), Some("txn_1"));
        assert_eq!(
            m.payment_id
                .text(&adjustment("refund", "approved"))
                .as_deref(),
            Some("txn_1")
        );
    }
}
