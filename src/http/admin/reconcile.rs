//! Missed events fetched from Stripe's event list, a page at a time, for `payhook reconcile`:
//! the undelivered ones (`delivery_success=false`), oldest first (see `crate::reconcile`).

use super::*;

/// Which page of the provider's event list to reconcile.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ReconcileQuery {
    /// Events created at or after this time (unix seconds); Stripe keeps 30 days, so an earlier
    /// time asks for those 30 days.
    #[param(minimum = 0)]
    #[serde(deserialize_with = "unix_seconds")]
    since: i64,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// The `next_cursor` of the previous page (absent for the first).
    #[param(value_type = Option<String>)]
    #[serde(deserialize_with = "cursor")]
    cursor: Option<crate::reconcile::Cursor>,
    /// Every event Stripe lists, delivered or not (after restoring a backup); by default only
    /// those whose delivery failed or is still pending.
    #[serde(deserialize_with = "flag")]
    all: bool,
}

/// What a previous page's `next_cursor` said.
fn cursor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<crate::reconcile::Cursor>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) => crate::reconcile::Cursor::parse(&text)
            .map(Some)
            .ok_or_else(|| de::Error::custom("is a previous page's next_cursor")),
    }
}

/// `true` or `false`; absent is `false`.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Option::<String>::deserialize(d)?.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(de::Error::custom("is true or false")),
    }
}

/// `since` is required: a missing, negative or unreadable one is refused in the same words.
fn unix_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Option::<String>::deserialize(d)?.map(|s| s.parse::<i64>()) {
        Some(Ok(s)) if s >= 0 => Ok(s),
        _ => Err(de::Error::custom("is required: a unix time in seconds")),
    }
}

/// `POST /admin/api/reconcile?since&type&cursor&all`: one page (up to 100) of the events
/// Stripe's API lists from `since` whose delivery failed (`delivery_success=false`; every event
/// with `all=true`), oldest first, the ones the inbox lacks stored through it. Page after page
/// with `cursor`; `payhook reconcile` does that and shows the progress.
#[utoipa::path(
    post,
    path = "/admin/api/reconcile",
    tag = "admin",
    params(ReconcileQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "One page reconciled", body = ReconcilePage),
        Invalid,
        Unauthorized,
        (status = 409, description = "payhook uses the sandbox provider: there is no provider API to ask (`reconcile_unavailable`)", body = ErrorBody),
        ProviderFailed,
        StoreDown,
    )
)]
pub(super) async fn reconcile(
    State(state): State<Arc<AppState>>,
    ValidQuery(q): ValidQuery<ReconcileQuery>,
) -> Result<Json<ReconcilePage>, ApiError> {
    let crate::checkout::Provider::Stripe(api) = &*state.provider else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "reconcile_unavailable",
            "payhook uses the sandbox provider: there is no provider API to reconcile with",
        )
        .hint("set STRIPE_SECRET_KEY (and STRIPE_API_BASE for a Stripe emulator)"));
    };
    let listing = crate::reconcile::Listing {
        since: q.since,
        event_type: q.event_type.as_deref(),
        all: q.all,
    };
    let done = crate::reconcile::page(api, &state.inbox, &listing, q.cursor.as_ref()).await?;
    if done.stored > 0 {
        state.processor_wake.notify_one();
    }
    tracing::info!(
        listed = done.listed,
        stored = done.stored,
        duplicates = done.duplicates,
        "reconcile page from the admin API"
    );
    Ok(Json(ReconcilePage::from(done)))
}
