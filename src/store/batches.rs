//! The processor's batch statements: each reads or writes the rows of a whole batch at once.
//!
//! SQLite lists the rows in the statement (`IN (...)`, `VALUES (...), ...`): the text varies with
//! the batch size, but SQLite plans a statement in microseconds and has no statistics to go stale.
//! PostgreSQL gets each column as one array (`= ANY($1)`, `UNNEST(...)`), so every statement has
//! one text whatever the batch size: it is parsed and planned once per connection. With lists,
//! each batch paid for planning statements of hundreds of parameters, and a plan chosen while
//! `payment_refs` had no statistics yet (a store's first minute, before autovacuum analyzes it)
//! scanned every ref of the source for each batch.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnection, SqliteRow};

use super::ledger::{PaymentDetail, attention_column, time};
use super::{PgStore, SqliteStore, StoreError};
use crate::domain::delivery::NewDelivery;
use crate::domain::facts::Fact;
use crate::domain::state::CheckoutStatus;
use crate::domain::state::Payment;
use crate::domain::status::EventStatus;

impl SqliteStore {
    /// The payments `source`'s provider ids belong to, for those that are known.
    pub(super) async fn refs_of(
        conn: &mut SqliteConnection,
        source: &str,
        refs: &[&str],
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT ref, payment_id FROM payment_refs WHERE source = ",
        );
        q.push_bind(source.to_string()).push(" AND ref IN (");
        let mut list = q.separated(", ");
        for r in refs {
            list.push_bind(r.to_string());
        }
        list.push_unseparated(")");
        Ok(q.build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?)
    }

    /// The payments with these ids and every payment of these bookings, oldest first.
    pub(super) async fn payments_by(
        conn: &mut SqliteConnection,
        ids: &[i64],
        bookings: &[&str],
    ) -> Result<Vec<Payment>, StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT * FROM payments WHERE ");
        if !ids.is_empty() {
            q.push("id IN (");
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            list.push_unseparated(")");
        }
        if !bookings.is_empty() {
            q.push(if ids.is_empty() {
                "booking_id IN ("
            } else {
                " OR booking_id IN ("
            });
            let mut list = q.separated(", ");
            for b in bookings {
                list.push_bind(b.to_string());
            }
            list.push_unseparated(")");
        }
        q.push(" ORDER BY id");
        let rows: Vec<SqliteRow> = q.build().persistent(false).fetch_all(&mut *conn).await?;
        rows.iter().map(SqliteStore::payment_from_row).collect()
    }

    /// Every fact of these payments, with the payment it belongs to.
    pub(super) async fn facts_of(
        conn: &mut SqliteConnection,
        payment_ids: &[i64],
    ) -> Result<Vec<(i64, Fact)>, StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT payment_id, fact FROM payment_facts WHERE payment_id IN (",
        );
        let mut list = q.separated(", ");
        for id in payment_ids {
            list.push_bind(*id);
        }
        list.push_unseparated(") ORDER BY id");
        let rows: Vec<(i64, String)> = q
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        rows.into_iter().map(parse_fact).collect()
    }

    /// (booking, status) each of these bookings was already told by a booking-status target.
    pub(super) async fn told_bookings(
        conn: &mut SqliteConnection,
        bookings: &[&str],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(concat!(
            "SELECT DISTINCT booking_id, event FROM deliveries WHERE ",
            super::ledger::TOLD_CONDITION!(),
            " AND booking_id IN ("
        ));
        let mut list = q.separated(", ");
        for b in bookings {
            list.push_bind(b.to_string());
        }
        list.push_unseparated(")");
        Ok(q.build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Ties provider ids to payments, in one statement; ids already tied stay put.
    pub(super) async fn insert_refs(
        conn: &mut SqliteConnection,
        refs: &[(&str, &str, i64)],
    ) -> Result<(), StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO payment_refs (source, ref, payment_id) ",
        );
        q.push_values(refs, |mut row, (source, r, payment)| {
            row.push_bind(source.to_string())
                .push_bind(r.to_string())
                .push_bind(*payment);
        });
        q.push(" ON CONFLICT (source, ref) DO NOTHING");
        q.build().persistent(false).execute(&mut *conn).await?;
        Ok(())
    }

    /// Records facts, in one statement, each once: a replayed event adds nothing.
    pub(super) async fn insert_facts(
        conn: &mut SqliteConnection,
        facts: &[(&str, i64, &Fact)],
    ) -> Result<(), StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO payment_facts (payment_id, source, event_id, occurred_at, fact) ",
        );
        q.push_values(facts, |mut row, (source, payment, fact)| {
            row.push_bind(*payment)
                .push_bind(source.to_string())
                .push_bind(fact.event_id.clone())
                .push_bind(fact.occurred_at)
                .push_bind(serde_json::to_string(fact).expect("facts serialize"));
        });
        q.push(" ON CONFLICT (source, event_id) DO NOTHING");
        q.build().persistent(false).execute(&mut *conn).await?;
        Ok(())
    }

    /// Writes payments' rows from their state, in one statement: inserted under the id given
    /// (reserved with `reserve_payment_ids`) or, for one that exists, updated.
    pub(super) async fn save_payments(
        conn: &mut SqliteConnection,
        payments: &[&Payment],
    ) -> Result<(), StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO payments (id, source, booking_id, payment_intent_id,
                checkout_session_id, charge_id, amount, currency, amount_refunded, status,
                checkout_status, failure_code, failure_message, dispute_status,
                dispute_reason, dispute_outcome, paid_at, refunded_at, last_event_id,
                last_event_at, updated_at, created_at, amount_captured, amount_disputed,
                attention, detail) ",
        );
        q.push_values(payments, |mut row, p| {
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
            " ON CONFLICT (id) DO UPDATE SET booking_id = excluded.booking_id,
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
        q.build().persistent(false).execute(&mut *conn).await?;
        Ok(())
    }

    /// Marks claimed events done (`processed`, `ignored`, or `failed` for good, with why), in
    /// one statement.
    pub(super) async fn finish_events(
        conn: &mut SqliteConnection,
        marks: &[(i64, EventStatus, Option<&str>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "UPDATE webhook_events SET status = v.column2, last_error = v.column3, processed_at = ",
        );
        q.push_bind(now)
            .push(", attempts = attempts + 1, next_attempt_at = NULL FROM (");
        q.push_values(marks, |mut row, (id, status, error)| {
            row.push_bind(*id)
                .push_bind(status.as_str())
                .push_bind(error.map(str::to_string));
        });
        q.push(") AS v WHERE webhook_events.id = v.column1");
        q.build().persistent(false).execute(&mut *conn).await?;
        Ok(())
    }

    /// Writes notifications to the outbox in one statement, in order (their ids are the order
    /// of delivery), each due at its time (unix ms).
    pub(super) async fn insert_deliveries(
        conn: &mut SqliteConnection,
        deliveries: &[(NewDelivery, i64)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO deliveries (notification_id, target, order_key, event, payment_id,
                booking_id, payload, next_attempt_at, created_at, source, source_event_id) ",
        );
        q.push_values(deliveries, |mut row, (d, due_ms)| {
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
        q.build().persistent(false).execute(&mut *conn).await?;
        Ok(())
    }
}

impl PgStore {
    /// The payments `source`'s provider ids belong to, for those that are known.
    pub(super) async fn refs_of(
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

    /// The payments with these ids and every payment of these bookings, oldest first.
    pub(super) async fn payments_by(
        conn: &mut PgConnection,
        ids: &[i64],
        bookings: &[&str],
    ) -> Result<Vec<Payment>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM payments WHERE id = ANY($1::int8[]) OR booking_id = ANY($2::text[])
             ORDER BY id",
        )
        .bind(ids)
        .bind(bookings)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(PgStore::payment_from_row).collect()
    }

    /// Every fact of these payments, with the payment it belongs to.
    pub(super) async fn facts_of(
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
    pub(super) async fn told_bookings(
        conn: &mut PgConnection,
        bookings: &[&str],
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(concat!(
            "SELECT DISTINCT booking_id, event FROM deliveries WHERE ",
            super::ledger::TOLD_CONDITION!(),
            " AND booking_id = ANY($1::text[])"
        ))
        .bind(bookings)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// Ties provider ids to payments, in one statement; ids already tied stay put.
    pub(super) async fn insert_refs(
        conn: &mut PgConnection,
        refs: &[(&str, &str, i64)],
    ) -> Result<(), StoreError> {
        let (sources, ids, payments): (Vec<&str>, Vec<&str>, Vec<i64>) =
            refs.iter().copied().collect();
        sqlx::query(
            "INSERT INTO payment_refs (source, ref, payment_id)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[])
             ON CONFLICT (source, ref) DO NOTHING",
        )
        .bind(sources)
        .bind(ids)
        .bind(payments)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Records facts, in one statement, each once: a replayed event adds nothing.
    pub(super) async fn insert_facts(
        conn: &mut PgConnection,
        facts: &[(&str, i64, &Fact)],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO payment_facts (payment_id, source, event_id, occurred_at, fact)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[])
             ON CONFLICT (source, event_id) DO NOTHING",
        )
        .bind(column(facts, |(_, payment, _)| *payment))
        .bind(column(facts, |(source, _, _)| *source))
        .bind(column(facts, |(_, _, fact)| fact.event_id.as_str()))
        .bind(column(facts, |(_, _, fact)| fact.occurred_at))
        .bind(column(facts, |(_, _, fact)| {
            serde_json::to_string(fact).expect("facts serialize")
        }))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Writes payments' rows from their state, in one statement: inserted under the id given
    /// (reserved with `reserve_payment_ids`) or, for one that exists, updated.
    pub(super) async fn save_payments(
        conn: &mut PgConnection,
        payments: &[&Payment],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO payments (id, source, booking_id, payment_intent_id,
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
                detail = excluded.detail",
        )
        .bind(column(payments, |p| p.id))
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
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Marks claimed events done (`processed`, `ignored`, or `failed` for good, with why), in
    /// one statement.
    pub(super) async fn finish_events(
        conn: &mut PgConnection,
        marks: &[(i64, EventStatus, Option<&str>)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (ids, statuses, errors): (Vec<i64>, Vec<&str>, Vec<Option<&str>>) = marks
            .iter()
            .map(|(id, status, error)| (*id, status.as_str(), *error))
            .collect();
        sqlx::query(
            "UPDATE webhook_events SET status = v.status, last_error = v.error, processed_at = $1,
                attempts = attempts + 1, next_attempt_at = NULL
             FROM UNNEST($2::int8[], $3::text[], $4::text[]) AS v(id, status, error)
             WHERE webhook_events.id = v.id",
        )
        .bind(now)
        .bind(ids)
        .bind(statuses)
        .bind(errors)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Writes notifications to the outbox in one statement, in order (their ids are the order
    /// of delivery), each due at its time (unix ms).
    pub(super) async fn insert_deliveries(
        conn: &mut PgConnection,
        deliveries: &[(NewDelivery, i64)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO deliveries (notification_id, target, order_key, event, payment_id,
                booking_id, payload, next_attempt_at, created_at, source, source_event_id)
             SELECT n, t, k, e, p, b, body, due, $1, s, se
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::text[],
                $8::text[], $9::int8[], $10::text[], $11::text[])
                WITH ORDINALITY AS u(n, t, k, e, p, b, body, due, s, se, i)
             ORDER BY i",
        )
        .bind(now)
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
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// One column of a PostgreSQL batch statement: `f` of each row, as the array `UNNEST` reads.
fn column<'a, R, T>(rows: &'a [R], f: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

/// A stored fact's JSON read back, with its payment.
fn parse_fact((payment, text): (i64, String)) -> Result<(i64, Fact), StoreError> {
    let fact = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("payment fact {text:?}: {e}")))?;
    Ok((payment, fact))
}
