//! Stripe's API, as far as checkout needs it: form-encoded requests with an `Idempotency-Key`,
//! against `STRIPE_API_BASE` (a local emulator in tests), errors turned into plain sentences.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{CreatedIntent, IntentState, NewIntent, NewSession, ProviderError, SessionState};
use crate::domain::Secret;
use crate::store::{Session, Store};

/// One page of Stripe's event list.
#[derive(Debug, Clone)]
pub struct EventPage {
    /// Each event's JSON, as the API sent it.
    pub events: Vec<bytes::Bytes>,
    pub has_more: bool,
}

/// Which of Stripe's events to list, and where the page starts.
#[derive(Debug, Clone, Default)]
pub struct EventQuery<'a> {
    /// Created at or after this time (unix seconds).
    pub since: i64,
    pub event_type: Option<&'a str>,
    /// Only the events whose delivery to a webhook endpoint failed or is still pending.
    pub only_undelivered: bool,
    pub starting_after: Option<&'a str>,
    pub ending_before: Option<&'a str>,
}

pub struct StripeApi {
    client: reqwest::Client,
    base: String,
    key: Secret,
    store: Arc<Store>,
}

impl StripeApi {
    pub fn new(base: &str, key: Secret, store: Arc<Store>) -> StripeApi {
        StripeApi {
            client: crate::net::client_builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("an HTTP client"),
            base: base.trim_end_matches('/').to_string(),
            key,
            store,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn create_session(
        &self,
        new: &NewSession,
        idempotency_key: &str,
    ) -> Result<Session, ProviderError> {
        let name = new
            .description
            .clone()
            .unwrap_or_else(|| format!("Booking {}", new.booking_id));
        let mut form = vec![
            ("mode", "payment".to_string()),
            ("line_items[0][quantity]", "1".into()),
            ("line_items[0][price_data][currency]", new.currency.clone()),
            (
                "line_items[0][price_data][unit_amount]",
                new.amount.to_string(),
            ),
            ("line_items[0][price_data][product_data][name]", name),
            ("success_url", new.success_url.clone()),
            ("cancel_url", new.cancel_url.clone()),
            ("client_reference_id", new.booking_id.clone()),
            ("metadata[booking_id]", new.booking_id.clone()),
            // The intent's events carry the booking too, whichever arrives first.
            (
                "payment_intent_data[metadata][bookingId]",
                new.booking_id.clone(),
            ),
            ("expires_at", new.expires_at.to_string()),
        ];
        if let Some(email) = &new.customer_email {
            form.push(("customer_email", email.clone()));
        }
        let created = self
            .post("/v1/checkout/sessions", &form, idempotency_key)
            .await?;
        let created_at = created["created"]
            .as_i64()
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        let mut session = new.open(
            text(&created, "id")?,
            "stripe",
            text(&created, "url")?,
            created_at,
        );
        session.payment_intent_id = created["payment_intent"].as_str().map(str::to_string);
        if let Some(expires_at) = created["expires_at"].as_i64() {
            session.expires_at = expires_at;
        }
        Ok(session)
    }

    pub async fn create_intent(
        &self,
        new: &NewIntent,
        idempotency_key: &str,
    ) -> Result<CreatedIntent, ProviderError> {
        let form = [
            ("amount", new.amount.to_string()),
            ("currency", new.currency.clone()),
            ("metadata[bookingId]", new.booking_id.clone()),
            ("payment_method_types[]", "card".into()),
        ];
        let created = self
            .post("/v1/payment_intents", &form, idempotency_key)
            .await?;
        Ok(CreatedIntent {
            id: text(&created, "id")?,
            client_secret: text(&created, "client_secret")?,
        })
    }

    /// `None` when Stripe does not know the session.
    pub async fn session_state(&self, id: &str) -> Result<Option<SessionState>, ProviderError> {
        let Some(session) = self.get("/v1/checkout/sessions", id).await? else {
            return Ok(None);
        };
        Ok(Some(SessionState {
            status: text(&session, "status")?,
            payment_status: text(&session, "payment_status")?,
            payment_intent_id: session["payment_intent"]
                .as_str()
                .or_else(|| session["payment_intent"]["id"].as_str())
                .map(str::to_string),
        }))
    }

    /// `None` when Stripe does not know the intent.
    pub async fn intent_state(&self, id: &str) -> Result<Option<IntentState>, ProviderError> {
        let Some(intent) = self.get("/v1/payment_intents", id).await? else {
            return Ok(None);
        };
        Ok(Some(IntentState {
            status: text(&intent, "status")?,
            amount: intent["amount"]
                .as_i64()
                .ok_or_else(|| ProviderError::Unreachable("the answer has no amount".into()))?,
            currency: text(&intent, "currency")?,
            booking_id: intent["metadata"]["bookingId"].as_str().map(str::to_string),
        }))
    }

    /// One page of `GET /v1/events` as `query` asks. Stripe lists newest first: `starting_after`
    /// pages towards older events, `ending_before` towards newer ones (the page still newest
    /// first). Each event's JSON is kept as the API sent it.
    pub async fn list_events(&self, query: &EventQuery<'_>) -> Result<EventPage, ProviderError> {
        let mut pairs = vec![
            ("created[gte]", query.since.to_string()),
            ("limit", "100".to_string()),
        ];
        if query.only_undelivered {
            // "Events which are still pending or have failed all delivery attempts to a webhook
            // endpoint" (Stripe's List Events API, `delivery_success`).
            pairs.push(("delivery_success", "false".to_string()));
        }
        if let Some(t) = query.event_type {
            pairs.push(("type", t.to_string()));
        }
        if let Some(after) = query.starting_after {
            pairs.push(("starting_after", after.to_string()));
        }
        if let Some(before) = query.ending_before {
            pairs.push(("ending_before", before.to_string()));
        }
        let mut url = self.url("/v1/events")?;
        url.query_pairs_mut().extend_pairs(&pairs);
        let bytes = read_bytes(self.send_get(url).await?).await?;
        #[derive(serde::Deserialize)]
        struct Page<'a> {
            #[serde(borrow)]
            data: Vec<&'a serde_json::value::RawValue>,
            #[serde(default)]
            has_more: bool,
        }
        let page: Page = serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::Unreachable(format!("the event list is not what Stripe sends: {e}"))
        })?;
        Ok(EventPage {
            events: page
                .data
                .iter()
                .map(|raw| bytes::Bytes::copy_from_slice(raw.get().as_bytes()))
                .collect(),
            has_more: page.has_more,
        })
    }

    /// `GET {path}` (an API path such as `/v1/charges/ch_...`) for the thin event `event_id`,
    /// with the header Stripe's SDKs send when they fetch an event's related object; `None` on a
    /// 404.
    pub async fn get_path(
        &self,
        path: &str,
        event_id: &str,
        account: Option<&super::ConnectedAccount>,
    ) -> Result<Option<Value>, ProviderError> {
        let url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ProviderError::Unreachable(format!("STRIPE_API_BASE: {e}")))?;
        let mut request = self
            .client
            .get(url)
            .bearer_auth(self.key.expose())
            .header("Stripe-Request-Trigger", format!("event={event_id}"));
        if let Some(account) = account {
            let (name, value) = account.header();
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable(crate::net::describe(&e)))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        read(response).await.map(Some)
    }

    /// `GET {collection}/{id}`; `None` on a 404.
    async fn get(&self, collection: &str, id: &str) -> Result<Option<Value>, ProviderError> {
        let mut url = self.url(collection)?;
        url.path_segments_mut()
            .map_err(|_| ProviderError::Unreachable("STRIPE_API_BASE cannot take a path".into()))?
            .push(id);
        let response = self.send_get(url).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        read(response).await.map(Some)
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, ProviderError> {
        reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| ProviderError::Unreachable(format!("STRIPE_API_BASE: {e}")))
    }

    async fn send_get(&self, url: reqwest::Url) -> Result<reqwest::Response, ProviderError> {
        self.client
            .get(url)
            .bearer_auth(self.key.expose())
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable(crate::net::describe(&e)))
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<Value, ProviderError> {
        let url = format!("{}{path}", self.base);
        // One retry on a transport error, with the same key: Stripe answers it once.
        let mut last = None;
        for _ in 0..2 {
            match self
                .client
                .post(&url)
                .bearer_auth(self.key.expose())
                .header("Idempotency-Key", idempotency_key)
                .form(form)
                .send()
                .await
            {
                Ok(response) => return read(response).await,
                Err(e) => last = Some(crate::net::describe(&e)),
            }
        }
        Err(ProviderError::Unreachable(last.unwrap_or_default()))
    }
}

/// A success's JSON, or Stripe's error object (or whatever else came back) as a [`ProviderError`].
async fn read(response: reqwest::Response) -> Result<Value, ProviderError> {
    let bytes = read_bytes(response).await?;
    serde_json::from_slice(&bytes)
        .map_err(|_| ProviderError::Unreachable("the provider's answer is not JSON".into()))
}

/// A success's body as sent, or the refusal as a [`ProviderError`].
async fn read_bytes(response: reqwest::Response) -> Result<bytes::Bytes, ProviderError> {
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ProviderError::Unreachable(crate::net::describe(&e)))?;
    if (200..=299).contains(&status) {
        return Ok(bytes);
    }
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    match (status, body) {
        (401 | 403, _) => Err(ProviderError::Unauthorized(status)),
        (_, body) => {
            let error = body.as_ref().map(|b| &b["error"]);
            let message = match error.and_then(|e| e["message"].as_str()) {
                Some(m) => m.to_string(),
                None => {
                    let text = String::from_utf8_lossy(&bytes);
                    let text: String = text.trim().chars().take(200).collect();
                    if text.is_empty() {
                        "no message".into()
                    } else {
                        text
                    }
                }
            };
            // docs.stripe.com/api/idempotent_requests: a key reused with other parameters is
            // refused with an error of type `idempotency_error`, the caller's to fix.
            if error.and_then(|e| e["type"].as_str()) == Some("idempotency_error") {
                return Err(ProviderError::KeyReused(message));
            }
            Err(ProviderError::Refused {
                status,
                message,
                param: error.and_then(|e| e["param"].as_str()).map(str::to_string),
            })
        }
    }
}

fn text(object: &Value, field: &str) -> Result<String, ProviderError> {
    object[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ProviderError::Unreachable(format!("the answer has no {field:?}")))
}
