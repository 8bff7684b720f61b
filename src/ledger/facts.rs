//! Facts: what one provider event establishes about one payment, read from its payload once.
//! A fact never depends on what arrived before it; [`super::state`] joins them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::providers::mapping::{Extract, MappedKind, Mapping};

/// The provider ids an event carries. A payment is every fact reachable through shared ids, so a
/// `checkout.session.completed` (session + intent) and a `charge.refunded` (charge + intent) meet
/// on the intent whichever comes first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout_session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<String>,
}

impl Refs {
    /// Every id present.
    pub fn ids(&self) -> Vec<&str> {
        [&self.payment_intent, &self.checkout_session, &self.charge]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect()
    }
}

/// What the event says happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FactKind {
    IntentSucceeded,
    IntentProcessing,
    IntentFailed {
        code: Option<String>,
        message: Option<String>,
    },
    IntentCanceled {
        reason: Option<String>,
    },
    /// `paid` is false for a delayed payment method: the money is still on its way.
    SessionCompleted {
        paid: bool,
    },
    SessionExpired,
    SessionAsyncSucceeded,
    SessionAsyncFailed,
    /// `amount_refunded` is the charge's running total, so several partial refunds (and repeats of
    /// one) are joined with `max`, never added.
    Refunded {
        amount_refunded: i64,
        full: bool,
    },
    DisputeOpened {
        status: Option<String>,
        reason: Option<String>,
    },
    DisputeClosed {
        status: Option<String>,
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub event_id: String,
    pub event_type: String,
    /// The provider's event time (unix seconds): ties between facts are broken by it, never by
    /// arrival order.
    pub occurred_at: i64,
    pub refs: Refs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booking_id: Option<String>,
    /// Minor units of `currency`, as the provider sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// When the money moved, if this event says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<i64>,
    #[serde(flatten)]
    pub kind: FactKind,
}

/// What the processor does with an inbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interpretation {
    Fact(Box<Fact>),
    /// A type payhook does not act on: stored, acknowledged, marked `ignored`.
    Ignored,
    /// A type payhook acts on, but the payload lacks what it needs. Retrying cannot help.
    Invalid(String),
}

/// Every Stripe event type the ledger acts on.
pub const STRIPE_TYPES: &[&str] = &[
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.canceled",
    "checkout.session.completed",
    "checkout.session.expired",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
];

/// Reads a Stripe event (already verified) into a fact.
pub fn interpret_stripe(event_type: &str, payload: &[u8]) -> Interpretation {
    if !STRIPE_TYPES.contains(&event_type) {
        return Interpretation::Ignored;
    }
    match read_stripe(event_type, payload) {
        Ok(fact) => Interpretation::Fact(Box::new(fact)),
        Err(message) => Interpretation::Invalid(message),
    }
}

fn read_stripe(event_type: &str, payload: &[u8]) -> Result<Fact, String> {
    let event: Value =
        serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let event_id = string(&event["id"]).ok_or("the event has no id")?;
    let occurred_at = event["created"]
        .as_i64()
        .ok_or("the event has no integer `created` time")?;
    let object = &event["data"]["object"];
    if !object.is_object() {
        return Err("the event has no data.object".into());
    }
    let mut fact = Fact {
        event_id,
        event_type: event_type.to_string(),
        occurred_at,
        refs: Refs::default(),
        booking_id: booking_id(object),
        amount: None,
        currency: string(&object["currency"]).map(|c| c.to_ascii_lowercase()),
        paid_at: None,
        kind: FactKind::IntentSucceeded,
    };
    let (prefix, _) = event_type.split_once('.').unwrap_or_default();
    match prefix {
        "payment_intent" => {
            fact.refs.payment_intent = string(&object["id"]);
            fact.refs.charge = id_of(&object["latest_charge"]);
            fact.amount = amount(&object["amount"])?;
            let error = &object["last_payment_error"];
            fact.kind = match event_type {
                "payment_intent.succeeded" => {
                    fact.paid_at = Some(occurred_at);
                    FactKind::IntentSucceeded
                }
                "payment_intent.processing" => FactKind::IntentProcessing,
                "payment_intent.canceled" => FactKind::IntentCanceled {
                    reason: string(&object["cancellation_reason"]),
                },
                _ => FactKind::IntentFailed {
                    code: string(&error["decline_code"]).or_else(|| string(&error["code"])),
                    message: string(&error["message"]),
                },
            };
            // A failed attempt's charge is not the payment's charge.
            if matches!(fact.kind, FactKind::IntentFailed { .. }) {
                fact.refs.charge = None;
            }
        }
        "checkout" => {
            fact.refs.checkout_session = string(&object["id"]);
            fact.refs.payment_intent = id_of(&object["payment_intent"]);
            fact.amount = amount(&object["amount_total"])?;
            let paid = matches!(
                object["payment_status"].as_str(),
                Some("paid" | "no_payment_required")
            );
            fact.kind = match event_type {
                "checkout.session.completed" => FactKind::SessionCompleted { paid },
                "checkout.session.expired" => FactKind::SessionExpired,
                "checkout.session.async_payment_succeeded" => FactKind::SessionAsyncSucceeded,
                _ => FactKind::SessionAsyncFailed,
            };
            if paid && fact.kind != FactKind::SessionExpired {
                fact.paid_at = Some(occurred_at);
            }
        }
        _ if event_type == "charge.refunded" => {
            fact.refs.charge = string(&object["id"]);
            fact.refs.payment_intent = id_of(&object["payment_intent"]);
            fact.amount = amount(&object["amount"])?;
            let amount_refunded = amount(&object["amount_refunded"])?
                .ok_or("charge.refunded has no integer amount_refunded")?;
            let full = object["refunded"].as_bool() == Some(true)
                || fact.amount.is_some_and(|a| amount_refunded >= a);
            fact.paid_at = object["created"].as_i64();
            fact.kind = FactKind::Refunded {
                amount_refunded,
                full,
            };
        }
        _ => {
            // charge.dispute.*: a dispute's amount may be part of the charge, so it is not the payment's.
            fact.refs.charge = id_of(&object["charge"]);
            fact.refs.payment_intent = id_of(&object["payment_intent"]);
            fact.currency = None;
            let status = string(&object["status"]);
            let reason = string(&object["reason"]);
            fact.kind = if event_type == "charge.dispute.created" {
                FactKind::DisputeOpened { status, reason }
            } else {
                FactKind::DisputeClosed { status, reason }
            };
        }
    }
    if fact.refs.ids().is_empty() {
        return Err(format!(
            "{event_type} names no payment intent, checkout session or charge"
        ));
    }
    Ok(fact)
}

/// Reads an event of a source with a payload mapping (already verified) into a fact. Its id is
/// the inbox's (read by the mapping at ingest); its time is `now` unless the provider's payload
/// says otherwise, which mapped providers rarely do.
pub fn interpret_mapped(
    mapping: &Mapping,
    event_id: &str,
    event_type: &str,
    payload: &[u8],
    now: i64,
) -> Interpretation {
    let Some(&kind) = mapping.types.get(event_type) else {
        return Interpretation::Ignored;
    };
    match read_mapped(mapping, kind, event_id, event_type, payload, now) {
        Ok(fact) => Interpretation::Fact(Box::new(fact)),
        Err(message) => Interpretation::Invalid(message),
    }
}

fn read_mapped(
    mapping: &Mapping,
    kind: MappedKind,
    event_id: &str,
    event_type: &str,
    payload: &[u8],
    now: i64,
) -> Result<Fact, String> {
    let event: Value =
        serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let field = |e: &Option<Extract>| e.as_ref().and_then(|e| e.text(&event));
    let number = |name: &str, e: &Option<Extract>| -> Result<Option<i64>, String> {
        match e.as_ref().and_then(|e| e.value(&event)) {
            None => Ok(None),
            Some(v) => amount(v).map_err(|m| format!("{name}: {m}")),
        }
    };
    let payment = mapping
        .payment_id
        .text(&event)
        .ok_or("the payload has no payment id where the mapping says")?;
    let amount_value = number("amount", &mapping.amount)?;
    let mut fact = Fact {
        event_id: event_id.to_string(),
        event_type: event_type.to_string(),
        occurred_at: now,
        refs: Refs {
            payment_intent: Some(payment),
            ..Refs::default()
        },
        booking_id: field(&mapping.booking_id),
        amount: amount_value,
        currency: field(&mapping.currency).map(|c| mapping.currency(&c)),
        paid_at: None,
        kind: FactKind::IntentProcessing,
    };
    fact.kind = match kind {
        MappedKind::Succeeded => {
            fact.paid_at = Some(now);
            FactKind::IntentSucceeded
        }
        MappedKind::Processing => FactKind::IntentProcessing,
        MappedKind::Canceled => FactKind::IntentCanceled { reason: None },
        MappedKind::Failed => FactKind::IntentFailed {
            code: None,
            message: field(&mapping.failure_message),
        },
        MappedKind::Refunded => {
            let refunded = number("amount_refunded", &mapping.amount_refunded)?
                .or(amount_value)
                .ok_or("a refund needs amount_refunded or amount in the mapping")?;
            FactKind::Refunded {
                amount_refunded: refunded,
                full: amount_value.is_none_or(|a| refunded >= a),
            }
        }
        MappedKind::Disputed => FactKind::DisputeOpened {
            status: None,
            reason: None,
        },
    };
    Ok(fact)
}

/// The booking a payment is for: `metadata.bookingId`, `metadata.booking_id`, then `client_reference_id`.
fn booking_id(object: &Value) -> Option<String> {
    string(&object["metadata"]["bookingId"])
        .or_else(|| string(&object["metadata"]["booking_id"]))
        .or_else(|| string(&object["client_reference_id"]))
}

/// A non-empty string.
fn string(value: &Value) -> Option<String> {
    value.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// An id given either as a string or as an expanded object.
fn id_of(value: &Value) -> Option<String> {
    string(value).or_else(|| string(&value["id"]))
}

/// An amount in minor units: absent, or a non-negative integer. A float is refused rather than rounded.
fn amount(value: &Value) -> Result<Option<i64>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_i64() {
            Some(a) if a >= 0 => Ok(Some(a)),
            _ => Err(format!(
                "amount {n} is not a non-negative integer number of minor units"
            )),
        },
        other => Err(format!("amount {other} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::stripe_events::build_event;

    fn fact(event_type: &str, overrides: &[&str]) -> Fact {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let event = build_event(event_type, &overrides, 1_700_000_000).unwrap();
        match interpret_stripe(event_type, event.to_string().as_bytes()) {
            Interpretation::Fact(f) => *f,
            other => panic!("{event_type}: {other:?}"),
        }
    }

    #[test]
    fn every_acted_on_type_becomes_a_fact_with_its_ids() {
        for t in STRIPE_TYPES {
            let f = fact(t, &[]);
            assert!(!f.refs.ids().is_empty(), "{t}");
            // A dispute names its charge and intent, not the booking: it joins the payment that does.
            let booking = (!t.starts_with("charge.dispute")).then_some("booking-123");
            assert_eq!(f.booking_id.as_deref(), booking, "{t}");
        }
        let session = fact("checkout.session.completed", &["payment_intent=pi_1"]);
        assert_eq!(session.refs.payment_intent.as_deref(), Some("pi_1"));
        assert!(session.refs.checkout_session.unwrap().starts_with("cs_"));
        assert_eq!(session.kind, FactKind::SessionCompleted { paid: true });
        assert_eq!(session.amount, Some(2000));
    }

    #[test]
    fn refunds_carry_the_running_total() {
        let f = fact("charge.refunded", &["amount_refunded=500"]);
        assert_eq!(
            f.kind,
            FactKind::Refunded {
                amount_refunded: 500,
                full: false
            }
        );
        let f = fact("charge.refunded", &[]);
        assert_eq!(
            f.kind,
            FactKind::Refunded {
                amount_refunded: 2000,
                full: true
            }
        );
    }

    #[test]
    fn failures_keep_the_decline_and_drop_the_failed_charge() {
        let f = fact(
            "payment_intent.payment_failed",
            &["latest_charge=ch_failed"],
        );
        assert_eq!(
            f.kind,
            FactKind::IntentFailed {
                code: Some("generic_decline".into()),
                message: Some("Your card was declined.".into())
            }
        );
        assert_eq!(f.refs.charge, None);
    }

    #[test]
    fn booking_id_comes_from_metadata_or_client_reference() {
        let f = fact(
            "payment_intent.succeeded",
            &["metadata.bookingId=", "metadata.booking_id=b-2"],
        );
        assert_eq!(f.booking_id.as_deref(), Some("b-2"));
        let f = fact(
            "checkout.session.completed",
            &["metadata.booking_id=", "client_reference_id=b-3"],
        );
        assert_eq!(f.booking_id.as_deref(), Some("b-3"));
    }

    #[test]
    fn unknown_types_are_ignored_and_bad_payloads_are_invalid() {
        assert_eq!(
            interpret_stripe("customer.created", b"{}"),
            Interpretation::Ignored
        );
        let bad = |body: &str| match interpret_stripe("payment_intent.succeeded", body.as_bytes()) {
            Interpretation::Invalid(m) => m,
            other => panic!("{other:?}"),
        };
        assert!(bad("nope").contains("not JSON"));
        assert!(bad(r#"{"id":"evt_1","data":{"object":{}}}"#).contains("created"));
        assert!(bad(r#"{"id":"evt_1","created":1,"data":{"object":{}}}"#).contains("names no"));
        assert!(
            bad(r#"{"id":"evt_1","created":1,"data":{"object":{"id":"pi_1","amount":20.5}}}"#)
                .contains("integer")
        );
    }
}
