//! GoCardless (bank debits: SEPA, Bacs, ACH, BECS... through mandates).
//!
//! - Signature: `Webhook-Signature`, lowercase hex HMAC-SHA256 of the raw body with the webhook
//!   endpoint's secret (developer.gocardless.com/getting-started/staying-up-to-date-with-webhooks;
//!   the official `gocardless-pro` PyPI SDK 3.22.0, `gocardless_pro.webhooks.parse`). No
//!   timestamp. A missing or wrong signature is answered 498, as GoCardless asks.
//! - Body: a batch, `{"events": [...], "meta": {"webhook_id": ...}}` (up to 250 unrelated events);
//!   each event is stored and deduplicated on its own `id`, and the request is acknowledged only
//!   once every event is stored.
//! - An event is `{resource_type}.{action}` (`payments.confirmed`) about `links.payment`; it
//!   carries no amount (only the payment's API object has one) and the booking only in
//!   `resource_metadata` (the payment's metadata, set when it was created).
//! - Confirmation (optional, and the way to record amounts): `GET /payments/{id}` with the access
//!   token and `GoCardless-Version: 2015-07-06` (developer.gocardless.com/api-reference/#payments-get-a-single-payment).

use serde_json::json;

use super::{Confirmation, Preset, Sample, SampleRequest, body_hmac_sha256, mapping, path, types};
use crate::providers::Answer;
use crate::providers::confirm::{Lookup, Request, Verdict};
use crate::providers::mapping::{AmountFormat, MappedKind, Mapping};

pub const PRESET: Preset = Preset {
    kind: "gocardless",
    scheme: |secrets, tolerance| body_hmac_sha256("webhook-signature", secrets, tolerance),
    signed: true,
    answers_get: false,
    takes_put: false,
    // developer.gocardless.com/api-reference/#webhooks-overview: "Webhooks with an invalid
    // signature must return a 498 Token Invalid error".
    forged_status: Some(498),
    default_tolerance: None,
    mapping: gocardless_mapping,
    confirmation: Confirmation::Optional,
    lookup: Some(lookup),
    batch: Some("events"),
    answer: Answer::Receipt,
    sample,
    sample_types: &[
        "payments.confirmed",
        "payments.paid_out",
        "payments.failed",
        "payments.cancelled",
        "payments.charged_back",
    ],
    sample_currency: "EUR",
    sample_secret: "gc_webhook_secret_7rXbC6kY",
};

fn gocardless_mapping() -> Mapping {
    use MappedKind::*;
    Mapping {
        booking_id: Some(path("resource_metadata.booking_id")),
        // Events carry no amount: a source that confirms by API reads it from the payment.
        failure_message: Some(path("details.description")),
        types: types(&[
            ("payments.confirmed", Succeeded),
            ("payments.paid_out", Succeeded),
            ("payments.failed", Failed),
            ("payments.customer_approval_denied", Failed),
            ("payments.cancelled", Canceled),
            ("payments.charged_back", Disputed),
        ]),
        ..mapping("id", "{resource_type}.{action}", "links.payment")
    }
}

fn lookup() -> Lookup {
    use MappedKind::*;
    Lookup {
        base_url: "https://api.gocardless.com".into(),
        credentials: vec!["access_token".into()],
        optional: vec![],
        token: None,
        request: Request::Get,
        path: "/payments/{id}".into(),
        headers: vec![
            ("authorization".into(), "Bearer {access_token}".into()),
            ("gocardless-version".into(), "2015-07-06".into()),
        ],
        id: path("links.payment"),
        object: Some(path("payments")),
        status: path("status"),
        // developer.gocardless.com/api-reference/#core-endpoints-payments: the payment's statuses.
        statuses: [
            ("pending_customer_approval", Verdict::Is(Processing)),
            ("pending_submission", Verdict::Is(Processing)),
            ("submitted", Verdict::Is(Processing)),
            ("confirmed", Verdict::Is(Succeeded)),
            ("paid_out", Verdict::Is(Succeeded)),
            ("cancelled", Verdict::Is(Canceled)),
            ("customer_approval_denied", Verdict::Is(Failed)),
            ("failed", Verdict::Is(Failed)),
            ("charged_back", Verdict::Is(Disputed)),
        ]
        .into_iter()
        .map(|(w, v)| (w.to_string(), v))
        .collect(),
        amount: Some(path("amount")),
        amount_format: AmountFormat::Minor,
        currency: Some(path("currency")),
        default_currency: None,
        booking_id: Some(path("metadata.booking_id")),
        failure_message: None,
        unknown_status: None,
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    let (resource_type, action) = s
        .event_type
        .split_once('.')
        .filter(|_| PRESET.sample_types.contains(&s.event_type))
        .ok_or_else(|| format!("gocardless: no sample of {:?}", s.event_type))?;
    let (cause, description) = match action {
        "confirmed" => (
            "payment_confirmed",
            "Enough time has passed since the payment was submitted for the banks to return an error, so this payment is now confirmed.",
        ),
        "paid_out" => (
            "payment_paid_out",
            "The payment has been paid out by GoCardless.",
        ),
        "failed" => (
            "insufficient_funds",
            "The customer's account had insufficient funds to make this payment.",
        ),
        "cancelled" => ("payment_cancelled", "The payment was cancelled."),
        _ => (
            "payment_charged_back",
            "The customer asked their bank to refund this payment.",
        ),
    };
    let at = chrono::DateTime::from_timestamp(s.now, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    SampleRequest::json(&json!({
        "events": [{
            "id": format!("EV{}", s.event_id),
            "created_at": at,
            "resource_type": resource_type,
            "action": action,
            "links": {"payment": s.payment_id},
            "details": {
                "origin": if action == "cancelled" { "api" } else { "gocardless" },
                "cause": cause,
                "description": description,
                "scheme": "sepa_core",
            },
            "metadata": {},
            "resource_metadata": {"booking_id": s.booking_id},
        }],
        "meta": {"webhook_id": format!("WB{}", s.event_id)},
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::HeaderMap;

    use super::*;
    use crate::domain::Secret;
    use crate::providers::{Incoming, Source, VerifyError};

    /// The official SDK's vector (`gocardless-pro-python` `tests/webhooks_test.py`, body
    /// `tests/fixtures/webhook_body.json` without its final newline).
    const SDK_BODY: &str = r#"{"events":[{"id":"EV00BD05S5VM2T","created_at":"2018-07-05T09:13:51.404Z","resource_type":"subscriptions","action":"created","links":{"subscription":"SB0003JJQ2MR06"},"details":{"origin":"api","cause":"subscription_created","description":"Subscription created via the API."},"metadata":{}},{"id":"EV00BD05TB8K63","created_at":"2018-07-05T09:13:56.893Z","resource_type":"mandates","action":"created","links":{"mandate":"MD000AMA19XGEC"},"details":{"origin":"api","cause":"mandate_created","description":"Mandate created via the API."},"metadata":{}}]}"#;
    const SDK_KEY: &str = "ED7D658C-D8EB-4941-948B-3973214F2D49";
    const SDK_SIGNATURE: &str = "2693754819d3e32d7e8fcb13c729631f316c6de8dc1cf634d6527f1c07276e7e";

    fn source() -> Source {
        let scheme = (PRESET.scheme)(
            vec![Secret::new(SDK_KEY)],
            std::time::Duration::from_secs(300),
        )
        .unwrap();
        Source {
            mapping: Some(Arc::new(gocardless_mapping())),
            batch: Some(path("events")),
            ..Source::new("gocardless", scheme)
        }
    }

    fn signed(signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-signature", signature.parse().unwrap());
        headers
    }

    #[test]
    fn sdk_vector_splits_into_its_events() {
        let headers = signed(SDK_SIGNATURE);
        let items = source()
            .verify(&Incoming::new(&headers, SDK_BODY.as_bytes()), 0)
            .unwrap();
        let read: Vec<(&str, &str)> = items
            .iter()
            .map(|i| (i.meta.event_id.as_str(), i.meta.event_type.as_str()))
            .collect();
        assert_eq!(
            read,
            [
                ("EV00BD05S5VM2T", "subscriptions.created"),
                ("EV00BD05TB8K63", "mandates.created")
            ]
        );
        // Each event is stored as it stood in the body.
        assert!(
            std::str::from_utf8(items[1].payload.as_deref().unwrap())
                .unwrap()
                .starts_with(r#"{"id":"EV00BD05TB8K63""#)
        );
        let with_newline = format!("{SDK_BODY}\n");
        assert_eq!(
            source().verify(&Incoming::new(&headers, with_newline.as_bytes()), 0),
            Err(VerifyError::InvalidSignature)
        );
        // What payhook signs is what the SDK's vector says.
        assert_eq!(
            source().sign(SDK_BODY.as_bytes(), 0),
            vec![("webhook-signature".to_string(), SDK_SIGNATURE.to_string())]
        );
    }
}
