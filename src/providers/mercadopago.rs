//! Mercado Pago's webhook signature: `x-signature: ts=<ts>,v1=<hex>`, HMAC-SHA256 with the
//! application's secret signature of the manifest `id:<data.id>;request-id:<x-request-id>;ts:<ts>;`,
//! where `data.id` comes from the notification URL's query (`?data.id=...&type=payment`), not the
//! body, and a pair whose value is absent is left out
//! (mercadopago.com/developers/en/docs/your-integrations/notifications/webhooks; the official
//! PyPI `mercadopago` SDK, `mercadopago.webhook.WebhookSignatureValidator`). The body itself is
//! not signed: the preset confirms each notification with the payments API, and a body naming
//! another payment than the signed `data.id` is refused.
//!
//! `ts` is in seconds, or milliseconds when it has 13 digits (the SDK's own test vector). The
//! official SDKs stopped lowercasing `data.id` in 2026; payhook accepts the manifest with `data.id`
//! as received, or lowercased.

use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{VerifyError, check_age};
use crate::domain::Secret;

pub const SIGNATURE_HEADER: &str = "x-signature";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The signed manifest; pairs whose value is absent or blank are left out, as the SDK does.
pub fn manifest(data_id: Option<&str>, request_id: Option<&str>, ts: &str) -> String {
    let mut out = String::new();
    for (name, value) in [
        ("id", data_id),
        ("request-id", request_id),
        ("ts", Some(ts)),
    ] {
        if let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) {
            out.push_str(&format!("{name}:{v};"));
        }
    }
    out
}

fn digest(secret: &Secret, manifest: &str) -> [u8; 32] {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("any key length");
    mac.update(manifest.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The `data.id` of a notification URL's query.
pub fn data_id(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "data.id")
        .map(|(_, v)| v.into_owned())
}

/// Checks `x-signature` over the manifest of `query`'s `data.id` and `x-request-id` with every
/// secret, then its timestamp against `now` (unix seconds).
pub fn verify(
    headers: &HeaderMap,
    query: Option<&str>,
    secrets: &[Secret],
    tolerance: Duration,
    now: i64,
) -> Result<(), VerifyError> {
    let value = headers
        .get(SIGNATURE_HEADER)
        .ok_or(VerifyError::MissingSignature)?
        .to_str()
        .map_err(|_| VerifyError::MalformedHeader("the header is not visible ASCII"))?;
    let (mut ts, mut signatures) = (None, Vec::new());
    for pair in value.split(',') {
        let Some((key, val)) = pair.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "ts" if ts.is_some() => {
                return Err(VerifyError::MalformedHeader("the timestamp is given twice"));
            }
            "ts" => ts = Some(val.trim()),
            "v1" => signatures.push(val.trim()),
            _ => {}
        }
    }
    let ts = ts.ok_or(VerifyError::MalformedHeader("no ts"))?;
    let at: i64 = ts
        .parse()
        .map_err(|_| VerifyError::MalformedHeader("the timestamp is not a number"))?;
    if signatures.is_empty() {
        return Err(VerifyError::MalformedHeader("no v1 signature"));
    }
    let request_id = match headers.get(REQUEST_ID_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| VerifyError::MalformedHeader("x-request-id is not visible ASCII"))?,
        ),
    };
    let id = data_id(query);
    let mut manifests = vec![manifest(id.as_deref(), request_id, ts)];
    if let Some(lower) = id
        .as_ref()
        .map(|i| i.to_ascii_lowercase())
        .filter(|l| Some(l) != id.as_ref())
    {
        manifests.push(manifest(Some(&lower), request_id, ts));
    }
    let presented: Vec<Vec<u8>> = signatures
        .iter()
        .filter_map(|s| hex::decode(s.to_ascii_lowercase()).ok())
        .collect();
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        for m in &manifests {
            let expected = digest(secret, m);
            for p in &presented {
                matched |= expected.as_slice().ct_eq(p);
            }
        }
    }
    if !bool::from(matched) {
        return Err(VerifyError::InvalidSignature);
    }
    // A 13-digit timestamp is in milliseconds.
    let seconds = if at > 10_000_000_000 { at / 1000 } else { at };
    check_age(seconds, tolerance, now)
}

/// The headers Mercado Pago would send for a notification about `data_id` at `now`.
pub fn sign(secret: &Secret, data_id: Option<&str>, now: i64) -> Vec<(String, String)> {
    let request_id = crate::domain::ids::random_token(32).to_ascii_lowercase();
    let request_id = format!(
        "{}-{}-{}-{}-{}",
        &request_id[..8],
        &request_id[8..12],
        &request_id[12..16],
        &request_id[16..20],
        &request_id[20..]
    );
    let ts = now.to_string();
    let v1 = hex::encode(digest(secret, &manifest(data_id, Some(&request_id), &ts)));
    vec![
        (SIGNATURE_HEADER.into(), format!("ts={ts},v1={v1}")),
        (REQUEST_ID_HEADER.into(), request_id),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(signature: &str, request_id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        h.insert(
            REQUEST_ID_HEADER,
            HeaderValue::from_str(request_id).unwrap(),
        );
        h
    }

    /// The constants of the official SDK's tests (`mercadopago/sdk-python`,
    /// `tests/test_webhook_signature_validator.py`), the hash accepted by its
    /// `WebhookSignatureValidator.validate` (mercadopago 3.6.0).
    #[test]
    fn sdk_vector() {
        let secret = [Secret::new("your_secret_key_here")];
        let request_id = "2066ca19-c6f1-498a-be75-1923005edd06";
        let signature =
            "ts=1742505638683,v1=633f91233312dd391ec75fa0bea539cfc2d6c4918873305b84a96cc1c58db71c";
        let h = headers(signature, request_id);
        let query = Some("data.id=ord01jq4s4ky8hwq6na5pxb65b3d3&type=order");
        let at = 1_742_505_638;
        assert_eq!(
            verify(&h, query, &secret, Duration::from_secs(300), at),
            Ok(())
        );
        // The same id written in capitals by the notification URL: the lowercase manifest holds.
        let upper = Some("data.id=ORD01JQ4S4KY8HWQ6NA5PXB65B3D3&type=order");
        assert_eq!(
            verify(&h, upper, &secret, Duration::from_secs(300), at),
            Ok(())
        );
        for (h, query, now, err) in [
            (
                h.clone(),
                Some("data.id=ord01jq4s4ky8hwq6na5pxb65b3d4"),
                at,
                VerifyError::InvalidSignature,
            ),
            (
                headers(signature, "other"),
                query,
                at,
                VerifyError::InvalidSignature,
            ),
            (
                h.clone(),
                query,
                at + 301,
                VerifyError::TimestampOutOfTolerance {
                    age_secs: 301,
                    tolerance_secs: 300,
                },
            ),
            (HeaderMap::new(), query, at, VerifyError::MissingSignature),
            (
                headers("v1=00", request_id),
                query,
                at,
                VerifyError::MalformedHeader("no ts"),
            ),
            (
                headers("ts=1", request_id),
                query,
                at,
                VerifyError::MalformedHeader("no v1 signature"),
            ),
        ] {
            assert_eq!(
                verify(&h, query, &secret, Duration::from_secs(300), now),
                Err(err)
            );
        }
        assert_eq!(
            verify(
                &h,
                query,
                &[Secret::new("other")],
                Duration::from_secs(300),
                at
            ),
            Err(VerifyError::InvalidSignature)
        );
    }

    #[test]
    fn absent_pairs_are_left_out_and_signing_round_trips() {
        assert_eq!(manifest(None, Some(" "), "1"), "ts:1;");
        assert_eq!(manifest(Some("42"), None, "1"), "id:42;ts:1;");
        let secret = Secret::new("mp_secret");
        let signed: HeaderMap = sign(&secret, Some("123456789"), 1_000)
            .into_iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect();
        let query = Some("data.id=123456789&type=payment");
        assert_eq!(
            verify(&signed, query, &[secret], Duration::from_secs(300), 1_000),
            Ok(())
        );
    }
}
