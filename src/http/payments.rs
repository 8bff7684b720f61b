//! Payment status, answered from the ledger: the booking service's status route (service token
//! required). The checkout session route the return page polls is in `checkout`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::responses::{StoreDown, Unauthorized};
use super::error::{ApiError, ErrorBody};
use crate::domain::money::Money;
use crate::domain::rfc3339;
use crate::domain::state::{
    Attention, DisputeView, Payment, PaymentStatus, RefundView, representative,
};
use crate::store::PaymentKey;

/// The booking service's view of a booking's payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentStatusAnswer {
    /// Always true.
    success: bool,
    data: PaymentStatusData,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentStatusData {
    booking_id: String,
    /// The booking's state, from the payment that speaks for it: pending, processing, authorized,
    /// succeeded, failed, canceled, expired, partially_refunded, refunded, disputed.
    status: String,
    /// Minor units (cents) of `currency`.
    amount: Option<i64>,
    currency: Option<String>,
    /// e.g. `20.00 EUR`.
    amount_formatted: Option<String>,
    amount_refunded: i64,
    paid_at: Option<String>,
    refunded_at: Option<String>,
    payment_intent_id: Option<String>,
    checkout_session_id: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    dispute_status: Option<String>,
    dispute_reason: Option<String>,
    /// What was captured: the paid amount (below `amount` after a partial capture).
    amount_captured: Option<i64>,
    /// What open or lost disputes hold back from the merchant now.
    amount_disputed: i64,
    /// The refunds of the payment that speaks for the booking, each with its latest status.
    refunds: Vec<RefundView>,
    disputes: Vec<DisputeView>,
    /// What needs a person, over all the booking's payments: `duplicate`, `refund_failed`,
    /// `booking_refused`.
    attention: Vec<Attention>,
    /// Every payment that names the booking, oldest first. The booking is paid while one of them
    /// holds money; `status` above is the one that speaks for it.
    payments: Vec<BookingPayment>,
}

/// One of a booking's payments.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookingPayment {
    status: String,
    payment_intent_id: Option<String>,
    checkout_session_id: Option<String>,
    amount: Option<i64>,
    amount_captured: Option<i64>,
    amount_refunded: i64,
    currency: Option<String>,
    paid_at: Option<String>,
    /// Captured after another payment of the booking was.
    duplicate: bool,
    attention: Vec<Attention>,
}

/// `GET /api/v1/payments/{booking_id}/status`, for services holding `INTERNAL_SERVICE_TOKEN`.
#[utoipa::path(
    get,
    path = "/api/v1/payments/{booking_id}/status",
    tag = "payments",
    params(("booking_id" = String, Path, description = "The application's booking id")),
    security(("service_token" = [])),
    responses(
        (status = 200, description = "The booking's payment, from the ledger (the paid one, else the one in flight, else the latest)", body = PaymentStatusAnswer),
        Unauthorized,
        (status = 404, description = "Neither a payment nor a checkout session is known for the booking (`payment_not_found`)", body = ErrorBody),
        StoreDown,
    )
)]
pub async fn get_payment_status(
    State(state): State<Arc<AppState>>,
    Path(booking_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<PaymentStatusAnswer>, ApiError> {
    authorize_service(&state, &headers)?;
    let payments = state
        .store
        .payments_where(PaymentKey::Booking, &booking_id)
        .await?;
    let Some(payment) = representative(&payments) else {
        return session_only(&state, booking_id).await.map(Json);
    };
    let s = &payment.state;
    let mut attention: Vec<Attention> = payments
        .iter()
        .flat_map(|p| p.state.attention.iter().copied())
        .collect();
    attention.sort();
    attention.dedup();
    let listed = payments
        .iter()
        .map(|p| {
            let s = &p.state;
            BookingPayment {
                status: s.status.as_str().to_string(),
                payment_intent_id: s.payment_intent_id.clone(),
                checkout_session_id: s.checkout_session_id.clone(),
                amount: s.amount,
                amount_captured: s.amount_captured,
                amount_refunded: s.amount_refunded,
                currency: s.currency.clone(),
                paid_at: rfc3339(s.paid_at),
                duplicate: s.needs(Attention::Duplicate),
                attention: s.attention.clone(),
            }
        })
        .collect();
    Ok(Json(PaymentStatusAnswer {
        success: true,
        data: PaymentStatusData {
            booking_id,
            status: s.status.as_str().to_string(),
            // What the customer paid, once paid; what was asked for before.
            amount: s.amount_paid().or(s.amount),
            currency: s.currency.clone(),
            amount_formatted: formatted(payment),
            amount_refunded: s.amount_refunded,
            paid_at: rfc3339(s.paid_at),
            refunded_at: rfc3339(s.refunded_at),
            payment_intent_id: s.payment_intent_id.clone(),
            checkout_session_id: s.checkout_session_id.clone(),
            failure_code: s.failure_code.clone(),
            failure_message: s.failure_message.clone(),
            dispute_status: s.dispute_status.clone(),
            dispute_reason: s.dispute_reason.clone(),
            amount_captured: s.amount_captured,
            amount_disputed: s.amount_disputed,
            refunds: s.refunds.clone(),
            disputes: s.disputes.clone(),
            attention,
            payments: listed,
        },
    }))
}

/// A booking no provider event has named yet, whose checkout session payhook created: `pending`
/// (`expired` once the session has) with the amount asked for, as a success page polling right
/// after the redirect expects; a booking payhook never heard of is `404`.
async fn session_only(
    state: &AppState,
    booking_id: String,
) -> Result<PaymentStatusAnswer, ApiError> {
    let sessions = state.store.sessions_of_booking(&booking_id).await?;
    let Some(session) = sessions.last() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "payment_not_found",
            format!("no payment is known for booking {booking_id:?}"),
        )
        .hint("payhook knows a booking once it created its checkout session or a provider event carrying its id has been processed"));
    };
    let status = match session.status.as_str() {
        "expired" => PaymentStatus::Expired,
        _ => PaymentStatus::Pending,
    };
    let currency = session.currency.to_ascii_lowercase();
    Ok(PaymentStatusAnswer {
        success: true,
        data: PaymentStatusData {
            booking_id,
            status: status.as_str().to_string(),
            amount: Some(session.amount),
            amount_formatted: Money::written(Some(session.amount), Some(&currency)),
            currency: Some(currency),
            amount_refunded: 0,
            paid_at: None,
            refunded_at: None,
            payment_intent_id: session.payment_intent_id.clone(),
            checkout_session_id: Some(session.id.clone()),
            failure_code: None,
            failure_message: None,
            dispute_status: None,
            dispute_reason: None,
            amount_captured: None,
            amount_disputed: 0,
            refunds: Vec::new(),
            disputes: Vec::new(),
            attention: Vec::new(),
            payments: Vec::new(),
        },
    })
}

/// Stripe's session `payment_status` words, extended with what happened to the money after.
pub(super) fn session_payment_status(status: PaymentStatus) -> &'static str {
    match status {
        PaymentStatus::Succeeded => "paid",
        PaymentStatus::Processing => "processing",
        PaymentStatus::PartiallyRefunded => "partially_refunded",
        PaymentStatus::Refunded => "refunded",
        PaymentStatus::Disputed => "disputed",
        PaymentStatus::Failed => "failed",
        PaymentStatus::Authorized => "authorized",
        PaymentStatus::Pending | PaymentStatus::Canceled | PaymentStatus::Expired => "unpaid",
    }
}

fn formatted(payment: &Payment) -> Option<String> {
    let s = &payment.state;
    Money::written(s.amount_paid().or(s.amount), s.currency.as_deref())
}

/// Requires `Authorization: Bearer <INTERNAL_SERVICE_TOKEN>`, compared in constant time.
pub(super) fn authorize_service(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let unauthorized = |message: &str, hint: &'static str| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).hint(hint)
    };
    let Some(token) = &state.internal_token else {
        return Err(unauthorized(
            "this route is for services and INTERNAL_SERVICE_TOKEN is not set",
            "set INTERNAL_SERVICE_TOKEN on payhook and send it as a Bearer token",
        ));
    };
    match super::bearer(headers) {
        Some(p) if super::is_token(p, token) => Ok(()),
        Some(_) => Err(unauthorized(
            "the Bearer token is not the service token",
            "send INTERNAL_SERVICE_TOKEN as Authorization: Bearer <token>",
        )),
        None => Err(unauthorized(
            "this route needs Authorization: Bearer <INTERNAL_SERVICE_TOKEN>",
            "send INTERNAL_SERVICE_TOKEN as Authorization: Bearer <token>",
        )),
    }
}
