//! Notifications: what the application's services hear when the ledger changes.
//!
//! The processor turns each ledger change into outbox rows ([`changes`]) inside the transaction
//! that makes the change, so a change and its notifications commit together or not at all. The
//! [`dispatcher`] delivers them: one worker per target, the oldest pending notification of each
//! `(target, booking)` first, retries on the target's schedule, a circuit breaker ([`policy`]).

pub mod changes;
pub mod dispatcher;
pub mod policy;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use changes::{Change, NewDelivery, deliveries_for};
pub use dispatcher::{DispatchWake, Dispatcher};

/// The events an `events` target can receive, in the order a payment reaches them.
pub const EVENT_NAMES: [&str; 7] = [
    "payment.confirmed",
    "payment.partially_refunded",
    "payment.refunded",
    "payment.disputed",
    "payment.dispute_closed",
    "payment.failed",
    "checkout.expired",
];

/// The key of a Standard Webhooks secret (`whsec_` then base64), if it is one.
pub fn signing_key(secret: &str) -> Option<Vec<u8>> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

/// The `webhook-signature` header value: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries
    /// (github.com/standard-webhooks/standard-webhooks, libraries/*/tests).
    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn refuses_secrets_that_are_not_whsec_base64() {
        assert!(signing_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
        assert!(signing_key("whsec_not base64!").is_none());
        assert!(
            signing_key("whsec_c2hvcnQ=").is_none(),
            "5 bytes is too short"
        );
    }
}
