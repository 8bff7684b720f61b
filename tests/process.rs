//! The real `payhook` binary as a user runs it: start-up, configuration errors, `trigger`, `migrate`,
//! SIGTERM draining and SIGKILL in the middle of concurrent load.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use payhook::domain::SqliteSync;
use payhook::store::Store;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_payhook");
const CLI_ADMIN_TOKEN: &str = "admin-token-for-the-cli";

/// `payhook` with a clean environment (nothing leaks in from the test run), in `cwd`.
fn payhook(cwd: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().current_dir(cwd).env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true);
    cmd
}

struct Server {
    child: Child,
    addr: SocketAddr,
    /// The admin listener's base URL.
    admin: String,
    /// Lines printed on stdout up to the public listener's.
    banner: Vec<String>,
}

/// Starts `payhook serve` on loopback port 0 and waits for it to listen.
async fn serve(cwd: &Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = payhook(cwd, env);
    cmd.arg("serve")
        .env("PAYHOOK_LISTEN", "127.0.0.1:0")
        .env("PAYHOOK_ADMIN_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
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

fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `payhook serve` on a fresh store with the test secret.
async fn serve_fresh() -> (FreshStore, Server) {
    let store = fresh_store().await;
    let server = serve(store.dir.path(), &store_env(&store)).await;
    (store, server)
}

fn store_env(store: &FreshStore) -> [(&str, &str); 2] {
    [
        ("DATABASE_URL", store.url.as_str()),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
    ]
}

/// Posts `body` to a server's Stripe route, signed now with the test secret.
async fn post_signed(
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
async fn pay_booking(client: &reqwest::Client, addr: SocketAddr, booking: &str) {
    let event = PaymentIds::new(booking).event("payment_intent.succeeded", now(), &[]);
    let answer = post_signed(client, addr, event.to_string()).await.unwrap();
    assert_eq!(answer.status(), 200);
}

/// Runs `payhook trigger ARGS` in `cwd`, expects a 200, and returns the id of the event it sent.
async fn trigger_ok(cwd: &Path, args: &[&str]) -> String {
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

async fn open_store(url: &str) -> Store {
    Store::connect(url, SqliteSync::Full).await.unwrap()
}

#[tokio::test]
async fn every_acknowledged_event_survives_a_sigkill_under_load() {
    let (store, mut server) = serve_fresh().await;
    let addr = server.addr;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = payhook::net::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let senders: Vec<_> = (0..16)
        .map(|task| {
            let (client, acked) = (client.clone(), acked.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let id = format!("evt_crash_{task}_{n}");
                    let body = event_body(&id, "payment_intent.succeeded");
                    match post_signed(&client, addr, body).await {
                        Ok(r) if r.status() == 200 => acked.lock().unwrap().push(id),
                        Ok(r) => panic!("unexpected {} before the crash", r.status()),
                        Err(_) => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    // Let load build up, then kill without warning.
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.start_kill().unwrap();
    server.child.wait().await.unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // Restart on the same store: it opens cleanly and has every acknowledged event, once.
    let mut restarted = serve(store.dir.path(), &store_env(&store)).await;
    let inbox = open_store(&store.url).await;
    for id in &acked {
        assert!(
            inbox.event("stripe", id).await.unwrap().is_some(),
            "{id} was acknowledged but lost"
        );
    }
    let total = inbox.count_events().await.unwrap();
    assert!(total as usize >= acked.len());
    // Re-delivering an acknowledged event is recognised as a duplicate.
    let body = event_body(&acked[0], "payment_intent.succeeded");
    let again: serde_json::Value = post_signed(&client, restarted.addr, body)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(inbox.count_events().await.unwrap(), total);
    inbox.close().await;
    restarted.child.start_kill().unwrap();
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish_and_store_its_event() {
    let (store, mut server) = serve_fresh().await;
    let addr = server.addr;
    let body = event_body("evt_in_flight", "payment_intent.succeeded");
    let sig = stripe_signature(body.as_bytes(), SECRET, now());

    // Send half the body, so the request is in flight when SIGTERM arrives.
    let mut stream = TcpStream::connect(addr).unwrap();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let head = format!(
        "POST /webhooks/stripe HTTP/1.1\r\nHost: {addr}\r\nStripe-Signature: {sig}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(first).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&server.child, "-TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Still draining: new connections are refused, the open request is served.
    assert!(
        TcpStream::connect(addr).is_err(),
        "still accepting after SIGTERM"
    );
    stream.write_all(rest).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""duplicate":false"#), "{response}");

    let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "payhook exited with {status}");
    let inbox = open_store(&store.url).await;
    assert!(
        inbox
            .event("stripe", "evt_in_flight")
            .await
            .unwrap()
            .is_some()
    );
    inbox.close().await;
}

#[tokio::test]
async fn with_no_configuration_it_runs_on_sqlite_and_trigger_finds_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    // Only the ports are set, so parallel tests do not collide on 3003/3004.
    let mut server = serve(dir.path(), &[]).await;
    let secret_line = server
        .banner
        .iter()
        .find(|l| l.starts_with("sandbox mode: generated webhook secret whsec_"))
        .unwrap_or_else(|| panic!("no generated secret printed: {:?}", server.banner));
    assert!(
        dir.path().join("payhook.db").exists(),
        "the default store is ./payhook.db"
    );

    let url = format!("http://{}/webhooks/stripe", server.addr);
    let event_id = trigger_ok(
        dir.path(),
        &[
            "payment_intent.succeeded",
            "--add",
            "metadata.bookingId=booking-7",
            "--url",
            &url,
        ],
    )
    .await;

    // The ledger runs on the same defaults: the return page's route sees the session paid.
    trigger_ok(
        dir.path(),
        &[
            "checkout.session.completed",
            "--add",
            "id=cs_test_zero_config",
            "--url",
            &url,
        ],
    )
    .await;
    let client = payhook::net::client_builder().build().unwrap();
    let session_url = format!(
        "http://{}/api/v1/checkout/sessions/cs_test_zero_config",
        server.addr
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let session = loop {
        let answer = client.get(&session_url).send().await.unwrap();
        let status = answer.status();
        let json: serde_json::Value = answer.json().await.unwrap();
        if status == 200 || std::time::Instant::now() > deadline {
            break json;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(session["status"], "complete", "{session}");
    assert_eq!(session["payment_status"], "paid");
    assert_eq!(session["booking_id"], "booking-123");

    signal(&server.child, "-TERM");
    assert!(server.child.wait().await.unwrap().success());
    let inbox = open_store(&format!("sqlite://{}/payhook.db", dir.path().display())).await;
    let row = inbox
        .event("stripe", &event_id)
        .await
        .unwrap()
        .expect("trigger's event stored");
    let payload: serde_json::Value = serde_json::from_slice(&row.payload).unwrap();
    assert_eq!(
        payload["data"]["object"]["metadata"]["bookingId"],
        "booking-7"
    );
    assert!(
        !row.headers
            .contains(secret_line.rsplit(' ').next().unwrap())
    );
    inbox.close().await;
}

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
async fn a_bad_configuration_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("PAYHOOK_LISTEN", "localhost")], "PAYHOOK_LISTEN"),
        (&[("DATABASE_URL", "mysql://db/payhook")], "DATABASE_URL"),
        (
            &[("STRIPE_WEBHOOK_SECRET", "sk_live_oops_wrong_value")],
            "STRIPE_WEBHOOK_SECRET",
        ),
        (
            &[("STRIPE_SECRET_KEY", "sk_test_123")],
            "STRIPE_WEBHOOK_SECRET",
        ),
        (
            &[("PAYHOOK_ADMIN_LISTEN", "0.0.0.0:3004")],
            "PAYHOOK_ADMIN_LISTEN",
        ),
        (&[("PAYHOOK_LOG_FORMAT", "yaml")], "PAYHOOK_LOG_FORMAT"),
    ];
    for (env, key) in cases {
        let out = payhook(dir.path(), env)
            .arg("serve")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(stderr.contains(key), "{key} not named: {stderr}");
        assert!(
            !stderr.contains("sk_live_oops_wrong_value"),
            "a secret was printed: {stderr}"
        );
    }
    std::fs::write(
        dir.path().join("payhook.toml"),
        "listen = \"127.0.0.1:0\"\n[stripe]\ntolerance = 30\n",
    )
    .unwrap();
    let out = payhook(dir.path(), &[])
        .args(["--config", "payhook.toml", "serve"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("tolerance") && stderr.contains("line 3"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("payhook.db").exists(),
        "nothing is created on a bad configuration"
    );
}

#[tokio::test]
async fn production_settings_come_from_secret_files_and_logs_to_a_pipe_are_plain() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let webhook_secret = secrets.join("stripe_webhook_secret");
    std::fs::write(&webhook_secret, "whsec_from_the_docker_secret_1234\n").unwrap();
    let file = webhook_secret.display().to_string();
    let log = dir.path().join("payhook.log");

    // The Docker secret is the webhook secret: no sandbox secret is generated, and an event
    // signed with the file's secret is accepted.
    let server = serve(
        dir.path(),
        &[("STRIPE_WEBHOOK_SECRET_FILE", &file), ("RUST_LOG", "info")],
    )
    .await;
    assert!(
        !server
            .banner
            .iter()
            .any(|l| l.contains("generated webhook secret")),
        "{:?}",
        server.banner
    );
    let client = payhook::net::client_builder().build().unwrap();
    let body = event_body("evt_from_file_secret", "payment_intent.succeeded");
    let signature = stripe_signature(body.as_bytes(), "whsec_from_the_docker_secret_1234", now());
    let answer = client
        .post(format!("http://{}/webhooks/stripe", server.addr))
        .header("stripe-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    signal(&server.child, "-TERM");
    let mut child = server.child;
    child.wait().await.unwrap();
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(written.contains("event applied"), "{written}");
    assert!(
        !written.contains('\u{1b}'),
        "no colour codes in a file: {written}"
    );
    let last = written.lines().last().unwrap_or_default();
    assert!(
        last.contains("payhook stopped"),
        "a last line says so: {last}"
    );

    // Both forms, or a file that is not there: start-up stops and names the variable and file.
    for (env, named) in [
        (
            vec![
                ("STRIPE_WEBHOOK_SECRET_FILE", file.as_str()),
                ("STRIPE_WEBHOOK_SECRET", "whsec_the_other_one_123456"),
            ],
            "STRIPE_WEBHOOK_SECRET_FILE",
        ),
        (
            vec![(
                "STRIPE_WEBHOOK_SECRET_FILE",
                "/run/secrets/stripe_webhook_secret",
            )],
            "/run/secrets/stripe_webhook_secret",
        ),
    ] {
        let out = payhook(dir.path(), &env)
            .arg("serve")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(named), "{named}: {stderr}");
        assert!(!stderr.contains("whsec_"), "no secret printed: {stderr}");
    }

    // A bad file named with --config is named by its path, not as payhook.toml.
    let prod = dir.path().join("prod.toml");
    std::fs::write(&prod, "listen = 3\n").unwrap();
    let out = payhook(dir.path(), &[])
        .args(["--config", &prod.display().to_string(), "serve"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{} line 1", prod.display())),
        "{stderr}"
    );
}

#[tokio::test]
async fn urls_follow_the_listener_and_trigger_finds_the_running_instance() {
    let dir = tempfile::tempdir().unwrap();
    // Port 0: the listener's real port is only known once it is bound.
    let server = serve(
        dir.path(),
        &[("INTERNAL_SERVICE_TOKEN", "tok"), ("RUST_LOG", "info")],
    )
    .await;
    let public = format!("http://localhost:{}", server.addr.port());
    let sandbox_line = server
        .banner
        .iter()
        .find(|l| l.starts_with("payment provider: sandbox"))
        .unwrap();
    assert!(
        sandbox_line.contains(&format!("{public}/sandbox/checkout/")),
        "{sandbox_line}"
    );
    let client = payhook::net::client_builder().build().unwrap();
    let created: serde_json::Value = client
        .post(format!("http://{}/api/v1/checkout/sessions", server.addr))
        .bearer_auth("tok")
        .json(&serde_json::json!({"booking_id": "b-url", "amount": 100, "currency": "eur"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        created["checkout_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{public}/sandbox/checkout/cs_")),
        "{created}"
    );

    // Another shell, no PAYHOOK_LISTEN: trigger posts to the instance that is running.
    let event_id = trigger_ok(dir.path(), &["payment_intent.succeeded"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = client
            .get(format!(
                "{}/admin/api/events?event_id={event_id}",
                server.admin
            ))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = answer.json().await.unwrap();
        if body["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{event_id} not stored: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&server.child, "-TERM");
    let mut child = server.child;
    child.wait().await.unwrap();
    // The session id is the capability to read the session: never in the log.
    let log = std::fs::read_to_string(dir.path().join("payhook.log")).unwrap();
    assert!(log.contains("checkout session created"), "{log}");
    let session = created["session_id"].as_str().unwrap();
    assert!(!log.contains(session), "{log}");
}

#[tokio::test]
async fn a_payhook_toml_in_the_working_directory_is_read_and_said_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("payhook.toml"),
        format!("[stripe]\nwebhook_secrets = [\"{SECRET}\"]\n"),
    )
    .unwrap();
    let server = serve(dir.path(), &[("RUST_LOG", "info")]).await;
    assert!(
        !server.banner.iter().any(|l| l.contains("sandbox mode")),
        "the file's secret is used: {:?}",
        server.banner
    );
    let status = post_signed(
        &payhook::net::client_builder().build().unwrap(),
        server.addr,
        event_body("evt_from_cwd_toml", "payment_intent.succeeded"),
    )
    .await
    .unwrap()
    .status();
    assert_eq!(status, 200);
    signal(&server.child, "-TERM");
    let mut child = server.child;
    child.wait().await.unwrap();
    let log = std::fs::read_to_string(dir.path().join("payhook.log")).unwrap();
    assert!(
        log.contains("configuration read from ./payhook.toml"),
        "{log}"
    );
}

/// Runs `payhook COMMAND` on the store at `url`, which must fail with one line on stderr; returns it.
async fn one_line_failure(dir: &Path, url: &str, command: &str) -> String {
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

#[tokio::test]
async fn a_store_that_cannot_be_opened_is_said_once_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    let url = format!("sqlite://{}/payhook.db", missing.display());
    let stderr = one_line_failure(dir.path(), &url, "serve").await;
    let named = format!("the directory {} does not exist", missing.display());
    assert!(stderr.contains(&named), "{stderr}");

    // Nothing listens on this port: the cause is the refused connection, said once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/payhook");
    let stderr = one_line_failure(dir.path(), &url, "migrate").await;
    assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");
}

/// `payhook migrate` on `store`, which must succeed.
async fn migrate(store: &FreshStore) {
    let out = payhook(store.dir.path(), &[("DATABASE_URL", &store.url)])
        .arg("migrate")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
}

/// An older payhook on a store a later one migrated refuses to start and says what a rollback
/// is: that version, or the backup taken before the upgrade.
#[tokio::test]
async fn a_store_migrated_by_a_later_payhook_is_refused_with_what_to_do() {
    let store = fresh_store().await;
    migrate(&store).await;
    store
        .execute(&[
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                    execution_time) VALUES (99, 'from a later payhook', true, '', 0)"
                .to_string(),
        ])
        .await;
    let stderr = one_line_failure(store.dir.path(), &store.url, "serve").await;
    assert!(
        stderr.contains("migrated by a later payhook (its migration 99")
            && stderr.contains("restore the backup taken before the upgrade"),
        "{stderr}"
    );
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

#[tokio::test]
async fn every_option_is_described_and_serve_help_names_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &["serve"],
        &["migrate"],
        &["trigger"],
        &["events", "list"],
        &["events", "show"],
        &["events", "replay"],
        &["deliveries", "list"],
        &["deliveries", "retry"],
        &["reconcile"],
        &["sandbox", "refund"],
        &["sandbox", "dispute"],
        &["demo"],
        &["example-booking-service"],
        &["backup"],
    ];
    for command in commands {
        let out = payhook(dir.path(), &[])
            .args(*command)
            .arg("--help")
            .output()
            .await
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{command:?}: {help}");
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let option = line.trim_start();
            if option.starts_with('-') {
                // The description follows on the line, or (long help) on the next one.
                let indent = line.len() - option.len();
                let next = lines.get(i + 1).copied().unwrap_or_default();
                let below = next.trim_start();
                let described_below = !below.is_empty()
                    && !below.starts_with('-')
                    && next.len() - below.len() > indent;
                assert!(
                    option.trim_end().contains("  ") || described_below,
                    "{command:?}: an option without a description: {line:?}"
                );
            }
        }
    }
    let out = payhook(dir.path(), &[])
        .args(["serve", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for variable in [
        "PAYHOOK_LISTEN",
        "DATABASE_URL",
        "STRIPE_WEBHOOK_SECRET",
        "NAME_FILE",
    ] {
        assert!(help.contains(variable), "{variable}: {help}");
    }
    let out = payhook(dir.path(), &[])
        .args(["trigger", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("[EVENT_TYPE]") && help.contains("required unless --body"),
        "the usage line and the description agree: {help}"
    );
}

#[tokio::test]
async fn trigger_continues_a_story_on_the_same_payment() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), &[]).await;
    // The README's story: a payment for booking-123, then a partial refund of it.
    trigger_ok(
        dir.path(),
        &[
            "payment_intent.succeeded",
            "--add",
            "metadata.bookingId=booking-123",
        ],
    )
    .await;
    trigger_ok(
        dir.path(),
        &[
            "charge.refunded",
            "--same-payment",
            "--add",
            "amount_refunded=500",
        ],
    )
    .await;
    let client = payhook::net::client_builder().build().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let payments = loop {
        let body: serde_json::Value = client
            .get(format!(
                "{}/admin/api/payments?booking_id=booking-123",
                server.admin
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rows = body["data"].as_array().cloned().unwrap_or_default();
        if rows
            .first()
            .is_some_and(|p| p["status"] == "partially_refunded")
            || std::time::Instant::now() > deadline
        {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(payments.len(), 1, "one payment, not two: {payments:?}");
    assert_eq!(payments[0]["status"], "partially_refunded");
    assert_eq!(payments[0]["amount_refunded"], 500);
    signal(&server.child, "-TERM");
}

#[tokio::test]
async fn migrate_prepares_the_store_and_serve_reads_payhook_toml() {
    let store = fresh_store().await;
    migrate(&store).await;
    let inbox = open_store(&store.url).await;
    assert_eq!(inbox.count_events().await.unwrap(), 0);
    inbox.close().await;

    // The file supplies the store and secret; the environment still wins for the listeners.
    let toml = format!(
        "database_url = \"{}\"\nlisten = \"127.0.0.1:1\"\n[stripe]\nwebhook_secrets = [\"{SECRET}\"]\n",
        store.url
    );
    std::fs::write(store.dir.path().join("payhook.toml"), toml).unwrap();
    let mut server = serve(store.dir.path(), &[("PAYHOOK_CONFIG", "payhook.toml")]).await;
    assert!(
        !server.banner.iter().any(|l| l.contains("sandbox mode")),
        "{:?}",
        server.banner
    );
    // A real webhook secret and no API key: webhooks only, the sandbox provider stays off.
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.starts_with("payment provider: none, webhooks only")),
        "{:?}",
        server.banner
    );
    let body = event_body("evt_from_toml", "payment_intent.succeeded");
    let status = post_signed(
        &payhook::net::client_builder().build().unwrap(),
        server.addr,
        body,
    )
    .await
    .unwrap()
    .status();
    assert_eq!(status, 200);
    server.child.start_kill().unwrap();
}

#[tokio::test]
async fn two_hundred_events_over_keep_alive_connections_are_each_stored_once() {
    let (store, mut server) = serve_fresh().await;
    let client = payhook::net::client_builder().build().unwrap();
    let addr = server.addr;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            // Every event twice: the second copy must be a duplicate whichever lands first.
            let body = event_body(
                &format!("evt_keepalive_{}", i % 100),
                "payment_intent.succeeded",
            );
            let r = post_signed(&client, addr, body).await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }));
    }
    let mut originals = HashSet::new();
    for t in tasks {
        let answer = t.await.unwrap();
        if answer["duplicate"] == false {
            assert!(originals.insert(answer["event_id"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(originals.len(), 100);
    let inbox = open_store(&store.url).await;
    assert_eq!(inbox.count_events().await.unwrap(), 100);
    inbox.close().await;
    server.child.start_kill().unwrap();
}

#[tokio::test]
async fn json_logs_have_one_line_per_webhook_and_never_a_secret() {
    let store = fresh_store().await;
    let mut env = store_env(&store).to_vec();
    env.extend([("PAYHOOK_LOG_FORMAT", "json"), ("RUST_LOG", "info")]);
    let mut server = serve(store.dir.path(), &env).await;
    let client = payhook::net::client_builder().build().unwrap();
    let body = event_body("evt_logged", "payment_intent.succeeded");
    assert_eq!(
        post_signed(&client, server.addr, body)
            .await
            .unwrap()
            .status(),
        200
    );
    // Refused: signed with another secret, which must not be echoed either.
    let body = event_body("evt_refused_log", "payment_intent.succeeded");
    let sig = stripe_signature(body.as_bytes(), "whsec_attackers_guess_xyz", now());
    let refused = client
        .post(format!("http://{}/webhooks/stripe", server.addr))
        .header("stripe-signature", &sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    signal(&server.child, "-TERM");
    assert!(server.child.wait().await.unwrap().success());

    let log = std::fs::read_to_string(store.dir.path().join("payhook.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let received = lines
        .iter()
        .find(|l| l["fields"]["event_id"] == "evt_logged")
        .unwrap_or_else(|| panic!("no line for the stored webhook: {log}"));
    assert_eq!(received["fields"]["outcome"], "stored");
    assert_eq!(received["fields"]["event_type"], "payment_intent.succeeded");
    assert!(received["fields"]["latency_us"].is_u64());
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["code"] == "invalid_signature")
    );
    for secret in [
        SECRET,
        "whsec_attackers_guess_xyz",
        sig.rsplit('=').next().unwrap(),
    ] {
        assert!(!log.contains(secret), "{secret} appears in the logs");
    }
}

/// Runs `payhook ARGS` against the admin API of `server` (in `store`'s directory, with no
/// configuration but the admin URL and `env`), returning (success, stdout and stderr).
async fn payhook_on(
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
async fn status_until(
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
    assert!(!ok && out.contains("no stored event \"evt_nope\""), "{out}");

    // --json: the admin API's own rows.
    let (ok, out) = payhook_on(&store, &server, &cli, &["events", "list", "--json"]).await;
    assert!(ok, "{out}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON rows");
    assert_eq!(rows.len(), 3, "{out}");
    assert_eq!(rows[0]["event_id"], "evt_cli_broken");
    assert_eq!(rows[0]["status"], "failed");

    // Bulk: every failed event, with progress on stderr and one outcome per event.
    let (ok, out) = payhook_on(&store, &server, &cli, &["events", "replay", "--failed"]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("requeued 1/1"), "{out}");
    assert!(
        out.contains("[1/1]") && out.contains("evt_cli_broken failed"),
        "{out}"
    );

    // The admin API's token is needed, and a missing or wrong one is said plainly.
    let (ok, out) = payhook_on(&store, &server, &[], &["events", "list"]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("401 Unauthorized unauthorized"), "{out}");
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
    assert_eq!(said["retried"].as_array().map(Vec::len), Some(2), "{out}");
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

/// A booking service that holds the first status update until payhook is killed, and takes the
/// rest at once: the update in flight at the kill is sent again after the restart, with the same
/// request id, and applied once.
#[tokio::test]
async fn a_notification_in_flight_when_payhook_is_killed_is_delivered_after_restart() {
    use common::receiver::{Receiver, Reply};
    let receiver = Receiver::start(|n, _| Reply {
        delay: if n == 0 {
            Duration::from_secs(30)
        } else {
            Duration::ZERO
        },
        ..Reply::status(200)
    })
    .await;
    let store = fresh_store().await;
    let mut env = store_env(&store).to_vec();
    env.push(("BOOKING_SERVICE_URL", receiver.url.as_str()));
    env.push(("INTERNAL_SERVICE_TOKEN", SERVICE_TOKEN));
    let mut server = serve(store.dir.path(), &env).await;
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.starts_with("notifying target booking-service: booking-status at")),
        "{:?}",
        server.banner
    );
    let client = payhook::net::client_builder().build().unwrap();
    pay_booking(&client, server.addr, "booking-killed").await;
    let first = receiver.wait_for(1, Duration::from_secs(10)).await;

    signal(&server.child, "-KILL");
    server.child.wait().await.unwrap();
    let server = serve(store.dir.path(), &env).await;
    let all = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        all[1].header("x-request-id"),
        first[0].header("x-request-id")
    );
    assert_eq!(
        all[1].path,
        "/api/v1/bookings/booking-killed/payment-status"
    );
    assert_eq!(
        all[1].header("authorization"),
        format!("Bearer {SERVICE_TOKEN}")
    );

    let (ok, out) = payhook_on(&store, &server, &[], &["deliveries", "list"]).await;
    assert!(ok, "{out}");
    let mut lines = out.lines().skip(1);
    let row = lines.next().unwrap_or_default();
    assert!(
        row.contains("delivered") && row.contains("booking-killed") && row.contains("confirmed"),
        "{out}"
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

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
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
            let open = line.trim().starts_with("open ");
            printed.push(line);
            if open {
                break;
            }
        }
    })
    .await
    .unwrap();
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

/// Every secret payhook is given (webhook secrets of each source, the admin token, the service
/// token, an events target's signing secret) and every signature it sees: none appears in a log line
/// (debug level, JSON), an admin answer, `/metrics` or the dashboard.
#[tokio::test]
async fn no_secret_appears_in_logs_admin_answers_metrics_or_pages() {
    use common::receiver::{Receiver, Reply, booking_service};
    const ADMIN: &str = "admin-token-never-shown";
    const SERVICE: &str = "service-token-never-shown";
    const HMAC: &str = "hmac-secret-never-shown";
    const EVENTS: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (bookings, bookings_url) = booking_service(SERVICE).await;
    bookings.create("booking-secret", Some(2000), Some("eur"), "pending");
    let subscriber = Receiver::start(|_, _| Reply::status(204)).await;
    let store = fresh_store().await;
    let dir = store.dir.path();
    std::fs::write(
        dir.join("payhook.toml"),
        format!(
            r#"
[[sources]]
name = "payments"
kind = "hmac"
secrets = ["{HMAC}"]
header = "x-signature"
[sources.mapping]
event_id = "id"
event_type = "event"
payment_id = "ref"
booking_id = "booking"
types = {{ "paid" = "succeeded" }}

[[targets]]
name = "subscribers"
kind = "events"
url = "{}"
secret = "{EVENTS}"
"#,
            subscriber.url
        ),
    )
    .unwrap();
    let config = dir.join("payhook.toml").display().to_string();
    let mut env = store_env(&store).to_vec();
    env.extend([
        ("PAYHOOK_CONFIG", config.as_str()),
        ("PAYHOOK_LOG_FORMAT", "json"),
        ("RUST_LOG", "debug"),
        ("PAYHOOK_ADMIN_TOKEN", ADMIN),
        ("INTERNAL_SERVICE_TOKEN", SERVICE),
        ("BOOKING_SERVICE_URL", bookings_url.as_str()),
    ]);
    let mut server = serve(dir, &env).await;
    let admin = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("admin listener: "))
        .expect("the admin listener is printed")
        .to_string();
    let client = payhook::net::client_builder().build().unwrap();
    let mut seen = Vec::new();

    let pay = PaymentIds::new("booking-secret");
    let event = pay.event("payment_intent.succeeded", now(), &[]);
    let pay_event_id = event["id"].as_str().unwrap().to_string();
    let body = event.to_string();
    let stripe_sig = stripe_signature(body.as_bytes(), SECRET, now());
    assert_eq!(
        post_signed(&client, server.addr, body)
            .await
            .unwrap()
            .status(),
        200
    );
    let hmac_body = r#"{"id":"h1","event":"paid","ref":"r1","booking":"booking-h"}"#;
    let hmac_sig = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HMAC.as_bytes()).unwrap();
        mac.update(hmac_body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let stored = client
        .post(format!("http://{}/webhooks/payments", server.addr))
        .header("x-signature", &hmac_sig)
        .body(hmac_body)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);
    let refused = client
        .post(format!("http://{}/webhooks/payments", server.addr))
        .header("x-signature", "00ff")
        .body(hmac_body)
        .send()
        .await
        .unwrap();
    seen.push(refused.text().await.unwrap());
    // Delivered to the booking service and to the subscriber.
    subscriber.wait_for(1, Duration::from_secs(10)).await;
    for _ in 0..200 {
        if bookings
            .booking("booking-secret")
            .map(|b| b.status)
            .as_deref()
            == Some("confirmed")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let get = |path: String, token: Option<&str>| {
        let mut request = client.get(path);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    seen.push(get(format!("{admin}/admin/api/events"), None).await);
    seen.push(get(format!("{admin}/admin/api/events?limit=1"), Some("wrong")).await);
    for path in [
        "/admin/api/events",
        "/admin/api/events/1",
        "/admin/api/events/2",
        "/admin/api/payments",
        "/admin/api/deliveries",
        "/admin/api/targets",
        "/admin/api/overview",
        "/metrics",
        "/",
    ] {
        seen.push(get(format!("{admin}{path}"), Some(ADMIN)).await);
    }
    let detail = &seen[seen.len() - 8];
    assert!(detail.contains("[redacted]"), "{detail}");

    signal(&server.child, "-TERM");
    assert!(server.child.wait().await.unwrap().success());
    let log = std::fs::read_to_string(dir.join("payhook.log")).unwrap();
    // One structured line per webhook, per event applied and per delivery attempt, each naming
    // the event, its source and type, the booking, the outcome and (ingest, delivery) the time.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("every log line is JSON"))
        .collect();
    let line = |message: &str| {
        lines
            .iter()
            .find(|l| {
                l["fields"]["message"] == message
                    && l["fields"]["event_id"] == pay_event_id.as_str()
            })
            .map(|l| l["fields"].clone())
            .unwrap_or_else(|| panic!("no {message:?} line for {pay_event_id}:\n{log}"))
    };
    let received = line("webhook received");
    assert_eq!(received["source"], "stripe");
    assert_eq!(received["event_type"], "payment_intent.succeeded");
    assert_eq!(received["outcome"], "stored");
    assert!(received["latency_us"].is_u64());
    let applied = line("event applied");
    assert_eq!(applied["booking_id"], "booking-secret");
    assert_eq!(applied["type"], "payment_intent.succeeded");
    assert_eq!(applied["status"], "processed");
    let delivered = line("notification delivered");
    assert_eq!(delivered["booking_id"], "booking-secret");
    assert_eq!(delivered["source"], "stripe");
    assert_eq!(delivered["outcome"], "delivered");
    assert!(delivered["type"].is_string() && delivered["latency_ms"].is_u64());
    seen.push(log);
    for secret in [
        SECRET,
        ADMIN,
        SERVICE,
        HMAC,
        EVENTS,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        &hmac_sig,
        stripe_sig.rsplit('=').next().unwrap(),
    ] {
        for (i, text) in seen.iter().enumerate() {
            assert!(!text.contains(secret), "{secret} appears in output {i}");
        }
    }
    // What the subscriber received is signed, not secret-bearing either.
    for r in subscriber.requests() {
        assert!(!r.body.contains(EVENTS) && !r.header("webhook-signature").contains(EVENTS));
    }
}

/// Scale-out on PostgreSQL: three `payhook serve` instances share one database. Every event of
/// 500 bookings (payment, partial refund, full refund, in random order) is sent twice, to two
/// different instances, by 32 concurrent senders; one instance is killed (SIGKILL) halfway, and
/// its requests go to the others, as a provider's retries would. Each event is in the ledger once,
/// each booking ends refunded with every transition applied once and in order, and no
/// notification is dead or sent twice.
#[tokio::test]
async fn three_instances_on_one_postgres_share_the_work_and_survive_losing_one() {
    use rand::seq::SliceRandom;
    let store = fresh_store().await;
    if !is_postgres(&store.url) {
        skipped("scale-out needs PostgreSQL (TEST_DATABASE_URL)");
        return;
    }
    let (service, booking_url) = common::receiver::booking_service(SERVICE_TOKEN).await;
    const BOOKINGS: usize = 500;
    let t = now();
    let mut events = Vec::new();
    for b in 0..BOOKINGS {
        let booking = format!("booking-scale-{b}");
        service.create(&booking, Some(2000), Some("EUR"), "pending");
        let pay = PaymentIds::new(&booking);
        events.push(pay.event("payment_intent.succeeded", t, &[]));
        events.push(pay.event(
            "charge.refunded",
            t + 5,
            &["amount_refunded=500".to_string()],
        ));
        events.push(pay.event("charge.refunded", t + 10, &[]));
    }
    // Each event twice, to two different instances; all of it shuffled.
    let mut sends: Vec<(usize, String)> = events
        .iter()
        .enumerate()
        .flat_map(|(i, e)| [(i % 3, e.to_string()), ((i + 1) % 3, e.to_string())])
        .collect();
    sends.shuffle(&mut rand::rng());

    let env = [
        ("DATABASE_URL", store.url.as_str()),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
        ("BOOKING_SERVICE_URL", booking_url.as_str()),
        ("INTERNAL_SERVICE_TOKEN", SERVICE_TOKEN),
    ];
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut servers = Vec::new();
    for dir in &dirs {
        servers.push(serve(dir.path(), &env).await);
    }
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();

    let client = payhook::net::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let queue = Arc::new(Mutex::new(sends));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let total = events.len() * 2;
    let senders: Vec<_> = (0..32)
        .map(|_| {
            let (client, queue, sent, addrs) =
                (client.clone(), queue.clone(), sent.clone(), addrs.clone());
            tokio::spawn(async move {
                loop {
                    let Some((first, body)) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    // The chosen instance, else the next ones: a provider retries what got no 200.
                    let mut stored = false;
                    for attempt in 0..30 {
                        let addr = addrs[(first + attempt) % addrs.len()];
                        if let Ok(r) = post_signed(&client, addr, body.clone()).await {
                            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
                            stored = true;
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    assert!(stored, "no instance stored an event");
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    while sent.load(std::sync::atomic::Ordering::Relaxed) < total / 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut killed = servers.pop().unwrap();
    killed.child.start_kill().unwrap();
    killed.child.wait().await.unwrap();
    for s in senders {
        s.await.unwrap();
    }

    // The two left finish everything, the killed one's claimed notifications after their lease.
    for b in 0..BOOKINGS {
        let booking = format!("booking-scale-{b}");
        common::receiver::eventually(Duration::from_secs(60), &booking, || async {
            service.booking(&booking).unwrap().status == "refunded"
        })
        .await;
    }
    let db = sqlx::PgPool::connect(&store.url).await.unwrap();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM webhook_events").await,
        events.len() as i64
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM webhook_events WHERE status = 'processed'").await,
        events.len() as i64
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM payment_facts").await,
        events.len() as i64
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM payments").await,
        BOOKINGS as i64
    );
    common::receiver::eventually(
        Duration::from_secs(30),
        "every notification delivered",
        || {
            let count = count("SELECT COUNT(*) FROM deliveries WHERE status <> 'delivered'");
            async move { count.await == 0 }
        },
    )
    .await;
    assert_eq!(
        count("SELECT COUNT(*) FROM deliveries WHERE status = 'dead'").await,
        0
    );

    // Per booking: each transition once, in the contract's order, whatever the arrival order.
    let valid = [
        vec![
            "pending>confirmed",
            "confirmed>partially_refunded",
            "partially_refunded>refunded",
        ],
        vec!["pending>confirmed", "confirmed>refunded"],
    ];
    for b in 0..BOOKINGS {
        let booking = service.booking(&format!("booking-scale-{b}")).unwrap();
        let history: Vec<String> = booking
            .history
            .iter()
            .map(|t| format!("{}>{}", t.from, t.to))
            .collect();
        assert!(
            valid.iter().any(|v| *v == history),
            "booking-scale-{b}: {history:?}"
        );
    }
    // Every notification reached the booking service; a second copy of one (same request id) can
    // only be an attempt the killed instance had in flight, sent again when its lease ended: at
    // most its concurrency (32), and never applied twice (the histories above).
    let received = service.received();
    let ids: HashSet<&str> = received
        .iter()
        .filter_map(|r| r.request_id.as_deref())
        .collect();
    assert_eq!(
        ids.len() as i64,
        count("SELECT COUNT(*) FROM deliveries").await
    );
    let repeats = received.len() - ids.len();
    assert!(repeats <= 32, "{repeats} updates sent twice");
    for s in &mut servers {
        signal(&s.child, "-TERM");
        assert!(s.child.wait().await.unwrap().success());
    }
}

/// A PostgreSQL server of the test's own (`scripts/lib/postgres.sh`), which it may stop and start
/// again; removed when dropped.
struct OwnPostgres {
    dir: String,
    url: String,
}

impl OwnPostgres {
    fn start() -> OwnPostgres {
        let out =
            OwnPostgres::script("pg_start -c fsync=off > /dev/null && echo \"$PG_DIR $PG_URL\"");
        let (dir, url) = out.trim().split_once(' ').expect("PG_DIR and PG_URL");
        OwnPostgres {
            dir: dir.to_string(),
            url: url.to_string(),
        }
    }

    fn script(commands: &str) -> String {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("source scripts/lib/postgres.sh && {commands}"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn run(&self, function: &str) {
        OwnPostgres::script(&format!("PG_DIR={} && {function}", self.dir));
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.run("pg_stop");
    }
}

/// PostgreSQL stopped for a few seconds under load, then started again: payhook answers
/// `503 store_unavailable` (never 200) while it is down, recovers by itself (no restart), and
/// every event it acknowledged is stored once, applied, and confirms its booking.
#[tokio::test]
async fn postgres_stopped_and_restarted_under_load_loses_no_acknowledged_event() {
    if std::env::var("TEST_DATABASE_URL").map_or(true, |u| u.is_empty()) {
        skipped("the PostgreSQL tier runs it (it starts a server of its own)");
        return;
    }
    let pg = OwnPostgres::start();
    let (service, booking_url) = common::receiver::booking_service(SERVICE_TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", pg.url.as_str()),
        ("STRIPE_WEBHOOK_SECRET", SECRET),
        ("BOOKING_SERVICE_URL", booking_url.as_str()),
        ("INTERNAL_SERVICE_TOKEN", SERVICE_TOKEN),
    ];
    let mut server = serve(dir.path(), &env).await;
    let addr = server.addr;
    let client = payhook::net::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let unavailable = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    use std::sync::atomic::Ordering::Relaxed;
    let senders: Vec<_> = (0..8)
        .map(|task| {
            let (client, acked, unavailable, stop, service) = (
                client.clone(),
                acked.clone(),
                unavailable.clone(),
                stop.clone(),
                service.clone(),
            );
            tokio::spawn(async move {
                for n in 0.. {
                    if stop.load(Relaxed) {
                        return;
                    }
                    let booking = format!("booking-outage-{task}-{n}");
                    service.create(&booking, Some(2000), Some("EUR"), "pending");
                    let event =
                        PaymentIds::new(&booking).event("payment_intent.succeeded", now(), &[]);
                    // As a provider does: the same event again until it gets a 200.
                    loop {
                        let r = post_signed(&client, addr, event.to_string()).await.unwrap();
                        match r.status().as_u16() {
                            200 => break,
                            503 => {
                                let body: serde_json::Value = r.json().await.unwrap();
                                assert_eq!(body["error"]["code"], "store_unavailable");
                                unavailable.fetch_add(1, Relaxed);
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            other => panic!("{other} during the outage"),
                        }
                    }
                    acked.lock().unwrap().push(booking);
                }
            })
        })
        .collect();
    let acked_count = || acked.lock().unwrap().len();
    while acked_count() < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pg.run("pg_halt");
    let at_halt = acked_count();
    // The first requests wait up to the pool's acquire timeout (3 s) for a connection; once a
    // commit has failed, the store is known to be down and webhooks are answered at once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        unavailable.load(Relaxed) > 0,
        "503 store_unavailable while the store is down"
    );
    let mut fastest = Duration::MAX;
    for n in 0..5 {
        let event = PaymentIds::new(&format!("booking-outage-timed-{n}")).event(
            "payment_intent.succeeded",
            now(),
            &[],
        );
        let started = std::time::Instant::now();
        let r = post_signed(&client, addr, event.to_string()).await.unwrap();
        assert_eq!(r.status(), 503);
        fastest = fastest.min(started.elapsed());
    }
    assert!(
        fastest < Duration::from_millis(500),
        "a store known to be down is answered at once: {fastest:?}"
    );
    assert!(
        acked_count() <= at_halt + 8,
        "no 200 while the store is down (at most the commits in flight at the halt)"
    );
    pg.run("pg_resume");
    // payhook recovers by itself: acknowledgements resume.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while acked_count() < at_halt + 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "payhook did not recover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "never restarted"
    );

    let acked = acked.lock().unwrap().clone();
    for booking in &acked {
        common::receiver::eventually(Duration::from_secs(60), booking, || async {
            service.booking(booking).unwrap().status == "confirmed"
        })
        .await;
    }
    let db = sqlx::PgPool::connect(&pg.url).await.unwrap();
    let stored: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE status = 'processed'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        stored as usize,
        acked.len(),
        "each acknowledged event once, applied"
    );
    eprintln!(
        "{} acknowledged, {} answers 503 while the store was down",
        acked.len(),
        unavailable.load(Relaxed)
    );
    db.close().await;
    signal(&server.child, "-TERM");
    assert!(server.child.wait().await.unwrap().success());
}

/// The booking service down for a minute while payments, partial refunds and refunds keep coming
/// (each booking's events in random order): every webhook is acknowledged, and once the service
/// is back every booking gets each of its transitions once, in order; nothing is dead.
#[tokio::test]
async fn the_booking_service_down_for_a_minute_under_load_loses_nothing_and_keeps_order() {
    use payhook::booking_service::BookingService;
    use rand::seq::SliceRandom;
    let store = fresh_store().await;
    let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let booking_addr = parked.local_addr().unwrap();
    drop(parked);
    // Retries that outlast the outage; a circuit that probes after 2 s, then waits twice as long
    // after each failed probe (2, 4, 8, 16, 32, 64 s over the minute).
    let toml = format!(
        r#"
[[targets]]
name = "booking-service"
kind = "booking-status"
url = "http://{booking_addr}"
token = "{SERVICE_TOKEN}"
retry_schedule = ["0s", "1s", "2s", "4s", "8s", "15s", "15s", "15s", "15s", "15s", "15s"]
circuit_failures = 5
circuit_open = "2s"
"#
    );
    std::fs::write(store.dir.path().join("payhook.toml"), toml).unwrap();
    let mut env = store_env(&store).to_vec();
    env.push(("PAYHOOK_CONFIG", "payhook.toml"));
    let mut server = serve(store.dir.path(), &env).await;
    let client = payhook::net::client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // A minute of traffic: 5 bookings every 200 ms or so, each paid then partly then fully refunded.
    let t = now();
    let mut bookings = Vec::new();
    let started = std::time::Instant::now();
    let mut second = 0;
    while started.elapsed() < Duration::from_secs(60) {
        let mut events = Vec::new();
        for i in 0..5 {
            let booking = format!("booking-down-{second}-{i}");
            let pay = PaymentIds::new(&booking);
            events.push(pay.event("payment_intent.succeeded", t, &[]));
            events.push(pay.event(
                "charge.refunded",
                t + 5,
                &["amount_refunded=500".to_string()],
            ));
            events.push(pay.event("charge.refunded", t + 10, &[]));
            bookings.push(booking);
        }
        events.shuffle(&mut rand::rng());
        for event in events {
            let answer = post_signed(&client, server.addr, event.to_string())
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
        second += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The booking service comes back, knowing every booking.
    let service = BookingService::new(Some(SERVICE_TOKEN.to_string()), false);
    for booking in &bookings {
        service.create(booking, Some(2000), Some("EUR"), "pending");
    }
    let listener = tokio::net::TcpListener::bind(booking_addr).await.unwrap();
    tokio::spawn(payhook::booking_service::serve(listener, service.clone()));

    // The next probe can be up to 64 s away when the service comes back (the outage's last probe
    // failed just before), then the backlog goes: the first booking may take that long, the others
    // follow it.
    for booking in &bookings {
        common::receiver::eventually(Duration::from_secs(180), booking, || async {
            service.booking(booking).unwrap().status == "refunded"
        })
        .await;
        let history: Vec<String> = service
            .booking(booking)
            .unwrap()
            .history
            .iter()
            .map(|t| format!("{}>{}", t.from, t.to))
            .collect();
        assert!(
            history
                == [
                    "pending>confirmed",
                    "confirmed>partially_refunded",
                    "partially_refunded>refunded"
                ]
                || history == ["pending>confirmed", "confirmed>refunded"],
            "{booking}: {history:?}"
        );
    }
    let dead: serde_json::Value = client
        .get(format!("{}/admin/api/deliveries?status=dead", server.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dead["data"], serde_json::json!([]), "nothing dead");
    eprintln!(
        "{} bookings, {} webhooks during the outage",
        bookings.len(),
        bookings.len() * 3
    );
    signal(&server.child, "-TERM");
    assert!(server.child.wait().await.unwrap().success());
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
        // Ingest at each connection count, empty and with the history; end to end; the history.
        assert_eq!(row(store), 2 + 1, "{store}: {stdout}");
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
    ] {
        assert!(stdout.contains(part), "{part}: {stdout}");
    }
    // A run or a query that went wrong prints "failed: ..." on its row.
    assert!(!stdout.contains("failed:"), "{stdout}");
    // Each ingest row ends with the CPU time per event of the server, of PostgreSQL's processes
    // (a PostgreSQL target's, on this machine) and of the load generator.
    let ingest_rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.len() >= 11 && cells[1].parse::<u32>().is_ok())
        .collect();
    assert_eq!(ingest_rows.len(), 2 + 2 * 2 * stores.len(), "{stdout}");
    let microseconds = |cell: &str| cell.parse::<u64>().is_ok_and(|us| us > 0);
    for cells in ingest_rows {
        let [server, postgres, generator] = cells[cells.len() - 3..] else {
            unreachable!("at least 11 cells")
        };
        assert!(microseconds(server) && microseconds(generator), "{cells:?}");
        assert_eq!(
            microseconds(postgres),
            cells[0].starts_with("postgres"),
            "{cells:?}"
        );
    }
}
