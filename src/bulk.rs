//! Bulk replays and retries as background jobs: a selection of events or notifications is put
//! back in line a chunk at a time, each chunk one short transaction, with a pause between chunks
//! as long as the chunk took, so ingest keeps its acknowledgements quick while 100,000 events
//! are replayed. Jobs live in memory: a restart ends them (what was done stays done) and the
//! list keeps the last [`KEEP`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::admin_types::{Job, JobKind, JobSelection, JobState, time};
use crate::store::{Selection, Store, StoreError};

/// Rows per chunk: a few milliseconds of writing.
pub const CHUNK: i64 = 500;

/// Jobs listed (the running ones, then the newest finished).
pub const KEEP: usize = 50;

/// The jobs of this instance, newest first.
#[derive(Default)]
pub struct Jobs {
    jobs: Mutex<VecDeque<Arc<Mutex<Job>>>>,
}

/// What a job's runner calls after each chunk: wakes the processor or the dispatchers.
pub type Wake = Box<dyn Fn() + Send + Sync>;

impl Jobs {
    pub fn list(&self) -> Vec<Job> {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.iter()
            .map(|j| j.lock().expect("job lock").clone())
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<Job> {
        self.find(id).map(|j| j.lock().expect("job lock").clone())
    }

    fn find(&self, id: &str) -> Option<Arc<Mutex<Job>>> {
        let jobs = self.jobs.lock().expect("jobs lock");
        jobs.iter()
            .find(|j| j.lock().expect("job lock").id == id)
            .cloned()
    }

    /// Asks a running job to stop after its current chunk; the job as it is then, or none if
    /// there is no such job.
    pub fn cancel(&self, id: &str) -> Option<Job> {
        let job = self.find(id)?;
        let mut j = job.lock().expect("job lock");
        if j.state == JobState::Running {
            j.state = JobState::Cancelled;
            j.finished_at = Some(time(Utc::now()));
        }
        Some(j.clone())
    }

    /// Counts the selection and starts walking it in the background; answers the job as it
    /// starts.
    pub async fn start(
        &self,
        store: Arc<Store>,
        kind: JobKind,
        selection: Selection,
        shown: JobSelection,
        wake: Wake,
    ) -> Result<Job, StoreError> {
        let (after, upto) = store.selection_window(&selection).await?;
        let total = store.count_selected(&selection, after, upto).await?;
        let job = Job {
            id: crate::domain::ids::new_id("job"),
            kind,
            selection: shown,
            total,
            done: 0,
            requeued: 0,
            state: JobState::Running,
            error: None,
            started_at: time(Utc::now()),
            finished_at: None,
        };
        let handle = Arc::new(Mutex::new(job.clone()));
        {
            let mut jobs = self.jobs.lock().expect("jobs lock");
            jobs.push_front(handle.clone());
            // The oldest finished jobs make room; running ones stay listed.
            while jobs.len() > KEEP {
                let Some(at) = jobs
                    .iter()
                    .rposition(|j| j.lock().expect("job lock").state != JobState::Running)
                else {
                    break;
                };
                jobs.remove(at);
            }
        }
        tracing::info!(job = %job.id, ?kind, total, "bulk job started");
        tokio::spawn(run(store, selection, after, upto, handle, wake));
        Ok(job)
    }
}

/// Walks the selection by id from `after` to `upto`, a chunk at a time.
async fn run(
    store: Arc<Store>,
    selection: Selection,
    mut after: i64,
    upto: i64,
    job: Arc<Mutex<Job>>,
    wake: Wake,
) {
    let outcome = loop {
        if job.lock().expect("job lock").state != JobState::Running {
            break Ok(());
        }
        let ids = match store.selected_ids(&selection, after, upto, CHUNK).await {
            Ok(ids) => ids,
            Err(e) => break Err(e),
        };
        let Some(&last) = ids.last() else {
            break Ok(());
        };
        let started = Instant::now();
        let now_ms = Utc::now().timestamp_millis();
        let requeued = match store.requeue_selected(&selection, &ids, now_ms).await {
            Ok(n) => n as i64,
            Err(e) => break Err(e),
        };
        after = last;
        {
            let mut j = job.lock().expect("job lock");
            j.done += ids.len() as i64;
            j.requeued += requeued;
        }
        if requeued > 0 {
            wake();
        }
        // The write lock is ingest's and the workers' at least as long as the chunk held it.
        tokio::time::sleep(started.elapsed().max(Duration::from_millis(1))).await;
    };
    let mut j = job.lock().expect("job lock");
    if j.state == JobState::Running {
        j.state = match &outcome {
            Ok(()) => JobState::Finished,
            Err(_) => JobState::Failed,
        };
        j.finished_at = Some(time(Utc::now()));
    }
    // Rows that entered the selection after it was counted were walked too.
    j.total = j.total.max(j.done);
    if let Err(e) = outcome {
        j.error = Some(e.to_string());
        tracing::warn!(job = %j.id, error = %e, done = j.done, "bulk job failed");
    } else {
        tracing::info!(job = %j.id, done = j.done, requeued = j.requeued, state = ?j.state, "bulk job ended");
    }
}
