//! Where a provider without Stripe's event shape keeps what payhook needs: the event's id (or a
//! template of fields, for providers that send none), its type, the payment's id, the booking, the
//! amount and currency; and what each of the provider's event types means for a payment.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

/// A value read from the payload: a dotted path (`data.reference`), or a template of paths
/// (`{transaction_id}:{event}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extract {
    Path(Vec<String>),
    Template(Vec<Part>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Field(Vec<String>),
}

impl Extract {
    /// Reads `spec`: a template when it holds `{`, else a path. `None` for an empty spec or an
    /// unclosed `{`.
    pub fn parse(spec: &str) -> Option<Extract> {
        let path = |p: &str| -> Option<Vec<String>> {
            let parts: Vec<String> = p.trim().split('.').map(str::to_string).collect();
            parts.iter().all(|s| !s.is_empty()).then_some(parts)
        };
        if !spec.contains('{') {
            return path(spec).map(Extract::Path);
        }
        let mut parts = Vec::new();
        let mut rest = spec;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..].find('}')? + open;
            parts.push(Part::Field(path(&rest[open + 1..close])?));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Some(Extract::Template(parts))
    }

    /// The value as text (strings as they are, numbers written out); `None` if a field is
    /// missing, empty or not a scalar.
    pub fn text(&self, payload: &Value) -> Option<String> {
        match self {
            Extract::Path(path) => scalar(lookup(payload, path)?),
            Extract::Template(parts) => parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => Some(t.clone()),
                    Part::Field(path) => scalar(lookup(payload, path)?),
                })
                .collect(),
        }
    }

    /// The raw JSON value at a path (a template has none).
    pub fn value<'a>(&self, payload: &'a Value) -> Option<&'a Value> {
        match self {
            Extract::Path(path) => lookup(payload, path),
            Extract::Template(_) => None,
        }
    }
}

fn lookup<'a>(payload: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(payload, |v, key| v.get(key))
        .filter(|v| !v.is_null())
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What one of the provider's event types means for its payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappedKind {
    Succeeded,
    Failed,
    Processing,
    Canceled,
    /// The amount refunded so far is `amount_refunded` (or the whole `amount`).
    Refunded,
    Disputed,
}

/// A source's payload mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub event_id: Extract,
    pub event_type: Extract,
    pub payment_id: Extract,
    pub booking_id: Option<Extract>,
    pub amount: Option<Extract>,
    pub currency: Option<Extract>,
    pub amount_refunded: Option<Extract>,
    pub failure_message: Option<Extract>,
    /// The provider's event types payhook acts on; others are stored and `ignored`.
    pub types: HashMap<String, MappedKind>,
    /// The provider's currency words to ISO 4217 codes (`FCFA` to `XOF` or `XAF`), matched without
    /// regard to case.
    pub currency_aliases: HashMap<String, String>,
}

impl Mapping {
    /// The currency as an ISO code, lowercase, aliases applied.
    pub fn currency(&self, raw: &str) -> String {
        let upper = raw.trim().to_ascii_uppercase();
        self.currency_aliases
            .iter()
            .find(|(alias, _)| alias.to_ascii_uppercase() == upper)
            .map(|(_, iso)| iso.to_ascii_lowercase())
            .unwrap_or_else(|| upper.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_templates_read_scalars() {
        let payload = json!({"event": "payment.completed", "transaction_id": "txn_1",
                             "data": {"id": 42, "ok": true, "empty": "", "obj": {}}});
        let read = |spec: &str| Extract::parse(spec).unwrap().text(&payload);
        assert_eq!(read("event").as_deref(), Some("payment.completed"));
        assert_eq!(read("data.id").as_deref(), Some("42"));
        assert_eq!(
            read("{transaction_id}:{event}").as_deref(),
            Some("txn_1:payment.completed")
        );
        assert_eq!(
            read("tx-{data.id}-{data.ok}").as_deref(),
            Some("tx-42-true")
        );
        assert_eq!(read("data.missing"), None);
        assert_eq!(read("data.empty"), None);
        assert_eq!(read("data.obj"), None);
        assert_eq!(read("{transaction_id}:{nope}"), None);
        assert_eq!(Extract::parse("{unclosed"), None);
        assert_eq!(Extract::parse("a..b"), None);
        assert_eq!(Extract::parse(""), None);
    }
}
