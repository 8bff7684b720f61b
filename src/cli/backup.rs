//! `payhook backup FILE`: a consistent copy of a SQLite store, taken while payhook runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::app;
use crate::config::Settings;
use crate::store::{attach_inbox_of, copy_inbox, inbox_file as payhook_inbox_file};

/// Where the inbox's snapshot waits to be added to the backup: beside it, so on the same disk.
fn scratch_file(backup: &std::path::Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".inbox-partial");
    PathBuf::from(name)
}

/// Removes a scratch file however the backup ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The new file to write; it must not exist (a backup never overwrites).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

pub async fn run(settings: Settings, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let url = app::redact_url(&settings.database_url);
    let Some(store) = app::sqlite_file(&settings.database_url) else {
        if settings.database_url.starts_with("sqlite:") {
            bail!("DATABASE_URL ({url}) names no file to back up");
        }
        bail!(
            "DATABASE_URL ({url}) is PostgreSQL: back it up with pg_dump (docs/deployment.md, Backups)"
        );
    };
    if !store.is_file() {
        bail!(
            "DATABASE_URL ({url}): there is no store at {}",
            store.display()
        );
    }
    if args.file.exists() {
        bail!(
            "{} exists already: name a new file (a backup never overwrites)",
            args.file.display()
        );
    }
    let target = args
        .file
        .to_str()
        .with_context(|| format!("{}: the path is not UTF-8", args.file.display()))?;
    // VACUUM INTO reads one snapshot of a database: writers go on meanwhile (WAL), and the copy is
    // a plain database file, already compacted. The inbox's file is copied first: an event the
    // ledger has marked applied in that copy then has its ledger change in the store's (marks
    // follow the ledger's commits), and one it has not is applied again after a restore, which
    // changes nothing.
    let inbox = payhook_inbox_file(store);
    let inbox_copy = scratch_file(&args.file);
    let _remove = RemoveOnDrop(inbox_copy.clone());
    let options = SqliteConnectOptions::new()
        .filename(store)
        .busy_timeout(std::time::Duration::from_secs(10));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening the store {}", store.display()))?;
    let attached = inbox.is_file();
    if attached {
        attach_inbox_of(&mut conn, store)
            .await
            .with_context(|| format!("opening the inbox {}", inbox.display()))?;
        sqlx::query("VACUUM intake INTO ?")
            .bind(inbox_copy.to_string_lossy().into_owned())
            .execute(&mut conn)
            .await
            .with_context(|| format!("copying the inbox {}", inbox.display()))?;
    }
    sqlx::query("VACUUM main INTO ?")
        .bind(target)
        .execute(&mut conn)
        .await
        .with_context(|| format!("writing the backup {}", args.file.display()))?;
    conn.close().await.ok();
    // One file, that `serve` opens as it is (and moves the inbox out of, into its own).
    if attached {
        let mut copy =
            SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&args.file))
                .await
                .with_context(|| format!("reopening the backup {}", args.file.display()))?;
        sqlx::query("ATTACH DATABASE ? AS intake")
            .bind(inbox_copy.to_string_lossy().into_owned())
            .execute(&mut copy)
            .await?;
        let mut tx = copy.begin().await?;
        copy_inbox(&mut tx, "intake", "main")
            .await
            .with_context(|| format!("adding the inbox to the backup {}", args.file.display()))?;
        tx.commit().await?;
        copy.close().await.ok();
    }

    let copy = SqliteConnectOptions::new()
        .filename(&args.file)
        .read_only(true);
    let mut copy = SqliteConnection::connect_with(&copy)
        .await
        .with_context(|| format!("reading the backup {} back", args.file.display()))?;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut copy)
        .await?;
    if check != "ok" {
        bail!(
            "the backup {} failed its integrity check: {check}",
            args.file.display()
        );
    }
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events")
        .fetch_one(&mut copy)
        .await?;
    let payments: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments")
        .fetch_one(&mut copy)
        .await?;
    copy.close().await.ok();
    let bytes = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({bytes} bytes: {events} events, {payments} payments)",
        store.display(),
        args.file.display()
    );
    Ok(ExitCode::SUCCESS)
}
