//! The service routes: checkout sessions and payment intents created with the provider, an intent read back; their bodies read field by field.

use super::*;

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

pub(super) fn created(body: impl Serialize) -> Response {
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

/// The caller's `Idempotency-Key`, or a new one: the provider then answers a retried request once.
pub(super) fn idempotency_key(headers: &HeaderMap) -> String {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 255)
        .map(str::to_string)
        .unwrap_or_else(|| crate::providers::stripe_events::random_token(32))
}

/// Service routes are open when `INTERNAL_SERVICE_TOKEN` is unset (the embedded defaults), and
/// require it as a Bearer token when it is set.
pub(super) fn authorize_if_set(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match state.internal_token {
        Some(_) => authorize_service(state, headers),
        None => Ok(()),
    }
}

/// A JSON object body, read field by field; each refusal names its field.
pub(super) struct Fields(Map<String, Value>);

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
