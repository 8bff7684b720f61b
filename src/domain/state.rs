//! A payment's state as a function of the *set* of its facts: facts are sorted by provider time
//! (then event id) before anything is read from them, and every field is a join (any, max, min,
//! precedence), so no arrival order and no repetition can change the result.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::facts::{Fact, FactKind, RefundSeen};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Processing,
    Authorized,
    Succeeded,
    Failed,
    Canceled,
    Expired,
    PartiallyRefunded,
    Refunded,
    Disputed,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 10] = [
        PaymentStatus::Pending,
        PaymentStatus::Processing,
        PaymentStatus::Authorized,
        PaymentStatus::Succeeded,
        PaymentStatus::Failed,
        PaymentStatus::Canceled,
        PaymentStatus::Expired,
        PaymentStatus::PartiallyRefunded,
        PaymentStatus::Refunded,
        PaymentStatus::Disputed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Processing => "processing",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Canceled => "canceled",
            PaymentStatus::Expired => "expired",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Disputed => "disputed",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentStatus> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// True once money was taken, whatever happened after.
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            PaymentStatus::Succeeded
                | PaymentStatus::PartiallyRefunded
                | PaymentStatus::Refunded
                | PaymentStatus::Disputed
        )
    }

    /// Which of a booking's payments speaks for it: a paid one, then one still in flight, then the
    /// rest. (A booking has several payments when its customer retried through new sessions.)
    pub fn weight(self) -> u8 {
        match self {
            s if s.is_paid() => 3,
            PaymentStatus::Processing | PaymentStatus::Pending | PaymentStatus::Authorized => 2,
            PaymentStatus::Failed => 1,
            _ => 0,
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `payments` row.
#[derive(Debug, Clone)]
pub struct Payment {
    pub id: i64,
    pub source: String,
    pub state: PaymentState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The state of a checkout session, as the return page sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutStatus {
    Open,
    Complete,
    Expired,
}

impl CheckoutStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckoutStatus::Open => "open",
            CheckoutStatus::Complete => "complete",
            CheckoutStatus::Expired => "expired",
        }
    }

    pub const ALL: [CheckoutStatus; 3] = [
        CheckoutStatus::Open,
        CheckoutStatus::Complete,
        CheckoutStatus::Expired,
    ];

    pub fn parse(s: &str) -> Option<CheckoutStatus> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

/// Something a person should look at, kept on the payment until it is resolved by hand.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Attention {
    /// A second payment captured for a booking another payment had already paid.
    Duplicate,
    /// A refund failed (the money went back to the merchant's balance): the customer was not
    /// refunded, and a booking already told `refunded` cannot be told otherwise.
    RefundFailed,
    /// The booking service refused to confirm a booking whose money was taken.
    BookingRefused,
}

impl Attention {
    pub const ALL: [Attention; 3] = [
        Attention::Duplicate,
        Attention::RefundFailed,
        Attention::BookingRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Attention::Duplicate => "duplicate",
            Attention::RefundFailed => "refund_failed",
            Attention::BookingRefused => "booking_refused",
        }
    }

    pub fn parse(s: &str) -> Option<Attention> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// What an operator should do about it.
    pub fn advice(self) -> &'static str {
        match self {
            Attention::Duplicate => {
                "the booking was paid twice: refund one of the payments in the provider's dashboard"
            }
            Attention::RefundFailed => {
                "a refund failed and the money is back in the merchant's balance: refund the customer another way"
            }
            Attention::BookingRefused => {
                "money was taken for a booking the booking service would not confirm: refund it or restore the booking"
            }
        }
    }
}

/// A refund of the payment, as its latest status says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefundView {
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// `pending`, `requires_action`, `succeeded`, `failed` or `canceled`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// A dispute of the payment (an inquiry or a chargeback), as its furthest status says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DisputeView {
    /// `dp_...`; none for disputes recorded before payhook kept their ids.
    pub id: Option<String>,
    pub status: Option<String>,
    pub reason: Option<String>,
    /// Minor units disputed.
    pub amount: Option<i64>,
    /// An inquiry (`warning_*`): not a chargeback, no money moves.
    pub inquiry: bool,
    /// What the dispute holds back from the merchant now: withdrawn and not reinstated.
    pub funds_held: i64,
}

/// The payment that speaks for a booking with several payments (a customer who retried through
/// new sessions, or paid twice): the first payment still holding money, else the latest one that
/// was paid (refunded or lost), else the one in flight, else the latest.
pub fn representative(payments: &[Payment]) -> Option<&Payment> {
    payments.iter().max_by_key(|p| {
        let s = &p.state;
        let class = if s.holds_money() {
            4
        } else {
            s.status.weight()
        };
        // Among payments holding money, an intact one speaks first, then the earliest paid (a
        // duplicate comes later); among the others, the latest.
        let intact = u8::from(class == 4 && s.status == PaymentStatus::Succeeded);
        let (at, id) = if class == 4 {
            (
                -s.paid_at.unwrap_or(0),
                std::cmp::Reverse(s.payment_intent_id.clone()),
            )
        } else {
            (s.last_event_at.unwrap_or(0), std::cmp::Reverse(None))
        };
        (class, intact, at, id, p.id)
    })
}

/// Which of a booking's payments are duplicates: every payment that was captured after another
/// one of the booking was (by the provider's payment time, then payment intent id), so the flag
/// does not depend on which payment payhook heard of first.
pub fn duplicates(payments: &[Payment]) -> Vec<i64> {
    let mut paid: Vec<&Payment> = payments
        .iter()
        .filter(|p| p.state.status.is_paid())
        .collect();
    paid.sort_by(|a, b| {
        (a.state.paid_at, &a.state.payment_intent_id, a.id).cmp(&(
            b.state.paid_at,
            &b.state.payment_intent_id,
            b.id,
        ))
    });
    paid.iter().skip(1).map(|p| p.id).collect()
}

/// Everything the `payments` row holds, derived from facts alone (and, for `attention`, from the
/// booking's other payments and the booking service's answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentState {
    pub status: PaymentStatus,
    pub booking_id: Option<String>,
    pub payment_intent_id: Option<String>,
    pub checkout_session_id: Option<String>,
    pub charge_id: Option<String>,
    /// The amount asked for (authorised, for a manual capture).
    pub amount: Option<i64>,
    /// The amount taken: what was captured, once paid.
    pub amount_captured: Option<i64>,
    pub currency: Option<String>,
    pub amount_refunded: i64,
    pub refunds: Vec<RefundView>,
    pub disputes: Vec<DisputeView>,
    /// What disputes hold back now, all disputes together.
    pub amount_disputed: i64,
    pub checkout_status: Option<CheckoutStatus>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub dispute_status: Option<String>,
    pub dispute_reason: Option<String>,
    /// `won` or `lost` (or `warning_closed` for an inquiry) once the dispute is closed.
    pub dispute_outcome: Option<String>,
    pub paid_at: Option<i64>,
    pub refunded_at: Option<i64>,
    /// What needs a person, sorted.
    pub attention: Vec<Attention>,
    /// The newest fact in provider time: the event that explains the current state.
    pub last_event_id: Option<String>,
    pub last_event_at: Option<i64>,
}

impl PaymentState {
    /// Money taken and still held: paid, not fully refunded, not lost in a dispute. A payment
    /// refunded in full and disputed afterwards (a customer may dispute a refunded charge) is
    /// `disputed`, and holds nothing.
    pub fn holds_money(&self) -> bool {
        let refunded_all = self.status == PaymentStatus::Refunded
            || self
                .amount_paid()
                .is_some_and(|paid| paid > 0 && self.amount_refunded >= paid);
        self.status.is_paid() && !refunded_all && self.dispute_outcome.as_deref() != Some("lost")
    }

    /// What the customer paid: the captured amount, else (for events that do not say) the
    /// amount asked for.
    pub fn amount_paid(&self) -> Option<i64> {
        if self.status.is_paid() {
            self.amount_captured.or(self.amount)
        } else {
            None
        }
    }

    pub fn needs(&self, attention: Attention) -> bool {
        self.attention.contains(&attention)
    }

    /// Sets or clears one flag, keeping the list sorted; true if it changed.
    pub fn flag(&mut self, attention: Attention, on: bool) -> bool {
        if self.needs(attention) == on {
            return false;
        }
        if on {
            self.attention.push(attention);
            self.attention.sort();
        } else {
            self.attention.retain(|a| *a != attention);
        }
        true
    }
}

/// Derives a payment's state from its facts, in any order, repeated or not.
///
/// Status precedence, highest first: a chargeback open or lost; a full refund; a partial refund;
/// paid (an intent or session success, a capture, or any refund or dispute, which imply a
/// payment); canceled (by the merchant or customer, or an authorisation that lapsed); expired;
/// authorised and not yet captured; then whichever of processing and failed the provider said
/// last; pending.
pub fn derive(facts: &[Fact]) -> PaymentState {
    let mut facts: Vec<&Fact> = facts.iter().collect();
    facts.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
    facts.dedup_by(|a, b| a.event_id == b.event_id);

    let first = |pick: &dyn Fn(&Fact) -> Option<String>| facts.iter().find_map(|f| pick(f));
    let kinds = || facts.iter().map(|f| &f.kind);

    // The intent's own amount first, then the charge's, then the session total.
    let priced = facts
        .iter()
        .filter(|f| f.amount.is_some())
        .min_by_key(|f| (authority(&f.kind, true), f.occurred_at, &f.event_id));
    // The booking as the intent (created for it) says, else the session, else the charge.
    let booking_id = facts
        .iter()
        .filter(|f| f.booking_id.is_some())
        .min_by_key(|f| (authority(&f.kind, false), f.occurred_at, &f.event_id))
        .and_then(|f| f.booking_id.clone());
    let amount = priced.and_then(|f| f.amount);
    let currency = priced
        .and_then(|f| f.currency.clone())
        .or_else(|| first(&|f| f.currency.clone()));
    // A capture only grows (a partial capture releases the rest), so the largest seen is it.
    let captured = facts.iter().filter_map(|f| f.amount_captured).max();

    let disputes = disputes(&facts);
    let disputed = !disputes.is_empty();
    let chargeback_holds = disputes
        .iter()
        .any(|d| !d.view.inquiry && !matches!(d.view.status.as_deref(), Some("won" | "prevented")));

    let success_at = facts
        .iter()
        .filter(|f| {
            matches!(
                f.kind,
                FactKind::IntentSucceeded
                    | FactKind::SessionCompleted { paid: true }
                    | FactKind::SessionAsyncSucceeded
                    | FactKind::ChargeCaptured
            )
        })
        .map(|f| f.paid_at.unwrap_or(f.occurred_at))
        .min();
    let refund_seen = kinds().any(|k| {
        matches!(
            k,
            FactKind::Refunded { .. } | FactKind::RefundUpdated { .. }
        )
    });
    let canceled = kinds().any(|k| {
        matches!(
            k,
            FactKind::IntentCanceled { .. } | FactKind::AuthorizationExpired
        )
    });
    // An authorisation canceled (or lapsed) before any capture took no money. Before API version
    // 2025-03-31.basil, Stripe released it with a Refund object and `charge.refund.updated`
    // (docs.stripe.com/changelog/basil/2025-03-31/remove-refund-from-partial-capture-and-payment-cancellation-flow):
    // such a "refund" returns nothing and pays nothing.
    let released = canceled && success_at.is_none() && captured.is_none() && !disputed;
    let paid = success_at.is_some() || (refund_seen && !released) || disputed;
    let paid_at = success_at
        .or_else(|| facts.iter().filter_map(|f| f.paid_at).min())
        .or_else(|| paid.then(|| facts.first().map(|f| f.occurred_at)).flatten());
    let amount_paid = paid.then_some(captured.or(amount)).flatten();

    let mut refunds = refunds(&facts, amount_paid);
    if released {
        refunds.total = 0;
        refunds.at = None;
    }
    let fully_refunded = refunds.total > 0
        && match amount_paid {
            Some(a) => refunds.total >= a,
            None => refunds.snapshot_full,
        };

    let expired = kinds().any(|k| matches!(k, FactKind::SessionExpired));
    let authorized = kinds().any(|k| matches!(k, FactKind::IntentAuthorized));
    // Between "still processing" and "this attempt failed", the provider's latest word counts.
    let in_flight = facts.iter().rev().find_map(|f| match f.kind {
        FactKind::IntentProcessing | FactKind::SessionCompleted { paid: false } => {
            Some(PaymentStatus::Processing)
        }
        FactKind::IntentFailed { .. } | FactKind::SessionAsyncFailed => Some(PaymentStatus::Failed),
        _ => None,
    });

    let status = if chargeback_holds {
        PaymentStatus::Disputed
    } else if fully_refunded {
        PaymentStatus::Refunded
    } else if refunds.total > 0 {
        PaymentStatus::PartiallyRefunded
    } else if paid {
        PaymentStatus::Succeeded
    } else if canceled {
        PaymentStatus::Canceled
    } else if expired {
        PaymentStatus::Expired
    } else if authorized {
        PaymentStatus::Authorized
    } else {
        in_flight.unwrap_or(PaymentStatus::Pending)
    };

    let (failure_code, failure_message) = facts
        .iter()
        .rev()
        .find_map(|f| match &f.kind {
            FactKind::IntentFailed { code, message } => Some((code.clone(), message.clone())),
            FactKind::SessionAsyncFailed => Some((Some("async_payment_failed".into()), None)),
            _ => None,
        })
        .unwrap_or_default();

    let checkout_session_id = first(&|f| f.refs.checkout_session.clone());
    let session_done = kinds().any(|k| {
        matches!(
            k,
            FactKind::SessionCompleted { .. }
                | FactKind::SessionAsyncSucceeded
                | FactKind::SessionAsyncFailed
        )
    });
    let checkout_status = checkout_session_id.as_ref().map(|_| {
        if session_done || paid {
            CheckoutStatus::Complete
        } else if expired {
            CheckoutStatus::Expired
        } else {
            CheckoutStatus::Open
        }
    });

    // The charge that took the money: from a charge event, else a refund or dispute, else the
    // successful intent's.
    let charge_id = facts
        .iter()
        .filter(|f| !matches!(f.kind, FactKind::IntentFailed { .. }))
        .filter_map(|f| f.refs.charge.clone().map(|c| (f, c)))
        .min_by_key(|(f, _)| {
            let rank = match f.kind {
                FactKind::Refunded { .. }
                | FactKind::ChargeCaptured
                | FactKind::AuthorizationExpired => 0,
                FactKind::RefundUpdated { .. } => 1,
                FactKind::DisputeOpened { .. }
                | FactKind::DisputeUpdated { .. }
                | FactKind::DisputeClosed { .. }
                | FactKind::DisputeFunds { .. } => 2,
                _ => 3,
            };
            (rank, f.occurred_at, f.event_id.clone())
        })
        .map(|(_, c)| c);

    // The dispute that speaks for the payment: the one heard of last.
    let main = disputes
        .iter()
        .max_by_key(|d| (d.last_at, d.view.id.clone()));
    let dispute_outcome = main
        .and_then(|d| d.view.status.clone())
        .filter(|s| matches!(s.as_str(), "won" | "lost" | "warning_closed" | "prevented"));
    let mut attention = Vec::new();
    if refunds.views.iter().any(|r| r.status == "failed") {
        attention.push(Attention::RefundFailed);
    }
    let amount_disputed = disputes.iter().map(|d| d.view.funds_held).sum();

    let last = facts.last();
    PaymentState {
        status,
        booking_id,
        payment_intent_id: first(&|f| f.refs.payment_intent.clone()),
        checkout_session_id,
        charge_id,
        amount,
        amount_captured: amount_paid,
        currency,
        amount_refunded: refunds.total,
        refunds: refunds.views,
        amount_disputed,
        checkout_status,
        failure_code,
        failure_message,
        dispute_status: main.and_then(|d| d.view.status.clone()),
        dispute_reason: main.and_then(|d| d.view.reason.clone()),
        dispute_outcome,
        disputes: disputes.into_iter().map(|d| d.view).collect(),
        paid_at: if paid { paid_at } else { None },
        refunded_at: refunds.at,
        attention,
        last_event_id: last.map(|f| f.event_id.clone()),
        last_event_at: last.map(|f| f.occurred_at),
    }
}

/// The refunds of a payment, joined from refund objects and charge snapshots.
struct Refunds {
    /// Minor units refunded: refunds pending or succeeded, never more than was paid.
    total: i64,
    /// The newest charge snapshot said the charge was fully refunded.
    snapshot_full: bool,
    at: Option<i64>,
    views: Vec<RefundView>,
}

/// Each refund object's status is the furthest along its lifecycle any event reported; a refund
/// that failed or was canceled gives the money back. A charge snapshot (`amount_refunded`) counts
/// what was refunded at its time: the newest one is the base (ties: the larger total, then the
/// event id), corrected by what the refund objects say changed after it (a refund created
/// later, one that failed later).
fn refunds(facts: &[&Fact], amount_paid: Option<i64>) -> Refunds {
    // id → (refund at its furthest status, (stage, event time, event id) that said so, created).
    type Joined<'a> = (&'a RefundSeen, (u8, i64, &'a str), i64);
    let mut objects: BTreeMap<&str, Joined> = BTreeMap::new();
    let mut observations: Vec<(&RefundSeen, i64)> = Vec::new();
    let mut snapshot: Option<(i64, i64, &str, bool)> = None;
    for f in facts {
        let seen: &[RefundSeen] = match &f.kind {
            FactKind::Refunded {
                amount_refunded,
                full,
                refunds,
            } => {
                let key = (f.occurred_at, *amount_refunded, f.event_id.as_str(), *full);
                if snapshot.is_none_or(|s| (key.0, key.1, key.2) > (s.0, s.1, s.2)) {
                    snapshot = Some(key);
                }
                refunds
            }
            FactKind::RefundUpdated { refund } => std::slice::from_ref(refund),
            _ => &[],
        };
        for r in seen {
            observations.push((r, f.occurred_at));
            let rank = (r.stage(), f.occurred_at, f.event_id.as_str());
            let first = r.created.unwrap_or(f.occurred_at);
            objects
                .entry(r.id.as_str())
                .and_modify(|(best, best_rank, first_seen)| {
                    if rank > *best_rank {
                        *best = r;
                        *best_rank = rank;
                    }
                    *first_seen = (*first_seen).min(first);
                })
                .or_insert((r, rank, first));
        }
    }
    let live_now: i64 = objects
        .values()
        .filter(|(r, ..)| r.is_live())
        .map(|(r, ..)| r.amount)
        .sum();
    let mut total = match snapshot {
        None => live_now,
        Some((at, base, ..)) => {
            // What the snapshot counted of each known refund: one created by then and not yet
            // failed or canceled by then.
            let counted: i64 = objects
                .iter()
                .filter(|(id, (_, _, created))| {
                    *created <= at
                        && !observations
                            .iter()
                            .any(|(r, seen)| r.id == **id && *seen <= at && !r.is_live())
                })
                .map(|(_, (r, ..))| r.amount)
                .sum();
            base + live_now - counted
        }
    };
    total = total.max(0);
    if let Some(paid) = amount_paid {
        total = total.min(paid);
    }
    let at = (total > 0)
        .then(|| {
            let live = objects
                .values()
                .filter(|(r, ..)| r.is_live())
                .map(|(_, _, created)| *created);
            let snap = snapshot.filter(|s| s.1 > 0).map(|s| s.0);
            live.chain(snap).max()
        })
        .flatten();
    Refunds {
        total,
        snapshot_full: snapshot.is_some_and(|s| s.3),
        at,
        views: objects
            .values()
            .map(|(r, ..)| RefundView {
                id: r.id.clone(),
                amount: r.amount,
                status: r.status.clone(),
                // Any event of the refund may be the one that says why it failed.
                failure_reason: r.failure_reason.clone().or_else(|| {
                    observations
                        .iter()
                        .filter(|(o, _)| o.id == r.id)
                        .filter_map(|(o, _)| o.failure_reason.clone())
                        .min()
                }),
            })
            .collect(),
    }
}

struct Dispute {
    view: DisputeView,
    last_at: i64,
}

/// How far along a dispute is: inquiries first, then chargebacks (an inquiry can be escalated to
/// one), then the outcome. The furthest status seen is the dispute's, whatever the order.
fn dispute_stage(status: Option<&str>) -> u8 {
    match status {
        Some("warning_needs_response") => 0,
        Some("warning_under_review") => 1,
        None | Some("needs_response") => 2,
        Some("under_review") => 3,
        Some("warning_closed") => 4,
        Some(_) => 5,
    }
}

/// A payment's disputes, each joined from its events by id.
fn disputes(facts: &[&Fact]) -> Vec<Dispute> {
    struct Joined<'a> {
        status: (u8, i64, &'a str, Option<&'a str>),
        reason: Option<(i64, &'a str)>,
        amount: Option<i64>,
        withdrawn: bool,
        reinstated: bool,
        last_at: i64,
    }
    let mut by_id: BTreeMap<Option<&str>, Joined> = BTreeMap::new();
    for f in facts {
        let (status, reason, id, amount, funds) = match &f.kind {
            FactKind::DisputeOpened {
                status,
                reason,
                dispute_id,
                disputed: amount,
            }
            | FactKind::DisputeUpdated {
                status,
                reason,
                dispute_id,
                disputed: amount,
            } => (status, reason, dispute_id, amount, None),
            FactKind::DisputeClosed {
                status,
                reason,
                dispute_id,
                disputed: amount,
            } => (status, reason, dispute_id, amount, None),
            FactKind::DisputeFunds {
                status,
                reason,
                dispute_id,
                disputed: amount,
                withdrawn,
            } => (status, reason, dispute_id, amount, Some(*withdrawn)),
            _ => continue,
        };
        let mut stage = dispute_stage(status.as_deref());
        if matches!(f.kind, FactKind::DisputeClosed { .. }) && status.is_none() {
            stage = 5; // closed, outcome unknown
        }
        let rank = (stage, f.occurred_at, f.event_id.as_str(), status.as_deref());
        let j = by_id.entry(id.as_deref()).or_insert(Joined {
            status: rank,
            reason: None,
            amount: None,
            withdrawn: false,
            reinstated: false,
            last_at: f.occurred_at,
        });
        if rank > j.status {
            j.status = rank;
        }
        if let Some(r) = reason.as_deref()
            && j.reason.is_none_or(|(at, _)| (f.occurred_at, r) > (at, ""))
        {
            j.reason = Some((f.occurred_at, r));
        }
        j.amount = j.amount.max(*amount);
        j.withdrawn |= funds == Some(true);
        j.reinstated |= funds == Some(false);
        j.last_at = j.last_at.max(f.occurred_at);
    }
    by_id
        .into_iter()
        .map(|(id, j)| {
            let status = j.status.3.map(str::to_string).or_else(|| {
                // A dispute recorded before its status was kept: open, or closed with no outcome.
                (j.status.0 == 5).then(|| "closed".to_string())
            });
            let inquiry = status.as_deref().is_some_and(|s| s.starts_with("warning_"));
            let amount = j.amount;
            let held = match status.as_deref() {
                Some("lost" | "closed") => true,
                Some("won" | "prevented" | "warning_closed") => false,
                _ if j.reinstated => false,
                _ => j.withdrawn || !inquiry,
            };
            Dispute {
                view: DisputeView {
                    id: id.map(str::to_string),
                    status: status.or_else(|| Some("needs_response".into())),
                    reason: j.reason.map(|(_, r)| r.to_string()),
                    amount,
                    inquiry,
                    funds_held: if held { amount.unwrap_or(0) } else { 0 },
                },
                last_at: j.last_at,
            }
        })
        .collect()
}

/// Which facts speak first for a payment's amount and booking: the intent's own, then (for an
/// amount) the charge's or (for a booking) the session's, then the rest. Lower is stronger.
fn authority(kind: &FactKind, for_amount: bool) -> u8 {
    match kind {
        FactKind::IntentSucceeded
        | FactKind::IntentProcessing
        | FactKind::IntentAuthorized
        | FactKind::IntentFailed { .. }
        | FactKind::IntentCanceled { .. } => 0,
        FactKind::Refunded { .. } | FactKind::ChargeCaptured | FactKind::AuthorizationExpired
            if for_amount =>
        {
            1
        }
        FactKind::Refunded { .. } | FactKind::ChargeCaptured | FactKind::AuthorizationExpired => 2,
        FactKind::RefundUpdated { .. }
        | FactKind::DisputeOpened { .. }
        | FactKind::DisputeUpdated { .. }
        | FactKind::DisputeClosed { .. }
        | FactKind::DisputeFunds { .. } => 3,
        _ if for_amount => 2,
        _ => 1,
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
            refs: Refs {
                payment_intent: Some("pi_1".into()),
                ..Refs::default()
            },
            booking_id: Some("b-1".into()),
            amount: Some(2000),
            amount_captured: None,
            currency: Some("eur".into()),
            paid_at: matches!(kind, FactKind::IntentSucceeded).then_some(at),
            kind,
        }
    }

    fn refund(id: &str, at: i64, amount_refunded: i64) -> Fact {
        fact(
            id,
            at,
            FactKind::Refunded {
                amount_refunded,
                full: amount_refunded >= 2000,
                refunds: Vec::new(),
            },
        )
    }

    fn status(facts: &[Fact]) -> PaymentStatus {
        derive(facts).status
    }

    /// Before 2025-03-31.basil, canceling an authorisation released it with a Refund object
    /// (`charge.refund.updated`, `refund.created`) beside the uncaptured `charge.refunded`: in
    /// any order the payment is canceled, never paid then refunded.
    #[test]
    fn a_released_authorisation_is_canceled_in_any_order() {
        let release = RefundSeen {
            id: "re_release".into(),
            amount: 2000,
            status: "succeeded".into(),
            created: Some(12),
            failure_reason: None,
        };
        let facts = [
            fact("evt_auth", 10, FactKind::IntentAuthorized),
            fact("evt_cancel", 11, FactKind::IntentCanceled { reason: None }),
            fact("evt_lapsed", 12, FactKind::AuthorizationExpired),
            fact(
                "evt_refund",
                13,
                FactKind::RefundUpdated { refund: release },
            ),
        ];
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [3, 0, 2, 1], [1, 3, 0, 2]] {
            let some: Vec<Fact> = order.iter().map(|&i| facts[i].clone()).collect();
            let state = derive(&some);
            assert_eq!(state.status, PaymentStatus::Canceled, "{order:?}");
            assert_eq!(state.amount_refunded, 0, "{order:?}");
            assert_eq!(state.paid_at, None, "{order:?}");
        }
        // Without the cancel, the same refund object on a paid payment is a refund.
        let paid = [
            fact("evt_ok", 10, FactKind::IntentSucceeded),
            facts[3].clone(),
        ];
        assert_eq!(status(&paid), PaymentStatus::Refunded);
    }

    #[test]
    fn a_refund_before_the_success_still_ends_refunded() {
        let facts = [
            refund("evt_r", 20, 2000),
            fact("evt_s", 10, FactKind::IntentSucceeded),
        ];
        let state = derive(&facts);
        assert_eq!(state.status, PaymentStatus::Refunded);
        assert_eq!(state.paid_at, Some(10));
        assert_eq!(state.refunded_at, Some(20));
    }

    #[test]
    fn a_late_failure_never_undoes_a_success() {
        let failed = FactKind::IntentFailed {
            code: Some("card_declined".into()),
            message: None,
        };
        assert_eq!(
            status(&[
                fact("evt_s", 10, FactKind::IntentSucceeded),
                fact("evt_f", 30, failed.clone())
            ]),
            PaymentStatus::Succeeded
        );
        // Failed then processing (the customer retried): the provider's latest word counts.
        assert_eq!(
            status(&[
                fact("evt_p", 40, FactKind::IntentProcessing),
                fact("evt_f", 30, failed)
            ]),
            PaymentStatus::Processing
        );
    }

    #[test]
    fn the_newest_charge_snapshot_counts_not_the_largest() {
        let facts = [
            fact("evt_s", 10, FactKind::IntentSucceeded),
            refund("evt_r2", 30, 1200),
            refund("evt_r1", 20, 500),
            refund("evt_r1", 20, 500),
        ];
        let state = derive(&facts);
        assert_eq!(state.status, PaymentStatus::PartiallyRefunded);
        assert_eq!(state.amount_refunded, 1200);
        assert_eq!(state.refunded_at, Some(30));
    }

    #[test]
    fn a_payment_refunded_in_full_then_disputed_holds_no_money() {
        let opened = fact(
            "evt_d1",
            40,
            FactKind::DisputeOpened {
                status: Some("needs_response".into()),
                reason: Some("fraudulent".into()),
                dispute_id: None,
                disputed: None,
            },
        );
        let success = fact("evt_s", 10, FactKind::IntentSucceeded);
        let state = derive(&[success.clone(), refund("evt_r", 20, 2000), opened.clone()]);
        assert_eq!(state.status, PaymentStatus::Disputed);
        assert!(!state.holds_money(), "{state:?}");
        let partly = derive(&[success, refund("evt_r", 20, 500), opened]);
        assert!(partly.holds_money(), "{partly:?}");
    }

    #[test]
    fn disputes_hold_until_won() {
        let opened = fact(
            "evt_d1",
            20,
            FactKind::DisputeOpened {
                status: Some("needs_response".into()),
                reason: Some("fraudulent".into()),
                dispute_id: None,
                disputed: None,
            },
        );
        let closed = |outcome: &str| {
            fact(
                "evt_d2",
                30,
                FactKind::DisputeClosed {
                    status: Some(outcome.into()),
                    reason: Some("fraudulent".into()),
                    dispute_id: None,
                    disputed: None,
                },
            )
        };
        let success = fact("evt_s", 10, FactKind::IntentSucceeded);
        assert_eq!(
            status(&[success.clone(), opened.clone()]),
            PaymentStatus::Disputed
        );
        let won = derive(&[closed("won"), success.clone(), opened.clone()]);
        assert_eq!(won.status, PaymentStatus::Succeeded);
        assert_eq!(won.dispute_outcome.as_deref(), Some("won"));
        let lost = derive(&[opened, closed("lost"), success]);
        assert_eq!(lost.status, PaymentStatus::Disputed);
        assert_eq!(lost.dispute_status.as_deref(), Some("lost"));
        assert_eq!(lost.dispute_reason.as_deref(), Some("fraudulent"));
    }

    #[test]
    fn the_intent_names_the_booking_whatever_the_charge_says() {
        let mut refund = refund("evt_a", 10, 500);
        refund.booking_id = Some("from-the-charge".into());
        let mut success = fact("evt_b", 10, FactKind::IntentSucceeded);
        success.booking_id = Some("from-the-intent".into());
        assert_eq!(
            derive(&[refund.clone(), success.clone()])
                .booking_id
                .as_deref(),
            Some("from-the-intent")
        );
        success.booking_id = None;
        assert_eq!(
            derive(&[success, refund]).booking_id.as_deref(),
            Some("from-the-charge")
        );
    }

    #[test]
    fn an_expired_checkout_does_not_cancel_a_paid_payment() {
        let mut completed = fact("evt_c", 10, FactKind::SessionCompleted { paid: true });
        completed.refs.checkout_session = Some("cs_1".into());
        completed.paid_at = Some(10);
        let mut expired = fact("evt_e", 20, FactKind::SessionExpired);
        expired.refs.checkout_session = Some("cs_1".into());
        let state = derive(&[expired.clone(), completed]);
        assert_eq!(state.status, PaymentStatus::Succeeded);
        assert_eq!(state.checkout_status, Some(CheckoutStatus::Complete));
        let state = derive(&[expired]);
        assert_eq!(state.status, PaymentStatus::Expired);
        assert_eq!(state.checkout_status, Some(CheckoutStatus::Expired));
        assert_eq!(state.paid_at, None);
    }
}
