//! The admin API on the admin listener: what came in, what happened to it, what failed, and the
//! buttons to fix it (replay events, retry notifications). Everything needs
//! `Authorization: Bearer $PAYHOOK_ADMIN_TOKEN` when a token is set; without one the listener only
//! binds to loopback (checked at start-up).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use crate::ledger::money;
use crate::notify::policy::CircuitState;
use crate::store::{Delivery, EventFilter, EventSummary, Payment, RetrySelection};

const EVENT_STATUSES: &[&str] = &["received", "processed", "ignored", "retrying", "failed"];
const DELIVERY_STATUSES: &[&str] = &["pending", "delivered", "dead"];
const PAYMENT_STATUSES: &[&str] = &[
    "pending",
    "processing",
    "succeeded",
    "failed",
    "canceled",
    "expired",
    "partially_refunded",
    "refunded",
    "disputed",
];

pub fn routes(state: Arc<AppState>) -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/admin/api/events", get(list_events))
        .route("/admin/api/events/replay", post(replay_events))
        .route("/admin/api/events/{id}", get(show_event))
        .route("/admin/api/events/{id}/replay", post(replay_event))
        .route("/admin/api/payments", get(list_payments))
        .route("/admin/api/deliveries", get(list_deliveries))
        .route("/admin/api/deliveries/retry", post(retry_dead))
        .route("/admin/api/deliveries/{id}/retry", post(retry_delivery))
        .route("/admin/api/targets", get(list_targets))
        .route("/admin/api/targets/{name}/reset", post(reset_target))
        .route("/admin/api/overview", get(overview))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(state, require_admin))
}

/// `GET /`: the dashboard, one self-contained page (no external resource) that reads the admin
/// API with the token the operator types (kept in the tab's session storage). The page holds no
/// data, so it is served without the token.
pub async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
            ),
        ],
        include_str!("../../assets/dashboard.html"),
    )
        .into_response()
}

/// `GET /admin/api/overview`: the dashboard's first screen.
async fn overview(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let depths = state.store.depths().await.map_err(state.store_failed())?;
    let mut events = serde_json::Map::new();
    let mut total = 0;
    for s in EVENT_STATUSES {
        let n = depths
            .events
            .iter()
            .find(|(k, _)| k == s)
            .map_or(0, |(_, n)| *n);
        total += n;
        events.insert(s.to_string(), json!(n));
    }
    events.insert("total".into(), json!(total));
    let mut deliveries = serde_json::Map::new();
    for s in DELIVERY_STATUSES {
        let n: i64 = depths
            .deliveries
            .iter()
            .filter(|(_, k, _)| k == s)
            .map(|(_, _, n)| n)
            .sum();
        deliveries.insert(s.to_string(), json!(n));
    }
    let payments: serde_json::Map<String, Value> = depths
        .payments
        .iter()
        .map(|(k, n)| (k.clone(), json!(n)))
        .collect();
    let mut open_circuits = 0;
    for t in state.targets.iter() {
        let circuit = state
            .store
            .circuit(&t.name)
            .await
            .map_err(state.store_failed())?;
        if circuit.state != CircuitState::Closed {
            open_circuits += 1;
        }
    }
    Ok(Json(json!({
        "events": events, "deliveries": deliveries, "payments": payments,
        "open_circuits": open_circuits,
    })))
}

/// `Authorization: Bearer $PAYHOOK_ADMIN_TOKEN`, compared in constant time, when a token is set.
async fn require_admin(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.admin_token
        && !super::bearer(&headers).is_some_and(|p| super::is_token(p, token))
    {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin API needs Authorization: Bearer <PAYHOOK_ADMIN_TOKEN>",
        )
        .into_response();
    }
    next.run(request).await
}

type Params = Query<HashMap<String, String>>;

/// The query parameters of a listing: each checked, each refusal naming its parameter.
struct Listing<'a>(&'a HashMap<String, String>);

impl Listing<'_> {
    fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
        match self.text(name) {
            Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::validation(
                name,
                format!("{v:?} is not one of {}", allowed.join(", ")),
            )),
            other => Ok(other),
        }
    }

    fn cursor(&self) -> Result<Option<i64>, ApiError> {
        self.text("cursor")
            .map(|c| {
                c.parse::<i64>().map_err(|_| {
                    ApiError::validation("cursor", "is the next_cursor of a previous page")
                })
            })
            .transpose()
    }

    fn limit(&self) -> Result<i64, ApiError> {
        match self.text("limit") {
            None => Ok(50),
            Some(l) => match l.parse::<i64>() {
                Ok(n) if (1..=500).contains(&n) => Ok(n),
                _ => Err(ApiError::validation("limit", "a number from 1 to 500")),
            },
        }
    }
}

/// A page of rows as JSON, and the cursor of the next page: the last row's id when the page is
/// full, none when it is the last.
fn page<T>(rows: &[T], to_json: fn(&T) -> Value, id: fn(&T) -> i64, limit: i64) -> Json<Value> {
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(id))
        .flatten();
    let data: Vec<Value> = rows.iter().map(to_json).collect();
    Json(json!({ "data": data, "next_cursor": next }))
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn event_json(e: &EventSummary) -> Value {
    json!({
        "id": e.id, "source": e.source, "event_id": e.event_id, "type": e.event_type,
        "status": e.status, "attempts": e.attempts, "last_error": e.last_error,
        "received_at": time(e.received_at),
    })
}

/// `GET /admin/api/events?source&type&status&limit&cursor`, newest first.
async fn list_events(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let q = Listing(&params);
    let filter = EventFilter {
        status: q.one_of("status", EVENT_STATUSES)?,
        source: q.text("source"),
        event_type: q.text("type"),
        event_id: q.text("event_id"),
        before: q.cursor()?,
    };
    let limit = q.limit()?;
    let events = state
        .store
        .list_events(&filter, limit)
        .await
        .map_err(state.store_failed())?;
    Ok(page(&events, event_json, |e| e.id, limit))
}

fn event_number(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::validation("id", "an event's number (the id column of the listing)"))
}

fn no_event(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "event_not_found",
        format!("no event number {id}"),
    )
}

/// `GET /admin/api/events/{id}`: the event as received, its body byte for byte (as text) and its
/// headers as stored (signatures and credentials redacted).
async fn show_event(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = event_number(&id)?;
    let e = state
        .store
        .event_by_id(id)
        .await
        .map_err(state.store_failed())?
        .ok_or_else(|| no_event(id))?;
    Ok(Json(json!({
        "id": e.id, "source": e.source, "event_id": e.event_id, "type": e.event_type,
        "status": e.status, "attempts": e.attempts, "last_error": e.last_error,
        "received_at": time(e.received_at),
        "headers": serde_json::from_str::<Value>(&e.headers).unwrap_or(Value::Null),
        "body": String::from_utf8_lossy(&e.payload),
    })))
}

/// `POST /admin/api/events/{id}/replay`: back in line for the processor.
async fn replay_event(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = event_number(&id)?;
    if !state
        .store
        .requeue_event(id)
        .await
        .map_err(state.store_failed())?
    {
        return Err(no_event(id));
    }
    state.processor_wake.notify_one();
    tracing::info!(id, "event requeued from the admin API");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "status": "received" })),
    )
        .into_response())
}

/// `POST /admin/api/events/replay?status=failed`: every event in that status (failed or
/// retrying) back in line.
async fn replay_events(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let status = Listing(&params)
        .one_of("status", &["failed", "retrying"])?
        .unwrap_or_else(|| "failed".into());
    let events = state
        .store
        .list_events(&EventFilter::status(&status), i64::MAX)
        .await
        .map_err(state.store_failed())?;
    let mut requeued = 0;
    for e in &events {
        if state
            .store
            .requeue_event(e.id)
            .await
            .map_err(state.store_failed())?
        {
            requeued += 1;
        }
    }
    state.processor_wake.notify_one();
    tracing::info!(requeued, status, "events requeued from the admin API");
    Ok((StatusCode::ACCEPTED, Json(json!({ "requeued": requeued }))).into_response())
}

fn rfc3339(secs: Option<i64>) -> Option<String> {
    secs.and_then(|s| DateTime::from_timestamp(s, 0)).map(time)
}

fn payment_json(p: &Payment) -> Value {
    let s = &p.state;
    json!({
        "id": p.id, "source": p.source, "booking_id": s.booking_id, "status": s.status.as_str(),
        "amount": s.amount, "currency": s.currency, "amount_formatted": money::format_known(s.amount, s.currency.as_deref()),
        "amount_refunded": s.amount_refunded, "payment_intent_id": s.payment_intent_id,
        "checkout_session_id": s.checkout_session_id, "charge_id": s.charge_id,
        "failure_code": s.failure_code, "failure_message": s.failure_message,
        "dispute_status": s.dispute_status, "paid_at": rfc3339(s.paid_at),
        "refunded_at": rfc3339(s.refunded_at), "created_at": time(p.created_at),
        "updated_at": time(p.updated_at),
    })
}

/// `GET /admin/api/payments?booking_id&status&limit&cursor`, newest first.
async fn list_payments(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let q = Listing(&params);
    let status = q.one_of("status", PAYMENT_STATUSES)?;
    let limit = q.limit()?;
    let payments = state
        .store
        .list_payments(
            q.text("booking_id").as_deref(),
            status.as_deref(),
            q.cursor()?,
            limit,
        )
        .await
        .map_err(state.store_failed())?;
    Ok(page(&payments, payment_json, |p| p.id, limit))
}

fn delivery_json(d: &Delivery) -> Value {
    json!({
        "id": d.id, "notification_id": d.notification_id, "target": d.target,
        "booking_id": d.booking_id, "event": d.event, "status": d.status,
        "attempts": d.attempts, "in_flight": d.in_flight, "last_status": d.last_status,
        "last_error": d.last_error,
        "next_attempt_at": DateTime::from_timestamp_millis(d.next_attempt_at).map(time),
        "created_at": time(d.created_at), "delivered_at": d.delivered_at.map(time),
        "payload": serde_json::from_str::<Value>(&d.payload).unwrap_or(Value::Null),
    })
}

/// `GET /admin/api/deliveries?target&status&limit&cursor`, newest first.
async fn list_deliveries(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
) -> Result<Json<Value>, ApiError> {
    let q = Listing(&params);
    let status = q.one_of("status", DELIVERY_STATUSES)?;
    let limit = q.limit()?;
    let rows = state
        .store
        .list_deliveries(
            q.text("target").as_deref(),
            status.as_deref(),
            q.cursor()?,
            limit,
        )
        .await
        .map_err(state.store_failed())?;
    Ok(page(&rows, delivery_json, |d| d.id, limit))
}

/// `POST /admin/api/deliveries/{id}/retry` (a number or an `ntf_` id): sent again now, with a
/// fresh retry schedule.
async fn retry_delivery(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ids = [id.clone()];
    let retried = state
        .store
        .retry_deliveries(RetrySelection::Ids(&ids), Utc::now().timestamp_millis())
        .await
        .map_err(state.store_failed())?;
    if retried.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "delivery_not_found",
            format!("no pending or dead notification {id:?}"),
        ));
    }
    state.dispatch.notify();
    Ok((StatusCode::ACCEPTED, Json(json!({ "retried": retried }))).into_response())
}

/// `POST /admin/api/deliveries/retry?target=NAME`: every dead notification (of that target) again.
async fn retry_dead(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let target = Listing(&params).text("target");
    if let Some(t) = &target
        && !state.targets.iter().any(|c| &c.name == t)
    {
        return Err(ApiError::validation(
            "target",
            format!("{t:?} is not a configured target"),
        ));
    }
    let retried = state
        .store
        .retry_deliveries(
            RetrySelection::Dead {
                target: target.as_deref(),
            },
            Utc::now().timestamp_millis(),
        )
        .await
        .map_err(state.store_failed())?;
    state.dispatch.notify();
    tracing::info!(
        retried = retried.len(),
        "dead notifications retried from the admin API"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "retried": retried.len() })),
    )
        .into_response())
}

/// `GET /admin/api/targets`: each target and its circuit.
async fn list_targets(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let mut data = Vec::new();
    for t in state.targets.iter() {
        let circuit = state
            .store
            .circuit(&t.name)
            .await
            .map_err(state.store_failed())?;
        let (circuit_state, open_until) = match circuit.state {
            CircuitState::Closed => ("closed", None),
            CircuitState::Open { until, .. } => {
                ("open", DateTime::from_timestamp_millis(until).map(time))
            }
            CircuitState::Disabled => ("disabled", None),
        };
        data.push(json!({
            "name": t.name, "kind": t.kind.as_str(), "url": t.url, "circuit": circuit_state,
            "failures": circuit.failures, "open_until": open_until, "reason": circuit.reason,
            "events": t.events,
        }));
    }
    Ok(Json(json!({ "data": data })))
}

/// `POST /admin/api/targets/{name}/reset`: closes the target's circuit (re-enables a target a
/// 410 disabled), and wakes the dispatcher.
async fn reset_target(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !state.targets.iter().any(|t| t.name == name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "target_not_found",
            format!("{name:?} is not a configured target"),
        ));
    }
    let before = state
        .store
        .circuit(&name)
        .await
        .map_err(state.store_failed())?;
    state
        .store
        .reset_circuit(&name)
        .await
        .map_err(state.store_failed())?;
    state.dispatch.notify();
    tracing::info!(target = %name, "circuit closed from the admin API");
    Ok(Json(
        json!({ "name": name, "circuit_was": before.state.as_str(), "circuit": "closed" }),
    ))
}

/// `GET /metrics`: Prometheus' text format.
async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let text = crate::metrics::render(&state.store, &state.targets)
        .await
        .map_err(state.store_failed())?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
