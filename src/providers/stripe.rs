//! Stripe's webhook signature scheme: `Stripe-Signature: t=<unix>,v1=<hex hmac>[,v1=...]`, where each
//! `v1` is HMAC-SHA256, keyed with the whole `whsec_...` secret, of `"{t}.{raw body}"`.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::VerifyError;
use crate::domain::Secret;

pub const SIGNATURE_HEADER: &str = "stripe-signature";

type HmacSha256 = Hmac<Sha256>;

/// The parsed `Stripe-Signature` header.
#[derive(Debug, PartialEq, Eq)]
struct SignatureHeader {
    timestamp: i64,
    v1: Vec<[u8; 32]>,
}

fn parse_header(header: &str) -> Result<SignatureHeader, VerifyError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    // docs.stripe.com/webhooks#verify-manually: split on `,`, then each element on `=`, and
    // "discard all other elements"; the SDKs skip an element without `=` as well.
    for (key, value) in header
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
    {
        match key {
            "t" => {
                let t = value
                    .parse::<i64>()
                    .map_err(|_| VerifyError::MalformedHeader("t is not a unix timestamp"))?;
                // Two timestamps read two ways (Stripe's SDKs disagree on which one counts).
                if timestamp.replace(t).is_some_and(|first| first != t) {
                    return Err(VerifyError::MalformedHeader("two different t= timestamps"));
                }
            }
            "v1" => {
                // A v1 value that is not 32 hex bytes can never match; it is not worth failing the
                // others for, exactly like the SDKs, which simply compare strings.
                let mut sig = [0u8; 32];
                if hex::decode_to_slice(value, &mut sig).is_ok() {
                    v1.push(sig);
                }
            }
            // v0 (test-mode legacy) and future schemes are ignored, as Stripe's SDKs do.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::MalformedHeader("no t= timestamp"))?;
    if v1.is_empty() && !header.contains("v1=") {
        return Err(VerifyError::MalformedHeader("no v1= signature"));
    }
    Ok(SignatureHeader { timestamp, v1 })
}

fn mac(secret: &Secret, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks `header` against `body` with every secret, then the timestamp against `now` (unix seconds).
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[Secret],
    tolerance: Duration,
    now: i64,
) -> Result<(), VerifyError> {
    let header = header.ok_or(VerifyError::MissingSignature)?;
    let parsed = parse_header(header)?;
    let matched = secrets.iter().any(|secret| {
        let expected = mac(secret, parsed.timestamp, body).finalize().into_bytes();
        // Fold over every candidate so the time taken does not say which one matched.
        parsed
            .v1
            .iter()
            .fold(subtle::Choice::from(0), |acc, sig| {
                acc | expected.ct_eq(sig)
            })
            .into()
    });
    if !matched {
        return Err(VerifyError::InvalidSignature);
    }
    super::check_age(parsed.timestamp, tolerance, now)
}

/// The `Stripe-Signature` header Stripe would send for `body` at `timestamp`.
pub fn sign(body: &[u8], secret: &Secret, timestamp: i64) -> String {
    let sig = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(sig))
}

/// The header with its signature values replaced, for storage and display.
pub fn redact(header: &str) -> String {
    header
        .split(',')
        .map(|part| match part.trim().split_once('=') {
            Some(("t", t)) => format!("t={t}"),
            Some((k, _)) => format!("{k}=[redacted]"),
            None => "[redacted]".to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Every Stripe event type the ledger acts on.
pub const STRIPE_TYPES: &[&str] = &[
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.canceled",
    "payment_intent.amount_capturable_updated",
    "checkout.session.completed",
    "checkout.session.expired",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "charge.captured",
    "charge.expired",
    "charge.refunded",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
];

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Duration = Duration::from_secs(300);

    fn secret(s: &str) -> Secret {
        Secret::new(s)
    }

    /// Produced by Stripe's own Python SDK (stripe 16.1.0):
    /// `stripe.WebhookSignature.generate_signature_header('{"id":"evt_1","type":"x"}', "whsec_test_secret", 1700000000)`.
    /// The oracle suite (tests/oracles) also checks headers built live by the Python and Node SDKs.
    const SDK_VECTOR_BODY: &[u8] = br#"{"id":"evt_1","type":"x"}"#;
    const SDK_VECTOR_HEADER: &str =
        "t=1700000000,v1=a34e97da3c9edb915597aaf737ee3e4eff58b6d6e5e83864aa97d0e43674e3a2";

    #[test]
    fn signs_exactly_like_the_stripe_sdk() {
        let s = secret("whsec_test_secret");
        assert_eq!(sign(SDK_VECTOR_BODY, &s, 1_700_000_000), SDK_VECTOR_HEADER);
        assert_eq!(
            verify(
                Some(SDK_VECTOR_HEADER),
                SDK_VECTOR_BODY,
                &[s],
                TOL,
                1_700_000_100
            ),
            Ok(())
        );
    }

    #[test]
    fn an_element_without_an_equals_sign_is_discarded_as_the_sdks_do() {
        let s = secret("whsec_test_secret");
        let (t, v1) = SDK_VECTOR_HEADER.split_once(',').unwrap();
        for header in [format!("{t},foo,{v1}"), format!("{t}, ,{v1},")] {
            assert_eq!(
                verify(
                    Some(&header),
                    SDK_VECTOR_BODY,
                    std::slice::from_ref(&s),
                    TOL,
                    1_700_000_100
                ),
                Ok(()),
                "{header}"
            );
        }
        assert_eq!(
            verify(Some("garbage"), SDK_VECTOR_BODY, &[s], TOL, 1_700_000_100),
            Err(VerifyError::MalformedHeader("no t= timestamp"))
        );
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let s = secret("whsec_test_secret");
        let header = sign(SDK_VECTOR_BODY, &s, 1_700_000_000);
        assert_eq!(
            verify(Some(&header), SDK_VECTOR_BODY, &[s], TOL, 1_700_000_010),
            Ok(())
        );
    }

    #[test]
    fn any_listed_secret_and_any_v1_matches() {
        let old = secret("whsec_old_secret");
        let new = secret("whsec_new_secret");
        let h_old = sign(b"{}", &old, 100);
        let h_new = sign(b"{}", &new, 100);
        let both = format!("{},{}", h_old, h_new.split_once(',').unwrap().1);
        assert_eq!(
            verify(Some(&h_old), b"{}", &[new.clone(), old.clone()], TOL, 100),
            Ok(())
        );
        assert_eq!(
            verify(Some(&both), b"{}", std::slice::from_ref(&new), TOL, 100),
            Ok(())
        );
        assert_eq!(
            verify(Some(&h_old), b"{}", &[new], TOL, 100),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn tampered_stale_future_and_malformed_are_refused() {
        let s = secret("whsec_test_secret");
        let header = sign(b"{\"a\":1}", &s, 1000);
        let secrets = [s];
        assert_eq!(
            verify(Some(&header), b"{\"a\":2}", &secrets, TOL, 1000),
            Err(VerifyError::InvalidSignature)
        );
        assert!(matches!(
            verify(Some(&header), b"{\"a\":1}", &secrets, TOL, 1301),
            Err(VerifyError::TimestampOutOfTolerance { .. })
        ));
        assert!(matches!(
            verify(Some(&header), b"{\"a\":1}", &secrets, TOL, 699),
            Err(VerifyError::TimestampOutOfTolerance { .. })
        ));
        assert_eq!(
            verify(Some(&header), b"{\"a\":1}", &secrets, TOL, 1300),
            Ok(())
        );
        assert_eq!(
            verify(None, b"", &secrets, TOL, 0),
            Err(VerifyError::MissingSignature)
        );
        for bad in [
            "",
            "garbage",
            "t=abc,v1=00",
            "v1=00",
            "t=1000",
            "t=1000,v0=abcd",
        ] {
            assert!(
                matches!(
                    verify(Some(bad), b"{}", &secrets, TOL, 1000),
                    Err(VerifyError::MalformedHeader(_))
                ),
                "{bad}"
            );
        }
        // A second, different timestamp before the signed one is not read either way.
        let signed = header.strip_prefix("t=1000,").unwrap();
        assert_eq!(
            verify(
                Some(&format!("t=5,t=1000,{signed}")),
                b"{\"a\":1}",
                &secrets,
                TOL,
                1000
            ),
            Err(VerifyError::MalformedHeader("two different t= timestamps"))
        );
        // A v1 that is present but not hex is an invalid signature, not a malformed header.
        assert_eq!(
            verify(Some("t=1000,v1=zz"), b"{}", &secrets, TOL, 1000),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn redaction_keeps_the_timestamp_only() {
        let header = sign(b"{}", &secret("whsec_test_secret"), 42);
        let redacted = redact(&header);
        assert_eq!(redacted, "t=42,v1=[redacted]");
    }
}
