//! PostgreSQL backend, for several payhook instances sharing one database.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};

use super::{EventKey, NewEvent, StoreError, StoredEvent};

const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "webhook events",
    include_str!("../../migrations/postgres/0001_webhook_events.sql"),
)];

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(12)
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        super::migrator(MIGRATIONS).run(&self.pool).await?;
        Ok(())
    }

    /// One statement per batch whatever its size: the rows travel as arrays and are unnested.
    pub async fn insert_events(&self, batch: &[NewEvent]) -> Result<HashSet<EventKey>, StoreError> {
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
        let rows = sqlx::query(
            "INSERT INTO webhook_events (source, event_id, event_type, payload, headers, received_at)
             SELECT s, e, t, p, h::jsonb, r
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::timestamptz[])
                  AS u(s, e, t, p, h, r)
             ON CONFLICT (source, event_id) DO NOTHING
             RETURNING source, event_id",
        )
        .bind(&sources)
        .bind(&ids)
        .bind(&types)
        .bind(&payloads)
        .bind(&headers)
        .bind(&times)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
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
            "SELECT id, source, event_id, event_type, status, payload, headers::text AS headers, received_at
             FROM webhook_events WHERE source = $1 AND event_id = $2",
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
        sqlx::query("INSERT INTO payhook_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
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
            sqlx::query_scalar("SELECT value FROM payhook_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn stored_event(r: &PgRow) -> Result<StoredEvent, StoreError> {
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
