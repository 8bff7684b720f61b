//! The words payhook speaks, shared by every other module and importing none of them: money in
//! minor units, secrets, payment facts and the state derived from them, the steps a payment is
//! notified at, the statuses of the inbox and outbox rows, and the outbox's rows and delivery
//! policy.

pub mod column;
pub mod delivery;
pub mod facts;
pub mod ids;
pub mod money;
pub mod secret;
pub mod state;
pub mod status;
pub mod steps;

pub use secret::Secret;

use chrono::{DateTime, SecondsFormat};
use serde::Deserialize;

/// How hard SQLite syncs on commit. `Full` (the default) makes every acknowledged event survive power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    Full,
    Normal,
}

/// A provider time (unix seconds) as payhook writes times for people and services:
/// RFC 3339 in UTC, to the second (`2026-11-30T14:00:00Z`).
pub fn rfc3339(secs: Option<i64>) -> Option<String> {
    secs.and_then(|s| DateTime::from_timestamp(s, 0))
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}
