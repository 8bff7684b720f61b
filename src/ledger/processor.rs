//! The processor worker: claims a batch of inbox events and, for each inside its own savepoint,
//! applies its fact to the ledger and marks it `processed`, `ignored` or `failed`: an event's ledger
//! change and its mark are one atomic unit. An event whose application fails is rolled back to its
//! savepoint alone; its attempt is recorded and it is retried with backoff, then left `failed` for
//! a replay. The batch commits once (one fsync for many events), or early when webhooks wait for
//! SQLite's write lock: acknowledging them comes first. The worker is woken by ingest; it only
//! sleeps when there is nothing to do.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngExt;
use tokio::sync::{Notify, watch};

use super::facts::{Fact, Interpretation, interpret_mapped, interpret_stripe};
use super::state::{PaymentState, derive, representative};
use crate::config::{ProcessorSettings, TargetSettings};
use crate::notify::{Change, DispatchWake, deliveries_for};
use crate::providers::mapping::Mapping;
use crate::store::{Claim, ClaimedEvent, Failure, LedgerTx, Payment, Store, StoreError};

/// How long an idle processor waits before looking again without being woken (events written by
/// another instance, or by `payhook events replay`).
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// Events claimed per transaction. On SQLite the batch holds the one write lock, so it is kept
/// short enough not to stall ingest noticeably.
const BATCH: i64 = 32;

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    /// The booking of the payment it applied to, when there is one.
    pub booking_id: Option<String>,
    pub received_at: DateTime<Utc>,
    /// Time spent applying it (its part of the batch's transaction).
    pub took: std::time::Duration,
    /// `processed`, `ignored`, `retrying` or `failed`.
    pub status: &'static str,
    /// Why it did not apply.
    pub error: Option<String>,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Handled(Vec<Handled>),
    /// Nothing to do now; the earliest retry is due at `next_due_ms` (unix ms), if any.
    Empty {
        next_due_ms: Option<i64>,
    },
}

#[derive(Clone)]
pub struct Processor {
    store: Arc<Store>,
    settings: ProcessorSettings,
    wake: Arc<Notify>,
    /// Who hears about ledger changes: their notifications go to the outbox in the same transaction.
    targets: Arc<[TargetSettings]>,
    dispatch: DispatchWake,
    /// Sources whose events are read through a payload mapping; the others are Stripe's.
    mappings: Arc<HashMap<String, Arc<Mapping>>>,
}

impl Processor {
    pub fn new(store: Arc<Store>, settings: ProcessorSettings, wake: Arc<Notify>) -> Self {
        Self {
            store,
            settings,
            wake,
            targets: Arc::new([]),
            dispatch: DispatchWake::default(),
            mappings: Arc::default(),
        }
    }

    /// Reads the events of these sources through their mappings.
    pub fn with_mappings(mut self, mappings: HashMap<String, Arc<Mapping>>) -> Self {
        self.mappings = Arc::new(mappings);
        self
    }

    /// Writes notifications for these targets with each ledger change, and wakes `dispatch` when
    /// it has.
    pub fn with_targets(mut self, targets: &[TargetSettings], dispatch: DispatchWake) -> Self {
        self.targets = targets.into();
        self.dispatch = dispatch;
        self
    }

    /// Handles the next batch of waiting events, if any.
    pub async fn try_process_next(&self) -> Result<Outcome, StoreError> {
        self.try_process(Claim::Next {
            now_ms: Utc::now().timestamp_millis(),
            limit: BATCH,
        })
        .await
    }

    /// Handles waiting events until none is due; returns how many were handled.
    pub async fn drain(&self) -> Result<usize, StoreError> {
        let mut handled = 0;
        while let Outcome::Handled(batch) = self.try_process_next().await? {
            handled += batch.len();
        }
        Ok(handled)
    }

    /// Claims events and applies each in its own savepoint, in one transaction.
    pub async fn try_process(&self, claim: Claim) -> Result<Outcome, StoreError> {
        let mut tx = self.store.begin_ledger().await?;
        let events = tx.claim(claim).await?;
        if events.is_empty() {
            tx.rollback().await?;
            return Ok(Outcome::Empty {
                next_due_ms: self.store.next_retry_due().await?,
            });
        }
        // Every transaction takes all its locks first, in one order: no two wait on each other.
        let read_at = Utc::now().timestamp();
        let readings: Vec<Interpretation> = events
            .iter()
            .map(|e| match self.mappings.get(&e.source) {
                Some(mapping) => {
                    interpret_mapped(mapping, &e.event_id, &e.event_type, &e.payload, read_at)
                }
                None => interpret_stripe(&e.event_type, &e.payload),
            })
            .collect();
        let keys: BTreeSet<String> = events
            .iter()
            .zip(&readings)
            .filter_map(|(e, r)| match r {
                Interpretation::Fact(f) => Some((e, f)),
                _ => None,
            })
            .flat_map(|(e, f)| {
                let refs = f
                    .refs
                    .ids()
                    .into_iter()
                    .map(|id| format!("{}:{id}", e.source));
                // Notifications compare a booking's payments before and after: one change per
                // booking at a time.
                let booking = f.booking_id.as_ref().map(|b| format!("booking:{b}"));
                refs.chain(booking)
            })
            .collect();
        tx.lock_refs(&keys.into_iter().collect::<Vec<_>>()).await?;

        let now = Utc::now();
        let mut handled = Vec::with_capacity(events.len());
        let mut notified = 0;
        for (event, reading) in events.into_iter().zip(readings) {
            let started = std::time::Instant::now();
            tx.begin_event().await?;
            let (status, error, booking_id) =
                match apply(&mut tx, &event, reading, &self.targets, now).await {
                    Ok(((status, error), applied)) => {
                        tx.keep_event().await?;
                        notified += applied.notified;
                        (status, error, applied.booking_id)
                    }
                    Err(e) => {
                        tx.undo_event().await?;
                        let failure = self.failure(&event, e.to_string());
                        tx.record_failure(event.id, &failure).await?;
                        (failure.status, Some(failure.error), None)
                    }
                };
            handled.push(Handled {
                id: event.id,
                source: event.source,
                event_id: event.event_id,
                event_type: event.event_type,
                booking_id,
                received_at: event.received_at,
                took: started.elapsed(),
                status,
                error,
            });
            // Webhooks wait on the same write lock; the rest of the batch stays claimable.
            if tx.should_yield() {
                break;
            }
        }
        if notified > 0 {
            tx.announce(crate::store::Work::Outbox).await?;
        }
        tx.commit().await?;
        if notified > 0 {
            self.dispatch.notify();
        }
        let committed = Utc::now();
        for h in &handled {
            metrics::counter!("payhook_events_applied_total", "status" => h.status).increment(1);
            metrics::histogram!("payhook_processing_seconds").record(h.took.as_secs_f64());
            let lag = (committed - h.received_at)
                .num_microseconds()
                .unwrap_or(0)
                .max(0);
            metrics::histogram!("payhook_event_lag_seconds").record(lag as f64 / 1e6);
            let booking_id = h.booking_id.as_deref().unwrap_or("");
            match &h.error {
                Some(error) => {
                    tracing::warn!(id = h.id, source = %h.source, event_id = %h.event_id,
                    r#type = %h.event_type, booking_id, status = h.status, %error, "event not applied")
                }
                None => tracing::info!(id = h.id, source = %h.source, event_id = %h.event_id,
                    r#type = %h.event_type, booking_id, status = h.status, "event applied"),
            }
        }
        Ok(Outcome::Handled(handled))
    }

    /// Runs until `stopped` turns true: handles events as they come, sleeps when there are none.
    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut outage = 0u32;
        while !*stopped.borrow() {
            let wait = match self.try_process_next().await {
                Ok(Outcome::Handled(_)) => {
                    outage = 0;
                    continue;
                }
                Ok(Outcome::Empty { next_due_ms }) => {
                    outage = 0;
                    next_due_ms
                        .map(|due| {
                            let ms = (due - Utc::now().timestamp_millis()).max(0) as u64;
                            Duration::from_millis(ms)
                        })
                        .unwrap_or(IDLE_WAIT)
                        .min(IDLE_WAIT)
                }
                Err(e) => {
                    outage += 1;
                    tracing::error!(error = %e, "processor cannot reach the store; waiting");
                    Duration::from_millis(200 * 2u64.pow(outage.min(5)))
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => {}
            }
        }
    }

    fn failure(&self, event: &ClaimedEvent, error: String) -> Failure {
        let attempts = event.attempts + 1;
        if attempts >= i64::from(self.settings.max_attempts) {
            return Failure {
                status: "failed",
                attempts,
                error,
                next_attempt_at: None,
            };
        }
        let delay = retry_delay(&self.settings, attempts);
        Failure {
            status: "retrying",
            attempts,
            error,
            next_attempt_at: Some(Utc::now().timestamp_millis() + delay.as_millis() as i64),
        }
    }
}

/// Exponential backoff from `retry_initial`, capped at `retry_max`, with ±20% jitter so events that
/// failed together do not all come back together.
fn retry_delay(settings: &ProcessorSettings, attempts: i64) -> Duration {
    let exp = (attempts - 1).clamp(0, 30) as u32;
    let base = settings
        .retry_initial
        .saturating_mul(2u32.saturating_pow(exp))
        .min(settings.retry_max);
    base.mul_f64(rand::rng().random_range(0.8..1.2))
}

/// What applying a fact did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Notifications written to the outbox.
    pub notified: usize,
    /// The payment's booking.
    pub booking_id: Option<String>,
}

/// Applies one claimed event inside `tx` and marks it; returns its new status and, for an event
/// that can never apply, why, and what applying it did.
async fn apply(
    tx: &mut LedgerTx,
    event: &ClaimedEvent,
    reading: Interpretation,
    targets: &[TargetSettings],
    now: DateTime<Utc>,
) -> Result<((&'static str, Option<String>), Applied), StoreError> {
    let (status, error, applied) = match reading {
        Interpretation::Ignored => ("ignored", None, Applied::default()),
        Interpretation::Invalid(why) => ("failed", Some(why), Applied::default()),
        Interpretation::Fact(fact) => {
            let applied = apply_fact(tx, &event.source, &fact, targets, now).await?;
            ("processed", None, applied)
        }
    };
    tx.finish_event(event.id, status, error.as_deref(), now)
        .await?;
    Ok(((status, error), applied))
}

/// Adds `fact` to its payment (creating it, or joining payments the fact shows to be one),
/// rewrites the payment's row from all its facts, and writes the notifications the change causes
/// to the outbox. The caller holds the locks on the fact's ids.
pub async fn apply_fact(
    tx: &mut LedgerTx,
    source: &str,
    fact: &Fact,
    targets: &[TargetSettings],
    now: DateTime<Utc>,
) -> Result<Applied, StoreError> {
    let found = tx.payments_for_refs(source, &fact.refs).await?;
    let notify = !targets.is_empty();
    let before = if notify && !found.is_empty() {
        tx.payments_by_ids(&found).await?
    } else {
        Vec::new()
    };
    let (payment, after) = match found.split_first() {
        // A new payment: this fact is all there is to it.
        None => {
            let after = derive(std::slice::from_ref(fact));
            let payment = tx.write_payment(None, source, &after, now).await?;
            tx.add_refs(source, payment, &fact.refs).await?;
            tx.add_fact(source, payment, fact).await?;
            (payment, after)
        }
        Some((&keep, others)) => {
            for &other in others {
                tx.merge_payment(other, keep).await?;
            }
            tx.add_refs(source, keep, &fact.refs).await?;
            tx.add_fact(source, keep, fact).await?;
            let after = derive(&tx.facts(keep).await?);
            tx.write_payment(Some(keep), source, &after, now).await?;
            (keep, after)
        }
    };
    if !notify {
        return Ok(Applied {
            notified: 0,
            booking_id: after.booking_id,
        });
    }

    // The booking as a whole: its payments now, and as they were (the changed ones as before).
    let booking_after = match &after.booking_id {
        Some(booking) => tx.booking_payments(booking).await?,
        None => Vec::new(),
    };
    let changed = |p: &Payment| p.id == payment || found.contains(&p.id);
    let booking_before: Vec<Payment> = booking_after
        .iter()
        .filter(|p| !changed(p))
        .chain(
            before
                .iter()
                .filter(|p| p.state.booking_id == after.booking_id),
        )
        .cloned()
        .collect();
    let before_states: Vec<PaymentState> = before.into_iter().map(|p| p.state).collect();
    let deliveries = deliveries_for(
        targets,
        &Change {
            cause: (source, &fact.event_id),
            payment_id: payment,
            before: &before_states,
            after: &after,
            booking_before: representative(&booking_before).map(|p| &p.state),
            booking_after: representative(&booking_after).map(|p| &p.state),
        },
        now,
    );
    for delivery in &deliveries {
        let first_wait = targets
            .iter()
            .find(|t| t.name == delivery.target)
            .and_then(|t| t.retry_schedule.first())
            .map_or(0, |d| d.as_millis() as i64);
        tx.insert_delivery(delivery, now.timestamp_millis() + first_wait, now)
            .await?;
    }
    Ok(Applied {
        notified: deliveries.len(),
        booking_id: after.booking_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let settings = ProcessorSettings {
            max_attempts: 10,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        };
        for (attempts, base) in [(1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0), (40, 60.0)] {
            let d = retry_delay(&settings, attempts).as_secs_f64();
            assert!(
                (base * 0.8..=base * 1.2).contains(&d),
                "attempt {attempts}: {d}s"
            );
        }
    }
}
