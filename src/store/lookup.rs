//! Look-ups by the ids people have, and the rows an explanation is made of: payments by any
//! provider id or by an event, a payment's facts with the events that brought them, its
//! notifications and each of their attempts. Reads only, on the reader pool; the SQL is the same
//! in both dialects, so each query is written once and run on either backend.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::outbox::Delivery;
use super::payments::{self, PaymentRow};
use super::{Session, Store, StoreError, sql};
use crate::domain::state::Payment;
use crate::domain::status::EventStatus;

/// A value bound to a look-up's query.
#[derive(Debug, Clone, Copy)]
enum Param<'a> {
    Int(i64),
    Text(&'a str),
}

/// A fact of a payment with the event that established it (none when retention or an operator
/// removed the event row).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FactRow {
    pub payment_id: i64,
    pub source: String,
    pub event_id: String,
    /// The provider's time (unix seconds).
    pub occurred_at: i64,
    /// The fact as stored (JSON).
    pub fact: String,
    /// The event's row number.
    pub event_row: Option<i64>,
    pub event_type: Option<String>,
    pub event_status: Option<EventStatus>,
    pub received_at: Option<DateTime<Utc>>,
    /// The provider's API was asked about it (a thin event's object, or a confirmation).
    pub fetched: Option<bool>,
}

/// One attempt of a notification, as its history keeps it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: i64,
    pub attempt: i64,
    /// Unix ms.
    pub started_at: i64,
    pub latency_ms: i64,
    pub status: Option<i64>,
    pub answer: Option<String>,
    /// `delivered`, `pending` (to be retried) or `dead`.
    pub outcome: String,
    /// Unix ms, for a retry.
    pub next_attempt_at: Option<i64>,
}

/// Payments by any of their provider ids (see [`sql::payments_by_key`]).
const PAYMENTS_BY_REF: &str = sql::payments_by_ref!("");

/// Payments by the provider id of an event that established one of their facts.
const PAYMENTS_BY_EVENT_ID: &str = sql::payments_by_key!("payment_facts", "event_id", "");

const PAYMENTS_BY_EVENT_ROW: &str = "
    SELECT * FROM payments
    WHERE id IN (SELECT f.payment_id FROM payment_facts f
                 JOIN webhook_events e ON e.source = f.source AND e.event_id = f.event_id
                 WHERE e.id = $1)
    ORDER BY id";

const SESSIONS_OF_BOOKING: &str =
    "SELECT * FROM checkout_sessions WHERE booking_id = $1 ORDER BY created_at, id";

/// `$1, $2, ...` for `n` values.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Runs a read both dialects accept.
    async fn rows<T>(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Store::Sqlite(s) => {
                let mut q = sqlx::query_as(sql);
                for p in params {
                    q = match *p {
                        Param::Int(i) => q.bind(i),
                        Param::Text(t) => q.bind(t.to_string()),
                    };
                }
                Ok(q.fetch_all(s.reader()).await?)
            }
            Store::Postgres(s) => {
                let mut q = sqlx::query_as(sql);
                for p in params {
                    q = match *p {
                        Param::Int(i) => q.bind(i),
                        Param::Text(t) => q.bind(t.to_string()),
                    };
                }
                Ok(q.fetch_all(s.reader()).await?)
            }
        }
    }

    async fn payment_rows(&self, sql: &str, param: Param<'_>) -> Result<Vec<Payment>, StoreError> {
        let rows: Vec<PaymentRow> = self.rows(sql, &[param]).await?;
        payments::payments(rows)
    }

    /// Payments one of whose provider ids (payment intent, checkout session, charge) is `id`.
    pub async fn payments_by_ref(&self, id: &str) -> Result<Vec<Payment>, StoreError> {
        self.payment_rows(PAYMENTS_BY_REF, Param::Text(id)).await
    }

    /// Payments a provider event (`evt_...`, of any source) established a fact about.
    pub async fn payments_by_event_id(&self, event_id: &str) -> Result<Vec<Payment>, StoreError> {
        self.payment_rows(PAYMENTS_BY_EVENT_ID, Param::Text(event_id))
            .await
    }

    /// Payments the event stored under row number `id` established a fact about.
    pub async fn payments_by_event_row(&self, id: i64) -> Result<Vec<Payment>, StoreError> {
        self.payment_rows(PAYMENTS_BY_EVENT_ROW, Param::Int(id))
            .await
    }

    /// The checkout sessions payhook created for a booking, oldest first.
    pub async fn sessions_of_booking(&self, booking_id: &str) -> Result<Vec<Session>, StoreError> {
        self.rows(SESSIONS_OF_BOOKING, &[Param::Text(booking_id)])
            .await
    }

    /// The facts of these payments with their events, in provider time; events of the same
    /// time (Stripe's are to the second) in the order they were applied, so that the timeline's
    /// states read as they happened.
    pub async fn facts_of(&self, payment_ids: &[i64]) -> Result<Vec<FactRow>, StoreError> {
        if payment_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT f.payment_id, f.source, f.event_id, f.occurred_at, f.fact,
                    e.id AS event_row, e.event_type, e.status AS event_status, e.received_at,
                    (e.fetched IS NOT NULL) AS fetched
             FROM payment_facts f
             LEFT JOIN webhook_events e ON e.source = f.source AND e.event_id = f.event_id
             WHERE f.payment_id IN ({})
             ORDER BY f.occurred_at, f.id",
            placeholders(payment_ids.len())
        );
        let params: Vec<Param> = payment_ids.iter().map(|&i| Param::Int(i)).collect();
        self.rows(&sql, &params).await
    }

    /// The notification with this row number or `ntf_` id, and whether a later notification of
    /// its target and booking was delivered (sent again, it would overtake that one).
    pub async fn delivery_by_key(&self, key: &str) -> Result<Option<(Delivery, bool)>, StoreError> {
        let sql = format!(
            "SELECT {} FROM deliveries WHERE id = $1 OR notification_id = $2",
            sql::DELIVERY_COLUMNS
        );
        let id = key.parse::<i64>().unwrap_or(-1);
        let found: Vec<Delivery> = self.rows(&sql, &[Param::Int(id), Param::Text(key)]).await?;
        let Some(delivery) = found.into_iter().next() else {
            return Ok(None);
        };
        let Some(booking) = delivery.booking_id.clone() else {
            return Ok(Some((delivery, false)));
        };
        let later = format!(
            "SELECT {} FROM deliveries WHERE booking_id = $1 AND target = $2 AND order_key = $3
               AND id > $4 AND status = 'delivered' LIMIT 1",
            sql::DELIVERY_COLUMNS
        );
        let overtaken: Vec<Delivery> = self
            .rows(
                &later,
                &[
                    Param::Text(&booking),
                    Param::Text(&delivery.target),
                    Param::Text(&delivery.order_key),
                    Param::Int(delivery.id),
                ],
            )
            .await?;
        Ok(Some((delivery, !overtaken.is_empty())))
    }

    /// The notifications about these payments, oldest first.
    pub async fn deliveries_of(&self, payment_ids: &[i64]) -> Result<Vec<Delivery>, StoreError> {
        if payment_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM deliveries WHERE payment_id IN ({}) ORDER BY id",
            sql::DELIVERY_COLUMNS,
            placeholders(payment_ids.len())
        );
        let params: Vec<Param> = payment_ids.iter().map(|&i| Param::Int(i)).collect();
        self.rows(&sql, &params).await
    }

    /// Every attempt of these notifications, in order.
    pub async fn attempts_of(&self, delivery_ids: &[i64]) -> Result<Vec<AttemptRow>, StoreError> {
        if delivery_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT delivery_id, attempt, started_at, latency_ms, status, answer, outcome,
                    next_attempt_at
             FROM delivery_attempts WHERE delivery_id IN ({})
             ORDER BY delivery_id, attempt, id",
            placeholders(delivery_ids.len())
        );
        let params: Vec<Param> = delivery_ids.iter().map(|&i| Param::Int(i)).collect();
        self.rows(&sql, &params).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PaymentKey;

    /// The same provider id and event id under two sources: each look-up finds both payments, and
    /// reads only the unique keys, whatever the tables hold.
    #[tokio::test]
    async fn an_id_without_its_source_is_found_under_every_source_through_the_unique_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        let Store::Sqlite(sqlite) = &*store else {
            unreachable!("a scratch store is SQLite")
        };
        for (id, source) in [(1, "stripe"), (2, "mollie"), (3, "paypal")] {
            let (ref_id, event_id) = if id == 3 {
                ("pi_other", "evt_other")
            } else {
                ("pi_shared", "evt_shared")
            };
            let session = format!("cs_{id}");
            sqlx::query(
                "INSERT INTO payments (id, source, payment_intent_id, checkout_session_id, status,
                                       created_at, updated_at)
                 VALUES ($1, $2, $3, $4, 'succeeded', '2026-12-02T00:00:00Z',
                         '2026-12-02T00:00:00Z')",
            )
            .bind(id)
            .bind(source)
            .bind(ref_id)
            .bind(&session)
            .execute(sqlite.reader())
            .await
            .unwrap();
            for ref_id in [ref_id, &session] {
                sqlx::query(
                    "INSERT INTO payment_refs (source, ref, payment_id) VALUES ($1, $2, $3)",
                )
                .bind(source)
                .bind(ref_id)
                .bind(id)
                .execute(sqlite.reader())
                .await
                .unwrap();
            }
            sqlx::query(
                "INSERT INTO payment_facts (payment_id, source, event_id, occurred_at, fact)
                 VALUES ($1, $2, $3, 0, '{}')",
            )
            .bind(id)
            .bind(source)
            .bind(event_id)
            .execute(sqlite.reader())
            .await
            .unwrap();
        }
        let ids = |found: Vec<Payment>| -> Vec<i64> { found.iter().map(|p| p.id).collect() };
        assert_eq!(
            ids(store.payments_by_ref("pi_shared").await.unwrap()),
            [1, 2]
        );
        assert_eq!(ids(store.payments_by_ref("pi_other").await.unwrap()), [3]);
        assert!(store.payments_by_ref("pi_nobody").await.unwrap().is_empty());
        assert_eq!(
            ids(store.payments_by_event_id("evt_shared").await.unwrap()),
            [1, 2]
        );
        assert_eq!(
            ids(store.payments_by_event_id("evt_other").await.unwrap()),
            [3]
        );

        // The checkout pages' look-ups: by the id in its own column only.
        let by = |key, id: &'static str| {
            let store = store.clone();
            async move { ids(store.payments_where(key, id).await.unwrap()) }
        };
        assert_eq!(by(PaymentKey::PaymentIntent, "pi_shared").await, [1, 2]);
        assert_eq!(by(PaymentKey::CheckoutSession, "cs_3").await, [3]);
        assert!(by(PaymentKey::CheckoutSession, "pi_other").await.is_empty());
        assert!(by(PaymentKey::PaymentIntent, "cs_2").await.is_empty());

        for (sql, table) in [
            (PAYMENTS_BY_REF, "payment_refs"),
            (sql::PAYMENTS_OF_SESSION, "payment_refs"),
            (sql::PAYMENTS_OF_INTENT, "payment_refs"),
            (PAYMENTS_BY_EVENT_ID, "payment_facts"),
        ] {
            let plan = sqlite.query_plan(sql).await;
            assert!(
                plan.iter()
                    .any(|d| d.contains(&format!("sqlite_autoindex_{table}_1 (source=? AND"))),
                "{plan:#?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|d| d.starts_with("SCAN") && !d.starts_with("SCAN sources")),
                "{plan:#?}"
            );
        }
    }
}
