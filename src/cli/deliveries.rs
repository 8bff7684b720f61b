//! `payhook deliveries list|retry`: the outbox from the terminal, through the admin API of the
//! running payhook. A retry puts notifications back in line, due now, and wakes its dispatcher:
//! the given ones one by one, or a selection as a job on the running payhook, followed to its end
//! (or only counted, with `--dry-run`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::admin_client::{AdminArgs, AdminClient, refused_with, segment};
use super::bulk;
use super::output::{Progress, Table, cell, print_json, when};
use crate::admin_types::{DeliveryRow, Retried, TargetReset};
use crate::config::Settings;
use crate::domain::status::DeliveryStatus;

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    #[command(flatten)]
    admin: AdminArgs,
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
        limit: usize,
        /// Show each notification's body too.
        #[arg(long)]
        body: bool,
    },
    /// Send notifications again with a fresh retry schedule: the given ones, or a selection (by
    /// status, target, booking, event, time), which the running payhook retries in the
    /// background while this shows its progress. With --target, also re-enables that target if
    /// a 410 disabled it (closes its circuit); --target alone retries its dead notifications.
    #[command(after_help = "Examples:
  payhook deliveries retry 17 ntf_8f3k2l
  payhook deliveries retry --dead --target booking-service
  payhook deliveries retry --since 2h --booking booking-123 --dry-run
  payhook deliveries retry --event evt_1Q2w3E --status pending")]
    Retry {
        /// Notification numbers (first column of `list`) or ids (ntf_...).
        #[arg(required_unless_present_any = ["target", "dead", "status", "booking", "event", "since", "until", "dry_run"])]
        deliveries: Vec<String>,
        /// Select every dead notification (the same as --status dead).
        #[arg(long, conflicts_with = "status")]
        dead: bool,
        /// Select notifications in this status: dead (default) or pending (sent now instead of
        /// at their next attempt).
        #[arg(long)]
        status: Option<String>,
        /// Only this target's notifications; re-enables it if a 410 disabled it.
        #[arg(long)]
        target: Option<String>,
        /// Select notifications about this booking.
        #[arg(long)]
        booking: Option<String>,
        /// Select notifications caused by this event (its number or provider id).
        #[arg(long)]
        event: Option<String>,
        /// The source of --event's provider id, when two sources hold it.
        #[arg(long, requires = "event")]
        source: Option<String>,
        /// Select notifications created since: a duration before now (2h, 30m, 7d) or an RFC
        /// 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Select notifications created before: a duration before now or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Print what would be retried (the count and the first --show); change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Notifications a dry run prints.
        #[arg(long, default_value_t = 20)]
        show: usize,
    },
}

/// A `deliveries retry` selection (the target narrows it; alone, it selects the target's dead
/// notifications and re-enables the target).
struct Selection {
    dead: bool,
    status: Option<String>,
    booking: Option<String>,
    event: Option<String>,
    source: Option<String>,
    since: Option<String>,
    until: Option<String>,
    dry_run: bool,
    show: usize,
}

impl Selection {
    fn is_set(&self) -> bool {
        self.dead
            || self.dry_run
            || [
                &self.status,
                &self.booking,
                &self.event,
                &self.since,
                &self.until,
            ]
            .iter()
            .any(|v| v.is_some())
    }
}

pub async fn run(settings: Settings, args: DeliveriesArgs) -> anyhow::Result<ExitCode> {
    let api = AdminClient::new(&settings, &args.admin)?;
    let json = args.admin.json;
    match args.command {
        DeliveriesCommand::List {
            status,
            target,
            limit,
            body,
        } => {
            let query = [("status", status.as_deref()), ("target", target.as_deref())];
            // --json prints the API's rows as it wrote them.
            if json {
                let rows: Vec<Value> = api.list("/admin/api/deliveries", &query, limit).await?;
                print_json(&rows);
            } else {
                print_deliveries(
                    &api.list("/admin/api/deliveries", &query, limit).await?,
                    body,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DeliveriesCommand::Retry {
            deliveries,
            dead,
            status,
            target,
            booking,
            event,
            source,
            since,
            until,
            dry_run,
            show,
        } => {
            // `--target NAME` alone: that target's dead notifications (and the target
            // re-enabled), which is what an operator back from a target's outage means.
            let dead = dead || (deliveries.is_empty() && target.is_some() && status.is_none());
            let selection = Selection {
                dead,
                status,
                booking,
                event,
                source,
                since,
                until,
                dry_run,
                show,
            };
            if selection.is_set() && !deliveries.is_empty() {
                anyhow::bail!(
                    "give notifications or a selection (--dead, --status, --booking, --event, \
                     --since, --until), not both"
                );
            }
            retry(&api, deliveries, selection, target, json).await
        }
    }
}

fn print_deliveries(rows: &[DeliveryRow], body: bool) {
    let mut table = Table::new(&[
        ">#",
        "status",
        ">attempts",
        "target",
        "event",
        "booking",
        "notification id",
        "created",
    ]);
    for d in rows {
        let status = if d.in_flight {
            "sending".to_string()
        } else {
            d.status.to_string()
        };
        table.row(vec![
            d.id.to_string(),
            status,
            d.attempts.to_string(),
            d.target.clone(),
            d.event.clone(),
            cell(d.booking_id.as_deref()),
            d.notification_id.clone(),
            when(Some(&d.created_at)),
        ]);
        if let Some(held) = &d.held {
            table.note(format!("held: {held}"));
        } else if d.status == DeliveryStatus::Pending && d.attempts > 0 && !d.in_flight {
            table.note(format!(
                "next attempt {}",
                when(d.next_attempt_at.as_deref())
            ));
        }
        if let Some(error) = &d.last_error {
            table.note(format!("last answer: {error}"));
        }
        if body {
            table.note(format!("body: {}", d.payload));
        }
    }
    table.print("(no notifications)");
}

async fn retry(
    api: &AdminClient,
    deliveries: Vec<String>,
    selection: Selection,
    target: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let route = "/admin/api/deliveries/retry";
    let status = if selection.dead {
        Some("dead".to_string())
    } else {
        selection.status.clone()
    };
    let params = [
        ("target", target.clone()),
        ("status", status),
        ("booking", selection.booking.clone()),
        ("event", selection.event.clone()),
        ("source", selection.source.clone()),
        ("since", selection.since.clone()),
        ("until", selection.until.clone()),
    ];
    if selection.dry_run {
        let path = bulk::path(route, &params, Some(selection.show));
        return bulk::dry_run(api, &path, "notification(s)", json, |rows| {
            print_deliveries(rows, false)
        })
        .await;
    }
    let mut said = serde_json::Map::new();
    if let Some(target) = &target {
        let reset: TargetReset = api
            .post(&format!("/admin/api/targets/{}/reset", segment(target)))
            .await?;
        if !json && reset.circuit_was != "closed" {
            println!(
                "target {target}: circuit was {}, now closed",
                reset.circuit_was
            );
        }
        said.insert("target".into(), json!(reset));
    }
    if selection.is_set() {
        let job = bulk::follow(api, &bulk::path(route, &params, None), "retried").await?;
        if !json {
            return Ok(bulk::report(&job, "notification(s)", false));
        }
        said.insert("job".into(), json!(job));
        print_json(&Value::Object(said));
        return Ok(bulk::exit_code(&job));
    }
    let mut progress = Progress::new("retried", deliveries.len());
    let mut retried = Vec::new();
    let mut missing = Vec::new();
    for id in &deliveries {
        match api
            .post::<Retried>(&format!("/admin/api/deliveries/{}/retry", segment(id)))
            .await
        {
            Ok(answer) => retried.extend(answer.retried),
            // Gone meanwhile: said. Delivered, or overtaken by a later one: said why.
            Err(e) if refused_with(&e, "delivery_not_found") => missing.push(id.clone()),
            Err(e) if refused_with(&e, "already_delivered") || refused_with(&e, "superseded") => {
                eprintln!("not retried: {id}: {e}");
                missing.push(id.clone());
            }
            Err(e) => return Err(e),
        }
        progress.tick();
    }
    if json {
        said.insert("retried".into(), json!(retried));
        said.insert("not_found".into(), json!(missing));
        print_json(&Value::Object(said));
    } else if retried.is_empty() {
        println!("nothing to retry");
    } else {
        println!(
            "{} notification(s) queued; the running payhook sends them now",
            retried.len()
        );
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("not found or already delivered: {}", missing.join(", "));
        ExitCode::FAILURE
    })
}
