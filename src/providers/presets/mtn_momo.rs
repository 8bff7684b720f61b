//! MTN MoMo, Collection API (mobile money in XOF, XAF, GHS, UGX...: Côte d'Ivoire, Benin,
//! Cameroon, Congo, Ghana, Uganda...).
//!
//! - Signature: none. The callback MTN sends once a request to pay ends carries no signature, no
//!   secret and no timestamp, and is sent only once (momodeveloper.mtn.com/api-documentation/callback):
//!   it is a hint, and the Collection API confirms every one.
//! - Body: the `RequestToPayResult` (`status` SUCCESSFUL / FAILED / PENDING, `amount` a string in
//!   the currency's major unit, `currency`, `externalId` the merchant's own id, `reason` on
//!   failure), without the `X-Reference-Id` the payment was requested under. The operator names it
//!   in the callback URL given with each request to pay:
//!   `https://payhook.example/webhooks/momo?reference=<X-Reference-Id>`; payhook reads and keeps
//!   the query beside the body ([`Mapping::query`]).
//! - Confirmation (required): `POST /collection/token/` with HTTP Basic over the API user and key
//!   and the `Ocp-Apim-Subscription-Key`, then `GET /collection/v1_0/requesttopay/{referenceId}`
//!   with `Bearer`, `X-Target-Environment` (`sandbox`, or the `mtn<country>` given at go-live) and
//!   the subscription key (momodeveloper.mtn.com/docs/services/collection/operations/
//!   requesttopay-referenceId-GET). 404 is an unknown reference.
//! - A FAILED payment reads as failed whatever its `reason` (APPROVAL_REJECTED, EXPIRED,
//!   TRANSACTION_CANCELED...); the reason (a word, or `reason.code`) is kept as the failure
//!   message.

use super::{Confirmation, Preset, Sample, SampleRequest, fcfa, mapping, path, types};
use crate::providers::Answer;
use crate::providers::Scheme;
use crate::providers::confirm::{Lookup, Request, TokenStep, Verdict};
use crate::providers::mapping::{AmountFormat, MappedKind, Mapping};

pub const PRESET: Preset = Preset {
    kind: "mtn-momo",
    scheme: |_, _| Ok(Scheme::Unsigned),
    signed: false,
    answers_get: false,
    // momodeveloper.mtn.com/api-documentation/callback: "Allow PUT & POST on your callback
    // listener host", and the callback is sent once.
    takes_put: true,
    forged_status: None,
    default_tolerance: None,
    mapping: momo_mapping,
    confirmation: Confirmation::Required,
    lookup: Some(lookup),
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &["SUCCESSFUL", "FAILED"],
    sample_currency: "XOF",
    sample_secret: "",
};

fn momo_mapping() -> Mapping {
    Mapping {
        query: true,
        booking_id: Some(path("body.externalId")),
        amount: Some(path("body.amount")),
        amount_format: AmountFormat::Major,
        currency: Some(path("body.currency")),
        failure_message: Some(path("body.reason|body.reason.code")),
        types: types(&[
            ("SUCCESSFUL", MappedKind::Succeeded),
            ("FAILED", MappedKind::Failed),
            ("PENDING", MappedKind::Processing),
        ]),
        currency_aliases: fcfa(),
        // A request to pay reaches each status once; MTN does not send the callback again.
        ..mapping(
            "{query.reference}:{body.status}",
            "body.status",
            "query.reference",
        )
    }
}

fn lookup() -> Lookup {
    Lookup {
        base_url: "https://proxy.momoapi.mtn.com".into(),
        credentials: vec![
            "api_user".into(),
            "api_key".into(),
            "subscription_key".into(),
        ],
        optional: vec![("target_environment".into(), "sandbox".into())],
        token: Some(TokenStep {
            path: "/collection/token/".into(),
            basic: ("api_user".into(), "api_key".into()),
            form: None,
        }),
        request: Request::Get,
        path: "/collection/v1_0/requesttopay/{id}".into(),
        headers: vec![
            ("authorization".into(), "Bearer {access_token}".into()),
            ("x-target-environment".into(), "{target_environment}".into()),
            (
                "ocp-apim-subscription-key".into(),
                "{subscription_key}".into(),
            ),
        ],
        id: path("query.reference"),
        object: None,
        status: path("status"),
        statuses: [
            ("SUCCESSFUL", Verdict::Is(MappedKind::Succeeded)),
            ("FAILED", Verdict::Is(MappedKind::Failed)),
            ("PENDING", Verdict::Is(MappedKind::Processing)),
        ]
        .into_iter()
        .map(|(w, v)| (w.to_string(), v))
        .collect(),
        amount: Some(path("amount")),
        amount_format: AmountFormat::Major,
        currency: Some(path("currency")),
        default_currency: None,
        booking_id: Some(path("externalId")),
        failure_message: Some(path("reason|reason.code")),
        unknown_status: None,
    }
}

/// `minor` written in `currency`'s major unit, as MoMo and Orange Money write amounts
/// (`10000` XOF is `"10000"`, `1050` EUR is `"10.50"`).
pub(super) fn major(minor: i64, currency: &str) -> String {
    let written = crate::domain::money::Money::new(minor, currency).to_string();
    written
        .split_once(' ')
        .map(|(amount, _)| amount.to_string())
        .unwrap_or(written)
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    let (status, reason) = match s.event_type {
        "SUCCESSFUL" => ("SUCCESSFUL", None),
        "FAILED" => ("FAILED", Some("APPROVAL_REJECTED")),
        "PENDING" => ("PENDING", None),
        other => return Err(format!("mtn-momo: no sample of {other:?}")),
    };
    let mut body = serde_json::json!({
        "financialTransactionId": s.event_id,
        "externalId": s.booking_id,
        "amount": major(s.amount, s.currency),
        "currency": s.currency,
        "payer": {"partyIdType": "MSISDN", "partyId": "22997000000"},
        "payerMessage": "Booking",
        "payeeNote": s.booking_id,
        "status": status,
    });
    if let Some(reason) = reason {
        body["reason"] = reason.into();
    }
    Ok(SampleRequest {
        query: Some(format!("reference={}", s.payment_id)),
        ..SampleRequest::json(&body)?
    })
}
