//! The fetcher worker: a thin event notification (Stripe's `v2.core.event`) carries no object, so
//! before the processor can read it, its related object is fetched from the provider's API (or
//! the sandbox) and kept beside the raw body as the snapshot event it stands for. Never on the
//! acknowledgement path: the webhook was stored and answered already; the processor marked it
//! `waiting`. While the provider cannot be reached the event keeps waiting, retried with backoff;
//! an object the provider does not have fails the event, with why.
//!
//! The snapshot keeps the thin event's `snapshot_event` id when Stripe gives one, so a thin
//! event and its snapshot event, both delivered, are one fact.
//!
//! The same worker confirms the notifications of sources verified by API (see
//! `providers::confirm`): the provider's answer is kept as the event's `fetched` record, or, when
//! the provider denies the notification, the event is marked `rejected` with that answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::RngExt;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::missed;
use crate::checkout::{ConnectedAccount, Provider, ProviderError};
use crate::providers::Sources;
use crate::providers::confirm::{Confirm, Outcome};
use crate::providers::mapping::Mapping;
use crate::store::{Store, StoreError, ToFetch};

/// Thin events fetched per round.
const BATCH: i64 = 32;
/// How long a fetched object answers for the same path: thin events about one object often come
/// together (`v1.payment_intent.succeeded` and `v1.charge.succeeded` a moment apart).
const CACHE_FOR: Duration = Duration::from_secs(2);
/// The first wait after a failed fetch, doubled each time up to [`WAIT_MAX`].
const WAIT_FIRST: Duration = Duration::from_secs(1);
const WAIT_MAX: Duration = Duration::from_secs(300);
/// How long an idle fetcher waits before looking again unwoken.
const IDLE_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Fetcher {
    store: Arc<Store>,
    provider: Arc<Provider>,
    /// Woken by the processor when it marks events `waiting`.
    wake: Arc<Notify>,
    /// Woken when an object was fetched: its event is back in line.
    processor: Arc<Notify>,
    cache: Arc<Mutex<HashMap<String, (Instant, Value)>>>,
    /// The sources whose notifications the provider's API confirms, with their mapping.
    confirms: Arc<HashMap<String, (Confirm, Arc<Mapping>)>>,
    /// Stripe sources whose every event is fetched back from Stripe's API.
    stripe_confirms: Arc<std::collections::HashSet<String>>,
    http: reqwest::Client,
}

/// Why an event's object could not be had.
#[derive(Debug)]
enum NotFetched {
    /// Try again later: the provider is down, slow, or refused the key.
    Waiting(String),
    /// Never: the event or the provider's answer says so.
    Failed(String),
}

impl Fetcher {
    /// A fetcher woken by `wake` (the processor's, when it marks events `waiting`) that wakes
    /// `processor` when events are back in line.
    pub fn new(
        store: Arc<Store>,
        provider: Arc<Provider>,
        wake: Arc<Notify>,
        processor: Arc<Notify>,
    ) -> Fetcher {
        Fetcher {
            store,
            provider,
            wake,
            processor,
            cache: Arc::default(),
            confirms: Arc::default(),
            stripe_confirms: Arc::default(),
            http: reqwest::Client::new(),
        }
    }

    /// Also confirms the notifications of `sources` that are verified by API.
    pub fn with_confirms(mut self, sources: &Sources) -> Self {
        self.confirms = Arc::new(sources.confirms());
        self.stripe_confirms = Arc::new(
            sources
                .names()
                .into_iter()
                .filter(|n| sources.get(n).is_some_and(|s| s.stripe_confirm))
                .map(str::to_string)
                .collect(),
        );
        self.http = crate::net::client_builder()
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        self
    }

    /// Fetches the objects of the thin events due now; returns how many it fetched.
    pub async fn try_fetch_next(&self) -> Result<usize, StoreError> {
        let now = Utc::now().timestamp_millis();
        let due = self.store.events_to_fetch(now, BATCH).await?;
        let mut fetched = 0;
        for event in &due {
            let outcome = match self.confirms.get(&event.source) {
                Some((confirm, mapping)) => {
                    let headers = serde_json::from_str(&event.headers).unwrap_or(Value::Null);
                    confirm
                        .check(
                            &self.http,
                            mapping,
                            &event.event_type,
                            &headers,
                            &event.payload,
                        )
                        .await
                }
                None if self.stripe_confirms.contains(&event.source)
                    && !missed::is_thin(&event.event_type) =>
                {
                    self.confirm_stripe(event).await
                }
                None => match self.fetch(event).await {
                    Ok(snapshot) => Outcome::Confirmed(snapshot),
                    Err(NotFetched::Waiting(why)) => Outcome::Waiting(why),
                    Err(NotFetched::Failed(why)) => Outcome::Failed(why),
                },
            };
            let attempts = event.attempts + 1;
            match outcome {
                Outcome::Confirmed(record) => {
                    let bytes = serde_json::to_vec(&record).expect("JSON serializes");
                    if self.store.store_fetched(event.id, &bytes).await? {
                        fetched += 1;
                    }
                }
                Outcome::Waiting(why) => {
                    let wait = backoff(attempts);
                    tracing::warn!(id = event.id, source = %event.source, r#type = %event.event_type,
                        attempts, %why, "event waits for the provider's API");
                    let error = format!("waiting for the provider's API: {why}");
                    let at = now + wait.as_millis() as i64;
                    self.store
                        .fetch_failed(event.id, attempts, &error, Some(at))
                        .await?;
                }
                Outcome::Denied { why, answer } => {
                    tracing::warn!(id = event.id, source = %event.source, r#type = %event.event_type,
                        %why, "the provider's API denied the notification; it is never applied");
                    let answer = serde_json::to_vec(&answer).expect("JSON serializes");
                    self.store
                        .fetch_rejected(event.id, attempts, &why, &answer)
                        .await?;
                }
                Outcome::Failed(why) => {
                    tracing::warn!(id = event.id, source = %event.source, r#type = %event.event_type,
                        %why, "event cannot be applied");
                    self.store
                        .fetch_failed(event.id, attempts, &why, None)
                        .await?;
                }
            }
        }
        if fetched > 0 {
            self.processor.notify_one();
        }
        Ok(fetched)
    }

    /// Runs until `stopped` turns true.
    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        while !*stopped.borrow() {
            let wait = match self.try_fetch_next().await {
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => match self.store.next_fetch_due().await {
                    Ok(Some(due)) => {
                        let ms = (due - Utc::now().timestamp_millis()).max(0) as u64;
                        Duration::from_millis(ms).clamp(Duration::from_millis(5), IDLE_WAIT)
                    }
                    _ => IDLE_WAIT,
                },
                Err(e) => {
                    tracing::error!(error = %e, "fetcher cannot reach the store; waiting");
                    IDLE_WAIT
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => {}
            }
        }
    }

    /// Stripe's own copy of an event (`GET /v1/events/{id}`): what the ledger reads. An event
    /// Stripe does not have, or has with another type, is denied.
    async fn confirm_stripe(&self, event: &ToFetch) -> Outcome {
        let posted: Value = serde_json::from_slice(&event.payload).unwrap_or_default();
        let Some(id) = posted["id"].as_str().filter(|id| {
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }) else {
            return Outcome::Failed("the event has no id payhook can look up".into());
        };
        let path = format!("/v1/events/{id}");
        match self
            .provider
            .fetch_object(
                &path,
                id,
                &event.event_type,
                ConnectedAccount::of(&posted).as_ref(),
            )
            .await
        {
            Ok(Some(copy)) if copy["id"] == posted["id"] && copy["type"] == posted["type"] => {
                Outcome::Confirmed(copy)
            }
            Ok(Some(copy)) => Outcome::Denied {
                why: format!(
                    "Stripe's event {id} is {} {}, not the {} posted",
                    copy["id"], copy["type"], event.event_type
                ),
                answer: copy,
            },
            Ok(None) => Outcome::Denied {
                why: format!("Stripe has no event {id} (HTTP 404)"),
                answer: Value::Null,
            },
            Err(ProviderError::Refused {
                status, message, ..
            }) if !matches!(status, 401 | 403 | 408 | 425 | 429 | 500..=599) => Outcome::Denied {
                why: format!("Stripe refused GET {path}: HTTP {status} {message}"),
                answer: Value::String(message),
            },
            Err(e) => Outcome::Waiting(e.to_string()),
        }
    }

    /// The snapshot event a thin event stands for, its object fetched.
    async fn fetch(&self, event: &ToFetch) -> Result<Value, NotFetched> {
        let thin: Value = serde_json::from_slice(&event.payload)
            .map_err(|e| NotFetched::Failed(format!("the thin event is not JSON: {e}")))?;
        if event.event_type == missed::GENERATION_FAILURE {
            return self.fetch_missed(&thin, &event.event_type).await;
        }
        let path = related_path(&thin)?;
        let event_id = thin["id"].as_str().unwrap_or_default();
        let account = ConnectedAccount::of(&thin);
        let object = match self.cached(path) {
            Some(object) => object,
            None => {
                let object = self
                    .get(path, event_id, &event.event_type, account.as_ref())
                    .await?;
                self.keep(path, &object);
                object
            }
        };
        snapshot(&thin, object).map_err(NotFetched::Failed)
    }

    /// `GET {path}` of the provider's API for the event `event_id`.
    async fn get(
        &self,
        path: &str,
        event_id: &str,
        event_type: &str,
        account: Option<&ConnectedAccount>,
    ) -> Result<Value, NotFetched> {
        self.provider
            .fetch_object(path, event_id, event_type, account)
            .await
            .map_err(|e| match e {
                // A refusal that is the provider's own trouble passes; the rest stands.
                ProviderError::Refused {
                    status: status @ (408 | 425 | 429 | 500..=599),
                    message,
                    ..
                } => NotFetched::Waiting(format!("HTTP {status} {message}")),
                ProviderError::Refused {
                    status, message, ..
                } => NotFetched::Failed(format!(
                    "the provider refused GET {path}: HTTP {status} {message}"
                )),
                other => NotFetched::Waiting(other.to_string()),
            })?
            .ok_or_else(|| {
                NotFetched::Failed(format!("the provider has no object at {path} (HTTP 404)"))
            })
    }

    /// For a notification that Stripe could not generate an event: its full event, then the
    /// related object it names, as the snapshot [`missed`] makes of them.
    async fn fetch_missed(&self, thin: &Value, event_type: &str) -> Result<Value, NotFetched> {
        let event_id = thin["id"].as_str().unwrap_or_default();
        let path = missed::event_path(thin).map_err(NotFetched::Failed)?;
        let account = ConnectedAccount::of(thin);
        let event = self
            .get(&path, event_id, event_type, account.as_ref())
            .await?;
        let related = &event["data"]["impact"]["related_object"];
        let object = match missed::related_path(&event).map_err(NotFetched::Failed)? {
            Some(path) => {
                self.get(&path, event_id, event_type, account.as_ref())
                    .await?
            }
            // Not an object of a payment: recorded as it is, and ignored.
            None => json!({ "id": related["id"], "object": related["type"] }),
        };
        Ok(missed::snapshot(
            thin,
            &event,
            object,
            Utc::now().timestamp(),
        ))
    }

    fn cached(&self, path: &str) -> Option<Value> {
        let cache = self.cache.lock().expect("the cache lock");
        cache
            .get(path)
            .filter(|(at, _)| at.elapsed() < CACHE_FOR)
            .map(|(_, object)| object.clone())
    }

    fn keep(&self, path: &str, object: &Value) {
        let mut cache = self.cache.lock().expect("the cache lock");
        cache.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
        cache.insert(path.to_string(), (Instant::now(), object.clone()));
    }
}

/// The API path of the thin event's related object: a plain `/v1/...` path, nothing else.
fn related_path(thin: &Value) -> Result<&str, NotFetched> {
    let path = thin["related_object"]["url"]
        .as_str()
        .ok_or_else(|| NotFetched::Failed("the thin event has no related_object.url".into()))?;
    let plain = path.starts_with("/v1/")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
        && !path.contains("//");
    if !plain {
        return Err(NotFetched::Failed(format!(
            "related_object.url {path:?} is not a /v1/ API path"
        )));
    }
    Ok(path)
}

/// The classic event a thin event and its fetched object make: the snapshot event's id when the
/// thin event names it, the type without `v1.`, the time in unix seconds.
fn snapshot(thin: &Value, object: Value) -> Result<Value, String> {
    let event_type = thin["type"].as_str().unwrap_or_default();
    let created = thin["created"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .ok_or("the thin event has no RFC 3339 `created` time")?;
    let id = thin["snapshot_event"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or(thin["id"].as_str())
        .ok_or("the thin event has no id")?;
    Ok(json!({
        "id": id,
        "object": "event",
        "type": event_type.strip_prefix("v1.").unwrap_or(event_type),
        "created": created.timestamp(),
        "livemode": thin["livemode"],
        "data": { "object": object },
    }))
}

/// The wait after `attempts` failed fetches: doubling from a second up to five minutes, ±20%.
fn backoff(attempts: i64) -> Duration {
    let exp = (attempts - 1).clamp(0, 20) as u32;
    WAIT_FIRST
        .saturating_mul(2u32.saturating_pow(exp))
        .min(WAIT_MAX)
        .mul_f64(rand::rng().random_range(0.8..1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thin_event_and_its_object_make_the_snapshot_it_names() {
        let thin = json!({
            "id": "evt_thin", "object": "v2.core.event", "type": "v1.charge.refunded",
            "created": "2026-05-01T12:00:00.000Z", "livemode": false,
            "related_object": {"id": "ch_1", "type": "charge", "url": "/v1/charges/ch_1"},
            "snapshot_event": "evt_snapshot",
        });
        let event = snapshot(&thin, json!({"id": "ch_1"})).unwrap();
        assert_eq!(event["id"], "evt_snapshot");
        assert_eq!(event["type"], "charge.refunded");
        assert_eq!(event["created"], 1_777_636_800);
        assert_eq!(event["data"]["object"]["id"], "ch_1");
        assert_eq!(related_path(&thin).unwrap(), "/v1/charges/ch_1");
    }

    #[test]
    fn only_plain_api_paths_are_fetched() {
        for url in [
            "https://evil.example/v1/x",
            "/v1/../admin",
            "/v1/charges?x=1",
            "/v2//x",
        ] {
            let thin = json!({"related_object": {"url": url}});
            assert!(
                matches!(related_path(&thin), Err(NotFetched::Failed(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn waits_double_up_to_five_minutes() {
        for (attempts, base) in [(1, 1.0), (2, 2.0), (4, 8.0), (30, 300.0)] {
            let d = backoff(attempts).as_secs_f64();
            assert!((base * 0.8..=base * 1.2).contains(&d), "{attempts}: {d}");
        }
    }
}
