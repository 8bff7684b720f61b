//! The processor worker: claims a batch of inbox events and applies them to the ledger in one
//! transaction, marking each `processed`, `ignored` or `failed`: an event's ledger change and its
//! mark are one atomic unit (on SQLite, whose inbox has a file of its own, the mark follows the
//! ledger's commit: an event whose mark was lost is applied again, which changes nothing). The
//! batch is applied as a whole ([`super::batch`]: a few statements whatever its size); if that
//! fails, it is rolled back and its events are applied one at a time, each in its own savepoint,
//! so an event whose application fails is rolled back alone; its attempt is recorded and it is
//! retried with backoff, then left `failed` for a replay. The batch commits once (one fsync for
//! many events). The worker is woken by ingest; it only sleeps when there is nothing to do.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngExt;
use tokio::sync::{Notify, watch};

use super::batch::{Applied, apply_events};
use super::facts::{Interpretation, interpret_mapped, interpret_stripe};
use crate::config::{ProcessorSettings, TargetSettings};
use crate::domain::status::EventStatus;
use crate::inbox::IngestLoad;
use crate::notify::DispatchWake;
use crate::providers::mapping::Mapping;
use crate::store::{Claim, ClaimedEvent, Failure, Store, StoreError};

/// How long an idle processor waits before looking again without being woken (events written by
/// another instance, or by `payhook events replay`).
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// Events claimed per transaction. A batch costs a few statements whatever its size, so a backlog
/// is applied in large ones; on SQLite a batch holds the one write lock for a few milliseconds.
const BATCH: i64 = 128;

/// Events claimed per transaction while a dispatcher round waits for SQLite's write lock: the
/// round waits for the batch in hand, and a round lets at most a target's `concurrency`
/// notifications go, so the batch's length bounds how fast notifications go out. 128 events hold
/// the lock ~20 ms: at most ~1,500 notifications/s at the default concurrency of 32, and at 2,000
/// webhooks/s the notifications fell seconds behind while the ledger kept up.
const SHARED_BATCH: i64 = 32;

/// How long the processor lets events gather after a batch that was not full, before claiming
/// again: a transaction per handful of events rather than per webhook, so that under a steady
/// stream the processor takes the write lock (and the CPU) from ingest less often. It is added to
/// the time from webhook to notification. 10 ms rather than 2 took the CPU per event at 8
/// connections on SQLite from 269-289 to 234-236 µs (larger batches: fewer commits, and each page
/// a batch dirties is written once for more events). On PostgreSQL the batch's own time counts
/// (see [`pause_after`]).
const GATHER: Duration = Duration::from_millis(10);

/// While at least [`GIVE_WAY_FROM`] webhooks wait for their inbox commit, the processor rests this
/// many times as long as its last batch took before it claims again: it keeps at least a third of
/// its pace and leaves the rest of the CPU to acknowledgements. A burst is stored first and applied
/// as fast as the acknowledgements leave room; the backlog goes once it ends.
const GIVE_WAY: u32 = 2;

/// How the ledger reads what a provider's API confirmed.
static CONFIRMED: std::sync::LazyLock<Mapping> =
    std::sync::LazyLock::new(crate::providers::confirm::confirmed_mapping);

/// How many webhooks must be waiting for the processor to give way. A steady stream always has
/// one or two in flight: giving way to those made PostgreSQL's batches slow and far apart (at
/// 1,000 webhooks/s the end-to-end p99 went from 25 ms to 142 ms). Bursts queue far more.
const GIVE_WAY_FROM: usize = 16;

/// The longest rest [`GIVE_WAY`] asks for.
const GIVE_WAY_MAX: Duration = Duration::from_millis(50);

/// How long the processor waits before claiming again after a batch of `handled` events that took
/// `took` (of `limit` asked), with `waiting` webhooks waiting for their inbox commit. `one_writer`:
/// the store has one write lock, which dispatcher rounds share (SQLite).
fn pause_after(
    handled: usize,
    limit: i64,
    took: Duration,
    waiting: usize,
    one_writer: bool,
) -> Duration {
    if waiting >= GIVE_WAY_FROM {
        (took * GIVE_WAY).clamp(GATHER, GIVE_WAY_MAX)
    } else if (handled as i64) < limit {
        if one_writer {
            // The whole pause: larger batches, fewer commits, and the lock left to dispatcher
            // rounds meanwhile.
            GATHER
        } else {
            // Events gathered while the batch ran. Waiting the whole pause after it as well made
            // each event wait for it on top of a batch: at 1,000 webhooks/s batches of ~40 took
            // ~28 ms, and counting their time took the end-to-end p50 from 52-75 to 32-59 ms.
            GATHER.saturating_sub(took)
        }
    } else {
        Duration::ZERO
    }
}

/// The task writing a batch's marks, while the processor goes on (see [`Processor::process`]).
type Marking = Option<tokio::task::JoinHandle<Result<(), StoreError>>>;

/// Waits for a batch's marks to be written.
async fn written(
    marking: tokio::task::JoinHandle<Result<(), StoreError>>,
) -> Result<(), StoreError> {
    marking.await.map_err(|e| {
        StoreError::CommitFailed(format!("writing the marks on applied events: {e}"))
    })?
}

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
    /// Time spent applying it: its share of the batch's.
    pub took: std::time::Duration,
    /// `processed`, `ignored`, `waiting`, `retrying` or `failed`.
    pub status: EventStatus,
    /// Why it did not apply.
    pub error: Option<String>,
    /// Its batch failed as a whole, so it was applied (or not) on its own.
    pub alone: bool,
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
    /// Stripe sources whose events wait for the fetcher's copy from Stripe's API.
    confirming: Arc<std::collections::HashSet<String>>,
    /// Webhooks waiting for their inbox commit, given way to between batches.
    ingest: IngestLoad,
    /// Woken when thin events wait for their object to be fetched.
    fetch: Arc<Notify>,
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
            confirming: Arc::default(),
            ingest: IngestLoad::default(),
            fetch: Arc::default(),
        }
    }

    /// Wakes `fetch` when thin events wait for their related object.
    pub fn with_fetcher(mut self, fetch: Arc<Notify>) -> Self {
        self.fetch = fetch;
        self
    }

    /// Gives way between batches to the webhooks `ingest` counts (see [`GIVE_WAY`]).
    pub fn with_ingest(mut self, ingest: IngestLoad) -> Self {
        self.ingest = ingest;
        self
    }

    /// Holds the events of these sources until they are confirmed by the provider's API.
    pub fn with_confirming(mut self, sources: std::collections::HashSet<String>) -> Self {
        self.confirming = Arc::new(sources);
        self
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
        self.try_process_up_to(self.batch_limit(), None).await
    }

    /// A full batch, or a shorter one while a dispatcher round waits for the write lock.
    fn batch_limit(&self) -> i64 {
        if self.store.outbox_waits() {
            SHARED_BATCH
        } else {
            BATCH
        }
    }

    async fn try_process_up_to(
        &self,
        limit: i64,
        marking: Option<&mut Marking>,
    ) -> Result<Outcome, StoreError> {
        let claim = Claim::Next {
            now_ms: Utc::now().timestamp_millis(),
            limit,
        };
        self.process(claim, marking).await
    }

    /// Handles waiting events until none is due; returns how many were handled.
    pub async fn drain(&self) -> Result<usize, StoreError> {
        let mut handled = 0;
        while let Outcome::Handled(batch) = self.try_process_next().await? {
            handled += batch.len();
        }
        Ok(handled)
    }

    /// Claims events and applies them in one transaction: all at once, or, if that fails, one at
    /// a time; returns once they are marked.
    pub async fn try_process(&self, claim: Claim) -> Result<Outcome, StoreError> {
        self.process(claim, None).await
    }

    /// [`Self::try_process`]; with `marking`, returns once the ledger has committed, leaving the
    /// marks on the events to a task kept there (the next batch is claimed and applied while
    /// they are written, see [`WriteTx::commit_leaving_marks`]). The task of the batch before,
    /// found there, is waited for: one batch's marks at a time, and an inbox that cannot take
    /// them is an error of the processor's, as when it waited for them.
    async fn process(
        &self,
        claim: Claim,
        marking: Option<&mut Marking>,
    ) -> Result<Outcome, StoreError> {
        let mut tx = self.store.begin_ledger().await?;
        // On SQLite, from here to the commit the transaction holds the store file's write lock.
        let begun = std::time::Instant::now();
        let mut events = tx.claim(claim).await?;
        if events.is_empty() {
            tx.rollback().await?;
            return Ok(Outcome::Empty {
                next_due_ms: self.store.next_retry_due().await?,
            });
        }
        let spans = ledger_spans(&mut events);
        // Every transaction takes all its locks first, in one order: no two wait on each other.
        let read_at = Utc::now().timestamp();
        let readings: Vec<Interpretation> = events
            .iter()
            .map(|e| match self.mappings.get(&e.source) {
                // The notification is a hint; what the provider's API confirmed is read, once
                // the fetcher has it.
                Some(mapping) if mapping.confirmed => match &e.fetched {
                    None => Interpretation::Fetch,
                    Some(record) => {
                        interpret_mapped(&CONFIRMED, &e.event_id, &e.event_type, record, read_at)
                    }
                },
                Some(mapping) => {
                    interpret_mapped(mapping, &e.event_id, &e.event_type, &e.payload, read_at)
                }
                // A Stripe event confirmed by API waits for Stripe's copy, then reads it. (A thin
                // event's object is fetched from the API anyway.)
                None if e.fetched.is_none()
                    && !super::missed::is_thin(&e.event_type)
                    && self.confirming.contains(&e.source) =>
                {
                    Interpretation::Fetch
                }
                // A thin event reads as the snapshot its fetched object makes.
                None => interpret_stripe(&e.event_type, e.fetched.as_deref().unwrap_or(&e.payload)),
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
        // The claim and the reading of its payloads, under the lock (the debug line below).
        let read_us = begun.elapsed().as_micros() as u64;

        let now = Utc::now();
        let started = std::time::Instant::now();
        let group: Vec<(&ClaimedEvent, &Interpretation)> = events.iter().zip(&readings).collect();
        tx.begin_part().await?;
        let mut alone = false;
        let results: Vec<Result<Applied, StoreError>> =
            match apply_events(&mut tx, &group, &self.targets, now).await {
                // The part stays open: the commit keeps its changes. Releasing it first cost a
                // statement per batch (a round trip to PostgreSQL, ~1 ms under load).
                Ok(applied) => applied.into_iter().map(Ok).collect(),
                Err(e) if group.len() == 1 => {
                    tx.undo_part().await?;
                    vec![Err(e)]
                }
                Err(e) => {
                    tx.undo_part().await?;
                    alone = true;
                    metrics::counter!("payhook_batches_split_total").increment(1);
                    tracing::debug!(error = %e, events = group.len(),
                        "the batch did not apply as a whole; applying its events one at a time");
                    let mut results = Vec::with_capacity(group.len());
                    for one in &group {
                        tx.begin_part().await?;
                        match apply_events(&mut tx, std::slice::from_ref(one), &self.targets, now)
                            .await
                        {
                            Ok(applied) => {
                                tx.keep_part().await?;
                                results.extend(applied.into_iter().map(Ok));
                            }
                            Err(e) => {
                                tx.undo_part().await?;
                                results.push(Err(e));
                            }
                        }
                    }
                    results
                }
            };
        let took = started.elapsed() / results.len().max(1) as u32;
        let mut handled = Vec::with_capacity(results.len());
        let mut notified = 0;
        for (i, (event, result)) in events.into_iter().zip(results).enumerate() {
            let (status, error, booking_id) = match result {
                Ok(applied) => {
                    notified += applied.notified;
                    if let Some(span) = spans.get(i) {
                        span.record("payhook.notifications", applied.notified as i64);
                    }
                    (applied.status, applied.error, applied.booking_id)
                }
                Err(e) => {
                    let failure = self.failure(&event, e.to_string());
                    tx.record_failure(event.id, &failure).await?;
                    (failure.status, Some(failure.error), None)
                }
            };
            if let Some(span) = spans.get(i) {
                record_outcome(span, status, booking_id.as_deref(), error.as_deref());
            }
            handled.push(Handled {
                id: event.id,
                source: event.source,
                event_id: event.event_id,
                event_type: event.event_type,
                booking_id,
                received_at: event.received_at,
                took,
                status,
                error,
                alone,
            });
        }
        if notified > 0 {
            tx.announce(crate::store::Work::Outbox).await?;
        }
        let committing = std::time::Instant::now();
        let marks = tx.commit_leaving_marks().await?;
        tracing::debug!(
            events = handled.len(),
            held_us = begun.elapsed().as_micros() as u64,
            read_us,
            commit_us = committing.elapsed().as_micros() as u64,
            "ledger batch committed"
        );
        // Woken once the events are marked: the fetcher looks for `waiting` events, and a
        // notification goes out after its event reads as applied.
        let dispatch = (notified > 0).then(|| self.dispatch.clone());
        let fetch = handled
            .iter()
            .any(|h| h.status == EventStatus::Waiting)
            .then(|| self.fetch.clone());
        let marked = async move {
            marks.write().await?;
            if let Some(dispatch) = dispatch {
                dispatch.notify();
            }
            if let Some(fetch) = fetch {
                fetch.notify_one();
            }
            Ok(())
        };
        let previous = match marking {
            None => {
                marked.await?;
                None
            }
            Some(marking) => marking.replace(tokio::spawn(marked)),
        };
        let committed = Utc::now();
        for (i, h) in handled.iter().enumerate() {
            // The line is also its span's event (tracing on).
            let _span = spans.get(i).map(tracing::Span::enter);
            metrics::counter!("payhook_events_applied_total", "status" => h.status.as_str())
                .increment(1);
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
                    r#type = %h.event_type, booking_id, status = h.status.as_str(), %error, "event not applied")
                }
                None => tracing::info!(id = h.id, source = %h.source, event_id = %h.event_id,
                    r#type = %h.event_type, booking_id, status = h.status.as_str(), "event applied"),
            }
        }
        if let Some(previous) = previous {
            written(previous).await?;
        }
        Ok(Outcome::Handled(handled))
    }

    /// Runs until `stopped` turns true: handles events as they come, sleeps when there are none.
    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut outage = 0u32;
        let mut marking = None;
        while !*stopped.borrow() {
            let started = std::time::Instant::now();
            let limit = self.batch_limit();
            let mut processed = self.try_process_up_to(limit, Some(&mut marking)).await;
            // Nothing left to claim: the last marks are written before the processor rests.
            if let Ok(Outcome::Empty { .. }) = processed
                && let Some(previous) = marking.take()
                && let Err(e) = written(previous).await
            {
                processed = Err(e);
            }
            let wait = match processed {
                Ok(Outcome::Handled(batch)) => {
                    outage = 0;
                    let pause = pause_after(
                        batch.len(),
                        limit,
                        started.elapsed(),
                        self.ingest.waiting(),
                        matches!(*self.store, Store::Sqlite(_)),
                    );
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
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
        if let Some(last) = marking
            && let Err(e) = written(last).await
        {
            tracing::warn!(error = %e, "the last events applied were not marked; they will be applied again");
        }
    }

    fn failure(&self, event: &ClaimedEvent, error: String) -> Failure {
        let attempts = event.attempts + 1;
        if attempts >= i64::from(self.settings.max_attempts) {
            return Failure {
                status: EventStatus::Failed,
                attempts,
                error,
                next_attempt_at: None,
            };
        }
        let delay = retry_delay(&self.settings, attempts);
        Failure {
            status: EventStatus::Retrying,
            attempts,
            error,
            next_attempt_at: Some(Utc::now().timestamp_millis() + delay.as_millis() as i64),
        }
    }
}

/// With tracing on, a `ledger.batch` span per claimed event, each a child of the event's inbox
/// commit (so in the trace of the webhook that brought it), all of them covering this one
/// transaction; each event then carries its own span's context, which the notifications it causes
/// keep. One span per event rather than one per batch with links: a batch mixes the events of
/// many webhooks, and each webhook's trace then reads from its request to its deliveries. Off, no
/// span is made and nothing is carried on.
fn ledger_spans(events: &mut [ClaimedEvent]) -> Vec<tracing::Span> {
    if !crate::telemetry::enabled() {
        for event in events.iter_mut() {
            event.trace_context = None;
        }
        return Vec::new();
    }
    // Integers as i64: the OpenTelemetry layer writes unsigned ones as text.
    let size = events.len() as i64;
    events
        .iter_mut()
        .map(|e| {
            use tracing::field::Empty;
            let span = tracing::info_span!(target: crate::telemetry::TARGET, parent: None,
                "ledger.batch", payhook.source = %e.source, payhook.event_id = %e.event_id,
                payhook.event_type = %e.event_type, payhook.ledger.batch_events = size,
                payhook.ledger.attempt = e.attempts + 1, payhook.event.status = Empty,
                payhook.booking_id = Empty, payhook.notifications = Empty,
                payhook.event.error = Empty, otel.status_description = Empty);
            crate::telemetry::continue_from(&span, e.trace_context.as_deref());
            e.trace_context = crate::telemetry::traceparent(&span);
            span
        })
        .collect()
}

/// What became of an event, on its `ledger.batch` span.
fn record_outcome(
    span: &tracing::Span,
    status: EventStatus,
    booking_id: Option<&str>,
    error: Option<&str>,
) {
    span.record("payhook.event.status", status.as_str());
    if let Some(booking_id) = booking_id {
        span.record("payhook.booking_id", booking_id);
    }
    if let Some(error) = error {
        span.record("payhook.event.error", error);
        // Ignored with a reason is no failure; a retry or a failure is.
        if matches!(status, EventStatus::Retrying | EventStatus::Failed) {
            span.record("otel.status_description", error);
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

    #[test]
    fn the_processor_rests_between_batches_while_webhooks_wait_for_their_commit() {
        let ms = Duration::from_millis;
        for one_writer in [true, false] {
            let pause =
                |handled, took, waiting| pause_after(handled, BATCH, took, waiting, one_writer);
            // A burst waiting: twice the batch's time, at least the gathering pause, at most 50 ms.
            assert_eq!(pause(BATCH as usize, ms(10), 100), ms(20));
            assert_eq!(pause(5, ms(6), GIVE_WAY_FROM), ms(12));
            assert_eq!(pause(1, Duration::from_micros(100), 20), GATHER);
            assert_eq!(pause(BATCH as usize, ms(40), 64), GIVE_WAY_MAX);
            // A steady stream's one or two in flight, or none: a backlog is applied back to back.
            assert_eq!(pause(BATCH as usize, ms(10), 2), Duration::ZERO);
            assert_eq!(pause(BATCH as usize, ms(10), 0), Duration::ZERO);
        }
        // A trickle is let gather. With one write lock, the whole pause after each batch ...
        assert_eq!(pause_after(3, BATCH, ms(1), 1, true), GATHER);
        assert_eq!(pause_after(40, BATCH, ms(28), 0, true), GATHER);
        // ... else what is left of it after the batch's own time, when events gathered too.
        assert_eq!(pause_after(3, BATCH, ms(1), 1, false), ms(9));
        assert_eq!(pause_after(40, BATCH, ms(4), 0, false), ms(6));
        assert_eq!(pause_after(40, BATCH, ms(28), 0, false), Duration::ZERO);
        // A short batch that was full (a dispatcher round waited) is a backlog: no pause.
        assert_eq!(
            pause_after(SHARED_BATCH as usize, SHARED_BATCH, ms(5), 0, true),
            Duration::ZERO
        );
    }
}
