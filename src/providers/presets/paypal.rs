//! PayPal (REST webhooks: Orders v2 / Payments v2 captures, disputes).
//!
//! - Signature: RSA by PayPal (`PAYPAL-TRANSMISSION-SIG`, the certificate at `PAYPAL-CERT-URL`),
//!   confirmed through PayPal's own API, so the source needs no secret: an access token
//!   (`POST /v1/oauth2/token`, HTTP Basic `client_id:client_secret`,
//!   `grant_type=client_credentials`), then `POST /v1/notifications/verify-webhook-signature`
//!   with the notification's transmission headers, the source's `webhook_id` and the body as
//!   `webhook_event`, spliced in as posted (a re-serialized copy fails: paypal/PayPal-Python-SDK
//!   #175, #196). `SUCCESS` confirms it, `FAILURE` rejects it
//!   (https://developer.paypal.com/api/webhooks/v1/#verify-webhook-signature_post). At ingest
//!   the headers must be there and `PAYPAL-CERT-URL` on PayPal's API hosts (see
//!   `providers::paypal`).
//! - Body: `id` (`WH-...`, the event id), `event_type`, `resource`: for a capture its `id`,
//!   `amount.value` (a decimal string in major units) and `amount.currency_code`, and the booking
//!   in `custom_id` (copied from the order's `purchase_units[].custom_id`) or `invoice_id`; for a
//!   dispute, the capture in `disputed_transactions[0].seller_transaction_id`
//!   (https://developer.paypal.com/api/rest/webhooks/event-names/). Legacy v1 sales
//!   (`PAYMENT.SALE.*`) keep the amount in `amount.total` and `amount.currency`.
//! - Refunds are not mapped: `PAYMENT.CAPTURE.REFUNDED` and `.REVERSED` carry the refund, whose
//!   capture is named only inside a link's URL (`links[rel=up].href`); they are stored and left
//!   `ignored`.

use serde_json::json;

use super::{Confirmation, Preset, Sample, SampleRequest, mapping, path, types};
use crate::domain::money::Money;
use crate::providers::confirm::{Lookup, Request, TokenStep, Verdict};
use crate::providers::mapping::{AmountFormat, MappedKind, Mapping};
use crate::providers::{Answer, Scheme};

pub const PRESET: Preset = Preset {
    kind: "paypal",
    scheme: |_, _| Ok(Scheme::PayPal),
    signed: false,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: paypal_mapping,
    confirmation: Confirmation::Required,
    lookup: Some(lookup),
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &[
        "PAYMENT.CAPTURE.COMPLETED",
        "PAYMENT.CAPTURE.PENDING",
        "PAYMENT.CAPTURE.DENIED",
        "CUSTOMER.DISPUTE.CREATED",
    ],
    sample_currency: "EUR",
    sample_secret: "",
};

fn paypal_mapping() -> Mapping {
    use MappedKind::*;
    Mapping {
        booking_id: Some(path(
            "resource.custom_id|resource.invoice_id|resource.disputed_transactions.0.custom|resource.disputed_transactions.0.invoice_number",
        )),
        amount: Some(path(
            "resource.amount.value|resource.dispute_amount.value|resource.amount.total",
        )),
        amount_format: AmountFormat::Major,
        currency: Some(path(
            "resource.amount.currency_code|resource.dispute_amount.currency_code|resource.amount.currency",
        )),
        failure_message: Some(path("resource.status_details.reason")),
        // developer.paypal.com/docs/api/customer-disputes/v1: a dispute's stage (an INQUIRY holds
        // no money) and, once resolved, its outcome.
        kind_from: Some(path(
            "{event_type}:{resource.dispute_outcome.outcome_code}|{event_type}:{resource.dispute_life_cycle_stage}|{event_type}",
        )),
        types: types(&[
            ("PAYMENT.CAPTURE.COMPLETED", Succeeded),
            ("PAYMENT.CAPTURE.PENDING", Processing),
            ("PAYMENT.CAPTURE.DENIED", Failed),
            ("PAYMENT.CAPTURE.DECLINED", Failed),
            ("PAYMENT.SALE.COMPLETED", Succeeded),
            ("PAYMENT.SALE.PENDING", Processing),
            ("PAYMENT.SALE.DENIED", Failed),
            ("CUSTOMER.DISPUTE.CREATED", Disputed),
            ("CUSTOMER.DISPUTE.CREATED:INQUIRY", DisputeInquiry),
            ("CUSTOMER.DISPUTE.CREATED:CHARGEBACK", Disputed),
            ("CUSTOMER.DISPUTE.CREATED:PRE_ARBITRATION", Disputed),
            ("CUSTOMER.DISPUTE.CREATED:ARBITRATION", Disputed),
            (
                "CUSTOMER.DISPUTE.RESOLVED:RESOLVED_SELLER_FAVOUR",
                DisputeWon,
            ),
            ("CUSTOMER.DISPUTE.RESOLVED:CANCELED_BY_BUYER", DisputeWon),
            ("CUSTOMER.DISPUTE.RESOLVED:RESOLVED_WITH_PAYOUT", DisputeWon),
            (
                "CUSTOMER.DISPUTE.RESOLVED:RESOLVED_BUYER_FAVOUR",
                DisputeLost,
            ),
            ("CUSTOMER.DISPUTE.RESOLVED:ACCEPTED", DisputeLost),
            ("CUSTOMER.DISPUTE.RESOLVED:DENIED", DisputeWon),
        ]),
        ..mapping(
            "id",
            "event_type",
            "resource.disputed_transactions.0.seller_transaction_id|resource.id",
        )
    }
}

fn lookup() -> Lookup {
    Lookup {
        base_url: "https://api-m.paypal.com".into(),
        credentials: vec![
            "client_id".into(),
            "client_secret".into(),
            "webhook_id".into(),
        ],
        optional: vec![],
        token: Some(TokenStep {
            path: "/v1/oauth2/token".into(),
            basic: ("client_id".into(), "client_secret".into()),
            form: Some("grant_type=client_credentials".into()),
        }),
        request: Request::PostJson(json!({
            "auth_algo": "{headers.paypal-auth-algo}",
            "cert_url": "{headers.paypal-cert-url}",
            "transmission_id": "{headers.paypal-transmission-id}",
            "transmission_sig": "{headers.paypal-transmission-sig}",
            "transmission_time": "{headers.paypal-transmission-time}",
            "webhook_id": "{webhook_id}",
            "webhook_event": "{body}",
        })),
        path: "/v1/notifications/verify-webhook-signature".into(),
        headers: vec![("authorization".into(), "Bearer {access_token}".into())],
        id: path("id"),
        object: None,
        status: path("verification_status"),
        statuses: vec![
            ("SUCCESS".into(), Verdict::Genuine),
            ("FAILURE".into(), Verdict::Forged),
        ],
        amount: None,
        amount_format: AmountFormat::Major,
        currency: None,
        default_currency: None,
        booking_id: None,
        failure_message: None,
        unknown_status: None,
    }
}

/// `amount` minor units of `currency` as PayPal writes them: `"119.00"`, `"1000"` for JPY.
fn major(amount: i64, currency: &str) -> String {
    Money::new(amount, currency)
        .to_string()
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    let at = chrono::DateTime::from_timestamp(s.now, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let currency = s.currency.to_ascii_uppercase();
    let value = major(s.amount, &currency);
    let amount = json!({"currency_code": currency, "value": value});
    let capture = |status: &str| {
        json!({
            "id": s.payment_id,
            "status": status,
            "amount": amount,
            "final_capture": true,
            "custom_id": s.booking_id,
            "invoice_id": format!("INV-{}", s.event_id),
            "supplementary_data": {"related_ids": {"order_id": format!("ORDER-{}", s.event_id)}},
            "create_time": at,
            "update_time": at,
            "links": [
                {"href": format!("https://api.sandbox.paypal.com/v2/payments/captures/{}", s.payment_id), "rel": "self", "method": "GET"},
            ],
        })
    };
    let (resource_type, summary, resource) = match s.event_type {
        "PAYMENT.CAPTURE.COMPLETED" => (
            "capture",
            format!("Payment completed for {value} {currency}"),
            capture("COMPLETED"),
        ),
        "PAYMENT.CAPTURE.PENDING" => {
            let mut r = capture("PENDING");
            r["status_details"] = json!({"reason": "PENDING_REVIEW"});
            (
                "capture",
                format!("Payment pending for {value} {currency}"),
                r,
            )
        }
        "PAYMENT.CAPTURE.DENIED" => (
            "capture",
            format!("Payment denied for {value} {currency}"),
            capture("DECLINED"),
        ),
        "CUSTOMER.DISPUTE.CREATED" => (
            "dispute",
            "A new dispute opened".to_string(),
            json!({
                "dispute_id": format!("PP-D-{}", s.event_id),
                "create_time": at,
                "update_time": at,
                "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
                "status": "OPEN",
                "dispute_amount": amount,
                "disputed_transactions": [{
                    "seller_transaction_id": s.payment_id,
                    "custom": s.booking_id,
                    "gross_amount": amount,
                }],
                "dispute_life_cycle_stage": "INQUIRY",
                "dispute_channel": "INTERNAL",
            }),
        ),
        other => return Err(format!("paypal: no sample of {other:?}")),
    };
    SampleRequest::json(&json!({
        "id": format!("WH-{}", s.event_id),
        "event_version": "1.0",
        "create_time": at,
        "resource_type": resource_type,
        "resource_version": "2.0",
        "event_type": s.event_type,
        "summary": summary,
        "resource": resource,
        "links": [
            {"href": format!("https://api.sandbox.paypal.com/v1/notifications/webhooks-events/WH-{}", s.event_id), "rel": "self", "method": "GET"},
        ],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An INQUIRY holds no money; a resolution says who won.
    #[test]
    fn a_disputes_stage_and_outcome_say_what_it_means() {
        let m = paypal_mapping();
        let kind = |event: serde_json::Value| {
            m.kind_from
                .as_ref()
                .unwrap()
                .text(&event)
                .and_then(|k| m.types.get(&k).copied())
        };
        let dispute = |event: &str, stage: &str, outcome: Option<&str>| {
            let mut e = serde_json::json!({"event_type": event, "resource": {
                "dispute_id": "PP-D-1", "dispute_life_cycle_stage": stage}});
            if let Some(code) = outcome {
                e["resource"]["dispute_outcome"] = serde_json::json!({"outcome_code": code});
            }
            e
        };
        use MappedKind::*;
        assert_eq!(
            kind(dispute("CUSTOMER.DISPUTE.CREATED", "INQUIRY", None)),
            Some(DisputeInquiry)
        );
        assert_eq!(
            kind(dispute("CUSTOMER.DISPUTE.CREATED", "CHARGEBACK", None)),
            Some(Disputed)
        );
        assert_eq!(
            kind(dispute(
                "CUSTOMER.DISPUTE.RESOLVED",
                "CHARGEBACK",
                Some("RESOLVED_SELLER_FAVOUR")
            )),
            Some(DisputeWon)
        );
        assert_eq!(
            kind(dispute(
                "CUSTOMER.DISPUTE.RESOLVED",
                "INQUIRY",
                Some("RESOLVED_BUYER_FAVOUR")
            )),
            Some(DisputeLost)
        );
        let capture =
            serde_json::json!({"event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": {}});
        assert_eq!(kind(capture), Some(Succeeded));
    }

    #[test]
    fn amounts_are_written_in_major_units_by_the_currencys_exponent() {
        assert_eq!(major(11900, "EUR"), "119.00");
        assert_eq!(major(5, "USD"), "0.05");
        assert_eq!(major(1000, "JPY"), "1000");
        let mapping = paypal_mapping();
        for event_type in PRESET.sample_types {
            let sample = sample(&Sample {
                event_type,
                event_id: "1",
                payment_id: "CAP-1",
                booking_id: "bk_1",
                amount: 11900,
                currency: "EUR",
                now: 1_700_000_000,
            })
            .unwrap();
            let read = mapping.format.read(&sample.body).unwrap();
            assert_eq!(mapping.payment_id.text(&read).as_deref(), Some("CAP-1"));
            assert_eq!(
                mapping.booking_id.as_ref().unwrap().text(&read).as_deref(),
                Some("bk_1")
            );
            let amount = mapping.amount.as_ref().unwrap().value(&read).unwrap();
            let currency = mapping.currency.as_ref().unwrap().text(&read).unwrap();
            assert_eq!(
                mapping.amount_format.minor_units(amount, Some(&currency)),
                Ok(11900)
            );
        }
    }
}
