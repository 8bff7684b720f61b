//! `GET /admin/api/events/stream`: each inbox event as it is stored, as server-sent events, for
//! `payhook listen` (webhooks forwarded to a laptop without a tunnel) or any EventSource. An
//! event's SSE `id:` is its row number, so a client that reconnects with `Last-Event-ID` (or
//! `after`) misses none and gets none twice.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use tokio::sync::mpsc;

use super::*;
use crate::admin_types::StreamedEvent;
use crate::store::Store;

/// Rows read per look at the store.
const BATCH: i64 = 100;
/// How often the store is looked at when there was nothing new.
const POLL: Duration = Duration::from_millis(200);
/// A row number skipped while rows after it are younger than this may still be committing (on
/// PostgreSQL, numbers are taken before commit, and a duplicate takes one that is never used):
/// the stream waits that long for it before going past.
const GAP_GRACE: Duration = Duration::from_secs(3);

/// Where the stream starts and what it carries.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StreamQuery {
    /// Stream the events stored after this row number (0: all of them); absent, those stored
    /// from now on. A `Last-Event-ID` header (an EventSource reconnecting) wins over it.
    #[param(minimum = 0)]
    #[serde(deserialize_with = "row")]
    after: Option<i64>,
    /// Only the events of this source.
    source: Option<String>,
    /// Only the events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// End the stream after this many seconds (1 to 86400); absent, it lasts until the client
    /// leaves or payhook stops.
    #[param(minimum = 1, maximum = 86400)]
    #[serde(deserialize_with = "seconds")]
    timeout: Option<u64>,
}

fn row<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<String>::deserialize(d)?.map(|s| s.parse::<i64>()) {
        None => Ok(None),
        Some(Ok(n)) if n >= 0 => Ok(Some(n)),
        _ => Err(de::Error::custom("is a row number (0 or more)")),
    }
}

fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<String>::deserialize(d)?.map(|s| s.parse::<u64>()) {
        None => Ok(None),
        Some(Ok(n)) if (1..=86_400).contains(&n) => Ok(Some(n)),
        _ => Err(de::Error::custom("is a number of seconds from 1 to 86400")),
    }
}

/// `GET /admin/api/events/stream?after&source&type&timeout`: `text/event-stream` of
/// `event: webhook` messages (`id:` the row number, `data:` a [`StreamedEvent`]), oldest first,
/// from `after` (or `Last-Event-ID`) on; first an `event: ready` whose data is the row it starts
/// after; a `: keep-alive` comment every 15 s.
#[utoipa::path(
    get,
    path = "/admin/api/events/stream",
    tag = "admin",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this row number (an EventSource reconnecting)"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Server-sent events: each stored event (`event: webhook`, `data`: StreamedEvent)", content_type = "text/event-stream", body = String),
        Invalid,
        Unauthorized,
        StoreDown,
    )
)]
pub(super) async fn stream_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    ValidQuery(q): ValidQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "validation_error",
                        "Last-Event-ID is a row number (0 or more)",
                    )
                })?,
        ),
    };
    let after = match resume.or(q.after) {
        Some(after) => after,
        // From now on: after the newest row.
        None => state
            .store
            .list_events(&EventFilter::default(), 1)
            .await?
            .first()
            .map_or(0, |e| e.id),
    };
    let (tx, mut rx) = mpsc::channel::<Event>(16);
    let follow = Follow {
        store: state.store.clone(),
        source: q.source,
        event_type: q.event_type,
        deadline: q
            .timeout
            .map(|s| tokio::time::Instant::now() + Duration::from_secs(s)),
    };
    tokio::spawn(follow.run(after, tx, state.stopped.clone()));
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|e| e.map(Ok::<_, Infallible>))
    });
    Ok(Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .text("keep-alive"),
        )
        .into_response())
}

struct Follow {
    store: Arc<Store>,
    source: Option<String>,
    event_type: Option<String>,
    deadline: Option<tokio::time::Instant>,
}

impl Follow {
    /// Sends the events after row `after` as they are stored, until the client leaves, the
    /// deadline passes, payhook stops, or the store fails (said in an `event: error`; the client
    /// reconnects).
    async fn run(
        self,
        mut after: i64,
        tx: mpsc::Sender<Event>,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        let ready = Event::default()
            .event("ready")
            .data(serde_json::json!({ "after": after }).to_string());
        if tx.send(ready).await.is_err() {
            return;
        }
        loop {
            if *stopped.borrow()
                || self
                    .deadline
                    .is_some_and(|d| tokio::time::Instant::now() >= d)
            {
                return;
            }
            let rows = match self.store.events_from(after, BATCH).await {
                Ok(rows) => rows,
                Err(e) => {
                    let said = Event::default().event("error").data(e.to_string());
                    let _ = tx.send(said).await;
                    return;
                }
            };
            let full = rows.len() as i64 == BATCH;
            let mut held = false;
            for row in &rows {
                let young = Utc::now() - row.received_at
                    < chrono::Duration::from_std(GAP_GRACE).unwrap_or_default();
                if row.id > after + 1 && young {
                    // A row before it may still be committing: look again shortly.
                    held = true;
                    break;
                }
                after = row.id;
                if self.source.as_ref().is_some_and(|s| *s != row.source)
                    || self
                        .event_type
                        .as_ref()
                        .is_some_and(|t| *t != row.event_type)
                {
                    continue;
                }
                let data = serde_json::to_string(&StreamedEvent::from(row)).unwrap_or_default();
                let event = Event::default()
                    .id(row.id.to_string())
                    .event("webhook")
                    .data(data);
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            if full && !held {
                continue;
            }
            let wait = match self.deadline {
                Some(d) => tokio::time::sleep_until(d.min(tokio::time::Instant::now() + POLL)),
                None => tokio::time::sleep(POLL),
            };
            tokio::select! {
                _ = wait => {}
                _ = stopped.changed() => {}
                _ = tx.closed() => return,
            }
        }
    }
}
