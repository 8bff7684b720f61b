//! Targets and their circuits: listed, disabled and enabled by an operator.

use super::*;
use crate::admin_types::{TargetList, TargetRow};
use crate::domain::delivery::Circuit;
use crate::notify::Operational;

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
        let open_until = circuit
            .reopens_at()
            .and_then(DateTime::from_timestamp_millis)
            .map(time);
        data.push(TargetRow {
            name: t.name.clone(),
            kind: t.kind.as_str().into(),
            // Credentials in the URL (`https://user:pass@...`) are not the dashboard's to show.
            url: crate::app::redact_url(&t.url),
            circuit: circuit.state.as_str().into(),
            failures: circuit.failures,
            next_probe_at: open_until.clone(),
            open_until,
            reason: circuit.reason,
            events: t.events.clone(),
        });
    }
    Ok(Json(TargetList { data }))
}

fn configured(state: &AppState, name: &str) -> Result<(), ApiError> {
    if state.targets.iter().any(|t| t.name == name) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "target_not_found",
            format!("{name:?} is not a configured target"),
        ))
    }
}

/// Why and by whom a target is disabled.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DisableQuery {
    /// Why, for the other operators and the `target.disabled` event (at most 500 characters).
    #[param(max_length = 500)]
    #[serde(default, deserialize_with = "short::<_, 500>")]
    reason: Option<String>,
    /// Who (at most 100 characters; the CLI sends the user's login).
    #[param(max_length = 100)]
    #[serde(default, deserialize_with = "short::<_, 100>")]
    by: Option<String>,
}

fn short<'de, D: Deserializer<'de>, const MAX: usize>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) if s.chars().count() > MAX => {
            Err(de::Error::custom(format!("at most {MAX} characters")))
        }
        Some(s) if s.chars().any(char::is_control) => {
            Err(de::Error::custom("no control characters"))
        }
        other => Ok(other
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())),
    }
}

/// `POST /admin/api/targets/{name}/disable?reason&by`: nothing is sent to the target until it is
/// enabled; its notifications are kept (pending, shown as held) and go in order when it is. The
/// disable is saved (it survives a restart) and announced (`target.disabled`).
#[utoipa::path(
    post,
    path = "/admin/api/targets/{name}/disable",
    tag = "admin",
    params(("name" = String, Path, description = "A configured target's name"), DisableQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The target is disabled", body = TargetReset),
        Invalid,
        Unauthorized,
        (status = 404, description = "No target has this name (`target_not_found`)", body = ErrorBody),
        StoreDown,
    )
)]
pub(super) async fn disable_target(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    ValidQuery(q): ValidQuery<DisableQuery>,
) -> Result<Json<TargetReset>, ApiError> {
    configured(&state, &name)?;
    let before = state.store.circuit(&name).await?;
    if before.state != CircuitState::Disabled {
        let by = q.by.unwrap_or_else(|| "an operator".into());
        let reason = q.reason.unwrap_or_else(|| "no reason given".into());
        let now = Utc::now();
        let mut tx = state.store.begin_outbox().await?;
        tx.save_circuit(
            &name,
            &Circuit::disabled(format!("disabled by {by}: {reason}")),
            now,
        )
        .await?;
        let event = Operational::Disabled {
            target: name.clone(),
            reason,
            by,
        };
        event.write(&mut tx, &state.targets, now).await?;
        tx.commit().await?;
        state.dispatch.target_changed(&name);
    }
    Ok(Json(TargetReset {
        name,
        circuit_was: before.state.as_str().into(),
        circuit: CircuitState::Disabled.as_str().into(),
        released: 0,
    }))
}

/// `POST /admin/api/targets/{name}/enable`: closes the target's circuit (whatever disabled it: an
/// operator, a 410, or an open circuit) and sends its held notifications now, in order.
#[utoipa::path(
    post,
    path = "/admin/api/targets/{name}/enable",
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
pub(super) async fn enable_target(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<TargetReset>, ApiError> {
    enable(&state, name).await
}

/// `POST /admin/api/targets/{name}/reset`: the same as `enable` (its older name).
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
    enable(&state, name).await
}

async fn enable(state: &AppState, name: String) -> Result<Json<TargetReset>, ApiError> {
    configured(state, &name)?;
    let before = state.store.circuit(&name).await?;
    let mut tx = state.store.begin_outbox().await?;
    let released = tx
        .enable_target(&name, Utc::now().timestamp_millis())
        .await?;
    tx.commit().await?;
    state.dispatch.target_changed(&name);
    tracing::info!(target_name = %name, circuit_was = before.state.as_str(), released,
        "target enabled from the admin API");
    Ok(Json(TargetReset {
        name,
        circuit_was: before.state.as_str().into(),
        circuit: CircuitState::Closed.as_str().into(),
        released,
    }))
}
