//! Checkout sessions payhook created (`checkout_sessions`, both providers) and the sandbox
//! provider's payment intents (`sandbox_intents`). Times are unix seconds; amounts minor units.

/// A checkout session payhook created with its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A payment intent of the sandbox provider.
#[derive(Debug, Clone, PartialEq, Eq)]
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

macro_rules! checkout_queries {
    ($row:ty) => {
        pub async fn insert_session(&self, s: &super::checkout::Session) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO checkout_sessions (id, provider, booking_id, amount, currency,
                    description, customer_email, success_url, cancel_url, url, payment_intent_id,
                    status, payment_status, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&s.id)
            .bind(&s.provider)
            .bind(&s.booking_id)
            .bind(s.amount)
            .bind(&s.currency)
            .bind(&s.description)
            .bind(&s.customer_email)
            .bind(&s.success_url)
            .bind(&s.cancel_url)
            .bind(&s.url)
            .bind(&s.payment_intent_id)
            .bind(&s.status)
            .bind(&s.payment_status)
            .bind(s.expires_at)
            .bind(s.created_at)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        pub async fn session(&self, id: &str) -> Result<Option<super::checkout::Session>, StoreError> {
            let row: Option<$row> = sqlx::query("SELECT * FROM checkout_sessions WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            row.map(|r| session_from_row(&r)).transpose()
        }

        /// Moves a session from status `from` to `to`; false if it was not in `from`.
        pub async fn move_session(
            &self,
            id: &str,
            from: &str,
            to: &str,
            payment_status: &str,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE checkout_sessions SET status = $3, payment_status = $4
                 WHERE id = $1 AND status = $2",
            )
            .bind(id)
            .bind(from)
            .bind(to)
            .bind(payment_status)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        /// Open sessions of `provider` whose expiry has passed.
        pub async fn expired_sessions(
            &self,
            provider: &str,
            now: i64,
        ) -> Result<Vec<super::checkout::Session>, StoreError> {
            let rows: Vec<$row> = sqlx::query(
                "SELECT * FROM checkout_sessions
                 WHERE provider = $1 AND status = 'open' AND expires_at <= $2
                 ORDER BY expires_at LIMIT 100",
            )
            .bind(provider)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(session_from_row).collect()
        }

        /// Writes a sandbox intent, new or changed.
        pub async fn save_sandbox_intent(
            &self,
            i: &super::checkout::SandboxIntent,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO sandbox_intents (id, booking_id, amount, currency, checkout_session_id,
                    status, charge_id, amount_refunded, disputed, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status,
                    charge_id = excluded.charge_id, amount_refunded = excluded.amount_refunded,
                    disputed = excluded.disputed",
            )
            .bind(&i.id)
            .bind(&i.booking_id)
            .bind(i.amount)
            .bind(&i.currency)
            .bind(&i.checkout_session_id)
            .bind(&i.status)
            .bind(&i.charge_id)
            .bind(i.amount_refunded)
            .bind(i64::from(i.disputed))
            .bind(i.created_at)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        /// The sandbox intent named by its id (`pi_`), its checkout session (`cs_`), or the
        /// latest of a booking.
        pub async fn find_sandbox_intent(
            &self,
            key: &str,
        ) -> Result<Option<super::checkout::SandboxIntent>, StoreError> {
            let row: Option<$row> = sqlx::query(
                "SELECT * FROM sandbox_intents
                 WHERE id = $1 OR checkout_session_id = $1 OR booking_id = $1 OR charge_id = $1
                 ORDER BY created_at DESC, id DESC LIMIT 1",
            )
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
            row.map(|r| -> Result<_, StoreError> {
                Ok(super::checkout::SandboxIntent {
                    id: r.try_get("id")?,
                    booking_id: r.try_get("booking_id")?,
                    amount: r.try_get("amount")?,
                    currency: r.try_get("currency")?,
                    checkout_session_id: r.try_get("checkout_session_id")?,
                    status: r.try_get("status")?,
                    charge_id: r.try_get("charge_id")?,
                    amount_refunded: r.try_get("amount_refunded")?,
                    disputed: r.try_get::<i64, _>("disputed")? != 0,
                    created_at: r.try_get("created_at")?,
                })
            })
            .transpose()
        }
    };
}

/// Reads a `checkout_sessions` row (generic over the backend's row type).
pub(super) fn session_from_row<'r, R>(r: &'r R) -> Result<Session, super::StoreError>
where
    R: sqlx::Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Session {
        id: r.try_get("id")?,
        provider: r.try_get("provider")?,
        booking_id: r.try_get("booking_id")?,
        amount: r.try_get("amount")?,
        currency: r.try_get("currency")?,
        description: r.try_get("description")?,
        customer_email: r.try_get("customer_email")?,
        success_url: r.try_get("success_url")?,
        cancel_url: r.try_get("cancel_url")?,
        url: r.try_get("url")?,
        payment_intent_id: r.try_get("payment_intent_id")?,
        status: r.try_get("status")?,
        payment_status: r.try_get("payment_status")?,
        expires_at: r.try_get("expires_at")?,
        created_at: r.try_get("created_at")?,
    })
}
