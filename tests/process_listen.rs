//! `payhook listen` as a user runs it: a real `payhook serve`, `payhook listen --forward-to` as a
//! child process, and a loopback app that verifies each forwarded request with the local secret
//! (payhook's own Stripe verification). payhook restarts mid-way: nothing is lost or repeated;
//! `--replay-from` forwards earlier events again.

mod common;
#[path = "common/process.rs"]
mod process;

use std::process::Stdio;
use std::time::Duration;

use common::receiver::{Receiver, Reply, eventually};
use common::*;
use payhook::domain::Secret;
use process::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

const LOCAL_SECRET: &str = "whsec_local_secret_of_the_laptop";

/// `payhook listen ARGS` against `admin`; its stdout lines come on the channel.
fn listen(
    store: &FreshStore,
    admin: &str,
    args: &[&str],
) -> (tokio::process::Child, mpsc::UnboundedReceiver<String>) {
    let mut child = payhook(store.dir.path(), &[("PAYHOOK_ADMIN_URL", admin)])
        .arg("listen")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("payhook listen starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// The next line that contains `what` (10 s at most), passing the others.
async fn line_with(lines: &mut mpsc::UnboundedReceiver<String>, what: &str) -> String {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let line = lines.recv().await.expect("payhook listen still runs");
            if line.contains(what) {
                return line;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no line with {what:?} in 10 s"))
}

async fn received(app: &Receiver, count: usize) -> Vec<String> {
    eventually(Duration::from_secs(15), "the forwards", || async {
        app.requests().len() >= count
    })
    .await;
    app.requests().into_iter().map(|r| r.body).collect()
}

#[tokio::test]
async fn listen_forwards_each_event_signed_and_resumes_after_a_restart_without_loss_or_repeat() {
    let store = fresh_store().await;
    let admin_listen = format!("127.0.0.1:{}", free_port());
    let env = [
        ("DATABASE_URL", store.url.as_str()),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
        ("PAYHOOK_ADMIN_LISTEN", admin_listen.as_str()),
    ];
    let mut server = serve(store.dir.path(), &env).await;
    let client = payhook::net::client_builder().build().unwrap();
    // The laptop's app: verifies the Stripe signature with the local secret, as the Stripe
    // SDK's constructEvent would, and answers 400 to anything else.
    let secret = Secret::new(LOCAL_SECRET);
    let app = Receiver::start(move |_, r| {
        let verified = payhook::providers::stripe::verify(
            Some(r.header("stripe-signature")),
            r.body.as_bytes(),
            std::slice::from_ref(&secret),
            Duration::from_secs(300),
            now(),
        );
        Reply::status(if verified.is_ok() { 200 } else { 400 })
    })
    .await;
    let forward_to = format!("{}/api/webhooks/stripe", app.url);
    let event = |booking: &str| {
        PaymentIds::new(booking)
            .event("payment_intent.succeeded", now(), &[])
            .to_string()
    };
    let post = |body: String| {
        let client = client.clone();
        let addr = server.addr;
        async move {
            let answer = post_signed(&client, addr, body).await.unwrap();
            assert_eq!(answer.status(), 200);
        }
    };

    // Stored before listen starts: not forwarded (it starts from now).
    let before = event("booking-before");
    post(before.clone()).await;
    let (mut listener, mut lines) = listen(
        &store,
        &server.admin,
        &["--forward-to", &forward_to, "--secret", LOCAL_SECRET],
    );
    line_with(&mut lines, "Connected").await;
    let (e2, e3) = (event("booking-2"), event("booking-3"));
    post(e2.clone()).await;
    post(e3.clone()).await;
    assert_eq!(received(&app, 2).await, vec![e2.clone(), e3.clone()]);
    let forwarded = line_with(&mut lines, "-> 200 in").await;
    assert!(
        forwarded.contains("payment_intent.succeeded"),
        "{forwarded}"
    );

    // payhook restarts on the same store and admin port; listen reconnects after row 3.
    signal(&server.child, "-TERM");
    let stopped = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .expect("payhook stops with a stream open")
        .unwrap();
    assert!(stopped.success());
    line_with(&mut lines, "Disconnected").await;
    let post_to = |addr: std::net::SocketAddr, body: String| {
        let client = client.clone();
        async move {
            let answer = post_signed(&client, addr, body).await.unwrap();
            assert_eq!(answer.status(), 200);
        }
    };
    server = serve(store.dir.path(), &env).await;
    let (e4, e5) = (event("booking-4"), event("booking-5"));
    post_to(server.addr, e4.clone()).await;
    line_with(
        &mut lines,
        "Connected: forwarding the events stored after row 3",
    )
    .await;
    post_to(server.addr, e5.clone()).await;
    let all = received(&app, 4).await;
    assert_eq!(all, vec![e2.clone(), e3.clone(), e4.clone(), e5.clone()]);
    assert!(
        app.requests()
            .iter()
            .all(|r| r.header("stripe-signature").starts_with("t="))
    );
    listener.kill().await.unwrap();

    // --replay-from 1: everything again, from the first row, in order.
    let (mut replay, mut lines) = listen(
        &store,
        &server.admin,
        &[
            "--forward-to",
            &forward_to,
            "--secret",
            LOCAL_SECRET,
            "--replay-from",
            "1",
        ],
    );
    line_with(
        &mut lines,
        "Connected: forwarding the events stored after row 0",
    )
    .await;
    let all = received(&app, 9).await;
    assert_eq!(all[4..], [before, e2, e3, e4, e5]);
    replay.kill().await.unwrap();
}
