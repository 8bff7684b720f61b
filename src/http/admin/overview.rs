//! The dashboard's first screen: counts by status, the per-minute rate, open circuits.

use super::*;

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
pub(super) async fn overview(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Overview>, ApiError> {
    let (depths, age) = state.depths.get(&state.store).await?;
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
        let circuit = state.store.circuit(&t.name).await?;
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
