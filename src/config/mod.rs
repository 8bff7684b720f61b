//! Settings: built-in defaults, then the optional `payhook.toml`, then environment variables (env wins).
//! Everything is validated here, so a bad configuration stops start-up with a message naming the key.

mod file;
mod secrets;
mod sources;
mod targets;
mod values;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use file::*;
use secrets::MIN_SECRET_LEN;
use targets::targets_from;
use values::*;

pub use secrets::{SECRET_VARIABLES, secrets_from_files};
pub use targets::{
    BOOKING_SERVICE_TARGET, DEFAULT_RETRY_SCHEDULE, TargetKind, TargetSettings,
    booking_service_target,
};
pub use values::parse_duration;

use crate::domain::Secret;
/// A configuration problem, naming the key (environment variable or `payhook.toml` key) at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

use crate::domain::SqliteSync;
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// How browsers and providers reach the public listener: `PAYHOOK_PUBLIC_URL`, else derived
    /// from the listener (see [`public_url_for`]).
    pub public_url: String,
    /// `public_url` was given (`PAYHOOK_PUBLIC_URL` or `public_url`), not derived.
    pub public_url_set: bool,
    pub database_url: String,
    pub stripe: StripeSettings,
    pub booking_service_url: Option<String>,
    pub internal_service_token: Option<Secret>,
    pub admin_token: Option<Secret>,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub ingest: IngestSettings,
    pub processor: ProcessorSettings,
    pub retention: RetentionSettings,
    /// Where ledger changes are delivered: `[[targets]]`, plus `booking-service` from `BOOKING_SERVICE_URL`.
    pub targets: Vec<TargetSettings>,
    /// `[[sources]]`: webhook sources besides `stripe`.
    pub sources: Vec<crate::providers::Source>,
    /// More paths a provider may post to, with the source each is for (`[stripe] routes`,
    /// `STRIPE_WEBHOOK_ROUTES`, `[[sources]] routes`): the paths existing integrations use.
    pub webhook_routes: WebhookRoutes,
    pub sqlite_sync: SqliteSync,
    /// `payhook demo`: the public listener also serves `/demo`, which creates test payments and
    /// shows the `booking-service` target's view of each booking.
    pub demo: bool,
}

#[derive(Debug, Clone)]
pub struct StripeSettings {
    /// Every secret accepted for `Stripe-Signature` (several during a rotation). Empty until
    /// [`Settings::webhook_secret_needed`] is resolved at start-up with a generated sandbox secret.
    pub webhook_secrets: Vec<Secret>,
    pub secret_key: Option<Secret>,
    pub api_base: String,
    /// Largest accepted distance between the signed timestamp and now.
    pub tolerance: Duration,
    /// Client networks allowed to post to the Stripe webhook route; empty means any.
    pub allowed_cidrs: Vec<IpNet>,
    /// `serve` reconciles with Stripe's event list this often (needs `secret_key`); none: never.
    pub reconcile_every: Option<Duration>,
    /// How far back a periodic reconcile looks (Stripe retries for 3 days).
    pub reconcile_window: Duration,
    /// How long a checkout session may stay open in the ledger before the session route asks the
    /// provider, and how long its answer is reused.
    pub ask_provider_after: Duration,
    /// The sandbox provider sends thin event notifications (`v2.core.event`, whose object payhook
    /// fetches), as a Stripe event destination set to thin events does.
    pub sandbox_thin_events: bool,
    /// The sandbox provider takes payments (without `secret_key`). On by default only in sandbox
    /// mode (no webhook secret configured): its public Pay button signs events with the webhook
    /// secret, so next to a real Stripe secret it would let anyone mark a booking paid.
    pub sandbox: bool,
    /// Each event is fetched back from Stripe's API (`GET /v1/events/{id}`) before the ledger
    /// reads it: the answer, not the posted body, is applied (`STRIPE_CONFIRM=api`).
    pub confirm_by_api: bool,
}

#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Largest webhook body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most events committed in one group-commit transaction.
    pub batch_max: usize,
    /// Group-commit writers. One keeps batches large; more overlap commits, which only pays on a
    /// PostgreSQL whose commits are slow (remote or network storage). SQLite writes one at a time.
    pub writers: usize,
    /// Webhook requests allowed per client IP per second (0: no limit).
    pub rate_limit_per_ip: u32,
    /// Seconds a client is told to wait (`Retry-After`) when the store is unavailable.
    pub retry_after_secs: u64,
    /// Longest wait for a request's headers, and for its body: a slow client's connection is
    /// freed after it.
    pub read_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes: 431 beyond.
    pub max_header_bytes: usize,
    /// Proxies whose `X-Forwarded-For` is believed: the client is the last address in it that
    /// is not one of them. Empty: the peer is the client.
    pub trusted_proxies: Vec<IpNet>,
}

/// How long raw webhook payloads are kept.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// Payloads (and headers) of applied events older than this are pruned; the event's row, the
    /// ledger and the notifications stay. `None`: kept forever.
    pub payloads: Option<Duration>,
    /// Events examined per pruning transaction: small, so ingest never waits long for the store.
    pub batch: i64,
    /// Pause between two batches of a sweep.
    pub pause: Duration,
    /// Time between sweeps.
    pub every: Duration,
}

#[derive(Debug, Clone)]
pub struct ProcessorSettings {
    /// Attempts at applying an event before it is left `failed` (replayable).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled after each failed attempt.
    pub retry_initial: Duration,
    /// Longest wait between two attempts.
    pub retry_max: Duration,
}

impl Settings {
    /// `stripe` from `STRIPE_WEBHOOK_SECRET` and `[stripe]`, and every `[[sources]]` entry.
    pub fn webhook_sources(&self) -> crate::providers::Sources {
        let stripe = crate::providers::Source {
            allowed: self.stripe.allowed_cidrs.clone(),
            stripe_confirm: self.stripe.confirm_by_api,
            ..crate::providers::Source::new(
                "stripe",
                crate::providers::Scheme::Stripe {
                    secrets: self.stripe.webhook_secrets.clone(),
                    tolerance: self.stripe.tolerance,
                },
            )
        };
        crate::providers::Sources::new(std::iter::once(stripe).chain(self.sources.iter().cloned()))
    }

    /// True when no webhook secret was configured: sandbox mode generates one and keeps it in the store.
    pub fn webhook_secret_needed(&self) -> bool {
        self.stripe.webhook_secrets.is_empty()
    }

    /// Reads `path` (when given) and the environment, and validates the result.
    pub fn load(
        config_path: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let file = match config_path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(
                        "--config (PAYHOOK_CONFIG)",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let mut file = FileConfig::parse(&text, &path.display().to_string())?;
                file.path = Some(path.display().to_string());
                file
            }
            None => FileConfig::default(),
        };
        Self::from_parts(file, &secrets_from_files(env)?)
    }

    /// Defaults only, as `payhook serve` runs with no configuration at all.
    pub fn defaults() -> Settings {
        Self::from_parts(FileConfig::default(), &HashMap::new()).expect("defaults are valid")
    }

    fn from_parts(
        file: FileConfig,
        env: &HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        let file_name = file.path.clone().unwrap_or_else(|| "payhook.toml".into());
        let v = Values {
            env,
            file: &file_name,
        };
        let stripe_file = file.stripe.unwrap_or_default();
        let ingest_file = file.ingest.unwrap_or_default();
        let log_file = file.log.unwrap_or_default();
        let processor_file = file.processor.unwrap_or_default();

        let listen = v.addr("PAYHOOK_LISTEN", "listen", file.listen, "127.0.0.1:3003")?;
        let admin_listen = v.addr(
            "PAYHOOK_ADMIN_LISTEN",
            "admin_listen",
            file.admin_listen.clone(),
            "127.0.0.1:3004",
        )?;
        let given = v.string("PAYHOOK_PUBLIC_URL", "public_url", file.public_url);
        let public_url_set = given.is_some();
        let public_url = given.unwrap_or_else(|| (public_url_for(listen), "PAYHOOK_LISTEN".into()));
        check_http_url(&public_url.0, &public_url.1)?;
        // The pages and the return URLs are built from the origin: a path would be lost.
        if let Ok(u) = reqwest::Url::parse(&public_url.0)
            && (u.path() != "/" || u.query().is_some())
        {
            return Err(ConfigError::new(
                public_url.1.clone(),
                format!(
                    "{:?} has a path or a query: give the origin browsers and providers reach \
                     payhook at (https://pay.example.com), with payhook's routes at its root",
                    crate::app::redact_url(&public_url.0)
                ),
            ));
        }
        let public_url_key = public_url.1.clone();
        let public_url = public_url.0.trim_end_matches('/').to_string();

        let (database_url, db_key) = v
            .string("DATABASE_URL", "database_url", file.database_url)
            .unwrap_or_else(|| ("sqlite://payhook.db".into(), "DATABASE_URL".into()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                db_key,
                "expected sqlite://PATH or postgres://USER@HOST/DB",
            ));
        }
        if !database_url.starts_with("sqlite:")
            && let Err(e) = reqwest::Url::parse(&database_url)
        {
            // The URL itself is not repeated: it may hold a password.
            return Err(ConfigError::new(
                db_key,
                format!(
                    "not a URL ({e}); percent-encode any `@`, `:`, `/`, `?` or `#` in the user name or password"
                ),
            ));
        }

        let stripe = stripe_settings(&v, &stripe_file)?;
        // Live payments send real customers back to the public URL: not over plain HTTP, and not
        // to the address derived from the listener.
        let live = stripe.secret_key.as_ref().is_some_and(|k| {
            k.expose().starts_with("sk_live_") || k.expose().starts_with("rk_live_")
        });
        if live && (!public_url_set || !public_url.starts_with("https://")) {
            return Err(ConfigError::new(
                if public_url_set {
                    public_url_key
                } else {
                    "PAYHOOK_PUBLIC_URL".into()
                },
                "a live STRIPE_SECRET_KEY sends customers back to payhook's public URL: set \
                 PAYHOOK_PUBLIC_URL to its https:// address",
            ));
        }

        let booking_service_url = v
            .string(
                "BOOKING_SERVICE_URL",
                "booking_service_url",
                file.booking_service_url,
            )
            .map(|(url, key)| check_http_url(&url, &key).map(|_| url))
            .transpose()?;
        let internal_service_token = v
            .string(
                "INTERNAL_SERVICE_TOKEN",
                "internal_service_token",
                file.internal_service_token,
            )
            .map(|(s, _)| Secret::new(s));
        let admin_token = v
            .string("PAYHOOK_ADMIN_TOKEN", "admin_token", file.admin_token)
            .map(|(s, _)| Secret::new(s));
        if admin_token.is_none() && !admin_listen.ip().is_loopback() {
            let key = v
                .string(
                    "PAYHOOK_ADMIN_LISTEN",
                    "admin_listen",
                    file.admin_listen.clone(),
                )
                .map_or_else(|| "PAYHOOK_ADMIN_LISTEN".to_string(), |(_, key)| key);
            return Err(ConfigError::new(
                key,
                format!(
                    "{admin_listen} is not a loopback address; set PAYHOOK_ADMIN_TOKEN to expose the admin listener"
                ),
            ));
        }

        let log_filter = v
            .string("RUST_LOG", "log.level", log_file.level)
            .map(|(s, _)| s)
            .unwrap_or_else(|| "info".into());
        let log_format = match v.string("PAYHOOK_LOG_FORMAT", "log.format", log_file.format) {
            None => LogFormat::Text,
            Some((f, _)) if f == "text" => LogFormat::Text,
            Some((f, _)) if f == "json" => LogFormat::Json,
            Some((f, key)) => {
                return Err(ConfigError::new(
                    key,
                    format!("unknown log format {f:?}; expected text or json"),
                ));
            }
        };

        let ingest = ingest_settings(&v, ingest_file)?;

        let processor = processor_settings(processor_file)?;

        let retention = retention_settings(&v, file.retention.unwrap_or_default())?;

        let targets = targets_from(
            file.targets.unwrap_or_default(),
            booking_service_url.as_deref(),
            internal_service_token.as_ref(),
        )?;

        let (sources, mut webhook_routes) =
            sources::sources_from(file.sources.unwrap_or_default())?;
        let stripe_routes: Vec<(String, String)> = match v.raw("STRIPE_WEBHOOK_ROUTES") {
            Some(list) => list
                .split(',')
                .map(|p| route_alias("STRIPE_WEBHOOK_ROUTES", p))
                .collect::<Result<Vec<_>, _>>()?,
            None => stripe_file
                .routes
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|p| route_alias("stripe.routes", p))
                .collect::<Result<Vec<_>, _>>()?,
        }
        .into_iter()
        .map(|p| (p, "stripe".to_string()))
        .collect();
        webhook_routes.splice(0..0, stripe_routes);
        for (i, (path, _)) in webhook_routes.iter().enumerate() {
            if webhook_routes[..i].iter().any(|(p, _)| p == path) {
                return Err(ConfigError::new(
                    "routes",
                    format!("{path} is given to two sources"),
                ));
            }
        }

        Ok(Settings {
            listen,
            admin_listen,
            public_url,
            public_url_set,
            database_url,
            stripe,
            booking_service_url,
            internal_service_token,
            admin_token,
            log_filter,
            log_format,
            ingest,
            processor,
            retention,
            targets,
            sources,
            webhook_routes,
            sqlite_sync: file
                .sqlite
                .and_then(|s| s.synchronous)
                .unwrap_or(SqliteSync::Full),
            demo: false,
        })
    }
}

/// `[ingest]`: the edge's limits, the group commit, who is believed about client addresses.
fn ingest_settings(v: &Values, ingest_file: IngestFile) -> Result<IngestSettings, ConfigError> {
    Ok(IngestSettings {
        max_body_bytes: positive("ingest.max_body_bytes", ingest_file.max_body_bytes, 1 << 20)?,
        batch_max: match positive("ingest.batch_max", ingest_file.batch_max, 512)? {
            n if n > BATCH_MAX_LIMIT => {
                return Err(ConfigError::new(
                    "ingest.batch_max",
                    format!("must be at most {BATCH_MAX_LIMIT}"),
                ));
            }
            n => n,
        },
        writers: positive("ingest.writers", ingest_file.writers, 1)?,
        rate_limit_per_ip: ingest_file.rate_limit_per_ip.unwrap_or(0),
        retry_after_secs: match ingest_file.retry_after_secs {
            Some(0) => {
                return Err(ConfigError::new(
                    "ingest.retry_after_secs",
                    "must be at least 1 (a provider told to retry after 0 s retries at once)",
                ));
            }
            secs => secs.unwrap_or(5),
        },
        read_timeout: match parse_duration_or(
            "ingest.read_timeout",
            ingest_file.read_timeout,
            "10s",
        )? {
            t if t.is_zero() => {
                return Err(ConfigError::new(
                    "ingest.read_timeout",
                    "must be more than 0s",
                ));
            }
            t => t,
        },
        max_header_bytes: match ingest_file.max_header_bytes {
            // hyper's smallest read buffer: a request head must fit in it.
            Some(n) if n < 8192 => {
                return Err(ConfigError::new(
                    "ingest.max_header_bytes",
                    format!("{n} is below 8192, the least a request head is given"),
                ));
            }
            n => n.unwrap_or(16 * 1024),
        },
        trusted_proxies: match v.string(
            "PAYHOOK_TRUSTED_PROXIES",
            "ingest.trusted_proxies",
            ingest_file.trusted_proxies.map(|l| l.join(",")),
        ) {
            Some((list, key)) => list
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| parse_cidr(&key, c))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        },
    })
}

/// `[processor]`: attempts at applying an event, and the backoff between them.
fn processor_settings(processor_file: ProcessorFile) -> Result<ProcessorSettings, ConfigError> {
    Ok(ProcessorSettings {
        max_attempts: positive("processor.max_attempts", processor_file.max_attempts, 10)? as u32,
        retry_initial: Duration::from_millis(positive(
            "processor.retry_initial_ms",
            processor_file.retry_initial_ms,
            1000,
        )? as u64),
        retry_max: Duration::from_millis(positive(
            "processor.retry_max_ms",
            processor_file.retry_max_ms,
            600_000,
        )? as u64),
    })
}

/// `[retention]`: how long applied events keep their payloads, and how pruning paces itself.
fn retention_settings(
    v: &Values,
    retention_file: RetentionFile,
) -> Result<RetentionSettings, ConfigError> {
    Ok(RetentionSettings {
        payloads: match v.string(
            "PAYHOOK_RETAIN_PAYLOADS",
            "retention.payloads",
            retention_file.payloads,
        ) {
            Some((text, key)) => match parse_duration(&key, &text)? {
                age if age < Duration::from_secs(3600) => {
                    return Err(ConfigError::new(
                        key,
                        "must be at least 1h (a replay needs the payload while events are fresh)",
                    ));
                }
                age => Some(age),
            },
            None => None,
        },
        batch: positive("retention.batch", retention_file.batch, 500)? as i64,
        pause: parse_duration_or("retention.pause", retention_file.pause, "50ms")?,
        every: parse_duration_or("retention.every", retention_file.every, "1m")?,
    })
}

/// `[stripe]` and the `STRIPE_*` variables, checked together: an API key needs a webhook secret,
/// the sandbox replaces the API, a periodic reconcile needs the key.
fn stripe_settings(v: &Values, file: &StripeFile) -> Result<StripeSettings, ConfigError> {
    let webhook_secrets = match v.raw("STRIPE_WEBHOOK_SECRET") {
        Some(list) => parse_secret_list(
            "STRIPE_WEBHOOK_SECRET",
            list.split(',').map(str::to_string).collect(),
        )?,
        None => parse_secret_list(
            "stripe.webhook_secrets",
            file.webhook_secrets.clone().unwrap_or_default(),
        )?,
    };
    let secret_key = v
        .string(
            "STRIPE_SECRET_KEY",
            "stripe.secret_key",
            file.secret_key.clone(),
        )
        .map(|(s, key)| {
            // A publishable key or a webhook secret pasted in the wrong place.
            if s.starts_with("pk_") || s.starts_with("whsec_") {
                let what = if s.starts_with("pk_") {
                    "a publishable key (pk_...), which the browser uses"
                } else {
                    "a webhook signing secret (whsec_...), which is STRIPE_WEBHOOK_SECRET"
                };
                return Err(ConfigError::new(
                    key,
                    format!("is {what}; payhook needs the secret key (sk_... or rk_...)"),
                ));
            }
            Ok(Secret::new(s))
        })
        .transpose()?;
    if secret_key.is_some() && webhook_secrets.is_empty() {
        return Err(ConfigError::new(
            "STRIPE_WEBHOOK_SECRET",
            "required when STRIPE_SECRET_KEY is set (copy the endpoint's whsec_... signing secret)",
        ));
    }
    let api_base = v
        .string("STRIPE_API_BASE", "stripe.api_base", file.api_base.clone())
        .unwrap_or_else(|| ("https://api.stripe.com".into(), "STRIPE_API_BASE".into()));
    check_http_url(&api_base.0, &api_base.1)?;
    let tolerance_secs = file.tolerance_secs.unwrap_or(300);
    if tolerance_secs == 0 {
        return Err(ConfigError::new(
            "stripe.tolerance_secs",
            "must be at least 1 second",
        ));
    }
    let allowed_cidrs = file
        .allowed_cidrs
        .iter()
        .flatten()
        .map(|c| parse_cidr("stripe.allowed_cidrs", c))
        .collect::<Result<_, _>>()?;

    let sandbox_thin_events = boolean(v.string(
        "PAYHOOK_SANDBOX_THIN_EVENTS",
        "stripe.sandbox_thin_events",
        file.sandbox_thin_events.map(|b| b.to_string()),
    ))?
    .unwrap_or(false);
    let sandbox_set = v.string(
        "PAYHOOK_SANDBOX",
        "stripe.sandbox",
        file.sandbox.map(|b| b.to_string()),
    );
    let sandbox_key = sandbox_set.as_ref().map(|(_, key)| key.clone());
    let sandbox = match boolean(sandbox_set)? {
        Some(true) if secret_key.is_some() => {
            return Err(ConfigError::new(
                sandbox_key.unwrap_or_default(),
                "the sandbox provider replaces Stripe's API: set it or STRIPE_SECRET_KEY, not both",
            ));
        }
        Some(on) => on,
        None => secret_key.is_none() && webhook_secrets.is_empty(),
    };
    let reconcile_every = match v.string(
        "PAYHOOK_RECONCILE_EVERY",
        "stripe.reconcile_every",
        file.reconcile_every.clone(),
    ) {
        Some((text, key)) => match parse_duration(&key, &text)? {
            every if every < Duration::from_secs(60) => {
                return Err(ConfigError::new(
                    key,
                    "must be at least 1m (Stripe rate-limits its API)",
                ));
            }
            _ if secret_key.is_none() => {
                return Err(ConfigError::new(
                    key,
                    "needs STRIPE_SECRET_KEY: reconciling reads Stripe's event list",
                ));
            }
            every => Some(every),
        },
        None => None,
    };
    let confirm_by_api = match v.string("STRIPE_CONFIRM", "stripe.confirm", file.confirm.clone()) {
        None => false,
        Some((word, _)) if word == "signature" => false,
        Some((word, key)) if word == "api" => {
            if secret_key.is_none() {
                return Err(ConfigError::new(
                    key,
                    "needs STRIPE_SECRET_KEY: each event is fetched back from Stripe's API",
                ));
            }
            true
        }
        Some((word, key)) => {
            return Err(ConfigError::new(
                key,
                format!("{word:?}: expected api or signature"),
            ));
        }
    };
    Ok(StripeSettings {
        confirm_by_api,
        webhook_secrets,
        secret_key,
        api_base: api_base.0.trim_end_matches('/').to_string(),
        tolerance: Duration::from_secs(tolerance_secs),
        allowed_cidrs,
        reconcile_every,
        reconcile_window: parse_duration_or(
            "stripe.reconcile_window",
            file.reconcile_window.clone(),
            "3d",
        )?,
        ask_provider_after: parse_duration_or(
            "stripe.ask_provider_after",
            file.ask_provider_after.clone(),
            "5s",
        )?,
        sandbox_thin_events,
        sandbox,
    })
}

/// The public URL of a listener at `addr` when none is configured: `localhost` for a loopback or
/// every-interface listener (`http://localhost:3003` for the default), else its address.
pub fn public_url_for(addr: SocketAddr) -> String {
    let ip = addr.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        format!("http://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// (path, source) of each route alias.
pub type WebhookRoutes = Vec<(String, String)>;

/// A route alias as given for `key`: an absolute path of plain segments, outside payhook's own
/// routes.
pub(crate) fn route_alias(key: &str, path: &str) -> Result<String, ConfigError> {
    let path = path.trim().trim_end_matches('/');
    let plain = path.starts_with('/')
        && path.len() > 1
        && path[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if !plain {
        return Err(ConfigError::new(
            key,
            format!("{path:?} is not a path like /api/webhooks/stripe"),
        ));
    }
    let own = ["/webhooks/", "/api/v1/", "/sandbox/", "/checkout/", "/demo"];
    if own.iter().any(|p| path.starts_with(p))
        || matches!(path, "/healthz" | "/readyz" | "/openapi.json")
    {
        return Err(ConfigError::new(
            key,
            format!("{path} is one of payhook's own routes"),
        ));
    }
    Ok(path.to_string())
}

/// The largest `ingest.batch_max`: on SQLite a batch is one statement with six parameters per
/// event, and a statement takes at most 32,766.
pub const BATCH_MAX_LIMIT: usize = 4096;
