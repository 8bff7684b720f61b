//! `payhook deliveries list|retry`: the outbox from the terminal, read from the store directly.
//! A retry puts notifications back in line, due now; the running `payhook serve` sends them
//! (its dispatcher looks at the outbox every few seconds when idle).

use std::process::ExitCode;

use anyhow::bail;
use chrono::DateTime;
use clap::{Args, Subcommand};

use crate::app;
use crate::config::Settings;
use crate::store::{RetrySelection, Store};

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    #[command(subcommand)]
    command: DeliveriesCommand,
}

#[derive(Debug, Subcommand)]
enum DeliveriesCommand {
    /// Notifications, newest first.
    List {
        /// Only notifications in this status: pending, delivered, dead.
        #[arg(long)]
        status: Option<String>,
        /// Only notifications for this target.
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Show each notification's body too.
        #[arg(long)]
        body: bool,
    },
    /// Send notifications again with a fresh retry schedule: the given ones, or every dead one.
    /// With --target, also re-enables that target if a 410 disabled it.
    Retry {
        /// Notification numbers (first column of `list`) or ids (ntf_...).
        #[arg(required_unless_present_any = ["dead", "target"])]
        deliveries: Vec<String>,
        /// Retry every dead notification (of --target, if given).
        #[arg(long)]
        dead: bool,
        #[arg(long)]
        target: Option<String>,
    },
}

const STATUSES: &[&str] = &["pending", "delivered", "dead"];

pub async fn run(settings: Settings, args: DeliveriesArgs) -> anyhow::Result<ExitCode> {
    let store = app::open_store(&settings).await?;
    let code = match args.command {
        DeliveriesCommand::List {
            status,
            target,
            limit,
            body,
        } => list(&store, status, target, limit, body).await?,
        DeliveriesCommand::Retry {
            deliveries,
            dead,
            target,
        } => retry(&store, deliveries, dead, target).await?,
    };
    store.close().await;
    Ok(code)
}

async fn list(
    store: &Store,
    status: Option<String>,
    target: Option<String>,
    limit: i64,
    body: bool,
) -> anyhow::Result<ExitCode> {
    if let Some(s) = &status
        && !STATUSES.contains(&s.as_str())
    {
        bail!(
            "unknown status {s:?}; expected one of {}",
            STATUSES.join(", ")
        );
    }
    let rows = store
        .list_deliveries(target.as_deref(), status.as_deref(), None, limit)
        .await?;
    println!(
        "{:>8}  {:<9}  {:>8}  {:<16}  {:<26}  {:<28}  {:<28}  created",
        "#", "status", "attempts", "target", "event", "booking", "notification id"
    );
    for d in &rows {
        let status = if d.in_flight { "sending" } else { &d.status };
        println!(
            "{:>8}  {:<9}  {:>8}  {:<16}  {:<26}  {:<28}  {:<28}  {}",
            d.id,
            status,
            d.attempts,
            d.target,
            d.event,
            d.booking_id.as_deref().unwrap_or("-"),
            d.notification_id,
            d.created_at.format("%Y-%m-%d %H:%M:%S")
        );
        if d.status == "pending" && d.attempts > 0 && !d.in_flight {
            let at = DateTime::from_timestamp_millis(d.next_attempt_at)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            println!("{:>8}  next attempt {at}", "");
        }
        if let Some(error) = &d.last_error {
            println!("{:>8}  last answer: {error}", "");
        }
        if body {
            println!("{:>8}  body: {}", "", d.payload);
        }
    }
    if rows.is_empty() {
        println!("(no notifications)");
    }
    Ok(ExitCode::SUCCESS)
}

async fn retry(
    store: &Store,
    deliveries: Vec<String>,
    dead: bool,
    target: Option<String>,
) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now().timestamp_millis();
    if let Some(target) = &target {
        let circuit = store.circuit(target).await?;
        store.reset_circuit(target).await?;
        if circuit.state.as_str() != "closed" {
            println!(
                "target {target}: circuit was {}, now closed",
                circuit.state.as_str()
            );
        }
    }
    let mut requeued = store
        .retry_deliveries(RetrySelection::Ids(&deliveries), now)
        .await?;
    let missing = deliveries.len() - requeued.len();
    if dead {
        requeued.extend(
            store
                .retry_deliveries(
                    RetrySelection::Dead {
                        target: target.as_deref(),
                    },
                    now,
                )
                .await?,
        );
    }
    let total = requeued.len();
    for (n, id) in requeued.iter().enumerate() {
        println!("[{}/{total}] #{id} queued", n + 1);
    }
    if total == 0 {
        println!("nothing to retry");
    } else {
        println!("{total} notification(s) queued; the running payhook sends them within seconds");
    }
    Ok(if missing > 0 {
        eprintln!("{missing} of the given notifications were not found or already delivered");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
