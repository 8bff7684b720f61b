//! Notifications: what the application's services hear when the ledger changes.
//!
//! The processor turns each ledger change into outbox rows ([`changes`]) inside the transaction
//! that makes the change, so a change and its notifications commit together or not at all. The
//! [`dispatcher`] delivers them: one worker per target, the oldest pending notification of each
//! `(target, booking)` first, retries on the target's schedule, a circuit breaker ([`crate::domain::delivery`]).

pub mod changes;
pub mod dispatcher;
pub mod operational;

/// Events targets are signed with the Standard Webhooks scheme, the one payhook also verifies.
pub use crate::providers::standard::{sign, signing_key};
pub use changes::{Change, deliveries_for, first_due};
pub use dispatcher::{DispatchWake, Dispatched, Dispatcher, TargetWorker};
pub use operational::Operational;
