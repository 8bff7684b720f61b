//! The history a store holds after months of use, written straight into a scratch database so the
//! benchmark can measure ingest and the admin queries on it: `events` inbox events received over
//! the last 90 days (random provider ids, as Stripe's are to an index), applied long ago, their
//! payloads pruned by retention; a payment per three events with its provider id and its booking;
//! and a delivered notification per payment. Rare kinds are there to be looked for: one event in
//! 1,000 is a dispute, one in 10,000 failed (and keeps its payload), one payment in 3,000 is
//! disputed. Loaded in chunks, without fsync (a scratch store).

use std::time::{Duration, Instant};

use std::str::FromStr;

use anyhow::Context;
use payhook::ledger::upgrade::{MODEL, MODEL_SETTING};
use sqlx::{ConnectOptions, Connection, Executor};

/// Rows per statement.
const CHUNK: u64 = 500_000;

/// How far back the history goes.
const SPAN_SECS: f64 = 90.0 * 86_400.0;

/// One SQL dialect's spelling of what the loader needs.
struct Dialect {
    /// The rows `i` from `$1` to `$2`.
    series: &'static str,
    /// A random 24-character hex id.
    random_hex: &'static str,
    /// The time `$3 + i * $4` (unix seconds).
    at: &'static str,
    empty_payload: &'static str,
    failed_payload: &'static str,
}

const SQLITE: Dialect = Dialect {
    series: "(WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) SELECT i FROM n) AS n",
    random_hex: "lower(hex(randomblob(12)))",
    at: "strftime('%Y-%m-%dT%H:%M:%fZ', $3 + i * $4, 'unixepoch')",
    empty_payload: "X''",
    failed_payload: "CAST('{}' AS BLOB)",
};

const POSTGRES: Dialect = Dialect {
    series: "generate_series($1::BIGINT, $2::BIGINT) AS n(i)",
    random_hex: "substr(md5(random()::TEXT || i::TEXT), 1, 24)",
    at: "to_timestamp($3::FLOAT8 + i * $4::FLOAT8)",
    empty_payload: "''::BYTEA",
    failed_payload: "'{}'::BYTEA",
};

impl Dialect {
    fn events(&self) -> String {
        let Dialect {
            series,
            random_hex,
            at,
            empty_payload,
            failed_payload,
        } = self;
        format!(
            "INSERT INTO webhook_events (source, event_id, event_type, status, payload, headers,
                 received_at, attempts, last_error, processed_at, pruned_at)
             SELECT 'stripe', 'evt_' || {random_hex},
                 CASE WHEN i % 1000 = 0 THEN 'charge.dispute.created'
                      WHEN i % 3 = 0 THEN 'charge.refunded'
                      WHEN i % 3 = 1 THEN 'payment_intent.succeeded'
                      ELSE 'checkout.session.completed' END,
                 CASE WHEN i % 10000 = 0 THEN 'failed' WHEN i % 50 = 0 THEN 'ignored' ELSE 'processed' END,
                 CASE WHEN i % 10000 = 0 THEN {failed_payload} ELSE {empty_payload} END,
                 '{{}}', {at}, 1,
                 CASE WHEN i % 10000 = 0 THEN 'names no payment' END,
                 {at}, CASE WHEN i % 10000 = 0 THEN NULL ELSE {at} END
             FROM {series}"
        )
    }

    /// Payment `i` is the `i`-th one, so ids line up with the series in an empty table.
    fn payments(&self) -> String {
        let Dialect { series, at, .. } = self;
        format!(
            "INSERT INTO payments (source, booking_id, payment_intent_id, amount, currency,
                 amount_refunded, status, paid_at, refunded_at, last_event_id, last_event_at,
                 created_at, updated_at)
             SELECT 'stripe', 'booking-fill-' || i, 'pi_fill_' || i, 1000 + i % 9000, 'eur',
                 CASE WHEN i % 3 = 0 THEN 1000 + i % 9000 ELSE 0 END,
                 CASE WHEN i % 3000 = 0 THEN 'disputed' WHEN i % 3 = 0 THEN 'refunded' ELSE 'succeeded' END,
                 {at}, CASE WHEN i % 3 = 0 THEN {at} END, 'evt_fill_' || i,
                 CAST($3 + i * $4 AS BIGINT), {at}, {at}
             FROM {series}"
        )
    }

    /// Binds the span too, like every step, and does not need it.
    fn refs(&self) -> String {
        "INSERT INTO payment_refs (source, ref, payment_id)
         SELECT source, payment_intent_id, id FROM payments
         WHERE id BETWEEN $1 AND $2 AND $3 IS NOT NULL AND $4 IS NOT NULL"
            .into()
    }

    fn deliveries(&self) -> String {
        let Dialect { series, at, .. } = self;
        format!(
            "INSERT INTO deliveries (notification_id, target, order_key, event, payment_id,
                 booking_id, payload, status, attempts, next_attempt_at, last_status, created_at,
                 delivered_at, source, source_event_id)
             SELECT 'ntf_fill_' || i, 'booking-service', 'booking-fill-' || i, 'confirmed', i,
                 'booking-fill-' || i, '{{}}', 'delivered', 1, CAST(($3 + i * $4) * 1000 AS BIGINT),
                 200, {at}, {at}, 'stripe', 'evt_fill_' || i
             FROM {series}"
        )
    }
}

/// The history is written in the ledger's current model: without the mark, payhook's first start
/// would upgrade it, reading every fact again and dropping the payments it holds (they have none).
const CURRENT_MODEL: &str =
    "INSERT INTO payhook_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";

/// Writes `events` events of history (and their payments and notifications) into the migrated,
/// empty store at `database_url`, telling `progress` how far it got; returns how long it took.
pub async fn fill(
    database_url: &str,
    events: u64,
    progress: impl Fn(u64, u64),
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let payments = events / 3;
    // Each step's rows are numbered 1..=count and spread over the same 90 days.
    let now = chrono::Utc::now().timestamp() as f64 - 3_600.0;
    let steps = |d: &Dialect| {
        [
            (d.events(), events),
            (d.payments(), payments),
            (d.refs(), payments),
            (d.deliveries(), payments),
        ]
    };
    let total = events + 3 * payments;
    let mut done = 0;
    if database_url.starts_with("postgres") {
        let mut conn = sqlx::postgres::PgConnectOptions::from_str(database_url)?
            .disable_statement_logging()
            .connect()
            .await?;
        conn.execute("SET synchronous_commit = off").await?;
        for (sql, count) in steps(&POSTGRES) {
            let before = done;
            done += chunks(&mut conn, &sql, count, now, &mut |n| {
                progress(before + n, total)
            })
            .await?;
        }
        conn.execute("ANALYZE").await?;
        sqlx::query(CURRENT_MODEL)
            .bind(MODEL_SETTING)
            .bind(MODEL)
            .execute(&mut conn)
            .await?;
    } else {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(database_url)?
            .disable_statement_logging()
            .connect()
            .await?;
        if let Some(file) = payhook::app::sqlite_file(database_url) {
            payhook::store::attach_inbox_of(&mut conn, file).await?;
        }
        // The indexes stay in memory while random ids go in; a scratch store needs no fsync.
        conn.execute(
            "PRAGMA cache_size = -1048576; PRAGMA synchronous = OFF;
             PRAGMA intake.cache_size = -1048576; PRAGMA intake.synchronous = OFF",
        )
        .await?;
        for (sql, count) in steps(&SQLITE) {
            let before = done;
            done += chunks(&mut conn, &sql, count, now, &mut |n| {
                progress(before + n, total)
            })
            .await?;
        }
        sqlx::query(CURRENT_MODEL)
            .bind(MODEL_SETTING)
            .bind(MODEL)
            .execute(&mut conn)
            .await?;
        // Both files' (the inbox's is attached).
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
    }
    Ok(started.elapsed())
}

/// Runs `sql` over rows 1..=count, `CHUNK` at a time, each chunk its own transaction; returns
/// the rows written plus what `done` had counted before.
async fn chunks<C>(
    conn: &mut C,
    sql: &str,
    count: u64,
    now: f64,
    progress: &mut impl FnMut(u64),
) -> anyhow::Result<u64>
where
    C: Connection,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    for<'q> i64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    for<'q> f64: sqlx::Encode<'q, C::Database> + sqlx::Type<C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
{
    let step = SPAN_SECS / count.max(1) as f64;
    let start = now - SPAN_SECS;
    let mut first = 1;
    while first <= count {
        let last = (first + CHUNK - 1).min(count);
        let mut tx = conn.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .bind(first as i64)
            .bind(last as i64)
            .bind(start)
            .bind(step)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("filling rows {first} to {last}"))?;
        tx.commit().await?;
        progress(last);
        first = last + 1;
    }
    Ok(count)
}
