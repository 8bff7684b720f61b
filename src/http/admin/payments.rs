//! Payments of the ledger, as the dashboard lists them.

use super::*;

fn rfc3339(secs: Option<i64>) -> Option<String> {
    secs.and_then(|s| DateTime::from_timestamp(s, 0)).map(time)
}

/// A payment of the ledger. Amounts are integers in minor units of `currency`.
#[derive(Serialize, ToSchema)]
pub struct PaymentRow {
    id: i64,
    source: String,
    booking_id: Option<String>,
    status: &'static str,
    amount: Option<i64>,
    currency: Option<String>,
    amount_formatted: Option<String>,
    amount_refunded: i64,
    /// e.g. `5.00 EUR`.
    amount_refunded_formatted: Option<String>,
    /// What was captured, once paid (below `amount` after a partial capture).
    amount_captured: Option<i64>,
    /// What open or lost disputes hold back now.
    amount_disputed: i64,
    refunds: Vec<crate::domain::state::RefundView>,
    disputes: Vec<crate::domain::state::DisputeView>,
    /// What needs a person: `duplicate`, `refund_failed`, `booking_refused`.
    attention: Vec<crate::domain::state::Attention>,
    payment_intent_id: Option<String>,
    checkout_session_id: Option<String>,
    charge_id: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    dispute_status: Option<String>,
    paid_at: Option<String>,
    refunded_at: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<&Payment> for PaymentRow {
    fn from(p: &Payment) -> PaymentRow {
        let s = &p.state;
        PaymentRow {
            id: p.id,
            source: p.source.clone(),
            booking_id: s.booking_id.clone(),
            status: s.status.as_str(),
            amount: s.amount,
            currency: s.currency.clone(),
            amount_formatted: Money::written(s.amount, s.currency.as_deref()),
            amount_refunded: s.amount_refunded,
            amount_refunded_formatted: Money::written(
                Some(s.amount_refunded),
                s.currency.as_deref(),
            ),
            amount_captured: s.amount_captured,
            amount_disputed: s.amount_disputed,
            refunds: s.refunds.clone(),
            disputes: s.disputes.clone(),
            attention: s.attention.clone(),
            payment_intent_id: s.payment_intent_id.clone(),
            checkout_session_id: s.checkout_session_id.clone(),
            charge_id: s.charge_id.clone(),
            failure_code: s.failure_code.clone(),
            failure_message: s.failure_message.clone(),
            dispute_status: s.dispute_status.clone(),
            paid_at: rfc3339(s.paid_at),
            refunded_at: rfc3339(s.refunded_at),
            created_at: time(p.created_at),
            updated_at: time(p.updated_at),
        }
    }
}

/// The filters of the payment listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PaymentQuery {
    booking_id: Option<String>,
    /// A payment intent, checkout session or charge id (`pi_...`, `cs_...`, `ch_...`).
    #[serde(rename = "ref")]
    #[param(rename = "ref")]
    reference: Option<String>,
    #[param(inline)]
    #[serde(deserialize_with = "one_of")]
    status: Option<PaymentStatus>,
}

/// `GET /admin/api/payments?booking_id&ref&status&limit&cursor`, newest first.
#[utoipa::path(
    get,
    path = "/admin/api/payments",
    tag = "admin",
    params(PaymentQuery, PageQuery),
    security(("admin_token" = [])),
    responses((status = 200, description = "A page of payments", body = Page<PaymentRow>), Invalid, Unauthorized, StoreDown)
)]
pub(super) async fn list_payments(
    State(state): State<Arc<AppState>>,
    ValidQuery(q): ValidQuery<PaymentQuery>,
    ValidQuery(p): ValidQuery<PageQuery>,
) -> Result<Json<Page<PaymentRow>>, ApiError> {
    let status = q.status.map(PaymentStatus::as_str);
    if let Some(reference) = &q.reference {
        // Few payments share a provider id: one page, newest first.
        let mut payments = state.store.payments_by_ref(reference).await?;
        payments.retain(|p| {
            q.booking_id
                .as_deref()
                .is_none_or(|b| p.state.booking_id.as_deref() == Some(b))
                && q.status.is_none_or(|s| p.state.status == s)
        });
        payments.reverse();
        return Ok(page(&payments, |p| p.id, i64::MAX));
    }
    let payments = state
        .store
        .list_payments(q.booking_id.as_deref(), status, p.cursor, p.limit)
        .await?;
    Ok(page(&payments, |p| p.id, p.limit))
}
