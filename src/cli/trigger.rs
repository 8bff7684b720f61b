//! `payhook trigger <event-type>`: like `stripe trigger`, but signed with payhook's secret and sent to
//! payhook, so a user can try the whole pipeline without a Stripe account.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::app::{self, SANDBOX_SECRET_SETTING};
use crate::config::Settings;
use crate::domain::Secret;
use crate::providers::stripe_events::{self, TRIGGER_TYPES};
use crate::providers::{Scheme, stripe};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct TriggerArgs {
    /// Event type, e.g. payment_intent.succeeded (see --help for all).
    #[arg(value_name = "EVENT_TYPE", help = format!("Event type, required unless --body gives the payload; for Stripe sources: {}", TRIGGER_TYPES.join(", ")),
          required_unless_present = "body")]
    event_type: Option<String>,
    /// Send this payload (a file, or - for standard input) instead of building a Stripe event:
    /// what a source with a payload mapping receives.
    #[arg(long, value_name = "FILE")]
    body: Option<std::path::PathBuf>,
    /// Set a field of the event's object, e.g. --add metadata.bookingId=booking-123 (repeatable).
    #[arg(long = "add", value_name = "PATH=VALUE")]
    add: Vec<String>,
    /// Where to send it [default: the running instance's /webhooks/SOURCE].
    #[arg(long)]
    url: Option<String>,
    /// Signing secret of a Stripe source [default: the source's first secret; for `stripe`,
    /// STRIPE_WEBHOOK_SECRET, else the sandbox secret kept in the store]. Other sources sign with
    /// their first configured secret.
    #[arg(long, env = "PAYHOOK_TRIGGER_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Webhook source to sign for: `stripe` or a `[[sources]]` name.
    #[arg(long, default_value = "stripe")]
    source: String,
    /// Send the event as Stripe's thin event notification (`v2.core.event`, type `v1.TYPE`,
    /// the related object to fetch), as an event destination set to thin events does.
    #[arg(long)]
    thin: bool,
    /// Continue the story: the event is about the payment the last `payhook trigger` in this
    /// store sent (same payment intent, charge, session and booking). A refund, dispute,
    /// capture or cancellation does that by itself: it continues the payment last sent for the
    /// booking it names (--add metadata.bookingId=...), or the last payment when it names none.
    #[arg(long, conflicts_with = "new_payment")]
    same_payment: bool,
    /// A refund, dispute, capture or cancellation of a payment never sent before (new ids).
    #[arg(long)]
    new_payment: bool,
    /// Print the event instead of sending it.
    #[arg(long)]
    dry_run: bool,
    /// For a provider preset: the booking the payment is for [default: a new one].
    #[arg(long)]
    booking: Option<String>,
    /// For a provider preset: the provider's payment id [default: a new one].
    #[arg(long)]
    payment: Option<String>,
    /// For a provider preset: the amount, in the currency's minor unit.
    #[arg(long, default_value_t = 10_000)]
    amount: i64,
    /// For a provider preset: the currency [default: the provider's usual one].
    #[arg(long)]
    currency: Option<String>,
}

pub async fn run(settings: Settings, args: TriggerArgs) -> anyhow::Result<ExitCode> {
    let sources = settings.webhook_sources();
    let source = sources.get(&args.source).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown source {:?}; configured: {}",
            args.source,
            sources.names().join(", ")
        )
    })?;
    let stripe_kind = matches!(source.scheme, Scheme::Stripe { .. });
    let now = chrono::Utc::now().timestamp();
    if let (Some(preset), None) = (source.preset, &args.body) {
        return trigger_preset(&settings, source, preset, &args, now).await;
    }
    // The snapshot event sent, kept for the next run, and the payment it continued.
    let mut story: Option<serde_json::Value> = None;
    let mut continued = None;
    let body = match (&args.body, &args.event_type) {
        (Some(path), _) => read_body(path)?,
        (None, Some(event_type)) if stripe_kind => {
            let mut overrides = Vec::new();
            let named = stripe_events::named_booking(&args.add);
            let kept = if args.same_payment {
                Some(last_story(&settings, None).await.ok_or_else(|| {
                    anyhow::anyhow!(
                        "--same-payment: no payment to continue; send one first (payhook trigger payment_intent.succeeded)"
                    )
                })?)
            } else if stripe_events::follows_a_payment(event_type) && !args.new_payment {
                last_story(&settings, named.as_deref()).await
            } else {
                None
            };
            if let Some(story) = kept {
                overrides = story.overrides(event_type);
                continued = Some(story);
            }
            // What --add says wins over the story.
            overrides.extend(args.add.iter().cloned());
            let mut event = stripe_events::build_event(event_type, &overrides, now)?;
            story = Some(event.clone());
            if args.thin {
                event = stripe_events::thin_event(&event);
            }
            serde_json::to_vec_pretty(&event)?
        }
        (None, _) => bail!(
            "source {:?} does not take Stripe's events: give its payload with --body FILE",
            args.source
        ),
    };
    if args.dry_run {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let headers = if stripe_kind {
        let secret = match (&args.secret, &source.scheme) {
            (Some(explicit), _) => Secret::new(explicit.clone()),
            (None, Scheme::Stripe { secrets, .. }) if !secrets.is_empty() => secrets[0].clone(),
            _ => signing_secret(&settings).await?,
        };
        vec![(
            "stripe-signature".to_string(),
            stripe::sign(&body, &secret, now),
        )]
    } else {
        if args.secret.is_some() {
            bail!(
                "--secret is for Stripe sources; {:?} signs with its configured secrets",
                args.source
            );
        }
        source.sign(&body, now)
    };
    let url = match args.url {
        Some(url) => url,
        None => format!("{}/webhooks/{}", running_url(&settings).await, args.source),
    };
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let about = story
        .as_ref()
        .map(|e| {
            let s = stripe_events::Story::new().then(e);
            let booking = s.booking.as_deref().unwrap_or("none");
            format!("  (payment {}, booking {booking})", s.payment_intent)
        })
        .unwrap_or_default();
    println!(
        "-> POST {url}  {} {}{about}",
        event["type"]
            .as_str()
            .or(event["event"].as_str())
            .unwrap_or(""),
        event["id"].as_str().unwrap_or("")
    );
    let success = send(&url, "application/json", &headers, body).await?;
    if let (true, Some(event)) = (success, &story) {
        keep_story(&settings, event, continued).await;
    }
    Ok(if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Posts a signed request and prints the answer; true when it was a success.
async fn send(
    url: &str,
    content_type: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> anyhow::Result<bool> {
    let mut request = crate::net::client_builder()
        .build()?
        .post(url)
        .header("content-type", content_type);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request
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
    Ok(status.is_success())
}

/// A provider preset's notification, built and signed the way that provider does.
async fn trigger_preset(
    settings: &Settings,
    source: &crate::providers::Source,
    preset: &crate::providers::presets::Preset,
    args: &TriggerArgs,
    now: i64,
) -> anyhow::Result<ExitCode> {
    let event_type = args.event_type.as_deref().unwrap_or(preset.sample_types[0]);
    if !preset.sample_types.contains(&event_type) {
        bail!(
            "{} events payhook trigger sends: {}",
            preset.kind,
            preset.sample_types.join(", ")
        );
    }
    if args.secret.is_some()
        || args.thin
        || args.same_payment
        || args.new_payment
        || !args.add.is_empty()
    {
        bail!(
            "--secret, --thin, --same-payment, --new-payment and --add are for Stripe sources; {:?} signs with its configured secrets (give a whole payload with --body)",
            args.source
        );
    }
    let digits = || {
        use rand::RngExt;
        rand::rng()
            .random_range(100_000_000u64..999_999_999)
            .to_string()
    };
    let event_id = digits();
    let payment_id = args.payment.clone().unwrap_or_else(digits);
    let booking_id = args
        .booking
        .clone()
        .unwrap_or_else(|| format!("booking-{}", digits()));
    let currency = args
        .currency
        .clone()
        .unwrap_or_else(|| preset.sample_currency.to_string());
    let sample = (preset.sample)(&crate::providers::presets::Sample {
        event_type,
        event_id: &event_id,
        payment_id: &payment_id,
        booking_id: &booking_id,
        amount: args.amount,
        currency: &currency,
        now,
    })
    .map_err(anyhow::Error::msg)?;
    let (headers, body) = source.sign_request(sample.body, now);
    if args.dry_run {
        if let Some(query) = &sample.query {
            println!("?{query}");
        }
        for (name, value) in &headers {
            println!("{name}: {value}");
        }
        println!("\n{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let mut url = match &args.url {
        Some(url) => url.clone(),
        None => format!("{}/webhooks/{}", running_url(settings).await, args.source),
    };
    if let Some(query) = &sample.query {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(query);
    }
    let content_type = match source.mapping.as_ref().map(|m| m.format) {
        Some(
            crate::providers::mapping::Format::Form | crate::providers::mapping::Format::Braintree,
        ) => "application/x-www-form-urlencoded",
        _ => "application/json",
    };
    println!("-> POST {url}  {event_type} payment {payment_id} booking {booking_id}");
    Ok(if send(&url, content_type, &headers, body).await? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A payload to send as is: a file, or `-` for standard input.
fn read_body(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)?;
        return Ok(body);
    }
    std::fs::read(path).with_context(|| format!("reading --body {}", path.display()))
}

/// The settings where `trigger` keeps the payment it last sent, and the last payment of each
/// of the bookings it sent for lately.
const STORY_SETTING: &str = "trigger_story";
const STORIES_SETTING: &str = "trigger_stories";
/// Bookings whose last payment is kept.
const STORIES_KEPT: usize = 100;

/// The payment the last `payhook trigger` sent for `booking`, or the last one at all, if kept.
async fn last_story(settings: &Settings, booking: Option<&str>) -> Option<stripe_events::Story> {
    let store = existing_store(settings).await?;
    let (last, stories) = (
        store.setting(STORY_SETTING).await.ok().flatten(),
        store.setting(STORIES_SETTING).await.ok().flatten(),
    );
    store.close().await;
    match booking {
        None => serde_json::from_str(&last?).ok(),
        Some(booking) => {
            let stories: Vec<stripe_events::Story> = serde_json::from_str(&stories?).ok()?;
            stories
                .into_iter()
                .rev()
                .find(|s| s.booking.as_deref() == Some(booking))
        }
    }
}

/// Keeps the payment `event` is about (`continued`, or a new one) as the last one sent, and as
/// its booking's.
async fn keep_story(
    settings: &Settings,
    event: &serde_json::Value,
    continued: Option<stripe_events::Story>,
) {
    let Some(store) = existing_store(settings).await else {
        return;
    };
    // (Not `Story::default()`: that has no ids.)
    let story = match continued {
        Some(story) => story,
        None => stripe_events::Story::new(),
    }
    .then(event);
    let mut stories: Vec<stripe_events::Story> = store
        .setting(STORIES_SETTING)
        .await
        .ok()
        .flatten()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    if story.booking.is_some() {
        stories.retain(|s| s.booking != story.booking);
        stories.push(story.clone());
        let over = stories.len().saturating_sub(STORIES_KEPT);
        stories.drain(..over);
    }
    let texts = [
        (STORY_SETTING, serde_json::to_string(&story)),
        (STORIES_SETTING, serde_json::to_string(&stories)),
    ];
    for (setting, text) in texts {
        let text = text.expect("a story serializes");
        if let Err(e) = store.set_setting(setting, &text).await {
            tracing::debug!(error = %e, "the payment was not kept for the next trigger");
        }
    }
    store.close().await;
}

/// Where the payhook beside this command listens: `PAYHOOK_PUBLIC_URL` when set, else the URL the
/// running instance kept in the store (it may listen on another port than this environment
/// says), else the one derived from `PAYHOOK_LISTEN`.
pub(super) async fn running_url(settings: &Settings) -> String {
    if settings.public_url_set {
        return settings.public_url.clone();
    }
    let Some(store) = existing_store(settings).await else {
        return settings.public_url.clone();
    };
    let kept = store.setting(app::PUBLIC_URL_SETTING).await.ok().flatten();
    store.close().await;
    kept.unwrap_or_else(|| settings.public_url.clone())
}

/// The store, if it exists already.
async fn existing_store(settings: &Settings) -> Option<Store> {
    if !store_exists(settings) {
        return None;
    }
    Store::connect(&settings.database_url, settings.sqlite_sync)
        .await
        .ok()
}

/// False for a SQLite file that is not there: a command looking something up never creates an
/// empty store.
fn store_exists(settings: &Settings) -> bool {
    app::sqlite_file(&settings.database_url).is_none_or(|file| file.exists())
}

/// The `stripe` source's first configured secret, else the sandbox secret `payhook serve`
/// generated and kept in the store.
pub(super) async fn signing_secret(settings: &Settings) -> anyhow::Result<Secret> {
    if let Some(secret) = settings.stripe.webhook_secrets.first() {
        return Ok(secret.clone());
    }
    let missing = || {
        anyhow::anyhow!(
            "no webhook secret: pass --secret whsec_..., set STRIPE_WEBHOOK_SECRET, or start `payhook serve` once in this directory"
        )
    };
    if !store_exists(settings) {
        return Err(missing());
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
