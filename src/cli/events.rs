//! `payhook events list|show|replay`: the inbox from the terminal, through the admin API of the
//! running payhook. A replay puts events back in line and waits for the running payhook to apply
//! them, printing each outcome.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::admin_client::{AdminArgs, AdminClient, Progress, Table, cell, print_json, when};
use crate::config::Settings;

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
            let events = api.list("/admin/api/events", &query, limit).await?;
            if json {
                print_json(&Value::Array(events));
            } else {
                print_events(&events);
            }
            Ok(ExitCode::SUCCESS)
        }
        EventsCommand::Show { event, source } => {
            let e = find(&api, &event, source.as_deref()).await?;
            if json {
                print_json(&e);
            } else {
                print_event(&e);
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

fn print_events(events: &[Value]) {
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
            cell(&e["id"]),
            cell(&e["status"]),
            cell(&e["attempts"]),
            cell(&e["source"]),
            cell(&e["type"]),
            cell(&e["booking_id"]),
            cell(&e["event_id"]),
            when(&e["received_at"]),
        ]);
        if let Some(error) = e["last_error"].as_str() {
            table.note(format!("error: {error}"));
        }
    }
    table.print("(no events)");
}

fn print_event(e: &Value) {
    println!(
        "event     #{} {} ({})",
        e["id"],
        cell(&e["event_id"]),
        cell(&e["source"])
    );
    println!("type      {}", cell(&e["type"]));
    if let Some(booking) = e["booking_id"].as_str() {
        println!("booking   {booking}");
    }
    println!(
        "status    {} after {} attempt(s)",
        cell(&e["status"]),
        e["attempts"]
    );
    if let Some(error) = e["last_error"].as_str() {
        println!("error     {error}");
    }
    println!("received  {}", cell(&e["received_at"]));
    if let Some(headers) = e["headers"].as_object() {
        println!("headers");
        for (name, value) in headers {
            println!("  {name}: {}", cell(value));
        }
    }
    println!("payload   {}", cell(&e["body"]));
}

/// An event, by its number or its provider id (of `source`, or of any source when it is unique).
async fn find(api: &AdminClient, event: &str, source: Option<&str>) -> anyhow::Result<Value> {
    if event.parse::<i64>().is_ok() {
        return api.get(&format!("/admin/api/events/{event}")).await;
    }
    let query = [("event_id", Some(event)), ("source", source)];
    let found = api.list("/admin/api/events", &query, 2).await?;
    let number = match found.as_slice() {
        [one] => one["id"].clone(),
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
        ids.push(find(api, event, source).await?["id"].clone());
    }
    if failed {
        let query = [("status", Some("failed")), ("source", source)];
        let listed = api.list("/admin/api/events", &query, usize::MAX).await?;
        ids.extend(listed.iter().map(|e| e["id"].clone()));
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
        api.post(&format!("/admin/api/events/{id}/replay")).await?;
        progress.tick();
    }
    // The running payhook applies them in order; wait for each to settle.
    let deadline = Instant::now() + wait;
    let mut outcomes = Vec::new();
    let mut unapplied = 0;
    for (n, id) in ids.iter().enumerate() {
        let e = loop {
            let e = api.get(&format!("/admin/api/events/{id}")).await?;
            if e["status"] != "received" || Instant::now() > deadline {
                break e;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        let status = cell(&e["status"]);
        if !matches!(status.as_str(), "processed" | "ignored") {
            unapplied += 1;
        }
        if json {
            outcomes.push(json!({"id": e["id"], "event_id": e["event_id"], "status": status, "error": e["last_error"]}));
        } else {
            let said = match (status.as_str(), e["last_error"].as_str()) {
                ("received", _) => format!(
                    "still waiting after {}s: is payhook applying events?",
                    wait.as_secs()
                ),
                (_, Some(error)) if status != "processed" => format!("{status}: {error}"),
                _ => status.clone(),
            };
            println!("[{}/{total}] #{id} {} {said}", n + 1, cell(&e["event_id"]));
        }
    }
    if json {
        print_json(&Value::Array(outcomes));
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
