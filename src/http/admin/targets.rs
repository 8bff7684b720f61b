//! Targets and their circuits: listed, reset.

use super::*;

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
pub(super) async fn list_targets(
    State(state): State<Arc<AppState>>,
) -> Result<Json<TargetList>, ApiError> {
    let mut data = Vec::new();
    for t in state.targets.iter() {
        let circuit = state.store.circuit(&t.name).await?;
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
pub(super) async fn reset_target(
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
    let before = state.store.circuit(&name).await?;
    state.store.reset_circuit(&name).await?;
    state.dispatch.notify();
    tracing::info!(target = %name, "circuit closed from the admin API");
    Ok(Json(TargetReset {
        name,
        circuit_was: before.state.as_str().into(),
        circuit: CircuitState::Closed.as_str().into(),
    }))
}
