//! The Standard Webhooks scheme (standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64>[ v1,<base64>...]`, each signature the HMAC-SHA256, keyed with the
//! base64 key of a `whsec_` secret, of `"{id}.{timestamp}.{raw body}"`. payhook verifies it on
//! sources of kind `standard-webhooks` and signs its own events to `events` targets with it.

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::VerifyError;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The key of a Standard Webhooks secret (`whsec_` then base64), if it is one.
pub fn signing_key(secret: &str) -> Option<Vec<u8>> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `webhook-signature` header value: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(mac(key, id, timestamp, body)))
}

/// Checks the three headers against `body` with every key; returns the message id, which is the
/// event's id.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    keys: &[Vec<u8>],
    tolerance: Duration,
    now: i64,
) -> Result<String, VerifyError> {
    let text = |name: &str| -> Result<Option<&str>, VerifyError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str().map_err(|_| {
                    VerifyError::MalformedHeader("a webhook-* header is not visible ASCII")
                })
            })
            .transpose()
    };
    let signatures = text(SIGNATURE_HEADER)?.ok_or(VerifyError::MissingSignature)?;
    let id = text(ID_HEADER)?
        .filter(|id| !id.is_empty())
        .ok_or(VerifyError::MalformedHeader("webhook-id is missing"))?;
    let timestamp = text(TIMESTAMP_HEADER)?
        .ok_or(VerifyError::MalformedHeader("webhook-timestamp is missing"))?
        .parse::<i64>()
        .map_err(|_| VerifyError::MalformedHeader("webhook-timestamp is not a unix timestamp"))?;
    let candidates: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    if candidates.is_empty() && !signatures.contains("v1,") {
        return Err(VerifyError::MalformedHeader(
            "webhook-signature has no v1,<base64> signature",
        ));
    }
    let matched = keys.iter().any(|key| {
        let expected = mac(key, id, timestamp, body);
        candidates
            .iter()
            .fold(subtle::Choice::from(0), |acc, sig| {
                acc | expected.ct_eq(sig)
            })
            .into()
    });
    if !matched {
        return Err(VerifyError::InvalidSignature);
    }
    super::check_age(timestamp, tolerance, now)?;
    Ok(id.to_string())
}

/// `webhook-signature` with its signatures replaced, for storage and display.
pub fn redact(header: &str) -> String {
    header
        .split(' ')
        .map(|s| match s.split_once(',') {
            Some((version, _)) => format!("{version},[redacted]"),
            None => "[redacted]".to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// The test vector of the Standard Webhooks reference libraries
    /// (github.com/standard-webhooks/standard-webhooks, libraries/*/tests).
    #[test]
    fn signs_the_standard_webhooks_test_vector() {
        let key = signing_key(SECRET).unwrap();
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

    fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ID_HEADER, id.parse().unwrap());
        h.insert(TIMESTAMP_HEADER, ts.parse().unwrap());
        h.insert(SIGNATURE_HEADER, sig.parse().unwrap());
        h
    }

    #[test]
    fn verifies_the_test_vector_among_several_signatures_and_keys() {
        let key = signing_key(SECRET).unwrap();
        let other = signing_key("whsec_dGhpcyBpcyBhbm90aGVyIGtleSBvZiAzMiBieXRlcyE=").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let h = headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            "v1,bm90IGl0 v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        let tolerance = Duration::from_secs(300);
        let keys = vec![key];
        let id = verify(
            &h,
            body,
            &[other.clone(), keys[0].clone()],
            tolerance,
            1614265330,
        )
        .unwrap();
        assert_eq!(id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(
            verify(&h, body, &[other], tolerance, 1614265330),
            Err(VerifyError::InvalidSignature)
        );
        assert_eq!(
            verify(&h, br#"{"test": 2432232315}"#, &keys, tolerance, 1614265330),
            Err(VerifyError::InvalidSignature)
        );
        assert!(matches!(
            verify(&h, body, &keys, tolerance, 1614265330 + 301),
            Err(VerifyError::TimestampOutOfTolerance { .. })
        ));
        let mut missing = h.clone();
        missing.remove(SIGNATURE_HEADER);
        assert_eq!(
            verify(&missing, body, &keys, tolerance, 1614265330),
            Err(VerifyError::MissingSignature)
        );
        for bad in [
            headers("", "1614265330", "v1,x"),
            headers("msg_1", "yesterday", "v1,x"),
            headers("msg_1", "1614265330", "v2,abc"),
        ] {
            assert!(
                matches!(
                    verify(&bad, body, &keys, tolerance, 1614265330),
                    Err(VerifyError::MalformedHeader(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(redact("v1,abc v1,def"), "v1,[redacted] v1,[redacted]");
    }
}
