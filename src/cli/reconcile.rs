//! `payhook reconcile --since <time>`: asks the running payhook (admin API) to fetch the events
//! whose delivery failed that Stripe lists from that time (every event with `--all`), oldest
//! first, and store the ones it lacks, page by page, showing the progress.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::admin_client::{AdminArgs, AdminClient};
use super::output::{Status, print_json};
use crate::admin_types::ReconcilePage;
use crate::config::Settings;

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// From when: a duration back from now (`90m`, `2h`, `3d`), an RFC 3339 time, or unix seconds.
    /// Stripe keeps 30 days of events: an earlier time asks for those.
    #[arg(long, value_parser = parse_since)]
    since: i64,
    /// Only events of this type, e.g. payment_intent.succeeded.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Every event Stripe lists, not only those whose delivery failed: after restoring a backup,
    /// the events delivered since it are missing here although Stripe counts them delivered.
    #[arg(long)]
    all: bool,
}

/// Unix seconds from `90m` (ago), `2026-11-20T10:00:00Z` or `1795300000`.
fn parse_since(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp());
    }
    crate::config::parse_duration("--since", text)
        .map(|ago| chrono::Utc::now().timestamp() - ago.as_secs() as i64)
        .map_err(|_| {
            format!(
                "{text:?} is not a time: a duration back from now (2h), RFC 3339, or unix seconds"
            )
        })
}

pub async fn run(settings: Settings, args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let api = AdminClient::new(&settings, &args.admin)?;
    let mut query = vec![("since", args.since.to_string())];
    if let Some(t) = &args.event_type {
        query.push(("type", t.clone()));
    }
    if args.all {
        query.push(("all", "true".into()));
    }
    let (mut listed, mut stored, mut duplicates, mut pages) = (0, 0, 0, 0);
    let mut refused: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut skimmed = 0;
    let progress = Status::new();
    loop {
        let mut params = query.clone();
        if let Some(c) = &cursor {
            params.push(("cursor", c.clone()));
        }
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page: ReconcilePage = api
            .post(&format!(
                "/admin/api/reconcile?{}",
                super::admin_client::query_string(&pairs)
            ))
            .await?;
        pages += 1;
        listed += page.listed;
        stored += page.stored;
        duplicates += page.duplicates;
        refused.extend(page.refused);
        skimmed += page.skimmed;
        // Progress on stderr: reading Stripe's list back to its oldest event, then storing.
        progress.say(if listed == 0 && page.skimmed > 0 {
            format!("page {pages}: {skimmed} read back towards the oldest event")
        } else {
            format!(
                "page {pages}: {listed} listed, {stored} missing and now stored, {duplicates} already here"
            )
        });
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    progress.finish();
    // Stripe lists no older events than it keeps: the time asked is the time said.
    let since = args
        .since
        .max(chrono::Utc::now().timestamp() - crate::reconcile::RETENTION_SECS);
    let which = if args.all {
        "event(s)"
    } else {
        "event(s) whose delivery failed"
    };
    if args.admin.json {
        print_json(&json!({
            "pages": pages, "listed": listed, "stored": stored, "duplicates": duplicates,
            "refused": refused, "since": since, "only_undelivered": !args.all,
        }));
    } else {
        println!(
            "{listed} {which} listed by Stripe since {}: {stored} were missing and are stored \
             now, {duplicates} were already here",
            chrono::DateTime::from_timestamp(since, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        );
        for why in &refused {
            println!("refused: {why}");
        }
    }
    Ok(if refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_back_an_rfc3339_time_or_unix_seconds() {
        let now = chrono::Utc::now().timestamp();
        let ago = parse_since("90m").unwrap();
        assert!((now - 5400 - ago).abs() <= 2, "{ago}");
        assert_eq!(parse_since("2026-11-20T10:00:00Z").unwrap(), 1_795_168_800);
        assert_eq!(parse_since("1795140000").unwrap(), 1_795_140_000);
        assert!(parse_since("yesterday").unwrap_err().contains("not a time"));
    }
}
