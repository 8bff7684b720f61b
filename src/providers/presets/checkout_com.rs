//! Checkout.com (card acquiring and local methods, worldwide).
//!
//! - Signature: `Cko-Signature`, hex HMAC-SHA256 of the raw body with the webhook's signature key
//!   (checkout.com/docs/developer-resources/webhooks/manage-webhooks/set-up-your-webhook-receiver).
//!   No timestamp. The official `checkout-sdk` (PyPI 4.8.1) has no verifier: the unit test pins a
//!   vector three independent HMAC implementations (Python, OpenSSL, Node) agree on.
//! - Body: one event, `id` (`evt_...`) its id, `type` its type (`payment_captured`), `data` the
//!   payment: `data.id` (`pay_...`; a dispute names it in `data.payment_id`), `data.amount` in
//!   minor units, `data.currency`, the booking in `data.metadata.booking_id` or else
//!   `data.reference` (checkout.com/docs/developer-resources/event-notifications/event-types).
//! - Confirmation: not offered here (the signature covers the whole body).

use serde_json::json;

use super::{Confirmation, Preset, Sample, SampleRequest, body_hmac_sha256, mapping, path, types};
use crate::providers::Answer;
use crate::providers::mapping::{MappedKind, Mapping};

pub const PRESET: Preset = Preset {
    kind: "checkout-com",
    scheme: |secrets, tolerance| body_hmac_sha256("cko-signature", secrets, tolerance),
    signed: true,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: checkout_mapping,
    confirmation: Confirmation::Unavailable,
    lookup: None,
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &[
        "payment_captured",
        "payment_approved",
        "payment_declined",
        "payment_voided",
        "payment_refunded",
        "dispute_received",
    ],
    sample_currency: "EUR",
    sample_secret: "cko_whsig_test_2b7f3c",
};

fn checkout_mapping() -> Mapping {
    use MappedKind::*;
    Mapping {
        booking_id: Some(path("data.metadata.booking_id|data.reference")),
        amount: Some(path("data.amount")),
        currency: Some(path("data.currency")),
        failure_message: Some(path("data.response_summary")),
        // checkout.com/docs/payments/accept-payments/format-the-amount-value: ISK is a full
        // amount, CLP is divided by 100 (BHD, IQD, JOD, KWD, LYD, OMR, TND by 1000, as payhook).
        currency_exponents: [("isk".to_string(), 0), ("clp".to_string(), 2)].into(),
        // `payment_refunded` is one refund: its action and that action's amount.
        refund_id: Some(path("data.action_id")),
        refund_amount: Some(path("data.amount")),
        types: types(&[
            // checkout.com/docs/workflows/webhook-event-types: an approved authorisation "can be
            // followed by" a capture or a void: the money is taken at the capture.
            ("payment_approved", Authorized),
            ("payment_captured", Succeeded),
            ("payment_paid", Succeeded),
            ("payment_pending", Processing),
            ("payment_declined", Failed),
            ("payment_capture_declined", Failed),
            ("payment_expired", Failed),
            ("payment_voided", Canceled),
            ("payment_canceled", Canceled),
            ("payment_refunded", RefundSucceeded),
            ("dispute_received", Disputed),
            ("dispute_evidence_required", Disputed),
            // checkout.com/docs/workflows/webhook-event-types: won or canceled, the disputed
            // amount is credited back; accepted or lost, it is gone.
            ("dispute_accepted", DisputeLost),
            ("dispute_lost", DisputeLost),
            ("dispute_won", DisputeWon),
            ("dispute_canceled", DisputeWon),
        ]),
        ..mapping("id", "type", "data.payment_id|data.id")
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    if !PRESET.sample_types.contains(&s.event_type) {
        return Err(format!("checkout-com: no sample of {:?}", s.event_type));
    }
    let at = chrono::DateTime::from_timestamp(s.now, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let data = if s.event_type == "dispute_received" {
        json!({
            "id": format!("dsp_{}", s.event_id),
            "category": "fraudulent",
            "status": "evidence_required",
            "amount": s.amount,
            "currency": s.currency,
            "reason_code": "10.4",
            "payment_id": s.payment_id,
            "payment_reference": s.booking_id,
            "payment_method": "VISA",
            "evidence_required_by": at,
        })
    } else {
        let (code, summary) = match s.event_type {
            "payment_declined" => ("20051", "Insufficient Funds"),
            _ => ("10000", "Approved"),
        };
        json!({
            "id": s.payment_id,
            "action_id": format!("act_{}", s.event_id),
            "reference": s.booking_id,
            "amount": s.amount,
            "currency": s.currency,
            "processed_on": at,
            "response_code": code,
            "response_summary": summary,
            "metadata": {"booking_id": s.booking_id},
        })
    };
    SampleRequest::json(&json!({
        "id": format!("evt_{}", s.event_id),
        "type": s.event_type,
        "version": "1.0.29",
        "created_on": at,
        "data": data,
        "_links": {"self": {"href": format!("https://api.checkout.com/workflows/events/evt_{}", s.event_id)}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Secret;

    /// The body and key of the research notes: Python's hmac, `openssl dgst -sha256 -hmac` and
    /// Node's crypto all printed this signature.
    #[test]
    fn own_vector() {
        let body = br#"{"id":"evt_fkfqht6yonme7bk7jawrgzbbxq","type":"payment_captured","version":"1.0.29","created_on":"2026-01-02T10:00:00Z","data":{"id":"pay_vti5layihapu5bhbn5tjtk6eem","action_id":"act_uqlj3642dyyuroivzdwfg2fysq","reference":"bk_42","amount":11900,"currency":"EUR","metadata":{"booking_id":"bk_42"},"response_code":"10000"}}"#;
        let scheme = (PRESET.scheme)(
            vec![Secret::new("cko_whsig_test_2b7f3c")],
            std::time::Duration::from_secs(300),
        )
        .unwrap();
        let source = crate::providers::Source::new("checkout-com", scheme);
        assert_eq!(
            source.sign(body, 0),
            vec![(
                "cko-signature".to_string(),
                "e71c59229cbdf74099163e6fd734ea44c0dd9256a9457605732b9ac2218b0538".to_string()
            )]
        );
        let event: serde_json::Value = serde_json::from_slice(body).unwrap();
        let m = checkout_mapping();
        assert_eq!(
            m.payment_id.text(&event).as_deref(),
            Some("pay_vti5layihapu5bhbn5tjtk6eem")
        );
        assert_eq!(m.booking_id.unwrap().text(&event).as_deref(), Some("bk_42"));
        let dispute = json!({"data": {"id": "dsp_1", "payment_id": "pay_1"}});
        assert_eq!(m.payment_id.text(&dispute).as_deref(), Some("pay_1"));
    }
}
