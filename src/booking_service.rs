//! An example booking service implementing the contract payhook's `booking-status` target speaks:
//! `PUT /api/v1/bookings/{id}/payment-status` with a Bearer token, the booking state machine
//! (`pending → confirmed | cancelled`, `confirmed → cancelled | partially_refunded | refunded`,
//! `partially_refunded → refunded | cancelled`), `400 INVALID_TRANSITION`, `404 NOT_FOUND`.
//!
//! It is what the tests and `payhook demo` deliver to, and a starting point for a real one. It does
//! what a real one should: a request id it has already applied is answered again, not re-applied,
//! so payhook's retries are safe.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

/// A booking as the service keeps it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Booking {
    pub id: String,
    pub status: String,
    /// Minor units of `currency`.
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub payment_intent_id: Option<String>,
    pub paid_at: Option<String>,
    pub refunded_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Every transition applied, in order.
    pub history: Vec<Transition>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub request_id: Option<String>,
    pub at: String,
}

/// A status update as it arrived, whatever the answer.
#[derive(Debug, Clone)]
pub struct Received {
    pub booking_id: String,
    pub status: Option<String>,
    pub request_id: Option<String>,
    pub service_name: Option<String>,
    pub answer: u16,
}

/// The service's state, shared by its handlers.
#[derive(Default)]
pub struct BookingService {
    token: Option<String>,
    create_unknown: bool,
    state: Mutex<Books>,
}

#[derive(Default)]
struct Books {
    bookings: BTreeMap<String, Booking>,
    /// Answers already given, by request id: a retried request gets the same answer.
    applied: HashMap<String, (StatusCode, Value)>,
    received: Vec<Received>,
}

const STATUSES: [&str; 5] = [
    "pending",
    "confirmed",
    "cancelled",
    "partially_refunded",
    "refunded",
];

fn allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("pending", "confirmed" | "cancelled")
            | ("confirmed", "cancelled" | "partially_refunded" | "refunded")
            | ("partially_refunded", "refunded" | "cancelled")
    )
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn error(status: StatusCode, code: &str, message: String) -> (StatusCode, Value) {
    (
        status,
        json!({"success": false, "error": {"code": code, "message": message}}),
    )
}

impl BookingService {
    /// `token`: the Bearer token callers must present (any Bearer token when `None`, as the
    /// background's mock does). `create_unknown`: an update for an unknown booking creates it
    /// pending first, instead of `404 NOT_FOUND` (for demos).
    pub fn new(token: Option<String>, create_unknown: bool) -> Arc<BookingService> {
        let service = BookingService {
            token,
            create_unknown,
            state: Mutex::default(),
        };
        // The background's two sample bookings.
        service.create("booking-123", Some(59998), Some("EUR"), "pending");
        service.create("booking-456", Some(14999), Some("EUR"), "pending");
        Arc::new(service)
    }

    /// Adds a booking (replacing one with the same id).
    pub fn create(&self, id: &str, amount: Option<i64>, currency: Option<&str>, status: &str) {
        let at = now();
        let booking = Booking {
            id: id.to_string(),
            status: status.to_string(),
            amount,
            currency: currency.map(str::to_string),
            payment_intent_id: None,
            paid_at: None,
            refunded_at: None,
            created_at: at.clone(),
            updated_at: at,
            history: Vec::new(),
        };
        self.books().bookings.insert(id.to_string(), booking);
    }

    pub fn booking(&self, id: &str) -> Option<Booking> {
        self.books().bookings.get(id).cloned()
    }

    /// Every status update received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.books().received.clone()
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match (presented, &self.token) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(p), Some(token)) => p.as_bytes().ct_eq(token.as_bytes()).into(),
        }
    }

    fn update(
        &self,
        id: &str,
        request_id: Option<&str>,
        update: &StatusUpdate,
    ) -> (StatusCode, Value) {
        let mut books = self.books();
        if let Some(done) = request_id.and_then(|r| books.applied.get(r)) {
            return done.clone();
        }
        let Some(to) = update.status.as_deref().filter(|s| STATUSES.contains(s)) else {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                format!("status must be one of {}", STATUSES.join(", ")),
            );
        };
        if !books.bookings.contains_key(id) && self.create_unknown {
            drop(books);
            self.create(id, None, None, "pending");
            books = self.books();
        }
        let answer = match books.bookings.get_mut(id) {
            None => error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("Booking {id} not found"),
            ),
            Some(b) if !allowed(&b.status, to) => error(
                StatusCode::BAD_REQUEST,
                "INVALID_TRANSITION",
                format!("Cannot transition from {} to {to}", b.status),
            ),
            Some(b) => {
                let at = now();
                b.history.push(Transition {
                    from: b.status.clone(),
                    to: to.to_string(),
                    request_id: request_id.map(str::to_string),
                    at: at.clone(),
                });
                b.status = to.to_string();
                if let Some(pi) = &update.payment_intent_id {
                    b.payment_intent_id = Some(pi.clone());
                }
                if let Some(t) = &update.paid_at {
                    b.paid_at = Some(t.clone());
                }
                if let Some(t) = &update.refunded_at {
                    b.refunded_at = Some(t.clone());
                }
                b.updated_at = at;
                (StatusCode::OK, json!({"success": true, "data": b}))
            }
        };
        // Only what was applied is remembered: a refused update may succeed when retried later.
        if let Some(r) = request_id.filter(|_| answer.0.is_success()) {
            books.applied.insert(r.to_string(), answer.clone());
        }
        answer
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusUpdate {
    status: Option<String>,
    payment_intent_id: Option<String>,
    paid_at: Option<String>,
    refunded_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NewBooking {
    id: String,
    amount: Option<i64>,
    currency: Option<String>,
    status: Option<String>,
}

type Shared = State<Arc<BookingService>>;

/// The service's routes.
pub fn router(service: Arc<BookingService>) -> Router {
    Router::new()
        .route("/api/v1/bookings", get(list).post(create))
        .route("/api/v1/bookings/{id}", get(show))
        .route(
            "/api/v1/bookings/{id}/payment-status",
            axum::routing::put(update_status),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(service)
}

fn reply((status, body): (StatusCode, Value)) -> Response {
    (status, Json(body)).into_response()
}

fn unauthorized() -> Response {
    reply(error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "a Bearer token is required".into(),
    ))
}

async fn list(State(service): Shared, headers: HeaderMap) -> Response {
    if !service.authorized(&headers) {
        return unauthorized();
    }
    let all: Vec<Booking> = service.books().bookings.values().cloned().collect();
    reply((StatusCode::OK, json!({"success": true, "data": all})))
}

async fn create(
    State(service): Shared,
    headers: HeaderMap,
    body: Result<Json<NewBooking>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if !service.authorized(&headers) {
        return unauthorized();
    }
    let Ok(Json(new)) = body else {
        return reply(error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "expected {\"id\", \"amount\"?, \"currency\"?, \"status\"?}".into(),
        ));
    };
    let status = new.status.as_deref().unwrap_or("pending");
    if !STATUSES.contains(&status) {
        return reply(error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("status must be one of {}", STATUSES.join(", ")),
        ));
    }
    service.create(&new.id, new.amount, new.currency.as_deref(), status);
    let booking = service.booking(&new.id);
    reply((
        StatusCode::CREATED,
        json!({"success": true, "data": booking}),
    ))
}

async fn show(State(service): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if !service.authorized(&headers) {
        return unauthorized();
    }
    reply(match service.booking(&id) {
        Some(b) => (StatusCode::OK, json!({"success": true, "data": b})),
        None => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Booking not found".into(),
        ),
    })
}

async fn update_status(
    State(service): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<StatusUpdate>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let request_id = text("x-request-id");
    let answer = if !service.authorized(&headers) {
        error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "a Bearer token is required".into(),
        )
    } else {
        match &body {
            Ok(Json(update)) => service.update(&id, request_id.as_deref(), update),
            Err(e) => error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", e.body_text()),
        }
    };
    service.books().received.push(Received {
        booking_id: id.clone(),
        status: body.ok().and_then(|Json(u)| u.status),
        request_id,
        service_name: text("x-service-name"),
        answer: answer.0.as_u16(),
    });
    tracing::info!(booking_id = %id, answer = answer.0.as_u16(), "payment status update");
    reply(answer)
}

/// Serves the example booking service on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<BookingService>,
) -> std::io::Result<()> {
    axum::serve(listener, router(service)).await
}

/// `payhook example-booking-service`: binds `listen` and serves.
pub async fn run(
    listen: SocketAddr,
    token: Option<String>,
    create_unknown: bool,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "example booking service: http://{}  (bookings: booking-123, booking-456{})",
        listener.local_addr()?,
        if create_unknown {
            "; unknown ids are created"
        } else {
            ""
        }
    );
    serve(listener, BookingService::new(token, create_unknown)).await?;
    Ok(())
}
