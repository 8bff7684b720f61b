//! HTTP: the public router (webhooks, payment status, health) and the admin router. Handlers stay thin; the
//! work happens in the modules they call.

mod admin;
mod checkout;
pub use checkout::ProviderAnswers;
pub mod demo;
pub mod edge;
pub mod error;
mod extract;
mod payments;
pub mod ratelimit;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::checkout::Provider;
use crate::domain::Secret;
use crate::inbox::Inbox;
use crate::store::Store;
use axum::response::IntoResponse;
use error::ApiError;
use error::responses::StoreDown;
use ratelimit::RateLimiter;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What the handlers share.
pub struct AppState {
    pub inbox: Inbox,
    /// More paths providers post to, with their source (`routes` in the configuration).
    pub webhook_routes: Vec<(String, String)>,
    pub store: Arc<Store>,
    /// The counts by status of the overview and `/metrics`.
    pub depths: Arc<crate::store::DepthsCache>,
    pub limiter: Option<RateLimiter>,
    pub max_body_bytes: usize,
    pub retry_after_secs: u64,
    /// `INTERNAL_SERVICE_TOKEN`: service-only routes are closed without it.
    pub internal_token: Option<Secret>,
    /// Who checkout sessions and payment intents are created with.
    pub provider: Arc<Provider>,
    /// `PAYHOOK_PUBLIC_URL`: how browsers reach this listener.
    pub public_url: String,
    pub provider_answers: ProviderAnswers,
    /// `payhook demo`: its booking service, whose view the demo pages show.
    pub demo: Option<demo::DemoBookings>,
    /// `PAYHOOK_ADMIN_TOKEN`: the admin listener is open (on loopback only) without it.
    pub admin_token: Option<Secret>,
    /// Wakes the ledger processor (an event was put back in line).
    pub processor_wake: Arc<tokio::sync::Notify>,
    /// Wakes the dispatcher (notifications were put back in line).
    pub dispatch: crate::notify::DispatchWake,
    pub targets: Arc<[crate::config::TargetSettings]>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// Longest wait for a request body.
    pub read_timeout: std::time::Duration,
    /// Turns true when payhook stops: long-lived answers (the event stream) end then.
    pub stopped: tokio::sync::watch::Receiver<bool>,
    /// Bulk replays and retries running in the background.
    pub jobs: Arc<crate::bulk::Jobs>,
}

impl AppState {
    /// The client's address: the peer, or, when the peer is a trusted proxy, the last address of
    /// `X-Forwarded-For` (all its headers, in order) that is not a trusted proxy. An entry that is
    /// not an address ends the walk at the hop before it. IPv4 addresses come as IPv4 even when
    /// a dual-stack listener (`[::]`) sees them as IPv4-mapped IPv6 (`::ffff:10.0.0.1`), so
    /// that IPv4 networks match them.
    pub fn client_ip(
        &self,
        peer: std::net::SocketAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        let trusted = |ip: &std::net::IpAddr| self.trusted_proxies.iter().any(|n| n.contains(ip));
        let mut client = peer.ip().to_canonical();
        if !trusted(&client) {
            return client;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            match forwarded_address(hop) {
                Some(ip) => {
                    client = ip;
                    if !trusted(&ip) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry's address: `203.0.113.7`, `2001:db8::1`, with a port
/// (`203.0.113.7:41234`, `[2001:db8::1]:41234`) or in brackets, as proxies write them.
fn forwarded_address(hop: &str) -> Option<std::net::IpAddr> {
    let ip = hop
        .parse::<std::net::IpAddr>()
        .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .or_else(|_| {
            let bracketed = hop.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
            bracketed.unwrap_or(hop).parse::<std::net::IpAddr>()
        })
        .ok()?;
    Some(ip.to_canonical())
}

/// The token of `Authorization: Bearer <token>`, if the request has one. The scheme's name is
/// case-insensitive (RFC 9110, 11.1): `bearer <token>` is the same.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `presented` is `token`, compared in constant time.
fn is_token(presented: &str, token: &Secret) -> bool {
    subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), token.expose().as_bytes()).into()
}

/// The public listener: webhooks, the status and checkout API, the pages, health, and
/// `GET /openapi.json` describing them.
pub fn public_router(state: Arc<AppState>) -> Router {
    let (router, api) = OpenApiRouter::with_openapi(document(
        "payhook public API",
        "Webhooks from payment providers, the payment status and checkout API, and the pages a \
         customer sees.",
    ))
    .routes(routes!(
        webhooks::receive_webhook,
        webhooks::check_webhook_route,
        webhooks::receive_webhook_put
    ))
    .routes(routes!(webhooks::receive_stripe_webhook))
    .routes(routes!(payments::get_payment_status))
    .routes(routes!(checkout::api::create_session))
    .routes(routes!(checkout::session::get_session))
    .routes(routes!(checkout::api::create_intent))
    .routes(routes!(checkout::api::get_intent))
    .routes(routes!(checkout::pages::return_page))
    .routes(routes!(checkout::pages::sandbox_page))
    .routes(routes!(checkout::pages::sandbox_action))
    .routes(routes!(healthz))
    .routes(routes!(readyz))
    .split_for_parts();
    let mut router = router;
    for (path, source) in &state.webhook_routes {
        router = router.route(path, post(webhooks::receive_on_alias(source.clone())));
    }
    router
        // The demo's pages exist only under `payhook demo`: not part of the API.
        .route("/demo", get(demo::page))
        .route("/demo/checkout", post(demo::checkout))
        .route("/demo/bookings/{id}", get(demo::booking))
        .route("/openapi.json", get(api_document(api)))
        .route("/favicon.ico", get(favicon))
        .layer(axum::middleware::map_response_with_state(
            state.retry_after_secs,
            error::fill_retry_after,
        ))
        .with_state(state)
}

/// Browsers ask every listener for an icon: nothing to show, and not a 404 in their console.
async fn favicon() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// The admin listener: the admin API, `/metrics`, the dashboard, health, and `GET /openapi.json`
/// describing them.
pub fn admin_router(state: Arc<AppState>) -> Router {
    let (router, api) = OpenApiRouter::with_openapi(document(
        "payhook admin API",
        "What came in, what happened to it, what failed, and the operations that fix it. Every \
         route but the dashboard page and health needs `Authorization: Bearer \
         $PAYHOOK_ADMIN_TOKEN` when a token is set.",
    ))
    .merge(admin::routes(state.clone()))
    .routes(routes!(admin::dashboard))
    .routes(routes!(healthz))
    .routes(routes!(readyz))
    .split_for_parts();
    router
        .route("/openapi.json", get(api_document(api)))
        .route("/favicon.ico", get(favicon))
        .layer(axum::middleware::map_response_with_state(
            state.retry_after_secs,
            error::fill_retry_after,
        ))
        .with_state(state)
}

/// The frame of an API document: title, version, and the Bearer schemes routes refer to.
fn document(title: &str, description: &str) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
    let bearer = |description: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build(),
        )
    };
    let mut api = utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title(title)
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(description))
                .build(),
        )
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "service_token",
        bearer("`INTERNAL_SERVICE_TOKEN`; checkout routes need it only when it is set"),
    );
    components.add_security_scheme(
        "admin_token",
        bearer("`PAYHOOK_ADMIN_TOKEN`, when it is set"),
    );
    api
}

/// `GET /openapi.json`: the document, rendered once.
fn api_document(
    api: utoipa::openapi::OpenApi,
) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone {
    let json = bytes::Bytes::from(api.to_json().expect("the API document serializes"));
    move || {
        std::future::ready(
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                json.clone(),
            )
                .into_response(),
        )
    }
}

/// Alive: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String))
)]
async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the store answers.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "`ready`", content_type = "text/plain", body = String),
        StoreDown,
    )
)]
async fn readyz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check: store unavailable");
        ApiError::store_unavailable()
    })?;
    Ok("ready")
}

/// A JSON 404 for paths no route serves.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    let path = uri.path();
    let answer = ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such route: {path}"),
    );
    if path.len() > 1 && path.ends_with('/') {
        answer.hint("remove the trailing slash: payhook's routes end without one")
    } else if looks_like_a_webhook(path) {
        answer.hint(WEBHOOK_HINT)
    } else {
        answer
    }
}

/// A request with a method a route does not take: `GET /webhooks/stripe`, say.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let path = uri.path();
    let answer = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not a method {path} takes"),
    );
    if looks_like_a_webhook(path) {
        answer.hint(WEBHOOK_HINT)
    } else {
        answer
    }
}

const WEBHOOK_HINT: &str = "providers POST their webhooks to /webhooks/{source} (e.g. POST /webhooks/stripe); to keep the path your provider already posts to, add it to the source's routes (STRIPE_WEBHOOK_ROUTES for Stripe)";

fn looks_like_a_webhook(path: &str) -> bool {
    let path = path.to_ascii_lowercase();
    path.contains("webhook") || path.contains("stripe")
}
