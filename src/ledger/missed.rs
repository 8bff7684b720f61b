//! Events Stripe could not generate. In rare cases Stripe fails to create an event at all: it is
//! never delivered and never in the List Events API, so reconcile cannot find it. Stripe says so
//! afterwards with a `v2.core.health.event_generation_failure.resolved` thin event, whose full
//! event (`GET /v2/core/events/{id}`, as Stripe's SDKs fetch a notification's event) names the
//! event type it failed to generate and its related object (`data.impact`; Stripe: "Handle
//! webhook event generation failures", docs.stripe.com/webhooks/handle-irrecoverable-events).
//!
//! The missing event cannot be fetched, so payhook fetches its related object and applies what
//! the object says now: the snapshot it builds carries the object and the event type its current
//! state stands for (a succeeded intent reads as `payment_intent.succeeded`, whatever the lost
//! event was), at the time it was read. The object's state is the newest word on the payment, so
//! it cannot undo a later event the way replaying the lost event's type could.

use serde_json::{Value, json};

/// The health event Stripe sends when it could not generate an event.
pub const GENERATION_FAILURE: &str = "v2.core.health.event_generation_failure.resolved";

/// Whether a Stripe event type is a thin event's, whose data payhook fetches from Stripe's API:
/// a `v1.` event's object, or the event this module reads.
pub fn is_thin(event_type: &str) -> bool {
    event_type.starts_with("v1.") || event_type == GENERATION_FAILURE
}

/// `GET /v2/core/events/{id}` for the notification `thin`: its full event, with `data`.
pub fn event_path(thin: &Value) -> Result<String, String> {
    let id = thin["id"]
        .as_str()
        .filter(|id| plain(id))
        .ok_or("the notification has no event id payhook can look up")?;
    Ok(format!("/v2/core/events/{id}"))
}

/// The API path of the object the failed event was about, from the full event's
/// `data.impact.related_object`: built from its type and id (Stripe's example gives a Dashboard
/// URL in `url`, its SDKs an API path, so neither is trusted). `None`: an object payhook does not
/// read (an invoice, a customer), which changes no payment.
pub fn related_path(event: &Value) -> Result<Option<String>, String> {
    let related = &event["data"]["impact"]["related_object"];
    let (Some(kind), Some(id)) = (related["type"].as_str(), related["id"].as_str()) else {
        return Err("the event names no data.impact.related_object type and id".into());
    };
    if !plain(id) {
        return Err(format!("related object id {id:?} is not an id"));
    }
    let collection = match kind {
        "payment_intent" => "payment_intents",
        "charge" => "charges",
        "refund" => "refunds",
        "dispute" => "disputes",
        "checkout.session" => "checkout/sessions",
        _ => return Ok(None),
    };
    Ok(Some(format!("/v1/{collection}/{id}")))
}

/// The event type the object's current state stands for, among those the ledger reads; `None`
/// when its state is none of them (an intent that still requires action).
pub fn state_type(object: &Value) -> Option<&'static str> {
    let status = object["status"].as_str().unwrap_or_default();
    match object["object"].as_str()? {
        "payment_intent" => match status {
            "succeeded" => Some("payment_intent.succeeded"),
            "processing" => Some("payment_intent.processing"),
            "canceled" => Some("payment_intent.canceled"),
            "requires_capture" => Some("payment_intent.amount_capturable_updated"),
            "requires_payment_method" if object["last_payment_error"].is_object() => {
                Some("payment_intent.payment_failed")
            }
            _ => None,
        },
        "charge" => {
            let refunded = object["amount_refunded"].as_i64().unwrap_or(0) > 0;
            match object["captured"].as_bool() {
                // An authorisation released without capture.
                Some(false) if refunded => Some("charge.expired"),
                Some(true) if refunded => Some("charge.refunded"),
                Some(true) => Some("charge.captured"),
                _ => None,
            }
        }
        "checkout.session" => match status {
            "complete" => Some("checkout.session.completed"),
            "expired" => Some("checkout.session.expired"),
            _ => None,
        },
        "refund" if status == "failed" => Some("refund.failed"),
        "refund" => Some("refund.updated"),
        "dispute" if matches!(status, "won" | "lost") => Some("charge.dispute.closed"),
        "dispute" => Some("charge.dispute.updated"),
        _ => None,
    }
}

/// The snapshot event payhook applies for the notification `thin`: its id, the type `object`'s
/// state stands for (else the type Stripe failed to generate, which the ledger then ignores),
/// `object`, read at `read_at` (unix seconds).
pub fn snapshot(thin: &Value, event: &Value, object: Value, read_at: i64) -> Value {
    let failed = event["data"]["impact"]["event_type"]
        .as_str()
        .unwrap_or("unknown");
    let event_type = state_type(&object).unwrap_or(failed);
    json!({
        "id": thin["id"],
        "object": "event",
        "type": event_type,
        "created": read_at,
        "livemode": thin["livemode"],
        "data": { "object": object },
        "generation_failure": {
            "event_type": failed,
            "related_object": event["data"]["impact"]["related_object"],
            "resolved_at": event["data"]["resolved_at"],
        },
    })
}

/// An id made of letters, digits, `_` and `-`: safe in a path.
fn plain(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event of Stripe's guide: a `payment_intent.requires_action` it failed to generate.
    fn resolved(kind: &str, id: &str) -> Value {
        json!({
            "id": "evt_health_1", "object": "v2.core.event", "type": GENERATION_FAILURE,
            "created": "2025-10-30T16:06:00.000Z",
            "data": {
                "alert_id": "halert_61RFBMa6o6H87usts16RFBM10hSQlYfddqcFoEMR6CPY",
                "impact": {
                    "event_type": "payment_intent.requires_action",
                    "related_object": {"id": id, "type": kind,
                        "url": format!("https://dashboard.stripe.com/payment_intents/{id}")},
                },
                "resolved_at": "2025-10-30T16:05:44.000Z",
                "summary": "We have failed to create a notification for your Stripe account.",
            },
        })
    }

    #[test]
    fn the_related_object_is_fetched_at_its_api_path_whatever_its_url_says() {
        let event = resolved("payment_intent", "pi_1QA8PKDTvO5jCVb3TVDZP75a");
        assert_eq!(
            related_path(&event).unwrap().as_deref(),
            Some("/v1/payment_intents/pi_1QA8PKDTvO5jCVb3TVDZP75a")
        );
        assert_eq!(
            related_path(&resolved("checkout.session", "cs_1")).unwrap(),
            Some("/v1/checkout/sessions/cs_1".into())
        );
        assert_eq!(related_path(&resolved("invoice", "in_1")).unwrap(), None);
        assert!(related_path(&resolved("charge", "../admin")).is_err());
        assert!(related_path(&json!({"data": {}})).is_err());
        assert_eq!(
            event_path(&json!({"id": "evt_1"})).unwrap(),
            "/v2/core/events/evt_1"
        );
        assert!(event_path(&json!({"id": "evt/../x"})).is_err());
    }

    #[test]
    fn the_objects_state_names_the_event_applied() {
        let cases = [
            (
                json!({"object": "payment_intent", "status": "succeeded"}),
                Some("payment_intent.succeeded"),
            ),
            (
                json!({"object": "payment_intent", "status": "requires_action"}),
                None,
            ),
            (
                json!({"object": "payment_intent", "status": "requires_payment_method",
                    "last_payment_error": {"code": "card_declined"}}),
                Some("payment_intent.payment_failed"),
            ),
            (
                json!({"object": "payment_intent", "status": "requires_payment_method",
                    "last_payment_error": null}),
                None,
            ),
            (
                json!({"object": "charge", "captured": true, "amount_refunded": 500}),
                Some("charge.refunded"),
            ),
            (
                json!({"object": "charge", "captured": false, "amount_refunded": 500}),
                Some("charge.expired"),
            ),
            (
                json!({"object": "charge", "captured": true, "amount_refunded": 0}),
                Some("charge.captured"),
            ),
            (
                json!({"object": "checkout.session", "status": "open"}),
                None,
            ),
            (
                json!({"object": "refund", "status": "failed"}),
                Some("refund.failed"),
            ),
            (
                json!({"object": "dispute", "status": "lost"}),
                Some("charge.dispute.closed"),
            ),
        ];
        for (object, want) in cases {
            assert_eq!(state_type(&object), want, "{object}");
        }
    }

    #[test]
    fn the_snapshot_is_the_notifications_with_the_object_as_read() {
        let thin = json!({"id": "evt_health_1", "livemode": false});
        let event = resolved("payment_intent", "pi_1");
        let object = json!({"id": "pi_1", "object": "payment_intent", "status": "succeeded"});
        let snap = snapshot(&thin, &event, object.clone(), 1_900_000_000);
        assert_eq!(snap["id"], "evt_health_1");
        assert_eq!(snap["type"], "payment_intent.succeeded");
        assert_eq!(snap["created"], 1_900_000_000);
        assert_eq!(snap["data"]["object"], object);
        assert_eq!(
            snap["generation_failure"]["event_type"],
            "payment_intent.requires_action"
        );
        // Still requiring action: the type Stripe lost, which the ledger does not read.
        let pending =
            json!({"id": "pi_1", "object": "payment_intent", "status": "requires_action"});
        assert_eq!(
            snapshot(&thin, &event, pending, 0)["type"],
            "payment_intent.requires_action"
        );
    }
}
