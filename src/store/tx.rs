//! The one write transaction type: a ledger batch, a dispatcher round, a retention sweep. Each
//! method runs the backend's function of the same name on the transaction's connection.

use chrono::{DateTime, Utc};

use super::events::{Claim, ClaimedEvent, Failure};
use super::outbox::{ClaimedDelivery, Settled};
use super::payments::StoredFact;
use super::sql;
use super::sqlite::SqliteTx;
use super::{PgStore, SqliteStore, StoreError, Work};
use crate::domain::delivery::{Circuit, NewDelivery};
use crate::domain::facts::Fact;
use crate::domain::ids::NotificationId;
use crate::domain::state::Payment;
use crate::domain::status::EventStatus;

/// A write transaction on the store: a ledger batch, a dispatcher round, a retention sweep.
/// Dropping it without [`WriteTx::commit`] rolls everything back.
pub enum WriteTx {
    /// With the store's write gate held: SQLite has one writer, and waiting on the gate is fair and
    /// immediate where SQLite's own busy handler sleeps and retries.
    Sqlite(SqliteTx),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl WriteTx {
    pub async fn claim(&mut self, claim: Claim) -> Result<Vec<ClaimedEvent>, StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, unmarked, .. }) => {
                let unmarked = unmarked.as_ref().map(|u| u.json());
                SqliteStore::claim(tx, claim, unmarked.as_deref().unwrap_or("[]")).await
            }
            WriteTx::Postgres(tx) => PgStore::claim(tx, claim).await,
        }
    }

    /// Serializes, across instances, every transaction touching one of these keys (`source:id`
    /// for each provider id), so two workers never create two payments for one. Keys must be
    /// sorted and taken all at once, before any is used, so no two transactions wait in a cycle.
    pub async fn lock_refs(&mut self, keys: &[String]) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::lock_refs(tx, keys).await,
            WriteTx::Postgres(tx) => PgStore::lock_refs(tx, keys).await,
        }
    }

    /// Opens the savepoint a part of the batch (all of it, or one event) is applied under.
    pub async fn begin_part(&mut self) -> Result<(), StoreError> {
        if let WriteTx::Sqlite(s) = self {
            s.inbox.begin_part();
        }
        self.execute("SAVEPOINT part").await
    }

    /// Keeps the part's changes (they commit with the transaction).
    pub async fn keep_part(&mut self) -> Result<(), StoreError> {
        self.execute("RELEASE SAVEPOINT part").await
    }

    /// Undoes the part's changes alone; the rest of the transaction stands.
    pub async fn undo_part(&mut self) -> Result<(), StoreError> {
        if let WriteTx::Sqlite(s) = self {
            s.inbox.undo_part();
        }
        self.execute("ROLLBACK TO SAVEPOINT part").await?;
        self.execute("RELEASE SAVEPOINT part").await
    }

    pub async fn record_failure(&mut self, id: i64, failure: &Failure) -> Result<(), StoreError> {
        match self {
            // Written to the inbox's file after the commit (see `SqliteTx`).
            WriteTx::Sqlite(s) => {
                s.inbox.failed(id, failure);
                Ok(())
            }
            WriteTx::Postgres(tx) => PgStore::record_failure(tx, id, failure).await,
        }
    }

    /// Which payments `source`'s provider ids `refs` belong to, for those that are known.
    pub async fn refs_of(
        &mut self,
        source: &str,
        refs: &[&str],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::refs_of(tx, source, refs).await,
            WriteTx::Postgres(tx) => PgStore::refs_of(tx, source, refs).await,
        }
    }

    /// The payments with these ids and every payment of these bookings, oldest first.
    pub async fn payments_by(
        &mut self,
        ids: &[i64],
        bookings: &[&str],
    ) -> Result<Vec<Payment>, StoreError> {
        if ids.is_empty() && bookings.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => {
                SqliteStore::payments_by(tx, ids, bookings).await
            }
            WriteTx::Postgres(tx) => PgStore::payments_by(tx, ids, bookings).await,
        }
    }

    /// Of these payments, the ids of those flagged for attention (for any reason).
    pub async fn flagged_payments(&mut self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::flagged_payments(tx, ids).await,
            WriteTx::Postgres(tx) => PgStore::flagged_payments(tx, ids).await,
        }
    }

    /// Every fact of these payments, with its payment.
    pub async fn facts_of(&mut self, payment_ids: &[i64]) -> Result<Vec<(i64, Fact)>, StoreError> {
        if payment_ids.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::facts_of(tx, payment_ids).await,
            WriteTx::Postgres(tx) => PgStore::facts_of(tx, payment_ids).await,
        }
    }

    /// (booking, status) these bookings were already told by a booking-status target.
    pub async fn told_bookings(
        &mut self,
        bookings: &[&str],
    ) -> Result<Vec<(String, String)>, StoreError> {
        if bookings.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::told_bookings(tx, bookings).await,
            WriteTx::Postgres(tx) => PgStore::told_bookings(tx, bookings).await,
        }
    }

    /// `n` ids no other payment has or will get, for payments this transaction creates.
    pub async fn reserve_payment_ids(&mut self, n: usize) -> Result<Vec<i64>, StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::reserve_payment_ids(tx, n).await,
            WriteTx::Postgres(tx) => PgStore::reserve_payment_ids(tx, n).await,
        }
    }

    pub async fn merge_payment(&mut self, from: i64, into: i64) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => {
                SqliteStore::merge_payment(tx, from, into).await
            }
            WriteTx::Postgres(tx) => PgStore::merge_payment(tx, from, into).await,
        }
    }

    /// Ties (source, provider id) to payments; ids already tied stay put.
    pub async fn insert_refs(&mut self, refs: &[(&str, &str, i64)]) -> Result<(), StoreError> {
        if refs.is_empty() {
            return Ok(());
        }
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::insert_refs(tx, refs).await,
            WriteTx::Postgres(tx) => PgStore::insert_refs(tx, refs).await,
        }
    }

    /// Records (source, payment, fact) rows; a fact already recorded is skipped.
    pub async fn insert_facts(&mut self, facts: &[(&str, i64, &Fact)]) -> Result<(), StoreError> {
        if facts.is_empty() {
            return Ok(());
        }
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::insert_facts(tx, facts).await,
            WriteTx::Postgres(tx) => PgStore::insert_facts(tx, facts).await,
        }
    }

    /// Writes these payments' rows: new ones under their reserved ids, the others updated.
    pub async fn save_payments(&mut self, payments: &[&Payment]) -> Result<(), StoreError> {
        if payments.is_empty() {
            return Ok(());
        }
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::save_payments(tx, payments).await,
            WriteTx::Postgres(tx) => PgStore::save_payments(tx, payments).await,
        }
    }

    pub async fn facts_with_payloads(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredFact>, StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => {
                SqliteStore::facts_with_payloads(tx, after, limit).await
            }
            WriteTx::Postgres(tx) => PgStore::facts_with_payloads(tx, after, limit).await,
        }
    }

    pub async fn rewrite_fact(&mut self, id: i64, fact: Option<&Fact>) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::rewrite_fact(tx, id, fact).await,
            WriteTx::Postgres(tx) => PgStore::rewrite_fact(tx, id, fact).await,
        }
    }

    pub async fn payment_ids_after(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => {
                SqliteStore::payment_ids_after(tx, after, limit).await
            }
            WriteTx::Postgres(tx) => PgStore::payment_ids_after(tx, after, limit).await,
        }
    }

    pub async fn drop_empty_payments(&mut self) -> Result<u64, StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::drop_empty_payments(tx).await,
            WriteTx::Postgres(tx) => PgStore::drop_empty_payments(tx).await,
        }
    }

    pub async fn bookings_paid_twice(&mut self) -> Result<Vec<String>, StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::bookings_paid_twice(tx).await,
            WriteTx::Postgres(tx) => PgStore::bookings_paid_twice(tx).await,
        }
    }

    pub async fn requeue_ignored(&mut self, event_type: &str) -> Result<u64, StoreError> {
        match self {
            // At once, on the inbox's file: if this transaction then fails, the events are applied
            // again, as they would be after it.
            WriteTx::Sqlite(s) => SqliteStore::requeue_ignored(s.inbox.pool(), event_type).await,
            WriteTx::Postgres(tx) => PgStore::requeue_ignored(tx, event_type).await,
        }
    }

    /// One batch of retention; see the backends' `prune_payloads`.
    pub async fn prune_payloads(
        &mut self,
        after: i64,
        cutoff: DateTime<Utc>,
        batch: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<(i64, u64)>, StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, inbox, .. }) => {
                SqliteStore::prune_payloads(tx, inbox.pool(), after, cutoff, batch, now).await
            }
            WriteTx::Postgres(tx) => PgStore::prune_payloads(tx, after, cutoff, batch, now).await,
        }
    }

    /// Marks (event, status, error) done.
    pub async fn finish_events(
        &mut self,
        marks: &[(i64, EventStatus, Option<&str>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        match self {
            // Written to the inbox's file after the commit (see `SqliteTx`).
            WriteTx::Sqlite(s) => {
                s.inbox.finished(marks, now);
                Ok(())
            }
            WriteTx::Postgres(tx) => PgStore::finish_events(tx, marks, now).await,
        }
    }

    /// Writes what a ledger batch changed, table by table (each part may be empty). SQLite runs
    /// a statement per table; PostgreSQL one for all, a round trip instead of five.
    pub async fn write_batch(
        &mut self,
        w: &BatchWrites<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if let WriteTx::Postgres(tx) = self
            && !w.is_empty()
        {
            return PgStore::write_batch(tx, w, now).await;
        }
        self.save_payments(&w.payments).await?;
        self.insert_refs(&w.refs).await?;
        self.insert_facts(&w.facts).await?;
        self.finish_events(&w.marks, now).await?;
        self.insert_deliveries(w.deliveries, now).await
    }

    /// Writes notifications to the outbox, in order, each due at its time (unix ms).
    pub async fn insert_deliveries(
        &mut self,
        deliveries: &[(NewDelivery, i64)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => {
                SqliteStore::insert_deliveries(tx, deliveries, now).await
            }
            WriteTx::Postgres(tx) => PgStore::insert_deliveries(tx, deliveries, now).await,
        }
    }

    /// Keeps with each notification just written (by id) the `traceparent` of the span that
    /// caused it. A statement of its own, run only when tracing is on, so that the outbox's insert
    /// is the same with tracing off.
    pub async fn trace_deliveries(
        &mut self,
        traces: &[(NotificationId, String)],
    ) -> Result<(), StoreError> {
        if traces.is_empty() {
            return Ok(());
        }
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => SqliteStore::trace_deliveries(tx, traces).await,
            WriteTx::Postgres(tx) => PgStore::trace_deliveries(tx, traces).await,
        }
    }

    pub async fn claim_deliveries(
        &mut self,
        target: &str,
        now_ms: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.claim_due_by(target, now_ms, now_ms, lease_until, limit)
            .await
    }

    /// Leases the next notification of `target` an open circuit probes with: the oldest pending
    /// one of an order key, due or not (a target that is back must be noticed whatever the
    /// notifications' own retry waits).
    pub async fn claim_probe(
        &mut self,
        target: &str,
        now_ms: i64,
        lease_until: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        self.claim_due_by(target, now_ms, i64::MAX, lease_until, 1)
            .await
    }

    async fn claim_due_by(
        &mut self,
        target: &str,
        now_ms: i64,
        due_by: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => {
                SqliteStore::claim_deliveries(tx, target, now_ms, due_by, lease_until, limit).await
            }
            WriteTx::Postgres(tx) => {
                PgStore::claim_deliveries(tx, target, now_ms, due_by, lease_until, limit).await
            }
        }
    }

    /// Enables `target` (closes its circuit, whatever disabled or opened it) and releases its
    /// held notifications ([`WriteTx::release_held`]); returns how many were released.
    pub async fn enable_target(&mut self, target: &str, now_ms: i64) -> Result<u64, StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => {
                sqlx::query(sql::RESET_CIRCUIT)
                    .bind(target)
                    .execute(&mut **tx)
                    .await?;
            }
            WriteTx::Postgres(tx) => {
                sqlx::query(sql::RESET_CIRCUIT)
                    .bind(target)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        self.release_held(target, now_ms).await
    }

    /// Makes every pending notification of `target` that waits for a later retry due at
    /// `now_ms` (the target recovered or was enabled: what was held goes now, in order).
    /// Returns how many.
    pub async fn release_held(&mut self, target: &str, now_ms: i64) -> Result<u64, StoreError> {
        let done = match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => sqlx::query(sql::RELEASE_HELD)
                .bind(target)
                .bind(now_ms)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            WriteTx::Postgres(tx) => sqlx::query(sql::RELEASE_HELD)
                .bind(target)
                .bind(now_ms)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        };
        Ok(done)
    }

    /// Records a round's finished attempts: the row of each, and the attempt in its history.
    pub async fn settle_deliveries(&mut self, settled: &[Settled]) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => {
                SqliteStore::settle_deliveries(tx, settled).await
            }
            WriteTx::Postgres(tx) => PgStore::settle_deliveries(tx, settled).await,
        }
    }

    pub async fn save_circuit(
        &mut self,
        target: &str,
        circuit: &Circuit,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => {
                SqliteStore::save_circuit(tx, target, circuit, now).await
            }
            WriteTx::Postgres(tx) => PgStore::save_circuit(tx, target, circuit, now).await,
        }
    }

    /// Runs a statement both dialects share, on the transaction's connection.
    async fn execute(&mut self, sql: &'static str) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => {
                sqlx::query(sql).execute(&mut **tx).await?;
            }
            WriteTx::Postgres(tx) => {
                sqlx::query(sql).execute(&mut **tx).await?;
            }
        }
        Ok(())
    }

    /// True when the backend serializes transactions by itself (SQLite's single writer), so
    /// [`WriteTx::lock_refs`] has nothing to do and need not be prepared for.
    pub fn serialized(&self) -> bool {
        matches!(self, WriteTx::Sqlite(..))
    }

    /// Undoes everything, and releases the claim (and SQLite's write lock) before the caller
    /// records the failure.
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(SqliteTx { tx, .. }) => tx.rollback().await?,
            WriteTx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// Tells the other instances sharing a PostgreSQL store, when this transaction commits, that
    /// `work` is waiting (`LISTEN`/`NOTIFY`). SQLite has one instance: nothing to do.
    pub async fn announce(&mut self, work: Work) -> Result<(), StoreError> {
        if let WriteTx::Postgres(tx) = self {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(work.channel())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.commit_leaving_marks().await?.write().await
    }

    /// Commits, leaving to [`Marks::write`] the marks on the events the transaction applied, on
    /// SQLite whose inbox is a file of its own (see [`SqliteTx`]): the next ledger transaction
    /// may claim and apply meanwhile; it skips these events. On PostgreSQL the marks were part of
    /// the transaction.
    pub async fn commit_leaving_marks(self) -> Result<Marks, StoreError> {
        Ok(Marks(match self {
            WriteTx::Sqlite(s) => Some(s.commit().await?),
            WriteTx::Postgres(tx) => {
                tx.commit().await?;
                None
            }
        }))
    }
}

/// The marks a committed transaction still has to write on its events ([`WriteTx::commit_leaving_marks`]).
#[must_use = "the events stay unmarked, and are applied again, unless the marks are written"]
pub struct Marks(Option<super::sqlite::PendingMarks>);

impl Marks {
    pub async fn write(self) -> Result<(), StoreError> {
        match self.0 {
            Some(marks) => marks.write().await,
            None => Ok(()),
        }
    }
}

/// What a ledger batch writes ([`WriteTx::write_batch`]): payments' rows from their state (new
/// ones under their reserved ids), (source, provider id, payment) ties and (source, payment,
/// fact) rows each kept once, (event, status, error) marks, and notifications in order, each due
/// at its time (unix ms).
pub struct BatchWrites<'a> {
    pub payments: Vec<&'a Payment>,
    pub refs: Vec<(&'a str, &'a str, i64)>,
    pub facts: Vec<(&'a str, i64, &'a Fact)>,
    pub marks: Vec<(i64, EventStatus, Option<&'a str>)>,
    pub deliveries: &'a [(NewDelivery, i64)],
}

impl BatchWrites<'_> {
    fn is_empty(&self) -> bool {
        self.payments.is_empty()
            && self.refs.is_empty()
            && self.facts.is_empty()
            && self.marks.is_empty()
            && self.deliveries.is_empty()
    }
}
