//! Applies a group of claimed events to the ledger in a few statements, whatever its size: the
//! payments, provider ids and facts the group's events name are read in one pass, the events are
//! applied one after the other to that copy in memory (in claim order, exactly as if each had been
//! applied to the store alone), and what changed is written back in one statement per table.
//!
//! Any error leaves the caller's transaction to roll the group back; the processor then applies
//! the events one at a time, so the one that cannot apply is the only one set aside.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::facts::Interpretation;
use crate::config::{TargetKind, TargetSettings};
use crate::domain::delivery::NewDelivery;
use crate::domain::facts::Fact;
use crate::domain::ids::NotificationId;
use crate::domain::state::Payment;
use crate::domain::state::{Attention, PaymentState, derive, duplicates, representative};
use crate::domain::status::EventStatus;
use crate::notify::changes::log_attention;
use crate::notify::{Change, deliveries_for, first_due};
use crate::store::{BatchWrites, ClaimedEvent, StoreError, WriteTx};

/// What applying one event did.
#[derive(Debug)]
pub struct Applied {
    /// `processed`, `ignored`, `waiting` for its object, or `failed` for an event that can
    /// never apply.
    pub status: EventStatus,
    /// Why it can never apply.
    pub error: Option<String>,
    /// Notifications written to the outbox.
    pub notified: usize,
    /// The payment's booking.
    pub booking_id: Option<String>,
}

impl Applied {
    fn with(status: EventStatus) -> Applied {
        Applied {
            status,
            error: None,
            notified: 0,
            booking_id: None,
        }
    }
}

/// Applies `events` (each with what its payload says) and marks them, inside `tx`. The caller
/// holds the locks on every provider id and booking the events name.
pub async fn apply_events(
    tx: &mut WriteTx,
    events: &[(&ClaimedEvent, &Interpretation)],
    targets: &[TargetSettings],
    now: DateTime<Utc>,
) -> Result<Vec<Applied>, StoreError> {
    let facts: Vec<(&str, &Fact)> = events
        .iter()
        .filter_map(|(e, reading)| match reading {
            Interpretation::Fact(f) => Some((e.source.as_str(), &**f)),
            _ => None,
        })
        .collect();
    let told = targets.iter().any(|t| t.kind == TargetKind::BookingStatus);
    let mut ledger = Working::read(tx, &facts, told).await?;
    let mut applied = Vec::with_capacity(events.len());
    for (event, reading) in events {
        let done = match reading {
            Interpretation::Ignored => Applied::with(EventStatus::Ignored),
            Interpretation::Fetch => Applied::with(EventStatus::Waiting),
            Interpretation::NoPayment(why) => Applied {
                error: Some(why.clone()),
                ..Applied::with(EventStatus::Ignored)
            },
            Interpretation::Invalid(why) => Applied {
                error: Some(why.clone()),
                ..Applied::with(EventStatus::Failed)
            },
            Interpretation::Fact(fact) => {
                let written = ledger.deliveries.len();
                let applied = ledger.apply(tx, &event.source, fact, targets, now).await?;
                // Its notifications continue the event's trace (tracing on).
                if let Some(trace) = &event.trace_context {
                    for (delivery, _) in &ledger.deliveries[written..] {
                        let id = delivery.notification_id.clone();
                        ledger.traces.push((id, trace.clone()));
                    }
                }
                applied
            }
        };
        ledger
            .marks
            .push((event.id, done.status, done.error.clone()));
        applied.push(done);
    }
    ledger.write(tx, now).await?;
    Ok(applied)
}

/// The part of the ledger a group of events touches, as it stands after the events applied so
/// far, and the writes that bring the store there.
#[derive(Default)]
struct Working {
    /// (source, provider id) → payment, for every id the group's facts carry that is known.
    refs: HashMap<(String, String), i64>,
    /// Payments read or created, as they stand now.
    payments: BTreeMap<i64, Payment>,
    /// Every fact of a payment, for those whose facts were read or that were created here.
    facts: HashMap<i64, Vec<Fact>>,
    /// Bookings whose every payment is in `payments`.
    bookings: HashSet<String>,
    /// (booking, status) a booking-status target was told, in the store or in this group.
    told: HashSet<(String, String)>,
    /// Payments created here: not in the store yet.
    created: HashSet<i64>,
    /// Payments to write back.
    changed: BTreeSet<i64>,
    /// Payments merged into another here, and which.
    merged: HashMap<i64, i64>,
    /// Ids reserved for new payments, not used yet; and how many to reserve.
    spare_ids: Vec<i64>,
    to_reserve: usize,
    // The writes, in the order they were made.
    merges: Vec<(i64, i64)>,
    new_refs: Vec<(String, String, i64)>,
    new_facts: Vec<(String, i64, Fact)>,
    deliveries: Vec<(NewDelivery, i64)>,
    /// The trace context each new notification continues (tracing on).
    traces: Vec<(NotificationId, String)>,
    marks: Vec<(i64, EventStatus, Option<String>)>,
}

impl Working {
    /// Reads, in a handful of statements, what `facts` will touch: the payments their provider
    /// ids belong to, with their facts, and every payment of their bookings (a booking is all its
    /// payments: duplicates and notifications are decided over them), and, with `told`, what a
    /// booking service was already told of those bookings.
    async fn read(
        tx: &mut WriteTx,
        facts: &[(&str, &Fact)],
        told: bool,
    ) -> Result<Self, StoreError> {
        let mut ledger = Working::default();
        let mut by_source: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (source, fact) in facts {
            by_source.entry(source).or_default().extend(fact.refs.ids());
        }
        for (source, ids) in by_source {
            let ids: Vec<&str> = ids.into_iter().collect();
            for (id, payment) in tx.refs_of(source, &ids).await? {
                ledger.refs.insert((source.to_string(), id), payment);
            }
        }
        ledger.to_reserve = facts
            .iter()
            .filter(|(source, f)| {
                f.refs.ids().into_iter().all(|id| {
                    !ledger
                        .refs
                        .contains_key(&(source.to_string(), id.to_string()))
                })
            })
            .count();
        let found: Vec<i64> = ledger
            .refs
            .values()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let bookings: BTreeSet<&str> = facts
            .iter()
            .filter_map(|(_, f)| f.booking_id.as_deref())
            .collect();
        let bookings: Vec<&str> = bookings.into_iter().collect();
        let rows = tx.payments_by(&found, &bookings).await?;
        ledger.take_in(rows, &bookings);
        // The bookings of the payments found through their ids, which the facts may not name.
        let more: BTreeSet<String> = ledger
            .payments
            .values()
            .filter_map(|p| p.state.booking_id.clone())
            .filter(|b| !ledger.bookings.contains(b))
            .collect();
        let more: Vec<&str> = more.iter().map(String::as_str).collect();
        let rows = tx.payments_by(&[], &more).await?;
        ledger.take_in(rows, &more);
        if told {
            let all: Vec<&str> = bookings.iter().chain(&more).copied().collect();
            ledger.told = tx.told_bookings(&all).await?.into_iter().collect();
        }
        for &id in &found {
            ledger.facts.entry(id).or_default();
        }
        for (payment, fact) in tx.facts_of(&found).await? {
            ledger.facts.entry(payment).or_default().push(fact);
        }
        Ok(ledger)
    }

    /// Keeps the payments read from the store that this group has not already changed (or
    /// merged away); `bookings` are then complete.
    fn take_in(&mut self, rows: Vec<Payment>, bookings: &[&str]) {
        for p in rows {
            if !self.merged.contains_key(&p.id) {
                self.payments.entry(p.id).or_insert(p);
            }
        }
        self.bookings.extend(bookings.iter().map(|b| b.to_string()));
    }

    /// Adds `fact` to its payment (creating it, or joining the payments the fact shows to be
    /// one), derives the payment from all its facts, and queues the notifications the change
    /// causes.
    async fn apply(
        &mut self,
        tx: &mut WriteTx,
        source: &str,
        fact: &Fact,
        targets: &[TargetSettings],
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        let found: Vec<i64> = fact
            .refs
            .ids()
            .into_iter()
            .filter_map(|id| self.refs.get(&(source.to_string(), id.to_string())))
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let before: Vec<Payment> = found
            .iter()
            .map(|id| self.payment(*id).cloned())
            .collect::<Result<_, _>>()?;
        // A payment already stored outlives one created in this group: its id is the one other
        // rows may already name.
        let keep = found
            .iter()
            .copied()
            .find(|id| !self.created.contains(id))
            .or(found.first().copied());
        let payment = match keep {
            None => {
                let id = self.new_id(tx).await?;
                self.payments.insert(
                    id,
                    Payment {
                        id,
                        source: source.to_string(),
                        state: derive(std::slice::from_ref(fact)),
                        created_at: now,
                        updated_at: now,
                    },
                );
                self.created.insert(id);
                self.facts.insert(id, Vec::new());
                id
            }
            Some(keep) => {
                for &other in found.iter().filter(|&&id| id != keep) {
                    self.merge(other, keep);
                }
                keep
            }
        };
        for id in fact.refs.ids() {
            if let Entry::Vacant(slot) = self.refs.entry((source.to_string(), id.to_string())) {
                slot.insert(payment);
                self.new_refs
                    .push((source.to_string(), id.to_string(), payment));
            }
        }
        let facts = self
            .facts
            .get_mut(&payment)
            .ok_or_else(|| missing(payment))?;
        if !facts.iter().any(|f| f.event_id == fact.event_id) {
            facts.push(fact.clone());
            self.new_facts
                .push((source.to_string(), payment, fact.clone()));
        }
        let mut after = derive(facts);
        // What payhook learnt outside the provider's facts (the booking service's refusal) stays.
        if before
            .iter()
            .any(|p| p.state.needs(Attention::BookingRefused))
        {
            after.flag(Attention::BookingRefused, true);
        }
        self.set_state(payment, after, now)?;

        // The booking as a whole: its payments now (duplicates flagged), and as they were.
        let (booking_after, others) = match self.payment(payment)?.state.booking_id.clone() {
            Some(booking) => self.assess_booking(tx, &booking, now).await?,
            None => (Vec::new(), Vec::new()),
        };
        let others: Vec<_> = others
            .into_iter()
            .filter(|(id, ..)| *id != payment && !found.contains(id))
            .collect();
        let after = self.payment(payment)?.state.clone();
        let mut applied = Applied {
            booking_id: after.booking_id.clone(),
            ..Applied::with(EventStatus::Processed)
        };
        if targets.is_empty() {
            return Ok(applied);
        }
        let changed = |p: &Payment| p.id == payment || found.contains(&p.id);
        let booking_before: Vec<Payment> = booking_after
            .iter()
            .filter(|p| !changed(p))
            .map(|p| {
                // Another payment of the booking whose duplicate flag this change moved.
                match others.iter().find(|(id, ..)| *id == p.id) {
                    Some((_, was, _)) => Payment {
                        state: was.clone(),
                        ..p.clone()
                    },
                    None => p.clone(),
                }
            })
            .chain(
                before
                    .iter()
                    .filter(|p| p.state.booking_id == after.booking_id)
                    .cloned(),
            )
            .collect();
        let before_states: Vec<PaymentState> = before.into_iter().map(|p| p.state).collect();
        let told: Vec<&str> = match &after.booking_id {
            Some(booking) => self
                .told
                .iter()
                .filter(|(b, _)| b == booking)
                .map(|(_, status)| status.as_str())
                .collect(),
            None => Vec::new(),
        };
        let change = Change {
            cause: (source, &fact.event_id),
            payment_id: payment,
            before: &before_states,
            after: &after,
            booking_before: representative(&booking_before).map(|p| &p.state),
            booking_after: representative(&booking_after).map(|p| &p.state),
            booking_told: &told,
        };
        log_attention(&change);
        let mut deliveries = deliveries_for(targets, &change, now);
        // The booking's other payments that this change showed to be duplicates: news for
        // subscribers, not for the booking service (the booking's own change is above).
        for (other, was, is) in &others {
            let change = Change {
                cause: (source, &fact.event_id),
                payment_id: *other,
                before: std::slice::from_ref(was),
                after: is,
                booking_before: None,
                booking_after: None,
                booking_told: &[],
            };
            log_attention(&change);
            deliveries.extend(deliveries_for(targets, &change, now));
        }
        for d in deliveries.iter().filter(|d| d.booking_status) {
            if let Some(booking) = &d.booking_id {
                self.told.insert((booking.clone(), d.event.clone()));
            }
        }
        applied.notified = deliveries.len();
        for delivery in deliveries {
            let due = first_due(targets, &delivery, now);
            self.deliveries.push((delivery, due));
        }
        Ok(applied)
    }

    /// Replaces a payment's state; it is written back with the group.
    fn set_state(
        &mut self,
        id: i64,
        state: PaymentState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let row = self.payments.get_mut(&id).ok_or_else(|| missing(id))?;
        row.state = state;
        row.updated_at = now;
        self.changed.insert(id);
        Ok(())
    }

    /// Flags the booking's duplicate payments (and unflags the others). Returns the booking's
    /// payments as they stand now, and each payment other than the ones just changed whose flag
    /// moved, with its state before and after.
    async fn assess_booking(
        &mut self,
        tx: &mut WriteTx,
        booking: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Payment>, Vec<(i64, PaymentState, PaymentState)>), StoreError> {
        let payments = self.booking_payments(tx, booking).await?;
        let duplicates = duplicates(&payments);
        let mut moved = Vec::new();
        for p in &payments {
            let mut state = p.state.clone();
            if state.flag(Attention::Duplicate, duplicates.contains(&p.id)) {
                moved.push((p.id, p.state.clone(), state.clone()));
                self.set_state(p.id, state, now)?;
            }
        }
        let payments = self.booking_payments(tx, booking).await?;
        Ok((payments, moved))
    }

    fn payment(&self, id: i64) -> Result<&Payment, StoreError> {
        self.payments.get(&id).ok_or_else(|| missing(id))
    }

    /// Moves everything known about payment `from` onto `into`; `from` is gone.
    fn merge(&mut self, from: i64, into: i64) {
        let moved = self.facts.remove(&from).unwrap_or_default();
        self.facts.entry(into).or_default().extend(moved);
        for payment in self.refs.values_mut() {
            if *payment == from {
                *payment = into;
            }
        }
        self.payments.remove(&from);
        self.changed.remove(&from);
        if !self.created.remove(&from) {
            self.merges.push((from, into));
        }
        self.merged.insert(from, into);
    }

    /// The payment a row written for `id` belongs to now.
    fn owner(&self, mut id: i64) -> i64 {
        while let Some(&into) = self.merged.get(&id) {
            id = into;
        }
        id
    }

    /// An id for a new payment. The first call reserves as many as the group may need: one per
    /// fact none of whose provider ids was known when the group was read.
    async fn new_id(&mut self, tx: &mut WriteTx) -> Result<i64, StoreError> {
        if self.spare_ids.is_empty() {
            let mut ids = tx.reserve_payment_ids(self.to_reserve.max(1)).await?;
            ids.reverse();
            self.spare_ids = ids;
        }
        self.spare_ids
            .pop()
            .ok_or_else(|| StoreError::Corrupt("no payment id was reserved".into()))
    }

    /// Every payment of a booking as it stands now, oldest first.
    async fn booking_payments(
        &mut self,
        tx: &mut WriteTx,
        booking: &str,
    ) -> Result<Vec<Payment>, StoreError> {
        if !self.bookings.contains(booking) {
            let rows = tx.payments_by(&[], &[booking]).await?;
            self.take_in(rows, &[booking]);
        }
        Ok(self
            .payments
            .values()
            .filter(|p| p.state.booking_id.as_deref() == Some(booking))
            .cloned()
            .collect())
    }

    /// Writes what the group changed: merges first (so no two rows hold one provider id), then
    /// each table in one statement (all of them in one on PostgreSQL).
    async fn write(self, tx: &mut WriteTx, now: DateTime<Utc>) -> Result<(), StoreError> {
        for &(from, into) in &self.merges {
            tx.merge_payment(from, into).await?;
        }
        let writes = BatchWrites {
            payments: self
                .changed
                .iter()
                .filter_map(|id| self.payments.get(id))
                .collect(),
            refs: self
                .new_refs
                .iter()
                .map(|(s, r, p)| (s.as_str(), r.as_str(), self.owner(*p)))
                .collect(),
            facts: self
                .new_facts
                .iter()
                .map(|(s, p, f)| (s.as_str(), self.owner(*p), f))
                .collect(),
            marks: self
                .marks
                .iter()
                .map(|(id, status, error)| (*id, *status, error.as_deref()))
                .collect(),
            deliveries: &self.deliveries,
        };
        tx.write_batch(&writes, now).await?;
        tx.trace_deliveries(&self.traces).await
    }
}

/// A payment the group's ids lead to but that it does not hold: the store changed under the
/// transaction, or a bug. The group is rolled back and its events applied one by one.
fn missing(id: i64) -> StoreError {
    StoreError::Corrupt(format!("payment {id} is not in the batch being applied"))
}
