//! `payhook demo`: payhook on its embedded defaults with the sandbox provider, the example
//! booking service running beside it as the `booking-service` target, and a page to try a
//! payment end to end.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

use crate::app::Payhook;
use crate::booking_service::{self, BookingService};
use crate::config::{BOOKING_SERVICE_TARGET, Settings, booking_service_target};
use crate::domain::Secret;
use crate::domain::ids::random_token;

/// The demo's own store, unless DATABASE_URL names one: its test payments never show up in the
/// `payhook serve` of the same directory.
pub const DEMO_DATABASE_URL: &str = "sqlite://payhook-demo.db";

pub async fn run(mut settings: Settings, booking_listen: SocketAddr) -> anyhow::Result<ExitCode> {
    // The demo never takes real money, whatever the environment says.
    settings.stripe.secret_key = None;
    settings.stripe.sandbox = true;
    settings.demo = true;
    if settings.database_url == Settings::defaults().database_url {
        settings.database_url = DEMO_DATABASE_URL.into();
    }

    let listener = tokio::net::TcpListener::bind(booking_listen)
        .await
        .with_context(|| format!("binding the example booking service on {booking_listen}"))?;
    let booking_url = format!("http://{}", listener.local_addr()?);
    let token = Secret::new(random_token(24));
    let service = BookingService::new(Some(token.expose().to_string()), true);
    tokio::spawn(booking_service::serve(listener, service));
    settings
        .targets
        .retain(|t| t.name != BOOKING_SERVICE_TARGET);
    settings
        .targets
        .push(booking_service_target(&booking_url, Some(&token))?);

    let database_url = settings.database_url.clone();
    let payhook = Payhook::start(settings).await?;
    println!(
        "payhook demo: sandbox provider, {} store",
        payhook.store.backend()
    );
    println!("example booking service: {booking_url} (target {BOOKING_SERVICE_TARGET})");
    println!("public listener: http://{}", payhook.public_addr);
    println!("store: {}", crate::app::redact_url(&database_url));
    println!("dashboard: http://{}/", payhook.admin_addr);
    println!();
    println!("  open {}/demo", payhook.public_url);
    println!();
    println!("create a booking payment, pay (or decline) on the sandbox page, and watch the");
    println!("return page confirm the payment and the booking. Ctrl-C stops.");
    if let Some(secret) = &payhook.generated_secret {
        // The demo's store is not the one `payhook trigger` looks in by default: say where.
        println!();
        println!(
            "  or send an event: payhook trigger payment_intent.succeeded --url http://{}/webhooks/stripe --secret {}",
            payhook.public_addr,
            secret.expose()
        );
    }
    payhook.run_until(super::serve::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
