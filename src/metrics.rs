//! `GET /metrics` in Prometheus' text format. Counters and histograms are recorded where things
//! happen (ingest, processor, dispatcher) through the `metrics` facade; depths and states are read
//! from the store when scraped, so they are right whichever instance did the work.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::TargetSettings;
use crate::domain::delivery::CircuitState;
use crate::store::{DepthsCache, Store, StoreError};

/// Seconds: from well under a millisecond (an acknowledged webhook) to a slow target.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's recorder, installed once (every payhook in a process shares it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness): then this one stays local
        // and renders nothing recorded, which tests would notice.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

/// The `# HELP` line of each metric recorded through the facade.
fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "payhook_webhooks_received_total",
        "Webhooks stored or found already stored, by source, event type and outcome"
    );
    describe_counter!(
        "payhook_webhooks_refused_total",
        "Webhooks refused and not stored, by source and error code"
    );
    describe_counter!(
        "payhook_events_applied_total",
        "Events the ledger processor finished, by the status they ended in"
    );
    describe_counter!(
        "payhook_batches_split_total",
        "Ledger batches that did not apply as a whole and were applied one event at a time"
    );
    describe_counter!(
        "payhook_delivery_attempts_total",
        "Notification delivery attempts, by target and outcome"
    );
    describe_counter!(
        "payhook_payloads_pruned_total",
        "Stored webhook payloads removed by retention"
    );
    describe_histogram!(
        "payhook_ingest_seconds",
        metrics::Unit::Seconds,
        "From a webhook's arrival to its acknowledgement, by source"
    );
    describe_histogram!(
        "payhook_processing_seconds",
        metrics::Unit::Seconds,
        "Time the ledger took to apply an event"
    );
    describe_histogram!(
        "payhook_event_lag_seconds",
        metrics::Unit::Seconds,
        "From a webhook's receipt to the commit of its ledger changes"
    );
    describe_histogram!(
        "payhook_delivery_seconds",
        metrics::Unit::Seconds,
        "Duration of a notification delivery attempt, by target"
    );
}

/// Distinct event types the metrics name: past this many, a type is counted as `other`, so that
/// a sender choosing types (on a source whose notifications are confirmed after they are
/// stored, say) cannot grow the series without bound.
const TYPE_LABELS: usize = 200;

/// `event_type` as a metric's `type` label: itself while fewer than [`TYPE_LABELS`] types have
/// been seen, `other` after.
pub fn type_label(event_type: &str) -> String {
    static SEEN: OnceLock<std::sync::RwLock<std::collections::HashSet<String>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    // Nearly always a type seen before: a shared read, no writer in the way.
    let known = seen
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains(event_type);
    if known {
        return event_type.to_string();
    }
    let mut seen = seen.write().unwrap_or_else(|e| e.into_inner());
    if seen.contains(event_type) || (seen.len() < TYPE_LABELS && seen.insert(event_type.into())) {
        event_type.to_string()
    } else {
        "other".to_string()
    }
}

/// Minutes the per-minute webhook count remembers.
const MINUTES: usize = 30;

/// Webhooks stored by this process, per wall-clock minute, for the dashboard's rate: a ring of
/// (minute, count) slots, one atomic add per webhook (a count may be lost at a minute's turn:
/// it is a rate to look at, the counters above are the exact figures).
struct PerMinute([(AtomicI64, AtomicU64); MINUTES]);

static STORED: PerMinute = PerMinute([const { (AtomicI64::new(-1), AtomicU64::new(0)) }; MINUTES]);

fn this_minute() -> i64 {
    chrono::Utc::now().timestamp().div_euclid(60)
}

/// One more webhook stored now.
pub fn count_stored() {
    let minute = this_minute();
    let (slot_minute, count) = &STORED.0[minute.rem_euclid(MINUTES as i64) as usize];
    let seen = slot_minute.load(Ordering::Relaxed);
    if seen != minute {
        // First of this minute in the slot: the swap decides which thread clears the old count.
        if slot_minute
            .compare_exchange(seen, minute, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            count.store(0, Ordering::Relaxed);
        }
    }
    count.fetch_add(1, Ordering::Relaxed);
}

/// (minute since the epoch, webhooks stored) for each of the last 30 minutes, oldest first.
pub fn stored_per_minute() -> Vec<(i64, u64)> {
    let now = this_minute();
    (now - MINUTES as i64 + 1..=now)
        .map(|minute| {
            let (slot_minute, count) = &STORED.0[minute.rem_euclid(MINUTES as i64) as usize];
            let n = if slot_minute.load(Ordering::Relaxed) == minute {
                count.load(Ordering::Relaxed)
            } else {
                0
            };
            (minute, n)
        })
        .collect()
}

/// The whole scrape: what was recorded, then the store's depths and each target's circuit.
pub async fn render(
    store: &Arc<Store>,
    depths: &Arc<DepthsCache>,
    targets: &[TargetSettings],
) -> Result<String, StoreError> {
    let mut out = handle().render();
    let (depths, age) = depths.get(store).await?;
    out.push_str("# HELP payhook_counts_age_seconds How old the counts by status below are (0: counted for this scrape; on a large store they are recounted in the background).\n");
    out.push_str("# TYPE payhook_counts_age_seconds gauge\n");
    let _ = writeln!(out, "payhook_counts_age_seconds {:.3}", age.as_secs_f64());
    out.push_str("# HELP payhook_inbox_events Inbox events by processing status.\n");
    out.push_str("# TYPE payhook_inbox_events gauge\n");
    for (status, n) in &depths.events {
        let _ = writeln!(out, "payhook_inbox_events{{status=\"{status}\"}} {n}");
    }
    out.push_str("# HELP payhook_outbox_notifications Notifications by target and status.\n");
    out.push_str("# TYPE payhook_outbox_notifications gauge\n");
    for (target, status, n) in &depths.deliveries {
        let _ = writeln!(
            out,
            "payhook_outbox_notifications{{target=\"{target}\",status=\"{status}\"}} {n}"
        );
    }
    out.push_str("# HELP payhook_payments Payments in the ledger by status.\n");
    out.push_str("# TYPE payhook_payments gauge\n");
    for (status, n) in &depths.payments {
        let _ = writeln!(out, "payhook_payments{{status=\"{status}\"}} {n}");
    }
    let mut circuits = Vec::new();
    for t in targets {
        circuits.push((&t.name, store.circuit(&t.name).await?));
    }
    out.push_str("# HELP payhook_target_circuit 1 for the state each target's circuit is in.\n");
    out.push_str("# TYPE payhook_target_circuit gauge\n");
    for (name, circuit) in &circuits {
        for s in ["closed", "open", "disabled"] {
            let _ = writeln!(
                out,
                "payhook_target_circuit{{target=\"{name}\",state=\"{s}\"}} {}",
                u8::from(s == circuit.state.as_str())
            );
        }
    }
    out.push_str("# HELP payhook_target_circuit_state Each target's circuit: 0 closed, 1 open (only probes), 2 disabled.\n");
    out.push_str("# TYPE payhook_target_circuit_state gauge\n");
    for (name, circuit) in &circuits {
        let state = match circuit.state {
            CircuitState::Closed => 0,
            CircuitState::Open { .. } => 1,
            CircuitState::Disabled => 2,
        };
        let _ = writeln!(
            out,
            "payhook_target_circuit_state{{target=\"{name}\"}} {state}"
        );
    }
    out.push_str("# HELP payhook_target_next_probe_timestamp_seconds When an open circuit sends its next probe (unix seconds); only open circuits.\n");
    out.push_str("# TYPE payhook_target_next_probe_timestamp_seconds gauge\n");
    for (name, circuit) in &circuits {
        if let Some(at) = circuit.reopens_at() {
            let _ = writeln!(
                out,
                "payhook_target_next_probe_timestamp_seconds{{target=\"{name}\"}} {:.3}",
                at as f64 / 1000.0
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_chosen_by_a_sender_stop_growing_the_labels() {
        let labels: std::collections::HashSet<String> = (0..TYPE_LABELS + 50)
            .map(|i| type_label(&format!("made.up.{i}")))
            .collect();
        assert!(labels.len() <= TYPE_LABELS + 1, "{}", labels.len());
        assert!(labels.contains("other"));
        // A type seen before keeps its own label.
        assert_eq!(type_label("made.up.0"), "made.up.0");
    }
}
