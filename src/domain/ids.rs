//! Ids payhook makes: random, with the prefix that says what they name (`ntf_` for a
//! notification, Stripe's own prefixes for the sandbox's objects).

use std::fmt;

use rand::RngExt;
use serde::{Deserialize, Serialize};

/// `len` random alphanumerics.
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A Stripe-style id: `prefix_` followed by 24 random alphanumerics.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_token(24))
}

/// A notification's id (`ntf_...`): the same for every attempt at it, so a receiver that has seen
/// it once can drop it (sent as `X-Request-Id` and `webhook-id`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct NotificationId(String);

impl NotificationId {
    pub const PREFIX: &str = "ntf";

    /// A new, random id.
    pub fn new() -> NotificationId {
        NotificationId(new_id(Self::PREFIX))
    }

    /// An id read back from the store.
    pub fn from_stored(id: String) -> NotificationId {
        NotificationId(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for NotificationId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for NotificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Compared with the text itself, as answers and headers spell it.
impl PartialEq<&str> for NotificationId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_differ() {
        let (a, b) = (NotificationId::new(), NotificationId::new());
        assert!(
            a.as_str().starts_with("ntf_") && a.as_str().len() == 28,
            "{a}"
        );
        assert_ne!(a, b);
        assert!(new_id("pi").starts_with("pi_"));
        assert_eq!(random_token(46).len(), 46);
    }
}
