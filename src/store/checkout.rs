//! Checkout sessions payhook created (`checkout_sessions`, both providers) and the sandbox
//! provider's payment intents (`sandbox_intents`). Times are unix seconds; amounts minor units.

/// A checkout session payhook created with its provider.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    pub id: String,
    /// `stripe` or `sandbox`.
    pub provider: String,
    pub booking_id: String,
    pub amount: i64,
    pub currency: String,
    pub description: Option<String>,
    pub customer_email: Option<String>,
    pub success_url: String,
    pub cancel_url: String,
    /// Where the customer pays.
    pub url: String,
    pub payment_intent_id: Option<String>,
    /// `open`, `complete` or `expired`.
    pub status: String,
    /// `unpaid` or `paid`.
    pub payment_status: String,
    pub expires_at: i64,
    pub created_at: i64,
}

impl Session {
    /// Open in the store but past its `expires_at`: expired already, whether or not the sweep
    /// (once a second) has marked it.
    pub fn lapsed(&self, now: i64) -> bool {
        self.status == "open" && self.expires_at <= now
    }
}

/// A payment intent of the sandbox provider.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SandboxIntent {
    pub id: String,
    pub booking_id: String,
    pub amount: i64,
    pub currency: String,
    pub checkout_session_id: Option<String>,
    /// `requires_payment_method` or `succeeded`.
    pub status: String,
    pub charge_id: Option<String>,
    pub amount_refunded: i64,
    pub disputed: bool,
    pub created_at: i64,
}
