//! payhook: a self-hosted payment gateway service. Providers post webhooks here; payhook verifies
//! them on their raw bytes, stores each exactly once before acknowledging it, and turns them into a
//! payment ledger that does not depend on arrival order.
//!
//! # Layout
//!
//! The modules follow the data:
//!
//! - [`domain`]: the words every other module speaks (money, secrets, facts, payment state,
//!   statuses, notification steps, the delivery policy); it imports none of them.
//! - [`config`]: settings from defaults, `payhook.toml` and the environment, validated up front.
//! - [`app`]: builds the service from settings, binds its listeners, drains on shutdown.
//! - [`http`]: the public and admin routers; `http::error` maps every failure to a stable code.
//! - [`admin_types`]: the admin API's answers as types, for its handlers and the `cli` to share.
//! - [`providers`]: the signature schemes (Stripe, Standard Webhooks, HMAC and its presets),
//!   payload mappings, and the events `payhook trigger` sends.
//! - [`inbox`]: verify, then persist once per `(source, event_id)` through a group-commit writer.
//! - [`ledger`]: facts read from events, payment state derived from them, the processor worker.
//! - [`checkout`]: sessions and payment intents with Stripe's API or the sandbox provider.
//! - [`notify`]: the outbox the ledger writes, and the dispatcher that delivers it to targets.
//! - [`reconcile`]: missed events fetched from the provider's API and fed through the inbox.
//! - [`bulk`]: bulk replays and retries, run in the background in short chunks as jobs.
//! - [`retention`]: old payloads pruned in small batches; the index and the ledger stay.
//! - [`store`]: one contract over SQLite and PostgreSQL, with per-backend migrations.
//! - [`metrics`]: the Prometheus recorder behind `/metrics`.
//! - [`telemetry`]: OpenTelemetry traces over OTLP, from a webhook's request to each delivery
//!   attempt it causes; off unless an OTLP endpoint is set.
//! - [`net`]: the HTTP client every outgoing call is built from.
//! - [`booking_service`]: the example booking service (the booking-status target's contract).
//! - [`cli`]: one file per subcommand.

pub mod admin_types;
pub mod app;
pub mod booking_service;
pub mod bulk;
pub mod checkout;
pub mod cli;
pub mod config;
pub mod domain;
pub mod explain;
pub mod http;
pub mod inbox;
pub mod ledger;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod providers;
pub mod reconcile;
pub mod retention;
pub mod store;
pub mod telemetry;
