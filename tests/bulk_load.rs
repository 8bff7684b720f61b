//! A bulk replay of 50,000 stored events while webhooks keep arriving: the job walks them in
//! short chunks and the processor applies them again, and ingest's acknowledgements stay quick.
//! Prints the acknowledgement latencies without the replay and during it (run with
//! `--nocapture` to read them; docs/benchmarks.md keeps a run's figures). On SQLite or
//! PostgreSQL (`TEST_DATABASE_URL`).

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::receiver::eventually;
use common::*;
use payhook::domain::Secret;
use serde_json::Value;

const ADMIN_TOKEN: &str = "admin-token-for-tests";

/// Events stored before the replay.
const STORED: i64 = 50_000;

/// Stores `STORED` failed events (each names no payment, so applying it fails again) received an
/// hour ago, in one statement.
async fn fill(app: &TestApp) {
    let body = "'{\"id\":\"evt_load_' || i || '\",\"object\":\"event\",\"type\":\"payment_intent.succeeded\",\
                \"created\":1700000000,\"data\":{\"object\":{\"object\":\"payment_intent\",\"amount\":100}}}'";
    let sql = if is_postgres(&app.store.url) {
        format!(
            "INSERT INTO webhook_events (source, event_id, event_type, status, payload, headers,
                 received_at, attempts, last_error)
             SELECT 'stripe', 'evt_load_' || i, 'payment_intent.succeeded', 'failed',
                 convert_to({body}, 'UTF8'), '{{}}', now() - interval '1 hour', 1, 'names no payment'
             FROM generate_series(1, {STORED}) AS n(i)"
        )
    } else {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {STORED})
             INSERT INTO webhook_events (source, event_id, event_type, status, payload, headers,
                 received_at, attempts, last_error)
             SELECT 'stripe', 'evt_load_' || i, 'payment_intent.succeeded', 'failed',
                 CAST({body} AS BLOB), '{{}}',
                 strftime('%Y-%m-%dT%H:%M:%S.000000000Z', 'now', '-1 hour'), 1, 'names no payment'
             FROM n"
        )
    };
    app.execute(&[sql]).await;
}

/// Sends signed payment events one after another, 2 ms apart, until `stop`; each one's
/// acknowledgement time. Every acknowledgement must be a 200.
fn ingest(
    app: &Arc<TestApp>,
    tag: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Duration>> {
    let app = app.clone();
    tokio::spawn(async move {
        let mut took = Vec::new();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let event = PaymentIds::new(&format!("booking-load-{tag}-{n}")).event(
                "payment_intent.succeeded",
                now(),
                &[],
            );
            let body = event.to_string();
            let started = Instant::now();
            let answer = app.send(&body).await;
            took.push(started.elapsed());
            assert_eq!(answer.status, 200, "{}", answer.json);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        took
    })
}

/// (p50, p99, max) in milliseconds.
fn percentiles(mut took: Vec<Duration>) -> (f64, f64, f64) {
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    (at(0.50), at(0.99), at(1.0))
}

async fn admin_get(app: &TestApp, path: &str) -> Value {
    let answer = app
        .client
        .get(format!("{}{path}", app.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    answer.json().await.unwrap()
}

/// Whether a replayed event still waits for the processor (the events ingested meanwhile are
/// newer than half an hour ago).
async fn replayed_waiting(app: &TestApp) -> bool {
    let cutoff = (chrono::Utc::now() - chrono::Duration::minutes(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let path = format!("/admin/api/events?status=received&until={cutoff}&limit=1");
    admin_get(app, &path).await["data"]
        .as_array()
        .is_none_or(|rows| !rows.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_50_000_events_keeps_ingest_acknowledgements_quick() {
    let app = Arc::new(spawn_app_with(|s| s.admin_token = Some(Secret::new(ADMIN_TOKEN))).await);
    fill(&app).await;
    assert_eq!(app.count().await, STORED);

    // Ingest alone, for a baseline.
    let stop = Arc::new(AtomicBool::new(false));
    let baseline = ingest(&app, "base", stop.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let baseline = baseline.await.unwrap();

    // Ingest while every stored event is replayed: from the job's start until the processor has
    // applied them all again (they fail again: each names no payment).
    let stop = Arc::new(AtomicBool::new(false));
    let during = ingest(&app, "replay", stop.clone());
    let started = Instant::now();
    let answer = app
        .client
        .post(format!(
            "{}/admin/api/events/replay?status=failed&until=30m",
            app.admin
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let job: Value = answer.json().await.unwrap();
    assert_eq!(job["total"], STORED, "{job}");
    let path = format!("/admin/api/jobs/{}", job["id"].as_str().unwrap());
    eventually(Duration::from_secs(300), "the job ends", || async {
        admin_get(&app, &path).await["state"] != "running"
    })
    .await;
    let requeued_in = started.elapsed();
    let job = admin_get(&app, &path).await;
    assert_eq!(
        (&job["state"], &job["done"], &job["requeued"]),
        (
            &Value::from("finished"),
            &Value::from(STORED),
            &Value::from(STORED)
        ),
        "{job}"
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    while replayed_waiting(&app).await {
        assert!(
            Instant::now() < deadline,
            "the replayed events were not applied in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let applied_in = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let during = during.await.unwrap();

    let (b50, b99, bmax) = percentiles(baseline.clone());
    let (d50, d99, dmax) = percentiles(during.clone());
    let _ = writeln!(
        std::io::stderr(),
        "bulk replay of {STORED} events on {}: requeued in {:.1} s, applied again in {:.1} s\n\
         ingest acknowledgements without the replay: {} webhooks, p50 {b50:.1} ms, p99 {b99:.1} ms, max {bmax:.1} ms\n\
         ingest acknowledgements during the replay:  {} webhooks, p50 {d50:.1} ms, p99 {d99:.1} ms, max {dmax:.1} ms",
        app.payhook.store.backend(),
        requeued_in.as_secs_f64(),
        applied_in.as_secs_f64(),
        baseline.len(),
        during.len(),
    );
    // Generous: a debug build on a shared machine. Blocked ingest would be seconds.
    assert!(d99 < 1_000.0, "p99 during the replay: {d99:.1} ms");
    assert!(
        d50 < 100.0_f64.max(10.0 * b50),
        "p50 during the replay: {d50:.1} ms (baseline {b50:.1} ms)"
    );
}
