//! A write transaction on SQLite's store file, and what it does to events in the inbox's file.
//!
//! The two files have a write lock each, and a transaction commits atomically within one file
//! only. A ledger batch therefore commits its ledger changes first, then marks the events it
//! applied, in a short transaction of the inbox's: a crash between the two leaves those events
//! `received`, and they are applied again on restart, which changes nothing (the ledger keeps each
//! fact once and notifies only what changed, as a replay does). The other order could mark an event
//! applied whose ledger change was lost.
//!
//! The marks need not hold up the next batch: between the two commits the batch's events are
//! listed as [`Unmarked`], and the next claim skips them, so the processor claims and applies its
//! next batch while the marks are written.

use std::sync::{Arc, Mutex};

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
    /// A ledger transaction's list of events applied but not yet marked: its claim skips those,
    /// and its own events join them from its commit until their marks are written.
    pub(in crate::store) unmarked: Option<Unmarked>,
    pub(in crate::store) inbox: InboxWrites,
}

/// The events whose ledger changes have committed and whose marks have not: they are still
/// `received` (or `retrying`) in the inbox, and no claim may take them again meanwhile. A list
/// rather than a lock held until the marks are written: the next batch claims, reads and applies
/// while they are.
#[derive(Clone, Default)]
pub struct Unmarked(Arc<Mutex<Vec<i64>>>);

impl Unmarked {
    /// The ids, as the JSON array the claims bind (`NOT IN (SELECT value FROM json_each(...))`).
    pub(in crate::store) fn json(&self) -> String {
        serde_json::to_string(&*self.lock()).expect("ids serialize")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<i64>> {
        // A panic while holding it leaves a list of integers, whole.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lists `ids` until the returned guard is dropped.
    fn hold(&self, ids: Vec<i64>) -> Held {
        self.lock().extend_from_slice(&ids);
        Held {
            list: self.clone(),
            ids,
        }
    }
}

/// A batch's place in [`Unmarked`]: dropped once its marks are written, or given up (its events are
/// then claimed and applied again, which changes nothing).
struct Held {
    list: Unmarked,
    ids: Vec<i64>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let ids: std::collections::HashSet<i64> = self.ids.iter().copied().collect();
        self.list.lock().retain(|id| !ids.contains(id));
    }
}

/// The marks of a committed ledger transaction, to be written to the inbox's file.
pub struct PendingMarks {
    inbox: InboxWrites,
    held: Option<Held>,
}

impl PendingMarks {
    pub async fn write(self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let events = self.held.as_ref().map_or(0, |held| held.ids.len());
        // `held` lives until the marks are written or have failed.
        self.inbox.write().await?;
        // Acknowledgements commit on the same connection: how long they may wait behind this.
        tracing::debug!(
            events,
            took_us = started.elapsed().as_micros() as u64,
            "events marked"
        );
        Ok(())
    }
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

    /// The events the marks are for.
    fn ids(&self) -> Vec<i64> {
        self.marks
            .iter()
            .flat_map(|mark| match mark {
                Mark::Finished { marks, .. } => marks.iter().map(|(id, ..)| *id).collect(),
                Mark::Failed { id, .. } => vec![*id],
            })
            .collect()
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
    /// Commits the store's file, lists its events as unmarked and lets the next writer of that
    /// file in; the marks on the events are left to [`PendingMarks::write`] (they may wait for an
    /// acknowledgement's commit on the inbox's file).
    pub(in crate::store) async fn commit(self) -> Result<PendingMarks, StoreError> {
        let SqliteTx {
            tx,
            gate,
            unmarked,
            inbox,
        } = self;
        tx.commit().await?;
        // Listed before the gate goes: the next ledger transaction takes the gate, then claims.
        let held = unmarked.map(|list| list.hold(inbox.ids()));
        drop(gate);
        Ok(PendingMarks { inbox, held })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use crate::domain::status::EventStatus;
    use crate::store::{Claim, Failure, NewEvent, Store, WriteTx};

    async fn claimed(tx: &mut WriteTx, limit: i64) -> Vec<i64> {
        let claim = Claim::Next {
            now_ms: Utc::now().timestamp_millis() + 60_000,
            limit,
        };
        tx.claim(claim)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect()
    }

    async fn status(store: &Store, id: i64) -> EventStatus {
        store.event_by_id(id).await.unwrap().unwrap().status
    }

    /// A ledger batch's marks are written after its commit; meanwhile the next batch claims the
    /// events after its own, and a claim by id does not take them either. Marks given up on (the
    /// task writing them gone) leave the events to be claimed, and applied, again.
    #[tokio::test]
    async fn a_batch_claims_past_the_events_whose_marks_are_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        let events: Vec<NewEvent> = (0..5)
            .map(|n| NewEvent::sample(&format!("evt_unmarked_{n}")))
            .collect();
        store.insert_events(&events).await.unwrap();

        let mut first = store.begin_ledger().await.unwrap();
        assert_eq!(claimed(&mut first, 2).await, [1, 2]);
        first
            .finish_events(&[(1, EventStatus::Processed, None)], Utc::now())
            .await
            .unwrap();
        let failure = Failure {
            status: EventStatus::Retrying,
            attempts: 1,
            error: "no such payment yet".into(),
            next_attempt_at: Some(Utc::now().timestamp_millis()),
        };
        first.record_failure(2, &failure).await.unwrap();
        let marks = first.commit_leaving_marks().await.unwrap();

        let mut second = store.begin_ledger().await.unwrap();
        assert_eq!(claimed(&mut second, 10).await, [3, 4, 5]);
        assert!(second.claim(Claim::Id(2)).await.unwrap().is_empty());
        second.rollback().await.unwrap();
        assert_eq!(status(&store, 1).await, EventStatus::Received);

        marks.write().await.unwrap();
        assert_eq!(status(&store, 1).await, EventStatus::Processed);
        assert_eq!(status(&store, 2).await, EventStatus::Retrying);
        // Marked, they are no longer new: the next claim is as before.
        let mut third = store.begin_ledger().await.unwrap();
        assert_eq!(claimed(&mut third, 10).await, [3, 4, 5]);
        third
            .finish_events(&[(3, EventStatus::Processed, None)], Utc::now())
            .await
            .unwrap();
        drop(third.commit_leaving_marks().await.unwrap());

        let mut fourth = store.begin_ledger().await.unwrap();
        assert_eq!(claimed(&mut fourth, 10).await, [3, 4, 5]);
        fourth.rollback().await.unwrap();
        let mut retry = store.begin_ledger().await.unwrap();
        let due = retry.claim(Claim::Id(2)).await.unwrap();
        assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), [2]);
        retry.rollback().await.unwrap();
        store.close().await;
    }
}
