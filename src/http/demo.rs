//! `payhook demo`'s pages: a form that creates a test booking payment (server side, so the
//! browser needs no service token) and the booking service's view of a booking, which the return
//! page shows next to the payment.

use std::sync::Arc;

use axum::Form;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::checkout::NewSession;

/// Where the demo's booking service is, and its token.
#[derive(Clone)]
pub struct DemoBookings {
    pub url: String,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

/// `GET /demo`.
pub async fn page(State(state): State<Arc<AppState>>) -> Result<Html<&'static str>, ApiError> {
    state.demo.as_ref().ok_or_else(not_demo)?;
    Ok(Html(include_str!("../../assets/demo.html")))
}

#[derive(Deserialize)]
pub struct DemoPayment {
    booking_id: String,
    amount: i64,
    currency: String,
    description: String,
}

/// `POST /demo/checkout`: creates the booking (pending) and its checkout session, then sends the
/// browser to pay.
pub async fn checkout(
    State(state): State<Arc<AppState>>,
    Form(form): Form<DemoPayment>,
) -> Result<Response, ApiError> {
    let demo = state.demo.as_ref().ok_or_else(not_demo)?;
    let booking_id = form.booking_id.trim().to_string();
    if booking_id.is_empty() || form.amount <= 0 || form.currency.len() != 3 {
        return Err(ApiError::validation(
            "booking_id",
            "a booking id, a positive amount in minor units and a 3-letter currency are needed",
        ));
    }
    // The booking exists, pending, before it is paid (as in the application it stands for).
    let mut create = demo
        .client
        .post(format!("{}/api/v1/bookings", demo.url))
        .json(&json!({"id": booking_id, "amount": form.amount, "currency": form.currency}));
    if let Some(token) = &demo.token {
        create = create.bearer_auth(token);
    }
    if let Err(e) = create.send().await {
        tracing::warn!(error = %e, "the demo booking service is not reachable");
    }
    let public = state.public_url.trim_end_matches('/');
    let new = NewSession {
        booking_id: booking_id.clone(),
        amount: form.amount,
        currency: form.currency.to_ascii_lowercase(),
        description: Some(form.description).filter(|d| !d.trim().is_empty()),
        customer_email: Some("demo@example.com".into()),
        success_url: format!("{public}/checkout/return?session_id={{CHECKOUT_SESSION_ID}}&demo=1"),
        cancel_url: format!(
            "{public}/checkout/return?session_id={{CHECKOUT_SESSION_ID}}&canceled=1&demo=1"
        ),
        expires_at: chrono::Utc::now().timestamp() + 3600,
    };
    let session = state.provider.create_session(&new, None).await?;
    Ok(Redirect::to(&session.url).into_response())
}

/// `GET /demo/bookings/{id}`: the booking as the booking service has it.
pub async fn booking(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let demo = state.demo.as_ref().ok_or_else(not_demo)?;
    let mut url = reqwest::Url::parse(&demo.url).map_err(|_| not_demo())?;
    url.path_segments_mut()
        .map_err(|_| not_demo())?
        .pop_if_empty()
        .extend(["api", "v1", "bookings", &id]);
    let mut request = demo.client.get(url);
    if let Some(token) = &demo.token {
        request = request.bearer_auth(token);
    }
    let unavailable = |why: String| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "booking_service_unavailable",
            format!("the demo booking service did not answer: {why}"),
        )
    };
    let response = request
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if !status.is_success() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "booking_not_found",
            format!("the booking service has no booking {id:?}"),
        ));
    }
    Ok(Json(body["data"].clone()))
}

fn not_demo() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "the demo pages exist under `payhook demo` only",
    )
}
