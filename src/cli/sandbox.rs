//! `payhook sandbox refund|dispute`: what a Stripe dashboard would do to a sandbox payment, for
//! demos. The event goes to payhook's webhook route, signed, like the sandbox's own.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::app;
use crate::checkout::{Sandbox, WebhookSender};
use crate::config::Settings;

#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[command(subcommand)]
    command: SandboxCommand,
    /// payhook's webhook route [default: the running instance's /webhooks/stripe].
    #[arg(long, global = true)]
    url: Option<String>,
    /// A payment of `payhook demo`: its own store (payhook-demo.db) unless DATABASE_URL names one.
    #[arg(long, global = true)]
    demo: bool,
}

#[derive(Debug, Subcommand)]
enum SandboxCommand {
    /// Refund a paid sandbox payment: all of what is left, or --amount minor units.
    Refund {
        /// The payment: its pi_..., its cs_... or its booking id (the latest payment).
        payment: String,
        /// Minor units to refund (2000 is EUR 20.00) [default: all that is left].
        #[arg(long)]
        amount: Option<i64>,
    },
    /// Open a dispute on a paid sandbox payment.
    Dispute {
        /// The payment: its pi_..., its cs_... or its booking id (the latest payment).
        payment: String,
    },
}

pub async fn run(mut settings: Settings, args: SandboxArgs) -> anyhow::Result<ExitCode> {
    if args.demo && settings.database_url == Settings::defaults().database_url {
        settings.database_url = super::demo::DEMO_DATABASE_URL.into();
    }
    let secret = super::trigger::signing_secret(&settings).await?;
    let url = match args.url {
        Some(url) => url,
        None => format!(
            "{}/webhooks/stripe",
            super::trigger::running_url(&settings).await
        ),
    };
    let store = std::sync::Arc::new(app::open_store(&settings).await?);
    let sandbox = Sandbox::new(
        store.clone(),
        &settings.public_url,
        WebhookSender::new(url.clone(), secret),
    );
    let result = match &args.command {
        SandboxCommand::Refund { payment, amount } => sandbox.refund(payment, *amount).await,
        SandboxCommand::Dispute { payment } => sandbox.dispute(payment).await,
    };
    store.close().await;
    let event = result?;
    println!(
        "-> {url}: {} {} (stored by payhook)",
        event["type"].as_str().unwrap_or(""),
        event["id"].as_str().unwrap_or("")
    );
    Ok(ExitCode::SUCCESS)
}
