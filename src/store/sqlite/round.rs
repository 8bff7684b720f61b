//! A dispatcher round's usual work on SQLite (record the attempts' outcomes, save the circuit,
//! lease the next notifications) run on a connection of its own, one statement after the other on
//! the thread that holds the write lock.
//!
//! Through sqlx each statement, and each row it returns, is a round trip between the task and the
//! connection's own thread, and with both cores busy each leg waits for a core while the round
//! holds the store's one write lock: a round held it about twice as long as its statements took.
//! Here the round's transaction runs through rusqlite, its statements kept prepared, on the
//! thread of the task that holds the write gate. Anything unusual (an operational event to write, a refusal, a flag to
//! clear, a probe) goes the general way, through [`crate::store::WriteTx`].

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{TransactionBehavior, named_params, params_from_iter};

use super::ledger::{CLAIM_DELIVERIES, FLAGGED_PAYMENTS, KEEP_ATTEMPTS, SETTLE_ROWS};
use super::{BUSY_TIMEOUT, Counted, SqliteStore};
use crate::domain::delivery::Circuit;
use crate::domain::ids::NotificationId;
use crate::domain::status::DeliveryStatus;
use crate::store::outbox::{ClaimedDelivery, Settled};
use crate::store::{StoreError, sql};

/// What a round asks of the store when nothing in it is unusual.
pub struct QuickRound<'a> {
    pub settled: &'a [Settled],
    /// Payments whose `confirmed` the booking service accepted in this round: if one is flagged
    /// for attention, the flag is cleared the general way.
    pub accepted: &'a [i64],
    /// The target's circuit, to save: (target, circuit, now).
    pub circuit: Option<(&'a str, &'a Circuit, DateTime<Utc>)>,
    pub lease: Option<Lease<'a>>,
}

/// The notifications to lease, as [`crate::store::WriteTx::claim_deliveries`] takes them.
pub struct Lease<'a> {
    pub target: &'a str,
    pub now_ms: i64,
    pub until: i64,
    pub limit: i64,
}

/// The store's file opened by rusqlite for the quick rounds, as the dispatcher's sqlx connection
/// is (commits without fsync, see [`SqliteStore`]'s `relaxed`): opened at the first round, and
/// closed (its statements finalized first) when the store closes or is dropped.
pub(super) struct RoundConnection {
    file: PathBuf,
    db: Mutex<Option<rusqlite::Connection>>,
}

impl RoundConnection {
    pub(super) fn new(file: PathBuf) -> RoundConnection {
        RoundConnection {
            file,
            db: Mutex::new(None),
        }
    }

    fn open(&self) -> Result<rusqlite::Connection, rusqlite::Error> {
        let db = rusqlite::Connection::open(&self.file)?;
        // The pragmas of the dispatcher's sqlx connection (see `SqliteStore::connect`).
        db.execute_batch(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -2048;
             PRAGMA wal_autocheckpoint = 50000;",
        )?;
        db.busy_timeout(BUSY_TIMEOUT)?;
        Ok(db)
    }

    pub(super) fn close(&self) {
        self.db.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

fn raw_error(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(sqlx::Error::Protocol(format!("SQLite: {e}")))
}

impl SqliteStore {
    /// Runs `round` in one transaction on the dispatcher's connection, with the write gate held.
    /// Returns the notifications leased and how long the round waited for the gate; `None`: a
    /// payment among `accepted` is flagged for attention, nothing was written, and the round is
    /// to be run the general way.
    pub async fn quick_round(
        &self,
        round: QuickRound<'_>,
    ) -> Result<Option<(Vec<ClaimedDelivery>, Duration)>, StoreError> {
        let asked = Instant::now();
        let _gate = {
            let _waiting = Counted::new(&self.rounds_waiting);
            self.write_gate.clone().lock_owned().await
        };
        let waited = asked.elapsed();
        let mut kept = self
            .round_connection
            .db
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let db = match &mut *kept {
            Some(db) => db,
            none => none.insert(self.round_connection.open().map_err(raw_error)?),
        };
        match run(db, round) {
            Ok(leased) => Ok(leased.map(|leased| (leased, waited))),
            Err(e) => {
                // Whatever state the connection was left in (a rollback that failed keeps its
                // transaction open), the next round starts on a fresh one.
                kept.take();
                Err(raw_error(e))
            }
        }
    }
}

fn run(
    db: &mut rusqlite::Connection,
    round: QuickRound<'_>,
) -> Result<Option<Vec<ClaimedDelivery>>, rusqlite::Error> {
    // Dropped without its commit, the transaction rolls back.
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !round.accepted.is_empty() {
        let ids = serde_json::to_string(round.accepted).expect("a list of ids serializes");
        if tx.prepare_cached(FLAGGED_PAYMENTS)?.exists([ids])? {
            return Ok(None);
        }
    }
    settle(&tx, round.settled)?;
    if let Some((name, c, now)) = round.circuit {
        tx.prepare_cached(sql::SAVE_CIRCUIT)?
            .execute(named_params! {
                "$1": name, "$2": c.state.as_str(), "$3": i64::from(c.failures),
                "$4": c.reopens_at(), "$5": c.reason, "$6": time(now),
            })?;
    }
    let mut leased = Vec::new();
    if let Some(lease) = round.lease {
        let mut claim = tx.prepare_cached(CLAIM_DELIVERIES)?;
        let mut rows = claim.query(named_params! {
            "$1": lease.target, "$2": lease.now_ms, "$3": lease.until, "$4": lease.limit,
            "$5": lease.now_ms,
        })?;
        while let Some(row) = rows.next()? {
            leased.push(ClaimedDelivery {
                id: row.get(0)?,
                notification_id: NotificationId::from_stored(row.get(1)?),
                target: row.get(2)?,
                order_key: row.get(3)?,
                event: row.get(4)?,
                booking_id: row.get(5)?,
                payload: row.get(6)?,
                attempts: row.get(7)?,
                source: row.get(8)?,
                source_event_id: row.get(9)?,
                payment_id: row.get(10)?,
                trace_context: row.get(11)?,
            });
        }
    }
    tx.commit()?;
    leased.sort_by_key(|c| c.id);
    Ok(Some(leased))
}

/// A time as sqlx writes it, so that the column reads back the same whichever wrote it.
fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// The statement `head VALUES (?, ...), ... tail` for `rows` rows of `width` values, padded with
/// NULL rows to the next power of two as [`super::push_padded_values`] pads them (a few texts
/// whatever the round's size, each kept prepared); `values` gets the padding's NULLs.
fn padded(
    (head, tail): (&str, &str),
    rows: usize,
    width: usize,
    values: &mut Vec<Value>,
) -> String {
    let slots = rows.next_power_of_two();
    values.resize(slots * width, Value::Null);
    let row = format!("({})", vec!["?"; width].join(", "));
    format!("{head}VALUES {}{tail}", vec![row; slots].join(", "))
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn settle(tx: &rusqlite::Transaction<'_>, settled: &[Settled]) -> Result<(), rusqlite::Error> {
    // Under SQLite's 32,766 parameters a statement.
    for settled in settled.chunks(1_000) {
        let mut seen = HashSet::with_capacity(settled.len());
        let mut values = Vec::with_capacity(settled.len() * 8);
        let mut rows = 0;
        for s in settled.iter().filter(|s| seen.insert(s.id)) {
            rows += 1;
            values.extend([
                Value::Integer(s.id),
                text(s.status.as_str()),
                Value::Integer(s.attempts),
                Value::Integer(s.next_attempt_at),
                s.last_status.into(),
                s.last_error.clone().into(),
                s.delivered_at.map(time).into(),
            ]);
        }
        let update = padded(SETTLE_ROWS, rows, 7, &mut values);
        tx.prepare_cached(&update)?
            .execute(params_from_iter(values))?;

        let mut values = Vec::with_capacity(settled.len() * 8);
        for (n, s) in settled.iter().enumerate() {
            let retry_at = (s.status == DeliveryStatus::Pending).then_some(s.next_attempt_at);
            values.extend([
                Value::Integer(n as i64),
                Value::Integer(s.id),
                Value::Integer(s.attempt.started_at),
                Value::Integer(s.attempt.latency_ms),
                s.last_status.into(),
                text(&s.attempt.answer),
                text(s.status.as_str()),
                retry_at.into(),
            ]);
        }
        let insert = padded(KEEP_ATTEMPTS, settled.len(), 8, &mut values);
        tx.prepare_cached(&insert)?
            .execute(params_from_iter(values))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::outbox::AttemptRecord;

    /// A round that fails changes nothing (its outcomes, its leases), and the next round, on a
    /// fresh connection, records them.
    #[tokio::test]
    async fn a_failed_round_changes_nothing_and_the_next_one_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        let Store::Sqlite(sqlite) = &*store else {
            unreachable!("a scratch store is SQLite")
        };
        let setup =
            "INSERT INTO deliveries (id, notification_id, target, order_key, event, payload,
                next_attempt_at, leased_until, created_at)
             VALUES (1, 'ntf_1', 't', 'b1', 'confirmed', '{}', 0, 99, 'now'),
                    (2, 'ntf_2', 't', 'b2', 'confirmed', '{}', 0, NULL, 'now');
             CREATE TRIGGER refuse BEFORE INSERT ON delivery_attempts
             BEGIN SELECT RAISE(ABORT, 'the disk says no'); END;";
        sqlx::raw_sql(setup).execute(sqlite.reader()).await.unwrap();
        let settled = [Settled {
            id: 1,
            status: DeliveryStatus::Delivered,
            attempts: 1,
            next_attempt_at: 0,
            last_status: Some(200),
            last_error: None,
            delivered_at: Some(Utc::now()),
            booking_answer: None,
            attempt: AttemptRecord {
                started_at: 10,
                latency_ms: 3,
                answer: "200".into(),
            },
        }];
        let round = || QuickRound {
            settled: &settled,
            accepted: &[],
            circuit: None,
            lease: Some(Lease {
                target: "t",
                now_ms: 100,
                until: 5_000,
                limit: 10,
            }),
        };
        let rows = || async {
            let rows: Vec<(i64, String, Option<i64>)> =
                sqlx::query_as("SELECT id, status, leased_until FROM deliveries ORDER BY id")
                    .fetch_all(sqlite.reader())
                    .await
                    .unwrap();
            rows
        };

        let failed = sqlite.quick_round(round()).await.unwrap_err();
        assert!(failed.to_string().contains("the disk says no"), "{failed}");
        assert_eq!(
            rows().await,
            [(1, "pending".into(), Some(99)), (2, "pending".into(), None)]
        );

        sqlx::raw_sql("DROP TRIGGER refuse")
            .execute(sqlite.reader())
            .await
            .unwrap();
        let (leased, _) = sqlite.quick_round(round()).await.unwrap().unwrap();
        let ids: Vec<i64> = leased.iter().map(|d| d.id).collect();
        assert_eq!(ids, [2]);
        assert_eq!(
            rows().await,
            [
                (1, "delivered".into(), None),
                (2, "pending".into(), Some(5_000))
            ]
        );
        store.close().await;
    }
}
