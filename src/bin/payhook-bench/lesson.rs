//! The lesson's handler (`bench/lesson`: Express, stripe-node's `constructEvent`, a PostgreSQL
//! table of processed event ids, the booking service called before the 200), what teams write
//! instead of payhook: loaded with the same signed events, for the comparison.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::suite::{BENCH_SECRET, BookingService, CpuMeter, listening, load};
use crate::targets::Lesson;

/// Its end-to-end throughput under `conns` keep-alive connections for `length` (a closed loop:
/// its 200 comes after the booking service's answer) and its CPU per event, node's plus
/// PostgreSQL's processes'. Skipped, with a line saying why, without PostgreSQL, node or the
/// handler's node_modules.
pub async fn run(
    dir: &Path,
    database_url: Option<&str>,
    conns: usize,
    length: Duration,
    body_bytes: usize,
    booking: &BookingService,
) -> anyhow::Result<Lesson> {
    let skipped = |why: String| {
        println!("lesson's handler: skipped, {why}");
        Ok(Lesson::Skipped)
    };
    let Some(database_url) = database_url else {
        return skipped("it stores in PostgreSQL and no --postgres was given".into());
    };
    if !dir.join("node_modules").is_dir() {
        return skipped(format!(
            "{} has no node_modules (npm ci there)",
            dir.display()
        ));
    }
    let node = Command::new("node").arg("--version").output().await;
    if !node.is_ok_and(|o| o.status.success()) {
        return skipped("node is not installed".into());
    }
    let mut child = Command::new("node")
        .arg(dir.join("server.mjs"))
        .env("PORT", "0")
        .env("DATABASE_URL", database_url)
        .env("STRIPE_WEBHOOK_SECRET", BENCH_SECRET)
        .env("BOOKING_SERVICE_URL", &booking.url)
        .env("INTERNAL_SERVICE_TOKEN", "bench-token")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let (addr, _) = listening(&mut child, false).await?;
    let cpu = CpuMeter {
        server: child.id(),
        postgres: true,
    };
    let puts = booking.puts();
    let before = cpu.read();
    let result = load(addr, conns, length, body_bytes, 0).await?;
    let used = cpu.read().since(&before);
    let puts = booking.puts() - puts;
    let per_event = |t: Option<Duration>| {
        t.filter(|_| result.acked > 0).map_or("-".to_string(), |t| {
            format!("{:.0}", t.as_secs_f64() * 1e6 / result.acked as f64)
        })
    };
    println!(
        "\nThe lesson's handler (Express + stripe-node, processed ids in PostgreSQL, the booking service called before the 200), closed loop:\n"
    );
    println!(
        "{:<9} {:>6} {:>10} {:>9} {:>9} {:>7} {:>9} {:>7} {:>7} {:>7}",
        "target",
        "conns",
        "events/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "PUTs",
        "node µs",
        "db µs",
        "µs/ev"
    );
    println!(
        "{:<9} {conns:>6} {:>10.0} {:>9.2} {:>9.2} {:>7} {puts:>9} {:>7} {:>7} {:>7}",
        "lesson",
        result.rate(),
        result.percentile_ms(0.5),
        result.percentile_ms(0.99),
        result.errors,
        per_event(used.server),
        per_event(used.postgres),
        per_event(used.server_and_postgres()),
    );
    println!(
        "events/s: 200s a second, each after its PUT; µs/ev: CPU of node and PostgreSQL's processes per event"
    );
    Ok(Lesson::Measured {
        conns,
        rate: result.rate(),
    })
}
