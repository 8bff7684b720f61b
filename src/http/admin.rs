//! The admin API on the admin listener: what came in, what happened to it, what failed, and the
//! buttons to fix it (replay events, retry notifications). Everything needs
//! `Authorization: Bearer $PAYHOOK_ADMIN_TOKEN` when a token is set; without one the listener only
//! binds to loopback (checked at start-up).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::responses::{Invalid, ProviderFailed, StoreDown, Unauthorized};
use super::error::{ApiError, ErrorBody};
use crate::domain::delivery::CircuitState;
use crate::domain::money;
use crate::domain::state::Payment;
use crate::domain::status::{DeliveryStatus, EventStatus};
use crate::store::{Delivery, EventFilter, EventSummary, RetrySelection};

/// The admin routes, each described in the API document by its handler's annotation.
pub fn routes(state: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(replay_events))
        .routes(routes!(show_event))
        .routes(routes!(replay_event))
        .routes(routes!(list_payments))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_dead))
        .routes(routes!(retry_delivery))
        .routes(routes!(list_targets))
        .routes(routes!(reset_target))
        .routes(routes!(overview))
        .routes(routes!(reconcile))
        .routes(routes!(metrics))
        .layer(axum::middleware::from_fn_with_state(state, require_admin))
}

/// `GET /`: the dashboard, one self-contained page (no external resource) that reads the admin
/// API with the token the operator types (kept in the tab's session storage). The page holds no
/// data, so it is served without the token.
#[utoipa::path(
    get,
    path = "/",
    tag = "admin",
    responses((status = 200, description = "The dashboard page", content_type = "text/html", body = String))
)]
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

/// Counts by status: the dashboard's first screen.
#[derive(Serialize, ToSchema)]
pub struct Overview {
    /// Inbox events by status (received, processed, ignored, retrying, failed) and `total`.
    events: BTreeMap<String, i64>,
    /// Notifications by status (pending, delivered, dead).
    deliveries: BTreeMap<String, i64>,
    /// Payments by status.
    payments: BTreeMap<String, i64>,
    /// Targets whose circuit is not closed.
    open_circuits: usize,
    /// Webhooks stored by this instance in each of the last 30 minutes, oldest first.
    events_per_minute: Vec<MinuteCount>,
    /// How old the counts are, in seconds: 0 when counted for this answer; on a store of more
    /// than 200,000 events, the last count, renewed in the background.
    counts_age_seconds: f64,
}

#[derive(Serialize, ToSchema)]
pub struct MinuteCount {
    /// The minute's start, RFC 3339.
    minute: String,
    count: u64,
}

/// `GET /admin/api/overview`: the dashboard's first screen.
#[utoipa::path(
    get,
    path = "/admin/api/overview",
    tag = "admin",
    security(("admin_token" = [])),
    responses((status = 200, description = "Counts by status", body = Overview), Unauthorized, StoreDown)
)]
async fn overview(State(state): State<Arc<AppState>>) -> Result<Json<Overview>, ApiError> {
    let (depths, age) = state
        .depths
        .get(&state.store)
        .await
        .map_err(state.store_failed())?;
    let count =
        |rows: &[(String, i64)], s: &str| rows.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    let mut events: BTreeMap<String, i64> = EventStatus::ALL
        .iter()
        .map(|s| (s.to_string(), count(&depths.events, s.as_str())))
        .collect();
    events.insert("total".into(), depths.events.iter().map(|(_, n)| n).sum());
    let deliveries = DeliveryStatus::ALL
        .iter()
        .map(|s| {
            let n = depths
                .deliveries
                .iter()
                .filter(|(_, k, _)| k == s.as_str())
                .map(|(_, _, n)| n)
                .sum();
            (s.to_string(), n)
        })
        .collect();
    let payments = depths.payments.iter().cloned().collect();
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
    let events_per_minute = crate::metrics::stored_per_minute()
        .into_iter()
        .map(|(minute, count)| MinuteCount {
            minute: DateTime::from_timestamp(minute * 60, 0)
                .map(time)
                .unwrap_or_default(),
            count,
        })
        .collect();
    Ok(Json(Overview {
        events,
        deliveries,
        payments,
        open_circuits,
        events_per_minute,
        counts_age_seconds: age.as_secs_f64(),
    }))
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

    /// One of `allowed`, by the word the API uses for it.
    fn one_of<T: Copy + std::fmt::Display>(
        &self,
        name: &str,
        allowed: &[T],
    ) -> Result<Option<T>, ApiError> {
        let Some(v) = self.text(name) else {
            return Ok(None);
        };
        match allowed.iter().find(|a| a.to_string() == v) {
            Some(found) => Ok(Some(*found)),
            None => {
                let words: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
                Err(ApiError::validation(
                    name,
                    format!("{v:?} is not one of {}", words.join(", ")),
                ))
            }
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

    /// An RFC 3339 time, e.g. `2026-11-23T10:00:00Z`.
    fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.text(name)
            .map(|t| {
                DateTime::parse_from_rfc3339(&t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::validation(name, "an RFC 3339 time, e.g. 2026-11-23T10:00:00Z")
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

/// A page of a listing, newest first.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    data: Vec<T>,
    /// Pass it back as `cursor` for the next (older) page; null on the last page.
    next_cursor: Option<i64>,
}

/// A page of rows, and the cursor of the next page: the last row's id when the page is full,
/// none when it is the last.
fn page<S, T>(rows: &[S], to_row: fn(&S) -> T, id: fn(&S) -> i64, limit: i64) -> Json<Page<T>> {
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(id))
        .flatten();
    Json(Page {
        data: rows.iter().map(to_row).collect(),
        next_cursor,
    })
}

/// The parameters every listing takes.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct PageParams {
    /// Rows per page, 1 to 500 (50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<i64>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An inbox event, as listed.
#[derive(Serialize, ToSchema)]
pub struct EventRow {
    /// The event's number: `GET /admin/api/events/{id}`.
    id: i64,
    source: String,
    /// The provider's id (`evt_...`).
    event_id: String,
    #[serde(rename = "type")]
    event_type: String,
    status: EventStatus,
    attempts: i64,
    last_error: Option<String>,
    received_at: String,
    /// The booking its fact was applied to (none before it is applied, or when it names none).
    booking_id: Option<String>,
}

fn event_row(e: &EventSummary) -> EventRow {
    EventRow {
        id: e.id,
        source: e.source.clone(),
        event_id: e.event_id.clone(),
        event_type: e.event_type.clone(),
        status: e.status,
        attempts: e.attempts,
        last_error: e.last_error.clone(),
        received_at: time(e.received_at),
        booking_id: e.booking_id.clone(),
    }
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct EventQuery {
    /// `stripe` or a `[[sources]]` name.
    source: Option<String>,
    /// The event type, e.g. `payment_intent.succeeded`.
    #[param(rename = "type")]
    event_type: Option<String>,
    #[param(inline)]
    status: Option<EventStatus>,
    /// The provider's id (`evt_...`).
    event_id: Option<String>,
    /// Received at or after this time (RFC 3339).
    since: Option<String>,
    /// Received before this time (RFC 3339).
    until: Option<String>,
}

/// `GET /admin/api/events?source&type&status&event_id&since&until&limit&cursor`, newest first.
#[utoipa::path(
    get,
    path = "/admin/api/events",
    tag = "admin",
    params(EventQuery, PageParams),
    security(("admin_token" = [])),
    responses((status = 200, description = "A page of events", body = Page<EventRow>), Invalid, Unauthorized, StoreDown)
)]
async fn list_events(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
) -> Result<Json<Page<EventRow>>, ApiError> {
    let q = Listing(&params);
    let filter = EventFilter {
        status: q.one_of("status", &EventStatus::ALL)?,
        source: q.text("source"),
        event_type: q.text("type"),
        event_id: q.text("event_id"),
        since: q.time("since")?,
        until: q.time("until")?,
        before: q.cursor()?,
    };
    let limit = q.limit()?;
    let events = state
        .store
        .list_events(&filter, limit)
        .await
        .map_err(state.store_failed())?;
    Ok(page(&events, event_row, |e| e.id, limit))
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

/// One event with what it arrived with.
#[derive(Serialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    event: EventRow,
    /// The headers as stored: signatures and credentials redacted.
    headers: Value,
    /// The body as received (as text); empty once retention pruned it.
    body: String,
    /// When retention pruned the body and headers (the event was applied long before).
    pruned_at: Option<String>,
}

/// `GET /admin/api/events/{id}`: the event as received, its body byte for byte (as text) and its
/// headers as stored (signatures and credentials redacted).
#[utoipa::path(
    get,
    path = "/admin/api/events/{id}",
    tag = "admin",
    params(("id" = i64, Path, description = "The event's number")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The event", body = EventDetail),
        Invalid,
        Unauthorized,
        (status = 404, description = "No such event (`event_not_found`)", body = ErrorBody),
        StoreDown,
    )
)]
async fn show_event(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<EventDetail>, ApiError> {
    let id = event_number(&id)?;
    let e = state
        .store
        .event_by_id(id)
        .await
        .map_err(state.store_failed())?
        .ok_or_else(|| no_event(id))?;
    // The listing's row carries the booking the event's fact was applied to.
    let by_id = EventFilter {
        source: Some(e.source.clone()),
        event_id: Some(e.event_id.clone()),
        ..EventFilter::default()
    };
    let listed = state.store.list_events(&by_id, 1).await;
    let summary = listed.ok().and_then(|mut rows| rows.pop());
    Ok(Json(EventDetail {
        event: event_row(&summary.unwrap_or_else(|| e.summary())),
        headers: serde_json::from_str::<Value>(&e.headers).unwrap_or(Value::Null),
        body: String::from_utf8_lossy(&e.payload).into_owned(),
        pruned_at: e.pruned_at.map(time),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Requeued {
    id: i64,
    /// `received`: in line for the processor.
    status: &'static str,
}

/// `POST /admin/api/events/{id}/replay`: back in line for the processor.
#[utoipa::path(
    post,
    path = "/admin/api/events/{id}/replay",
    tag = "admin",
    params(("id" = i64, Path, description = "The event's number")),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "Back in line; the processor applies it again", body = Requeued),
        Invalid,
        Unauthorized,
        (status = 404, description = "No such event (`event_not_found`)", body = ErrorBody),
        (status = 409, description = "Retention pruned its payload: nothing left to apply (`event_pruned`)", body = ErrorBody),
        StoreDown,
    )
)]
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
        let known = state
            .store
            .event_by_id(id)
            .await
            .map_err(state.store_failed())?;
        return Err(match known {
            Some(e) if e.pruned_at.is_some() => ApiError::new(
                StatusCode::CONFLICT,
                "event_pruned",
                format!("event {id} was applied long ago and retention pruned its payload"),
            )
            .hint("its payment is in the ledger; retention.payloads sets how long payloads stay"),
            _ => no_event(id),
        });
    }
    state.processor_wake.notify_one();
    tracing::info!(id, "event requeued from the admin API");
    Ok(accepted(Requeued {
        id,
        status: "received",
    }))
}

fn accepted(body: impl Serialize) -> Response {
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

#[derive(Serialize, ToSchema)]
pub struct RequeuedCount {
    requeued: usize,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum ReplayableStatus {
    Failed,
    Retrying,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ReplayQuery {
    /// Which events: `failed` (default) or `retrying`.
    #[param(inline)]
    status: Option<ReplayableStatus>,
}

/// `POST /admin/api/events/replay?status=failed`: every event in that status (failed or
/// retrying) back in line.
#[utoipa::path(
    post,
    path = "/admin/api/events/replay",
    tag = "admin",
    params(ReplayQuery),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "Back in line", body = RequeuedCount),
        Invalid,
        Unauthorized,
        StoreDown,
    )
)]
async fn replay_events(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let status = Listing(&params)
        .one_of("status", &[EventStatus::Failed, EventStatus::Retrying])?
        .unwrap_or(EventStatus::Failed);
    let events = state
        .store
        .list_events(&EventFilter::status(status), i64::MAX)
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
    tracing::info!(
        requeued,
        status = status.as_str(),
        "events requeued from the admin API"
    );
    Ok(accepted(RequeuedCount { requeued }))
}

fn rfc3339(secs: Option<i64>) -> Option<String> {
    secs.and_then(|s| DateTime::from_timestamp(s, 0)).map(time)
}

/// A payment of the ledger. Amounts are integers in minor units of `currency`.
#[derive(Serialize, ToSchema)]
pub struct PaymentRow {
    id: i64,
    source: String,
    booking_id: Option<String>,
    status: &'static str,
    amount: Option<i64>,
    currency: Option<String>,
    amount_formatted: Option<String>,
    amount_refunded: i64,
    /// e.g. `5.00 EUR`.
    amount_refunded_formatted: Option<String>,
    /// What was captured, once paid (below `amount` after a partial capture).
    amount_captured: Option<i64>,
    /// What open or lost disputes hold back now.
    amount_disputed: i64,
    refunds: Vec<crate::domain::state::RefundView>,
    disputes: Vec<crate::domain::state::DisputeView>,
    /// What needs a person: `duplicate`, `refund_failed`, `booking_refused`.
    attention: Vec<crate::domain::state::Attention>,
    payment_intent_id: Option<String>,
    checkout_session_id: Option<String>,
    charge_id: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    dispute_status: Option<String>,
    paid_at: Option<String>,
    refunded_at: Option<String>,
    created_at: String,
    updated_at: String,
}

fn payment_row(p: &Payment) -> PaymentRow {
    let s = &p.state;
    PaymentRow {
        id: p.id,
        source: p.source.clone(),
        booking_id: s.booking_id.clone(),
        status: s.status.as_str(),
        amount: s.amount,
        currency: s.currency.clone(),
        amount_formatted: money::format_known(s.amount, s.currency.as_deref()),
        amount_refunded: s.amount_refunded,
        amount_refunded_formatted: money::format_known(
            Some(s.amount_refunded),
            s.currency.as_deref(),
        ),
        amount_captured: s.amount_captured,
        amount_disputed: s.amount_disputed,
        refunds: s.refunds.clone(),
        disputes: s.disputes.clone(),
        attention: s.attention.clone(),
        payment_intent_id: s.payment_intent_id.clone(),
        checkout_session_id: s.checkout_session_id.clone(),
        charge_id: s.charge_id.clone(),
        failure_code: s.failure_code.clone(),
        failure_message: s.failure_message.clone(),
        dispute_status: s.dispute_status.clone(),
        paid_at: rfc3339(s.paid_at),
        refunded_at: rfc3339(s.refunded_at),
        created_at: time(p.created_at),
        updated_at: time(p.updated_at),
    }
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct PaymentQuery {
    booking_id: Option<String>,
    #[param(inline)]
    status: Option<crate::domain::state::PaymentStatus>,
}

/// `GET /admin/api/payments?booking_id&status&limit&cursor`, newest first.
#[utoipa::path(
    get,
    path = "/admin/api/payments",
    tag = "admin",
    params(PaymentQuery, PageParams),
    security(("admin_token" = [])),
    responses((status = 200, description = "A page of payments", body = Page<PaymentRow>), Invalid, Unauthorized, StoreDown)
)]
async fn list_payments(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
) -> Result<Json<Page<PaymentRow>>, ApiError> {
    let q = Listing(&params);
    let statuses = crate::domain::state::PaymentStatus::ALL.map(|s| s.as_str());
    let status = q.one_of("status", &statuses)?;
    let limit = q.limit()?;
    let payments = state
        .store
        .list_payments(q.text("booking_id").as_deref(), status, q.cursor()?, limit)
        .await
        .map_err(state.store_failed())?;
    Ok(page(&payments, payment_row, |p| p.id, limit))
}

/// A notification to a target.
#[derive(Serialize, ToSchema)]
pub struct DeliveryRow {
    id: i64,
    /// `ntf_...`: sent as the request id; the same on every attempt.
    notification_id: String,
    target: String,
    booking_id: Option<String>,
    event: String,
    status: DeliveryStatus,
    attempts: i64,
    /// An attempt is under way.
    in_flight: bool,
    /// The HTTP status of the last answer.
    last_status: Option<i64>,
    last_error: Option<String>,
    next_attempt_at: Option<String>,
    created_at: String,
    delivered_at: Option<String>,
    /// The notification's body.
    payload: Value,
    /// The provider event whose application caused it: its source and id.
    source: Option<String>,
    source_event_id: Option<String>,
}

fn delivery_row(d: &Delivery) -> DeliveryRow {
    DeliveryRow {
        id: d.id,
        notification_id: d.notification_id.clone(),
        target: d.target.clone(),
        booking_id: d.booking_id.clone(),
        event: d.event.clone(),
        status: d.status,
        attempts: d.attempts,
        in_flight: d.in_flight,
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        next_attempt_at: DateTime::from_timestamp_millis(d.next_attempt_at).map(time),
        created_at: time(d.created_at),
        delivered_at: d.delivered_at.map(time),
        payload: serde_json::from_str::<Value>(&d.payload).unwrap_or(Value::Null),
        source: d.source.clone(),
        source_event_id: d.source_event_id.clone(),
    }
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct DeliveryQuery {
    target: Option<String>,
    #[param(inline)]
    status: Option<DeliveryStatus>,
}

/// `GET /admin/api/deliveries?target&status&limit&cursor`, newest first.
#[utoipa::path(
    get,
    path = "/admin/api/deliveries",
    tag = "admin",
    params(DeliveryQuery, PageParams),
    security(("admin_token" = [])),
    responses((status = 200, description = "A page of notifications", body = Page<DeliveryRow>), Invalid, Unauthorized, StoreDown)
)]
async fn list_deliveries(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
) -> Result<Json<Page<DeliveryRow>>, ApiError> {
    let q = Listing(&params);
    let status = q.one_of("status", &DeliveryStatus::ALL)?;
    let limit = q.limit()?;
    let rows = state
        .store
        .list_deliveries(q.text("target").as_deref(), status, q.cursor()?, limit)
        .await
        .map_err(state.store_failed())?;
    Ok(page(&rows, delivery_row, |d| d.id, limit))
}

#[derive(Serialize, ToSchema)]
pub struct Retried {
    /// The numbers of the notifications put back in line.
    retried: Vec<i64>,
}

/// `POST /admin/api/deliveries/{id}/retry` (a number or an `ntf_` id): sent again now, with a
/// fresh retry schedule.
#[utoipa::path(
    post,
    path = "/admin/api/deliveries/{id}/retry",
    tag = "admin",
    params(("id" = String, Path, description = "The notification's number or `ntf_` id")),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "Due now, with a fresh retry schedule", body = Retried),
        Unauthorized,
        (status = 404, description = "No pending or dead notification with this id (`delivery_not_found`)", body = ErrorBody),
        StoreDown,
    )
)]
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
    Ok(accepted(Retried { retried }))
}

#[derive(Serialize, ToSchema)]
pub struct RetriedCount {
    retried: usize,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct RetryQuery {
    /// Only this target's dead notifications.
    target: Option<String>,
}

/// `POST /admin/api/deliveries/retry?target=NAME`: every dead notification (of that target) again.
#[utoipa::path(
    post,
    path = "/admin/api/deliveries/retry",
    tag = "admin",
    params(RetryQuery),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "Every dead notification due now", body = RetriedCount),
        Invalid,
        Unauthorized,
        StoreDown,
    )
)]
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
    Ok(accepted(RetriedCount {
        retried: retried.len(),
    }))
}

/// A target and its circuit.
#[derive(Serialize, ToSchema)]
pub struct TargetRow {
    name: String,
    /// booking-status or events.
    kind: &'static str,
    url: String,
    /// closed, open, disabled.
    circuit: &'static str,
    failures: u32,
    /// Until when an open circuit sends nothing.
    open_until: Option<String>,
    reason: Option<String>,
    /// The events an `events` target receives; empty: all.
    events: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TargetList {
    data: Vec<TargetRow>,
}

/// `GET /admin/api/targets`: each target and its circuit.
#[utoipa::path(
    get,
    path = "/admin/api/targets",
    tag = "admin",
    security(("admin_token" = [])),
    responses((status = 200, description = "The configured targets", body = TargetList), Unauthorized, StoreDown)
)]
async fn list_targets(State(state): State<Arc<AppState>>) -> Result<Json<TargetList>, ApiError> {
    let mut data = Vec::new();
    for t in state.targets.iter() {
        let circuit = state
            .store
            .circuit(&t.name)
            .await
            .map_err(state.store_failed())?;
        let open_until = match circuit.state {
            CircuitState::Open { until, .. } => DateTime::from_timestamp_millis(until).map(time),
            CircuitState::Closed | CircuitState::Disabled => None,
        };
        data.push(TargetRow {
            name: t.name.clone(),
            kind: t.kind.as_str(),
            url: t.url.clone(),
            circuit: circuit.state.as_str(),
            failures: circuit.failures,
            open_until,
            reason: circuit.reason,
            events: t.events.clone(),
        });
    }
    Ok(Json(TargetList { data }))
}

#[derive(Serialize, ToSchema)]
pub struct TargetReset {
    name: String,
    /// closed, open or disabled.
    circuit_was: &'static str,
    /// `closed`.
    circuit: &'static str,
}

/// `POST /admin/api/targets/{name}/reset`: closes the target's circuit (re-enables a target a
/// 410 disabled), and wakes the dispatcher.
#[utoipa::path(
    post,
    path = "/admin/api/targets/{name}/reset",
    tag = "admin",
    params(("name" = String, Path, description = "A configured target's name")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The circuit is closed", body = TargetReset),
        Unauthorized,
        (status = 404, description = "No target has this name (`target_not_found`)", body = ErrorBody),
        StoreDown,
    )
)]
async fn reset_target(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<TargetReset>, ApiError> {
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
    Ok(Json(TargetReset {
        name,
        circuit_was: before.state.as_str(),
        circuit: "closed",
    }))
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ReconcileQuery {
    /// Events created at or after this time (unix seconds).
    #[param(minimum = 0)]
    since: i64,
    /// Only events of this type.
    #[param(rename = "type")]
    event_type: Option<String>,
    /// The `next_starting_after` of the previous page.
    starting_after: Option<String>,
}

/// What one page of reconciliation did.
#[derive(Serialize, ToSchema)]
pub struct ReconcilePage {
    /// Events the provider listed on this page.
    listed: usize,
    /// Missing here, now stored (and applied by the processor).
    stored: usize,
    /// Already here.
    duplicates: usize,
    /// Listed events the inbox could not read, with why.
    refused: Vec<String>,
    /// Pass it back as `starting_after` for the next page; null after the last.
    next_starting_after: Option<String>,
}

/// `POST /admin/api/reconcile?since&type&starting_after`: one page (up to 100) of the events
/// Stripe's API lists from `since`, the ones the inbox lacks stored through it. Page after page
/// with `starting_after`; `payhook reconcile` does that and shows the progress.
#[utoipa::path(
    post,
    path = "/admin/api/reconcile",
    tag = "admin",
    params(ReconcileQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "One page reconciled", body = ReconcilePage),
        Invalid,
        Unauthorized,
        (status = 409, description = "payhook uses the sandbox provider: there is no provider API to ask (`reconcile_unavailable`)", body = ErrorBody),
        ProviderFailed,
        StoreDown,
    )
)]
async fn reconcile(
    State(state): State<Arc<AppState>>,
    Query(params): Params,
) -> Result<Json<ReconcilePage>, ApiError> {
    let q = Listing(&params);
    let since = match q.text("since").map(|s| s.parse::<i64>()) {
        Some(Ok(s)) if s >= 0 => s,
        _ => {
            return Err(ApiError::validation(
                "since",
                "is required: a unix time in seconds",
            ));
        }
    };
    let crate::checkout::Provider::Stripe(api) = &*state.provider else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "reconcile_unavailable",
            "payhook uses the sandbox provider: there is no provider API to reconcile with",
        )
        .hint("set STRIPE_SECRET_KEY (and STRIPE_API_BASE for a Stripe emulator)"));
    };
    let done = crate::reconcile::page(
        api,
        &state.inbox,
        since,
        q.text("type").as_deref(),
        q.text("starting_after").as_deref(),
    )
    .await
    .map_err(|e| match e {
        crate::reconcile::ReconcileError::Provider(e) => {
            ApiError::from_provider(e, state.retry_after_secs)
        }
        crate::reconcile::ReconcileError::Store(e) => (state.store_failed())(e),
    })?;
    if done.stored > 0 {
        state.processor_wake.notify_one();
    }
    tracing::info!(
        listed = done.listed,
        stored = done.stored,
        "reconcile page from the admin API"
    );
    Ok(Json(ReconcilePage {
        listed: done.listed,
        stored: done.stored,
        duplicates: done.duplicates,
        refused: done.refused,
        next_starting_after: done.next,
    }))
}

/// `GET /metrics`: Prometheus' text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Prometheus' text format", content_type = "text/plain", body = String),
        Unauthorized,
        StoreDown,
    )
)]
async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let text = crate::metrics::render(&state.store, &state.depths, &state.targets)
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
