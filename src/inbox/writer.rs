//! Group commit: requests hand their row to a writer and wait; each writer takes everything queued
//! (up to `batch_max`), commits it in one transaction and only then answers every waiting request.
//! Durability costs one fsync per batch instead of one per request.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::{NewEvent, Store, StoreError};

/// Whether the event was new or already in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    New,
    Duplicate,
}

type Reply = oneshot::Sender<Result<Written, String>>;

struct Job {
    event: NewEvent,
    reply: Reply,
}

/// The handle requests use to reach the writers. When every handle is dropped, the writers finish
/// what is queued and stop.
#[derive(Clone)]
pub struct InboxWriter {
    tx: mpsc::Sender<Job>,
    load: IngestLoad,
    outage: Outage,
}

/// The store known to be unreachable: after a commit fails for want of a connection, webhooks
/// are answered 503 at once (the provider retries) instead of each waiting for the pool's
/// timeout, and one request a second is let through to find out whether it is back.
#[derive(Clone, Debug, Default)]
struct Outage(Arc<OutageState>);

#[derive(Debug, Default)]
struct OutageState {
    down: std::sync::atomic::AtomicBool,
    /// When the next request may try the store (unix ms).
    next_try_ms: std::sync::atomic::AtomicI64,
}

/// How often a request tries the store while it is down.
const OUTAGE_PROBE_MS: i64 = 1_000;

impl Outage {
    /// False when the store is down and this request is not the one that tries it.
    fn may_try(&self) -> bool {
        let state = &self.0;
        if !state.down.load(Ordering::Acquire) {
            return true;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let next = state.next_try_ms.load(Ordering::Acquire);
        now >= next
            && state
                .next_try_ms
                .compare_exchange(
                    next,
                    now + OUTAGE_PROBE_MS,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    fn record(&self, result: &Result<Vec<bool>, StoreError>) {
        let state = &self.0;
        match result {
            Err(StoreError::Unavailable(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::Io(_)
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            )) => {
                let now = chrono::Utc::now().timestamp_millis();
                state
                    .next_try_ms
                    .store(now + OUTAGE_PROBE_MS, Ordering::Release);
                if !state.down.swap(true, Ordering::AcqRel) {
                    tracing::error!(
                        "the store cannot be reached: webhooks are answered 503 at once until it is back"
                    );
                }
            }
            Ok(_) => {
                if state.down.swap(false, Ordering::AcqRel) {
                    tracing::info!("the store is reachable again");
                }
            }
            Err(_) => {}
        }
    }
}

/// How many webhooks are waiting for their inbox commit right now. The ledger processor gives
/// way to them: an acknowledgement is what the provider waits for, the ledger can follow.
#[derive(Clone, Debug, Default)]
pub struct IngestLoad(Arc<AtomicUsize>);

impl IngestLoad {
    pub fn waiting(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Counts one webhook until the returned guard is dropped (answered, or given up on).
    fn enter(&self) -> impl Drop + use<> {
        struct Leave(Arc<AtomicUsize>);
        impl Drop for Leave {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.0.fetch_add(1, Ordering::Relaxed);
        Leave(self.0.clone())
    }
}

impl InboxWriter {
    /// Starts `writers` writers; each commit that stores a new event wakes `stored` (the processor).
    pub fn spawn(
        store: Arc<Store>,
        writers: usize,
        batch_max: usize,
        stored: Arc<Notify>,
    ) -> (InboxWriter, Vec<JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel(batch_max * writers.max(1) * 4);
        let rx = Arc::new(Mutex::new(rx));
        let outage = Outage::default();
        let handles = (0..writers.max(1))
            .map(|_| {
                tokio::spawn(run(
                    rx.clone(),
                    store.clone(),
                    batch_max,
                    stored.clone(),
                    outage.clone(),
                ))
            })
            .collect();
        let load = IngestLoad::default();
        (InboxWriter { tx, load, outage }, handles)
    }

    /// The count of webhooks waiting on these writers.
    pub fn load(&self) -> IngestLoad {
        self.load.clone()
    }

    /// Resolves once the transaction holding `event` has committed (or failed).
    pub async fn write(&self, event: NewEvent) -> Result<Written, StoreError> {
        if !self.outage.may_try() {
            return Err(StoreError::CommitFailed(
                "the store cannot be reached (a commit failed less than a second ago)".into(),
            ));
        }
        let _waiting = self.load.enter();
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { event, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        match answer.await {
            Ok(Ok(written)) => Ok(written),
            Ok(Err(message)) => Err(StoreError::CommitFailed(message)),
            Err(_) => Err(StoreError::WriterGone),
        }
    }
}

async fn run(
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    store: Arc<Store>,
    batch_max: usize,
    stored: Arc<Notify>,
    outage: Outage,
) {
    let mut jobs = Vec::with_capacity(batch_max);
    loop {
        // Only one writer waits on the queue at a time; the others are committing meanwhile.
        let received = rx.lock().await.recv_many(&mut jobs, batch_max).await;
        if received == 0 {
            return;
        }
        if commit(&store, std::mem::take(&mut jobs), &outage).await {
            stored.notify_one();
        }
    }
}

/// Commits one batch and answers its requests; true if a new event was stored.
async fn commit(store: &Store, jobs: Vec<Job>, outage: &Outage) -> bool {
    let requests = jobs.len();
    let (events, replies): (Vec<NewEvent>, Vec<Reply>) =
        jobs.into_iter().map(|j| (j.event, j.reply)).unzip();
    // The same event twice in one batch: the first copy is inserted, the others share its fate as
    // duplicates. `slot[k]` is request k's row in the batch, and whether it is a repeat.
    let mut slot = Vec::with_capacity(requests);
    {
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(requests);
        for event in &events {
            let next = first_of.len();
            match first_of.entry((event.source.as_str(), event.event_id.as_str())) {
                Entry::Occupied(e) => slot.push((*e.get(), true)),
                Entry::Vacant(e) => {
                    e.insert(next);
                    slot.push((next, false));
                }
            }
        }
    }
    let batch: Vec<NewEvent> = events
        .into_iter()
        .zip(&slot)
        .filter(|(_, (_, repeat))| !repeat)
        .map(|(event, _)| event)
        .collect();

    let started = std::time::Instant::now();
    let result = store.insert_events(&batch).await;
    outage.record(&result);
    tracing::debug!(
        events = batch.len(),
        requests,
        commit_us = started.elapsed().as_micros() as u64,
        "inbox batch committed"
    );
    if let Err(e) = &result {
        tracing::error!(error = %e, events = batch.len(), "inbox commit failed; answering 503");
    }
    for (reply, (i, repeat)) in replies.into_iter().zip(slot) {
        let answer = match &result {
            Ok(new) if new[i] && !repeat => Ok(Written::New),
            Ok(_) => Ok(Written::Duplicate),
            Err(e) => Err(e.to_string()),
        };
        // The request may have gone away (client hung up); its row is stored all the same.
        let _ = reply.send(answer);
    }
    result.is_ok_and(|new| new.contains(&true))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::Connection;

    use super::*;

    async fn until(done: impl Fn() -> bool, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_commit_that_stores_a_new_event_wakes_the_processor_and_a_duplicate_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        let stored = Arc::new(Notify::new());
        let (writer, _tasks) = InboxWriter::spawn(store, 1, 16, stored.clone());
        let event = NewEvent::sample("evt_wake");

        assert_eq!(writer.write(event.clone()).await.unwrap(), Written::New);
        tokio::time::timeout(Duration::from_secs(5), stored.notified())
            .await
            .expect("woken after the commit");

        assert_eq!(writer.write(event).await.unwrap(), Written::Duplicate);
        let woken = tokio::time::timeout(Duration::from_millis(200), stored.notified()).await;
        assert!(woken.is_err(), "nothing new, nothing to wake for");
    }

    #[test]
    fn while_the_store_is_down_one_request_a_second_tries_it_and_the_rest_are_answered_at_once() {
        let outage = Outage::default();
        assert!(outage.may_try(), "a healthy store is always tried");
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        outage.record(&Err(StoreError::Unavailable(sqlx::Error::Io(refused))));
        assert!(!outage.may_try(), "answered at once");
        assert!(!outage.may_try());
        // A second later: one request tries the store, the others are still answered at once.
        outage.0.next_try_ms.store(0, Ordering::Release);
        assert!(outage.may_try());
        assert!(!outage.may_try());
        // Back: every request tries it again.
        outage.record(&Ok(vec![true]));
        assert!(outage.may_try() && outage.may_try());
        // A refusal that is not the connection's (a constraint, a trigger) is no outage.
        outage.record(&Err(StoreError::Corrupt("x".into())));
        assert!(outage.may_try());
    }

    /// The inbox has a file of its own (SQLite): a webhook is stored and answered while a ledger
    /// batch holds the store's write lock, where it used to wait for the whole batch.
    #[tokio::test]
    async fn a_webhook_is_stored_while_a_ledger_batch_holds_the_stores_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        let (writer, _tasks) = InboxWriter::spawn(store.clone(), 1, 16, Arc::new(Notify::new()));
        let ledger = store.begin_ledger().await.unwrap();
        let written = tokio::time::timeout(
            Duration::from_secs(10),
            writer.write(NewEvent::sample("evt_beside_the_ledger")),
        )
        .await
        .expect("the webhook's commit does not wait for the ledger's transaction");
        assert_eq!(written.unwrap(), Written::New);
        ledger.rollback().await.unwrap();
        assert_eq!(store.count_events().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn the_load_counts_webhooks_until_their_commit_is_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        let (writer, _tasks) = InboxWriter::spawn(store.clone(), 1, 16, Arc::new(Notify::new()));
        let load = writer.load();

        // Another connection holds the inbox's write lock: commits wait, and are counted.
        let inbox = crate::store::inbox_file(&dir.path().join("payhook.db"));
        let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite://{}", inbox.display()))
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut holder)
            .await
            .unwrap();
        let pending: Vec<_> = (0..3)
            .map(|n| {
                let writer = writer.clone();
                let event = NewEvent::sample(&format!("evt_load_{n}"));
                tokio::spawn(async move { writer.write(event).await })
            })
            .collect();
        until(|| load.waiting() == 3, "three webhooks counted").await;
        // One gives up (its client hung up): it no longer counts.
        pending[2].abort();
        sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
        for p in pending.into_iter().take(2) {
            assert_eq!(p.await.unwrap().unwrap(), Written::New);
        }
        until(|| load.waiting() == 0, "none counted once answered").await;
    }
}
