//! From a ledger change to the notifications it causes.
//!
//! A payment *reaches* steps (confirmed, refunded, ...) as its facts accumulate. What is notified
//! is the difference between the steps reached before and after a change, in the order a payment
//! goes through them. Because the ledger state does not depend on arrival order, neither do the
//! notifications: a refund that arrives before the success moves a pending payment straight to
//! refunded, and the booking service is told `confirmed` then `refunded`, the transitions it accepts.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::config::{TargetKind, TargetSettings};
use crate::domain::delivery::NewDelivery;
use crate::domain::ids::NotificationId;
use crate::domain::rfc3339;
use crate::domain::state::{Attention, CheckoutStatus, PaymentState, PaymentStatus};
use crate::domain::steps::Step;

fn fully_refunded(s: &PaymentState) -> bool {
    s.status == PaymentStatus::Refunded
        || (s.amount_refunded > 0 && s.amount_paid().is_some_and(|a| s.amount_refunded >= a))
}

/// The steps a payment in state `s` has reached, in order.
pub fn reached(s: &PaymentState) -> Vec<Step> {
    let full = fully_refunded(s);
    let chargeback = s.disputes.iter().any(|d| !d.inquiry);
    [
        (Step::Confirmed, s.status.is_paid()),
        (Step::PartiallyRefunded, s.amount_refunded > 0 && !full),
        (Step::Refunded, full),
        (Step::RefundFailed, s.needs(Attention::RefundFailed)),
        // An inquiry is not a chargeback: subscribers hear of disputes that move money.
        (Step::Disputed, chargeback),
        (
            Step::DisputeClosed,
            chargeback && s.dispute_outcome.is_some(),
        ),
        (Step::Failed, s.status == PaymentStatus::Failed),
        (
            Step::CheckoutExpired,
            s.checkout_status == Some(CheckoutStatus::Expired),
        ),
        (Step::Duplicate, s.needs(Attention::Duplicate)),
        (Step::NeedsAttention, s.needs(Attention::BookingRefused)),
    ]
    .into_iter()
    .filter_map(|(step, yes)| yes.then_some(step))
    .collect()
}

/// One ledger change, as the notifications see it.
#[derive(Debug)]
pub struct Change<'a> {
    /// The provider event applied: (source, event id).
    pub cause: (&'a str, &'a str),
    pub payment_id: i64,
    /// The payment's state before (for a payment the change merged from several: each of them).
    pub before: &'a [PaymentState],
    pub after: &'a PaymentState,
    /// The state that speaks for the payment's booking before and after the change (the booking
    /// may have several payments); `None` when the booking had none.
    pub booking_before: Option<&'a PaymentState>,
    pub booking_after: Option<&'a PaymentState>,
    /// The statuses the booking service was already told: each is told once, and once told
    /// `refunded` (a refund that failed since cannot be taken back in its contract) a booking
    /// is never told `partially_refunded`.
    pub booking_told: &'a [&'a str],
}

/// The notifications `change` causes for each of `targets`, in the order they must arrive.
pub fn deliveries_for(
    targets: &[TargetSettings],
    change: &Change,
    now: DateTime<Utc>,
) -> Vec<NewDelivery> {
    let after = change.after;
    let order_key = after
        .booking_id
        .clone()
        .unwrap_or_else(|| format!("payment:{}", change.payment_id));
    let before: Vec<Step> = change.before.iter().flat_map(reached).collect();
    let mut payment_steps: Vec<Step> = reached(after)
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect();
    // Each further partial refund is news for subscribers (a booking is partially refunded once).
    let refunded_before = change.before.iter().map(|s| s.amount_refunded).max();
    if after.amount_refunded > refunded_before.unwrap_or(0)
        && reached(after).contains(&Step::PartiallyRefunded)
        && !payment_steps.contains(&Step::PartiallyRefunded)
    {
        payment_steps.push(Step::PartiallyRefunded);
        payment_steps.sort();
    }
    let booking_steps: Vec<Step> = match (&after.booking_id, change.booking_after) {
        (Some(_), Some(booking_after)) => {
            let before = change.booking_before.map(reached).unwrap_or_default();
            // A booking told `refunded` is never told `partially_refunded` after (a refund
            // that failed cannot be taken back in its contract; it is flagged instead).
            let told = |s: &Step| {
                change
                    .booking_told
                    .contains(&s.booking_status().unwrap_or(""))
            };
            let refunded_before = told(&Step::Refunded) || before.contains(&Step::Refunded);
            reached(booking_after)
                .into_iter()
                .filter(|s| !before.contains(s) && s.booking_status().is_some() && !told(s))
                .filter(|s| !(refunded_before && *s == Step::PartiallyRefunded))
                .collect()
        }
        _ => Vec::new(),
    };

    let mut out = Vec::new();
    for target in targets {
        match target.kind {
            TargetKind::BookingStatus => {
                let Some(booking) = change.booking_after else {
                    continue;
                };
                for step in &booking_steps {
                    let status = step.booking_status().expect("booking steps have a status");
                    out.push(NewDelivery {
                        notification_id: NotificationId::new(),
                        target: target.name.clone(),
                        order_key: order_key.clone(),
                        event: status.to_string(),
                        payment_id: Some(change.payment_id),
                        booking_id: after.booking_id.clone(),
                        payload: booking_payload(status, booking).to_string(),
                        booking_status: true,
                        source: Some(change.cause.0.to_string()),
                        source_event_id: Some(change.cause.1.to_string()),
                    });
                }
            }
            TargetKind::Events => {
                for step in &payment_steps {
                    let name = step.event_name();
                    if !target.events.is_empty() && !target.events.iter().any(|e| e == name) {
                        continue;
                    }
                    out.push(NewDelivery {
                        notification_id: NotificationId::new(),
                        target: target.name.clone(),
                        order_key: order_key.clone(),
                        event: name.to_string(),
                        payment_id: Some(change.payment_id),
                        booking_id: after.booking_id.clone(),
                        payload: event_payload(name, change.payment_id, after, now).to_string(),
                        booking_status: false,
                        source: Some(change.cause.0.to_string()),
                        source_event_id: Some(change.cause.1.to_string()),
                    });
                }
            }
        }
    }
    out
}

/// Logs the attention events a change raises (`payment.duplicate`, `payment.refund_failed`,
/// `payment.needs_attention`): a person must act, whether or not an events target listens.
pub fn log_attention(change: &Change) {
    let before: Vec<Step> = change.before.iter().flat_map(reached).collect();
    for step in reached(change.after) {
        if matches!(
            step,
            Step::Duplicate | Step::RefundFailed | Step::NeedsAttention
        ) && !before.contains(&step)
        {
            tracing::warn!(
                event = step.event_name(),
                payment_id = change.payment_id,
                booking_id = change.after.booking_id.as_deref().unwrap_or(""),
                source = change.cause.0,
                event_id = change.cause.1,
                "a payment needs attention"
            );
        }
    }
}

/// When a new notification is first due (unix ms): now, plus its target's first wait.
pub fn first_due(targets: &[TargetSettings], delivery: &NewDelivery, now: DateTime<Utc>) -> i64 {
    let first_wait = targets
        .iter()
        .find(|t| t.name == delivery.target)
        .and_then(|t| t.retry_schedule.first())
        .map_or(0, |d| d.as_millis() as i64);
    now.timestamp_millis() + first_wait
}

/// The booking service's body: `{"status","paymentIntentId","paidAt","refundedAt"}`. Only a
/// refund status carries `refundedAt`: the `confirmed` sent before `refunded` (a refund that
/// arrived before its payment) is the confirmation, not the refund.
fn booking_payload(status: &str, s: &PaymentState) -> serde_json::Value {
    let refunded_at = match status {
        "partially_refunded" | "refunded" => rfc3339(s.refunded_at),
        _ => None,
    };
    json!({
        "status": status,
        "paymentIntentId": s.payment_intent_id,
        "paidAt": rfc3339(s.paid_at),
        "refundedAt": refunded_at,
    })
}

/// A Standard Webhooks payload: `type`, `timestamp`, and the payment as the ledger holds it.
fn event_payload(
    name: &str,
    payment_id: i64,
    s: &PaymentState,
    now: DateTime<Utc>,
) -> serde_json::Value {
    json!({
        "type": name,
        "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": {
            "payment_id": payment_id,
            "booking_id": s.booking_id,
            "status": s.status.as_str(),
            "amount": s.amount,
            "amount_captured": s.amount_captured,
            "currency": s.currency,
            "amount_refunded": s.amount_refunded,
            "refunds": s.refunds,
            "amount_disputed": s.amount_disputed,
            "disputes": s.disputes,
            "attention": s.attention,
            "payment_intent_id": s.payment_intent_id,
            "checkout_session_id": s.checkout_session_id,
            "charge_id": s.charge_id,
            "paid_at": rfc3339(s.paid_at),
            "refunded_at": rfc3339(s.refunded_at),
            "failure_code": s.failure_code,
            "failure_message": s.failure_message,
            "dispute_status": s.dispute_status,
            "dispute_outcome": s.dispute_outcome,
            "last_event_id": s.last_event_id,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn state(status: PaymentStatus) -> PaymentState {
        PaymentState {
            status,
            booking_id: Some("booking-1".into()),
            payment_intent_id: Some("pi_1".into()),
            checkout_session_id: None,
            charge_id: None,
            amount: Some(5000),
            amount_captured: Some(5000),
            currency: Some("eur".into()),
            amount_refunded: 0,
            refunds: Vec::new(),
            disputes: Vec::new(),
            amount_disputed: 0,
            attention: Vec::new(),
            checkout_status: None,
            failure_code: None,
            failure_message: None,
            dispute_status: None,
            dispute_reason: None,
            dispute_outcome: None,
            paid_at: Some(1_700_000_000),
            refunded_at: None,
            last_event_id: None,
            last_event_at: None,
        }
    }

    fn target(kind: TargetKind, events: &[&str]) -> TargetSettings {
        TargetSettings {
            name: kind.as_str().into(),
            kind,
            url: "http://127.0.0.1:1".into(),
            token: None,
            secret: None,
            events: events.iter().map(|e| e.to_string()).collect(),
            retry_schedule: vec![Duration::ZERO],
            timeout: Duration::from_secs(5),
            concurrency: 1,
            circuit_failures: 10,
            circuit_open: Duration::from_secs(30),
        }
    }

    fn sent(
        before: Option<&PaymentState>,
        after: &PaymentState,
        targets: &[TargetSettings],
    ) -> Vec<String> {
        let before: Vec<PaymentState> = before.into_iter().cloned().collect();
        deliveries_for(
            targets,
            &Change {
                cause: ("stripe", "evt_1"),
                payment_id: 7,
                before: &before,
                after,
                booking_before: before.first(),
                booking_after: Some(after),
                booking_told: &[],
            },
            Utc::now(),
        )
        .into_iter()
        .map(|d| format!("{}:{}", d.target, d.event))
        .collect()
    }

    #[test]
    fn a_refund_first_still_confirms_first() {
        let mut refunded = state(PaymentStatus::Refunded);
        refunded.amount_refunded = 5000;
        let targets = [
            target(TargetKind::BookingStatus, &[]),
            target(TargetKind::Events, &[]),
        ];
        assert_eq!(
            sent(Some(&state(PaymentStatus::Pending)), &refunded, &targets),
            [
                "booking-status:confirmed",
                "booking-status:refunded",
                "events:payment.confirmed",
                "events:payment.refunded"
            ]
        );
        // The success arriving afterwards changes nothing, so nothing is sent again.
        assert!(sent(Some(&refunded), &refunded, &targets).is_empty());
    }

    #[test]
    fn failures_reach_subscribers_but_not_the_booking() {
        let mut failed = state(PaymentStatus::Failed);
        failed.paid_at = None;
        let targets = [
            target(TargetKind::BookingStatus, &[]),
            target(TargetKind::Events, &[]),
        ];
        assert_eq!(sent(None, &failed, &targets), ["events:payment.failed"]);
    }

    #[test]
    fn an_expired_checkout_cancels_and_events_filter() {
        let mut expired = state(PaymentStatus::Expired);
        expired.paid_at = None;
        expired.checkout_status = Some(CheckoutStatus::Expired);
        let targets = [
            target(TargetKind::BookingStatus, &[]),
            target(TargetKind::Events, &["payment.confirmed"]),
        ];
        assert_eq!(sent(None, &expired, &targets), ["booking-status:cancelled"]);
    }

    #[test]
    fn each_further_partial_refund_is_an_event_but_one_booking_transition() {
        let mut first = state(PaymentStatus::PartiallyRefunded);
        first.amount_refunded = 1000;
        let mut second = first.clone();
        second.amount_refunded = 2000;
        let targets = [
            target(TargetKind::BookingStatus, &[]),
            target(TargetKind::Events, &[]),
        ];
        assert_eq!(
            sent(Some(&first), &second, &targets),
            ["events:payment.partially_refunded"]
        );
        let mut full = first.clone();
        full.amount_refunded = 5000;
        full.status = PaymentStatus::Refunded;
        assert_eq!(
            sent(Some(&second), &full, &targets),
            ["booking-status:refunded", "events:payment.refunded"]
        );
    }

    #[test]
    fn booking_payload_follows_the_contract() {
        let body = booking_payload("confirmed", &state(PaymentStatus::Succeeded));
        assert_eq!(
            body,
            json!({"status": "confirmed", "paymentIntentId": "pi_1",
                   "paidAt": "2023-11-14T22:13:20Z", "refundedAt": null})
        );
    }
}
