//! Webhook ingest against the real app on port 0: verification, storage, every error case, rotation,
//! duplicates, concurrency and store failure. Runs on SQLite, or PostgreSQL with TEST_DATABASE_URL.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;
use futures_util::future::join_all;
use payhook::domain::Secret;
use serde_json::json;

#[tokio::test]
async fn a_signed_event_is_stored_byte_for_byte_then_acknowledged() {
    let app = spawn_app().await;
    // Odd spacing and key order: payhook must keep the bytes exactly as signed.
    let body = r#"{ "type":"payment_intent.succeeded",  "id":"evt_exact_1", "data":{"object":{"amount":2000}} }"#;
    let answer = app.send(body).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(
        answer.json,
        json!({"received": true, "event_id": "evt_exact_1", "duplicate": false})
    );

    let row = app
        .payhook
        .store
        .event("stripe", "evt_exact_1")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(row.payload, body.as_bytes());
    assert_eq!(row.event_type, "payment_intent.succeeded");
    assert!((chrono::Utc::now() - row.received_at).num_seconds().abs() < 60);
    let headers: serde_json::Value = serde_json::from_str(&row.headers).unwrap();
    let sig = headers["stripe-signature"]
        .as_str()
        .expect("signature header kept");
    assert!(
        sig.starts_with("t=") && sig.ends_with("v1=[redacted]"),
        "{sig}"
    );
    assert!(!row.headers.contains(SECRET));
    assert_eq!(headers["content-type"], "application/json");
}

/// PostgreSQL compresses a payload over ~2 KB as it stores it, as most real events are: with lz4,
/// which costs far less CPU than its default, and the bytes read back are the bytes signed.
#[tokio::test]
async fn on_postgres_a_large_payload_is_stored_with_lz4_and_read_back_exactly() {
    let app = spawn_app().await;
    if !is_postgres(&app.store.url) {
        skipped("SQLite does not compress values");
        return;
    }
    let lines: Vec<String> = (0..120)
        .map(|i| {
            format!(
                r#"{{"id":"li_{i:04}","amount":{},"description":"line {i}"}}"#,
                i * 137
            )
        })
        .collect();
    let body = format!(
        r#"{{"id":"evt_large_1","type":"payment_intent.succeeded","data":{{"object":{{"lines":[{}]}}}}}}"#,
        lines.join(",")
    );
    assert!(body.len() > 6000, "over the size PostgreSQL compresses");
    let answer = app.send(&body).await;
    assert_eq!(answer.status, 200, "{}", answer.json);

    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&app.store.url).await.unwrap();
    let (compression, stored): (Option<String>, i32) = sqlx::query_as(
        "SELECT pg_column_compression(payload), pg_column_size(payload)
         FROM webhook_events WHERE event_id = 'evt_large_1'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    // lz4 where the server was built with it (the migration asks the same question).
    let has_lz4: bool = sqlx::query_scalar(
        "SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let expected = if has_lz4 { "lz4" } else { "pglz" };
    assert_eq!(compression.as_deref(), Some(expected));
    assert!((stored as usize) < body.len(), "{stored} bytes stored");
    let row = app
        .payhook
        .store
        .event("stripe", "evt_large_1")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(row.payload, body.as_bytes());
}

#[tokio::test]
async fn the_legacy_alias_route_stores_under_the_stripe_source() {
    let app = spawn_app().await;
    let body = event_body("evt_alias_1", "checkout.session.completed");
    let sig = stripe_signature(body.as_bytes(), SECRET, now());
    let answer = app
        .post("/api/v1/payment-gateway/webhooks/stripe", body, Some(&sig))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert!(
        app.payhook
            .store
            .event("stripe", "evt_alias_1")
            .await
            .unwrap()
            .is_some()
    );
}

/// Every refusal of PRODUCT.md's table: status, code, and nothing stored.
#[tokio::test]
async fn every_refusal_has_its_status_and_code_and_stores_nothing() {
    let app = spawn_app().await;
    let body = event_body("evt_refused", "payment_intent.succeeded");
    let t = now();
    let good = stripe_signature(body.as_bytes(), SECRET, t);
    let cases: Vec<(&str, String, Option<String>, u16, &str)> = vec![
        ("no signature", body.clone(), None, 400, "missing_signature"),
        (
            "wrong secret",
            body.clone(),
            Some(stripe_signature(
                body.as_bytes(),
                "whsec_some_other_secret",
                t,
            )),
            400,
            "invalid_signature",
        ),
        (
            "tampered body",
            body.replace("2000", "1"),
            Some(good.clone()),
            400,
            "invalid_signature",
        ),
        (
            "re-encoded JSON",
            serde_json::to_string_pretty(
                &serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            )
            .unwrap(),
            Some(good.clone()),
            400,
            "invalid_signature",
        ),
        (
            "stale timestamp",
            body.clone(),
            Some(stripe_signature(body.as_bytes(), SECRET, t - 301)),
            400,
            "timestamp_out_of_tolerance",
        ),
        (
            "future timestamp",
            body.clone(),
            Some(stripe_signature(body.as_bytes(), SECRET, t + 3600)),
            400,
            "timestamp_out_of_tolerance",
        ),
        (
            "header garbage",
            body.clone(),
            Some("garbage".into()),
            400,
            "malformed_signature_header",
        ),
        (
            "no timestamp",
            body.clone(),
            Some(good.split_once(',').unwrap().1.to_string()),
            400,
            "malformed_signature_header",
        ),
        (
            "timestamp not a number",
            body.clone(),
            Some(good.replacen(&format!("t={t}"), "t=soon", 1)),
            400,
            "malformed_signature_header",
        ),
        (
            "no v1",
            body.clone(),
            Some(format!("t={t}")),
            400,
            "malformed_signature_header",
        ),
    ];
    for (name, body, sig, status, code) in cases {
        let answer = app.post("/webhooks/stripe", body, sig.as_deref()).await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{name}: {}",
            answer.json
        );
        assert!(answer.json["error"]["message"].is_string(), "{name}");
        assert!(answer.json["error"]["hint"].is_string(), "{name}");
    }
    let answer = app.send("").await;
    assert_eq!((answer.status, answer.code()), (400, "malformed_payload"));
    // Correctly signed bodies that are not events.
    for body in [
        "not json",
        "[1,2]",
        r#"{"type":"x"}"#,
        r#"{"id":"evt_1"}"#,
        r#"{"id":7,"type":"x"}"#,
        r#"{"id":"evt_1","type":"x""#,
    ] {
        let answer = app.send(body).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "malformed_payload"),
            "{body}: {}",
            answer.json
        );
    }
    let answer = app
        .post("/webhooks/paypal", body.clone(), Some(&good))
        .await;
    assert_eq!((answer.status, answer.code()), (404, "unknown_source"));
    assert_eq!(app.count().await, 0, "a refused webhook was stored");
}

#[tokio::test]
async fn a_signature_header_with_non_ascii_bytes_is_malformed() {
    let app = spawn_app().await;
    let body = event_body("evt_obs_text", "payment_intent.succeeded");
    let value = reqwest::header::HeaderValue::from_bytes(b"t=1700000000,v1=\xff\xfe").unwrap();
    let response = app
        .client
        .post(format!("{}/webhooks/stripe", app.base))
        .header("stripe-signature", value)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["error"]["code"], "malformed_signature_header");
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn a_signed_body_with_invalid_utf8_is_malformed_and_does_not_fail_its_batch() {
    let app = spawn_app().await;
    let bad: &[u8] = b"{\"id\":\"evt_bad_utf8\",\"type\":\"x\",\"note\":\"caf\xe9\"}";
    let sig = stripe_signature(bad, SECRET, now());
    let good = event_body("evt_good_neighbour", "payment_intent.succeeded");
    let (bad, good) = tokio::join!(
        app.post("/webhooks/stripe", bad.to_vec(), Some(&sig)),
        app.send(&good)
    );
    assert_eq!(
        (bad.status, bad.code()),
        (400, "malformed_payload"),
        "{}",
        bad.json
    );
    assert_eq!(good.status, 200, "{}", good.json);
    assert_eq!(app.count().await, 1);
}

#[tokio::test]
async fn the_invalid_signature_hint_points_at_the_raw_body() {
    let app = spawn_app().await;
    let body = event_body("evt_hint", "payment_intent.succeeded");
    let sig = stripe_signature(body.as_bytes(), "whsec_wrong_secret_here", now());
    let answer = app.post("/webhooks/stripe", body, Some(&sig)).await;
    let hint = answer.json["error"]["hint"].as_str().unwrap();
    assert!(
        hint.contains("raw body") && hint.contains("secret"),
        "{hint}"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_or_without_content_length() {
    let app = spawn_app_with(|s| s.ingest.max_body_bytes = 4096).await;
    let padding = "x".repeat(5000);
    let body =
        json!({"id": "evt_big", "type": "payment_intent.succeeded", "pad": padding}).to_string();
    let sig = stripe_signature(body.as_bytes(), SECRET, now());
    let answer = app.post("/webhooks/stripe", body.clone(), Some(&sig)).await;
    assert_eq!((answer.status, answer.code()), (413, "payload_too_large"));

    // Chunked, so the size is only known while reading.
    let addr = app.payhook.public_addr;
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /webhooks/stripe HTTP/1.1\r\nHost: {addr}\r\nStripe-Signature: {sig}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        for chunk in body.as_bytes().chunks(1000) {
            let _ = stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes());
            let _ = stream.write_all(chunk);
            let _ = stream.write_all(b"\r\n");
        }
        let _ = stream.write_all(b"0\r\n\r\n");
        let mut out = String::new();
        let _ = stream.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("payload_too_large"), "{response}");

    // Just under the limit is fine.
    let ok = json!({"id": "evt_small", "type": "x", "pad": "x".repeat(3000)}).to_string();
    assert_eq!(app.send(&ok).await.status, 200);
    assert_eq!(app.count().await, 1);
}

/// A client that writes its whole oversized body before reading must still read the 413: payhook
/// reads and throws away a bounded amount, because closing a socket with unread bytes resets the
/// connection and the client then sees a broken pipe instead of the answer.
#[tokio::test]
async fn a_client_still_sending_an_oversized_body_reads_the_413() {
    let app = spawn_app_with(|s| s.ingest.max_body_bytes = 4096).await;
    let addr = app.payhook.public_addr;
    for round in 0..5 {
        let body = vec![b'x'; 256 * 1024];
        let response = tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            let head = format!(
                "POST /webhooks/stripe HTTP/1.1\r\nHost: {addr}\r\nStripe-Signature: t=1,v1=00\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            // In pieces with pauses, as a slow uplink would: the answer comes while it still sends.
            let mut sent = Ok(());
            for piece in body.chunks(16 * 1024) {
                sent = stream.write_all(piece);
                if sent.is_err() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            let mut out = String::new();
            let read = stream.read_to_string(&mut out);
            (sent.is_ok(), read.map_err(|e| e.to_string()), out)
        })
        .await
        .unwrap();
        let (sent, read, out) = response;
        assert!(
            sent,
            "round {round}: the body could not be sent: {read:?} {out}"
        );
        assert!(read.is_ok(), "round {round}: {read:?}");
        assert!(out.starts_with("HTTP/1.1 413"), "round {round}: {out}");
        assert!(out.contains("payload_too_large"), "{out}");
    }
    // Several megabytes through an HTTP client library, as a test of a provider's retry would
    // send them: it reads the 413 too.
    for size in [3 << 20, 6 << 20] {
        let answer = app
            .post("/webhooks/stripe", "x".repeat(size), Some("t=1,v1=00"))
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (413, "payload_too_large"),
            "{size}"
        );
    }
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn during_a_rotation_every_listed_secret_is_accepted() {
    let app = spawn_app_with(|s| {
        s.stripe.webhook_secrets = vec![
            Secret::new("whsec_new_secret_aaaa"),
            Secret::new("whsec_old_secret_bbbb"),
        ];
    })
    .await;
    for (id, secret) in [
        ("evt_rot_new", "whsec_new_secret_aaaa"),
        ("evt_rot_old", "whsec_old_secret_bbbb"),
    ] {
        let body = event_body(id, "payment_intent.succeeded");
        let sig = stripe_signature(body.as_bytes(), secret, now());
        let answer = app.post("/webhooks/stripe", body, Some(&sig)).await;
        assert_eq!(answer.status, 200, "{id}: {}", answer.json);
    }
    // Stripe sends one v1 per active secret while it rolls a secret; one matching is enough.
    let body = event_body("evt_rot_both", "payment_intent.succeeded");
    let t = now();
    let unknown = stripe_signature(body.as_bytes(), "whsec_unknown_cccc", t);
    let known = stripe_signature(body.as_bytes(), "whsec_old_secret_bbbb", t);
    let both = format!("{unknown},{}", known.split_once(',').unwrap().1);
    assert_eq!(
        app.post("/webhooks/stripe", body, Some(&both)).await.status,
        200
    );

    let body = event_body("evt_rot_retired", "payment_intent.succeeded");
    let sig = stripe_signature(body.as_bytes(), "whsec_retired_dddd", now());
    assert_eq!(
        app.post("/webhooks/stripe", body, Some(&sig)).await.code(),
        "invalid_signature"
    );
    assert_eq!(app.count().await, 3);
}

#[tokio::test]
async fn a_redelivered_event_is_acknowledged_as_a_duplicate_and_kept_once() {
    let app = spawn_app().await;
    let body = event_body("evt_dup_seq", "payment_intent.succeeded");
    assert_eq!(app.send(&body).await.json["duplicate"], false);
    // Stripe re-signs each retry with a new timestamp.
    let sig = stripe_signature(body.as_bytes(), SECRET, now() - 10);
    let again = app.post("/webhooks/stripe", body.clone(), Some(&sig)).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.json,
        json!({"received": true, "event_id": "evt_dup_seq", "duplicate": true})
    );
    assert_eq!(app.count().await, 1);
}

#[tokio::test]
async fn a_hundred_concurrent_copies_leave_one_row() {
    let app = spawn_app().await;
    let body = event_body("evt_dup_concurrent", "charge.refunded");
    let sends = (0..100).map(|_| app.send(&body));
    let answers = join_all(sends).await;
    assert!(
        answers.iter().all(|a| a.status == 200),
        "every copy acknowledged"
    );
    let first = answers
        .iter()
        .filter(|a| a.json["duplicate"] == false)
        .count();
    assert_eq!(first, 1, "exactly one copy is the original");
    assert_eq!(app.count().await, 1);
}

#[tokio::test]
async fn concurrent_distinct_events_are_all_stored() {
    let app = spawn_app().await;
    let bodies: Vec<String> = (0..300)
        .map(|i| event_body(&format!("evt_many_{i}"), "payment_intent.succeeded"))
        .collect();
    let answers = join_all(bodies.iter().map(|b| app.send(b))).await;
    assert!(
        answers
            .iter()
            .all(|a| a.status == 200 && a.json["duplicate"] == false)
    );
    let ids: HashSet<_> = answers
        .iter()
        .map(|a| a.json["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 300);
    assert_eq!(app.count().await, 300);
}

#[tokio::test]
async fn when_the_store_fails_the_answer_is_503_and_the_retry_succeeds() {
    let app = spawn_app().await;
    app.break_inbox_writes(true).await;
    let body = event_body("evt_store_down", "payment_intent.succeeded");
    let answer = app.send(&body).await;
    assert_eq!(
        (answer.status, answer.code()),
        (503, "store_unavailable"),
        "{}",
        answer.json
    );
    assert_eq!(answer.retry_after.as_deref(), Some("5"));
    app.break_inbox_writes(false).await;
    assert_eq!(app.count().await, 0);
    // The provider's retry after the outage is stored as new.
    let retry = app.send(&body).await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.json["duplicate"], false);
    assert_eq!(app.count().await, 1);
}

#[tokio::test]
async fn a_source_with_an_allow_list_refuses_other_addresses() {
    let app =
        spawn_app_with(|s| s.stripe.allowed_cidrs = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let answer = app
        .send(&event_body("evt_ip", "payment_intent.succeeded"))
        .await;
    assert_eq!((answer.status, answer.code()), (403, "ip_not_allowed"));
    let open =
        spawn_app_with(|s| s.stripe.allowed_cidrs = vec!["127.0.0.0/8".parse().unwrap()]).await;
    assert_eq!(
        open.send(&event_body("evt_ip", "payment_intent.succeeded"))
            .await
            .status,
        200
    );
    assert_eq!(app.count().await, 0);
}

/// Every 405 says which methods the route takes (`Allow`, RFC 9110 15.5.6); a source name that is
/// not UTF-8 is an unknown source, in the JSON every refusal has.
#[tokio::test]
async fn a_webhook_route_names_its_methods_and_odd_names_are_unknown_sources() {
    let app = spawn_app().await;
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let response = app
            .client
            .request(
                method.parse().unwrap(),
                format!("{}/webhooks/stripe", app.base),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method}");
        let allow = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_string());
        let allow = allow.unwrap_or_else(|| panic!("{method}: no Allow"));
        assert!(allow.contains("POST"), "{method}: {allow}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed", "{method}");
    }
    let answer = Answer::read(
        app.client
            .post(format!("{}/webhooks/%FF%FE", app.base))
            .body(event_body("evt_odd", "payment_intent.succeeded"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((answer.status, answer.code()), (404, "unknown_source"));
    assert_eq!(app.count().await, 0);
}

#[tokio::test]
async fn a_client_over_the_rate_limit_is_told_when_to_retry() {
    let app = spawn_app_with(|s| s.ingest.rate_limit_per_ip = 2).await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let answer = app.send(&event_body(&format!("evt_rl_{i}"), "x")).await;
        statuses.push(answer.status);
        if answer.status == 429 {
            assert_eq!(answer.code(), "rate_limited");
            assert!(answer.retry_after.is_some());
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
    assert_eq!(app.count().await, 2);
}

/// Behind a trusted proxy (here loopback), the client is the last `X-Forwarded-For` address that
/// is not a proxy: the allow-list and the rate limit apply to it. From a peer that is not trusted,
/// `X-Forwarded-For` is ignored, so a client cannot claim an allowed address.
#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_allowed_and_rate_limited() {
    let send_from = |app: &TestApp, forwarded: &'static str, id: &str| {
        let body = event_body(id, "payment_intent.succeeded");
        let sig = stripe_signature(body.as_bytes(), SECRET, now());
        let request = app
            .client
            .post(format!("{}/webhooks/stripe", app.base))
            .header("stripe-signature", sig)
            .header("x-forwarded-for", forwarded)
            .body(body);
        async move { Answer::read(request.send().await.unwrap()).await }
    };
    let proxied = spawn_app_with(|s| {
        s.ingest.trusted_proxies = vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        s.stripe.allowed_cidrs = vec!["203.0.113.0/24".parse().unwrap()];
        s.ingest.rate_limit_per_ip = 1;
    })
    .await;
    // A client in the allowed network, through two proxies (the first one trusted too).
    let answer = send_from(&proxied, "203.0.113.7, 10.1.2.3", "evt_fwd_1").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    // Anything it puts before its own address is not believed.
    let answer = send_from(&proxied, "203.0.113.99, 198.51.100.4", "evt_fwd_2").await;
    assert_eq!((answer.status, answer.code()), (403, "ip_not_allowed"));
    // The rate limit counts per forwarded client: a second from .7 waits, .8 does not.
    let answer = send_from(&proxied, "203.0.113.7", "evt_fwd_3").await;
    assert_eq!((answer.status, answer.code()), (429, "rate_limited"));
    let answer = send_from(&proxied, "203.0.113.8", "evt_fwd_4").await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    // As proxies write them: IPv4-mapped IPv6 (a dual-stack listener), with a port, bracketed.
    for (i, forwarded) in ["::ffff:203.0.113.9", "203.0.113.10:41234", "[203.0.113.11]"]
        .into_iter()
        .enumerate()
    {
        let answer = send_from(&proxied, forwarded, &format!("evt_fwd_form_{i}")).await;
        assert_eq!(answer.status, 200, "{forwarded}: {}", answer.json);
    }
    assert_eq!(proxied.count().await, 5);

    // No trusted proxy: the header is the client's word, and ignored.
    let direct = spawn_app_with(|s| {
        s.stripe.allowed_cidrs = vec!["203.0.113.0/24".parse().unwrap()];
    })
    .await;
    let answer = send_from(&direct, "203.0.113.7", "evt_fwd_5").await;
    assert_eq!((answer.status, answer.code()), (403, "ip_not_allowed"));
    assert_eq!(direct.count().await, 0);
}

#[tokio::test]
async fn health_and_readiness_answer_on_both_listeners() {
    let app = spawn_app().await;
    for base in [&app.base, &app.admin] {
        for path in ["/healthz", "/readyz"] {
            let response = app
                .client
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{base}{path}");
        }
    }
    let missing = app
        .client
        .get(format!("{}/nowhere", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_generated_sandbox_secret_is_kept_across_restarts() {
    let store = fresh_store().await;
    let mut settings = test_settings(&store.url);
    settings.stripe.webhook_secrets.clear();
    let first = payhook::app::Payhook::start(settings.clone())
        .await
        .unwrap();
    let secret = first.generated_secret.clone().expect("a generated secret");
    assert!(secret.expose().starts_with("whsec_"));
    first.shutdown().await.unwrap();
    let second = payhook::app::Payhook::start(settings).await.unwrap();
    assert_eq!(second.generated_secret, Some(secret));
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn on_sqlite_stored_webhooks_reach_the_database_file_while_payhook_runs() {
    let app = spawn_app().await;
    if is_postgres(&app.store.url) {
        skipped("PostgreSQL has no database file to watch");
        return;
    }
    let db = app.store.dir.path().join("payhook.db");
    let before = std::fs::metadata(&db).unwrap().len();
    let bodies: Vec<String> = (0..200)
        .map(|i| event_body(&format!("evt_checkpoint_{i}"), "payment_intent.succeeded"))
        .collect();
    join_all(bodies.iter().map(|b| app.send(b))).await;
    // Committed pages sit in the WAL until a checkpoint copies them into the file; the writers
    // no longer do it themselves, so a background checkpoint must.
    let grown = bodies.iter().map(String::len).sum::<usize>() as u64;
    common::receiver::eventually(
        std::time::Duration::from_secs(5),
        "the database file to hold the events",
        || async { std::fs::metadata(&db).unwrap().len() >= before + grown },
    )
    .await;
}

#[tokio::test]
async fn a_provider_keeps_its_path_and_wrong_paths_answer_with_the_right_route() {
    let app = spawn_app_with(|s| {
        s.webhook_routes = vec![
            ("/api/webhooks/stripe".into(), "stripe".into()),
            ("/stripe/webhooks".into(), "stripe".into()),
        ]
    })
    .await;
    for (i, path) in ["/api/webhooks/stripe", "/stripe/webhooks"]
        .iter()
        .enumerate()
    {
        let id = format!("evt_alias_{i}");
        let body = event_body(&id, "payment_intent.succeeded");
        let signature = stripe_signature(body.as_bytes(), SECRET, now());
        let answer = Answer::read(
            app.client
                .post(format!("{}{path}", app.base))
                .header("stripe-signature", signature)
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.json);
        assert_eq!(answer.json["event_id"], id.as_str());
        assert_eq!(
            app.payhook
                .store
                .event("stripe", &id)
                .await
                .unwrap()
                .unwrap()
                .source,
            "stripe"
        );
    }

    let bare = spawn_app().await;
    let get = bare.get("/webhooks/stripe", None).await;
    assert_eq!(
        (get.status, get.code()),
        (405, "method_not_allowed"),
        "{}",
        get.json
    );
    assert!(
        get.json["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("POST /webhooks/stripe")
    );
    for path in ["/api/webhooks/stripe", "/stripe/webhooks"] {
        let answer = bare.post(path, "{}", None).await;
        assert_eq!((answer.status, answer.code()), (404, "not_found"), "{path}");
        let hint = answer.json["error"]["hint"].as_str().unwrap_or_default();
        assert!(
            hint.contains("POST /webhooks/stripe") && hint.contains("routes"),
            "{path}: {hint}"
        );
    }
    let slash = bare.post("/webhooks/stripe/", "{}", None).await;
    assert_eq!(slash.status, 404);
    assert!(
        slash.json["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("trailing slash")
    );
    for base in [&bare.base, &bare.admin] {
        let icon = bare
            .client
            .get(format!("{base}/favicon.ico"))
            .send()
            .await
            .unwrap();
        assert_eq!(icon.status(), 204, "{base}");
    }
}

/// A refusal for a source no one configured is counted under `unknown`, whatever refused it (the
/// rate limit answers before the name is looked up): made-up names never become metric labels.
#[tokio::test]
async fn made_up_source_names_never_become_metric_labels() {
    let app = spawn_app_with(|s| s.ingest.rate_limit_per_ip = 1).await;
    let name = format!(
        "made-up-{}",
        payhook::domain::ids::random_token(8).to_lowercase()
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let answer = app
            .post(&format!("/webhooks/{name}"), "{}".to_string(), None)
            .await;
        statuses.push(answer.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let text = app.text(&format!("{}/metrics", app.admin)).await;
    assert!(!text.contains(&name), "{text}");
    assert!(
        text.contains("payhook_webhooks_refused_total{source=\"unknown\",code=\"rate_limited\"}"),
        "{text}"
    );
}
