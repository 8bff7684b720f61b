//! Adyen (standard webhooks of the payments platform: cards and local methods, worldwide).
//!
//! - Signature: inside each item, `additionalData.hmacSignature`, base64 HMAC-SHA256 over
//!   `pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success`
//!   with the hex-decoded HMAC key (see `providers::adyen`;
//!   docs.adyen.com/development-resources/webhooks/secure-webhooks/verify-hmac-signatures, the
//!   official `Adyen` PyPI SDK 16.0.0 `Adyen.util.generate_notification_sig`). `secrets` are
//!   the HMAC keys in hex as the Customer Area shows them; several during a key's replacement.
//! - Body: a batch, `{"live": "false", "notificationItems": [{"NotificationRequestItem": {...}}]}`;
//!   each item is verified and stored on its own, and the request is answered `[accepted]`
//!   (docs.adyen.com/development-resources/webhooks/handle-webhook-events) only once every item is
//!   stored.
//! - No event id: an item is `{pspReference}:{eventCode}:{success}` (a failed item never shadows a
//!   later successful one). Its meaning is `{eventCode}:{success}`; the payment is the
//!   `originalReference` of a modification (capture, refund, cancellation, chargeback), else the
//!   `pspReference`; the booking is the `merchantReference` given when the payment was created;
//!   `amount.value` is in minor units.
//! - Confirmation: unavailable (Adyen's payments API has no lookup by `pspReference`).

use serde_json::json;

use super::{Confirmation, Preset, Sample, SampleRequest, mapping, path, types};
use crate::providers::mapping::{MappedKind, Mapping};
use crate::providers::{Answer, Scheme, SigningKeys, adyen};

pub const PRESET: Preset = Preset {
    kind: "adyen",
    scheme: |secrets, _tolerance| {
        let keys = secrets
            .iter()
            .map(|s| adyen::key(s.expose()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                "expected Adyen's HMAC key in hex, as the Customer Area shows it (64 hex characters)"
                    .to_string()
            })?;
        Ok(Scheme::AdyenItems {
            keys: SigningKeys(keys),
        })
    },
    signed: true,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: adyen_mapping,
    confirmation: Confirmation::Unavailable,
    lookup: None,
    batch: Some(adyen::ITEMS),
    answer: Answer::Text("[accepted]"),
    sample,
    sample_types: &[
        "AUTHORISATION",
        "CAPTURE",
        "CANCELLATION",
        "REFUND",
        "CHARGEBACK",
    ],
    sample_currency: "EUR",
    sample_secret: "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
};

fn adyen_mapping() -> Mapping {
    use MappedKind::*;
    let item = |field: &str| format!("{}.{field}", adyen::ITEM);
    Mapping {
        kind_from: Some(path(&format!(
            "{{{}}}:{{{}}}",
            item("eventCode"),
            item("success")
        ))),
        booking_id: Some(path(&item("merchantReference"))),
        amount: Some(path(&item("amount.value"))),
        currency: Some(path(&item("amount.currency"))),
        failure_message: Some(path(&item("reason"))),
        // docs.adyen.com/development-resources/currency-codes: "CLP 2 (differs from standard)",
        // "CVE 0 (differs from standard)"; Adyen's table is leading.
        currency_exponents: [("clp".to_string(), 2), ("cve".to_string(), 0)].into(),
        // A refund is a modification of its own: its pspReference names it, the payment's is
        // originalReference.
        refund_id: Some(path(&item("pspReference"))),
        refund_amount: Some(path(&item("amount.value"))),
        // An unsuccessful modification (a refund request that was refused) changes nothing,
        // so only `:true` is named, but for the authorisation itself.
        types: types(&[
            // Immediate capture, Adyen's default; with manual capture, CAPTURE is the money.
            ("AUTHORISATION:true", Succeeded),
            ("AUTHORISATION:false", Failed),
            ("CAPTURE:true", Succeeded),
            ("CAPTURE_FAILED:true", Failed),
            ("CANCELLATION:true", Canceled),
            // docs.adyen.com/online-payments/refund: one REFUND per refund, its own amount;
            // REFUND_FAILED when the scheme refused it afterwards.
            ("REFUND:true", RefundSucceeded),
            ("REFUND_FAILED:true", RefundFailed),
            // Cancelled before capture, refunded after: either way the booking is not paid.
            ("CANCEL_OR_REFUND:true", Refunded),
            ("NOTIFICATION_OF_CHARGEBACK:true", Disputed),
            ("CHARGEBACK:true", Disputed),
            ("SECOND_CHARGEBACK:true", Disputed),
            // docs.adyen.com/risk-management/disputes-api/dispute-notifications: the issuer asks
            // for information (no money moved yet); a chargeback reversed is won, a
            // pre-arbitration decides it.
            ("REQUEST_FOR_INFORMATION:true", DisputeInquiry),
            ("CHARGEBACK_REVERSED:true", DisputeWon),
            ("PREARBITRATION_WON:true", DisputeWon),
            ("PREARBITRATION_LOST:true", DisputeLost),
        ]),
        ..mapping(
            &format!(
                "{{{}}}:{{{}}}:{{{}}}",
                item("pspReference"),
                item("eventCode"),
                item("success")
            ),
            &item("eventCode"),
            &format!("{}|{}", item("originalReference"), item("pspReference")),
        )
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    if !PRESET.sample_types.contains(&s.event_type) {
        return Err(format!("adyen: no sample of {:?}", s.event_type));
    }
    let at = chrono::DateTime::from_timestamp(s.now, 0)
        .unwrap_or_default()
        .to_rfc3339();
    let mut item = json!({
        "eventCode": s.event_type,
        "success": "true",
        "eventDate": at,
        "merchantAccountCode": "HotelCoECOM",
        "merchantReference": s.booking_id,
        "amount": {"value": s.amount, "currency": s.currency},
        "paymentMethod": "visa",
        "operations": ["CANCEL", "CAPTURE", "REFUND"],
        "reason": "",
        "additionalData": {},
    });
    if s.event_type == "AUTHORISATION" {
        item["pspReference"] = json!(s.payment_id);
        item["reason"] = json!("061890:1111:03/2030");
    } else {
        // A modification has its own reference and names the payment it modifies.
        item["pspReference"] = json!(format!("M{}", s.event_id));
        item["originalReference"] = json!(s.payment_id);
    }
    SampleRequest::json(&json!({
        "live": "false",
        adyen::ITEMS: [{ adyen::ITEM: item }],
    }))
}
