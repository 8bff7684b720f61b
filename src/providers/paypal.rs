//! PayPal's transmission headers. PayPal signs each notification with RSA (`PAYPAL-TRANSMISSION-SIG`
//! over `<transmission id>|<transmission time>|<webhook id>|<CRC-32 of the body>`, checked with
//! the certificate at `PAYPAL-CERT-URL`); payhook has PayPal's own API check it
//! (`POST /v1/notifications/verify-webhook-signature`, see `presets::paypal`), so at ingest it only
//! refuses a request that cannot be one of PayPal's: a header missing or malformed, or a
//! certificate URL on a host that is not PayPal's API. The headers are public (a signature, not a
//! secret) and are kept as they came, for the API to be asked with.
//!
//! Sources: https://developer.paypal.com/api/rest/webhooks/rest (the headers and the signed
//! message); https://developer.paypal.com/api/webhooks/v1/ (verify-webhook-signature).

use axum::http::HeaderMap;
use base64::Engine;

use super::VerifyError;

pub const TRANSMISSION_ID: &str = "paypal-transmission-id";
pub const TRANSMISSION_TIME: &str = "paypal-transmission-time";
pub const TRANSMISSION_SIG: &str = "paypal-transmission-sig";
pub const CERT_URL: &str = "paypal-cert-url";
pub const AUTH_ALGO: &str = "paypal-auth-algo";

/// The hosts PayPal serves its message-verification certificates from (live and sandbox).
const CERT_HOSTS: &[&str] = &[
    "api.paypal.com",
    "api-m.paypal.com",
    "api.sandbox.paypal.com",
    "api-m.sandbox.paypal.com",
];
const CERT_PATH: &str = "/v1/notifications/certs/";

/// Checks that the request carries PayPal's transmission headers, well formed, and a certificate
/// URL on PayPal's own hosts.
pub fn verify(headers: &HeaderMap) -> Result<(), VerifyError> {
    let text = |name: &str| -> Result<Option<&str>, VerifyError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 2048)
                .map(Some)
                .ok_or(VerifyError::MalformedHeader(
                    "a PAYPAL-* header is empty, too long or not visible ASCII",
                )),
        }
    };
    let Some(signature) = text(TRANSMISSION_SIG)? else {
        return Err(VerifyError::MissingSignature);
    };
    for name in [TRANSMISSION_ID, TRANSMISSION_TIME, CERT_URL, AUTH_ALGO] {
        if text(name)?.is_none() {
            return Err(VerifyError::MalformedHeader(
                "PAYPAL-TRANSMISSION-SIG comes with PAYPAL-TRANSMISSION-ID, PAYPAL-TRANSMISSION-TIME, PAYPAL-CERT-URL and PAYPAL-AUTH-ALGO",
            ));
        }
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .map_err(|_| VerifyError::MalformedHeader("PAYPAL-TRANSMISSION-SIG is not base64"))?;
    if decoded.len() < 64 {
        return Err(VerifyError::MalformedHeader(
            "PAYPAL-TRANSMISSION-SIG is too short for an RSA signature",
        ));
    }
    let time = text(TRANSMISSION_TIME)?.unwrap_or_default();
    if chrono::DateTime::parse_from_rfc3339(time).is_err() {
        return Err(VerifyError::MalformedHeader(
            "PAYPAL-TRANSMISSION-TIME is not an RFC 3339 time",
        ));
    }
    if !cert_url_is_paypals(text(CERT_URL)?.unwrap_or_default()) {
        return Err(VerifyError::MalformedHeader(
            "PAYPAL-CERT-URL is not on PayPal's API hosts",
        ));
    }
    Ok(())
}

/// `https://` on one of PayPal's API hosts (port 443), under `/v1/notifications/certs/`, with
/// nothing else (no user, no query) that could lead elsewhere.
pub fn cert_url_is_paypals(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    parsed.scheme() == "https"
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.port().is_none()
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && parsed.host_str().is_some_and(|h| CERT_HOSTS.contains(&h))
        && parsed
            .path()
            .strip_prefix(CERT_PATH)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// The headers PayPal's sandbox would send at `now` (unix seconds). The signature is not
/// PayPal's (only PayPal's key makes one): what `payhook trigger` sends, for a stand-in API.
pub fn sign(now: i64) -> Vec<(String, String)> {
    let id = crate::domain::ids::new_id("tr");
    let time = chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let signature =
        base64::engine::general_purpose::STANDARD.encode(sha2_repeat(id.as_bytes(), 256));
    vec![
        (TRANSMISSION_ID.into(), id),
        (TRANSMISSION_TIME.into(), time),
        (TRANSMISSION_SIG.into(), signature),
        (
            CERT_URL.into(),
            "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77"
                .into(),
        ),
        (AUTH_ALGO.into(), "SHA256withRSA".into()),
    ]
}

/// `len` bytes derived from `seed` (a stand-in signature of an RSA-2048 signature's size).
fn sha2_repeat(seed: &[u8], len: usize) -> Vec<u8> {
    use sha2::Digest;
    let mut out = Vec::with_capacity(len);
    let mut block = sha2::Sha256::digest(seed);
    while out.len() < len {
        out.extend_from_slice(&block);
        block = sha2::Sha256::digest(block);
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(String, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    /// The headers of PayPal's real sandbox notification pinned in the research notes (from
    /// paypal/PayPal-Python-SDK test/unit_tests/notifications_test.py).
    fn sandbox() -> Vec<(String, String)> {
        [
            (TRANSMISSION_ID, "dfb3be50-fd74-11e4-8bf3-77339302725b"),
            (TRANSMISSION_TIME, "2015-05-18T15:45:13Z"),
            (
                TRANSMISSION_SIG,
                "thy4/U002quzxFavHPwbfJGcc46E8rc5jzgyeafWm5mICTBdY/8rl7WJpn8JA0GKA+oDTPsSruqusw+XXg5RLAP7ip53Euh9Xu3UbUhQFX7UgwzE2FeYoY6lyRMiiiQLzy9BvHfIzNIVhPad4KnC339dr6y2l+mN8ALgI4GCdIh3/SoJO5wE64Bh/ueWtt8EVuvsvXfda2Le5a2TrOI9vLEzsm9GS79hAR/5oLexNz8UiZr045Mr5ObroH4w4oNfmkTaDk9Rj0G19uvISs5QzgmBpauKr7Nw++JI0pr/v5mFctQkoWJSGfBGzPRXawrvIIVHQ9Wer48GR2g9ZiApWg==",
            ),
            (
                CERT_URL,
                "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77",
            ),
            (AUTH_ALGO, "SHA256withRSA"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn paypals_own_headers_pass_and_what_payhook_sends_looks_the_same() {
        assert_eq!(verify(&headers(&sandbox())), Ok(()));
        assert_eq!(verify(&headers(&sign(1_700_000_000))), Ok(()));
    }

    #[test]
    fn missing_or_malformed_headers_and_foreign_certificates_are_refused() {
        assert_eq!(
            verify(&HeaderMap::new()),
            Err(VerifyError::MissingSignature)
        );
        let with = |name: &str, value: Option<&str>| {
            let mut h = sandbox();
            h.retain(|(k, _)| k != name);
            if let Some(v) = value {
                h.push((name.to_string(), v.to_string()));
            }
            verify(&headers(&h))
        };
        assert_eq!(
            with(TRANSMISSION_SIG, None),
            Err(VerifyError::MissingSignature)
        );
        for (name, value) in [
            (TRANSMISSION_ID, None),
            (CERT_URL, None),
            (AUTH_ALGO, None),
            (TRANSMISSION_TIME, Some("yesterday")),
            (TRANSMISSION_SIG, Some("not base64!")),
            (TRANSMISSION_SIG, Some("c2hvcnQ=")),
            (
                CERT_URL,
                Some("https://api.paypal.com.evil.io/v1/notifications/certs/X"),
            ),
            (
                CERT_URL,
                Some("http://api.paypal.com/v1/notifications/certs/X"),
            ),
            (CERT_URL, Some("https://evil.io/?x=api.paypal.com")),
            (
                CERT_URL,
                Some("https://api.paypal.com:8443/v1/notifications/certs/X"),
            ),
            (
                CERT_URL,
                Some("https://user@api.paypal.com/v1/notifications/certs/X"),
            ),
            (CERT_URL, Some("https://api.paypal.com/v1/other/X")),
            (
                CERT_URL,
                Some("https://api.paypal.com/v1/notifications/certs/../../x"),
            ),
            (
                CERT_URL,
                Some("https://api.paypal.com/v1/notifications/certs/X?y=1"),
            ),
        ] {
            assert!(
                matches!(with(name, value), Err(VerifyError::MalformedHeader(_))),
                "{name} {value:?}"
            );
        }
        for host in CERT_HOSTS {
            assert!(cert_url_is_paypals(&format!(
                "https://{host}/v1/notifications/certs/CERT-1"
            )));
        }
    }
}
