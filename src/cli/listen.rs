//! `payhook listen --forward-to URL`: webhooks on a laptop without a tunnel. It follows a running
//! payhook's event stream (`GET /admin/api/events/stream`, the admin API's URL and token as the
//! other admin commands take them) and posts each stored event's exact body to the local URL,
//! signed with a local secret in its source's own scheme, as `stripe listen --forward-to` does.
//! It reconnects with backoff and resumes after the last event it forwarded, so none is lost or
//! sent twice; `--replay-from` starts earlier.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use clap::Args;

use super::admin_client::{AdminArgs, AdminClient, query_string};
use crate::admin_types::{EventRow, Page, StreamedEvent};
use crate::config::Settings;
use crate::domain::Secret;
use crate::domain::ids::random_token;
use crate::providers::{Scheme, Source};

#[derive(Debug, Args)]
pub struct ListenArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// Where to post each event, e.g. http://localhost:3000/api/webhooks/stripe.
    #[arg(long, value_name = "URL")]
    forward_to: reqwest::Url,
    /// The source whose events are forwarded, signed in its scheme: `stripe` or a `[[sources]]`
    /// name of this configuration.
    #[arg(long, default_value = "stripe")]
    source: String,
    /// Only events of this type.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// The local signing secret [default: a new one, printed at start].
    #[arg(long, env = "PAYHOOK_LISTEN_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Start with the events stored from this row number, or received from this time (RFC 3339,
    /// or a duration back from now such as 2h) [default: the events stored from now on].
    #[arg(long, value_name = "ROW|TIME")]
    replay_from: Option<String>,
}

/// Where the stream starts.
#[derive(Debug, PartialEq, Eq)]
enum From {
    Row(i64),
    Time(i64),
}

fn parse_replay_from(text: &str) -> Result<From, String> {
    let text = text.trim();
    if let Ok(row) = text.parse::<i64>() {
        return if row >= 1 {
            Ok(From::Row(row))
        } else {
            Err("--replay-from: a row number starts at 1".into())
        };
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(From::Time(time.timestamp()));
    }
    crate::config::parse_duration("--replay-from", text)
        .map(|ago| From::Time(chrono::Utc::now().timestamp() - ago.as_secs() as i64))
        .map_err(|_| {
            format!(
                "--replay-from {text:?}: a row number, an RFC 3339 time or a duration back from now (2h)"
            )
        })
}

/// The configured `source` signing with `secret` instead of its own secrets.
fn local_source(source: &Source, secret: &Secret) -> anyhow::Result<Source> {
    let secrets = vec![secret.clone()];
    let scheme = match &source.scheme {
        Scheme::Stripe { tolerance, .. } => Scheme::Stripe {
            secrets,
            tolerance: *tolerance,
        },
        Scheme::Hmac {
            scheme, tolerance, ..
        } => Scheme::Hmac {
            scheme: scheme.clone(),
            secrets,
            tolerance: *tolerance,
        },
        Scheme::SharedSecret { header, .. } => Scheme::SharedSecret {
            header: header.clone(),
            secrets,
        },
        Scheme::Timestamped {
            layout, tolerance, ..
        } => Scheme::Timestamped {
            layout,
            secrets,
            tolerance: *tolerance,
        },
        Scheme::FormHmac { layout, .. } => Scheme::FormHmac { layout, secrets },
        Scheme::SecretDigest { layout, .. } => Scheme::SecretDigest { layout, secrets },
        Scheme::MercadoPago { tolerance, .. } => Scheme::MercadoPago {
            secrets,
            tolerance: *tolerance,
        },
        // Nothing of theirs is a shared secret: sent as they are.
        Scheme::Unsigned | Scheme::PayPal => source.scheme.clone(),
        other => bail!(
            "payhook listen cannot sign {} ({}) events with a local secret",
            source.name,
            other.kind()
        ),
    };
    Ok(Source {
        scheme,
        ..source.clone()
    })
}

pub async fn run(settings: Settings, args: ListenArgs) -> anyhow::Result<ExitCode> {
    let sources = settings.webhook_sources();
    let configured = sources.get(&args.source).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown source {:?}; configured: {}",
            args.source,
            sources.names().join(", ")
        )
    })?;
    let stripe_kind = matches!(configured.scheme, Scheme::Stripe { .. });
    let secret = Secret::new(match &args.secret {
        Some(s) => s.clone(),
        None if stripe_kind => format!("whsec_{}", random_token(32)),
        None => random_token(32),
    });
    let signer = local_source(configured, &secret)?;
    let api = AdminClient::new(&settings, &args.admin)?;
    let replay = args
        .replay_from
        .as_deref()
        .map(parse_replay_from)
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut after = match replay {
        None => None,
        Some(From::Row(row)) => Some(row - 1),
        Some(From::Time(at)) => {
            // After the newest event received before that time.
            let until = chrono::DateTime::from_timestamp(at, 0)
                .unwrap_or_default()
                .to_rfc3339();
            let qs = query_string(&[("until", &until), ("limit", "1")]);
            let page: Page<EventRow> = api.get(&format!("/admin/api/events?{qs}")).await?;
            Some(page.data.first().map_or(0, |e| e.id))
        }
    };
    if args.secret.is_none() {
        println!(
            "Ready! Your local webhook signing secret is {} (forwarding {} events to {})",
            secret.expose(),
            args.source,
            args.forward_to
        );
    } else {
        println!(
            "Ready! Forwarding {} events to {}",
            args.source, args.forward_to
        );
    }
    let http = crate::net::client_builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut backoff = BACKOFF_FIRST;
    loop {
        let mut params = vec![("source", args.source.clone())];
        if let Some(a) = after {
            params.push(("after", a.to_string()));
        }
        if let Some(t) = &args.event_type {
            params.push(("type", t.clone()));
        }
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let path = format!("/admin/api/events/stream?{}", query_string(&pairs));
        let ended = match api.open_stream(&path).await {
            Ok(response) => {
                backoff = BACKOFF_FIRST;
                follow(response, &mut after, &http, &args.forward_to, &signer).await
            }
            // payhook answered and refused (the token, a parameter): trying again changes nothing.
            Err(e) if e.downcast_ref::<super::admin_client::Refused>().is_some() => return Err(e),
            Err(e) => Err(e),
        };
        let why = match ended {
            Ok(()) => "the stream ended".to_string(),
            Err(e) => format!("{e:#}"),
        };
        println!(
            "Disconnected ({why}); reconnecting in {} ms after row {}",
            backoff.as_millis(),
            after.map_or("(none yet)".into(), |a| a.to_string())
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Reads the stream's messages and forwards each event, moving `after` past it.
async fn follow(
    mut response: reqwest::Response,
    after: &mut Option<i64>,
    http: &reqwest::Client,
    forward_to: &reqwest::Url,
    signer: &Source,
) -> anyhow::Result<()> {
    let mut buffer: Vec<u8> = Vec::new();
    let mut message = Message::default();
    while let Some(chunk) = response.chunk().await.context("reading the stream")? {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if !line.is_empty() {
                message.add(line);
                continue;
            }
            let done = std::mem::take(&mut message);
            match done.event.as_deref() {
                Some("ready") => {
                    let ready: serde_json::Value =
                        serde_json::from_str(&done.data).unwrap_or_default();
                    if let Some(n) = ready["after"].as_i64() {
                        *after = Some(n);
                        println!("Connected: forwarding the events stored after row {n}");
                    }
                }
                Some("webhook") => {
                    let event: StreamedEvent = serde_json::from_str(&done.data)
                        .context("an event of the stream is not what this payhook reads")?;
                    forward(http, forward_to, signer, &event).await;
                    *after = Some(event.id);
                }
                Some("error") => bail!("payhook said: {}", done.data),
                _ => {}
            }
        }
    }
    Ok(())
}

/// One SSE message's fields.
#[derive(Default)]
struct Message {
    event: Option<String>,
    data: String,
}

impl Message {
    fn add(&mut self, line: &str) {
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
    }
}

/// Posts the event's stored body, signed now, and says how it went; the local app's failure is
/// reported, not retried (as `stripe listen` does).
async fn forward(
    http: &reqwest::Client,
    forward_to: &reqwest::Url,
    signer: &Source,
    event: &StreamedEvent,
) {
    let label = format!(
        "row {} {} {} [{}]",
        event.id, event.event_type, event.event_id, event.received_at
    );
    if event.pruned {
        println!("{label} skipped: retention pruned its body");
        return;
    }
    let Ok(body) = base64::engine::general_purpose::STANDARD.decode(&event.body_base64) else {
        println!("{label} skipped: its body is not base64");
        return;
    };
    let (headers, body) = signer.sign_request(body, chrono::Utc::now().timestamp());
    let mut request = http.post(forward_to.clone()).header(
        "content-type",
        event.content_type.as_deref().unwrap_or("application/json"),
    );
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let started = Instant::now();
    match request.body(body).send().await {
        Ok(answer) => println!(
            "{label} -> {} in {} ms",
            answer.status().as_u16(),
            started.elapsed().as_millis()
        ),
        Err(e) => println!(
            "{label} -> failed in {} ms: {}",
            started.elapsed().as_millis(),
            crate::net::describe(&e)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_from_takes_a_row_a_time_or_a_duration_back() {
        assert_eq!(parse_replay_from("42"), Ok(From::Row(42)));
        assert_eq!(
            parse_replay_from("2026-11-20T10:00:00Z"),
            Ok(From::Time(1_795_168_800))
        );
        let now = chrono::Utc::now().timestamp();
        let Ok(From::Time(t)) = parse_replay_from("2h") else {
            panic!("a duration")
        };
        assert!((now - 7200 - t).abs() <= 2);
        assert!(parse_replay_from("0").is_err());
        assert!(parse_replay_from("yesterday").is_err());
    }

    #[test]
    fn the_local_signer_signs_in_the_sources_scheme_with_the_local_secret_only() {
        let configured = Source::new(
            "stripe",
            Scheme::Stripe {
                secrets: vec![Secret::new("whsec_of_the_deployed_payhook")],
                tolerance: Duration::from_secs(300),
            },
        );
        let local = Secret::new("whsec_of_the_laptop");
        let signer = local_source(&configured, &local).unwrap();
        let now = chrono::Utc::now().timestamp();
        let (headers, body) = signer.sign_request(br#"{"id":"evt_1"}"#.to_vec(), now);
        assert_eq!(
            body, br#"{"id":"evt_1"}"#,
            "the body is forwarded as stored"
        );
        let header = headers
            .iter()
            .find(|(n, _)| n == "stripe-signature")
            .map(|(_, v)| v.as_str());
        let verify = |secret: &str| {
            crate::providers::stripe::verify(
                header,
                &body,
                &[Secret::new(secret)],
                Duration::from_secs(300),
                now,
            )
        };
        assert!(verify("whsec_of_the_laptop").is_ok());
        assert!(verify("whsec_of_the_deployed_payhook").is_err());
        // Nothing of an unsigned source's is secret: it goes as it is.
        let unsigned = Source::new("momo", Scheme::Unsigned);
        assert!(local_source(&unsigned, &local).is_ok());
    }

    #[test]
    fn sse_fields_make_a_message() {
        let mut m = Message::default();
        for line in [
            ": keep-alive",
            "event: webhook",
            "id: 7",
            "data: {\"a\":",
            "data: 1}",
        ] {
            m.add(line);
        }
        assert_eq!(m.event.as_deref(), Some("webhook"));
        assert_eq!(m.data, "{\"a\":\n1}");
    }
}
