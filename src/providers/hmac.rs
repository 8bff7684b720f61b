//! Configurable HMAC signatures, for providers that sign with a shared secret their own way: the
//! header, SHA-256 or SHA-512, hex or base64, an optional prefix (`sha256=`), and the signed
//! content as a template over the raw body (`{body}`), a timestamp header (`{timestamp}`) and the
//! notification URL (`{url}`, as Square signs it).

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::VerifyError;
use crate::domain::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Hex,
    Base64,
}

/// How one source signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacScheme {
    /// Lowercase header name.
    pub header: String,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    /// Before the signature in the header, e.g. `sha256=`; empty for none.
    pub prefix: String,
    /// Lowercase name of the header carrying the signed unix timestamp, if the provider sends one.
    pub timestamp_header: Option<String>,
    /// What is signed: `{body}` (default), with `{timestamp}` and `{url}` where the provider
    /// puts them.
    pub signed_content: String,
    /// The notification URL, for `{url}`.
    pub url: Option<String>,
}

impl HmacScheme {
    fn digest(&self, secret: &Secret, timestamp: Option<&str>, body: &[u8]) -> Vec<u8> {
        let key = secret.expose().as_bytes();
        let mut content = Vec::with_capacity(body.len() + 64);
        let mut rest = self.signed_content.as_str();
        while let Some(start) = rest.find('{') {
            content.extend_from_slice(&rest.as_bytes()[..start]);
            let after = &rest[start..];
            let (piece, len): (&[u8], usize) = if after.starts_with("{body}") {
                (body, 6)
            } else if after.starts_with("{timestamp}") {
                (timestamp.unwrap_or("").as_bytes(), 11)
            } else if after.starts_with("{url}") {
                (self.url.as_deref().unwrap_or("").as_bytes(), 5)
            } else {
                (b"{", 1)
            };
            content.extend_from_slice(piece);
            rest = &after[len..];
        }
        content.extend_from_slice(rest.as_bytes());
        match self.algorithm {
            Algorithm::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
                mac.update(&content);
                mac.finalize().into_bytes().to_vec()
            }
            Algorithm::Sha512 => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("any key length");
                mac.update(&content);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn encode(&self, digest: &[u8]) -> String {
        match self.encoding {
            Encoding::Hex => hex::encode(digest),
            Encoding::Base64 => STANDARD.encode(digest),
        }
    }

    /// Checks the signature header against `body` with every secret, then the timestamp (when the
    /// scheme has one) against `now`.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[Secret],
        tolerance: Duration,
        now: i64,
    ) -> Result<(), VerifyError> {
        let value = headers
            .get(&self.header)
            .ok_or(VerifyError::MissingSignature)?
            .to_str()
            .map_err(|_| VerifyError::MalformedHeader("the signature header is not visible ASCII"))?
            .trim();
        let encoded =
            value
                .strip_prefix(self.prefix.as_str())
                .ok_or(VerifyError::MalformedHeader(
                    "the signature lacks its configured prefix",
                ))?;
        let presented = match self.encoding {
            Encoding::Hex => hex::decode(encoded.to_ascii_lowercase()).ok(),
            Encoding::Base64 => STANDARD.decode(encoded).ok(),
        }
        .ok_or(VerifyError::MalformedHeader(
            "the signature is not in the configured encoding",
        ))?;
        let timestamp = match &self.timestamp_header {
            None => None,
            Some(name) => Some(headers.get(name).and_then(|v| v.to_str().ok()).ok_or(
                VerifyError::MalformedHeader("the timestamp header is missing"),
            )?),
        };
        let matched = secrets.iter().fold(subtle::Choice::from(0), |acc, secret| {
            acc | self.digest(secret, timestamp, body).ct_eq(&presented)
        });
        if !bool::from(matched) {
            return Err(VerifyError::InvalidSignature);
        }
        if let Some(t) = timestamp {
            let t = t.trim().parse::<i64>().map_err(|_| {
                VerifyError::MalformedHeader("the timestamp header is not a unix timestamp")
            })?;
            super::check_age(t, tolerance, now)?;
        }
        Ok(())
    }

    /// The headers the provider would send for `body` at `timestamp`.
    pub fn sign(&self, secret: &Secret, body: &[u8], timestamp: i64) -> Vec<(String, String)> {
        let t = timestamp.to_string();
        let ts = self.timestamp_header.as_ref().map(|_| t.as_str());
        let signature = format!(
            "{}{}",
            self.prefix,
            self.encode(&self.digest(secret, ts, body))
        );
        let mut headers = vec![(self.header.clone(), signature)];
        if let Some(name) = &self.timestamp_header {
            headers.push((name.clone(), t));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheme(algorithm: Algorithm, encoding: Encoding, prefix: &str) -> HmacScheme {
        HmacScheme {
            header: "x-signature".into(),
            algorithm,
            encoding,
            prefix: prefix.into(),
            timestamp_header: None,
            signed_content: "{body}".into(),
            url: None,
        }
    }

    fn as_headers(pairs: &[(String, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    /// RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
    #[test]
    fn digests_match_rfc_4231() {
        let body = b"what do ya want for nothing?";
        let key = Secret::new("Jefe");
        let sha256 = scheme(Algorithm::Sha256, Encoding::Hex, "");
        assert_eq!(
            sha256.sign(&key, body, 0)[0].1,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let sha512 = scheme(Algorithm::Sha512, Encoding::Hex, "sha512=");
        assert_eq!(
            sha512.sign(&key, body, 0)[0].1,
            "sha512=164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    #[test]
    fn verifies_round_trips_and_refuses_the_rest() {
        let secrets = [Secret::new("old"), Secret::new("new")];
        let tolerance = Duration::from_secs(300);
        let body = br#"{"event":"payment.completed"}"#;
        for s in [
            scheme(Algorithm::Sha256, Encoding::Hex, "sha256="),
            scheme(Algorithm::Sha512, Encoding::Base64, ""),
            HmacScheme {
                timestamp_header: Some("x-timestamp".into()),
                signed_content: "{timestamp}.{url}{body}".into(),
                url: Some("https://pay.example.com/webhooks/p".into()),
                ..scheme(Algorithm::Sha256, Encoding::Base64, "v1=")
            },
        ] {
            let signed = as_headers(&s.sign(&secrets[1], body, 1_000));
            assert_eq!(
                s.verify(&signed, body, &secrets, tolerance, 1_000),
                Ok(()),
                "{s:?}"
            );
            assert_eq!(
                s.verify(&signed, b"{}", &secrets, tolerance, 1_000),
                Err(VerifyError::InvalidSignature)
            );
            assert_eq!(
                s.verify(&signed, body, &secrets[..1], tolerance, 1_000),
                Err(VerifyError::InvalidSignature)
            );
            assert_eq!(
                s.verify(&HeaderMap::new(), body, &secrets, tolerance, 1_000),
                Err(VerifyError::MissingSignature)
            );
            if s.timestamp_header.is_some() {
                assert!(matches!(
                    s.verify(&signed, body, &secrets, tolerance, 1_000 + 301),
                    Err(VerifyError::TimestampOutOfTolerance { .. })
                ));
            }
        }
        let s = scheme(Algorithm::Sha256, Encoding::Hex, "sha256=");
        for bad in ["md5=abc", "sha256=zz"] {
            let h = as_headers(&[("x-signature".into(), bad.into())]);
            assert!(matches!(
                s.verify(&h, body, &secrets, tolerance, 0),
                Err(VerifyError::MalformedHeader(_))
            ));
        }
    }
}
