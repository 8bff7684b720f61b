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
}

/// How a request to the provider's API is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Get,
    /// A JSON body; a string value `"{name}"` is replaced by the credential or notification field
    /// of that name.
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
    /// credentials.
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
    /// and judges its answer.
    pub async fn check(
        &self,
        http: &reqwest::Client,
        mapping: &Mapping,
        event_type: &str,
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
        let fill = |template: &str| self.fill(template, &id, token.as_deref(), &notification);
        let url = format!("{}{}", self.base_url, fill(&self.lookup.path));
        let mut request = match &self.lookup.request {
            Request::Get => http.get(&url),
            Request::PostJson(body) => {
                http.post(&url)
                    .json(&self.fill_json(body, &id, token.as_deref(), &notification))
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
                request = request.header(name, self.fill(value, "", None, &Value::Null));
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

    /// The value of `{name}` in a template: the payment id, the access token, a credential, or a
    /// field of the notification.
    fn value(&self, name: &str, id: &str, token: Option<&str>, notification: &Value) -> String {
        match name {
            "id" => id.to_string(),
            // Without a token step, a credential of that name (GoCardless's access token).
            "access_token" if token.is_some() => token.unwrap_or_default().to_string(),
            _ => match self.credentials.get(name) {
                Some(secret) => secret.expose().to_string(),
                None => Extract::parse(name)
                    .and_then(|e| e.text(notification))
                    .unwrap_or_default(),
            },
        }
    }

    fn fill(&self, template: &str, id: &str, token: Option<&str>, notification: &Value) -> String {
        let mut out = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}').map(|c| c + open) else {
                break;
            };
            out.push_str(&rest[..open]);
            let value = self.value(&rest[open + 1..close], id, token, notification);
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

    fn fill_json(
        &self,
        body: &Value,
        id: &str,
        token: Option<&str>,
        notification: &Value,
    ) -> Value {
        match body {
            Value::String(s) if s.starts_with('{') && s.ends_with('}') && s.len() > 2 => {
                Value::String(self.value(&s[1..s.len() - 1], id, token, notification))
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.fill_json(v, id, token, notification)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
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
        MappedKind::Canceled => "canceled",
        MappedKind::Refunded => "refunded",
        MappedKind::Disputed => "disputed",
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
        amount_refunded: None,
        failure_message: Some(path("confirmed.failure_message")),
        types: [
            MappedKind::Succeeded,
            MappedKind::Failed,
            MappedKind::Processing,
            MappedKind::Canceled,
            MappedKind::Refunded,
            MappedKind::Disputed,
        ]
        .into_iter()
        .map(|k| (kind_word(k).to_string(), k))
        .collect(),
        currency_aliases: HashMap::new(),
        confirmed: false,
        query: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
