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
    /// Received at or after this time: RFC 3339, or a duration before now (`2h`, `30m`, `7d`).
    #[param(value_type = Option<String>)]
    #[serde(deserialize_with = "super::jobs::moment")]
    since: Option<DateTime<Utc>>,
    /// Received before this time: RFC 3339, or a duration before now.
    #[param(value_type = Option<String>)]
    #[serde(deserialize_with = "super::jobs::moment")]
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
    /// The event's number (the `id` column of the listing) or its provider id (`evt_...`)
    #[serde(deserialize_with = "super::jobs::text")]
    id: String,
}

/// Which source's provider id the path names.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventSourceQuery {
    /// The source of a provider id, needed when two sources hold that id.
    #[serde(default, deserialize_with = "super::jobs::optional_text")]
    source: Option<String>,
}

fn no_event(key: &str, source: Option<&str>) -> ApiError {
    let from = source
        .map(|s| format!(" from source {s:?}"))
        .unwrap_or_default();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "event_not_found",
        format!("no event {key:?}{from}"),
    )
}

/// An event by payhook's number or the provider's id. With a source, `key` is that source's
/// provider id (or the number of one of its events); without one, a number is payhook's and
/// anything else is looked for in every source: two sources holding it is a 409 naming them.
pub(super) async fn find_event(
    state: &AppState,
    key: &str,
    source: Option<&str>,
) -> Result<crate::store::StoredEvent, ApiError> {
    let number = key.parse::<i64>().ok();
    if let Some(source) = source {
        if let Some(e) = state.store.event(source, key).await? {
            return Ok(e);
        }
        if let Some(n) = number
            && let Some(e) = state.store.event_by_id(n).await?
            && e.source == source
        {
            return Ok(e);
        }
        return Err(no_event(key, Some(source)));
    }
    if let Some(n) = number
        && let Some(e) = state.store.event_by_id(n).await?
    {
        return Ok(e);
    }
    let by_id = EventFilter {
        event_id: Some(key.to_string()),
        ..EventFilter::default()
    };
    let found = state.store.list_events(&by_id, 10).await?;
    match found.as_slice() {
        [] => Err(no_event(key, None)),
        [one] => state
            .store
            .event_by_id(one.id)
            .await?
            .ok_or_else(|| no_event(key, None)),
        several => {
            let sources: Vec<&str> = several.iter().map(|e| e.source.as_str()).collect();
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "event_ambiguous",
                format!("sources {} each hold an event {key:?}", sources.join(", ")),
            )
            .hint("say which with ?source=NAME"))
        }
    }
}

/// `GET /admin/api/events/{id}`: the event as received, its body byte for byte (as text) and its
/// headers as stored (signatures and credentials redacted).
#[utoipa::path(
    get,
    path = "/admin/api/events/{id}",
    tag = "admin",
    params(EventPath, EventSourceQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The event", body = EventDetail),
        Invalid,
        Unauthorized,
        (status = 404, description = "No such event (`event_not_found`)", body = ErrorBody),
        (status = 409, description = "Several sources hold this provider id (`event_ambiguous`): add `?source=`", body = ErrorBody),
        StoreDown,
    )
)]
pub(super) async fn show_event(
    State(state): State<Arc<AppState>>,
    ValidPath(EventPath { id }): ValidPath<EventPath>,
    ValidQuery(EventSourceQuery { source }): ValidQuery<EventSourceQuery>,
) -> Result<Json<EventDetail>, ApiError> {
    let e = find_event(&state, &id, source.as_deref()).await?;
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
    params(EventPath, EventSourceQuery),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "Back in line; the processor applies it again", body = Requeued),
        Invalid,
        Unauthorized,
        (status = 404, description = "No such event (`event_not_found`)", body = ErrorBody),
        (status = 409, description = "Retention pruned its payload: nothing left to apply (`event_pruned`); or several sources hold this provider id (`event_ambiguous`): add `?source=`", body = ErrorBody),
        StoreDown,
    )
)]
pub(super) async fn replay_event(
    State(state): State<Arc<AppState>>,
    ValidPath(EventPath { id: key }): ValidPath<EventPath>,
    ValidQuery(EventSourceQuery { source }): ValidQuery<EventSourceQuery>,
) -> Result<Response, ApiError> {
    let e = find_event(&state, &key, source.as_deref()).await?;
    let id = e.id;
    if !state.store.requeue_event(id).await? {
        return Err(if e.pruned_at.is_some() {
            ApiError::new(
                StatusCode::CONFLICT,
                "event_pruned",
                format!("event {id} was applied long ago and retention pruned its payload"),
            )
            .hint("its payment is in the ledger; retention.payloads sets how long payloads stay")
        } else {
            no_event(&key, source.as_deref())
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
    /// Applied: its fact is kept once, so a replay changes nothing unless the ledger's rules did.
    Processed,
    /// Of a type payhook did not act on when it arrived.
    Ignored,
}

impl From<ReplayableStatus> for EventStatus {
    fn from(s: ReplayableStatus) -> EventStatus {
        match s {
            ReplayableStatus::Failed => EventStatus::Failed,
            ReplayableStatus::Retrying => EventStatus::Retrying,
            ReplayableStatus::Rejected => EventStatus::Rejected,
            ReplayableStatus::Processed => EventStatus::Processed,
            ReplayableStatus::Ignored => EventStatus::Ignored,
        }
    }
}

impl Word for ReplayableStatus {
    const WHAT: &'static str = "replayable status";
    const ALL: &'static [ReplayableStatus] = &[
        ReplayableStatus::Failed,
        ReplayableStatus::Retrying,
        ReplayableStatus::Rejected,
        ReplayableStatus::Processed,
        ReplayableStatus::Ignored,
    ];

    fn as_str(self) -> &'static str {
        EventStatus::from(self).as_str()
    }
}

/// The events a bulk replay selects; each filter that is set must match.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ReplayQuery {
    /// Which events: `failed` (default), `retrying`, `rejected`, `processed` or `ignored`.
    #[param(inline)]
    #[serde(deserialize_with = "one_of")]
    status: Option<ReplayableStatus>,
    /// `stripe` or a `[[sources]]` name.
    #[serde(deserialize_with = "super::jobs::optional_text")]
    source: Option<String>,
    /// The event type, e.g. `payment_intent.succeeded`.
    #[serde(rename = "type", deserialize_with = "super::jobs::optional_text")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Events whose fact belongs to a payment of this booking (an event that never applied
    /// belongs to none).
    #[serde(deserialize_with = "super::jobs::optional_text")]
    booking: Option<String>,
    /// Received at or after: an RFC 3339 time, or a duration before now (`2h`, `30m`, `7d`).
    #[param(value_type = Option<String>)]
    #[serde(deserialize_with = "super::jobs::moment")]
    since: Option<DateTime<Utc>>,
    /// Received before: an RFC 3339 time, or a duration before now.
    #[param(value_type = Option<String>)]
    #[serde(deserialize_with = "super::jobs::moment")]
    until: Option<DateTime<Utc>>,
    /// `true`: change nothing; answer how many events would be replayed and the first of them.
    #[param(value_type = Option<bool>)]
    #[serde(deserialize_with = "super::jobs::flag")]
    dry_run: bool,
    /// Events a dry run shows, 0 to 500 (20).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 500)]
    #[serde(deserialize_with = "super::jobs::sample")]
    sample: i64,
}

/// `POST /admin/api/events/replay?status&source&type&booking&since&until`: the selected events
/// back in line, in the background (a job, answered at once); with `dry_run=true`, what would
/// be replayed.
#[utoipa::path(
    post,
    path = "/admin/api/events/replay",
    tag = "admin",
    params(ReplayQuery),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "A job replays them in the background: `GET /admin/api/jobs/{id}`", body = Job),
        (status = 200, description = "A dry run: how many would be replayed, and the first of them", body = DryRun<EventRow>),
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
    let selection = EventSelection {
        status,
        source: q.source,
        event_type: q.event_type,
        booking: q.booking,
        since: q.since,
        until: q.until,
    };
    let shown = JobSelection {
        status: status.as_str().into(),
        source: selection.source.clone(),
        event_type: selection.event_type.clone(),
        booking: selection.booking.clone(),
        since: selection.since.map(time),
        until: selection.until.map(time),
        ..JobSelection::default()
    };
    let wake = state.processor_wake.clone();
    let sample = async |upto| {
        let rows = state
            .store
            .selected_events(&selection, upto, q.sample)
            .await?;
        Ok(rows.iter().map(EventRow::from).collect())
    };
    let whole = Selection::Events(selection.clone());
    let wake: crate::bulk::Wake = Box::new(move || wake.notify_one());
    super::jobs::dry_run_or_start(
        &state,
        whole,
        shown,
        q.dry_run,
        sample,
        JobKind::ReplayEvents,
        wake,
    )
    .await
}
