//! `POST /webhooks/{source}`: the provider-facing door of the inbox.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header, request::Parts};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::error::responses::WebhookRefused;

/// The acknowledgement: the event is durably stored (or was already).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookResponse {
    received: bool,
    /// The provider's event id (`evt_...`, or the `webhook-id`).
    event_id: String,
    /// True when this event was already stored: nothing new happened.
    duplicate: bool,
    /// Every event's id, when the request carried several (a batch): all stored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    events: Vec<String>,
}

/// Receives a provider's webhook: verified on its raw bytes with the source's scheme, stored once,
/// then acknowledged. The body is the provider's, byte for byte.
#[utoipa::path(
    post,
    path = "/webhooks/{source}",
    tag = "webhooks",
    params(
        ("source" = String, Path, description = "`stripe` or a `[[sources]]` name"),
        ("Stripe-Signature" = Option<String>, Header, description = "Stripe sources: `t=<unix time>,v1=<hex HMAC-SHA256>`"),
        ("webhook-signature" = Option<String>, Header, description = "Standard Webhooks sources, with `webhook-id` and `webhook-timestamp`"),
    ),
    request_body(content = serde_json::Value, content_type = "application/json", description = "The provider's event, as sent"),
    responses(
        (status = 200, description = "Stored (or already stored): acknowledged", body = WebhookResponse),
        WebhookRefused,
    )
)]
pub async fn receive_webhook(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    SourceName(source): SourceName,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    receive(&state, peer, &source, query, headers, body).await
}

/// What a provider that checks its notification URL with a `GET` is answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteCheck {
    /// The source this URL posts to.
    source: String,
    /// Always true: the URL is payhook's and takes the provider's notifications.
    ready: bool,
}

/// A provider checking its notification URL (CinetPay pings it with a `GET` and wants a `200`):
/// answered for the sources whose provider does that; any other `GET` is `405` as before.
#[utoipa::path(
    get,
    path = "/webhooks/{source}",
    tag = "webhooks",
    params(("source" = String, Path, description = "a `[[sources]]` name whose provider checks its URL")),
    responses(
        (status = 200, description = "The URL takes this source's notifications", body = RouteCheck),
        (status = 405, description = "This source's provider does not check its URL with a GET"),
    )
)]
pub async fn check_webhook_route(
    State(state): State<Arc<AppState>>,
    SourceName(source): SourceName,
    method: Method,
    uri: Uri,
) -> Result<Json<RouteCheck>, Response> {
    match state.inbox.find(&source) {
        Some(s) if s.preset.is_some_and(|p| p.answers_get) => Ok(Json(RouteCheck {
            source,
            ready: true,
        })),
        _ => Err(refuse_method(&state, &source, method, uri).await),
    }
}

/// `405`, with the methods `source`'s route takes in `Allow` (RFC 9110 asks it of every 405).
async fn refuse_method(state: &AppState, source: &str, method: Method, uri: Uri) -> Response {
    let preset = state.inbox.find(source).and_then(|s| s.preset);
    let mut allow = vec!["POST"];
    if preset.is_some_and(|p| p.answers_get) {
        allow.extend(["GET", "HEAD"]);
    }
    if preset.is_some_and(|p| p.takes_put) {
        allow.push("PUT");
    }
    let mut response = super::method_not_allowed(method, uri).await.into_response();
    response.headers_mut().insert(
        header::ALLOW,
        HeaderValue::from_str(&allow.join(", ")).expect("method names are a header value"),
    );
    response
}

/// The `{source}` of a webhook route. A name that is not UTF-8 names no source: `404
/// unknown_source`, in the error shape every refusal has.
pub struct SourceName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SourceName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(source)) => Ok(SourceName(source)),
            Err(_) => {
                let named = parts.uri.path().rsplit('/').next().unwrap_or_default();
                Err(crate::inbox::IngestError::UnknownSource(named.to_string()).into())
            }
        }
    }
}

/// A provider's notification sent with `PUT` (MTN MoMo's callbacks may come either way):
/// received as a `POST` for the sources whose provider does that; for any other source `405`.
#[utoipa::path(
    put,
    path = "/webhooks/{source}",
    tag = "webhooks",
    params(("source" = String, Path, description = "a `[[sources]]` name whose provider notifies with `PUT`")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "The provider's notification, as sent"),
    responses(
        (status = 200, description = "Stored (or already stored): acknowledged", body = WebhookResponse),
        (status = 405, description = "This source's provider does not notify with PUT"),
        WebhookRefused,
    )
)]
pub async fn receive_webhook_put(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    SourceName(source): SourceName,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match state.inbox.find(&source) {
        Some(s) if s.preset.is_some_and(|p| p.takes_put) => {
            receive(&state, peer, &source, query, headers, body)
                .await
                .into_response()
        }
        _ => refuse_method(&state, &source, Method::PUT, uri).await,
    }
}

/// The route existing Stripe integrations already point at: `POST /webhooks/stripe` under another
/// name.
#[utoipa::path(
    post,
    path = "/api/v1/payment-gateway/webhooks/stripe",
    tag = "webhooks",
    params(("Stripe-Signature" = Option<String>, Header, description = "`t=<unix time>,v1=<hex HMAC-SHA256>`")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "Stripe's event, as sent"),
    responses(
        (status = 200, description = "Stored (or already stored): acknowledged", body = WebhookResponse),
        WebhookRefused,
    )
)]
pub async fn receive_stripe_webhook(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    receive(&state, peer, "stripe", None, headers, body).await
}

/// A webhook being received, as a route alias's handler returns it.
type Receiving =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, ApiError>> + Send>>;

/// The handler of a route alias: `receive_webhook` for `source`, on another path.
pub fn receive_on_alias(
    source: String,
) -> impl Fn(State<Arc<AppState>>, ConnectInfo<SocketAddr>, RawQuery, HeaderMap, Body) -> Receiving
+ Clone
+ Send
+ Sync
+ 'static {
    move |State(state), ConnectInfo(peer), RawQuery(query), headers, body| {
        let source = source.clone();
        Box::pin(async move { receive(&state, peer, &source, query, headers, body).await })
    }
}

/// Receives one webhook; a refusal is counted by code (under `unknown` for a name no source has,
/// whatever the refusal, so made-up names cannot grow the metrics).
async fn receive(
    state: &AppState,
    peer: SocketAddr,
    source: &str,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut result = if crate::telemetry::enabled() {
        traced(state, peer, source, query, headers, body).await
    } else {
        receive_checked(state, peer, source, query, headers, body).await
    };
    if let Err(e) = &mut result
        && matches!(e.code, "invalid_signature" | "missing_signature")
        && let Some(status) = state
            .inbox
            .find(source)
            .and_then(|s| s.preset)
            .and_then(|p| p.forged_status)
            .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
    {
        e.status = status;
    }
    if let Err(e) = &result {
        let source = if state.inbox.knows(source) {
            source
        } else {
            "unknown"
        };
        metrics::counter!("payhook_webhooks_refused_total", "source" => source.to_string(),
            "code" => e.code)
        .increment(1);
    }
    result
}

/// The webhook in a `webhook.receive` span, the root of its trace: the provider's request until
/// its answer (a provider's own `traceparent`, if it sent one, is not followed: payhook's trace
/// starts at its door).
async fn traced(
    state: &AppState,
    peer: SocketAddr,
    source: &str,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    use tracing::Instrument;
    use tracing::field::Empty;
    let span = tracing::info_span!(target: crate::telemetry::TARGET, parent: None,
        "webhook.receive", otel.kind = "server", http.request.method = "POST",
        payhook.source = source, client.address = %state.client_ip(peer, &headers),
        http.response.status_code = Empty, payhook.error = Empty, otel.status_code = Empty);
    let result = receive_checked(state, peer, source, query, headers, body)
        .instrument(span.clone())
        .await;
    let status = match &result {
        Ok(response) => response.status(),
        Err(e) => {
            span.record("payhook.error", e.code);
            e.status
        }
    };
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    result
}

async fn receive_checked(
    state: &AppState,
    peer: SocketAddr,
    source: &str,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let client = state.client_ip(peer, &headers);
    let ingest_err = |e| {
        let err = ApiError::from(e);
        tracing::info!(source, code = err.code, client = %client, "webhook refused");
        err
    };
    if let Some(limiter) = &state.limiter {
        limiter.check(client).map_err(|secs| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many webhook requests from this address",
            )
            .hint("slow down; providers retry refused deliveries on their own")
            .retry_after(secs)
        })?;
    }
    let source = state.inbox.source(source, client).map_err(ingest_err)?;
    let body = read_body(&headers, body, state.max_body_bytes, state.read_timeout).await?;
    let receipt = state
        .inbox
        .receive(source, &headers, query.as_deref(), body)
        .await
        .map_err(ingest_err)?;
    Ok(match source.answer {
        crate::providers::Answer::Text(text) => text.into_response(),
        crate::providers::Answer::Receipt => Json(WebhookResponse {
            received: true,
            event_id: receipt.event_id,
            duplicate: receipt.duplicate,
            events: receipt.batch,
        })
        .into_response(),
    })
}

/// How much of a refused body is read and thrown away (never kept) before the 413 goes out,
/// within the body's read timeout. Closing a connection with unread bytes resets it, and a
/// client still sending then fails on a broken pipe without reading the answer (a 5 MiB upload
/// through most HTTP clients); beyond this much, the connection is closed all the same.
const DRAIN_BYTES: u64 = 16 << 20;

/// Reads the raw body, refusing it as soon as it is known to exceed `limit`, or when it has not
/// all arrived within `timeout` (a slow client does not hold its connection and memory longer).
async fn read_body(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<bytes::Bytes, ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|&len| len > limit as u64) {
        // A client waiting for `100 Continue` has sent nothing yet: answer without asking for it.
        let waits = headers.contains_key(header::EXPECT);
        if !waits && len <= limit as u64 + DRAIN_BYTES {
            let _ = tokio::time::timeout_at(deadline, drain(&mut body, DRAIN_BYTES)).await;
        }
        return Err(ApiError::payload_too_large(limit));
    }
    let read = Limited::new(&mut body, limit).collect();
    match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => {
            let _ = tokio::time::timeout_at(deadline, drain(&mut body, DRAIN_BYTES)).await;
            Err(ApiError::payload_too_large(limit))
        }
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            format!("the request body could not be read: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the body did not arrive within {} s", timeout.as_secs_f32()),
        )
        .hint("send the whole body at once; providers do")),
    }
}

/// Reads and drops up to `budget` bytes of what is left of a refused body.
async fn drain(body: &mut Body, budget: u64) {
    let mut left = budget;
    while let Some(Ok(frame)) = body.frame().await {
        let len = frame.data_ref().map_or(0, |d| d.len() as u64);
        if len >= left {
            return;
        }
        left -= len;
    }
}
