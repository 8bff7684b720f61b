//! `payhook events list|show|replay`: the inbox from the terminal, through the admin API of the
//! running payhook. A replay of given events puts them back in line and waits for the running
//! payhook to apply them, printing each outcome; a replay of a selection is a job on the running
//! payhook, followed to its end (or only counted, with `--dry-run`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::admin_client::{AdminArgs, AdminClient, query_string, segment};
use super::bulk;
use super::output::{Progress, Table, cell, print_json, when};
use crate::admin_types::{EventDetail, EventRow, Requeued};
use crate::config::Settings;
use crate::domain::status::EventStatus;

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    admin: AdminArgs,
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
        /// Only events of this source (`stripe` or a `[[sources]]` name).
        #[arg(long)]
        source: Option<String>,
        /// Only events of this type, e.g. payment_intent.succeeded.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only events received since: a duration before now (2h, 30m, 7d) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only events received before: a duration before now or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// How many events, newest first (1 or more).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// One event: its processing state, headers (signatures redacted) and exact payload.
    Show {
        /// The event's number (first column of `list`) or its provider id (evt_...).
        event: String,
        /// The source of a provider id, when several sources could have it.
        #[arg(long)]
        source: Option<String>,
    },
    /// Apply events to the ledger again, now: the given ones, or a selection (by status, source,
    /// type, booking, time), which the running payhook replays in the background while this
    /// shows its progress. A processed event adds nothing new when applied again: facts are
    /// kept once.
    #[command(after_help = "Examples:
  payhook events replay 42 evt_1Q2w3E
  payhook events replay --since 2h --status failed --dry-run
  payhook events replay --failed --source stripe --type payment_intent.succeeded
  payhook events replay --booking booking-123 --status processed")]
    Replay {
        /// Event numbers or provider ids.
        #[arg(
            required_unless_present_any = SELECTION,
            conflicts_with_all = SELECTION
        )]
        events: Vec<String>,
        /// Select every event left `failed` (the same as --status failed).
        #[arg(long, conflicts_with = "status")]
        failed: bool,
        /// Select events in this status: failed (default), retrying, rejected, processed or ignored.
        #[arg(long)]
        status: Option<String>,
        /// The source of the provider ids given; with a selection, only this source's events.
        #[arg(long)]
        source: Option<String>,
        /// Select events of this type, e.g. payment_intent.succeeded.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Select events whose fact belongs to this booking's payments.
        #[arg(long)]
        booking: Option<String>,
        /// Select events received since: a duration before now (2h, 30m, 7d) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Select events received before: a duration before now or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Print what would be replayed (the count and the first --show events); change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Events a dry run prints.
        #[arg(long, default_value_t = 20)]
        show: usize,
        /// How long to wait for the running payhook to apply the given events.
        #[arg(long, default_value = "60s", value_parser = parse_wait)]
        wait: Duration,
    },
}

/// The flags that make `events replay` a selection rather than a list of events.
const SELECTION: [&str; 7] = [
    "failed",
    "status",
    "event_type",
    "booking",
    "since",
    "until",
    "dry_run",
];

pub async fn run(settings: Settings, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let api = AdminClient::new(&settings, &args.admin)?;
    let json = args.admin.json;
    match args.command {
        EventsCommand::List {
            status,
            source,
            event_type,
            since,
            until,
            limit,
        } => {
            let limit = limit as usize;
            let query = [
                ("status", status.as_deref()),
                ("source", source.as_deref()),
                ("type", event_type.as_deref()),
                ("since", since.as_deref()),
                ("until", until.as_deref()),
            ];
            // --json prints the API's rows as it wrote them.
            if json {
                let rows: Vec<Value> = api.list("/admin/api/events", &query, limit).await?;
                print_json(&rows);
            } else {
                print_events(&api.list("/admin/api/events", &query, limit).await?);
            }
            Ok(ExitCode::SUCCESS)
        }
        EventsCommand::Show { event, source } => {
            let path = event_path(&event, "", source.as_deref());
            if json {
                print_json(&api.get::<Value>(&path).await?);
            } else {
                print_event(&api.get(&path).await?);
            }
            Ok(ExitCode::SUCCESS)
        }
        EventsCommand::Replay {
            events,
            failed,
            status,
            source,
            event_type,
            booking,
            since,
            until,
            dry_run,
            show,
            wait,
        } => {
            if !events.is_empty() {
                return replay(&api, events, source.as_deref(), wait, json).await;
            }
            let status = if failed {
                Some("failed".into())
            } else {
                status
            };
            let params = [
                ("status", status),
                ("source", source),
                ("type", event_type),
                ("booking", booking),
                ("since", since),
                ("until", until),
            ];
            let route = "/admin/api/events/replay";
            if dry_run {
                let path = bulk::path(route, &params, Some(show));
                return bulk::dry_run(&api, &path, "event(s)", json, print_events).await;
            }
            let job = bulk::follow(&api, &bulk::path(route, &params, None), "requeued").await?;
            Ok(bulk::report(&job, "event(s)", json))
        }
    }
}

fn print_events(events: &[EventRow]) {
    let mut table = Table::new(&[
        ">#",
        "status",
        ">attempts",
        "source",
        "type",
        "booking",
        "event id",
        "received",
    ]);
    for e in events {
        table.row(vec![
            e.id.to_string(),
            e.status.to_string(),
            e.attempts.to_string(),
            e.source.clone(),
            e.event_type.clone(),
            cell(e.booking_id.as_deref()),
            e.event_id.clone(),
            when(Some(&e.received_at)),
        ]);
        if let Some(error) = &e.last_error {
            table.note(format!("error: {error}"));
        }
    }
    table.print("(no events)");
}

fn print_event(detail: &EventDetail) {
    let e = &detail.event;
    println!("event     #{} {} ({})", e.id, e.event_id, e.source);
    println!("type      {}", e.event_type);
    if let Some(booking) = &e.booking_id {
        println!("booking   {booking}");
    }
    println!("status    {} after {} attempt(s)", e.status, e.attempts);
    if let Some(error) = &e.last_error {
        println!("error     {error}");
    }
    println!("received  {}", e.received_at);
    if let Some(headers) = detail.headers.as_object() {
        println!("headers");
        for (name, value) in headers {
            match value {
                Value::String(text) => println!("  {name}: {text}"),
                Value::Null => println!("  {name}: -"),
                other => println!("  {name}: {other}"),
            }
        }
    }
    println!("payload   {}", detail.body);
}

/// The admin API's path of an event (by number or provider id), then `tail`, then its source.
fn event_path(event: &str, tail: &str, source: Option<&str>) -> String {
    let query = source
        .map(|s| format!("?{}", query_string(&[("source", s)])))
        .unwrap_or_default();
    format!("/admin/api/events/{}{tail}{query}", segment(event))
}

/// The given events back in line, one request each, then each outcome as the running payhook
/// applies it.
async fn replay(
    api: &AdminClient,
    events: Vec<String>,
    source: Option<&str>,
    wait: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let total = events.len();
    let mut progress = Progress::new("requeued", total);
    let mut ids = Vec::new();
    for event in &events {
        let requeued: Requeued = api.post(&event_path(event, "/replay", source)).await?;
        ids.push(requeued.id);
        progress.tick();
    }
    // The running payhook applies them in order; wait for each to settle.
    let deadline = Instant::now() + wait;
    let mut outcomes = Vec::new();
    let mut unapplied = 0;
    for (n, id) in ids.iter().enumerate() {
        let e = loop {
            let e: EventRow = api.get(&format!("/admin/api/events/{id}")).await?;
            if e.status != EventStatus::Received || Instant::now() > deadline {
                break e;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let status = e.status;
        if !matches!(status, EventStatus::Processed | EventStatus::Ignored) {
            unapplied += 1;
        }
        if json {
            outcomes.push(json!({"id": e.id, "event_id": e.event_id, "status": status, "error": e.last_error}));
        } else {
            let said = match (status, &e.last_error) {
                (EventStatus::Received, _) => format!(
                    "still waiting after {}s: is payhook applying events?",
                    wait.as_secs()
                ),
                (_, Some(error)) if status != EventStatus::Processed => {
                    format!("{status}: {error}")
                }
                _ => status.to_string(),
            };
            println!("[{}/{total}] #{id} {} {said}", n + 1, e.event_id);
        }
    }
    if json {
        print_json(&outcomes);
    }
    Ok(if unapplied == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn parse_wait(text: &str) -> Result<Duration, String> {
    crate::config::parse_duration("--wait", text).map_err(|e| e.to_string())
}
