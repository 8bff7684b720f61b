//! The ledger's rows (`payments`, `payment_facts`) as the store reads and writes them: a payment
//! row and the [`Payment`] it holds, the JSON and flag columns, stored facts, the counts.

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::domain::facts::Fact;
use crate::domain::state::{
    Attention, CheckoutStatus, DisputeView, Payment, PaymentState, PaymentStatus, RefundView,
};

/// A `payments` row, column for column.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct PaymentRow {
    id: i64,
    source: String,
    booking_id: Option<String>,
    payment_intent_id: Option<String>,
    checkout_session_id: Option<String>,
    charge_id: Option<String>,
    amount: Option<i64>,
    amount_captured: Option<i64>,
    currency: Option<String>,
    amount_refunded: i64,
    amount_disputed: i64,
    status: PaymentStatus,
    checkout_status: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    dispute_status: Option<String>,
    dispute_reason: Option<String>,
    dispute_outcome: Option<String>,
    paid_at: Option<DateTime<Utc>>,
    refunded_at: Option<DateTime<Utc>>,
    attention: Option<String>,
    detail: Option<String>,
    last_event_id: Option<String>,
    last_event_at: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<PaymentRow> for Payment {
    type Error = StoreError;

    fn try_from(r: PaymentRow) -> Result<Payment, StoreError> {
        let detail: PaymentDetail = match r.detail {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("payment detail: {e}")))?,
            None => PaymentDetail::default(),
        };
        Ok(Payment {
            id: r.id,
            source: r.source,
            state: PaymentState {
                status: r.status,
                booking_id: r.booking_id,
                payment_intent_id: r.payment_intent_id,
                checkout_session_id: r.checkout_session_id,
                charge_id: r.charge_id,
                amount: r.amount,
                amount_captured: r.amount_captured,
                currency: r.currency,
                amount_refunded: r.amount_refunded,
                refunds: detail.refunds,
                disputes: detail.disputes,
                amount_disputed: r.amount_disputed,
                checkout_status: r.checkout_status.as_deref().and_then(CheckoutStatus::parse),
                failure_code: r.failure_code,
                failure_message: r.failure_message,
                dispute_status: r.dispute_status,
                dispute_reason: r.dispute_reason,
                dispute_outcome: r.dispute_outcome,
                paid_at: r.paid_at.map(|t| t.timestamp()),
                refunded_at: r.refunded_at.map(|t| t.timestamp()),
                attention: parse_attention(r.attention.as_deref()),
                last_event_id: r.last_event_id,
                last_event_at: r.last_event_at,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Payment rows read back.
pub(super) fn payments(rows: Vec<PaymentRow>) -> Result<Vec<Payment>, StoreError> {
    rows.into_iter().map(Payment::try_from).collect()
}

/// A payment's refunds and disputes, kept as one JSON column.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PaymentDetail {
    #[serde(default)]
    pub refunds: Vec<RefundView>,
    #[serde(default)]
    pub disputes: Vec<DisputeView>,
}

impl PaymentDetail {
    /// The column's text: `None` when there is nothing to say.
    pub fn column(state: &PaymentState) -> Option<String> {
        if state.refunds.is_empty() && state.disputes.is_empty() {
            return None;
        }
        let detail = PaymentDetail {
            refunds: state.refunds.clone(),
            disputes: state.disputes.clone(),
        };
        Some(serde_json::to_string(&detail).expect("payment detail serializes"))
    }
}

/// The `attention` column: flags, comma-separated, `None` when there are none.
pub fn attention_column(state: &PaymentState) -> Option<String> {
    (!state.attention.is_empty()).then(|| {
        state
            .attention
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// Reads the `attention` column; unknown flags (from a newer payhook) are skipped.
pub fn parse_attention(text: Option<&str>) -> Vec<Attention> {
    let mut flags: Vec<_> = text
        .unwrap_or_default()
        .split(',')
        .filter_map(Attention::parse)
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

/// Unix seconds as a time, for the timestamp columns.
pub(super) fn time(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}

/// A stored fact's JSON read back, with its payment.
pub(super) fn parse_fact((payment, text): (i64, String)) -> Result<(i64, Fact), StoreError> {
    let fact = serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("payment fact {text:?}: {e}")))?;
    Ok((payment, fact))
}

/// A fact's JSON, as stored.
pub(super) fn fact_column(fact: &Fact) -> String {
    serde_json::to_string(fact).expect("facts serialize")
}

/// A fact as stored, with its event's type and payload (see `facts_with_payloads`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredFact {
    pub id: i64,
    pub payment_id: i64,
    pub source: String,
    pub event_type: String,
    pub payload: Vec<u8>,
}

/// The columns payments are looked up by.
#[derive(Debug, Clone, Copy)]
pub enum PaymentKey {
    Booking,
    CheckoutSession,
    PaymentIntent,
}

impl PaymentKey {
    /// The payments whose column equals `$1`, oldest first.
    pub(super) fn sql(self) -> &'static str {
        match self {
            PaymentKey::Booking => super::sql::PAYMENTS_OF_BOOKING,
            PaymentKey::CheckoutSession => super::sql::PAYMENTS_OF_SESSION,
            PaymentKey::PaymentIntent => super::sql::PAYMENTS_OF_INTENT,
        }
    }
}

/// Counts by status, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Depths {
    pub events: Vec<(String, i64)>,
    /// (target, status, count)
    pub deliveries: Vec<(String, String, i64)>,
    pub payments: Vec<(String, i64)>,
}
