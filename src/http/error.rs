//! The one place where domain errors become HTTP answers: `{"error":{"code","message","hint"}}`
//! with a stable code per case (and `"success": false`, which the status pages of existing
//! integrations test for).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::inbox::IngestError;
use crate::providers::VerifyError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub hint: Option<&'static str>,
    pub retry_after: RetryAfter,
    /// The request field a `validation_error` is about.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            hint: None,
            retry_after: RetryAfter::No,
            field: None,
        }
    }

    /// A request field with a bad value: 400 `validation_error`, the field named in the message
    /// and in `error.field`.
    pub fn validation(field: &str, message: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "validation_error",
            format!("{field}: {message}"),
        );
        e.field = Some(field.to_string());
        e
    }

    /// What the payment provider's refusal or absence means for the caller.
    ///
    /// (`caller_field` maps the provider's parameter back to the request's field.)
    fn from_provider(err: crate::checkout::ProviderError) -> Self {
        use crate::checkout::ProviderError;
        match err {
            ProviderError::Refused {
                status,
                message,
                param,
            } => {
                // A value the caller chose that the provider does not take (a currency it does
                // not support, an amount under its minimum) is the caller's to fix: a 400 naming
                // the caller's field, with the provider's words.
                if let Some(field) = param
                    .as_deref()
                    .and_then(caller_field)
                    .filter(|_| status == 400)
                {
                    return Self::validation(
                        field,
                        format!("the payment provider does not accept it: {message}"),
                    );
                }
                let mut e = Self::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_refused",
                    format!("the payment provider refused the request (HTTP {status}): {message}"),
                );
                e.field = param;
                e
            }
            ProviderError::Unauthorized(status) => {
                tracing::error!(status, "the payment provider refused STRIPE_SECRET_KEY");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_unauthorized",
                    "the payment provider refused payhook's API key",
                )
                .hint("check STRIPE_SECRET_KEY (and STRIPE_API_BASE) on payhook")
            }
            ProviderError::Unreachable(why) => {
                tracing::warn!(error = %why, "the payment provider cannot be reached");
                Self::new(
                    StatusCode::BAD_GATEWAY,
                    "provider_unavailable",
                    format!("the payment provider cannot be reached: {why}"),
                )
                .hint("retry in a moment with the same Idempotency-Key")
                .retry_later()
            }
            ProviderError::KeyReused(message) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                message,
            ),
            ProviderError::NotConfigured => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_not_configured",
                "payhook has no payment provider: it takes webhooks only",
            )
            .hint("set STRIPE_SECRET_KEY on payhook (PAYHOOK_SANDBOX=true is for a test instance)"),
            ProviderError::Store(e) => Self::from(e),
        }
    }

    pub fn hint(mut self, hint: &'static str) -> Self {
        self.hint = Some(hint);
        self
    }

    /// `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = RetryAfter::Secs(secs);
        self
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the {limit}-byte limit"),
        )
        .hint("raise ingest.max_body_bytes in payhook.toml if your provider sends larger events")
    }

    /// `Retry-After` as configured (`ingest.retry_after_secs`): the router's
    /// [`fill_retry_after`] layer writes it, so a conversion needs no state.
    pub fn retry_later(mut self) -> Self {
        self.retry_after = RetryAfter::Configured;
        self
    }

    pub fn store_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the event could not be stored; it was not accepted",
        )
        .hint("retry later: the provider's own retries will deliver it")
        .retry_later()
    }

    fn from_ingest(err: IngestError) -> Self {
        let message = err.to_string();
        match err {
            IngestError::UnknownSource(_) => {
                Self::new(StatusCode::NOT_FOUND, "unknown_source", message).hint(
                    "the path is POST /webhooks/{source}, with a source configured in payhook",
                )
            }
            IngestError::IpNotAllowed(_) => {
                Self::new(StatusCode::FORBIDDEN, "ip_not_allowed", message)
                    .hint("add the sender's network to the source's allowed_cidrs")
            }
            IngestError::Store(_) => Self::store_unavailable(),
            IngestError::Verify(v) => {
                let (code, hint) = match v {
                    VerifyError::MissingSignature => (
                        "missing_signature",
                        "send the provider's signature header (Stripe-Signature for Stripe)",
                    ),
                    VerifyError::MalformedHeader(_) => (
                        "malformed_signature_header",
                        "send the signature header in the provider's form (Stripe-Signature: t=<unix time>,v1=<hex signature>; each other provider's in docs/providers.md)",
                    ),
                    VerifyError::InvalidSignature => (
                        "invalid_signature",
                        "the raw body must reach payhook unmodified (no JSON re-encoding by a proxy); check the webhook secret",
                    ),
                    VerifyError::TimestampOutOfTolerance { .. } => (
                        "timestamp_out_of_tolerance",
                        "check the clocks, or this is a replayed request",
                    ),
                    VerifyError::MalformedPayload(_) => (
                        "malformed_payload",
                        "the body must be a JSON event object with string id and type",
                    ),
                };
                Self::new(StatusCode::BAD_REQUEST, code, message).hint(hint)
            }
        }
    }
}

/// A read the store could not answer: 503, the client may retry.
impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        tracing::error!(error = %err, "store read failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store could not be read",
        )
        .hint("retry in a moment")
        .retry_later()
    }
}

/// What the payment provider's refusal or absence means for the caller.
impl From<crate::checkout::ProviderError> for ApiError {
    fn from(err: crate::checkout::ProviderError) -> Self {
        Self::from_provider(err)
    }
}

/// A webhook that is refused: each cause its code.
impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        Self::from_ingest(err)
    }
}

/// A reconcile page that could not be made: the provider's failure or the store's.
impl From<crate::reconcile::ReconcileError> for ApiError {
    fn from(err: crate::reconcile::ReconcileError) -> Self {
        match err {
            crate::reconcile::ReconcileError::Provider(e) => Self::from(e),
            crate::reconcile::ReconcileError::Store(e) => Self::from(e),
        }
    }
}

/// Whether a refusal tells the client when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    No,
    /// After `ingest.retry_after_secs`, the wait configured for outages.
    Configured,
    Secs(u64),
}

/// Marks a response whose `Retry-After` is the configured one, for [`fill_retry_after`].
#[derive(Clone, Copy)]
struct RetryLater;

/// Writes the configured `Retry-After` on the refusals that asked for it
/// ([`ApiError::retry_later`]): conversions from the store's and the provider's errors cannot see
/// the settings, the router can.
pub async fn fill_retry_after(
    axum::extract::State(secs): axum::extract::State<u64>,
    mut response: Response,
) -> Response {
    if response.extensions_mut().remove::<RetryLater>().is_some() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The body of every refusal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, per case: what a program tests.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The request field a `validation_error` (or a provider's refusal) is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            success: false,
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                hint: self.hint.map(str::to_string),
                field: self.field,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 9110 (11.6.1): a 401 names the scheme that would be accepted.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"payhook\""),
            );
        }
        match self.retry_after {
            RetryAfter::No => {}
            RetryAfter::Configured => {
                response.extensions_mut().insert(RetryLater);
            }
            RetryAfter::Secs(secs) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
        }
        response
    }
}

/// The refusals routes share, for the API description.
pub mod responses {
    use utoipa::IntoResponses;

    use super::ErrorBody;

    #[derive(IntoResponses)]
    #[response(
        status = 400,
        description = "A request field or parameter is not valid (`validation_error`, `error.field` names it)"
    )]
    pub struct Invalid(#[to_schema] pub ErrorBody);

    #[derive(IntoResponses)]
    #[response(
        status = 401,
        description = "The Bearer token is missing or wrong (`unauthorized`)"
    )]
    pub struct Unauthorized(#[to_schema] pub ErrorBody);

    #[derive(IntoResponses)]
    #[response(
        status = 503,
        description = "The store cannot be reached (`store_unavailable`); retry after `Retry-After` seconds"
    )]
    pub struct StoreDown(#[to_schema] pub ErrorBody);

    #[derive(IntoResponses)]
    #[response(
        status = 502,
        description = "The payment provider refused or cannot be reached (`provider_refused`, `provider_unauthorized`, `provider_unavailable`)"
    )]
    pub struct ProviderFailed(#[to_schema] pub ErrorBody);

    /// A webhook's refusals: each a documented code, nothing stored.
    #[derive(IntoResponses)]
    pub enum WebhookRefused {
        #[response(
            status = 400,
            description = "Not verified or not an event: `missing_signature`, `malformed_signature_header`, \
                           `invalid_signature`, `timestamp_out_of_tolerance`, `malformed_payload`, `body_unreadable`"
        )]
        Unverified(#[to_schema] ErrorBody),
        #[response(
            status = 403,
            description = "The sender is not in the source's `allowed_cidrs` (`ip_not_allowed`)"
        )]
        Forbidden(#[to_schema] ErrorBody),
        #[response(
            status = 404,
            description = "No source has this name (`unknown_source`)"
        )]
        UnknownSource(#[to_schema] ErrorBody),
        #[response(
            status = 413,
            description = "The body is over `ingest.max_body_bytes` (`payload_too_large`)"
        )]
        TooLarge(#[to_schema] ErrorBody),
        #[response(
            status = 429,
            description = "Too many requests from this address (`rate_limited`); see `Retry-After`"
        )]
        RateLimited(#[to_schema] ErrorBody),
        #[response(
            status = 503,
            description = "The event could not be stored (`store_unavailable`): it was not accepted"
        )]
        StoreDown(#[to_schema] ErrorBody),
    }
}

/// The request field a provider parameter was made from: Stripe names the form field it refused
/// (`currency`, `line_items[0][price_data][currency]`, `unit_amount`, ...).
fn caller_field(param: &str) -> Option<&'static str> {
    let last = param
        .rsplit('[')
        .next()
        .unwrap_or(param)
        .trim_end_matches(']');
    match last {
        "currency" => Some("currency"),
        "amount" | "unit_amount" => Some("amount"),
        "customer_email" => Some("customer_email"),
        // payhook sends expires_in as Stripe's expires_at (at least 30 minutes ahead).
        "expires_at" => Some("expires_in"),
        _ => None,
    }
}
