//! `payhook explain KEY`: why a booking or payment is in its state, from the admin API of the
//! running payhook. What needs a person first, then one line of summary, the payments, and the
//! timeline: each event with the fact it established, the status after it and the rule that
//! decided it, and each notification it caused with every attempt.

use std::process::ExitCode;

use clap::Args;

use super::admin_client::{AdminArgs, AdminClient, query_string, refused_with, segment};
use super::output::{cell, print_json, when};
use crate::config::Settings;
use crate::explain::{Explanation, NotificationStep};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// A booking id, payment intent (pi_...), checkout session (cs_...), charge (ch_...),
    /// provider event id (evt_...) or event number.
    key: String,
    /// The source of a provider event id, when several sources could have it.
    #[arg(long)]
    source: Option<String>,
}

pub async fn run(settings: Settings, args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let api = AdminClient::new(&settings, &args.admin)?;
    let mut path = format!("/admin/api/explain/{}", segment(&args.key));
    if let Some(source) = &args.source {
        path = format!("{path}?{}", query_string(&[("source", source)]));
    }
    let explanation: Explanation = match api.get(&path).await {
        Ok(e) => e,
        Err(e) if refused_with(&e, "not_found") => {
            eprintln!("payhook: {e:#}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e),
    };
    if args.admin.json {
        print_json(&explanation);
    } else {
        print!("{}", render(&explanation));
    }
    Ok(ExitCode::SUCCESS)
}

/// The explanation as the terminal shows it.
pub fn render(x: &Explanation) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    if !x.attention.is_empty() {
        line("NEEDS ATTENTION".into());
        for a in &x.attention {
            line(format!("  ! {}", a.what));
            line(format!("    what to do: {}", a.todo));
        }
        line(String::new());
    }
    line(x.summary.clone());
    line(String::new());
    if !x.payments.is_empty() {
        line("PAYMENTS".into());
        for p in &x.payments {
            line(format!(
                "  #{} {} {}{}{}  {}{}",
                p.id,
                p.status,
                cell(p.amount.as_deref()),
                p.refunded
                    .as_ref()
                    .map(|r| format!(", {r} refunded"))
                    .unwrap_or_default(),
                if p.speaks_for_booking {
                    " (speaks for the booking)"
                } else {
                    ""
                },
                [&p.payment_intent_id, &p.checkout_session_id, &p.charge_id]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
                if p.attention.is_empty() {
                    String::new()
                } else {
                    format!(
                        "  attention: {}",
                        p.attention
                            .iter()
                            .map(|a| a.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
        }
        line(String::new());
    }
    if !x.booking_told.is_empty() {
        line(format!(
            "BOOKING SERVICE TOLD: {}",
            x.booking_told
                .iter()
                .map(|t| format!("{} ({})", t.status, t.delivery.as_str()))
                .collect::<Vec<_>>()
                .join(" → ")
        ));
        line(String::new());
    }
    line("TIMELINE (provider time)".into());
    for t in &x.timeline {
        if let Some(e) = &t.event {
            line(format!(
                "  {}  {} {}  [{}]{}",
                when(Some(&e.occurred_at)),
                e.event_type,
                e.event_id,
                e.number
                    .map(|n| format!("event {n}"))
                    .unwrap_or_else(|| "event row gone".into()),
                e.received_at
                    .as_deref()
                    .map(|r| format!("  received {}", when(Some(r))))
                    .unwrap_or_default()
            ));
            if e.out_of_order {
                line("      arrived out of order".into());
            }
            line(format!("      verified: {}", e.verification));
        }
        if let Some(fact) = &t.fact {
            line(format!("      fact: {fact}"));
        }
        if let Some(status) = t.status_after {
            line(format!("      → {status}"));
        }
        if let Some(rule) = &t.rule {
            line(format!("      rule: {rule}"));
        }
        for n in &t.notifications {
            notification(&mut line, n);
        }
    }
    out
}

fn notification(line: &mut impl FnMut(String), n: &NotificationStep) {
    line(format!(
        "      notified {} `{}`: {} ({} attempt{}){}",
        n.target,
        n.event,
        n.status.as_str(),
        n.attempts.len(),
        if n.attempts.len() == 1 { "" } else { "s" },
        n.next_attempt_at
            .as_deref()
            .map(|at| format!(", next attempt {}", when(Some(at))))
            .unwrap_or_default()
    ));
    for a in &n.attempts {
        line(format!(
            "        #{} {}  {}  {} ms{}",
            a.attempt,
            when(Some(&a.at)),
            a.answer.as_deref().unwrap_or("-"),
            a.latency_ms,
            a.next_attempt_at
                .as_deref()
                .map(|at| format!("  retry at {}", when(Some(at))))
                .unwrap_or_default()
        ));
    }
}
