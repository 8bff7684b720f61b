//! Mercado Pago (Argentina, Brazil, Mexico, Chile, Colombia, Peru, Uruguay: cards, Pix, cash).
//!
//! - Signature: `x-signature: ts=..,v1=..` over `data.id` from the notification URL's query,
//!   `x-request-id` and the timestamp (see [`crate::providers::mercadopago`]), with the
//!   application's secret signature (Your integrations > Webhooks), five minutes' tolerance.
//! - Body: `{"action": "payment.updated", "type": "payment", "data": {"id": "..."}, ...}`: no
//!   amount and no status, so the payments API confirms every notification.
//! - Event id: the payment and the delivery (`<data.id>:<arrival>`, see
//!   [`DELIVERY`](crate::providers::mapping::DELIVERY)): `payment.updated` comes for every change of
//!   a payment, so no later change is taken for a duplicate; a redelivery (Mercado Pago retries
//!   every 15 minutes until answered) is confirmed again and changes nothing.
//! - Confirmation (required): `GET /v1/payments/{id}` with `Bearer <access token>`
//!   (mercadopago.com/developers/en/reference/payments/_payments_id/get): `status`,
//!   `transaction_amount` in the currency's major unit, `currency_id`, `external_reference` the
//!   booking.

use serde_json::json;

use super::{Confirmation, Preset, Sample, SampleRequest, mapping, path};
use crate::providers::Answer;
use crate::providers::Scheme;
use crate::providers::confirm::{Lookup, Request, Verdict};
use crate::providers::mapping::{AmountFormat, MappedKind, Mapping};

pub const PRESET: Preset = Preset {
    kind: "mercadopago",
    scheme: |secrets, tolerance| Ok(Scheme::MercadoPago { secrets, tolerance }),
    signed: true,
    answers_get: false,
    takes_put: false,
    forged_status: None,
    default_tolerance: None,
    mapping: mercadopago_mapping,
    confirmation: Confirmation::Required,
    lookup: Some(lookup),
    batch: None,
    answer: Answer::Receipt,
    sample,
    sample_types: &["payment.updated", "payment.created"],
    sample_currency: "BRL",
    sample_secret: "6a1e7c0b9f3d4e2a8c5b7d9f1e3a5c7b9d1f3e5a7c9b1d3f5e7a9c1b3d5f7e9a",
};

fn mercadopago_mapping() -> Mapping {
    mapping("{data.id}:{$delivery}", "action", "data.id")
}

fn lookup() -> Lookup {
    use MappedKind::*;
    Lookup {
        base_url: "https://api.mercadopago.com".into(),
        credentials: vec!["access_token".into()],
        optional: vec![],
        token: None,
        request: Request::Get,
        path: "/v1/payments/{id}".into(),
        headers: vec![("authorization".into(), "Bearer {access_token}".into())],
        id: path("data.id"),
        object: None,
        status: path("status"),
        statuses: [
            ("approved", Verdict::Is(Succeeded)),
            ("rejected", Verdict::Is(Failed)),
            ("cancelled", Verdict::Is(Canceled)),
            ("refunded", Verdict::Is(Refunded)),
            ("charged_back", Verdict::Is(Disputed)),
            ("in_mediation", Verdict::Is(Disputed)),
            ("pending", Verdict::Is(Processing)),
            ("in_process", Verdict::Is(Processing)),
            ("authorized", Verdict::Is(Processing)),
        ]
        .into_iter()
        .map(|(w, v)| (w.to_string(), v))
        .collect(),
        amount: Some(path("transaction_amount")),
        amount_format: AmountFormat::Major,
        currency: Some(path("currency_id")),
        default_currency: None,
        booking_id: Some(path("external_reference")),
        failure_message: Some(path("status_detail")),
        unknown_status: None,
    }
}

fn sample(s: &Sample<'_>) -> Result<SampleRequest, String> {
    if !PRESET.sample_types.contains(&s.event_type) {
        return Err(format!("mercadopago: no sample of {:?}", s.event_type));
    }
    let at = chrono::DateTime::from_timestamp(s.now, 0)
        .unwrap_or_default()
        .to_rfc3339();
    let body = json!({
        "id": s.event_id.parse::<i64>().unwrap_or(1),
        "live_mode": false,
        "type": "payment",
        "date_created": at,
        "user_id": 724484980,
        "api_version": "v1",
        "action": s.event_type,
        "data": {"id": s.payment_id},
    });
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("data.id", s.payment_id)
        .append_pair("type", "payment")
        .finish();
    Ok(SampleRequest {
        query: Some(query),
        ..SampleRequest::json(&body)?
    })
}
