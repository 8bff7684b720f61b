//! Secrets: values that never show in logs, errors or `Debug` output, and whose memory is
//! zeroed when they are dropped (`secrecy`).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// A secret value: its `Debug` and `Display` never show it; reading it takes
/// [`Secret::expose`], which a reviewer can grep for.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// Compared in constant time: settings are compared, and a secret's length and prefix should not
/// show in how long that takes.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose()
            .as_bytes()
            .ct_eq(other.expose().as_bytes())
            .into()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_shows_only_through_expose() {
        let s = Secret::new("whsec_abc");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "whsec_abc");
        assert_eq!(s, Secret::new("whsec_abc"));
        assert_ne!(s, Secret::new("whsec_abd"));
    }
}
