//! The real `payhook` binary as a user starts it: defaults, configuration files and their errors,
//! secrets from files, the listeners' URLs, the store that cannot be opened or is too new,
//! `--help`, and the logs.

mod common;
// Only the process tests start the binary: its helpers are compiled into them alone.
#[path = "common/process.rs"]
mod process;

use std::time::Duration;

use common::*;
use process::*;

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

#[tokio::test]
async fn a_store_that_cannot_be_opened_is_said_once_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    let url = format!("sqlite://{}/payhook.db", missing.display());
    let stderr = one_line_failure(dir.path(), &url, "serve").await;
    let named = format!("{} does not exist", missing.display());
    assert!(stderr.contains(&named), "{stderr}");
    // A file where the directory should be is named as that.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let url = format!("sqlite://{}/payhook.db", file.display());
    let stderr = one_line_failure(dir.path(), &url, "serve").await;
    let named = format!("{} is not a directory", file.display());
    assert!(stderr.contains(&named), "{stderr}");
    // A directory this user cannot write in (tried as another user when the tests run as root,
    // whom no permission stops).
    if std::path::Path::new("/usr/sbin/runuser").exists() && is_root() && user_exists("postgres") {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        for d in [dir.path(), locked.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let out = tokio::process::Command::new("/usr/sbin/runuser")
            .args(["-u", "postgres", "--", BIN, "migrate"])
            .env_clear()
            .env(
                "DATABASE_URL",
                format!("sqlite://{}/payhook.db", locked.display()),
            )
            .current_dir(dir.path())
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        let named = format!("payhook cannot write in {}", locked.display());
        assert!(stderr.contains(&named), "{stderr}");
    }

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

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn user_exists(name: &str) -> bool {
    std::process::Command::new("id")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success())
}
