//! Stripe-shaped events, as Stripe sends them, for `payhook trigger` (and, later, the sandbox provider).
//! Ids carry Stripe's prefixes (`evt_`, `pi_`, `cs_`, `ch_`, `dp_`); amounts are in minor units.

use crate::domain::ids::{new_id, random_token};
use serde_json::{Value, json};

/// Every event type `payhook trigger` can build: the types the ledger acts on.
pub const TRIGGER_TYPES: &[&str] = super::stripe::STRIPE_TYPES;

const API_VERSION: &str = "2024-06-20";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FixtureError {
    #[error("unknown event type {0:?}; known types: {known}", known = TRIGGER_TYPES.join(", "))]
    UnknownType(String),
    #[error("--add {0:?}: expected path=value, e.g. metadata.bookingId=booking-123")]
    BadOverride(String),
    #[error("--add {0:?}: {1} is not an object in this event")]
    NotAnObject(String, String),
}

/// The fields an event's booking is read from (`crate::ledger`'s order).
const BOOKING_FIELDS: [&str; 3] = [
    "metadata.bookingId",
    "metadata.booking_id",
    "client_reference_id",
];

/// Builds the event of `event_type`, applying `overrides` (`path=value`, paths relative to
/// `data.object`, optionally prefixed `resource:` as `stripe trigger --add` accepts).
pub fn build_event(
    event_type: &str,
    overrides: &[String],
    now: i64,
) -> Result<Value, FixtureError> {
    let mut object = object_for(event_type, now)?;
    for raw in overrides {
        apply_override(&mut object, raw)?;
    }
    // The booking named once is the event's booking: the object's other booking fields (a
    // session carries `client_reference_id` and `metadata.booking_id`) say the same.
    if let Some(booking) = named_booking(overrides) {
        for field in BOOKING_FIELDS {
            let (parent, key) = match field.split_once('.') {
                Some((parent, key)) => (object.get_mut(parent), key),
                None => (Some(&mut object), field),
            };
            if let Some(slot) = parent
                .and_then(|p| p.get_mut(key))
                .filter(|v| v.is_string())
            {
                *slot = json!(booking);
            }
        }
    }
    // A new `amount` is what a full capture took, unless the captured amount is given too (as
    // Stripe's own objects agree).
    let names = |field: &str| {
        overrides.iter().any(|o| {
            o.split('=')
                .next()
                .is_some_and(|p| p.rsplit(':').next() == Some(field))
        })
    };
    if names("amount") {
        for captured in ["amount_received", "amount_captured"] {
            let taken = object[captured].as_i64().is_some_and(|a| a > 0);
            if taken && !names(captured) {
                object[captured] = object["amount"].clone();
            }
        }
    }
    Ok(json!({
        "id": new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": now,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": new_id("req"), "idempotency_key": null },
        "type": event_type,
    }))
}

/// The booking `overrides` name (the last `--add` of a booking field), if any.
pub fn named_booking(overrides: &[String]) -> Option<String> {
    overrides.iter().rev().find_map(|raw| {
        let (path, value) = raw.split_once('=')?;
        let path = path.split_once(':').map_or(path, |(_, p)| p);
        (BOOKING_FIELDS.contains(&path) && !value.is_empty()).then(|| value.to_string())
    })
}

/// Whether an event of `event_type` happens to a payment that exists already (its refund,
/// dispute, capture, cancellation, a session's delayed outcome): `payhook trigger` continues the
/// payment it last sent rather than inventing one.
pub fn follows_a_payment(event_type: &str) -> bool {
    event_type.starts_with("charge.")
        || event_type.starts_with("refund.")
        || matches!(
            event_type,
            "payment_intent.canceled"
                | "checkout.session.async_payment_succeeded"
                | "checkout.session.async_payment_failed"
        )
}

/// The ids of one payment, kept between `payhook trigger` runs so that a story continues: a
/// success, then a refund of that same payment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Story {
    pub payment_intent: String,
    pub charge: String,
    pub checkout_session: String,
    pub refund: String,
    pub dispute: String,
    pub booking: Option<String>,
}

impl Story {
    /// A payment with new ids.
    pub fn new() -> Story {
        Story {
            payment_intent: new_id("pi"),
            charge: new_id("ch"),
            checkout_session: new_id("cs_test"),
            refund: new_id("re"),
            dispute: new_id("dp"),
            booking: None,
        }
    }

    /// This story as `event` continues it: the ids the event carries replace the kept ones.
    pub fn then(mut self, event: &Value) -> Story {
        let o = &event["data"]["object"];
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let id = text(&o["id"]);
        let kind = o["object"].as_str().unwrap_or_default();
        let set = |slot: &mut String, v: Option<String>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        match kind {
            "payment_intent" => {
                set(&mut self.payment_intent, id);
                set(&mut self.charge, text(&o["latest_charge"]));
            }
            "checkout.session" => {
                set(&mut self.checkout_session, id);
                set(&mut self.payment_intent, text(&o["payment_intent"]));
            }
            "charge" => {
                set(&mut self.charge, id);
                set(&mut self.payment_intent, text(&o["payment_intent"]));
            }
            "refund" | "dispute" => {
                if kind == "refund" {
                    set(&mut self.refund, id);
                } else {
                    set(&mut self.dispute, id);
                }
                set(&mut self.charge, text(&o["charge"]));
                set(&mut self.payment_intent, text(&o["payment_intent"]));
            }
            _ => {}
        }
        let booking = text(&o["metadata"]["bookingId"])
            .or_else(|| text(&o["metadata"]["booking_id"]))
            .or_else(|| text(&o["client_reference_id"]));
        if booking.is_some() {
            self.booking = booking;
        }
        self
    }

    /// The `--add` overrides that make an event of `event_type` about this payment.
    pub fn overrides(&self, event_type: &str) -> Vec<String> {
        let (pi, ch, cs) = (&self.payment_intent, &self.charge, &self.checkout_session);
        let mut out = match event_type.rsplit_once('.').map_or("", |(p, _)| p) {
            "payment_intent" => vec![format!("id={pi}"), format!("latest_charge={ch}")],
            "checkout.session" if event_type == "checkout.session.expired" => {
                vec![format!("id={cs}")]
            }
            "checkout.session" => vec![format!("id={cs}"), format!("payment_intent={pi}")],
            "charge" => vec![format!("id={ch}"), format!("payment_intent={pi}")],
            "charge.dispute" => vec![
                format!("id={}", self.dispute),
                format!("charge={ch}"),
                format!("payment_intent={pi}"),
            ],
            _ => vec![
                format!("id={}", self.refund),
                format!("charge={ch}"),
                format!("payment_intent={pi}"),
            ],
        };
        if let Some(booking) = &self.booking {
            let field = match event_type.split_once('.').map_or("", |(p, _)| p) {
                "checkout" => "client_reference_id",
                "payment_intent" | "charge" if !event_type.starts_with("charge.dispute") => {
                    "metadata.bookingId"
                }
                _ => "",
            };
            if !field.is_empty() && !event_type.starts_with("charge.refund.") {
                out.push(format!("{field}={booking}"));
            }
        }
        out
    }
}

/// The thin event notification (`object: "v2.core.event"`) Stripe sends for `snapshot`, a
/// classic event, to an event destination set to thin events: no data, the related object's id,
/// type and API path to fetch it, the `v1.`-prefixed type, an RFC 3339 time, and the snapshot
/// event's id. (Stripe: "Migrate from snapshot events to thin events"; stripe-python's
/// `parse_event_notification` reads it.)
pub fn thin_event(snapshot: &Value) -> Value {
    let object = &snapshot["data"]["object"];
    let kind = object["object"].as_str().unwrap_or_default();
    let id = object["id"].as_str().unwrap_or_default();
    let collection = match kind {
        "checkout.session" => "checkout/sessions".to_string(),
        other => format!("{other}s"),
    };
    let created = chrono::DateTime::from_timestamp(snapshot["created"].as_i64().unwrap_or(0), 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "id": format!("evt_{}", random_token(46)),
        "object": "v2.core.event",
        "type": format!("v1.{}", snapshot["type"].as_str().unwrap_or_default()),
        "created": created,
        "livemode": snapshot["livemode"].as_bool().unwrap_or(false),
        "context": Value::Null,
        "reason": Value::Null,
        "related_object": { "id": id, "type": kind, "url": format!("/v1/{collection}/{id}") },
        "snapshot_event": snapshot["id"],
    })
}

/// What Stripe sends when it could not generate an event of `failed_type` about `object`: the
/// `v2.core.health.event_generation_failure.resolved` notification (thin, no data), and the full
/// event `GET /v2/core/events/{id}` answers, whose `data.impact` names the type and the object
/// (Stripe: "Handle webhook event generation failures").
pub fn generation_failure(object: &Value, failed_type: &str, now: i64) -> (Value, Value) {
    let id = format!("evt_{}", random_token(46));
    let created = chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let notification = json!({
        "id": id, "object": "v2.core.event",
        "type": "v2.core.health.event_generation_failure.resolved",
        "created": created, "livemode": false, "context": Value::Null, "reason": Value::Null,
    });
    let (kind, object_id) = (&object["object"], &object["id"]);
    let mut event = notification.clone();
    event["data"] = json!({
        "alert_id": format!("halert_{}", random_token(40)),
        "grouping_key": format!("_grouping_{}", random_token(40)),
        "impact": {
            "event_type": failed_type,
            "related_object_id": object_id,
            "related_object": { "id": object_id, "type": kind,
                "url": format!("/v1/{}s/{}", kind.as_str().unwrap_or_default(),
                    object_id.as_str().unwrap_or_default()) },
        },
        "resolved_at": created,
        "severity": "critical",
        "summary": "We have failed to create a notification for your Stripe account.",
    });
    (notification, event)
}

fn object_for(event_type: &str, now: i64) -> Result<Value, FixtureError> {
    let amount = 2000;
    let currency = "eur";
    let pi = new_id("pi");
    let ch = new_id("ch");
    let metadata = json!({ "bookingId": "booking-123" });
    let payment_intent = |status: &str| {
        json!({
            "id": pi, "object": "payment_intent", "amount": amount,
            "amount_received": if status == "succeeded" { amount } else { 0 },
            "currency": currency, "status": status, "created": now, "livemode": false,
            "capture_method": "automatic", "confirmation_method": "automatic",
            "client_secret": format!("{pi}_secret_{}", random_token(24)),
            "latest_charge": if status == "succeeded" { json!(ch) } else { Value::Null },
            "payment_method_types": ["card"], "metadata": metadata,
            "last_payment_error": Value::Null, "cancellation_reason": Value::Null,
        })
    };
    let session = |status: &str, payment_status: &str| {
        let cs = new_id("cs_test");
        json!({
            "id": cs, "object": "checkout.session", "mode": "payment",
            "amount_subtotal": amount, "amount_total": amount, "currency": currency,
            "client_reference_id": "booking-123", "customer_email": "customer@example.com",
            "customer_details": { "email": "customer@example.com", "name": "Test Customer" },
            "created": now - 60, "expires_at": now + 86_340, "livemode": false,
            "metadata": { "booking_id": "booking-123" },
            "payment_intent": if status == "expired" { Value::Null } else { json!(pi) },
            "payment_status": payment_status, "status": status,
            "success_url": "http://localhost:3003/checkout/return?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://localhost:3003/checkout/return?canceled=1",
            "url": if status == "open" { json!(format!("https://checkout.stripe.com/c/pay/{cs}")) } else { Value::Null },
        })
    };
    let dispute = |status: &str| {
        json!({
            "id": new_id("dp"), "object": "dispute", "amount": amount, "currency": currency,
            "charge": ch, "payment_intent": pi, "created": now, "livemode": false,
            "reason": "fraudulent", "status": status, "is_charge_refundable": false,
            "metadata": {},
        })
    };
    let charge = |captured: bool, refunded: i64| {
        json!({
            "id": ch, "object": "charge", "amount": amount,
            "amount_captured": if captured { amount } else { 0 },
            "amount_refunded": refunded, "currency": currency, "captured": captured,
            "paid": true, "refunded": refunded >= amount, "status": "succeeded",
            "payment_intent": pi, "created": now, "livemode": false, "metadata": metadata,
            "balance_transaction": if captured { json!(new_id("txn")) } else { Value::Null },
        })
    };
    let refund = |status: &str| {
        json!({
            "id": new_id("re"), "object": "refund", "amount": amount, "currency": currency,
            "charge": ch, "payment_intent": pi, "created": now, "status": status,
            "reason": "requested_by_customer", "balance_transaction": new_id("txn"),
            "metadata": {}, "receipt_number": Value::Null,
        })
    };
    let object = match event_type {
        "payment_intent.succeeded" => payment_intent("succeeded"),
        "payment_intent.processing" => payment_intent("processing"),
        "payment_intent.canceled" => {
            let mut o = payment_intent("canceled");
            o["cancellation_reason"] = json!("requested_by_customer");
            o["canceled_at"] = json!(now);
            o
        }
        "payment_intent.payment_failed" => {
            let mut o = payment_intent("requires_payment_method");
            o["last_payment_error"] = json!({
                "type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
                "message": "Your card was declined.",
            });
            o
        }
        "checkout.session.completed" => session("complete", "paid"),
        "checkout.session.async_payment_succeeded" => session("complete", "paid"),
        "checkout.session.async_payment_failed" => session("complete", "unpaid"),
        "checkout.session.expired" => session("expired", "unpaid"),
        "payment_intent.amount_capturable_updated" => {
            // Authorised with manual capture: the money is held, not taken.
            let mut o = payment_intent("requires_capture");
            o["capture_method"] = json!("manual");
            o["amount_capturable"] = json!(amount);
            o["latest_charge"] = json!(ch);
            o
        }
        "charge.captured" => charge(true, 0),
        // An authorisation never captured lapses: Stripe releases it as a refund of the
        // uncaptured amount.
        "charge.expired" => charge(false, amount),
        "charge.refunded" => charge(true, amount),
        "refund.created" | "refund.updated" | "charge.refund.updated" => refund("succeeded"),
        "refund.failed" => {
            let mut o = refund("failed");
            o["failure_reason"] = json!("expired_or_canceled_card");
            o["failure_balance_transaction"] = json!(new_id("txn"));
            o
        }
        "charge.dispute.created" | "charge.dispute.funds_withdrawn" => dispute("needs_response"),
        "charge.dispute.updated" => dispute("under_review"),
        "charge.dispute.funds_reinstated" => dispute("won"),
        "charge.dispute.closed" => dispute("lost"),
        other => return Err(FixtureError::UnknownType(other.to_string())),
    };
    Ok(object)
}

/// Sets `path=value` in `object`. A field the object has keeps its type: a number stays a number
/// (when the value reads as one), text stays text, though `null` empties any field; metadata is
/// always text, as Stripe keeps it; a new field or one that is null takes the type the value
/// reads as. A charge whose
/// `amount_refunded` is lowered is no longer `refunded`.
///
/// `resource:path` (the Stripe CLI's `--add fixture:path`) names the object the path is on:
/// `refund:amount` on a charge is the amount refunded, another resource's path is the event
/// object's own.
fn apply_override(object: &mut Value, raw: &str) -> Result<(), FixtureError> {
    let (path, value) = raw
        .split_once('=')
        .filter(|(p, _)| !p.is_empty())
        .ok_or_else(|| FixtureError::BadOverride(raw.to_string()))?;
    let path = match path.split_once(':') {
        Some(("refund", "amount")) if object["object"] == "charge" => "amount_refunded",
        Some((_, p)) => p,
        None => path,
    };
    let typed = match serde_json::from_str::<Value>(value) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Some(v),
        _ => None,
    };
    let current = path.split('.').try_fold(&*object, |o, part| o.get(part));
    let text = path.starts_with("metadata.") || current.is_some_and(Value::is_string);
    let value = match typed {
        // Any field of Stripe's may be null (an expanded id, a detached intent).
        Some(Value::Null) if !path.starts_with("metadata.") => Value::Null,
        Some(v) if !text => v,
        _ => Value::String(value.to_string()),
    };
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap_or_default();
    let mut cursor = &mut *object;
    for (i, part) in parts.iter().enumerate() {
        let map = cursor
            .as_object_mut()
            .ok_or_else(|| FixtureError::NotAnObject(raw.to_string(), parts[..i].join(".")))?;
        cursor = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    let map = cursor
        .as_object_mut()
        .ok_or_else(|| FixtureError::NotAnObject(raw.to_string(), parts.join(".")))?;
    map.insert(last.to_string(), value);
    if object["object"] == "charge" && path == "amount_refunded" {
        let full = object["amount_refunded"].as_i64() >= object["amount"].as_i64();
        object["refunded"] = json!(full);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_builds_a_stripe_shaped_event() {
        for t in TRIGGER_TYPES {
            let e = build_event(t, &[], 1_700_000_000).unwrap();
            assert!(e["id"].as_str().unwrap().starts_with("evt_"));
            assert_eq!(e["type"], *t);
            let o = &e["data"]["object"];
            let prefix = match o["object"].as_str().unwrap() {
                "payment_intent" => "pi_",
                "checkout.session" => "cs_test_",
                "charge" => "ch_",
                "dispute" => "dp_",
                "refund" => "re_",
                other => panic!("unexpected object {other}"),
            };
            assert!(o["id"].as_str().unwrap().starts_with(prefix), "{t}");
            assert!(
                o["amount"].is_i64() || o["amount_total"].is_i64(),
                "{t}: amount in minor units"
            );
        }
    }

    #[test]
    fn a_story_keeps_one_payment_across_events() {
        let first = build_event(
            "payment_intent.succeeded",
            &["metadata.bookingId=booking-9".into()],
            1,
        )
        .unwrap();
        let story = Story::new().then(&first);
        let pi = first["data"]["object"]["id"].as_str().unwrap();
        assert_eq!(story.payment_intent, pi);
        assert_eq!(story.booking.as_deref(), Some("booking-9"));
        for t in TRIGGER_TYPES {
            let e = build_event(t, &story.overrides(t), 2).unwrap();
            let o = &e["data"]["object"];
            let names_pi = o["id"] == pi || o["payment_intent"] == pi;
            let session_alone = *t == "checkout.session.expired";
            assert!(names_pi || session_alone, "{t}: {o}");
        }
        let opened = build_event(
            "charge.dispute.created",
            &story.overrides("charge.dispute.created"),
            3,
        )
        .unwrap();
        let story = story.then(&opened);
        let closed = build_event(
            "charge.dispute.closed",
            &story.overrides("charge.dispute.closed"),
            4,
        )
        .unwrap();
        assert_eq!(
            opened["data"]["object"]["id"],
            closed["data"]["object"]["id"]
        );
    }

    #[test]
    fn overrides_set_nested_fields_with_types() {
        let e = build_event(
            "charge.refunded",
            &[
                "metadata.bookingId=booking-9".into(),
                "charge:amount_refunded=500".into(),
            ],
            0,
        )
        .unwrap();
        let o = &e["data"]["object"];
        assert_eq!(o["metadata"]["bookingId"], "booking-9");
        assert_eq!(o["amount_refunded"], 500);
        assert_eq!(o["refunded"], false);
        assert_eq!(
            build_event("nope", &[], 0).unwrap_err(),
            FixtureError::UnknownType("nope".into())
        );
        assert!(matches!(
            build_event("charge.refunded", &["novalue".into()], 0),
            Err(FixtureError::BadOverride(_))
        ));
        assert!(matches!(
            build_event("charge.refunded", &["amount.x=1".into()], 0),
            Err(FixtureError::NotAnObject(..))
        ));
    }

    #[test]
    fn overrides_keep_stripes_types_and_one_booking() {
        let build = |t: &str, adds: &[&str]| {
            let adds: Vec<String> = adds.iter().map(|a| a.to_string()).collect();
            build_event(t, &adds, 0).unwrap()["data"]["object"].clone()
        };
        // Metadata and ids are text whatever they look like; amounts stay numbers.
        let o = build(
            "payment_intent.succeeded",
            &["metadata.bookingId=42", "id=7"],
        );
        assert_eq!(
            (&o["metadata"]["bookingId"], &o["id"]),
            (&json!("42"), &json!("7"))
        );
        // A session's booking named once is its booking everywhere.
        let o = build("checkout.session.expired", &["client_reference_id=43"]);
        assert_eq!(o["client_reference_id"], "43");
        assert_eq!(o["metadata"]["booking_id"], "43");
        // The Stripe CLI's `refund:amount` on a charge is what was refunded.
        // `null` empties a text field (a charge without its intent).
        let o = build("charge.refunded", &["payment_intent=null"]);
        assert_eq!(o["payment_intent"], Value::Null);
        let o = build("charge.refunded", &["refund:amount=500"]);
        assert_eq!(
            (&o["amount_refunded"], &o["refunded"]),
            (&json!(500), &json!(false))
        );
        assert_eq!(o["amount"], 2000);
        assert_eq!(
            named_booking(&["amount=1".into(), "metadata.booking_id=b-1".into()]),
            Some("b-1".into())
        );
        assert!(
            follows_a_payment("charge.refunded") && !follows_a_payment("payment_intent.succeeded")
        );
    }
}
