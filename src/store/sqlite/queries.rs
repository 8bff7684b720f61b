//! SQLite: the reads and the writes made outside a worker's transaction (admin actions, the
//! thin-event fetcher, checkout sessions), on the reader pool.

use sqlx::Connection;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use crate::domain::delivery::Circuit;
use crate::domain::state::Payment;
use crate::domain::status::DeliveryStatus;
use crate::store::bulk::{DeliverySelection, EventSelection, Param, Selection};
use crate::store::events::{EventFilter, EventSummary, StoredEvent, ToFetch};
use crate::store::listing::{event_listing_sql, listing_sql};
use crate::store::outbox::{Delivery, RetrySelection};
use crate::store::payments::{self, Depths, PaymentKey, PaymentRow};
use crate::store::{SandboxIntent, Session, StoreError, sql};

impl SqliteStore {
    pub async fn migrate(&self) -> Result<(), StoreError> {
        super::MIGRATOR.run(&self.pool).await?;
        self.move_inbox_to_its_file().await
    }

    /// A store created before the inbox had a file of its own (or restored from a backup, which
    /// is one file) has `webhook_events` in the store's file: its table, indexes and rows are
    /// copied to the inbox's file in one transaction of that file, then dropped from the store's
    /// in another. Until the drop has committed the store's copy is the one that counts: a crash
    /// in between copies it again on the next start.
    async fn move_inbox_to_its_file(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let moved: bool = sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM main.sqlite_master WHERE name = 'webhook_events')",
        )
        .fetch_one(&mut *conn)
        .await?;
        if moved {
            return Ok(());
        }
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM main.webhook_events")
            .fetch_one(&mut *conn)
            .await?;
        if events > 0 {
            tracing::info!(events, "moving the inbox's events into its own file (once)");
        }
        let mut tx = conn.begin().await?;
        sqlx::query("DROP TABLE IF EXISTS intake.webhook_events")
            .execute(&mut *tx)
            .await?;
        super::copy_inbox(&mut tx, "main", "intake").await?;
        tx.commit().await?;
        sqlx::query("DROP TABLE main.webhook_events")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(sql::PING).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn event(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        self.find_event(None, source, event_id).await
    }

    pub async fn event_by_id(&self, id: i64) -> Result<Option<StoredEvent>, StoreError> {
        self.find_event(Some(id), "", "").await
    }

    async fn find_event(
        &self,
        id: Option<i64>,
        source: &str,
        event_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        Ok(sqlx::query_as(sql::FIND_EVENT)
            .bind(id)
            .bind(source)
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn count_events(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql::COUNT_EVENTS)
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn event_row_id(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(sql::EVENT_ROW_ID)
            .bind(source)
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn requeue_event(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::REQUEUE_EVENT)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn next_retry_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(sql::NEXT_RETRY_DUE)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Inbox events, newest first, those the filter keeps, older than its cursor. The SQL names
    /// only the filters that are set, so each shape of listing gets a plan that uses its index.
    pub async fn list_events(
        &self,
        filter: &EventFilter,
        limit: i64,
    ) -> Result<Vec<EventSummary>, StoreError> {
        let sql = event_listing_sql(filter);
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        // In the order event_listing_sql numbers them.
        let status = filter.status.map(|s| s.as_str().to_string());
        for text in [
            &status,
            &filter.source,
            &filter.event_type,
            &filter.event_id,
        ]
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
        Ok(query.bind(limit).fetch_all(&self.pool).await?)
    }

    /// The rows of a listing (`head` is `SELECT ... FROM table`), newest first: those equal to
    /// each filter that is set (column, value), older than `before`.
    async fn listing<T>(
        &self,
        head: &str,
        filters: &[(&str, Option<&str>)],
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let set: Vec<(bool, &str)> = filters.iter().map(|(c, v)| (v.is_some(), *c)).collect();
        let sql = listing_sql(head, &set, before.is_some());
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for value in filters.iter().filter_map(|(_, v)| *v) {
            query = query.bind(value.to_string());
        }
        if let Some(before) = before {
            query = query.bind(before);
        }
        Ok(query.bind(limit).fetch_all(&self.pool).await?)
    }

    pub async fn depths(&self) -> Result<Depths, StoreError> {
        Ok(Depths {
            events: sqlx::query_as(sql::EVENTS_BY_STATUS)
                .fetch_all(&self.pool)
                .await?,
            deliveries: sqlx::query_as(sql::DELIVERIES_BY_STATUS)
                .fetch_all(&self.pool)
                .await?,
            payments: sqlx::query_as(sql::PAYMENTS_BY_STATUS)
                .fetch_all(&self.pool)
                .await?,
        })
    }

    pub async fn list_payments(
        &self,
        booking_id: Option<&str>,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Payment>, StoreError> {
        let filters = [("booking_id", booking_id), ("status", status)];
        let rows: Vec<PaymentRow> = self
            .listing("SELECT * FROM payments", &filters, before, limit)
            .await?;
        payments::payments(rows)
    }

    pub async fn payments_where(
        &self,
        key: PaymentKey,
        value: &str,
    ) -> Result<Vec<Payment>, StoreError> {
        let rows: Vec<PaymentRow> = sqlx::query_as(key.sql())
            .bind(value)
            .fetch_all(&self.pool)
            .await?;
        payments::payments(rows)
    }

    pub async fn events_to_fetch(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<ToFetch>, StoreError> {
        Ok(sqlx::query_as(sql::EVENTS_TO_FETCH)
            .bind(now_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn store_fetched(&self, id: i64, fetched: &[u8]) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::STORE_FETCHED)
            .bind(id)
            .bind(fetched)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn fetch_failed(
        &self,
        id: i64,
        attempts: i64,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::FETCH_FAILED)
            .bind(id)
            .bind(attempts)
            .bind(error)
            .bind(next_attempt_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn fetch_rejected(
        &self,
        id: i64,
        attempts: i64,
        error: &str,
        answer: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(sql::FETCH_REJECTED)
            .bind(id)
            .bind(attempts)
            .bind(error)
            .bind(answer)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn next_fetch_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(sql::NEXT_FETCH_DUE)
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query(sql::INSERT_SETTING_IF_NEW)
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(self
            .setting(name)
            .await?
            .unwrap_or_else(|| value.to_string()))
    }

    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(sql::SET_SETTING)
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(sql::SETTING)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn circuit(&self, name: &str) -> Result<Circuit, StoreError> {
        let row: Option<(String, i64, Option<i64>, Option<String>)> = sqlx::query_as(sql::CIRCUIT)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(
            row.map_or_else(Circuit::closed, |(state, failures, open_until, reason)| {
                Circuit::saved(&state, failures, open_until, reason)
            }),
        )
    }

    pub async fn reset_circuit(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query(sql::RESET_CIRCUIT)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn next_delivery_due(&self, target: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(sql::NEXT_DELIVERY_DUE)
            .bind(target)
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn release_leases(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::RELEASE_LEASES)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn list_deliveries(
        &self,
        target: Option<&str>,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let head = format!("SELECT {} FROM deliveries", sql::DELIVERY_COLUMNS);
        let filters = [("target", target), ("status", status.map(|s| s.as_str()))];
        self.listing(&head, &filters, before, limit).await
    }

    /// Puts dead or pending notifications back in line, due now with a fresh schedule: the
    /// given ones (by id or notification id), or every dead one (of one target). Delivered
    /// ones are left alone. Returns the ids requeued.
    pub async fn retry_deliveries(
        &self,
        which: RetrySelection<'_>,
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let candidates: Vec<i64> = match which {
            RetrySelection::Dead { target } => {
                sqlx::query_scalar(sql::DEAD_DELIVERIES)
                    .bind(target)
                    .fetch_all(&self.pool)
                    .await?
            }
            RetrySelection::Ids(keys) => {
                let mut found = Vec::new();
                for key in keys {
                    let row: Option<i64> = sqlx::query_scalar(sql::DELIVERY_BY_KEY)
                        .bind(key.parse::<i64>().ok())
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?;
                    found.extend(row);
                }
                found
            }
        };
        let mut requeued = Vec::new();
        for id in candidates {
            let done = sqlx::query(sql::REQUEUE_DELIVERY)
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

    pub async fn insert_session(&self, s: &Session) -> Result<(), StoreError> {
        sqlx::query(sql::INSERT_SESSION)
            .bind(&s.id)
            .bind(&s.provider)
            .bind(&s.booking_id)
            .bind(s.amount)
            .bind(&s.currency)
            .bind(&s.description)
            .bind(&s.customer_email)
            .bind(&s.success_url)
            .bind(&s.cancel_url)
            .bind(&s.url)
            .bind(&s.payment_intent_id)
            .bind(&s.status)
            .bind(&s.payment_status)
            .bind(s.expires_at)
            .bind(s.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        Ok(sqlx::query_as(sql::SESSION)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn move_session(
        &self,
        id: &str,
        from: &str,
        to: &str,
        payment_status: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::MOVE_SESSION)
            .bind(id)
            .bind(from)
            .bind(to)
            .bind(payment_status)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn expired_sessions(
        &self,
        provider: &str,
        now: i64,
    ) -> Result<Vec<Session>, StoreError> {
        Ok(sqlx::query_as(sql::EXPIRED_SESSIONS)
            .bind(provider)
            .bind(now)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn save_sandbox_intent(&self, i: &SandboxIntent) -> Result<(), StoreError> {
        sqlx::query(sql::SAVE_SANDBOX_INTENT)
            .bind(&i.id)
            .bind(&i.booking_id)
            .bind(i.amount)
            .bind(&i.currency)
            .bind(&i.checkout_session_id)
            .bind(&i.status)
            .bind(&i.charge_id)
            .bind(i.amount_refunded)
            .bind(i64::from(i.disputed))
            .bind(i.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn find_sandbox_intent(
        &self,
        key: &str,
    ) -> Result<Option<SandboxIntent>, StoreError> {
        Ok(sqlx::query_as(sql::FIND_SANDBOX_INTENT)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn events_from(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        Ok(sqlx::query_as(sql::STREAM_EVENTS)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }
}

/// Bulk replays and retries (see `store::bulk`).
impl SqliteStore {
    fn bind_as<'q, O>(
        mut query: sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments>,
        params: &[Param],
    ) -> sqlx::query::QueryAs<'q, sqlx::Sqlite, O, sqlx::sqlite::SqliteArguments> {
        for p in params {
            query = match p {
                Param::Text(t) => query.bind(t.clone()),
                Param::Int(i) => query.bind(*i),
                Param::ReceivedAt(t) => query.bind(Self::time_param(*t)),
                // As the outbox writes it (sqlx's encoding of a time).
                Param::CreatedAt(t) => query.bind(*t),
            };
        }
        query
    }

    pub async fn selection_window(&self, s: &Selection) -> Result<(i64, i64), StoreError> {
        let sql = s.window_sql();
        let query = sqlx::query_as(sqlx::AssertSqlSafe(sql.text));
        Ok(Self::bind_as(query, &sql.params)
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn count_selected(
        &self,
        s: &Selection,
        after: i64,
        upto: i64,
    ) -> Result<i64, StoreError> {
        let sql = s.count_sql(after, upto);
        let query = sqlx::query_as(sqlx::AssertSqlSafe(sql.text));
        let (n,): (i64,) = Self::bind_as(query, &sql.params)
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    pub async fn selected_ids(
        &self,
        s: &Selection,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let sql = s.ids_sql(after, upto, limit);
        let query = sqlx::query_as(sqlx::AssertSqlSafe(sql.text));
        let rows: Vec<(i64,)> = Self::bind_as(query, &sql.params)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    pub async fn selected_events(
        &self,
        s: &EventSelection,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<EventSummary>, StoreError> {
        let sql = s.rows_sql(upto, limit);
        let query = sqlx::query_as(sqlx::AssertSqlSafe(sql.text));
        Ok(Self::bind_as(query, &sql.params)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn selected_deliveries(
        &self,
        s: &DeliverySelection,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sql = s.rows_sql(upto, limit);
        let query = sqlx::query_as(sqlx::AssertSqlSafe(sql.text));
        Ok(Self::bind_as(query, &sql.params)
            .fetch_all(&self.pool)
            .await?)
    }

    /// One chunk of a bulk job, under the write gate like every other writer's transaction (a
    /// single statement, held for milliseconds), on a durable connection: the writer for
    /// notifications, the inbox's own for events.
    pub async fn requeue_selected(
        &self,
        s: &Selection,
        ids: &[i64],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let sql = s.requeue_sql(ids, now_ms);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.text));
        for p in &sql.params {
            query = match p {
                Param::Text(t) => query.bind(t.clone()),
                Param::Int(i) => query.bind(*i),
                Param::ReceivedAt(t) => query.bind(Self::time_param(*t)),
                Param::CreatedAt(t) => query.bind(*t),
            };
        }
        let _gate = self.write_gate.lock().await;
        // Events are in the inbox's file, which the writer only reads.
        let conn = match s {
            Selection::Events(_) => &self.inbox,
            Selection::Deliveries(_) => &self.writer,
        };
        Ok(query.execute(conn).await?.rows_affected())
    }
}
