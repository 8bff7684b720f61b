//! The store: one contract, [`Store`], over SQLite (the embedded default) and PostgreSQL
//! (several instances sharing one database). Each backend writes its SQL out in its own folder;
//! the SQL both dialects accept is in [`sql`], as constants; rows are read with `FromRow`;
//! migrations live in `migrations/<backend>/`. A worker's writes go through one [`WriteTx`].
//!
//! The contract is an enum rather than a trait: there are exactly two backends, known when
//! payhook is built, and a `match` keeps each call's destination one go-to-definition away
//! without boxing every future an `async` trait object would need on the ingest path.

mod bulk;
mod checkout;
mod depths;
mod events;
mod listing;
mod lookup;
mod outbox;
mod payments;
mod postgres;
mod sql;
mod sqlite;
mod tx;

use crate::domain::SqliteSync;
use crate::domain::delivery::Circuit;
use crate::domain::state::Payment;
use crate::domain::status::DeliveryStatus;

pub use bulk::{DeliverySelection, EventSelection, Selection};
pub use checkout::{SandboxIntent, Session};
pub use depths::DepthsCache;
pub use events::{
    Claim, ClaimedEvent, EventFilter, EventSummary, Failure, NewEvent, StoredEvent, ToFetch,
};
pub use lookup::{AttemptRow, FactRow};
pub use outbox::{
    AttemptRecord, BookingAnswer, ClaimedDelivery, Delivery, RetrySelection, Settled,
};
pub use payments::{Depths, PaymentKey, StoredFact};
pub use postgres::PgStore;
pub use sqlite::{Lease, QuickRound, SqliteStore, attach_inbox_of, copy_inbox, inbox_file};
pub use tx::{BatchWrites, Marks, WriteTx};

/// Each variant says its cause once, in its own message: none is a `source`, so an error chain
/// (`{:#}`) does not repeat the driver's words.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("the store could not be migrated: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// The store was migrated by a later payhook: this one does not know its schema.
    #[error(
        "the store was migrated by a later payhook (its migration {0} is unknown to payhook {v}): \
         run that version, or restore the backup taken before the upgrade",
        v = env!("CARGO_PKG_VERSION")
    )]
    Newer(i64),
    #[error("the inbox commit failed: {0}")]
    CommitFailed(String),
    #[error("the inbox writer has stopped")]
    WriterGone,
    #[error("the store holds data payhook cannot read: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // A column payhook cannot read (a status word it does not write): the store was
            // changed by hand or by a later payhook.
            sqlx::Error::ColumnDecode { .. } => StoreError::Corrupt(e.to_string()),
            e => StoreError::Unavailable(e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::VersionMissing(version) => StoreError::Newer(version),
            e => StoreError::Migrate(e),
        }
    }
}

#[cfg(test)]
impl Store {
    /// A migrated SQLite store in `dir`, for unit tests.
    pub(crate) async fn scratch(dir: &tempfile::TempDir) -> std::sync::Arc<Store> {
        let url = format!("sqlite://{}/payhook.db", dir.path().display());
        let store = Store::connect(&url, crate::domain::SqliteSync::Full)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        std::sync::Arc::new(store)
    }
}

/// The store, on one of its backends.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// The `payhook_settings` row where retention keeps the last event id it examined.
pub const RETENTION_CURSOR: &str = "retention_cursor";

/// Work instances sharing a PostgreSQL store announce to each other (`LISTEN`/`NOTIFY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// New events in the inbox: processors wake.
    Inbox,
    /// New notifications in the outbox: dispatchers wake.
    Outbox,
}

impl Work {
    pub fn channel(self) -> &'static str {
        match self {
            Work::Inbox => "payhook_inbox",
            Work::Outbox => "payhook_outbox",
        }
    }

    pub fn from_channel(channel: &str) -> Option<Work> {
        [Work::Inbox, Work::Outbox]
            .into_iter()
            .find(|w| w.channel() == channel)
    }
}

impl Store {
    /// Opens the store named by a `DATABASE_URL` (`sqlite://PATH` or `postgres://...`).
    pub async fn connect(url: &str, sync: SqliteSync) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::connect(url, sync).await?))
        } else {
            Ok(Store::Postgres(PgStore::connect(url).await?))
        }
    }

    /// A dispatcher round waits for the write lock a ledger batch holds (SQLite's one writer per
    /// file; PostgreSQL's transactions do not wait on each other's).
    pub fn outbox_waits(&self) -> bool {
        match self {
            Store::Sqlite(s) => s.outbox_waits(),
            Store::Postgres(_) => false,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.migrate().await,
            Store::Postgres(s) => s.migrate().await,
        }
    }

    /// Inserts a batch in one transaction. The batch holds each `(source, event_id)` at most once; the
    /// answer says, per row, whether it was new (`true`) or already stored. Nothing is reported until
    /// the transaction has committed.
    pub async fn insert_events(&self, batch: &[NewEvent]) -> Result<Vec<bool>, StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_events(batch).await,
            Store::Postgres(s) => Ok(events::inserted_flags(
                batch,
                &s.insert_events(batch).await?,
            )),
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    pub async fn event(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        match self {
            Store::Sqlite(s) => s.event(source, event_id).await,
            Store::Postgres(s) => s.event(source, event_id).await,
        }
    }

    pub async fn event_by_id(&self, id: i64) -> Result<Option<StoredEvent>, StoreError> {
        match self {
            Store::Sqlite(s) => s.event_by_id(id).await,
            Store::Postgres(s) => s.event_by_id(id).await,
        }
    }

    /// Up to `limit` events numbered after `after`, in order (the event stream).
    pub async fn events_from(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match self {
            Store::Sqlite(s) => s.events_from(after, limit).await,
            Store::Postgres(s) => s.events_from(after, limit).await,
        }
    }

    pub async fn count_events(&self) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(s) => s.count_events().await,
            Store::Postgres(s) => s.count_events().await,
        }
    }

    /// Stores `value` under `name` unless a value is already there; returns the value that is kept.
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, StoreError> {
        match self {
            Store::Sqlite(s) => s.setting_or_insert(name, value).await,
            Store::Postgres(s) => s.setting_or_insert(name, value).await,
        }
    }

    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.setting(name).await,
            Store::Postgres(s) => s.setting(name).await,
        }
    }

    /// Stores `value` under `name`, replacing what was there.
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.set_setting(name, value).await,
            Store::Postgres(s) => s.set_setting(name, value).await,
        }
    }

    /// Starts a ledger transaction (SQLite: a write transaction from the first statement).
    pub async fn begin_ledger(&self) -> Result<WriteTx, StoreError> {
        match self {
            Store::Sqlite(s) => s.begin_ledger().await,
            Store::Postgres(s) => s.begin_ledger().await,
        }
    }

    /// Starts a dispatcher round. On SQLite it commits without waiting for fsync: delivery
    /// bookkeeping lost to a power cut means a notification sent again, with the same id.
    pub async fn begin_outbox(&self) -> Result<WriteTx, StoreError> {
        match self {
            Store::Sqlite(s) => s.begin_outbox().await,
            Store::Postgres(s) => s.begin_outbox().await,
        }
    }

    /// When the earliest waiting retry is due (unix ms), if any.
    pub async fn next_retry_due(&self) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.next_retry_due().await,
            Store::Postgres(s) => s.next_retry_due().await,
        }
    }

    /// Puts an event back in line (status `received`, attempts reset); false if there is no such event.
    pub async fn requeue_event(&self, id: i64) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.requeue_event(id).await,
            Store::Postgres(s) => s.requeue_event(id).await,
        }
    }

    pub async fn event_row_id(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.event_row_id(source, event_id).await,
            Store::Postgres(s) => s.event_row_id(source, event_id).await,
        }
    }

    /// Inbox events, newest first, optionally of one status.
    pub async fn list_events(
        &self,
        filter: &EventFilter,
        limit: i64,
    ) -> Result<Vec<EventSummary>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_events(filter, limit).await,
            Store::Postgres(s) => s.list_events(filter, limit).await,
        }
    }

    /// How many events, notifications and payments are in each status.
    pub async fn depths(&self) -> Result<Depths, StoreError> {
        match self {
            Store::Sqlite(s) => s.depths().await,
            Store::Postgres(s) => s.depths().await,
        }
    }

    /// Payments, newest first, of one booking and/or status, older than `before` (an id).
    pub async fn list_payments(
        &self,
        booking_id: Option<&str>,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Payment>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_payments(booking_id, status, before, limit).await,
            Store::Postgres(s) => s.list_payments(booking_id, status, before, limit).await,
        }
    }

    /// Thin events waiting for their related object, due by `now_ms`, oldest first.
    pub async fn events_to_fetch(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<ToFetch>, StoreError> {
        match self {
            Store::Sqlite(s) => s.events_to_fetch(now_ms, limit).await,
            Store::Postgres(s) => s.events_to_fetch(now_ms, limit).await,
        }
    }

    /// Keeps a thin event's fetched object and puts the event back in line.
    pub async fn store_fetched(&self, id: i64, fetched: &[u8]) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.store_fetched(id, fetched).await,
            Store::Postgres(s) => s.store_fetched(id, fetched).await,
        }
    }

    /// A fetch that did not work: wait until `next_attempt_at`, or fail for good with `None`.
    pub async fn fetch_failed(
        &self,
        id: i64,
        attempts: i64,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.fetch_failed(id, attempts, error, next_attempt_at).await,
            Store::Postgres(s) => s.fetch_failed(id, attempts, error, next_attempt_at).await,
        }
    }

    /// Marks a waiting notification `rejected`: the provider's API denied it.
    pub async fn fetch_rejected(
        &self,
        id: i64,
        attempts: i64,
        error: &str,
        answer: &[u8],
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.fetch_rejected(id, attempts, error, answer).await,
            Store::Postgres(s) => s.fetch_rejected(id, attempts, error, answer).await,
        }
    }

    pub async fn next_fetch_due(&self) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.next_fetch_due().await,
            Store::Postgres(s) => s.next_fetch_due().await,
        }
    }

    /// Payments by booking id or checkout session id, oldest first.
    pub async fn payments_where(
        &self,
        key: PaymentKey,
        value: &str,
    ) -> Result<Vec<Payment>, StoreError> {
        match self {
            Store::Sqlite(s) => s.payments_where(key, value).await,
            Store::Postgres(s) => s.payments_where(key, value).await,
        }
    }

    /// A target's saved circuit (closed when none was saved).
    pub async fn circuit(&self, target: &str) -> Result<Circuit, StoreError> {
        match self {
            Store::Sqlite(s) => s.circuit(target).await,
            Store::Postgres(s) => s.circuit(target).await,
        }
    }

    /// Closes a target's circuit: a target disabled by a 410 is delivered to again.
    pub async fn reset_circuit(&self, target: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.reset_circuit(target).await,
            Store::Postgres(s) => s.reset_circuit(target).await,
        }
    }

    /// When the next claimable notification of `target` is due (unix ms), if any.
    pub async fn next_delivery_due(&self, target: &str) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.next_delivery_due(target).await,
            Store::Postgres(s) => s.next_delivery_due(target).await,
        }
    }

    /// Ends every delivery lease: only for a single instance (SQLite) starting up.
    pub async fn release_leases(&self, now_ms: i64) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.release_leases(now_ms).await,
            Store::Postgres(s) => s.release_leases(now_ms).await,
        }
    }

    /// Notifications, newest first, optionally of one target and status.
    pub async fn list_deliveries(
        &self,
        target: Option<&str>,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_deliveries(target, status, before, limit).await,
            Store::Postgres(s) => s.list_deliveries(target, status, before, limit).await,
        }
    }

    /// Puts notifications back in line, due now; returns the ids requeued.
    pub async fn retry_deliveries(
        &self,
        which: RetrySelection<'_>,
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.retry_deliveries(which, now_ms).await,
            Store::Postgres(s) => s.retry_deliveries(which, now_ms).await,
        }
    }

    pub async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_session(session).await,
            Store::Postgres(s) => s.insert_session(session).await,
        }
    }

    /// The checkout session payhook created under this id, if any.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        match self {
            Store::Sqlite(s) => s.session(id).await,
            Store::Postgres(s) => s.session(id).await,
        }
    }

    /// Moves a session from status `from` to `to` (and its payment status); false if it was not
    /// in `from`: of two racing moves, one wins.
    pub async fn move_session(
        &self,
        id: &str,
        from: &str,
        to: &str,
        payment_status: &str,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.move_session(id, from, to, payment_status).await,
            Store::Postgres(s) => s.move_session(id, from, to, payment_status).await,
        }
    }

    /// Open sessions of `provider` whose expiry (unix s) has passed, oldest first, 100 at most.
    pub async fn expired_sessions(
        &self,
        provider: &str,
        now: i64,
    ) -> Result<Vec<Session>, StoreError> {
        match self {
            Store::Sqlite(s) => s.expired_sessions(provider, now).await,
            Store::Postgres(s) => s.expired_sessions(provider, now).await,
        }
    }

    pub async fn save_sandbox_intent(&self, intent: &SandboxIntent) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.save_sandbox_intent(intent).await,
            Store::Postgres(s) => s.save_sandbox_intent(intent).await,
        }
    }

    /// A sandbox intent by its id, its checkout session's id, or (the latest) by booking id.
    pub async fn find_sandbox_intent(
        &self,
        key: &str,
    ) -> Result<Option<SandboxIntent>, StoreError> {
        match self {
            Store::Sqlite(s) => s.find_sandbox_intent(key).await,
            Store::Postgres(s) => s.find_sandbox_intent(key).await,
        }
    }

    /// The id window `(after, upto]` a bulk job walks: what is stored now, from `since` on.
    pub async fn selection_window(&self, s: &Selection) -> Result<(i64, i64), StoreError> {
        match self {
            Store::Sqlite(st) => st.selection_window(s).await,
            Store::Postgres(st) => st.selection_window(s).await,
        }
    }

    /// How many rows of the selection lie in the window.
    pub async fn count_selected(
        &self,
        s: &Selection,
        after: i64,
        upto: i64,
    ) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(st) => st.count_selected(s, after, upto).await,
            Store::Postgres(st) => st.count_selected(s, after, upto).await,
        }
    }

    /// The next `limit` ids of the selection after `after`, in id order.
    pub async fn selected_ids(
        &self,
        s: &Selection,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        match self {
            Store::Sqlite(st) => st.selected_ids(s, after, upto, limit).await,
            Store::Postgres(st) => st.selected_ids(s, after, upto, limit).await,
        }
    }

    /// The first `limit` events of a selection (a dry run's sample), oldest first.
    pub async fn selected_events(
        &self,
        s: &EventSelection,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<EventSummary>, StoreError> {
        match self {
            Store::Sqlite(st) => st.selected_events(s, upto, limit).await,
            Store::Postgres(st) => st.selected_events(s, upto, limit).await,
        }
    }

    /// The first `limit` notifications of a selection, oldest first.
    pub async fn selected_deliveries(
        &self,
        s: &DeliverySelection,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        match self {
            Store::Sqlite(st) => st.selected_deliveries(s, upto, limit).await,
            Store::Postgres(st) => st.selected_deliveries(s, upto, limit).await,
        }
    }

    /// Puts these rows of a selection back in line (those still in its status), in one short
    /// transaction; returns how many moved.
    pub async fn requeue_selected(
        &self,
        s: &Selection,
        ids: &[i64],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        match self {
            Store::Sqlite(st) => st.requeue_selected(s, ids, now_ms).await,
            Store::Postgres(st) => st.requeue_selected(s, ids, now_ms).await,
        }
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}
