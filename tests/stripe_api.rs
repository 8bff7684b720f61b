//! payhook's Stripe API client, seen from Stripe's side: a real HTTP server on loopback answers as
//! Stripe's API does and records what payhook sent (the form, the key, the idempotency key). The
//! full flow against a real emulator is `tests/oracles/test_localstripe.py`.

mod common;

use std::time::Duration;

use common::receiver::*;
use common::*;
use payhook::domain::Secret;
use serde_json::{Value, json};

const KEY: &str = "sk_test_payhook_stripe_api";

async fn stripe_app(api_base: &str) -> TestApp {
    let base = api_base.to_string();
    spawn_app_with(move |s| {
        s.stripe.secret_key = Some(Secret::new(KEY));
        s.stripe.api_base = base;
    })
    .await
}

async fn post(app: &TestApp, path: &str, body: Value, idempotency_key: Option<&str>) -> Answer {
    let mut request = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(SERVICE_TOKEN)
        .json(&body);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    Answer::read(request.send().await.unwrap()).await
}

/// The form fields of a recorded request.
fn form(r: &Recorded) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{}", r.body))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {form:?}"))
}

#[tokio::test]
async fn a_checkout_session_is_created_with_stripes_form_key_and_idempotency_key() {
    let stripe = Receiver::start(|_, _| {
        Reply::json(
            200,
            json!({"id": "cs_test_stripe1", "object": "checkout.session",
                   "url": "https://checkout.stripe.com/c/pay/cs_test_stripe1",
                   "status": "open", "payment_status": "unpaid", "payment_intent": null,
                   "created": 1_900_000_000, "expires_at": 1_900_086_400}),
        )
    })
    .await;
    let app = stripe_app(&stripe.url).await;
    let asked = json!({"booking_id": "booking-7", "amount": 4500, "currency": "EUR",
               "description": "Room 7", "customer_email": "ana@example.com",
               "success_url": "https://shop.test/ok?s={CHECKOUT_SESSION_ID}",
               "cancel_url": "https://shop.test/cart"});
    let answer = post(
        &app,
        "/api/v1/checkout/sessions",
        asked.clone(),
        Some("idem-session-7"),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.json);
    assert_eq!(answer.json["session_id"], "cs_test_stripe1");
    assert_eq!(
        answer.json["checkout_url"],
        "https://checkout.stripe.com/c/pay/cs_test_stripe1"
    );

    let sent = stripe.requests();
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/checkout/sessions")
    );
    assert_eq!(r.header("authorization"), format!("Bearer {KEY}"));
    assert_eq!(r.header("idempotency-key"), "idem-session-7");
    assert_eq!(
        r.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let f = form(r);
    for (name, want) in [
        ("mode", "payment"),
        ("line_items[0][quantity]", "1"),
        ("line_items[0][price_data][currency]", "eur"),
        ("line_items[0][price_data][unit_amount]", "4500"),
        ("line_items[0][price_data][product_data][name]", "Room 7"),
        (
            "success_url",
            "https://shop.test/ok?s={CHECKOUT_SESSION_ID}",
        ),
        ("cancel_url", "https://shop.test/cart"),
        ("client_reference_id", "booking-7"),
        ("metadata[booking_id]", "booking-7"),
        ("payment_intent_data[metadata][bookingId]", "booking-7"),
        ("customer_email", "ana@example.com"),
    ] {
        assert_eq!(field(&f, name), want, "{name}");
    }
    assert!(field(&f, "expires_at").parse::<i64>().is_ok());

    // Right after creation the session answers from what payhook kept; Stripe is not asked.
    let session = app.checkout_session("cs_test_stripe1").await;
    assert_eq!(session.status, 200, "{}", session.json);
    assert_eq!(session.json["status"], "open");
    assert_eq!(session.json["booking_id"], "booking-7");
    assert_eq!(session.json["amount"], 4500);
    assert_eq!(stripe.requests().len(), 1);

    // Without the caller's key, payhook makes one up: retries of one call share it.
    post(
        &app,
        "/api/v1/payment-intents",
        json!({"booking_id": "booking-7", "amount": 4500, "currency": "eur"}),
        None,
    )
    .await;
    let sent = stripe.requests();
    assert_eq!(sent[1].path, "/v1/payment_intents");
    assert!(sent[1].header("idempotency-key").len() >= 16);
    assert_eq!(field(&form(&sent[1]), "metadata[bookingId]"), "booking-7");

    // The caller retries with its key: Stripe answers the session it created, which payhook
    // already keeps; the caller gets it again.
    let again = post(
        &app,
        "/api/v1/checkout/sessions",
        asked.clone(),
        Some("idem-session-7"),
    )
    .await;
    assert_eq!(again.status, 201, "{}", again.json);
    assert_eq!(again.json["session_id"], "cs_test_stripe1");
    assert_eq!(
        stripe.requests()[2].header("idempotency-key"),
        "idem-session-7"
    );
}

/// docs.stripe.com/api/idempotent_requests: a key reused with other parameters is refused
/// (`idempotency_error`); the caller hears it as its own mistake, not as Stripe being down.
#[tokio::test]
async fn a_key_stripe_refuses_as_reused_is_the_callers_to_change() {
    let stripe = Receiver::start(|_, _| {
        Reply::json(
            400,
            json!({"error": {"type": "idempotency_error",
                   "message": "Keys for idempotent requests can only be used with the same parameters they were first used with."}}),
        )
    })
    .await;
    let app = stripe_app(&stripe.url).await;
    let answer = post(
        &app,
        "/api/v1/checkout/sessions",
        json!({"booking_id": "booking-8", "amount": 4500, "currency": "EUR"}),
        Some("idem-reused"),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (422, "idempotency_key_reused"),
        "{}",
        answer.json
    );
    let long = "k".repeat(256);
    let answer = post(
        &app,
        "/api/v1/checkout/sessions",
        json!({"booking_id": "booking-8", "amount": 4500, "currency": "EUR"}),
        Some(&long),
    )
    .await;
    assert_eq!((answer.status, answer.code()), (400, "validation_error"));
    assert_eq!(answer.json["error"]["field"], "Idempotency-Key");
    assert_eq!(stripe.requests().len(), 1, "a refused key is not sent");
}

#[tokio::test]
async fn stripes_refusals_are_named_and_the_key_never_shows() {
    let stripe = Receiver::start(|n, _| match n {
        0 => Reply::json(
            400,
            json!({"error": {"type": "invalid_request_error", "param": "currency",
                             "message": "Invalid currency: kpw."}}),
        ),
        1 => Reply::json(
            400,
            json!({"error": {"type": "invalid_request_error", "param": "payment_method_types",
                             "message": "The payment method type \"card\" is invalid."}}),
        ),
        _ => Reply::json(
            401,
            json!({"error": {"type": "invalid_request_error",
                             "message": format!("Invalid API Key provided: {KEY}")}}),
        ),
    })
    .await;
    let app = stripe_app(&stripe.url).await;
    // A currency the provider does not take is the caller's to fix: 400, the field named.
    let body = json!({"booking_id": "b", "amount": 100, "currency": "kpw"});
    let refused = post(&app, "/api/v1/payment-intents", body.clone(), None).await;
    assert_eq!((refused.status, refused.code()), (400, "validation_error"));
    assert_eq!(refused.json["error"]["field"], "currency");
    assert!(
        refused.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid currency: kpw.")
    );
    // What payhook itself sent and the provider refused is the provider's answer: 502.
    let refused = post(&app, "/api/v1/payment-intents", body.clone(), None).await;
    assert_eq!((refused.status, refused.code()), (502, "provider_refused"));
    assert_eq!(refused.json["error"]["field"], "payment_method_types");

    let unauthorized = post(&app, "/api/v1/payment-intents", body.clone(), None).await;
    assert_eq!(
        (unauthorized.status, unauthorized.code()),
        (502, "provider_unauthorized")
    );
    assert!(
        !unauthorized.json.to_string().contains(KEY),
        "{}",
        unauthorized.json
    );

    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = stripe_app(&nowhere).await;
    let unreachable = post(&app, "/api/v1/checkout/sessions", body, None).await;
    assert_eq!(
        (unreachable.status, unreachable.code()),
        (502, "provider_unavailable")
    );
    assert!(unreachable.retry_after.is_some());
}

/// Stripe takes a session's expires_at 30 minutes to 24 hours ahead; payhook sends the caller's
/// expires_in as it, so a refusal names expires_in, the caller's field.
#[tokio::test]
async fn an_expiry_stripe_refuses_names_the_callers_expires_in() {
    let stripe = Receiver::start(|_, _| {
        Reply::json(
            400,
            json!({"error": {"type": "invalid_request_error", "param": "expires_at",
                   "message": "The `expires_at` timestamp must be at least 30 minutes from session creation."}}),
        )
    })
    .await;
    let app = stripe_app(&stripe.url).await;
    let refused = post(
        &app,
        "/api/v1/checkout/sessions",
        json!({"booking_id": "b", "amount": 100, "currency": "eur", "expires_in": 60}),
        None,
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (400, "validation_error"),
        "{}",
        refused.json
    );
    assert_eq!(refused.json["error"]["field"], "expires_in");
}

#[tokio::test]
async fn a_session_the_ledger_does_not_know_is_asked_of_stripe_and_the_answer_reused() {
    let stripe = Receiver::start(|_, r| {
        if r.path.ends_with("cs_test_elsewhere") {
            Reply::json(
                200,
                json!({"id": "cs_test_elsewhere", "status": "complete", "payment_status": "paid",
                       "payment_intent": "pi_elsewhere"}),
            )
        } else {
            Reply::json(
                404,
                json!({"error": {"message": "No such checkout.session"}}),
            )
        }
    })
    .await;
    let app = stripe_app(&stripe.url).await;
    let session = app.checkout_session("cs_test_elsewhere").await;
    assert_eq!(session.status, 200, "{}", session.json);
    assert_eq!(session.json["status"], "complete");
    assert_eq!(session.json["payment_status"], "paid");
    assert_eq!(session.json["verified_by"], "provider");
    let asked = stripe.requests();
    assert_eq!(asked[0].path, "/v1/checkout/sessions/cs_test_elsewhere");
    assert_eq!(asked[0].header("authorization"), format!("Bearer {KEY}"));

    // A polling page does not poll Stripe: the answer is reused for a few seconds.
    app.checkout_session("cs_test_elsewhere").await;
    assert_eq!(stripe.requests().len(), 1);

    let unknown = app.checkout_session("cs_test_nobody").await;
    assert_eq!((unknown.status, unknown.code()), (404, "session_not_found"));
    // The route is public: an id that cannot be a Checkout Session's spends none of the
    // account's API calls.
    let asked = stripe.requests().len();
    for id in ["pi_123", "nope", "cs_test_a%2Fb"] {
        let answer = app.checkout_session(id).await;
        assert_eq!(
            (answer.status, answer.code()),
            (404, "session_not_found"),
            "{id}"
        );
    }
    assert_eq!(stripe.requests().len(), asked, "Stripe was not asked");
}

#[tokio::test]
async fn a_session_still_open_in_the_ledger_after_a_while_is_refreshed_from_stripe() {
    let stripe = Receiver::start(|n, _| match n {
        // Created...
        0 => Reply::json(
            200,
            json!({"id": "cs_test_late", "url": "https://checkout.stripe.com/c/pay/cs_test_late",
                   "status": "open", "payment_status": "unpaid"}),
        ),
        // ...then paid at Stripe, its webhook not here yet.
        _ => Reply::json(
            200,
            json!({"id": "cs_test_late", "status": "complete", "payment_status": "paid"}),
        ),
    })
    .await;
    // Two seconds rather than the default five: the session's time is kept in whole seconds.
    let base = stripe.url.clone();
    let app = spawn_app_with(move |s| {
        s.stripe.secret_key = Some(Secret::new(KEY));
        s.stripe.api_base = base;
        s.stripe.ask_provider_after = Duration::from_secs(2);
    })
    .await;
    let created = post(
        &app,
        "/api/v1/checkout/sessions",
        json!({"booking_id": "booking-late", "amount": 100, "currency": "eur"}),
        None,
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.json);
    assert_eq!(
        app.checkout_session("cs_test_late").await.json["status"],
        "open"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let refreshed = app.checkout_session("cs_test_late").await;
    assert_eq!(refreshed.json["status"], "complete", "{}", refreshed.json);
    assert_eq!(refreshed.json["payment_status"], "paid");
    assert_eq!(refreshed.json["verified_by"], "provider");
    assert_eq!(
        stripe.requests()[1].path,
        "/v1/checkout/sessions/cs_test_late"
    );
}

#[tokio::test]
async fn a_payment_intent_reads_from_stripe_until_a_webhook_settles_it() {
    let stripe = Receiver::start(|_, r| {
        if r.path == "/v1/payment_intents/pi_read_me" {
            Reply::json(
                200,
                json!({"id": "pi_read_me", "status": "processing", "amount": 3100,
                       "currency": "eur", "metadata": {"bookingId": "booking-read"}}),
            )
        } else {
            Reply::json(404, json!({"error": {"message": "No such payment_intent"}}))
        }
    })
    .await;
    let app = stripe_app(&stripe.url).await;
    let read = |id: &'static str| {
        let app = &app;
        async move {
            app.get(
                &format!("/api/v1/payment-intents/{id}"),
                Some(SERVICE_TOKEN),
            )
            .await
        }
    };
    let before = read("pi_read_me").await;
    assert_eq!(before.status, 200, "{}", before.json);
    assert_eq!(before.json["status"], "processing");
    assert_eq!(before.json["booking_id"], "booking-read");
    assert_eq!(before.json["verified_by"], "provider");
    assert_eq!(read("pi_nobody").await.status, 404);
    assert_eq!(
        app.get("/api/v1/payment-intents/pi_read_me", None)
            .await
            .status,
        401
    );

    let mut ids = PaymentIds::new("booking-read");
    ids.intent = "pi_read_me".into();
    let event = ids.event("payment_intent.succeeded", now(), &[]);
    app.deliver(&event).await;
    app.settled(event["id"].as_str().unwrap()).await;
    let after = read("pi_read_me").await;
    assert_eq!(after.json["status"], "succeeded");
    assert_eq!(after.json["verified_by"], "webhook");
}

/// Stripe's `GET /v1/events` as its API reference describes it, over `events` (newest first,
/// each with whether its delivery succeeded): `delivery_success`, `starting_after` (older) and
/// `ending_before` (newer, the page still newest first), two events a page.
fn list_events(events: &[(Value, bool)], query: &str) -> Reply {
    let q: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x/?{query}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let param = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let listed: Vec<&Value> = events
        .iter()
        .filter(|(_, delivered)| param("delivery_success") != Some("false".into()) || !delivered)
        .map(|(e, _)| e)
        .collect();
    let at = |id: String| listed.iter().position(|e| e["id"] == id.as_str()).unwrap();
    let (page, has_more): (Vec<&Value>, bool) =
        match (param("starting_after"), param("ending_before")) {
            (Some(after), _) => {
                let older = &listed[at(after) + 1..];
                (older.iter().take(2).copied().collect(), older.len() > 2)
            }
            (_, Some(before)) => {
                let newer = &listed[..at(before)];
                (
                    newer[newer.len().saturating_sub(2)..].to_vec(),
                    newer.len() > 2,
                )
            }
            _ => (listed.iter().take(2).copied().collect(), listed.len() > 2),
        };
    Reply::json(
        200,
        json!({"object": "list", "url": "/v1/events", "has_more": has_more, "data": page}),
    )
}

/// Reconciliation: `POST /admin/api/reconcile` asks Stripe only for the events whose delivery
/// failed (`delivery_success=false`) and stores the ones payhook lacks, oldest first (Stripe lists
/// newest first: payhook pages to the oldest, then back with `ending_before`); they are applied
/// like webhooks. An event Stripe delivered is not listed again; a second run stores nothing.
#[tokio::test]
async fn reconcile_stores_the_undelivered_events_oldest_first_and_only_once() {
    let pay = PaymentIds::new("booking-missed");
    let t = now() - 600;
    let succeeded = pay.event("payment_intent.succeeded", t, &[]);
    let delivered = PaymentIds::new("booking-seen").event("payment_intent.succeeded", t + 10, &[]);
    let refunded = pay.event("charge.refunded", t + 60, &[]);
    // Stripe is still retrying this one, which payhook has already.
    let pending = PaymentIds::new("booking-late").event("payment_intent.succeeded", t + 70, &[]);
    let later = PaymentIds::new("booking-missed-2").event("payment_intent.succeeded", t + 80, &[]);
    // Newest first, as Stripe lists them; `true`: delivered.
    let events = vec![
        (later.clone(), false),
        (pending.clone(), false),
        (refunded.clone(), false),
        (delivered.clone(), true),
        (succeeded.clone(), false),
    ];
    let stripe = Receiver::start(move |_, r| list_events(&events, &r.query)).await;
    let app = stripe_app(&stripe.url).await;
    for came in [&delivered, &pending] {
        assert_eq!(app.send(&came.to_string()).await.status, 200);
    }

    let since = t - 60;
    let reconcile = |cursor: Option<String>| {
        let url = match cursor {
            Some(c) => format!("{}/admin/api/reconcile?since={since}&cursor={c}", app.admin),
            None => format!("{}/admin/api/reconcile?since={since}", app.admin),
        };
        let request = app.client.post(url);
        async move { Answer::read(request.send().await.unwrap()).await }
    };
    let id = |e: &Value| e["id"].as_str().unwrap().to_string();
    // The first page is the oldest: the succeeded, then the refund.
    let first = reconcile(None).await;
    assert_eq!(first.status, 200, "{}", first.json);
    assert_eq!(
        (
            &first.json["listed"],
            &first.json["stored"],
            &first.json["duplicates"],
            &first.json["next_cursor"],
        ),
        (
            &json!(2),
            &json!(2),
            &json!(0),
            &json!(format!("newer:{}", id(&refunded)))
        )
    );
    let newer = format!("newer:{}", id(&refunded));
    let second = reconcile(Some(newer.clone())).await;
    assert_eq!(
        (
            &second.json["listed"],
            &second.json["stored"],
            &second.json["duplicates"],
            &second.json["next_cursor"],
        ),
        (&json!(2), &json!(1), &json!(1), &Value::Null)
    );

    // Stripe was asked with the key, for undelivered events from `since`: twice newest first to
    // the end of its list, then the newer page.
    let asked = stripe.requests();
    let query = |r: &Recorded| -> Vec<(String, String)> {
        reqwest::Url::parse(&format!("http://x/?{}", r.query))
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    };
    assert_eq!(asked.len(), 3);
    assert_eq!(asked[0].path, "/v1/events");
    assert_eq!(asked[0].header("authorization"), format!("Bearer {KEY}"));
    for r in &asked {
        assert_eq!(field(&query(r), "created[gte]"), since.to_string());
        assert_eq!(field(&query(r), "delivery_success"), "false");
    }
    assert_eq!(field(&query(&asked[1]), "starting_after"), id(&pending));
    assert_eq!(field(&query(&asked[2]), "ending_before"), id(&refunded));

    // Stored in the order they happened.
    let row = |e: Value| {
        let store = app.payhook.store.clone();
        async move {
            store
                .event("stripe", e["id"].as_str().unwrap())
                .await
                .unwrap()
                .unwrap()
        }
    };
    let (a, b, c) = (
        row(succeeded.clone()).await,
        row(refunded.clone()).await,
        row(later.clone()).await,
    );
    assert!(a.id < b.id && b.id < c.id, "{} {} {}", a.id, b.id, c.id);
    assert!(a.headers.contains("reconcile"), "{}", a.headers);

    // The missed events are applied: the booking's payment is refunded.
    booking_reaches(&app, "booking-missed", "refunded").await;

    // Again: Stripe still counts them undelivered (payhook fetched them, nobody posted them), so
    // they are listed again, and all are duplicates.
    let again = reconcile(None).await;
    let again_newer = reconcile(Some(newer)).await;
    assert_eq!(
        (
            again.json["stored"].as_u64(),
            again.json["duplicates"].as_u64(),
            again_newer.json["stored"].as_u64(),
            again_newer.json["duplicates"].as_u64(),
        ),
        (Some(0), Some(2), Some(0), Some(2))
    );
    assert_eq!(app.count().await, 5);

    // `all=true` lists the delivered one too; a bad flag is named.
    let all = Answer::read(
        app.client
            .post(format!(
                "{}/admin/api/reconcile?since={since}&all=true",
                app.admin
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(all.status, 200, "{}", all.json);
    let asked = stripe.requests();
    assert!(
        !asked.last().unwrap().query.contains("delivery_success"),
        "{}",
        asked.last().unwrap().query
    );
    for (query, field) in [("all=yes", "all"), ("cursor=evt_1", "cursor")] {
        let bad = Answer::read(
            app.client
                .post(format!(
                    "{}/admin/api/reconcile?since={since}&{query}",
                    app.admin
                ))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (bad.status, bad.json["error"]["field"].as_str()),
            (400, Some(field)),
            "{}",
            bad.json
        );
    }
}

/// A long list is read back to its oldest event over several calls (20 of Stripe's pages each,
/// storing nothing, saying how many it read), so no call outlasts its client; then every event
/// is stored once, oldest first.
#[tokio::test]
async fn a_long_undelivered_list_is_read_back_over_several_calls_then_stored_oldest_first() {
    let t = now() - 3600;
    // 45 undelivered events, newest first: 23 pages of two.
    let events: Vec<(Value, bool)> = (0..45)
        .rev()
        .map(|i| {
            let e = PaymentIds::new(&format!("booking-long-{i}")).event(
                "payment_intent.succeeded",
                t + i,
                &[],
            );
            (e, false)
        })
        .collect();
    let oldest_first: Vec<String> = events
        .iter()
        .rev()
        .map(|(e, _)| e["id"].as_str().unwrap().to_string())
        .collect();
    let stripe = Receiver::start(move |_, r| list_events(&events, &r.query)).await;
    let app = stripe_app(&stripe.url).await;
    let calls: Vec<(u64, u64)> = reconcile_every_page(&app, t - 60)
        .await
        .iter()
        .map(|page| (count(page, "listed"), count(page, "skimmed")))
        .collect();
    // The first call read 19 pages back and stopped; the second reached the oldest (one event).
    assert_eq!(calls[0], (0, 38), "{calls:?}");
    assert_eq!(calls[1], (1, 0), "{calls:?}");
    assert_eq!(calls.iter().map(|(l, _)| l).sum::<u64>(), 45, "{calls:?}");
    let mut rows = Vec::new();
    for id in &oldest_first {
        rows.push(
            app.payhook
                .store
                .event("stripe", id)
                .await
                .unwrap()
                .unwrap()
                .id,
        );
    }
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "{rows:?}");
}

/// An emulator's event list (localstripe's: oldest first, `type`, `created`, `limit` and
/// `starting_after` only, anything else a 400) is read the plain way: every event, page after
/// page, each stored once, then applied.
#[tokio::test]
async fn reconcile_reads_an_event_list_without_stripes_filters_page_after_page() {
    let t = now() - 600;
    // Oldest first, as localstripe keeps them: three pages of two.
    let events: Vec<Value> = (0..5)
        .map(|i| {
            PaymentIds::new(&format!("booking-plain-{i}")).event(
                "payment_intent.succeeded",
                t + i,
                &[],
            )
        })
        .collect();
    let listed = events.clone();
    let stripe = Receiver::start(move |_, r| {
        let q: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x/?{}", r.query))
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let known = ["created[gte]", "limit", "type", "starting_after"];
        if let Some((k, _)) = q.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            return Reply::json(
                400,
                json!({"error": {"message": format!("Unexpected {k}"), "type": "invalid_request_error"}}),
            );
        }
        let from = match q.iter().find(|(k, _)| k == "starting_after") {
            Some((_, after)) => listed.iter().position(|e| e["id"] == after.as_str()).unwrap() + 1,
            None => 0,
        };
        let rest = &listed[from..];
        Reply::json(
            200,
            json!({"object": "list", "url": "/v1/events", "has_more": rest.len() > 2,
                   "data": rest.iter().take(2).collect::<Vec<_>>()}),
        )
    })
    .await;
    let app = stripe_app(&stripe.url).await;
    assert_eq!(app.send(&events[1].to_string()).await.status, 200);

    let pages: Vec<(u64, u64, u64)> = reconcile_every_page(&app, t - 60)
        .await
        .iter()
        .map(|p| {
            (
                count(p, "listed"),
                count(p, "stored"),
                count(p, "duplicates"),
            )
        })
        .collect();
    assert_eq!(pages, vec![(2, 1, 1), (2, 2, 0), (1, 1, 0)]);
    assert_eq!(app.count().await, 5);
    booking_reaches(&app, "booking-plain-4", "succeeded").await;
}

/// `POST /admin/api/reconcile` from `since`, page after page: each page's answer.
async fn reconcile_every_page(app: &TestApp, since: i64) -> Vec<Value> {
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let mut url = format!("{}/admin/api/reconcile?since={since}", app.admin);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = Answer::read(app.client.post(url).send().await.unwrap()).await;
        assert_eq!(page.status, 200, "{}", page.json);
        cursor = page.json["next_cursor"].as_str().map(str::to_string);
        pages.push(page.json);
        if cursor.is_none() {
            return pages;
        }
    }
}

fn count(page: &Value, field: &str) -> u64 {
    page[field].as_u64().unwrap()
}

/// Waits until the booking's status route says `status` (the missed events applied).
async fn booking_reaches(app: &TestApp, booking: &str, status: &str) {
    let path = format!("/api/v1/payments/{booking}/status");
    eventually(
        Duration::from_secs(10),
        "the missed events applied",
        || async {
            let answer = app.get(&path, Some(SERVICE_TOKEN)).await;
            answer.status == 200 && answer.json["data"]["status"] == status
        },
    )
    .await;
}

/// A time before Stripe's 30 days asks for those 30 days: Stripe keeps no older event.
#[tokio::test]
async fn reconcile_asks_no_further_back_than_stripe_keeps_events() {
    let stripe = Receiver::start(|_, r| list_events(&[], &r.query)).await;
    let app = stripe_app(&stripe.url).await;
    let answer = Answer::read(
        app.client
            .post(format!("{}/admin/api/reconcile?since=0", app.admin))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let asked = &stripe.requests()[0];
    let since: i64 = reqwest::Url::parse(&format!("http://x/?{}", asked.query))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "created[gte]")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert!((now() - 30 * 86_400 - since).abs() < 5, "{}", asked.query);
}

/// Without a Stripe key there is no provider API to ask: said plainly.
#[tokio::test]
async fn reconcile_on_the_sandbox_says_it_needs_stripe() {
    let app = spawn_app().await;
    let answer = Answer::read(
        app.client
            .post(format!("{}/admin/api/reconcile?since=0", app.admin))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code()),
        (409, "reconcile_unavailable")
    );
    let answer = Answer::read(
        app.client
            .post(format!("{}/admin/api/reconcile", app.admin))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (answer.status, answer.json["error"]["field"].as_str()),
        (400, Some("since"))
    );
}

/// `serve`'s periodic reconcile (`PAYHOOK_RECONCILE_EVERY`; a short period set directly here)
/// finds a missed event without anyone asking.
#[tokio::test]
async fn the_periodic_reconcile_stores_a_missed_event_by_itself() {
    let missed = PaymentIds::new("booking-periodic").event("payment_intent.succeeded", now(), &[]);
    let stripe = Receiver::start(move |_, _| {
        Reply::json(
            200,
            json!({"object": "list", "has_more": false, "data": [missed]}),
        )
    })
    .await;
    let base = stripe.url.clone();
    let app = spawn_app_with(move |s| {
        s.stripe.secret_key = Some(Secret::new(KEY));
        s.stripe.api_base = base;
        s.stripe.reconcile_every = Some(Duration::from_millis(200));
    })
    .await;
    eventually(
        Duration::from_secs(10),
        "the missed event applied",
        || async {
            let answer = app
                .get(
                    "/api/v1/payments/booking-periodic/status",
                    Some(SERVICE_TOKEN),
                )
                .await;
            answer.status == 200 && answer.json["data"]["status"] == "succeeded"
        },
    )
    .await;
    // It asked for the last 3 days (the default window).
    let asked = &stripe.requests()[0];
    let since: i64 = asked
        .query
        .split("created%5Bgte%5D=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((now() - 3 * 86_400 - since).abs() < 5, "{}", asked.query);
    assert!(
        asked.query.contains("delivery_success=false"),
        "{}",
        asked.query
    );
    app.payhook.shutdown().await.unwrap();
}
