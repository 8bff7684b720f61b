//! Signature headers that carry a timestamp and one or more signatures, each provider with its own
//! spelling: FedaPay's `X-FEDAPAY-SIGNATURE: t=..,s=..` over `t.body`, Wave's
//! `Wave-Signature: t=..,v1=..` over `t` followed by the body, Paddle's
//! `Paddle-Signature: ts=..;h1=..` over `ts:body`. All are HMAC-SHA256 in lowercase hex; several
//! signatures may come during a secret's rotation, and any one matching is enough.

use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{VerifyError, check_age};
use crate::domain::Secret;

/// How one provider writes its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Lowercase header name.
    pub header: &'static str,
    /// Between the `key=value` pairs.
    pub separator: char,
    /// The key of the unix timestamp.
    pub timestamp: &'static str,
    /// The key of a signature; pairs with other keys are ignored.
    pub signature: &'static str,
    /// Between the timestamp and the body in the signed bytes.
    pub joiner: &'static str,
}

impl Layout {
    fn digest(&self, secret: &Secret, timestamp: &str, body: &[u8]) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("any key length");
        mac.update(timestamp.as_bytes());
        mac.update(self.joiner.as_bytes());
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Checks the header against `body` with every secret, then the timestamp against `now`.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        secrets: &[Secret],
        tolerance: Duration,
        now: i64,
    ) -> Result<(), VerifyError> {
        let value = headers
            .get(self.header)
            .ok_or(VerifyError::MissingSignature)?
            .to_str()
            .map_err(|_| VerifyError::MalformedHeader("the header is not visible ASCII"))?;
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for pair in value.split(self.separator) {
            let Some((key, val)) = pair.trim().split_once('=') else {
                continue;
            };
            if key == self.timestamp {
                if timestamp.is_some() {
                    return Err(VerifyError::MalformedHeader("the timestamp is given twice"));
                }
                timestamp = Some(val);
            } else if key == self.signature {
                signatures.push(val);
            }
        }
        let timestamp = timestamp.ok_or(VerifyError::MalformedHeader("no timestamp"))?;
        let at: i64 = timestamp
            .parse()
            .map_err(|_| VerifyError::MalformedHeader("the timestamp is not a number"))?;
        if signatures.is_empty() {
            return Err(VerifyError::MalformedHeader(
                "no signature with the provider's scheme",
            ));
        }
        let presented: Vec<Vec<u8>> = signatures
            .iter()
            .filter_map(|s| hex::decode(s.to_ascii_lowercase()).ok())
            .collect();
        let mut matched = subtle::Choice::from(0);
        for secret in secrets {
            let expected = self.digest(secret, timestamp, body);
            for p in &presented {
                matched |= expected.as_slice().ct_eq(p);
            }
        }
        if !bool::from(matched) {
            return Err(VerifyError::InvalidSignature);
        }
        check_age(at, tolerance, now)
    }

    /// The header the provider would send with `body` at `now`.
    pub fn sign(&self, secret: &Secret, body: &[u8], now: i64) -> (String, String) {
        let timestamp = now.to_string();
        let signature = hex::encode(self.digest(secret, &timestamp, body));
        (
            self.header.to_string(),
            format!(
                "{}={timestamp}{}{}={signature}",
                self.timestamp, self.separator, self.signature
            ),
        )
    }
}

/// docs.fedapay.com/development/webhooks and the official `fedapay` npm SDK
/// (`WebhookSignature.computeSignature`): HMAC-SHA256 of `t.body`, scheme letter `s`.
pub const FEDAPAY: Layout = Layout {
    header: "x-fedapay-signature",
    separator: ',',
    timestamp: "t",
    signature: "s",
    joiner: ".",
};

/// docs.wave.com/webhook, signing-secret strategy: HMAC-SHA256 of the timestamp immediately
/// followed by the body, no separator.
pub const WAVE: Layout = Layout {
    header: "wave-signature",
    separator: ',',
    timestamp: "t",
    signature: "v1",
    joiner: "",
};

/// developer.paddle.com/webhooks/signature-verification: HMAC-SHA256 of `ts:body`, `;` between
/// the pairs, one `h1` per active secret during a rotation.
pub const PADDLE: Layout = Layout {
    header: "paddle-signature",
    separator: ';',
    timestamp: "ts",
    signature: "h1",
    joiner: ":",
};

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(layout: &Layout, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(layout.header, value.parse().unwrap());
        h
    }

    /// The vector the official `fedapay` npm SDK signs (`Webhook.generateTestHeaderString`).
    #[test]
    fn fedapay_sdk_vector() {
        let secret = Secret::new("wh_sandbox_test_secret");
        let body = br#"{"name":"transaction.approved","entity":{"id":250828,"amount":9113,"status":"approved","custom_metadata":{"booking_id":"bk_42"},"currency":{"iso":"XOF"}}}"#;
        let header =
            "t=1700000000,s=3e9386d6298bc722d7842a2f726710f4bff0f64674eac07ef6c38e76f6621784";
        assert_eq!(FEDAPAY.sign(&secret, body, 1_700_000_000).1, header);
        let tol = Duration::from_secs(300);
        let ok = |h: &str, now| {
            FEDAPAY.verify(
                &headers(&FEDAPAY, h),
                body,
                std::slice::from_ref(&secret),
                tol,
                now,
            )
        };
        assert_eq!(ok(header, 1_700_000_100), Ok(()));
        assert!(matches!(
            ok(header, 1_700_000_301),
            Err(VerifyError::TimestampOutOfTolerance { .. })
        ));
        assert_eq!(
            ok(&header.replace("s=3e", "s=4e"), 1_700_000_000),
            Err(VerifyError::InvalidSignature)
        );
        // Only `s` is FedaPay's scheme letter.
        assert!(matches!(
            ok(&header.replace("s=", "v1="), 1_700_000_000),
            Err(VerifyError::MalformedHeader(_))
        ));
    }

    /// Wave signs the timestamp and the body with nothing between; any `v1` may match.
    #[test]
    fn wave_vector_and_rotation() {
        let secret =
            Secret::new("wave_sn_WHS_xz4m6g8rjs9bruwrgbtn0vk7cvgan9dnq1djgca7tq8wwa70ncqg");
        let body = br#"{"id":"AE_ijzo7oGgrlM4","type":"checkout.session.completed","data":{"id":"cos-18qq25rgr100a","amount":"1000","checkout_status":"complete","client_reference":"bk_42","currency":"XOF","payment_status":"succeeded","transaction_id":"TCN7JE5BQO7JA","when_completed":"2021-12-08T10:15:32Z"}}"#;
        let sig = "25882057cb31200ccc085de7b73c8f2e4ac2f41097ea5413a2dd333aa755fd61";
        let now = 1_639_081_943;
        let tol = Duration::from_secs(300);
        let check = |h: String| {
            WAVE.verify(
                &headers(&WAVE, &h),
                body,
                std::slice::from_ref(&secret),
                tol,
                now,
            )
        };
        assert_eq!(check(format!("t={now},v1={sig}")), Ok(()));
        assert_eq!(
            check(format!("t={now},v1={},v1={sig}", "0".repeat(64))),
            Ok(())
        );
        assert_eq!(
            check(format!("t={now},v1={}", "0".repeat(64))),
            Err(VerifyError::InvalidSignature)
        );
    }

    /// Paddle's pairs are `;`-separated and the signed bytes are `ts:body`.
    #[test]
    fn paddle_signs_ts_colon_body() {
        let secret = Secret::new("pdl_ntfset_01hs0t3tv9fdkg4y1ps8dh7ymn_abc");
        let body = br#"{"event_id":"evt_1"}"#;
        let (name, value) = PADDLE.sign(&secret, body, 1_700_000_000);
        assert_eq!(name, "paddle-signature");
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).unwrap();
        mac.update(b"1700000000:");
        mac.update(body);
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(value, format!("ts=1700000000;h1={expected}"));
        let tol = Duration::from_secs(5);
        let h = headers(&PADDLE, &value);
        assert_eq!(
            PADDLE.verify(&h, body, std::slice::from_ref(&secret), tol, 1_700_000_004),
            Ok(())
        );
        assert!(
            PADDLE
                .verify(&h, body, &[secret], tol, 1_700_000_006)
                .is_err()
        );
    }
}
