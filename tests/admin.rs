//! The admin API on the admin listener, over HTTP as an operator's tools use it: the token, event
//! listings with filters and cursors, an event's raw body and redacted headers, replays, payments,
//! notifications and their retry, targets. On SQLite or PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::time::Duration;

use common::receiver::*;
use common::*;
use payhook::config::{TargetKind, TargetSettings};
use payhook::domain::Secret;
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "admin-token-for-tests";

async fn admin_app(configure: impl FnOnce(&mut payhook::config::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.admin_token = Some(Secret::new(ADMIN_TOKEN));
        configure(s);
    })
    .await
}

async fn admin(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> Answer {
    let url = format!("{}{path}", app.admin);
    let mut request = match method {
        "POST" => app.client.post(url),
        _ => app.client.get(url),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Answer::read(request.send().await.unwrap()).await
}

async fn get(app: &TestApp, path: &str) -> Value {
    let answer = admin(app, "GET", path, Some(ADMIN_TOKEN)).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.json);
    answer.json
}

/// A Stripe event that names no payment: stored, then `failed` by the processor.
fn unusable(id: &str) -> Value {
    json!({"id": id, "object": "event", "type": "payment_intent.succeeded", "created": now(),
           "data": {"object": {"object": "payment_intent", "amount": 100}}})
}

#[tokio::test]
async fn the_admin_api_needs_the_token_and_health_does_not() {
    let app = admin_app(|_| {}).await;
    for token in [None, Some("wrong"), Some("admin-token-for-test")] {
        let answer = admin(&app, "GET", "/admin/api/events", token).await;
        assert_eq!(
            (answer.status, answer.code()),
            (401, "unauthorized"),
            "{token:?}"
        );
        assert!(!answer.json.to_string().contains(ADMIN_TOKEN));
    }
    assert_eq!(
        admin(&app, "GET", "/admin/api/events", Some(ADMIN_TOKEN))
            .await
            .status,
        200
    );
    assert_eq!(admin(&app, "GET", "/healthz", None).await.status, 200);
    // The scheme's name is case-insensitive (RFC 9110, 11.1); the token is not.
    for (value, status) in [
        (format!("bearer {ADMIN_TOKEN}"), 200),
        (format!("BEARER {ADMIN_TOKEN}"), 200),
        (format!("Basic {ADMIN_TOKEN}"), 401),
        (format!("Bearer {}", ADMIN_TOKEN.to_uppercase()), 401),
    ] {
        let answer = app
            .client
            .get(format!("{}/admin/api/events", app.admin))
            .header("authorization", &value)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{value}");
        if status == 401 {
            // RFC 9110 (11.6.1): a 401 names the scheme it wants.
            let challenge = answer.headers().get("www-authenticate").unwrap();
            assert!(
                challenge.to_str().unwrap().starts_with("Bearer"),
                "{challenge:?}"
            );
        }
    }
    // Without a token (loopback only, checked at start), it is open.
    let open = spawn_app_with(|s| s.admin_token = None).await;
    assert_eq!(
        admin(&open, "GET", "/admin/api/events", None).await.status,
        200
    );
    // ...to curl and to its own dashboard, not to a browser sent by a page elsewhere: another
    // site posting to it, or a DNS name pointed at 127.0.0.1 to read it.
    let port = open.admin.rsplit(':').next().unwrap().to_string();
    for (headers, status) in [
        (vec![("origin", format!("http://127.0.0.1:{port}"))], 200),
        (vec![("host", format!("localhost:{port}"))], 200),
        (vec![("origin", "https://evil.example".to_string())], 403),
        (vec![("host", format!("attacker.example:{port}"))], 403),
        (vec![("sec-fetch-site", "cross-site".to_string())], 403),
    ] {
        let mut request = open.client.post(format!(
            "{}/admin/api/targets/booking-service/disable",
            open.admin
        ));
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let answer = Answer::read(request.send().await.unwrap()).await;
        let refused = answer.status == 403;
        assert_eq!(refused, status == 403, "{headers:?}: {}", answer.json);
        if refused {
            assert_eq!(answer.code(), "not_loopback", "{}", answer.json);
        }
    }
}

#[tokio::test]
async fn events_are_listed_newest_first_filtered_and_paged_and_shown_as_received() {
    let app = admin_app(|_| {}).await;
    let pay = PaymentIds::new("booking-admin");
    let events = [
        pay.event("checkout.session.completed", now() - 10, &[]),
        pay.event("payment_intent.succeeded", now() - 9, &[]),
        pay.event("charge.refunded", now() - 8, &[]),
    ];
    app.deliver_all(&events).await;
    app.deliver(&unusable("evt_admin_bad")).await;
    app.settled("evt_admin_bad").await;

    let first = get(&app, "/admin/api/events?limit=2").await;
    let ids: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["evt_admin_bad", events[2]["id"].as_str().unwrap()]);
    // The booking column: the booking its fact went to, none for an event that names no payment.
    assert_eq!(first["data"][0]["booking_id"], Value::Null);
    assert_eq!(first["data"][1]["booking_id"], "booking-admin");
    let cursor = first["next_cursor"].as_i64().expect("a next page");
    let second = get(&app, &format!("/admin/api/events?limit=2&cursor={cursor}")).await;
    assert_eq!(second["data"].as_array().unwrap().len(), 2);
    assert_eq!(second["data"][1]["event_id"], events[0]["id"]);
    let third = get(
        &app,
        &format!("/admin/api/events?limit=2&cursor={}", second["next_cursor"]),
    )
    .await;
    assert_eq!(
        (
            third["data"].as_array().unwrap().len(),
            &third["next_cursor"]
        ),
        (0, &Value::Null)
    );

    let failed = get(&app, "/admin/api/events?status=failed").await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 1);
    assert!(
        failed["data"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("names no payment")
    );
    let refunds = get(&app, "/admin/api/events?type=charge.refunded&source=stripe").await;
    assert_eq!(refunds["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(&app, "/admin/api/events?source=nobody").await["data"],
        json!([])
    );

    // The detail: the body as received, the headers as stored (the signature redacted).
    let id = refunds["data"][0]["id"].as_i64().unwrap();
    let shown = get(&app, &format!("/admin/api/events/{id}")).await;
    assert_eq!(shown["body"], events[2].to_string());
    assert_eq!(shown["booking_id"], "booking-admin");
    let signature = shown["headers"]["stripe-signature"].as_str().unwrap();
    assert!(
        signature.starts_with("t=") && !signature.contains(&hex_of_v1(&events[2])),
        "{signature}"
    );
    assert!(!shown.to_string().contains(SECRET));

    for (path, field) in [
        ("/admin/api/events?status=lost", "status"),
        ("/admin/api/events?limit=0", "limit"),
        ("/admin/api/events?cursor=abc", "cursor"),
        ("/admin/api/events/a%00b", "id"),
    ] {
        let answer = admin(&app, "GET", path, Some(ADMIN_TOKEN)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "validation_error"),
            "{path}"
        );
        assert_eq!(answer.json["error"]["field"], field, "{path}");
    }
    assert_eq!(
        admin(&app, "GET", "/admin/api/events/999999", Some(ADMIN_TOKEN))
            .await
            .status,
        404
    );
}

/// The `v1=` value the test client signed `event` with, to check it is not kept.
#[tokio::test]
async fn events_are_found_by_time_window_and_by_provider_id_alone() {
    let app = admin_app(|_| {}).await;
    let early = unusable("evt_window_early");
    app.deliver(&early).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let late = unusable("evt_window_late");
    app.deliver(&late).await;
    let rfc = |t: chrono::DateTime<chrono::Utc>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .replace('+', "%2B")
    };
    let ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_string())
            .collect()
    };

    let since = get(&app, &format!("/admin/api/events?since={}", rfc(between))).await;
    assert_eq!(ids(&since), ["evt_window_late"]);
    let until = get(&app, &format!("/admin/api/events?until={}", rfc(between))).await;
    assert_eq!(ids(&until), ["evt_window_early"]);
    let both = get(
        &app,
        &format!(
            "/admin/api/events?since={}&until={}",
            rfc(between - chrono::Duration::hours(1)),
            rfc(between + chrono::Duration::hours(1))
        ),
    )
    .await;
    assert_eq!(ids(&both), ["evt_window_late", "evt_window_early"]);
    let future = get(
        &app,
        &format!(
            "/admin/api/events?since={}",
            rfc(between + chrono::Duration::hours(1))
        ),
    )
    .await;
    assert_eq!(future["data"], json!([]));
    // A time window with the other filters and the cursor.
    let paged = get(
        &app,
        &format!(
            "/admin/api/events?since={}&type=payment_intent.succeeded&limit=1",
            rfc(between - chrono::Duration::hours(1))
        ),
    )
    .await;
    assert_eq!(ids(&paged), ["evt_window_late"]);
    let rest = get(
        &app,
        &format!(
            "/admin/api/events?since={}&type=payment_intent.succeeded&limit=1&cursor={}",
            rfc(between - chrono::Duration::hours(1)),
            paged["next_cursor"]
        ),
    )
    .await;
    assert_eq!(ids(&rest), ["evt_window_early"]);

    // The provider's id alone, with no source: found through the (source, event_id) index.
    let found = get(&app, "/admin/api/events?event_id=evt_window_early").await;
    assert_eq!(ids(&found), ["evt_window_early"]);
    assert_eq!(
        get(&app, "/admin/api/events?event_id=evt_nowhere").await["data"],
        json!([])
    );

    for path in [
        "/admin/api/events?since=yesterday",
        "/admin/api/events?until=2026-13-01T00:00:00Z",
    ] {
        let answer = admin(&app, "GET", path, Some(ADMIN_TOKEN)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "validation_error"),
            "{path}"
        );
        let field = if path.contains("since") {
            "since"
        } else {
            "until"
        };
        assert_eq!(answer.json["error"]["field"], field, "{path}");
    }
}

fn hex_of_v1(event: &Value) -> String {
    let body = event.to_string();
    let header = stripe_signature(body.as_bytes(), SECRET, now());
    header.split("v1=").nth(1).unwrap()[..16].to_string()
}

#[tokio::test]
async fn failed_events_are_replayed_one_by_one_or_all_at_once() {
    // One attempt each: an event the store could not take is left failed at once.
    let app = admin_app(|s| s.processor.max_attempts = 1).await;
    app.break_writes("payments", true).await;
    let pay = PaymentIds::new("booking-replay");
    let event = pay.event("payment_intent.succeeded", now(), &[]);
    app.deliver(&event).await;
    app.deliver(&unusable("evt_replay_bad")).await;
    app.settled(event["id"].as_str().unwrap()).await;
    app.settled("evt_replay_bad").await;
    let failed = get(&app, "/admin/api/events?status=failed").await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 2, "{failed}");

    // The store is fixed; the operator replays the event, and it applies.
    app.break_writes("payments", false).await;
    let id = failed["data"][1]["id"].as_i64().unwrap();
    assert_eq!(failed["data"][1]["event_id"], event["id"]);
    let replayed = admin(
        &app,
        "POST",
        &format!("/admin/api/events/{id}/replay"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(
        (replayed.status, replayed.json["status"].as_str()),
        (202, Some("received"))
    );
    common::receiver::eventually(Duration::from_secs(10), "applied on replay", || async {
        get(&app, &format!("/admin/api/events/{id}")).await["status"] == "processed"
    })
    .await;
    assert_eq!(
        app.payment_status("booking-replay").await["status"],
        "succeeded"
    );

    // All failed ones at once: the one left cannot apply, and fails again.
    let all = admin(
        &app,
        "POST",
        "/admin/api/events/replay?status=failed",
        Some(ADMIN_TOKEN),
    )
    .await;
    // A job, answered at once with how many it selected.
    assert_eq!((all.status, all.json["total"].as_i64()), (202, Some(1)));
    let bad = admin(
        &app,
        "POST",
        "/admin/api/events/replay?status=received",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(bad.json["error"]["field"], "status");
    assert_eq!(
        admin(
            &app,
            "POST",
            "/admin/api/events/999999/replay",
            Some(ADMIN_TOKEN)
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn payments_are_listed_by_booking_and_status() {
    let app = admin_app(|_| {}).await;
    let paid = PaymentIds::new("booking-paid");
    let failed = PaymentIds::new("booking-failed");
    app.deliver_all(&[
        paid.event("payment_intent.succeeded", now() - 5, &[]),
        failed.event("payment_intent.payment_failed", now() - 4, &[]),
    ])
    .await;
    let by_booking = get(&app, "/admin/api/payments?booking_id=booking-paid").await;
    assert_eq!(by_booking["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_booking["data"][0]["status"], "succeeded");
    assert_eq!(by_booking["data"][0]["amount_formatted"], "20.00 EUR");
    let failures = get(&app, "/admin/api/payments?status=failed").await;
    assert_eq!(failures["data"][0]["booking_id"], "booking-failed");
    assert_eq!(
        get(&app, "/admin/api/payments").await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let bad = admin(
        &app,
        "GET",
        "/admin/api/payments?status=paid",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(bad.json["error"]["field"], "status");
}

#[tokio::test]
async fn a_dead_notification_is_retried_from_the_admin_api_and_delivered() {
    // The booking service refuses at first (400: dead at once), then accepts.
    let receiver = Receiver::start(|_, _| Reply::status(400)).await;
    // Credentials in the target's URL: used, never shown.
    let url = receiver.url.replacen("http://", "http://svc:hunter2@", 1);
    let app = admin_app(move |s| {
        s.targets = vec![TargetSettings {
            name: "booking-service".into(),
            kind: TargetKind::BookingStatus,
            url,
            token: Some(Secret::new("t")),
            secret: None,
            events: Vec::new(),
            retry_schedule: vec![Duration::ZERO, Duration::from_millis(100)],
            timeout: Duration::from_secs(5),
            concurrency: 4,
            circuit_failures: 100,
            circuit_open: Duration::from_secs(1),
        }];
    })
    .await;
    let paid = PaymentIds::new("booking-dead").event("payment_intent.succeeded", now(), &[]);
    app.deliver(&paid).await;
    common::receiver::eventually(Duration::from_secs(10), "the notification dead", || async {
        get(&app, "/admin/api/deliveries?status=dead").await["data"]
            .as_array()
            .is_some_and(|d| d.len() == 1)
    })
    .await;
    let dead = get(&app, "/admin/api/deliveries?status=dead").await;
    let d = &dead["data"][0];
    assert_eq!(
        (d["target"].as_str(), d["last_status"].as_i64()),
        (Some("booking-service"), Some(400))
    );
    assert_eq!(d["payload"]["status"], "confirmed");
    // The webhook behind it.
    assert_eq!(
        (d["source"].as_str(), d["source_event_id"].as_str()),
        (Some("stripe"), paid["id"].as_str())
    );

    receiver.set_script(|_, _| Reply::status(200));
    let ntf = d["notification_id"].as_str().unwrap();
    let retried = admin(
        &app,
        "POST",
        &format!("/admin/api/deliveries/{ntf}/retry"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(retried.status, 202, "{}", retried.json);
    common::receiver::eventually(
        Duration::from_secs(10),
        "delivered after the retry",
        || async {
            get(&app, "/admin/api/deliveries?status=delivered").await["data"]
                .as_array()
                .is_some_and(|d| d.len() == 1)
        },
    )
    .await;
    let again = admin(
        &app,
        "POST",
        &format!("/admin/api/deliveries/{ntf}/retry"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(
        (again.status, again.code()),
        (409, "already_delivered"),
        "a delivered notification is not sent again"
    );
    let bulk = admin(
        &app,
        "POST",
        "/admin/api/deliveries/retry?target=booking-service",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!((bulk.status, bulk.json["total"].as_i64()), (202, Some(0)));
    let unknown = admin(
        &app,
        "POST",
        "/admin/api/deliveries/retry?target=nope",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(unknown.json["error"]["field"], "target");

    let targets = get(&app, "/admin/api/targets").await;
    assert_eq!(targets["data"][0]["name"], "booking-service");
    assert_eq!(targets["data"][0]["circuit"], "closed");
    assert!(
        !targets.to_string().contains("\"t\""),
        "the target's token is not shown"
    );
    assert!(!targets.to_string().contains("hunter2"), "{targets}");
    assert!(
        targets["data"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://svc:redacted@127.0.0.1:"),
        "{targets}"
    );
}

/// The value of the sample line that starts with `series` (labels in the recorder's order).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_webhooks_refusals_applications_and_deliveries_and_show_depths() {
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    let target = format!(
        "metrics-{}",
        payhook::domain::ids::random_token(6).to_lowercase()
    );
    let (name, url) = (target.clone(), receiver.url.clone());
    let app = admin_app(move |s| {
        s.targets = vec![TargetSettings {
            name,
            kind: TargetKind::BookingStatus,
            url,
            token: None,
            secret: None,
            events: Vec::new(),
            retry_schedule: vec![Duration::ZERO],
            timeout: Duration::from_secs(5),
            concurrency: 4,
            circuit_failures: 100,
            circuit_open: Duration::from_secs(1),
        }];
    })
    .await;
    let unauthorized = admin(&app, "GET", "/metrics", None).await;
    assert_eq!(unauthorized.status, 401);

    // A type of its own, so other tests in this process do not count here.
    let kind = format!("metrics.test_{}", payhook::domain::ids::random_token(6));
    let body = event_body("evt_metrics_1", &kind);
    app.send(&body).await;
    app.send(&body).await;
    app.post("/webhooks/stripe", body.clone(), None).await;
    let pay = PaymentIds::new("booking-metrics");
    app.deliver(&pay.event("payment_intent.succeeded", now(), &[]))
        .await;
    receiver.wait_for(1, Duration::from_secs(10)).await;

    let scrape = || async {
        let response = app
            .client
            .get(format!("{}/metrics", app.admin))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        response.text().await.unwrap()
    };
    let mut text = scrape().await;
    // The attempt is counted when its answer comes, the row marked delivered just after.
    for _ in 0..100 {
        if text.contains(&format!(
            "payhook_delivery_attempts_total{{target=\"{target}\",outcome=\"delivered\"}} 1"
        )) && text.contains(&format!(
            "payhook_outbox_notifications{{target=\"{target}\",status=\"delivered\"}} 1"
        )) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape().await;
    }
    let received = |outcome: &str| {
        sample(
            &text,
            &format!(
                "payhook_webhooks_received_total{{source=\"stripe\",type=\"{kind}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    assert_eq!(received("stored"), Some(1.0), "{text}");
    assert_eq!(received("duplicate"), Some(1.0));
    // Every family recorded says what it counts.
    for family in [
        "payhook_webhooks_received_total",
        "payhook_webhooks_refused_total",
        "payhook_events_applied_total",
        "payhook_ingest_seconds",
        "payhook_delivery_seconds",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family}: {text}"
        );
    }
    assert!(
        sample(
            &text,
            "payhook_webhooks_refused_total{source=\"stripe\",code=\"missing_signature\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(sample(&text, "payhook_ingest_seconds_count{source=\"stripe\"}").unwrap() >= 3.0);
    assert!(sample(&text, "payhook_events_applied_total{status=\"processed\"}").unwrap() >= 1.0);
    assert!(sample(&text, "payhook_processing_seconds_count").unwrap() >= 2.0);
    assert!(sample(&text, "payhook_event_lag_seconds_count").unwrap() >= 2.0);
    assert!(text.contains("payhook_event_lag_seconds_bucket{le=\"10\"}"));
    assert_eq!(
        sample(
            &text,
            &format!(
                "payhook_delivery_attempts_total{{target=\"{target}\",outcome=\"delivered\"}}"
            )
        ),
        Some(1.0)
    );
    assert!(text.contains(&format!(
        "payhook_delivery_seconds_bucket{{target=\"{target}\",le=\"0.5\"}}"
    )));
    // Read from this payhook's store when scraped.
    assert_eq!(
        sample(&text, "payhook_inbox_events{status=\"processed\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "payhook_inbox_events{status=\"ignored\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("payhook_outbox_notifications{{target=\"{target}\",status=\"delivered\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "payhook_payments{status=\"succeeded\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("payhook_target_circuit{{target=\"{target}\",state=\"closed\"}}")
        ),
        Some(1.0)
    );
    assert!(!text.contains(SECRET) && !text.contains(ADMIN_TOKEN));
}

#[tokio::test]
async fn the_dashboard_page_is_served_self_contained_and_the_overview_counts() {
    let app = admin_app(|_| {}).await;
    let page = app
        .client
        .get(format!("{}/", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        200,
        "the page holds no data; the API behind it needs the token"
    );
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("/admin/api/overview"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resource"
    );

    app.deliver(&PaymentIds::new("booking-overview").event("payment_intent.succeeded", now(), &[]))
        .await;
    app.deliver(&unusable("evt_overview_bad")).await;
    app.settled("evt_overview_bad").await;
    let o = get(&app, "/admin/api/overview").await;
    assert_eq!(o["events"]["total"], 2, "{o}");
    assert_eq!(o["events"]["failed"], 1);
    assert_eq!(o["payments"]["succeeded"], 1);
    assert_eq!(o["deliveries"]["dead"], 0);
    assert_eq!(o["open_circuits"], 0);
    // The rate: 30 minutes, oldest first, this minute (or the one before, at its turn) holding
    // the two stored here (tests in this process share the count: at least two).
    let minutes = o["events_per_minute"].as_array().unwrap();
    assert_eq!(minutes.len(), 30);
    assert!(minutes[0]["minute"].as_str() < minutes[29]["minute"].as_str());
    let recent: u64 = minutes[28..]
        .iter()
        .map(|m| m["count"].as_u64().unwrap())
        .sum();
    assert!(recent >= 2, "{o}");
    assert_eq!(
        admin(&app, "GET", "/admin/api/overview", None).await.status,
        401
    );
}

/// Retention: once applied events are older than the configured age, their payloads and headers
/// are pruned, a couple of events per batch here; their rows (the index the admin API lists), the
/// ledger and the failed event's payload stay, and a pruned event cannot be replayed (409).
#[tokio::test]
async fn retention_prunes_old_payloads_of_applied_events_and_keeps_the_rest() {
    let app = admin_app(|s| {
        s.retention.payloads = Some(Duration::from_millis(300));
        s.retention.every = Duration::from_millis(100);
        s.retention.pause = Duration::ZERO;
        s.retention.batch = 2;
    })
    .await;
    let paid = PaymentIds::new("booking-kept").event("payment_intent.succeeded", now(), &[]);
    let ignored = json!({"id": "evt_ret_ignored", "object": "event", "type": "customer.created",
                         "created": now(), "data": {"object": {"object": "customer"}}});
    app.deliver(&paid).await;
    app.deliver(&ignored).await;
    app.deliver(&unusable("evt_ret_failed")).await;
    for id in [
        paid["id"].as_str().unwrap(),
        "evt_ret_ignored",
        "evt_ret_failed",
    ] {
        app.settled(id).await;
    }
    let event = |id: &'static str| {
        let store = app.payhook.store.clone();
        async move { store.event("stripe", id).await.unwrap().unwrap() }
    };
    let paid_id: &'static str =
        Box::leak(paid["id"].as_str().unwrap().to_string().into_boxed_str());
    common::receiver::eventually(Duration::from_secs(10), "old payloads pruned", || async {
        event(paid_id).await.pruned_at.is_some()
            && event("evt_ret_ignored").await.pruned_at.is_some()
    })
    .await;
    let pruned = event(paid_id).await;
    assert!(pruned.payload.is_empty());
    assert_eq!(pruned.headers, "{}");
    assert_eq!(pruned.status, "processed");
    let failed = event("evt_ret_failed").await;
    assert!(
        failed.pruned_at.is_none() && !failed.payload.is_empty(),
        "a failed event keeps its payload"
    );

    // The index and the ledger stay.
    let listed = get(&app, "/admin/api/events").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);
    let detail = get(&app, &format!("/admin/api/events/{}", pruned.id)).await;
    assert_eq!(detail["body"], "");
    assert!(detail["pruned_at"].is_string());
    assert_eq!(
        app.payment_status("booking-kept").await["status"],
        "succeeded"
    );

    // Nothing left to apply: a replay is refused; the failed one can still be replayed.
    let answer = admin(
        &app,
        "POST",
        &format!("/admin/api/events/{}/replay", pruned.id),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!((answer.status, answer.code()), (409, "event_pruned"));
    let answer = admin(
        &app,
        "POST",
        &format!("/admin/api/events/{}/replay", failed.id),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(answer.status, 202);
    // Where it got to is kept, for the next start.
    assert!(
        app.payhook
            .store
            .setting("retention_cursor")
            .await
            .unwrap()
            .is_some()
    );
}

/// A listing's parameters are refused in the API's words, naming the parameter (the first bad one
/// in the listing's order, wherever it is in the URL); an empty one is absent and an unknown one
/// ignored. The API document describes the same parameters.
#[tokio::test]
async fn listing_parameters_are_refused_naming_the_parameter_and_documented_alike() {
    let app = admin_app(|_| {}).await;
    let refusals = [
        (
            "GET",
            "/admin/api/events?status=lost",
            "status",
            "status: \"lost\" is not one of received, waiting, processed, ignored, retrying, failed, rejected",
        ),
        (
            "GET",
            "/admin/api/deliveries?status=gone",
            "status",
            "status: \"gone\" is not one of pending, delivered, dead",
        ),
        (
            "GET",
            "/admin/api/payments?status=paid",
            "status",
            "status: \"paid\" is not one of pending, processing, authorized, succeeded, failed, \
             canceled, expired, partially_refunded, refunded, disputed",
        ),
        (
            "POST",
            "/admin/api/events/replay?status=received",
            "status",
            "status: \"received\" is not one of failed, retrying, rejected, processed, ignored",
        ),
        (
            "GET",
            "/admin/api/events?limit=501",
            "limit",
            "limit: a number from 1 to 500",
        ),
        (
            "GET",
            "/admin/api/payments?limit=ten",
            "limit",
            "limit: a number from 1 to 500",
        ),
        (
            "GET",
            "/admin/api/deliveries?cursor=next",
            "cursor",
            "cursor: is the next_cursor of a previous page",
        ),
        (
            "GET",
            "/admin/api/events?since=2026-11-31",
            "since",
            "since: an RFC 3339 time (2026-11-23T10:00:00Z), a day (2026-11-23) or a duration before now (2h, 30m, 7d)",
        ),
        (
            "GET",
            "/admin/api/events?until=soon&status=lost",
            "status",
            "status: \"lost\" is not one of received, waiting, processed, ignored, retrying, failed, rejected",
        ),
        (
            "POST",
            "/admin/api/reconcile?since=-1",
            "since",
            "since: is required: a unix time in seconds",
        ),
        (
            "GET",
            "/admin/api/events/1%0A",
            "id",
            "id: an id or name of 1 to 255 characters, without control characters",
        ),
    ];
    for (method, path, field, message) in refusals {
        let answer = admin(&app, method, path, Some(ADMIN_TOKEN)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "validation_error"),
            "{path}"
        );
        assert_eq!(answer.json["error"]["field"], field, "{path}");
        assert_eq!(answer.json["error"]["message"], message, "{path}");
    }
    for path in [
        "/admin/api/events?status=&limit=&cursor=&since=&until=&source=&colour=blue",
        "/admin/api/deliveries?target=&status=",
        "/admin/api/payments?booking_id=&status=&limit=",
        // Of a repeated parameter, the last value counts.
        "/admin/api/events?status=lost&status=failed",
    ] {
        assert!(get(&app, path).await["data"].is_array(), "{path}");
    }

    let document = admin(&app, "GET", "/openapi.json", None).await.json;
    let parameters = |path: &str, method: &str| {
        document["paths"][path][method]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path} has parameters"))
            .clone()
    };
    let events = parameters("/admin/api/events", "get");
    let names: Vec<&str> = events.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "source", "type", "status", "event_id", "since", "until", "limit", "cursor"
        ]
    );
    let limit = &events[6];
    assert_eq!(
        (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
        (&json!(1), &json!(500))
    );
    assert!(limit["description"].as_str().unwrap().contains("1 to 500"));
    assert_eq!(events[2]["schema"]["enum"].as_array().unwrap().len(), 7);
    let replay = parameters("/admin/api/events/replay", "post");
    assert_eq!(
        replay[0]["schema"]["enum"],
        json!(["failed", "retrying", "rejected", "processed", "ignored"])
    );
    let reconcile = parameters("/admin/api/reconcile", "post");
    assert_eq!(reconcile[0]["name"], "since");
    assert_eq!(reconcile[0]["required"], true);
    let shown = parameters("/admin/api/events/{id}", "get");
    assert_eq!(
        (
            &shown[0]["name"],
            &shown[0]["in"],
            &shown[0]["schema"]["type"]
        ),
        (&json!("id"), &json!("path"), &json!("string"))
    );
}

#[tokio::test]
async fn a_read_the_store_cannot_answer_is_503_with_the_configured_retry_after() {
    let app = admin_app(|s| s.ingest.retry_after_secs = 7).await;
    // The payments table is gone: the listing's read fails in the store, not in the request.
    app.execute(&["ALTER TABLE payments RENAME TO payments_gone".into()])
        .await;
    let answer = admin(&app, "GET", "/admin/api/payments", Some(ADMIN_TOKEN)).await;
    assert_eq!(
        (answer.status, answer.code()),
        (503, "store_unavailable"),
        "{}",
        answer.json
    );
    assert_eq!(answer.retry_after.as_deref(), Some("7"));
    // A refusal that is the client's carries none.
    let answer = admin(
        &app,
        "GET",
        "/admin/api/payments?limit=0",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!((answer.status, answer.retry_after), (400, None));
}
