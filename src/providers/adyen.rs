//! Adyen's standard webhooks: no signature header; each item of the batch carries its own HMAC
//! in `additionalData.hmacSignature`, base64 HMAC-SHA256 over eight of its values joined with `:`
//! (`pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success`),
//! keyed with the hex-decoded HMAC key of the Customer Area
//! (docs.adyen.com/development-resources/webhooks/secure-webhooks/verify-hmac-signatures; the
//! official `Adyen` PyPI SDK's `Adyen.util.generate_notification_sig`, the Node library's
//! `HmacValidator`). Every item must match: the SDK's whole-body helper looks only at the first.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::VerifyError;

/// Where the request keeps its items.
pub const ITEMS: &str = "notificationItems";
/// The key of the object inside each item.
pub const ITEM: &str = "NotificationRequestItem";

/// An HMAC key as the Customer Area shows it (64 hex characters), decoded; `None` if it is not hex.
pub fn key(secret: &str) -> Option<Vec<u8>> {
    hex::decode(secret.trim()).ok().filter(|k| !k.is_empty())
}

/// The text Adyen signs for one `NotificationRequestItem`: each value as sent (numbers written out,
/// a missing one empty), nothing escaped.
fn signing_string(item: &Value) -> Result<String, VerifyError> {
    let text = |v: Option<&Value>| -> Result<String, VerifyError> {
        Ok(match v {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(_) => {
                return Err(VerifyError::MalformedPayload(
                    "a signed field of an item is not a scalar".into(),
                ));
            }
        })
    };
    let amount = item.get("amount");
    let parts = [
        text(item.get("pspReference"))?,
        text(item.get("originalReference"))?,
        text(item.get("merchantAccountCode"))?,
        text(item.get("merchantReference"))?,
        text(amount.and_then(|a| a.get("value")))?,
        text(amount.and_then(|a| a.get("currency")))?,
        text(item.get("eventCode"))?,
        text(item.get("success"))?,
    ];
    Ok(parts.join(":"))
}

fn digest(key: &[u8], item: &Value) -> Result<[u8; 32], VerifyError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(signing_string(item)?.as_bytes());
    Ok(mac.finalize().into_bytes().into())
}

/// The `NotificationRequestItem` objects of a request body.
fn items_mut(body: &mut Value) -> Result<Vec<&mut serde_json::Map<String, Value>>, VerifyError> {
    let items = body
        .get_mut(ITEMS)
        .and_then(Value::as_array_mut)
        .ok_or_else(|| VerifyError::MalformedPayload(format!("no {ITEMS:?} list")))?;
    if items.is_empty() {
        return Err(VerifyError::MalformedPayload(format!("{ITEMS:?} is empty")));
    }
    items
        .iter_mut()
        .map(|i| {
            i.get_mut(ITEM)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| VerifyError::MalformedPayload(format!("an item has no {ITEM:?}")))
        })
        .collect()
}

fn parse(body: &[u8]) -> Result<Value, VerifyError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| VerifyError::MalformedPayload(format!("not UTF-8 ({e})")))?;
    serde_json::from_str(text)
        .map_err(|e| VerifyError::MalformedPayload(format!("invalid JSON ({e})")))
}

/// Checks every item's `hmacSignature` against any of `keys`: one item unsigned or wrong refuses
/// the whole request, so nothing of it is stored.
pub fn verify(body: &[u8], keys: &[Vec<u8>]) -> Result<(), VerifyError> {
    let mut body = parse(body)?;
    for item in items_mut(&mut body)? {
        let presented = item
            .get("additionalData")
            .and_then(|a| a.get("hmacSignature"))
            .ok_or(VerifyError::MissingSignature)?
            .as_str()
            .and_then(|s| STANDARD.decode(s.trim()).ok())
            .ok_or(VerifyError::MalformedHeader(
                "an item's hmacSignature is not base64",
            ))?;
        let item = Value::Object(std::mem::take(item));
        let mut matched = subtle::Choice::from(0);
        for key in keys {
            matched |= digest(key, &item)?.as_slice().ct_eq(&presented);
        }
        if !bool::from(matched) {
            return Err(VerifyError::InvalidSignature);
        }
    }
    Ok(())
}

/// The body with every item signed with `key`, as Adyen sends it; `None` if it is not a batch of
/// items.
pub fn sign(key: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let mut body = parse(body).ok()?;
    for item in items_mut(&mut body).ok()? {
        let signature = STANDARD.encode(digest(key, &Value::Object(item.clone())).ok()?);
        let extra = item
            .entry("additionalData")
            .or_insert_with(|| Value::Object(Default::default()));
        extra
            .as_object_mut()?
            .insert("hmacSignature".into(), Value::String(signature));
    }
    serde_json::to_vec(&body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The key of the official SDK's `test/UtilTest.py::test_notification_request_item_hmac`.
    const SDK_KEY: &str = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";

    fn batch(items: &[Value]) -> Vec<u8> {
        let items: Vec<Value> = items.iter().map(|i| json!({ ITEM: i })).collect();
        serde_json::to_vec(&json!({"live": "false", ITEMS: items})).unwrap()
    }

    #[test]
    fn sdk_vector() {
        let item = json!({"pspReference": "7914073381342284",
            "merchantReference": "TestPayment-1407325143704", "merchantAccountCode": "TestMerchant",
            "amount": {"currency": "EUR", "value": 1130}, "eventCode": "AUTHORISATION",
            "success": "true"});
        let key = key(SDK_KEY).unwrap();
        assert_eq!(
            STANDARD.encode(digest(&key, &item).unwrap()),
            "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="
        );
    }

    /// The refund item the SDK signed in the research notes (with an `originalReference`).
    #[test]
    fn sdk_signed_refund_item_and_the_whole_batch_is_checked() {
        let key = key(SDK_KEY).unwrap();
        let auth = json!({"pspReference": "QFQTPCQ8HXSKGK82", "merchantReference": "bk_42",
            "merchantAccountCode": "HotelCo", "amount": {"currency": "EUR", "value": 11900},
            "eventCode": "AUTHORISATION", "success": "true",
            "additionalData": {"hmacSignature": "fgDIwa+Gr9X2hl7tquo2krGfAX8sb8NzoVtIyrudwc8="}});
        let refund = json!({"pspReference": "ZC4R4RBFJGXXGN82",
            "originalReference": "QFQTPCQ8HXSKGK82", "merchantReference": "bk_42",
            "merchantAccountCode": "HotelCo", "amount": {"currency": "EUR", "value": 5000},
            "eventCode": "REFUND", "success": "true",
            "additionalData": {"hmacSignature": "OYxd1VZO5+IT9NVYZnZVFJYu4KtgUDMTDlDAQf2GCQ0="}});
        let keys = [key.clone()];
        assert_eq!(
            verify(&batch(&[auth.clone(), refund.clone()]), &keys),
            Ok(())
        );
        // The second item tampered: refused, though the first is fine.
        let mut bad = refund.clone();
        bad["amount"]["value"] = json!(999_999);
        assert_eq!(
            verify(&batch(&[auth.clone(), bad]), &keys),
            Err(VerifyError::InvalidSignature)
        );
        // Another key in the list, for a rotation.
        let other = hex::decode("00".repeat(32)).unwrap();
        assert_eq!(
            verify(&batch(std::slice::from_ref(&auth)), &[other.clone(), key]),
            Ok(())
        );
        assert_eq!(
            verify(&batch(std::slice::from_ref(&auth)), &[other]),
            Err(VerifyError::InvalidSignature)
        );
        let mut unsigned = auth.clone();
        unsigned["additionalData"] = json!({});
        assert_eq!(
            verify(&batch(&[auth, unsigned]), &keys),
            Err(VerifyError::MissingSignature)
        );
    }

    /// A `:` in a value is not escaped (the SDK's `colon_notification.json`), and what `sign`
    /// writes verifies.
    #[test]
    fn signs_what_it_verifies() {
        let key = key(SDK_KEY).unwrap();
        let item = json!({"pspReference": "P1", "merchantReference": ":slashes are fun",
            "merchantAccountCode": "M", "amount": {"currency": "EUR", "value": 1},
            "eventCode": "AUTHORISATION", "success": "false"});
        assert_eq!(
            signing_string(&item).unwrap(),
            "P1::M::slashes are fun:1:EUR:AUTHORISATION:false"
        );
        let signed = sign(&key, &batch(&[item.clone(), item])).unwrap();
        assert_eq!(verify(&signed, std::slice::from_ref(&key)), Ok(()));
    }

    #[test]
    fn hostile_bodies_are_malformed_not_panics() {
        let keys = [key(SDK_KEY).unwrap()];
        for body in [
            &b"not json"[..],
            b"[]",
            b"{}",
            b"{\"notificationItems\":[]}",
            b"{\"notificationItems\":{}}",
            b"{\"notificationItems\":[1]}",
            b"{\"notificationItems\":[{\"NotificationRequestItem\":[]}]}",
            b"{\"notificationItems\":[{\"NotificationRequestItem\":{\"pspReference\":{},\"additionalData\":{\"hmacSignature\":\"AA==\"}}}]}",
            b"\xff",
        ] {
            assert!(
                matches!(verify(body, &keys), Err(VerifyError::MalformedPayload(_))),
                "{body:?}"
            );
        }
        let bad_b64 = batch(&[json!({"additionalData": {"hmacSignature": "%%%"}})]);
        assert!(matches!(
            verify(&bad_b64, &keys),
            Err(VerifyError::MalformedHeader(_))
        ));
        assert_eq!(key("not hex"), None);
        assert_eq!(key(""), None);
    }
}
