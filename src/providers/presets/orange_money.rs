//! Orange Money Web Payment (WebPay): mobile money in XOF, XAF, GNF... (Côte d'Ivoire, Senegal,
//! Mali, Cameroon, Guinea...).
//!
//! - Signature: none. The notification Orange posts to the payment's `notif_url` is
//!   `{"status": ..., "notif_token": ..., "txnid": ...}`: the `notif_token` is a per-payment value
//!   given when the payment was created, which payhook does not hold, and it covers nothing. The
//!   status API confirms every notification.
//! - The notification carries neither the order, nor the amount, nor the pay token. The operator
//!   names them in the `notif_url` given when creating the payment:
//!   `https://payhook.example/webhooks/orange?order_id=<order>&amount=<amount>&pay_token=<pay_token>`
//!   (`pay_token` is in the answer to the creation; put it in the URL of the payment's page, or
//!   create the payment before its notification URL is final); payhook reads and keeps the query
//!   beside the body ([`Mapping::query`]).
//! - Confirmation (required): `POST /oauth/v3/token` with HTTP Basic over the client id and secret
//!   (`grant_type=client_credentials`), then `POST /orange-money-webpay/{country}/v1/
//!   transactionstatus` with `{order_id, amount, pay_token}`, answered `{status, order_id, txnid}`
//!   (developer.orange.com/apis/om-webpay-dev/getting-started; `{country}` is `dev` on the
//!   sandbox, the country code Orange gives at go-live otherwise). The answer repeats no amount:
//!   the amount confirmed is the one payhook asked about.
//! - Amounts are whole units of the currency, which no message names: XOF unless the source's
//!   `mapping.default_currency` says otherwise. The dev sandbox's test currency is `OUV`.
//! - Status words: SUCCESS, FAILED, EXPIRED (canceled), INITIATED and PENDING (processing).

use super::{Confirmation, Preset, Sample, SampleRequest, fcfa, mapping, path, types};
use crate::providers::Answer;
use crate::providers::Scheme;
use crate::providers::confirm::{Lookup, Request, TokenStep, Verdict};
use crate::providers::mapping::{AmountFormat, MappedKind, Mapping};

pub const PRESET: Preset = Preset {
    kind: "orange-money",
    scheme: |_, _| Ok(Scheme::Unsigned),
    signed: false,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: orange_mapping,
    confirmation: Confirmation::Required,
    lookup: Some(lookup),
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &["SUCCESS", "FAILED", "EXPIRED"],
    sample_currency: "XOF",
    sample_secret: "",
};

const STATUSES: &[(&str, MappedKind)] = &[
    ("SUCCESS", MappedKind::Succeeded),
    ("FAILED", MappedKind::Failed),
    ("EXPIRED", MappedKind::Canceled),
    ("INITIATED", MappedKind::Processing),
    ("PENDING", MappedKind::Processing),
];

fn orange_mapping() -> Mapping {
    Mapping {
        query: true,
        booking_id: Some(path("query.order_id")),
        amount: Some(path("query.amount")),
        amount_format: AmountFormat::Major,
        default_currency: Some("XOF".into()),
        types: types(STATUSES),
        currency_aliases: fcfa(),
        // A payment reaches each status once.
        ..mapping(
            "{query.pay_token}:{body.status}",
            "body.status",
            "query.pay_token",
        )
    }
}

fn lookup() -> Lookup {
    Lookup {
        base_url: "https://api.orange.com".into(),
        credentials: vec!["client_id".into(), "client_secret".into(), "country".into()],
        optional: vec![],
        token: Some(TokenStep {
            path: "/oauth/v3/token".into(),
            basic: ("client_id".into(), "client_secret".into()),
            form: Some("grant_type=client_credentials".into()),
        }),
        request: Request::PostJson(serde_json::json!({
            "order_id": "{query.order_id}",
            "amount": "{query.amount}",
            "pay_token": "{query.pay_token}",
        })),
        path: "/orange-money-webpay/{country}/v1/transactionstatus".into(),
        headers: vec![
            ("authorization".into(), "Bearer {access_token}".into()),
            ("accept".into(), "application/json".into()),
        ],
        id: path("query.pay_token"),
        object: None,
        status: path("status"),
        statuses: STATUSES
            .iter()
            .map(|(w, k)| (w.to_string(), Verdict::Is(*k)))
            .collect(),
        amount: Some(path("$notification.query.amount")),
        amount_format: AmountFormat::Major,
        currency: None,
        default_currency: None,
        booking_id: Some(path("$notification.query.order_id")),
        failure_message: Some(path("message")),
        unknown_status: None,
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    if !STATUSES.iter().any(|(w, _)| *w == s.event_type) {
        return Err(format!("orange-money: no sample of {:?}", s.event_type));
    }
    let body = serde_json::json!({
        "status": s.event_type,
        "notif_token": format!("{:0>32}", s.event_id),
        "txnid": format!("MP{}", s.event_id),
    });
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("order_id", s.booking_id)
        .append_pair("amount", &super::mtn_momo::major(s.amount, s.currency))
        .append_pair("pay_token", s.payment_id)
        .finish();
    Ok(SampleRequest {
        query: Some(query),
        ..SampleRequest::json(&body)?
    })
}
