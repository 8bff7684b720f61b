//! `payhook serve` and `payhook migrate`.

use std::process::ExitCode;

use crate::app::{self, Payhook};
use crate::config::Settings;

pub async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let db = app::redact_url(&settings.database_url);
    let targets: Vec<String> = settings
        .targets
        .iter()
        .map(|t| {
            format!(
                "notifying target {}: {} at {}",
                t.name,
                t.kind.as_str(),
                app::redact_url(&t.url)
            )
        })
        .collect();
    let api_base = settings.stripe.api_base.clone();
    let payhook = Payhook::start(settings).await?;
    // Plain lines on stdout: what a person starting payhook needs, and what scripts parse.
    println!(
        "payhook {} ({} store at {db})",
        env!("CARGO_PKG_VERSION"),
        payhook.store.backend()
    );
    println!("public listener: http://{}", payhook.public_addr);
    println!("admin listener: http://{}", payhook.admin_addr);
    println!(
        "stripe webhooks: POST http://{}/webhooks/stripe",
        payhook.public_addr
    );
    for line in &targets {
        println!("{line}");
    }
    match payhook.provider.name() {
        "sandbox" => println!(
            "payment provider: sandbox (no STRIPE_SECRET_KEY); customers pay at {}/sandbox/checkout/<session>",
            payhook.public_url
        ),
        "none" => println!(
            "payment provider: none, webhooks only (set STRIPE_SECRET_KEY for checkout; the sandbox is off beside a real webhook secret, PAYHOOK_SANDBOX=true turns it on)"
        ),
        name => println!("payment provider: {name} ({})", api_base),
    }
    if let Some(secret) = &payhook.generated_secret {
        println!("sandbox mode: generated webhook secret {}", secret.expose());
        println!(
            "  (kept in the store; `payhook trigger <type>` finds it, or set STRIPE_WEBHOOK_SECRET)"
        );
    }
    println!("ready (Ctrl-C or SIGTERM drains and stops)");
    payhook.run_until(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn migrate(settings: Settings) -> anyhow::Result<ExitCode> {
    let store = app::open_store(&settings).await?;
    println!(
        "migrated the {} store at {}",
        store.backend(),
        app::redact_url(&settings.database_url)
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or Ctrl-C.
pub(super) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
