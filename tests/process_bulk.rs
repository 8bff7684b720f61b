//! Bulk replays and retries from the terminal, through the admin API of a running `payhook
//! serve`: each selection, the dry run (a count and the first rows, nothing changed), the job's
//! progress and outcome. On SQLite or PostgreSQL (`TEST_DATABASE_URL`).

mod common;
#[path = "common/process.rs"]
mod process;

use std::time::Duration;

use common::receiver::{Receiver, Reply};
use common::*;
use process::*;
use serde_json::{Value, json};

/// Polls `payhook ARGS --json` until `check` holds on its output (10 s at most).
async fn json_until(
    store: &FreshStore,
    server: &Server,
    args: &[&str],
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut all = args.to_vec();
        all.push("--json");
        let (ok, out) = payhook_on(store, server, &[], &all).await;
        assert!(ok, "{out}");
        let value: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        if check(&value) {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "{args:?}: {out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Stripe event that names no payment: stored, then failed for good.
fn unusable(id: &str, event_type: &str) -> String {
    json!({"id": id, "object": "event", "type": event_type, "created": now(),
           "data": {"object": {"object": "payment_intent"}}})
    .to_string()
}

#[tokio::test]
async fn events_replay_and_deliveries_retry_take_a_selection_dry_run_it_and_follow_the_job() {
    // The booking service refuses every notification (400: dead at once) until told otherwise.
    let receiver = Receiver::start(|_, _| Reply::status(400)).await;
    let store = fresh_store().await;
    let mut env = store_env(&store).to_vec();
    env.push(("BOOKING_SERVICE_URL", receiver.url.as_str()));
    env.push(("INTERNAL_SERVICE_TOKEN", SERVICE_TOKEN));
    let server = serve(store.dir.path(), &env).await;
    let client = payhook::net::client_builder().build().unwrap();

    pay_booking(&client, server.addr, "booking-bulk-cli").await;
    for (id, kind) in [
        ("evt_cli_bulk_1", "payment_intent.succeeded"),
        ("evt_cli_bulk_2", "payment_intent.succeeded"),
        ("evt_cli_bulk_3", "payment_intent.payment_failed"),
    ] {
        let answer = post_signed(&client, server.addr, unusable(id, kind))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let failed = |v: &Value| v.as_array().is_some_and(|rows| rows.len() == 3);
    let before = json_until(
        &store,
        &server,
        &["events", "list", "--status", "failed"],
        failed,
    )
    .await;
    let dead = |v: &Value| v.as_array().is_some_and(|rows| rows.len() == 1);
    json_until(
        &store,
        &server,
        &["deliveries", "list", "--status", "dead"],
        dead,
    )
    .await;

    // A dry run: the count, the selection, the rows; nothing changes and no job starts.
    let dry = [
        "events",
        "replay",
        "--since",
        "2h",
        "--status",
        "failed",
        "--dry-run",
    ];
    let (ok, out) = payhook_on(&store, &server, &[], &dry).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("dry run: 3 event(s) would be replayed (status failed, since 20")
            && out.contains("nothing changed"),
        "{out}"
    );
    for id in ["evt_cli_bulk_1", "evt_cli_bulk_2", "evt_cli_bulk_3"] {
        assert!(out.contains(id), "{out}");
    }
    assert!(!out.contains("more"), "{out}");
    let mut first = dry.to_vec();
    first.extend(["--show", "1"]);
    let (ok, out) = payhook_on(&store, &server, &[], &first).await;
    assert!(
        ok && out.contains("evt_cli_bulk_1") && out.contains("and 2 more"),
        "{out}"
    );
    assert!(!out.contains("evt_cli_bulk_2"), "{out}");
    let (ok, out) = payhook_on(
        &store,
        &server,
        &[],
        &[
            "events",
            "replay",
            "--status",
            "processed",
            "--booking",
            "booking-bulk-cli",
            "--dry-run",
        ],
    )
    .await;
    assert!(
        ok && out.contains("dry run: 1 event(s) would be replayed"),
        "{out}"
    );
    let after = json_until(
        &store,
        &server,
        &["events", "list", "--status", "failed"],
        failed,
    )
    .await;
    assert_eq!(after, before, "a dry run changes nothing");
    let jobs: Value = client
        .get(format!("{}/admin/api/jobs", server.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs, json!([]));

    // The job: progress on stderr, the outcome on stdout; the type selects one of the three.
    let (ok, out) = payhook_on(
        &store,
        &server,
        &[],
        &[
            "events",
            "replay",
            "--type",
            "payment_intent.payment_failed",
            "--source",
            "stripe",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("requeued 1/1"), "{out}");
    assert!(
        out.contains(
            "finished: 1 of 1 event(s) requeued (status failed, source stripe, type \
             payment_intent.payment_failed)"
        ),
        "{out}"
    );
    // --json: the job as it ended.
    let (ok, out) = payhook_on(
        &store,
        &server,
        &[],
        &["events", "replay", "--failed", "--until", "1h", "--json"],
    )
    .await;
    assert!(ok, "{out}");
    let job: Value = serde_json::from_str(&out[..=out.rfind('}').unwrap()]).unwrap();
    assert_eq!(
        (&job["state"], &job["total"]),
        (&json!("finished"), &json!(0)),
        "{out}"
    );
    // Given events and a selection are not mixed.
    let (ok, out) = payhook_on(
        &store,
        &server,
        &[],
        &["events", "replay", "evt_cli_bulk_1", "--status", "failed"],
    )
    .await;
    assert!(!ok && out.contains("cannot be used with"), "{out}");

    // Notifications: a dry run by booking, then the retry once the service accepts.
    let (ok, out) = payhook_on(
        &store,
        &server,
        &[],
        &[
            "deliveries",
            "retry",
            "--booking",
            "booking-bulk-cli",
            "--since",
            "1h",
            "--dry-run",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("dry run: 1 notification(s) would be retried (status dead, booking booking-bulk-cli, since 20"),
        "{out}"
    );
    assert!(
        out.contains("booking-bulk-cli") && out.contains("dead"),
        "{out}"
    );
    json_until(
        &store,
        &server,
        &["deliveries", "list", "--status", "dead"],
        dead,
    )
    .await;
    receiver.set_script(|_, _| Reply::status(200));
    let (ok, out) = payhook_on(
        &store,
        &server,
        &[],
        &["deliveries", "retry", "--booking", "booking-bulk-cli"],
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("retried 1/1")
            && out.contains(
                "finished: 1 of 1 notification(s) requeued (status dead, booking booking-bulk-cli)"
            ),
        "{out}"
    );
    let delivered = |v: &Value| v.as_array().is_some_and(|rows| rows.len() == 1);
    json_until(
        &store,
        &server,
        &["deliveries", "list", "--status", "delivered"],
        delivered,
    )
    .await;
    // --target alone: that target's dead notifications (none left now).
    let (ok, out) = payhook_on(
        &store,
        &server,
        &[],
        &["deliveries", "retry", "--target", "booking-service"],
    )
    .await;
    assert!(
        ok && out.contains("status dead") && out.contains("target booking-service"),
        "{out}"
    );
    let (ok, out) = payhook_on(
        &store,
        &server,
        &[],
        &["deliveries", "retry", "--status", "delivered"],
    )
    .await;
    assert!(
        !ok && out.contains("status: \"delivered\" is not one of dead, pending"),
        "{out}"
    );
}
