//! Group commit: requests hand their row to a writer and wait; each writer takes everything queued
//! (up to `batch_max`), commits it in one transaction and only then answers every waiting request.
//! Durability costs one fsync per batch instead of one per request.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};
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
}

impl InboxWriter {
    pub fn spawn(
        store: Arc<Store>,
        writers: usize,
        batch_max: usize,
    ) -> (InboxWriter, Vec<JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel(batch_max * writers.max(1) * 4);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..writers.max(1))
            .map(|_| tokio::spawn(run(rx.clone(), store.clone(), batch_max)))
            .collect();
        (InboxWriter { tx }, handles)
    }

    /// Resolves once the transaction holding `event` has committed (or failed).
    pub async fn write(&self, event: NewEvent) -> Result<Written, StoreError> {
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

async fn run(rx: Arc<Mutex<mpsc::Receiver<Job>>>, store: Arc<Store>, batch_max: usize) {
    let mut jobs = Vec::with_capacity(batch_max);
    loop {
        // Only one writer waits on the queue at a time; the others are committing meanwhile.
        let received = rx.lock().await.recv_many(&mut jobs, batch_max).await;
        if received == 0 {
            return;
        }
        commit(&store, std::mem::take(&mut jobs)).await;
    }
}

async fn commit(store: &Store, jobs: Vec<Job>) {
    // The same event twice in one batch: the first copy is inserted, the others wait on its fate.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(jobs.len());
    let mut batch = Vec::with_capacity(jobs.len());
    let mut slot = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let key = (job.event.source.as_str(), job.event.event_id.as_str());
        match first_of.get(&key) {
            Some(&i) => slot.push((i, true)),
            None => {
                first_of.insert(key, batch.len());
                slot.push((batch.len(), false));
                batch.push(job.event.clone());
            }
        }
    }
    let started = std::time::Instant::now();
    let result = store.insert_events(&batch).await;
    tracing::debug!(
        events = batch.len(),
        requests = jobs.len(),
        commit_us = started.elapsed().as_micros() as u64,
        "inbox batch committed"
    );
    if let Err(e) = &result {
        tracing::error!(error = %e, events = batch.len(), "inbox commit failed; answering 503");
    }
    for (job, (i, repeat)) in jobs.into_iter().zip(slot) {
        let answer = match &result {
            Ok(new) if new[i] && !repeat => Ok(Written::New),
            Ok(_) => Ok(Written::Duplicate),
            Err(e) => Err(e.to_string()),
        };
        // The request may have gone away (client hung up); its row is stored all the same.
        let _ = job.reply.send(answer);
    }
}
