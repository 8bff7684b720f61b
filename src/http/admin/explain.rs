//! Explain and search: what a booking, payment or event id stands for, and why it is in its state.

use super::*;
use crate::explain::Explanation;

/// The path of an explanation.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ExplainPath {
    /// A booking id, payment intent, checkout session, charge, provider event id or event number.
    key: String,
}

/// Narrows a provider event id to one source.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SourceQuery {
    /// `stripe` or a `[[sources]]` name, when two sources hold the same event id.
    source: Option<String>,
}

/// The longest key looked up: longer ones are no id payhook stores.
const KEY_MAX: usize = 255;

fn checked_key(key: &str) -> Result<&str, ApiError> {
    let key = key.trim();
    // No id payhook stores holds a control character (PostgreSQL's text cannot even hold NUL).
    if key.is_empty() || key.len() > KEY_MAX || key.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "the key must be 1 to {KEY_MAX} printable characters: a booking, payment or \
                 event id"
            ),
        ));
    }
    Ok(key)
}

/// `GET /admin/api/explain/{key}`: why the booking or payment `key` names is in its state: the
/// timeline of its events (provider and arrival time, verification, the fact each established,
/// the status after it and the rule that decided it), the notifications each caused with every
/// attempt, and what needs a person first.
#[utoipa::path(
    get,
    path = "/admin/api/explain/{key}",
    tag = "admin",
    params(ExplainPath, SourceQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The explanation", body = Explanation),
        Invalid,
        Unauthorized,
        (status = 404, description = "Nothing payhook stores has this id (`not_found`)", body = ErrorBody),
        StoreDown,
    )
)]
pub(super) async fn explain(
    State(state): State<Arc<AppState>>,
    ValidPath(ExplainPath { key }): ValidPath<ExplainPath>,
    ValidQuery(q): ValidQuery<SourceQuery>,
) -> Result<Json<Explanation>, ApiError> {
    let key = checked_key(&key)?;
    let verification = |source: &str| {
        state
            .inbox
            .find(source)
            .map(|s| s.verification())
            .unwrap_or_else(|| format!("source {source} is no longer configured"))
    };
    crate::explain::explain(&state.store, key, q.source.as_deref(), &verification)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no booking, payment, checkout session or event has the id {key:?}"),
            )
        })
}

/// What a search found.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    /// `booking`, `payment`, `session` or `event`.
    pub kind: String,
    /// What to open: `GET /admin/api/explain/{explain}` (and, for an event,
    /// `GET /admin/api/events/{event}`).
    pub explain: String,
    pub event: Option<i64>,
    /// One line for people.
    pub label: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchHits {
    pub data: Vec<SearchHit>,
}

/// The search's query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchQuery {
    /// Any id: a booking id, payment intent, checkout session, charge, provider event id, event
    /// number.
    q: String,
}

/// `GET /admin/api/search?q=`: the bookings, payments, checkout sessions and events an id names.
#[utoipa::path(
    get,
    path = "/admin/api/search",
    tag = "admin",
    params(SearchQuery),
    security(("admin_token" = [])),
    responses((status = 200, description = "What the id names (none: an empty list)", body = SearchHits), Invalid, Unauthorized, StoreDown)
)]
pub(super) async fn search(
    State(state): State<Arc<AppState>>,
    ValidQuery(SearchQuery { q }): ValidQuery<SearchQuery>,
) -> Result<Json<SearchHits>, ApiError> {
    let q = checked_key(&q)?;
    let store = &state.store;
    let mut data = Vec::new();
    let booking = store
        .payments_where(crate::store::PaymentKey::Booking, q)
        .await?;
    if !booking.is_empty() {
        let status = crate::domain::state::representative(&booking)
            .map(|p| p.state.status.as_str())
            .unwrap_or("pending");
        data.push(SearchHit {
            kind: "booking".into(),
            explain: q.to_string(),
            event: None,
            label: format!("booking {q}: {status}, {} payment(s)", booking.len()),
        });
    }
    for p in store.payments_by_ref(q).await? {
        data.push(SearchHit {
            kind: "payment".into(),
            explain: q.to_string(),
            event: None,
            label: format!(
                "payment {} of booking {}: {}",
                p.id,
                p.state.booking_id.as_deref().unwrap_or("(none)"),
                p.state.status
            ),
        });
    }
    if let Some(session) = store.session(q).await? {
        data.push(SearchHit {
            kind: "session".into(),
            explain: q.to_string(),
            event: None,
            label: format!(
                "checkout session of booking {}: {}",
                session.booking_id, session.status
            ),
        });
    }
    let mut events = Vec::new();
    if let Ok(n) = q.parse::<i64>()
        && let Some(e) = store.event_by_id(n).await?
    {
        events.push(e.summary());
    }
    let by_id = EventFilter {
        event_id: Some(q.to_string()),
        ..EventFilter::default()
    };
    events.extend(store.list_events(&by_id, 20).await?);
    for e in events {
        data.push(SearchHit {
            kind: "event".into(),
            explain: e.id.to_string(),
            event: Some(e.id),
            label: format!(
                "event {} {} ({}, {}): {}",
                e.id,
                e.event_id,
                e.source,
                e.event_type,
                e.status.as_str()
            ),
        });
    }
    Ok(Json(SearchHits { data }))
}
