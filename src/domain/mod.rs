//! The words payhook speaks, shared by every other module and importing none of them: money in
//! minor units, secrets, payment facts and the state derived from them, the steps a payment is
//! notified at, the statuses of the inbox and outbox rows, and the outbox's rows and delivery
//! policy.

pub mod delivery;
pub mod facts;
pub mod money;
pub mod secret;
pub mod state;
pub mod status;
pub mod steps;

pub use secret::Secret;

use serde::Deserialize;

/// How hard SQLite syncs on commit. `Full` (the default) makes every acknowledged event survive power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    Full,
    Normal,
}
