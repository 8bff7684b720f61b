//! The command line: one file per subcommand.

mod admin_client;
mod backup;
mod bulk;
mod deliveries;
mod demo;
mod events;
mod explain;
mod listen;
mod output;
mod reconcile;
mod sandbox;
mod serve;
mod targets;
mod trigger;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, Settings};
use crate::telemetry::{OtlpSettings, TARGET, Tracing};

/// What `payhook serve --help` says of the environment (docs/configuration.md has all).
const SERVE_ENVIRONMENT: &str = "\
Environment (wins over payhook.toml; every secret also as NAME_FILE, a file holding it):
  PAYHOOK_LISTEN           public listener [127.0.0.1:3003]
  PAYHOOK_ADMIN_LISTEN     admin API, dashboard, /metrics [127.0.0.1:3004]
  PAYHOOK_PUBLIC_URL       how browsers and providers reach payhook [follows PAYHOOK_LISTEN]
  DATABASE_URL             sqlite://PATH or postgres://... [sqlite://payhook.db]
  STRIPE_WEBHOOK_SECRET    whsec_..., comma-separated during a rotation [generated, sandbox mode]
  STRIPE_SECRET_KEY        Stripe API key [unset: the sandbox provider]
  STRIPE_API_BASE          another Stripe API base [https://api.stripe.com]
  STRIPE_WEBHOOK_ROUTES    more paths Stripe posts to, comma-separated
  PAYHOOK_SANDBOX          checkout through the sandbox provider [on in sandbox mode only]
  BOOKING_SERVICE_URL      the booking service to notify [unset]
  INTERNAL_SERVICE_TOKEN   Bearer token to and from the booking service [unset]
  PAYHOOK_ADMIN_TOKEN      Bearer token of the admin listener [unset: loopback only]
  PAYHOOK_RECONCILE_EVERY  reconcile with Stripe's event list this often [never]
  PAYHOOK_RETAIN_PAYLOADS  prune applied events' payloads older than this [never]
  RUST_LOG, PAYHOOK_LOG_FORMAT  log filter and text|json [info, text]
  OTEL_EXPORTER_OTLP_ENDPOINT   export traces there over OTLP/HTTP (protobuf) [unset: off]";

/// The configuration file read from the working directory when `--config` names none.
const DEFAULT_CONFIG: &str = "payhook.toml";

#[derive(Debug, Parser)]
#[command(
    name = "payhook",
    version,
    about = "Self-hosted payment webhook gateway"
)]
pub struct Cli {
    /// Optional payhook.toml; environment variables win over it [default: ./payhook.toml when
    /// there is one].
    #[arg(long, global = true, env = "PAYHOOK_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: public listener, admin listener, inbox writers. Migrates the store first.
    #[command(after_help = SERVE_ENVIRONMENT)]
    Serve,
    /// Apply the store's migrations and exit.
    Migrate,
    /// Copy a SQLite store to a new file while payhook runs (restore: stop payhook, put the copy
    /// in the store's place, start it).
    Backup(backup::BackupArgs),
    /// Build a realistic provider event, sign it like the provider, send it and print the answer.
    Trigger(trigger::TriggerArgs),
    /// Stored webhook events: list, show, replay into the ledger.
    Events(events::EventsArgs),
    /// Notifications to targets: list them, retry dead ones.
    Deliveries(deliveries::DeliveriesArgs),
    /// Notification targets: list their circuits, disable or enable one.
    Targets(targets::TargetsArgs),
    /// Why a booking or payment is in its state: its events in provider time, the fact and rule
    /// each brought, the notifications they caused with every attempt, what needs a person.
    Explain(explain::ExplainArgs),
    /// Fetch the events Stripe lists since a time and store the ones payhook missed (through the
    /// running payhook; idempotent).
    Reconcile(reconcile::ReconcileArgs),
    /// Forward each event a running payhook stores to a local URL, signed with a local secret
    /// in its source's scheme (like `stripe listen --forward-to`), resuming where it left off.
    Listen(listen::ListenArgs),
    /// Run the example booking service (the contract of the booking-status target), for trying
    /// payhook out and for tests.
    ExampleBookingService {
        #[arg(long, env = "BOOKING_SERVICE_LISTEN", default_value = "127.0.0.1:3001")]
        listen: std::net::SocketAddr,
        /// Bearer token callers must present (any Bearer token when unset).
        #[arg(long, env = "INTERNAL_SERVICE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Create a pending booking on the first update for an unknown id instead of 404.
        #[arg(long)]
        create_unknown: bool,
    },
    /// Refund or dispute a sandbox payment (what Stripe's dashboard would do), for demos.
    Sandbox(sandbox::SandboxArgs),
    /// Try payhook end to end: the sandbox provider, the example booking service as target, and
    /// a page to create and pay a test booking.
    Demo {
        /// Where the example booking service listens.
        #[arg(long, default_value = "127.0.0.1:3001")]
        booking_listen: std::net::SocketAddr,
    },
}

impl Cli {
    pub fn run(self) -> ExitCode {
        let env: HashMap<String, String> = std::env::vars().collect();
        // A payhook.toml in the working directory is read, and said so, rather than silently
        // ignored; --config names another.
        let found = PathBuf::from(DEFAULT_CONFIG);
        let config = match &self.config {
            Some(path) => Some(path.clone()),
            None => found.is_file().then(|| found.clone()),
        };
        let settings = match Settings::load(config.as_deref(), &env) {
            Ok(settings) => settings,
            Err(e) => {
                eprintln!("payhook: {e}");
                return ExitCode::from(2);
            }
        };
        // Traces are for the commands that run payhook; the others are short-lived clients.
        let serving = matches!(self.command, Command::Serve | Command::Demo { .. });
        let otlp = match OtlpSettings::from_env(&env) {
            Ok(otlp) => otlp.filter(|_| serving),
            Err(e) if serving => {
                eprintln!("payhook: {e}");
                return ExitCode::from(2);
            }
            Err(_) => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let traces = match otlp.map(|s| Tracing::start(&s, runtime.handle().clone())) {
            None => None,
            Some(Ok(traces)) => Some(traces),
            Some(Err(e)) => {
                eprintln!("payhook: {e:#}");
                return ExitCode::from(2);
            }
        };
        init_logging(&settings, traces.as_ref());
        if self.config.is_none() && config.is_some() {
            tracing::info!(
                "configuration read from ./{DEFAULT_CONFIG}, found in the working directory (--config names another file)"
            );
        }
        let result = runtime.block_on(async move {
            match self.command {
                Command::Serve => serve::run(settings).await,
                Command::Migrate => serve::migrate(settings).await,
                Command::Backup(args) => backup::run(settings, args).await,
                Command::Trigger(args) => trigger::run(settings, args).await,
                Command::Events(args) => events::run(settings, args).await,
                Command::Deliveries(args) => deliveries::run(settings, args).await,
                Command::Targets(args) => targets::run(settings, args).await,
                Command::Explain(args) => explain::run(settings, args).await,
                Command::Reconcile(args) => reconcile::run(settings, args).await,
                Command::Listen(args) => listen::run(settings, args).await,
                Command::ExampleBookingService {
                    listen,
                    token,
                    create_unknown,
                } => crate::booking_service::run(listen, token, create_unknown)
                    .await
                    .map(|()| ExitCode::SUCCESS),
                Command::Sandbox(args) => sandbox::run(settings, args).await,
                Command::Demo { booking_listen } => demo::run(settings, booking_listen).await,
            }
        });
        // The spans of the last requests are still queued: sent before the process ends.
        if let Some(traces) = traces {
            traces.shutdown();
        }
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("payhook: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}

fn init_logging(settings: &Settings, traces: Option<&Tracing>) {
    use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};

    let filter =
        || EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let Some(traces) = traces else {
        // Tracing off: the subscriber is the log alone, as it always was.
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_ansi(ansi)
            .with_writer(std::io::stderr);
        match settings.log_format {
            LogFormat::Json => builder.json().init(),
            LogFormat::Text => builder.init(),
        }
        return;
    };
    // The log shows what it shows without tracing: the trace spans are left out of it.
    let logged = || filter().and(filter_fn(|m| !(m.is_span() && m.target() == TARGET)));
    let log = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let log = match settings.log_format {
        LogFormat::Json => log.json().with_filter(logged()).boxed(),
        LogFormat::Text => log.with_filter(logged()).boxed(),
    };
    // The exporter takes the trace spans, and payhook's log lines inside them as span events.
    let traced = filter_fn(|m| {
        if m.is_span() {
            m.target() == TARGET
        } else {
            *m.level() <= tracing::Level::INFO && m.target().starts_with("payhook")
        }
    });
    tracing_subscriber::registry()
        .with(log)
        .with(traces.layer().with_filter(traced))
        .init();
}
