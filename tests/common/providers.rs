//! What the provider preset tests share: a signer written from the providers' documented schemes
//! (not payhook's code), a poster for `/webhooks/...`, waits on an event's status and a booking's,
//! and a loopback stand-in for a provider's API.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use super::receiver::{Receiver, Recorded, Reply, eventually};
use super::{Answer, TestApp};

pub const JSON: &str = "application/json";
pub const FORM: &str = "application/x-www-form-urlencoded";
/// No header beside the content type.
pub const NO_HEADERS: &[(&str, &str)] = &[];

/// Loads `toml` as payhook's configuration file; the error's text if payhook would not start.
pub fn load_config(toml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payhook.toml");
    std::fs::write(&path, toml).unwrap();
    payhook::config::Settings::load(Some(&path), &std::collections::HashMap::new())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// HMAC-SHA256 of the concatenated `parts`, in lowercase hex.
pub fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// POSTs `body` to `/webhooks/{path}` (`path` is the source's name, and may hold a query) as
/// `content_type`, with `headers`.
pub async fn post_webhook<K: AsRef<str>, V: AsRef<str>>(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: &str,
    headers: &[(K, V)],
) -> Answer {
    let mut request = app
        .client
        .post(format!("{}/webhooks/{path}", app.base))
        .header("content-type", content_type);
    for (k, v) in headers {
        request = request.header(k.as_ref(), v.as_ref());
    }
    Answer::read(request.body(body.to_string()).send().await.unwrap()).await
}

/// The event once it has reached `status` (within 15 s).
pub async fn settled_row(
    app: &TestApp,
    source: &str,
    id: &str,
    status: &str,
) -> payhook::store::StoredEvent {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let row = app.payhook.store.event(source, id).await.unwrap();
        match row {
            Some(r) if r.status == status => return r,
            other => assert!(
                std::time::Instant::now() < deadline,
                "{id} never {status}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The event once it waits for the provider's API, with why.
pub async fn waiting_row(app: &TestApp, source: &str, id: &str) -> String {
    eventually(Duration::from_secs(10), "the event waits", || async {
        let row = app.payhook.store.event(source, id).await.unwrap();
        row.is_some_and(|r| r.status == "waiting" && r.last_error.is_some())
    })
    .await;
    let row = app.payhook.store.event(source, id).await.unwrap().unwrap();
    row.last_error.unwrap()
}

/// Waits (up to 15 s) until the example booking service holds `booking` in `status`.
pub async fn booking_is(
    service: &payhook::booking_service::BookingService,
    booking: &str,
    status: &str,
) {
    eventually(
        Duration::from_secs(15),
        &format!("{booking} {status}"),
        || async { service.booking(booking).map(|b| b.status).as_deref() == Some(status) },
    )
    .await;
}

pub async fn confirmed(service: &payhook::booking_service::BookingService, booking: &str) {
    booking_is(service, booking, "confirmed").await;
}

/// A loopback stand-in for a provider's API: answers each request with what `answer` says, or
/// `503` while `down`.
pub struct ProviderApi {
    pub receiver: Receiver,
    pub down: Arc<AtomicBool>,
}

pub async fn provider_api(
    answer: impl Fn(&Recorded) -> (u16, Value) + Send + Sync + 'static,
) -> ProviderApi {
    let down = Arc::new(AtomicBool::new(false));
    let is_down = down.clone();
    let receiver = Receiver::start(move |_, request| {
        if is_down.load(Ordering::SeqCst) {
            return Reply::json(503, json!({"error": {"message": "maintenance"}}));
        }
        let (status, body) = answer(request);
        Reply::json(status, body)
    })
    .await;
    ProviderApi { receiver, down }
}
