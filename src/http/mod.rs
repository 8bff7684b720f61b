//! HTTP: the public router (webhooks, payment status, health) and the admin router. Handlers stay thin; the
//! work happens in the modules they call.

mod admin;
mod checkout;
pub mod demo;
pub mod error;
mod payments;
pub mod ratelimit;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::checkout::Provider;
use crate::config::Secret;
use crate::inbox::Inbox;
use crate::store::Store;
use error::ApiError;
use ratelimit::RateLimiter;

/// What the handlers share.
pub struct AppState {
    pub inbox: Inbox,
    pub store: Arc<Store>,
    pub limiter: Option<RateLimiter>,
    pub max_body_bytes: usize,
    pub retry_after_secs: u64,
    /// `INTERNAL_SERVICE_TOKEN`: service-only routes are closed without it.
    pub internal_token: Option<Secret>,
    /// Who checkout sessions and payment intents are created with.
    pub provider: Arc<Provider>,
    /// `PAYHOOK_PUBLIC_URL`: how browsers reach this listener.
    pub public_url: String,
    pub provider_answers: checkout::ProviderAnswers,
    /// `payhook demo`: its booking service, whose view the demo pages show.
    pub demo: Option<demo::DemoBookings>,
    /// `PAYHOOK_ADMIN_TOKEN`: the admin listener is open (on loopback only) without it.
    pub admin_token: Option<Secret>,
    /// Wakes the ledger processor (an event was put back in line).
    pub processor_wake: Arc<tokio::sync::Notify>,
    /// Wakes the dispatcher (notifications were put back in line).
    pub dispatch: crate::notify::DispatchWake,
    pub targets: Arc<[crate::config::TargetSettings]>,
}

/// The token of `Authorization: Bearer <token>`, if the request has one.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Whether `presented` is `token`, compared in constant time.
fn is_token(presented: &str, token: &Secret) -> bool {
    subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), token.expose().as_bytes()).into()
}

impl AppState {
    /// A store failure as the client sees it: 503 with Retry-After.
    pub fn store_failed(&self) -> impl Fn(crate::store::StoreError) -> ApiError + '_ {
        move |e| ApiError::from_store(e, self.retry_after_secs)
    }
}

pub fn public_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhooks/{source}", post(webhooks::receive_webhook))
        .route(
            "/api/v1/payment-gateway/webhooks/stripe",
            post(webhooks::receive_stripe_webhook),
        )
        .route(
            "/api/v1/payments/{booking_id}/status",
            get(payments::get_payment_status),
        )
        .route("/api/v1/checkout/sessions", post(checkout::create_session))
        .route(
            "/api/v1/checkout/sessions/{session_id}",
            get(checkout::get_session),
        )
        .route("/api/v1/payment-intents", post(checkout::create_intent))
        .route(
            "/api/v1/payment-intents/{intent_id}",
            get(checkout::get_intent),
        )
        .route("/checkout/return", get(checkout::return_page))
        .route(
            "/sandbox/checkout/{session_id}",
            get(checkout::sandbox_page),
        )
        .route(
            "/sandbox/checkout/{session_id}/{action}",
            post(checkout::sandbox_action),
        )
        .route("/demo", get(demo::page))
        .route("/demo/checkout", post(demo::checkout))
        .route("/demo/bookings/{id}", get(demo::booking))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

pub fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(admin::routes(state.clone()))
        .route("/", get(admin::dashboard))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the store answers.
async fn readyz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check: store unavailable");
        ApiError::store_unavailable(state.retry_after_secs)
    })?;
    Ok("ready")
}

/// A JSON 404 for paths no route serves.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}
