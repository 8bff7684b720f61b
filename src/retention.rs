//! Retention: the raw payloads (and headers) of events applied long ago are pruned, in small
//! batches with a pause between them, so the store stops growing with bodies nobody reads while
//! the event index, the ledger and the notifications stay. Failed events keep theirs for a replay.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::watch;

use crate::config::RetentionSettings;
use crate::store::{RETENTION_CURSOR, Store, StoreError};

/// Runs sweeps until `stopped`; does nothing when no retention age is set.
pub async fn run(
    store: Arc<Store>,
    settings: RetentionSettings,
    mut stopped: watch::Receiver<bool>,
) {
    let Some(age) = settings.payloads else {
        return;
    };
    let mut cursor: i64 = match store.setting(RETENTION_CURSOR).await {
        Ok(value) => value.and_then(|v| v.parse().ok()).unwrap_or(0),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the retention cursor; starting from the first event");
            0
        }
    };
    loop {
        match sweep(&store, &settings, age, &mut cursor, &mut stopped).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "old payloads pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning old payloads failed; trying again later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.every) => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
    }
}

/// Prunes batch after batch until no event after the cursor is old enough; returns how many.
async fn sweep(
    store: &Store,
    settings: &RetentionSettings,
    age: std::time::Duration,
    cursor: &mut i64,
    stopped: &mut watch::Receiver<bool>,
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let now = Utc::now();
        let cutoff = now - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        let mut tx = store.begin_ledger().await?;
        let step = tx
            .prune_payloads(*cursor, cutoff, settings.batch, now)
            .await?;
        tx.commit().await?;
        let Some((last, pruned)) = step else {
            return Ok(total);
        };
        *cursor = last;
        total += pruned;
        metrics::counter!("payhook_payloads_pruned_total").increment(pruned);
        tokio::select! {
            _ = tokio::time::sleep(settings.pause) => {}
            _ = stopped.changed() => return Ok(total),
        }
    }
}
