//! The ledger's tables: the processing state of inbox events, `payments`, `payment_refs` and
//! `payment_facts`. A [`WriteTx`] is a worker's transaction: claim a batch of events, then for
//! each, inside its own savepoint, apply its fact and mark it.

use chrono::{DateTime, Utc};

use super::{PgStore, SqliteStore, StoreError};
use crate::domain::facts::Fact;
use crate::domain::state::Payment;
use crate::domain::state::PaymentState;
use crate::domain::status::EventStatus;

/// The SQL both dialects accept for the ledger, expanded into each backend with its connection and
/// row types. Functions take a connection so they run inside the caller's transaction.
macro_rules! ledger_queries {
    ($conn:ty, $row:ty, $db:ty, $lock:literal) => {
        /// Takes the events a worker should apply next and holds them (PostgreSQL: row locks that
        /// other instances skip; SQLite: the write transaction) until the transaction ends.
        pub(super) async fn claim(
            conn: &mut $conn,
            claim: super::ledger::Claim,
        ) -> Result<Vec<super::ledger::ClaimedEvent>, StoreError> {
            let rows: Vec<$row> = match claim {
                super::ledger::Claim::Next { now_ms, limit } => {
                    let fresh = sqlx::query(concat!(
                        "SELECT id, source, event_id, event_type, payload, fetched, attempts, received_at FROM webhook_events
                         WHERE status = 'received' ORDER BY id LIMIT $1", $lock))
                        .bind(limit)
                        .fetch_all(&mut *conn)
                        .await?;
                    if fresh.is_empty() {
                        sqlx::query(concat!(
                            "SELECT id, source, event_id, event_type, payload, fetched, attempts, received_at FROM webhook_events
                             WHERE status = 'retrying' AND next_attempt_at <= $1
                             ORDER BY next_attempt_at, id LIMIT $2", $lock))
                            .bind(now_ms)
                            .bind(limit)
                            .fetch_all(&mut *conn)
                            .await?
                    } else {
                        fresh
                    }
                }
                super::ledger::Claim::Id(id) => sqlx::query(concat!(
                    "SELECT id, source, event_id, event_type, payload, fetched, attempts, received_at FROM webhook_events
                     WHERE id = $1 AND status IN ('received', 'retrying')", $lock))
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?,
            };
            rows.iter()
                .map(|r| {
                    Ok(super::ledger::ClaimedEvent {
                        id: r.try_get("id")?,
                        source: r.try_get("source")?,
                        event_id: r.try_get("event_id")?,
                        event_type: r.try_get("event_type")?,
                        payload: r.try_get("payload")?,
                        fetched: r.try_get("fetched")?,
                        attempts: r.try_get("attempts")?,
                        received_at: r.try_get("received_at")?,
                    })
                })
                .collect()
        }

        /// `SAVEPOINT`, `RELEASE` or `ROLLBACK TO`: one event's part of a batch.
        pub(super) async fn savepoint(conn: &mut $conn, sql: &'static str) -> Result<(), StoreError> {
            sqlx::query(sql).execute(&mut *conn).await?;
            Ok(())
        }

        /// Moves everything known about payment `from` onto `into`, then deletes `from`.
        pub(super) async fn merge_payment(
            conn: &mut $conn,
            from: i64,
            into: i64,
        ) -> Result<(), StoreError> {
            for sql in [
                "UPDATE payment_refs SET payment_id = $2 WHERE payment_id = $1",
                "UPDATE payment_facts SET payment_id = $2 WHERE payment_id = $1",
            ] {
                sqlx::query(sql).bind(from).bind(into).execute(&mut *conn).await?;
            }
            sqlx::query("DELETE FROM payments WHERE id = $1")
                .bind(from)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        /// Retention, one batch: of the next `batch` events after `after` (by id, so by arrival),
        /// those received before `cutoff` lose their payload and headers if they were applied
        /// (`processed`, `ignored`); failed ones keep theirs for a replay. Keeps the cursor with the
        /// change. Returns the last id examined and how many were pruned, or `None` when no event
        /// after `after` is old enough.
        pub(super) async fn prune_payloads(
            conn: &mut $conn,
            after: i64,
            cutoff: DateTime<Utc>,
            batch: i64,
            now: DateTime<Utc>,
        ) -> Result<Option<(i64, u64)>, StoreError> {
            let rows: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(
                "SELECT id, received_at FROM webhook_events WHERE id > $1 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(batch)
            .fetch_all(&mut *conn)
            .await?;
            let Some(last) = rows
                .iter()
                .take_while(|(_, at)| *at < cutoff)
                .last()
                .map(|(id, _)| *id)
            else {
                return Ok(None);
            };
            let pruned = sqlx::query(
                "UPDATE webhook_events SET payload = $1, headers = '{}', fetched = NULL, pruned_at = $2
                 WHERE id > $3 AND id <= $4 AND status IN ('processed', 'ignored')
                   AND pruned_at IS NULL",
            )
            .bind(Vec::<u8>::new())
            .bind(now)
            .bind(after)
            .bind(last)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            sqlx::query(
                "INSERT INTO payhook_settings (name, value) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(super::RETENTION_CURSOR)
            .bind(last.to_string())
            .execute(&mut *conn)
            .await?;
            Ok(Some((last, pruned)))
        }

        /// The ledger's upgrade, one batch: the facts after fact `after` whose event still has
        /// its payload, with that payload, to be read again by the current reader.
        pub(super) async fn facts_with_payloads(
            conn: &mut $conn,
            after: i64,
            limit: i64,
        ) -> Result<Vec<super::ledger::StoredFact>, StoreError> {
            let rows: Vec<(i64, i64, String, String, Vec<u8>)> = sqlx::query_as(
                "SELECT f.id, f.payment_id, f.source, e.event_type, e.payload
                 FROM payment_facts f
                 JOIN webhook_events e ON e.source = f.source AND e.event_id = f.event_id
                 WHERE f.id > $1 AND e.pruned_at IS NULL
                 ORDER BY f.id LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(id, payment_id, source, event_type, payload)| super::ledger::StoredFact {
                    id,
                    payment_id,
                    source,
                    event_type,
                    payload,
                })
                .collect())
        }

        /// Replaces a stored fact with what its event says now; `None` removes it (the event
        /// no longer counts as a payment's).
        pub(super) async fn rewrite_fact(
            conn: &mut $conn,
            id: i64,
            fact: Option<&crate::domain::facts::Fact>,
        ) -> Result<(), StoreError> {
            match fact {
                Some(fact) => {
                    sqlx::query("UPDATE payment_facts SET fact = $2 WHERE id = $1")
                        .bind(id)
                        .bind(serde_json::to_string(fact).expect("facts serialize"))
                        .execute(&mut *conn)
                        .await?;
                }
                None => {
                    sqlx::query("DELETE FROM payment_facts WHERE id = $1")
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                }
            }
            Ok(())
        }

        /// Up to `limit` payment ids after `after`, in order.
        pub(super) async fn payment_ids_after(
            conn: &mut $conn,
            after: i64,
            limit: i64,
        ) -> Result<Vec<i64>, StoreError> {
            Ok(sqlx::query_scalar("SELECT id FROM payments WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?)
        }

        /// Removes payments no fact speaks for any more; returns how many.
        pub(super) async fn drop_empty_payments(conn: &mut $conn) -> Result<u64, StoreError> {
            let empty = "SELECT id FROM payments p
                         WHERE NOT EXISTS (SELECT 1 FROM payment_facts f WHERE f.payment_id = p.id)";
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM payment_refs WHERE payment_id IN ({empty})"
            )))
            .execute(&mut *conn)
            .await?;
            Ok(sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM payments WHERE id IN ({empty})")))
                .execute(&mut *conn)
                .await?
                .rows_affected())
        }

        /// Bookings with more than one payment that took money.
        pub(super) async fn bookings_paid_twice(conn: &mut $conn) -> Result<Vec<String>, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT booking_id FROM payments
                 WHERE booking_id IS NOT NULL
                   AND status IN ('succeeded', 'partially_refunded', 'refunded', 'disputed')
                 GROUP BY booking_id HAVING COUNT(*) > 1",
            )
            .fetch_all(&mut *conn)
            .await?)
        }

        /// Puts events of a type marked `ignored` back in line; returns how many.
        pub(super) async fn requeue_ignored(
            conn: &mut $conn,
            event_type: &str,
        ) -> Result<u64, StoreError> {
            Ok(sqlx::query(
                "UPDATE webhook_events SET status = 'received', attempts = 0, next_attempt_at = NULL
                 WHERE status = 'ignored' AND event_type = $1 AND pruned_at IS NULL",
            )
            .bind(event_type)
            .execute(&mut *conn)
            .await?
            .rows_affected())
        }

        /// Records a failed attempt on a claimed event.
        pub(super) async fn record_failure(
            conn: &mut $conn,
            id: i64,
            failure: &super::ledger::Failure,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE webhook_events SET status = $2, attempts = $3, last_error = $4, next_attempt_at = $5
                 WHERE id = $1 AND status IN ('received', 'retrying')",
            )
            .bind(id)
            .bind(failure.status.as_str())
            .bind(failure.attempts)
            .bind(&failure.error)
            .bind(failure.next_attempt_at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Thin events waiting for their related object, due by `now_ms`, oldest first.
        pub async fn events_to_fetch(
            &self,
            now_ms: i64,
            limit: i64,
        ) -> Result<Vec<super::ledger::ToFetch>, StoreError> {
            let rows: Vec<(i64, String, String, Vec<u8>, i64)> = sqlx::query_as(
                "SELECT id, source, event_type, payload, attempts FROM webhook_events
                 WHERE status = 'waiting' AND COALESCE(next_attempt_at, 0) <= $1
                 ORDER BY id LIMIT $2",
            )
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(id, source, event_type, payload, attempts)| super::ledger::ToFetch {
                    id,
                    source,
                    event_type,
                    payload,
                    attempts,
                })
                .collect())
        }

        /// Keeps a thin event's fetched object and puts the event back in line for the
        /// processor; false if it was not waiting any more.
        pub async fn store_fetched(&self, id: i64, fetched: &[u8]) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE webhook_events SET fetched = $2, status = 'received', attempts = 0,
                    last_error = NULL, next_attempt_at = NULL
                 WHERE id = $1 AND status = 'waiting'",
            )
            .bind(id)
            .bind(fetched)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        /// Records a fetch that did not work: the event waits until `next_attempt_at` (unix
        /// ms), or, with `None`, fails for good.
        pub async fn fetch_failed(
            &self,
            id: i64,
            attempts: i64,
            error: &str,
            next_attempt_at: Option<i64>,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE webhook_events SET attempts = $2, last_error = $3, next_attempt_at = $4,
                    status = CASE WHEN $4 IS NULL THEN 'failed' ELSE 'waiting' END
                 WHERE id = $1 AND status = 'waiting'",
            )
            .bind(id)
            .bind(attempts)
            .bind(error)
            .bind(next_attempt_at)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        /// When the earliest thin event waiting for its object is due (unix ms).
        pub async fn next_fetch_due(&self) -> Result<Option<i64>, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT MIN(COALESCE(next_attempt_at, 0)) FROM webhook_events WHERE status = 'waiting'",
            )
            .fetch_one(&self.pool)
            .await?)
        }

        /// When the earliest waiting retry is due (unix ms).
        pub async fn next_retry_due(&self) -> Result<Option<i64>, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT MIN(next_attempt_at) FROM webhook_events WHERE status = 'retrying'",
            )
            .fetch_one(&self.pool)
            .await?)
        }

        /// Puts an event back in line to be applied now, whatever its status; false if there is none.
        pub async fn requeue_event(&self, id: i64) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE webhook_events SET status = 'received', attempts = 0, next_attempt_at = NULL
                 WHERE id = $1 AND pruned_at IS NULL",
            )
            .bind(id)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        /// The internal id of an event, by provider event id.
        pub async fn event_row_id(&self, source: &str, event_id: &str) -> Result<Option<i64>, StoreError> {
            Ok(sqlx::query_scalar("SELECT id FROM webhook_events WHERE source = $1 AND event_id = $2")
                .bind(source)
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await?)
        }

        /// Inbox events, newest first, those the filter keeps, older than its cursor. The SQL
        /// names only the filters that are set (see [`super::ledger::event_listing_sql`]), so
        /// each shape of listing gets a plan that uses its index.
        pub async fn list_events(
            &self,
            filter: &super::ledger::EventFilter,
            limit: i64,
        ) -> Result<Vec<super::ledger::EventSummary>, StoreError> {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(super::ledger::event_listing_sql(filter)));
            // In the order event_listing_sql numbers them.
            let status = filter.status.map(|s| s.as_str().to_string());
            for text in [&status, &filter.source, &filter.event_type, &filter.event_id]
                .into_iter()
                .flatten()
            {
                query = query.bind(text.clone());
            }
            for time in [filter.since, filter.until].into_iter().flatten() {
                query = query.bind(Self::time_param(time));
            }
            if let Some(before) = filter.before {
                query = query.bind(before);
            }
            let rows: Vec<$row> = query
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(super::ledger::EventSummary {
                        id: r.try_get("id")?,
                        source: r.try_get("source")?,
                        event_id: r.try_get("event_id")?,
                        event_type: r.try_get("event_type")?,
                        status: super::event_status(r.try_get("status")?)?,
                        attempts: r.try_get("attempts")?,
                        last_error: r.try_get("last_error")?,
                        received_at: r.try_get("received_at")?,
                        booking_id: r.try_get("booking_id")?,
                    })
                })
                .collect()
        }

        /// How many events, notifications and payments are in each status, for `/metrics`.
        pub async fn depths(&self) -> Result<super::ledger::Depths, StoreError> {
            let events: Vec<(String, i64)> = sqlx::query_as(
                "SELECT status, COUNT(*) FROM webhook_events GROUP BY status ORDER BY status",
            )
            .fetch_all(&self.pool)
            .await?;
            let deliveries: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT target, status, COUNT(*) FROM deliveries GROUP BY target, status
                 ORDER BY target, status",
            )
            .fetch_all(&self.pool)
            .await?;
            let payments: Vec<(String, i64)> = sqlx::query_as(
                "SELECT status, COUNT(*) FROM payments GROUP BY status ORDER BY status",
            )
            .fetch_all(&self.pool)
            .await?;
            Ok(super::ledger::Depths { events, deliveries, payments })
        }

        /// Payments, newest first, of one booking and/or status, older than `before`; like the
        /// event listing, the SQL names only the filters that are set.
        pub async fn list_payments(
            &self,
            booking_id: Option<&str>,
            status: Option<&str>,
            before: Option<i64>,
            limit: i64,
        ) -> Result<Vec<crate::domain::state::Payment>, StoreError> {
            let rows = self
                .listing_rows(
                    "payments",
                    &[("booking_id", booking_id), ("status", status)],
                    before,
                    limit,
                )
                .await?;
            rows.iter().map(Self::payment_from_row).collect()
        }

        pub async fn payments_where(
            &self,
            column: super::ledger::PaymentKey,
            value: &str,
        ) -> Result<Vec<crate::domain::state::Payment>, StoreError> {
            let sql = match column {
                super::ledger::PaymentKey::Booking => {
                    "SELECT * FROM payments WHERE booking_id = $1 ORDER BY id"
                }
                super::ledger::PaymentKey::CheckoutSession => {
                    "SELECT * FROM payments WHERE checkout_session_id = $1 ORDER BY id"
                }
                super::ledger::PaymentKey::PaymentIntent => {
                    "SELECT * FROM payments WHERE payment_intent_id = $1 ORDER BY id"
                }
            };
            let rows: Vec<$row> = sqlx::query(sql).bind(value).fetch_all(&self.pool).await?;
            rows.iter().map(Self::payment_from_row).collect()
        }

        pub(super) fn payment_from_row(r: &$row) -> Result<crate::domain::state::Payment, StoreError> {
                let status: String = r.try_get("status")?;
            let checkout: Option<String> = r.try_get("checkout_status")?;
            let paid_at: Option<DateTime<Utc>> = r.try_get("paid_at")?;
            let refunded_at: Option<DateTime<Utc>> = r.try_get("refunded_at")?;
            let attention: Option<String> = r.try_get("attention")?;
            let detail: Option<String> = r.try_get("detail")?;
            let detail: super::ledger::PaymentDetail = match detail {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("payment detail: {e}")))?,
                None => super::ledger::PaymentDetail::default(),
            };
            Ok(crate::domain::state::Payment {
                id: r.try_get("id")?,
                source: r.try_get("source")?,
                state: PaymentState {
                    status: PaymentStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("payment status {status:?}")))?,
                    booking_id: r.try_get("booking_id")?,
                    payment_intent_id: r.try_get("payment_intent_id")?,
                    checkout_session_id: r.try_get("checkout_session_id")?,
                    charge_id: r.try_get("charge_id")?,
                    amount: r.try_get("amount")?,
                    amount_captured: r.try_get("amount_captured")?,
                    currency: r.try_get("currency")?,
                    amount_refunded: r.try_get("amount_refunded")?,
                    refunds: detail.refunds,
                    disputes: detail.disputes,
                    amount_disputed: r.try_get("amount_disputed")?,
                    checkout_status: checkout.as_deref().and_then(CheckoutStatus::parse),
                    failure_code: r.try_get("failure_code")?,
                    failure_message: r.try_get("failure_message")?,
                    dispute_status: r.try_get("dispute_status")?,
                    dispute_reason: r.try_get("dispute_reason")?,
                    dispute_outcome: r.try_get("dispute_outcome")?,
                    paid_at: paid_at.map(|t| t.timestamp()),
                    refunded_at: refunded_at.map(|t| t.timestamp()),
                    attention: super::ledger::parse_attention(attention.as_deref()),
                    last_event_id: r.try_get("last_event_id")?,
                    last_event_at: r.try_get("last_event_at")?,
                },
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }
    };
}

/// The event listing for `filter`: a condition for each filter that is set, numbered in this
/// order: status, source, type, event id, then each time bound (used to find its event
/// number and for the row itself), then the cursor, then the limit.
///
/// - An event id without a source is looked up in the `(source, event_id)` index once per source;
///   the sources are read from that index by a loose scan (one seek per source), since no index
///   leads with `event_id` (one would cost ingest a random insert per event).
/// - A time window becomes a range of event numbers: the first event received at or after each
///   bound is found in the `received_at` index, and the rows are read by number from there, so a
///   window deep in the past costs what a recent one does. The rows are also checked against
///   `received_at` itself.
pub(super) fn event_listing_sql(f: &EventFilter) -> String {
    let mut listing = super::ListingSql::default().equals(&[
        (f.status.is_some(), "status"),
        (f.source.is_some(), "source"),
        (f.event_type.is_some(), "event_type"),
        (f.event_id.is_some(), "event_id"),
    ]);
    let by_id_only = f.event_id.is_some() && f.source.is_none();
    if by_id_only {
        listing
            .conditions
            .push("source IN (SELECT source FROM known_sources WHERE source IS NOT NULL)".into());
    }
    for (bound, op) in [(f.since, ">="), (f.until, "<")] {
        if bound.is_some() {
            let at = listing.param();
            listing.conditions.push(format!(
                "id {op} COALESCE((SELECT id FROM webhook_events WHERE received_at >= {at} \
                 ORDER BY received_at LIMIT 1), (SELECT COALESCE(MAX(id), 0) + 1 FROM webhook_events))"
            ));
            listing.conditions.push(format!("received_at {op} {at}"));
        }
    }
    let with = if by_id_only {
        "WITH RECURSIVE known_sources(source) AS (
            SELECT MIN(source) FROM webhook_events
            UNION ALL
            SELECT (SELECT MIN(w.source) FROM webhook_events w WHERE w.source > known_sources.source)
            FROM known_sources WHERE known_sources.source IS NOT NULL) "
    } else {
        ""
    };
    listing.sql(
        &format!(
            "{with}SELECT id, source, event_id, event_type, status, attempts, last_error, received_at,
                (SELECT p.booking_id FROM payment_facts f JOIN payments p ON p.id = f.payment_id
                 WHERE f.source = webhook_events.source AND f.event_id = webhook_events.event_id)
                 AS booking_id
             FROM webhook_events"
        ),
        f.before.is_some(),
    )
}

/// The booking-status notifications, as the `deliveries_booking_told` index names them.
macro_rules! told_condition {
    () => {
        "event IN ('confirmed', 'partially_refunded', 'refunded', 'cancelled')"
    };
}
pub(super) use told_condition as TOLD_CONDITION;

/// Unix seconds as a time, for the timestamp columns.
pub(super) fn time(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}

/// An inbox event a worker holds for the length of its transaction.
#[derive(Debug, Clone)]
pub struct ClaimedEvent {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: Vec<u8>,
    /// A thin event's related object, fetched from the provider as a snapshot event.
    pub fetched: Option<Vec<u8>>,
    /// Attempts made before this one.
    pub attempts: i64,
    pub received_at: DateTime<Utc>,
}

/// A thin event waiting for its related object.
#[derive(Debug, Clone)]
pub struct ToFetch {
    pub id: i64,
    pub source: String,
    pub event_type: String,
    pub payload: Vec<u8>,
    /// Fetches tried so far.
    pub attempts: i64,
}

/// Which events a worker claims.
#[derive(Debug, Clone, Copy)]
pub enum Claim {
    /// Up to `limit` of the oldest new events, else of the retries due by `now_ms`.
    Next { now_ms: i64, limit: i64 },
    /// This event, if it is waiting (new or retrying).
    Id(i64),
}

/// A failed attempt, as recorded on the event.
#[derive(Debug, Clone)]
pub struct Failure {
    /// `retrying` (with `next_attempt_at`) or `failed` once attempts are exhausted.
    pub status: EventStatus,
    pub attempts: i64,
    pub error: String,
    pub next_attempt_at: Option<i64>,
}

/// Which inbox events a listing keeps: every field that is set must match; `before` is the
/// cursor (an event's number: only older ones).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub status: Option<EventStatus>,
    pub source: Option<String>,
    pub event_type: Option<String>,
    /// The provider's event id (`evt_...`).
    pub event_id: Option<String>,
    /// Received at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Received before this time.
    pub until: Option<DateTime<Utc>>,
    pub before: Option<i64>,
}

impl EventFilter {
    /// Events in `status`.
    pub fn status(status: EventStatus) -> EventFilter {
        EventFilter {
            status: Some(status),
            ..EventFilter::default()
        }
    }
}

/// Counts by status, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Depths {
    pub events: Vec<(String, i64)>,
    /// (target, status, count)
    pub deliveries: Vec<(String, String, i64)>,
    pub payments: Vec<(String, i64)>,
}

/// One line of `payhook events list`.
#[derive(Debug, Clone)]
pub struct EventSummary {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    pub status: EventStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub received_at: DateTime<Utc>,
    /// The booking of the payment the event's fact belongs to, once it is applied.
    pub booking_id: Option<String>,
}

/// A payment's refunds and disputes, kept as one JSON column.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PaymentDetail {
    #[serde(default)]
    pub refunds: Vec<crate::domain::state::RefundView>,
    #[serde(default)]
    pub disputes: Vec<crate::domain::state::DisputeView>,
}

impl PaymentDetail {
    /// The column's text: `None` when there is nothing to say.
    pub fn column(state: &PaymentState) -> Option<String> {
        if state.refunds.is_empty() && state.disputes.is_empty() {
            return None;
        }
        let detail = PaymentDetail {
            refunds: state.refunds.clone(),
            disputes: state.disputes.clone(),
        };
        Some(serde_json::to_string(&detail).expect("payment detail serializes"))
    }
}

/// The `attention` column: flags, comma-separated, `None` when there are none.
pub fn attention_column(state: &PaymentState) -> Option<String> {
    (!state.attention.is_empty()).then(|| {
        state
            .attention
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// Reads the `attention` column; unknown flags (from a newer payhook) are skipped.
pub fn parse_attention(text: Option<&str>) -> Vec<crate::domain::state::Attention> {
    let mut flags: Vec<_> = text
        .unwrap_or_default()
        .split(',')
        .filter_map(crate::domain::state::Attention::parse)
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

/// A fact as stored, with its event's type and payload (see `facts_with_payloads`).
#[derive(Debug, Clone)]
pub struct StoredFact {
    pub id: i64,
    pub payment_id: i64,
    pub source: String,
    pub event_type: String,
    pub payload: Vec<u8>,
}

/// The columns payments are looked up by.
#[derive(Debug, Clone, Copy)]
pub enum PaymentKey {
    Booking,
    CheckoutSession,
    PaymentIntent,
}

/// A write transaction on the store: a ledger batch, a dispatcher round, a retention sweep.
/// Dropping it without [`WriteTx::commit`] rolls everything back.
pub enum WriteTx {
    /// With the store's write gate held: SQLite has one writer, and waiting on the gate is fair and
    /// immediate where SQLite's own busy handler sleeps and retries.
    Sqlite(
        sqlx::Transaction<'static, sqlx::Sqlite>,
        tokio::sync::OwnedMutexGuard<()>,
        super::sqlite::Waiting,
    ),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Calls the backend's function of the same name on the transaction's connection.
macro_rules! on_tx {
    ($tx:expr, $f:ident($($arg:expr),*)) => {
        match $tx {
            WriteTx::Sqlite(tx, ..) => SqliteStore::$f(&mut **tx, $($arg),*).await,
            WriteTx::Postgres(tx) => PgStore::$f(&mut **tx, $($arg),*).await,
        }
    };
}

impl WriteTx {
    pub async fn claim(&mut self, claim: Claim) -> Result<Vec<ClaimedEvent>, StoreError> {
        on_tx!(self, claim(claim))
    }

    /// Serializes, across instances, every transaction touching one of these keys (`source:id`
    /// for each provider id), so two workers never create two payments for one. Keys must be
    /// sorted and taken all at once, before any is used, so no two transactions wait in a cycle.
    pub async fn lock_refs(&mut self, keys: &[String]) -> Result<(), StoreError> {
        on_tx!(self, lock_refs(keys))
    }

    /// Opens the savepoint a part of the batch (all of it, or one event) is applied under.
    pub async fn begin_part(&mut self) -> Result<(), StoreError> {
        on_tx!(self, savepoint("SAVEPOINT part"))
    }

    /// Keeps the part's changes (they commit with the transaction).
    pub async fn keep_part(&mut self) -> Result<(), StoreError> {
        on_tx!(self, savepoint("RELEASE SAVEPOINT part"))
    }

    /// Undoes the part's changes alone; the rest of the transaction stands.
    pub async fn undo_part(&mut self) -> Result<(), StoreError> {
        on_tx!(self, savepoint("ROLLBACK TO SAVEPOINT part"))?;
        on_tx!(self, savepoint("RELEASE SAVEPOINT part"))
    }

    pub async fn record_failure(&mut self, id: i64, failure: &Failure) -> Result<(), StoreError> {
        on_tx!(self, record_failure(id, failure))
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
        on_tx!(self, refs_of(source, refs))
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
        on_tx!(self, payments_by(ids, bookings))
    }

    /// Every fact of these payments, with its payment.
    pub async fn facts_of(&mut self, payment_ids: &[i64]) -> Result<Vec<(i64, Fact)>, StoreError> {
        if payment_ids.is_empty() {
            return Ok(Vec::new());
        }
        on_tx!(self, facts_of(payment_ids))
    }

    /// (booking, status) these bookings were already told by a booking-status target.
    pub async fn told_bookings(
        &mut self,
        bookings: &[&str],
    ) -> Result<Vec<(String, String)>, StoreError> {
        if bookings.is_empty() {
            return Ok(Vec::new());
        }
        on_tx!(self, told_bookings(bookings))
    }

    /// `n` ids no other payment has or will get, for payments this transaction creates.
    pub async fn reserve_payment_ids(&mut self, n: usize) -> Result<Vec<i64>, StoreError> {
        on_tx!(self, reserve_payment_ids(n))
    }

    pub async fn merge_payment(&mut self, from: i64, into: i64) -> Result<(), StoreError> {
        on_tx!(self, merge_payment(from, into))
    }

    /// Ties (source, provider id) to payments; ids already tied stay put.
    pub async fn insert_refs(&mut self, refs: &[(&str, &str, i64)]) -> Result<(), StoreError> {
        if refs.is_empty() {
            return Ok(());
        }
        on_tx!(self, insert_refs(refs))
    }

    /// Records (source, payment, fact) rows; a fact already recorded is skipped.
    pub async fn insert_facts(&mut self, facts: &[(&str, i64, &Fact)]) -> Result<(), StoreError> {
        if facts.is_empty() {
            return Ok(());
        }
        on_tx!(self, insert_facts(facts))
    }

    /// Writes these payments' rows: new ones under their reserved ids, the others updated.
    pub async fn save_payments(&mut self, payments: &[&Payment]) -> Result<(), StoreError> {
        if payments.is_empty() {
            return Ok(());
        }
        on_tx!(self, save_payments(payments))
    }

    pub async fn facts_with_payloads(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredFact>, StoreError> {
        on_tx!(self, facts_with_payloads(after, limit))
    }

    pub async fn rewrite_fact(&mut self, id: i64, fact: Option<&Fact>) -> Result<(), StoreError> {
        on_tx!(self, rewrite_fact(id, fact))
    }

    pub async fn payment_ids_after(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        on_tx!(self, payment_ids_after(after, limit))
    }

    pub async fn drop_empty_payments(&mut self) -> Result<u64, StoreError> {
        on_tx!(self, drop_empty_payments())
    }

    pub async fn bookings_paid_twice(&mut self) -> Result<Vec<String>, StoreError> {
        on_tx!(self, bookings_paid_twice())
    }

    pub async fn requeue_ignored(&mut self, event_type: &str) -> Result<u64, StoreError> {
        on_tx!(self, requeue_ignored(event_type))
    }

    /// One batch of retention; see the backends' `prune_payloads`.
    pub async fn prune_payloads(
        &mut self,
        after: i64,
        cutoff: DateTime<Utc>,
        batch: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<(i64, u64)>, StoreError> {
        on_tx!(self, prune_payloads(after, cutoff, batch, now))
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
        on_tx!(self, finish_events(marks, now))
    }

    /// Writes notifications to the outbox, in order, each due at its time (unix ms).
    pub async fn insert_deliveries(
        &mut self,
        deliveries: &[(crate::domain::delivery::NewDelivery, i64)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        on_tx!(self, insert_deliveries(deliveries, now))
    }

    pub async fn claim_deliveries(
        &mut self,
        target: &str,
        now_ms: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<super::ClaimedDelivery>, StoreError> {
        on_tx!(self, claim_deliveries(target, now_ms, lease_until, limit))
    }

    pub async fn settle_delivery(&mut self, settled: &super::Settled) -> Result<(), StoreError> {
        on_tx!(self, settle_delivery(settled))
    }

    pub async fn save_circuit(
        &mut self,
        target: &str,
        circuit: &crate::domain::delivery::Circuit,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_tx!(self, save_circuit(target, circuit, now))
    }

    /// True when the backend serializes transactions by itself (SQLite's single writer), so
    /// [`WriteTx::lock_refs`] has nothing to do and need not be prepared for.
    pub fn serialized(&self) -> bool {
        matches!(self, WriteTx::Sqlite(..))
    }

    /// True when ingest is waiting for this transaction's write lock (SQLite): the caller should
    /// commit what it has done and let the webhooks in, since their answers wait on it.
    pub fn should_yield(&self) -> bool {
        match self {
            WriteTx::Sqlite(_, _, waiting) => waiting.should_yield(),
            WriteTx::Postgres(_) => false,
        }
    }

    /// Undoes everything, and releases the claim (and SQLite's write lock) before the caller
    /// records the failure.
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(tx, ..) => tx.rollback().await?,
            WriteTx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// Tells the other instances sharing a PostgreSQL store, when this transaction commits, that
    /// `work` is waiting (`LISTEN`/`NOTIFY`). SQLite has one instance: nothing to do.
    pub async fn announce(&mut self, work: super::Work) -> Result<(), StoreError> {
        if let WriteTx::Postgres(tx) = self {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(work.channel())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(tx, ..) => tx.commit().await?,
            WriteTx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}
