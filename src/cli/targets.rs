//! `payhook targets list|enable|disable`: the notification targets and their circuits, through
//! the admin API of the running payhook. A disabled target's notifications are kept and go, in
//! order, once it is enabled.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::admin_client::{AdminArgs, AdminClient, query_string, segment};
use super::output::{Table, cell, print_json, when};
use crate::admin_types::{TargetList, TargetReset};
use crate::config::Settings;

#[derive(Debug, Args)]
pub struct TargetsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(subcommand)]
    command: TargetsCommand,
}

#[derive(Debug, Subcommand)]
enum TargetsCommand {
    /// Each target, its circuit (closed, open, disabled), why, and an open one's next probe.
    List,
    /// Send to the target again (after a disable, a 410, or to end an open circuit's wait): its
    /// held notifications go now, in order.
    Enable { name: String },
    /// Send nothing to the target until it is enabled; its notifications are kept. Survives a
    /// restart.
    Disable {
        name: String,
        /// Why, for the other operators and the target.disabled event.
        #[arg(long)]
        reason: Option<String>,
        /// Who [default: $USER].
        #[arg(long)]
        by: Option<String>,
    },
}

pub async fn run(settings: Settings, args: TargetsArgs) -> anyhow::Result<ExitCode> {
    let api = AdminClient::new(&settings, &args.admin)?;
    let json = args.admin.json;
    match args.command {
        TargetsCommand::List => {
            let list: TargetList = api.get("/admin/api/targets").await?;
            if json {
                print_json(&list.data);
            } else {
                let mut table = Table::new(&["target", "kind", "circuit", "next probe", "url"]);
                for t in &list.data {
                    table.row(vec![
                        t.name.clone(),
                        t.kind.clone(),
                        t.circuit.clone(),
                        when(t.next_probe_at.as_deref()),
                        t.url.clone(),
                    ]);
                    if t.circuit != "closed" || t.reason.is_some() {
                        table.note(format!("reason: {}", cell(t.reason.as_deref())));
                    }
                }
                table.print("(no targets)");
            }
        }
        TargetsCommand::Enable { name } => {
            let done: TargetReset = api
                .post(&format!("/admin/api/targets/{}/enable", segment(&name)))
                .await?;
            if json {
                print_json(&done);
            } else {
                println!(
                    "target {name}: was {}, now enabled; {} held notification(s) sent now",
                    done.circuit_was, done.released
                );
            }
        }
        TargetsCommand::Disable { name, reason, by } => {
            let by = by.or_else(|| std::env::var("USER").ok());
            let mut query = Vec::new();
            if let Some(reason) = &reason {
                query.push(("reason", reason.as_str()));
            }
            if let Some(by) = &by {
                query.push(("by", by.as_str()));
            }
            let done: TargetReset = api
                .post(&format!(
                    "/admin/api/targets/{}/disable?{}",
                    segment(&name),
                    query_string(&query)
                ))
                .await?;
            if json {
                print_json(&done);
            } else {
                println!(
                    "target {name}: disabled; its notifications are kept until `payhook targets enable {name}`"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
