//! Checkout with the sandbox provider, end to end over HTTP: the service routes create a session,
//! the hosted page's buttons pay, decline or cancel, the sandbox's signed events travel through
//! payhook's own webhook route, and the example booking service (a real server on loopback)
//! hears the outcome. On SQLite or on PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::receiver::*;
use common::*;
use payhook::booking_service::BookingService;
use payhook::config::booking_service_target;
use payhook::domain::Secret;
use serde_json::{Value, json};

const BOOKING_TOKEN: &str = "booking-service-token";

/// payhook on the sandbox provider with the example booking service as its target.
async fn sandbox_app() -> (TestApp, Arc<BookingService>) {
    let (service, url) = booking_service(BOOKING_TOKEN).await;
    let app = spawn_app_with(|s| {
        s.targets = vec![booking_service_target(&url, Some(&Secret::new(BOOKING_TOKEN))).unwrap()];
    })
    .await;
    (app, service)
}

/// A client that does not follow redirects: the tests look at each 303.
fn browser() -> reqwest::Client {
    payhook::net::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post_json(app: &TestApp, path: &str, body: &Value, token: Option<&str>) -> Answer {
    let mut request = app.client.post(format!("{}{path}", app.base)).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Answer::read(request.send().await.unwrap()).await
}

async fn new_session(app: &TestApp, body: Value) -> String {
    let answer = post_json(app, "/api/v1/checkout/sessions", &body, Some(SERVICE_TOKEN)).await;
    assert_eq!(answer.status, 201, "{}", answer.json);
    let id = answer.json["session_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("cs_test_"), "{id}");
    assert!(answer.json["expires_at"].is_string());
    let url = answer.json["checkout_url"].as_str().unwrap();
    assert!(url.ends_with(&format!("/sandbox/checkout/{id}")), "{url}");
    id
}

/// Presses a button of the hosted page; returns the redirect's target.
async fn press(app: &TestApp, session: &str, action: &str) -> String {
    let response = browser()
        .post(format!("{}/sandbox/checkout/{session}/{action}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "{action}");
    response.headers()["location"].to_str().unwrap().to_string()
}

async fn session_state(app: &TestApp, id: &str) -> Value {
    let answer = app.checkout_session(id).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    answer.json
}

fn booking_status(service: &BookingService, id: &str) -> String {
    service.booking(id).map(|b| b.status).unwrap_or_default()
}

#[tokio::test]
async fn pay_on_the_hosted_page_confirms_the_payment_and_the_booking() {
    let (app, service) = sandbox_app().await;
    service.create("booking-pay", Some(12000), Some("eur"), "pending");
    let id = new_session(
        &app,
        json!({"booking_id": "booking-pay", "amount": 12000, "currency": "EUR",
               "description": "Sea-view room, 2 nights", "customer_email": "ana@example.com",
               "success_url": "http://shop.test/done?session={CHECKOUT_SESSION_ID}",
               "cancel_url": "http://shop.test/cart"}),
    )
    .await;

    // Before anything happened: the session payhook created answers, open and unpaid.
    let before = session_state(&app, &id).await;
    assert_eq!(before["status"], "open");
    assert_eq!(before["payment_status"], "unpaid");
    assert_eq!(before["booking_id"], "booking-pay");
    assert_eq!(before["amount_formatted"], "120.00 EUR");

    let page = app
        .client
        .get(format!("{}/sandbox/checkout/{id}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for shown in [
        "120.00 EUR",
        "Sea-view room, 2 nights",
        "booking-pay",
        "Pay",
        "Decline",
        "Cancel",
    ] {
        assert!(html.contains(shown), "the page shows {shown}");
    }

    let to = press(&app, &id, "pay").await;
    assert_eq!(to, format!("http://shop.test/done?session={id}"));
    // The webhook settles it (before, the sandbox's own record may already say paid).
    eventually(
        Duration::from_secs(10),
        "the session paid, by the webhook",
        || async {
            let s = session_state(&app, &id).await;
            s["payment_status"] == "paid" && s["verified_by"] == "webhook"
        },
    )
    .await;
    let after = session_state(&app, &id).await;
    assert_eq!(after["status"], "complete");
    assert_eq!(after["verified_by"], "webhook");
    assert!(after["paid_at"].is_string());
    eventually(Duration::from_secs(10), "the booking confirmed", || async {
        booking_status(&service, "booking-pay") == "confirmed"
    })
    .await;

    // A second click (a reload, a double submit) pays nothing twice.
    assert_eq!(press(&app, &id, "pay").await, to);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.rows("payments").await, 1);
    assert_eq!(
        app.rows("webhook_events").await,
        2,
        "payment_intent.succeeded and checkout.session.completed, once each"
    );
    let history = service.booking("booking-pay").unwrap().history;
    assert_eq!(history.len(), 1, "{history:?}");
}

#[tokio::test]
async fn decline_shows_failed_and_leaves_the_booking_pending_then_a_retry_pays() {
    let (app, service) = sandbox_app().await;
    service.create("booking-decline", Some(5000), Some("eur"), "pending");
    let id = new_session(
        &app,
        json!({"booking_id": "booking-decline", "amount": 5000, "currency": "eur"}),
    )
    .await;

    let to = press(&app, &id, "decline").await;
    assert!(
        to.ends_with(&format!("/checkout/return?session_id={id}")),
        "{to}"
    );
    eventually(
        Duration::from_secs(10),
        "the session reads failed",
        || async { session_state(&app, &id).await["payment_status"] == "failed" },
    )
    .await;
    assert_eq!(
        session_state(&app, &id).await["status"],
        "open",
        "the customer may try again"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(booking_status(&service, "booking-decline"), "pending");

    press(&app, &id, "pay").await;
    eventually(
        Duration::from_secs(10),
        "the booking confirmed after the retry",
        || async { booking_status(&service, "booking-decline") == "confirmed" },
    )
    .await;
    assert_eq!(session_state(&app, &id).await["payment_status"], "paid");
}

/// A return page that loads after the customer paid, but before the payment's webhook is
/// applied, finds the session paid by the provider's word, not stuck on the decline before it.
#[tokio::test]
async fn after_a_decline_a_payment_reads_paid_before_its_webhook_is_applied() {
    let (app, service) = sandbox_app().await;
    service.create("booking-ahead", Some(5000), Some("eur"), "pending");
    let id = new_session(
        &app,
        json!({"booking_id": "booking-ahead", "amount": 5000, "currency": "eur"}),
    )
    .await;
    press(&app, &id, "decline").await;
    eventually(
        Duration::from_secs(10),
        "the session reads failed",
        || async { session_state(&app, &id).await["payment_status"] == "failed" },
    )
    .await;

    // The ledger cannot apply the payment yet (its facts refused): the webhook is stored, and
    // the sandbox's own record says paid.
    app.break_writes("payment_facts", true).await;
    press(&app, &id, "pay").await;
    let ahead = session_state(&app, &id).await;
    assert_eq!(ahead["payment_status"], "paid", "{ahead}");
    assert_eq!(ahead["verified_by"], "provider");
    assert_eq!(ahead["status"], "complete");
    assert!(ahead.get("checkout_url").is_none(), "nothing left to pay");

    app.break_writes("payment_facts", false).await;
    eventually(
        Duration::from_secs(20),
        "the payment applied from its webhook",
        || async { session_state(&app, &id).await["verified_by"] == "webhook" },
    )
    .await;
    assert_eq!(session_state(&app, &id).await["payment_status"], "paid");
}

/// The sandbox honours `Idempotency-Key` as Stripe does (docs.stripe.com/api/idempotent_requests):
/// a retried creation answers the session (or intent) the first created, the same key with
/// other parameters is refused, and a request without a key is always new.
#[tokio::test]
async fn a_retried_creation_with_its_idempotency_key_answers_the_first_session() {
    let (app, _service) = sandbox_app().await;
    let create = |key: Option<&'static str>, amount: i64| {
        let mut request = app
            .client
            .post(format!("{}/api/v1/checkout/sessions", app.base))
            .bearer_auth(SERVICE_TOKEN)
            .json(&json!({"booking_id": "booking-idem", "amount": amount, "currency": "EUR"}));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        async move { Answer::read(request.send().await.unwrap()).await }
    };
    let first = create(Some("order-77-pay"), 1200).await;
    let again = create(Some("order-77-pay"), 1200).await;
    assert_eq!((first.status, again.status), (201, 201), "{}", again.json);
    assert_eq!(first.json["session_id"], again.json["session_id"]);
    assert_eq!(first.json["checkout_url"], again.json["checkout_url"]);
    // The id is the capability to pay: whoever knows the key cannot work it out from the key.
    let guessable = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest("payhook sandbox session\norder-77-pay");
        format!("cs_test_{}", &hex::encode(digest)[..24])
    };
    assert_ne!(first.json["session_id"], guessable.as_str());
    let other = create(Some("order-77-pay"), 9999).await;
    assert_eq!(
        (other.status, other.code()),
        (422, "idempotency_key_reused"),
        "{}",
        other.json
    );
    let unkeyed = [create(None, 1200).await, create(None, 1200).await];
    assert_ne!(unkeyed[0].json["session_id"], unkeyed[1].json["session_id"]);
    assert_ne!(unkeyed[0].json["session_id"], first.json["session_id"]);
    assert_eq!(app.rows("checkout_sessions").await, 3);

    let intent = |amount: i64| {
        let request = app
            .client
            .post(format!("{}/api/v1/payment-intents", app.base))
            .bearer_auth(SERVICE_TOKEN)
            .header("Idempotency-Key", "order-77-intent")
            .json(&json!({"booking_id": "booking-idem", "amount": amount, "currency": "EUR"}));
        async move { Answer::read(request.send().await.unwrap()).await }
    };
    let (one, two) = (intent(1200).await, intent(1200).await);
    assert_eq!((one.status, two.status), (201, 201), "{}", two.json);
    assert_eq!(one.json, two.json, "the same intent and client secret");
    assert_eq!(intent(1300).await.status, 422);
}

#[tokio::test]
async fn cancel_returns_to_the_cancel_url_and_sends_nothing() {
    let (app, _service) = sandbox_app().await;
    let id = new_session(
        &app,
        json!({"booking_id": "booking-cancel", "amount": 900, "currency": "usd"}),
    )
    .await;
    let to = press(&app, &id, "cancel").await;
    assert!(
        to.ends_with(&format!("/checkout/return?session_id={id}&canceled=1")),
        "{to}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.count().await, 0, "no event for a canceled checkout");
    assert_eq!(session_state(&app, &id).await["status"], "open");
}

/// A success page polls the booking's status at once: before any webhook, a booking whose
/// session payhook created is `pending`, with the amount asked for; an unknown one is `404`.
#[tokio::test]
async fn the_booking_status_is_pending_from_the_moment_its_session_is_created() {
    let (app, _service) = sandbox_app().await;
    let unknown = app
        .get("/api/v1/payments/booking-early/status", Some(SERVICE_TOKEN))
        .await;
    assert_eq!((unknown.status, unknown.code()), (404, "payment_not_found"));
    let id = new_session(
        &app,
        json!({"booking_id": "booking-early", "amount": 1250, "currency": "EUR"}),
    )
    .await;
    let early = app
        .get("/api/v1/payments/booking-early/status", Some(SERVICE_TOKEN))
        .await;
    assert_eq!(early.status, 200, "{}", early.json);
    let data = &early.json["data"];
    assert_eq!(
        (
            &data["status"],
            &data["amount"],
            &data["currency"],
            &data["paidAt"]
        ),
        (&json!("pending"), &json!(1250), &json!("eur"), &Value::Null)
    );
    assert_eq!(data["checkoutSessionId"], id.as_str());
}

/// A page of another site cannot press the sandbox's buttons (cross-site request forgery); the
/// page's own form, with its own origin, can.
#[tokio::test]
async fn another_sites_form_cannot_pay_a_sandbox_session() {
    let (app, _service) = sandbox_app().await;
    let id = new_session(
        &app,
        json!({"booking_id": "booking-csrf", "amount": 900, "currency": "eur"}),
    )
    .await;
    let pay = |headers: Vec<(&'static str, String)>| {
        let mut request = browser().post(format!("{}/sandbox/checkout/{id}/pay", app.base));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let evil = vec![("origin", "https://evil.example".to_string())];
    assert_eq!(pay(evil).await, 403);
    assert_eq!(
        pay(vec![("sec-fetch-site", "cross-site".into())]).await,
        403
    );
    assert_eq!(app.count().await, 0, "nothing was paid");
    let own = vec![
        ("origin", app.base.clone()),
        ("sec-fetch-site", "same-origin".into()),
    ];
    assert_eq!(pay(own).await, 303);
}

#[tokio::test]
async fn an_unpaid_session_past_its_expiry_expires_and_cancels_the_pending_booking() {
    let (app, service) = sandbox_app().await;
    service.create("booking-expire", Some(700), Some("eur"), "pending");
    let id = new_session(
        &app,
        json!({"booking_id": "booking-expire", "amount": 700, "currency": "eur", "expires_in": 1}),
    )
    .await;
    eventually(Duration::from_secs(10), "the session expired", || async {
        session_state(&app, &id).await["status"] == "expired"
    })
    .await;
    eventually(Duration::from_secs(10), "the booking cancelled", || async {
        booking_status(&service, "booking-expire") == "cancelled"
    })
    .await;
    // The hosted page no longer takes a payment.
    let response = browser()
        .post(format!("{}/sandbox/checkout/{id}/pay", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert!(response.text().await.unwrap().contains("expired"));
}

#[tokio::test]
async fn each_bad_field_is_named_and_nothing_is_created() {
    let (app, _service) = sandbox_app().await;
    let valid = json!({"booking_id": "b-1", "amount": 2000, "currency": "eur"});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    for (body, field, says) in [
        (without("booking_id"), "booking_id", "required"),
        (with("booking_id", json!("")), "booking_id", "empty"),
        (with("booking_id", json!(12)), "booking_id", "string"),
        (without("amount"), "amount", "required"),
        (with("amount", json!(20.5)), "amount", "integer"),
        (with("amount", json!("2000")), "amount", "not a number"),
        (with("amount", json!(0)), "amount", "out of range"),
        (with("amount", json!(-5)), "amount", "out of range"),
        (without("currency"), "currency", "required"),
        (with("currency", json!("euro")), "currency", "at most 3"),
        (with("currency", json!("e1r")), "currency", "ISO 4217"),
        (
            with("currency", json!("xyz")),
            "currency",
            "not an ISO 4217",
        ),
        (with("booking_id", json!("..")), "booking_id", "URL path"),
        (
            with("currency", json!("QQQ")),
            "currency",
            "not an ISO 4217",
        ),
        (
            with("customer_email", json!("not-an-email")),
            "customer_email",
            "email",
        ),
        (
            with("success_url", json!("/relative")),
            "success_url",
            "absolute",
        ),
        (
            with("cancel_url", json!("ftp://x.test/")),
            "cancel_url",
            "absolute",
        ),
        (with("expires_in", json!(0)), "expires_in", "seconds"),
        (with("amout", json!(1)), "amout", "not a known field"),
        // Stripe's rules per currency: its minimum charge, and three-decimal amounts ending in 0.
        (
            with("amount", json!(49)),
            "amount",
            "minimum charge in eur: 50 (0.50 EUR)",
        ),
        (
            json!({"booking_id": "b-1", "amount": 30, "currency": "JPY"}),
            "amount",
            "50 (50 JPY)",
        ),
        (
            json!({"booking_id": "b-1", "amount": 1005, "currency": "kwd"}),
            "amount",
            "must end in 0",
        ),
    ] {
        let answer = post_json(
            &app,
            "/api/v1/checkout/sessions",
            &body,
            Some(SERVICE_TOKEN),
        )
        .await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.json);
        assert_eq!(answer.code(), "validation_error", "{body}");
        assert_eq!(answer.json["error"]["field"], field, "{body}");
        let message = answer.json["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}: ")) && message.contains(says),
            "{body}: {message}"
        );
    }
    for raw in ["not json", "[1,2]"] {
        let answer = app.post("/api/v1/checkout/sessions", raw, None).await;
        assert_eq!(answer.status, 401, "the token is checked first");
        let answer = Answer::read(
            app.client
                .post(format!("{}/api/v1/checkout/sessions", app.base))
                .bearer_auth(SERVICE_TOKEN)
                .body(raw)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "malformed_request"),
            "{raw}"
        );
    }
    let intent = post_json(
        &app,
        "/api/v1/payment-intents",
        &with("amount", json!(1.5)),
        Some(SERVICE_TOKEN),
    )
    .await;
    assert_eq!((intent.status, intent.code()), (400, "validation_error"));
    assert_eq!(app.rows("checkout_sessions").await, 0);
    assert_eq!(app.rows("sandbox_intents").await, 0);
}

/// A body is read as JSON whatever its Content-Type says (`curl -d` sends a form type). Of several
/// bad fields the first in the request type's order is named, then a field it does not know; a
/// null is an absent field.
#[tokio::test]
async fn a_body_is_refused_at_its_first_bad_field_in_the_request_types_order() {
    let (app, _service) = sandbox_app().await;
    for (path, body, field, message) in [
        (
            "/api/v1/checkout/sessions",
            json!({"currency": "x", "amount": 0}),
            "booking_id",
            "booking_id: is required",
        ),
        (
            "/api/v1/checkout/sessions",
            json!({"expires_in": 0, "currency": "euro", "booking_id": "b-1", "amount": 100}),
            "currency",
            "currency: at most 3 characters",
        ),
        (
            "/api/v1/checkout/sessions",
            json!({"colour": "blue", "booking_id": "b-1", "amount": 1.5, "currency": "eur"}),
            "amount",
            "amount: 1.5 is not an integer: amounts are an integer number of minor units, e.g. \
             2000 for EUR 20.00",
        ),
        (
            "/api/v1/checkout/sessions",
            json!({"colour": null, "booking_id": "b-1", "amount": 100, "currency": "eur"}),
            "colour",
            "colour: is not a known field",
        ),
        (
            "/api/v1/payment-intents",
            json!({"booking_id": "b-1", "amount": 100, "currency": "eur", "description": "d"}),
            "description",
            "description: is not a known field",
        ),
    ] {
        let answer = post_json(&app, path, &body, Some(SERVICE_TOKEN)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "validation_error"),
            "{body}"
        );
        assert_eq!(answer.json["error"]["field"], field, "{body}");
        assert_eq!(answer.json["error"]["message"], message, "{body}");
    }
    let body = json!({"booking_id": "b-null", "amount": 100, "currency": "EUR",
                      "description": null, "customer_email": null, "expires_in": null});
    for content_type in ["application/json", "application/x-www-form-urlencoded"] {
        let answer = Answer::read(
            app.client
                .post(format!("{}/api/v1/checkout/sessions", app.base))
                .bearer_auth(SERVICE_TOKEN)
                .header("content-type", content_type)
                .body(body.to_string())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, 201, "{content_type}: {}", answer.json);
    }
}

#[tokio::test]
async fn the_service_routes_need_the_token_when_one_is_set_and_are_open_without() {
    let (app, _service) = sandbox_app().await;
    let body = json!({"booking_id": "b-2", "amount": 2000, "currency": "eur"});
    for path in ["/api/v1/checkout/sessions", "/api/v1/payment-intents"] {
        let none = post_json(&app, path, &body, None).await;
        assert_eq!((none.status, none.code()), (401, "unauthorized"), "{path}");
        let wrong = post_json(&app, path, &body, Some("nope")).await;
        assert_eq!(wrong.status, 401, "{path}");
        let right = post_json(&app, path, &body, Some(SERVICE_TOKEN)).await;
        assert_eq!(right.status, 201, "{path}: {}", right.json);
    }
    let intent = post_json(&app, "/api/v1/payment-intents", &body, Some(SERVICE_TOKEN)).await;
    let id = intent.json["payment_intent_id"].as_str().unwrap();
    assert!(id.starts_with("pi_"));
    assert!(
        intent.json["client_secret"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{id}_secret_"))
    );
    let read = app
        .get(
            &format!("/api/v1/payment-intents/{id}"),
            Some(SERVICE_TOKEN),
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.json);
    assert_eq!(read.json["status"], "pending");
    assert_eq!(read.json["amount"], 2000);
    assert_eq!(read.json["verified_by"], "provider");

    let open = spawn_app_with(|s| s.internal_service_token = None).await;
    let answer = post_json(&open, "/api/v1/checkout/sessions", &body, None).await;
    assert_eq!(
        answer.status, 201,
        "embedded defaults: no token, open routes"
    );
}

#[tokio::test]
async fn the_hosted_page_escapes_what_the_caller_wrote_and_unknown_sessions_are_404() {
    let (app, _service) = sandbox_app().await;
    let id = new_session(
        &app,
        json!({"booking_id": "b-<i>", "amount": 100, "currency": "eur",
               "description": "<script>alert(1)</script> & \"quotes\""}),
    )
    .await;
    let html = app
        .text(&format!("{}/sandbox/checkout/{id}", app.base))
        .await;
    assert!(!html.contains("<script>alert"), "escaped");
    // Named or numeric entities, as long as the text comes back as it was written.
    let named = html
        .replace("&#60;", "&lt;")
        .replace("&#62;", "&gt;")
        .replace("&#38;", "&amp;")
        .replace("&#34;", "&quot;");
    assert!(named.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"));
    assert!(named.contains("b-&lt;i&gt;"));

    let missing = app
        .client
        .get(format!("{}/sandbox/checkout/cs_test_nope", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let action = browser()
        .post(format!("{}/sandbox/checkout/{id}/steal", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(action.status(), 404);
    assert_eq!(app.checkout_session("cs_test_nope").await.status, 404);
}

#[tokio::test]
async fn the_return_page_is_served_and_reads_its_state_from_payhook() {
    let (app, _service) = sandbox_app().await;
    let page = app
        .client
        .get(format!("{}/checkout/return?session_id=cs_test_x", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    // Only its own script runs (by digest), it polls its own origin, and its address (which
    // holds the session id) is not sent on as a referrer.
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(policy.contains("script-src 'sha256-"), "{policy}");
    assert!(policy.contains("connect-src 'self'") && policy.contains("default-src 'none'"));
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/api/v1/checkout/sessions/"),
        "it polls the session route"
    );
    assert!(html.contains("Verifying"));
}

/// Beside a real webhook secret and no API key, the sandbox is off: its public Pay button would
/// sign events with that secret, letting anyone mark a booking paid. Checkout says why it cannot.
#[tokio::test]
async fn beside_a_real_webhook_secret_the_sandbox_is_off_unless_asked_for() {
    let app = spawn_app_with(|s| s.stripe.sandbox = false).await;
    let body = json!({"booking_id": "booking-off", "amount": 2000, "currency": "eur"});
    for path in ["/api/v1/checkout/sessions", "/api/v1/payment-intents"] {
        let answer = post_json(&app, path, &body, Some(SERVICE_TOKEN)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (503, "provider_not_configured"),
            "{path}"
        );
        let hint = answer.json["error"]["hint"].as_str().unwrap();
        assert!(hint.contains("STRIPE_SECRET_KEY"), "{hint}");
    }
    let page = app
        .client
        .get(format!("{}/sandbox/checkout/cs_test_anything", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    assert_eq!(app.count().await, 0, "nothing was signed and stored");
}
