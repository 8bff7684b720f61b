//! Checkout: creating sessions and intents with the provider (service routes), the session status
//! the return page polls, the return page itself, and the sandbox provider's hosted page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::AppState;
use super::error::responses::{Invalid, ProviderFailed, StoreDown, Unauthorized};
use super::error::{ApiError, ErrorBody};
use super::payments::{authorize_service, session_payment_status};
use crate::checkout::{DEFAULT_SESSION_TTL, NewIntent, NewSession, SandboxError, SessionState};
use crate::domain::money;
use crate::domain::rfc3339;
use crate::domain::state::Payment;
use crate::store::{PaymentKey, Session};

/// The provider's recent answers about sessions, so a polling page does not poll Stripe.
pub struct ProviderAnswers {
    /// How long a session may stay open in the ledger before the status route asks the
    /// provider, and how long the provider's answer is reused (`stripe.ask_provider_after`).
    ask_after: Duration,
    answers: Mutex<HashMap<String, (Instant, SessionState)>>,
}

impl ProviderAnswers {
    pub fn new(ask_after: Duration) -> ProviderAnswers {
        ProviderAnswers {
            ask_after,
            answers: Mutex::default(),
        }
    }

    fn fresh(&self, id: &str) -> Option<SessionState> {
        let answers = self.answers.lock().expect("not poisoned");
        answers
            .get(id)
            .filter(|(at, _)| at.elapsed() < self.ask_after)
            .map(|(_, s)| s.clone())
    }

    fn keep(&self, id: &str, state: SessionState) {
        let mut answers = self.answers.lock().expect("not poisoned");
        answers.retain(|_, (at, _)| at.elapsed() < self.ask_after);
        answers.insert(id.to_string(), (Instant::now(), state));
    }

    /// Whether a session created at `created_at` (unix seconds) has waited for its webhook long
    /// enough that the provider is asked.
    fn old_enough(&self, created_at: i64) -> bool {
        let waited_ms = chrono::Utc::now().timestamp_millis() - created_at * 1000;
        waited_ms >= self.ask_after.as_millis() as i64
    }
}

/// The body of `POST /api/v1/checkout/sessions`. It is read field by field (each refusal names
/// its field); this type describes it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SessionRequest {
    #[schema(min_length = 1, max_length = 200)]
    booking_id: String,
    /// Minor units of `currency` (2000 is EUR 20.00).
    #[schema(minimum = 1, maximum = 99_999_999)]
    amount: i64,
    /// ISO 4217, e.g. `eur`.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    currency: String,
    #[schema(min_length = 1, max_length = 500)]
    description: Option<String>,
    #[schema(max_length = 254)]
    customer_email: Option<String>,
    /// Absolute http(s) URL; may hold `{CHECKOUT_SESSION_ID}`. Default: payhook's return page.
    success_url: Option<String>,
    cancel_url: Option<String>,
    /// Seconds until the session expires (1 to 86400, default 86400).
    #[schema(minimum = 1, maximum = 86400)]
    expires_in: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionCreated {
    session_id: String,
    /// Where to send the customer: the provider's hosted page.
    checkout_url: String,
    expires_at: Option<String>,
}

/// `POST /api/v1/checkout/sessions`.
#[utoipa::path(
    post,
    path = "/api/v1/checkout/sessions",
    tag = "checkout",
    request_body(content = SessionRequest, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Passed to the provider: a retried request creates one session")),
    security((), ("service_token" = [])),
    responses(
        (status = 201, description = "Created with the provider", body = SessionCreated),
        Invalid,
        Unauthorized,
        ProviderFailed,
        StoreDown,
    )
)]
pub async fn create_session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize_if_set(&state, &headers)?;
    let mut fields = Fields::parse(&body)?;
    let booking_id = fields.booking_id()?;
    let amount = fields.amount()?;
    let currency = fields.currency()?;
    let description = fields.text("description", 500)?;
    let customer_email = fields.email()?;
    let public = state.public_url.trim_end_matches('/');
    let success_url = fields
        .url("success_url")?
        .unwrap_or_else(|| format!("{public}/checkout/return?session_id={{CHECKOUT_SESSION_ID}}"));
    let cancel_url = fields.url("cancel_url")?.unwrap_or_else(|| {
        format!("{public}/checkout/return?session_id={{CHECKOUT_SESSION_ID}}&canceled=1")
    });
    let expires_in = fields.expires_in()?;
    fields.no_others()?;

    let new = NewSession {
        booking_id,
        amount,
        currency,
        description,
        customer_email,
        success_url,
        cancel_url,
        expires_at: chrono::Utc::now().timestamp() + expires_in.as_secs() as i64,
    };
    let session = state
        .provider
        .create_session(&new, &idempotency_key(&headers))
        .await
        .map_err(|e| ApiError::from_provider(e, state.retry_after_secs))?;
    // The session id is the capability to read the session: it is not logged.
    tracing::info!(booking_id = %session.booking_id, provider = state.provider.name(),
        "checkout session created");
    Ok(created(SessionCreated {
        session_id: session.id,
        checkout_url: session.url,
        expires_at: rfc3339(Some(session.expires_at)),
    }))
}

fn created(body: impl Serialize) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

/// The body of `POST /api/v1/payment-intents`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IntentRequest {
    #[schema(min_length = 1, max_length = 200)]
    booking_id: String,
    #[schema(minimum = 1, maximum = 99_999_999)]
    amount: i64,
    #[schema(pattern = "^[A-Za-z]{3}$")]
    currency: String,
}

#[derive(Serialize, ToSchema)]
pub struct IntentCreated {
    payment_intent_id: String,
    /// For the provider's payment form in the browser (Stripe.js `confirmPayment`).
    client_secret: String,
}

/// A payment intent's state: the ledger's once a webhook about it arrived, the provider's before.
#[derive(Serialize, ToSchema)]
pub struct IntentStatus {
    payment_intent_id: String,
    booking_id: Option<String>,
    status: String,
    amount: Option<i64>,
    currency: Option<String>,
    paid_at: Option<String>,
    /// `webhook` or `provider`.
    verified_by: &'static str,
}

/// `POST /api/v1/payment-intents`.
#[utoipa::path(
    post,
    path = "/api/v1/payment-intents",
    tag = "checkout",
    request_body(content = IntentRequest, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Passed to the provider")),
    security((), ("service_token" = [])),
    responses(
        (status = 201, description = "Created with the provider", body = IntentCreated),
        Invalid,
        Unauthorized,
        ProviderFailed,
        StoreDown,
    )
)]
pub async fn create_intent(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize_if_set(&state, &headers)?;
    let mut fields = Fields::parse(&body)?;
    let new = NewIntent {
        booking_id: fields.booking_id()?,
        amount: fields.amount()?,
        currency: fields.currency()?,
    };
    fields.no_others()?;
    let intent = state
        .provider
        .create_intent(&new, &idempotency_key(&headers))
        .await
        .map_err(|e| ApiError::from_provider(e, state.retry_after_secs))?;
    tracing::info!(payment_intent_id = %intent.id, booking_id = %new.booking_id,
        provider = state.provider.name(), "payment intent created");
    Ok(created(IntentCreated {
        payment_intent_id: intent.id,
        client_secret: intent.client_secret,
    }))
}

/// `GET /api/v1/payment-intents/{id}` (service token when set): the ledger's word once a webhook
/// about the intent arrived, the provider's before.
#[utoipa::path(
    get,
    path = "/api/v1/payment-intents/{intent_id}",
    tag = "checkout",
    params(("intent_id" = String, Path, description = "`pi_...`")),
    security((), ("service_token" = [])),
    responses(
        (status = 200, description = "The intent's state", body = IntentStatus),
        Unauthorized,
        (status = 404, description = "Neither the ledger nor the provider knows it (`payment_intent_not_found`)", body = ErrorBody),
        ProviderFailed,
        StoreDown,
    )
)]
pub async fn get_intent(
    State(state): State<Arc<AppState>>,
    Path(intent_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<IntentStatus>, ApiError> {
    authorize_if_set(&state, &headers)?;
    let payments = state
        .store
        .payments_where(PaymentKey::PaymentIntent, &intent_id)
        .await
        .map_err(state.store_failed())?;
    if let Some(p) = payments.first() {
        let s = &p.state;
        return Ok(Json(IntentStatus {
            payment_intent_id: intent_id,
            booking_id: s.booking_id.clone(),
            status: s.status.as_str().to_string(),
            amount: s.amount,
            currency: s.currency.clone(),
            paid_at: rfc3339(s.paid_at),
            verified_by: "webhook",
        }));
    }
    let known = state
        .provider
        .intent_state(&intent_id)
        .await
        .map_err(|e| ApiError::from_provider(e, state.retry_after_secs))?;
    let Some(i) = known else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "payment_intent_not_found",
            "no payment intent with this id is known",
        ));
    };
    // The provider's words in the ledger's vocabulary.
    let status = match i.status.as_str() {
        "succeeded" => "succeeded",
        "processing" => "processing",
        "canceled" => "canceled",
        _ => "pending",
    };
    Ok(Json(IntentStatus {
        payment_intent_id: intent_id,
        booking_id: i.booking_id,
        status: status.to_string(),
        amount: Some(i.amount),
        currency: Some(i.currency),
        paid_at: None,
        verified_by: "provider",
    }))
}

/// `GET /api/v1/checkout/sessions/{id}`: the ledger's word (what webhooks established), completed
/// by the session payhook created and, while the ledger still says open after a few seconds, by
/// the provider's own answer.
#[utoipa::path(
    get,
    path = "/api/v1/checkout/sessions/{session_id}",
    tag = "checkout",
    params(("session_id" = String, Path, description = "`cs_...`: the `session_id` of the success URL")),
    responses(
        (status = 200, description = "The session's state, as the return page shows it", body = SessionStatus),
        (status = 404, description = "Neither payhook nor the provider knows it (`session_not_found`)", body = ErrorBody),
        StoreDown,
    )
)]
pub async fn get_session(
    State(state): State<Arc<AppState>>,
    Path(session_id): Path<String>,
) -> Result<Json<SessionStatus>, ApiError> {
    let created = state
        .store
        .session(&session_id)
        .await
        .map_err(state.store_failed())?;
    let mut payments = state
        .store
        .payments_where(PaymentKey::CheckoutSession, &session_id)
        .await
        .map_err(state.store_failed())?;
    if payments.is_empty()
        && let Some(pi) = created
            .as_ref()
            .and_then(|s| s.payment_intent_id.as_deref())
    {
        payments = state
            .store
            .payments_where(PaymentKey::PaymentIntent, pi)
            .await
            .map_err(state.store_failed())?;
    }
    let mut view = SessionView::new(&session_id, payments.first(), created.as_ref());
    if view.status.is_none() && created.is_none() && payments.is_empty() {
        // Unknown here: the provider may know it (a session the application created itself).
        match provider_state(&state, &session_id).await? {
            Some(p) => view.complete_with(&p),
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "session_not_found",
                    "no checkout session with this id is known",
                )
                .hint("the id is the session_id of the success URL (cs_...)"));
            }
        }
    } else if view.is_open()
        && created
            .as_ref()
            .is_none_or(|s| state.provider_answers.old_enough(s.created_at))
        && let Some(p) = provider_state(&state, &session_id).await?
    {
        view.complete_with(&p);
    }
    Ok(Json(view.json()))
}

/// The provider's answer (recent ones reused); none from a provider that cannot be reached.
async fn provider_state(state: &AppState, id: &str) -> Result<Option<SessionState>, ApiError> {
    if let Some(known) = state.provider_answers.fresh(id) {
        return Ok(Some(known));
    }
    match state.provider.session_state(id).await {
        Ok(Some(answer)) => {
            state.provider_answers.keep(id, answer.clone());
            Ok(Some(answer))
        }
        Ok(None) => Ok(None),
        Err(crate::checkout::ProviderError::Store(e)) => {
            Err(ApiError::from_store(e, state.retry_after_secs))
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot ask the provider about a session");
            Ok(None)
        }
    }
}

/// A checkout session as the return page reads it.
#[derive(Serialize, ToSchema)]
pub struct SessionStatus {
    session_id: String,
    booking_id: Option<String>,
    /// open, complete, expired.
    status: String,
    /// unpaid, processing, paid, failed, partially_refunded, refunded, disputed.
    payment_status: String,
    /// Minor units of `currency`.
    amount: Option<i64>,
    currency: Option<String>,
    amount_formatted: Option<String>,
    paid_at: Option<String>,
    /// `webhook` (the ledger established it), `provider` (the provider's API said so) or `none`.
    verified_by: &'static str,
    /// Where the customer can still pay, while the session is open and unpaid (after a decline,
    /// say): the way back from the return page.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkout_url: Option<String>,
}

/// What the status route says of a session.
struct SessionView {
    session_id: String,
    booking_id: Option<String>,
    status: Option<String>,
    payment_status: String,
    amount: Option<i64>,
    currency: Option<String>,
    paid_at: Option<i64>,
    /// `webhook` when the ledger established it, `provider` when the provider's API said so.
    verified_by: &'static str,
    /// The provider's page for the session, when payhook created it.
    url: Option<String>,
}

impl SessionView {
    fn new(id: &str, payment: Option<&Payment>, created: Option<&Session>) -> SessionView {
        let ledger = payment.map(|p| &p.state);
        let ledger_status = ledger.map(|s| session_payment_status(s.status));
        // The ledger knows once a webhook said something; before, the provider's own record
        // (the sandbox's session row) may already say paid.
        let (payment_status, verified_by) = match ledger_status {
            Some(s) if s != "unpaid" => (s.to_string(), "webhook"),
            _ => match created.map(|s| s.payment_status.as_str()) {
                Some(p) if p != "unpaid" => (p.to_string(), "provider"),
                _ => (
                    "unpaid".to_string(),
                    if payment.is_some() { "webhook" } else { "none" },
                ),
            },
        };
        let status = ledger
            .and_then(|s| s.checkout_status)
            .map(|c| c.as_str().to_string())
            .or_else(|| created.map(|s| s.status.clone()))
            .map(|s| {
                // A payment that went through completed its session, whichever event came first.
                if s == "open" && payment_status != "unpaid" && payment_status != "failed" {
                    "complete".to_string()
                } else {
                    s
                }
            });
        SessionView {
            session_id: id.to_string(),
            booking_id: ledger
                .and_then(|s| s.booking_id.clone())
                .or_else(|| created.map(|s| s.booking_id.clone())),
            status,
            payment_status,
            amount: ledger
                .and_then(|s| s.amount)
                .or_else(|| created.map(|s| s.amount)),
            currency: ledger
                .and_then(|s| s.currency.clone())
                .or_else(|| created.map(|s| s.currency.clone())),
            paid_at: ledger.and_then(|s| s.paid_at),
            verified_by,
            url: created.map(|s| s.url.clone()).filter(|u| !u.is_empty()),
        }
    }

    fn is_open(&self) -> bool {
        self.status.as_deref().is_none_or(|s| s == "open")
            && matches!(self.payment_status.as_str(), "unpaid" | "processing")
    }

    /// The provider is ahead of the webhooks: its word fills in what the ledger does not know.
    fn complete_with(&mut self, p: &SessionState) {
        if !self.is_open() {
            return;
        }
        if p.status != "open" || p.payment_status != "unpaid" {
            self.verified_by = "provider";
        }
        self.status = Some(p.status.clone());
        if self.payment_status == "unpaid" {
            self.payment_status = p.payment_status.clone();
        }
    }

    fn json(self) -> SessionStatus {
        let payable = self.status.as_deref().is_none_or(|s| s == "open")
            && matches!(self.payment_status.as_str(), "unpaid" | "failed");
        SessionStatus {
            checkout_url: if payable { self.url.clone() } else { None },
            amount_formatted: money::format_known(self.amount, self.currency.as_deref()),
            session_id: self.session_id,
            booking_id: self.booking_id,
            status: self.status.unwrap_or_else(|| "open".into()),
            payment_status: self.payment_status,
            amount: self.amount,
            currency: self.currency,
            paid_at: rfc3339(self.paid_at),
            verified_by: self.verified_by,
        }
    }
}

/// The caller's `Idempotency-Key`, or a new one: the provider then answers a retried request once.
fn idempotency_key(headers: &HeaderMap) -> String {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 255)
        .map(str::to_string)
        .unwrap_or_else(|| crate::providers::stripe_events::random_token(32))
}

/// Service routes are open when `INTERNAL_SERVICE_TOKEN` is unset (the embedded defaults), and
/// require it as a Bearer token when it is set.
fn authorize_if_set(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match state.internal_token {
        Some(_) => authorize_service(state, headers),
        None => Ok(()),
    }
}

/// A JSON object body, read field by field; each refusal names its field.
struct Fields(Map<String, Value>);

impl Fields {
    fn parse(body: &[u8]) -> Result<Fields, ApiError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Fields(map)),
            Ok(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                "the body must be a JSON object",
            )),
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                format!("the body is not JSON: {e}"),
            )
            .hint("send Content-Type: application/json and a JSON object")),
        }
    }

    fn take(&mut self, field: &str) -> Option<Value> {
        self.0.remove(field).filter(|v| !v.is_null())
    }

    fn text(&mut self, field: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let s = s.trim().to_string();
                if s.is_empty() {
                    Err(ApiError::validation(field, "must not be empty"))
                } else if s.chars().count() > max {
                    Err(ApiError::validation(
                        field,
                        format!("at most {max} characters"),
                    ))
                } else if s.chars().any(char::is_control) {
                    Err(ApiError::validation(
                        field,
                        "must not hold control characters",
                    ))
                } else {
                    Ok(Some(s))
                }
            }
            Some(other) => Err(ApiError::validation(
                field,
                format!("must be a string, not {other}"),
            )),
        }
    }

    fn booking_id(&mut self) -> Result<String, ApiError> {
        let booking = self
            .text("booking_id", 200)?
            .ok_or_else(|| ApiError::validation("booking_id", "is required"))?;
        if booking == "." || booking == ".." {
            // The booking service's route takes it as a path segment.
            return Err(ApiError::validation(
                "booking_id",
                "cannot be \".\" or \"..\" (it would change the booking service's URL path)",
            ));
        }
        Ok(booking)
    }

    fn amount(&mut self) -> Result<i64, ApiError> {
        let hint = "an integer number of minor units, e.g. 2000 for EUR 20.00";
        match self.take("amount") {
            None => Err(ApiError::validation(
                "amount",
                format!("is required ({hint})"),
            )),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(a) if (1..=99_999_999).contains(&a) => Ok(a),
                Some(a) => Err(ApiError::validation(
                    "amount",
                    format!("{a} is out of range (1 to 99999999 minor units)"),
                )),
                None => Err(ApiError::validation(
                    "amount",
                    format!("{n} is not an integer: amounts are {hint}"),
                )),
            },
            Some(other) => Err(ApiError::validation(
                "amount",
                format!("{other} is not a number: amounts are {hint}"),
            )),
        }
    }

    fn currency(&mut self) -> Result<String, ApiError> {
        let currency = self
            .text("currency", 3)?
            .ok_or_else(|| ApiError::validation("currency", "is required (e.g. \"eur\")"))?;
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(ApiError::validation(
                "currency",
                "must be a three-letter ISO 4217 code, e.g. \"eur\"",
            ));
        }
        if !money::is_currency(&currency) {
            return Err(ApiError::validation(
                "currency",
                format!(
                    "{currency:?} is not an ISO 4217 currency code (e.g. \"eur\", \"usd\", \"xof\")"
                ),
            ));
        }
        Ok(currency.to_ascii_lowercase())
    }

    fn email(&mut self) -> Result<Option<String>, ApiError> {
        let email = self.text("customer_email", 254)?;
        if let Some(e) = &email {
            let valid = e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !e.contains(char::is_whitespace)
            });
            if !valid {
                return Err(ApiError::validation(
                    "customer_email",
                    "is not an email address",
                ));
            }
        }
        Ok(email)
    }

    fn url(&mut self, field: &str) -> Result<Option<String>, ApiError> {
        let url = self.text(field, 2048)?;
        if let Some(u) = &url {
            // The template is not valid in a URL as written; check the URL around it.
            let probe = u.replace("{CHECKOUT_SESSION_ID}", "cs_probe");
            let ok = reqwest::Url::parse(&probe)
                .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some());
            if !ok {
                return Err(ApiError::validation(
                    field,
                    "must be an absolute http(s) URL (it may hold {CHECKOUT_SESSION_ID})",
                ));
            }
        }
        Ok(url)
    }

    fn expires_in(&mut self) -> Result<Duration, ApiError> {
        match self.take("expires_in") {
            None => Ok(DEFAULT_SESSION_TTL),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(s) if (1..=DEFAULT_SESSION_TTL.as_secs()).contains(&s) => {
                    Ok(Duration::from_secs(s))
                }
                _ => Err(ApiError::validation(
                    "expires_in",
                    "must be a whole number of seconds from 1 to 86400",
                )),
            },
            Some(other) => Err(ApiError::validation(
                "expires_in",
                format!("{other} is not a number of seconds"),
            )),
        }
    }

    fn no_others(self) -> Result<(), ApiError> {
        match self.0.keys().next() {
            Some(field) => Err(ApiError::validation(field, "is not a known field")),
            None => Ok(()),
        }
    }
}

/// `GET /checkout/return`: the page a customer lands on after paying. It asks payhook, never
/// trusts its own URL, and polls with a growing interval.
#[utoipa::path(
    get,
    path = "/checkout/return",
    tag = "pages",
    params(
        ("session_id" = Option<String>, Query, description = "The session to show"),
        ("canceled" = Option<String>, Query, description = "`1` when the customer canceled"),
    ),
    responses((status = 200, description = "The return page", content_type = "text/html", body = String))
)]
pub async fn return_page() -> Response {
    page(
        StatusCode::OK,
        include_str!("../../assets/return.html").to_string(),
    )
}

/// `GET /sandbox/checkout/{id}`: the sandbox provider's hosted payment page.
#[utoipa::path(
    get,
    path = "/sandbox/checkout/{session_id}",
    tag = "pages",
    params(("session_id" = String, Path)),
    responses(
        (status = 200, description = "The payment page: Pay, Decline, Cancel", content_type = "text/html", body = String),
        (status = 404, description = "No such session, or the sandbox is off", content_type = "text/html", body = String),
        (status = 503, description = "The store cannot be reached", content_type = "text/html", body = String),
    )
)]
pub async fn sandbox_page(
    State(state): State<Arc<AppState>>,
    Path(session_id): Path<String>,
) -> Response {
    let Some(sandbox) = state.provider.sandbox() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "The sandbox provider is off: payhook is using Stripe.",
        );
    };
    let session = match sandbox.session(&session_id).await {
        Ok(s) => s,
        Err(e) => return sandbox_error(e),
    };
    let amount = money::format(session.amount, &session.currency);
    let description = session
        .description
        .clone()
        .unwrap_or_else(|| format!("Booking {}", session.booking_id));
    let notice = match session.status.as_str() {
        "open" => String::new(),
        "complete" => "<p class=\"notice\">This session is already paid.</p>".into(),
        other => format!("<p class=\"notice\">This session is {}.</p>", escape(other)),
    };
    let html = include_str!("../../assets/sandbox.html")
        .replace("{{amount}}", &escape(&amount))
        .replace("{{description}}", &escape(&description))
        .replace("{{booking_id}}", &escape(&session.booking_id))
        .replace("{{session_id}}", &escape(&session.id))
        .replace(
            "{{email_row}}",
            &session
                .customer_email
                .as_deref()
                .map(|e| format!("<dt>Email</dt><dd>{}</dd>", escape(e)))
                .unwrap_or_default(),
        )
        .replace(
            "{{expires_at}}",
            &rfc3339(Some(session.expires_at)).unwrap_or_default(),
        )
        .replace("{{notice}}", &notice)
        .replace(
            "{{disabled}}",
            if session.status == "open" {
                ""
            } else {
                "disabled"
            },
        );
    page(StatusCode::OK, html)
}

#[derive(Deserialize)]
pub struct ActionPath {
    session_id: String,
    action: String,
}

/// `POST /sandbox/checkout/{id}/{pay|decline|cancel}`: the hosted page's buttons; 303 to the
/// success or cancel URL once payhook has stored what happened.
#[utoipa::path(
    post,
    path = "/sandbox/checkout/{session_id}/{action}",
    tag = "pages",
    params(
        ("session_id" = String, Path),
        ("action" = String, Path, description = "pay, decline or cancel"),
    ),
    responses(
        (status = 303, description = "Done: to the session's success or cancel URL"),
        (status = 404, description = "No such session or action, or the sandbox is off", content_type = "text/html", body = String),
        (status = 409, description = "The session is no longer open", content_type = "text/html", body = String),
        (status = 502, description = "payhook could not store the provider's events", content_type = "text/html", body = String),
        (status = 503, description = "The store cannot be reached", content_type = "text/html", body = String),
    )
)]
pub async fn sandbox_action(
    State(state): State<Arc<AppState>>,
    Path(ActionPath { session_id, action }): Path<ActionPath>,
) -> Response {
    let Some(sandbox) = state.provider.sandbox() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "The sandbox provider is off: payhook is using Stripe.",
        );
    };
    let result = match action.as_str() {
        "pay" => sandbox.pay(&session_id).await,
        "decline" => sandbox.decline(&session_id).await,
        "cancel" => sandbox.cancel(&session_id).await,
        _ => {
            return error_page(
                StatusCode::NOT_FOUND,
                "Unknown action: use pay, decline or cancel.",
            );
        }
    };
    match result {
        Ok(to) => {
            tracing::info!(action, "sandbox checkout action");
            Redirect::to(&to.0).into_response()
        }
        Err(e) => sandbox_error(e),
    }
}

fn sandbox_error(e: SandboxError) -> Response {
    let status = match &e {
        SandboxError::NotFound(_) => StatusCode::NOT_FOUND,
        SandboxError::NotAllowed(_) => StatusCode::CONFLICT,
        SandboxError::NotDelivered(_) => StatusCode::BAD_GATEWAY,
        SandboxError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "sandbox checkout action failed");
    }
    error_page(status, &e.to_string())
}

fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        format!(
            "<!doctype html><meta charset=\"utf-8\"><title>payhook sandbox</title>\
             <body style=\"font-family:system-ui;max-width:32rem;margin:3rem auto\">\
             <h1>Sandbox checkout</h1><p id=\"error\">{}</p></body>",
            escape(message)
        ),
    )
}

fn page(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    response
}

/// Text for HTML: the five characters that could end it.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escaping_covers_what_ends_text_or_attributes() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
