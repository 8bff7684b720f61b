//! `GET /admin/api/events/stream`, the server-sent events `payhook listen` follows: where it
//! starts (`after`, `Last-Event-ID`), what it carries (the exact stored body, the row number as
//! the SSE id), its filters, its `timeout`, and its refusals. Runs on SQLite, or PostgreSQL with
//! TEST_DATABASE_URL. (`tests/process_listen.rs` follows it across a restart.)

mod common;

use base64::Engine;
use common::*;
use serde_json::Value;

/// The `event: webhook` messages of a finished stream, as (SSE id, data).
fn webhooks(body: &str) -> Vec<(i64, Value)> {
    body.split("\n\n")
        .filter(|m| m.contains("event: webhook"))
        .map(|m| {
            let field = |name: &str| {
                m.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or_default()
                    .to_string()
            };
            (
                field("id: ").parse().unwrap(),
                serde_json::from_str(&field("data: ")).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_stream_carries_each_stored_body_from_where_the_client_resumes_and_then_ends() {
    let app = spawn_app().await;
    let bodies: Vec<String> = (1..=3)
        .map(|i| {
            PaymentIds::new(&format!("booking-stream-{i}"))
                .event("payment_intent.succeeded", now(), &[])
                .to_string()
        })
        .collect();
    for body in &bodies {
        assert_eq!(app.send(body).await.status, 200);
    }
    let rows: Vec<i64> = {
        let mut rows = Vec::new();
        for body in &bodies {
            let id: Value = serde_json::from_str(body).unwrap();
            let row = app
                .payhook
                .store
                .event("stripe", id["id"].as_str().unwrap())
                .await
                .unwrap()
                .unwrap();
            rows.push(row.id);
        }
        rows
    };

    let started = std::time::Instant::now();
    let answer = app
        .client
        .get(format!(
            "{}/admin/api/events/stream?after=0&timeout=1",
            app.admin
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "text/event-stream");
    let body = answer.text().await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the timeout ends it"
    );
    assert!(body.contains("event: ready\ndata: {\"after\":0}"), "{body}");
    let got = webhooks(&body);
    assert_eq!(got.iter().map(|(id, _)| *id).collect::<Vec<_>>(), rows);
    for ((id, data), sent) in got.iter().zip(&bodies) {
        assert_eq!(data["id"], *id);
        assert_eq!(data["source"], "stripe");
        assert_eq!(data["type"], "payment_intent.succeeded");
        let stored = base64::engine::general_purpose::STANDARD
            .decode(data["body_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(stored, sent.as_bytes(), "the exact stored body");
    }

    // An EventSource reconnecting says where it was: Last-Event-ID wins over `after`.
    let resumed = app
        .client
        .get(format!(
            "{}/admin/api/events/stream?after=0&timeout=1",
            app.admin
        ))
        .header("last-event-id", rows[0].to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        webhooks(&resumed)
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        rows[1..]
    );
    // Without `after`: only what is stored from now on.
    let fresh = app
        .client
        .get(format!("{}/admin/api/events/stream?timeout=1", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(webhooks(&fresh).is_empty(), "{fresh}");
    assert!(fresh.contains(&format!("\"after\":{}", rows[2])), "{fresh}");
    // Another source's events only: none here.
    let other = app
        .client
        .get(format!(
            "{}/admin/api/events/stream?after=0&timeout=1&source=paypal",
            app.admin
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(webhooks(&other).is_empty(), "{other}");
}

#[tokio::test]
async fn a_bad_start_or_timeout_is_refused_naming_it() {
    let app = spawn_app().await;
    for (query, field) in [
        ("after=abc", "after"),
        ("after=-1", "after"),
        ("timeout=0", "timeout"),
        ("timeout=86401", "timeout"),
    ] {
        let answer = Answer::read(
            app.client
                .get(format!("{}/admin/api/events/stream?{query}", app.admin))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (answer.status, answer.json["error"]["field"].as_str()),
            (400, Some(field)),
            "{query}: {}",
            answer.json
        );
    }
    let answer = Answer::read(
        app.client
            .get(format!("{}/admin/api/events/stream", app.admin))
            .header("last-event-id", "yesterday")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((answer.status, answer.code()), (400, "validation_error"));
    assert!(
        answer.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Last-Event-ID"),
        "{}",
        answer.json
    );
}
