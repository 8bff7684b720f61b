//! Facts: what one provider event establishes about one payment. A fact never depends on what
//! arrived before it; [`super::state`] joins them. Reading them from payloads is the ledger's work
//! (`ledger::facts`).

use serde::{Deserialize, Serialize};

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

/// A refund as one event saw it: Stripe's refund object, or an entry of a charge's `refunds` list.
/// Refunds are joined by id, so each is counted once whichever events reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundSeen {
    pub id: String,
    /// Minor units.
    pub amount: i64,
    /// `pending`, `requires_action`, `succeeded`, `failed` or `canceled`.
    pub status: String,
    /// When the refund was created (unix seconds): whether a charge snapshot already counted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

impl RefundSeen {
    /// A refund that failed or was canceled gives the money back to the merchant.
    pub fn is_live(&self) -> bool {
        !matches!(self.status.as_str(), "failed" | "canceled")
    }

    /// How far along Stripe's refund lifecycle a status is: statuses only move forward
    /// (pending → succeeded → failed), so the furthest one seen is the refund's status whatever
    /// order the events came in.
    pub fn stage(&self) -> u8 {
        match self.status.as_str() {
            "pending" | "requires_action" => 0,
            "succeeded" => 1,
            _ => 2,
        }
    }
}

/// What the event says happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FactKind {
    IntentSucceeded,
    IntentProcessing,
    /// Authorised, waiting to be captured (manual capture): no money taken yet.
    IntentAuthorized,
    IntentFailed {
        code: Option<String>,
        message: Option<String>,
    },
    IntentCanceled {
        reason: Option<String>,
    },
    /// `charge.captured`: the money of an authorisation was taken (the fact's `amount_captured`).
    ChargeCaptured,
    /// `charge.expired`: an authorisation that was never captured lapsed.
    AuthorizationExpired,
    /// `paid` is false for a delayed payment method: the money is still on its way.
    SessionCompleted {
        paid: bool,
    },
    SessionExpired,
    SessionAsyncSucceeded,
    SessionAsyncFailed,
    /// A charge snapshot (`charge.refunded`): `amount_refunded` is the charge's running total at
    /// the event's time; `refunds` the charge's refund objects when the event lists them.
    Refunded {
        amount_refunded: i64,
        full: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        refunds: Vec<RefundSeen>,
    },
    /// A refund object (`refund.*`, `charge.refund.updated`).
    RefundUpdated {
        refund: RefundSeen,
    },
    /// `charge.dispute.created`.
    DisputeOpened {
        status: Option<String>,
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dispute_id: Option<String>,
        /// The amount disputed (`amount` would clash with the fact's own).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disputed: Option<i64>,
    },
    /// `charge.dispute.updated`.
    DisputeUpdated {
        status: Option<String>,
        reason: Option<String>,
        dispute_id: Option<String>,
        disputed: Option<i64>,
    },
    /// `charge.dispute.closed`.
    DisputeClosed {
        status: Option<String>,
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dispute_id: Option<String>,
        /// The amount disputed (`amount` would clash with the fact's own).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disputed: Option<i64>,
    },
    /// `charge.dispute.funds_withdrawn` (`withdrawn`) or `charge.dispute.funds_reinstated`.
    DisputeFunds {
        status: Option<String>,
        reason: Option<String>,
        dispute_id: Option<String>,
        disputed: Option<i64>,
        withdrawn: bool,
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
    /// What was captured, when the event says (`amount_received`, `amount_captured`): the paid
    /// amount, which a partial capture makes lower than `amount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_captured: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// When the money moved, if this event says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paid_at: Option<i64>,
    #[serde(flatten)]
    pub kind: FactKind,
}
