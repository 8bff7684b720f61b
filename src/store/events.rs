//! The inbox's rows (`webhook_events`) as the rest of payhook sees them: an event on its way in,
//! as stored, as listed, as claimed by the processor, and the choices a worker or a listing makes.

use std::collections::HashSet;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::domain::status::EventStatus;

/// A verified webhook on its way into the inbox.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    /// The exact bytes received.
    pub payload: Bytes,
    /// The request headers as a JSON object, signatures redacted.
    pub headers: String,
    pub received_at: DateTime<Utc>,
    /// The `traceparent` of its inbox commit's span, when tracing is on: the ledger's and the
    /// notifications' spans continue its trace.
    pub trace_context: Option<String>,
}

#[cfg(test)]
impl NewEvent {
    /// A minimal Stripe event with this id, received now.
    pub(crate) fn sample(id: &str) -> NewEvent {
        NewEvent {
            source: "stripe".into(),
            event_id: id.into(),
            event_type: "payment_intent.succeeded".into(),
            payload: "{}".into(),
            headers: "{}".into(),
            received_at: Utc::now(),
            trace_context: None,
        }
    }
}

/// The key of a stored event, as returned by the insert.
pub(crate) type EventKey = (String, String);

/// Per event of `batch`, whether it is among the keys `inserted`.
pub(crate) fn inserted_flags(batch: &[NewEvent], inserted: &HashSet<EventKey>) -> Vec<bool> {
    batch
        .iter()
        .map(|e| inserted.contains(&(e.source.clone(), e.event_id.clone())))
        .collect()
}

/// An inbox row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    pub status: EventStatus,
    pub payload: Vec<u8>,
    pub headers: String,
    pub received_at: DateTime<Utc>,
    /// Attempts made at applying it to the ledger.
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When retention emptied its payload and headers (it was applied long ago).
    pub pruned_at: Option<DateTime<Utc>>,
}

impl StoredEvent {
    /// The row as listings show it.
    pub fn summary(&self) -> EventSummary {
        EventSummary {
            id: self.id,
            source: self.source.clone(),
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            status: self.status,
            attempts: self.attempts,
            last_error: self.last_error.clone(),
            received_at: self.received_at,
            booking_id: None,
        }
    }
}

/// One line of an event listing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventSummary {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    pub status: EventStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub received_at: DateTime<Utc>,
    /// The booking of the payment the event's fact belongs to, once it is applied.
    pub booking_id: Option<String>,
}

/// Which inbox events a listing keeps: every field that is set must match; `before` is the
/// cursor (an event's number: only older ones).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub status: Option<EventStatus>,
    pub source: Option<String>,
    pub event_type: Option<String>,
    /// The provider's event id (`evt_...`).
    pub event_id: Option<String>,
    /// Received at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Received before this time.
    pub until: Option<DateTime<Utc>>,
    pub before: Option<i64>,
}

impl EventFilter {
    /// Events in `status`.
    pub fn status(status: EventStatus) -> EventFilter {
        EventFilter {
            status: Some(status),
            ..EventFilter::default()
        }
    }
}

/// Which events a worker claims.
#[derive(Debug, Clone, Copy)]
pub enum Claim {
    /// Up to `limit` of the oldest new events, else of the retries due by `now_ms`.
    Next { now_ms: i64, limit: i64 },
    /// This event, if it is waiting (new or retrying).
    Id(i64),
}

/// An inbox event a worker holds for the length of its transaction.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedEvent {
    pub id: i64,
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: Vec<u8>,
    /// A thin event's related object, fetched from the provider as a snapshot event.
    pub fetched: Option<Vec<u8>>,
    /// Attempts made before this one.
    pub attempts: i64,
    pub received_at: DateTime<Utc>,
    /// As stored, the `traceparent` of its inbox commit's span (tracing on when it arrived); the
    /// processor puts its own ledger span's there, for the notifications it causes to continue.
    #[sqlx(default)]
    pub trace_context: Option<String>,
}

/// A failed attempt, as recorded on the event.
#[derive(Debug, Clone)]
pub struct Failure {
    /// `retrying` (with `next_attempt_at`) or `failed` once attempts are exhausted.
    pub status: EventStatus,
    pub attempts: i64,
    pub error: String,
    pub next_attempt_at: Option<i64>,
}

/// A thin event waiting for its related object.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ToFetch {
    pub id: i64,
    pub source: String,
    pub event_type: String,
    pub payload: Vec<u8>,
    /// The request headers as stored (a JSON object; signatures redacted): some providers' APIs
    /// confirm a notification from its headers and body together (PayPal).
    pub headers: String,
    /// Fetches tried so far.
    pub attempts: i64,
}

/// Retention: the last of `rows` (id, arrival, in id order) of a run received before `cutoff`.
pub(super) fn last_received_before(
    rows: &[(i64, DateTime<Utc>)],
    cutoff: DateTime<Utc>,
) -> Option<i64> {
    rows.iter()
        .take_while(|(_, at)| *at < cutoff)
        .last()
        .map(|(id, _)| *id)
}
