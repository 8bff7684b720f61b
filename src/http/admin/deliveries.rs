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
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "delivery_not_found",
            format!("no pending or dead notification {id:?}"),
        ));
    }
    state.dispatch.notify();
    Ok(accepted(Retried { retried }))
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
        .await?;
    state.dispatch.notify();
    tracing::info!(
        retried = retried.len(),
        "dead notifications retried from the admin API"
    );
    Ok(accepted(RetriedCount {
        retried: retried.len(),
    }))
}
