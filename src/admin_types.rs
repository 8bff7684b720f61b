//! The admin API's answers as types: the JSON `http::admin` answers with, which the `payhook
//! events`, `deliveries` and `reconcile` commands read back. The field names are the JSON's. The
//! handlers build these types, the API document describes them (they derive `Serialize`,
//! `Deserialize` and `ToSchema`) and the CLI reads the answers into them, so the server's answers
//! and the CLI's reading of them cannot drift apart. The rows are made from the store's rows here,
//! in one place.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::status::{DeliveryStatus, EventStatus};
use crate::reconcile::PageOutcome;
use crate::store::{Delivery, EventSummary, StoredEvent};

/// A time as the admin API answers it: RFC 3339 in UTC, to the millisecond
/// (`2026-11-22T21:44:50.000Z`).
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A page of a listing, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass it back as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<i64>,
}

/// An inbox event, as listed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventRow {
    /// The event's number: `GET /admin/api/events/{id}`.
    pub id: i64,
    pub source: String,
    /// The provider's id (`evt_...`).
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub status: EventStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub received_at: String,
    /// The booking its fact was applied to (none before it is applied, or when it names none).
    pub booking_id: Option<String>,
}

impl From<&EventSummary> for EventRow {
    fn from(e: &EventSummary) -> EventRow {
        EventRow {
            id: e.id,
            source: e.source.clone(),
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            status: e.status,
            attempts: e.attempts,
            last_error: e.last_error.clone(),
            received_at: time(e.received_at),
            booking_id: e.booking_id.clone(),
        }
    }
}

/// One event with what it arrived with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub event: EventRow,
    /// The headers as stored: signatures and credentials redacted.
    pub headers: Value,
    /// The body as received (as text); empty once retention pruned it.
    pub body: String,
    /// When retention pruned the body and headers (the event was applied long before).
    pub pruned_at: Option<String>,
}

impl EventDetail {
    /// The stored event under its listing's row (which carries the booking it was applied to).
    pub fn new(event: EventRow, stored: &StoredEvent) -> EventDetail {
        EventDetail {
            event,
            headers: serde_json::from_str::<Value>(&stored.headers).unwrap_or(Value::Null),
            body: String::from_utf8_lossy(&stored.payload).into_owned(),
            pruned_at: stored.pruned_at.map(time),
        }
    }
}

/// `POST /admin/api/events/{id}/replay`: the event is back in line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Requeued {
    pub id: i64,
    /// `received`: in line for the processor.
    #[schema(value_type = String)]
    pub status: EventStatus,
}

/// `POST /admin/api/events/replay`: how many events are back in line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequeuedCount {
    pub requeued: usize,
}

/// What a bulk job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Events back in line for the processor.
    ReplayEvents,
    /// Notifications due now, with a fresh retry schedule.
    RetryDeliveries,
}

/// Where a bulk job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    /// Every selected row was walked.
    Finished,
    /// The store failed part way: what was done stays done; `error` says why.
    Failed,
    /// Stopped by an operator part way: what was done stays done.
    Cancelled,
}

/// The rows a bulk job selects, as the request said them (times resolved to RFC 3339); absent
/// fields select everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobSelection {
    /// The status the rows are in (events: `failed` unless told; notifications: `dead`).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking: Option<String>,
    /// Notifications caused by this provider event (of `source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Received (events) or created (notifications) at or after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// ... and before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// A bulk replay or retry running in the background: `GET /admin/api/jobs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// `job_...`.
    pub id: String,
    pub kind: JobKind,
    pub selection: JobSelection,
    /// Rows selected when the job started (rows stored later are not its business).
    pub total: i64,
    /// Rows walked so far.
    pub done: i64,
    /// Of those, the ones put back in line (the others had moved on meanwhile: applied,
    /// delivered).
    pub requeued: i64,
    pub state: JobState,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// A dry run: how many rows a bulk job would touch, and the first of them (oldest first).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DryRun<T> {
    pub selection: JobSelection,
    pub total: i64,
    pub sample: Vec<T>,
}

/// A notification to a target.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryRow {
    pub id: i64,
    /// `ntf_...`: sent as the request id; the same on every attempt.
    pub notification_id: String,
    pub target: String,
    pub booking_id: Option<String>,
    pub event: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// An attempt is under way.
    pub in_flight: bool,
    /// The HTTP status of the last answer.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    /// The notification's body.
    pub payload: Value,
    /// The provider event whose application caused it: its source and id.
    pub source: Option<String>,
    pub source_event_id: Option<String>,
    /// Why a pending notification is not sent now: its target is disabled, or its circuit is
    /// open.
    #[serde(default)]
    pub held: Option<String>,
}

impl From<&Delivery> for DeliveryRow {
    fn from(d: &Delivery) -> DeliveryRow {
        DeliveryRow {
            id: d.id,
            notification_id: d.notification_id.to_string(),
            target: d.target.clone(),
            booking_id: d.booking_id.clone(),
            event: d.event.clone(),
            status: d.status,
            attempts: d.attempts,
            in_flight: d.in_flight,
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            next_attempt_at: DateTime::from_timestamp_millis(d.next_attempt_at).map(time),
            created_at: time(d.created_at),
            delivered_at: d.delivered_at.map(time),
            payload: serde_json::from_str::<Value>(&d.payload).unwrap_or(Value::Null),
            source: d.source.clone(),
            source_event_id: d.source_event_id.clone(),
            held: None,
        }
    }
}

/// `POST /admin/api/deliveries/{id}/retry`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Retried {
    /// The numbers of the notifications put back in line.
    pub retried: Vec<i64>,
}

/// `POST /admin/api/deliveries/retry`: how many dead notifications are due again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetriedCount {
    pub retried: usize,
}

/// `POST /admin/api/targets/{name}/reset`: the target's circuit before and after.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TargetReset {
    pub name: String,
    /// closed, open or disabled.
    pub circuit_was: String,
    /// `closed` after an enable (or reset), `disabled` after a disable.
    pub circuit: String,
    /// Pending notifications an enable made due at once (they go in order per booking).
    #[serde(default)]
    pub released: u64,
}

/// A target and its circuit (`GET /admin/api/targets`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TargetRow {
    pub name: String,
    /// booking-status or events.
    pub kind: String,
    pub url: String,
    /// closed (delivering), open (only probes, after a failure rate), disabled (nothing is sent
    /// until it is enabled; its notifications are kept).
    pub circuit: String,
    /// Closed: failing attempts in the last 20 s. Open: failed probes since it opened.
    pub failures: u32,
    /// Until when an open circuit sends nothing (its next probe).
    pub open_until: Option<String>,
    /// When an open circuit sends its next probe (the same as `open_until`).
    pub next_probe_at: Option<String>,
    /// Why it opened or was disabled (and by whom), or its last failure.
    pub reason: Option<String>,
    /// The events an `events` target receives; empty: all.
    pub events: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TargetList {
    pub data: Vec<TargetRow>,
}

/// What one page of reconciliation did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReconcilePage {
    /// Events the provider listed on this page.
    pub listed: usize,
    /// Missing here, now stored (and applied by the processor).
    pub stored: usize,
    /// Already here.
    pub duplicates: usize,
    /// Listed events the inbox could not read, with why.
    pub refused: Vec<String>,
    /// Events read back towards the oldest, not stored yet (a page that only reads Stripe's
    /// list back to where it starts).
    pub skimmed: usize,
    /// Pass it back as `cursor` for the next page; null after the last.
    pub next_cursor: Option<String>,
}

impl From<PageOutcome> for ReconcilePage {
    fn from(done: PageOutcome) -> ReconcilePage {
        ReconcilePage {
            listed: done.listed,
            stored: done.stored,
            duplicates: done.duplicates,
            refused: done.refused,
            skimmed: done.skimmed,
            next_cursor: done.next,
        }
    }
}

/// One stored event on the event stream (`GET /admin/api/events/stream`): the `data` of an
/// SSE `event: webhook`, whose `id:` is its row number.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamedEvent {
    /// The row number: pass it back as `after` (or `Last-Event-ID`) to resume after it.
    pub id: i64,
    pub source: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub received_at: String,
    /// The `Content-Type` it came with.
    pub content_type: Option<String>,
    /// The body exactly as stored, base64 (standard alphabet); empty once retention pruned it.
    pub body_base64: String,
    /// Retention emptied the body: there is nothing to forward.
    pub pruned: bool,
}

impl From<&StoredEvent> for StreamedEvent {
    fn from(e: &StoredEvent) -> StreamedEvent {
        use base64::Engine;
        let headers: Value = serde_json::from_str(&e.headers).unwrap_or_default();
        StreamedEvent {
            id: e.id,
            source: e.source.clone(),
            event_id: e.event_id.clone(),
            event_type: e.event_type.clone(),
            received_at: time(e.received_at),
            content_type: headers["content-type"].as_str().map(str::to_string),
            body_base64: base64::engine::general_purpose::STANDARD.encode(&e.payload),
            pruned: e.pruned_at.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON keeps the names the admin API has always answered with (`type`, flattened
    /// detail, times to the millisecond in UTC), and reads back into the same row.
    #[test]
    fn rows_read_back_what_they_write() {
        let row = EventRow::from(&EventSummary {
            id: 42,
            source: "stripe".into(),
            event_id: "evt_1".into(),
            event_type: "payment_intent.succeeded".into(),
            status: EventStatus::Failed,
            attempts: 1,
            last_error: Some("no payment intent".into()),
            received_at: DateTime::from_timestamp_micros(1_795_383_890_123_456).unwrap(),
            booking_id: None,
        });
        assert_eq!(row.received_at, "2026-11-22T21:44:50.123Z");
        let detail = EventDetail {
            event: row,
            headers: serde_json::json!({"stripe-signature": "t=1,v1=[redacted]"}),
            body: "{}".into(),
            pruned_at: None,
        };
        let json = serde_json::to_value(&detail).unwrap();
        assert_eq!(json["type"], "payment_intent.succeeded");
        assert_eq!(json["status"], "failed");
        assert_eq!(json["id"], 42);
        let back: EventDetail = serde_json::from_value(json).unwrap();
        assert_eq!(back.event.event_type, "payment_intent.succeeded");
        assert_eq!(back.event.status, EventStatus::Failed);
        // A listing's row also reads from the detail: the extra fields are skipped.
        let row: EventRow = serde_json::to_value(&back)
            .and_then(serde_json::from_value)
            .unwrap();
        assert_eq!(row.id, 42);
    }

    /// A replayed event answers the status word, as a string.
    #[test]
    fn requeued_answers_the_status_word() {
        let requeued = Requeued {
            id: 7,
            status: EventStatus::Received,
        };
        assert_eq!(
            serde_json::to_string(&requeued).unwrap(),
            r#"{"id":7,"status":"received"}"#
        );
    }
}
