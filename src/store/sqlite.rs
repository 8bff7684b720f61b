//! SQLite backend: one file in WAL mode, `synchronous=FULL` by default so a commit is on disk.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::{EventKey, NewEvent, StoreError, StoredEvent};
use crate::config::SqliteSync;

const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "webhook events",
    include_str!("../../migrations/sqlite/0001_webhook_events.sql"),
)];

/// Rows per INSERT statement: 6 binds each stays well under SQLite's bind limit, and the few
/// distinct statement shapes stay in the prepared-statement cache.
const ROWS_PER_STATEMENT: usize = 128;

pub struct SqliteStore {
    pool: SqlitePool,
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
            .busy_timeout(Duration::from_secs(5))
            .statement_cache_capacity(256);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        super::migrator(MIGRATIONS).run(&self.pool).await?;
        Ok(())
    }

    pub async fn insert_events(&self, batch: &[NewEvent]) -> Result<HashSet<EventKey>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut inserted = HashSet::with_capacity(batch.len());
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO webhook_events (source, event_id, event_type, payload, headers, received_at) ",
            );
            qb.push_values(chunk, |mut row, e| {
                row.push_bind(&e.source)
                    .push_bind(&e.event_id)
                    .push_bind(&e.event_type)
                    .push_bind(e.payload.as_ref())
                    .push_bind(&e.headers)
                    .push_bind(e.received_at);
            });
            qb.push(" ON CONFLICT (source, event_id) DO NOTHING RETURNING source, event_id");
            for row in qb.build().fetch_all(&mut *tx).await? {
                inserted.insert((row.try_get(0)?, row.try_get(1)?));
            }
        }
        tx.commit().await?;
        Ok(inserted)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn event(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let row = sqlx::query(
            "SELECT id, source, event_id, event_type, status, payload, headers, received_at
             FROM webhook_events WHERE source = ? AND event_id = ?",
        )
        .bind(source)
        .bind(event_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| stored_event(&r)).transpose()
    }

    pub async fn count_events(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events")
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO payhook_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(self
            .setting(name)
            .await?
            .unwrap_or_else(|| value.to_string()))
    }

    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM payhook_settings WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn stored_event(r: &SqliteRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: r.try_get("id")?,
        source: r.try_get("source")?,
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        status: r.try_get("status")?,
        payload: r.try_get("payload")?,
        headers: r.try_get("headers")?,
        received_at: r.try_get("received_at")?,
    })
}
