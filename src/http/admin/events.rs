//! Inbox events: listed, shown as received, replayed one by one or in bulk.

use super::*;

/// The filters of the event listing; each absent one lets every event through.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventQuery {
    /// `stripe` or a `[[sources]]` name.
    source: Option<String>,
    /// The event type, e.g. `payment_intent.succeeded`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    #[param(inline)]
    #[serde(deserialize_with = "one_of")]
    status: Option<EventStatus>,
    /// The provider's id (`evt_...`).
    event_id: Option<String>,
    /// Received at or after this time (RFC 3339).
    #[param(value_type = Option<String>)]
    #[serde(deserialize_with = "rfc3339")]
    since: Option<DateTime<Utc>>,
    /// Received before this time (RFC 3339).
    #[param(value_type = Option<String>)]
    #[serde(deserialize_with = "rfc3339")]
    until: Option<DateTime<Utc>>,
}

/// `GET /admin/api/events?source&type&status&event_id&since&until&limit&cursor`, newest first.
#[utoipa::path(
    get,
    path = "/admin/api/events",
    tag = "admin",
    params(EventQuery, PageQuery),
    security(("admin_token" = [])),
    responses((status = 200, description = "A page of events", body = Page<EventRow>), Invalid, Unauthorized, StoreDown)
)]
pub(super) async fn list_events(
    State(state): State<Arc<AppState>>,
    ValidQuery(q): ValidQuery<EventQuery>,
    ValidQuery(p): ValidQuery<PageQuery>,
) -> Result<Json<Page<EventRow>>, ApiError> {
    let filter = EventFilter {
        status: q.status,
        source: q.source,
        event_type: q.event_type,
        event_id: q.event_id,
        since: q.since,
        until: q.until,
        before: p.cursor,
    };
    let events = state.store.list_events(&filter, p.limit).await?;
    Ok(page(&events, |e| e.id, p.limit))
}

/// The path of one event's routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct EventPath {
    /// The event's number
    #[param(value_type = i64)]
    #[serde(deserialize_with = "event_number")]
    id: i64,
}

fn event_number<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(|_| de::Error::custom("an event's number (the id column of the listing)"))
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
#[utoipa::path(
    get,
    path = "/admin/api/events/{id}",
    tag = "admin",
    params(EventPath),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The event", body = EventDetail),
        Invalid,
        Unauthorized,
        (status = 404, description = "No such event (`event_not_found`)", body = ErrorBody),
        StoreDown,
    )
)]
pub(super) async fn show_event(
    State(state): State<Arc<AppState>>,
    ValidPath(EventPath { id }): ValidPath<EventPath>,
) -> Result<Json<EventDetail>, ApiError> {
    let e = state
        .store
        .event_by_id(id)
        .await?
        .ok_or_else(|| no_event(id))?;
    // The listing's row carries the booking the event's fact was applied to.
    let by_id = EventFilter {
        source: Some(e.source.clone()),
        event_id: Some(e.event_id.clone()),
        ..EventFilter::default()
    };
    let listed = state.store.list_events(&by_id, 1).await;
    let summary = listed.ok().and_then(|mut rows| rows.pop());
    let row = EventRow::from(&summary.unwrap_or_else(|| e.summary()));
    Ok(Json(EventDetail::new(row, &e)))
}

/// `POST /admin/api/events/{id}/replay`: back in line for the processor.
#[utoipa::path(
    post,
    path = "/admin/api/events/{id}/replay",
    tag = "admin",
    params(EventPath),
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
pub(super) async fn replay_event(
    State(state): State<Arc<AppState>>,
    ValidPath(EventPath { id }): ValidPath<EventPath>,
) -> Result<Response, ApiError> {
    if !state.store.requeue_event(id).await? {
        let known = state.store.event_by_id(id).await?;
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
        status: EventStatus::Received,
    }))
}

/// The statuses whose events a bulk replay puts back in line.
#[derive(Clone, Copy, ToSchema)]
#[schema(rename_all = "lowercase")]
enum ReplayableStatus {
    Failed,
    Retrying,
    /// Denied by the provider's API: a replay asks it again.
    Rejected,
}

impl From<ReplayableStatus> for EventStatus {
    fn from(s: ReplayableStatus) -> EventStatus {
        match s {
            ReplayableStatus::Failed => EventStatus::Failed,
            ReplayableStatus::Retrying => EventStatus::Retrying,
            ReplayableStatus::Rejected => EventStatus::Rejected,
        }
    }
}

impl Word for ReplayableStatus {
    const WHAT: &'static str = "replayable status";
    const ALL: &'static [ReplayableStatus] = &[
        ReplayableStatus::Failed,
        ReplayableStatus::Retrying,
        ReplayableStatus::Rejected,
    ];

    fn as_str(self) -> &'static str {
        EventStatus::from(self).as_str()
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ReplayQuery {
    /// Which events: `failed` (default), `retrying` or `rejected`.
    #[param(inline)]
    #[serde(deserialize_with = "one_of")]
    status: Option<ReplayableStatus>,
}

/// `POST /admin/api/events/replay?status=failed`: every event in that status (failed, retrying
/// or rejected) back in line.
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
pub(super) async fn replay_events(
    State(state): State<Arc<AppState>>,
    ValidQuery(q): ValidQuery<ReplayQuery>,
) -> Result<Response, ApiError> {
    let status = q.status.map_or(EventStatus::Failed, EventStatus::from);
    let events = state
        .store
        .list_events(&EventFilter::status(status), i64::MAX)
        .await?;
    let mut requeued = 0;
    for e in &events {
        if state.store.requeue_event(e.id).await? {
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
