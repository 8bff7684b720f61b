//! Notifications to targets: listed, retried one by one or every dead one.

use super::*;

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
        .await
        .map_err(state.store_failed())?;
    Ok(page(&rows, delivery_row, |d| d.id, p.limit))
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
pub(super) async fn retry_delivery(
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct RetryQuery {
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
pub(super) async fn retry_dead(
    State(state): State<Arc<AppState>>,
    ValidQuery(RetryQuery { target }): ValidQuery<RetryQuery>,
) -> Result<Response, ApiError> {
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
