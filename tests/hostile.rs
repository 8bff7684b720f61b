//! A corpus of hostile and malformed webhook requests, sent as raw bytes over TCP to a real payhook:
//! forged, stale and mangled signatures; signed bodies that are not events (truncated, invalid
//! UTF-8, duplicate keys, deep nesting, huge numbers, wrong types); and abuse of HTTP itself
//! (oversized and too many headers, smuggling, slow headers and bodies, oversized bodies). Each
//! gets its documented 4xx and code, nothing is stored, and payhook stays healthy throughout.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Small limits, so the corpus reaches them quickly.
const MAX_BODY: usize = 16 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(1);

async fn hostile_app() -> TestApp {
    spawn_app_with(|s| {
        s.ingest.max_body_bytes = MAX_BODY;
        s.ingest.max_header_bytes = 8192;
        s.ingest.read_timeout = READ_TIMEOUT;
    })
    .await
}

/// What came back on the connection: the status (none if it was closed without an answer) and
/// the JSON body, if any.
#[derive(Debug)]
struct Reply {
    status: Option<u16>,
    json: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

/// Writes `parts` (with `pause` between them) on a new connection and reads until the server
/// closes it or 10 s pass.
async fn exchange(addr: &str, parts: &[Vec<u8>], pause: Duration) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        // The server may answer and close before it has read everything: that is an answer too.
        if stream.write_all(part).await.is_err() {
            break;
        }
    }
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok());
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    Reply { status, json }
}

/// A POST to `/webhooks/stripe` with `headers` and `body`, `Connection: close`.
fn post(path: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: payhook\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    request
}

/// A request signed correctly now for `body`.
fn signed(body: &[u8]) -> Vec<u8> {
    let sig = stripe_signature(body, SECRET, now());
    post("/webhooks/stripe", &[("Stripe-Signature", sig)], body)
}

fn with_signature(body: &[u8], signature: &str) -> Vec<u8> {
    post(
        "/webhooks/stripe",
        &[("Stripe-Signature", signature.to_string())],
        body,
    )
}

fn event(id: &str) -> Vec<u8> {
    event_body(id, "payment_intent.succeeded").into_bytes()
}

/// A case: its name, the bytes (sent in parts with a pause between), and the expected answer
/// (`None`: the connection is closed without one).
struct Case {
    name: &'static str,
    parts: Vec<Vec<u8>>,
    pause: Duration,
    expect: Option<(u16, &'static str)>,
}

fn case(name: &'static str, request: Vec<u8>, status: u16, code: &'static str) -> Case {
    Case {
        name,
        parts: vec![request],
        pause: Duration::ZERO,
        expect: Some((status, code)),
    }
}

fn corpus() -> Vec<Case> {
    let good = event("evt_hostile_never_stored");
    let t = now();
    let sig_for = |body: &[u8], at: i64| stripe_signature(body, SECRET, at);
    let v1 = sig_for(&good, t).split_once("v1=").unwrap().1.to_string();
    let nested = format!(
        r#"{{"id":"evt_deep","type":"payment_intent.succeeded","data":{}1{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let mut cases = vec![
        // The signature header.
        case("no signature header", post("/webhooks/stripe", &[], &good), 400, "missing_signature"),
        case("empty signature header", with_signature(&good, ""), 400, "malformed_signature_header"),
        case("t is not a number", with_signature(&good, &format!("t=abc,v1={v1}")), 400, "malformed_signature_header"),
        case("no t", with_signature(&good, &format!("v1={v1}")), 400, "malformed_signature_header"),
        case("no v1, only v0", with_signature(&good, &format!("t={t},v0={v1}")), 400, "malformed_signature_header"),
        case("v1 is not hex", with_signature(&good, &format!("t={t},v1=zz{}", &v1[2..])), 400, "invalid_signature"),
        case("v1 of another secret", with_signature(&good, &stripe_signature(&good, "whsec_other", t)), 400, "invalid_signature"),
        case("v1 truncated", with_signature(&good, &format!("t={t},v1={}", &v1[..32])), 400, "invalid_signature"),
        case("v1 one hex digit longer", with_signature(&good, &format!("t={t},v1={v1}0")), 400, "invalid_signature"),
        case("v1 with one bit flipped", with_signature(&good, &format!("t={t},v1={}{}", if v1.starts_with('0') { '1' } else { '0' }, &v1[1..])), 400, "invalid_signature"),
        case("t an hour old", with_signature(&good, &sig_for(&good, t - 3600)), 400, "timestamp_out_of_tolerance"),
        case("t an hour ahead", with_signature(&good, &sig_for(&good, t + 3600)), 400, "timestamp_out_of_tolerance"),
        case("t beyond 64 bits", with_signature(&good, &format!("t=99999999999999999999999,v1={v1}")), 400, "malformed_signature_header"),
        case("t negative", with_signature(&good, &sig_for(&good, -5)), 400, "timestamp_out_of_tolerance"),
        case("signature of another body", with_signature(&event("evt_tampered"), &sig_for(&good, t)), 400, "invalid_signature"),
        case("a 6 KB signature header of forged v1s", with_signature(&good, &format!("t={t},{}", vec![format!("v1={}", "ab".repeat(32)); 90].join(","))), 400, "invalid_signature"),
        case(
            "two signature headers, the first forged",
            post("/webhooks/stripe", &[("Stripe-Signature", format!("t={t},v1={}", "0".repeat(64))), ("Stripe-Signature", sig_for(&good, t))], &good),
            400,
            "invalid_signature",
        ),
        case("signature header not ASCII", {
            let mut r = with_signature(&good, "t=1,v1=PLACEHOLDER");
            let at = r.windows(11).position(|w| w == b"PLACEHOLDER").unwrap();
            r.splice(at..at + 11, b"\xff\xfe\xfd".iter().copied());
            r
        }, 400, "malformed_signature_header"),
        // Signed bodies that are not events.
        case("empty body", signed(b""), 400, "malformed_payload"),
        case("truncated JSON", signed(&good[..good.len() / 2]), 400, "malformed_payload"),
        case("a JSON array", signed(b"[1,2,3]"), 400, "malformed_payload"),
        case("a JSON string", signed(b"\"evt_1\""), 400, "malformed_payload"),
        case("null", signed(b"null"), 400, "malformed_payload"),
        case("invalid UTF-8", signed(b"{\"id\":\"evt_\xff\xfe\",\"type\":\"payment_intent.succeeded\"}"), 400, "malformed_payload"),
        case("a byte-order mark first", signed(&[b"\xef\xbb\xbf".as_slice(), &good].concat()), 400, "malformed_payload"),
        case("id is a number", signed(br#"{"id":12345,"type":"payment_intent.succeeded"}"#), 400, "malformed_payload"),
        case("type is an object", signed(br#"{"id":"evt_1","type":{"x":1}}"#), 400, "malformed_payload"),
        case("no id", signed(br#"{"type":"payment_intent.succeeded"}"#), 400, "malformed_payload"),
        case("no type", signed(br#"{"id":"evt_no_type"}"#), 400, "malformed_payload"),
        case("empty id", signed(br#"{"id":"","type":"payment_intent.succeeded"}"#), 400, "malformed_payload"),
        case("id with a newline", signed(b"{\"id\":\"evt_a\\nb\",\"type\":\"payment_intent.succeeded\"}"), 400, "malformed_payload"),
        case("a 10 KB id", signed(format!(r#"{{"id":"evt_{}","type":"payment_intent.succeeded"}}"#, "a".repeat(10_000)).as_bytes()), 400, "malformed_payload"),
        case("duplicate id keys", signed(br#"{"id":"evt_dup_a","id":"evt_dup_b","type":"payment_intent.succeeded"}"#), 400, "malformed_payload"),
        case("5000 levels of nesting", signed(nested.as_bytes()), 400, "malformed_payload"),
        case("a number beyond f64", signed(br#"{"id":"evt_big","type":"payment_intent.succeeded","created":1e400}"#), 400, "malformed_payload"),
        case("NaN", signed(br#"{"id":"evt_nan","type":"payment_intent.succeeded","created":NaN}"#), 400, "malformed_payload"),
        case("trailing garbage", signed(&[good.as_slice(), b"}{"].concat()), 400, "malformed_payload"),
        case("single quotes", signed(b"{'id':'evt_q','type':'payment_intent.succeeded'}"), 400, "malformed_payload"),
        // The route and method.
        case("an unknown source", post("/webhooks/nope", &[("Stripe-Signature", sig_for(&good, t))], &good), 404, "unknown_source"),
        case(
            "GET on the webhook route",
            b"GET /webhooks/stripe HTTP/1.1\r\nHost: payhook\r\nConnection: close\r\n\r\n".to_vec(),
            405,
            "",
        ),
        // HTTP abuse.
        case("a body over the limit, declared", signed(&vec![b' '; MAX_BODY + 1]), 413, "payload_too_large"),
        case("a body over the limit, chunked", {
            let chunk = vec![b'a'; MAX_BODY + 10];
            let mut r = format!(
                "POST /webhooks/stripe HTTP/1.1\r\nHost: payhook\r\nConnection: close\r\nStripe-Signature: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
                sig_for(&chunk, t), chunk.len()
            ).into_bytes();
            r.extend_from_slice(&chunk);
            r.extend_from_slice(b"\r\n0\r\n\r\n");
            r
        }, 413, "payload_too_large"),
        case("a 20 KB header", post("/webhooks/stripe", &[("X-Padding", "a".repeat(20_000))], &good), 431, ""),
        case("150 headers", post("/webhooks/stripe", &(0..150).map(|_| ("X-Many", "1".to_string())).collect::<Vec<_>>(), &good), 431, ""),
        case(
            "Content-Length and Transfer-Encoding both (smuggling)",
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: payhook\r\nConnection: close\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            "ambiguous_length",
        ),
        case("Content-Length and Transfer-Encoding both, signed", {
            let mut r = format!(
                "POST /webhooks/stripe HTTP/1.1\r\nHost: payhook\r\nConnection: close\r\nStripe-Signature: {}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
                sig_for(&good, t), good.len(), good.len()
            ).into_bytes();
            r.extend_from_slice(&good);
            r.extend_from_slice(b"\r\n0\r\n\r\n");
            r
        }, 400, "ambiguous_length"),
        case(
            "invalid chunk size",
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: payhook\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nStripe-Signature: t=1,v1=00\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(),
            400,
            "body_unreadable",
        ),
        case("a control byte in a header value", post("/webhooks/stripe", &[("X-Bad", "a\u{1}b".to_string())], &good), 400, ""),
        case(
            "not HTTP at all",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 a TLS hello\r\n\r\n".to_vec(),
            400,
            "",
        ),
    ];
    // Slow clients: their connection is freed after the read timeout.
    let mut slow_body = signed(&good);
    let cut = slow_body.len() - good.len() + 10;
    let rest = slow_body.split_off(cut);
    cases.push(Case {
        name: "a body that stops coming",
        parts: vec![slow_body, rest[..1].to_vec()],
        pause: READ_TIMEOUT * 3,
        expect: Some((408, "body_timeout")),
    });
    cases.push(Case {
        name: "headers that never end (slowloris)",
        parts: vec![
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: payhook\r\n".to_vec(),
            b"X-A: b\r\n".to_vec(),
        ],
        pause: READ_TIMEOUT * 3,
        expect: None,
    });
    cases
}

#[tokio::test]
async fn every_hostile_request_gets_its_4xx_nothing_is_stored_and_payhook_stays_healthy() {
    let app = hostile_app().await;
    let addr = app.payhook.public_addr.to_string();
    let cases = corpus();
    assert!(
        cases.len() >= 40,
        "a corpus of at least 40: {}",
        cases.len()
    );

    // All at once, as an attacker would send them.
    let replies = futures_util::future::join_all(cases.iter().map(|c| {
        let addr = addr.clone();
        async move {
            let started = Instant::now();
            (exchange(&addr, &c.parts, c.pause).await, started.elapsed())
        }
    }))
    .await;

    let mut wrong = Vec::new();
    for (c, (reply, took)) in cases.iter().zip(&replies) {
        match c.expect {
            Some((status, code)) => {
                if reply.status != Some(status) || (!code.is_empty() && reply.code() != code) {
                    wrong.push(format!(
                        "{}: expected {status} {code}, got {:?} {}",
                        c.name, reply.status, reply.json
                    ));
                }
            }
            None => {
                // Closed without an answer, well before the 10 s the client waits.
                if reply.status.is_some() || *took > READ_TIMEOUT * 5 {
                    wrong.push(format!(
                        "{}: expected a close, got {reply:?} after {took:?}",
                        c.name
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );

    // Nothing stored; still healthy; a genuine webhook is accepted right after.
    assert_eq!(app.count().await, 0);
    let health = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let answer = app
        .send(&event_body(
            "evt_after_the_storm",
            "payment_intent.succeeded",
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(app.count().await, 1);
}
