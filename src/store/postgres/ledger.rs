//! PostgreSQL: what a worker does inside its transaction ([`crate::store::WriteTx`]): claim
//! events, apply a batch to the ledger, write and settle notifications, prune. Claims skip the
//! rows another instance holds (`FOR UPDATE SKIP LOCKED`). Batch statements get each column as
//! one array (`= ANY($1)`, `UNNEST(...)`), so every statement has one text whatever the batch's
//! size and is planned once per connection: with lists, each batch paid for planning statements
//! of hundreds of parameters, and a plan chosen while `payment_refs` had no statistics yet (a
//! store's first minute, before autovacuum analyzes it) scanned every ref of the source.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;

use super::PgStore;
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
use crate::store::{BatchWrites, RETENTION_CURSOR, StoreError, sql};

impl PgStore {
    /// Takes the events a worker should apply next: up to `limit` of the oldest new ones, else
    /// of the retries due. Their rows stay locked until the transaction ends; other instances
    /// skip them.
    pub(in crate::store) async fn claim(
        conn: &mut PgConnection,
        claim: Claim,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        let (now_ms, limit) = match claim {
            Claim::Next { now_ms, limit } => (now_ms, limit),
            Claim::Id(id) => {
                return Ok(sqlx::query_as(
                    "SELECT id, source, event_id, event_type, payload, fetched, attempts, received_at,
                     trace_context
                     FROM webhook_events WHERE id = $1 AND status IN ('received', 'retrying')
                     FOR UPDATE SKIP LOCKED",
                )
                .bind(id)
                .fetch_all(&mut *conn)
                .await?);
            }
        };
        let fresh: Vec<ClaimedEvent> = sqlx::query_as(
            "SELECT id, source, event_id, event_type, payload, fetched, attempts, received_at,
             trace_context
             FROM webhook_events WHERE status = 'received' ORDER BY id LIMIT $1
             FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        if !fresh.is_empty() {
            return Ok(fresh);
        }
        Ok(sqlx::query_as(
            "SELECT id, source, event_id, event_type, payload, fetched, attempts, received_at,
             trace_context
             FROM webhook_events WHERE status = 'retrying' AND next_attempt_at <= $1
             ORDER BY next_attempt_at, id LIMIT $2
             FOR UPDATE SKIP LOCKED",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// Takes up to `limit` notifications of `target` due by `due_by`, each the oldest pending
    /// one of its order key and not leased at `now_ms`, and leases them until `lease_until` (unix
    /// ms): nobody sends them meanwhile, and if this instance dies they come back when the lease
    /// ends. Rows another instance is claiming are skipped.
    ///
    /// "The oldest of its order key" is the first row of `deliveries_queue`, asked for in that
    /// index's order, with sorting switched off for the statement: on a table not yet analyzed (a
    /// fresh store, its first minute) every plan looks equally cheap, and the one PostgreSQL took
    /// scanned every pending row of the target for each (sorting them to find the oldest): 1.4 to
    /// 7 s a claim with 5,000 pending, notifications seconds late at 1,000 webhooks/s.
    pub(in crate::store) async fn claim_deliveries(
        conn: &mut PgConnection,
        target: &str,
        now_ms: i64,
        due_by: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        sqlx::query("SET LOCAL enable_sort = off")
            .execute(&mut *conn)
            .await?;
        let mut claimed: Vec<ClaimedDelivery> = sqlx::query_as(
            "UPDATE deliveries SET next_attempt_at = $3, leased_until = $3
             WHERE id IN (
                SELECT d.id FROM deliveries d
                WHERE d.target = $1 AND d.status = 'pending' AND d.next_attempt_at <= $5
                  AND (d.leased_until IS NULL OR d.leased_until <= $2)
                  AND d.id = (SELECT e.id FROM deliveries e
                              WHERE e.target = d.target AND e.order_key = d.order_key
                                AND e.status = 'pending'
                              ORDER BY e.target, e.order_key, e.id LIMIT 1)
                ORDER BY d.id LIMIT $4 FOR UPDATE SKIP LOCKED)
             RETURNING id, notification_id, target, order_key, event, booking_id, payload,
                attempts, source, source_event_id, payment_id, trace_context",
        )
        .bind(target)
        .bind(now_ms)
        .bind(lease_until)
        .bind(limit)
        .bind(due_by)
        .fetch_all(&mut *conn)
        .await?;
        sqlx::query("SET LOCAL enable_sort = on")
            .execute(&mut *conn)
            .await?;
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// Records a failed attempt on a claimed event.
    pub(in crate::store) async fn record_failure(
        conn: &mut PgConnection,
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
        conn: &mut PgConnection,
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
        conn: &mut PgConnection,
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
        let pruned = sqlx::query(sql::PRUNE_PAYLOADS)
            .bind(Vec::<u8>::new())
            .bind(now)
            .bind(after)
            .bind(last)
            .execute(&mut *conn)
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
        conn: &mut PgConnection,
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
        conn: &mut PgConnection,
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
        conn: &mut PgConnection,
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
        conn: &mut PgConnection,
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
        conn: &mut PgConnection,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(sql::BOOKINGS_PAID_TWICE)
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Puts events of a type marked `ignored` back in line; returns how many.
    pub(in crate::store) async fn requeue_ignored(
        conn: &mut PgConnection,
        event_type: &str,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::REQUEUE_IGNORED)
            .bind(event_type)
            .execute(&mut *conn)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records an attempt's outcome and ends its lease.
    /// Records a round's finished attempts in two statements whatever their number (the rows
    /// travel as arrays): a round settled each with two round trips, and the dispatcher, one round
    /// at a time per target, delivered 350-450 notifications/s while 1,000 webhooks/s came in.
    pub(in crate::store) async fn settle_deliveries(
        conn: &mut PgConnection,
        settled: &[Settled],
    ) -> Result<(), StoreError> {
        if settled.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = settled.iter().map(|s| s.id).collect();
        let statuses: Vec<&str> = settled.iter().map(|s| s.status.as_str()).collect();
        let attempts: Vec<i64> = settled.iter().map(|s| s.attempts).collect();
        let next: Vec<i64> = settled.iter().map(|s| s.next_attempt_at).collect();
        let last_status: Vec<Option<i64>> = settled.iter().map(|s| s.last_status).collect();
        let last_error: Vec<Option<&str>> =
            settled.iter().map(|s| s.last_error.as_deref()).collect();
        let delivered_at: Vec<Option<DateTime<Utc>>> =
            settled.iter().map(|s| s.delivered_at).collect();
        sqlx::query(
            "UPDATE deliveries d SET status = v.status, attempts = v.attempts,
                next_attempt_at = v.next_attempt_at, leased_until = NULL,
                last_status = v.last_status, last_error = v.last_error,
                delivered_at = v.delivered_at
             FROM UNNEST($1::int8[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::text[],
                         $7::timestamptz[])
                  AS v(id, status, attempts, next_attempt_at, last_status, last_error, delivered_at)
             WHERE d.id = v.id AND d.leased_until IS NOT NULL",
        )
        .bind(&ids)
        .bind(&statuses)
        .bind(&attempts)
        .bind(&next)
        .bind(&last_status)
        .bind(&last_error)
        .bind(&delivered_at)
        .execute(&mut *conn)
        .await?;
        let started: Vec<i64> = settled.iter().map(|s| s.attempt.started_at).collect();
        let latency: Vec<i64> = settled.iter().map(|s| s.attempt.latency_ms).collect();
        let answers: Vec<&str> = settled.iter().map(|s| s.attempt.answer.as_str()).collect();
        let retry_at: Vec<Option<i64>> = settled
            .iter()
            .map(|s| (s.status == DeliveryStatus::Pending).then_some(s.next_attempt_at))
            .collect();
        // Numbered after the attempts already kept (a retry by hand starts a fresh schedule, but
        // the history goes on); two attempts of one notification in a round in their order.
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, latency_ms, status,
                answer, outcome, next_attempt_at)
             SELECT v.id,
                    (SELECT COUNT(*) FROM delivery_attempts a WHERE a.delivery_id = v.id)
                      + ROW_NUMBER() OVER (PARTITION BY v.id ORDER BY v.n),
                    v.started_at, v.latency_ms, v.status, v.answer, v.outcome, v.next_attempt_at
             FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::text[], $6::text[],
                         $7::int8[]) WITH ORDINALITY
                  AS v(id, started_at, latency_ms, status, answer, outcome, next_attempt_at, n)",
        )
        .bind(&ids)
        .bind(&started)
        .bind(&latency)
        .bind(&last_status)
        .bind(&answers)
        .bind(&statuses)
        .bind(&retry_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub(in crate::store) async fn save_circuit(
        conn: &mut PgConnection,
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
        conn: &mut PgConnection,
        source: &str,
        refs: &[&str],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT ref, payment_id FROM payment_refs WHERE source = $1 AND ref = ANY($2::text[])",
        )
        .bind(source)
        .bind(refs)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// Of these payments, the ids of those flagged for attention (for any reason).
    pub(in crate::store) async fn flagged_payments(
        conn: &mut PgConnection,
        ids: &[i64],
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM payments WHERE id = ANY($1::int8[]) AND attention IS NOT NULL",
        )
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// The payments with these ids and every payment of these bookings, oldest first.
    pub(in crate::store) async fn payments_by(
        conn: &mut PgConnection,
        ids: &[i64],
        bookings: &[&str],
    ) -> Result<Vec<Payment>, StoreError> {
        let rows: Vec<PaymentRow> = sqlx::query_as(
            "SELECT * FROM payments WHERE id = ANY($1::int8[]) OR booking_id = ANY($2::text[])
             ORDER BY id",
        )
        .bind(ids)
        .bind(bookings)
        .fetch_all(&mut *conn)
        .await?;
        payments::payments(rows)
    }

    /// Every fact of these payments, with the payment it belongs to.
    pub(in crate::store) async fn facts_of(
        conn: &mut PgConnection,
        payment_ids: &[i64],
    ) -> Result<Vec<(i64, Fact)>, StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT payment_id, fact FROM payment_facts WHERE payment_id = ANY($1::int8[])
             ORDER BY id",
        )
        .bind(payment_ids)
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter().map(parse_fact).collect()
    }

    /// (booking, status) each of these bookings was already told by a booking-status target.
    pub(in crate::store) async fn told_bookings(
        conn: &mut PgConnection,
        bookings: &[&str],
    ) -> Result<Vec<(String, String)>, StoreError> {
        // The condition is the `deliveries_booking_told` index's, word for word.
        Ok(sqlx::query_as(
            "SELECT DISTINCT booking_id, event FROM deliveries
             WHERE event IN ('confirmed', 'partially_refunded', 'refunded', 'cancelled')
               AND booking_id = ANY($1::text[])",
        )
        .bind(bookings)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// Ties provider ids to payments, in one statement; ids already tied stay put.
    pub(in crate::store) async fn insert_refs(
        conn: &mut PgConnection,
        refs: &[(&str, &str, i64)],
    ) -> Result<(), StoreError> {
        bind_refs(sqlx::query(INSERT_REFS), refs)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Records facts, in one statement, each once: a replayed event adds nothing.
    pub(in crate::store) async fn insert_facts(
        conn: &mut PgConnection,
        facts: &[(&str, i64, &Fact)],
    ) -> Result<(), StoreError> {
        bind_facts(sqlx::query(INSERT_FACTS), facts)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Writes payments' rows from their state, in one statement: inserted under the id given
    /// (reserved with `reserve_payment_ids`) or, for one that exists, updated.
    pub(in crate::store) async fn save_payments(
        conn: &mut PgConnection,
        payments: &[&Payment],
    ) -> Result<(), StoreError> {
        bind_payments(sqlx::query(SAVE_PAYMENTS), payments)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Marks claimed events done (`processed`, `ignored`, or `failed` for good, with why), in
    /// one statement.
    pub(in crate::store) async fn finish_events(
        conn: &mut PgConnection,
        marks: &[(i64, EventStatus, Option<&str>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        bind_marks(sqlx::query(FINISH_EVENTS), marks, now)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Writes notifications to the outbox in one statement, in order (their ids are the order
    /// of delivery), each due at its time (unix ms).
    pub(in crate::store) async fn insert_deliveries(
        conn: &mut PgConnection,
        deliveries: &[(NewDelivery, i64)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        bind_deliveries(sqlx::query(INSERT_DELIVERIES), deliveries, now)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// What a ledger batch writes, in one statement: the five above as data-modifying `WITH`
    /// parts, which PostgreSQL runs to completion whether read or not. Five statements were five
    /// round trips, each about a millisecond under load, with the batch's locks held.
    pub(in crate::store) async fn write_batch(
        conn: &mut PgConnection,
        w: &BatchWrites<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let q = bind_payments(sqlx::query(&**WRITE_BATCH), &w.payments);
        let q = bind_refs(q, &w.refs);
        let q = bind_facts(q, &w.facts);
        let q = bind_deliveries(q, w.deliveries, now);
        bind_marks(q, &w.marks, now).execute(&mut *conn).await?;
        Ok(())
    }

    /// Each notification's trace context, in one statement.
    pub(in crate::store) async fn trace_deliveries(
        conn: &mut PgConnection,
        traces: &[(NotificationId, String)],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET trace_context = u.c
             FROM UNNEST($1::text[], $2::text[]) AS u(n, c) WHERE notification_id = u.n",
        )
        .bind(column(traces, |(n, _)| n.as_str()))
        .bind(column(traces, |(_, c)| c.as_str()))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

const INSERT_REFS: &str = "INSERT INTO payment_refs (source, ref, payment_id)
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[])
    ON CONFLICT (source, ref) DO NOTHING";

fn bind_refs<'q>(q: PgQuery<'q>, refs: &[(&str, &str, i64)]) -> PgQuery<'q> {
    q.bind(column(refs, |(source, _, _)| *source))
        .bind(column(refs, |(_, id, _)| *id))
        .bind(column(refs, |(_, _, payment)| *payment))
}

const INSERT_FACTS: &str =
    "INSERT INTO payment_facts (payment_id, source, event_id, occurred_at, fact)
    SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[])
    ON CONFLICT (source, event_id) DO NOTHING";

fn bind_facts<'q>(q: PgQuery<'q>, facts: &[(&str, i64, &Fact)]) -> PgQuery<'q> {
    q.bind(column(facts, |(_, payment, _)| *payment))
        .bind(column(facts, |(source, _, _)| *source))
        .bind(column(facts, |(_, _, fact)| fact.event_id.as_str()))
        .bind(column(facts, |(_, _, fact)| fact.occurred_at))
        .bind(column(facts, |(_, _, fact)| fact_column(fact)))
}

const SAVE_PAYMENTS: &str = "INSERT INTO payments (id, source, booking_id, payment_intent_id,
        checkout_session_id, charge_id, amount, currency, amount_refunded, status,
        checkout_status, failure_code, failure_message, dispute_status,
        dispute_reason, dispute_outcome, paid_at, refunded_at, last_event_id,
        last_event_at, updated_at, created_at, amount_captured, amount_disputed,
        attention, detail)
    SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::int8[], $8::text[], $9::int8[], $10::text[], $11::text[],
        $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
        $17::timestamptz[], $18::timestamptz[], $19::text[], $20::int8[],
        $21::timestamptz[], $22::timestamptz[], $23::int8[], $24::int8[], $25::text[],
        $26::text[])
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
        detail = excluded.detail";

fn bind_payments<'q>(q: PgQuery<'q>, payments: &[&Payment]) -> PgQuery<'q> {
    q.bind(column(payments, |p| p.id))
        .bind(column(payments, |p| p.source.as_str()))
        .bind(column(payments, |p| p.state.booking_id.as_deref()))
        .bind(column(payments, |p| p.state.payment_intent_id.as_deref()))
        .bind(column(payments, |p| p.state.checkout_session_id.as_deref()))
        .bind(column(payments, |p| p.state.charge_id.as_deref()))
        .bind(column(payments, |p| p.state.amount))
        .bind(column(payments, |p| p.state.currency.as_deref()))
        .bind(column(payments, |p| p.state.amount_refunded))
        .bind(column(payments, |p| p.state.status.as_str()))
        .bind(column(payments, |p| {
            p.state.checkout_status.map(CheckoutStatus::as_str)
        }))
        .bind(column(payments, |p| p.state.failure_code.as_deref()))
        .bind(column(payments, |p| p.state.failure_message.as_deref()))
        .bind(column(payments, |p| p.state.dispute_status.as_deref()))
        .bind(column(payments, |p| p.state.dispute_reason.as_deref()))
        .bind(column(payments, |p| p.state.dispute_outcome.as_deref()))
        .bind(column(payments, |p| p.state.paid_at.and_then(time)))
        .bind(column(payments, |p| p.state.refunded_at.and_then(time)))
        .bind(column(payments, |p| p.state.last_event_id.as_deref()))
        .bind(column(payments, |p| p.state.last_event_at))
        .bind(column(payments, |p| p.updated_at))
        .bind(column(payments, |p| p.created_at))
        .bind(column(payments, |p| p.state.amount_captured))
        .bind(column(payments, |p| p.state.amount_disputed))
        .bind(column(payments, |p| attention_column(&p.state)))
        .bind(column(payments, |p| PaymentDetail::column(&p.state)))
}

const FINISH_EVENTS: &str = "UPDATE webhook_events SET status = v.status, last_error = v.error,
        processed_at = $1, attempts = attempts + 1, next_attempt_at = NULL
    FROM UNNEST($2::int8[], $3::text[], $4::text[]) AS v(id, status, error)
    WHERE webhook_events.id = v.id";

fn bind_marks<'q>(
    q: PgQuery<'q>,
    marks: &[(i64, EventStatus, Option<&str>)],
    now: DateTime<Utc>,
) -> PgQuery<'q> {
    q.bind(now)
        .bind(column(marks, |(id, _, _)| *id))
        .bind(column(marks, |(_, status, _)| status.as_str()))
        .bind(column(marks, |(_, _, error)| *error))
}

const INSERT_DELIVERIES: &str = "INSERT INTO deliveries (notification_id, target, order_key, event,
        payment_id, booking_id, payload, next_attempt_at, created_at, source, source_event_id)
    SELECT n, t, k, e, p, b, body, due, $1, s, se
    FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::text[],
        $8::text[], $9::int8[], $10::text[], $11::text[])
        WITH ORDINALITY AS u(n, t, k, e, p, b, body, due, s, se, i)
    ORDER BY i";

fn bind_deliveries<'q>(
    q: PgQuery<'q>,
    deliveries: &[(NewDelivery, i64)],
    now: DateTime<Utc>,
) -> PgQuery<'q> {
    q.bind(now)
        .bind(column(deliveries, |(d, _)| d.notification_id.as_str()))
        .bind(column(deliveries, |(d, _)| d.target.as_str()))
        .bind(column(deliveries, |(d, _)| d.order_key.as_str()))
        .bind(column(deliveries, |(d, _)| d.event.as_str()))
        .bind(column(deliveries, |(d, _)| d.payment_id))
        .bind(column(deliveries, |(d, _)| d.booking_id.as_deref()))
        .bind(column(deliveries, |(d, _)| d.payload.as_str()))
        .bind(column(deliveries, |(_, due)| *due))
        .bind(column(deliveries, |(d, _)| d.source.as_deref()))
        .bind(column(deliveries, |(d, _)| d.source_event_id.as_deref()))
}

/// The five statements of a ledger batch's writes as one, in their binders' order.
static WRITE_BATCH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut bound = 0;
    let mut part = |sql: &str| {
        let (text, n) = numbered_from(sql, bound);
        bound += n;
        text
    };
    let payments = part(SAVE_PAYMENTS);
    let refs = part(INSERT_REFS);
    let facts = part(INSERT_FACTS);
    let deliveries = part(INSERT_DELIVERIES);
    let marks = part(FINISH_EVENTS);
    format!(
        "WITH saved_payments AS ({payments}), new_refs AS ({refs}), new_facts AS ({facts}), \
         new_deliveries AS ({deliveries}) {marks}"
    )
});

/// `sql` with each parameter `$n` renumbered `$(n + after)`, and how many it has.
fn numbered_from(sql: &str, after: usize) -> (String, usize) {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut highest = 0;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: usize = rest[..digits].parse().expect("a parameter number after $");
        highest = highest.max(n);
        out.push_str(&(n + after).to_string());
        rest = &rest[digits..];
    }
    out.push_str(rest);
    (out, highest)
}

/// One column of a batch statement: `f` of each row, as the array `UNNEST` reads.
fn column<'a, R, T>(rows: &'a [R], f: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_joins_the_batch_with_its_parameters_numbered_after_the_earlier_ones() {
        assert_eq!(
            numbered_from("SELECT $1::int8[], $2, $10 FROM t WHERE a = $1", 5),
            (
                "SELECT $6::int8[], $7, $15 FROM t WHERE a = $6".to_string(),
                10
            )
        );
        assert_eq!(numbered_from("SELECT 1", 3), ("SELECT 1".to_string(), 0));
        // The batch's parameters follow one another: the binders' 26 + 3 + 5 + 11 + 4.
        assert_eq!(numbered_from(&WRITE_BATCH, 0).1, 49);
        assert!(WRITE_BATCH.contains("UNNEST($27::text[], $28::text[], $29::int8[])"));
    }
}
