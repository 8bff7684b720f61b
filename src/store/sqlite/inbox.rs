//! A write transaction on SQLite's store file, and what it does to events in the inbox's file.
//!
//! The two files have a write lock each, and a transaction commits atomically within one file
//! only. A ledger batch therefore commits its ledger changes first, then marks the events it
//! applied, in a short transaction of the inbox's: a crash between the two leaves those events
//! `received`, and they are applied again on restart, which changes nothing (the ledger keeps each
//! fact once and notifies only what changed, as a replay does). The other order could mark an event
//! applied whose ledger change was lost.

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;
use tokio::sync::OwnedMutexGuard;

use super::SqliteStore;
use crate::domain::status::EventStatus;
use crate::store::StoreError;
use crate::store::events::Failure;

/// A write transaction on the store's file, with the write gate held.
pub struct SqliteTx {
    pub(in crate::store) tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    pub(in crate::store) _gate: OwnedMutexGuard<()>,
    pub(in crate::store) inbox: InboxWrites,
}

/// What the transaction will write to events once it has committed.
pub struct InboxWrites {
    inbox: SqlitePool,
    marks: Vec<Mark>,
    /// How many marks there were when the open savepoint began: undoing it drops the later ones.
    part: usize,
}

enum Mark {
    Finished {
        marks: Vec<(i64, EventStatus, Option<String>)>,
        now: DateTime<Utc>,
    },
    Failed {
        id: i64,
        failure: Failure,
    },
}

impl InboxWrites {
    pub(super) fn new(inbox: SqlitePool) -> InboxWrites {
        InboxWrites {
            inbox,
            marks: Vec::new(),
            part: 0,
        }
    }

    /// The connection on the inbox's file, for the writes that need not wait for the commit.
    pub(in crate::store) fn pool(&self) -> &SqlitePool {
        &self.inbox
    }

    pub(in crate::store) fn finished(
        &mut self,
        marks: &[(i64, EventStatus, Option<&str>)],
        now: DateTime<Utc>,
    ) {
        let marks = marks
            .iter()
            .map(|(id, status, error)| (*id, *status, error.map(str::to_string)))
            .collect();
        self.marks.push(Mark::Finished { marks, now });
    }

    pub(in crate::store) fn failed(&mut self, id: i64, failure: &Failure) {
        self.marks.push(Mark::Failed {
            id,
            failure: failure.clone(),
        });
    }

    pub(in crate::store) fn begin_part(&mut self) {
        self.part = self.marks.len();
    }

    pub(in crate::store) fn undo_part(&mut self) {
        self.marks.truncate(self.part);
    }

    /// Writes the marks, in one transaction of the inbox's file.
    pub(in crate::store) async fn write(self) -> Result<(), StoreError> {
        if self.marks.is_empty() {
            return Ok(());
        }
        let mut tx = self.inbox.begin().await?;
        for mark in &self.marks {
            match mark {
                Mark::Finished { marks, now } => {
                    let marks: Vec<(i64, EventStatus, Option<&str>)> = marks
                        .iter()
                        .map(|(id, status, error)| (*id, *status, error.as_deref()))
                        .collect();
                    SqliteStore::finish_events(&mut tx, &marks, *now).await?
                }
                Mark::Failed { id, failure } => {
                    SqliteStore::record_failure(&mut tx, *id, failure).await?
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

impl SqliteTx {
    /// Commits the store's file, then the marks on events.
    pub(in crate::store) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        self.inbox.write().await
    }
}
