//! Builds payhook from settings, binds its listeners (port 0 works, for tests), runs until told to
//! stop, then drains: in-flight requests finish, queued rows are committed, the store is closed.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::checkout::{Provider, Sandbox, StripeApi, WebhookSender};
use crate::config::Settings;
use crate::domain::Secret;
use crate::http::{self, AppState, ratelimit::RateLimiter};
use crate::inbox::{Inbox, InboxWriter};
use crate::ledger::Processor;
use crate::notify::Dispatcher;
use crate::store::Store;

/// Name under which the generated sandbox webhook secret is kept in the store.
pub const SANDBOX_SECRET_SETTING: &str = "sandbox_webhook_secret";

/// A running payhook.
pub struct Payhook {
    pub public_addr: SocketAddr,
    /// How browsers and providers reach the public listener: `PAYHOOK_PUBLIC_URL`, else the
    /// listener's own address (its real port when it was given port 0).
    pub public_url: String,
    pub admin_addr: SocketAddr,
    pub store: Arc<Store>,
    /// The ledger processor; its worker runs in the background, tests may also step it.
    pub processor: Processor,
    /// Who checkout sessions are created with: Stripe, or the sandbox without `STRIPE_SECRET_KEY`.
    pub provider: Arc<Provider>,
    /// The webhook secret payhook generated because none was configured (sandbox mode).
    pub generated_secret: Option<Secret>,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Opens and migrates the store named in the settings.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    if let Some(dir) = missing_sqlite_directory(&settings.database_url) {
        let what = if dir.exists() {
            "is not a directory"
        } else {
            "does not exist"
        };
        anyhow::bail!(
            "DATABASE_URL ({}): {} {what}; create the directory, or point DATABASE_URL at another file",
            redact_url(&settings.database_url),
            dir.display()
        );
    }
    if let Some(dir) = unwritable_sqlite_directory(&settings.database_url) {
        anyhow::bail!(
            "DATABASE_URL ({}): payhook cannot write in {} (SQLite keeps its journal beside the \
             file); give this user write access to it, or point DATABASE_URL elsewhere",
            redact_url(&settings.database_url),
            dir.display()
        );
    }
    let store = Store::connect(&settings.database_url, settings.sqlite_sync)
        .await
        .with_context(|| {
            format!(
                "opening the store at DATABASE_URL ({})",
                redact_url(&settings.database_url)
            )
        })?;
    store.migrate().await.with_context(|| {
        format!(
            "migrating the store at DATABASE_URL ({})",
            redact_url(&settings.database_url)
        )
    })?;
    let mapped = settings.webhook_sources().mappings().into_keys().collect();
    let upgraded = crate::ledger::upgrade::run(&store, &mapped)
        .await
        .context("upgrading the ledger to the current payment model")?;
    // A new store is only marked with the current model: there is nothing to tell.
    let worked = |d: &crate::ledger::upgrade::Upgraded| {
        d.facts_read_again + d.payments_derived + d.payments_dropped + d.events_requeued > 0
    };
    if let Some(done) = upgraded.filter(worked) {
        tracing::info!(
            facts_read_again = done.facts_read_again,
            payments_derived = done.payments_derived,
            payments_dropped = done.payments_dropped,
            events_requeued = done.events_requeued,
            "ledger upgraded to the current payment model"
        );
    }
    Ok(store)
}

impl Payhook {
    pub async fn start(mut settings: Settings) -> anyhow::Result<Payhook> {
        let store = Arc::new(open_store(&settings).await?);
        // Recording starts with the first payhook of the process.
        crate::metrics::handle();

        let mut generated_secret = None;
        if settings.webhook_secret_needed() {
            // Kept in the store so it survives restarts and `payhook trigger` can find it.
            let secret = store
                .setting_or_insert(SANDBOX_SECRET_SETTING, &generate_webhook_secret())
                .await
                .context("keeping the generated webhook secret")?;
            let secret = Secret::new(secret);
            settings.stripe.webhook_secrets = vec![secret.clone()];
            generated_secret = Some(secret);
        }

        let stored = Arc::new(Notify::new());
        let (writer, writer_tasks) = InboxWriter::spawn(
            store.clone(),
            settings.ingest.writers,
            settings.ingest.batch_max,
            stored.clone(),
        );
        if matches!(*store, Store::Sqlite(_)) {
            // One instance per SQLite file: what it had in flight when it stopped is due now.
            store
                .release_leases(chrono::Utc::now().timestamp_millis())
                .await
                .context("releasing delivery leases")?;
        }
        let (dispatcher, dispatch) = Dispatcher::new(store.clone(), &settings.targets);
        let sources = settings.webhook_sources();
        let fetch_wake = Arc::new(Notify::new());
        let processor = Processor::new(store.clone(), settings.processor.clone(), stored.clone())
            .with_ingest(writer.load())
            .with_fetcher(fetch_wake.clone())
            .with_targets(&settings.targets, dispatch.clone())
            .with_mappings(sources.mappings())
            .with_confirming(sources.confirming());
        let public = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding PAYHOOK_LISTEN ({})", settings.listen))?;
        let admin = TcpListener::bind(settings.admin_listen)
            .await
            .with_context(|| format!("binding PAYHOOK_ADMIN_LISTEN ({})", settings.admin_listen))?;
        let public_addr = public.local_addr()?;
        let admin_addr = admin.local_addr()?;
        if !settings.public_url_set {
            settings.public_url = crate::config::public_url_for(public_addr);
        }
        // `payhook trigger` and `payhook sandbox`, run beside this instance, post here.
        store
            .set_setting(PUBLIC_URL_SETTING, &settings.public_url)
            .await
            .context("keeping the public URL")?;

        let provider = Arc::new(provider(&settings, store.clone(), public_addr));
        let fetcher = crate::ledger::fetch::Fetcher::new(
            store.clone(),
            provider.clone(),
            fetch_wake,
            stored.clone(),
        )
        .with_confirms(&sources);
        let (stop, stopped) = watch::channel(false);
        let state = Arc::new(AppState {
            inbox: Inbox::new(sources, writer),
            webhook_routes: settings.webhook_routes.clone(),
            store: store.clone(),
            depths: Default::default(),
            limiter: RateLimiter::new(settings.ingest.rate_limit_per_ip),
            max_body_bytes: settings.ingest.max_body_bytes,
            retry_after_secs: settings.ingest.retry_after_secs,
            internal_token: settings.internal_service_token.clone(),
            provider: provider.clone(),
            public_url: settings.public_url.clone(),
            provider_answers: http::ProviderAnswers::new(settings.stripe.ask_provider_after),
            demo: demo_bookings(&settings),
            admin_token: settings.admin_token.clone(),
            processor_wake: stored,
            dispatch,
            targets: settings.targets.clone().into(),
            trusted_proxies: settings.ingest.trusted_proxies.clone().into(),
            read_timeout: settings.ingest.read_timeout,
            stopped: stopped.clone(),
            jobs: Default::default(),
        });

        state.depths.recount_in_background(&store);
        let processor_task = tokio::spawn(processor.clone().run(stopped.clone()));
        let fetcher_task = tokio::spawn(fetcher.run(stopped.clone()));
        let dispatcher_task = dispatcher.spawn(stopped.clone());
        let expiry_task = tokio::spawn(expire_sandbox_sessions(provider.clone(), stopped.clone()));
        let retention_task = tokio::spawn(crate::retention::run(
            store.clone(),
            settings.retention.clone(),
            stopped.clone(),
        ));
        let listen_task = tokio::spawn(listen_for_work(
            store.clone(),
            state.processor_wake.clone(),
            state.dispatch.clone(),
            stopped.clone(),
        ));
        let reconcile_task = settings.stripe.reconcile_every.map(|every| {
            let (state, stopped) = (state.clone(), stopped.clone());
            let window = settings.stripe.reconcile_window;
            tokio::spawn(async move {
                if let Provider::Stripe(api) = &*state.provider {
                    crate::reconcile::periodically(api, &state.inbox, every, window, stopped).await;
                }
            })
        });
        let public_router = http::public_router(state.clone())
            .fallback(http::not_found)
            .method_not_allowed_fallback(http::method_not_allowed);
        let admin_router = http::admin_router(state)
            .fallback(http::not_found)
            .method_not_allowed_fallback(http::method_not_allowed);
        let edge = Edge {
            read_timeout: settings.ingest.read_timeout,
            max_header_bytes: settings.ingest.max_header_bytes,
        };
        let task = tokio::spawn(async move {
            let public = serve(public, public_router, stopped.clone(), edge);
            let admin = serve(admin, admin_router, stopped, edge);
            let (p, a) = tokio::join!(public, admin);
            p.context("public listener")?;
            a.context("admin listener")?;
            // It holds the inbox too: the writers stop once it has.
            if let Some(task) = reconcile_task {
                task.await.context("periodic reconcile")?;
            }
            // Both routers (and with them every writer handle) are gone: the writers commit what is
            // queued and stop.
            for task in writer_tasks {
                task.await.context("inbox writer")?;
            }
            // The processor finishes the event in hand; whatever is left waits in the inbox.
            processor_task.await.context("ledger processor")?;
            fetcher_task.await.context("thin event fetcher")?;
            // Attempts in flight finish (within the target's timeout) and are recorded.
            dispatcher_task.await.context("dispatcher")?;
            expiry_task.await.context("sandbox expiry")?;
            listen_task.await.context("work listener")?;
            retention_task.await.context("retention")?;
            Ok(())
        });

        Ok(Payhook {
            provider,
            public_addr,
            public_url: settings.public_url.clone(),
            admin_addr,
            store,
            processor,
            generated_secret,
            stop,
            task,
        })
    }

    /// Stops accepting, drains in-flight requests and queued writes, closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Runs until `signal` resolves, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        signal.await;
        tracing::info!("shutting down: draining in-flight requests");
        self.shutdown().await
    }

    async fn wait(self) -> anyhow::Result<()> {
        let result = self.task.await.context("server task")?;
        self.store.close().await;
        match &result {
            Ok(()) => tracing::info!(
                "payhook stopped: requests in flight answered, queued webhooks stored, the ledger \
                 batch in hand applied, notifications in flight recorded; whatever still waits is \
                 picked up at the next start"
            ),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "payhook stopped on an error"),
        }
        result
    }
}

/// On PostgreSQL, where several instances may share the store: wakes this instance's processor
/// and dispatchers when any instance announces new events or notifications, so work spreads over
/// the instances at once instead of at their next idle poll. Announcements missed while the
/// connection was down are covered by a wake-up at each reconnection and by the idle polls.
async fn listen_for_work(
    store: Arc<Store>,
    processor: Arc<Notify>,
    dispatch: crate::notify::DispatchWake,
    mut stopped: watch::Receiver<bool>,
) {
    use crate::store::Work;
    let Store::Postgres(pg) = &*store else {
        return;
    };
    let mut outage = 0u32;
    while !*stopped.borrow() {
        let mut listener = match pg.listener().await {
            Ok(listener) => {
                outage = 0;
                processor.notify_one();
                dispatch.notify();
                listener
            }
            Err(e) => {
                outage += 1;
                tracing::warn!(error = %e, "cannot listen for other instances' work; retrying");
                let wait = std::time::Duration::from_millis(200 * 2u64.pow(outage.min(5)));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = stopped.changed() => return,
                }
            }
        };
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(n)) => match Work::from_channel(n.channel()) {
                        Some(Work::Inbox) => processor.notify_one(),
                        Some(Work::Outbox) => dispatch.notify(),
                        None => {}
                    },
                    // The connection was lost: listen again on a new one.
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for other instances' work failed");
                        break;
                    }
                },
                _ = stopped.changed() => return,
            }
        }
    }
}

/// Stripe's API when `STRIPE_SECRET_KEY` is set, else the sandbox when it is on, which posts its
/// events to this payhook's own webhook route; else none (webhooks only).
fn provider(settings: &Settings, store: Arc<Store>, public_addr: SocketAddr) -> Provider {
    match &settings.stripe.secret_key {
        Some(key) => Provider::Stripe(StripeApi::new(
            &settings.stripe.api_base,
            key.clone(),
            store,
        )),
        None if !settings.stripe.sandbox => Provider::Off,
        None => {
            let mut reach = public_addr;
            if reach.ip().is_unspecified() {
                reach.set_ip(match reach {
                    SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
                });
            }
            let secret = settings
                .stripe
                .webhook_secrets
                .first()
                .cloned()
                .expect("a webhook secret, configured or generated, before the provider");
            let webhook = WebhookSender::new(format!("http://{reach}/webhooks/stripe"), secret)
                .thin(settings.stripe.sandbox_thin_events);
            Provider::Sandbox(Sandbox::new(store, &settings.public_url, webhook))
        }
    }
}

/// Under `payhook demo`, the booking service the demo pages read: the `booking-service` target.
fn demo_bookings(settings: &Settings) -> Option<http::demo::DemoBookings> {
    let target = settings
        .targets
        .iter()
        .find(|t| settings.demo && t.name == "booking-service")?;
    Some(http::demo::DemoBookings {
        url: target.url.trim_end_matches('/').to_string(),
        token: target.token.as_ref().map(|t| t.expose().to_string()),
        client: crate::net::client_builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .expect("an HTTP client"),
    })
}

/// Every second, the sandbox expires its open sessions whose time has passed.
async fn expire_sandbox_sessions(provider: Arc<Provider>, mut stopped: watch::Receiver<bool>) {
    let Some(sandbox) = provider.sandbox() else {
        return;
    };
    while !*stopped.borrow() {
        match sandbox.expire_due(chrono::Utc::now().timestamp()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "sandbox checkout sessions expired"),
            Err(e) => tracing::warn!(error = %e, "sandbox cannot expire its sessions yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stopped.changed() => {}
        }
    }
}

/// What each connection is held to.
#[derive(Debug, Clone, Copy)]
struct Edge {
    /// Longest wait for a request's headers (an idle keep-alive connection included).
    read_timeout: std::time::Duration,
    /// Largest request head: `431` beyond.
    max_header_bytes: usize,
}

/// Serves `router` on `listener`, HTTP/1.1, with each connection held to `edge`, until `stopped`;
/// then stops accepting and waits for the requests in flight.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stopped: watch::Receiver<bool>,
    edge: Edge,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(edge.read_timeout)
        .max_buf_size(edge.max_header_bytes)
        .max_headers(100);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = until_stopped(&mut stopped) => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let stream = crate::http::edge::Framing::watch(stream);
        let ambiguous = stream.ambiguous();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let mut router = router.clone();
            let ambiguous = ambiguous.clone();
            async move {
                // hyper drops Content-Length when Transfer-Encoding is there too; the bytes say.
                if ambiguous.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    return Ok(ambiguous_length_answer());
                }
                tower_service::Service::call(&mut router, request.map(axum::body::Body::new)).await
            }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The answer to a request that says both `Content-Length` and `Transfer-Encoding`: two readings
/// of where its body ends (request smuggling; RFC 9112 section 6.1 lets a server refuse it). It is
/// refused, nothing is stored, and the connection is closed.
fn ambiguous_length_answer() -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut answer = crate::http::error::ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "ambiguous_length",
        "the request has both Content-Length and Transfer-Encoding",
    )
    .hint("send one of them; providers and proxies never send both")
    .into_response();
    answer.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    answer
}

async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// The file of a `sqlite://PATH?options` store; `None` for another backend.
pub fn sqlite_file(url: &str) -> Option<&std::path::Path> {
    // sqlx reads both `sqlite://PATH` and `sqlite:PATH`; `sqlite::memory:` has no file.
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then(|| std::path::Path::new(path))
}

/// The directory a SQLite store's file would be created in, when it does not exist (SQLite only
/// says "unable to open database file").
fn missing_sqlite_directory(url: &str) -> Option<std::path::PathBuf> {
    let path = sqlite_file(url)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    (!dir.is_dir()).then(|| dir.to_path_buf())
}

/// The directory of a SQLite store when this process cannot create files in it (the WAL and
/// its index are created beside the database file, the file itself on first start): tried with a
/// file created and removed at once.
fn unwritable_sqlite_directory(url: &str) -> Option<std::path::PathBuf> {
    let path = sqlite_file(url)?;
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.to_path_buf(),
        None => std::path::PathBuf::from("."),
    };
    let probe = dir.join(format!(".payhook-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            Some(dir)
        }
        Err(_) => None,
    }
}

/// The setting where a running instance keeps its public URL, for the CLI beside it.
pub const PUBLIC_URL_SETTING: &str = "public_url";

/// A new Stripe-style signing secret: `whsec_` and 32 random alphanumerics (about 190 bits),
/// safe to paste into a shell or an env file.
pub fn generate_webhook_secret() -> String {
    format!("whsec_{}", crate::domain::ids::random_token(32))
}

/// A URL without its password, for messages: when it does not parse, everything between the
/// scheme and the last `@` goes too (a password holding `/` or `#` is what made it unparseable).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let mut redacted = false;
            if u.password().is_some() {
                redacted = u.set_password(Some("redacted")).is_ok();
            } else if !u.username().is_empty() {
                // A user name alone is often a key (`https://sk_live_...@host`).
                redacted = u.set_username("redacted").is_ok();
            }
            // A token in the query (`?token=...`, `?api_key=...`, `?password=...`).
            let credential = |name: &str| {
                let name = name.to_ascii_lowercase().replace('_', "-");
                ["secret", "token", "password", "key", "auth", "sig"]
                    .iter()
                    .any(|word| name.contains(word))
            };
            if u.query_pairs().any(|(name, _)| credential(&name)) {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(name, value)| {
                        let value = if credential(&name) {
                            "redacted".to_string()
                        } else {
                            value.into_owned()
                        };
                        (name.into_owned(), value)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
                redacted = true;
            }
            if redacted {
                u.to_string()
            } else {
                url.to_string()
            }
        }
        Err(_) => match url.split_once("://") {
            Some((scheme, rest)) => match rest.rfind('@') {
                Some(at) => format!("{scheme}://redacted@{}", &rest[at + 1..]),
                None => url.to_string(),
            },
            None => url.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_loses_a_lone_user_name_and_credentials_in_its_query() {
        assert_eq!(
            redact_url("https://sk_live_abc@hooks.example.com/in"),
            "https://redacted@hooks.example.com/in"
        );
        assert_eq!(
            redact_url("https://hooks.example.com/in?token=abc&team=7&api_key=k"),
            "https://hooks.example.com/in?token=redacted&team=7&api_key=redacted"
        );
        assert_eq!(
            redact_url("postgres://db/payhook?sslmode=require"),
            "postgres://db/payhook?sslmode=require"
        );
    }

    #[test]
    fn a_url_loses_its_password_even_when_it_does_not_parse() {
        assert_eq!(
            redact_url("postgres://u:secret@db:5432/payhook"),
            "postgres://u:redacted@db:5432/payhook"
        );
        assert_eq!(
            redact_url("postgres://u:se/c#ret@db:99999/payhook"),
            "postgres://redacted@db:99999/payhook"
        );
        assert_eq!(redact_url("sqlite://payhook.db"), "sqlite://payhook.db");
    }

    #[test]
    fn a_sqlite_url_names_its_file_in_every_form_sqlx_reads() {
        let file = |url| sqlite_file(url).map(|p| p.to_string_lossy().into_owned());
        assert_eq!(file("sqlite://payhook.db").as_deref(), Some("payhook.db"));
        assert_eq!(
            file("sqlite:///var/lib/payhook/payhook.db?mode=rwc").as_deref(),
            Some("/var/lib/payhook/payhook.db")
        );
        assert_eq!(
            file("sqlite:data/payhook.db").as_deref(),
            Some("data/payhook.db")
        );
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("postgres://db/payhook"), None);
    }
}
