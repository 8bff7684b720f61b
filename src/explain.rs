//! Explain: why payhook says a booking or a payment is in its state, and what it told whom.
//!
//! One look-up by any id people have (a booking id, a payment intent, a checkout session, a
//! charge, a provider event id or an event's row number) gathers the payments it names, the facts
//! their events established, and the notifications those caused with every attempt. The facts are
//! replayed in provider time, as the ledger reads them, so each step of the timeline shows the
//! state after it and the precedence rule that decided it. Whatever needs a person comes first,
//! with what to do. `GET /admin/api/explain/{key}`, `payhook explain KEY` and the dashboard's
//! explain page all show this one answer.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::admin_types::time;
use crate::domain::facts::{Fact, FactKind};
use crate::domain::money::Money;
use crate::domain::state::{Attention, Payment, PaymentState, PaymentStatus, derive};
use crate::domain::status::{DeliveryStatus, EventStatus};
use crate::store::{AttemptRow, Delivery, FactRow, PaymentKey, Session, Store, StoreError};

/// Why a booking or a payment is in its state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Explanation {
    /// What was looked up.
    pub key: String,
    /// What the key was: `booking`, `payment_intent`, `checkout_session`, `charge`,
    /// `provider_id`, `event` (a provider event id) or `event_number`.
    pub matched_by: String,
    /// `booking` (every payment of the booking) or `payment` (the payments the key names).
    pub scope: String,
    pub booking_id: Option<String>,
    /// The status of the payment that speaks for the booking (or the one payment explained).
    pub status: Option<PaymentStatus>,
    /// One sentence: the state, the event that explains it, what the booking service was told.
    pub summary: String,
    /// What needs a person, first.
    pub attention: Vec<AttentionItem>,
    pub payments: Vec<PaymentBrief>,
    /// Checkout sessions payhook created for the booking.
    pub sessions: Vec<SessionBrief>,
    /// What the booking service was told, in order, and whether it heard it.
    pub booking_told: Vec<Told>,
    /// Events in provider time, each with the fact it established, the state after it, the rule
    /// that decided it and the notifications it caused; then notifications no event caused.
    pub timeline: Vec<TimelineEntry>,
}

/// Something that needs a person.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttentionItem {
    /// `duplicate`, `refund_failed`, `booking_refused`, `paid_after_cancel`, `dead_notification`,
    /// `event_failed`, `event_rejected`.
    pub kind: String,
    pub payment_id: Option<i64>,
    pub notification_id: Option<String>,
    pub event: Option<i64>,
    /// What happened.
    pub what: String,
    /// What to do about it.
    pub todo: String,
}

/// A payment, in a few fields.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentBrief {
    pub id: i64,
    pub source: String,
    pub status: PaymentStatus,
    /// e.g. `20.00 EUR`.
    pub amount: Option<String>,
    pub refunded: Option<String>,
    pub payment_intent_id: Option<String>,
    pub checkout_session_id: Option<String>,
    pub charge_id: Option<String>,
    /// It is the payment whose status the booking has.
    pub speaks_for_booking: bool,
    pub attention: Vec<Attention>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionBrief {
    pub id: String,
    pub provider: String,
    /// `open`, `complete` or `expired`.
    pub status: String,
    pub amount: Option<String>,
    pub created_at: Option<String>,
    pub expires_at: Option<String>,
}

/// A booking status sent to the booking service.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Told {
    pub status: String,
    pub notification_id: String,
    /// `pending`, `delivered` or `dead`.
    pub delivery: DeliveryStatus,
}

/// One step of the timeline: an event and what followed from it, or a notification no event
/// caused (a booking service's refusal flagged, say).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub payment_id: Option<i64>,
    pub event: Option<EventStep>,
    /// What the event established, for people.
    pub fact: Option<String>,
    /// The payment's status once this fact is counted with every earlier one (in provider time).
    pub status_after: Option<PaymentStatus>,
    /// Why the status is what it is after this fact.
    pub rule: Option<String>,
    pub notifications: Vec<NotificationStep>,
}

/// An event, as the timeline shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventStep {
    /// The event's number: its raw body is at `GET /admin/api/events/{number}`.
    pub number: Option<i64>,
    pub source: String,
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub status: Option<EventStatus>,
    /// The provider's time.
    pub occurred_at: String,
    /// When payhook received it.
    pub received_at: Option<String>,
    /// It arrived after an event the provider sent later (the ledger does not mind).
    pub out_of_order: bool,
    /// How payhook knew it was genuine.
    pub verification: String,
}

/// A notification with every attempt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NotificationStep {
    pub id: i64,
    pub notification_id: String,
    pub target: String,
    /// The event name, or the booking status sent.
    pub event: String,
    pub status: DeliveryStatus,
    pub created_at: String,
    /// When the next attempt is due, while it is pending.
    pub next_attempt_at: Option<String>,
    pub attempts: Vec<AttemptStep>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttemptStep {
    pub attempt: i64,
    pub at: String,
    /// The HTTP status, when the target answered.
    pub status: Option<i64>,
    /// The start of the answer, or why there was none.
    pub answer: Option<String>,
    pub latency_ms: i64,
    /// `delivered`, `pending` (retried at `next_attempt_at`) or `dead`.
    pub outcome: String,
    pub next_attempt_at: Option<String>,
}

/// Explains what `key` names, or `None` when it names nothing payhook knows. `source` narrows
/// a provider event id to one source; `verification` says how a source's events are verified.
pub async fn explain(
    store: &Store,
    key: &str,
    source: Option<&str>,
    verification: &(dyn Fn(&str) -> String + Sync),
) -> Result<Option<Explanation>, StoreError> {
    let Some(found) = resolve(store, key, source).await? else {
        return Ok(None);
    };
    let payment_ids: Vec<i64> = found.payments.iter().map(|p| p.id).collect();
    let booking_id = found.booking_id.clone().or_else(|| {
        found
            .payments
            .iter()
            .find_map(|p| p.state.booking_id.clone())
    });
    // The booking's payments decide what speaks for it and whether one is a duplicate; a
    // booking's look-up has read them already.
    let booking_payments = match (&booking_id, found.scope) {
        (Some(b), Scope::Payment) => store.payments_where(PaymentKey::Booking, b).await?,
        _ => found.payments.clone(),
    };
    let sessions = match (&found.sessions, &booking_id) {
        (Some(sessions), _) => sessions.clone(),
        (None, Some(b)) => store.sessions_of_booking(b).await?,
        (None, None) => Vec::new(),
    };
    let facts = store.facts_of(&payment_ids).await?;
    let deliveries = store.deliveries_of(&payment_ids).await?;
    let delivery_ids: Vec<i64> = deliveries.iter().map(|d| d.id).collect();
    let attempts = store.attempts_of(&delivery_ids).await?;

    let speaker = crate::domain::state::representative(&booking_payments).map(|p| p.id);
    let notifications = notification_steps(&deliveries, attempts);
    let timeline = timeline(&found.payments, &facts, notifications, verification)?;
    let booking_told: Vec<Told> = deliveries
        .iter()
        .filter(|d| is_booking_status(&d.event))
        .map(|d| Told {
            status: d.event.clone(),
            notification_id: d.notification_id.as_str().to_string(),
            delivery: d.status,
        })
        .collect();
    let status = match found.scope {
        Scope::Booking => speaker
            .and_then(|id| booking_payments.iter().find(|p| p.id == id))
            .map(|p| p.state.status),
        Scope::Payment => {
            crate::domain::state::representative(&found.payments).map(|p| p.state.status)
        }
    };
    let mut attention = attention(&found.payments, &deliveries, &booking_told);
    if let Some(event) = &found.unapplied {
        attention.extend(unapplied_attention(event));
    }
    let summary = summary(
        &found,
        booking_id.as_deref(),
        status,
        &timeline,
        &booking_told,
    );
    Ok(Some(Explanation {
        key: key.to_string(),
        matched_by: found.matched_by.to_string(),
        scope: match found.scope {
            Scope::Booking => "booking",
            Scope::Payment => "payment",
        }
        .to_string(),
        booking_id,
        status,
        summary,
        attention,
        payments: found
            .payments
            .iter()
            .map(|p| brief(p, speaker == Some(p.id)))
            .collect(),
        sessions: sessions.iter().map(session_brief).collect(),
        booking_told,
        timeline: with_unapplied(timeline, found.unapplied.as_ref(), verification),
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Booking,
    Payment,
}

/// What a key named.
struct Found {
    matched_by: &'static str,
    scope: Scope,
    booking_id: Option<String>,
    payments: Vec<Payment>,
    /// The booking's checkout sessions, when the look-up read them.
    sessions: Option<Vec<Session>>,
    /// The event the key named, when it established no fact (failed, rejected, waiting...).
    unapplied: Option<crate::store::StoredEvent>,
}

/// Tries the key as each kind of id, most specific first.
async fn resolve(
    store: &Store,
    key: &str,
    source: Option<&str>,
) -> Result<Option<Found>, StoreError> {
    let of_source = |mut payments: Vec<Payment>| {
        if let Some(source) = source {
            payments.retain(|p| p.source == source);
        }
        payments
    };
    let booking = store.payments_where(PaymentKey::Booking, key).await?;
    let sessions = store.sessions_of_booking(key).await?;
    if !booking.is_empty() || !sessions.is_empty() {
        return Ok(Some(Found {
            matched_by: "booking",
            scope: Scope::Booking,
            booking_id: Some(key.to_string()),
            payments: booking,
            sessions: Some(sessions),
            unapplied: None,
        }));
    }
    let payments = of_source(store.payments_by_ref(key).await?);
    if !payments.is_empty() {
        return Ok(Some(Found {
            matched_by: ref_kind(key),
            scope: Scope::Payment,
            booking_id: None,
            payments,
            sessions: None,
            unapplied: None,
        }));
    }
    if let Some(session) = store.session(key).await? {
        // A session payhook created that no event has named yet: its booking.
        return Ok(Some(Found {
            matched_by: "checkout_session",
            scope: Scope::Booking,
            payments: store
                .payments_where(PaymentKey::Booking, &session.booking_id)
                .await?,
            booking_id: Some(session.booking_id),
            sessions: None,
            unapplied: None,
        }));
    }
    let payments = of_source(store.payments_by_event_id(key).await?);
    if !payments.is_empty() {
        return Ok(Some(Found {
            matched_by: "event",
            scope: Scope::Payment,
            booking_id: None,
            payments,
            sessions: None,
            unapplied: None,
        }));
    }
    let number = key.parse::<i64>().ok();
    if let Some(n) = number {
        let payments = store.payments_by_event_row(n).await?;
        if !payments.is_empty() {
            return Ok(Some(Found {
                matched_by: "event_number",
                scope: Scope::Payment,
                booking_id: None,
                payments,
                sessions: None,
                unapplied: None,
            }));
        }
    }
    // An event that established nothing: show the event, and why.
    let event = match (number, source) {
        (Some(n), _) => store.event_by_id(n).await?,
        (None, Some(source)) => store.event(source, key).await?,
        (None, None) => {
            let filter = crate::store::EventFilter {
                event_id: Some(key.to_string()),
                ..Default::default()
            };
            match store.list_events(&filter, 1).await?.first() {
                Some(e) => store.event_by_id(e.id).await?,
                None => None,
            }
        }
    };
    Ok(event.map(|event| Found {
        matched_by: if number.is_some() {
            "event_number"
        } else {
            "event"
        },
        scope: Scope::Payment,
        booking_id: None,
        payments: Vec::new(),
        sessions: None,
        unapplied: Some(event),
    }))
}

/// What a provider id is, by Stripe's prefixes.
fn ref_kind(id: &str) -> &'static str {
    match id.split('_').next() {
        Some("pi") => "payment_intent",
        Some("cs") => "checkout_session",
        Some("ch" | "py") => "charge",
        _ => "provider_id",
    }
}

/// A booking status sent to a booking-status target (events targets hear `payment.*` names).
fn is_booking_status(event: &str) -> bool {
    !event.contains('.')
}

fn at_ms(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(time)
}

fn at_secs(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(time)
        .unwrap_or_else(|| secs.to_string())
}

fn notification_steps(
    deliveries: &[Delivery],
    attempts: Vec<AttemptRow>,
) -> Vec<(Delivery, NotificationStep)> {
    let mut by_delivery: HashMap<i64, Vec<AttemptStep>> = HashMap::new();
    for a in attempts {
        by_delivery
            .entry(a.delivery_id)
            .or_default()
            .push(AttemptStep {
                attempt: a.attempt,
                at: at_ms(a.started_at).unwrap_or_default(),
                status: a.status,
                answer: a.answer,
                latency_ms: a.latency_ms,
                outcome: a.outcome,
                next_attempt_at: a.next_attempt_at.and_then(at_ms),
            });
    }
    deliveries
        .iter()
        .map(|d| {
            let step = NotificationStep {
                id: d.id,
                notification_id: d.notification_id.as_str().to_string(),
                target: d.target.clone(),
                event: d.event.clone(),
                status: d.status,
                created_at: time(d.created_at),
                next_attempt_at: (d.status == DeliveryStatus::Pending)
                    .then(|| at_ms(d.next_attempt_at))
                    .flatten(),
                attempts: by_delivery.remove(&d.id).unwrap_or_default(),
            };
            (d.clone(), step)
        })
        .collect()
}

/// The facts of each payment replayed in provider time, merged into one timeline; each event
/// takes the notifications it caused; the rest follow at the end.
fn timeline(
    payments: &[Payment],
    facts: &[FactRow],
    notifications: Vec<(Delivery, NotificationStep)>,
    verification: &(dyn Fn(&str) -> String + Sync),
) -> Result<Vec<TimelineEntry>, StoreError> {
    let mut caused: HashMap<(String, String), Vec<NotificationStep>> = HashMap::new();
    let mut uncaused = Vec::new();
    for (d, step) in notifications {
        match (d.source, d.source_event_id) {
            (Some(s), Some(e)) => caused.entry((s, e)).or_default().push(step),
            _ => uncaused.push(step),
        }
    }
    let mut entries: Vec<(i64, TimelineEntry)> = Vec::new();
    for payment in payments {
        let rows: Vec<&FactRow> = facts
            .iter()
            .filter(|f| f.payment_id == payment.id)
            .collect();
        let parsed: Vec<Fact> = rows
            .iter()
            .map(|r| {
                serde_json::from_str(&r.fact)
                    .map_err(|e| StoreError::Corrupt(format!("payment fact {:?}: {e}", r.fact)))
            })
            .collect::<Result<_, _>>()?;
        let mut before: Option<PaymentState> = None;
        for (i, (row, fact)) in rows.iter().zip(&parsed).enumerate() {
            let after = derive(&parsed[..=i]);
            // Arrived after an event the provider sent later.
            let out_of_order = row.received_at.is_some_and(|at| {
                rows.iter().any(|o| {
                    o.occurred_at > row.occurred_at && o.received_at.is_some_and(|r| r < at)
                })
            });
            let key = (row.source.clone(), row.event_id.clone());
            let verified = verification(&row.source);
            let verified = if row.fetched == Some(true) {
                format!("{verified}; its object was fetched from the provider's API")
            } else {
                verified
            };
            entries.push((
                row.occurred_at,
                TimelineEntry {
                    payment_id: Some(payment.id),
                    event: Some(EventStep {
                        number: row.event_row,
                        source: row.source.clone(),
                        event_id: row.event_id.clone(),
                        event_type: row
                            .event_type
                            .clone()
                            .unwrap_or_else(|| fact.event_type.clone()),
                        status: row.event_status,
                        occurred_at: at_secs(row.occurred_at),
                        received_at: row.received_at.map(time),
                        out_of_order,
                        verification: verified,
                    }),
                    fact: Some(describe(fact, after.currency.as_deref())),
                    status_after: Some(after.status),
                    rule: Some(rule(before.as_ref(), &after, fact, out_of_order)),
                    notifications: caused.remove(&key).unwrap_or_default(),
                },
            ));
            before = Some(after);
        }
    }
    // Stable: events of the same time keep the facts' order (the order they were applied).
    entries.sort_by_key(|e| e.0);
    let mut timeline: Vec<TimelineEntry> = entries.into_iter().map(|(_, e)| e).collect();
    // Notifications whose event is not among these facts (a refusal flagged by the dispatcher).
    uncaused.extend(caused.into_values().flatten());
    uncaused.sort_by_key(|n| n.id);
    for n in uncaused {
        timeline.push(TimelineEntry {
            payment_id: None,
            event: None,
            fact: None,
            status_after: None,
            rule: None,
            notifications: vec![n],
        });
    }
    Ok(timeline)
}

/// The event a key named that established no fact, at the end of the timeline.
fn with_unapplied(
    mut timeline: Vec<TimelineEntry>,
    event: Option<&crate::store::StoredEvent>,
    verification: &(dyn Fn(&str) -> String + Sync),
) -> Vec<TimelineEntry> {
    if let Some(e) = event {
        timeline.push(TimelineEntry {
            payment_id: None,
            event: Some(EventStep {
                number: Some(e.id),
                source: e.source.clone(),
                event_id: e.event_id.clone(),
                event_type: e.event_type.clone(),
                status: Some(e.status),
                occurred_at: time(e.received_at),
                received_at: Some(time(e.received_at)),
                out_of_order: false,
                verification: verification(&e.source),
            }),
            fact: Some(match e.status {
                EventStatus::Ignored => "nothing: payhook does not read this type of event".into(),
                _ => "nothing yet: it has not been applied".into(),
            }),
            status_after: None,
            rule: e.last_error.clone(),
            notifications: Vec::new(),
        });
    }
    timeline
}

/// What a fact says, for people.
pub fn describe(fact: &Fact, currency: Option<&str>) -> String {
    let money = |minor: Option<i64>| {
        Money::written(minor, fact.currency.as_deref().or(currency))
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    };
    let dispute = |what: &str, status: &Option<String>, reason: &Option<String>| {
        let mut s = what.to_string();
        if let Some(status) = status {
            s.push_str(&format!(": {status}"));
        }
        if let Some(reason) = reason {
            s.push_str(&format!(" ({reason})"));
        }
        s
    };
    match &fact.kind {
        FactKind::IntentSucceeded => format!(
            "the payment succeeded{}",
            money(fact.amount_captured.or(fact.amount))
        ),
        FactKind::IntentProcessing => "the payment is processing".into(),
        FactKind::IntentAuthorized => {
            format!("authorised, to be captured{}", money(fact.amount))
        }
        FactKind::IntentFailed { code, message } => {
            let why: Vec<&str> = [code, message]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            if why.is_empty() {
                "the payment attempt failed".into()
            } else {
                format!("the payment attempt failed: {}", why.join(": "))
            }
        }
        FactKind::IntentCanceled { reason } => match reason {
            Some(r) => format!("the payment was canceled ({r})"),
            None => "the payment was canceled".into(),
        },
        FactKind::ChargeCaptured => format!("captured{}", money(fact.amount_captured)),
        FactKind::AuthorizationExpired => "the authorisation expired uncaptured".into(),
        FactKind::SessionCompleted { paid: true } => {
            format!("the checkout was completed and paid{}", money(fact.amount))
        }
        FactKind::SessionCompleted { paid: false } => {
            "the checkout was completed; the money is on its way".into()
        }
        FactKind::SessionExpired => "the checkout session expired".into(),
        FactKind::SessionAsyncSucceeded => {
            format!("the delayed payment succeeded{}", money(fact.amount))
        }
        FactKind::SessionAsyncFailed => "the delayed payment failed".into(),
        FactKind::Refunded {
            amount_refunded,
            full,
            ..
        } => format!(
            "{} refunded in all{}",
            Money::written(
                Some(*amount_refunded),
                fact.currency.as_deref().or(currency)
            )
            .unwrap_or_else(|| amount_refunded.to_string()),
            if *full { ", the whole charge" } else { "" }
        ),
        FactKind::RefundUpdated { refund } => format!(
            "refund {} of {}: {}{}",
            refund.id,
            Money::written(Some(refund.amount), fact.currency.as_deref().or(currency))
                .unwrap_or_else(|| refund.amount.to_string()),
            refund.status,
            refund
                .failure_reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        FactKind::DisputeOpened { status, reason, .. } => {
            dispute("a dispute was opened", status, reason)
        }
        FactKind::DisputeUpdated { status, reason, .. } => {
            dispute("the dispute was updated", status, reason)
        }
        FactKind::DisputeClosed { status, reason, .. } => {
            dispute("the dispute was closed", status, reason)
        }
        FactKind::DisputeFunds { withdrawn, .. } => if *withdrawn {
            "the disputed funds were withdrawn"
        } else {
            "the disputed funds were reinstated"
        }
        .into(),
    }
}

/// The order the ledger ranks statuses in (src/domain/state.rs, `derive`), for people.
const PRECEDENCE: &str = "disputed > refunded > partially refunded > succeeded > canceled > \
                          expired > authorised > processing or failed (the latest) > pending";

/// Why the status is what it is once `fact` is counted (`before`: without it).
fn rule(
    before: Option<&PaymentState>,
    after: &PaymentState,
    fact: &Fact,
    out_of_order: bool,
) -> String {
    let paid = after.amount_paid();
    let money = |minor: Option<i64>| {
        Money::written(minor, after.currency.as_deref()).unwrap_or_else(|| "?".into())
    };
    let changed = before.is_none_or(|b| b.status != after.status);
    let mut why = match after.status {
        PaymentStatus::Disputed => {
            "a chargeback that is open or lost outranks every other status".to_string()
        }
        PaymentStatus::Refunded => format!(
            "refunds reach what was paid ({} of {}): a full refund outranks a partial one and paid",
            money(Some(after.amount_refunded)),
            money(paid)
        ),
        PaymentStatus::PartiallyRefunded => format!(
            "refunds add up to {} of {}: a partial refund outranks paid",
            money(Some(after.amount_refunded)),
            money(paid)
        ),
        PaymentStatus::Succeeded
            if matches!(
                fact.kind,
                FactKind::RefundUpdated { .. } | FactKind::Refunded { .. }
            ) && after.amount_refunded == 0 =>
        {
            "a refund that failed or was canceled gives the money back: the payment stays paid"
                .to_string()
        }
        PaymentStatus::Succeeded => {
            "money was taken: paid outranks canceled, expired, authorised, processing, failed \
             and pending"
                .to_string()
        }
        PaymentStatus::Canceled => {
            "canceled (by the merchant or customer, or the authorisation lapsed): nothing was paid"
                .to_string()
        }
        PaymentStatus::Expired => "the checkout session expired and nothing was paid".to_string(),
        PaymentStatus::Authorized => "authorised and not captured: no money taken yet".to_string(),
        PaymentStatus::Processing | PaymentStatus::Failed => {
            "between processing and failed, the provider's latest word counts".to_string()
        }
        PaymentStatus::Pending => "nothing says the payment moved yet".to_string(),
    };
    if !changed {
        why = format!("{} stays: {why} ({PRECEDENCE})", after.status);
    }
    if out_of_order {
        why.push_str(
            "; it arrived after events the provider sent later, and the ledger reads facts in \
             provider time, so arrival order changed nothing",
        );
    }
    why
}

/// Everything that needs a person, with what to do.
fn attention(payments: &[Payment], deliveries: &[Delivery], told: &[Told]) -> Vec<AttentionItem> {
    let told_refunded = told.iter().any(|t| t.status == "refunded");
    let told_cancelled = told
        .iter()
        .any(|t| t.status == "cancelled" && t.delivery != DeliveryStatus::Dead);
    let mut items = Vec::new();
    for p in payments {
        for flag in &p.state.attention {
            let what = match flag {
                Attention::RefundFailed if told_refunded => format!(
                    "a refund of payment {} failed after the booking service was told `refunded`",
                    p.id
                ),
                Attention::RefundFailed => format!("a refund of payment {} failed", p.id),
                Attention::Duplicate => format!(
                    "payment {} was captured after another payment of the booking",
                    p.id
                ),
                Attention::BookingRefused => format!(
                    "the booking service refused to confirm the booking paid by payment {}",
                    p.id
                ),
            };
            items.push(AttentionItem {
                kind: flag.as_str().to_string(),
                payment_id: Some(p.id),
                notification_id: None,
                event: None,
                what,
                todo: flag.advice().to_string(),
            });
        }
        if told_cancelled && p.state.holds_money() && !p.state.needs(Attention::BookingRefused) {
            items.push(AttentionItem {
                kind: "paid_after_cancel".into(),
                payment_id: Some(p.id),
                notification_id: None,
                event: None,
                what: format!(
                    "payment {} took money for a booking the booking service was told is \
                     `cancelled`",
                    p.id
                ),
                todo: "refund the payment in the provider's dashboard, or restore the booking"
                    .into(),
            });
        }
    }
    for d in deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Dead)
    {
        items.push(AttentionItem {
            kind: "dead_notification".into(),
            payment_id: None,
            notification_id: Some(d.notification_id.as_str().to_string()),
            event: None,
            what: format!(
                "`{}` to {} was given up: {}",
                d.event,
                d.target,
                d.last_error.as_deref().unwrap_or("no answer")
            ),
            todo: format!(
                "fix what the target refused, then `payhook deliveries retry {}`",
                d.notification_id.as_str()
            ),
        });
    }
    items
}

fn unapplied_attention(e: &crate::store::StoredEvent) -> Option<AttentionItem> {
    let (kind, todo) = match e.status {
        EventStatus::Failed => (
            "event_failed",
            format!("fix the cause, then `payhook events replay {}`", e.id),
        ),
        EventStatus::Rejected => (
            "event_rejected",
            format!(
                "the provider's API denied it; if that was wrong, `payhook events replay {}` asks again",
                e.id
            ),
        ),
        _ => return None,
    };
    Some(AttentionItem {
        kind: kind.into(),
        payment_id: None,
        notification_id: None,
        event: Some(e.id),
        what: format!(
            "event {} ({}) is {}: {}",
            e.event_id,
            e.event_type,
            e.status.as_str(),
            e.last_error.as_deref().unwrap_or("no error kept")
        ),
        todo,
    })
}

fn summary(
    found: &Found,
    booking_id: Option<&str>,
    status: Option<PaymentStatus>,
    timeline: &[TimelineEntry],
    told: &[Told],
) -> String {
    let subject = match (found.scope, booking_id) {
        (Scope::Booking, Some(b)) => format!("booking {b}"),
        _ => match found.payments.as_slice() {
            [p] => format!("payment {}", p.id),
            [] => format!(
                "{} {}",
                found.matched_by.replace('_', " "),
                found_key(found)
            ),
            ps => format!(
                "payments {}",
                ps.iter()
                    .map(|p| p.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    let Some(status) = status else {
        return match &found.unapplied {
            Some(e) => format!(
                "event {} ({}) is {} and established no fact",
                e.event_id,
                e.event_type,
                e.status.as_str()
            ),
            None => format!("{subject} has no payment yet"),
        };
    };
    let mut s = format!("{subject} is {status}");
    // The event behind the status: the last one in provider time that set it.
    if let Some(step) = timeline
        .iter()
        .filter(|t| t.status_after == Some(status))
        .find_map(|t| t.event.as_ref())
    {
        s.push_str(&format!(
            " since {} {} ({})",
            step.event_type, step.event_id, step.occurred_at
        ));
    }
    if let Some(last) = told.last() {
        s.push_str(&format!(
            "; the booking service was last told `{}` ({})",
            last.status,
            last.delivery.as_str()
        ));
    }
    s
}

fn found_key(found: &Found) -> String {
    found
        .unapplied
        .as_ref()
        .map(|e| e.event_id.clone())
        .unwrap_or_default()
}

fn brief(p: &Payment, speaks_for_booking: bool) -> PaymentBrief {
    let s = &p.state;
    PaymentBrief {
        id: p.id,
        source: p.source.clone(),
        status: s.status,
        amount: Money::written(s.amount_paid().or(s.amount), s.currency.as_deref()),
        refunded: (s.amount_refunded > 0)
            .then(|| Money::written(Some(s.amount_refunded), s.currency.as_deref()))
            .flatten(),
        payment_intent_id: s.payment_intent_id.clone(),
        checkout_session_id: s.checkout_session_id.clone(),
        charge_id: s.charge_id.clone(),
        speaks_for_booking,
        attention: s.attention.clone(),
    }
}

fn session_brief(s: &Session) -> SessionBrief {
    SessionBrief {
        id: s.id.clone(),
        provider: s.provider.clone(),
        status: s.status.clone(),
        amount: Money::written(Some(s.amount), Some(&s.currency)),
        created_at: Some(at_secs(s.created_at)),
        expires_at: Some(at_secs(s.expires_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::facts::Refs;

    fn fact(id: &str, at: i64, kind: FactKind) -> Fact {
        Fact {
            event_id: id.into(),
            event_type: "test".into(),
            occurred_at: at,
            refs: Refs::default(),
            booking_id: None,
            amount: Some(2000),
            amount_captured: None,
            currency: Some("eur".into()),
            paid_at: None,
            kind,
        }
    }

    #[test]
    fn a_late_failure_keeps_a_paid_payment_and_the_rule_says_why() {
        let paid = fact("evt_1", 100, FactKind::IntentSucceeded);
        let failed = fact(
            "evt_2",
            200,
            FactKind::IntentFailed {
                code: Some("card_declined".into()),
                message: None,
            },
        );
        let before = derive(std::slice::from_ref(&paid));
        let after = derive(&[paid.clone(), failed.clone()]);
        assert_eq!(after.status, PaymentStatus::Succeeded);
        let why = rule(Some(&before), &after, &failed, false);
        assert!(why.starts_with("succeeded stays: money was taken"), "{why}");
        assert!(why.contains("disputed > refunded"), "{why}");
        assert_eq!(
            describe(&failed, None),
            "the payment attempt failed: card_declined"
        );
        let late = rule(None, &before, &paid, true);
        assert!(late.ends_with("so arrival order changed nothing"), "{late}");
    }

    #[test]
    fn a_refund_that_failed_gives_the_money_back() {
        let paid = fact("evt_1", 100, FactKind::IntentSucceeded);
        let refund = |status: &str| crate::domain::facts::RefundSeen {
            id: "re_1".into(),
            amount: 500,
            status: status.into(),
            created: Some(150),
            failure_reason: None,
        };
        let pending = fact(
            "evt_2",
            150,
            FactKind::RefundUpdated {
                refund: refund("pending"),
            },
        );
        let failed = fact(
            "evt_3",
            160,
            FactKind::RefundUpdated {
                refund: refund("failed"),
            },
        );
        let partly = derive(&[paid.clone(), pending.clone()]);
        assert_eq!(partly.status, PaymentStatus::PartiallyRefunded);
        let after = derive(&[paid, pending, failed.clone()]);
        let why = rule(Some(&partly), &after, &failed, false);
        assert!(why.starts_with("a refund that failed"), "{why}");
        assert_eq!(describe(&failed, None), "refund re_1 of 5.00 EUR: failed");
    }
}
