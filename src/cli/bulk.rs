//! What `events replay` and `deliveries retry` share for a selection: a dry run printed as a
//! count and the first rows, or a job on the running payhook followed until it ends, its progress
//! on stderr (Ctrl-C cancels it: what was done stays done).

use std::process::ExitCode;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::admin_client::{AdminClient, query_string, segment};
use super::output::{Progress, print_json};
use crate::admin_types::{DryRun, Job, JobSelection, JobState};

/// The query of a bulk route: the set parameters, then `dry_run` and `sample` when asked.
pub fn path(route: &str, params: &[(&str, Option<String>)], dry_run: Option<usize>) -> String {
    let mut pairs: Vec<(&str, String)> = params
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
        .collect();
    if let Some(show) = dry_run {
        pairs.push(("dry_run", "true".into()));
        pairs.push(("sample", show.min(500).to_string()));
    }
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    format!("{route}?{}", query_string(&refs))
}

/// A dry run: the count and the selection, the rows (printed by `rows`), and how many more.
pub async fn dry_run<T: DeserializeOwned + serde::Serialize>(
    api: &AdminClient,
    path: &str,
    what: &str,
    json: bool,
    rows: impl Fn(&[T]),
) -> anyhow::Result<ExitCode> {
    let preview: DryRun<T> = api.post(path).await?;
    if json {
        print_json(&preview);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "dry run: {} {what} would be {} ({}); nothing changed",
        preview.total,
        if what.starts_with("event") {
            "replayed"
        } else {
            "retried"
        },
        describe(&preview.selection)
    );
    if !preview.sample.is_empty() {
        rows(&preview.sample);
    }
    let more = preview.total - preview.sample.len() as i64;
    if more > 0 {
        println!("and {more} more");
    }
    Ok(ExitCode::SUCCESS)
}

/// The selection in a line: `status failed, source stripe, since ...`.
pub fn describe(s: &JobSelection) -> String {
    let mut parts = vec![format!("status {}", s.status)];
    for (name, value) in [
        ("source", &s.source),
        ("type", &s.event_type),
        ("target", &s.target),
        ("booking", &s.booking),
        ("event", &s.event),
        ("since", &s.since),
        ("until", &s.until),
    ] {
        if let Some(v) = value {
            parts.push(format!("{name} {v}"));
        }
    }
    parts.join(", ")
}

/// Starts the job and follows it to its end; the job as it ended.
pub async fn follow(api: &AdminClient, path: &str, label: &'static str) -> anyhow::Result<Job> {
    let mut job: Job = api.post(path).await?;
    let mut progress = Progress::new(label, job.total.max(0) as usize);
    let show = format!("/admin/api/jobs/{}", segment(&job.id));
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        progress.set(job.done.max(0) as usize);
        if job.state != JobState::Running {
            return Ok(job);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                job = api.get(&show).await?;
            }
            _ = &mut interrupted => {
                eprintln!("interrupted: cancelling job {}", job.id);
                job = api.post(&format!("{show}/cancel")).await?;
            }
        }
    }
}

/// The job's outcome in a line (or its JSON); failure unless it finished.
pub fn report(job: &Job, what: &str, json: bool) -> ExitCode {
    if json {
        print_json(job);
    } else {
        let said = match job.state {
            JobState::Finished => "finished",
            JobState::Cancelled => "cancelled",
            JobState::Failed => "failed",
            JobState::Running => "running",
        };
        println!(
            "job {} {said}: {} of {} {what} requeued ({})",
            job.id,
            job.requeued,
            job.done,
            describe(&job.selection)
        );
        if job.done > job.requeued {
            println!(
                "{} had moved on meanwhile and were left alone",
                job.done - job.requeued
            );
        }
        if let Some(error) = &job.error {
            eprintln!("error: {error}; what was done stays done");
        }
    }
    exit_code(job)
}

/// Success when the job went through its whole selection.
pub fn exit_code(job: &Job) -> ExitCode {
    if job.state == JobState::Finished {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
