//! Operational events end to end: an `events` target (a receiver on loopback) hears
//! `target.circuit_opened`, `target.recovered`, `target.disabled` and `delivery.exhausted` with
//! their fields; an operator's disable keeps a target's notifications, visibly, across a restart,
//! and an enable releases them in order. On SQLite or on PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::time::Duration;

use common::receiver::*;
use common::*;
use payhook::config::{TargetKind, TargetSettings};
use payhook::domain::Secret;
use serde_json::Value;

fn target(name: &str, kind: TargetKind, url: &str) -> TargetSettings {
    TargetSettings {
        name: name.into(),
        kind,
        url: url.into(),
        token: (kind == TargetKind::BookingStatus).then(|| Secret::new(BOOKING_SERVICE_TOKEN)),
        secret: (kind == TargetKind::Events)
            .then(|| Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
        events: Vec::new(),
        retry_schedule: std::iter::once(Duration::ZERO)
            .chain(std::iter::repeat_n(Duration::from_millis(100), 60))
            .collect(),
        timeout: Duration::from_secs(5),
        concurrency: 8,
        circuit_failures: 3,
        circuit_open: Duration::from_millis(300),
    }
}

/// The operational events `alerts` received, as (type, data), in order.
fn heard(alerts: &Receiver) -> Vec<(String, Value)> {
    alerts
        .requests()
        .iter()
        .map(|r| {
            let body = r.json();
            (
                body["type"].as_str().unwrap_or("").to_string(),
                body["data"].clone(),
            )
        })
        .collect()
}

async fn hears(alerts: &Receiver, event: &str) -> Value {
    let mut found = Value::Null;
    eventually(Duration::from_secs(15), event, || {
        found = heard(alerts)
            .into_iter()
            .find(|(t, _)| t == event)
            .map_or(Value::Null, |(_, d)| d);
        std::future::ready(!found.is_null())
    })
    .await;
    found
}

#[tokio::test]
async fn an_events_target_hears_a_target_open_recover_be_disabled_and_give_up() {
    let alerts = Receiver::start(|_, _| Reply::status(204)).await;
    let flaky = Receiver::start(|_, _| Reply::status(503)).await;
    let refusing = Receiver::start(|_, _| Reply::status(503)).await;
    let mut subscribed = target("alerts", TargetKind::Events, &alerts.url);
    subscribed.events = vec![
        "target.circuit_opened".into(),
        "target.recovered".into(),
        "target.disabled".into(),
        "delivery.exhausted".into(),
    ];
    // Two attempts, then it is given up on; the circuit never opens for this one.
    let mut short = target("short", TargetKind::BookingStatus, &refusing.url);
    short.retry_schedule = vec![Duration::ZERO, Duration::from_millis(100)];
    short.circuit_failures = 1000;
    let app = spawn_app_with(|s| {
        s.targets = vec![
            subscribed,
            target("flaky", TargetKind::BookingStatus, &flaky.url),
            short,
        ]
    })
    .await;
    let pay = PaymentIds::new("b-operational");
    app.deliver(&pay.event("payment_intent.succeeded", now(), &[]))
        .await;

    let opened = hears(&alerts, "target.circuit_opened").await;
    assert_eq!(opened["target"], "flaky");
    assert!(
        opened["reason"].as_str().unwrap().contains("answered 503"),
        "{opened}"
    );
    assert!(opened["failures"].as_u64().unwrap() >= 3, "{opened}");
    assert!(opened["next_probe_at"].as_str().is_some(), "{opened}");
    // The circuit and its next probe are shown: the targets listing and the metrics.
    let listed: Value = app
        .client
        .get(format!("{}/admin/api/targets", app.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = &listed["data"][1];
    assert_eq!(
        (&row["name"], &row["circuit"]),
        (&"flaky".into(), &"open".into()),
        "{row}"
    );
    assert!(row["next_probe_at"].as_str().is_some(), "{row}");
    let metrics = app.text(&format!("{}/metrics", app.admin)).await;
    assert!(
        metrics.contains("payhook_target_circuit_state{target=\"flaky\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("payhook_target_next_probe_timestamp_seconds{target=\"flaky\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("payhook_target_circuit_state{target=\"alerts\"} 0"));

    let exhausted = hears(&alerts, "delivery.exhausted").await;
    assert_eq!(exhausted["target"], "short");
    assert_eq!(exhausted["event"], "confirmed");
    assert_eq!(exhausted["booking_id"], "b-operational");
    assert_eq!(exhausted["attempts"], 2);
    assert!(
        exhausted["notification_id"]
            .as_str()
            .unwrap()
            .starts_with("ntf_"),
        "{exhausted}"
    );
    assert!(
        exhausted["last_error"].as_str().unwrap().contains("503"),
        "{exhausted}"
    );

    // The target answers again: the next probe closes the circuit.
    flaky.set_script(|_, r| {
        Reply::status(if r.path.contains("b-operational") {
            200
        } else {
            503
        })
    });
    let recovered = hears(&alerts, "target.recovered").await;
    assert_eq!(recovered["target"], "flaky");
    assert!(recovered["down_since"].as_str().is_some(), "{recovered}");

    // A 410 disables it, and says so.
    flaky.set_script(|_, _| Reply::status(410));
    let pay = PaymentIds::new("b-gone");
    app.deliver(&pay.event("payment_intent.succeeded", now(), &[]))
        .await;
    let disabled = hears(&alerts, "target.disabled").await;
    assert_eq!(disabled["target"], "flaky");
    assert_eq!(disabled["by"], "payhook");
    assert!(
        disabled["reason"].as_str().unwrap().contains("410"),
        "{disabled}"
    );
    let order: Vec<String> = heard(&alerts)
        .into_iter()
        .filter(|(_, d)| d["target"] == "flaky")
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        order,
        [
            "target.circuit_opened",
            "target.recovered",
            "target.disabled"
        ],
        "in the order they happened"
    );
    // Each is signed as every events notification is.
    assert!(
        alerts.requests()[0]
            .header("webhook-signature")
            .starts_with("v1,")
    );
    app.payhook.shutdown().await.unwrap();
}

/// `POST` on the admin API; the JSON answer and its status.
async fn admin_post(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}{path}", app.admin))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn pending_rows(admin: &str, client: &reqwest::Client) -> Vec<Value> {
    let page: Value = client
        .get(format!(
            "{admin}/admin/api/deliveries?target=booking-service&status=pending"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_disabled_target_keeps_its_notifications_visibly_across_a_restart_and_gets_them_in_order_when_enabled()
 {
    let alerts = Receiver::start(|_, _| Reply::status(204)).await;
    let (service, url) = booking_service(BOOKING_SERVICE_TOKEN).await;
    let targets = vec![
        target("alerts", TargetKind::Events, &alerts.url),
        target("booking-service", TargetKind::BookingStatus, &url),
    ];
    let configured = targets.clone();
    let app = spawn_app_with(move |s| s.targets = configured).await;

    let (status, answer) = admin_post(
        &app,
        "/admin/api/targets/booking-service/disable?reason=maintenance%20window&by=alice",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["circuit"], "disabled");
    let disabled = hears(&alerts, "target.disabled").await;
    assert_eq!(
        disabled,
        serde_json::json!({"target": "booking-service", "reason": "maintenance window", "by": "alice"})
    );
    // Bad input is a clear 4xx.
    let (status, answer) = admin_post(&app, "/admin/api/targets/nobody/disable").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("target_not_found"))
    );
    let long = "x".repeat(501);
    let (status, _) = admin_post(
        &app,
        &format!("/admin/api/targets/booking-service/disable?reason={long}"),
    )
    .await;
    assert_eq!(status, 400);

    let bookings: Vec<String> = (0..3).map(|i| format!("b-held-{i}")).collect();
    let t = now();
    for booking in &bookings {
        service.create(booking, Some(2000), Some("EUR"), "pending");
        let pay = PaymentIds::new(booking);
        app.deliver_all(&[
            pay.event("payment_intent.succeeded", t, &[]),
            pay.event("charge.refunded", t + 10, &[]),
        ])
        .await;
    }
    let held = pending_rows(&app.admin, &app.client).await;
    assert_eq!(held.len(), 6, "every notification kept");
    for row in &held {
        let why = row["held"].as_str().unwrap_or("");
        assert!(why.contains("disabled") && why.contains("alice"), "{row}");
    }

    // A restart keeps the operator's disable: nothing is sent.
    let TestApp {
        payhook,
        store,
        client,
        ..
    } = app;
    payhook.shutdown().await.unwrap();
    let mut settings = test_settings(&store.url);
    settings.targets = targets;
    let payhook = payhook::app::Payhook::start(settings).await.unwrap();
    let admin = format!("http://{}", payhook.admin_addr);
    let listed: Value = client
        .get(format!("{admin}/admin/api/targets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "booking-service")
        .unwrap()
        .clone();
    assert_eq!(row["circuit"], "disabled", "{row}");
    assert!(
        row["reason"]
            .as_str()
            .unwrap()
            .contains("maintenance window")
    );
    assert_eq!(pending_rows(&admin, &client).await.len(), 6);
    assert!(
        service.received().is_empty(),
        "a disabled target is not called"
    );

    let r = client
        .post(format!("{admin}/admin/api/targets/booking-service/enable"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let enabled = std::time::Instant::now();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["released"], 0, "all were due already: {answer}");
    // The enable wakes the worker: no wait for its next idle look (2 s).
    eventually(
        Duration::from_secs(10),
        "the first notification sent",
        || std::future::ready(!service.received().is_empty()),
    )
    .await;
    let woke = enabled.elapsed();
    assert!(
        woke < Duration::from_millis(1500),
        "first sent {woke:?} after the enable"
    );
    for booking in &bookings {
        eventually(Duration::from_secs(10), booking, || async {
            service.booking(booking).unwrap().status == "refunded"
        })
        .await;
        let history: Vec<String> = service
            .booking(booking)
            .unwrap()
            .history
            .iter()
            .map(|t| format!("{}>{}", t.from, t.to))
            .collect();
        assert_eq!(history, ["pending>confirmed", "confirmed>refunded"]);
    }
    payhook.shutdown().await.unwrap();
    drop(store);
}

/// payhook stopped with a circuit open and its next probe an hour away; the target is back when
/// payhook starts again: the first probe goes within seconds, not after the saved wait.
#[tokio::test]
async fn a_circuit_left_open_before_a_restart_probes_within_seconds() {
    use payhook::domain::delivery::Circuit;
    let (service, url) = booking_service(BOOKING_SERVICE_TOKEN).await;
    let store = fresh_store().await;
    let saved = payhook::store::Store::connect(&store.url, payhook::domain::SqliteSync::Full)
        .await
        .unwrap();
    saved.migrate().await.unwrap();
    let in_an_hour = chrono::Utc::now().timestamp_millis() + 3_600_000;
    let mut tx = saved.begin_outbox().await.unwrap();
    let open = Circuit::saved(
        "open",
        3,
        Some(in_an_hour),
        Some("connection refused".into()),
    );
    tx.save_circuit("booking-service", &open, chrono::Utc::now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    saved.close().await;

    let mut settings = test_settings(&store.url);
    settings.targets = vec![
        payhook::config::booking_service_target(&url, Some(&Secret::new(BOOKING_SERVICE_TOKEN)))
            .unwrap(),
    ];
    let payhook = payhook::app::Payhook::start(settings).await.unwrap();
    let started = std::time::Instant::now();
    service.create("b-after-restart", Some(2000), Some("EUR"), "pending");
    let event = PaymentIds::new("b-after-restart").event("payment_intent.succeeded", now(), &[]);
    let client = payhook::net::client_builder().build().unwrap();
    let body = event.to_string();
    let answer = client
        .post(format!("http://{}/webhooks/stripe", payhook.public_addr))
        .header(
            "stripe-signature",
            stripe_signature(body.as_bytes(), SECRET, now()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    eventually(
        Duration::from_secs(10),
        "confirmed by the first probe",
        || std::future::ready(service.booking("b-after-restart").unwrap().status == "confirmed"),
    )
    .await;
    eprintln!("delivered {:?} after the restart", started.elapsed());
    eventually(Duration::from_secs(5), "the circuit closes", || async {
        payhook
            .store
            .circuit("booking-service")
            .await
            .unwrap()
            .state
            .as_str()
            == "closed"
    })
    .await;
    payhook.shutdown().await.unwrap();
}
