//! Missed events fetched from Stripe's event list, a page at a time, for `payhook reconcile`.

use super::*;

/// Which page of the provider's event list to reconcile.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ReconcileQuery {
    /// Events created at or after this time (unix seconds).
    #[param(minimum = 0)]
    #[serde(deserialize_with = "unix_seconds")]
    since: i64,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// The `next_starting_after` of the previous page.
    starting_after: Option<String>,
}

/// `since` is required: a missing, negative or unreadable one is refused in the same words.
fn unix_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Option::<String>::deserialize(d)?.map(|s| s.parse::<i64>()) {
        Some(Ok(s)) if s >= 0 => Ok(s),
        _ => Err(de::Error::custom("is required: a unix time in seconds")),
    }
}

/// `POST /admin/api/reconcile?since&type&starting_after`: one page (up to 100) of the events
/// Stripe's API lists from `since`, the ones the inbox lacks stored through it. Page after page
/// with `starting_after`; `payhook reconcile` does that and shows the progress.
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
    let done = crate::reconcile::page(
        api,
        &state.inbox,
        q.since,
        q.event_type.as_deref(),
        q.starting_after.as_deref(),
    )
    .await?;
    if done.stored > 0 {
        state.processor_wake.notify_one();
    }
    tracing::info!(
        listed = done.listed,
        stored = done.stored,
        "reconcile page from the admin API"
    );
    Ok(Json(ReconcilePage::from(done)))
}
