//! Payment status, answered from the ledger: the booking service's status route (service token
//! required). The checkout session route the return page polls is in `checkout`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, SecondsFormat};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::ledger::{PaymentStatus, money, representative};
use crate::store::{Payment, PaymentKey};

/// `GET /api/v1/payments/{booking_id}/status`, for services holding `INTERNAL_SERVICE_TOKEN`.
pub async fn get_payment_status(
    State(state): State<Arc<AppState>>,
    Path(booking_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize_service(&state, &headers)?;
    let payments = state
        .store
        .payments_where(PaymentKey::Booking, &booking_id)
        .await
        .map_err(state.store_failed())?;
    let payment = representative(&payments).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "payment_not_found",
            format!("no payment is known for booking {booking_id:?}"),
        )
        .hint("payhook knows a booking once a provider event carrying its id has been processed")
    })?;
    let s = &payment.state;
    Ok(Json(json!({
        "success": true,
        "data": {
            "bookingId": booking_id,
            "status": s.status.as_str(),
            "amount": s.amount,
            "currency": s.currency,
            "amountFormatted": formatted(payment),
            "amountRefunded": s.amount_refunded,
            "paidAt": rfc3339(s.paid_at),
            "refundedAt": rfc3339(s.refunded_at),
            "paymentIntentId": s.payment_intent_id,
            "checkoutSessionId": s.checkout_session_id,
            "failureCode": s.failure_code,
            "failureMessage": s.failure_message,
            "disputeStatus": s.dispute_status,
            "disputeReason": s.dispute_reason,
        }
    })))
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
        PaymentStatus::Pending | PaymentStatus::Canceled | PaymentStatus::Expired => "unpaid",
    }
}

fn formatted(payment: &Payment) -> Option<String> {
    let s = &payment.state;
    money::format_known(s.amount, s.currency.as_deref())
}

pub(super) fn rfc3339(secs: Option<i64>) -> Option<String> {
    secs.and_then(|s| DateTime::from_timestamp(s, 0))
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
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
