//! A write transaction on SQLite's store file, and what it does to events in the inbox's file.
//!
//! The two files have a write lock each, and a transaction commits atomically within one file
//! only. A ledger batch therefore commits its ledger changes first, then marks the events it
//! applied, in a short transaction of the inbox's: a crash between the two leaves those events
//! `received`, and they are applied again on restart, which changes nothing (the ledger keeps each
//! fact once and notifies only what changed, as a replay does). The other order could mark an event
//! applied whose ledger change was lost.

use chrono::{DateTime, Utc};
use sqlx::{Connection, SqlitePool};
use tokio::sync::OwnedMutexGuard;

use super::SqliteStore;
use crate::domain::status::EventStatus;
use crate::store::StoreError;
use crate::store::events::Failure;

/// A write transaction on the store's file, with the write gate held.
pub struct SqliteTx {
    pub(in crate::store) tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    pub(in crate::store) gate: OwnedMutexGuard<()>,
    /// A ledger transaction's hold on claiming events, kept until its marks are written: the
    /// store's write lock goes to the next transaction (a dispatcher round) as soon as the store's
    /// file has committed, but no one claims the events until they are marked.
    pub(in crate::store) claiming: Option<OwnedMutexGuard<()>>,
    pub(in crate::store) inbox: InboxWrites,
}

/// What the transaction will write to events once it has committed.
pub struct InboxWrites {
    inbox: SqlitePool,
    /// The inbox's commits wait for fsync (`synchronous=FULL`, acknowledgements need it): the
    /// marks' commit need not, and does not.
    durable: bool,
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
    pub(super) fn new(inbox: SqlitePool, durable: bool) -> InboxWrites {
        InboxWrites {
            inbox,
            durable,
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

    /// Writes the marks, in one transaction of the inbox's file that commits without waiting for
    /// fsync: after a power cut the last marks may be missing, and their events are applied again
    /// (see the module's doc), where an fsync per ledger batch would hold up the acknowledgements
    /// committing behind it. The next acknowledgement's fsync makes them durable (a WAL is synced
    /// up to its end).
    pub(in crate::store) async fn write(self) -> Result<(), StoreError> {
        if self.marks.is_empty() {
            return Ok(());
        }
        let mut conn = self.inbox.acquire().await?;
        if !self.durable {
            return Self::write_marks(&mut conn, &self.marks).await;
        }
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        let written = Self::write_marks(&mut conn, &self.marks).await;
        // The connection goes back to acknowledgements: durable again, or closed.
        if sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await
            .is_err()
        {
            conn.close_on_drop();
        }
        written
    }

    async fn write_marks(
        conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
        marks: &[Mark],
    ) -> Result<(), StoreError> {
        if let [mark] = marks {
            // One statement commits on its own: inside an explicit transaction SQLite keeps a
            // statement journal of every page it changes (here pages of payloads), in case the
            // statement fails alone, and that journal spilled to a temporary file: about 2 KB of
            // writes an event.
            return Self::write_mark(conn, mark).await;
        }
        let mut tx = conn.begin().await?;
        for mark in marks {
            Self::write_mark(&mut tx, mark).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn write_mark(conn: &mut sqlx::SqliteConnection, mark: &Mark) -> Result<(), StoreError> {
        match mark {
            Mark::Finished { marks, now } => {
                let marks: Vec<(i64, EventStatus, Option<&str>)> = marks
                    .iter()
                    .map(|(id, status, error)| (*id, *status, error.as_deref()))
                    .collect();
                SqliteStore::finish_events(conn, &marks, *now).await
            }
            Mark::Failed { id, failure } => SqliteStore::record_failure(conn, *id, failure).await,
        }
    }
}

impl SqliteTx {
    /// Commits the store's file, lets the next writer of that file in, then writes the marks on
    /// events (they may wait for an acknowledgement's commit on the inbox's file).
    pub(in crate::store) async fn commit(self) -> Result<(), StoreError> {
        let SqliteTx {
            tx,
            gate,
            claiming,
            inbox,
        } = self;
        tx.commit().await?;
        drop(gate);
        inbox.write().await?;
        drop(claiming);
        Ok(())
    }
}
