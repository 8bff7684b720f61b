//! Test harness: a real payhook on port 0 with a fresh store (a new SQLite file, or a new database on
//! the PostgreSQL server named by `TEST_DATABASE_URL`), and a signer written independently of payhook's.
#![allow(dead_code)]

use std::time::Duration;

use hmac::{Hmac, Mac};
use payhook::app::Payhook;
use payhook::config::{Secret, Settings};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::Connection;

pub const SECRET: &str = "whsec_integration_test_secret";

/// A fresh, empty store URL, and the directory that holds it (SQLite) for the test's lifetime.
pub struct FreshStore {
    pub url: String,
    pub dir: tempfile::TempDir,
}

pub async fn fresh_store() -> FreshStore {
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = match std::env::var("TEST_DATABASE_URL") {
        Ok(server) if !server.is_empty() => {
            let name = format!(
                "payhook_test_{}",
                payhook::providers::stripe_events::random_token(12).to_lowercase()
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
            url.to_string()
        }
        _ => format!("sqlite://{}/payhook.db", dir.path().display()),
    };
    FreshStore { url, dir }
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
    s
}

pub struct TestApp {
    pub payhook: Payhook,
    pub base: String,
    pub admin: String,
    pub client: reqwest::Client,
    pub store: FreshStore,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let store = fresh_store().await;
    let mut settings = test_settings(&store.url);
    configure(&mut settings);
    let payhook = Payhook::start(settings).await.expect("payhook starts");
    TestApp {
        base: format!("http://{}", payhook.public_addr),
        admin: format!("http://{}", payhook.admin_addr),
        payhook,
        client: reqwest::Client::builder()
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

pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub json: Value,
}

impl Answer {
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
        let response = request.body(body).send().await.expect("request sent");
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

    /// Posts `body` to the Stripe route, signed now with the test secret.
    pub async fn send(&self, body: &str) -> Answer {
        let sig = stripe_signature(body.as_bytes(), SECRET, now());
        self.post("/webhooks/stripe", body.to_string(), Some(&sig))
            .await
    }

    pub async fn count(&self) -> i64 {
        self.payhook.store.count_events().await.unwrap()
    }

    /// Makes every insert into the inbox fail inside the store, as a full disk or a broken server would.
    pub async fn break_inbox_writes(&self, broken: bool) {
        let url = &self.store.url;
        let statements: &[&'static str] = match (is_postgres(url), broken) {
            (false, true) => &[
                "CREATE TRIGGER refuse BEFORE INSERT ON webhook_events BEGIN SELECT RAISE(ABORT, 'simulated store failure'); END",
            ],
            (false, false) => &["DROP TRIGGER refuse"],
            (true, true) => &[
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'simulated store failure'; END $$ LANGUAGE plpgsql",
                "CREATE TRIGGER refuse BEFORE INSERT ON webhook_events FOR EACH ROW EXECUTE FUNCTION refuse()",
            ],
            (true, false) => &[
                "DROP TRIGGER refuse ON webhook_events",
                "DROP FUNCTION refuse()",
            ],
        };
        if is_postgres(url) {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            for sql in statements {
                sqlx::query(*sql).execute(&mut conn).await.unwrap();
            }
        } else {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            for sql in statements {
                sqlx::query(*sql).execute(&mut conn).await.unwrap();
            }
        }
    }
}
