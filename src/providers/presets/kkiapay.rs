//! Kkiapay (Benin, Côte d'Ivoire, Togo, Senegal...: mobile money and cards, in XOF).
//!
//! - Authentication: the header `x-kkiapay-secret` carries the "hash secret" set on the
//!   dashboard's webhook as is (docs.kkiapay.me/v1/en-1.0.0/tableau-de-bord/webhook): nothing
//!   signs the body and nothing is timed, so the secret is compared in constant time and then
//!   Kkiapay's API must confirm every notification, as the official WooCommerce plugin
//!   (`kkiapay/wordpress-plugin`, `on_kkiapay_webhook`) trusts only `verifyTransaction`.
//! - Body: JSON, `transactionId` the payment, `event` its type (`transaction.success`,
//!   `transaction.failed`), `amount` in whole XOF, `stateData` the `data` the widget was opened
//!   with: payhook reads the booking from an object `{"booking_id": ...}` there, as the official
//!   plugin reads its `order_id`.
//! - Confirmation (required): `POST /api/v1/transactions/status` with `{"transactionId": id}` and
//!   the headers `x-api-key`, `x-private-key`, `x-secret-key`, as the official npm SDK
//!   `@kkiapay-org/nodejs-sdk` (`verify`) sends it; production `https://api.kkiapay.me`, sandbox
//!   `https://api-sandbox.kkiapay.me`. Its answer's `status` (`SUCCESS`, `FAILED`,
//!   `TRANSACTION_NOT_FOUND`...), `amount` and `state` (the widget's data) are what the ledger
//!   reads.

use serde_json::json;

use super::{Confirmation, Preset, Sample, SampleRequest, fcfa, mapping, path, types};
use crate::providers::Answer;
use crate::providers::Scheme;
use crate::providers::confirm::{Lookup, Request, Verdict};
use crate::providers::mapping::{AmountFormat, MappedKind, Mapping};

pub const PRESET: Preset = Preset {
    kind: "kkiapay",
    scheme: |secrets, _| {
        Ok(Scheme::SharedSecret {
            header: "x-kkiapay-secret".into(),
            secrets,
        })
    },
    signed: true,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: kkiapay_mapping,
    confirmation: Confirmation::Required,
    lookup: Some(lookup),
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &["transaction.success", "transaction.failed"],
    sample_currency: "XOF",
    sample_secret: "kkiapay-webhook-hash-secret",
};

fn kkiapay_mapping() -> Mapping {
    Mapping {
        booking_id: Some(path("stateData.booking_id")),
        amount: Some(path("amount")),
        amount_format: AmountFormat::Major,
        // Kkiapay takes XOF only; its notifications name no currency.
        default_currency: Some("XOF".into()),
        failure_message: Some(path("failureMessage")),
        types: types(&[
            ("transaction.success", MappedKind::Succeeded),
            ("transaction.failed", MappedKind::Failed),
        ]),
        currency_aliases: fcfa(),
        // A transaction is notified once per outcome.
        ..mapping("{transactionId}:{event}", "event", "transactionId")
    }
}

fn lookup() -> Lookup {
    use MappedKind::*;
    Lookup {
        base_url: "https://api.kkiapay.me".into(),
        credentials: vec![
            "public_key".into(),
            "private_key".into(),
            "secret_key".into(),
        ],
        optional: vec![],
        token: None,
        request: Request::PostJson(json!({"transactionId": "{id}"})),
        path: "/api/v1/transactions/status".into(),
        headers: vec![
            ("x-api-key".into(), "{public_key}".into()),
            ("x-private-key".into(), "{private_key}".into()),
            ("x-secret-key".into(), "{secret_key}".into()),
        ],
        id: path("transactionId"),
        object: None,
        status: path("status"),
        // The official SDK's list of statuses; only SUCCESS is paid.
        statuses: [
            ("SUCCESS", Verdict::Is(Succeeded)),
            ("FAILED", Verdict::Is(Failed)),
            ("INSUFFICIENT_FUND", Verdict::Is(Failed)),
            ("TRANSACTION_NOT_ELIGIBLE", Verdict::Is(Failed)),
            ("PENDING", Verdict::Is(Processing)),
            ("TRANSACTION_NOT_FOUND", Verdict::Unknown),
        ]
        .into_iter()
        .map(|(w, v)| (w.to_string(), v))
        .collect(),
        amount: Some(path("amount")),
        amount_format: AmountFormat::Major,
        currency: None,
        default_currency: Some("XOF".into()),
        booking_id: Some(path("state.booking_id")),
        failure_message: Some(path("reason")),
        unknown_status: None,
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    if !s.currency.eq_ignore_ascii_case("XOF") {
        return Err(format!("kkiapay: payments are in XOF, not {}", s.currency));
    }
    let at = chrono::DateTime::from_timestamp(s.now, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut body = json!({
        "transactionId": s.payment_id,
        "event": s.event_type,
        "amount": s.amount,
        "fees": 0,
        "method": "MOBILE_MONEY",
        "account": "22997000000",
        "partnerId": "",
        "performedAt": at,
        "stateData": {"booking_id": s.booking_id},
    });
    match s.event_type {
        "transaction.success" => body["isPaymentSucces"] = json!(true),
        "transaction.failed" => {
            body["isPaymentSucces"] = json!(false);
            body["failureCode"] = json!("insufficient_fund");
            body["failureMessage"] = json!("Insufficient balance");
        }
        other => return Err(format!("kkiapay: no sample of {other:?}")),
    }
    SampleRequest::json(&body)
}
