//! SQLite: what a worker does inside its write transaction ([`crate::store::WriteTx`]): claim
//! events, apply a batch to the ledger, write and settle notifications, prune. A batch's reads
//! bind their lists as one JSON array ([`json_list`]), so their text is fixed and kept prepared.
//! Its writes list their rows in the statement (`VALUES (...), ...`): the text varies with the
//! batch's size, so these are not kept prepared.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteConnection;

use super::{SqliteStore, push_padded_values};
use crate::domain::delivery::{Circuit, NewDelivery};
use crate::domain::facts::Fact;
use crate::domain::ids::NotificationId;
use crate::domain::state::{CheckoutStatus, Payment};
use crate::domain::status::{DeliveryStatus, EventStatus};
use crate::store::events::{Claim, ClaimedEvent, Failure, last_received_before};
use crate::store::outbox::{ClaimedDelivery, Settled};
use crate::store::payments::{
    self, PaymentDetail, PaymentRow, StoredFact, attention_column, fact_column, parse_fact, time,
};
use crate::store::{RETENTION_CURSOR, StoreError, sql};

/// The notifications a dispatcher round leases ([`SqliteStore::claim_deliveries`]), earliest due
/// first: the order of `deliveries_due`, read from its start until `$4` are found. Asked for in id
/// order, SQLite gathered and sorted every due notification of the target for each claim, so a
/// backlog made each claim slower the longer it grew (19 ms at 20,000 pending, against 29 µs now):
/// at 2,000 webhooks/s the claim held the write lock for half of each second, and a booking
/// service back from an outage met a dispatcher slowed by its own backlog. Each booking's order
/// is the `NOT EXISTS`: only the oldest pending notification of an order key is taken.
pub(super) const CLAIM_DELIVERIES: &str = "
    UPDATE deliveries SET next_attempt_at = $3, leased_until = $3
    WHERE id IN (
        SELECT d.id FROM deliveries d
        WHERE d.target = $1 AND d.status = 'pending' AND d.next_attempt_at <= $5
          AND (d.leased_until IS NULL OR d.leased_until <= $2)
          AND NOT EXISTS (SELECT 1 FROM deliveries e
                          WHERE e.target = d.target AND e.order_key = d.order_key
                            AND e.status = 'pending' AND e.id < d.id)
        ORDER BY d.next_attempt_at, d.id LIMIT $4)
    RETURNING id, notification_id, target, order_key, event, booking_id, payload,
        attempts, source, source_event_id, payment_id, trace_context";

/// A round's outcomes on their notifications: the text before and after a `VALUES` list of
/// `(id, status, attempts, next_attempt_at, last_status, last_error, delivered_at)`, padded
/// ([`super::push_padded_values`]). Each row takes its first outcome, which ends its lease; one
/// an operator put back in line while the attempt was out (its lease already ended) keeps the
/// operator's word.
pub(super) const SETTLE_ROWS: (&str, &str) = (
    "WITH v (id, status, attempts, next_attempt_at, last_status, last_error, delivered_at) AS (",
    ") UPDATE deliveries SET status = v.status, attempts = v.attempts,
        next_attempt_at = v.next_attempt_at, leased_until = NULL,
        last_status = v.last_status, last_error = v.last_error, delivered_at = v.delivered_at
     FROM v WHERE deliveries.id = v.id AND deliveries.leased_until IS NOT NULL",
);

/// A round's attempts, kept in its order and numbered after those already kept: the text around
/// a `VALUES` list of `(n, id, started_at, latency_ms, status, answer, outcome,
/// next_attempt_at)`, padded as [`SETTLE_ROWS`].
pub(super) const KEEP_ATTEMPTS: (&str, &str) = (
    "WITH v (n, id, started_at, latency_ms, status, answer, outcome, next_attempt_at) AS (",
    ") INSERT INTO delivery_attempts (delivery_id, attempt, started_at, latency_ms,
        status, answer, outcome, next_attempt_at)
     SELECT v.id,
        (SELECT COUNT(*) FROM delivery_attempts a WHERE a.delivery_id = v.id)
          + ROW_NUMBER() OVER (PARTITION BY v.id ORDER BY v.n),
        v.started_at, v.latency_ms, v.status, v.answer, v.outcome, v.next_attempt_at
     FROM v WHERE v.id IS NOT NULL",
);

/// The payments a source's provider ids (`$2`) belong to.
const REFS_OF: &str = "
    SELECT ref, payment_id FROM payment_refs
    WHERE source = $1 AND ref IN (SELECT value FROM json_each($2))";

/// Of the payments `$1`, those flagged for attention.
pub(super) const FLAGGED_PAYMENTS: &str = "
    SELECT id FROM payments
    WHERE attention IS NOT NULL AND id IN (SELECT value FROM json_each($1))";

/// The payments `$1` and every payment of the bookings `$2`.
const PAYMENTS_BY: &str = "
    SELECT * FROM payments
    WHERE id IN (SELECT value FROM json_each($1))
       OR booking_id IN (SELECT value FROM json_each($2))
    ORDER BY id";

/// Every fact of the payments `$1`.
const FACTS_OF: &str = "
    SELECT payment_id, fact FROM payment_facts
    WHERE payment_id IN (SELECT value FROM json_each($1)) ORDER BY id";

/// What a booking-status target was told of the bookings `$1`; the condition is the
/// `deliveries_booking_told` index's, word for word.
const TOLD_BOOKINGS: &str = "
    SELECT DISTINCT booking_id, event FROM deliveries
    WHERE event IN ('confirmed', 'partially_refunded', 'refunded', 'cancelled')
      AND booking_id IN (SELECT value FROM json_each($1))";

/// Marks the events `$1` (a JSON list of `[id, status, error]`) as the processor left them at `$2`.
const FINISH_EVENTS: &str = "
    UPDATE webhook_events SET status = m.value ->> 1, last_error = m.value ->> 2, processed_at = $2,
        attempts = attempts + 1, next_attempt_at = NULL
    FROM json_each($1) AS m WHERE webhook_events.id = m.value ->> 0";

/// The oldest new events (`$1` of them) but those listed in `$2`.
const CLAIM_NEW: &str = "
    SELECT id, source, event_id, event_type, payload, fetched, attempts, received_at, trace_context
    FROM webhook_events WHERE status = 'received' AND id NOT IN (SELECT value FROM json_each($2))
    ORDER BY id LIMIT $1";

/// The retries due by `$1` (`$2` of them, earliest first) but those listed in `$3`.
const CLAIM_RETRIES: &str = "
    SELECT id, source, event_id, event_type, payload, fetched, attempts, received_at, trace_context
    FROM webhook_events WHERE status = 'retrying' AND next_attempt_at <= $1
    AND id NOT IN (SELECT value FROM json_each($3))
    ORDER BY next_attempt_at, id LIMIT $2";

/// A list bound as one JSON array, read with `IN (SELECT value FROM json_each(...))`: the
/// statement's text stays the same whatever the list's length, so SQLite compiles it once per
/// connection. With the values listed in the text (`IN ($1, $2, ...)`), each batch's reads were
/// compiled anew, one list element at a time.
fn json_list<T: serde::Serialize>(values: &[T]) -> String {
    serde_json::to_string(values).expect("ids and strings serialize")
}

impl SqliteStore {
    /// Takes the events a worker should apply next: up to `limit` of the oldest new ones, else
    /// of the retries due, leaving out `unmarked` (a JSON array of ids: events applied whose marks
    /// are being written). The write transaction holds them until it ends (one writer).
    pub(in crate::store) async fn claim(
        conn: &mut SqliteConnection,
        claim: Claim,
        unmarked: &str,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        let (now_ms, limit) = match claim {
            Claim::Next { now_ms, limit } => (now_ms, limit),
            Claim::Id(id) => {
                return Ok(sqlx::query_as(
                    "SELECT id, source, event_id, event_type, payload, fetched, attempts, received_at,
                     trace_context
                     FROM webhook_events WHERE id = $1 AND status IN ('received', 'retrying')
                     AND id NOT IN (SELECT value FROM json_each($2))",
                )
                .bind(id)
                .bind(unmarked)
                .fetch_all(&mut *conn)
                .await?);
            }
        };
        let fresh: Vec<ClaimedEvent> = sqlx::query_as(CLAIM_NEW)
            .bind(limit)
            .bind(unmarked)
            .fetch_all(&mut *conn)
            .await?;
        if !fresh.is_empty() {
            return Ok(fresh);
        }
        Ok(sqlx::query_as(CLAIM_RETRIES)
            .bind(now_ms)
            .bind(limit)
            .bind(unmarked)
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Records a failed attempt on a claimed event.
    pub(in crate::store) async fn record_failure(
        conn: &mut SqliteConnection,
        id: i64,
        failure: &Failure,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::RECORD_FAILURE)
            .bind(id)
            .bind(failure.status)
            .bind(failure.attempts)
            .bind(&failure.error)
            .bind(failure.next_attempt_at)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Moves everything known about payment `from` onto `into`, then deletes `from`.
    pub(in crate::store) async fn merge_payment(
        conn: &mut SqliteConnection,
        from: i64,
        into: i64,
    ) -> Result<(), StoreError> {
        for sql in [sql::MOVE_REFS, sql::MOVE_FACTS] {
            sqlx::query(sql)
                .bind(from)
                .bind(into)
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query(sql::DELETE_PAYMENT)
            .bind(from)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Retention, one batch: of the next `batch` events after `after` (by id, so by arrival),
    /// those received before `cutoff` lose their payload and headers if they were applied;
    /// failed ones keep theirs for a replay. Keeps the cursor with the change. Returns the last
    /// id examined and how many were pruned, or `None` when no event after `after` is old enough.
    pub(in crate::store) async fn prune_payloads(
        conn: &mut SqliteConnection,
        inbox: &sqlx::SqlitePool,
        after: i64,
        cutoff: DateTime<Utc>,
        batch: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<(i64, u64)>, StoreError> {
        let rows: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(sql::EVENTS_AFTER)
            .bind(after)
            .bind(batch)
            .fetch_all(&mut *conn)
            .await?;
        let Some(last) = last_received_before(&rows, cutoff) else {
            return Ok(None);
        };
        // The inbox's file first: if the cursor's commit then fails, the next sweep prunes the
        // same events again, and finds nothing left to prune.
        let pruned = sqlx::query(sql::PRUNE_PAYLOADS)
            .bind(Vec::<u8>::new())
            .bind(now)
            .bind(after)
            .bind(last)
            .execute(inbox)
            .await?
            .rows_affected();
        sqlx::query(sql::SET_SETTING)
            .bind(RETENTION_CURSOR)
            .bind(last.to_string())
            .execute(&mut *conn)
            .await?;
        Ok(Some((last, pruned)))
    }

    /// The ledger's upgrade, one batch: the facts after fact `after` whose event still has its
    /// payload, with that payload, to be read again by the current reader.
    pub(in crate::store) async fn facts_with_payloads(
        conn: &mut SqliteConnection,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredFact>, StoreError> {
        Ok(sqlx::query_as(sql::FACTS_WITH_PAYLOADS)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Replaces a stored fact with what its event says now; `None` removes it.
    pub(in crate::store) async fn rewrite_fact(
        conn: &mut SqliteConnection,
        id: i64,
        fact: Option<&Fact>,
    ) -> Result<(), StoreError> {
        let query = match fact {
            Some(fact) => sqlx::query(sql::UPDATE_FACT)
                .bind(id)
                .bind(fact_column(fact)),
            None => sqlx::query(sql::DELETE_FACT).bind(id),
        };
        query.execute(&mut *conn).await?;
        Ok(())
    }

    pub(in crate::store) async fn payment_ids_after(
        conn: &mut SqliteConnection,
        after: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(sql::PAYMENT_IDS_AFTER)
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Removes payments no fact speaks for any more; returns how many.
    pub(in crate::store) async fn drop_empty_payments(
        conn: &mut SqliteConnection,
    ) -> Result<u64, StoreError> {
        sqlx::query(sql::DELETE_EMPTY_REFS)
            .execute(&mut *conn)
            .await?;
        let done = sqlx::query(sql::DELETE_EMPTY_PAYMENTS)
            .execute(&mut *conn)
            .await?;
        Ok(done.rows_affected())
    }

    pub(in crate::store) async fn bookings_paid_twice(
        conn: &mut SqliteConnection,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(sql::BOOKINGS_PAID_TWICE)
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Puts events of a type marked `ignored` back in line; returns how many.
    pub(in crate::store) async fn requeue_ignored(
        inbox: &sqlx::SqlitePool,
        event_type: &str,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::REQUEUE_IGNORED)
            .bind(event_type)
            .execute(inbox)
            .await?;
        Ok(done.rows_affected())
    }

    /// Takes up to `limit` notifications of `target` due by `due_by`, each the oldest pending
    /// one of its order key and not leased at `now_ms`, and leases them until `lease_until` (unix ms): nobody sends them meanwhile,
    /// and if this instance dies they come back when the lease ends.
    pub(in crate::store) async fn claim_deliveries(
        conn: &mut SqliteConnection,
        target: &str,
        now_ms: i64,
        due_by: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let mut claimed: Vec<ClaimedDelivery> = sqlx::query_as(CLAIM_DELIVERIES)
            .bind(target)
            .bind(now_ms)
            .bind(lease_until)
            .bind(limit)
            .bind(due_by)
            .fetch_all(&mut *conn)
            .await?;
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// Records a round's attempt outcomes and ends their leases, in two statements whatever their
    /// number: two statements per notification held the write lock for about 60 µs each, over a
    /// second in every ten at 3,000 webhooks/s. Each notification's row takes its first outcome
    /// (which ends its lease, as when each was a statement of its own); one an operator put back
    /// in line while the attempt was out (its lease already ended) keeps the operator's word and
    /// is sent again. Every attempt is kept, numbered after those already kept (a retry by hand
    /// starts a fresh schedule, but the history goes on) and in the round's order.
    pub(in crate::store) async fn settle_deliveries(
        conn: &mut SqliteConnection,
        settled: &[Settled],
    ) -> Result<(), StoreError> {
        // Under SQLite's 32,766 parameters a statement.
        for settled in settled.chunks(1_000) {
            let mut seen = HashSet::with_capacity(settled.len());
            let rows: Vec<&Settled> = settled.iter().filter(|s| seen.insert(s.id)).collect();
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(SETTLE_ROWS.0);
            push_padded_values(&mut q, rows.into_iter(), 7, |row, s| {
                row.push_bind(s.id)
                    .push_bind(s.status)
                    .push_bind(s.attempts)
                    .push_bind(s.next_attempt_at)
                    .push_bind(s.last_status)
                    .push_bind(s.last_error.as_deref())
                    .push_bind(s.delivered_at);
            });
            q.push(SETTLE_ROWS.1);
            q.build().execute(&mut *conn).await?;

            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(KEEP_ATTEMPTS.0);
            push_padded_values(&mut q, settled.iter().enumerate(), 8, |row, (n, s)| {
                let retry_at = (s.status == DeliveryStatus::Pending).then_some(s.next_attempt_at);
                row.push_bind(n as i64)
                    .push_bind(s.id)
                    .push_bind(s.attempt.started_at)
                    .push_bind(s.attempt.latency_ms)
                    .push_bind(s.last_status)
                    .push_bind(s.attempt.answer.as_str())
                    .push_bind(s.status.as_str())
                    .push_bind(retry_at);
            });
            q.push(KEEP_ATTEMPTS.1);
            q.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    pub(in crate::store) async fn save_circuit(
        conn: &mut SqliteConnection,
        name: &str,
        c: &Circuit,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::SAVE_CIRCUIT)
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

    /// The payments `source`'s provider ids belong to, for those that are known.
    pub(in crate::store) async fn refs_of(
        conn: &mut SqliteConnection,
        source: &str,
        refs: &[&str],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(REFS_OF)
            .bind(source)
            .bind(json_list(refs))
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Of these payments, the ids of those flagged for attention (for any reason).
    pub(in crate::store) async fn flagged_payments(
        conn: &mut SqliteConnection,
        ids: &[i64],
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(FLAGGED_PAYMENTS)
            .bind(json_list(ids))
            .fetch_all(&mut *conn)
            .await?)
    }

    /// The payments with these ids and every payment of these bookings, oldest first.
    pub(in crate::store) async fn payments_by(
        conn: &mut SqliteConnection,
        ids: &[i64],
        bookings: &[&str],
    ) -> Result<Vec<Payment>, StoreError> {
        let rows: Vec<PaymentRow> = sqlx::query_as(PAYMENTS_BY)
            .bind(json_list(ids))
            .bind(json_list(bookings))
            .fetch_all(&mut *conn)
            .await?;
        payments::payments(rows)
    }

    /// Every fact of these payments, with the payment it belongs to.
    pub(in crate::store) async fn facts_of(
        conn: &mut SqliteConnection,
        payment_ids: &[i64],
    ) -> Result<Vec<(i64, Fact)>, StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(FACTS_OF)
            .bind(json_list(payment_ids))
            .fetch_all(&mut *conn)
            .await?;
        rows.into_iter().map(parse_fact).collect()
    }

    /// (booking, status) each of these bookings was already told by a booking-status target.
    pub(in crate::store) async fn told_bookings(
        conn: &mut SqliteConnection,
        bookings: &[&str],
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(TOLD_BOOKINGS)
            .bind(json_list(bookings))
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Ties provider ids to payments, in one statement; ids already tied stay put.
    pub(in crate::store) async fn insert_refs(
        conn: &mut SqliteConnection,
        refs: &[(&str, &str, i64)],
    ) -> Result<(), StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO payment_refs (source, ref, payment_id) SELECT * FROM (",
        );
        push_padded_values(&mut q, refs.iter(), 3, |row, (source, r, payment)| {
            row.push_bind(source.to_string())
                .push_bind(r.to_string())
                .push_bind(*payment);
        });
        q.push(") WHERE column1 IS NOT NULL ON CONFLICT (source, ref) DO NOTHING");
        q.build().execute(&mut *conn).await?;
        Ok(())
    }

    /// Records facts, in one statement, each once: a replayed event adds nothing.
    pub(in crate::store) async fn insert_facts(
        conn: &mut SqliteConnection,
        facts: &[(&str, i64, &Fact)],
    ) -> Result<(), StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO payment_facts (payment_id, source, event_id, occurred_at, fact)
             SELECT * FROM (",
        );
        push_padded_values(&mut q, facts.iter(), 5, |row, (source, payment, fact)| {
            row.push_bind(*payment)
                .push_bind(source.to_string())
                .push_bind(fact.event_id.clone())
                .push_bind(fact.occurred_at)
                .push_bind(fact_column(fact));
        });
        q.push(") WHERE column1 IS NOT NULL ON CONFLICT (source, event_id) DO NOTHING");
        q.build().execute(&mut *conn).await?;
        Ok(())
    }

    /// Writes payments' rows from their state, in one statement: inserted under the id given
    /// (reserved with `reserve_payment_ids`) or, for one that exists, updated.
    pub(in crate::store) async fn save_payments(
        conn: &mut SqliteConnection,
        payments: &[&Payment],
    ) -> Result<(), StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO payments (id, source, booking_id, payment_intent_id,
                checkout_session_id, charge_id, amount, currency, amount_refunded, status,
                checkout_status, failure_code, failure_message, dispute_status,
                dispute_reason, dispute_outcome, paid_at, refunded_at, last_event_id,
                last_event_at, updated_at, created_at, amount_captured, amount_disputed,
                attention, detail) SELECT * FROM (",
        );
        push_padded_values(&mut q, payments.iter(), 26, |row, p| {
            let s = &p.state;
            row.push_bind(p.id)
                .push_bind(p.source.clone())
                .push_bind(s.booking_id.clone())
                .push_bind(s.payment_intent_id.clone())
                .push_bind(s.checkout_session_id.clone())
                .push_bind(s.charge_id.clone())
                .push_bind(s.amount)
                .push_bind(s.currency.clone())
                .push_bind(s.amount_refunded)
                .push_bind(s.status.as_str())
                .push_bind(s.checkout_status.map(CheckoutStatus::as_str))
                .push_bind(s.failure_code.clone())
                .push_bind(s.failure_message.clone())
                .push_bind(s.dispute_status.clone())
                .push_bind(s.dispute_reason.clone())
                .push_bind(s.dispute_outcome.clone())
                .push_bind(s.paid_at.and_then(time))
                .push_bind(s.refunded_at.and_then(time))
                .push_bind(s.last_event_id.clone())
                .push_bind(s.last_event_at)
                .push_bind(p.updated_at)
                .push_bind(p.created_at)
                .push_bind(s.amount_captured)
                .push_bind(s.amount_disputed)
                .push_bind(attention_column(s))
                .push_bind(PaymentDetail::column(s));
        });
        q.push(
            ") WHERE column1 IS NOT NULL
             ON CONFLICT (id) DO UPDATE SET booking_id = excluded.booking_id,
                payment_intent_id = excluded.payment_intent_id,
                checkout_session_id = excluded.checkout_session_id,
                charge_id = excluded.charge_id, amount = excluded.amount,
                currency = excluded.currency, amount_refunded = excluded.amount_refunded,
                status = excluded.status, checkout_status = excluded.checkout_status,
                failure_code = excluded.failure_code, failure_message = excluded.failure_message,
                dispute_status = excluded.dispute_status, dispute_reason = excluded.dispute_reason,
                dispute_outcome = excluded.dispute_outcome, paid_at = excluded.paid_at,
                refunded_at = excluded.refunded_at, last_event_id = excluded.last_event_id,
                last_event_at = excluded.last_event_at, updated_at = excluded.updated_at,
                amount_captured = excluded.amount_captured,
                amount_disputed = excluded.amount_disputed, attention = excluded.attention,
                detail = excluded.detail",
        );
        q.build().execute(&mut *conn).await?;
        Ok(())
    }

    /// Marks claimed events done (`processed`, `ignored`, or `failed` for good, with why), in
    /// one statement.
    pub(in crate::store) async fn finish_events(
        conn: &mut SqliteConnection,
        marks: &[(i64, EventStatus, Option<&str>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let marks: Vec<(i64, &str, Option<&str>)> = marks
            .iter()
            .map(|(id, status, error)| (*id, status.as_str(), *error))
            .collect();
        sqlx::query(FINISH_EVENTS)
            .bind(json_list(&marks))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Writes notifications to the outbox in one statement, in order (their ids are the order
    /// of delivery), each due at its time (unix ms).
    pub(in crate::store) async fn insert_deliveries(
        conn: &mut SqliteConnection,
        deliveries: &[(NewDelivery, i64)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO deliveries (notification_id, target, order_key, event, payment_id,
                booking_id, payload, next_attempt_at, created_at, source, source_event_id)
             SELECT * FROM (",
        );
        push_padded_values(&mut q, deliveries.iter(), 11, |row, (d, due_ms)| {
            row.push_bind(d.notification_id.clone())
                .push_bind(d.target.clone())
                .push_bind(d.order_key.clone())
                .push_bind(d.event.clone())
                .push_bind(d.payment_id)
                .push_bind(d.booking_id.clone())
                .push_bind(d.payload.clone())
                .push_bind(*due_ms)
                .push_bind(now)
                .push_bind(d.source.clone())
                .push_bind(d.source_event_id.clone());
        });
        q.push(") WHERE column1 IS NOT NULL");
        q.build().execute(&mut *conn).await?;
        Ok(())
    }

    /// Each notification's trace context, in one statement.
    pub(in crate::store) async fn trace_deliveries(
        conn: &mut SqliteConnection,
        traces: &[(NotificationId, String)],
    ) -> Result<(), StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "UPDATE deliveries SET trace_context = v.column2 FROM (",
        );
        push_padded_values(&mut q, traces.iter(), 2, |row, (n, c)| {
            row.push_bind(n.as_str()).push_bind(c.as_str());
        });
        q.push(") AS v WHERE deliveries.notification_id = v.column1");
        q.build().execute(&mut *conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// A backlog must not slow its own draining: the claim reads `deliveries_due` in order and
    /// stops at its limit, never sorting the target's due notifications.
    /// A batch's reads, their lists bound as JSON arrays, still search each list's index one
    /// value at a time: nothing is scanned but the list.
    #[tokio::test]
    async fn a_batchs_reads_search_their_indexes_for_each_listed_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        let Store::Sqlite(sqlite) = &*store else {
            unreachable!("a scratch store is SQLite")
        };
        for (sql, searches) in [
            (
                REFS_OF,
                &["sqlite_autoindex_payment_refs_1 (source=? AND ref=?)"][..],
            ),
            (
                FLAGGED_PAYMENTS,
                &["payments USING INTEGER PRIMARY KEY (rowid=?)"],
            ),
            (
                PAYMENTS_BY,
                &[
                    "payments USING INTEGER PRIMARY KEY (rowid=?)",
                    "payments_booking (booking_id=?)",
                ],
            ),
            (FACTS_OF, &["payment_facts_payment (payment_id=?)"]),
            (TOLD_BOOKINGS, &["deliveries_booking_told (booking_id=?"]),
            (
                CLAIM_NEW,
                &["webhook_events USING INDEX webhook_events_status (status=?)"],
            ),
        ] {
            let plan = sqlite.query_plan(sql).await;
            for search in searches {
                assert!(
                    plan.iter()
                        .any(|d| d.starts_with("SEARCH") && d.contains(search)),
                    "{search}: {plan:#?}"
                );
            }
            assert!(
                !plan
                    .iter()
                    .any(|d| d.starts_with("SCAN") && !d.starts_with("SCAN json_each")),
                "{plan:#?}"
            );
        }
        // The claim reads new events in the index's order, skipping the unmarked: no sort of
        // every new event.
        let plan = sqlite.query_plan(CLAIM_NEW).await;
        assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "{plan:#?}");
    }

    #[tokio::test]
    async fn the_delivery_claim_reads_the_due_index_in_order_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        let Store::Sqlite(sqlite) = &*store else {
            unreachable!("a scratch store is SQLite")
        };
        let plan = sqlite.query_plan(CLAIM_DELIVERIES).await;
        assert!(
            plan.iter()
                .any(|d| d.contains("SEARCH d USING INDEX deliveries_due")),
            "{plan:#?}"
        );
        assert!(!plan.iter().any(|d| d.contains("TEMP B-TREE")), "{plan:#?}");
    }

    /// Two outcomes of one notification in a round: its row takes the first (which ended the
    /// lease), and both attempts are kept, numbered after the one already kept.
    #[tokio::test]
    async fn a_round_settles_its_notifications_in_one_go_and_keeps_every_attempt() {
        // The general way (a `WriteTx`) and the quick one (`round.rs`, on rusqlite) alike.
        for quick in [false, true] {
            a_round_settles_as_expected(quick).await;
        }
    }

    async fn a_round_settles_as_expected(quick: bool) {
        use chrono::SubsecRound;

        use crate::domain::status::DeliveryStatus;
        use crate::store::outbox::{AttemptRecord, Settled};

        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        let Store::Sqlite(sqlite) = &*store else {
            unreachable!("a scratch store is SQLite")
        };
        sqlx::raw_sql(
            "INSERT INTO deliveries (id, notification_id, target, order_key, event, payload,
                next_attempt_at, leased_until, created_at)
             VALUES (1, 'ntf_1', 't', 'b1', 'confirmed', '{}', 0, 99, 'now'),
                    (2, 'ntf_2', 't', 'b2', 'confirmed', '{}', 0, 99, 'now');
             INSERT INTO delivery_attempts (delivery_id, attempt, started_at, latency_ms, outcome)
             VALUES (1, 1, 0, 1, 'pending')",
        )
        .execute(sqlite.reader())
        .await
        .unwrap();
        let delivered_at = Utc::now().trunc_subsecs(6);
        let settled = |id, status, code: i64| Settled {
            id,
            status,
            attempts: 2,
            next_attempt_at: 500,
            last_status: Some(code),
            last_error: None,
            delivered_at: (status == DeliveryStatus::Delivered).then_some(delivered_at),
            booking_answer: None,
            attempt: AttemptRecord {
                started_at: 10,
                latency_ms: 3,
                answer: format!("{code}"),
            },
        };
        let settled = [
            settled(1, DeliveryStatus::Pending, 503),
            settled(2, DeliveryStatus::Delivered, 200),
            settled(1, DeliveryStatus::Delivered, 200),
        ];
        if quick {
            let round = crate::store::QuickRound {
                settled: &settled,
                accepted: &[],
                circuit: None,
                lease: None,
            };
            let done = sqlite.quick_round(round).await.unwrap();
            assert!(done.is_some_and(|(leased, _)| leased.is_empty()));
        } else {
            let mut tx = store.begin_outbox().await.unwrap();
            tx.settle_deliveries(&settled).await.unwrap();
            tx.commit().await.unwrap();
        }

        type Row = (i64, String, Option<i64>, Option<i64>, Option<DateTime<Utc>>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, status, last_status, leased_until, delivered_at
                 FROM deliveries ORDER BY id",
        )
        .fetch_all(sqlite.reader())
        .await
        .unwrap();
        assert_eq!(
            rows,
            [
                (1, "pending".into(), Some(503), None, None),
                (2, "delivered".into(), Some(200), None, Some(delivered_at))
            ],
            "quick: {quick}"
        );
        let attempts: Vec<(i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT delivery_id, attempt, answer FROM delivery_attempts ORDER BY delivery_id, attempt",
        )
        .fetch_all(sqlite.reader())
        .await
        .unwrap();
        assert_eq!(
            attempts,
            [
                (1, 1, None),
                (1, 2, Some("503".into())),
                (1, 3, Some("200".into())),
                (2, 1, Some("200".into()))
            ],
            "quick: {quick}"
        );
        store.close().await;
    }
}
