//! Where each row of the inbox and of the outbox is in its life: one type per kind of row, the
//! words the store keeps, the API answers and the CLI prints.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An inbox event's status.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Stored, in line for the processor.
    Received,
    /// A thin event waiting for its object from the provider's API.
    Waiting,
    /// Applied to the ledger.
    Processed,
    /// Stored, but nothing payhook acts on (or a payment it cannot be about).
    Ignored,
    /// Its application failed; tried again at `next_attempt_at`.
    Retrying,
    /// Its attempts are exhausted: left for a person, replayable.
    Failed,
    /// The provider's API denied it (no such payment, or another outcome than the notification
    /// claims): kept with the provider's answer, never applied.
    Rejected,
}

impl EventStatus {
    pub const ALL: [EventStatus; 7] = [
        EventStatus::Received,
        EventStatus::Waiting,
        EventStatus::Processed,
        EventStatus::Ignored,
        EventStatus::Retrying,
        EventStatus::Failed,
        EventStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Received => "received",
            EventStatus::Waiting => "waiting",
            EventStatus::Processed => "processed",
            EventStatus::Ignored => "ignored",
            EventStatus::Retrying => "retrying",
            EventStatus::Failed => "failed",
            EventStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<EventStatus> {
        EventStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Compared with the word itself, as rows and answers spell it.
impl PartialEq<&str> for EventStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A notification's status in the outbox.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not delivered yet: in line, in flight or waiting for its next attempt.
    Pending,
    Delivered,
    /// Refused for good or out of attempts: kept, visible, retryable by hand.
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Compared with the word itself, as rows and answers spell it.
impl PartialEq<&str> for DeliveryStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_reads_back_what_it_writes() {
        for s in EventStatus::ALL {
            assert_eq!(EventStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in crate::domain::state::PaymentStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(EventStatus::parse("lost"), None);
    }
}
