//! Braintree's webhooks: a form with `bt_signature` and `bt_payload`, the payload a base64 XML
//! `<notification>` (its `kind`, `timestamp` and `subject`).
//!
//! - `bt_signature` is `public_key|hex` pairs joined by `&`; the pair of a configured public key
//!   must hold the hex HMAC-SHA1 of the `bt_payload` text (form-decoded, its newlines kept),
//!   keyed with the raw SHA-1 digest of that key's private key. As the SDK, a payload with one
//!   more trailing newline passes too, and a payload that is not base64 text is refused.
//! - The XML is read as a JSON object for the source's mapping: an element of text is a string
//!   (`nil="true"` is null), an element of elements an object, `type="array"` a list, and an
//!   element met twice a list of its values; attributes are otherwise dropped.
//!
//! Sources: https://developer.paypal.com/braintree/docs/guides/webhooks/parse; the official
//! Python SDK `braintree` 4.48.0 (`webhook_notification_gateway.py` `__validate_signature`,
//! `util/crypto.py` `sha1_hmac_hash`, `webhook_testing_gateway.py`).

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use super::VerifyError;
use crate::domain::Secret;

/// A Braintree API key pair: the public key names it in `bt_signature`, the private key signs.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub public_key: String,
    pub private_key: Secret,
}

/// Reads `public_key:private_key` secrets (several during a key rotation).
pub fn key_pairs(secrets: &[Secret]) -> Result<Vec<KeyPair>, String> {
    secrets
        .iter()
        .map(|s| {
            let (public, private) = s
                .expose()
                .split_once(':')
                .filter(|(p, k)| {
                    !p.trim().is_empty()
                        && !k.trim().is_empty()
                        && !p.contains(['|', '&'])
                        && p.is_ascii()
                        && k.is_ascii()
                })
                .ok_or("expected \"<public_key>:<private_key>\", the API key pair of the Braintree gateway that signs (Settings > API in the Control Panel)")?;
            Ok(KeyPair {
                public_key: public.trim().to_string(),
                private_key: Secret::new(private.trim().to_string()),
            })
        })
        .collect()
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// HMAC-SHA1 of `payload` keyed with SHA-1 of `private_key`, hex.
fn signature(private_key: &str, payload: &[u8]) -> String {
    let key = Sha1::digest(private_key.as_bytes());
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).expect("HMAC takes any key");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

fn is_base64_text(payload: &str) -> bool {
    !payload.is_empty()
        && payload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'=' | b'/' | b'\n'))
}

/// Checks `bt_signature` against `bt_payload` with the configured key pairs.
pub fn verify(body: &[u8], keys: &[KeyPair]) -> Result<(), VerifyError> {
    let Some(signatures) = form_field(body, "bt_signature").filter(|s| !s.is_empty()) else {
        return Err(VerifyError::MissingSignature);
    };
    let payload = form_field(body, "bt_payload")
        .ok_or_else(|| VerifyError::MalformedPayload("the form has no bt_payload".into()))?;
    let mut pairs = Vec::new();
    for pair in signatures.split('&') {
        let (public, hex) = pair
            .split_once('|')
            .filter(|(p, h)| !p.is_empty() && !h.is_empty())
            .ok_or(VerifyError::MalformedHeader(
                "bt_signature is not public_key|signature pairs joined by &",
            ))?;
        pairs.push((public, hex));
    }
    if !is_base64_text(&payload) {
        return Err(VerifyError::MalformedPayload(
            "bt_payload holds characters base64 text does not".into(),
        ));
    }
    let with_newline = format!("{payload}\n");
    let mut matched = subtle::Choice::from(0);
    for key in keys {
        for (_, presented) in pairs.iter().filter(|(p, _)| *p == key.public_key) {
            for signed in [payload.as_bytes(), with_newline.as_bytes()] {
                let expected = signature(key.private_key.expose(), signed);
                matched |= subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), presented.as_bytes());
            }
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::InvalidSignature)
    }
}

/// The form Braintree would post for the (unsigned) form `body`, signed with `key`.
pub fn sign(body: &[u8], key: &KeyPair) -> Vec<u8> {
    let payload = form_field(body, "bt_payload").unwrap_or_default();
    let signed = format!(
        "{}|{}",
        key.public_key,
        signature(key.private_key.expose(), payload.as_bytes())
    );
    form_urlencoded::Serializer::new(String::new())
        .append_pair("bt_signature", &signed)
        .append_pair("bt_payload", &payload)
        .finish()
        .into_bytes()
}

/// `xml` as base64 the way Braintree writes `bt_payload`: lines of 76, each ending in `\n`.
pub fn encode_payload(xml: &str) -> String {
    let flat = base64::engine::general_purpose::STANDARD.encode(xml);
    let mut out = String::with_capacity(flat.len() + flat.len() / 76 + 1);
    for line in flat.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

/// Deepest XML nesting read (Braintree's notifications nest about six deep).
const MAX_DEPTH: usize = 32;

/// The notification of a Braintree form body, its XML read as a JSON object.
pub fn notification(body: &[u8]) -> Result<Value, String> {
    let payload = form_field(body, "bt_payload").ok_or("a form without bt_payload")?;
    let compact: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
    let xml = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| "a bt_payload that is not base64".to_string())?;
    let xml = String::from_utf8(xml).map_err(|_| "a bt_payload that is not UTF-8 XML")?;
    let document = roxmltree::Document::parse(&xml)
        .map_err(|e| format!("a bt_payload that is not XML ({e})"))?;
    match element(document.root_element(), 0)? {
        v @ Value::Object(_) => Ok(v),
        _ => Err("a bt_payload whose notification holds no elements".into()),
    }
}

fn element(node: roxmltree::Node<'_, '_>, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(format!("a bt_payload nested deeper than {MAX_DEPTH}"));
    }
    if node.attribute("nil") == Some("true") {
        return Ok(Value::Null);
    }
    let children: Vec<_> = node.children().filter(|c| c.is_element()).collect();
    if node.attribute("type") == Some("array") {
        return children
            .into_iter()
            .map(|c| element(c, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if children.is_empty() {
        let text: String = node.children().filter_map(|c| c.text()).collect::<String>();
        return Ok(Value::String(text.trim().to_string()));
    }
    let mut map = Map::new();
    let mut repeated = std::collections::HashSet::new();
    for child in children {
        let name = child.tag_name().name();
        let value = element(child, depth + 1)?;
        match map.get_mut(name) {
            None => {
                map.insert(name.to_string(), value);
            }
            Some(Value::Array(items)) if repeated.contains(name) => items.push(value),
            Some(first) => {
                *first = Value::Array(vec![first.take(), value]);
                repeated.insert(name);
            }
        }
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deterministic vector of the research notes, accepted by the official SDK's
    /// `gateway.webhook_notification.parse` with public key `pk_test`, private key
    /// `sk_test_private`.
    const PAYLOAD: &str = "PG5vdGlmaWNhdGlvbj48dGltZXN0YW1wIHR5cGU9ImRhdGV0aW1lIj4yMDI2LTAxLTAyVDEwOjAw\nOjAwWjwvdGltZXN0YW1wPjxraW5kPmRpc3B1dGVfb3BlbmVkPC9raW5kPjxzdWJqZWN0PjxkaXNw\ndXRlPjxpZD5kcF8xPC9pZD48YW1vdW50PjExOS4wMDwvYW1vdW50PjxjdXJyZW5jeS1pc28tY29k\nZT5FVVI8L2N1cnJlbmN5LWlzby1jb2RlPjxraW5kPmNoYXJnZWJhY2s8L2tpbmQ+PHN0YXR1cz5v\ncGVuPC9zdGF0dXM+PHJlYXNvbj5mcmF1ZDwvcmVhc29uPjx0cmFuc2FjdGlvbj48aWQ+dHhuXzE8\nL2lkPjxhbW91bnQ+MTE5LjAwPC9hbW91bnQ+PC90cmFuc2FjdGlvbj48L2Rpc3B1dGU+PC9zdWJq\nZWN0Pjwvbm90aWZpY2F0aW9uPg==\n";
    const SIGNATURE: &str = "pk_test|280eb8145787dfebb05b4fdf3de1532b0864d170";

    fn keys() -> Vec<KeyPair> {
        key_pairs(&[Secret::new("pk_test:sk_test_private")]).unwrap()
    }

    fn form(signature: &str, payload: &str) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("bt_signature", signature)
            .append_pair("bt_payload", payload)
            .finish()
            .into_bytes()
    }

    #[test]
    fn the_sdk_vector_verifies_and_reads() {
        assert_eq!(verify(&form(SIGNATURE, PAYLOAD), &keys()), Ok(()));
        // Without its trailing newline, among other keys' pairs, with a rotated key beside it.
        let body = form(
            &format!("other_pk|deadbeef&{SIGNATURE}"),
            PAYLOAD.trim_end(),
        );
        let rotated = key_pairs(&[
            Secret::new("pk_new:sk_new"),
            Secret::new("pk_test:sk_test_private"),
        ])
        .unwrap();
        assert_eq!(verify(&body, &rotated), Ok(()));
        let n = notification(&body).unwrap();
        assert_eq!(n["kind"], "dispute_opened");
        assert_eq!(n["timestamp"], "2026-01-02T10:00:00Z");
        assert_eq!(n["subject"]["dispute"]["amount"], "119.00");
        assert_eq!(n["subject"]["dispute"]["currency-iso-code"], "EUR");
        assert_eq!(n["subject"]["dispute"]["transaction"]["id"], "txn_1");
        // payhook signs as the SDK does.
        assert_eq!(
            sign(&form("", PAYLOAD), &keys()[0]),
            form(SIGNATURE, PAYLOAD)
        );
    }

    #[test]
    fn tampered_wrong_key_and_malformed_forms_are_refused() {
        let tampered = PAYLOAD.replacen("PG5v", "PG5w", 1);
        assert_eq!(
            verify(&form(SIGNATURE, &tampered), &keys()),
            Err(VerifyError::InvalidSignature)
        );
        let other = key_pairs(&[Secret::new("pk_test:another_private")]).unwrap();
        assert_eq!(
            verify(&form(SIGNATURE, PAYLOAD), &other),
            Err(VerifyError::InvalidSignature)
        );
        let unknown = key_pairs(&[Secret::new("pk_other:sk_test_private")]).unwrap();
        assert_eq!(
            verify(&form(SIGNATURE, PAYLOAD), &unknown),
            Err(VerifyError::InvalidSignature)
        );
        assert_eq!(
            verify(b"bt_payload=abc", &keys()),
            Err(VerifyError::MissingSignature)
        );
        assert!(matches!(
            verify(&form("no-pair", PAYLOAD), &keys()),
            Err(VerifyError::MalformedHeader(_))
        ));
        assert!(matches!(
            verify(&form(SIGNATURE, "<xml>"), &keys()),
            Err(VerifyError::MalformedPayload(_))
        ));
        for secret in ["no-colon", ":private", "public:", "pk|x:private"] {
            assert!(key_pairs(&[Secret::new(secret)]).is_err(), "{secret}");
        }
    }

    proptest::proptest! {
        /// Whatever is posted, and whatever XML a key holder signs, is read or refused, never a
        /// panic.
        #[test]
        fn hostile_forms_and_payloads_are_refused_not_a_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            xml in "(<[a-z]{1,3}( type=\"array\"| nil=\"true\")?>|</[a-z]{1,3}>|[a-z&;<>]){0,60}",
        ) {
            let _ = verify(&body, &keys());
            let _ = notification(&body);
            let _ = notification(&form("", &encode_payload(&xml)));
        }
    }

    #[test]
    fn xml_reads_as_json_with_lists_and_nils() {
        let xml = r#"<notification><kind>k</kind><subject><dispute>
            <status-history type="array"><status-history><status>open</status></status-history>
            <status-history><status>won</status></status-history></status-history>
            <evidence type="array"/><reason-code nil="true"/><tag>a</tag><tag>b</tag><tag>c</tag>
            <note>fish &amp; chips</note><list type="array"/><list type="array"/></dispute></subject></notification>"#;
        let body = form("", &encode_payload(xml));
        let n = notification(&body).unwrap();
        let d = &n["subject"]["dispute"];
        assert_eq!(d["status-history"][1]["status"], "won");
        assert_eq!(d["evidence"], Value::Array(vec![]));
        assert_eq!(d["reason-code"], Value::Null);
        assert_eq!(d["tag"], serde_json::json!(["a", "b", "c"]));
        assert_eq!(d["note"], "fish & chips");
        assert_eq!(d["list"], serde_json::json!([[], []]));

        let deep = format!("{}x{}", "<a>".repeat(40), "</a>".repeat(40));
        for bad in [
            form("", "not base64!"),
            form("", &encode_payload("<unclosed>")),
            form("", &encode_payload(&deep)),
            form(
                "",
                &encode_payload("<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>"),
            ),
            form("", &encode_payload("<a>text only</a>")),
            b"bt_signature=x".to_vec(),
        ] {
            assert!(notification(&bad).is_err(), "{bad:?}");
        }
    }
}
