//! A payment's state as a function of the *set* of its facts: facts are sorted by provider time
//! (then event id) before anything is read from them, and every field is a join (any, max, min,
//! precedence), so no arrival order and no repetition can change the result.

use std::fmt;

use super::facts::{Fact, FactKind};
use crate::store::Payment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Processing,
    Succeeded,
    Failed,
    Canceled,
    Expired,
    PartiallyRefunded,
    Refunded,
    Disputed,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 9] = [
        PaymentStatus::Pending,
        PaymentStatus::Processing,
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
            PaymentStatus::Processing | PaymentStatus::Pending => 2,
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

/// The state of a checkout session, as the return page sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

    pub fn parse(s: &str) -> Option<CheckoutStatus> {
        [
            CheckoutStatus::Open,
            CheckoutStatus::Complete,
            CheckoutStatus::Expired,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// The payment that speaks for a booking with several (a customer who retried through new
/// sessions): the paid one, else the one still in flight, else the latest.
pub fn representative(payments: &[Payment]) -> Option<&Payment> {
    payments.iter().max_by_key(|p| {
        (
            p.state.status.weight(),
            p.state.last_event_at.unwrap_or(0),
            p.id,
        )
    })
}

/// Everything the `payments` row holds, derived from facts alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentState {
    pub status: PaymentStatus,
    pub booking_id: Option<String>,
    pub payment_intent_id: Option<String>,
    pub checkout_session_id: Option<String>,
    pub charge_id: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub amount_refunded: i64,
    pub checkout_status: Option<CheckoutStatus>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub dispute_status: Option<String>,
    pub dispute_reason: Option<String>,
    /// `won` or `lost` (or `warning_closed` for an inquiry) once the dispute is closed.
    pub dispute_outcome: Option<String>,
    pub paid_at: Option<i64>,
    pub refunded_at: Option<i64>,
    /// The newest fact in provider time: the event that explains the current state.
    pub last_event_id: Option<String>,
    pub last_event_at: Option<i64>,
}

/// Derives a payment's state from its facts, in any order, repeated or not.
///
/// Status precedence, highest first: an open or lost dispute; a full refund; a partial refund;
/// paid (an intent or session success, or any refund or dispute, which imply a payment);
/// canceled; expired; then whichever of processing and failed the provider said last; pending.
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

    let refund = facts
        .iter()
        .filter_map(|f| match f.kind {
            FactKind::Refunded {
                amount_refunded,
                full,
            } => Some((amount_refunded, full, f.occurred_at)),
            _ => None,
        })
        // The largest running total; the earliest event that reported it.
        .min_by_key(|(refunded, _, at)| (std::cmp::Reverse(*refunded), *at));
    let amount_refunded = refund.map_or(0, |(r, _, _)| r);
    let fully_refunded = facts
        .iter()
        .any(|f| matches!(f.kind, FactKind::Refunded { full: true, .. }))
        || amount.is_some_and(|a| a > 0 && amount_refunded >= a);

    let opened = kinds().any(|k| matches!(k, FactKind::DisputeOpened { .. }));
    let closed = facts.iter().rev().find_map(|f| match &f.kind {
        FactKind::DisputeClosed { status, reason } => Some((status.clone(), reason.clone())),
        _ => None,
    });
    let latest_opened = facts.iter().rev().find_map(|f| match &f.kind {
        FactKind::DisputeOpened { status, reason } => Some((status.clone(), reason.clone())),
        _ => None,
    });
    let dispute_outcome = closed.as_ref().and_then(|(status, _)| status.clone());
    let (dispute_status, dispute_reason) = match (&closed, &latest_opened) {
        (Some((s, r)), opened) => (s.clone(), r.clone().or_else(|| opened.clone()?.1)),
        (None, Some((s, r))) => (s.clone(), r.clone()),
        (None, None) => (None, None),
    };
    let disputed = opened || closed.is_some();
    let dispute_holds =
        disputed && !matches!(dispute_outcome.as_deref(), Some("won" | "warning_closed"));

    let success_at = facts
        .iter()
        .filter(|f| {
            matches!(
                f.kind,
                FactKind::IntentSucceeded
                    | FactKind::SessionCompleted { paid: true }
                    | FactKind::SessionAsyncSucceeded
            )
        })
        .map(|f| f.paid_at.unwrap_or(f.occurred_at))
        .min();
    let paid = success_at.is_some() || refund.is_some() || disputed;
    let paid_at = success_at
        .or_else(|| facts.iter().filter_map(|f| f.paid_at).min())
        .or_else(|| paid.then(|| facts.first().map(|f| f.occurred_at)).flatten());

    let canceled = kinds().any(|k| matches!(k, FactKind::IntentCanceled { .. }));
    let expired = kinds().any(|k| matches!(k, FactKind::SessionExpired));
    // Between "still processing" and "this attempt failed", the provider's latest word counts.
    let in_flight = facts.iter().rev().find_map(|f| match f.kind {
        FactKind::IntentProcessing | FactKind::SessionCompleted { paid: false } => {
            Some(PaymentStatus::Processing)
        }
        FactKind::IntentFailed { .. } | FactKind::SessionAsyncFailed => Some(PaymentStatus::Failed),
        _ => None,
    });

    let status = if dispute_holds {
        PaymentStatus::Disputed
    } else if fully_refunded {
        PaymentStatus::Refunded
    } else if amount_refunded > 0 {
        PaymentStatus::PartiallyRefunded
    } else if paid {
        PaymentStatus::Succeeded
    } else if canceled {
        PaymentStatus::Canceled
    } else if expired {
        PaymentStatus::Expired
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

    // The charge that took the money: from a refund or dispute, else the successful intent's.
    let charge_id = facts
        .iter()
        .filter(|f| !matches!(f.kind, FactKind::IntentFailed { .. }))
        .filter_map(|f| f.refs.charge.clone().map(|c| (f, c)))
        .min_by_key(|(f, _)| {
            let rank = match f.kind {
                FactKind::Refunded { .. } => 0,
                FactKind::DisputeOpened { .. } | FactKind::DisputeClosed { .. } => 1,
                _ => 2,
            };
            (rank, f.occurred_at, f.event_id.clone())
        })
        .map(|(_, c)| c);

    let last = facts.last();
    PaymentState {
        status,
        booking_id,
        payment_intent_id: first(&|f| f.refs.payment_intent.clone()),
        checkout_session_id,
        charge_id,
        amount,
        currency,
        amount_refunded,
        checkout_status,
        failure_code,
        failure_message,
        dispute_status,
        dispute_reason,
        dispute_outcome,
        paid_at: if paid { paid_at } else { None },
        refunded_at: refund.map(|(_, _, at)| at),
        last_event_id: last.map(|f| f.event_id.clone()),
        last_event_at: last.map(|f| f.occurred_at),
    }
}

/// Which facts speak first for a payment's amount and booking: the intent's own, then (for an
/// amount) the charge's or (for a booking) the session's, then the rest. Lower is stronger.
fn authority(kind: &FactKind, for_amount: bool) -> u8 {
    match kind {
        FactKind::IntentSucceeded
        | FactKind::IntentProcessing
        | FactKind::IntentFailed { .. }
        | FactKind::IntentCanceled { .. } => 0,
        FactKind::Refunded { .. } if for_amount => 1,
        FactKind::Refunded { .. } => 2,
        FactKind::DisputeOpened { .. } | FactKind::DisputeClosed { .. } => 3,
        _ if for_amount => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::facts::Refs;

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
            },
        )
    }

    fn status(facts: &[Fact]) -> PaymentStatus {
        derive(facts).status
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
    fn partial_refunds_join_by_max() {
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
    fn disputes_hold_until_won() {
        let opened = fact(
            "evt_d1",
            20,
            FactKind::DisputeOpened {
                status: Some("needs_response".into()),
                reason: Some("fraudulent".into()),
            },
        );
        let closed = |outcome: &str| {
            fact(
                "evt_d2",
                30,
                FactKind::DisputeClosed {
                    status: Some(outcome.into()),
                    reason: Some("fraudulent".into()),
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
