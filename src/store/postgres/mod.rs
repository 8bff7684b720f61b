//! PostgreSQL backend, for several payhook instances sharing one database.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnection, PgPoolOptions};

use super::events::EventKey;
use super::{NewEvent, StoreError, Work, WriteTx};

mod ledger;
mod queries;

/// The migrations in `migrations/postgres/`, compiled in.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(12)
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await;
        match pool {
            Ok(pool) => {
                analyze_while_young(pool.clone());
                Ok(Self { pool })
            }
            // The pool only says it timed out: one connection of our own says why (refused,
            // unknown host, authentication).
            Err(sqlx::Error::PoolTimedOut) => {
                use sqlx::Connection;
                match sqlx::PgConnection::connect(url).await {
                    Err(why) => Err(why.into()),
                    Ok(conn) => {
                        let _ = conn.close().await;
                        Err(sqlx::Error::PoolTimedOut.into())
                    }
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One statement per batch whatever its size: the rows travel as arrays and are unnested. The
    /// trace column is named only when tracing gave an event a context: with tracing off the
    /// statement is what it always was.
    pub async fn insert_events(&self, batch: &[NewEvent]) -> Result<HashSet<EventKey>, StoreError> {
        if batch.iter().any(|e| e.trace_context.is_some()) {
            return self.insert_traced_events(batch).await;
        }
        let mut sources = Vec::with_capacity(batch.len());
        let mut ids = Vec::with_capacity(batch.len());
        let mut types = Vec::with_capacity(batch.len());
        let mut payloads = Vec::with_capacity(batch.len());
        let mut headers = Vec::with_capacity(batch.len());
        let mut times: Vec<DateTime<Utc>> = Vec::with_capacity(batch.len());
        for e in batch {
            sources.push(e.source.as_str());
            ids.push(e.event_id.as_str());
            types.push(e.event_type.as_str());
            payloads.push(e.payload.as_ref());
            headers.push(e.headers.as_str());
            times.push(e.received_at);
        }
        // New events are announced to every instance's processor in the same statement: the
        // notification goes out when it commits, and only if something was inserted.
        let inserted: Vec<EventKey> = sqlx::query_as(
            "WITH inserted AS (
                INSERT INTO webhook_events (source, event_id, event_type, payload, headers, received_at)
                SELECT s, e, t, p, h::jsonb, r
                FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::timestamptz[])
                     AS u(s, e, t, p, h, r)
                ON CONFLICT (source, event_id) DO NOTHING
                RETURNING source, event_id
             ), announced AS (
                SELECT pg_notify('payhook_inbox', '') WHERE EXISTS (SELECT 1 FROM inserted)
             )
             SELECT source, event_id FROM inserted LEFT JOIN announced ON true",
        )
        .bind(&sources)
        .bind(&ids)
        .bind(&types)
        .bind(&payloads)
        .bind(&headers)
        .bind(&times)
        .fetch_all(&self.pool)
        .await?;
        Ok(inserted.into_iter().collect())
    }

    /// [`Self::insert_events`] with each event's trace context.
    async fn insert_traced_events(
        &self,
        batch: &[NewEvent],
    ) -> Result<HashSet<EventKey>, StoreError> {
        let column = |f: fn(&NewEvent) -> &str| batch.iter().map(f).collect::<Vec<_>>();
        let payloads: Vec<&[u8]> = batch.iter().map(|e| e.payload.as_ref()).collect();
        let times: Vec<DateTime<Utc>> = batch.iter().map(|e| e.received_at).collect();
        let traces: Vec<Option<&str>> = batch.iter().map(|e| e.trace_context.as_deref()).collect();
        let inserted: Vec<EventKey> = sqlx::query_as(
            "WITH inserted AS (
                INSERT INTO webhook_events
                    (source, event_id, event_type, payload, headers, received_at, trace_context)
                SELECT s, e, t, p, h::jsonb, r, c
                FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[],
                            $6::timestamptz[], $7::text[]) AS u(s, e, t, p, h, r, c)
                ON CONFLICT (source, event_id) DO NOTHING
                RETURNING source, event_id
             ), announced AS (
                SELECT pg_notify('payhook_inbox', '') WHERE EXISTS (SELECT 1 FROM inserted)
             )
             SELECT source, event_id FROM inserted LEFT JOIN announced ON true",
        )
        .bind(column(|e| &e.source))
        .bind(column(|e| &e.event_id))
        .bind(column(|e| &e.event_type))
        .bind(&payloads)
        .bind(column(|e| &e.headers))
        .bind(&times)
        .bind(&traces)
        .fetch_all(&self.pool)
        .await?;
        Ok(inserted.into_iter().collect())
    }

    /// A connection that receives what other instances announce.
    pub async fn listener(&self) -> Result<sqlx::postgres::PgListener, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener
            .listen_all([Work::Inbox.channel(), Work::Outbox.channel()])
            .await?;
        Ok(listener)
    }

    pub async fn begin_ledger(&self) -> Result<WriteTx, StoreError> {
        Ok(WriteTx::Postgres(self.pool.begin().await?))
    }

    /// A dispatcher round's transaction commits without waiting for its WAL to reach the disk, as
    /// SQLite's rounds do: bookkeeping lost to a crash of the server means a notification sent
    /// again with the same id, never lost (the outbox rows are the ledger's, written durably).
    /// The setting rides with `BEGIN`, in the same round trip.
    pub async fn begin_outbox(&self) -> Result<WriteTx, StoreError> {
        let begin = "BEGIN; SET LOCAL synchronous_commit = off";
        Ok(WriteTx::Postgres(self.pool.begin_with(begin).await?))
    }

    /// Transaction-scoped advisory locks, one per key, all taken in one statement in the order of
    /// their lock ids, so two transactions never wait on each other in a cycle.
    pub(in crate::store) async fn lock_refs(
        conn: &mut PgConnection,
        keys: &[String],
    ) -> Result<(), StoreError> {
        // PostgreSQL evaluates a volatile function in the select list after the sort.
        sqlx::query(
            "SELECT pg_advisory_xact_lock(h)
             FROM (SELECT DISTINCT hashtextextended(k, 0) AS h FROM UNNEST($1::text[]) AS u(k)) AS l
             ORDER BY h",
        )
        .bind(keys)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// `n` ids for new payments, from the table's sequence (ids left unused are a gap).
    pub(in crate::store) async fn reserve_payment_ids(
        conn: &mut PgConnection,
        n: usize,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "SELECT nextval(pg_get_serial_sequence('payments', 'id')) FROM generate_series(1, $1)",
        )
        .bind(n as i64)
        .fetch_all(&mut *conn)
        .await?;
        ids.sort_unstable();
        Ok(ids)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A time as a `timestamptz` parameter.
    /// The pool, for the reads written once for both backends.
    pub(in crate::store) fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn time_param(t: DateTime<Utc>) -> DateTime<Utc> {
        t
    }
}

/// The tables whose plans go wrong without statistics, and the size past which autovacuum's own
/// analyzing (10% of the rows changed, looked at every minute) is soon enough. Each names the
/// columns statements look rows up by: the rest (bodies, headers, facts, answers) cost the most to
/// sample and plan nothing. Analyzing the inbox whole took 0.4 s of PostgreSQL's CPU each time at
/// 30,000 rows, a fifth of a 5-second benchmark's; autovacuum still analyzes every column.
const YOUNG_TABLES: &[(&str, &str)] = &[
    (
        "webhook_events",
        "id, source, event_id, event_type, status, received_at, next_attempt_at",
    ),
    (
        "payments",
        "id, source, booking_id, payment_intent_id, checkout_session_id, charge_id, status, \
         attention",
    ),
    ("payment_refs", "source, ref, payment_id"),
    ("payment_facts", "id, payment_id, source, event_id"),
    (
        "deliveries",
        "id, notification_id, target, order_key, event, payment_id, booking_id, status, \
         next_attempt_at, leased_until",
    ),
    ("delivery_attempts", "id, delivery_id, attempt"),
];
const YOUNG_ROWS: i64 = 1_000_000;

/// Analyzes each of [`YOUNG_TABLES`] whenever it has at least doubled (and by 500 rows) since it
/// was last analyzed, while it is under [`YOUNG_ROWS`]. A fresh store fills faster than
/// autovacuum looks (once a minute): planned without statistics, the ledger's look-ups scanned
/// every payment and every ref of the source, and the dispatcher's claim every pending row for
/// each, so that at 1,000 webhooks/s notifications fell seconds behind within ten seconds.
/// Stops when the pool closes.
fn analyze_while_young(pool: PgPool) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if pool.is_closed() {
                return;
            }
            let grown: Result<Vec<String>, sqlx::Error> = sqlx::query_scalar(
                "SELECT relname::text FROM pg_stat_user_tables
                 WHERE schemaname = current_schema() AND relname = ANY($1)
                   AND n_live_tup < $2 AND n_mod_since_analyze >= GREATEST(500, n_live_tup / 2)",
            )
            .bind(YOUNG_TABLES.iter().map(|(t, _)| *t).collect::<Vec<_>>())
            .bind(YOUNG_ROWS)
            .fetch_all(&pool)
            .await;
            for table in grown.unwrap_or_default() {
                // Names from the list above, never from input.
                if let Some((table, columns)) = YOUNG_TABLES.iter().find(|(t, _)| *t == table) {
                    // A sample of 3,000 rows rather than 30,000: enough to plan by, and ten
                    // times less reading. Autovacuum's later analyzing takes the full sample.
                    let analyze = sqlx::AssertSqlSafe(format!(
                        "SET LOCAL default_statistics_target = 10; ANALYZE {table} ({columns})"
                    ));
                    let analyzed = sqlx::raw_sql(analyze).execute(&pool).await;
                    if let Err(e) = analyzed {
                        tracing::debug!(table, error = %e, "analyzing a young table failed");
                    }
                }
            }
        }
    });
}
