//! Notifications to targets: listed, retried one by one or every dead one.

use super::*;

/// The filters of the notification listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeliveryQuery {
    target: Option<String>,
    #[param(inline)]
    #[serde(deserialize_with = "one_of")]
    status: Option<DeliveryStatus>,
}

/// `GET /admin/api/deliveries?target&status&limit&cursor`, newest first.
#[utoipa::path(
    get,
    path = "/admin/api/deliveries",
    tag = "admin",
    params(DeliveryQuery, PageQuery),
    security(("admin_token" = [])),
    responses((status = 200, description = "A page of notifications", body = Page<DeliveryRow>), Invalid, Unauthorized, StoreDown)
)]
pub(super) async fn list_deliveries(
    State(state): State<Arc<AppState>>,
    ValidQuery(q): ValidQuery<DeliveryQuery>,
    ValidQuery(p): ValidQuery<PageQuery>,
) -> Result<Json<Page<DeliveryRow>>, ApiError> {
    let rows = state
        .store
        .list_deliveries(q.target.as_deref(), q.status, p.cursor, p.limit)
        .await?;
    let mut listed: Json<Page<DeliveryRow>> = page(&rows, |d| d.id, p.limit);
    let mut why: BTreeMap<String, Option<String>> = BTreeMap::new();
    for row in listed.0.data.iter_mut() {
        if row.status != DeliveryStatus::Pending || row.in_flight {
            continue;
        }
        if !why.contains_key(&row.target) {
            let held = held(&state, &row.target).await?;
            why.insert(row.target.clone(), held);
        }
        row.held = why[&row.target].clone();
    }
    Ok(listed)
}

/// Why `target`'s pending notifications are not sent now, if something holds them.
async fn held(state: &AppState, target: &str) -> Result<Option<String>, ApiError> {
    if !state.targets.iter().any(|t| t.name == target) {
        return Ok(Some(format!("{target:?} is no longer a configured target")));
    }
    let circuit = state.store.circuit(target).await?;
    let reason = circuit.reason.as_deref().unwrap_or("");
    Ok(match circuit.state {
        CircuitState::Closed => None,
        CircuitState::Disabled => Some(format!(
            "the target is disabled ({reason}); enable it to send"
        )),
        CircuitState::Open { until, .. } => Some(format!(
            "the target's circuit is open ({reason}); next probe at {}",
            DateTime::from_timestamp_millis(until)
                .map(time)
                .unwrap_or_default()
        )),
    })
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
        (status = 409, description = "Delivered already (`already_delivered`), or a later notification of its booking to the target was delivered and this one would undo it (`superseded`)", body = ErrorBody),
        StoreDown,
    )
)]
pub(super) async fn retry_delivery(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let ids = [id.clone()];
    let retried = state
        .store
        .retry_deliveries(RetrySelection::Ids(&ids), Utc::now().timestamp_millis())
        .await?;
    if retried.is_empty() {
        return Err(match state.store.delivery_by_key(&id).await? {
            Some((d, _)) if d.status == DeliveryStatus::Delivered => ApiError::new(
                StatusCode::CONFLICT,
                "already_delivered",
                format!(
                    "notification {} to {} was delivered: there is nothing to retry",
                    d.id, d.target
                ),
            ),
            Some((d, true)) => ApiError::new(
                StatusCode::CONFLICT,
                "superseded",
                format!(
                    "a later notification of booking {} to {} was delivered: sent now, notification {} would undo it",
                    d.booking_id.as_deref().unwrap_or_default(),
                    d.target,
                    d.id
                ),
            ),
            _ => ApiError::new(
                StatusCode::NOT_FOUND,
                "delivery_not_found",
                format!("no pending or dead notification {id:?}"),
            ),
        });
    }
    state.dispatch.notify();
    Ok(accepted(Retried { retried }))
}

/// The statuses whose notifications a bulk retry sends again.
#[derive(Clone, Copy, ToSchema)]
#[schema(rename_all = "lowercase")]
enum RetryableStatus {
    Dead,
    /// Waiting for their next attempt: due now instead, with a fresh schedule.
    Pending,
}

impl Word for RetryableStatus {
    const WHAT: &'static str = "retryable status";
    const ALL: &'static [RetryableStatus] = &[RetryableStatus::Dead, RetryableStatus::Pending];

    fn as_str(self) -> &'static str {
        DeliveryStatus::from(self).as_str()
    }
}

impl From<RetryableStatus> for DeliveryStatus {
    fn from(s: RetryableStatus) -> DeliveryStatus {
        match s {
            RetryableStatus::Dead => DeliveryStatus::Dead,
            RetryableStatus::Pending => DeliveryStatus::Pending,
        }
    }
}

/// The notifications a bulk retry selects; each filter that is set must match.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RetryQuery {
    /// Only this target's notifications.
    #[serde(deserialize_with = "super::jobs::optional_text")]
    target: Option<String>,
    /// Which notifications: `dead` (default) or `pending`.
    #[param(inline)]
    #[serde(deserialize_with = "one_of")]
    status: Option<RetryableStatus>,
    /// Only notifications about this booking.
    #[serde(deserialize_with = "super::jobs::optional_text")]
    booking: Option<String>,
    /// Only those caused by this event: its number or provider id (`evt_...`).
    #[serde(deserialize_with = "super::jobs::optional_text")]
    event: Option<String>,
    /// The source of `event`'s provider id, when two sources hold it.
    #[serde(deserialize_with = "super::jobs::optional_text")]
    source: Option<String>,
    /// Created at or after: an RFC 3339 time, or a duration before now (`2h`, `30m`, `7d`).
    #[param(value_type = Option<String>)]
    #[serde(deserialize_with = "super::jobs::moment")]
    since: Option<DateTime<Utc>>,
    /// Created before: an RFC 3339 time, or a duration before now.
    #[param(value_type = Option<String>)]
    #[serde(deserialize_with = "super::jobs::moment")]
    until: Option<DateTime<Utc>>,
    /// `true`: change nothing; answer how many would be retried and the first of them.
    #[param(value_type = Option<bool>)]
    #[serde(deserialize_with = "super::jobs::flag")]
    dry_run: bool,
    /// Notifications a dry run shows, 0 to 500 (20).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 500)]
    #[serde(deserialize_with = "super::jobs::sample")]
    sample: i64,
}

/// `POST /admin/api/deliveries/retry?target&status&booking&event&since&until`: the selected
/// notifications (every dead one by default) due now with a fresh schedule, in the background (a
/// job, answered at once); with `dry_run=true`, what would be retried.
#[utoipa::path(
    post,
    path = "/admin/api/deliveries/retry",
    tag = "admin",
    params(RetryQuery),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "A job retries them in the background: `GET /admin/api/jobs/{id}`", body = Job),
        (status = 200, description = "A dry run: how many would be retried, and the first of them", body = DryRun<DeliveryRow>),
        Invalid,
        Unauthorized,
        (status = 404, description = "`event` names no stored event (`event_not_found`)", body = ErrorBody),
        (status = 409, description = "Several sources hold `event` (`event_ambiguous`): add `source`", body = ErrorBody),
        StoreDown,
    )
)]
pub(super) async fn retry_dead(
    State(state): State<Arc<AppState>>,
    ValidQuery(q): ValidQuery<RetryQuery>,
) -> Result<Response, ApiError> {
    if let Some(t) = &q.target
        && !state.targets.iter().any(|c| &c.name == t)
    {
        return Err(ApiError::validation(
            "target",
            format!("{t:?} is not a configured target"),
        ));
    }
    let event = match &q.event {
        Some(key) => {
            let e = super::events::find_event(&state, key, q.source.as_deref()).await?;
            Some((e.source, e.event_id))
        }
        None => None,
    };
    let status = q.status.map_or(DeliveryStatus::Dead, DeliveryStatus::from);
    let selection = DeliverySelection {
        status,
        target: q.target,
        booking: q.booking,
        event,
        since: q.since,
        until: q.until,
    };
    let shown = JobSelection {
        status: status.as_str().into(),
        target: selection.target.clone(),
        booking: selection.booking.clone(),
        source: selection.event.as_ref().map(|(s, _)| s.clone()),
        event: selection.event.as_ref().map(|(_, e)| e.clone()),
        since: selection.since.map(time),
        until: selection.until.map(time),
        ..JobSelection::default()
    };
    let dispatch = state.dispatch.clone();
    let sample = async |upto| {
        let rows = state
            .store
            .selected_deliveries(&selection, upto, q.sample)
            .await?;
        Ok(rows.iter().map(DeliveryRow::from).collect())
    };
    let whole = Selection::Deliveries(selection.clone());
    let wake: crate::bulk::Wake = Box::new(move || dispatch.notify());
    super::jobs::dry_run_or_start(
        &state,
        whole,
        shown,
        q.dry_run,
        sample,
        JobKind::RetryDeliveries,
        wake,
    )
    .await
}
