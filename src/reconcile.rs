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
//!
//! An API that refuses those two parameters (an emulator such as localstripe, whose event list
//! takes only `type`, `created`, `limit` and `starting_after`) is read the plain way instead:
//! every event from `since`, page after page with `starting_after`, each page stored in the
//! order of its events' `created`. Nothing is lost that way, only more is read again: what the
//! inbox has is a duplicate.

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
    /// Where the next page starts ([`Cursor`]), when there is one.
    pub next: Option<String>,
    /// Events read back towards the oldest without being stored yet (a page that only reads).
    pub skimmed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("the store is unavailable: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Stripe list pages read back per call while looking for the oldest event: a few seconds, so
/// no call outlasts its client however long the list.
const WALK_PAGES: usize = 20;

/// Where a reconcile page starts, as [`PageOutcome::next`] says it (`older:ID`, `newer:ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Still reading back to the oldest event: from the page after this id.
    Older(String),
    /// The events just newer than this id (`ending_before`).
    Newer(String),
    /// The plain list (see the module's doc): the page after this id (`starting_after`).
    Listed(String),
}

impl Cursor {
    pub fn parse(text: &str) -> Option<Cursor> {
        let plain = |id: &str| {
            !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        match text.split_once(':') {
            Some(("older", id)) if plain(id) => Some(Cursor::Older(id.to_string())),
            Some(("newer", id)) if plain(id) => Some(Cursor::Newer(id.to_string())),
            Some(("listed", id)) if plain(id) => Some(Cursor::Listed(id.to_string())),
            _ => None,
        }
    }

    fn text(&self) -> String {
        match self {
            Cursor::Older(id) => format!("older:{id}"),
            Cursor::Newer(id) => format!("newer:{id}"),
            Cursor::Listed(id) => format!("listed:{id}"),
        }
    }
}

/// One page of the events `listing` names, oldest first, stored through the inbox under the
/// `stripe` source when it lacks them. Stripe lists newest first, so payhook first reads the list
/// back to its oldest event (ids only, [`WALK_PAGES`] pages a call; such a call stores nothing and
/// says how many it read back), stores that last page, then each next page is the events just
/// newer (`ending_before` the newest so far), as Stripe's guide pages undelivered events in the
/// order they were created.
pub async fn page(
    api: &StripeApi,
    inbox: &Inbox,
    listing: &Listing<'_>,
    cursor: Option<&Cursor>,
) -> Result<PageOutcome, ReconcileError> {
    let query = EventQuery {
        since: listing.since_kept(chrono::Utc::now().timestamp()),
        event_type: listing.event_type,
        only_undelivered: !listing.all,
        ..EventQuery::default()
    };
    if let Some(Cursor::Listed(after)) = cursor {
        return listed_page(api, inbox, listing, Some(after)).await;
    }
    let paged = match cursor {
        Some(Cursor::Newer(before)) => {
            let page = api
                .list_events(&EventQuery {
                    ending_before: Some(before),
                    ..query
                })
                .await;
            page.map(|page| {
                let newest = page.events.first().and_then(|e| event_id(e));
                let next = newest.filter(|_| page.has_more).map(Cursor::Newer);
                (Ok(page.events), next)
            })
        }
        Some(Cursor::Older(after)) => oldest_page(api, query, Some(after)).await.map(walked),
        _ => oldest_page(api, query, None).await.map(walked),
    };
    let (events, next) = match paged {
        Ok(paged) => paged,
        Err(ProviderError::Refused {
            status: 400,
            message,
            ..
        }) => {
            tracing::warn!(
                %message,
                "the provider's event list refuses delivery_success or ending_before (an \
                 emulator?): reading every event from the start instead"
            );
            return listed_page(api, inbox, listing, None).await;
        }
        Err(e) => return Err(e.into()),
    };
    let mut outcome = PageOutcome {
        next: next.as_ref().map(Cursor::text),
        ..PageOutcome::default()
    };
    let events = match events {
        Ok(events) => events,
        Err(skimmed) => {
            outcome.skimmed = skimmed;
            return Ok(outcome);
        }
    };
    // Within a page Stripe lists newest first: stored the other way round.
    store(inbox, events.into_iter().rev(), &mut outcome).await?;
    Ok(outcome)
}

/// One page of the plain list (see the module's doc): the events after `after`, stored in the
/// order they were created.
async fn listed_page(
    api: &StripeApi,
    inbox: &Inbox,
    listing: &Listing<'_>,
    after: Option<&str>,
) -> Result<PageOutcome, ReconcileError> {
    let page = api
        .list_events(&EventQuery {
            since: listing.since_kept(chrono::Utc::now().timestamp()),
            event_type: listing.event_type,
            starting_after: after,
            ..EventQuery::default()
        })
        .await?;
    let last = page.events.last().and_then(|e| event_id(e));
    let mut outcome = PageOutcome {
        next: last
            .filter(|_| page.has_more)
            .map(|id| Cursor::Listed(id).text()),
        ..PageOutcome::default()
    };
    let mut events = page.events;
    events.sort_by_key(created);
    store(inbox, events.into_iter(), &mut outcome).await?;
    Ok(outcome)
}

/// Stores `events` in this order through the inbox, counting them in `outcome`.
async fn store(
    inbox: &Inbox,
    events: impl ExactSizeIterator<Item = bytes::Bytes>,
    outcome: &mut PageOutcome,
) -> Result<(), ReconcileError> {
    outcome.listed = events.len();
    for event in events {
        match inbox.store_fetched("stripe", event).await {
            Ok(receipt) if receipt.duplicate => outcome.duplicates += 1,
            Ok(_) => outcome.stored += 1,
            Err(IngestError::Store(e)) => return Err(e.into()),
            Err(e) => outcome.refused.push(e.to_string()),
        }
    }
    Ok(())
}

/// Reads Stripe's newest-first list back from `after`: its last page (the oldest events) and
/// the cursor of the events newer than it, when there are any; or, when the end is further than
/// [`WALK_PAGES`], no events, how many were read, and where to go on reading back.
async fn oldest_page(
    api: &StripeApi,
    query: EventQuery<'_>,
    after: Option<&str>,
) -> Result<Walked, ProviderError> {
    let mut oldest: Option<Vec<bytes::Bytes>> = None;
    // Pages were read before this one (in this call or an earlier one).
    let mut newer = after.is_some();
    let mut after: Option<String> = after.map(str::to_string);
    let mut skimmed = 0;
    for read in 1.. {
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
        let count = page.events.len();
        newer |= oldest.replace(page.events).is_some();
        match last {
            Some(last) if page.has_more => {
                if read >= WALK_PAGES
                    && let Some(from) = after
                {
                    // The next call reads this page again: it never starts from an empty one.
                    return Ok(Walked {
                        events: None,
                        next: Some(Cursor::Older(from)),
                        skimmed,
                    });
                }
                skimmed += count;
                after = Some(last)
            }
            _ => break,
        }
    }
    let events = oldest.unwrap_or_default();
    let next = if newer {
        events.first().and_then(|e| event_id(e)).map(Cursor::Newer)
    } else {
        None
    };
    Ok(Walked {
        events: Some(events),
        next,
        skimmed: 0,
    })
}

/// The events to store, or how many were read back without any to store yet.
fn walked(w: Walked) -> (Result<Vec<bytes::Bytes>, usize>, Option<Cursor>) {
    (w.events.ok_or(w.skimmed), w.next)
}

/// What reading back found: the oldest page (none yet when the end is further) and where next.
struct Walked {
    events: Option<Vec<bytes::Bytes>>,
    next: Option<Cursor>,
    skimmed: usize,
}

/// A listed event's `created` (unix seconds; 0 when it has none).
fn created(event: &bytes::Bytes) -> i64 {
    #[derive(serde::Deserialize)]
    struct Listed {
        created: i64,
    }
    serde_json::from_slice::<Listed>(event).map_or(0, |l| l.created)
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
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = page(api, inbox, listing, cursor.as_ref()).await?;
        total.listed += page.listed;
        total.stored += page.stored;
        total.duplicates += page.duplicates;
        total.skimmed += page.skimmed;
        total.refused.extend(page.refused);
        match page.next.as_deref().and_then(Cursor::parse) {
            Some(next) => cursor = Some(next),
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
