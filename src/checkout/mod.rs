//! The browser side of a payment: checkout sessions and payment intents created with the
//! provider, Stripe's API ([`StripeApi`]) or the built-in [`Sandbox`] when no Stripe key is set.

mod sandbox;
mod stripe_api;

use std::time::Duration;

pub use sandbox::{Sandbox, SandboxError, WebhookSender};
pub use stripe_api::{EventQuery, StripeApi};

use crate::store::{Session, StoreError};

/// How long a new checkout session stays open unless the caller says otherwise.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(24 * 3600);

/// A checkout session to create; amounts in minor units, currency lowercase ISO 4217.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub booking_id: String,
    pub amount: i64,
    pub currency: String,
    pub description: Option<String>,
    pub customer_email: Option<String>,
    /// May hold `{CHECKOUT_SESSION_ID}`, replaced by the provider.
    pub success_url: String,
    pub cancel_url: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl NewSession {
    /// The session row for `id`, open and unpaid, payable at `url`.
    pub fn open(&self, id: String, provider: &str, url: String, created_at: i64) -> Session {
        Session {
            id,
            provider: provider.to_string(),
            booking_id: self.booking_id.clone(),
            amount: self.amount,
            currency: self.currency.clone(),
            description: self.description.clone(),
            customer_email: self.customer_email.clone(),
            success_url: self.success_url.clone(),
            cancel_url: self.cancel_url.clone(),
            url,
            payment_intent_id: None,
            status: "open".into(),
            payment_status: "unpaid".into(),
            expires_at: self.expires_at,
            created_at,
        }
    }
}

/// A payment intent to create.
#[derive(Debug, Clone)]
pub struct NewIntent {
    pub booking_id: String,
    pub amount: i64,
    pub currency: String,
}

/// A payment intent as created.
#[derive(Debug, Clone)]
pub struct CreatedIntent {
    pub id: String,
    pub client_secret: String,
}

/// What the provider says of a session now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    pub status: String,
    pub payment_status: String,
    pub payment_intent_id: Option<String>,
}

/// What the provider says of a payment intent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentState {
    /// The provider's word: `requires_payment_method`, `processing`, `succeeded`, `canceled`...
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub booking_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered and said no (e.g. an invalid parameter).
    #[error("the provider refused: {message}")]
    Refused {
        status: u16,
        message: String,
        param: Option<String>,
    },
    /// STRIPE_SECRET_KEY was not accepted.
    #[error("the provider refused STRIPE_SECRET_KEY (HTTP {0})")]
    Unauthorized(u16),
    #[error("the provider cannot be reached: {0}")]
    Unreachable(String),
    /// The `Idempotency-Key` was used before for a request with other parameters.
    #[error("{0}")]
    KeyReused(String),
    /// Neither Stripe's API nor the sandbox provider is configured.
    #[error("no payment provider is configured (STRIPE_SECRET_KEY, or PAYHOOK_SANDBOX=true)")]
    NotConfigured,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The caller's idempotency key, or a new one: a request without one is never a retry.
fn made_up_unless(key: Option<&str>) -> String {
    key.map_or_else(|| crate::domain::ids::random_token(32), str::to_string)
}

/// The connected account (Stripe Connect) an event happened on: its objects are read as that
/// account, or Stripe answers 404.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectedAccount {
    /// A thin event's `context`, sent as `Stripe-Context` (what the SDKs' `fetchRelatedObject`
    /// sends).
    Context(String),
    /// A classic event's `account`, sent as `Stripe-Account`.
    Account(String),
}

impl ConnectedAccount {
    /// The account an event names, if any: its `context` (thin) or `account` (classic).
    pub fn of(event: &serde_json::Value) -> Option<ConnectedAccount> {
        let usable = |v: &serde_json::Value| {
            v.as_str()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()))
                .map(str::to_string)
        };
        usable(&event["context"])
            .map(ConnectedAccount::Context)
            .or_else(|| usable(&event["account"]).map(ConnectedAccount::Account))
    }

    fn header(&self) -> (&'static str, &str) {
        match self {
            ConnectedAccount::Context(c) => ("Stripe-Context", c),
            ConnectedAccount::Account(a) => ("Stripe-Account", a),
        }
    }
}

/// Who payments are made with.
pub enum Provider {
    Stripe(StripeApi),
    Sandbox(Sandbox),
    /// Webhooks only: a Stripe secret is configured but no API key, and the sandbox is not asked
    /// for (it would sign its public Pay button's events with that secret).
    Off,
}

impl Provider {
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Stripe(_) => "stripe",
            Provider::Sandbox(_) => "sandbox",
            Provider::Off => "none",
        }
    }

    /// Creates the session with the provider and keeps it in the store. With the caller's
    /// `Idempotency-Key`, a retried request answers the session the first one created, as
    /// Stripe does (and a replay Stripe answers is stored once); without, a key is made up.
    pub async fn create_session(
        &self,
        new: &NewSession,
        idempotency_key: Option<&str>,
    ) -> Result<Session, ProviderError> {
        match self {
            Provider::Stripe(api) => {
                let key = made_up_unless(idempotency_key);
                let session = api.create_session(new, &key).await?;
                api.store().insert_session(&session).await?;
                Ok(session)
            }
            Provider::Sandbox(sandbox) => sandbox.create_session(new, idempotency_key).await,
            Provider::Off => Err(ProviderError::NotConfigured),
        }
    }

    pub async fn create_intent(
        &self,
        new: &NewIntent,
        idempotency_key: Option<&str>,
    ) -> Result<CreatedIntent, ProviderError> {
        match self {
            Provider::Stripe(api) => {
                api.create_intent(new, &made_up_unless(idempotency_key))
                    .await
            }
            Provider::Sandbox(sandbox) => sandbox.create_intent(new, idempotency_key).await,
            Provider::Off => Err(ProviderError::NotConfigured),
        }
    }

    /// The session as the provider sees it now. The sandbox keeps nothing beyond the session
    /// row, which the caller has already read: it has nothing more to say.
    pub async fn session_state(&self, id: &str) -> Result<Option<SessionState>, ProviderError> {
        match self {
            Provider::Stripe(api) => api.session_state(id).await,
            Provider::Sandbox(_) | Provider::Off => Ok(None),
        }
    }

    /// The payment intent as the provider sees it now (the sandbox: its own row).
    pub async fn intent_state(&self, id: &str) -> Result<Option<IntentState>, ProviderError> {
        match self {
            Provider::Stripe(api) => api.intent_state(id).await,
            Provider::Sandbox(sandbox) => Ok(sandbox
                .store()
                .find_sandbox_intent(id)
                .await?
                .filter(|i| i.id == id)
                .map(|i| IntentState {
                    status: i.status,
                    amount: i.amount,
                    currency: i.currency,
                    booking_id: Some(i.booking_id),
                })),
            Provider::Off => Ok(None),
        }
    }

    /// The object at an API path (`/v1/payment_intents/pi_...`), as the provider has it now:
    /// what a thin event's `related_object.url` names; `None` when there is none. The sandbox
    /// answers from its own rows, as of the state `event_type` describes.
    pub async fn fetch_object(
        &self,
        path: &str,
        event_id: &str,
        event_type: &str,
        account: Option<&ConnectedAccount>,
    ) -> Result<Option<serde_json::Value>, ProviderError> {
        match self {
            Provider::Stripe(api) => api.get_path(path, event_id, account).await,
            Provider::Sandbox(sandbox) => Ok(sandbox.object(path, event_type).await?),
            Provider::Off => Err(ProviderError::NotConfigured),
        }
    }

    pub fn sandbox(&self) -> Option<&Sandbox> {
        match self {
            Provider::Sandbox(sandbox) => Some(sandbox),
            Provider::Stripe(_) | Provider::Off => None,
        }
    }
}

/// Replaces Stripe's `{CHECKOUT_SESSION_ID}` template in a return URL.
pub fn fill_session_id(url: &str, session_id: &str) -> String {
    url.replace("{CHECKOUT_SESSION_ID}", session_id)
}

#[cfg(test)]
mod connected_account_tests {
    use super::ConnectedAccount;

    #[test]
    fn an_event_names_its_connected_account_by_context_or_account() {
        let of = |v| ConnectedAccount::of(&v);
        assert_eq!(
            of(serde_json::json!({"context": "acct_1A"})),
            Some(ConnectedAccount::Context("acct_1A".into()))
        );
        assert_eq!(
            of(serde_json::json!({"account": "acct_1B"})),
            Some(ConnectedAccount::Account("acct_1B".into()))
        );
        assert_eq!(of(serde_json::json!({"context": null})), None);
        assert_eq!(of(serde_json::json!({"account": "acct 1\n"})), None);
    }
}
