//! Events by the provider's id on every route that takes one, and bulk replays and retries over
//! the admin API: each selection, the dry run (nothing changed), the job and its progress. On
//! SQLite or PostgreSQL (`TEST_DATABASE_URL`).

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

async fn admin(app: &TestApp, method: &str, path: &str) -> Answer {
    let url = format!("{}{path}", app.admin);
    let request = match method {
        "POST" => app.client.post(url),
        _ => app.client.get(url),
    };
    Answer::read(request.bearer_auth(ADMIN_TOKEN).send().await.unwrap()).await
}

async fn get(app: &TestApp, path: &str) -> Value {
    let answer = admin(app, "GET", path).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.json);
    answer.json
}

/// A Stripe event that names no payment: stored, then `failed` by the processor.
fn unusable(id: &str, event_type: &str) -> Value {
    json!({"id": id, "object": "event", "type": event_type, "created": now(),
           "data": {"object": {"object": "payment_intent", "amount": 100}}})
}

/// Stores an event of another source straight into the inbox, in `status`.
async fn store_other(app: &TestApp, source: &str, event_id: &str, status: &str) {
    let payload = if is_postgres(&app.store.url) {
        "'{}'::bytea"
    } else {
        "CAST('{}' AS BLOB)"
    };
    app.execute(&[format!(
        "INSERT INTO webhook_events (source, event_id, event_type, status, payload, headers, received_at)
         VALUES ('{source}', '{event_id}', 'payment_intent.succeeded', '{status}', {payload}, '{{}}',
                 '{}')",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.9fZ")
    )])
    .await;
}

/// The statuses of every event, by provider id and source.
async fn statuses(app: &TestApp) -> Vec<(String, String, String)> {
    let listed = get(app, "/admin/api/events?limit=500").await;
    listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().to_string(),
                e["event_id"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Waits for a job to end and returns it.
async fn ended(app: &TestApp, job: &Value) -> Value {
    let path = format!("/admin/api/jobs/{}", job["id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let job = get(app, &path).await;
        if job["state"] != "running" {
            return job;
        }
        assert!(std::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A dry run's count and the provider ids of its sample.
async fn dry_run(app: &TestApp, path: &str) -> (i64, Vec<String>) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let answer = admin(app, "POST", &format!("{path}{sep}dry_run=true")).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.json);
    let ids = answer.json["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["event_id"]
                .as_str()
                .or(e["notification_id"].as_str())
                .unwrap()
                .to_string()
        })
        .collect();
    (answer.json["total"].as_i64().unwrap(), ids)
}

#[tokio::test]
async fn an_event_is_shown_and_replayed_by_its_provider_id_with_its_source_when_two_hold_it() {
    let app = admin_app(|_| {}).await;
    let pay = PaymentIds::new("booking-lookup");
    let paid = pay.event("payment_intent.succeeded", now(), &[]);
    app.deliver_all(std::slice::from_ref(&paid)).await;
    let evt = paid["id"].as_str().unwrap();

    let shown = get(&app, &format!("/admin/api/events/{evt}")).await;
    assert_eq!(
        (shown["event_id"].as_str(), shown["source"].as_str()),
        (Some(evt), Some("stripe"))
    );
    assert_eq!(shown["body"], paid.to_string());
    let number = shown["id"].as_i64().unwrap();
    // The row number still works.
    assert_eq!(
        get(&app, &format!("/admin/api/events/{number}")).await["event_id"],
        evt
    );
    let replayed = admin(&app, "POST", &format!("/admin/api/events/{evt}/replay")).await;
    assert_eq!(
        (replayed.status, replayed.json["id"].as_i64()),
        (202, Some(number)),
        "{}",
        replayed.json
    );

    let unknown = admin(&app, "GET", "/admin/api/events/evt_nope").await;
    assert_eq!((unknown.status, unknown.code()), (404, "event_not_found"));
    assert!(
        unknown.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("evt_nope")
    );
    let unknown = admin(&app, "POST", "/admin/api/events/evt_nope/replay").await;
    assert_eq!(unknown.status, 404, "{}", unknown.json);

    // Another source holds the same id: which one must be said.
    store_other(&app, "acme", evt, "processed").await;
    for (method, path) in [
        ("GET", format!("/admin/api/events/{evt}")),
        ("POST", format!("/admin/api/events/{evt}/replay")),
    ] {
        let both = admin(&app, method, &path).await;
        assert_eq!(
            (both.status, both.code()),
            (409, "event_ambiguous"),
            "{}",
            both.json
        );
        let message = both.json["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("acme") && message.contains("stripe"),
            "{message}"
        );
        assert!(
            both.json["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("?source=")
        );
    }
    let acme = get(&app, &format!("/admin/api/events/{evt}?source=acme")).await;
    assert_eq!(acme["source"], "acme");
    let stripe = get(&app, &format!("/admin/api/events/{evt}?source=stripe")).await;
    assert_eq!(stripe["id"].as_i64(), Some(number));
    let replayed = admin(
        &app,
        "POST",
        &format!("/admin/api/events/{evt}/replay?source=acme"),
    )
    .await;
    assert_eq!(
        (replayed.status, replayed.json["id"] == acme["id"]),
        (202, true)
    );
    let nobody = admin(
        &app,
        "GET",
        &format!("/admin/api/events/{evt}?source=nobody"),
    )
    .await;
    assert_eq!(nobody.status, 404);
    assert!(
        nobody.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nobody")
    );
    // A number of another source's event is not that source's.
    let wrong = admin(
        &app,
        "GET",
        &format!("/admin/api/events/{number}?source=acme"),
    )
    .await;
    assert_eq!(wrong.status, 404);

    // Text a store cannot hold is refused, not passed on.
    for path in [
        "/admin/api/events/evt%00x",
        "/admin/api/events/1?source=a%00b",
    ] {
        let answer = admin(&app, "GET", path).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "validation_error"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_bulk_replay_selects_by_status_source_type_booking_and_time_and_a_dry_run_changes_nothing()
 {
    let app = admin_app(|s| s.processor.max_attempts = 1).await;
    // Two bookings paid (processed events), three events that fail, one of another source.
    let one = PaymentIds::new("booking-bulk-1");
    let two = PaymentIds::new("booking-bulk-2");
    let paid = [
        one.event("payment_intent.succeeded", now() - 5, &[]),
        one.event(
            "charge.refunded",
            now() - 4,
            &["amount_refunded=500".into()],
        ),
        two.event("payment_intent.succeeded", now() - 3, &[]),
    ];
    app.deliver_all(&paid).await;
    let paid: Vec<&str> = paid.iter().map(|e| e["id"].as_str().unwrap()).collect();
    for (id, kind) in [
        ("evt_bulk_a", "payment_intent.succeeded"),
        ("evt_bulk_b", "payment_intent.payment_failed"),
    ] {
        app.deliver(&unusable(id, kind)).await;
        app.settled(id).await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    app.deliver(&unusable("evt_bulk_c", "payment_intent.succeeded"))
        .await;
    app.settled("evt_bulk_c").await;
    store_other(&app, "acme", "evt_bulk_acme", "failed").await;
    let before = statuses(&app).await;
    let failed = before.iter().filter(|(_, _, s)| s == "failed").count();
    assert_eq!(failed, 4, "{before:?}");

    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let route = "/admin/api/events/replay";
    let cases: Vec<(String, Vec<&str>)> = vec![
        // Failed by default, oldest first.
        (
            route.into(),
            vec!["evt_bulk_a", "evt_bulk_b", "evt_bulk_c", "evt_bulk_acme"],
        ),
        (
            format!("{route}?source=stripe"),
            vec!["evt_bulk_a", "evt_bulk_b", "evt_bulk_c"],
        ),
        (format!("{route}?source=acme"), vec!["evt_bulk_acme"]),
        (
            format!("{route}?type=payment_intent.succeeded&source=stripe"),
            vec!["evt_bulk_a", "evt_bulk_c"],
        ),
        (
            format!("{route}?until={}", at(between)),
            vec!["evt_bulk_a", "evt_bulk_b"],
        ),
        (
            format!("{route}?since={}&source=stripe", at(between)),
            vec!["evt_bulk_c"],
        ),
        (
            format!("{route}?since=1h&source=stripe"),
            vec!["evt_bulk_a", "evt_bulk_b", "evt_bulk_c"],
        ),
        (format!("{route}?until=1h"), vec![]),
        (
            format!("{route}?status=processed&booking=booking-bulk-1"),
            vec![paid[0], paid[1]],
        ),
        (
            format!("{route}?status=processed&booking=booking-bulk-2"),
            vec![paid[2]],
        ),
        (
            format!("{route}?status=failed&booking=booking-bulk-1"),
            vec![],
        ),
        (format!("{route}?status=retrying"), vec![]),
    ];
    for (path, want) in &cases {
        let (total, sample) = dry_run(&app, path).await;
        assert_eq!(
            (total, &sample),
            (
                want.len() as i64,
                &want.iter().map(|w| w.to_string()).collect::<Vec<_>>()
            ),
            "{path}"
        );
    }
    // A sample is the first events; the total counts them all.
    let answer = admin(&app, "POST", &format!("{route}?dry_run=true&sample=1")).await;
    assert_eq!(answer.json["total"], 4);
    assert_eq!(answer.json["sample"].as_array().unwrap().len(), 1);
    assert_eq!(answer.json["selection"], json!({"status": "failed"}));
    // Nothing changed, and no job was started.
    assert_eq!(statuses(&app).await, before);
    assert_eq!(get(&app, "/admin/api/jobs").await, json!([]));

    // The job: answered at once with its selection and total, then walked to the end.
    let started = admin(
        &app,
        "POST",
        &format!("{route}?source=stripe&type=payment_intent.succeeded"),
    )
    .await;
    assert_eq!(started.status, 202, "{}", started.json);
    assert_eq!(started.json["kind"], "replay_events");
    assert_eq!(started.json["total"], 2);
    assert_eq!(
        started.json["selection"],
        json!({"status": "failed", "source": "stripe", "type": "payment_intent.succeeded"})
    );
    assert!(started.json["id"].as_str().unwrap().starts_with("job_"));
    let job = ended(&app, &started.json).await;
    assert_eq!(
        (&job["state"], &job["done"], &job["requeued"], &job["error"]),
        (&json!("finished"), &json!(2), &json!(2), &Value::Null),
        "{job}"
    );
    assert!(job["finished_at"].is_string());
    // The processor applied them again (and they failed again, attempt counted anew).
    eventually(
        Duration::from_secs(10),
        "replayed events applied",
        || async {
            let rows = get(&app, "/admin/api/events?status=failed&limit=500").await;
            rows["data"].as_array().unwrap().len() == 4
        },
    )
    .await;
    let listed = get(&app, "/admin/api/jobs").await;
    assert_eq!(listed[0]["id"], job["id"]);

    // By booking: the processed events of its payment, applied again, the payment unchanged.
    let started = admin(
        &app,
        "POST",
        &format!("{route}?status=processed&booking=booking-bulk-1"),
    )
    .await;
    let job = ended(&app, &started.json).await;
    assert_eq!(
        (&job["state"], &job["requeued"]),
        (&json!("finished"), &json!(2)),
        "{job}"
    );
    eventually(Duration::from_secs(10), "applied again", || async {
        statuses(&app).await == before
    })
    .await;
    let status = app.payment_status("booking-bulk-1").await;
    assert_eq!(
        (&status["status"], &status["amountRefunded"]),
        (&json!("partially_refunded"), &json!(500))
    );

    let unknown = admin(&app, "GET", "/admin/api/jobs/job_nope").await;
    assert_eq!((unknown.status, unknown.code()), (404, "job_not_found"));
    let cancelled = admin(
        &app,
        "POST",
        &format!("/admin/api/jobs/{}/cancel", job["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        (cancelled.status, &cancelled.json["state"]),
        (200, &json!("finished"))
    );
}

#[tokio::test]
async fn a_hostile_selection_is_refused_naming_the_parameter() {
    let app = admin_app(|_| {}).await;
    for (path, field) in [
        ("/admin/api/events/replay?status=received", "status"),
        ("/admin/api/events/replay?since=yesterday", "since"),
        ("/admin/api/events/replay?until=99999999999999h", "until"),
        ("/admin/api/events/replay?booking=a%00b", "booking"),
        ("/admin/api/events/replay?dry_run=maybe", "dry_run"),
        ("/admin/api/events/replay?dry_run=true&sample=501", "sample"),
        ("/admin/api/deliveries/retry?status=delivered", "status"),
        ("/admin/api/deliveries/retry?target=nope", "target"),
        ("/admin/api/deliveries/retry?since=2026-13-01", "since"),
        ("/admin/api/deliveries/retry?event=a%01", "event"),
    ] {
        let answer = admin(&app, "POST", path).await;
        assert_eq!(
            (
                answer.status,
                answer.code(),
                answer.json["error"]["field"].as_str()
            ),
            (400, "validation_error", Some(field)),
            "{path}: {}",
            answer.json
        );
    }
    let answer = admin(
        &app,
        "POST",
        "/admin/api/deliveries/retry?event=evt_none&dry_run=true",
    )
    .await;
    assert_eq!((answer.status, answer.code()), (404, "event_not_found"));
    let answer = admin(&app, "GET", "/admin/api/jobs/job%00").await;
    assert_eq!(answer.status, 400);
}

/// A booking service that refuses (400: dead at once) until told otherwise.
fn refusing_target(url: String) -> TargetSettings {
    TargetSettings {
        name: "booking-service".into(),
        kind: TargetKind::BookingStatus,
        url,
        token: Some(Secret::new("t")),
        secret: None,
        events: Vec::new(),
        retry_schedule: vec![Duration::ZERO],
        timeout: Duration::from_secs(5),
        concurrency: 4,
        circuit_failures: 100,
        circuit_open: Duration::from_secs(1),
    }
}

#[tokio::test]
async fn a_bulk_retry_selects_by_target_booking_event_and_time_and_a_dry_run_changes_nothing() {
    let receiver = Receiver::start(|_, _| Reply::status(400)).await;
    let url = receiver.url.clone();
    let app = admin_app(move |s| s.targets = vec![refusing_target(url)]).await;
    let one = PaymentIds::new("booking-retry-1");
    let two = PaymentIds::new("booking-retry-2");
    let first = one.event("payment_intent.succeeded", now() - 3, &[]);
    app.deliver_all(std::slice::from_ref(&first)).await;
    let dead = |n: usize| {
        let app = &app;
        async move {
            get(app, "/admin/api/deliveries?status=dead").await["data"]
                .as_array()
                .is_some_and(|d| d.len() == n)
        }
    };
    eventually(
        Duration::from_secs(10),
        "the first notification dead",
        || dead(1),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    app.deliver_all(&[
        one.event(
            "charge.refunded",
            now() - 2,
            &["amount_refunded=500".into()],
        ),
        two.event("payment_intent.succeeded", now() - 1, &[]),
    ])
    .await;
    eventually(Duration::from_secs(10), "three notifications dead", || {
        dead(3)
    })
    .await;
    let before = get(&app, "/admin/api/deliveries?limit=500").await;
    let ntf = |i: usize| {
        before["data"][i]["notification_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Newest first in the listing: [2] is the first payment's, [0] the second booking's.
    let (first_ntf, refund_ntf, other_ntf) = (ntf(2), ntf(1), ntf(0));
    let evt = first["id"].as_str().unwrap();

    let route = "/admin/api/deliveries/retry";
    for (path, want) in [
        (route.to_string(), vec![&first_ntf, &refund_ntf, &other_ntf]),
        (
            format!("{route}?target=booking-service"),
            vec![&first_ntf, &refund_ntf, &other_ntf],
        ),
        (
            format!("{route}?booking=booking-retry-1"),
            vec![&first_ntf, &refund_ntf],
        ),
        (format!("{route}?event={evt}"), vec![&first_ntf]),
        (
            format!("{route}?event={evt}&source=stripe"),
            vec![&first_ntf],
        ),
        (
            format!("{route}?since={between}"),
            vec![&refund_ntf, &other_ntf],
        ),
        (format!("{route}?until={between}"), vec![&first_ntf]),
        (format!("{route}?status=pending"), vec![]),
    ] {
        let (total, sample) = dry_run(&app, &path).await;
        let want: Vec<String> = want.into_iter().cloned().collect();
        assert_eq!((total, &sample), (want.len() as i64, &want), "{path}");
    }
    assert_eq!(get(&app, "/admin/api/deliveries?limit=500").await, before);
    assert_eq!(get(&app, "/admin/api/jobs").await, json!([]));

    // The booking service is back: the first booking's are retried and delivered.
    receiver.set_script(|_, _| Reply::status(200));
    let started = admin(&app, "POST", &format!("{route}?booking=booking-retry-1")).await;
    assert_eq!(started.status, 202, "{}", started.json);
    assert_eq!(started.json["kind"], "retry_deliveries");
    assert_eq!(
        started.json["selection"],
        json!({"status": "dead", "booking": "booking-retry-1"})
    );
    let job = ended(&app, &started.json).await;
    assert_eq!(
        (&job["state"], &job["total"], &job["requeued"]),
        (&json!("finished"), &json!(2), &json!(2))
    );
    eventually(Duration::from_secs(10), "both delivered", || async {
        get(&app, "/admin/api/deliveries?status=delivered").await["data"]
            .as_array()
            .is_some_and(|d| d.len() == 2)
    })
    .await;
    let still_dead = get(&app, "/admin/api/deliveries?status=dead").await;
    assert_eq!(
        still_dead["data"][0]["notification_id"].as_str(),
        Some(other_ntf.as_str())
    );
}
