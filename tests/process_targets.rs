//! `payhook targets list|enable|disable` from the terminal against a running payhook: a disabled
//! target's notifications are held and shown so, the disable survives a restart, the events
//! target and the log hear of it and of the ledger's attention events, and an enable releases
//! what was held.

mod common;
#[path = "common/process.rs"]
mod process;

use std::time::Duration;

use common::receiver::{Receiver, Reply, booking_service, eventually};
use common::*;
use process::*;

const ALERTS_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn log(store: &FreshStore) -> String {
    std::fs::read_to_string(store.dir.path().join("payhook.log")).unwrap_or_default()
}

async fn alerts_heard(alerts: &Receiver, event: &str) -> serde_json::Value {
    let mut found = serde_json::Value::Null;
    eventually(Duration::from_secs(10), event, || {
        found = alerts
            .requests()
            .iter()
            .map(|r| r.json())
            .find(|b| b["type"] == event)
            .map_or(serde_json::Value::Null, |b| b["data"].clone());
        std::future::ready(!found.is_null())
    })
    .await;
    found
}

#[tokio::test]
async fn targets_disable_holds_across_a_restart_and_enable_releases_from_the_terminal() {
    let alerts = Receiver::start(|_, _| Reply::status(204)).await;
    let (service, url) = booking_service(SERVICE_TOKEN).await;
    let store = fresh_store().await;
    let toml = format!(
        r#"
[[targets]]
name = "booking-service"
kind = "booking-status"
url = "{url}"
token = "{SERVICE_TOKEN}"

[[targets]]
name = "alerts"
kind = "events"
url = "{}"
secret = "{ALERTS_SECRET}"
events = ["target.disabled", "payment.duplicate"]
"#,
        alerts.url
    );
    std::fs::write(store.dir.path().join("payhook.toml"), toml).unwrap();
    let mut env = store_env(&store).to_vec();
    env.push(("PAYHOOK_CONFIG", "payhook.toml"));
    let mut server = serve(store.dir.path(), &env).await;
    let client = payhook::net::client_builder().build().unwrap();

    let (ok, out) = payhook_on(
        &store,
        &server,
        &[],
        &[
            "targets",
            "disable",
            "booking-service",
            "--reason",
            "maintenance window",
            "--by",
            "alice",
        ],
    )
    .await;
    assert!(ok && out.contains("disabled"), "{out}");
    let disabled = alerts_heard(&alerts, "target.disabled").await;
    assert_eq!(disabled["by"], "alice");
    assert_eq!(disabled["reason"], "maintenance window");
    eventually(Duration::from_secs(5), "the disable is logged", || {
        let log = log(&store);
        std::future::ready(log.contains("target.disabled") && log.contains("maintenance window"))
    })
    .await;

    service.create("booking-held", Some(2000), Some("EUR"), "pending");
    pay_booking(&client, server.addr, "booking-held").await;
    eventually(
        Duration::from_secs(10),
        "the notification is listed held",
        || async {
            let (ok, out) = payhook_on(
                &store,
                &server,
                &[],
                &["deliveries", "list", "--target", "booking-service"],
            )
            .await;
            ok && out.contains("booking-held") && out.contains("held: the target is disabled")
        },
    )
    .await;

    // Restarted, payhook keeps the operator's disable.
    signal(&server.child, "-TERM");
    assert!(server.child.wait().await.unwrap().success());
    server = serve(store.dir.path(), &env).await;
    let (ok, out) = payhook_on(&store, &server, &[], &["targets", "list"]).await;
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("booking-service"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("disabled"), "{out}");
    assert!(
        out.contains("disabled by alice: maintenance window"),
        "{out}"
    );
    assert!(service.received().is_empty(), "nothing was sent");

    // A second payment for the booking: the ledger's attention event reaches alerts and the log.
    let second = PaymentIds::new("booking-held").event("payment_intent.succeeded", now(), &[]);
    assert_eq!(
        post_signed(&client, server.addr, second.to_string())
            .await
            .unwrap()
            .status(),
        200
    );
    let duplicate = alerts_heard(&alerts, "payment.duplicate").await;
    assert_eq!(duplicate["booking_id"], "booking-held");
    eventually(Duration::from_secs(5), "the duplicate is logged", || {
        std::future::ready(log(&store).contains("payment.duplicate"))
    })
    .await;

    let (ok, out) = payhook_on(
        &store,
        &server,
        &[],
        &["targets", "enable", "booking-service"],
    )
    .await;
    assert!(ok && out.contains("now enabled"), "{out}");
    eventually(
        Duration::from_secs(10),
        "the held notification is delivered",
        || std::future::ready(service.booking("booking-held").unwrap().status == "confirmed"),
    )
    .await;
    let (ok, out) = payhook_on(&store, &server, &[], &["targets", "list", "--json"]).await;
    assert!(ok, "{out}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["circuit"], "closed", "{listed}");
    let (ok, out) = payhook_on(&store, &server, &[], &["targets", "enable", "nobody"]).await;
    assert!(!ok && out.contains("target_not_found"), "{out}");
    signal(&server.child, "-TERM");
    assert!(server.child.wait().await.unwrap().success());
}
