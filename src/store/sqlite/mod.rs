//! SQLite backend: two files in WAL mode, `synchronous=FULL` by default so a commit is on disk.
//! `payhook.db` holds the ledger, the outbox and everything else; the inbox (`webhook_events`)
//! lives in `payhook.db-inbox` beside it, so that an acknowledgement's commit never waits for
//! SQLite's one write lock while a ledger batch or a dispatcher round holds it: each file has its
//! own. Every connection that reads events attaches the inbox's file as `intake`, and SQLite finds
//! `webhook_events` there by name, so queries read as if it were one database.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::query_builder::Separated;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::Mutex;

use super::events::EventKey;
use super::{NewEvent, StoreError, WriteTx};
use crate::domain::SqliteSync;

mod inbox;
mod ledger;
mod queries;
mod round;

pub use round::{Lease, QuickRound};

use inbox::{InboxWrites, Unmarked};
pub use inbox::{PendingMarks, SqliteTx};

/// How long a connection waits for another's write lock before it gives up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations in `migrations/sqlite/`, compiled in.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

pub struct SqliteStore {
    /// Reads, and the occasional write outside the write gate (admin actions, retention). The
    /// inbox's file is attached read-write.
    pool: SqlitePool,
    /// One connection for everything done under the write gate (the ledger processor, retention,
    /// bulk actions): its page cache stays valid from one of its commits to the next, where each
    /// connection of a pool finds its cache stale (and drops it) once another has written. The
    /// inbox's file is attached read-only: `BEGIN IMMEDIATE` takes the write lock of every
    /// database a connection has attached, and the ledger's must not take the inbox's. Its writes
    /// to events go to [`Self::inbox`] (see [`InboxWrites`]).
    writer: SqlitePool,
    /// One connection on the inbox's own file: acknowledgements' inserts, and the marks ledger
    /// batches leave on the events they applied.
    inbox: SqlitePool,
    /// Commits wait for fsync (`synchronous=FULL`, the default).
    durable: bool,
    /// The dispatcher's usual rounds, on a connection of their own (see [`round`]).
    round_connection: round::RoundConnection,
    /// One connection whose commits do not wait for fsync, for the dispatcher's bookkeeping
    /// (leases, attempts, delivered marks). After a power loss such a commit may be missing: a
    /// notification is then sent again with the same id, never lost. The outbox rows themselves
    /// are written by the processor, durably.
    relaxed: SqlitePool,
    /// Held by whoever writes the store's file in bulk (the ledger processor, a dispatcher
    /// round): SQLite takes one writer at a time, and its busy handler sleeps up to 100 ms
    /// between tries where this queue hands over at once, in order.
    write_gate: Arc<Mutex<()>>,
    /// Dispatcher rounds waiting for the gate: the ledger processor shortens its batches for them.
    rounds_waiting: Arc<AtomicUsize>,
    /// Events a ledger transaction applied whose marks are not written yet (see [`SqliteTx`]):
    /// the next ledger transaction's claim skips them.
    unmarked: Unmarked,
}

/// Counts its holder in while it lives (a round waiting for the gate, even one given up on).
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(count: &'a AtomicUsize) -> Counted<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        Counted(count)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The inbox's file beside the store's: `payhook.db` keeps its events in `payhook.db-inbox`.
pub fn inbox_file(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push("-inbox");
    PathBuf::from(name)
}

/// Attaches the inbox's file of the store at `store` to a connection of its own (a tool's, a
/// test's), as payhook's connections have it: `webhook_events` is then found by its name.
pub async fn attach_inbox_of(conn: &mut SqliteConnection, store: &Path) -> Result<(), sqlx::Error> {
    attach_as_intake(conn, inbox_file(store).to_string_lossy().into_owned()).await
}

/// `ATTACH`es the database `name` (a path, or a `file:` URI) as `intake`.
async fn attach_as_intake(conn: &mut SqliteConnection, name: String) -> Result<(), sqlx::Error> {
    sqlx::query("ATTACH DATABASE $1 AS intake")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The `ATTACH` of the inbox's file on a connection of the store. Read-only, it is a URI
/// (`file:...?mode=ro`), with the characters a URI gives a meaning escaped.
fn attach_inbox(
    file: &Path,
    read_only: bool,
) -> impl for<'c> Fn(
    &'c mut SqliteConnection,
    sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'c, Result<(), sqlx::Error>>
+ Send
+ Sync
+ 'static {
    let path = file.to_string_lossy().into_owned();
    let name = if read_only {
        let escaped = path
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23");
        format!("file:{escaped}?mode=ro")
    } else {
        path
    };
    move |conn, _| {
        let name = name.clone();
        Box::pin(async move {
            attach_as_intake(conn, name).await?;
            // Each connection keeps a page cache per attached file; this one stays small.
            sqlx::query("PRAGMA intake.cache_size = -256")
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }
}

/// Pushes `rows` as a `VALUES` list, then rows of `width` NULLs up to the next power of two:
/// a batch statement's text then takes one of a few forms whatever the batch's size, each compiled
/// once per connection and kept prepared, where a text per batch size was compiled anew almost
/// every time (7% of the ledger's CPU, 4% of the acknowledgements'). The statement skips the NULL
/// rows: an insert selects `WHERE column1 IS NOT NULL`, an update joins on a column.
fn push_padded_values<T>(
    q: &mut sqlx::QueryBuilder<sqlx::Sqlite>,
    rows: impl ExactSizeIterator<Item = T>,
    width: usize,
    mut push: impl FnMut(&mut Separated<'_, sqlx::Sqlite, &'static str>, T),
) {
    let slots = rows.len().next_power_of_two();
    let padded = rows.map(Some).chain(std::iter::repeat_with(|| None));
    q.push_values(padded.take(slots), |mut row, item| match item {
        Some(item) => push(&mut row, item),
        None => {
            for _ in 0..width {
                row.push_bind(None::<i64>);
            }
        }
    });
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

/// Copies the inbox's table, its indexes and its rows from the database attached as `from` to the
/// one attached as `into`, which has none, on a connection that has both: moving a one-file store's
/// inbox into its own file, and back into a backup's one file.
pub async fn copy_inbox(
    conn: &mut SqliteConnection,
    from: &str,
    into: &str,
) -> Result<(), StoreError> {
    let schema: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT type, sql FROM {from}.sqlite_master
         WHERE tbl_name = 'webhook_events' AND sql IS NOT NULL ORDER BY type = 'index'"
    )))
    .fetch_all(&mut *conn)
    .await?;
    for (kind, create) in &schema {
        // `CREATE TABLE webhook_events (...`, `CREATE INDEX name ON webhook_events ...`: the same
        // statement, in the other database.
        let head = if kind == "table" {
            "CREATE TABLE "
        } else if create.starts_with("CREATE UNIQUE INDEX ") {
            "CREATE UNIQUE INDEX "
        } else {
            "CREATE INDEX "
        };
        let Some(rest) = create.strip_prefix(head) else {
            return Err(StoreError::Corrupt(format!(
                "webhook_events: unexpected schema statement {create}"
            )));
        };
        sqlx::query(sqlx::AssertSqlSafe(format!("{head}{into}.{rest}")))
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {into}.webhook_events SELECT * FROM {from}.webhook_events"
    )))
    .execute(&mut *conn)
    .await?;
    // Ids are never given twice, even those of events deleted since.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {into}.sqlite_sequence SET seq = MAX(seq, COALESCE(
             (SELECT seq FROM {from}.sqlite_sequence WHERE name = 'webhook_events'), 0))
         WHERE name = 'webhook_events'"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
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
            .busy_timeout(BUSY_TIMEOUT)
            // Checkpoints run in the background (see `checkpoint_in_background`): one run by a
            // committing connection holds up every writer behind it for its whole fsync. This
            // bound only matters if the background task cannot keep up.
            .pragma("wal_autocheckpoint", "50000")
            .statement_cache_capacity(256);
        let file = options.get_filename().to_path_buf();
        let name = file.to_string_lossy();
        if name.is_empty() || name == ":memory:" || name.starts_with("file:") {
            return Err(StoreError::Unavailable(sqlx::Error::Configuration(
                "an in-memory SQLite store cannot keep its inbox in a file of its own: name a file"
                    .into(),
            )));
        }
        let inbox_file = inbox_file(&file);
        // Page caches (`cache_size`, KiB when negative) bound most of payhook's memory: the
        // writer's keeps the ledger's index pages between commits, the inbox's connection its
        // indexes' (4 MiB each: the 8 MiB the writer had when it kept both); the readers' are
        // small (1 MiB), since a large store's listings read few pages each, and so is each
        // connection's cache of the attached inbox. The writer at 8 MiB beside them, and 1 MiB
        // per attached inbox, peaked at 61 MiB at 128 connections against 48 MiB with these. The
        // readers had 2 MiB each: filled by the admin queries on a large store, 3 MiB more of a
        // peak that had come to 64-67 MiB.
        // A connection to a file does not go stale as a network connection does: no ping (a round
        // trip to the connection's thread) before each use.
        let pool_options = |connections: u32| {
            SqlitePoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(Duration::from_secs(5))
                .test_before_acquire(false)
        };
        let open = |connections: u32, options: SqliteConnectOptions| {
            pool_options(connections).connect_with(options)
        };
        // First, so that the file exists (in WAL mode) when the others attach it.
        let inbox = open(
            1,
            options
                .clone()
                .filename(&inbox_file)
                .pragma("cache_size", "-4096"),
        )
        .await?;
        let pool = pool_options(3)
            .after_connect(attach_inbox(&inbox_file, false))
            .connect_with(options.clone().pragma("cache_size", "-1024"))
            .await?;
        let writer = pool_options(1)
            .after_connect(attach_inbox(&inbox_file, true))
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", "-4096")
                    // A batch's statement journal (the pages its statements change, kept so a
                    // failing statement can be undone alone) stays in memory instead of spilling
                    // to a temporary file: 12% of this connection's time went to writing it.
                    // Only here: on the readers, a listing's sort of a large store would hold
                    // its whole spill in memory (a 10-million-event store's peak went from 48
                    // to 439 MiB).
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
            inbox,
            durable: matches!(sync, SqliteSync::Full),
            round_connection: round::RoundConnection::new(file),
            relaxed,
            write_gate: Arc::default(),
            rounds_waiting: Arc::default(),
            unmarked: Unmarked::default(),
        })
    }

    /// One statement per batch: a `VALUES` list with the rows bound as parameters (padded, see
    /// [`push_padded_values`]), so a batch of any size is a single round trip to the connection's
    /// thread and a single implicit transaction (one WAL fsync). The trace column is named only
    /// when tracing gave an event a context: with tracing off the statement is what it always was.
    ///
    /// Which rows were new comes from the count of rows inserted, not from `RETURNING`: sqlx hands
    /// each returned row from the connection's thread to the task on its own, a wake-up per row,
    /// for an answer that is nearly always "all of them". Only a batch holding an event already
    /// stored asks again, in [`Self::newest_of`].
    pub async fn insert_events(&self, batch: &[NewEvent]) -> Result<Vec<bool>, StoreError> {
        let traced = batch.iter().any(|e| e.trace_context.is_some());
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(if traced {
            "INSERT INTO webhook_events (source, event_id, event_type, payload, headers, received_at, \
             trace_context) "
        } else {
            "INSERT INTO webhook_events (source, event_id, event_type, payload, headers, received_at) "
        });
        q.push("SELECT * FROM (");
        push_padded_values(
            &mut q,
            batch.iter(),
            if traced { 7 } else { 6 },
            |row, e| {
                row.push_bind(e.source.as_str())
                    .push_bind(e.event_id.as_str())
                    .push_bind(e.event_type.as_str())
                    .push_bind(e.payload.as_ref())
                    .push_bind(e.headers.as_str())
                    .push_bind(Self::time_param(e.received_at));
                if traced {
                    row.push_bind(e.trace_context.as_deref());
                }
            },
        );
        q.push(") WHERE column1 IS NOT NULL ON CONFLICT (source, event_id) DO NOTHING");
        let inserted = q.build().execute(&self.inbox).await?;
        let new = inserted.rows_affected() as usize;
        if new == batch.len() || new == 0 {
            return Ok(vec![new > 0; batch.len()]);
        }
        let inserted = self.newest_of(batch, new).await?;
        Ok(super::events::inserted_flags(batch, &inserted))
    }

    /// The `new` rows of `batch` this batch's statement inserted: ids only grow (`AUTOINCREMENT`)
    /// and events are never deleted, so they are the batch's `new` stored rows with the highest
    /// ids; the others were stored before. Read on the inbox's connection, which has just
    /// committed them.
    async fn newest_of(
        &self,
        batch: &[NewEvent],
        new: usize,
    ) -> Result<HashSet<EventKey>, StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("WITH batch (source, event_id) AS (");
        // `CROSS JOIN`: the batch's keys drive, each one a search of the unique index.
        q.push_values(batch, |mut row, e| {
            row.push_bind(e.source.as_str())
                .push_bind(e.event_id.as_str());
        });
        q.push(
            ") SELECT e.source, e.event_id FROM batch CROSS JOIN webhook_events e \
             ON e.source = batch.source AND e.event_id = batch.event_id",
        );
        q.push(" ORDER BY e.id DESC LIMIT ").push_bind(new as i64);
        let rows: Vec<EventKey> = q
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.inbox)
            .await?;
        Ok(rows.into_iter().collect())
    }

    /// `BEGIN IMMEDIATE`: the transaction holds the write lock from its first read, so the event it
    /// claims cannot change under it and its later writes never fail to upgrade.
    pub async fn begin_ledger(&self) -> Result<WriteTx, StoreError> {
        let gate = self.write_gate.clone().lock_owned().await;
        Ok(WriteTx::Sqlite(SqliteTx {
            tx: self.writer.begin_with("BEGIN IMMEDIATE").await?,
            gate,
            unmarked: Some(self.unmarked.clone()),
            inbox: InboxWrites::new(self.inbox.clone(), self.durable),
        }))
    }

    /// A dispatcher round: like [`Self::begin_ledger`], on the connection that commits without fsync.
    pub async fn begin_outbox(&self) -> Result<WriteTx, StoreError> {
        let gate = {
            let _waiting = Counted::new(&self.rounds_waiting);
            self.write_gate.clone().lock_owned().await
        };
        Ok(WriteTx::Sqlite(SqliteTx {
            tx: self.relaxed.begin_with("BEGIN IMMEDIATE").await?,
            gate,
            unmarked: None,
            inbox: InboxWrites::new(self.inbox.clone(), self.durable),
        }))
    }

    /// A dispatcher round waits for the write gate.
    pub fn outbox_waits(&self) -> bool {
        self.rounds_waiting.load(Ordering::Relaxed) > 0
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.round_connection.close();
        self.relaxed.close().await;
        self.inbox.close().await;
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

    /// The reader pool, for the reads written once for both backends.
    pub(in crate::store) fn reader(&self) -> &SqlitePool {
        &self.pool
    }

    /// How SQLite would run `sql` (`EXPLAIN QUERY PLAN`, each step's detail): the statement is
    /// compiled, not run, so its parameters need no values.
    #[cfg(test)]
    pub(in crate::store) async fn query_plan(&self, sql: &str) -> Vec<String> {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&self.pool)
                .await
                .unwrap();
        plan.into_iter().map(|(.., detail)| detail).collect()
    }

    /// A time as the inbox stores it (RFC 3339 text, UTC, `T` and `Z`), with nanoseconds so that
    /// it compares as text in the order of the times.
    fn time_param(t: DateTime<Utc>) -> String {
        t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    use super::*;
    use crate::store::{NewEvent, Store};

    /// The bundled SQLite is built as `.cargo/config.toml` says: commits sync the WAL with
    /// fdatasync(2), not fsync(2) (one device write less per commit: the inode's new modification
    /// time); each connection keeps its own page cache, where `SQLITE_ENABLE_MEMORY_MANAGEMENT`
    /// (libsqlite3-sys turns it on) made every connection's page lookups take one process-wide
    /// lock; and SQLite's allocations keep no statistics, which took another lock on each. A build
    /// without them is slower, not less durable, and this catches it.
    #[test]
    fn the_bundled_sqlite_is_built_with_the_repositorys_flags() {
        let flags = option_env!("LIBSQLITE3_FLAGS").unwrap_or_default();
        for flag in [
            "-DHAVE_FDATASYNC=1",
            "-USQLITE_ENABLE_MEMORY_MANAGEMENT",
            "-DSQLITE_DEFAULT_MEMSTATUS=0",
        ] {
            assert!(
                flags.split_whitespace().any(|f| f == flag),
                "SQLite was built without {flag} (LIBSQLITE3_FLAGS={flags:?}): see .cargo/config.toml"
            );
        }
    }

    /// A batch's `VALUES` list is padded with rows of NULLs to a power of two: every size stores
    /// exactly its own events, tells new from already stored, and pads nothing into the table.
    #[tokio::test]
    async fn a_batch_of_any_size_stores_its_events_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        let mut stored = 0;
        for size in [1, 2, 3, 5, 8, 9, 31] {
            let batch: Vec<NewEvent> = (0..size)
                .map(|n| NewEvent::sample(&format!("evt_pad_{size}_{n}")))
                .collect();
            assert_eq!(store.insert_events(&batch).await.unwrap(), vec![true; size]);
            stored += size as i64;
            assert_eq!(store.count_events().await.unwrap(), stored, "size {size}");
        }
        // Two stored before among three: the new one alone is told new.
        let again = [
            NewEvent::sample("evt_pad_3_0"),
            NewEvent::sample("evt_pad_new"),
            NewEvent::sample("evt_pad_9_8"),
        ];
        assert_eq!(
            store.insert_events(&again).await.unwrap(),
            [false, true, false]
        );
        assert_eq!(store.count_events().await.unwrap(), stored + 1);
        store.close().await;
    }

    /// The store's file with the inbox's table, as a store from before the inbox had a file of its
    /// own (or a backup) has it; `keep_inbox` leaves the inbox's file too, as a crash between the
    /// move's two commits does.
    async fn as_one_file(dir: &tempfile::TempDir, keep_inbox: bool) {
        let file = dir.path().join("payhook.db");
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        attach_inbox_of(&mut conn, &file).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        copy_inbox(&mut tx, "intake", "main").await.unwrap();
        tx.commit().await.unwrap();
        if !keep_inbox {
            sqlx::query("DETACH DATABASE intake")
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            for end in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{end}", inbox_file(&file).display()));
            }
        } else {
            // What the store's copy says counts: the inbox's is replaced by it.
            sqlx::query("DELETE FROM intake.webhook_events")
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_one_file_store_has_its_inbox_moved_into_its_own_file_on_start() {
        for keep_inbox in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::scratch(&dir).await;
            let events: Vec<NewEvent> = (0..3)
                .map(|n| NewEvent::sample(&format!("evt_move_{n}")))
                .collect();
            store.insert_events(&events).await.unwrap();
            // The last id given is never given again, even once its event is gone.
            let Store::Sqlite(s) = &*store else {
                unreachable!()
            };
            sqlx::query("DELETE FROM webhook_events WHERE event_id = 'evt_move_2'")
                .execute(&s.pool)
                .await
                .unwrap();
            store.close().await;
            as_one_file(&dir, keep_inbox).await;

            let store = Store::scratch(&dir).await;
            assert_eq!(store.count_events().await.unwrap(), 2, "kept: {keep_inbox}");
            store
                .insert_events(&[NewEvent::sample("evt_after_the_move")])
                .await
                .unwrap();
            let after = store.event("stripe", "evt_after_the_move").await.unwrap();
            assert_eq!(after.unwrap().id, 4);
            let Store::Sqlite(s) = &*store else {
                unreachable!()
            };
            let in_main: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM main.sqlite_master WHERE tbl_name = 'webhook_events'",
            )
            .fetch_one(&s.pool)
            .await
            .unwrap();
            assert_eq!(in_main, 0, "the store's file keeps no copy");
            let indexes: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM intake.sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
            )
            .fetch_one(&s.pool)
            .await
            .unwrap();
            assert_eq!(indexes, 4, "the inbox's indexes came with it");
            store.close().await;
        }
    }

    /// Sorts and statement journals spill to temporary files, so a reader's listing or count of
    /// a large store does not hold its whole sort in memory: only the writer keeps its journals in
    /// memory (its batches are bounded).
    #[tokio::test]
    async fn only_the_writer_keeps_its_temporary_data_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        let Store::Sqlite(s) = &*store else {
            unreachable!()
        };
        for (name, pool, in_memory) in [
            ("readers", &s.pool, false),
            ("writer", &s.writer, true),
            ("inbox", &s.inbox, false),
            ("relaxed", &s.relaxed, false),
        ] {
            let temp_store: i64 = sqlx::query_scalar("PRAGMA temp_store")
                .fetch_one(pool)
                .await
                .unwrap();
            // 2 is MEMORY; 0 the default, files.
            assert_eq!(
                temp_store == 2,
                in_memory,
                "{name}: temp_store {temp_store}"
            );
        }
        store.close().await;
    }

    /// A store from before the payments' id keys were dropped keeps its payments, their ids, the
    /// next id to give and the references to them through the table's copy.
    #[tokio::test]
    async fn payments_keep_their_rows_ids_and_references_through_the_copy_that_drops_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("payhook.db");
        let older = tempfile::tempdir().unwrap();
        let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        for entry in std::fs::read_dir(all).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_owned();
            if name.to_string_lossy().as_ref() < "0016" {
                std::fs::copy(&path, older.path().join(name)).unwrap();
            }
        }
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", file.display()))
            .await
            .unwrap();
        Migrator::new(older.path())
            .await
            .unwrap()
            .run(&mut conn)
            .await
            .unwrap();
        for (id, booking) in [(1, "bk_1"), (2, "bk_2"), (3, "bk_3")] {
            sqlx::query(
                "INSERT INTO payments (id, source, booking_id, payment_intent_id, status, attention,
                                       created_at, updated_at)
                 VALUES ($1, 'stripe', $2, 'pi_' || $1, 'succeeded', 'duplicate',
                         '2026-12-02T00:00:00Z', '2026-12-02T00:00:00Z')",
            )
            .bind(id)
            .bind(booking)
            .execute(&mut conn)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO payment_refs (source, ref, payment_id) VALUES ('stripe', 'pi_' || $1, $1)",
            )
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        // The last payment merged away: its id is never given again.
        for sql in [
            "DELETE FROM payment_refs WHERE payment_id = 3",
            "DELETE FROM payments WHERE id = 3",
        ] {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();

        let store = Store::scratch(&dir).await;
        let Store::Sqlite(s) = &*store else {
            unreachable!()
        };
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, booking_id, payment_intent_id FROM payments ORDER BY id")
                .fetch_all(&s.pool)
                .await
                .unwrap();
        assert_eq!(
            rows,
            [
                (1, "bk_1".into(), "pi_1".into()),
                (2, "bk_2".into(), "pi_2".into())
            ]
        );
        let mut conn = s.writer.acquire().await.unwrap();
        let next = SqliteStore::reserve_payment_ids(&mut conn, 1)
            .await
            .unwrap();
        assert_eq!(
            next,
            [4],
            "the sequence went on from the merged payment's id"
        );
        drop(conn);
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'payments'
             ORDER BY name",
        )
        .fetch_all(&s.pool)
        .await
        .unwrap();
        assert_eq!(
            indexes,
            ["payments_attention", "payments_booking", "payments_status"]
        );
        let broken: Vec<(String, i64, String, i64)> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&s.pool)
            .await
            .unwrap();
        assert!(broken.is_empty(), "{broken:?}");
        // The references still name the payments table: one to a missing payment is refused.
        let dangling = sqlx::query(
            "INSERT INTO payment_refs (source, ref, payment_id) VALUES ('stripe', 'pi_3', 3)",
        )
        .execute(&s.pool)
        .await;
        assert!(dangling.is_err(), "foreign keys are on again");
        store.close().await;
    }
}
