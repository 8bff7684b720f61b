//! SQLite backend: one file in WAL mode, `synchronous=FULL` by default so a commit is on disk.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::Mutex;

use super::events::EventKey;
use super::{NewEvent, StoreError, WriteTx};
use crate::domain::SqliteSync;

mod ledger;
mod queries;

/// The migrations in `migrations/sqlite/`, compiled in.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

pub struct SqliteStore {
    /// Reads, and the occasional write outside the write gate (admin actions, retention).
    pool: SqlitePool,
    /// One connection for everything done under the write gate (the inbox writer, the ledger
    /// processor): its page cache stays valid from one of its commits to the next, where each
    /// connection of a pool finds its cache stale (and drops it) once another has written.
    writer: SqlitePool,
    /// One connection whose commits do not wait for fsync, for the dispatcher's bookkeeping
    /// (leases, attempts, delivered marks). After a power loss such a commit may be missing: a
    /// notification is then sent again with the same id, never lost. The outbox rows themselves
    /// are written by the processor, durably.
    relaxed: SqlitePool,
    /// Held by whoever writes in bulk (the inbox writer, the ledger processor): SQLite takes one
    /// writer at a time, and its busy handler sleeps up to 100 ms between tries where this queue
    /// hands over at once, in order.
    write_gate: Arc<Mutex<()>>,
    /// Inbox commits waiting for the gate: the ledger processor gives way to them.
    inbox_waiting: Waiting,
}

/// How many inbox commits wait for the write gate, and since when the holder has it.
#[derive(Clone, Default)]
pub struct Waiting(Arc<AtomicUsize>, Option<Instant>);

/// How long a worker keeps the write gate while webhooks wait for it. Giving way sooner starves
/// the worker under steady load (a commit per event or two: at 1,000 webhooks/s and 1 ms the
/// notification lag grew to seconds); longer makes every waiting acknowledgement pay. Measured
/// with `payhook bench --end-to-end --rate 1000`: end-to-end p99 ~22-26 ms at 2 ms (but seconds in
/// some runs), 20-35 ms at 5 ms, 25-58 ms at 10 ms.
const YIELD_AFTER: Duration = Duration::from_millis(5);

impl Waiting {
    /// The same counter, for a transaction that holds the gate from now.
    fn held(&self) -> Waiting {
        Waiting(self.0.clone(), Some(Instant::now()))
    }

    /// True when webhooks wait and the holder has had the gate long enough.
    pub fn should_yield(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
            && self.1.is_none_or(|since| since.elapsed() >= YIELD_AFTER)
    }
}

/// How often the background task moves the WAL's pages into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copies committed pages from the WAL into the database file every [`CHECKPOINT_EVERY`], on a
/// pool connection and outside the write gate: a passive checkpoint never blocks writers, which
/// keep appending to the WAL meanwhile (and restart it from the top once it is all copied).
/// Stops when the pool closes.
fn checkpoint_in_background(pool: SqlitePool) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            if pool.is_closed() {
                return;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
            }
        }
    });
}

impl SqliteStore {
    pub async fn connect(url: &str, sync: SqliteSync) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(5))
            // Checkpoints run in the background (see `checkpoint_in_background`): one run by a
            // committing connection holds up every writer behind it for its whole fsync. This
            // bound only matters if the background task cannot keep up.
            .pragma("wal_autocheckpoint", "50000")
            .statement_cache_capacity(256);
        // Page caches (`cache_size`, KiB when negative) bound most of payhook's memory: the
        // writer's keeps the inbox's and the ledger's index pages between commits; the readers'
        // are small, since a large store's listings read few pages each.
        let open = |connections: u32, options: SqliteConnectOptions| {
            SqlitePoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
        };
        let pool = open(3, options.clone().pragma("cache_size", "-2048")).await?;
        let writer = open(
            1,
            options
                .clone()
                .pragma("cache_size", "-8192")
                // A batch's statement journal (the pages its statements change, kept so a
                // failing statement can be undone alone) stays in memory instead of spilling
                // to a temporary file: 12% of this connection's time went to writing it.
                .pragma("temp_store", "memory"),
        )
        .await?;
        let relaxed = open(
            1,
            options
                .synchronous(SqliteSynchronous::Normal)
                .pragma("cache_size", "-2048"),
        )
        .await?;
        checkpoint_in_background(pool.clone());
        Ok(Self {
            pool,
            writer,
            relaxed,
            write_gate: Arc::default(),
            inbox_waiting: Waiting::default(),
        })
    }

    /// One statement per batch: a `VALUES` list with the rows bound as parameters, so a batch of
    /// any size is a single round trip to the connection's thread and a single implicit
    /// transaction (one WAL fsync). Its text depends on the batch's size, so it is not kept
    /// prepared: SQLite compiles it in microseconds. The trace column is named only when tracing
    /// gave an event a context: with tracing off the statement is what it always was.
    pub async fn insert_events(&self, batch: &[NewEvent]) -> Result<HashSet<EventKey>, StoreError> {
        let traced = batch.iter().any(|e| e.trace_context.is_some());
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(if traced {
            "INSERT INTO webhook_events (source, event_id, event_type, payload, headers, received_at, \
             trace_context) "
        } else {
            "INSERT INTO webhook_events (source, event_id, event_type, payload, headers, received_at) "
        });
        q.push_values(batch, |mut row, e| {
            row.push_bind(e.source.as_str())
                .push_bind(e.event_id.as_str())
                .push_bind(e.event_type.as_str())
                .push_bind(e.payload.as_ref())
                .push_bind(e.headers.as_str())
                .push_bind(Self::time_param(e.received_at));
            if traced {
                row.push_bind(e.trace_context.as_deref());
            }
        });
        q.push(" ON CONFLICT (source, event_id) DO NOTHING RETURNING source, event_id");
        self.inbox_waiting.0.fetch_add(1, Ordering::Relaxed);
        let _gate = self.write_gate.lock().await;
        self.inbox_waiting.0.fetch_sub(1, Ordering::Relaxed);
        let inserted: Vec<EventKey> = q
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.writer)
            .await?;
        Ok(inserted.into_iter().collect())
    }

    /// `BEGIN IMMEDIATE`: the transaction holds the write lock from its first read, so the event it
    /// claims cannot change under it and its later writes never fail to upgrade.
    pub async fn begin_ledger(&self) -> Result<WriteTx, StoreError> {
        let gate = self.write_gate.clone().lock_owned().await;
        Ok(WriteTx::Sqlite(
            self.writer.begin_with("BEGIN IMMEDIATE").await?,
            gate,
            self.inbox_waiting.held(),
        ))
    }

    /// A dispatcher round: like [`Self::begin_ledger`], on the connection that commits without fsync.
    pub async fn begin_outbox(&self) -> Result<WriteTx, StoreError> {
        let gate = self.write_gate.clone().lock_owned().await;
        Ok(WriteTx::Sqlite(
            self.relaxed.begin_with("BEGIN IMMEDIATE").await?,
            gate,
            self.inbox_waiting.held(),
        ))
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.relaxed.close().await;
        self.pool.close().await;
    }

    /// Nothing to do: SQLite has one writer at a time.
    pub(in crate::store) async fn lock_refs(
        _conn: &mut SqliteConnection,
        _keys: &[String],
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// `n` ids for new payments. The caller holds the write lock, so the ids after the highest
    /// ever given are free until it commits; inserting under them moves the sequence on.
    pub(in crate::store) async fn reserve_payment_ids(
        conn: &mut SqliteConnection,
        n: usize,
    ) -> Result<Vec<i64>, StoreError> {
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'payments'), 0)",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok((1..=n as i64).map(|i| last + i).collect())
    }

    /// A time as the inbox stores it (RFC 3339 text, UTC, `T` and `Z`), with nanoseconds so that
    /// it compares as text in the order of the times.
    /// The reader pool, for the reads written once for both backends.
    pub(in crate::store) fn reader(&self) -> &SqlitePool {
        &self.pool
    }

    fn time_param(t: DateTime<Utc>) -> String {
        t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
    }
}
