//! Reconciliation: events the provider sent while payhook could not take them (down longer than
//! the provider retries, a misconfigured endpoint) are fetched from the provider's API and fed
//! through the inbox. The inbox's `UNIQUE(source, event_id)` makes it idempotent: what is already
//! there is a duplicate, so running it twice changes nothing the second time.

use std::time::Duration;

use tokio::sync::watch;

use crate::checkout::{ProviderError, StripeApi};
use crate::inbox::{Inbox, IngestError};

/// What one page of the provider's event list did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageOutcome {
    pub listed: usize,
    /// Missing here, now stored.
    pub stored: usize,
    pub duplicates: usize,
    /// Events the inbox refused (not an event payhook can read), with why.
    pub refused: Vec<String>,
    /// Where the next page starts, when there is one.
    pub next: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("the store is unavailable: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Fetches one page of Stripe's events created at or after `since` (unix seconds) and stores the
/// ones the inbox lacks, under the `stripe` source.
pub async fn page(
    api: &StripeApi,
    inbox: &Inbox,
    since: i64,
    event_type: Option<&str>,
    starting_after: Option<&str>,
) -> Result<PageOutcome, ReconcileError> {
    let page = api.list_events(since, event_type, starting_after).await?;
    let mut outcome = PageOutcome {
        listed: page.events.len(),
        ..PageOutcome::default()
    };
    let mut last = None;
    for event in page.events {
        // The next page starts after the last event listed, whatever the inbox makes of it.
        #[derive(serde::Deserialize)]
        struct Listed {
            id: String,
        }
        if let Ok(listed) = serde_json::from_slice::<Listed>(&event) {
            last = Some(listed.id);
        }
        match inbox.store_fetched("stripe", event).await {
            Ok(receipt) if receipt.duplicate => outcome.duplicates += 1,
            Ok(_) => outcome.stored += 1,
            Err(IngestError::Store(e)) => return Err(e.into()),
            Err(e) => outcome.refused.push(e.to_string()),
        }
    }
    outcome.next = if page.has_more { last } else { None };
    Ok(outcome)
}

/// Every page from `since`: the totals.
pub async fn all(
    api: &StripeApi,
    inbox: &Inbox,
    since: i64,
    event_type: Option<&str>,
) -> Result<PageOutcome, ReconcileError> {
    let mut total = PageOutcome::default();
    let mut after: Option<String> = None;
    loop {
        let page = page(api, inbox, since, event_type, after.as_deref()).await?;
        total.listed += page.listed;
        total.stored += page.stored;
        total.duplicates += page.duplicates;
        total.refused.extend(page.refused);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(total),
        }
    }
}

/// `serve`'s periodic reconciliation: every `every`, the events of the last `window`.
pub async fn periodically(
    api: &StripeApi,
    inbox: &Inbox,
    every: Duration,
    window: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
        let since = chrono::Utc::now().timestamp() - window.as_secs() as i64;
        match all(api, inbox, since, None).await {
            Ok(done) => tracing::info!(
                listed = done.listed,
                stored = done.stored,
                refused = done.refused.len(),
                "periodic reconcile done"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "periodic reconcile failed; trying again next time")
            }
        }
    }
}
