//! The store: one contract over SQLite (embedded default) and PostgreSQL (several instances).
//! SQL the dialects share is written once where it can be; the rest lives in each backend's file,
//! with its migrations in `migrations/<backend>/`.

/// The methods whose SQL both dialects accept (sqlx binds `$N` placeholders on SQLite too),
/// written once and expanded into each backend's `impl` with its own pool and row types.
macro_rules! shared_queries {
    ($row:ty) => {
        /// Applies this backend's `MIGRATIONS`.
        pub async fn migrate(&self) -> Result<(), StoreError> {
            super::migrator(MIGRATIONS).run(&self.pool).await?;
            Ok(())
        }

        /// The rows of a listing of `table`, newest first: those equal to each filter that is set
        /// (column, value), older than `before`.
        async fn listing_rows(
            &self,
            table: &str,
            filters: &[(&str, Option<&str>)],
            before: Option<i64>,
            limit: i64,
        ) -> Result<Vec<$row>, StoreError> {
            let set: Vec<(bool, &str)> = filters.iter().map(|(c, v)| (v.is_some(), *c)).collect();
            let sql = super::listing_sql(table, &set, before.is_some());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for value in filters.iter().filter_map(|(_, v)| *v) {
                query = query.bind(value.to_string());
            }
            if let Some(before) = before {
                query = query.bind(before);
            }
            Ok(query.bind(limit).fetch_all(&self.pool).await?)
        }

        pub async fn ping(&self) -> Result<(), StoreError> {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        }

        pub async fn event(
            &self,
            source: &str,
            event_id: &str,
        ) -> Result<Option<StoredEvent>, StoreError> {
            self.find_event(None, source, event_id).await
        }

        pub async fn event_by_id(&self, id: i64) -> Result<Option<StoredEvent>, StoreError> {
            self.find_event(Some(id), "", "").await
        }

        async fn find_event(
            &self,
            id: Option<i64>,
            source: &str,
            event_id: &str,
        ) -> Result<Option<StoredEvent>, StoreError> {
            let row = sqlx::query(
                "SELECT id, source, event_id, event_type, status, payload,
                        CAST(headers AS TEXT) AS headers, received_at, attempts, last_error, pruned_at
                 FROM webhook_events WHERE id = $1 OR (source = $2 AND event_id = $3)",
            )
            .bind(id)
            .bind(source)
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r: $row| {
                Ok(StoredEvent {
                    id: r.try_get("id")?,
                    source: r.try_get("source")?,
                    event_id: r.try_get("event_id")?,
                    event_type: r.try_get("event_type")?,
                    status: super::event_status(r.try_get("status")?)?,
                    payload: r.try_get("payload")?,
                    headers: r.try_get("headers")?,
                    received_at: r.try_get("received_at")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    pruned_at: r.try_get("pruned_at")?,
                })
            })
            .transpose()
        }

        pub async fn count_events(&self) -> Result<i64, StoreError> {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events")
                .fetch_one(&self.pool)
                .await?)
        }

        pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, StoreError> {
            sqlx::query(
                "INSERT INTO payhook_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
            Ok(self.setting(name).await?.unwrap_or_else(|| value.to_string()))
        }

        pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO payhook_settings (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
            Ok(sqlx::query_scalar("SELECT value FROM payhook_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?)
        }

        pub async fn close(&self) {
            self.pool.close().await;
        }
    };
}

mod batches;
#[macro_use]
mod checkout;
#[macro_use]
mod ledger;
#[macro_use]
mod outbox;
mod depths;
mod postgres;
mod sqlite;

use std::borrow::Cow;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::domain::SqliteSync;
use crate::domain::delivery::Circuit;
use crate::domain::state::Payment;
use crate::domain::status::{DeliveryStatus, EventStatus};

pub use checkout::{SandboxIntent, Session};
pub use depths::DepthsCache;
pub use ledger::{
    Claim, ClaimedEvent, Depths, EventFilter, EventSummary, Failure, PaymentKey, StoredFact,
    ToFetch, WriteTx,
};
pub use outbox::{BookingAnswer, ClaimedDelivery, Delivery, RetrySelection, Settled};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// The SQL of a listing, newest first, its placeholders numbered `$1`, `$2`... in the order its
/// values are bound. Only the filters that are set are named, so the plan uses their index (a
/// generic `$1 IS NULL OR column = $1` form makes the planner scan everything when a rare value
/// is asked for).
#[derive(Default)]
struct ListingSql {
    params: usize,
    conditions: Vec<String>,
}

impl ListingSql {
    fn param(&mut self) -> String {
        self.params += 1;
        format!("${}", self.params)
    }

    /// `column = $n` for each filter that is set, in order.
    fn equals(mut self, filters: &[(bool, &str)]) -> Self {
        for (_, column) in filters.iter().filter(|(set, _)| *set) {
            let param = self.param();
            self.conditions.push(format!("{column} = {param}"));
        }
        self
    }

    /// `head` (`[WITH ...] SELECT ... FROM table`) with the conditions, then the cursor
    /// (`id < $n`) when `before` is set, then the limit.
    fn sql(mut self, head: &str, before: bool) -> String {
        if before {
            let param = self.param();
            self.conditions.push(format!("id < {param}"));
        }
        let limit = self.param();
        let filters = if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        };
        format!("{head} {filters} ORDER BY id DESC LIMIT {limit}")
    }
}

/// A listing of `table`: an equality for each of `filters` that is set, the cursor, the limit.
fn listing_sql(table: &str, filters: &[(bool, &str)], before: bool) -> String {
    ListingSql::default()
        .equals(filters)
        .sql(&format!("SELECT * FROM {table}"), before)
}

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
        StoreError::Unavailable(e)
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

/// A verified webhook on its way into the inbox.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    /// The exact bytes received.
    pub payload: Bytes,
    /// The request headers as a JSON object, signatures redacted.
    pub headers: String,
    pub received_at: DateTime<Utc>,
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

#[cfg(test)]
impl NewEvent {
    /// A minimal Stripe event with this id, received now.
    pub(crate) fn sample(id: &str) -> NewEvent {
        NewEvent {
            source: "stripe".into(),
            event_id: id.into(),
            event_type: "payment_intent.succeeded".into(),
            payload: "{}".into(),
            headers: "{}".into(),
            received_at: Utc::now(),
        }
    }
}

/// An inbox row.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    pub status: EventStatus,
    pub payload: Vec<u8>,
    pub headers: String,
    pub received_at: DateTime<Utc>,
    /// Attempts made at applying it to the ledger.
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When retention emptied its payload and headers (it was applied long ago).
    pub pruned_at: Option<DateTime<Utc>>,
}

impl StoredEvent {
    /// The row as listings show it.
    pub fn summary(&self) -> EventSummary {
        EventSummary {
            id: self.id,
            source: self.source.clone(),
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            status: self.status,
            attempts: self.attempts,
            last_error: self.last_error.clone(),
            received_at: self.received_at,
            booking_id: None,
        }
    }
}

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

/// Calls the backend's method of the same name.
macro_rules! on_store {
    ($store:expr, $f:ident($($arg:expr),*)) => {
        match $store {
            Store::Sqlite(s) => s.$f($($arg),*).await,
            Store::Postgres(s) => s.$f($($arg),*).await,
        }
    };
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

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        on_store!(self, migrate())
    }

    /// Inserts a batch in one transaction. The batch holds each `(source, event_id)` at most once; the
    /// answer says, per row, whether it was new (`true`) or already stored. Nothing is reported until
    /// the transaction has committed.
    pub async fn insert_events(&self, batch: &[NewEvent]) -> Result<Vec<bool>, StoreError> {
        let inserted = on_store!(self, insert_events(batch))?;
        Ok(batch
            .iter()
            .map(|e| inserted.contains(&(e.source.clone(), e.event_id.clone())))
            .collect())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        on_store!(self, ping())
    }

    pub async fn event(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        on_store!(self, event(source, event_id))
    }

    pub async fn event_by_id(&self, id: i64) -> Result<Option<StoredEvent>, StoreError> {
        on_store!(self, event_by_id(id))
    }

    pub async fn count_events(&self) -> Result<i64, StoreError> {
        on_store!(self, count_events())
    }

    /// Stores `value` under `name` unless a value is already there; returns the value that is kept.
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, StoreError> {
        on_store!(self, setting_or_insert(name, value))
    }

    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        on_store!(self, setting(name))
    }

    /// Stores `value` under `name`, replacing what was there.
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        on_store!(self, set_setting(name, value))
    }

    /// Starts a ledger transaction (SQLite: a write transaction from the first statement).
    pub async fn begin_ledger(&self) -> Result<WriteTx, StoreError> {
        on_store!(self, begin_ledger())
    }

    /// Starts a dispatcher round. On SQLite it commits without waiting for fsync: delivery
    /// bookkeeping lost to a power cut means a notification sent again, with the same id.
    pub async fn begin_outbox(&self) -> Result<WriteTx, StoreError> {
        on_store!(self, begin_outbox())
    }

    /// When the earliest waiting retry is due (unix ms), if any.
    pub async fn next_retry_due(&self) -> Result<Option<i64>, StoreError> {
        on_store!(self, next_retry_due())
    }

    /// Puts an event back in line (status `received`, attempts reset); false if there is no such event.
    pub async fn requeue_event(&self, id: i64) -> Result<bool, StoreError> {
        on_store!(self, requeue_event(id))
    }

    pub async fn event_row_id(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        on_store!(self, event_row_id(source, event_id))
    }

    /// Inbox events, newest first, optionally of one status.
    pub async fn list_events(
        &self,
        filter: &EventFilter,
        limit: i64,
    ) -> Result<Vec<EventSummary>, StoreError> {
        on_store!(self, list_events(filter, limit))
    }

    /// How many events, notifications and payments are in each status.
    pub async fn depths(&self) -> Result<Depths, StoreError> {
        on_store!(self, depths())
    }

    /// Payments, newest first, of one booking and/or status, older than `before` (an id).
    pub async fn list_payments(
        &self,
        booking_id: Option<&str>,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Payment>, StoreError> {
        on_store!(self, list_payments(booking_id, status, before, limit))
    }

    /// Thin events waiting for their related object, due by `now_ms`, oldest first.
    pub async fn events_to_fetch(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<ToFetch>, StoreError> {
        on_store!(self, events_to_fetch(now_ms, limit))
    }

    /// Keeps a thin event's fetched object and puts the event back in line.
    pub async fn store_fetched(&self, id: i64, fetched: &[u8]) -> Result<bool, StoreError> {
        on_store!(self, store_fetched(id, fetched))
    }

    /// A fetch that did not work: wait until `next_attempt_at`, or fail for good with `None`.
    pub async fn fetch_failed(
        &self,
        id: i64,
        attempts: i64,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<(), StoreError> {
        on_store!(self, fetch_failed(id, attempts, error, next_attempt_at))
    }

    pub async fn next_fetch_due(&self) -> Result<Option<i64>, StoreError> {
        on_store!(self, next_fetch_due())
    }

    /// Payments by booking id or checkout session id, oldest first.
    pub async fn payments_where(
        &self,
        key: PaymentKey,
        value: &str,
    ) -> Result<Vec<Payment>, StoreError> {
        on_store!(self, payments_where(key, value))
    }

    /// A target's saved circuit (closed when none was saved).
    pub async fn circuit(&self, target: &str) -> Result<Circuit, StoreError> {
        on_store!(self, circuit(target))
    }

    /// Closes a target's circuit: a target disabled by a 410 is delivered to again.
    pub async fn reset_circuit(&self, target: &str) -> Result<(), StoreError> {
        on_store!(self, reset_circuit(target))
    }

    /// When the next claimable notification of `target` is due (unix ms), if any.
    pub async fn next_delivery_due(&self, target: &str) -> Result<Option<i64>, StoreError> {
        on_store!(self, next_delivery_due(target))
    }

    /// Ends every delivery lease: only for a single instance (SQLite) starting up.
    pub async fn release_leases(&self, now_ms: i64) -> Result<u64, StoreError> {
        on_store!(self, release_leases(now_ms))
    }

    /// Notifications, newest first, optionally of one target and status.
    pub async fn list_deliveries(
        &self,
        target: Option<&str>,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        on_store!(self, list_deliveries(target, status, before, limit))
    }

    /// Puts notifications back in line, due now; returns the ids requeued.
    pub async fn retry_deliveries(
        &self,
        which: RetrySelection<'_>,
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        on_store!(self, retry_deliveries(which, now_ms))
    }

    pub async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        on_store!(self, insert_session(session))
    }

    /// The checkout session payhook created under this id, if any.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        on_store!(self, session(id))
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
        on_store!(self, move_session(id, from, to, payment_status))
    }

    /// Open sessions of `provider` whose expiry (unix s) has passed, oldest first, 100 at most.
    pub async fn expired_sessions(
        &self,
        provider: &str,
        now: i64,
    ) -> Result<Vec<Session>, StoreError> {
        on_store!(self, expired_sessions(provider, now))
    }

    pub async fn save_sandbox_intent(&self, intent: &SandboxIntent) -> Result<(), StoreError> {
        on_store!(self, save_sandbox_intent(intent))
    }

    /// A sandbox intent by its id, its checkout session's id, or (the latest) by booking id.
    pub async fn find_sandbox_intent(
        &self,
        key: &str,
    ) -> Result<Option<SandboxIntent>, StoreError> {
        on_store!(self, find_sandbox_intent(key))
    }

    pub async fn close(&self) {
        if let Store::Sqlite(s) = self {
            s.close_side_pools().await;
        }
        on_store!(self, close())
    }
}

/// A status column read back; a word payhook does not write means the store was changed by hand.
pub(crate) fn event_status(text: String) -> Result<EventStatus, StoreError> {
    EventStatus::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("event status {text:?}")))
}

/// The key of a stored event, as returned by the insert.
pub(crate) type EventKey = (String, String);

/// Builds sqlx's migrator from migration files compiled into the binary.
fn migrator(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = files
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}
