//! The admin API on the admin listener: what came in, what happened to it, what failed, and the
//! buttons to fix it (replay events, retry notifications). Everything needs
//! `Authorization: Bearer $PAYHOOK_ADMIN_TOKEN` when a token is set; without one the listener only
//! binds to loopback (checked at start-up).

mod deliveries;
mod events;
mod explain;
mod jobs;
mod overview;
mod payments;
mod reconcile;
mod stream;
mod targets;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::responses::{Invalid, ProviderFailed, StoreDown, Unauthorized};
use super::error::{ApiError, ErrorBody};
use super::extract::{ValidPath, ValidQuery, one_of};
use crate::admin_types::{
    DeliveryRow, DryRun, EventDetail, EventRow, Job, JobKind, JobSelection, Page, ReconcilePage,
    Requeued, Retried, TargetReset, time,
};
use crate::domain::column::Word;
use crate::domain::delivery::CircuitState;
use crate::domain::money::Money;
use crate::domain::state::{Payment, PaymentStatus};
use crate::domain::status::{DeliveryStatus, EventStatus};
use crate::store::{DeliverySelection, EventFilter, EventSelection, RetrySelection, Selection};

/// The admin routes, each described in the API document by its handler's annotation.
pub fn routes(state: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(events::list_events))
        .routes(routes!(stream::stream_events))
        .routes(routes!(events::replay_events))
        .routes(routes!(events::show_event))
        .routes(routes!(events::replay_event))
        .routes(routes!(payments::list_payments))
        .routes(routes!(explain::explain))
        .routes(routes!(explain::search))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(deliveries::retry_dead))
        .routes(routes!(deliveries::retry_delivery))
        .routes(routes!(targets::list_targets))
        .routes(routes!(targets::reset_target))
        .routes(routes!(targets::enable_target))
        .routes(routes!(targets::disable_target))
        .routes(routes!(overview::overview))
        .routes(routes!(reconcile::reconcile))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::show_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(metrics))
        .layer(axum::middleware::from_fn_with_state(state, require_admin))
}

/// `GET /`: the dashboard, one self-contained page (no external resource) that reads the admin
/// API with the token the operator types (kept in the tab's session storage). The page holds no
/// data, so it is served without the token.
#[utoipa::path(
    get,
    path = "/",
    tag = "admin",
    responses((status = 200, description = "The dashboard page", content_type = "text/html", body = String))
)]
pub async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
            ),
        ],
        include_str!("../../../assets/dashboard.html"),
    )
        .into_response()
}

/// `Authorization: Bearer $PAYHOOK_ADMIN_TOKEN`, compared in constant time, when a token is set.
async fn require_admin(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.admin_token
        && !super::bearer(&headers).is_some_and(|p| super::is_token(p, token))
    {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin API needs Authorization: Bearer <PAYHOOK_ADMIN_TOKEN>",
        )
        .into_response();
    }
    if state.admin_token.is_none()
        && let Some(refused) = browser_from_elsewhere(&headers)
    {
        return refused.into_response();
    }
    next.run(request).await
}

/// Without a token the admin listener is open to whoever reaches its loopback address, and a
/// browser on the operator's machine reaches it for any page it shows: a page elsewhere could
/// post to it (cross-site request forgery) or, through a DNS name it points at 127.0.0.1, read
/// it (DNS rebinding). A request named for another host, or sent by a page of another origin,
/// is refused; curl, the CLI and the dashboard itself are not.
fn browser_from_elsewhere(headers: &HeaderMap) -> Option<ApiError> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let refused = |what: String| {
        Some(
            ApiError::new(StatusCode::FORBIDDEN, "not_loopback", what)
                .hint("open the dashboard at http://127.0.0.1:<port>/, or set PAYHOOK_ADMIN_TOKEN"),
        )
    };
    if let Some(host) = text(header::HOST)
        && !is_loopback_host(host)
    {
        return refused(format!(
            "the admin listener without a token answers requests for a loopback host, not {host:?}"
        ));
    }
    let origin = text(header::ORIGIN).filter(|o| *o != "null");
    if let Some(origin) = origin {
        let host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if !is_loopback_host(host) {
            return refused(format!(
                "the admin listener without a token answers no page of another origin ({origin})"
            ));
        }
    }
    if text(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return refused("the admin listener without a token answers no cross-site request".into());
    }
    None
}

/// `localhost`, `*.localhost` or a loopback address, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The page a listing is asked for: `limit` rows older than `cursor`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Rows per page, 1 to 500 (50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    #[serde(deserialize_with = "limit")]
    limit: i64,
    /// The `next_cursor` of the previous page.
    #[serde(deserialize_with = "cursor")]
    cursor: Option<i64>,
}

fn limit<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(50),
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(de::Error::custom("a number from 1 to 500")),
        },
    }
}

fn cursor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| de::Error::custom("is the next_cursor of a previous page"))
        })
        .transpose()
}

/// The status words the listings filter by.
/// A page of the store's rows as answer rows, and the cursor of the next page: the last row's id
/// when the page is full, none when it is the last.
fn page<'a, S, T: From<&'a S>>(rows: &'a [S], id: fn(&S) -> i64, limit: i64) -> Json<Page<T>> {
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(id))
        .flatten();
    Json(Page {
        data: rows.iter().map(T::from).collect(),
        next_cursor,
    })
}

fn accepted(body: impl Serialize) -> Response {
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus' text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Prometheus' text format", content_type = "text/plain", body = String),
        Unauthorized,
        StoreDown,
    )
)]
async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let text = crate::metrics::render(&state.store, &state.depths, &state.targets).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
