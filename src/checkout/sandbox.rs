//! The sandbox provider: payments without a Stripe account. Its sessions and intents live in
//! payhook's store, its hosted page is served by payhook, and what happens to a payment reaches
//! payhook the way Stripe's news does: as Stripe-shaped events, signed with the webhook secret and
//! posted over HTTP to payhook's own webhook route, so the whole pipeline runs.
//!
//! Events that must happen once carry ids derived from the payment (`evt_sbx_paid_<pi>`): a
//! retried click or a second expiry sweep is acknowledged as a duplicate, never applied twice.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{CreatedIntent, NewIntent, NewSession, ProviderError, fill_session_id};
use crate::domain::Secret;
use crate::providers::{stripe, stripe_events};
use crate::store::{SandboxIntent, Session, Store, StoreError};

/// Posts signed events to payhook's webhook route.
#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    url: String,
    secret: Secret,
    /// Sends thin event notifications instead of snapshot events.
    thin: bool,
}

impl WebhookSender {
    pub fn new(url: String, secret: Secret) -> WebhookSender {
        WebhookSender {
            client: crate::net::client_builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            url,
            secret,
            thin: false,
        }
    }

    /// Sends each event as the thin event notification Stripe sends for it (payhook then
    /// fetches its object from the sandbox).
    pub fn thin(mut self, thin: bool) -> WebhookSender {
        self.thin = thin;
        self
    }

    /// Sends `event` and succeeds once payhook has stored it (a 200, new or duplicate). A few
    /// tries, like Stripe, for a payhook that is briefly unavailable.
    pub async fn send(&self, event: &Value) -> Result<(), SandboxError> {
        let body = if self.thin {
            serde_json::to_vec(&stripe_events::thin_event(event))
        } else {
            serde_json::to_vec(event)
        }
        .expect("events serialize");
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            let signature = stripe::sign(&body, &self.secret, chrono::Utc::now().timestamp());
            match self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(body.clone())
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let status = r.status();
                    last = format!("{status} {}", r.text().await.unwrap_or_default());
                    if status.is_client_error() {
                        break;
                    }
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(SandboxError::NotDelivered(format!(
            "{} to {}: {last}",
            event["type"].as_str().unwrap_or("event"),
            self.url
        )))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("no sandbox payment {0:?} (give a pi_..., cs_... or booking id)")]
    NotFound(String),
    /// The action does not apply to the payment as it stands.
    #[error("{0}")]
    NotAllowed(String),
    #[error("the sandbox could not deliver its event: {0}")]
    NotDelivered(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a hosted-page action sends the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect(pub String);

pub struct Sandbox {
    store: Arc<Store>,
    public_url: String,
    webhook: WebhookSender,
}

impl Sandbox {
    pub fn new(store: Arc<Store>, public_url: &str, webhook: WebhookSender) -> Sandbox {
        Sandbox {
            store,
            public_url: public_url.trim_end_matches('/').to_string(),
            webhook,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A session and its intent; the customer pays at `/sandbox/checkout/{id}`.
    /// A new open session, or with an idempotency key used before, the session it created: its
    /// id is the key's digest, so a retry finds it (Stripe answers a retry the same way, and
    /// refuses the key with other parameters).
    pub async fn create_session(
        &self,
        new: &NewSession,
        idempotency_key: Option<&str>,
    ) -> Result<Session, ProviderError> {
        let now = chrono::Utc::now().timestamp();
        let id = match idempotency_key {
            Some(key) => keyed_id(&self.webhook.secret, "cs_test", "session", key),
            None => crate::domain::ids::new_id("cs_test"),
        };
        if let Some(first) = self.store.session(&id).await? {
            return same_session(first, new);
        }
        let intent = new_intent(&new.booking_id, new.amount, &new.currency, Some(&id), now);
        let url = format!("{}/sandbox/checkout/{id}", self.public_url);
        let mut session = new.open(id, "sandbox", url, now);
        session.payment_intent_id = Some(intent.id.clone());
        self.store.insert_session(&session).await?;
        // Two retries at once: the row stored first is the session, its intent the one saved.
        let stored = self
            .store
            .session(&session.id)
            .await?
            .ok_or_else(|| ProviderError::Unreachable("the session was not stored".into()))?;
        if stored.payment_intent_id == session.payment_intent_id {
            self.store.save_sandbox_intent(&intent).await?;
        }
        same_session(stored, new)
    }

    pub async fn create_intent(
        &self,
        new: &NewIntent,
        idempotency_key: Option<&str>,
    ) -> Result<CreatedIntent, ProviderError> {
        let now = chrono::Utc::now().timestamp();
        let mut intent = new_intent(&new.booking_id, new.amount, &new.currency, None, now);
        let secret = match idempotency_key {
            Some(key) => {
                intent.id = keyed_id(&self.webhook.secret, "pi_test", "intent", key);
                if let Some(first) = self.store.find_sandbox_intent(&intent.id).await?
                    && first.id == intent.id
                {
                    if (&first.booking_id, first.amount, &first.currency)
                        != (&new.booking_id, new.amount, &new.currency)
                    {
                        return Err(key_reused());
                    }
                    return Ok(CreatedIntent {
                        client_secret: keyed_id(
                            &self.webhook.secret,
                            &format!("{}_secret", first.id),
                            "secret",
                            key,
                        ),
                        id: first.id,
                    });
                }
                keyed_id(
                    &self.webhook.secret,
                    &format!("{}_secret", intent.id),
                    "secret",
                    key,
                )
            }
            None => format!(
                "{}_secret_{}",
                intent.id,
                crate::domain::ids::random_token(24)
            ),
        };
        self.store.save_sandbox_intent(&intent).await?;
        Ok(CreatedIntent {
            client_secret: secret,
            id: intent.id,
        })
    }

    /// A session of the sandbox (in any status), for the hosted page and its buttons.
    pub async fn session(&self, id: &str) -> Result<Session, SandboxError> {
        match self.store.session(id).await? {
            Some(s) if s.provider == "sandbox" => Ok(s),
            _ => Err(SandboxError::NotFound(id.to_string())),
        }
    }

    /// The customer pays: the intent succeeds, the session completes, and payhook hears
    /// `payment_intent.succeeded` then `checkout.session.completed`. Paying a completed session
    /// again sends the same events (duplicates to payhook) and lands on the same page.
    pub async fn pay(&self, session_id: &str) -> Result<Redirect, SandboxError> {
        let session = self.session(session_id).await?;
        refuse_if_lapsed(&session)?;
        let success = Redirect(fill_session_id(&session.success_url, &session.id));
        // The move decides between a payment and an expiry racing for the same session.
        let moved = self
            .store
            .move_session(&session.id, "open", "complete", "paid")
            .await?;
        if !moved && self.session(session_id).await?.status != "complete" {
            return Err(SandboxError::NotAllowed(
                "this checkout session has expired".into(),
            ));
        }
        let key = session.payment_intent_id.as_deref().unwrap_or(&session.id);
        let mut intent = self.intent(key).await?;
        if intent.charge_id.is_none() {
            intent.status = "succeeded".into();
            intent.charge_id = Some(crate::domain::ids::new_id("ch"));
            self.store.save_sandbox_intent(&intent).await?;
        }
        let sent = async {
            self.webhook
                .send(&intent_event("payment_intent.succeeded", &intent))
                .await?;
            self.webhook
                .send(&session_event(
                    "checkout.session.completed",
                    &session,
                    &intent,
                ))
                .await
        };
        if let Err(e) = sent.await {
            // payhook did not hear it: the session stays payable.
            if moved {
                self.store
                    .move_session(&session.id, "complete", "open", "unpaid")
                    .await?;
            }
            return Err(e);
        }
        Ok(success)
    }

    /// The card is declined: payhook hears `payment_intent.payment_failed`; the session stays
    /// open (the customer may try again) and the browser goes to the return page.
    pub async fn decline(&self, session_id: &str) -> Result<Redirect, SandboxError> {
        let session = self.session(session_id).await?;
        refuse_if_lapsed(&session)?;
        if session.status != "open" {
            return Err(SandboxError::NotAllowed(format!(
                "this checkout session is {}",
                session.status
            )));
        }
        let key = session.payment_intent_id.as_deref().unwrap_or(&session.id);
        let intent = self.intent(key).await?;
        let mut event = intent_event("payment_intent.payment_failed", &intent);
        // Each decline is its own attempt.
        event["id"] = json!(crate::domain::ids::new_id("evt"));
        self.webhook.send(&event).await?;
        Ok(Redirect(fill_session_id(&session.success_url, &session.id)))
    }

    /// The customer gives up: back to the cancel URL; the session stays open until it expires.
    pub async fn cancel(&self, session_id: &str) -> Result<Redirect, SandboxError> {
        let session = self.session(session_id).await?;
        Ok(Redirect(fill_session_id(&session.cancel_url, &session.id)))
    }

    /// Expires the open sessions whose time has passed; returns how many.
    pub async fn expire_due(&self, now: i64) -> Result<usize, SandboxError> {
        let mut expired = 0;
        for session in self.store.expired_sessions("sandbox", now).await? {
            // A payment that won the race keeps its session.
            if !self
                .store
                .move_session(&session.id, "open", "expired", "unpaid")
                .await?
            {
                continue;
            }
            let key = session.payment_intent_id.as_deref().unwrap_or(&session.id);
            let intent = self.intent(key).await?;
            let event = session_event("checkout.session.expired", &session, &intent);
            if let Err(e) = self.webhook.send(&event).await {
                // Tried again at the next sweep.
                self.store
                    .move_session(&session.id, "expired", "open", "unpaid")
                    .await?;
                return Err(e);
            }
            expired += 1;
        }
        Ok(expired)
    }

    /// Refunds `amount` (default: what is left) of a paid sandbox payment.
    pub async fn refund(&self, key: &str, amount: Option<i64>) -> Result<Value, SandboxError> {
        let mut intent = self.paid_intent(key).await?;
        let left = intent.amount - intent.amount_refunded;
        let amount = amount.unwrap_or(left);
        if amount <= 0 || amount > left {
            return Err(SandboxError::NotAllowed(format!(
                "can refund between 1 and {left} (minor units) of {}",
                intent.id
            )));
        }
        intent.amount_refunded += amount;
        let event = charge_event(&intent);
        self.webhook.send(&event).await?;
        self.store.save_sandbox_intent(&intent).await?;
        Ok(event)
    }

    /// Opens a dispute on a paid sandbox payment.
    pub async fn dispute(&self, key: &str) -> Result<Value, SandboxError> {
        let mut intent = self.paid_intent(key).await?;
        if intent.disputed {
            return Err(SandboxError::NotAllowed(format!(
                "{} is already disputed",
                intent.id
            )));
        }
        let event = dispute_event(&intent);
        self.webhook.send(&event).await?;
        intent.disputed = true;
        self.store.save_sandbox_intent(&intent).await?;
        Ok(event)
    }

    /// The object at an API path, as the sandbox has it now, for a thin event of `event_type`
    /// (`v1.payment_intent.payment_failed`: the intent with its last payment error).
    pub async fn object(&self, path: &str, event_type: &str) -> Result<Option<Value>, StoreError> {
        let event_type = event_type.strip_prefix("v1.").unwrap_or(event_type);
        let Some((collection, id)) = path.strip_prefix("/v1/").and_then(|p| p.rsplit_once('/'))
        else {
            return Ok(None);
        };
        // A dispute's id is its intent's: `dp_<stem>` for `pi_<stem>`.
        let key = match (collection, id.strip_prefix("dp_")) {
            ("disputes", Some(stem)) => format!("pi_{stem}"),
            _ => id.to_string(),
        };
        let Some(intent) = self.store.find_sandbox_intent(&key).await? else {
            return Ok(None);
        };
        let event = match collection {
            "payment_intents" if intent.id == id => intent_event(event_type, &intent),
            "charges" if intent.charge_id.as_deref() == Some(id) => charge_event(&intent),
            "disputes" if intent.disputed => dispute_event(&intent),
            "checkout/sessions" => match self.store.session(id).await? {
                Some(session) => session_event(event_type, &session, &intent),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        Ok(Some(event["data"]["object"].clone()))
    }

    async fn intent(&self, key: &str) -> Result<SandboxIntent, SandboxError> {
        self.store
            .find_sandbox_intent(key)
            .await?
            .ok_or_else(|| SandboxError::NotFound(key.to_string()))
    }

    async fn paid_intent(&self, key: &str) -> Result<SandboxIntent, SandboxError> {
        let intent = self.intent(key).await?;
        if intent.charge_id.is_none() {
            return Err(SandboxError::NotAllowed(format!(
                "{} has not been paid",
                intent.id
            )));
        }
        Ok(intent)
    }
}

/// A new intent, waiting for a payment method.
/// `prefix_` and 24 hex digits of the HMAC, keyed with this payhook's webhook secret, of what an
/// idempotency key was used for: the same on a retry, and not something a caller who knows the
/// key (a booking id, often) can work out, since the id is the capability to pay the session.
fn keyed_id(secret: &Secret, prefix: &str, what: &str, key: &str) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("payhook sandbox {what}\n{key}").as_bytes());
    format!(
        "{prefix}_{}",
        &hex::encode(mac.finalize().into_bytes())[..24]
    )
}

/// The session an idempotency key created, if `new` asks for the same one.
fn same_session(first: Session, new: &NewSession) -> Result<Session, ProviderError> {
    let asked = |s: &Session| {
        (
            s.booking_id.clone(),
            s.amount,
            s.currency.clone(),
            s.description.clone(),
            s.customer_email.clone(),
            s.success_url.clone(),
            s.cancel_url.clone(),
        )
    };
    if asked(&first) == asked(&new.open(String::new(), "", String::new(), 0)) {
        Ok(first)
    } else {
        Err(key_reused())
    }
}

fn key_reused() -> ProviderError {
    ProviderError::KeyReused(
        "this Idempotency-Key was used for a request with other parameters: use another key for another request"
            .into(),
    )
}

fn new_intent(
    booking_id: &str,
    amount: i64,
    currency: &str,
    session: Option<&str>,
    now: i64,
) -> SandboxIntent {
    SandboxIntent {
        id: crate::domain::ids::new_id("pi"),
        booking_id: booking_id.to_string(),
        amount,
        currency: currency.to_string(),
        checkout_session_id: session.map(str::to_string),
        status: "requires_payment_method".into(),
        charge_id: None,
        amount_refunded: 0,
        disputed: false,
        created_at: now,
    }
}

/// A Stripe event of `event_type` whose object is `object`, at now.
fn event(event_type: &str, id: String, object: Value) -> Value {
    let mut event = stripe_events::build_event(event_type, &[], chrono::Utc::now().timestamp())
        .expect("the sandbox only emits known types");
    event["id"] = json!(id);
    event["data"]["object"] = object;
    event
}

/// The intent's own id without its `pi_` prefix: the stable part of its events' ids.
fn stem(intent: &SandboxIntent) -> &str {
    intent.id.strip_prefix("pi_").unwrap_or(&intent.id)
}

fn intent_event(event_type: &str, i: &SandboxIntent) -> Value {
    let succeeded = i.status == "succeeded";
    let mut object = json!({
        "id": i.id, "object": "payment_intent", "amount": i.amount,
        "amount_received": if succeeded { i.amount } else { 0 },
        "currency": i.currency, "status": i.status, "created": i.created_at, "livemode": false,
        "latest_charge": i.charge_id, "payment_method_types": ["card"],
        "metadata": { "bookingId": i.booking_id },
        "last_payment_error": null,
    });
    if event_type == "payment_intent.payment_failed" {
        object["status"] = json!("requires_payment_method");
        object["last_payment_error"] = json!({
            "type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
            "message": "Your card was declined.",
        });
    }
    event(event_type, format!("evt_sbx_paid_{}", stem(i)), object)
}

fn session_event(event_type: &str, s: &Session, i: &SandboxIntent) -> Value {
    let (status, payment_status, kind) = match event_type {
        "checkout.session.expired" => ("expired", "unpaid", "expired"),
        _ => ("complete", "paid", "completed"),
    };
    let object = json!({
        "id": s.id, "object": "checkout.session", "mode": "payment",
        "amount_subtotal": s.amount, "amount_total": s.amount, "currency": s.currency,
        "client_reference_id": s.booking_id, "customer_email": s.customer_email,
        "created": s.created_at, "expires_at": s.expires_at, "livemode": false,
        "metadata": { "booking_id": s.booking_id },
        "payment_intent": if status == "expired" { Value::Null } else { json!(i.id) },
        "payment_status": payment_status, "status": status,
        "success_url": s.success_url, "cancel_url": s.cancel_url, "url": null,
    });
    event(event_type, format!("evt_sbx_{kind}_{}", stem(i)), object)
}

fn charge_event(i: &SandboxIntent) -> Value {
    let object = json!({
        "id": i.charge_id, "object": "charge", "amount": i.amount, "amount_captured": i.amount,
        "amount_refunded": i.amount_refunded, "currency": i.currency, "captured": true,
        "paid": true, "refunded": i.amount_refunded >= i.amount, "status": "succeeded",
        "payment_intent": i.id, "created": i.created_at, "livemode": false,
        "metadata": { "bookingId": i.booking_id },
    });
    // One event per refunded total: the same refund sent twice is one refund.
    let id = format!("evt_sbx_refunded_{}_{}", stem(i), i.amount_refunded);
    event("charge.refunded", id, object)
}

fn dispute_event(i: &SandboxIntent) -> Value {
    let object = json!({
        "id": format!("dp_{}", stem(i)), "object": "dispute", "amount": i.amount,
        "currency": i.currency, "charge": i.charge_id, "payment_intent": i.id,
        "created": chrono::Utc::now().timestamp(), "livemode": false, "reason": "fraudulent",
        "status": "needs_response", "is_charge_refundable": false, "metadata": {},
    });
    event(
        "charge.dispute.created",
        format!("evt_sbx_disputed_{}", stem(i)),
        object,
    )
}

/// A lapsed session ([`Session::lapsed`]) takes no payment and no decline.
fn refuse_if_lapsed(session: &Session) -> Result<(), SandboxError> {
    if session.lapsed(chrono::Utc::now().timestamp()) {
        return Err(SandboxError::NotAllowed(
            "this checkout session has expired".into(),
        ));
    }
    Ok(())
}
