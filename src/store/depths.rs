//! The counts by status that the overview and `/metrics` show. Counting scans whole tables: a
//! few milliseconds on a young store, seconds on months of events (2 s on SQLite with 10 million
//! events). Once a count finds more than [`LARGE_STORE`] rows, answers are served from the last
//! count while a new one is made in the background, at most one at a time and at most every
//! twenty times its own length (never more than 5% of a core), so those pages answer at once on
//! any store. On a smaller store, every answer is counted when asked.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Depths, Store, StoreError};

/// Rows (events, notifications and payments) beyond which counts are served from the last one.
const LARGE_STORE: i64 = 200_000;

/// The shortest time between two background counts.
const RECOUNT_EVERY: Duration = Duration::from_secs(10);

pub struct DepthsCache {
    last: Mutex<Option<Counted>>,
    counting: AtomicBool,
    large: i64,
    every: Duration,
}

impl Default for DepthsCache {
    fn default() -> Self {
        Self::new(LARGE_STORE, RECOUNT_EVERY)
    }
}

#[derive(Clone)]
struct Counted {
    depths: Depths,
    rows: i64,
    at: Instant,
    took: Duration,
}

impl DepthsCache {
    /// Counts of more than `large` rows are served from the last one, renewed at most every
    /// `every`.
    pub fn new(large: i64, every: Duration) -> Self {
        Self {
            last: Mutex::default(),
            counting: AtomicBool::new(false),
            large,
            every,
        }
    }

    /// The counts, and how old they are (zero when counted for this call).
    pub async fn get(
        self: &Arc<Self>,
        store: &Arc<Store>,
    ) -> Result<(Depths, Duration), StoreError> {
        let last = self.last.lock().expect("not poisoned").clone();
        match last {
            Some(c) if c.rows > self.large => {
                let age = c.at.elapsed();
                if age >= self.every.max(c.took * 20) {
                    self.recount_in_background(store);
                }
                Ok((c.depths, age))
            }
            _ => Ok((self.count(store).await?, Duration::ZERO)),
        }
    }

    /// Starts a count unless one is under way (at start, so the first page need not wait).
    pub fn recount_in_background(self: &Arc<Self>, store: &Arc<Store>) {
        if self.counting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (cache, store) = (self.clone(), store.clone());
        tokio::spawn(async move {
            if let Err(e) = cache.count(&store).await {
                tracing::warn!(error = %e, "counting events by status failed");
            }
            cache.counting.store(false, Ordering::Release);
        });
    }

    async fn count(&self, store: &Store) -> Result<Depths, StoreError> {
        let started = Instant::now();
        let depths = store.depths().await?;
        let took = started.elapsed();
        let rows = depths.events.iter().map(|(_, n)| n).sum::<i64>()
            + depths.deliveries.iter().map(|(_, _, n)| n).sum::<i64>()
            + depths.payments.iter().map(|(_, n)| n).sum::<i64>();
        tracing::debug!(
            rows,
            took_ms = took.as_millis() as u64,
            "counts by status made"
        );
        *self.last.lock().expect("not poisoned") = Some(Counted {
            depths: depths.clone(),
            rows,
            at: Instant::now(),
            took,
        });
        Ok(depths)
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::store::NewEvent;

    fn total(depths: &Depths) -> i64 {
        depths.events.iter().map(|(_, n)| n).sum()
    }

    async fn add_event(store: &Store, id: &str) {
        store.insert_events(&[NewEvent::sample(id)]).await.unwrap();
    }

    #[tokio::test]
    async fn fast_counts_are_made_for_each_call() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        let cache = Arc::new(DepthsCache::default());
        add_event(&store, "evt_1").await;
        let (depths, age) = cache.get(&store).await.unwrap();
        assert_eq!((total(&depths), age), (1, Duration::ZERO));
        add_event(&store, "evt_2").await;
        assert_eq!(total(&cache.get(&store).await.unwrap().0), 2);
    }

    #[tokio::test]
    async fn slow_counts_are_served_from_the_last_and_renewed_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::scratch(&dir).await;
        // Every store is "large" here.
        let cache = Arc::new(DepthsCache::new(0, Duration::from_millis(200)));
        add_event(&store, "evt_1").await;
        assert_eq!(total(&cache.get(&store).await.unwrap().0), 1);

        add_event(&store, "evt_2").await;
        let (depths, age) = cache.get(&store).await.unwrap();
        assert_eq!(total(&depths), 1, "served from the last count");
        assert!(age > Duration::ZERO);

        // Once the last count is old enough, a call still answers at once with it, and starts a
        // new count whose result the next calls see.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(total(&cache.get(&store).await.unwrap().0), 1);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (depths, age) = cache.get(&store).await.unwrap();
            if total(&depths) == 2 {
                assert!(age < Duration::from_millis(200));
                break;
            }
            assert!(Instant::now() < deadline, "recounted in the background");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
