//! `payhook deliveries list|retry`: the outbox from the terminal, through the admin API of the
//! running payhook. A retry puts notifications back in line, due now, and wakes its dispatcher.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::admin_client::{AdminArgs, AdminClient, refused_with, segment};
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
    /// Send notifications again with a fresh retry schedule: the given ones, or every dead one.
    /// With --target, also re-enables that target if a 410 disabled it (closes its circuit).
    Retry {
        /// Notification numbers (first column of `list`) or ids (ntf_...).
        #[arg(required_unless_present_any = ["dead", "target"])]
        deliveries: Vec<String>,
        /// Retry every dead notification (of --target, if given).
        #[arg(long)]
        dead: bool,
        /// Only this target's notifications; re-enables it if a 410 disabled it.
        #[arg(long)]
        target: Option<String>,
    },
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
            target,
        } => retry(&api, deliveries, dead, target, json).await,
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
    dead: bool,
    target: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
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
    let mut wanted: Vec<String> = deliveries.clone();
    if dead {
        let query = [("status", Some("dead")), ("target", target.as_deref())];
        let listed: Vec<DeliveryRow> = api
            .list("/admin/api/deliveries", &query, usize::MAX)
            .await?;
        wanted.extend(listed.iter().map(|d| d.id.to_string()));
    }
    let mut progress = Progress::new("retried", wanted.len());
    let mut retried = Vec::new();
    let mut missing = Vec::new();
    for id in &wanted {
        match api
            .post::<Retried>(&format!("/admin/api/deliveries/{}/retry", segment(id)))
            .await
        {
            Ok(answer) => retried.extend(answer.retried),
            // Gone or delivered meanwhile: said for the ones the user named, skipped otherwise.
            Err(e) if refused_with(&e, "delivery_not_found") => {
                if deliveries.contains(id) {
                    missing.push(id.clone());
                }
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
