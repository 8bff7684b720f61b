//! Providers: how each webhook source proves a request is genuine, and how its event is identified.
//! One file per signature scheme; [`Source`] dispatches to the scheme configured for a route.

pub mod adyen;
pub mod braintree;
pub mod confirm;
pub mod form_hmac;
pub mod hmac;
pub mod mapping;
pub mod mercadopago;
pub mod paypal;
pub mod presets;
pub mod secret_digest;
pub mod standard;
pub mod stripe;
pub mod stripe_events;
pub mod timestamped;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use ipnet::IpNet;
use serde::Deserialize;

use crate::domain::Secret;
use mapping::{Extract, Mapping};

/// Why a webhook was refused before anything was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the request has no signature header")]
    MissingSignature,
    #[error("the signature header is malformed: {0}")]
    MalformedHeader(&'static str),
    #[error("the signature does not match any configured secret")]
    InvalidSignature,
    #[error("the signed timestamp is {age_secs} s away from now (tolerance {tolerance_secs} s)")]
    TimestampOutOfTolerance { age_secs: u64, tolerance_secs: u64 },
    #[error("the signed body is not a JSON event with an id and a type: {0}")]
    MalformedPayload(String),
}

/// What identifies a provider event in the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub event_id: String,
    pub event_type: String,
}

/// A webhook request as the provider sent it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The query string of the URL the provider posted to, if any.
    pub query: Option<&'a str>,
}

impl<'a> Incoming<'a> {
    pub fn new(headers: &'a HeaderMap, body: &'a [u8]) -> Self {
        Incoming {
            headers,
            body,
            query: None,
        }
    }
}

/// One event of a verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub meta: EventMeta,
    /// What is stored as the event's payload when it is not the whole body: one item of a batch,
    /// byte for byte as it stood in the body.
    pub payload: Option<Vec<u8>>,
}

/// The signature scheme of a source.
#[derive(Debug, Clone)]
pub enum Scheme {
    Stripe {
        secrets: Vec<Secret>,
        tolerance: Duration,
    },
    StandardWebhooks {
        keys: SigningKeys,
        tolerance: Duration,
    },
    Hmac {
        scheme: hmac::HmacScheme,
        secrets: Vec<Secret>,
        tolerance: Duration,
    },
    /// The header carries a shared secret itself (Flutterwave's `verif-hash`): nothing signs the
    /// body, so only TLS and the secret protect it.
    SharedSecret {
        header: String,
        secrets: Vec<Secret>,
    },
    /// A timestamp and one or more signatures in one header, spelt the provider's way.
    Timestamped {
        layout: &'static timestamped::Layout,
        secrets: Vec<Secret>,
        tolerance: Duration,
    },
    /// An HMAC over a form body's fields, their values joined in the provider's order
    /// (CinetPay's `x-token`).
    FormHmac {
        layout: &'static form_hmac::Layout,
        secrets: Vec<Secret>,
    },
    /// A form field carries a digest of the secret itself (PayDunya's `data[hash]`): the same in
    /// every notification, so the provider's API confirms each one as well.
    SecretDigest {
        layout: &'static secret_digest::Layout,
        secrets: Vec<Secret>,
    },
    /// Nothing proves the notification genuine: the provider's API confirms each one before the
    /// ledger reads it (MTN MoMo, Orange Money, Mollie).
    Unsigned,
    /// Adyen: an HMAC inside each item of the batch, keyed with hex-decoded keys.
    AdyenItems { keys: SigningKeys },
    /// PayPal's transmission headers, checked for form and a certificate URL on PayPal's hosts;
    /// PayPal's API checks the signature itself.
    PayPal,
    /// Braintree's `bt_signature` over `bt_payload`, both in the form body: HMAC-SHA1 keyed with
    /// SHA-1 of the private key of the public key it names.
    Braintree { keys: Vec<braintree::KeyPair> },
    /// Mercado Pago's `x-signature` over the payment id of the URL's query, the request id and a
    /// timestamp (not the body).
    MercadoPago {
        secrets: Vec<Secret>,
        tolerance: Duration,
    },
}

impl Scheme {
    pub fn kind(&self) -> &'static str {
        match self {
            Scheme::Stripe { .. } => "stripe",
            Scheme::StandardWebhooks { .. } => "standard-webhooks",
            Scheme::Hmac { .. } => "hmac",
            Scheme::SharedSecret { .. } => "shared-secret",
            Scheme::Timestamped { .. } => "timestamped-hmac",
            Scheme::FormHmac { .. } => "form-hmac",
            Scheme::SecretDigest { .. } => "secret-digest",
            Scheme::Unsigned => "unsigned",
            Scheme::AdyenItems { .. } => "adyen-item-hmac",
            Scheme::PayPal => "paypal-transmission",
            Scheme::Braintree { .. } => "braintree-bt-signature",
            Scheme::MercadoPago { .. } => "mercadopago",
        }
    }

    /// The header that carries the signature (redacted wherever headers are kept).
    fn signature_header(&self) -> &str {
        match self {
            Scheme::Stripe { .. } => stripe::SIGNATURE_HEADER,
            Scheme::StandardWebhooks { .. } => standard::SIGNATURE_HEADER,
            Scheme::Hmac { scheme, .. } => &scheme.header,
            Scheme::SharedSecret { header, .. } => header,
            Scheme::Timestamped { layout, .. } => layout.header,
            Scheme::FormHmac { layout, .. } => layout.header,
            // Kept: in the body (kept as received), or a public signature the API is asked about.
            Scheme::Unsigned
            | Scheme::SecretDigest { .. }
            | Scheme::AdyenItems { .. }
            | Scheme::PayPal
            | Scheme::Braintree { .. } => "",
            Scheme::MercadoPago { .. } => mercadopago::SIGNATURE_HEADER,
        }
    }
}

/// Decoded signing keys; never printed.
#[derive(Clone)]
pub struct SigningKeys(pub Vec<Vec<u8>>);

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{} keys redacted]", self.0.len())
    }
}

/// A configured webhook source: the `{source}` of `POST /webhooks/{source}`.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub scheme: Scheme,
    pub allowed: Vec<IpNet>,
    /// How to read events that are not shaped like Stripe's; `None`: Stripe's `id` and `type`.
    pub mapping: Option<Arc<Mapping>>,
    /// Where a request carries several events (`events` for GoCardless), each stored on its own.
    pub batch: Option<Extract>,
    /// The provider's API, when it confirms each notification before the ledger reads it.
    pub confirm: Option<confirm::Confirm>,
    /// What the provider must be answered once everything is stored.
    pub answer: Answer,
    /// The provider payhook knows this source as, if it is a preset.
    pub preset: Option<&'static presets::Preset>,
    /// Stripe: each event is fetched back from Stripe's API before the ledger reads it.
    pub stripe_confirm: bool,
}

/// What a source's provider expects in the body of the acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Answer {
    /// payhook's JSON receipt.
    #[default]
    Receipt,
    /// This text, as is (Adyen's `[accepted]`).
    Text(&'static str),
}

impl Source {
    /// How this source's notifications are known to be genuine, for people (explain pages).
    pub fn verification(&self) -> String {
        let header = self.scheme.signature_header();
        let mut how = match &self.scheme {
            Scheme::Unsigned => "unsigned".to_string(),
            Scheme::SharedSecret { .. } => {
                format!("the shared secret in {header} (nothing signs the body)")
            }
            Scheme::SecretDigest { layout, .. } => {
                format!("a digest of the secret in the form field {}", layout.field)
            }
            Scheme::AdyenItems { .. } => "an HMAC in each notification item".to_string(),
            Scheme::PayPal => "PayPal's transmission headers".to_string(),
            Scheme::Braintree { .. } => "bt_signature over bt_payload".to_string(),
            _ => format!(
                "{} signature in {header}, checked on the raw bytes",
                self.scheme.kind()
            ),
        };
        if let Some(preset) = self.preset {
            how = format!("{}: {how}", preset.kind);
        }
        if self.confirm.is_some() {
            how.push_str("; confirmed by the provider's API before the ledger read it");
        }
        if self.stripe_confirm {
            how.push_str("; fetched back from Stripe's API before the ledger read it");
        }
        how
    }

    /// A source with `scheme` and nothing else set.
    pub fn new(name: impl Into<String>, scheme: Scheme) -> Source {
        Source {
            name: name.into(),
            scheme,
            allowed: Vec::new(),
            mapping: None,
            batch: None,
            confirm: None,
            answer: Answer::Receipt,
            preset: None,
            stripe_confirm: false,
        }
    }

    /// Verifies the request on its raw bytes, then reads each of its events' id and type: one,
    /// or every item of a batch.
    pub fn verify(&self, req: &Incoming<'_>, now: i64) -> Result<Vec<Item>, VerifyError> {
        // Where the mapping reads the URL's query too, the signature still covers the request as
        // it came; the event is read, and stored, as the query and the body together.
        let envelope = match &self.mapping {
            Some(m) if m.query => Some(with_query(req.query, req.body)?),
            _ => None,
        };
        let meta = self.verify_one(req, envelope.as_deref().unwrap_or(req.body), now)?;
        let Some(batch) = &self.batch else {
            return Ok(vec![Item {
                meta: meta.expect("a single event's meta"),
                payload: envelope,
            }]);
        };
        self.split(batch, req, now)
    }

    /// Every item of a batch, as its own event.
    fn split(
        &self,
        batch: &Extract,
        req: &Incoming<'_>,
        now: i64,
    ) -> Result<Vec<Item>, VerifyError> {
        let body = req.body;
        let Extract::Path(path) = batch else {
            return Err(VerifyError::MalformedPayload(
                "the batch path is a template".into(),
            ));
        };
        let text = std::str::from_utf8(body)
            .map_err(|e| VerifyError::MalformedPayload(format!("not UTF-8 ({e})")))?;
        // Raw values keep every item byte for byte as the provider wrote (and signed) it.
        let mut level: &serde_json::value::RawValue = serde_json::from_str(text)
            .map_err(|e| VerifyError::MalformedPayload(format!("invalid JSON ({e})")))?;
        for key in path {
            let object: HashMap<String, &serde_json::value::RawValue> =
                serde_json::from_str(level.get()).map_err(|_| {
                    VerifyError::MalformedPayload(format!("no object holding {key:?}"))
                })?;
            level = object.get(key).copied().ok_or_else(|| {
                VerifyError::MalformedPayload(format!("no {:?} in the batch", path.join(".")))
            })?;
        }
        let items: Vec<&serde_json::value::RawValue> =
            serde_json::from_str(level.get()).map_err(|_| {
                VerifyError::MalformedPayload(format!("{:?} is not a list", path.join(".")))
            })?;
        if items.is_empty() {
            return Err(VerifyError::MalformedPayload(format!(
                "{:?} holds no event",
                path.join(".")
            )));
        }
        items
            .into_iter()
            .map(|raw| {
                let bytes = raw.get().as_bytes();
                Ok(Item {
                    meta: self
                        .meta(bytes, None, now, req.headers)?
                        .expect("a mapped source reads every item"),
                    payload: Some(bytes.to_vec()),
                })
            })
            .collect()
    }

    /// Checks the signature; the event's meta, read from `read`, when the request is one event.
    fn verify_one(
        &self,
        req: &Incoming<'_>,
        read: &[u8],
        now: i64,
    ) -> Result<Option<EventMeta>, VerifyError> {
        let (headers, body) = (req.headers, req.body);
        let single = |signed_id| {
            if self.batch.is_some() {
                Ok(None)
            } else {
                self.meta(read, signed_id, now, req.headers)
            }
        };
        match &self.scheme {
            Scheme::Stripe { secrets, tolerance } => {
                let header = match headers.get(stripe::SIGNATURE_HEADER) {
                    None => None,
                    Some(v) => Some(v.to_str().map_err(|_| {
                        VerifyError::MalformedHeader("the header is not visible ASCII")
                    })?),
                };
                stripe::verify(header, body, secrets, *tolerance, now)?;
                single(None)
            }
            Scheme::StandardWebhooks { keys, tolerance } => {
                let id = standard::verify(headers, body, &keys.0, *tolerance, now)?;
                single(Some(id))
            }
            Scheme::Hmac {
                scheme,
                secrets,
                tolerance,
            } => {
                scheme.verify(headers, body, secrets, *tolerance, now)?;
                single(None)
            }
            Scheme::SharedSecret { header, secrets } => {
                let presented = headers
                    .get(header)
                    .ok_or(VerifyError::MissingSignature)?
                    .as_bytes();
                let matched = secrets.iter().fold(subtle::Choice::from(0), |acc, s| {
                    acc | subtle::ConstantTimeEq::ct_eq(s.expose().as_bytes(), presented)
                });
                if !bool::from(matched) {
                    return Err(VerifyError::InvalidSignature);
                }
                single(None)
            }
            Scheme::Timestamped {
                layout,
                secrets,
                tolerance,
            } => {
                layout.verify(headers, body, secrets, *tolerance, now)?;
                single(None)
            }
            Scheme::FormHmac { layout, secrets } => {
                layout.verify(headers, body, secrets)?;
                single(None)
            }
            Scheme::SecretDigest { layout, secrets } => {
                layout.verify(body, secrets)?;
                single(None)
            }
            Scheme::Unsigned => single(None),
            Scheme::AdyenItems { keys } => {
                adyen::verify(body, &keys.0)?;
                single(None)
            }
            Scheme::PayPal => {
                paypal::verify(headers)?;
                single(None)
            }
            Scheme::Braintree { keys } => {
                braintree::verify(body, keys)?;
                single(None)
            }
            Scheme::MercadoPago { secrets, tolerance } => {
                mercadopago::verify(headers, req.query, secrets, *tolerance, now)?;
                // The body is not signed: it must name the payment the signature covers.
                let signed = mercadopago::data_id(req.query);
                let named = body_data_id(body);
                if let (Some(signed), Some(named)) = (signed, named)
                    && !signed.eq_ignore_ascii_case(&named)
                {
                    return Err(VerifyError::InvalidSignature);
                }
                single(None)
            }
        }
    }

    /// The event's id (the signed message id when the scheme has one) and type.
    fn meta(
        &self,
        body: &[u8],
        signed_id: Option<String>,
        now: i64,
        headers: &HeaderMap,
    ) -> Result<Option<EventMeta>, VerifyError> {
        let Some(mapping) = &self.mapping else {
            return parse_event(body, signed_id).map(Some);
        };
        let payload = mapping
            .read_arrival(body, now, headers)
            .map_err(VerifyError::MalformedPayload)?;
        let read = |what: &str, e: &Extract| {
            e.text(&payload).filter(|v| printable_id(v)).ok_or_else(|| {
                VerifyError::MalformedPayload(format!(
                    "no {what} where the source's mapping says ({e:?})"
                ))
            })
        };
        Ok(Some(EventMeta {
            event_id: match signed_id {
                Some(id) if printable_id(&id) => id,
                Some(_) => {
                    return Err(VerifyError::MalformedPayload(format!(
                        "the signed message id must be a non-empty string of at most {MAX_ID_LEN} printable characters"
                    )));
                }
                None => read("event id", &mapping.event_id)?,
            },
            event_type: read("event type", &mapping.event_type)?,
        }))
    }

    /// The headers this source's provider would send with `body` at `now`, signed with its first
    /// secret: what `payhook trigger` and tests send.
    pub fn sign(&self, body: &[u8], now: i64) -> Vec<(String, String)> {
        match &self.scheme {
            Scheme::Stripe { secrets, .. } => secrets
                .first()
                .map(|s| vec![(stripe::SIGNATURE_HEADER.into(), stripe::sign(body, s, now))])
                .unwrap_or_default(),
            Scheme::StandardWebhooks { keys, .. } => keys
                .0
                .first()
                .map(|key| {
                    let id = crate::domain::ids::new_id("msg");
                    vec![
                        (
                            standard::SIGNATURE_HEADER.into(),
                            standard::sign(key, &id, now, body),
                        ),
                        (standard::ID_HEADER.into(), id),
                        (standard::TIMESTAMP_HEADER.into(), now.to_string()),
                    ]
                })
                .unwrap_or_default(),
            Scheme::Hmac {
                scheme, secrets, ..
            } => secrets
                .first()
                .map(|s| scheme.sign(s, body, now))
                .unwrap_or_default(),
            Scheme::SharedSecret { header, secrets } => secrets
                .first()
                .map(|s| vec![(header.clone(), s.expose().to_string())])
                .unwrap_or_default(),
            Scheme::Timestamped {
                layout, secrets, ..
            } => secrets
                .first()
                .map(|s| vec![layout.sign(s, body, now)])
                .unwrap_or_default(),
            Scheme::Unsigned | Scheme::AdyenItems { .. } => Vec::new(),
            Scheme::PayPal => paypal::sign(now),
            // Braintree signs inside the body: see `sign_request`.
            Scheme::Braintree { .. } => Vec::new(),
            Scheme::FormHmac { layout, secrets } => secrets
                .first()
                .map(|s| vec![layout.sign(s, body)])
                .unwrap_or_default(),
            // It signs inside the body: see `sign_request`.
            Scheme::SecretDigest { .. } => Vec::new(),
            Scheme::MercadoPago { secrets, .. } => secrets
                .first()
                .map(|s| mercadopago::sign(s, body_data_id(body).as_deref(), now))
                .unwrap_or_default(),
        }
    }

    /// The request this source's provider would send with `body` at `now`: its headers, and the
    /// body itself (some providers sign inside it).
    pub fn sign_request(&self, body: Vec<u8>, now: i64) -> (Vec<(String, String)>, Vec<u8>) {
        if let Scheme::AdyenItems { keys } = &self.scheme {
            let signed = keys.0.first().and_then(|key| adyen::sign(key, &body));
            return (Vec::new(), signed.unwrap_or(body));
        }
        if let Scheme::Braintree { keys } = &self.scheme {
            let signed = keys.first().map(|key| braintree::sign(&body, key));
            return (Vec::new(), signed.unwrap_or(body));
        }
        if let Scheme::SecretDigest { layout, secrets } = &self.scheme
            && let Some(secret) = secrets.first()
        {
            return (Vec::new(), layout.sign(secret, body));
        }
        (self.sign(&body, now), body)
    }

    /// Whether `ip` may post to this source (an IPv4-mapped IPv6 address as the IPv4 it is).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.allowed.is_empty() || self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// Headers as they are kept with the event: signature values and credentials redacted.
    pub fn stored_headers(&self, headers: &HeaderMap) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            let value = match name.as_str() {
                stripe::SIGNATURE_HEADER => stripe::redact(&value),
                standard::SIGNATURE_HEADER => standard::redact(&value),
                n if !n.is_empty() && n == self.scheme.signature_header() => {
                    "[redacted]".to_string()
                }
                "authorization" | "cookie" | "proxy-authorization" => "[redacted]".to_string(),
                n if is_credential(n) => "[redacted]".to_string(),
                _ => value.into_owned(),
            };
            // Repeated headers are joined as HTTP allows.
            out.entry(name.as_str())
                .and_modify(|v| {
                    if let serde_json::Value::String(s) = v {
                        s.push_str(", ");
                        s.push_str(&value);
                    }
                })
                .or_insert(serde_json::Value::String(value));
        }
        serde_json::Value::Object(out)
    }
}

/// A header that by its name carries a credential (`x-api-key`, `x-auth-token`,
/// `x-webhook-secret`...): kept redacted like `Authorization`.
fn is_credential(name: &str) -> bool {
    ["secret", "token", "password", "api-key", "apikey"]
        .iter()
        .any(|word| name.contains(word))
}

/// The `data.id` of a JSON body (Mercado Pago's), a string or a number.
fn body_data_id(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    match &v["data"]["id"] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The payload of a provider that names its payment in the notification URL's query:
/// `{"query": {name: value}, "body": <body>}`, the body embedded byte for byte (it must be JSON),
/// the query's names and values percent-decoded (a name given twice keeps its first value).
pub fn with_query(query: Option<&str>, body: &[u8]) -> Result<Vec<u8>, VerifyError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| VerifyError::MalformedPayload(format!("not UTF-8 ({e})")))?;
    let raw: &serde_json::value::RawValue = serde_json::from_str(text)
        .map_err(|e| VerifyError::MalformedPayload(format!("invalid JSON ({e})")))?;
    let mut params = serde_json::Map::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        params
            .entry(name.into_owned())
            .or_insert(serde_json::Value::String(value.into_owned()));
    }
    let query = serde_json::Value::Object(params).to_string();
    Ok(format!(r#"{{"query":{query},"body":{}}}"#, raw.get()).into_bytes())
}

/// Refuses a signed timestamp further than `tolerance` from `now` (unix seconds), either way.
fn check_age(timestamp: i64, tolerance: Duration, now: i64) -> Result<(), VerifyError> {
    let age = now.saturating_sub(timestamp).unsigned_abs();
    if age > tolerance.as_secs() {
        return Err(VerifyError::TimestampOutOfTolerance {
            age_secs: age,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    Ok(())
}

/// Longest event id or type kept; longer ones are not provider events.
const MAX_ID_LEN: usize = 255;

fn printable_id(v: &str) -> bool {
    !v.trim().is_empty() && v.len() <= MAX_ID_LEN && !v.chars().any(char::is_control)
}

/// Reads `id` and `type` from a JSON event; the rest of the body is checked to be JSON and kept as
/// received. The body must be UTF-8 throughout (the stores rely on it), which serde_json does not
/// check inside the values it skips, hence the explicit check. With `signed_id` (the scheme's
/// signed message id, which is the event's id), the body needs only its `type`.
pub(crate) fn parse_event(
    body: &[u8],
    signed_id: Option<String>,
) -> Result<EventMeta, VerifyError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| VerifyError::MalformedPayload(format!("not UTF-8 ({e})")))?;
    let env: Envelope = serde_json::from_str(text)
        .map_err(|e| VerifyError::MalformedPayload(format!("invalid event ({e})")))?;
    let kind = env
        .kind
        .ok_or_else(|| VerifyError::MalformedPayload("the event has no type".into()))?;
    let id = match signed_id {
        Some(id) => Cow::Owned(id),
        None => env
            .id
            .ok_or_else(|| VerifyError::MalformedPayload("the event has no id".into()))?,
    };
    for (field, v) in [("id", &id), ("type", &kind)] {
        if !printable_id(v) {
            return Err(VerifyError::MalformedPayload(format!(
                "{field} must be a non-empty string of at most {MAX_ID_LEN} printable characters"
            )));
        }
    }
    Ok(EventMeta {
        event_id: id.into_owned(),
        event_type: kind.into_owned(),
    })
}

/// A JSON event's `id` and `type`, read in one pass over the body that checks everything else in
/// it as a full parse would (see [`Checked`]) without keeping it. A repeated `id` or `type` is
/// refused: which one a reader believes would be a guess.
struct Envelope<'a> {
    id: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> serde::de::Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<Envelope<'de>, A::Error> {
        let mut env = Envelope {
            id: None,
            kind: None,
        };
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let slot = match key.as_ref() {
                "id" => &mut env.id,
                "type" => &mut env.kind,
                _ => {
                    map.next_value::<Checked>()?;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate field `{key}`"
                )));
            }
            *slot = Some(map.next_value::<Text<'de>>()?.0);
        }
        Ok(env)
    }
}

/// A JSON string, borrowed from the body when it holds no escape.
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> serde::de::Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v)))
    }
}

/// Any JSON value, visited as `serde_json::Value` would be (so within serde_json's nesting limit
/// of 128, every number in range), and not kept.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> serde::de::Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, Checked>()?
            .is_some()
        {}
        Ok(Checked)
    }
}

/// Every configured source by route name.
#[derive(Debug, Clone, Default)]
pub struct Sources(HashMap<String, Source>);

impl Sources {
    /// Every source, by its route name.
    pub fn new(sources: impl IntoIterator<Item = Source>) -> Sources {
        Sources(sources.into_iter().map(|s| (s.name.clone(), s)).collect())
    }

    /// The mapping of each source that has one, for the ledger's processor.
    pub fn mappings(&self) -> HashMap<String, Arc<Mapping>> {
        self.0
            .values()
            .filter_map(|s| Some((s.name.clone(), s.mapping.clone()?)))
            .collect()
    }

    /// The sources whose notifications the provider's API confirms, with their mappings.
    pub fn confirms(&self) -> HashMap<String, (confirm::Confirm, Arc<Mapping>)> {
        self.0
            .values()
            .filter_map(|s| Some((s.name.clone(), (s.confirm.clone()?, s.mapping.clone()?))))
            .collect()
    }

    /// The sources whose events the processor holds until the fetcher has confirmed them.
    pub fn confirming(&self) -> std::collections::HashSet<String> {
        self.0
            .values()
            .filter(|s| s.stripe_confirm || s.confirm.is_some())
            .map(|s| s.name.clone())
            .collect()
    }

    /// Every source's name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub fn get(&self, name: &str) -> Option<&Source> {
        self.0.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_needs_string_id_and_type() {
        assert!(parse_event(br#"{"id":"evt_1","type":"a.b","data":{}}"#, None).is_ok());
        for bad in [
            &b"[]"[..],
            b"{\"id\":1,\"type\":\"a\"}",
            b"{\"id\":\"evt_1\"}",
            b"{\"id\":\"\",\"type\":\"a\"}",
            b"{\"id\":\"e\\n1\",\"type\":\"a\"}",
            b"{\"id\":\"evt_1\",\"type\":\"a\"",
            b"\xff\xfe",
            // Invalid UTF-8 inside a value serde would otherwise skip.
            b"{\"id\":\"evt_1\",\"type\":\"a\",\"data\":\"\xff\"}",
            b"[\"evt_1\",\"a\"]",
            b"{\"id\":\"evt_1\",\"id\":\"evt_2\",\"type\":\"a\"}",
            b"{\"id\":\"evt_1\",\"type\":\"a\"} trailing",
        ] {
            assert!(
                matches!(
                    parse_event(bad, None),
                    Err(VerifyError::MalformedPayload(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_query_reading_source_stores_the_query_beside_the_body_as_received() {
        let mut mapping = presets::mapping(
            "{query.reference}:{body.status}",
            "body.status",
            "query.reference",
        );
        mapping.query = true;
        let source = Source {
            mapping: Some(Arc::new(mapping)),
            ..Source::new("momo", Scheme::Unsigned)
        };
        let body = b"{ \"status\" : \"SUCCESSFUL\",\"amount\":\"1000\"}";
        let headers = HeaderMap::new();
        let items = source
            .verify(
                &Incoming {
                    headers: &headers,
                    body,
                    query: Some("reference=6e6d%2D1&reference=other&x="),
                },
                0,
            )
            .unwrap();
        assert_eq!(items[0].meta.event_id, "6e6d-1:SUCCESSFUL");
        assert_eq!(
            String::from_utf8(items[0].payload.clone().unwrap()).unwrap(),
            r#"{"query":{"reference":"6e6d-1","x":""},"body":{ "status" : "SUCCESSFUL","amount":"1000"}}"#
        );
        // Without the query the event names no payment; a body that is not JSON is refused.
        for (query, body) in [
            (None, &body[..]),
            (Some("reference=r"), b"status=SUCCESSFUL"),
        ] {
            let refused = source.verify(
                &Incoming {
                    headers: &headers,
                    body,
                    query,
                },
                0,
            );
            assert!(
                matches!(refused, Err(VerifyError::MalformedPayload(_))),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn an_event_id_naming_the_delivery_is_new_at_each_delivery() {
        let mut mapping = presets::mapping("{id}:{$delivery}", "id", "id");
        mapping.format = mapping::Format::Form;
        let source = Source {
            mapping: Some(Arc::new(mapping)),
            ..Source::new("mollie", Scheme::Unsigned)
        };
        let headers = HeaderMap::new();
        let id = |body: &'static [u8]| {
            source
                .verify(&Incoming::new(&headers, body), 1_700_000_000)
                .map(|items| {
                    assert_eq!(items[0].payload, None, "the body is stored as it came");
                    items[0].meta.event_id.clone()
                })
        };
        let (first, second) = (id(b"id=tr_1").unwrap(), id(b"id=tr_1").unwrap());
        assert!(first.starts_with("tr_1:1700000000."), "{first}");
        assert_ne!(first, second);
        // A body cannot set it.
        let forged = id(b"id=tr_1&%24delivery=x").unwrap();
        assert!(forged.starts_with("tr_1:1700000000."), "{forged}");
    }
}

#[cfg(test)]
mod stored_header_tests {
    use super::*;

    #[test]
    fn credentials_in_headers_are_not_kept() {
        let source = Source::new("p", Scheme::Unsigned);
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-api-key", "key-1"),
            ("x-auth-token", "tok-2"),
            ("x-webhook-secret", "sec-3"),
            ("authorization", "Basic cGF5"),
            ("x-razorpay-event-id", "EvtKept"),
            ("content-type", "application/json"),
        ] {
            headers.insert(
                axum::http::HeaderName::from_static(name),
                value.parse().unwrap(),
            );
        }
        let stored = source.stored_headers(&headers).to_string();
        for secret in ["key-1", "tok-2", "sec-3", "cGF5"] {
            assert!(!stored.contains(secret), "{secret} kept: {stored}");
        }
        assert!(stored.contains("EvtKept") && stored.contains("application/json"));
    }
}
