//! The real `payhook` binary from the terminal: `trigger`, `events`, `deliveries`, `backup`, the
//! demo, the example booking service, and the benchmark suite.

mod common;
// Only the process tests start the binary: its helpers are compiled into them alone.
#[path = "common/process.rs"]
mod process;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use process::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn trigger_sends_every_stripe_type_with_realistic_objects() {
    let app = spawn_app().await;
    let url = format!("{}/webhooks/stripe", app.base);
    let dir = tempfile::tempdir().unwrap();
    for event_type in payhook::providers::stripe_events::TRIGGER_TYPES {
        let id = trigger_ok(dir.path(), &[event_type, "--url", &url, "--secret", SECRET]).await;
        let id = id.as_str();
        let row = app
            .payhook
            .store
            .event("stripe", id)
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(row.event_type, *event_type);
    }
    // A wrong secret is reported with the refusal and a failing exit code.
    let out = payhook(dir.path(), &[])
        .args([
            "trigger",
            "charge.refunded",
            "--url",
            &url,
            "--secret",
            "whsec_not_the_right_one",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("invalid_signature"));
}

#[tokio::test]
async fn trigger_continues_a_story_on_the_same_payment() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]).await;
    // The README's story: a payment for booking-123, then a partial refund of it; in between a
    // payment for another booking and an expired session for a third whose booking is only given
    // as client_reference_id, a number (the refund names its booking).
    for args in [
        &[
            "payment_intent.succeeded",
            "--add",
            "metadata.bookingId=booking-123",
        ][..],
        &[
            "payment_intent.succeeded",
            "--add",
            "metadata.bookingId=456",
        ],
        &[
            "checkout.session.expired",
            "--add",
            "client_reference_id=789",
        ],
        &[
            "charge.refunded",
            "--add",
            "metadata.bookingId=booking-123",
            "--add",
            "amount_refunded=500",
        ],
        // Names no booking: the last payment sent, booking-123's, continues (its dispute).
        &["charge.dispute.created"],
    ] {
        trigger_ok(dir.path(), args).await;
    }
    // The same with --same-payment.
    trigger_ok(
        dir.path(),
        &[
            "charge.refunded",
            "--same-payment",
            "--add",
            "refund:amount=700",
        ],
    )
    .await;
    let client = payhook::net::client_builder().build().unwrap();
    let payments = |booking: &'static str| {
        let client = client.clone();
        let url = format!("{}/admin/api/payments?booking_id={booking}", server.admin);
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let body: serde_json::Value =
                    client.get(&url).send().await.unwrap().json().await.unwrap();
                let rows = body["data"].as_array().cloned().unwrap_or_default();
                let settled = rows.first().is_some_and(|p| {
                    p["amount_refunded"] == 700
                        || p["status"] == "succeeded"
                        || p["status"] == "expired"
                });
                if settled || std::time::Instant::now() > deadline {
                    break rows;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let refunded = payments("booking-123").await;
    assert_eq!(refunded.len(), 1, "one payment, not two: {refunded:?}");
    assert_eq!(refunded[0]["amount_refunded"], 700, "{refunded:?}");
    assert_eq!(refunded[0]["status"], "disputed", "{refunded:?}");
    let other = payments("456").await;
    assert_eq!(other.len(), 1, "{other:?}");
    assert_eq!(other[0]["status"], "succeeded");
    let expired = payments("789").await;
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0]["status"], "expired");
    signal(&server.child, "-TERM");
}

#[tokio::test]
async fn events_list_show_and_replay_from_the_terminal_through_the_admin_api() {
    let store = fresh_store().await;
    let mut env = store_env(&store).to_vec();
    env.push(("INTERNAL_SERVICE_TOKEN", SERVICE_TOKEN));
    env.push(("PAYHOOK_ADMIN_TOKEN", CLI_ADMIN_TOKEN));
    let mut server = serve(store.dir.path(), &env).await;
    let cli = [("PAYHOOK_ADMIN_TOKEN", CLI_ADMIN_TOKEN)];
    let url = format!("http://{}/webhooks/stripe", server.addr);
    let client = payhook::net::client_builder().build().unwrap();

    let paid = trigger_ok(
        store.dir.path(),
        &[
            "payment_intent.succeeded",
            "--add",
            "id=pi_cli_1",
            "--add",
            "metadata.bookingId=booking-cli",
            "--url",
            &url,
            "--secret",
            SECRET,
        ],
    )
    .await;
    let refund = trigger_ok(
        store.dir.path(),
        &[
            "charge.refunded",
            "--add",
            "payment_intent=pi_cli_1",
            "--add",
            "amount_refunded=500",
            "--url",
            &url,
            "--secret",
            SECRET,
        ],
    )
    .await;
    let data = status_until(&client, server.addr, "booking-cli", |d| {
        d["status"] == "partially_refunded"
    })
    .await;
    assert_eq!(
        data["status"],
        "partially_refunded",
        "{data}\n{}\n{}",
        std::fs::read_to_string(store.dir.path().join("payhook.log")).unwrap(),
        payhook_on(&store, &server, &cli, &["events", "list"])
            .await
            .1
    );
    assert_eq!(data["amountRefunded"], 500);
    // Each applied event names the booking it moved.
    let (ok, all) = payhook_on(&store, &server, &cli, &["events", "list"]).await;
    assert!(ok, "{all}");
    let row = all
        .lines()
        .find(|l| l.contains(&refund))
        .expect("the refund listed");
    assert!(row.contains("booking-cli"), "{all}");
    let (ok, shown) = payhook_on(&store, &server, &cli, &["events", "show", &paid]).await;
    assert!(ok && shown.contains("booking   booking-cli"), "{shown}");

    // An event the ledger acts on but cannot apply: left failed, with the reason.
    let broken = serde_json::json!({
        "id": "evt_cli_broken", "object": "event", "type": "payment_intent.succeeded",
        "created": now(), "data": { "object": { "object": "payment_intent" } }
    });
    let answer = post_signed(&client, server.addr, broken.to_string())
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let (ok, out) = payhook_on(
            &store,
            &server,
            &cli,
            &["events", "list", "--status", "failed"],
        )
        .await;
        assert!(ok, "{out}");
        if out.contains("evt_cli_broken") || std::time::Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(listed.contains("evt_cli_broken"), "{listed}");
    assert!(
        listed.contains("error: payment_intent.succeeded names no payment intent"),
        "{listed}"
    );
    // By time, as a duration back or an RFC 3339 time; --limit is at least 1.
    let (ok, recent) =
        payhook_on(&store, &server, &cli, &["events", "list", "--since", "1h"]).await;
    assert!(ok && recent.contains("evt_cli_broken"), "{recent}");
    let (ok, future) = payhook_on(
        &store,
        &server,
        &cli,
        &["events", "list", "--since", "2999-01-01T00:00:00Z"],
    )
    .await;
    assert!(ok && !future.contains("evt_cli_broken"), "{future}");
    let (ok, zero) = payhook_on(&store, &server, &cli, &["events", "list", "--limit", "0"]).await;
    assert!(!ok && zero.contains("--limit"), "{zero}");
    assert!(!listed.contains(&paid), "only failed events: {listed}");

    let (ok, shown) =
        payhook_on(&store, &server, &cli, &["events", "show", "evt_cli_broken"]).await;
    assert!(ok, "{shown}");
    assert!(
        shown.contains("status    failed after 1 attempt(s)"),
        "{shown}"
    );
    assert!(shown.contains("v1=[redacted]"), "{shown}");
    assert!(!shown.contains(SECRET));
    assert!(
        shown.contains(r#""id":"evt_cli_broken""#),
        "the exact payload: {shown}"
    );

    // Replaying it cannot help: it fails again, and the exit code says so.
    let (ok, out) = payhook_on(
        &store,
        &server,
        &cli,
        &["events", "replay", "evt_cli_broken"],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("[1/1]") && out.contains("failed: payment_intent.succeeded names no"),
        "{out}"
    );

    // Replaying applied events (twice) changes nothing: facts are kept once.
    for _ in 0..2 {
        let (ok, out) =
            payhook_on(&store, &server, &cli, &["events", "replay", &paid, &refund]).await;
        assert!(ok, "{out}");
        assert!(out.contains("[2/2]"), "{out}");
    }
    let data = status_until(&client, server.addr, "booking-cli", |_| true).await;
    assert_eq!(data["status"], "partially_refunded");
    assert_eq!(data["amountRefunded"], 500);
    assert_eq!(data["amount"], 2000);

    let (ok, out) = payhook_on(&store, &server, &cli, &["events", "show", "evt_nope"]).await;
    assert!(
        !ok && out.contains("event_not_found from the admin API at")
            && out.contains("no event \"evt_nope\""),
        "{out}"
    );

    // --json: the admin API's own rows.
    let (ok, out) = payhook_on(&store, &server, &cli, &["events", "list", "--json"]).await;
    assert!(ok, "{out}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON rows");
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(rows[0]["event_id"], "evt_cli_broken");
    assert_eq!(rows[0]["status"], "failed");

    // Bulk: every failed event, a job on the running payhook, its progress on stderr.
    let (ok, out) = payhook_on(&store, &server, &cli, &["events", "replay", "--failed"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("requeued 1/1"), "{out}");
    assert!(
        out.contains("finished: 1 of 1 event(s) requeued (status failed)"),
        "{out}"
    );

    // The admin API's token is needed, and a missing or wrong one is said plainly.
    let (ok, out) = payhook_on(&store, &server, &[], &["events", "list"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "401 Unauthorized unauthorized from the admin API at {}",
            server.admin
        )),
        "{out}"
    );
    assert!(!out.contains(CLI_ADMIN_TOKEN), "{out}");
    // And a payhook that is not there is named.
    let (ok, out) = payhook(store.dir.path(), &cli)
        .env("PAYHOOK_ADMIN_URL", "http://127.0.0.1:9")
        .args(["events", "list"])
        .output()
        .await
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).to_string(),
            )
        })
        .unwrap();
    assert!(!ok);
    assert!(
        out.contains("cannot reach the admin API at http://127.0.0.1:9")
            && out.contains("payhook serve"),
        "{out}"
    );

    signal(&server.child, "-TERM");
    assert!(server.child.wait().await.unwrap().success());
}

/// `payhook deliveries list|retry` over the admin API: a notification the booking service refused
/// (404: it did not know the booking yet) is dead; once the booking exists, `retry --dead` sends it
/// again and it is delivered.
#[tokio::test]
async fn deliveries_list_and_retry_dead_from_the_terminal_through_the_admin_api() {
    use common::receiver::{Receiver, Reply};
    let receiver = Receiver::start(|_, _| Reply::status(404)).await;
    let store = fresh_store().await;
    let mut env = store_env(&store).to_vec();
    env.push(("BOOKING_SERVICE_URL", receiver.url.as_str()));
    env.push(("INTERNAL_SERVICE_TOKEN", SERVICE_TOKEN));
    let server = serve(store.dir.path(), &env).await;
    let client = payhook::net::client_builder().build().unwrap();
    for booking in ["booking-dead-1", "booking-dead-2"] {
        pay_booking(&client, server.addr, booking).await;
    }
    receiver.wait_for(2, Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let (ok, out) = payhook_on(
            &store,
            &server,
            &[],
            &["deliveries", "list", "--status", "dead"],
        )
        .await;
        assert!(ok, "{out}");
        if out.matches(" dead ").count() == 2 || std::time::Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut lines = listed.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("#  status  attempts  target"),
        "{listed}"
    );
    assert!(
        listed.contains("booking-dead-1") && listed.contains("booking-dead-2"),
        "{listed}"
    );
    assert!(listed.contains("last answer: 404"), "{listed}");

    // A number that is not a notification is named, and the exit code says so.
    let (ok, out) = payhook_on(&store, &server, &[], &["deliveries", "retry", "999999"]).await;
    assert!(
        !ok && out.contains("not found or already delivered: 999999"),
        "{out}"
    );

    receiver.set_script(|_, _| Reply::status(200));
    let (ok, out) = payhook_on(
        &store,
        &server,
        &[],
        &["deliveries", "retry", "--dead", "--json"],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("retried 2/2"), "progress on stderr: {out}");
    // stdout (the JSON) comes before stderr (the progress) in `out`.
    let said: serde_json::Value =
        serde_json::from_str(&out[..=out.rfind('}').unwrap()]).expect("JSON on stdout");
    assert_eq!(said["job"]["requeued"], 2, "{out}");
    receiver.wait_for(4, Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out) = payhook_on(&store, &server, &[], &["deliveries", "list", "--json"]).await;
        assert!(ok, "{out}");
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        if rows.iter().all(|r| r["status"] == "delivered") {
            assert_eq!(rows.len(), 2);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An admin API whose answer lacks a field the CLI reads (another payhook version, something else
/// on that port): the command fails naming the field and the URL, without a panic; `--json`,
/// which passes the rows through, still prints them.
#[tokio::test]
async fn an_admin_answer_missing_a_field_is_named_with_its_url() {
    use common::receiver::{Receiver, Reply};
    let row = serde_json::json!({"id": 3, "source": "stripe", "event_id": "evt_odd", "type": "t"});
    let page = serde_json::json!({"data": [row], "next_cursor": null});
    let api = Receiver::start(move |_, _| Reply::json(200, page.clone())).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &'static [&'static str]| {
        payhook(dir.path(), &[("PAYHOOK_ADMIN_URL", api.url.as_str())])
            .args(args)
            .output()
    };

    let out = run(&["events", "list"]).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{}/admin/api/events?limit=50", api.url))
            && stderr.contains("data[0]: missing field `status`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = run(&["events", "list", "--json"]).await.unwrap();
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["event_id"], "evt_odd");
}

#[tokio::test]
async fn trigger_signs_for_any_configured_source() {
    let store = fresh_store().await;
    let dir = store.dir.path();
    std::fs::write(
        dir.join("payhook.toml"),
        r#"
[[sources]]
name = "payments"
kind = "hmac"
secrets = ["generic-provider-shared-secret"]
header = "x-signature"
prefix = "sha256="
[sources.mapping]
event_id = "{transaction_id}:{event}"
event_type = "event"
payment_id = "transaction_id"
types = { "payment.completed" = "succeeded" }

[[sources]]
name = "billing"
kind = "standard-webhooks"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("payment.json"),
        r#"{"event":"payment.completed","transaction_id":"txn_cli_1","amount":10000,"currency":"FCFA","booking_id":"booking_456"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("invoice.json"), r#"{"type":"invoice.paid"}"#).unwrap();
    let config = dir.join("payhook.toml").display().to_string();
    let mut env = store_env(&store).to_vec();
    env.push(("PAYHOOK_CONFIG", config.as_str()));
    let server = serve(dir, &env).await;
    let trigger = |args: Vec<String>| {
        let mut cmd = payhook(dir, &env);
        cmd.arg("trigger").args(args);
        cmd
    };
    for (source, file, id) in [
        ("payments", "payment.json", "txn_cli_1:payment.completed"),
        ("billing", "invoice.json", "msg_"),
    ] {
        let out = trigger(vec![
            "--source".into(),
            source.into(),
            "--body".into(),
            file.into(),
            "--url".into(),
            format!("http://{}/webhooks/{source}", server.addr),
        ])
        .output()
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{source}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("<- 200"), "{stdout}");
        assert!(stdout.contains(&format!("\"event_id\":\"{id}")), "{stdout}");
    }
    // A mapped source does not take Stripe's made-up events, and unknown sources are named.
    let out = trigger(vec![
        "payment_intent.succeeded".into(),
        "--source".into(),
        "payments".into(),
    ])
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--body"));
    let out = trigger(vec!["x".into(), "--source".into(), "nope".into()])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("billing, payments, stripe"), "{stderr}");
    drop(server);
}

/// Every provider preset: `payhook trigger --source NAME [TYPE]` builds the provider's notification,
/// signs it the provider's way, and the running payhook verifies and stores it.
#[tokio::test]
async fn trigger_sends_every_preset_signed_its_providers_way() {
    use payhook::providers::presets::{ALL, Confirmation};
    let store = fresh_store().await;
    let dir = store.dir.path();
    let mut config = String::new();
    for preset in ALL {
        config.push_str(&format!(
            "[[sources]]\nname = \"{0}\"\nkind = \"{0}\"\n",
            preset.kind
        ));
        if preset.signed {
            config.push_str(&format!("secrets = [\"{}\"]\n", preset.sample_secret));
        }
        if preset.confirmation == Confirmation::Required {
            // Nothing listens there: the events wait, acknowledged all the same.
            config.push_str("[sources.api]\nurl = \"http://127.0.0.1:9\"\n");
            let lookup = (preset.lookup.unwrap())();
            for name in &lookup.credentials {
                config.push_str(&format!("{name} = \"test-{name}\"\n"));
            }
        }
    }
    std::fs::write(dir.join("payhook.toml"), &config).unwrap();
    let path = dir.join("payhook.toml").display().to_string();
    let mut env = store_env(&store).to_vec();
    env.push(("PAYHOOK_CONFIG", path.as_str()));
    let server = serve(dir, &env).await;
    for preset in ALL {
        for event_type in preset.sample_types {
            let out = payhook(dir, &env)
                .args(["trigger", "--source", preset.kind, event_type])
                .args([
                    "--url",
                    &format!("http://{}/webhooks/{}", server.addr, preset.kind),
                ])
                .output()
                .await
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("<- 200"),
                "{} {event_type}: {stdout}{}",
                preset.kind,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let out = payhook(dir, &env)
        .args(["trigger", "--source", "fedapay", "charge.succeeded"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("transaction.approved"),
        "{stderr}"
    );
    drop(server);
}

/// `payhook example-booking-service`: the background contract, from the binary.
#[tokio::test]
async fn the_example_booking_service_enforces_the_contract() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let dir = tempfile::tempdir().unwrap();
    let mut child = payhook(dir.path(), &[])
        .args([
            "example-booking-service",
            "--listen",
            &addr.to_string(),
            "--token",
            "svc",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines.next_line().await.unwrap().unwrap();
    assert!(banner.contains(&addr.to_string()), "{banner}");

    let client = payhook::net::client_builder().build().unwrap();
    let put = |booking: &str, status: &str, token: Option<&str>, request_id: &str| {
        let mut request = client
            .put(format!(
                "http://{addr}/api/v1/bookings/{booking}/payment-status"
            ))
            .header("x-request-id", request_id)
            .json(&serde_json::json!({"status": status, "paymentIntentId": "pi_1"}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    assert_eq!(put("booking-123", "confirmed", None, "r0").await.0, 401);
    assert_eq!(
        put("booking-123", "confirmed", Some("wrong"), "r0").await.0,
        401
    );
    let (status, body) = put("booking-nope", "confirmed", Some("svc"), "r1").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let (status, body) = put("booking-123", "confirmed", Some("svc"), "r2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "confirmed");
    assert_eq!(body["data"]["paymentIntentId"], "pi_1");
    // The same request again is answered again, not applied twice.
    let (status, again) = put("booking-123", "confirmed", Some("svc"), "r2").await;
    assert_eq!((status, &again), (200, &body));
    let (status, body) = put("booking-123", "confirmed", Some("svc"), "r3").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_TRANSITION"))
    );
    let (status, body) = put("booking-123", "refunded", Some("svc"), "r4").await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("refunded"))
    );
    let (status, body) = put("booking-456", "paid", Some("svc"), "r5").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_demo_has_a_store_of_its_own_and_prints_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = payhook(dir.path(), &[])
        .args(["demo", "--booking-listen", "127.0.0.1:0"])
        .env("PAYHOOK_LISTEN", "127.0.0.1:0")
        .env("PAYHOOK_ADMIN_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let last = line.trim().starts_with("or send an event: ");
            printed.push(line);
            if last {
                break;
            }
        }
    })
    .await
    .unwrap();
    // The trigger command it prints reaches it.
    let command = printed
        .iter()
        .find_map(|l| l.trim().strip_prefix("or send an event: payhook "))
        .unwrap_or_else(|| panic!("no trigger line: {printed:?}"));
    let args: Vec<&str> = command.split_whitespace().collect();
    trigger_ok(dir.path(), &args[1..]).await;
    let dashboard = printed
        .iter()
        .find_map(|l| l.strip_prefix("dashboard: "))
        .unwrap_or_else(|| panic!("no dashboard line: {printed:?}"));
    let page = payhook::net::client_builder()
        .build()
        .unwrap()
        .get(dashboard)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "{dashboard}");
    assert!(dir.path().join("payhook-demo.db").exists(), "{printed:?}");
    assert!(
        !dir.path().join("payhook.db").exists(),
        "serve's store is left alone"
    );
    signal(&child, "-TERM");
    child.wait().await.unwrap();
}

#[tokio::test]
async fn the_demo_takes_a_booking_payment_from_form_to_confirmed_and_the_cli_refunds_and_disputes_it()
 {
    let store = fresh_store().await;
    let (web, bookings) = (free_port(), free_port());
    let public = format!("http://127.0.0.1:{web}");
    let env = [
        ("DATABASE_URL", store.url.as_str()),
        ("PAYHOOK_PUBLIC_URL", public.as_str()),
    ];
    let mut child = payhook(store.dir.path(), &env)
        .args(["demo", "--booking-listen", &format!("127.0.0.1:{bookings}")])
        .env("PAYHOOK_LISTEN", format!("127.0.0.1:{web}"))
        .env("PAYHOOK_ADMIN_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let open_line = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("demo prints its URL");
            if line.trim().starts_with("open ") {
                return line;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(open_line.trim(), format!("open {public}/demo"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let browser = payhook::net::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser.get(format!("{public}/demo")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("action=\"/demo/checkout\"")
    );

    let booking = "booking-demo-1";
    let created = browser
        .post(format!("{public}/demo/checkout"))
        .form(&[
            ("booking_id", booking),
            ("amount", "12000"),
            ("currency", "eur"),
            ("description", "Sea-view room"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 303);
    let checkout = created.headers()["location"].to_str().unwrap().to_string();
    assert!(
        checkout.starts_with(&format!("{public}/sandbox/checkout/cs_test_")),
        "{checkout}"
    );
    let booking_status = || async {
        let b: serde_json::Value = browser
            .get(format!("{public}/demo/bookings/{booking}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        b["status"].as_str().unwrap_or("").to_string()
    };
    assert_eq!(booking_status().await, "pending");

    let paid = browser
        .post(format!("{checkout}/pay"))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    let back = paid.headers()["location"].to_str().unwrap();
    assert!(
        back.starts_with(&format!("{public}/checkout/return?session_id=cs_test_"))
            && back.ends_with("&demo=1"),
        "{back}"
    );
    let wait_for = |want: &'static str| async move {
        for _ in 0..300 {
            if booking_status().await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the booking never became {want}; it is {}",
            booking_status().await
        );
    };
    wait_for("confirmed").await;

    let sandbox = |args: &[&str]| {
        let mut cmd = payhook(store.dir.path(), &env);
        cmd.arg("sandbox").args(args);
        cmd
    };
    let out = sandbox(&["refund", booking, "--amount", "2000"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("charge.refunded"), "{stdout}");
    wait_for("partially_refunded").await;

    let too_much = sandbox(&["refund", booking, "--amount", "99999"])
        .output()
        .await
        .unwrap();
    assert!(!too_much.status.success());
    assert!(String::from_utf8_lossy(&too_much.stderr).contains("can refund between 1 and 10000"));

    let out = sandbox(&["dispute", booking]).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let session = checkout.rsplit('/').next().unwrap();
    let mut disputed = false;
    for _ in 0..300 {
        let s: serde_json::Value = browser
            .get(format!("{public}/api/v1/checkout/sessions/{session}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["payment_status"] == "disputed" {
            disputed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(disputed, "the dispute reached the ledger");
    let unknown = sandbox(&["refund", "booking-nobody"])
        .output()
        .await
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no sandbox payment"));

    signal(&child, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

/// `payhook backup` copies a SQLite store while webhooks keep arriving; the copy holds what was
/// acknowledged before it began, and a restore (stop, put the copy in place, start) serves it.
#[tokio::test]
async fn a_sqlite_store_backed_up_while_serving_is_restored_with_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/payhook.db", dir.path().display());
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
    ];
    let mut server = serve(dir.path(), &env).await;
    let client = payhook::net::client_builder().build().unwrap();
    for i in 0..20 {
        pay_booking(&client, server.addr, &format!("booking-bk-{i}")).await;
    }
    let (addr, load_client) = (server.addr, client.clone());
    let load = tokio::spawn(async move {
        for i in 20..220 {
            pay_booking(&load_client, addr, &format!("booking-bk-{i}")).await;
        }
    });
    let backup = |file: &'static str| {
        let mut cmd = payhook(dir.path(), &env);
        cmd.args(["backup", file]);
        cmd
    };
    let out = backup("backup.db").output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("backed up ") && stdout.contains(" events, "),
        "{stdout}"
    );
    load.await.unwrap();

    let again = backup("backup.db").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(stderr.contains("backup.db exists already"), "{stderr}");

    signal(&server.child, "-TERM");
    assert!(server.child.wait().await.unwrap().success());

    // The restore, into a fresh directory: the copy is the store.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.path().join("backup.db"),
        restored.path().join("payhook.db"),
    )
    .unwrap();
    let restored_url = format!("sqlite://{}/payhook.db", restored.path().display());
    let copy = open_store(&restored_url).await;
    let events = copy.count_events().await.unwrap();
    assert!((20..=220).contains(&events), "{events} events in the copy");
    copy.close().await;
    let env = [
        ("DATABASE_URL", restored_url.as_str()),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
    ];
    let mut server = serve(restored.path(), &env).await;
    pay_booking(&client, server.addr, "booking-after-restore").await;
    // Events the copy holds but the ledger had not applied yet are applied now.
    let copy = open_store(&restored_url).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for i in 0..20 {
        let booking = format!("booking-bk-{i}");
        while copy
            .list_payments(Some(&booking), None, None, 10)
            .await
            .unwrap()
            .is_empty()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{booking} never applied"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    copy.close().await;
    signal(&server.child, "-TERM");
    assert!(server.child.wait().await.unwrap().success());
    let copy = open_store(&restored_url).await;
    assert_eq!(copy.count_events().await.unwrap(), events + 1);
}

/// The benchmark suite as `scripts/bench` runs it, in miniature: every section runs and reports,
/// on SQLite and, in the PostgreSQL tier, on PostgreSQL too (its server given as the bench's
/// --postgres, where it makes and drops scratch databases).
#[tokio::test]
async fn the_benchmark_suite_runs_every_part_in_one_command() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payhook-bench"));
    cmd.args([
        "--suite",
        "--connections",
        "1,4",
        "--seconds",
        "1",
        "--rate",
        "50",
        "--steps",
        "100,200",
        "--stored-events",
        "6000",
    ])
    .env("RUST_LOG", "warn")
    .env_remove("PAYHOOK_BENCH_POSTGRES");
    let postgres = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"));
    if let Some(url) = &postgres {
        cmd.args(["--postgres", url]);
    }
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("the suite finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |prefix: &str| {
        stdout
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(prefix))
            .count()
    };
    let mut stores = vec!["sqlite"];
    if postgres.is_some() {
        stores.push("postgres");
    }
    assert_eq!(row("baseline"), 2, "{stdout}");
    for store in &stores {
        // Ingest at each connection count, empty and with the history; end to end; the steps
        // (up to the first unbounded one); the history.
        let rows = row(store);
        assert!((2 + 1 + 1..=2 + 1 + 2).contains(&rows), "{store}: {stdout}");
        assert!(
            stdout.contains(&format!("{store}: highest steady rate with bounded lag")),
            "{stdout}"
        );
        assert_eq!(row(&format!("{store}+H")), 2, "{stdout}");
        assert!(
            stdout.contains(&format!("{store}: 6,000 events of history written")),
            "{stdout}"
        );
    }
    for part in [
        "## 1. Ingest on empty stores",
        "## 2. End to end",
        "## 3. With 6,000 events of history in the store",
        "peak resident memory",
        "payments of a booking",
        "event by provider id, no source",
        "overview (dashboard)",
        "## Targets",
        "highest bounded e2e rate, sqlite",
        "payhook e2e / lesson's",
    ] {
        assert!(stdout.contains(part), "{part}: {stdout}");
    }
    // Each end-to-end row ends with the server's CPU per webhook; under it, the waits after the
    // acknowledgement, read from the store: every webhook the run sent was applied.
    let lines: Vec<&str> = stdout.lines().collect();
    let mut steady = 0;
    for (i, line) in lines.iter().enumerate() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.len() == 12 && stores.contains(&cells[0]) && ["yes", "no"].contains(&cells[10]) {
            steady += 1;
            let cpu_us: f64 = cells[11].parse().unwrap_or(0.0);
            assert!(cpu_us > 0.0, "the CPU per webhook: {line}");
            let stages = lines.get(i + 1).copied().unwrap_or_default();
            assert!(
                stages.contains("received to applied p50")
                    && stages.contains(&format!("({} events)", cells[3]))
                    && stages.contains("applied to delivered p50"),
                "{line}\n{stages}\n{stdout}"
            );
        }
    }
    assert!(steady >= 2 * stores.len(), "{stdout}");
    // A run or a query that went wrong prints "failed: ..." on its row.
    assert!(!stdout.contains("failed:"), "{stdout}");
    // Without PostgreSQL, node or its packages, the lesson's handler is skipped, saying so.
    assert!(
        stdout.contains("lesson's handler: skipped")
            || stdout.lines().any(|l| l.starts_with("lesson ")),
        "{stdout}"
    );
    // Each ingest row ends with the CPU time per event during the load of the server, of
    // PostgreSQL's processes (a PostgreSQL target's, on this machine) and of the load generator,
    // then the CPU per applied event and its ratio to the baseline's.
    let ingest_rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.len() >= 13 && cells[1].parse::<u32>().is_ok())
        .collect();
    assert_eq!(ingest_rows.len(), 2 + 2 * 2 * stores.len(), "{stdout}");
    let microseconds = |cell: &str| cell.parse::<u64>().is_ok_and(|us| us > 0);
    for cells in ingest_rows {
        let [server, postgres, generator, applied, ratio] = cells[cells.len() - 5..] else {
            unreachable!("at least 13 cells")
        };
        assert!(microseconds(server) && microseconds(generator), "{cells:?}");
        assert!(microseconds(applied) && ratio.ends_with('x'), "{cells:?}");
        assert_eq!(
            microseconds(postgres),
            cells[0].starts_with("postgres"),
            "{cells:?}"
        );
    }
}
