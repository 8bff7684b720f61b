//! Reading facts from provider payloads: Stripe's events, and other sources' through their
//! mapping. The facts themselves are [`crate::domain::facts`].

use serde_json::Value;

use crate::domain::facts::{Fact, FactKind, Refs, RefundSeen};
use crate::providers::mapping::{Extract, MappedKind, Mapping};
use crate::providers::stripe::STRIPE_TYPES;

/// What the processor does with an inbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interpretation {
    Fact(Box<Fact>),
    /// A type payhook does not act on: stored, acknowledged, marked `ignored`.
    Ignored,
    /// A type payhook acts on that says nothing about money (a Checkout Session in `setup` mode):
    /// marked `ignored`, with why.
    NoPayment(String),
    /// A thin event notification: its related object must be fetched from the provider's API
    /// first. Marked `waiting` until it is.
    Fetch,
    /// A type payhook acts on, but the payload lacks what it needs. Retrying cannot help.
    Invalid(String),
}

/// Reads a Stripe event (already verified) into a fact. A thin event's type (`v1.charge.refunded`)
/// reads as the snapshot type it stands for, once its object has been fetched into `payload`.
pub fn interpret_stripe(event_type: &str, payload: &[u8]) -> Interpretation {
    if event_type == super::missed::GENERATION_FAILURE {
        // An event Stripe could not generate: read as the snapshot of its related object
        // (`ledger::missed`) once fetched.
        let snapshot_type = serde_json::from_slice::<Value>(payload)
            .ok()
            .filter(|e| e["data"]["object"].is_object())
            .and_then(|e| e["type"].as_str().map(str::to_string));
        return match snapshot_type {
            Some(t) if t != event_type => interpret_stripe(&t, payload),
            Some(_) => Interpretation::Ignored,
            None => Interpretation::Fetch,
        };
    }
    let thin = event_type.strip_prefix("v1.");
    let event_type = thin.unwrap_or(event_type);
    if !STRIPE_TYPES.contains(&event_type) {
        return Interpretation::Ignored;
    }
    if thin.is_some() && !payload_has_object(payload) {
        // A thin event notification carries no object: it is fetched from Stripe's API first.
        return Interpretation::Fetch;
    }
    match read_stripe(event_type, payload) {
        Ok(Some(fact)) => Interpretation::Fact(Box::new(fact)),
        Ok(None) => Interpretation::NoPayment(format!(
            "{event_type}: the Checkout Session takes no payment (setup mode or no_payment_required)"
        )),
        Err(message) => Interpretation::Invalid(message),
    }
}

/// The fact of a Stripe event; `None` for a Checkout Session that takes no money.
fn read_stripe(event_type: &str, payload: &[u8]) -> Result<Option<Fact>, String> {
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
        booking_id: usable_booking(booking_id(object))?,
        amount: None,
        amount_captured: None,
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
                    // What was captured: below `amount` after a partial capture.
                    fact.amount_captured = amount(&object["amount_received"])?.filter(|&a| a > 0);
                    FactKind::IntentSucceeded
                }
                "payment_intent.processing" => FactKind::IntentProcessing,
                "payment_intent.amount_capturable_updated" => FactKind::IntentAuthorized,
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
            // A session in setup mode never takes money, even when it expires: it is never a
            // payment (docs/ledger.md). One whose total a discount brought to nothing completes
            // without taking money and never confirms a booking; its expiry still releases it.
            let setup = object["mode"].as_str() == Some("setup");
            let takes_no_money = object["payment_status"].as_str() == Some("no_payment_required");
            if setup || (takes_no_money && event_type != "checkout.session.expired") {
                return Ok(None);
            }
            let paid = object["payment_status"].as_str() == Some("paid");
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
        _ if prefix == "refund" || event_type == "charge.refund.updated" => {
            // refund.created / updated / failed and charge.refund.updated carry the refund.
            fact.refs.charge = id_of(&object["charge"]);
            fact.refs.payment_intent = id_of(&object["payment_intent"]);
            fact.kind = FactKind::RefundUpdated {
                refund: refund_seen(object)?,
            };
        }
        _ if event_type.starts_with("charge.dispute.") => {
            // A dispute's amount may be part of the charge, so it is not the payment's amount.
            fact.refs.charge = id_of(&object["charge"]);
            fact.refs.payment_intent = id_of(&object["payment_intent"]);
            let status = string(&object["status"]);
            let reason = string(&object["reason"]);
            let dispute_id = string(&object["id"]);
            let disputed = amount(&object["amount"])?;
            fact.kind = match event_type {
                "charge.dispute.created" => FactKind::DisputeOpened {
                    status,
                    reason,
                    dispute_id,
                    disputed,
                },
                "charge.dispute.updated" => FactKind::DisputeUpdated {
                    status,
                    reason,
                    dispute_id,
                    disputed,
                },
                "charge.dispute.closed" => FactKind::DisputeClosed {
                    status,
                    reason,
                    dispute_id,
                    disputed,
                },
                _ => FactKind::DisputeFunds {
                    status,
                    reason,
                    dispute_id,
                    disputed,
                    withdrawn: event_type == "charge.dispute.funds_withdrawn",
                },
            };
        }
        _ => {
            // charge.captured, charge.expired, charge.refunded: a charge.
            fact.refs.charge = string(&object["id"]);
            fact.refs.payment_intent = id_of(&object["payment_intent"]);
            fact.amount = amount(&object["amount"])?;
            if object["captured"].as_bool() != Some(false) {
                fact.amount_captured = amount(&object["amount_captured"])?.filter(|&a| a > 0);
            }
            let uncaptured = object["captured"].as_bool() == Some(false);
            fact.kind = match event_type {
                // Releasing an authorisation that was never captured takes no money back: none
                // was taken.
                "charge.expired" => FactKind::AuthorizationExpired,
                "charge.refunded" if uncaptured => FactKind::AuthorizationExpired,
                "charge.captured" => {
                    fact.paid_at = Some(occurred_at);
                    FactKind::ChargeCaptured
                }
                _ => {
                    let amount_refunded = amount(&object["amount_refunded"])?
                        .ok_or("charge.refunded has no integer amount_refunded")?;
                    // Before 2025-03-31.basil a partial capture released the rest of the
                    // authorisation as a Refund, counted in `amount_refunded`
                    // (docs.stripe.com/changelog/basil/2025-03-31/remove-refund-from-partial-capture-and-payment-cancellation-flow):
                    // that part returns nothing to the customer. Its Refund object is counted
                    // by this snapshot, so it corrects that too (see `state::refunds`).
                    let released = match (fact.amount, fact.amount_captured) {
                        (Some(authorized), Some(taken))
                            if taken < authorized && releases_as_refunds(&event) =>
                        {
                            authorized - taken
                        }
                        _ => 0,
                    };
                    let amount_refunded = (amount_refunded - released).max(0);
                    let paid = fact.amount_captured.or(fact.amount);
                    let full = object["refunded"].as_bool() == Some(true)
                        || paid.is_some_and(|a| amount_refunded >= a);
                    fact.paid_at = object["created"].as_i64();
                    let mut refunds = Vec::new();
                    if let Some(list) = object["refunds"]["data"].as_array() {
                        for refund in list {
                            refunds.push(refund_seen(refund)?);
                        }
                    }
                    FactKind::Refunded {
                        amount_refunded,
                        full,
                        refunds,
                    }
                }
            };
        }
    }
    if fact.refs.ids().is_empty() {
        return Err(format!(
            "{event_type} names no payment intent, checkout session or charge"
        ));
    }
    Ok(Some(fact))
}

/// Whether the event is written in an API version before 2025-03-31.basil, whose partial
/// captures and cancellations released the authorisation with a Refund. An event without a
/// version is read as today's.
fn releases_as_refunds(event: &Value) -> bool {
    event["api_version"]
        .as_str()
        .is_some_and(|v| v.get(..10).is_some_and(|date| date < "2025-03-31"))
}

/// Whether an event carries its object (`data.object`), as snapshot events do.
fn payload_has_object(payload: &[u8]) -> bool {
    serde_json::from_slice::<Value>(payload).is_ok_and(|e| e["data"]["object"].is_object())
}

/// A Stripe refund object.
fn refund_seen(object: &Value) -> Result<RefundSeen, String> {
    Ok(RefundSeen {
        id: string(&object["id"]).ok_or("a refund has no id")?,
        amount: amount(&object["amount"])?.ok_or("a refund has no integer amount")?,
        status: string(&object["status"]).unwrap_or_else(|| "succeeded".into()),
        created: object["created"].as_i64(),
        failure_reason: string(&object["failure_reason"]),
    })
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
    if mapping.kind_from.is_none() && !mapping.types.contains_key(event_type) {
        return Interpretation::Ignored;
    }
    let event = match mapping.format.read(payload) {
        Ok(event) => event,
        Err(why) => return Interpretation::Invalid(format!("the payload is {why}")),
    };
    let named = match &mapping.kind_from {
        Some(e) => e.text(&event),
        None => Some(event_type.to_string()),
    };
    let Some(&kind) = named.and_then(|n| mapping.types.get(&n)) else {
        return Interpretation::Ignored;
    };
    match read_mapped(mapping, kind, event_id, event_type, &event, now) {
        Ok(fact) => Interpretation::Fact(Box::new(fact)),
        Err(message) => Interpretation::Invalid(message),
    }
}

fn read_mapped(
    mapping: &Mapping,
    kind: MappedKind,
    event_id: &str,
    event_type: &str,
    event: &Value,
    now: i64,
) -> Result<Fact, String> {
    let field = |e: &Option<Extract>| e.as_ref().and_then(|e| e.text(event));
    let currency = field(&mapping.currency)
        .or_else(|| mapping.default_currency.clone())
        .map(|c| mapping.currency(&c));
    let number = |name: &str, e: &Option<Extract>| -> Result<Option<i64>, String> {
        match e.as_ref().and_then(|e| e.value(event)) {
            None => Ok(None),
            Some(v) => mapping
                .minor_units(v, currency.as_deref())
                .map(Some)
                .map_err(|m| format!("{name}: {m}")),
        }
    };
    let payment = mapping
        .payment_id
        .text(event)
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
        booking_id: usable_booking(field(&mapping.booking_id))?,
        amount: amount_value,
        amount_captured: None,
        currency: currency.clone(),
        paid_at: None,
        kind: FactKind::IntentProcessing,
    };
    fact.kind = match kind {
        MappedKind::Succeeded => {
            fact.paid_at = Some(now);
            FactKind::IntentSucceeded
        }
        MappedKind::Processing => FactKind::IntentProcessing,
        MappedKind::Authorized => FactKind::IntentAuthorized,
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
                refunds: Vec::new(),
            }
        }
        MappedKind::Disputed => FactKind::DisputeOpened {
            status: None,
            reason: None,
            dispute_id: None,
            disputed: None,
        },
        // Stripe's words for the same moments, which the ledger's dispute rules read.
        MappedKind::DisputeInquiry => FactKind::DisputeOpened {
            status: Some("warning_needs_response".into()),
            reason: None,
            dispute_id: None,
            disputed: None,
        },
        MappedKind::DisputeWon | MappedKind::DisputeLost => FactKind::DisputeClosed {
            status: Some(
                if kind == MappedKind::DisputeWon {
                    "won"
                } else {
                    "lost"
                }
                .into(),
            ),
            reason: None,
            dispute_id: None,
            disputed: None,
        },
        MappedKind::RefundSucceeded | MappedKind::RefundFailed => {
            let id = field(&mapping.refund_id)
                .ok_or("a refund event needs the refund's id where the mapping's refund_id says")?;
            let amount = number("refund_amount", &mapping.refund_amount)?
                .ok_or("a refund event needs its amount where the mapping's refund_amount says")?;
            let failed = kind == MappedKind::RefundFailed;
            if mapping.amount == mapping.refund_amount {
                // The event's `amount` is this refund's (Checkout.com's `payment_refunded`),
                // not the payment's.
                fact.amount = None;
            }
            FactKind::RefundUpdated {
                refund: RefundSeen {
                    id,
                    amount,
                    status: if failed { "failed" } else { "succeeded" }.into(),
                    created: None,
                    failure_reason: failed.then(|| field(&mapping.failure_message)).flatten(),
                },
            }
        }
    };
    Ok(fact)
}

/// The booking a payment is for: `metadata.bookingId`, `metadata.booking_id`, then `client_reference_id`.
fn booking_id(object: &Value) -> Option<String> {
    string(&object["metadata"]["bookingId"])
        .or_else(|| string(&object["metadata"]["booking_id"]))
        .or_else(|| string(&object["client_reference_id"]))
}

/// A booking id the booking service's route can take as one path segment: `.` and `..` would
/// make it another URL (`/api/v1/bookings/../payment-status`), and URL parsers drop tabs and
/// line breaks (`a\tb` would reach booking `ab`), so an event naming one is refused.
fn usable_booking(booking: Option<String>) -> Result<Option<String>, String> {
    match booking.as_deref() {
        Some(dots @ ("." | "..")) => Err(format!(
            "booking id {dots:?} cannot name a booking: it would change the booking service's URL path"
        )),
        Some(b) if b.chars().any(char::is_control) => Err(format!(
            "booking id {b:?} has a control character: it cannot name a booking"
        )),
        _ => Ok(booking),
    }
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
            // A dispute or a refund names its charge and intent, not the booking: it joins the
            // payment that does.
            let booking = (!t.starts_with("charge.dispute")
                && !t.starts_with("refund.")
                && *t != "charge.refund.updated")
                .then_some("booking-123");
            assert_eq!(f.booking_id.as_deref(), booking, "{t}");
        }
        let session = fact("checkout.session.completed", &["payment_intent=pi_1"]);
        assert_eq!(session.refs.payment_intent.as_deref(), Some("pi_1"));
        assert!(session.refs.checkout_session.unwrap().starts_with("cs_"));
        assert_eq!(session.kind, FactKind::SessionCompleted { paid: true });
        assert_eq!(session.amount, Some(2000));
    }

    #[test]
    fn a_thin_event_is_never_read_as_a_snapshot() {
        let snapshot = build_event("payment_intent.succeeded", &[], 1_700_000_000).unwrap();
        let thin = crate::providers::stripe_events::thin_event(&snapshot);
        assert_eq!(thin["type"], "v1.payment_intent.succeeded");
        assert_eq!(
            interpret_stripe("v1.payment_intent.succeeded", thin.to_string().as_bytes()),
            Interpretation::Fetch
        );
        // Once its object is fetched, it reads as the snapshot type it stands for.
        let fetched = interpret_stripe(
            "v1.payment_intent.succeeded",
            snapshot.to_string().as_bytes(),
        );
        assert!(matches!(fetched, Interpretation::Fact(_)), "{fetched:?}");
    }

    #[test]
    fn a_dot_booking_id_is_refused_with_why() {
        for dots in [".", ".."] {
            let event = build_event(
                "payment_intent.succeeded",
                &[format!("metadata.bookingId={dots}")],
                1_700_000_000,
            )
            .unwrap();
            match interpret_stripe("payment_intent.succeeded", event.to_string().as_bytes()) {
                Interpretation::Invalid(why) => assert!(why.contains("URL path"), "{why}"),
                other => panic!("{dots}: {other:?}"),
            }
        }
        let event = build_event(
            "payment_intent.succeeded",
            &["metadata.bookingId=a\tb".to_string()],
            1_700_000_000,
        )
        .unwrap();
        match interpret_stripe("payment_intent.succeeded", event.to_string().as_bytes()) {
            Interpretation::Invalid(why) => assert!(why.contains("control character"), "{why}"),
            other => panic!("a tab: {other:?}"),
        }
    }

    #[test]
    fn every_fact_reads_back_as_stored() {
        // Facts are stored as JSON and joined again later: a field that does not survive the
        // trip would change the ledger on the next event.
        for t in STRIPE_TYPES {
            let f = fact(t, &[]);
            let stored = serde_json::to_string(&f).unwrap();
            let back: Fact = serde_json::from_str(&stored).unwrap();
            assert_eq!(back, f, "{t}: {stored}");
        }
    }

    #[test]
    fn refunds_carry_the_running_total() {
        let f = fact("charge.refunded", &["amount_refunded=500"]);
        assert_eq!(
            f.kind,
            FactKind::Refunded {
                amount_refunded: 500,
                full: false,
                refunds: vec![]
            }
        );
        let f = fact("charge.refunded", &[]);
        assert_eq!(
            f.kind,
            FactKind::Refunded {
                amount_refunded: 2000,
                full: true,
                refunds: vec![]
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
