//! Bulk jobs (replays, retries) as they run in the background, and the parameters their
//! selections share.

use super::*;
use crate::admin_types::Job;

/// `GET /admin/api/jobs`: this instance's bulk jobs, newest first (they live in memory: a
/// restart ends them and forgets them; what they did stays done).
#[utoipa::path(
    get,
    path = "/admin/api/jobs",
    tag = "admin",
    security(("admin_token" = [])),
    responses((status = 200, description = "The jobs, newest first", body = Vec<Job>), Unauthorized)
)]
pub(super) async fn list_jobs(State(state): State<Arc<AppState>>) -> Json<Vec<Job>> {
    Json(state.jobs.list())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct JobPath {
    /// The job's id (`job_...`)
    #[serde(deserialize_with = "text")]
    id: String,
}

fn no_job(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "job_not_found",
        format!("no job {id:?} on this instance"),
    )
    .hint("jobs live in memory: a restart forgets them")
}

/// `GET /admin/api/jobs/{id}`: how far a bulk job got.
#[utoipa::path(
    get,
    path = "/admin/api/jobs/{id}",
    tag = "admin",
    params(JobPath),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The job", body = Job),
        Invalid,
        Unauthorized,
        (status = 404, description = "No such job on this instance (`job_not_found`)", body = ErrorBody),
    )
)]
pub(super) async fn show_job(
    State(state): State<Arc<AppState>>,
    ValidPath(JobPath { id }): ValidPath<JobPath>,
) -> Result<Json<Job>, ApiError> {
    state.jobs.get(&id).map(Json).ok_or_else(|| no_job(&id))
}

/// `POST /admin/api/jobs/{id}/cancel`: the job stops after its current chunk; what it did stays
/// done. A job that has ended is answered as it is.
#[utoipa::path(
    post,
    path = "/admin/api/jobs/{id}/cancel",
    tag = "admin",
    params(JobPath),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The job, cancelled (or as it ended)", body = Job),
        Invalid,
        Unauthorized,
        (status = 404, description = "No such job on this instance (`job_not_found`)", body = ErrorBody),
    )
)]
pub(super) async fn cancel_job(
    State(state): State<Arc<AppState>>,
    ValidPath(JobPath { id }): ValidPath<JobPath>,
) -> Result<Json<Job>, ApiError> {
    state.jobs.cancel(&id).map(Json).ok_or_else(|| no_job(&id))
}

/// The longest id or name a selection takes.
const MAX_TEXT: usize = 255;

/// A required id or name: some text, no control character (PostgreSQL's text refuses NUL).
pub(super) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    optional_text(d)?.ok_or_else(|| de::Error::custom("is required"))
}

/// An optional id or name, as [`text`].
pub(super) fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(t) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if t.is_empty() || t.len() > MAX_TEXT || t.chars().any(char::is_control) {
        return Err(de::Error::custom(format!(
            "an id or name of 1 to {MAX_TEXT} characters, without control characters"
        )));
    }
    Ok(Some(t))
}

/// A time: RFC 3339 (`2026-11-23T10:00:00Z`), a day (`2026-11-23`, its start in UTC), or a
/// duration before now (`2h`, `30m`, `7d`).
pub(super) fn moment<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(t) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let refused = || {
        de::Error::custom(
            "an RFC 3339 time (2026-11-23T10:00:00Z), a day (2026-11-23) or a duration before now (2h, 30m, 7d)",
        )
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(&t) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).map(|at| at.and_utc()));
    }
    let ago = humantime::parse_duration(t.trim()).map_err(|_| refused())?;
    let ago = chrono::Duration::from_std(ago).map_err(|_| refused())?;
    Utc::now()
        .checked_sub_signed(ago)
        .map(Some)
        .ok_or_else(refused)
}

/// `true` or `false` (absent: false).
pub(super) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Option::<String>::deserialize(d)?.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(de::Error::custom("true or false")),
    }
}

/// Rows a dry run shows: 0 to 500 (20).
pub(super) fn sample<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(20),
        Some(n) => match n.parse::<i64>() {
            Ok(n) if (0..=500).contains(&n) => Ok(n),
            _ => Err(de::Error::custom("a number from 0 to 500")),
        },
    }
}

/// What a bulk route answers for `whole`: with `dry_run`, how many rows it selects and the first
/// of them (`sample`, given the newest id the selection covers), changing nothing; otherwise a
/// job started over it, which calls `wake` as it puts rows back in line.
pub(super) async fn dry_run_or_start<T: Serialize>(
    state: &AppState,
    whole: Selection,
    shown: JobSelection,
    dry_run: bool,
    sample: impl AsyncFnOnce(i64) -> Result<Vec<T>, crate::store::StoreError>,
    kind: JobKind,
    wake: crate::bulk::Wake,
) -> Result<Response, ApiError> {
    if dry_run {
        let (after, upto) = state.store.selection_window(&whole).await?;
        let total = state.store.count_selected(&whole, after, upto).await?;
        return Ok(Json(DryRun {
            selection: shown,
            total,
            sample: sample(upto).await?,
        })
        .into_response());
    }
    let job = state
        .jobs
        .start(state.store.clone(), kind, whole, shown, wake)
        .await?;
    Ok(accepted(job))
}
