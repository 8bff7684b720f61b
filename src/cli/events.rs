//! `payhook events list|show|replay`: the inbox from the terminal, through the admin API of the
//! running payhook. A replay puts events back in line and waits for the running payhook to apply
//! them, printing each outcome.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::admin_client::{AdminArgs, AdminClient};
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
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One event: its processing state, headers (signatures redacted) and exact payload.
    Show {
        /// The event's number (first column of `list`) or its provider id (evt_...).
        event: String,
        /// The source of a provider id, when several sources could have it.
        #[arg(long)]
        source: Option<String>,
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
        /// The source of the provider ids given, when several sources could have them.
        #[arg(long)]
        source: Option<String>,
        /// How long to wait for the running payhook to apply them.
        #[arg(long, default_value = "60s", value_parser = parse_wait)]
        wait: Duration,
    },
}

pub async fn run(settings: Settings, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let api = AdminClient::new(&settings, &args.admin)?;
    let json = args.admin.json;
    match args.command {
        EventsCommand::List {
            status,
            source,
            event_type,
            limit,
        } => {
            let query = [
                ("status", status.as_deref()),
                ("source", source.as_deref()),
                ("type", event_type.as_deref()),
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
            if json {
                print_json(&find::<Value>(&api, &event, source.as_deref()).await?);
            } else {
                print_event(&find(&api, &event, source.as_deref()).await?);
            }
            Ok(ExitCode::SUCCESS)
        }
        EventsCommand::Replay {
            events,
            failed,
            source,
            wait,
        } => replay(&api, events, failed, source.as_deref(), wait, json).await,
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

/// An event, by its number or its provider id (of `source`, or of any source when it is unique),
/// as `GET /admin/api/events/{id}` answers it.
async fn find<T: DeserializeOwned>(
    api: &AdminClient,
    event: &str,
    source: Option<&str>,
) -> anyhow::Result<T> {
    if event.parse::<i64>().is_ok() {
        return api.get(&format!("/admin/api/events/{event}")).await;
    }
    let query = [("event_id", Some(event)), ("source", source)];
    let found: Vec<EventRow> = api.list("/admin/api/events", &query, 2).await?;
    let number = match found.as_slice() {
        [one] => one.id,
        [] => bail!(
            "no stored event {event:?}{}",
            source.map(|s| format!(" (source {s})")).unwrap_or_default()
        ),
        _ => bail!("several sources have an event {event:?}; say which with --source"),
    };
    api.get(&format!("/admin/api/events/{number}")).await
}

async fn replay(
    api: &AdminClient,
    events: Vec<String>,
    failed: bool,
    source: Option<&str>,
    wait: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut ids = Vec::new();
    for event in &events {
        ids.push(find::<EventRow>(api, event, source).await?.id);
    }
    if failed {
        let query = [("status", Some("failed")), ("source", source)];
        let listed: Vec<EventRow> = api.list("/admin/api/events", &query, usize::MAX).await?;
        ids.extend(listed.iter().map(|e| e.id));
    }
    let total = ids.len();
    if total == 0 {
        if json {
            print_json(&json!([]));
        } else {
            println!("nothing to replay");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut progress = Progress::new("requeued", total);
    for id in &ids {
        let _: Requeued = api.post(&format!("/admin/api/events/{id}/replay")).await?;
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
