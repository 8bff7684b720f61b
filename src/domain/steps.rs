//! The points in a payment's life that someone is told about, and the names they are told by.

/// A point in a payment's life that someone is told about, in the order a payment goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Confirmed,
    PartiallyRefunded,
    Refunded,
    RefundFailed,
    Disputed,
    DisputeClosed,
    Failed,
    CheckoutExpired,
    Duplicate,
    /// The booking service refused a booking whose money was taken.
    NeedsAttention,
}

impl Step {
    /// Every step, in the order a payment reaches them.
    pub const ALL: [Step; 10] = [
        Step::Confirmed,
        Step::PartiallyRefunded,
        Step::Refunded,
        Step::RefundFailed,
        Step::Disputed,
        Step::DisputeClosed,
        Step::Failed,
        Step::CheckoutExpired,
        Step::Duplicate,
        Step::NeedsAttention,
    ];

    /// The name an `events` target receives.
    pub fn event_name(self) -> &'static str {
        match self {
            Step::Confirmed => "payment.confirmed",
            Step::PartiallyRefunded => "payment.partially_refunded",
            Step::Refunded => "payment.refunded",
            Step::RefundFailed => "payment.refund_failed",
            Step::Disputed => "payment.disputed",
            Step::DisputeClosed => "payment.dispute_closed",
            Step::Failed => "payment.failed",
            Step::CheckoutExpired => "checkout.expired",
            Step::Duplicate => "payment.duplicate",
            Step::NeedsAttention => "payment.needs_attention",
        }
    }

    /// The booking status a `booking-status` target receives, for the steps a booking has.
    /// A failed attempt changes nothing (the customer may try again); disputes are the events
    /// target's business.
    pub fn booking_status(self) -> Option<&'static str> {
        match self {
            Step::Confirmed => Some("confirmed"),
            Step::PartiallyRefunded => Some("partially_refunded"),
            Step::Refunded => Some("refunded"),
            Step::CheckoutExpired => Some("cancelled"),
            Step::RefundFailed
            | Step::Disputed
            | Step::DisputeClosed
            | Step::Failed
            | Step::Duplicate
            | Step::NeedsAttention => None,
        }
    }
}

/// The operational events: about delivery itself rather than a payment, so an alerting system
/// can page someone.
pub const OPERATIONAL_EVENTS: [&str; 4] = [
    "delivery.exhausted",
    "target.circuit_opened",
    "target.recovered",
    "target.disabled",
];

/// The events an `events` target can receive: a payment's, in the order a payment reaches
/// them, then the operational ones.
pub fn event_names() -> impl Iterator<Item = &'static str> {
    Step::ALL
        .into_iter()
        .map(Step::event_name)
        .chain(OPERATIONAL_EVENTS)
}
