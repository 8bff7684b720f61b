//! The outbox tables: `deliveries` (one row per notification to one target) and
//! `delivery_targets` (each target's circuit). Rows are written by the processor inside its ledger
//! transaction, claimed and settled by the dispatcher in its own.

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::status::DeliveryStatus;

/// The outbox SQL both dialects accept, expanded into each backend. `$lock` makes a claim skip
/// rows another instance holds (PostgreSQL).
macro_rules! outbox_queries {
    ($conn:ty, $row:ty, $db:ty, $lock:literal) => {
        /// Takes up to `limit` due notifications of `target`, each the oldest pending one of its
        /// order key, and leases them until `lease_until` (unix ms): nobody else sends them
        /// meanwhile, and if this instance dies they come back when the lease ends.
        pub(super) async fn claim_deliveries(
            conn: &mut $conn,
            target: &str,
            now_ms: i64,
            lease_until: i64,
            limit: i64,
        ) -> Result<Vec<super::outbox::ClaimedDelivery>, StoreError> {
            let rows: Vec<$row> = sqlx::query(concat!(
                "UPDATE deliveries SET next_attempt_at = $3, leased_until = $3
                 WHERE id IN (
                    SELECT d.id FROM deliveries d
                    WHERE d.target = $1 AND d.status = 'pending' AND d.next_attempt_at <= $2
                      AND NOT EXISTS (SELECT 1 FROM deliveries e
                                      WHERE e.target = d.target AND e.order_key = d.order_key
                                        AND e.status = 'pending' AND e.id < d.id)
                    ORDER BY d.id LIMIT $4", $lock, ")
                 RETURNING id, notification_id, target, order_key, event, booking_id, payload, attempts,
                    source, source_event_id, payment_id",
            ))
            .bind(target)
            .bind(now_ms)
            .bind(lease_until)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
            let mut claimed = rows
                .iter()
                .map(|r| {
                    Ok(super::outbox::ClaimedDelivery {
                        id: r.try_get("id")?,
                        notification_id: r.try_get("notification_id")?,
                        target: r.try_get("target")?,
                        order_key: r.try_get("order_key")?,
                        event: r.try_get("event")?,
                        booking_id: r.try_get("booking_id")?,
                        payload: r.try_get("payload")?,
                        attempts: r.try_get("attempts")?,
                        source: r.try_get("source")?,
                        source_event_id: r.try_get("source_event_id")?,
                        payment_id: r.try_get("payment_id")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            claimed.sort_by_key(|c| c.id);
            Ok(claimed)
        }

        /// Records an attempt's outcome and ends its lease.
        pub(super) async fn settle_delivery(
            conn: &mut $conn,
            s: &super::outbox::Settled,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE deliveries SET status = $2, attempts = $3, next_attempt_at = $4,
                    leased_until = NULL, last_status = $5, last_error = $6, delivered_at = $7
                 WHERE id = $1",
            )
            .bind(s.id)
            .bind(s.status.as_str())
            .bind(s.attempts)
            .bind(s.next_attempt_at)
            .bind(s.last_status)
            .bind(&s.last_error)
            .bind(s.delivered_at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        pub(super) async fn save_circuit(
            conn: &mut $conn,
            name: &str,
            c: &Circuit,
            now: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO delivery_targets (name, state, failures, open_until, reason, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (name) DO UPDATE SET state = $2, failures = $3, open_until = $4,
                    reason = $5, updated_at = $6",
            )
            .bind(name)
            .bind(c.state.as_str())
            .bind(i64::from(c.failures))
            .bind(c.reopens_at())
            .bind(&c.reason)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// A target's saved circuit (closed when none was saved).
        pub async fn circuit(&self, name: &str) -> Result<Circuit, StoreError> {
            let row: Option<$row> = sqlx::query(
                "SELECT state, failures, open_until, reason FROM delivery_targets WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
            let Some(r) = row else {
                return Ok(Circuit::closed());
            };
            let state: String = r.try_get("state")?;
            let failures: i64 = r.try_get("failures")?;
            let open_until: Option<i64> = r.try_get("open_until")?;
            Ok(Circuit {
                state: match state.as_str() {
                    "disabled" => CircuitState::Disabled,
                    "open" => CircuitState::Open {
                        until: open_until.unwrap_or(0),
                        wait_ms: 0,
                    },
                    _ => CircuitState::Closed,
                },
                failures: failures.clamp(0, i64::from(u32::MAX)) as u32,
                reason: r.try_get("reason")?,
            })
        }

        /// Closes a target's circuit (re-enables a target disabled by a 410).
        pub async fn reset_circuit(&self, name: &str) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE delivery_targets SET state = 'closed', failures = 0, open_until = NULL,
                    reason = NULL WHERE name = $1",
            )
            .bind(name)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        /// When the next notification of `target` that could be claimed is due (unix ms).
        pub async fn next_delivery_due(&self, target: &str) -> Result<Option<i64>, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT MIN(d.next_attempt_at) FROM deliveries d
                 WHERE d.target = $1 AND d.status = 'pending'
                   AND NOT EXISTS (SELECT 1 FROM deliveries e
                                   WHERE e.target = d.target AND e.order_key = d.order_key
                                     AND e.status = 'pending' AND e.id < d.id)",
            )
            .bind(target)
            .fetch_one(&self.pool)
            .await?)
        }

        /// Ends every lease now: for a single instance starting up, whatever it had in flight
        /// when it stopped is due again at once.
        pub async fn release_leases(&self, now_ms: i64) -> Result<u64, StoreError> {
            let done = sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $1, leased_until = NULL
                 WHERE status = 'pending' AND leased_until IS NOT NULL",
            )
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected())
        }

        /// Notifications, newest first, optionally of one target and status, older than `before`.
        pub async fn list_deliveries(
            &self,
            target: Option<&str>,
            status: Option<crate::domain::status::DeliveryStatus>,
            before: Option<i64>,
            limit: i64,
        ) -> Result<Vec<super::outbox::Delivery>, StoreError> {
            let rows = self
                .listing_rows(
                    "deliveries",
                    &[("target", target), ("status", status.map(crate::domain::status::DeliveryStatus::as_str))],
                    before,
                    limit,
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(super::outbox::Delivery {
                        id: r.try_get("id")?,
                        notification_id: r.try_get("notification_id")?,
                        target: r.try_get("target")?,
                        order_key: r.try_get("order_key")?,
                        event: r.try_get("event")?,
                        booking_id: r.try_get("booking_id")?,
                        payload: r.try_get("payload")?,
                        status: super::outbox::delivery_status(r.try_get("status")?)?,
                        attempts: r.try_get("attempts")?,
                        next_attempt_at: r.try_get("next_attempt_at")?,
                        in_flight: r.try_get::<Option<i64>, _>("leased_until")?.is_some(),
                        last_status: r.try_get("last_status")?,
                        last_error: r.try_get("last_error")?,
                        created_at: r.try_get("created_at")?,
                        delivered_at: r.try_get("delivered_at")?,
                        source: r.try_get("source")?,
                        source_event_id: r.try_get("source_event_id")?,
                    })
                })
                .collect()
        }

        /// Puts dead or pending notifications back in line, due now with a fresh schedule: the
        /// given ones (by id or notification id), or every dead one (of one target). Delivered
        /// ones are left alone. Returns the ids requeued.
        pub async fn retry_deliveries(
            &self,
            which: super::outbox::RetrySelection<'_>,
            now_ms: i64,
        ) -> Result<Vec<i64>, StoreError> {
            let mut requeued = Vec::new();
            // One statement per row keeps the SQL the same in both dialects (no array binds).
            let candidates: Vec<i64> = match which {
                super::outbox::RetrySelection::Dead { target } => {
                    sqlx::query_scalar(
                        "SELECT id FROM deliveries WHERE status = 'dead'
                           AND (CAST($1 AS TEXT) IS NULL OR target = $1) ORDER BY id",
                    )
                    .bind(target)
                    .fetch_all(&self.pool)
                    .await?
                }
                super::outbox::RetrySelection::Ids(keys) => {
                    let mut found = Vec::new();
                    for key in keys {
                        let row: Option<i64> = sqlx::query_scalar(
                            "SELECT id FROM deliveries WHERE id = $1 OR notification_id = $2",
                        )
                        .bind(key.parse::<i64>().ok())
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?;
                        found.extend(row);
                    }
                    found
                }
            };
            for id in candidates {
                let done = sqlx::query(
                    "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2,
                        leased_until = NULL
                     WHERE id = $1 AND status IN ('pending', 'dead')",
                )
                .bind(id)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 1 {
                    requeued.push(id);
                }
            }
            Ok(requeued)
        }
    };
}

/// A notification a dispatcher holds (leased) while it sends it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub notification_id: String,
    pub target: String,
    pub order_key: String,
    pub event: String,
    pub booking_id: Option<String>,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// The provider event that caused it (none for rows written before payhook kept it).
    pub source: Option<String>,
    pub source_event_id: Option<String>,
    /// The payment whose change it announces.
    pub payment_id: Option<i64>,
}

/// A status column read back; a word payhook does not write means the store was changed by hand.
pub(crate) fn delivery_status(text: String) -> Result<DeliveryStatus, StoreError> {
    DeliveryStatus::parse(&text)
        .ok_or_else(|| StoreError::Corrupt(format!("delivery status {text:?}")))
}

/// The outcome of one attempt, as recorded.
#[derive(Debug, Clone)]
pub struct Settled {
    pub id: i64,
    /// `delivered`, `pending` (to be retried at `next_attempt_at`) or `dead`.
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// What a booking service finally answered to a `confirmed` of this payment.
    pub booking_answer: Option<BookingAnswer>,
}

/// A booking service's final answer to a `confirmed` notification: refused for good (dead), or
/// accepted (delivered, after a retry perhaps).
#[derive(Debug, Clone)]
pub struct BookingAnswer {
    pub payment_id: i64,
    pub refused: bool,
    /// The provider event behind the notification.
    pub source: Option<String>,
    pub source_event_id: Option<String>,
    pub answer: String,
}

/// A `deliveries` row, for listings.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub notification_id: String,
    pub target: String,
    pub order_key: String,
    pub event: String,
    pub booking_id: Option<String>,
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    /// An attempt is under way (or its instance died and its lease has not ended yet).
    pub in_flight: bool,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub source: Option<String>,
    pub source_event_id: Option<String>,
}

/// Which notifications `payhook deliveries retry` puts back in line.
#[derive(Debug, Clone, Copy)]
pub enum RetrySelection<'a> {
    /// By row id or notification id.
    Ids(&'a [String]),
    /// Every dead one, of one target or all.
    Dead { target: Option<&'a str> },
}
