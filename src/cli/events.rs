//! `payhook events list|show|replay`: the inbox from the terminal, read from the store directly.
//! A replay applies the event in this process and prints what happened; a running `payhook serve`
//! sharing the store never applies it a second time (the claim is a lock).

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::app;
use crate::config::Settings;
use crate::ledger::{Handled, Outcome, Processor};
use crate::store::{Claim, EventFilter, Store, StoredEvent};

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    command: EventsCommand,
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Stored events, newest first.
    List {
        /// Only events in this status: received, processed, ignored, retrying, failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One event: its processing state, headers (signatures redacted) and exact payload.
    Show {
        /// The event's number (first column of `list`) or its provider id (evt_...).
        event: String,
        #[arg(long, default_value = "stripe")]
        source: String,
    },
    /// Apply events to the ledger again, now: failed ones after the cause is fixed, or any other
    /// (a processed event adds nothing new: facts are kept once).
    Replay {
        /// Event numbers or provider ids.
        #[arg(required_unless_present = "failed")]
        events: Vec<String>,
        /// Replay every event left `failed`.
        #[arg(long)]
        failed: bool,
        #[arg(long, default_value = "stripe")]
        source: String,
    },
}

const STATUSES: &[&str] = &["received", "processed", "ignored", "retrying", "failed"];

pub async fn run(settings: Settings, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let store = std::sync::Arc::new(app::open_store(&settings).await?);
    let code = match args.command {
        EventsCommand::List { status, limit } => list(&store, status, limit).await?,
        EventsCommand::Show { event, source } => show(&store, &event, &source).await?,
        EventsCommand::Replay {
            events,
            failed,
            source,
        } => replay(&store, &settings, events, failed, &source).await?,
    };
    store.close().await;
    Ok(code)
}

async fn list(store: &Store, status: Option<String>, limit: i64) -> anyhow::Result<ExitCode> {
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        bail!(
            "unknown status {s:?}; expected one of {}",
            STATUSES.join(", ")
        );
    }
    let events = store
        .list_events(
            &EventFilter {
                status: status.clone(),
                ..EventFilter::default()
            },
            limit,
        )
        .await?;
    println!(
        "{:>8}  {:<9}  {:>8}  {:<40}  {:<32}  received",
        "#", "status", "attempts", "type", "event id"
    );
    for e in &events {
        println!(
            "{:>8}  {:<9}  {:>8}  {:<40}  {:<32}  {}",
            e.id,
            e.status,
            e.attempts,
            e.event_type,
            e.event_id,
            e.received_at.format("%Y-%m-%d %H:%M:%S")
        );
        if let Some(error) = &e.last_error {
            println!("{:>8}  error: {error}", "");
        }
    }
    if events.is_empty() {
        println!("(no events)");
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(store: &Store, event: &str, source: &str) -> anyhow::Result<ExitCode> {
    let e = find(store, event, source).await?;
    println!("event     #{} {} ({})", e.id, e.event_id, e.source);
    println!("type      {}", e.event_type);
    println!("status    {} after {} attempt(s)", e.status, e.attempts);
    if let Some(error) = &e.last_error {
        println!("error     {error}");
    }
    println!("received  {}", e.received_at.to_rfc3339());
    println!("headers   {}", e.headers);
    println!("payload   {}", String::from_utf8_lossy(&e.payload));
    Ok(ExitCode::SUCCESS)
}

async fn replay(
    store: &std::sync::Arc<Store>,
    settings: &Settings,
    events: Vec<String>,
    failed: bool,
    source: &str,
) -> anyhow::Result<ExitCode> {
    let mut ids = Vec::new();
    for event in &events {
        ids.push(find(store, event, source).await?.id);
    }
    if failed {
        ids.extend(
            store
                .list_events(&EventFilter::status("failed"), i64::MAX)
                .await?
                .iter()
                .map(|e| e.id),
        );
    }
    // Notifications the replay causes go to the outbox; a running payhook delivers them.
    let processor = Processor::new(
        store.clone(),
        settings.processor.clone(),
        Default::default(),
    )
    .with_targets(&settings.targets, Default::default())
    .with_mappings(crate::providers::Sources::from_settings(settings).mappings());
    let total = ids.len();
    let mut unapplied = 0;
    for (n, id) in ids.into_iter().enumerate() {
        store.requeue_event(id).await?;
        let handled = match processor.try_process(Claim::Id(id)).await? {
            Outcome::Handled(mut batch) => batch.pop(),
            Outcome::Empty { .. } => None,
        };
        let (status, said) = match handled {
            Some(Handled { status, error, .. }) => {
                let said = error.map_or(status.to_string(), |e| format!("{status}: {e}"));
                (status.to_string(), said)
            }
            // A running payhook claimed it first.
            None => {
                let e = store.event_by_id(id).await?.context("event gone")?;
                let said = format!("{} (by a running payhook)", e.status);
                (e.status, said)
            }
        };
        if !matches!(status.as_str(), "processed" | "ignored") {
            unapplied += 1;
        }
        println!("[{}/{total}] #{id} {said}", n + 1);
    }
    if total == 0 {
        println!("nothing to replay");
    }
    Ok(if unapplied == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An event, by its number or its provider id.
async fn find(store: &Store, event: &str, source: &str) -> anyhow::Result<StoredEvent> {
    let found = match event.parse::<i64>() {
        Ok(id) => store.event_by_id(id).await?,
        Err(_) => store.event(source, event).await?,
    };
    found.with_context(|| format!("no stored event {event:?} (source {source})"))
}
