//! Stripe's thin events end to end: a `v2.core.event` notification is stored and acknowledged like
//! any event, its related object is fetched (from a loopback server answering as Stripe's API, or
//! from the sandbox) off the acknowledgement path, the event waits while the API is down, and a
//! thin event and its snapshot event count once. Runs on SQLite, or PostgreSQL with
//! TEST_DATABASE_URL.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use common::receiver::eventually;
use common::*;
use payhook::domain::Secret;
use payhook::providers::stripe_events::{generation_failure, thin_event};
use serde_json::{Value, json};

/// A loopback stand-in for Stripe's API: serves `/v1/{collection}/{id}` from the objects it was
/// given, answers 503 while `down`, and counts the requests and the key they carried.
#[derive(Default)]
struct StripeApi {
    objects: Mutex<HashMap<String, Value>>,
    down: AtomicBool,
    requests: AtomicUsize,
    keys: Mutex<Vec<String>>,
}

async fn serve_object(
    State(api): State<Arc<StripeApi>>,
    Path((collection, id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> (StatusCode, axum::Json<Value>) {
    api.answer(&format!("/v1/{collection}/{id}"), &headers)
}

/// `GET /v2/core/events/{id}`: a thin event's full event.
async fn serve_event(
    State(api): State<Arc<StripeApi>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> (StatusCode, axum::Json<Value>) {
    api.answer(&format!("/v2/core/events/{id}"), &headers)
}

impl StripeApi {
    fn answer(
        &self,
        path: &str,
        headers: &axum::http::HeaderMap,
    ) -> (StatusCode, axum::Json<Value>) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let key = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        self.keys.lock().unwrap().push(key.to_string());
        if self.down.load(Ordering::SeqCst) {
            return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({})));
        }
        // A connected account's objects are found only as that account (`Stripe-Context`).
        let context = headers
            .get("stripe-context")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match self
            .objects
            .lock()
            .unwrap()
            .get(&format!("{context}{path}"))
        {
            Some(object) => (StatusCode::OK, axum::Json(object.clone())),
            None => (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": {"type": "invalid_request_error",
                    "message": format!("No such object: '{path}'")}})),
            ),
        }
    }
}

async fn stripe_api() -> (Arc<StripeApi>, String) {
    let api = Arc::new(StripeApi::default());
    let router = axum::Router::new()
        .route("/v1/{collection}/{id}", axum::routing::get(serve_object))
        .route("/v2/core/events/{id}", axum::routing::get(serve_event))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (api, base)
}

impl StripeApi {
    /// Serves the object of the snapshot event `event` at its API path.
    fn holds(&self, event: &Value) {
        self.holds_for("", event);
    }

    /// The same, for the connected account `account` only.
    fn holds_for(&self, account: &str, event: &Value) {
        let thin = thin_event(event);
        let path = thin["related_object"]["url"].as_str().unwrap().to_string();
        self.objects
            .lock()
            .unwrap()
            .insert(format!("{account}{path}"), event["data"]["object"].clone());
    }
}

async fn app_with_stripe(base: &str) -> TestApp {
    let base = base.to_string();
    spawn_app_with(move |s| {
        s.stripe.secret_key = Some(Secret::new("sk_test_thin"));
        s.stripe.api_base = base;
    })
    .await
}

#[tokio::test]
async fn a_thin_event_is_applied_once_its_object_is_fetched() {
    let (api, base) = stripe_api().await;
    let app = app_with_stripe(&base).await;
    let pay = PaymentIds::new("booking-thin");
    let snapshot = pay.event("payment_intent.succeeded", now() - 30, &[]);
    api.holds(&snapshot);
    let thin = thin_event(&snapshot);
    assert_eq!(thin["type"], "v1.payment_intent.succeeded");

    let answer = app.send(&thin.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["event_id"], thin["id"]);
    let row = app.settled(thin["id"].as_str().unwrap()).await;
    assert_eq!(row.status, "processed", "{row:?}");
    let data = app.payment_status("booking-thin").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["paymentIntentId"], pay.intent.as_str());
    assert_eq!(api.requests.load(Ordering::SeqCst), 1);
    assert_eq!(api.keys.lock().unwrap()[0], "Bearer sk_test_thin");

    // Stripe sends the snapshot event as well: it is the same fact, counted once.
    app.deliver_all(&[snapshot]).await;
    let facts = app.rows("payment_facts").await;
    assert_eq!(facts, 1, "the thin event and its snapshot are one fact");
}

/// A thin event of a connected account names it in `context`; its related object is read as that
/// account (`Stripe-Context`, as stripe-node's `fetchRelatedObject` sends), where Stripe has it.
#[tokio::test]
async fn a_connected_accounts_thin_event_fetches_its_object_as_that_account() {
    let (api, base) = stripe_api().await;
    let app = app_with_stripe(&base).await;
    let pay = PaymentIds::new("booking-thin-connect");
    let snapshot = pay.event("payment_intent.succeeded", now() - 30, &[]);
    api.holds_for("acct_1Connected", &snapshot);
    let mut thin = thin_event(&snapshot);
    thin["context"] = json!("acct_1Connected");
    let answer = app.send(&thin.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let row = app.settled(thin["id"].as_str().unwrap()).await;
    assert_eq!(row.status, "processed", "{row:?}");
    assert_eq!(
        app.payment_status("booking-thin-connect").await["status"],
        "succeeded"
    );
}

#[tokio::test]
async fn a_thin_event_waits_while_the_api_is_down_and_is_applied_when_it_is_back() {
    let (api, base) = stripe_api().await;
    api.down.store(true, Ordering::SeqCst);
    let app = app_with_stripe(&base).await;
    let pay = PaymentIds::new("booking-thin-wait");
    let snapshot = pay.event("charge.refunded", now() - 30, &[]);
    api.holds(&snapshot);
    let thin = thin_event(&snapshot);
    let answer = app.send(&thin.to_string()).await;
    assert_eq!(answer.status, 200, "acknowledged at once: {}", answer.json);

    let id = thin["id"].as_str().unwrap();
    eventually(Duration::from_secs(10), "the event waits", || async {
        let row = app.payhook.store.event("stripe", id).await.unwrap();
        row.is_some_and(|r| r.status == "waiting" && r.last_error.is_some())
    })
    .await;
    let row = app
        .payhook
        .store
        .event("stripe", id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        row.last_error
            .as_deref()
            .unwrap()
            .contains("waiting for the provider's API"),
        "{row:?}"
    );

    api.down.store(false, Ordering::SeqCst);
    let row = app.settled(id).await;
    assert_eq!(row.status, "processed");
    let data = app.payment_status("booking-thin-wait").await;
    assert_eq!(data["status"], "refunded");
}

#[tokio::test]
async fn a_thin_event_whose_object_stripe_does_not_have_fails_with_why() {
    let (_api, base) = stripe_api().await;
    let app = app_with_stripe(&base).await;
    let pay = PaymentIds::new("booking-thin-missing");
    let thin = thin_event(&pay.event("payment_intent.succeeded", now() - 30, &[]));
    app.send(&thin.to_string()).await;
    let row = app.settled(thin["id"].as_str().unwrap()).await;
    assert_eq!(row.status, "failed");
    assert!(
        row.last_error.unwrap().contains("HTTP 404"),
        "the provider's answer is kept"
    );
}

#[tokio::test]
async fn the_sandbox_sends_thin_events_and_serves_their_objects() {
    let app = spawn_app_with(|s| s.stripe.sandbox_thin_events = true).await;
    let answer = app
        .client
        .post(format!("{}/api/v1/checkout/sessions", app.base))
        .bearer_auth(SERVICE_TOKEN)
        .json(&json!({"booking_id": "booking-sbx-thin", "amount": 4200, "currency": "eur"}))
        .send()
        .await
        .unwrap();
    let session: Value = answer.json().await.unwrap();
    let id = session["session_id"].as_str().unwrap();
    let paid = payhook::net::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/sandbox/checkout/{id}/pay", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    eventually(
        Duration::from_secs(10),
        "the thin events applied",
        || async {
            let answer = app
                .get(
                    "/api/v1/payments/booking-sbx-thin/status",
                    Some(SERVICE_TOKEN),
                )
                .await;
            answer.status == 200 && answer.json["data"]["status"] == "succeeded"
        },
    )
    .await;
    // The intent's and the session's thin events, each applied once its object was fetched.
    let events = app
        .payhook
        .store
        .list_events(&Default::default(), 100)
        .await
        .unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    for e in &events {
        assert!(e.event_type.starts_with("v1."), "{e:?}");
        assert_eq!(app.settled(&e.event_id).await.status, "processed", "{e:?}");
    }
    let data = app.payment_status("booking-sbx-thin").await;
    assert_eq!(data["amount"], 4200);
    assert_eq!(data["checkoutSessionId"], id);
}

/// Stripe could not generate an event about a payment that succeeded: no event reaches payhook,
/// and none is in Stripe's event list. Its `v2.core.health.event_generation_failure.resolved`
/// notification makes payhook fetch the notification's event, then the intent it names, and
/// apply what the intent says now: the payment succeeds.
#[tokio::test]
async fn an_event_stripe_could_not_generate_is_made_good_from_its_related_object() {
    let (api, base) = stripe_api().await;
    let app = app_with_stripe(&base).await;
    let pay = PaymentIds::new("booking-never-sent");
    let intent = pay.event("payment_intent.succeeded", now() - 60, &[])["data"]["object"].clone();
    api.objects
        .lock()
        .unwrap()
        .insert(format!("/v1/payment_intents/{}", pay.intent), intent);
    let (notification, event) = generation_failure(
        &json!({"id": pay.intent, "object": "payment_intent"}),
        "payment_intent.succeeded",
        now(),
    );
    let id = notification["id"].as_str().unwrap().to_string();
    api.objects
        .lock()
        .unwrap()
        .insert(format!("/v2/core/events/{id}"), event);

    let answer = app.send(&notification.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let row = app.settled(&id).await;
    assert_eq!(row.status, "processed", "{row:?}");
    let data = app.payment_status("booking-never-sent").await;
    assert_eq!(data["status"], "succeeded");
    assert_eq!(data["paymentIntentId"], pay.intent.as_str());
    assert_eq!(
        api.requests.load(Ordering::SeqCst),
        2,
        "the event, then the intent"
    );
    assert_eq!(app.rows("payment_facts").await, 1);

    // About an object that is no payment's (an invoice): recorded and ignored.
    let (notification, event) = generation_failure(
        &json!({"id": "in_1", "object": "invoice"}),
        "invoice.paid",
        now(),
    );
    let id = notification["id"].as_str().unwrap().to_string();
    api.objects
        .lock()
        .unwrap()
        .insert(format!("/v2/core/events/{id}"), event);
    assert_eq!(app.send(&notification.to_string()).await.status, 200);
    let row = app.settled(&id).await;
    assert_eq!(row.status, "ignored", "{row:?}");
    assert_eq!(api.requests.load(Ordering::SeqCst), 3, "only the event");
}
