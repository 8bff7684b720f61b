//! Verify by API: a notification that proves nothing on its own (no signature, or one over a
//! constant) is stored and acknowledged, then confirmed by asking the provider's own API for the
//! payment it names. The ledger reads what the API answered, never the posted body.
//!
//! A [`Lookup`] says how one provider is asked (the request, its credentials, an access token
//! first where the provider wants one) and how its answer reads (the payment's status word and
//! what it means, the amount, the currency, the booking). [`Confirm::check`] asks and judges:
//! - the API knows the payment and agrees with the notification: confirmed, and the ledger reads
//!   the [`record`](confirmed_mapping) made of the answer;
//! - the API does not know it, or says something else happened: denied, and the event is kept
//!   `rejected` with the provider's answer, never applied;
//! - the API cannot be reached, or says the payment is still pending while the notification says
//!   it ended: the event waits and is asked about again later.
//!
//! Some providers' APIs answer a verdict on the notification itself instead of the payment
//! (PayPal's `verify-webhook-signature`, asked with the notification's own headers and body):
//! their status words are [`Verdict::Genuine`] and [`Verdict::Forged`], and a genuine
//! notification's record is read from the notification with the source's mapping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::mapping::{AmountFormat, Extract, MappedKind, Mapping};
use crate::domain::Secret;

/// How long one request to a provider's API may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest excerpt of a provider's answer kept in an event's error.
const EXCERPT: usize = 300;

/// What one of the provider's status words means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Is(MappedKind),
    /// The provider does not know the payment: the notification is denied.
    Unknown,
    /// The answer vouches for the notification itself (the provider checked its signature): the
    /// ledger reads the notification, with the source's mapping.
    Genuine,
    /// The provider says the notification is not one it sent: denied.
    Forged,
}

/// How a request to the provider's API is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Get,
    /// A JSON body; a string value `"{name}"` is replaced by the credential, notification field or
    /// request header (`{headers.paypal-transmission-id}`) of that name, and `"{body}"` by the
    /// notification itself, byte for byte as it was posted.
    PostJson(Value),
}

/// An access token asked for before the lookup (MTN MoMo, Orange Money): `POST path` with HTTP
/// Basic over two credentials, answered `{"access_token": ..., "expires_in": seconds}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStep {
    pub path: String,
    /// The credentials that are the Basic user and password.
    pub basic: (String, String),
    /// A form body to send, if the provider wants one (`grant_type=client_credentials`).
    pub form: Option<String>,
}

/// How a provider's API confirms one of its notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// The provider's production API, used unless the source sets `api.url`.
    pub base_url: String,
    /// The credentials `[sources.api]` must give, by name.
    pub credentials: Vec<String>,
    /// Credentials that may be given, with their default.
    pub optional: Vec<(String, String)>,
    pub token: Option<TokenStep>,
    pub request: Request,
    /// Path after the base URL; `{id}` is the payment's id (percent-encoded), other `{name}`s are
    /// credentials, notification fields or `headers.NAME`.
    pub path: String,
    /// Headers, their values templates as the path's (`Bearer {secret_key}`, `{access_token}`).
    pub headers: Vec<(String, String)>,
    /// Where the notification names the payment to ask about.
    pub id: Extract,
    /// Where the answer keeps the payment (by default the answer itself).
    pub object: Option<Extract>,
    pub status: Extract,
    /// The provider's status words (matched without regard to case); a word not listed leaves the
    /// payment as it is and the event failed, naming the word.
    pub statuses: Vec<(String, Verdict)>,
    /// Where the answer keeps the amount; `$notification.<path>` reads what payhook asked about
    /// instead, where the provider checks it without repeating it (as for the currency, booking
    /// and failure message).
    pub amount: Option<Extract>,
    pub amount_format: AmountFormat,
    pub currency: Option<Extract>,
    pub default_currency: Option<String>,
    pub booking_id: Option<Extract>,
    pub failure_message: Option<Extract>,
    /// An HTTP status the provider answers for a payment it does not have, beside 404.
    pub unknown_status: Option<u16>,
}

impl Lookup {
    fn verdict(&self, word: &str) -> Option<Verdict> {
        self.statuses
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|(_, v)| *v)
    }
}

/// A source's confirmation by API, configured: the lookup, where, with which credentials.
#[derive(Clone)]
pub struct Confirm {
    pub lookup: Arc<Lookup>,
    pub base_url: String,
    credentials: HashMap<String, Secret>,
    token: Arc<Mutex<Option<(String, Instant)>>>,
}

impl std::fmt::Debug for Confirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirm")
            .field("base_url", &self.base_url)
            .field("credentials", &"[redacted]")
            .finish()
    }
}

/// What asking the provider came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The record the ledger reads (see [`confirmed_mapping`]).
    Confirmed(Value),
    /// Never to be applied: why, and what the provider answered.
    Denied { why: String, answer: Value },
    /// Ask again later.
    Waiting(String),
    /// Cannot be asked about at all (the notification names no payment).
    Failed(String),
}

impl Confirm {
    /// `credentials` holds every name the lookup requires (checked by the configuration).
    pub fn new(lookup: Lookup, base_url: String, mut credentials: HashMap<String, Secret>) -> Self {
        for (name, default) in &lookup.optional {
            credentials
                .entry(name.clone())
                .or_insert_with(|| Secret::new(default.clone()));
        }
        Confirm {
            lookup: Arc::new(lookup),
            base_url: base_url.trim_end_matches('/').to_string(),
            credentials,
            token: Arc::default(),
        }
    }

    /// Asks the provider about the payment `payload` (read with the source's `mapping`) names,
    /// and judges its answer. `headers` are the notification's request headers as stored (a JSON
    /// object), for the providers whose API wants them.
    pub async fn check(
        &self,
        http: &reqwest::Client,
        mapping: &Mapping,
        event_type: &str,
        headers: &Value,
        payload: &[u8],
    ) -> Outcome {
        let notification = match mapping.format.read(payload) {
            Ok(v) => v,
            Err(why) => return Outcome::Failed(format!("the notification is {why}")),
        };
        let Some(id) = self.lookup.id.text(&notification) else {
            return Outcome::Failed(format!(
                "the notification names no payment to confirm ({:?})",
                self.lookup.id
            ));
        };
        let token = match &self.lookup.token {
            Some(step) => match self.access_token(http, step).await {
                Ok(token) => Some(token),
                Err(why) => return Outcome::Waiting(why),
            },
            None => None,
        };
        let context = Context {
            id: &id,
            token: token.as_deref(),
            notification: &notification,
            headers,
            payload,
        };
        let fill = |template: &str| self.fill(template, &context);
        let url = format!("{}{}", self.base_url, fill(&self.lookup.path));
        let mut request = match &self.lookup.request {
            Request::Get => http.get(&url),
            Request::PostJson(body) => {
                let mut json = String::new();
                self.write_json(&mut json, body, &context);
                http.post(&url)
                    .header("content-type", "application/json")
                    .body(json)
            }
        };
        for (name, value) in &self.lookup.headers {
            request = request.header(name, fill(value));
        }
        let response = match request.timeout(TIMEOUT).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Waiting(crate::net::describe(&e)),
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(excerpt(&text)));
        if status == 401 && token.is_some() {
            // An access token the provider no longer takes (revoked, or expired early): the next
            // attempt asks for a new one.
            *self.token.lock().expect("the token lock") = None;
        }
        if status == 401 || status == 403 {
            // The event is fine; payhook's credentials are not. It waits for the operator.
            tracing::error!(
                url,
                status,
                "the provider refused payhook's API credentials"
            );
        }
        self.judge(mapping, &notification, event_type, &id, status, answer)
    }

    /// The provider's answer judged against what the notification claims.
    pub fn judge(
        &self,
        mapping: &Mapping,
        notification: &Value,
        event_type: &str,
        id: &str,
        status: u16,
        answer: Value,
    ) -> Outcome {
        let lookup = &*self.lookup;
        let said = || excerpt(&answer.to_string());
        match status {
            200..=299 => {}
            404 => {
                return Outcome::Denied {
                    why: format!("the provider has no payment {id} (HTTP 404: {})", said()),
                    answer,
                };
            }
            s if Some(s) == lookup.unknown_status => {
                return Outcome::Denied {
                    why: format!("the provider has no payment {id} (HTTP {s}: {})", said()),
                    answer,
                };
            }
            401 | 403 => {
                return Outcome::Waiting(format!(
                    "the provider refused payhook's API credentials (HTTP {status}: {}); check the source's [sources.api]",
                    said()
                ));
            }
            s => {
                return Outcome::Waiting(format!("the provider answered HTTP {s}: {}", said()));
            }
        }
        let object = match &lookup.object {
            Some(path) => path.value(&answer).cloned().unwrap_or(Value::Null),
            None => answer.clone(),
        };
        let Some(word) = lookup
            .status
            .text(&object)
            .or_else(|| lookup.status.text(&answer))
        else {
            return Outcome::Waiting(format!(
                "the provider's answer has no status where payhook reads it ({:?}): {}",
                lookup.status,
                said()
            ));
        };
        let kind = match lookup.verdict(&word) {
            Some(Verdict::Is(kind)) => kind,
            Some(Verdict::Unknown) => {
                return Outcome::Denied {
                    why: format!("the provider has no payment {id}: it says {word:?}"),
                    answer,
                };
            }
            Some(Verdict::Genuine) => {
                return vouched(mapping, notification, event_type, &word, answer);
            }
            Some(Verdict::Forged) => {
                return Outcome::Denied {
                    why: format!(
                        "the provider says notification {id} is not one it sent: it says {word:?}"
                    ),
                    answer,
                };
            }
            None => {
                return Outcome::Failed(format!(
                    "the provider says {word:?} about payment {id}, a status payhook does not know"
                ));
            }
        };
        let claimed = match &mapping.kind_from {
            Some(e) => e.text(notification),
            None => Some(event_type.to_string()),
        }
        .and_then(|named| mapping.types.get(&named).copied());
        if let Some(claimed) = claimed.filter(|c| *c != kind) {
            if kind == MappedKind::Processing {
                return Outcome::Waiting(format!(
                    "the provider still says {word:?} about payment {id}; the notification says {event_type}"
                ));
            }
            return Outcome::Denied {
                why: format!(
                    "the provider says payment {id} is {word:?} ({}), not what the notification says ({event_type}: {})",
                    kind_word(kind),
                    kind_word(claimed)
                ),
                answer,
            };
        }
        let read = |e: &Extract| match asked_with(e) {
            Some(e) => e.value(notification).cloned(),
            None => e.value(&object).cloned(),
        };
        let field = |e: &Option<Extract>| {
            e.as_ref().and_then(|e| match asked_with(e) {
                Some(e) => e.text(notification),
                None => e.text(&object),
            })
        };
        let currency = field(&lookup.currency)
            .or_else(|| lookup.default_currency.clone())
            .or_else(|| mapping.default_currency.clone())
            .map(|c| mapping.currency(&c));
        let amount = match lookup.amount.as_ref().and_then(read) {
            None => None,
            Some(v) => match lookup.amount_format.minor_units(&v, currency.as_deref()) {
                Ok(minor) => Some(minor),
                Err(why) => return Outcome::Failed(format!("the provider's answer: {why}")),
            },
        };
        let payment_id = mapping
            .payment_id
            .text(notification)
            .unwrap_or_else(|| id.to_string());
        let booking_id = match &lookup.booking_id {
            Some(_) => field(&lookup.booking_id),
            None => mapping
                .booking_id
                .as_ref()
                .and_then(|e| e.text(notification)),
        };
        Outcome::Confirmed(json!({
            "confirmed": {
                "kind": kind_word(kind),
                "status": word,
                "payment_id": payment_id,
                "amount": amount,
                "currency": currency,
                "booking_id": booking_id,
                "failure_message": field(&lookup.failure_message),
            },
            "answer": answer,
        }))
    }

    /// The access token, asked for when there is none or it is about to expire.
    async fn access_token(
        &self,
        http: &reqwest::Client,
        step: &TokenStep,
    ) -> Result<String, String> {
        if let Some((token, until)) = self.token.lock().expect("the token lock").clone()
            && Instant::now() < until
        {
            return Ok(token);
        }
        let (user, password) = (
            &self.credentials[&step.basic.0],
            &self.credentials[&step.basic.1],
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            user.expose(),
            password.expose()
        ));
        let mut request = http
            .post(format!("{}{}", self.base_url, step.path))
            .header("authorization", format!("Basic {basic}"))
            .timeout(TIMEOUT);
        for (name, value) in &self.lookup.headers {
            // The token request carries the lookup's fixed headers (a subscription key), not the
            // ones that need the token.
            if !value.contains("{access_token}") {
                let context = Context {
                    id: "",
                    token: None,
                    notification: &Value::Null,
                    headers: &Value::Null,
                    payload: b"",
                };
                request = request.header(name, self.fill(value, &context));
            }
        }
        if let Some(form) = &step.form {
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("asking for an access token: {}", crate::net::describe(&e)))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let token = answer["access_token"]
            .as_str()
            .filter(|_| status.is_success())
            .ok_or_else(|| {
                format!(
                    "the provider gave no access token (HTTP {status}): check the source's [sources.api] credentials"
                )
            })?
            .to_string();
        let lifetime = answer["expires_in"]
            .as_u64()
            .or_else(|| answer["expires_in"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(300);
        // Renewed a minute early, so a token never expires on its way.
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60).max(1));
        *self.token.lock().expect("the token lock") = Some((token.clone(), until));
        Ok(token)
    }

    /// The value of `{name}` in a template: the payment id, the access token, a credential, a
    /// request header (`headers.NAME`), the notification's body, or a field of the notification.
    fn value(&self, name: &str, context: &Context<'_>) -> String {
        match name {
            "id" => context.id.to_string(),
            // Without a token step, a credential of that name (GoCardless's access token).
            "access_token" if context.token.is_some() => {
                context.token.unwrap_or_default().to_string()
            }
            "body" => String::from_utf8_lossy(context.payload).into_owned(),
            _ => match (self.credentials.get(name), name.strip_prefix("headers.")) {
                (Some(secret), _) => secret.expose().to_string(),
                (None, Some(header)) => context.headers[header.to_ascii_lowercase()]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                (None, None) => Extract::parse(name)
                    .and_then(|e| e.text(context.notification))
                    .unwrap_or_default(),
            },
        }
    }

    fn fill(&self, template: &str, context: &Context<'_>) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}').map(|c| c + open) else {
                break;
            };
            out.push_str(&rest[..open]);
            let value = self.value(&rest[open + 1..close], context);
            if template.starts_with('/') {
                // One path segment, whatever the id holds: `../admin` cannot leave it.
                for b in value.bytes() {
                    match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                            out.push(b as char)
                        }
                        _ => out.push_str(&format!("%{b:02X}")),
                    }
                }
            } else {
                out.push_str(&value);
            }
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }

    /// The JSON text of a request body template, its `"{name}"` strings filled. `"{body}"` is the
    /// notification as posted, spliced in byte for byte when it is JSON: a provider that checks
    /// its own signature over it (PayPal) refuses a re-serialized copy (keys reordered, `1.0`
    /// written `1`).
    fn write_json(&self, out: &mut String, body: &Value, context: &Context<'_>) {
        match body {
            Value::String(s) if s.starts_with('{') && s.ends_with('}') && s.len() > 2 => {
                let name = &s[1..s.len() - 1];
                let raw = std::str::from_utf8(context.payload)
                    .ok()
                    .filter(|_| name == "body")
                    .and_then(|text| {
                        serde_json::from_str::<&serde_json::value::RawValue>(text).ok()
                    });
                match raw {
                    Some(raw) => out.push_str(raw.get()),
                    None => out.push_str(&Value::String(self.value(name, context)).to_string()),
                }
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (key, value)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    self.write_json(out, value, context);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_json(out, item, context);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
}

/// What a template's names are filled from.
struct Context<'a> {
    id: &'a str,
    token: Option<&'a str>,
    notification: &'a Value,
    /// The notification's request headers as stored: a JSON object by lowercase name.
    headers: &'a Value,
    /// The notification as posted.
    payload: &'a [u8],
}

/// The record of a notification the provider's API vouched for: read from the notification itself
/// with the source's mapping, in the shape [`confirmed_mapping`] reads. A type the mapping does
/// not act on gives a record of no kind, which the ledger ignores.
fn vouched(
    mapping: &Mapping,
    notification: &Value,
    event_type: &str,
    word: &str,
    answer: Value,
) -> Outcome {
    let named = match &mapping.kind_from {
        Some(e) => e.text(notification),
        None => Some(event_type.to_string()),
    };
    let kind = named.and_then(|n| mapping.types.get(&n).copied());
    let field = |e: &Option<Extract>| e.as_ref().and_then(|e| e.text(notification));
    let currency = field(&mapping.currency)
        .or_else(|| mapping.default_currency.clone())
        .map(|c| mapping.currency(&c));
    let minor = |what: &str, e: &Option<Extract>| -> Result<Option<i64>, String> {
        match e.as_ref().and_then(|e| e.value(notification)) {
            None => Ok(None),
            Some(v) => mapping
                .minor_units(v, currency.as_deref())
                .map(Some)
                .map_err(|why| format!("the notification's {what}: {why}")),
        }
    };
    let (amount, amount_refunded, refund_amount) = match (
        minor("amount", &mapping.amount),
        minor("amount_refunded", &mapping.amount_refunded),
        minor("refund_amount", &mapping.refund_amount),
    ) {
        (Ok(a), Ok(r), Ok(one)) => (a, r, one),
        (Err(why), _, _) | (_, Err(why), _) | (_, _, Err(why)) => return Outcome::Failed(why),
    };
    let payment_id = mapping.payment_id.text(notification);
    if kind.is_some() && payment_id.is_none() {
        return Outcome::Failed(format!(
            "the notification names no payment where the mapping says ({:?})",
            mapping.payment_id
        ));
    }
    Outcome::Confirmed(json!({
        "confirmed": {
            "kind": kind.map(kind_word),
            "status": word,
            "payment_id": payment_id,
            "amount": amount,
            "amount_refunded": amount_refunded,
            "refund_id": field(&mapping.refund_id),
            "refund_amount": refund_amount,
            "currency": currency,
            "booking_id": field(&mapping.booking_id),
            "failure_message": field(&mapping.failure_message),
        },
        "answer": answer,
    }))
}
/// The path into the notification of a lookup's field written `$notification.<path>`: what
/// payhook asked the provider with and the provider answered about without repeating it (Orange
/// Money's status API is asked with the order, its amount and the pay token, and answers only
/// the status). Any other path reads the provider's answer.
fn asked_with(e: &Extract) -> Option<Extract> {
    match e {
        Extract::Path(path) if path.len() > 1 && path[0] == NOTIFICATION => {
            Some(Extract::Path(path[1..].to_vec()))
        }
        _ => None,
    }
}

/// The first segment of a lookup's path that reads the notification (see [`asked_with`]).
const NOTIFICATION: &str = "$notification";

fn kind_word(kind: MappedKind) -> &'static str {
    match kind {
        MappedKind::Succeeded => "succeeded",
        MappedKind::Failed => "failed",
        MappedKind::Processing => "processing",
        MappedKind::Authorized => "authorized",
        MappedKind::Canceled => "canceled",
        MappedKind::Refunded => "refunded",
        MappedKind::Disputed => "disputed",
        MappedKind::DisputeInquiry => "dispute_inquiry",
        MappedKind::DisputeWon => "dispute_won",
        MappedKind::DisputeLost => "dispute_lost",
        MappedKind::RefundSucceeded => "refund_succeeded",
        MappedKind::RefundFailed => "refund_failed",
    }
}

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// How the ledger reads a confirmed record: the kind, payment, amount and booking the provider's
/// API answered, in minor units.
pub fn confirmed_mapping() -> Mapping {
    let path = |p: &str| Extract::parse(p).expect("a path");
    Mapping {
        format: super::mapping::Format::Json,
        event_id: path("confirmed.payment_id"),
        event_type: path("confirmed.kind"),
        kind_from: Some(path("confirmed.kind")),
        payment_id: path("confirmed.payment_id"),
        booking_id: Some(path("confirmed.booking_id")),
        amount: Some(path("confirmed.amount")),
        amount_format: AmountFormat::Minor,
        currency: Some(path("confirmed.currency")),
        default_currency: None,
        amount_refunded: Some(path("confirmed.amount_refunded")),
        refund_id: Some(path("confirmed.refund_id")),
        refund_amount: Some(path("confirmed.refund_amount")),
        failure_message: Some(path("confirmed.failure_message")),
        types: [
            MappedKind::Succeeded,
            MappedKind::Failed,
            MappedKind::Processing,
            MappedKind::Canceled,
            MappedKind::Authorized,
            MappedKind::Refunded,
            MappedKind::Disputed,
            MappedKind::DisputeInquiry,
            MappedKind::DisputeWon,
            MappedKind::DisputeLost,
            MappedKind::RefundSucceeded,
            MappedKind::RefundFailed,
        ]
        .into_iter()
        .map(|k| (kind_word(k).to_string(), k))
        .collect(),
        currency_aliases: HashMap::new(),
        // The record is written in payhook's units already.
        currency_exponents: HashMap::new(),
        confirmed: false,
        query: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::presets::{mapping, path, types};

    fn lookup() -> Lookup {
        Lookup {
            base_url: "https://api.example.com".into(),
            credentials: vec!["key".into()],
            optional: vec![("site".into(), "s1".into())],
            token: None,
            request: Request::PostJson(json!({"apikey": "{key}", "site_id": "{site}",
                "transaction_id": "{id}", "fixed": 5, "nested": {"ref": "{ref}"}})),
            path: "/v1/payments/{id}".into(),
            headers: vec![("authorization".into(), "Bearer {key}".into())],
            id: path("id"),
            object: Some(path("data")),
            status: path("status"),
            statuses: vec![
                ("PAID".into(), Verdict::Is(MappedKind::Succeeded)),
                ("PENDING".into(), Verdict::Is(MappedKind::Processing)),
                ("DECLINED".into(), Verdict::Is(MappedKind::Failed)),
                ("NOT_FOUND".into(), Verdict::Unknown),
            ],
            amount: Some(path("amount")),
            amount_format: AmountFormat::Major,
            currency: Some(path("currency")),
            default_currency: None,
            booking_id: Some(path("order")),
            failure_message: None,
            unknown_status: Some(410),
        }
    }

    fn confirm() -> Confirm {
        Confirm::new(
            lookup(),
            "https://api.example.com/".into(),
            [("key".to_string(), Secret::new("sk_1"))].into(),
        )
    }

    fn notification_mapping() -> Mapping {
        Mapping {
            types: types(&[("paid", MappedKind::Succeeded)]),
            ..mapping("id", "type", "id")
        }
    }

    #[test]
    fn templates_fill_credentials_ids_and_fields_and_keep_ids_in_one_segment() {
        let c = confirm();
        let n = json!({"ref": "r-9"});
        let context = |id| Context {
            id,
            token: None,
            notification: &n,
            headers: &Value::Null,
            payload: b"",
        };
        assert_eq!(
            c.fill("/v1/payments/{id}", &context("../admin?x")),
            "/v1/payments/..%2Fadmin%3Fx"
        );
        assert_eq!(c.fill("Bearer {key}", &context("x")), "Bearer sk_1");
        let mut body = String::new();
        c.write_json(
            &mut body,
            match &c.lookup.request {
                Request::PostJson(b) => b,
                Request::Get => unreachable!(),
            },
            &context("tx\"1"),
        );
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            json!({"apikey": "sk_1", "site_id": "s1", "transaction_id": "tx\"1", "fixed": 5,
                "nested": {"ref": "r-9"}})
        );
        assert_eq!(c.base_url, "https://api.example.com");
    }

    #[test]
    fn answers_are_judged_against_the_notification() {
        let c = confirm();
        let m = notification_mapping();
        let n = json!({"id": "p1", "type": "paid"});
        let judge = |status: u16, answer: Value| c.judge(&m, &n, "paid", "p1", status, answer);
        match judge(
            200,
            json!({"data": {"status": "paid", "amount": "10.50", "currency": "EUR", "order": "bk"}}),
        ) {
            Outcome::Confirmed(record) => {
                assert_eq!(record["confirmed"]["kind"], "succeeded");
                assert_eq!(record["confirmed"]["amount"], 1050);
                assert_eq!(record["confirmed"]["currency"], "eur");
                assert_eq!(record["confirmed"]["booking_id"], "bk");
                assert_eq!(record["confirmed"]["payment_id"], "p1");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            judge(200, json!({"data": {"status": "DECLINED"}})),
            Outcome::Denied { .. }
        ));
        assert!(matches!(
            judge(200, json!({"data": {"status": "NOT_FOUND"}})),
            Outcome::Denied { .. }
        ));
        assert!(matches!(
            judge(200, json!({"data": {"status": "PENDING"}})),
            Outcome::Waiting(_)
        ));
        assert!(matches!(
            judge(200, json!({"data": {"status": "LOST"}})),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            judge(200, json!({"data": {}})),
            Outcome::Waiting(_)
        ));
        assert!(matches!(judge(404, json!({})), Outcome::Denied { .. }));
        assert!(matches!(judge(410, json!({})), Outcome::Denied { .. }));
        assert!(matches!(judge(401, json!({})), Outcome::Waiting(_)));
        assert!(matches!(judge(503, json!({})), Outcome::Waiting(_)));
        assert!(matches!(judge(400, json!({})), Outcome::Waiting(_)));
        match judge(
            200,
            json!({"data": {"status": "PAID", "amount": "10.505", "currency": "EUR"}}),
        ) {
            Outcome::Failed(why) => assert!(why.contains("10.505"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    /// A lookup whose API answers a verdict on the notification, as PayPal's does.
    fn verdict_lookup() -> Lookup {
        Lookup {
            base_url: "https://api.example".into(),
            credentials: vec!["webhook_id".into()],
            optional: vec![],
            token: None,
            request: Request::PostJson(json!({
                "transmission_id": "{headers.x-transmission-id}",
                "webhook_id": "{webhook_id}",
                "event": "{body}",
                "list": ["{id}", 1, null],
            })),
            path: "/verify".into(),
            headers: vec![],
            id: path("id"),
            object: None,
            status: path("verification_status"),
            statuses: vec![
                ("SUCCESS".into(), Verdict::Genuine),
                ("FAILURE".into(), Verdict::Forged),
            ],
            amount: None,
            amount_format: AmountFormat::Minor,
            currency: None,
            default_currency: None,
            booking_id: None,
            failure_message: None,
            unknown_status: None,
        }
    }

    fn verdict_confirm() -> Confirm {
        Confirm::new(
            verdict_lookup(),
            "https://api.example/".into(),
            [("webhook_id".to_string(), Secret::new("WH-1".to_string()))].into(),
        )
    }

    fn source_mapping() -> Mapping {
        Mapping {
            booking_id: Some(path("resource.custom_id")),
            amount: Some(path("resource.amount.value")),
            amount_format: AmountFormat::Major,
            currency: Some(path("resource.amount.currency_code")),
            types: types(&[("CAPTURE.COMPLETED", MappedKind::Succeeded)]),
            ..mapping("id", "event_type", "resource.id")
        }
    }

    fn notification(event_type: &str, value: &str) -> Value {
        json!({"id": "WH-9", "event_type": event_type, "resource": {
            "id": "CAP-1", "custom_id": "bk_1",
            "amount": {"value": value, "currency_code": "EUR"}}})
    }

    #[test]
    fn a_verdict_of_genuine_makes_the_record_of_the_notification_itself() {
        let n = notification("CAPTURE.COMPLETED", "119.50");
        let answer = json!({"verification_status": "SUCCESS"});
        let outcome = verdict_confirm().judge(
            &source_mapping(),
            &n,
            "CAPTURE.COMPLETED",
            "WH-9",
            200,
            answer.clone(),
        );
        let Outcome::Confirmed(record) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(
            record,
            json!({"confirmed": {
                "kind": "succeeded", "status": "SUCCESS", "payment_id": "CAP-1",
                "amount": 11950, "amount_refunded": null, "refund_id": null,
                "refund_amount": null, "currency": "eur",
                "booking_id": "bk_1", "failure_message": null,
            }, "answer": answer})
        );
        // What the ledger reads of it.
        let read = confirmed_mapping();
        assert_eq!(
            read.kind_from.unwrap().text(&record).as_deref(),
            Some("succeeded")
        );
        assert_eq!(read.amount.unwrap().value(&record), Some(&json!(11950)));
    }

    #[test]
    fn a_verdict_of_forged_denies_and_an_unmapped_type_is_confirmed_as_nothing() {
        let n = notification("CAPTURE.COMPLETED", "1.00");
        let outcome = verdict_confirm().judge(
            &source_mapping(),
            &n,
            "CAPTURE.COMPLETED",
            "WH-9",
            200,
            json!({"verification_status": "FAILURE"}),
        );
        let Outcome::Denied { why, .. } = outcome else {
            panic!("{outcome:?}");
        };
        assert!(why.contains("WH-9") && why.contains("FAILURE"), "{why}");

        let n = notification("CHECKOUT.ORDER.APPROVED", "1.00");
        let outcome = verdict_confirm().judge(
            &source_mapping(),
            &n,
            "CHECKOUT.ORDER.APPROVED",
            "WH-9",
            200,
            json!({"verification_status": "SUCCESS"}),
        );
        let Outcome::Confirmed(record) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(record["confirmed"]["kind"], Value::Null);

        // An amount finer than the currency's minor unit cannot be read.
        let n = notification("CAPTURE.COMPLETED", "1.005");
        let outcome = verdict_confirm().judge(
            &source_mapping(),
            &n,
            "CAPTURE.COMPLETED",
            "WH-9",
            200,
            json!({"verification_status": "SUCCESS"}),
        );
        assert!(matches!(outcome, Outcome::Failed(_)), "{outcome:?}");
    }

    #[test]
    fn a_request_body_carries_the_notification_byte_for_byte_and_its_headers() {
        let confirm = verdict_confirm();
        // Key order and `1.0` as posted: a re-serialized copy would sort the keys and write `1`.
        let payload = br#"{"z":1.0,"id":"WH-9","a":{"b":"\u00e9"}}"#;
        let notification: Value = serde_json::from_slice(payload).unwrap();
        let headers = json!({"x-transmission-id": "tr-\"1\""});
        let context = Context {
            id: "WH-9",
            token: None,
            notification: &notification,
            headers: &headers,
            payload,
        };
        let Request::PostJson(template) = &confirm.lookup.request else {
            unreachable!()
        };
        let mut out = String::new();
        confirm.write_json(&mut out, template, &context);
        assert_eq!(
            out,
            r#"{"event":{"z":1.0,"id":"WH-9","a":{"b":"\u00e9"}},"list":["WH-9",1,null],"transmission_id":"tr-\"1\"","webhook_id":"WH-1"}"#
        );
        let sent: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(sent["transmission_id"], "tr-\"1\"");

        // A body that is not JSON goes as a string.
        let context = Context {
            payload: b"id=1",
            ..context
        };
        let mut out = String::new();
        confirm.write_json(&mut out, &json!({"event": "{body}"}), &context);
        assert_eq!(out, r#"{"event":"id=1"}"#);
    }

    #[test]
    fn a_lookup_field_may_read_what_payhook_asked_with() {
        let p = |s: &str| Extract::parse(s).unwrap();
        let lookup = Lookup {
            base_url: "http://127.0.0.1:9".into(),
            credentials: vec![],
            optional: vec![],
            token: None,
            request: Request::Get,
            path: "/{id}".into(),
            headers: vec![],
            id: p("query.order_id"),
            object: None,
            status: p("status"),
            statuses: vec![("SUCCESS".into(), Verdict::Is(MappedKind::Succeeded))],
            amount: Some(p("$notification.query.amount")),
            amount_format: AmountFormat::Major,
            currency: None,
            default_currency: Some("XOF".into()),
            booking_id: Some(p("$notification.query.order_id")),
            failure_message: Some(p("message")),
            unknown_status: None,
        };
        let confirm = Confirm::new(lookup, "http://127.0.0.1:9".into(), HashMap::new());
        let notification = json!({"query": {"order_id": "bk_1", "amount": "10000"},
                                  "body": {"status": "SUCCESS", "amount": "1"}});
        let answer = json!({"status": "SUCCESS", "message": "ok", "amount": "5"});
        let Outcome::Confirmed(record) = confirm.judge(
            &confirmed_mapping(),
            &notification,
            "succeeded",
            "bk_1",
            201,
            answer,
        ) else {
            panic!("confirmed")
        };
        assert_eq!(record["confirmed"]["amount"], 10000);
        assert_eq!(record["confirmed"]["booking_id"], "bk_1");
        assert_eq!(record["confirmed"]["failure_message"], "ok");
        assert_eq!(record["confirmed"]["currency"], "xof");
    }
}
