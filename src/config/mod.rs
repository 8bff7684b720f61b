//! Settings: built-in defaults, then the optional `payhook.toml`, then environment variables (env wins).
//! Everything is validated here, so a bad configuration stops start-up with a message naming the key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

mod sources;

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

/// What a target receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// The booking service contract: `PUT {url}/api/v1/bookings/{bookingId}/payment-status`.
    BookingStatus,
    /// payhook's own events, `POST {url}`, signed with the Standard Webhooks scheme.
    Events,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::BookingStatus => "booking-status",
            TargetKind::Events => "events",
        }
    }
}

/// One notification target and its delivery policy.
#[derive(Debug, Clone)]
pub struct TargetSettings {
    pub name: String,
    pub kind: TargetKind,
    pub url: String,
    /// Bearer token sent to a `booking-status` target.
    pub token: Option<Secret>,
    /// `whsec_...` signing secret of an `events` target.
    pub secret: Option<Secret>,
    /// The payhook events an `events` target receives; empty: all of them.
    pub events: Vec<String>,
    /// Wait before each attempt: the first entry before the first attempt, and so on; a
    /// notification still failing after the last entry is dead.
    pub retry_schedule: Vec<Duration>,
    pub timeout: Duration,
    /// Notifications in flight at once (each for a different booking).
    pub concurrency: usize,
    /// Consecutive failed attempts that open the circuit.
    pub circuit_failures: u32,
    /// How long an open circuit waits before one probe; doubles while probes fail.
    pub circuit_open: Duration,
}

/// The name of the target `BOOKING_SERVICE_URL` enables.
pub const BOOKING_SERVICE_TARGET: &str = "booking-service";

/// The default retry schedule: about 0 s, 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h, 24 h.
pub const DEFAULT_RETRY_SCHEDULE: [&str; 11] = [
    "0s", "5s", "30s", "2m", "10m", "30m", "1h", "3h", "6h", "12h", "24h",
];

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
            name: "stripe".into(),
            scheme: crate::providers::Scheme::Stripe {
                secrets: self.stripe.webhook_secrets.clone(),
                tolerance: self.stripe.tolerance,
            },
            allowed: self.stripe.allowed_cidrs.clone(),
            mapping: None,
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
                    ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
                })?;
                FileConfig::parse(&text, &path.display().to_string())?
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
        let v = Values { env };
        let stripe_file = file.stripe.unwrap_or_default();
        let ingest_file = file.ingest.unwrap_or_default();
        let log_file = file.log.unwrap_or_default();
        let processor_file = file.processor.unwrap_or_default();

        let listen = v.addr("PAYHOOK_LISTEN", "listen", file.listen, "127.0.0.1:3003")?;
        let admin_listen = v.addr(
            "PAYHOOK_ADMIN_LISTEN",
            "admin_listen",
            file.admin_listen,
            "127.0.0.1:3004",
        )?;
        let given = v.string("PAYHOOK_PUBLIC_URL", "public_url", file.public_url);
        let public_url_set = given.is_some();
        let public_url = given.unwrap_or_else(|| (public_url_for(listen), "PAYHOOK_LISTEN".into()));
        check_http_url(&public_url.0, &public_url.1)?;
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

        let webhook_secrets = match v.raw("STRIPE_WEBHOOK_SECRET") {
            Some(list) => parse_secret_list(
                "STRIPE_WEBHOOK_SECRET",
                list.split(',').map(str::to_string).collect(),
            )?,
            None => parse_secret_list(
                "stripe.webhook_secrets",
                stripe_file.webhook_secrets.unwrap_or_default(),
            )?,
        };
        let secret_key = v
            .string(
                "STRIPE_SECRET_KEY",
                "stripe.secret_key",
                stripe_file.secret_key,
            )
            .map(|(s, _)| Secret::new(s));
        if secret_key.is_some() && webhook_secrets.is_empty() {
            return Err(ConfigError::new(
                "STRIPE_WEBHOOK_SECRET",
                "required when STRIPE_SECRET_KEY is set (copy the endpoint's whsec_... signing secret)",
            ));
        }
        let api_base = v
            .string("STRIPE_API_BASE", "stripe.api_base", stripe_file.api_base)
            .unwrap_or_else(|| ("https://api.stripe.com".into(), "STRIPE_API_BASE".into()));
        check_http_url(&api_base.0, &api_base.1)?;
        let tolerance_secs = stripe_file.tolerance_secs.unwrap_or(300);
        if tolerance_secs == 0 {
            return Err(ConfigError::new(
                "stripe.tolerance_secs",
                "must be at least 1 second",
            ));
        }
        let allowed_cidrs = stripe_file
            .allowed_cidrs
            .unwrap_or_default()
            .iter()
            .map(|c| parse_cidr("stripe.allowed_cidrs", c))
            .collect::<Result<_, _>>()?;

        let sandbox_thin_events = boolean(v.string(
            "PAYHOOK_SANDBOX_THIN_EVENTS",
            "stripe.sandbox_thin_events",
            stripe_file.sandbox_thin_events.map(|b| b.to_string()),
        ))?
        .unwrap_or(false);
        let sandbox_set = v.string(
            "PAYHOOK_SANDBOX",
            "stripe.sandbox",
            stripe_file.sandbox.map(|b| b.to_string()),
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
            stripe_file.reconcile_every.clone(),
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
            return Err(ConfigError::new(
                "PAYHOOK_ADMIN_LISTEN",
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

        let ingest = IngestSettings {
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
        };

        let processor = ProcessorSettings {
            max_attempts: positive("processor.max_attempts", processor_file.max_attempts, 10)?
                as u32,
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
        };

        let retention_file = file.retention.unwrap_or_default();
        let retention = RetentionSettings {
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
        };

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
            stripe: StripeSettings {
                webhook_secrets,
                secret_key,
                api_base: api_base.0.trim_end_matches('/').to_string(),
                tolerance: Duration::from_secs(tolerance_secs),
                allowed_cidrs,
                reconcile_every,
                reconcile_window: parse_duration_or(
                    "stripe.reconcile_window",
                    stripe_file.reconcile_window,
                    "3d",
                )?,
                ask_provider_after: parse_duration_or(
                    "stripe.ask_provider_after",
                    stripe_file.ask_provider_after,
                    "5s",
                )?,
                sandbox_thin_events,
                sandbox,
            },
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

/// Looks a value up in the environment first, then in the file, remembering which key supplied it.
struct Values<'a> {
    env: &'a HashMap<String, String>,
}

impl Values<'_> {
    fn raw(&self, env_key: &str) -> Option<&str> {
        self.env
            .get(env_key)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    fn string(
        &self,
        env_key: &str,
        file_key: &str,
        file_value: Option<String>,
    ) -> Option<(String, String)> {
        match self.raw(env_key) {
            Some(value) => Some((value.to_string(), env_key.to_string())),
            None => file_value
                .filter(|s| !s.trim().is_empty())
                .map(|value| (value, format!("payhook.toml {file_key}"))),
        }
    }

    fn addr(
        &self,
        env_key: &str,
        file_key: &str,
        file_value: Option<String>,
        default: &str,
    ) -> Result<SocketAddr, ConfigError> {
        let (value, key) = self
            .string(env_key, file_key, file_value)
            .unwrap_or_else(|| (default.to_string(), env_key.to_string()));
        value.parse().map_err(|_| {
            ConfigError::new(
                key,
                format!("{value:?} is not a socket address (expected IP:PORT, e.g. {default})"),
            )
        })
    }
}

fn check_http_url(url: &str, key: &str) -> Result<(), ConfigError> {
    let valid = reqwest::Url::parse(url)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false);
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("{url:?} is not an http(s) URL"),
        ))
    }
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

/// The shortest signing secret accepted: `whsec_` and 6 more.
const MIN_SECRET_LEN: usize = 12;

/// Variables that hold secrets. Each can be given as `NAME_FILE`, a file holding the value (the
/// Docker and Kubernetes secrets convention): never both, and a file named is always used.
pub const SECRET_VARIABLES: &[&str] = &[
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_SECRET_KEY",
    "INTERNAL_SERVICE_TOKEN",
    "PAYHOOK_ADMIN_TOKEN",
    "DATABASE_URL",
];

/// A true-or-false setting (`true`/`false`, `1`/`0`, `yes`/`no`), when it is set.
fn boolean(set: Option<(String, String)>) -> Result<Option<bool>, ConfigError> {
    let Some((text, key)) = set else {
        return Ok(None);
    };
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(Some(true)),
        "false" | "0" | "no" => Ok(Some(false)),
        _ => Err(ConfigError::new(
            key,
            format!("{text:?} is not true or false"),
        )),
    }
}

/// `env` with each `NAME_FILE` of [`SECRET_VARIABLES`] read into `NAME` (trailing newlines
/// trimmed). Naming both forms, or a file that cannot be read or is empty, is an error naming the
/// variable and the file.
pub fn secrets_from_files(
    env: &HashMap<String, String>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut env = env.clone();
    for name in SECRET_VARIABLES {
        let file_key = format!("{name}_FILE");
        let Some(path) = env.get(&file_key).map(|p| p.trim().to_string()) else {
            continue;
        };
        if path.is_empty() {
            continue;
        }
        if env.get(*name).is_some_and(|v| !v.trim().is_empty()) {
            return Err(ConfigError::new(
                file_key,
                format!("{name} is set too: set one of {name} and {name}_FILE, not both"),
            ));
        }
        let value = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::new(&file_key, format!("cannot read {path}: {e}")))?;
        let value = value.trim_end_matches(['\n', '\r']).to_string();
        if value.trim().is_empty() {
            return Err(ConfigError::new(&file_key, format!("{path} is empty")));
        }
        env.insert(name.to_string(), value);
    }
    Ok(env)
}

fn parse_secret_list(key: &str, raw: Vec<String>) -> Result<Vec<Secret>, ConfigError> {
    raw.into_iter()
        .map(|s| s.trim().to_string())
        .enumerate()
        .map(|(i, s)| {
            if s.is_empty() {
                Err(ConfigError::new(
                    key,
                    format!("secret #{} is empty (check for a stray comma)", i + 1),
                ))
            } else if !s.starts_with("whsec_") {
                Err(ConfigError::new(
                    key,
                    format!(
                        "secret #{} does not start with whsec_: copy the endpoint's signing secret (whsec_...), not an API key",
                        i + 1
                    ),
                ))
            } else if s.len() < MIN_SECRET_LEN {
                Err(ConfigError::new(
                    key,
                    format!(
                        "secret #{} is {} characters long, too short for a signing secret (at least {MIN_SECRET_LEN}; Stripe's are whsec_ and 32 more): was it cut when copied?",
                        i + 1,
                        s.len()
                    ),
                ))
            } else {
                Ok(Secret::new(s))
            }
        })
        .collect()
}

fn parse_cidr(key: &str, value: &str) -> Result<IpNet, ConfigError> {
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ConfigError::new(
                key,
                format!("{value:?} is not an IP network (e.g. 10.0.0.0/8)"),
            )
        })
}

/// The largest `ingest.batch_max`: on SQLite a batch is one statement with six parameters per
/// event, and a statement takes at most 32,766.
pub const BATCH_MAX_LIMIT: usize = 4096;

fn positive(key: &str, value: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(ConfigError::new(key, "must be greater than 0")),
        Some(v) => Ok(v),
    }
}

/// The shape of `payhook.toml`. Unknown keys are errors, so a typo does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    admin_listen: Option<String>,
    public_url: Option<String>,
    database_url: Option<String>,
    booking_service_url: Option<String>,
    internal_service_token: Option<String>,
    admin_token: Option<String>,
    stripe: Option<StripeFile>,
    ingest: Option<IngestFile>,
    log: Option<LogFile>,
    sqlite: Option<SqliteFile>,
    processor: Option<ProcessorFile>,
    retention: Option<RetentionFile>,
    targets: Option<Vec<TargetFile>>,
    sources: Option<Vec<sources::SourceFile>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionFile {
    payloads: Option<String>,
    batch: Option<usize>,
    pause: Option<String>,
    every: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    name: Option<String>,
    kind: Option<TargetKind>,
    url: Option<String>,
    token: Option<String>,
    secret: Option<String>,
    events: Option<Vec<String>>,
    retry_schedule: Option<Vec<String>>,
    timeout: Option<String>,
    concurrency: Option<usize>,
    circuit_failures: Option<u32>,
    circuit_open: Option<String>,
}

/// The `booking-service` target `BOOKING_SERVICE_URL` would make, with its defaults.
pub fn booking_service_target(
    url: &str,
    token: Option<&Secret>,
) -> Result<TargetSettings, ConfigError> {
    let mut targets = targets_from(Vec::new(), Some(url), token)?;
    Ok(targets.remove(0))
}

/// Builds the targets: every `[[targets]]` entry, and `booking-service` from `BOOKING_SERVICE_URL`
/// (whose URL, when a `[[targets]]` entry has that name too, replaces the entry's).
fn targets_from(
    files: Vec<TargetFile>,
    booking_service_url: Option<&str>,
    internal_token: Option<&Secret>,
) -> Result<Vec<TargetSettings>, ConfigError> {
    let mut files = files;
    if let Some(url) = booking_service_url
        && !files
            .iter()
            .any(|f| f.name.as_deref() == Some(BOOKING_SERVICE_TARGET))
    {
        files.push(TargetFile {
            name: Some(BOOKING_SERVICE_TARGET.into()),
            kind: Some(TargetKind::BookingStatus),
            url: Some(url.to_string()),
            ..TargetFile::default()
        });
    }
    let mut targets: Vec<TargetSettings> = Vec::new();
    for (i, file) in files.into_iter().enumerate() {
        let key = |field: &str| format!("targets[{i}].{field}");
        let name = file
            .name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ConfigError::new(key("name"), "required"))?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::new(
                key("name"),
                format!("{name:?}: use letters, digits, - and _"),
            ));
        }
        if targets.iter().any(|t| t.name == name) {
            return Err(ConfigError::new(
                key("name"),
                format!("{name:?} is used twice"),
            ));
        }
        let kind = file.kind.ok_or_else(|| {
            ConfigError::new(key("kind"), "required: \"booking-status\" or \"events\"")
        })?;
        // BOOKING_SERVICE_URL names the booking-service target's URL, and env wins over the file.
        let env_url = booking_service_url.filter(|_| name == BOOKING_SERVICE_TARGET);
        let url = env_url
            .map(str::to_string)
            .or(file.url)
            .ok_or_else(|| ConfigError::new(key("url"), "required"))?;
        check_http_url(&url, &key("url"))?;
        let token = file
            .token
            .map(Secret::new)
            .or_else(|| (kind == TargetKind::BookingStatus).then(|| internal_token.cloned())?);
        let secret = match (kind, file.secret) {
            (TargetKind::Events, None) => {
                return Err(ConfigError::new(
                    key("secret"),
                    "required for an events target (whsec_ followed by base64, as Standard Webhooks defines)",
                ));
            }
            (TargetKind::Events, Some(s)) => {
                if crate::providers::standard::signing_key(&s).is_none() {
                    return Err(ConfigError::new(
                        key("secret"),
                        "expected whsec_ followed by a base64 key of 24 to 64 bytes",
                    ));
                }
                Some(Secret::new(s))
            }
            (TargetKind::BookingStatus, Some(_)) => {
                return Err(ConfigError::new(
                    key("secret"),
                    "only events targets sign; a booking-status target takes a token",
                ));
            }
            (TargetKind::BookingStatus, None) => None,
        };
        let events = file.events.unwrap_or_default();
        if let Some(bad) = events
            .iter()
            .find(|e| !crate::domain::steps::event_names().any(|name| name == e.as_str()))
        {
            return Err(ConfigError::new(
                key("events"),
                format!(
                    "unknown event {bad:?}; payhook sends {}",
                    crate::domain::steps::event_names()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if kind == TargetKind::BookingStatus && !events.is_empty() {
            return Err(ConfigError::new(
                key("events"),
                "a booking-status target receives booking statuses; events filters an events target",
            ));
        }
        targets.push(TargetSettings {
            name,
            kind,
            url: url.trim_end_matches('/').to_string(),
            token,
            secret,
            events,
            retry_schedule: match file.retry_schedule {
                Some(list) if list.is_empty() => {
                    return Err(ConfigError::new(
                        key("retry_schedule"),
                        "needs at least one entry",
                    ));
                }
                Some(list) => list
                    .iter()
                    .map(|d| parse_duration(&key("retry_schedule"), d))
                    .collect::<Result<_, _>>()?,
                None => default_retry_schedule(),
            },
            timeout: parse_duration_or(&key("timeout"), file.timeout, "5s")?,
            concurrency: positive(&key("concurrency"), file.concurrency, 32)?,
            circuit_failures: positive(
                &key("circuit_failures"),
                file.circuit_failures.map(|n| n as usize),
                10,
            )? as u32,
            circuit_open: parse_duration_or(&key("circuit_open"), file.circuit_open, "30s")?,
        });
    }
    Ok(targets)
}

fn default_retry_schedule() -> Vec<Duration> {
    DEFAULT_RETRY_SCHEDULE
        .iter()
        .map(|d| parse_duration("", d).expect("the default schedule parses"))
        .collect()
}

fn parse_duration_or(
    key: &str,
    value: Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    parse_duration(key, value.as_deref().unwrap_or(default))
}

/// A duration written as a number and a unit: `250ms`, `5s`, `2m`, `1h`, `1d`.
pub fn parse_duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if unit_ms > 0 => Ok(Duration::from_millis(n.saturating_mul(unit_ms))),
        _ => Err(ConfigError::new(
            key,
            format!("{text:?} is not a duration (a number and ms, s, m, h or d, e.g. \"30s\")"),
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessorFile {
    max_attempts: Option<usize>,
    retry_initial_ms: Option<usize>,
    retry_max_ms: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StripeFile {
    webhook_secrets: Option<Vec<String>>,
    secret_key: Option<String>,
    api_base: Option<String>,
    tolerance_secs: Option<u64>,
    allowed_cidrs: Option<Vec<String>>,
    reconcile_every: Option<String>,
    reconcile_window: Option<String>,
    ask_provider_after: Option<String>,
    sandbox_thin_events: Option<bool>,
    sandbox: Option<bool>,
    routes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestFile {
    max_body_bytes: Option<usize>,
    batch_max: Option<usize>,
    writers: Option<usize>,
    rate_limit_per_ip: Option<u32>,
    retry_after_secs: Option<u64>,
    read_timeout: Option<String>,
    max_header_bytes: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogFile {
    level: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqliteFile {
    synchronous: Option<SqliteSync>,
}

impl FileConfig {
    /// Parses the text of the file at `path` (named in errors).
    fn parse(text: &str, path: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().to_string();
            // toml names the offending key in its message; locate it for the user too.
            let line = e
                .span()
                .map(|span| text[..span.start].matches('\n').count() + 1);
            let key = match line {
                Some(line) => format!("{path} line {line}"),
                None => path.to_string(),
            };
            ConfigError::new(key, message)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml_file(text: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::parse(text, "payhook.toml")
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_sandbox_provider_is_on_only_in_sandbox_mode_unless_asked_for() {
        let with =
            |pairs: &[(&str, &str)]| Settings::from_parts(FileConfig::default(), &env(pairs));
        assert!(
            with(&[]).unwrap().stripe.sandbox,
            "nothing configured: sandbox mode"
        );
        let real = ("STRIPE_WEBHOOK_SECRET", "whsec_a_real_endpoint_secret");
        assert!(
            !with(&[real]).unwrap().stripe.sandbox,
            "its Pay button would sign with the real secret"
        );
        assert!(
            with(&[real, ("PAYHOOK_SANDBOX", "true")])
                .unwrap()
                .stripe
                .sandbox
        );
        assert!(!with(&[("PAYHOOK_SANDBOX", "no")]).unwrap().stripe.sandbox);
        let key = ("STRIPE_SECRET_KEY", "sk_test_payhook_key");
        let err = with(&[real, key, ("PAYHOOK_SANDBOX", "true")]).unwrap_err();
        assert_eq!(err.key, "PAYHOOK_SANDBOX");
        assert!(err.message.contains("not both"), "{err}");
        let err = with(&[("PAYHOOK_SANDBOX", "maybe")]).unwrap_err();
        assert!(err.message.contains("not true or false"), "{err}");
    }

    #[test]
    fn defaults_match_the_product_contract() {
        let s = Settings::defaults();
        assert_eq!(s.listen.to_string(), "127.0.0.1:3003");
        assert_eq!(s.admin_listen.to_string(), "127.0.0.1:3004");
        assert_eq!(s.database_url, "sqlite://payhook.db");
        assert!(s.webhook_secret_needed());
        assert_eq!(s.stripe.tolerance, Duration::from_secs(300));
        assert_eq!(s.ingest.max_body_bytes, 1 << 20);
        assert_eq!(s.sqlite_sync, SqliteSync::Full);
    }

    #[test]
    fn env_wins_over_file() {
        let file = toml_file(
            "listen = \"127.0.0.1:4000\"\n[stripe]\nwebhook_secrets = [\"whsec_fromfile123\"]\n",
        )
        .unwrap();
        let s = Settings::from_parts(
            file,
            &env(&[
                ("PAYHOOK_LISTEN", "127.0.0.1:5000"),
                ("STRIPE_WEBHOOK_SECRET", "whsec_aaaaaaaa, whsec_bbbbbbbb"),
            ]),
        )
        .unwrap();
        assert_eq!(s.listen.port(), 5000);
        let secrets: Vec<_> = s
            .stripe
            .webhook_secrets
            .iter()
            .map(Secret::expose)
            .collect();
        assert_eq!(secrets, ["whsec_aaaaaaaa", "whsec_bbbbbbbb"]);
    }

    #[test]
    fn edge_limits_and_trusted_proxies_are_read_and_checked() {
        let s = Settings::defaults();
        assert_eq!(s.ingest.read_timeout, Duration::from_secs(10));
        assert_eq!(s.ingest.max_header_bytes, 16 * 1024);
        assert!(s.ingest.trusted_proxies.is_empty());
        let s = Settings::from_parts(
            toml_file("[ingest]\nread_timeout = \"2s\"\ntrusted_proxies = [\"10.0.0.0/8\"]")
                .unwrap(),
            &env(&[("PAYHOOK_TRUSTED_PROXIES", "192.168.0.0/16, 127.0.0.1")]),
        )
        .unwrap();
        assert_eq!(s.ingest.read_timeout, Duration::from_secs(2));
        assert_eq!(
            s.ingest.trusted_proxies,
            [
                "192.168.0.0/16".parse::<IpNet>().unwrap(),
                "127.0.0.1/32".parse().unwrap()
            ]
        );
        let err = Settings::from_parts(
            FileConfig::default(),
            &env(&[("PAYHOOK_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local")]),
        )
        .unwrap_err();
        assert_eq!(err.key, "PAYHOOK_TRUSTED_PROXIES");
        let err = Settings::from_parts(
            toml_file("[ingest]\nread_timeout = \"0s\"").unwrap(),
            &HashMap::new(),
        )
        .unwrap_err();
        assert_eq!(err.key, "ingest.read_timeout");
        // Values payhook cannot honour are refused, not quietly raised.
        for (toml, key) in [
            (
                "[ingest]\nmax_header_bytes = 4096",
                "ingest.max_header_bytes",
            ),
            ("[ingest]\nretry_after_secs = 0", "ingest.retry_after_secs"),
        ] {
            let err = Settings::from_parts(toml_file(toml).unwrap(), &HashMap::new()).unwrap_err();
            assert_eq!(err.key, key, "{toml}");
        }
    }

    #[test]
    fn periodic_reconcile_is_off_by_default_and_at_least_a_minute_apart() {
        let s = Settings::defaults();
        assert_eq!(s.stripe.reconcile_every, None);
        assert_eq!(s.stripe.reconcile_window, Duration::from_secs(3 * 86_400));
        let api = [
            ("STRIPE_SECRET_KEY", "sk_test_payhook_key"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_a_real_endpoint_secret"),
        ];
        let with = |every: &str| {
            let mut pairs = api.to_vec();
            pairs.push(("PAYHOOK_RECONCILE_EVERY", every));
            Settings::from_parts(FileConfig::default(), &env(&pairs))
        };
        let s = with("1h").unwrap();
        assert_eq!(s.stripe.reconcile_every, Some(Duration::from_secs(3600)));
        let err = with("30s").unwrap_err();
        assert_eq!(err.key, "PAYHOOK_RECONCILE_EVERY");
        // Without an API key it could never run: said at start-up, not silently skipped.
        let err = Settings::from_parts(
            FileConfig::default(),
            &env(&[("PAYHOOK_RECONCILE_EVERY", "1h")]),
        )
        .unwrap_err();
        assert!(err.message.contains("needs STRIPE_SECRET_KEY"), "{err}");
    }

    #[test]
    fn retention_is_off_by_default_and_keeps_payloads_at_least_an_hour() {
        let s = Settings::defaults();
        assert_eq!(s.retention.payloads, None);
        assert_eq!(
            (s.retention.batch, s.retention.every),
            (500, Duration::from_secs(60))
        );
        let s = Settings::from_parts(
            toml_file("[retention]\npayloads = \"30d\"\nbatch = 100").unwrap(),
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(s.retention.payloads, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(s.retention.batch, 100);
        let err = Settings::from_parts(
            FileConfig::default(),
            &env(&[("PAYHOOK_RETAIN_PAYLOADS", "10m")]),
        )
        .unwrap_err();
        assert_eq!(err.key, "PAYHOOK_RETAIN_PAYLOADS");
    }

    #[test]
    fn errors_name_the_key() {
        let err = Settings::from_parts(FileConfig::default(), &env(&[("PAYHOOK_LISTEN", "nope")]))
            .unwrap_err();
        assert_eq!(err.key, "PAYHOOK_LISTEN");
        let err = Settings::from_parts(
            FileConfig::default(),
            &env(&[("STRIPE_WEBHOOK_SECRET", "whsec_aaaaaaaa,,")]),
        )
        .unwrap_err();
        assert_eq!(err.key, "STRIPE_WEBHOOK_SECRET");
        assert!(
            !err.to_string().contains("whsec_aaaaaaaa"),
            "a secret leaked: {err}"
        );
        let err = Settings::from_parts(
            FileConfig::default(),
            &env(&[("DATABASE_URL", "mysql://x")]),
        )
        .unwrap_err();
        assert_eq!(err.key, "DATABASE_URL");
        let err = Settings::from_parts(
            FileConfig::default(),
            &env(&[("PAYHOOK_ADMIN_LISTEN", "0.0.0.0:3004")]),
        )
        .unwrap_err();
        assert_eq!(err.key, "PAYHOOK_ADMIN_LISTEN");
        let err = toml_file("lisen = \"x\"").unwrap_err();
        assert!(err.message.contains("lisen"), "{err}");
        let file = toml_file("[ingest]\nbatch_max = 4097").unwrap();
        let err = Settings::from_parts(file, &HashMap::new()).unwrap_err();
        assert_eq!(err.key, "ingest.batch_max");
        let file = toml_file("[ingest]\nbatch_max = 4096").unwrap();
        let settings = Settings::from_parts(file, &HashMap::new()).unwrap();
        assert_eq!(settings.ingest.batch_max, BATCH_MAX_LIMIT);
        let file = toml_file("[stripe]\nallowed_cidrs = [\"10.0.0.0/33\"]").unwrap();
        let err = Settings::from_parts(file, &HashMap::new()).unwrap_err();
        assert_eq!(err.key, "stripe.allowed_cidrs");
    }

    #[test]
    fn the_example_file_is_valid_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("payhook.example.toml");
        let from_file = Settings::load(Some(&path), &HashMap::new()).unwrap();
        assert_eq!(
            format!("{from_file:?}"),
            format!("{:?}", Settings::defaults())
        );
    }

    #[test]
    fn booking_service_url_enables_the_booking_status_target() {
        let s = Settings::from_parts(
            FileConfig::default(),
            &env(&[
                ("BOOKING_SERVICE_URL", "http://127.0.0.1:3001/"),
                ("INTERNAL_SERVICE_TOKEN", "tok"),
            ]),
        )
        .unwrap();
        assert_eq!(s.targets.len(), 1);
        let t = &s.targets[0];
        assert_eq!(
            (t.name.as_str(), t.kind),
            ("booking-service", TargetKind::BookingStatus)
        );
        assert_eq!(t.url, "http://127.0.0.1:3001");
        assert_eq!(t.token.as_ref().map(Secret::expose), Some("tok"));
        assert_eq!(t.timeout, Duration::from_secs(5));
        let schedule: Vec<u64> = t.retry_schedule.iter().map(Duration::as_secs).collect();
        assert_eq!(
            schedule,
            [0, 5, 30, 120, 600, 1800, 3600, 10800, 21600, 43200, 86400]
        );
    }

    #[test]
    fn targets_are_read_from_the_file_and_checked() {
        let file = toml_file(
            r#"
            [[targets]]
            name = "alerts"
            kind = "events"
            url = "https://hooks.example.com/payhook"
            secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            events = ["payment.failed", "payment.disputed", "payment.refund_failed",
                      "payment.duplicate", "payment.needs_attention"]
            retry_schedule = ["0s", "250ms", "1m"]
            timeout = "2s"
            "#,
        )
        .unwrap();
        let s = Settings::from_parts(file, &HashMap::new()).unwrap();
        let t = &s.targets[0];
        assert_eq!(t.kind, TargetKind::Events);
        assert_eq!(
            t.url, "https://hooks.example.com/payhook",
            "https is accepted"
        );
        // Every event payhook sends can be chosen, the attention events included.
        assert_eq!(
            t.events,
            [
                "payment.failed",
                "payment.disputed",
                "payment.refund_failed",
                "payment.duplicate",
                "payment.needs_attention"
            ]
        );
        assert_eq!(
            t.retry_schedule,
            [
                Duration::ZERO,
                Duration::from_millis(250),
                Duration::from_secs(60)
            ]
        );
        assert_eq!(t.timeout, Duration::from_secs(2));
        assert!(
            !format!("{s:?}").contains("MfKQ9r8G"),
            "the secret is redacted"
        );

        for (toml, key, says) in [
            (
                "kind = \"events\"\nurl = \"http://h\"",
                "targets[0].secret",
                "required",
            ),
            (
                "kind = \"events\"\nurl = \"http://h\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nevents = [\"payment.paid\"]",
                "targets[0].events",
                "payment.paid",
            ),
            (
                "kind = \"booking-status\"\nurl = \"http://h\"\nretry_schedule = [\"5 minutes\"]",
                "targets[0].retry_schedule",
                "5 minutes",
            ),
            ("kind = \"booking-status\"", "targets[0].url", "required"),
        ] {
            let file = toml_file(&format!("[[targets]]\nname = \"t\"\n{toml}")).unwrap();
            let err = Settings::from_parts(file, &HashMap::new()).unwrap_err();
            assert_eq!(err.key, key, "{toml}");
            assert!(err.message.contains(says), "{err}");
        }
        let twice = "[[targets]]\nname = \"t\"\nkind = \"booking-status\"\nurl = \"http://h\"\n";
        let file = toml_file(&format!("{twice}{twice}")).unwrap();
        let err = Settings::from_parts(file, &HashMap::new()).unwrap_err();
        assert_eq!(err.key, "targets[1].name");
    }

    #[test]
    fn the_public_url_follows_the_listener_unless_it_is_set() {
        let s = Settings::from_parts(
            FileConfig::default(),
            &env(&[("PAYHOOK_LISTEN", "127.0.0.1:3013")]),
        )
        .unwrap();
        assert_eq!(
            (s.public_url.as_str(), s.public_url_set),
            ("http://localhost:3013", false)
        );
        let s = Settings::from_parts(
            FileConfig::default(),
            &env(&[("PAYHOOK_LISTEN", "192.0.2.7:8080")]),
        )
        .unwrap();
        assert_eq!(s.public_url, "http://192.0.2.7:8080");
        let s = Settings::from_parts(
            FileConfig::default(),
            &env(&[
                ("PAYHOOK_LISTEN", "0.0.0.0:3013"),
                ("PAYHOOK_PUBLIC_URL", "https://pay.example.com/"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (s.public_url.as_str(), s.public_url_set),
            ("https://pay.example.com", true)
        );
        assert_eq!(Settings::defaults().public_url, "http://localhost:3003");
    }

    #[test]
    fn route_aliases_are_plain_paths_outside_payhooks_own() {
        let s = Settings::from_parts(
            FileConfig::default(),
            &env(&[(
                "STRIPE_WEBHOOK_ROUTES",
                "/api/webhooks/stripe, /stripe/webhooks/",
            )]),
        )
        .unwrap();
        assert_eq!(
            s.webhook_routes,
            [
                ("/api/webhooks/stripe".to_string(), "stripe".to_string()),
                ("/stripe/webhooks".to_string(), "stripe".to_string())
            ]
        );
        for bad in ["api/x", "/a/../b", "/webhooks/other", "/a b", "/a/{id}"] {
            let err = Settings::from_parts(
                FileConfig::default(),
                &env(&[("STRIPE_WEBHOOK_ROUTES", bad)]),
            )
            .unwrap_err();
            assert_eq!(err.key, "STRIPE_WEBHOOK_ROUTES", "{bad}");
        }
        let file = toml_file(
            "[stripe]\nroutes = [\"/hooks\"]\n[[sources]]\nname = \"sw\"\nkind = \"standard-webhooks\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\nroutes = [\"/hooks\"]\n",
        )
        .unwrap();
        let err = Settings::from_parts(file, &HashMap::new()).unwrap_err();
        assert!(err.message.contains("two sources"), "{err}");
    }

    #[test]
    fn a_bad_config_file_is_named_by_its_own_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prod.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1\"\nlisen = 2\n").unwrap();
        let err = Settings::load(Some(&path), &HashMap::new()).unwrap_err();
        assert_eq!(err.key, format!("{} line 2", path.display()), "{err}");
    }

    #[test]
    fn a_short_signing_secret_is_refused_for_its_length() {
        let err = Settings::from_parts(
            FileConfig::default(),
            &env(&[("STRIPE_WEBHOOK_SECRET", "whsec_ls4b")]),
        )
        .unwrap_err();
        assert!(err.message.contains("10 characters long"), "{err}");
        assert!(
            !err.message.contains("ls4b"),
            "the secret is never printed: {err}"
        );
        let err = Settings::from_parts(
            FileConfig::default(),
            &env(&[("STRIPE_WEBHOOK_SECRET", "sk_test_0123456789abcdef")]),
        )
        .unwrap_err();
        assert!(err.message.contains("does not start with whsec_"), "{err}");
    }

    #[test]
    fn secrets_can_come_from_files_never_from_both_forms() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("stripe_webhook_secret");
        std::fs::write(&secret, "whsec_from_a_docker_secret\n").unwrap();
        let path = secret.display().to_string();
        let loaded = Settings::load(
            None,
            &env(&[
                ("STRIPE_WEBHOOK_SECRET_FILE", &path),
                ("PAYHOOK_ADMIN_TOKEN_FILE", &path),
            ]),
        )
        .unwrap();
        assert_eq!(
            loaded.stripe.webhook_secrets[0].expose(),
            "whsec_from_a_docker_secret",
            "read, its newline trimmed"
        );
        assert!(
            !loaded.webhook_secret_needed(),
            "no sandbox secret is generated"
        );
        assert_eq!(
            loaded.admin_token.as_ref().unwrap().expose(),
            "whsec_from_a_docker_secret"
        );

        let both = Settings::load(
            None,
            &env(&[
                ("STRIPE_WEBHOOK_SECRET_FILE", &path),
                ("STRIPE_WEBHOOK_SECRET", "whsec_also_in_the_environment"),
            ]),
        )
        .unwrap_err();
        assert_eq!(both.key, "STRIPE_WEBHOOK_SECRET_FILE");
        let missing = Settings::load(
            None,
            &env(&[("STRIPE_WEBHOOK_SECRET_FILE", "/run/secrets/not_there")]),
        )
        .unwrap_err();
        assert_eq!(missing.key, "STRIPE_WEBHOOK_SECRET_FILE");
        assert!(
            missing.message.contains("/run/secrets/not_there"),
            "{missing}"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let err = Settings::load(
            None,
            &env(&[("STRIPE_WEBHOOK_SECRET_FILE", &empty.display().to_string())]),
        )
        .unwrap_err();
        assert!(err.message.contains("is empty"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Settings::from_parts(
            FileConfig::default(),
            &env(&[("STRIPE_WEBHOOK_SECRET", "whsec_topsecret1")]),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("topsecret"));
    }
}
