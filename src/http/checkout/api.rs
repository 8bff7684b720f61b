//! The service routes: checkout sessions and payment intents created with the provider, an
//! intent read back. Each body is its request type, read through `ValidJson` (every refusal names
//! its field); the field deserializers below say what each field takes.

use super::*;

/// The body of `POST /api/v1/checkout/sessions`. A bad value is refused naming its field, and so
/// is a field not listed here.
#[derive(Deserialize, ToSchema)]
pub struct SessionRequest {
    #[schema(min_length = 1, max_length = 200)]
    #[serde(deserialize_with = "booking_id")]
    booking_id: String,
    /// Minor units of `currency` (2000 is EUR 20.00).
    #[schema(minimum = 1, maximum = 99_999_999)]
    #[serde(deserialize_with = "amount")]
    amount: i64,
    /// ISO 4217, e.g. `eur`.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    #[serde(deserialize_with = "currency")]
    currency: String,
    #[schema(min_length = 1, max_length = 500)]
    #[serde(deserialize_with = "text::<500, _>")]
    description: Option<String>,
    #[schema(max_length = 254)]
    #[serde(deserialize_with = "email")]
    customer_email: Option<String>,
    /// Absolute http(s) URL; may hold `{CHECKOUT_SESSION_ID}`. Default: payhook's return page.
    #[serde(deserialize_with = "url")]
    success_url: Option<String>,
    #[serde(deserialize_with = "url")]
    cancel_url: Option<String>,
    /// Seconds until the session expires (1 to 86400, default 86400).
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 86400)]
    #[serde(deserialize_with = "expires_in")]
    expires_in: Duration,
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
    params(("Idempotency-Key" = Option<String>, Header, description = "Up to 255 characters, passed to the provider: a retried request answers the session the first created; with other parameters, 422")),
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
    _: ServiceCaller,
    headers: HeaderMap,
    ValidJson(body): ValidJson<SessionRequest>,
) -> Result<Response, ApiError> {
    chargeable(body.amount, &body.currency)?;
    let public = state.public_url.trim_end_matches('/');
    let new = NewSession {
        booking_id: body.booking_id,
        amount: body.amount,
        currency: body.currency,
        description: body.description,
        customer_email: body.customer_email,
        success_url: body.success_url.unwrap_or_else(|| {
            format!("{public}/checkout/return?session_id={{CHECKOUT_SESSION_ID}}")
        }),
        cancel_url: body.cancel_url.unwrap_or_else(|| {
            format!("{public}/checkout/return?session_id={{CHECKOUT_SESSION_ID}}&canceled=1")
        }),
        expires_at: chrono::Utc::now().timestamp() + body.expires_in.as_secs() as i64,
    };
    let session = state
        .provider
        .create_session(&new, idempotency_key(&headers)?.as_deref())
        .await?;
    // The session id is the capability to read the session: it is not logged.
    tracing::info!(booking_id = %session.booking_id, provider = state.provider.name(),
        "checkout session created");
    Ok(created(SessionCreated {
        session_id: session.id,
        checkout_url: session.url,
        expires_at: rfc3339(Some(session.expires_at)),
    }))
}

/// An amount Stripe would charge in `currency`, refused before any provider (the sandbox too,
/// which behaves as Stripe does) is asked.
fn chargeable(amount: i64, currency: &str) -> Result<(), ApiError> {
    match crate::domain::money::stripe_refusal(amount, currency) {
        Some(why) => Err(ApiError::validation("amount", why)),
        None => Ok(()),
    }
}

pub(super) fn created(body: impl Serialize) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

/// The body of `POST /api/v1/payment-intents`. A bad value is refused naming its field, and so is
/// a field not listed here.
#[derive(Deserialize, ToSchema)]
pub struct IntentRequest {
    #[schema(min_length = 1, max_length = 200)]
    #[serde(deserialize_with = "booking_id")]
    booking_id: String,
    #[schema(minimum = 1, maximum = 99_999_999)]
    #[serde(deserialize_with = "amount")]
    amount: i64,
    #[schema(pattern = "^[A-Za-z]{3}$")]
    #[serde(deserialize_with = "currency")]
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
    params(("Idempotency-Key" = Option<String>, Header, description = "Up to 255 characters, passed to the provider: a retried request answers the intent the first created; with other parameters, 422")),
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
    _: ServiceCaller,
    headers: HeaderMap,
    ValidJson(body): ValidJson<IntentRequest>,
) -> Result<Response, ApiError> {
    chargeable(body.amount, &body.currency)?;
    let new = NewIntent {
        booking_id: body.booking_id,
        amount: body.amount,
        currency: body.currency,
    };
    let intent = state
        .provider
        .create_intent(&new, idempotency_key(&headers)?.as_deref())
        .await?;
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
    _: ServiceCaller,
) -> Result<Json<IntentStatus>, ApiError> {
    let payments = state
        .store
        .payments_where(PaymentKey::PaymentIntent, &intent_id)
        .await?;
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
    let known = state.provider.intent_state(&intent_id).await?;
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

/// The caller's `Idempotency-Key`, if any: a retried request is then answered once. Stripe takes
/// keys of up to 255 characters; a longer or unreadable one is refused rather than replaced
/// (a replaced key would make each retry a new payment).
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.trim().is_empty() && key.len() <= 255 => Ok(Some(key.to_string())),
        _ => Err(ApiError::validation(
            "Idempotency-Key",
            "expected 1 to 255 visible ASCII characters",
        )),
    }
}

/// A caller of the service routes. They are open while `INTERNAL_SERVICE_TOKEN` is unset (the
/// embedded defaults) and require it as a Bearer token once it is set. An extractor, placed before
/// the body's: the token is checked before the body is read.
pub struct ServiceCaller;

impl FromRequestParts<Arc<AppState>> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<ServiceCaller, ApiError> {
        match state.internal_token {
            Some(_) => authorize_service(state, &parts.headers).map(|()| ServiceCaller),
            None => Ok(ServiceCaller),
        }
    }
}

// The fields of the request bodies, in the API's words. Each gets null when its field is absent
// (or null): see `extract`.

/// A string: trimmed, not empty, at most `MAX` characters, no control character.
fn text<'de, const MAX: usize, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim().to_string();
            if s.is_empty() {
                Err(de::Error::custom("must not be empty"))
            } else if s.chars().count() > MAX {
                Err(de::Error::custom(format!("at most {MAX} characters")))
            } else if s.chars().any(char::is_control) {
                Err(de::Error::custom("must not hold control characters"))
            } else {
                Ok(Some(s))
            }
        }
        Some(other) => Err(de::Error::custom(format!("must be a string, not {other}"))),
    }
}

fn booking_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let booking = text::<200, D>(d)?.ok_or_else(|| de::Error::custom("is required"))?;
    if booking == "." || booking == ".." {
        // The booking service's route takes it as a path segment.
        return Err(de::Error::custom(
            "cannot be \".\" or \"..\" (it would change the booking service's URL path)",
        ));
    }
    Ok(booking)
}

fn amount<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let hint = "an integer number of minor units, e.g. 2000 for EUR 20.00";
    match Option::<Value>::deserialize(d)? {
        None => Err(de::Error::custom(format!("is required ({hint})"))),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(a) if (1..=99_999_999).contains(&a) => Ok(a),
            Some(a) => Err(de::Error::custom(format!(
                "{a} is out of range (1 to 99999999 minor units)"
            ))),
            None => Err(de::Error::custom(format!(
                "{n} is not an integer: amounts are {hint}"
            ))),
        },
        Some(other) => Err(de::Error::custom(format!(
            "{other} is not a number: amounts are {hint}"
        ))),
    }
}

/// An ISO 4217 code, lower-cased.
fn currency<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let currency =
        text::<3, D>(d)?.ok_or_else(|| de::Error::custom("is required (e.g. \"eur\")"))?;
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(de::Error::custom(
            "must be a three-letter ISO 4217 code, e.g. \"eur\"",
        ));
    }
    if !money::is_currency(&currency) {
        return Err(de::Error::custom(format!(
            "{currency:?} is not an ISO 4217 currency code (e.g. \"eur\", \"usd\", \"xof\")"
        )));
    }
    Ok(currency.to_ascii_lowercase())
}

fn email<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let email = text::<254, D>(d)?;
    if let Some(e) = &email {
        let valid = e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !e.contains(char::is_whitespace)
        });
        if !valid {
            return Err(de::Error::custom("is not an email address"));
        }
    }
    Ok(email)
}

fn url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let url = text::<2048, D>(d)?;
    if let Some(u) = &url {
        // The template is not valid in a URL as written; check the URL around it.
        let probe = u.replace("{CHECKOUT_SESSION_ID}", "cs_probe");
        let ok = reqwest::Url::parse(&probe)
            .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some());
        if !ok {
            return Err(de::Error::custom(
                "must be an absolute http(s) URL (it may hold {CHECKOUT_SESSION_ID})",
            ));
        }
    }
    Ok(url)
}

/// Whole seconds, 1 to the default of 24 hours.
fn expires_in<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(DEFAULT_SESSION_TTL),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(s) if (1..=DEFAULT_SESSION_TTL.as_secs()).contains(&s) => {
                Ok(Duration::from_secs(s))
            }
            _ => Err(de::Error::custom(
                "must be a whole number of seconds from 1 to 86400",
            )),
        },
        Some(other) => Err(de::Error::custom(format!(
            "{other} is not a number of seconds"
        ))),
    }
}
