//! Test harness: a real payhook on port 0 with a fresh store (a new SQLite file, or a new database on
//! the PostgreSQL server named by `TEST_DATABASE_URL`), and a signer written independently of payhook's.
#![allow(dead_code)]

use std::time::Duration;

use hmac::{Hmac, Mac};
use payhook::app::Payhook;
use payhook::config::Settings;
use payhook::domain::Secret;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::Connection;

pub mod outage;
pub mod providers;
pub mod receiver;

pub const SECRET: &str = "whsec_integration_test_secret";
pub const SERVICE_TOKEN: &str = "test-internal-service-token";

/// A fresh, empty store URL, and the directory that holds it (SQLite) for the test's lifetime.
pub struct FreshStore {
    pub url: String,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL server and the database made on it, dropped with the store.
    postgres: Option<(String, String)>,
}

pub async fn fresh_store() -> FreshStore {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut postgres = None;
    let url = match std::env::var("TEST_DATABASE_URL") {
        Ok(server) if !server.is_empty() => {
            let name = format!(
                "payhook_test_{}",
                payhook::domain::ids::random_token(12).to_lowercase()
            );
            let mut conn = sqlx::PgConnection::connect(&server)
                .await
                .expect("TEST_DATABASE_URL reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create a test database");
            let mut url = reqwest::Url::parse(&server).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&name);
            postgres = Some((server, name));
            url.to_string()
        }
        _ => format!("sqlite://{}/payhook.db", dir.path().display()),
    };
    FreshStore { url, dir, postgres }
}

impl Drop for FreshStore {
    /// The suite makes about two hundred PostgreSQL databases: each goes with its test, so a machine
    /// with little disk does not fill up. Best effort: a test that already failed keeps its message.
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // A thread of its own: the test's runtime may be the one dropping the store.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&server).await.ok()?;
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::query(sqlx::AssertSqlSafe(drop))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

impl FreshStore {
    /// Runs statements on the store, outside payhook.
    pub async fn execute(&self, statements: &[String]) {
        let url = &self.url;
        if is_postgres(url) {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            for sql in statements {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        } else {
            let mut conn = sqlite_connection(url).await;
            for sql in statements {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

/// A connection on a SQLite store, outside payhook, that reads it as payhook does: with the
/// inbox's file (`payhook.db-inbox`, where `webhook_events` lives) attached.
pub async fn sqlite_connection(url: &str) -> sqlx::SqliteConnection {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let file = payhook::app::sqlite_file(url).expect("a SQLite store names its file");
    payhook::store::attach_inbox_of(&mut conn, file)
        .await
        .unwrap();
    conn
}

/// Says on the terminal that the running test was skipped, and why. Written to stderr directly:
/// the test harness captures `eprintln!`, so a skip would otherwise pass in silence.
pub fn skipped(why: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "skipped {test}: {why}");
}

pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres")
}

/// Settings for a test: loopback port 0 on both listeners, one known secret.
pub fn test_settings(database_url: &str) -> Settings {
    let mut s = Settings::defaults();
    s.listen = "127.0.0.1:0".parse().unwrap();
    s.admin_listen = "127.0.0.1:0".parse().unwrap();
    s.database_url = database_url.to_string();
    s.stripe.webhook_secrets = vec![Secret::new(SECRET)];
    s.internal_service_token = Some(Secret::new(SERVICE_TOKEN));
    s
}

pub struct TestApp {
    pub payhook: Payhook,
    pub base: String,
    pub admin: String,
    pub client: reqwest::Client,
    pub store: FreshStore,
    /// The notification targets it was started with.
    pub targets: Vec<payhook::config::TargetSettings>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let store = fresh_store().await;
    let mut settings = test_settings(&store.url);
    configure(&mut settings);
    let targets = settings.targets.clone();
    let payhook = Payhook::start(settings).await.expect("payhook starts");
    TestApp {
        targets,
        base: format!("http://{}", payhook.public_addr),
        admin: format!("http://{}", payhook.admin_addr),
        payhook,
        client: payhook::net::client_builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        store,
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `Stripe-Signature` computed here from Stripe's documented scheme, not with payhook's code.
pub fn stripe_signature(body: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A small Stripe-shaped event body.
pub fn event_body(id: &str, event_type: &str) -> String {
    json!({
        "id": id, "object": "event", "type": event_type, "created": now(),
        "data": { "object": { "id": format!("pi_{id}"), "object": "payment_intent", "amount": 2000,
                              "currency": "eur", "metadata": { "bookingId": "booking-1" } } }
    })
    .to_string()
}

/// The provider ids of one payment, so the events built for it link up as Stripe's do.
#[derive(Debug, Clone)]
pub struct PaymentIds {
    pub booking: String,
    pub intent: String,
    pub session: String,
    pub charge: String,
    /// The payment's dispute and refund: each of their events names the same object.
    pub dispute: String,
    pub refund: String,
}

impl PaymentIds {
    pub fn new(booking: &str) -> Self {
        use payhook::domain::ids::new_id;
        Self {
            booking: booking.to_string(),
            intent: new_id("pi"),
            session: new_id("cs_test"),
            charge: new_id("ch"),
            dispute: new_id("dp"),
            refund: new_id("re"),
        }
    }

    /// A Stripe event of `event_type` for this payment, created at `at`, with `extra` overrides
    /// (`path=value`, as `payhook trigger --add` takes them).
    pub fn event(&self, event_type: &str, at: i64, extra: &[String]) -> Value {
        let (intent, session, charge, booking) =
            (&self.intent, &self.session, &self.charge, &self.booking);
        let mut overrides: Vec<String> = match event_type.rsplit_once('.').map_or("", |(p, _)| p) {
            "payment_intent" => vec![
                format!("id={intent}"),
                format!("metadata.bookingId={booking}"),
                format!("latest_charge={charge}"),
            ],
            "checkout.session" => vec![
                format!("id={session}"),
                format!("client_reference_id={booking}"),
                format!("metadata.booking_id={booking}"),
                format!("payment_intent={intent}"),
            ],
            "charge" => vec![
                format!("id={charge}"),
                format!("payment_intent={intent}"),
                format!("metadata.bookingId={booking}"),
            ],
            "charge.dispute" => vec![
                format!("id={}", self.dispute),
                format!("charge={charge}"),
                format!("payment_intent={intent}"),
            ],
            _ => vec![
                format!("id={}", self.refund),
                format!("charge={charge}"),
                format!("payment_intent={intent}"),
            ],
        };
        if event_type == "checkout.session.expired" {
            overrides.retain(|o| !o.starts_with("payment_intent="));
        }
        overrides.extend(extra.iter().cloned());
        payhook::providers::stripe_events::build_event(event_type, &overrides, at)
            .expect("a known event type")
    }
}

pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub json: Value,
}

impl Answer {
    pub async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let json = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            retry_after,
            json,
        }
    }

    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

impl TestApp {
    /// Posts `body` to `path` with the given `Stripe-Signature` (none when `None`).
    pub async fn post(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        signature: Option<&str>,
    ) -> Answer {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(sig) = signature {
            request = request.header("Stripe-Signature", sig);
        }
        Answer::read(request.body(body).send().await.expect("request sent")).await
    }

    /// Posts `body` to the Stripe route, signed now with the test secret.
    pub async fn send(&self, body: &str) -> Answer {
        let sig = stripe_signature(body.as_bytes(), SECRET, now());
        self.post("/webhooks/stripe", body.to_string(), Some(&sig))
            .await
    }

    /// `GET path` on the public listener, with `Authorization: Bearer <bearer>` when given.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        Answer::read(request.send().await.expect("request sent")).await
    }

    /// The body of `GET url` (a page, or `/metrics`), whatever its type.
    pub async fn text(&self, url: &str) -> String {
        let response = self.client.get(url).send().await.expect("request sent");
        response.text().await.expect("a body")
    }

    /// The booking's payment status as the booking service reads it (`data` of a 200).
    pub async fn payment_status(&self, booking: &str) -> Value {
        let answer = self
            .get(
                &format!("/api/v1/payments/{booking}/status"),
                Some(SERVICE_TOKEN),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.json);
        answer.json["data"].clone()
    }

    /// The checkout session as the return page reads it.
    pub async fn checkout_session(&self, session_id: &str) -> Answer {
        self.get(&format!("/api/v1/checkout/sessions/{session_id}"), None)
            .await
    }

    /// Signs and posts a Stripe event, expecting it stored.
    pub async fn deliver(&self, event: &Value) {
        let answer = self.send(&event.to_string()).await;
        assert_eq!(answer.status, 200, "{}", answer.json);
    }

    /// Waits (up to 10 s) until the processor has moved event `event_id` out of `received`, and
    /// returns its row.
    pub async fn settled(&self, event_id: &str) -> payhook::store::StoredEvent {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let row = self.payhook.store.event("stripe", event_id).await.unwrap();
            match row {
                // A thin event waiting for its object is not settled yet.
                Some(row) if !matches!(row.status.as_str(), "received" | "waiting") => return row,
                _ if std::time::Instant::now() > deadline => {
                    panic!("event {event_id} was not processed in 10 s: {row:?}")
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Delivers events in order and waits until each is processed.
    pub async fn deliver_all(&self, events: &[Value]) {
        for event in events {
            self.deliver(event).await;
            self.settled(event["id"].as_str().unwrap()).await;
        }
    }

    /// One step of `target`'s dispatcher worker on this app's store
    /// ([`payhook::notify::TargetWorker::try_deliver_next`]), beside the app's own worker: what a
    /// turn of that worker does now. Taken where the app's worker can send nothing (nothing
    /// pending, or the circuit holding it), it shows that nothing is sent without waiting to see.
    pub async fn step(&self, target: &str) -> payhook::notify::Dispatched {
        let (dispatcher, _) =
            payhook::notify::Dispatcher::new(self.payhook.store.clone(), &self.targets);
        dispatcher
            .target(target)
            .unwrap_or_else(|| panic!("no target {target}"))
            .try_deliver_next()
            .await
            .expect("the store answers")
    }

    pub async fn count(&self) -> i64 {
        self.payhook.store.count_events().await.unwrap()
    }

    /// Makes every insert into the inbox fail inside the store, as a full disk or a broken server would.
    pub async fn break_inbox_writes(&self, broken: bool) {
        self.break_writes("webhook_events", broken).await;
    }

    /// Makes every insert into `table` fail inside the store (or stop failing).
    pub async fn break_writes(&self, table: &str, broken: bool) {
        let url = &self.store.url;
        let statements: Vec<String> = match (is_postgres(url), broken) {
            // A trigger lives in the file of its table: the inbox's is attached as `intake`.
            (false, true) => vec![format!(
                "CREATE TRIGGER {schema}refuse_{table} BEFORE INSERT ON {table} BEGIN SELECT RAISE(ABORT, 'simulated store failure'); END",
                schema = if table == "webhook_events" {
                    "intake."
                } else {
                    ""
                }
            )],
            (false, false) => vec![format!("DROP TRIGGER refuse_{table}")],
            (true, true) => vec![
                format!(
                    "CREATE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'simulated store failure'; END $$ LANGUAGE plpgsql"
                ),
                format!(
                    "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
                ),
            ],
            (true, false) => vec![
                format!("DROP TRIGGER refuse_{table} ON {table}"),
                format!("DROP FUNCTION refuse_{table}()"),
            ],
        };
        self.execute(&statements).await;
    }

    /// Runs statements on the store, outside payhook.
    pub async fn execute(&self, statements: &[String]) {
        self.store.execute(statements).await
    }

    /// Rows in `table`, counted outside payhook.
    pub async fn rows(&self, table: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        if is_postgres(&self.store.url) {
            let mut conn = sqlx::PgConnection::connect(&self.store.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        } else {
            let mut conn = sqlite_connection(&self.store.url).await;
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}

/// payhook with the `[[sources]]` of `toml` (read from a payhook.toml as a user writes it) and
/// the example booking service as its booking-status target.
pub async fn app_with_sources(
    toml: &str,
) -> (
    TestApp,
    std::sync::Arc<payhook::booking_service::BookingService>,
) {
    let (service, url) = receiver::booking_service(BOOKING_SERVICE_TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("payhook.toml");
    std::fs::write(&path, toml).unwrap();
    let from_file = Settings::load(Some(&path), &std::collections::HashMap::new())
        .expect("the configuration loads");
    let app = spawn_app_with(move |s| {
        s.sources = from_file.sources;
        s.webhook_routes = from_file.webhook_routes;
        s.targets = vec![
            payhook::config::booking_service_target(
                &url,
                Some(&payhook::domain::Secret::new(BOOKING_SERVICE_TOKEN)),
            )
            .unwrap(),
        ];
    })
    .await;
    (app, service)
}

/// The token the example booking service of [`app_with_sources`] requires.
pub const BOOKING_SERVICE_TOKEN: &str = "booking-service-token";
