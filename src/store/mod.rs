//! The store: one contract over SQLite (embedded default) and PostgreSQL (several instances).
//! SQL the dialects share is written once where it can be; the rest lives in each backend's file,
//! with its migrations in `migrations/<backend>/`.

/// The methods whose SQL both dialects accept (sqlx binds `$N` placeholders on SQLite too),
/// written once and expanded into each backend's `impl` with its own pool and row types.
macro_rules! shared_queries {
    ($row:ty) => {
        /// Applies this backend's `MIGRATIONS`.
        pub async fn migrate(&self) -> Result<(), StoreError> {
            super::migrator(MIGRATIONS).run(&self.pool).await?;
            Ok(())
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
                "SELECT id, source, event_id, event_type, status, payload,
                        CAST(headers AS TEXT) AS headers, received_at
                 FROM webhook_events WHERE source = $1 AND event_id = $2",
            )
            .bind(source)
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r: $row| {
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
            })
            .transpose()
        }

        pub async fn count_events(&self) -> Result<i64, StoreError> {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events")
                .fetch_one(&self.pool)
                .await?)
        }

        pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, StoreError> {
            sqlx::query(
                "INSERT INTO payhook_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
            Ok(self.setting(name).await?.unwrap_or_else(|| value.to_string()))
        }

        pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
            Ok(sqlx::query_scalar("SELECT value FROM payhook_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?)
        }

        pub async fn close(&self) {
            self.pool.close().await;
        }
    };
}

mod postgres;
mod sqlite;

use std::borrow::Cow;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::config::SqliteSync;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    #[error("the store could not be migrated: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the inbox commit failed: {0}")]
    CommitFailed(String),
    #[error("the inbox writer has stopped")]
    WriterGone,
}

/// A verified webhook on its way into the inbox.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    /// The exact bytes received.
    pub payload: Bytes,
    /// The request headers as a JSON object, signatures redacted.
    pub headers: String,
    pub received_at: DateTime<Utc>,
}

/// An inbox row.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub payload: Vec<u8>,
    pub headers: String,
    pub received_at: DateTime<Utc>,
}

pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens the store named by a `DATABASE_URL` (`sqlite://PATH` or `postgres://...`).
    pub async fn connect(url: &str, sync: SqliteSync) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::connect(url, sync).await?))
        } else {
            Ok(Store::Postgres(PgStore::connect(url).await?))
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.migrate().await,
            Store::Postgres(s) => s.migrate().await,
        }
    }

    /// Inserts a batch in one transaction. The batch holds each `(source, event_id)` at most once; the
    /// answer says, per row, whether it was new (`true`) or already stored. Nothing is reported until
    /// the transaction has committed.
    pub async fn insert_events(&self, batch: &[NewEvent]) -> Result<Vec<bool>, StoreError> {
        let inserted = match self {
            Store::Sqlite(s) => s.insert_events(batch).await?,
            Store::Postgres(s) => s.insert_events(batch).await?,
        };
        Ok(batch
            .iter()
            .map(|e| inserted.contains(&(e.source.clone(), e.event_id.clone())))
            .collect())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    pub async fn event(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        match self {
            Store::Sqlite(s) => s.event(source, event_id).await,
            Store::Postgres(s) => s.event(source, event_id).await,
        }
    }

    pub async fn count_events(&self) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(s) => s.count_events().await,
            Store::Postgres(s) => s.count_events().await,
        }
    }

    /// Stores `value` under `name` unless a value is already there; returns the value that is kept.
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String, StoreError> {
        match self {
            Store::Sqlite(s) => s.setting_or_insert(name, value).await,
            Store::Postgres(s) => s.setting_or_insert(name, value).await,
        }
    }

    pub async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.setting(name).await,
            Store::Postgres(s) => s.setting(name).await,
        }
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}

/// The key of a stored event, as returned by the insert.
pub(crate) type EventKey = (String, String);

/// Builds sqlx's migrator from migration files compiled into the binary.
fn migrator(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = files
        .iter()
        .map(|(version, description, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}
