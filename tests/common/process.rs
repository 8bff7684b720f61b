//! The real `payhook` binary, started and driven as a user would: a clean environment, `serve` on
//! port 0, signals, the CLI against a running instance. Each process test uses some of it.
#![allow(dead_code)]

use crate::common::*;
use payhook::domain::SqliteSync;
use payhook::store::Store;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_payhook");

pub const CLI_ADMIN_TOKEN: &str = "admin-token-for-the-cli";

/// `payhook` with a clean environment (nothing leaks in from the test run), in `cwd`.
pub fn payhook(cwd: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(cwd).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true);
    cmd
}

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// The admin listener's base URL.
    pub admin: String,
    /// Lines printed on stdout up to the public listener's.
    pub banner: Vec<String>,
}

/// Starts `payhook serve` on loopback port 0 and waits for it to listen.
pub async fn serve(cwd: &Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = payhook(cwd, &[]);
    cmd.arg("serve")
        .env("PAYHOOK_LISTEN", "127.0.0.1:0")
        .env("PAYHOOK_ADMIN_LISTEN", "127.0.0.1:0");
    // What `env` says wins (a fixed admin port, to restart on).
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::piped())
        // Logs go to a file beside the store, for the tests that read them.
        .stderr(std::fs::File::create(cwd.join("payhook.log")).unwrap());
    let mut child = cmd.spawn().expect("payhook serve starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        let mut addr = None;
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("serve exited before it was ready");
            if let Some(a) = line.strip_prefix("public listener: http://") {
                addr = Some(a.parse::<SocketAddr>().unwrap());
            }
            if line.starts_with("ready") {
                return addr.expect("the public listener is printed before ready");
            }
            banner.push(line);
        }
    })
    .await
    .expect("serve listens within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let admin = banner
        .iter()
        .find_map(|l| l.strip_prefix("admin listener: "))
        .expect("the admin listener is printed")
        .to_string();
    Server {
        child,
        addr,
        admin,
        banner,
    }
}

pub fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `payhook serve` on a fresh store with the test secret.
pub async fn serve_fresh() -> (FreshStore, Server) {
    let store = fresh_store().await;
    let server = serve(store.dir.path(), &store_env(&store)).await;
    (store, server)
}

pub fn store_env(store: &FreshStore) -> [(&str, &str); 2] {
    [
        ("DATABASE_URL", store.url.as_str()),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
    ]
}

/// Posts `body` to a server's Stripe route, signed now with the test secret.
pub async fn post_signed(
    client: &reqwest::Client,
    addr: SocketAddr,
    body: String,
) -> reqwest::Result<reqwest::Response> {
    let sig = stripe_signature(body.as_bytes(), SECRET, now());
    client
        .post(format!("http://{addr}/webhooks/stripe"))
        .header("stripe-signature", sig)
        .body(body)
        .send()
        .await
}

/// Sends a signed `payment_intent.succeeded` for `booking` and expects it stored (200).
pub async fn pay_booking(client: &reqwest::Client, addr: SocketAddr, booking: &str) {
    let event = PaymentIds::new(booking).event("payment_intent.succeeded", now(), &[]);
    let answer = post_signed(client, addr, event.to_string()).await.unwrap();
    assert_eq!(answer.status(), 200);
}

/// Runs `payhook trigger ARGS` in `cwd`, expects a 200, and returns the id of the event it sent.
pub async fn trigger_ok(cwd: &Path, args: &[&str]) -> String {
    let out = payhook(cwd, &[])
        .arg("trigger")
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "trigger {args:?}: {stdout}{stderr}");
    assert!(stdout.contains("<- 200"), "{stdout}");
    let id = stdout.split_whitespace().find(|w| w.starts_with("evt_"));
    id.expect("trigger prints the event id").to_string()
}

pub async fn open_store(url: &str) -> Store {
    Store::connect(url, SqliteSync::Full).await.unwrap()
}

/// Runs `payhook COMMAND` on the store at `url`, which must fail with one line on stderr; returns it.
pub async fn one_line_failure(dir: &Path, url: &str, command: &str) -> String {
    let out = payhook(dir, &[("DATABASE_URL", url)])
        .arg(command)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    stderr
}

/// `payhook migrate` on `store`, which must succeed.
pub async fn migrate(store: &FreshStore) {
    let out = payhook(store.dir.path(), &[("DATABASE_URL", &store.url)])
        .arg("migrate")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
}

/// Runs `payhook ARGS` against the admin API of `server` (in `store`'s directory, with no
/// configuration but the admin URL and `env`), returning (success, stdout and stderr).
pub async fn payhook_on(
    store: &FreshStore,
    server: &Server,
    env: &[(&str, &str)],
    args: &[&str],
) -> (bool, String) {
    let out = payhook(store.dir.path(), env)
        .env("PAYHOOK_ADMIN_URL", &server.admin)
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.success(), format!("{stdout}{stderr}"))
}

/// Polls the booking's status route until `check` holds (10 s at most); returns the last `data`.
pub async fn status_until(
    client: &reqwest::Client,
    addr: SocketAddr,
    booking: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer: serde_json::Value = client
            .get(format!("http://{addr}/api/v1/payments/{booking}/status"))
            .bearer_auth(SERVICE_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if std::time::Instant::now() > deadline {
            eprintln!("last answer: {answer}");
        }
        if check(&answer["data"]) || std::time::Instant::now() > deadline {
            return answer["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
