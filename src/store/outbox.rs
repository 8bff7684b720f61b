//! The outbox's rows: `deliveries` (one row per notification to one target) and each target's
//! circuit in `delivery_targets`. Rows are written by the processor inside its ledger
//! transaction, claimed and settled by the dispatcher in its own.

use chrono::{DateTime, Utc};

use crate::domain::ids::NotificationId;
use crate::domain::status::DeliveryStatus;

/// A notification a dispatcher holds (leased) while it sends it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub notification_id: NotificationId,
    pub target: String,
    pub order_key: String,
    pub event: String,
    pub booking_id: Option<String>,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// The provider event that caused it (none for rows written before payhook kept it).
    pub source: Option<String>,
    pub source_event_id: Option<String>,
    /// The payment whose change it announces.
    pub payment_id: Option<i64>,
    /// The `traceparent` of the ledger span that wrote it (tracing on): each attempt's span is
    /// its child.
    #[sqlx(default)]
    pub trace_context: Option<String>,
}

/// The outcome of one attempt, as recorded.
#[derive(Debug, Clone)]
pub struct Settled {
    pub id: i64,
    /// `delivered`, `pending` (to be retried at `next_attempt_at`) or `dead`.
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// What a booking service finally answered to a `confirmed` of this payment.
    pub booking_answer: Option<BookingAnswer>,
    /// The attempt itself, kept in the notification's history.
    pub attempt: AttemptRecord,
}

/// One attempt of a notification as its history keeps it (`delivery_attempts`): the settled
/// row's status, attempt number and next attempt complete it.
#[derive(Debug, Clone, Default)]
pub struct AttemptRecord {
    /// Unix ms.
    pub started_at: i64,
    pub latency_ms: i64,
    /// The start of the target's answer (`503 busy`), or why there was none.
    pub answer: String,
}

/// A booking service's final answer to a `confirmed` notification: refused for good (dead), or
/// accepted (delivered, after a retry perhaps).
#[derive(Debug, Clone)]
pub struct BookingAnswer {
    pub payment_id: i64,
    pub refused: bool,
    /// The provider event behind the notification.
    pub source: Option<String>,
    pub source_event_id: Option<String>,
    pub answer: String,
}

/// A `deliveries` row, for listings.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: i64,
    pub notification_id: NotificationId,
    pub target: String,
    pub order_key: String,
    pub event: String,
    pub booking_id: Option<String>,
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    /// An attempt is under way (or its instance died and its lease has not ended yet).
    pub in_flight: bool,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub source: Option<String>,
    pub source_event_id: Option<String>,
}

/// Which notifications `payhook deliveries retry` puts back in line.
#[derive(Debug, Clone, Copy)]
pub enum RetrySelection<'a> {
    /// By row id or notification id.
    Ids(&'a [String]),
    /// Every dead one, of one target or all.
    Dead { target: Option<&'a str> },
}
