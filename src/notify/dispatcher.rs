//! The dispatcher: one worker per target delivers the outbox.
//!
//! Each worker keeps up to `concurrency` notifications in flight, each the oldest pending one of
//! its booking, so a booking hears its changes in order while a slow booking holds up no other.
//! A round is one transaction: settle the attempts that finished, save the circuit, claim (lease)
//! what may go next. Rounds run when the processor wakes the worker, when an attempt finishes, or
//! when the next retry or probe is due; an idle worker also looks every few seconds (for rows
//! another process wrote).
//!
//! Each time the worker wakes it takes a turn ([`TargetWorker`]'s `turn`): the circuit's allowance,
//! one round, the claimed attempts started. A test or a tool steps a worker with
//! [`TargetWorker::try_deliver_next`]: one such turn, its attempts awaited and recorded, and what
//! happened ([`Dispatched`]): sent, nothing due, or held by the circuit.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::operational::Operational;
use super::{Change, deliveries_for, first_due};
use crate::config::{TargetKind, TargetSettings};
use crate::domain::delivery::{
    Attempt, Circuit, CircuitPolicy, CircuitState, Transition, Verdict, next_delay,
    parse_retry_after, verdict,
};
use crate::domain::state::{Attention, Payment};
use crate::domain::status::DeliveryStatus;
use crate::domain::steps::OPERATIONAL_EVENTS;
use crate::store::{BookingAnswer, ClaimedDelivery, Lease, QuickRound, Settled, Store, StoreError};

/// How long an idle worker waits before looking again unwoken.
const IDLE_WAIT: Duration = Duration::from_secs(2);

/// How long a worker lets attempts in flight end before recording the first that ended
/// ([`TargetWorker::gather`]); and when nothing more is due, how long outcomes wait for the next
/// claim. A booking's next notification waits for its previous one's round: at most this more.
const GATHER: Duration = Duration::from_millis(2);
const GATHER_DRAINED: Duration = Duration::from_millis(5);

/// The most of a target's answer kept with the attempt, for the operator.
const BODY_KEPT: usize = 512;

/// The first [`BODY_KEPT`] bytes of an answer's body, read no further: a target that answers
/// with gigabytes costs no more memory than one that answers `ok`.
async fn answer_start(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut kept = Vec::new();
    while kept.len() < BODY_KEPT {
        match response.chunk().await? {
            Some(chunk) => {
                kept.extend_from_slice(&chunk[..chunk.len().min(BODY_KEPT - kept.len())])
            }
            None => break,
        }
    }
    Ok(kept)
}

/// Wakes every target's worker: the processor wrote to the outbox.
#[derive(Clone, Default)]
pub struct DispatchWake(Arc<[Arc<Signal>]>);

/// How a worker is woken, and told to read its circuit from the store again.
struct Signal {
    target: String,
    wake: Notify,
    reload: AtomicBool,
}

impl DispatchWake {
    pub fn notify(&self) {
        for signal in self.0.iter() {
            signal.wake.notify_one();
        }
    }

    /// An operator enabled or disabled `target` in the store: its worker reads its circuit again
    /// and looks at once, and the others look too (the change may have written events for them).
    pub fn target_changed(&self, target: &str) {
        for signal in self.0.iter().filter(|s| s.target == target) {
            signal.reload.store(true, Ordering::SeqCst);
        }
        self.notify();
    }
}

pub struct Dispatcher {
    workers: Vec<TargetWorker>,
}

impl Dispatcher {
    /// A worker per target, and the handle that wakes them.
    pub fn new(store: Arc<Store>, targets: &[TargetSettings]) -> (Dispatcher, DispatchWake) {
        let client = crate::net::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        let all: Arc<[TargetSettings]> = targets.into();
        let mut workers: Vec<TargetWorker> = targets
            .iter()
            .map(|target| TargetWorker {
                store: store.clone(),
                targets: all.clone(),
                wake_all: DispatchWake::default(),
                // Several during a rotation (space-separated): each signs.
                signing_keys: target
                    .secret
                    .as_ref()
                    .map(|s| {
                        s.expose()
                            .split_whitespace()
                            .filter_map(super::signing_key)
                            .collect()
                    })
                    .unwrap_or_default(),
                target: Arc::new(target.clone()),
                url: reqwest::Url::parse(&target.url).map_err(|e| e.to_string()),
                client: client.clone(),
                signal: Arc::new(Signal {
                    target: target.name.clone(),
                    wake: Notify::new(),
                    reload: AtomicBool::new(false),
                }),
            })
            .collect();
        let wake = DispatchWake(workers.iter().map(|w| w.signal.clone()).collect());
        for worker in &mut workers {
            worker.wake_all = wake.clone();
        }
        (Dispatcher { workers }, wake)
    }

    /// The worker of the target named `name`, to step it ([`TargetWorker::try_deliver_next`]).
    pub fn target(&self, name: &str) -> Option<&TargetWorker> {
        self.workers.iter().find(|w| w.target.name == name)
    }

    /// Runs every worker until `stopped` turns true; each then finishes its attempts in flight.
    pub fn spawn(self, stopped: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            for worker in self.workers {
                tasks.spawn(worker.run(stopped.clone()));
            }
            while tasks.join_next().await.is_some() {}
        })
    }
}

/// What one step of a target's worker did ([`TargetWorker::try_deliver_next`]).
#[derive(Debug, Clone)]
pub enum Dispatched {
    /// Notifications were sent; each one's outcome, as recorded.
    Sent(Vec<Settled>),
    /// Nothing is due; the earliest pending notification is due at `next_due_ms` (unix ms), if
    /// there is one.
    Idle { next_due_ms: Option<i64> },
    /// The circuit lets nothing through now: open (until its next probe) or disabled.
    Held(CircuitState),
}

/// What a round records and asks for: finished attempts, the circuit to save, operational
/// events to write, how many notifications to lease (while open: the probe).
#[derive(Clone, Copy)]
struct RoundWork<'a> {
    settled: &'a [Settled],
    circuit: Option<&'a Circuit>,
    events: &'a [Operational],
    want: usize,
    probe: bool,
    now: i64,
}

/// How long a round waited for its transaction (on SQLite, the store's write lock), then held it,
/// and how much of that its commit took: the debug line per round shows where the lock goes.
struct RoundTimes {
    waited: Duration,
    held: Duration,
    commit: Duration,
}

/// Delivers the outbox to one target; [`Dispatcher::spawn`] runs it, a test or a tool may step it.
#[derive(Clone)]
pub struct TargetWorker {
    store: Arc<Store>,
    target: Arc<TargetSettings>,
    /// Every target: a refusal of the booking service is announced on the events targets.
    targets: Arc<[TargetSettings]>,
    /// Wakes every worker, for the notifications a round writes.
    wake_all: DispatchWake,
    /// An events target's keys, the new one first during a rotation.
    signing_keys: Vec<Vec<u8>>,
    /// The target's URL, parsed once rather than for every attempt.
    url: Result<reqwest::Url, String>,
    client: reqwest::Client,
    signal: Arc<Signal>,
}

/// What a worker carries from one turn to the next.
struct Pass {
    circuit: Circuit,
    in_flight: JoinSet<Finished>,
    /// Outcomes of finished attempts, recorded by the next round.
    settled: Vec<Settled>,
    /// The circuit changed since it was last saved.
    circuit_changed: bool,
    /// Operational events to write with the next round.
    events: Vec<Operational>,
}

impl Pass {
    fn new(circuit: Circuit) -> Pass {
        Pass {
            circuit,
            in_flight: JoinSet::new(),
            settled: Vec::new(),
            circuit_changed: false,
            events: Vec::new(),
        }
    }

    /// Nothing in flight, nothing left to record.
    fn is_done(&self) -> bool {
        self.in_flight.is_empty()
            && self.settled.is_empty()
            && !self.circuit_changed
            && self.events.is_empty()
    }
}

/// What a turn did.
enum Turn {
    /// A round committed: it recorded what had finished and leased `claimed` of the `want` asked.
    Round { want: usize, claimed: usize },
    /// Nothing to claim (the circuit lets nothing through, or every slot is busy) and nothing to
    /// record: no round.
    Skipped,
}

/// An attempt that finished: what was sent, what came back, how long it took.
struct Finished {
    delivery: ClaimedDelivery,
    attempt: Attempt,
    /// When it started (unix ms; an attempt started before the circuit opened is no probe),
    /// and how long it took.
    started_at: i64,
    elapsed: Duration,
    /// Its `delivery.attempt` span (tracing on), ended once the outcome is on it.
    span: Option<tracing::Span>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl TargetWorker {
    /// One step of the worker, for tests and tools to drive it deterministically: reads the
    /// target's circuit from the store (as a worker starting up does), takes one turn (the round
    /// the worker's loop takes when it wakes: the circuit's allowance, the oldest pending
    /// notification of each booking leased, attempts started), waits for the attempts it started,
    /// and records their outcomes and the circuit in a last round that claims nothing.
    ///
    /// The loop runs the same turns, but does not wait for a whole round's attempts: it claims
    /// more as each slot frees. The cool-down of an open circuit is not stored, so a failed probe
    /// of a step waits the target's `circuit_open` again rather than twice the last wait. Beside a
    /// running worker of the same target a step is one more instance on the store: leases keep
    /// the two from sending the same notification at once. If the last round fails, the step's
    /// notifications are sent again when their leases end, as after a crash.
    pub async fn try_deliver_next(&self) -> Result<Dispatched, StoreError> {
        let saved = self.store.circuit(&self.target.name).await?;
        let mut pass = Pass::new(saved.resumed(now_ms(), self.policy()));
        match self.turn(&mut pass, true, now_ms()).await? {
            // Nothing in flight or to record: only the circuit holds it.
            Turn::Skipped => return Ok(Dispatched::Held(pass.circuit.state)),
            Turn::Round { claimed: 0, .. } => {
                return Ok(Dispatched::Idle {
                    next_due_ms: self.store.next_delivery_due(&self.target.name).await?,
                });
            }
            Turn::Round { .. } => {}
        }
        while let Some(joined) = pass.in_flight.join_next().await {
            self.finished(&mut pass, joined);
        }
        let settled = pass.settled.clone();
        self.turn(&mut pass, false, now_ms()).await?;
        Ok(Dispatched::Sent(settled))
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let name = self.target.name.clone();
        let circuit = self.store.circuit(&name).await.unwrap_or_else(|e| {
            tracing::warn!(target_name = %name, error = %e, "cannot read the target's circuit; starting closed");
            Circuit::closed()
        });
        // An open circuit saved before a restart probes soon, not after its long saved wait; the
        // first round saves the nearer probe, for the admin API and the metrics.
        let resumed = circuit.clone().resumed(now_ms(), self.policy());
        let mut pass = Pass::new(resumed);
        pass.circuit_changed = pass.circuit.reopens_at() != circuit.reopens_at();
        let mut outage = 0u32;
        // The last claim found fewer due than it asked for: nothing waits for a free slot.
        let mut drained = false;
        loop {
            let stopping = *stopped.borrow();
            if stopping && pass.is_done() {
                break;
            }
            if !stopping && self.signal.reload.swap(false, Ordering::SeqCst) {
                self.reload(&mut pass.circuit, true).await;
            }
            let now = now_ms();
            let wait = match self.turn(&mut pass, !stopping, now).await {
                Ok(Turn::Round { want, claimed }) => {
                    outage = 0;
                    if want > 0 {
                        drained = claimed < want;
                    }
                    if want > 0 && drained {
                        self.until_next_due(now).await
                    } else {
                        IDLE_WAIT
                    }
                }
                Ok(Turn::Skipped) => {
                    // Disabled: look again now and then, for an enable by another process.
                    if !stopping && pass.circuit.state == CircuitState::Disabled {
                        self.reload(&mut pass.circuit, false).await;
                    }
                    IDLE_WAIT
                }
                Err(e) => {
                    outage += 1;
                    tracing::error!(target_name = %name, error = %e,
                        "dispatcher cannot reach the store; waiting");
                    Duration::from_millis(200 * 2u64.pow(outage.min(5)))
                }
            };
            // An open circuit looks again when its probe may go, whatever the turn did (a probe
            // in flight wakes the loop when it ends).
            let wait = match pass.circuit.reopens_at() {
                Some(at) if at > now && !pass.circuit.probing() => {
                    wait.min(Duration::from_millis((at - now) as u64))
                }
                _ => wait,
            };
            tokio::select! {
                Some(joined) = pass.in_flight.join_next(), if !pass.in_flight.is_empty() => {
                    self.finished_with_others(&mut pass, joined);
                    self.gather(&mut pass, drained, &mut stopped).await;
                }
                _ = self.signal.wake.notified(), if !stopping => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed(), if !stopping => {}
            }
        }
    }

    /// An attempt ended: before its round, the worker lets more end, so that one round records
    /// several outcomes and refills several slots. While more than half of its slots are busy
    /// it waits up to [`GATHER`] for them; when its last claim found nothing more due, up to
    /// [`GATHER_DRAINED`], and the outcomes go with the round that claims the processor's next
    /// notifications. New work (the processor's wake) or a stop ends the wait at once. A round
    /// per ending attempt committed about 9 notifications a round at 3,000 webhooks/s, and the
    /// rounds' commits were most of the dispatcher's share of the store's writing.
    async fn gather(&self, pass: &mut Pass, drained: bool, stopped: &mut watch::Receiver<bool>) {
        let start = tokio::time::Instant::now();
        loop {
            let busy = pass.in_flight.len();
            let until = if drained {
                start + GATHER_DRAINED
            } else if busy * 2 > self.target.concurrency {
                start + GATHER
            } else {
                return;
            };
            if *stopped.borrow() {
                return;
            }
            tokio::select! {
                Some(joined) = pass.in_flight.join_next(), if busy > 0 => {
                    self.finished_with_others(pass, joined);
                }
                _ = self.signal.wake.notified() => return,
                _ = tokio::time::sleep_until(until) => return,
                _ = stopped.changed() => return,
            }
        }
    }

    /// One turn, the same for the loop and for a step: as many claims as the circuit and the free
    /// slots allow (none unless `claim`), in one round with the outcomes that finished and the
    /// circuit if it changed; then the claimed attempts start. No round when there is nothing to
    /// claim or record. On an error nothing recorded is lost: it goes with the next round.
    async fn turn(&self, pass: &mut Pass, claim: bool, now: i64) -> Result<Turn, StoreError> {
        let want = if claim {
            pass.circuit
                .allowance(now, pass.in_flight.len(), self.target.concurrency)
        } else {
            0
        };
        if want == 0 && pass.settled.is_empty() && !pass.circuit_changed && pass.events.is_empty() {
            return Ok(Turn::Skipped);
        }
        let probe = matches!(pass.circuit.state, CircuitState::Open { .. });
        let saved = pass.circuit_changed.then_some(&pass.circuit);
        let work = RoundWork {
            settled: &pass.settled,
            circuit: saved,
            events: &pass.events,
            want,
            probe,
            now,
        };
        let (claimed, times) = self.round(work).await?;
        tracing::debug!(target_name = %self.target.name, settled = pass.settled.len(),
            claimed = claimed.len(), in_flight = pass.in_flight.len(),
            waited_us = times.waited.as_micros() as u64, held_us = times.held.as_micros() as u64,
            commit_us = times.commit.as_micros() as u64, "dispatcher round committed");
        pass.settled.clear();
        pass.circuit_changed = false;
        pass.events.clear();
        if probe && !claimed.is_empty() {
            pass.circuit.probe_started(now);
        }
        let turn = Turn::Round {
            want,
            claimed: claimed.len(),
        };
        for delivery in claimed {
            pass.in_flight.spawn(self.clone().attempt(delivery));
        }
        Ok(turn)
    }

    /// An attempt ended, and with it any others that have ended meanwhile.
    fn finished_with_others(
        &self,
        pass: &mut Pass,
        joined: Result<Finished, tokio::task::JoinError>,
    ) {
        self.finished(pass, joined);
        while let Some(more) = pass.in_flight.try_join_next() {
            self.finished(pass, more);
        }
    }

    /// An attempt ended: the circuit takes it into account, and its outcome waits for the next
    /// round.
    fn finished(&self, pass: &mut Pass, joined: Result<Finished, tokio::task::JoinError>) {
        match joined {
            Ok(f) => {
                let now = now_ms();
                let recorded = pass
                    .circuit
                    .record(&f.attempt, f.started_at, now, self.policy());
                pass.circuit_changed |= recorded.changed;
                let name = &self.target.name;
                match recorded.transition {
                    Some(Transition::Opened { next_probe }) => {
                        pass.events.push(Operational::CircuitOpened {
                            target: name.clone(),
                            reason: pass.circuit.reason.clone().unwrap_or_default(),
                            failures: pass.circuit.failures,
                            next_probe_ms: next_probe,
                        })
                    }
                    // `released` is counted by the round that releases them.
                    Some(Transition::Recovered { down_since }) => {
                        pass.events.push(Operational::Recovered {
                            target: name.clone(),
                            down_since_ms: (down_since > 0).then_some(down_since),
                            released: 0,
                        })
                    }
                    Some(Transition::Disabled) => pass.events.push(Operational::Disabled {
                        target: name.clone(),
                        reason: pass.circuit.reason.clone().unwrap_or_default(),
                        by: "payhook".into(),
                    }),
                    None => {}
                }
                if recorded.failed_probe
                    && let Some(at) = pass.circuit.reopens_at()
                {
                    tracing::info!(target_name = %name, next_probe = %chrono::DateTime::from_timestamp_millis(at).unwrap_or_default(),
                        reason = pass.circuit.reason.as_deref().unwrap_or(""), "the probe failed; the circuit stays open");
                }
                let (settled, spent) = self.settle(&f, recorded.failed_probe);
                // An operational event given up on is not announced again: two failing events
                // targets would otherwise tell each other of it forever.
                let operational = OPERATIONAL_EVENTS.contains(&f.delivery.event.as_str());
                if spent && !operational {
                    pass.events.push(exhausted(&f.delivery, &settled, name));
                }
                pass.settled.push(settled);
            }
            // Its lease ends and it is sent again.
            Err(e) => {
                pass.circuit.probe_lost();
                tracing::error!(target_name = %self.target.name, error = %e, "delivery task failed")
            }
        }
    }

    fn policy(&self) -> CircuitPolicy {
        CircuitPolicy {
            min_attempts: self.target.circuit_failures,
            first_probe: self.target.circuit_open,
        }
    }

    /// One transaction: record finished attempts, save the circuit and write its operational
    /// events (a recovery releases what was held), claim up to `want` (while open: the probe,
    /// due or not).
    async fn round(
        &self,
        work: RoundWork<'_>,
    ) -> Result<(Vec<ClaimedDelivery>, RoundTimes), StoreError> {
        let asked = Instant::now();
        if let Some((leased, waited)) = self.quick_round(work).await? {
            // Its commit is part of `held`.
            let held = asked.elapsed().saturating_sub(waited);
            let commit = Duration::ZERO;
            return Ok((
                leased,
                RoundTimes {
                    waited,
                    held,
                    commit,
                },
            ));
        }
        let RoundWork {
            settled,
            circuit,
            events,
            want,
            probe,
            now,
        } = work;
        let mut tx = self.store.begin_outbox().await?;
        let begun = Instant::now();
        let mut announced = 0;
        tx.settle_deliveries(settled).await?;
        let answers: Vec<&BookingAnswer> = settled
            .iter()
            .filter_map(|s| s.booking_answer.as_ref())
            .collect();
        announced += self.flag_refusals(&mut tx, &answers).await?;
        for event in events {
            let mut event = event.clone();
            if let Operational::Recovered { released, .. } = &mut event {
                *released = tx.release_held(&self.target.name, now).await?;
            }
            announced += event.write(&mut tx, &self.targets, Utc::now()).await?;
        }
        if announced > 0 {
            tx.announce(crate::store::Work::Outbox).await?;
        }
        if let Some(circuit) = circuit {
            tx.save_circuit(&self.target.name, circuit, Utc::now())
                .await?;
        }
        let claimed = if want > 0 {
            let lease = self.lease_until(now);
            if probe {
                tx.claim_probe(&self.target.name, now, lease).await?
            } else {
                tx.claim_deliveries(&self.target.name, now, lease, want as i64)
                    .await?
            }
        } else {
            Vec::new()
        };
        let committing = Instant::now();
        tx.commit().await?;
        let times = RoundTimes {
            waited: begun - asked,
            held: begun.elapsed(),
            commit: committing.elapsed(),
        };
        if announced > 0 {
            self.wake_all.notify();
        }
        Ok((claimed, times))
    }

    /// On SQLite, a round with nothing unusual in it (no operational event, refusal or probe)
    /// runs on the connection itself ([`crate::store::QuickRound`]): `None` when it must go the
    /// general way. Returns the notifications leased and how long it waited for the write lock.
    async fn quick_round(
        &self,
        work: RoundWork<'_>,
    ) -> Result<Option<(Vec<ClaimedDelivery>, Duration)>, StoreError> {
        let Store::Sqlite(store) = &*self.store else {
            return Ok(None);
        };
        let answers = work
            .settled
            .iter()
            .filter_map(|s| s.booking_answer.as_ref());
        if work.probe || !work.events.is_empty() || answers.clone().any(|a| a.refused) {
            return Ok(None);
        }
        let accepted: Vec<i64> = answers.map(|a| a.payment_id).collect();
        store
            .quick_round(QuickRound {
                settled: work.settled,
                accepted: &accepted,
                circuit: work
                    .circuit
                    .map(|c| (self.target.name.as_str(), c, Utc::now())),
                lease: (work.want > 0).then(|| Lease {
                    target: &self.target.name,
                    now_ms: work.now,
                    until: self.lease_until(work.now),
                    limit: work.want as i64,
                }),
            })
            .await
    }

    /// Long enough for the attempt and its settling; an instance that dies mid-attempt leaves the
    /// notification to be sent again when the lease ends.
    fn lease_until(&self, now: i64) -> i64 {
        now + 2 * self.target.timeout.as_millis() as i64 + 5_000
    }

    /// Money was taken for a booking the booking service will not confirm (cancelled, say, after
    /// an abandoned session expired): the payment is flagged `booking_refused` and the events
    /// targets hear `payment.needs_attention`, in the transaction that records the refusal. A
    /// `confirmed` accepted later (an operator restored the booking and retried) clears the flag.
    /// The round's answers are judged over one read of their payments: a statement per answer
    /// held the round's transaction (on SQLite, the write lock) for about a millisecond each.
    /// An acceptance changes a payment only by clearing its flag, so only the refused and the
    /// flagged are read: most rounds read none (a payment's row decoded cost about 15 µs of the
    /// lock each). Returns how many notifications it wrote.
    async fn flag_refusals(
        &self,
        tx: &mut crate::store::WriteTx,
        answers: &[&BookingAnswer],
    ) -> Result<usize, StoreError> {
        // No answers: neither read asks anything of the store.
        let (refused, accepted): (Vec<&BookingAnswer>, Vec<&BookingAnswer>) =
            answers.iter().partition(|a| a.refused);
        let accepted: Vec<i64> = accepted.iter().map(|a| a.payment_id).collect();
        let mut ids = tx.flagged_payments(&accepted).await?;
        ids.extend(refused.iter().map(|a| a.payment_id));
        ids.sort_unstable();
        ids.dedup();
        let mut payments: HashMap<i64, Payment> = tx
            .payments_by(&ids, &[])
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let mut written = 0;
        // In the order the answers came: a later answer about the same payment sees the earlier.
        for refusal in answers {
            let Some(payment) = payments.get_mut(&refusal.payment_id) else {
                continue;
            };
            written += self.flag_refusal(tx, payment, refusal).await?;
        }
        Ok(written)
    }

    async fn flag_refusal(
        &self,
        tx: &mut crate::store::WriteTx,
        payment: &mut Payment,
        refusal: &BookingAnswer,
    ) -> Result<usize, StoreError> {
        let before = payment.state.clone();
        let flag = refusal.refused && before.status.is_paid();
        if !payment.state.flag(Attention::BookingRefused, flag) {
            return Ok(0);
        }
        let now = Utc::now();
        payment.updated_at = now;
        tx.save_payments(&[&*payment]).await?;
        if !flag {
            return Ok(0);
        }
        tracing::warn!(target_name = %self.target.name, payment_id = payment.id,
            booking_id = payment.state.booking_id.as_deref().unwrap_or(""), answer = %refusal.answer,
            "the booking service refused to confirm a paid booking; the payment needs attention");
        let deliveries = deliveries_for(
            &self.targets,
            &Change {
                cause: (
                    refusal.source.as_deref().unwrap_or(""),
                    refusal.source_event_id.as_deref().unwrap_or(""),
                ),
                payment_id: payment.id,
                before: std::slice::from_ref(&before),
                after: &payment.state,
                booking_before: None,
                booking_after: None,
                booking_told: &[],
            },
            now,
        );
        let rows: Vec<_> = deliveries
            .into_iter()
            .map(|d| {
                let due = first_due(&self.targets, &d, now);
                (d, due)
            })
            .collect();
        tx.insert_deliveries(&rows, now).await?;
        Ok(rows.len())
    }

    async fn until_next_due(&self, now: i64) -> Duration {
        match self.store.next_delivery_due(&self.target.name).await {
            // At least a few ms: a due row another instance holds must not make us spin.
            Ok(Some(due)) => {
                Duration::from_millis((due - now).clamp(5, IDLE_WAIT.as_millis() as i64) as u64)
            }
            Ok(None) | Err(_) => IDLE_WAIT,
        }
    }

    /// The circuit as the store has it, after an operator enabled or disabled the target
    /// (`operator`: this process's admin API said so) or possibly another process did. Only a
    /// change of state is taken: a circuit in memory knows more than its saved copy (the
    /// window, the probe), and unless an operator acted only a disable or an enable counts.
    async fn reload(&self, circuit: &mut Circuit, operator: bool) {
        let Ok(saved) = self.store.circuit(&self.target.name).await else {
            return;
        };
        let disabled = CircuitState::Disabled;
        if (saved.state == disabled) != (circuit.state == disabled)
            || (operator && saved.state.as_str() != circuit.state.as_str())
        {
            *circuit = saved.resumed(now_ms(), self.policy());
        }
    }

    /// Sends one notification and reports how it went; never fails.
    async fn attempt(self, delivery: ClaimedDelivery) -> Finished {
        let span = crate::telemetry::enabled().then(|| self.attempt_span(&delivery));
        // The target hears which span the attempt is, to make its own spans children of it.
        let traceparent = span.as_ref().and_then(crate::telemetry::traceparent);
        let request = self.request(&delivery).map(|r| match &traceparent {
            Some(traceparent) => r.header(crate::telemetry::TRACEPARENT, traceparent),
            None => r,
        });
        let started = Instant::now();
        let started_at = now_ms();
        let attempt = match request {
            Ok(request) => match request.timeout(self.target.timeout).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, Utc::now()));
                    match answer_start(response).await {
                        Ok(kept) => Attempt::Answered {
                            status,
                            retry_after,
                            body: String::from_utf8_lossy(&kept).into_owned(),
                        },
                        // An answer cut off or stalled within the timeout is no answer, even
                        // after a 2xx status line: the attempt is retried.
                        Err(e) => Attempt::NoAnswer(format!(
                            "HTTP {status}, then the answer's body did not arrive: {}",
                            crate::net::describe(&e)
                        )),
                    }
                }
                Err(e) => Attempt::NoAnswer(crate::net::describe(&e)),
            },
            Err(why) => Attempt::NoAnswer(why),
        };
        Finished {
            delivery,
            attempt,
            started_at,
            elapsed: started.elapsed(),
            span,
        }
    }

    /// A `delivery.attempt` span, the child of the ledger span that wrote the notification (in
    /// the trace of the webhook that caused it), or the root of a trace of its own for a row
    /// written while tracing was off.
    fn attempt_span(&self, d: &ClaimedDelivery) -> tracing::Span {
        use tracing::field::Empty;
        let method = match self.target.kind {
            TargetKind::BookingStatus => "PUT",
            TargetKind::Events => "POST",
        };
        let host = self
            .url
            .as_ref()
            .ok()
            .and_then(|u| u.host_str())
            .unwrap_or_default();
        let span = tracing::info_span!(target: crate::telemetry::TARGET, parent: None,
            "delivery.attempt", otel.kind = "client", payhook.target = %self.target.name,
            payhook.target.kind = self.target.kind.as_str(),
            payhook.notification_id = %d.notification_id, payhook.notification.event = %d.event,
            payhook.booking_id = d.booking_id.as_deref().unwrap_or(""),
            payhook.event_id = d.source_event_id.as_deref().unwrap_or(""),
            payhook.delivery.attempt = d.attempts + 1, http.request.method = method,
            server.address = %host, http.response.status_code = Empty,
            payhook.delivery.outcome = Empty, otel.status_description = Empty);
        crate::telemetry::continue_from(&span, d.trace_context.as_deref());
        span
    }

    fn request(&self, d: &ClaimedDelivery) -> Result<reqwest::RequestBuilder, String> {
        let target = &self.target;
        let body = d.payload.clone();
        match target.kind {
            TargetKind::BookingStatus => {
                let booking = d
                    .booking_id
                    .as_deref()
                    .ok_or("a booking-status notification without a booking id")?;
                let mut url = self.url.clone()?;
                url.path_segments_mut()
                    .map_err(|_| "the target URL cannot take a path".to_string())?
                    .pop_if_empty()
                    .extend(["api", "v1", "bookings", booking, "payment-status"]);
                let mut request = self
                    .client
                    .put(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("X-Service-Name", "payment-gateway-service")
                    .header("X-Request-Id", d.notification_id.as_str())
                    .body(body);
                if let Some(token) = &target.token {
                    request = request.bearer_auth(token.expose());
                }
                Ok(request)
            }
            TargetKind::Events => {
                if self.signing_keys.is_empty() {
                    return Err("the events target has no signing secret".into());
                }
                let timestamp = Utc::now().timestamp();
                // "webhook-signature: v1,<new> v1,<old>" while a secret is rotated.
                let signature = self
                    .signing_keys
                    .iter()
                    .map(|key| {
                        super::sign(key, d.notification_id.as_str(), timestamp, body.as_bytes())
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                Ok(self
                    .client
                    .post(self.url.clone()?)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("webhook-id", d.notification_id.as_str())
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", signature)
                    .body(body))
            }
        }
    }

    /// What an attempt means for its notification, as it is recorded; logs it. A failed probe
    /// of an open circuit is recorded but does not spend the notification's retry schedule: the
    /// outage is the circuit's business, and the notification stays first in line.
    /// Also says whether the notification went dead because its retry schedule is spent.
    fn settle(&self, f: &Finished, failed_probe: bool) -> (Settled, bool) {
        let d = &f.delivery;
        let now = Utc::now();
        let attempts = d.attempts + i64::from(!failed_probe);
        let (last_status, answer) = match &f.attempt {
            Attempt::Answered { status, body, .. } => (
                Some(i64::from(*status)),
                format!("{status} {}", body.trim()),
            ),
            Attempt::NoAnswer(why) => (None, why.clone()),
        };
        let mut spent = false;
        let record = crate::store::AttemptRecord {
            started_at: f.started_at,
            latency_ms: f.elapsed.as_millis() as i64,
            answer: answer.clone(),
        };
        let (status, next_attempt_at, error) = match verdict(&f.attempt) {
            Verdict::Retry { .. } if failed_probe => (
                DeliveryStatus::Pending,
                now.timestamp_millis(),
                Some(format!("{answer} (a probe: the circuit is open)")),
            ),
            Verdict::Delivered => (DeliveryStatus::Delivered, now.timestamp_millis(), None),
            Verdict::Retry { retry_after } => {
                match next_delay(&self.target.retry_schedule, attempts as usize, retry_after) {
                    Some(delay) => (
                        DeliveryStatus::Pending,
                        now.timestamp_millis() + delay.as_millis() as i64,
                        Some(answer),
                    ),
                    None => {
                        spent = true;
                        (
                            DeliveryStatus::Dead,
                            now.timestamp_millis(),
                            Some(format!("gave up after {attempts} attempts; last: {answer}")),
                        )
                    }
                }
            }
            Verdict::Dead => (DeliveryStatus::Dead, now.timestamp_millis(), Some(answer)),
            // Sent again as soon as the target is re-enabled.
            Verdict::Gone => (
                DeliveryStatus::Pending,
                now.timestamp_millis(),
                Some(format!("{answer} (the target is disabled)")),
            ),
        };
        let latency_ms = f.elapsed.as_millis() as u64;
        let outcome = match (&f.attempt, status) {
            (_, DeliveryStatus::Delivered) => "delivered",
            (_, DeliveryStatus::Dead) => "dead",
            (Attempt::NoAnswer(_), _) => "no_answer",
            _ => "retry",
        };
        if let Some(span) = &f.span {
            if let Some(code) = last_status {
                span.record("http.response.status_code", code);
            }
            span.record("payhook.delivery.outcome", outcome);
            if let Some(error) = &error {
                span.record("otel.status_description", error.as_str());
            }
        }
        metrics::counter!("payhook_delivery_attempts_total",
            "target" => self.target.name.clone(), "outcome" => outcome)
        .increment(1);
        metrics::histogram!("payhook_delivery_seconds", "target" => self.target.name.clone())
            .record(f.elapsed.as_secs_f64());
        match &error {
            None => {
                tracing::info!(target_name = %self.target.name, notification_id = %d.notification_id,
                booking_id = d.booking_id.as_deref().unwrap_or(""), r#type = %d.event,
                source = d.source.as_deref().unwrap_or(""), event_id = d.source_event_id.as_deref().unwrap_or(""),
                attempt = attempts, latency_ms, outcome = status.as_str(), "notification delivered")
            }
            Some(error) => {
                tracing::warn!(target_name = %self.target.name, notification_id = %d.notification_id,
                booking_id = d.booking_id.as_deref().unwrap_or(""), r#type = %d.event,
                source = d.source.as_deref().unwrap_or(""), event_id = d.source_event_id.as_deref().unwrap_or(""),
                attempt = attempts, latency_ms, outcome = status.as_str(), %error, "notification not delivered")
            }
        }
        let booking_answer = match (self.target.kind, status, d.event.as_str(), d.payment_id) {
            (
                TargetKind::BookingStatus,
                DeliveryStatus::Dead | DeliveryStatus::Delivered,
                "confirmed",
                Some(payment_id),
            ) => Some(BookingAnswer {
                payment_id,
                refused: status == DeliveryStatus::Dead,
                source: d.source.clone(),
                source_event_id: d.source_event_id.clone(),
                answer: error.clone().unwrap_or_default(),
            }),
            _ => None,
        };
        let settled = Settled {
            id: d.id,
            status,
            attempts,
            next_attempt_at,
            last_status,
            last_error: error,
            delivered_at: (status == DeliveryStatus::Delivered).then_some(now),
            booking_answer,
            attempt: record,
        };
        (settled, spent)
    }
}

/// The `delivery.exhausted` event of a notification that went dead because its retry schedule
/// is spent (not one a target refused for good: that is an answer, not an outage).
fn exhausted(d: &ClaimedDelivery, s: &Settled, target: &str) -> Operational {
    Operational::Exhausted {
        target: target.to_string(),
        notification_id: d.notification_id.to_string(),
        event: d.event.clone(),
        booking_id: d.booking_id.clone(),
        payment_id: d.payment_id,
        attempts: s.attempts,
        last_error: s.last_error.clone().unwrap_or_default(),
    }
}
