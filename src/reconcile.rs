//! Reconciliation: events the provider sent while payhook could not take them (down longer than
//! the provider retries, a misconfigured endpoint) are fetched from the provider's API and fed
//! through the inbox. The inbox's `UNIQUE(source, event_id)` makes it idempotent: what is already
//! there is a duplicate, so running it twice changes nothing the second time.
//!
//! It asks what Stripe's guide "Process undelivered webhook events"
//! (docs.stripe.com/webhooks/process-undelivered-events) recommends: `GET /v1/events` with
//! `delivery_success=false` (the events whose delivery failed or is still pending), created in the
//! last 30 days at most (all Stripe keeps), paged with `ending_before` so that they come oldest
//! first, in the order they happened. Events Stripe delivered are not fetched again.

use std::time::Duration;

use tokio::sync::watch;

use crate::checkout::{EventQuery, ProviderError, StripeApi};
use crate::inbox::{Inbox, IngestError};

/// How long Stripe keeps events for its List Events API: 30 days.
pub const RETENTION_SECS: i64 = 30 * 86_400;

/// Which events to reconcile.
#[derive(Debug, Clone, Default)]
pub struct Listing<'a> {
    /// Created at or after this time (unix seconds); never before Stripe's 30 days.
    pub since: i64,
    pub event_type: Option<&'a str>,
    /// Every event Stripe lists, delivered or not (after a restore from a backup, the events
    /// delivered since the backup are missing here although Stripe counts them delivered).
    pub all: bool,
}

impl Listing<'_> {
    /// `since`, no earlier than Stripe keeps events.
    pub fn since_kept(&self, now: i64) -> i64 {
        self.since.max(now - RETENTION_SECS)
    }
}

/// What one page of the provider's event list did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageOutcome {
    pub listed: usize,
    /// Missing here, now stored.
    pub stored: usize,
    pub duplicates: usize,
    /// Events the inbox refused (not an event payhook can read), with why.
    pub refused: Vec<String>,
    /// The `ending_before` of the next (newer) page, when there is one.
    pub next: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("the store is unavailable: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// One page of the events `listing` names, oldest first, stored through the inbox under the
/// `stripe` source when it lacks them. The first page (`ending_before` none) holds the oldest
/// events: Stripe lists newest first, so payhook pages back to the end of the list (reading only
/// ids) and starts there; each next page is the events just newer (`ending_before` the newest
/// so far), as Stripe's guide pages undelivered events in the order they were created.
pub async fn page(
    api: &StripeApi,
    inbox: &Inbox,
    listing: &Listing<'_>,
    ending_before: Option<&str>,
) -> Result<PageOutcome, ReconcileError> {
    let query = EventQuery {
        since: listing.since_kept(chrono::Utc::now().timestamp()),
        event_type: listing.event_type,
        only_undelivered: !listing.all,
        ..EventQuery::default()
    };
    let (events, next) = match ending_before {
        Some(cursor) => {
            let page = api
                .list_events(&EventQuery {
                    ending_before: Some(cursor),
                    ..query
                })
                .await?;
            let newest = page.events.first().and_then(|e| event_id(e));
            (page.events, if page.has_more { newest } else { None })
        }
        None => oldest_page(api, query).await?,
    };
    let mut outcome = PageOutcome {
        listed: events.len(),
        next,
        ..PageOutcome::default()
    };
    // Within a page Stripe lists newest first: stored the other way round.
    for event in events.into_iter().rev() {
        match inbox.store_fetched("stripe", event).await {
            Ok(receipt) if receipt.duplicate => outcome.duplicates += 1,
            Ok(_) => outcome.stored += 1,
            Err(IngestError::Store(e)) => return Err(e.into()),
            Err(e) => outcome.refused.push(e.to_string()),
        }
    }
    Ok(outcome)
}

/// The last page of Stripe's newest-first list (its oldest events), and the cursor for the
/// events newer than it when there are any.
async fn oldest_page(
    api: &StripeApi,
    query: EventQuery<'_>,
) -> Result<(Vec<bytes::Bytes>, Option<String>), ReconcileError> {
    let mut oldest: Option<Vec<bytes::Bytes>> = None;
    let mut newer = false;
    let mut after: Option<String> = None;
    loop {
        let page = api
            .list_events(&EventQuery {
                starting_after: after.as_deref(),
                ..query.clone()
            })
            .await?;
        let last = page.events.last().and_then(|e| event_id(e));
        if page.events.is_empty() {
            break;
        }
        newer |= oldest.replace(page.events).is_some();
        match last {
            Some(last) if page.has_more => after = Some(last),
            _ => break,
        }
    }
    let events = oldest.unwrap_or_default();
    let next = if newer {
        events.first().and_then(|e| event_id(e))
    } else {
        None
    };
    Ok((events, next))
}

/// A listed event's id, to page from.
fn event_id(event: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Listed {
        id: String,
    }
    serde_json::from_slice::<Listed>(event).ok().map(|l| l.id)
}

/// Every page, oldest first: the totals.
pub async fn all(
    api: &StripeApi,
    inbox: &Inbox,
    listing: &Listing<'_>,
) -> Result<PageOutcome, ReconcileError> {
    let mut total = PageOutcome::default();
    let mut before: Option<String> = None;
    loop {
        let page = page(api, inbox, listing, before.as_deref()).await?;
        total.listed += page.listed;
        total.stored += page.stored;
        total.duplicates += page.duplicates;
        total.refused.extend(page.refused);
        match page.next {
            Some(next) => before = Some(next),
            None => return Ok(total),
        }
    }
}

/// `serve`'s periodic reconciliation: every `every`, the undelivered events of the last `window`.
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
        let listing = Listing {
            since: chrono::Utc::now().timestamp() - window.as_secs() as i64,
            ..Listing::default()
        };
        match all(api, inbox, &listing).await {
            Ok(done) => tracing::info!(
                listed = done.listed,
                stored = done.stored,
                duplicates = done.duplicates,
                refused = done.refused.len(),
                "periodic reconcile done"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "periodic reconcile failed; trying again next time")
            }
        }
    }
}
