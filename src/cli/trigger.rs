//! `payhook trigger <event-type>`: like `stripe trigger`, but signed with payhook's secret and sent to
//! payhook, so a user can try the whole pipeline without a Stripe account.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::app::{self, SANDBOX_SECRET_SETTING};
use crate::config::{Secret, Settings};
use crate::providers::stripe;
use crate::providers::stripe_events::{self, TRIGGER_TYPES};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// Event type, e.g. payment_intent.succeeded (see --help for all).
    #[arg(value_name = "EVENT_TYPE", help = format!("Event type: {}", TRIGGER_TYPES.join(", ")))]
    event_type: String,
    /// Set a field of the event's object, e.g. --add metadata.bookingId=booking-123 (repeatable).
    #[arg(long = "add", value_name = "PATH=VALUE")]
    add: Vec<String>,
    /// Where to send it [default: PAYHOOK_PUBLIC_URL/webhooks/SOURCE].
    #[arg(long)]
    url: Option<String>,
    /// Signing secret [default: STRIPE_WEBHOOK_SECRET, else the sandbox secret kept in the store].
    #[arg(long, env = "PAYHOOK_TRIGGER_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Webhook source to sign for.
    #[arg(long, default_value = "stripe")]
    source: String,
    /// Print the event instead of sending it.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(settings: Settings, args: TriggerArgs) -> anyhow::Result<ExitCode> {
    if args.source != "stripe" {
        bail!(
            "unknown source {:?}: only stripe is configured",
            args.source
        );
    }
    let now = chrono::Utc::now().timestamp();
    let event = stripe_events::build_event(&args.event_type, &args.add, now)?;
    let body = serde_json::to_vec_pretty(&event)?;
    if args.dry_run {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let secret = signing_secret(&settings, args.secret).await?;
    let url = args
        .url
        .unwrap_or_else(|| format!("{}/webhooks/{}", settings.public_url, args.source));
    let signature = stripe::sign(&body, &secret, now);

    println!(
        "-> POST {url}  {} {}",
        event["type"].as_str().unwrap_or(""),
        event["id"].as_str().unwrap_or("")
    );
    let response = crate::net::client_builder()
        .build()?
        .post(&url)
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .header(
            "user-agent",
            concat!("payhook-trigger/", env!("CARGO_PKG_VERSION")),
        )
        .body(body)
        .send()
        .await
        .with_context(|| format!("sending to {url} (is payhook serve running?)"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    println!("<- {status} {text}");
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--secret`, else the first configured secret, else the sandbox secret `payhook serve` generated.
pub(super) async fn signing_secret(
    settings: &Settings,
    explicit: Option<String>,
) -> anyhow::Result<Secret> {
    if let Some(secret) = explicit {
        return Ok(Secret::new(secret));
    }
    if let Some(secret) = settings.stripe.webhook_secrets.first() {
        return Ok(secret.clone());
    }
    let missing = || {
        anyhow::anyhow!(
            "no webhook secret: pass --secret whsec_..., set STRIPE_WEBHOOK_SECRET, or start `payhook serve` once in this directory"
        )
    };
    if let Some(path) = settings.database_url.strip_prefix("sqlite://") {
        // Do not create an empty database just to look for the secret.
        if !std::path::Path::new(path.split('?').next().unwrap_or(path)).exists() {
            return Err(missing());
        }
    }
    let store = Store::connect(&settings.database_url, settings.sqlite_sync)
        .await
        .with_context(|| {
            format!(
                "opening {} to find the sandbox secret",
                app::redact_url(&settings.database_url)
            )
        })?;
    let secret = store.setting(SANDBOX_SECRET_SETTING).await.ok().flatten();
    store.close().await;
    secret.map(Secret::new).ok_or_else(missing)
}
