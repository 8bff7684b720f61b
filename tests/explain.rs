//! Explain and the look-ups by the ids people have: why a booking or payment is in its state
//! (timeline in provider time, the fact and rule of each event, notifications with every
//! attempt, what needs a person), through the admin API, the search, and `payhook explain`.
//! On SQLite or PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::time::Duration;

use common::receiver::*;
use common::*;
use payhook::config::{TargetKind, TargetSettings};
use payhook::domain::Secret;
use serde_json::Value;

const ADMIN_TOKEN: &str = "admin-token-for-explain";

/// payhook with a booking-status target answered by `script`, retried quickly.
async fn app_with_target(
    script: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static,
) -> (TestApp, Receiver) {
    let receiver = Receiver::start(script).await;
    let url = receiver.url.clone();
    let app = spawn_app_with(move |s| {
        s.admin_token = Some(Secret::new(ADMIN_TOKEN));
        s.targets = vec![TargetSettings {
            name: "booking-service".into(),
            kind: TargetKind::BookingStatus,
            url,
            token: Some(Secret::new("t")),
            secret: None,
            events: Vec::new(),
            retry_schedule: vec![Duration::ZERO, Duration::from_millis(200)],
            timeout: Duration::from_secs(5),
            concurrency: 4,
            circuit_failures: 100,
            circuit_open: Duration::from_secs(1),
        }];
    })
    .await;
    (app, receiver)
}

async fn admin_get(app: &TestApp, path: &str) -> Answer {
    let response = app
        .client
        .get(format!("{}{path}", app.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    Answer::read(response).await
}

async fn explain(app: &TestApp, key: &str) -> Value {
    let answer = admin_get(app, &format!("/admin/api/explain/{key}")).await;
    assert_eq!(answer.status, 200, "{key}: {}", answer.json);
    answer.json
}

/// Waits until the notification history of `key` holds `n` attempts in all and every
/// notification is settled (an explanation reads notifications, then their attempts: one read
/// between the two may see an attempt its notification's row does not show yet).
async fn explained_with_attempts(app: &TestApp, key: &str, n: usize) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let x = explain(app, key).await;
        let notifications: Vec<&Value> = x["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["notifications"].as_array().unwrap())
            .collect();
        let attempts: usize = notifications
            .iter()
            .map(|n| n["attempts"].as_array().unwrap().len())
            .sum();
        if attempts >= n && notifications.iter().all(|n| n["status"] == "delivered") {
            return x;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} attempts not recorded in 10 s: {x:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn explain_tells_why_a_booking_is_partially_refunded_and_what_the_booking_service_heard() {
    // The booking service is down for the first attempt, then answers.
    let (app, receiver) =
        app_with_target(|n, _| Reply::status(if n == 0 { 503 } else { 200 })).await;
    let ids = PaymentIds::new("booking-explain");
    let t = now() - 600;
    let paid = ids.event("payment_intent.succeeded", t, &["amount=2000".into()]);
    let refund = ids.event(
        "charge.refunded",
        t + 60,
        &["amount=2000".into(), "amount_refunded=500".into()],
    );
    // The refund arrives first: the success comes in late.
    app.deliver_all(&[refund.clone(), paid.clone()]).await;
    receiver.wait_for(3, Duration::from_secs(10)).await;

    let x = explained_with_attempts(&app, "booking-explain", 3).await;
    assert_eq!(x["matched_by"], "booking", "{x:#}");
    assert_eq!(x["scope"], "booking");
    assert_eq!(x["status"], "partially_refunded");
    let summary = x["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("booking booking-explain is partially_refunded since charge.refunded"),
        "{summary}"
    );
    assert!(
        summary.contains("last told `partially_refunded` (delivered)"),
        "{summary}"
    );
    assert_eq!(
        x["attention"],
        serde_json::json!([]),
        "nothing needs a person"
    );
    assert_eq!(x["payments"][0]["amount"], "20.00 EUR", "{x:#}");
    assert_eq!(x["payments"][0]["refunded"], "5.00 EUR");
    assert_eq!(x["payments"][0]["speaks_for_booking"], true);
    let told: Vec<&str> = x["booking_told"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(told, ["confirmed", "partially_refunded"]);

    // The timeline is in provider time, whatever the arrival order.
    let timeline = x["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2, "{x:#}");
    let (first, second) = (&timeline[0], &timeline[1]);
    assert_eq!(first["event"]["event_id"], paid["id"]);
    assert_eq!(first["event"]["type"], "payment_intent.succeeded");
    assert_eq!(first["event"]["out_of_order"], true, "{first:#}");
    assert_eq!(first["status_after"], "succeeded");
    assert!(
        first["rule"]
            .as_str()
            .unwrap()
            .contains("arrival order changed nothing"),
        "{first:#}"
    );
    assert!(
        first["event"]["verification"]
            .as_str()
            .unwrap()
            .contains("stripe signature in stripe-signature"),
        "{first:#}"
    );
    let number = first["event"]["number"].as_i64().unwrap();
    let raw = admin_get(&app, &format!("/admin/api/events/{number}")).await;
    assert_eq!(
        raw.json["event_id"], paid["id"],
        "the event's number links to its raw body"
    );

    assert_eq!(second["event"]["event_id"], refund["id"]);
    assert_eq!(second["event"]["out_of_order"], false);
    assert_eq!(second["fact"], "5.00 EUR refunded in all");
    assert_eq!(second["status_after"], "partially_refunded");
    assert_eq!(
        second["rule"],
        "refunds add up to 5.00 EUR of 20.00 EUR: a partial refund outranks paid"
    );
    // The refund, applied first, caused both notifications; the first attempt of the first was
    // refused and retried.
    let sent = second["notifications"].as_array().unwrap();
    let events: Vec<&str> = sent.iter().map(|n| n["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["confirmed", "partially_refunded"], "{second:#}");
    let confirmed = &sent[0];
    assert_eq!(confirmed["status"], "delivered");
    let attempts = confirmed["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{confirmed:#}");
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[0]["outcome"], "pending");
    assert!(attempts[0]["next_attempt_at"].is_string(), "{confirmed:#}");
    assert!(attempts[0]["latency_ms"].as_i64().unwrap() >= 0);
    assert_eq!(attempts[1]["status"], 200);
    assert_eq!(attempts[1]["outcome"], "delivered");
    assert_eq!(attempts[1]["attempt"], 2);
    assert!(first["notifications"].as_array().unwrap().is_empty());

    // The same payment by each of the ids people have.
    for (key, matched) in [
        (ids.intent.as_str(), "payment_intent"),
        (ids.charge.as_str(), "charge"),
        (paid["id"].as_str().unwrap(), "event"),
        (&number.to_string(), "event_number"),
    ] {
        let x = explain(&app, key).await;
        assert_eq!(x["matched_by"], matched, "{key}");
        assert_eq!(x["scope"], "payment", "{key}");
        assert_eq!(x["booking_id"], "booking-explain", "{key}");
        assert_eq!(x["status"], "partially_refunded", "{key}");
        assert_eq!(x["timeline"].as_array().unwrap().len(), 2, "{key}");
    }

    // Payments by a provider id; the search finds the booking, the payment and the event.
    let by_charge = admin_get(&app, &format!("/admin/api/payments?ref={}", ids.charge)).await;
    assert_eq!(by_charge.status, 200, "{}", by_charge.json);
    assert_eq!(by_charge.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_charge.json["data"][0]["booking_id"], "booking-explain");
    for (q, kind) in [
        ("booking-explain", "booking"),
        (ids.intent.as_str(), "payment"),
        (refund["id"].as_str().unwrap(), "event"),
    ] {
        let found = admin_get(&app, &format!("/admin/api/search?q={q}")).await;
        assert_eq!(found.status, 200, "{}", found.json);
        let hits = found.json["data"].as_array().unwrap();
        assert!(hits.iter().any(|h| h["kind"] == kind), "{q}: {hits:?}");
        // Each hit opens an explanation.
        for hit in hits {
            explain(&app, hit["explain"].as_str().unwrap()).await;
        }
    }
    let none = admin_get(&app, "/admin/api/search?q=nothing-by-this-id").await;
    assert_eq!(none.json["data"], serde_json::json!([]));
}

#[tokio::test]
async fn events_of_the_same_second_read_in_the_order_they_were_applied() {
    // Stripe's event times are to the second: a refund in the same second as the payment, whose
    // id sorts before the payment's, still comes after it in the story.
    let (app, receiver) = app_with_target(|_, _| Reply::status(200)).await;
    let ids = PaymentIds::new("booking-same-second");
    let t = now() - 60;
    let mut paid = ids.event("payment_intent.succeeded", t, &["amount=2000".into()]);
    paid["id"] = "evt_zz_same_second_paid".into();
    let mut refund = ids.event(
        "charge.refunded",
        t,
        &["amount=2000".into(), "amount_refunded=500".into()],
    );
    refund["id"] = "evt_aa_same_second_refund".into();
    app.deliver_all(std::slice::from_ref(&paid)).await;
    app.deliver_all(std::slice::from_ref(&refund)).await;
    receiver.wait_for(2, Duration::from_secs(10)).await;

    let x = explained_with_attempts(&app, "booking-same-second", 2).await;
    assert_eq!(x["status"], "partially_refunded", "{x:#}");
    let summary = x["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(
            "booking booking-same-second is partially_refunded since charge.refunded evt_aa_same_second_refund"
        ),
        "{summary}"
    );
    let steps: Vec<(&str, &str)> = x["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["event"]["type"].as_str().unwrap_or(""),
                t["status_after"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("payment_intent.succeeded", "succeeded"),
            ("charge.refunded", "partially_refunded")
        ],
        "{x:#}"
    );
}

#[tokio::test]
async fn explain_puts_what_needs_a_person_first() {
    // The booking service refuses every notification for good.
    let (app, receiver) = app_with_target(|_, _| Reply::status(400)).await;
    let ids = PaymentIds::new("booking-refused");
    app.deliver_all(&[ids.event("payment_intent.succeeded", now(), &[])])
        .await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let x = loop {
        let x = explain(&app, "booking-refused").await;
        if x["attention"].as_array().unwrap().len() >= 2 {
            break x;
        }
        assert!(std::time::Instant::now() < deadline, "{x:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let kinds: Vec<&str> = x["attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"booking_refused"), "{x:#}");
    let dead = x["attention"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "dead_notification")
        .unwrap_or_else(|| panic!("{x:#}"));
    assert!(
        dead["todo"]
            .as_str()
            .unwrap()
            .contains("payhook deliveries retry ntf_"),
        "{dead:#}"
    );
    assert!(
        dead["what"]
            .as_str()
            .unwrap()
            .contains("`confirmed` to booking-service")
    );

    // An event that established nothing is explained by what happened to it.
    let broken = serde_json::json!({"id": "evt_explain_broken", "object": "event",
        "type": "payment_intent.succeeded", "created": now(),
        "data": {"object": {"object": "payment_intent", "amount": 100}}});
    app.deliver(&broken).await;
    app.settled("evt_explain_broken").await;
    let x = explain(&app, "evt_explain_broken").await;
    assert_eq!(x["matched_by"], "event");
    assert_eq!(x["attention"][0]["kind"], "event_failed", "{x:#}");
    assert!(
        x["attention"][0]["todo"]
            .as_str()
            .unwrap()
            .contains("payhook events replay"),
        "{x:#}"
    );
    assert!(
        x["summary"]
            .as_str()
            .unwrap()
            .contains("established no fact"),
        "{x:#}"
    );

    // Unknown and unusable keys.
    let unknown = admin_get(&app, "/admin/api/explain/nothing-by-this-id").await;
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));
    assert!(
        unknown.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing-by-this-id")
    );
    let long = "x".repeat(300);
    let too_long = admin_get(&app, &format!("/admin/api/explain/{long}")).await;
    assert_eq!(too_long.status, 400, "{}", too_long.json);
}

#[tokio::test]
async fn payhook_explain_prints_the_timeline_in_the_terminal() {
    let (app, receiver) = app_with_target(|_, _| Reply::status(200)).await;
    let ids = PaymentIds::new("booking-cli-explain");
    let paid = ids.event("payment_intent.succeeded", now(), &["amount=2000".into()]);
    app.deliver_all(std::slice::from_ref(&paid)).await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    explained_with_attempts(&app, "booking-cli-explain", 1).await;

    let dir = tempfile::tempdir().unwrap();
    let run = async |args: Vec<String>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_payhook"));
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PAYHOOK_ADMIN_URL", &app.admin)
            .env("PAYHOOK_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .args(args);
        cmd.output().await.unwrap()
    };
    let out = run(vec!["explain".into(), "booking-cli-explain".into()]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("booking booking-cli-explain is succeeded since payment_intent.succeeded"),
        "{text}"
    );
    assert!(text.contains("TIMELINE (provider time)"), "{text}");
    assert!(
        text.contains(&format!(
            "payment_intent.succeeded {}",
            paid["id"].as_str().unwrap()
        )),
        "{text}"
    );
    assert!(
        text.contains("fact: the payment succeeded (20.00 EUR)"),
        "{text}"
    );
    assert!(
        text.contains("notified booking-service `confirmed`: delivered (1 attempt)"),
        "{text}"
    );
    assert!(
        text.contains("BOOKING SERVICE TOLD: confirmed (delivered)"),
        "{text}"
    );

    let out = run(vec!["explain".into(), ids.intent.clone(), "--json".into()]).await;
    assert!(out.status.success());
    let x: Value = serde_json::from_slice(&out.stdout).expect("the admin API's JSON");
    assert_eq!(x["matched_by"], "payment_intent");

    let out = run(vec!["explain".into(), "no-such-thing".into()]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("404 Not Found not_found from the admin API at http://127.0.0.1:")
            && err.contains(
                ": no booking, payment, checkout session or event has the id \"no-such-thing\""
            ),
        "{err}"
    );
}
