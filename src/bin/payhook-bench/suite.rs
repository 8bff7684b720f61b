//! The benchmark suite: ingest throughput and latency of a real `payhook serve` (SQLite, and PostgreSQL when
//! given a server), next to a baseline measured in the same run: a minimal axum endpoint that only
//! answers 200. Each server is its own process; the load comes from N keep-alive connections here,
//! each sending uniquely identified, freshly signed ~1.5 KB events. Then end to end to a booking
//! service at steady rates, stepped up to the highest with bounded lag, the lesson's handler
//! ([`crate::lesson`]) on the same events, and the targets ([`crate::targets`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use payhook::domain::Secret;
use payhook::providers::stripe;

use crate::targets::{Highest, IngestRow, Report};

pub(crate) const BENCH_SECRET: &str = "whsec_payhook_bench_secret";

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent keep-alive connections, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    connections: Vec<usize>,
    /// Length of each run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Approximate size of each event body in bytes.
    #[arg(long, default_value_t = 1500)]
    body_bytes: usize,
    /// A PostgreSQL server to measure too (postgres://...); a scratch database is created and dropped.
    #[arg(long, env = "PAYHOOK_BENCH_POSTGRES", hide_env_values = true)]
    postgres: Option<String>,
    /// Leave SQLite out.
    #[arg(long)]
    no_sqlite: bool,
    /// Measure a payhook that is already running at this address (IP:PORT) instead of starting
    /// servers; it must accept STRIPE_WEBHOOK_SECRET=whsec_payhook_bench_secret.
    #[arg(long, value_name = "IP:PORT")]
    against: Option<SocketAddr>,
    /// Measure end to end instead: webhooks sent at a steady --rate, each confirming a booking;
    /// the time from sending the webhook to the booking service receiving its PUT.
    #[arg(long)]
    end_to_end: bool,
    /// Webhooks per second for --end-to-end, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "250,1000")]
    rate: Vec<u64>,
    /// The whole suite in one run: ingest on empty stores, end to end, then ingest and the admin
    /// queries again with --stored-events events of history in each store.
    #[arg(long, conflicts_with_all = ["end_to_end", "against"])]
    suite: bool,
    /// Events of history written into each store before the suite's last part (0 leaves it out).
    #[arg(long, default_value_t = 10_000_000)]
    stored_events: u64,
    /// End-to-end rates (webhooks/s) the suite steps through, each on a fresh server, until the
    /// lag is not bounded: the highest bounded rate is reported.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,2000,4000,6000,8000,10000,12000,16000,20000,24000,32000"
    )]
    steps: Vec<u64>,
    /// Keep-alive connections of the closed-loop load on the lesson's handler.
    #[arg(long, default_value_t = 32)]
    lesson_connections: usize,
    /// The lesson's handler: a directory with server.mjs and its node_modules.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/lesson"))]
    lesson: std::path::PathBuf,
}

pub(crate) struct RunResult {
    pub acked: u64,
    pub errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl RunResult {
    pub fn rate(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 * q) as usize).min(self.latencies_us.len() - 1);
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    println!(
        "payhook bench: {} s per run, ~{} B events, connections {:?}, {} cores",
        args.seconds,
        args.body_bytes,
        args.connections,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut report = Report::default();
    let failed = if args.end_to_end {
        end_to_end(&args, &mut report).await?
    } else if let Some(addr) = args.against {
        print_header(false);
        measure(
            &args,
            "running",
            addr,
            CpuMeter::default(),
            None,
            &mut report,
            None,
        )
        .await?
    } else if args.suite {
        suite(&args, &mut report).await?
    } else {
        ingest(&args, &mut report).await?
    };
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Ingest on fresh stores next to the baseline, then the storage alone and the processor alone
/// on each store, and each server's peak memory. Returns whether anything failed.
async fn ingest(args: &BenchArgs, report: &mut Report) -> anyhow::Result<bool> {
    print_header(false);
    let stores = Stores::create(args, "ingest").await?;
    let mut targets: Vec<(&'static str, Option<String>)> = vec![("baseline", None)];
    targets.extend(stores.urls.iter().map(|(n, u)| (*n, Some(u.clone()))));

    let mut failed = false;
    let mut peaks = Vec::new();
    for (name, database_url) in &targets {
        let server = spawn_server(database_url.as_deref(), &[]).await?;
        let cpu = server.cpu_meter(database_url.as_deref());
        failed |= measure(
            args,
            name,
            server.public,
            cpu,
            database_url.as_deref(),
            report,
            None,
        )
        .await?;
        peaks.push(server.peak(name));
        if let Some(mib) = server.peak_mib() {
            report.peak(name, mib);
        }
        drop(server);
        if let Some(url) = database_url {
            let length = Duration::from_secs(args.seconds);
            // The same events written straight through the store, no HTTP: what the storage allows.
            let cpu = own_cpu_meter(url);
            let before = cpu.read();
            let r = store_only(url, length, args.body_bytes).await?;
            print_rate(
                &format!("{name}*"),
                &r,
                report,
                cpu_per_event(&cpu, &before, &r),
            );
            // The ledger processor alone, applying those (the HTTP runs left nothing waiting).
            let before = cpu.read();
            let r = ledger_only(url, length).await?;
            print_rate(
                &format!("{name}+"),
                &r,
                report,
                cpu_per_event(&cpu, &before, &r),
            );
        }
    }
    println!(
        "µs/ev: CPU of the server (plus PostgreSQL's processes on PostgreSQL) from the start of the load until every acknowledged event was applied, per event; x bare: against the baseline's CPU per request at the same connections"
    );
    println!(
        "srv/db/gen µs: CPU during the load only, per event, of the server, PostgreSQL's processes and the load generator"
    );
    println!(
        "NAME* rows: store only, batches of {STORE_BATCH} events inserted directly without HTTP (the storage's own ceiling); in the srv µs column, CPU per event of the process inserting them (plus PostgreSQL's)"
    );
    println!(
        "NAME+ rows: the ledger processor alone, applying the events the NAME* row stored (one new payment each); srv µs as in the NAME* rows"
    );
    print_peaks(&peaks);
    stores.remove(args).await?;
    Ok(failed)
}

fn print_peaks(peaks: &[String]) {
    let peaks: Vec<&str> = peaks
        .iter()
        .map(String::as_str)
        .filter(|p| !p.is_empty())
        .collect();
    if !peaks.is_empty() {
        println!(
            "peak resident memory of each server over its runs (VmHWM): {}",
            peaks.join(", ")
        );
    }
}

/// The whole suite: ingest on empty stores, end to end at each rate, then on stores holding
/// `--stored-events` of history: the admin queries, and ingest again next to its empty-store
/// figure.
async fn suite(args: &BenchArgs, report: &mut Report) -> anyhow::Result<bool> {
    println!("\n## 1. Ingest on empty stores\n");
    let mut failed = ingest(args, report).await?;
    println!("\n## 2. End to end: webhook sent to the booking service receiving its PUT\n");
    failed |= end_to_end(args, report).await?;
    if args.stored_events > 0 {
        failed |= with_history(args, report).await?;
    }
    println!("\n## Targets\n");
    report.print();
    Ok(failed)
}

/// Section 3: on stores holding `--stored-events` of history, the admin queries, and ingest again
/// next to its empty-store figure.
async fn with_history(args: &BenchArgs, report: &mut Report) -> anyhow::Result<bool> {
    let mut failed = false;
    println!(
        "\n## 3. With {} events of history in the store\n",
        thousands(args.stored_events)
    );
    let stores = Stores::create(args, "history").await?;
    let mut peaks = Vec::new();
    for (name, url) in &stores.urls {
        {
            let store =
                payhook::store::Store::connect(url, payhook::domain::SqliteSync::Full).await?;
            store.migrate().await?;
            store.close().await;
        }
        let took = crate::fill::fill(url, args.stored_events, |done, total| {
            eprintln!("filling {name}: {done}/{total} rows");
        })
        .await?;
        println!(
            "{name}: {} events of history written in {:.0} s",
            thousands(args.stored_events),
            took.as_secs_f64()
        );
        let server = spawn_server(Some(url), &[("PAYHOOK_ADMIN_TOKEN", ADMIN_TOKEN)]).await?;
        failed |= admin_queries(url, &server, args.stored_events).await?;
        print_header(true);
        let label = format!("{name}+H");
        let cpu = server.cpu_meter(Some(url));
        failed |= measure(
            args,
            &label,
            server.public,
            cpu,
            Some(url),
            report,
            Some(name),
        )
        .await?;
        peaks.push(server.peak(&label));
        if let Some(mib) = server.peak_mib() {
            report.peak(&label, mib);
        }
    }
    println!(
        "NAME+H rows: ingest with the history in the store; x base and x bare are against section 1's baseline, x empty against section 1's row of the same store"
    );
    print_peaks(&peaks);
    stores.remove(args).await?;
    Ok(failed)
}

const ADMIN_TOKEN: &str = "payhook-bench-admin-token";

/// How long the admin API takes to answer, on a store holding `events` of history (filled by
/// [`crate::fill::fill`]): each query five times after a first, the median and the slowest. Returns
/// whether one failed.
async fn admin_queries(database_url: &str, server: &Server, events: u64) -> anyhow::Result<bool> {
    let admin = server
        .admin
        .context("the server printed no admin listener")?;
    // Things to look for that the history holds.
    let store =
        payhook::store::Store::connect(database_url, payhook::domain::SqliteSync::Full).await?;
    let middle = (events / 2).max(1) as i64;
    let known = store
        .event_by_id(middle)
        .await?
        .context("the history has no middle event")?;
    store.close().await;
    let day = chrono::Utc::now() - chrono::Duration::days(30);
    let window = format!(
        "since={}&until={}",
        day.format("%Y-%m-%dT%H:%M:%SZ"),
        (day + chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let booking = format!("booking-fill-{}", (events / 6).max(1));
    let queries = [
        ("latest events", "/admin/api/events".to_string()),
        (
            "events processed",
            "/admin/api/events?status=processed".into(),
        ),
        (
            "events failed (1 in 10k)",
            "/admin/api/events?status=failed".into(),
        ),
        (
            "events by type: refunds",
            "/admin/api/events?type=charge.refunded".into(),
        ),
        (
            "events by type: disputes (1 in 1k)",
            "/admin/api/events?type=charge.dispute.created".into(),
        ),
        (
            "events of one day, 30 days ago",
            format!("/admin/api/events?{window}"),
        ),
        (
            "disputes of that day",
            format!("/admin/api/events?type=charge.dispute.created&{window}"),
        ),
        (
            "event by provider id, no source",
            format!("/admin/api/events?event_id={}", known.event_id),
        ),
        (
            "a page half-way back (cursor)",
            format!("/admin/api/events?cursor={middle}"),
        ),
        ("one event", format!("/admin/api/events/{middle}")),
        (
            "payments of a booking",
            format!("/admin/api/payments?booking_id={booking}"),
        ),
        (
            "payments disputed (1 in 3k)",
            "/admin/api/payments?status=disputed".into(),
        ),
        (
            "notifications dead",
            "/admin/api/deliveries?status=dead".into(),
        ),
        ("overview (dashboard)", "/admin/api/overview".into()),
        ("metrics (Prometheus scrape)", "/metrics".into()),
    ];
    let client = payhook::net::client_builder().build()?;
    println!(
        "{:<38} {:>9} {:>9} {:>6}",
        "admin query", "median ms", "max ms", "rows"
    );
    let mut failed = false;
    for (label, path) in queries {
        let mut times = Vec::new();
        let mut rows = None;
        for _ in 0..6 {
            let started = Instant::now();
            let answer = client
                .get(format!("http://{admin}{path}"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await?;
            let status = answer.status();
            let body = answer.bytes().await?;
            times.push(started.elapsed());
            if !status.is_success() {
                println!(
                    "{label:<38} failed: {status} {}",
                    String::from_utf8_lossy(&body)
                );
                failed = true;
                break;
            }
            rows = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["data"].as_array().map(Vec::len));
        }
        if times.len() < 6 {
            continue;
        }
        // The first answer warms the connection and the statement cache.
        let mut timed = times.split_off(1);
        timed.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let median = ms(timed[timed.len() / 2]);
        println!(
            "{label:<38} {median:>9.2} {:>9.2} {:>6}{}",
            ms(timed[timed.len() - 1]),
            rows.map_or("-".to_string(), |n| n.to_string()),
            if median > 50.0 { "  over 50 ms" } else { "" }
        );
    }
    Ok(failed)
}

/// 10000000 as 10,000,000.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The most memory the process `pid` has held resident (Linux's `VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn print_header(with_empty: bool) {
    println!(
        "{:<11} {:>6} {:>10} {:>9} {:>9} {:>9} {:>7} {:>8}{} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "target",
        "conns",
        "events/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "errors",
        "x base",
        if with_empty { "  x empty" } else { "" },
        "srv µs",
        "db µs",
        "gen µs",
        "µs/ev",
        "x bare",
    );
}

/// Whose CPU time a run reads: the server under test's (when this benchmark started it), and
/// that of this machine's PostgreSQL processes (when the target stores in PostgreSQL); this
/// process's own is the load generator's.
#[derive(Clone, Copy, Default)]
pub(crate) struct CpuMeter {
    pub server: Option<u32>,
    pub postgres: bool,
}

/// CPU time used so far by each process a [`CpuMeter`] reads.
#[derive(Default)]
pub(crate) struct CpuUsed {
    pub server: Option<Duration>,
    pub postgres: Option<Duration>,
    generator: Option<Duration>,
    /// Each PostgreSQL process's own, so that a backend of another client exiting during a run
    /// takes only its own time away, not part of the run's.
    postgres_processes: HashMap<u32, Duration>,
}

impl CpuMeter {
    pub fn read(&self) -> CpuUsed {
        let postgres_processes = if self.postgres {
            postgres_cpu_times()
        } else {
            HashMap::new()
        };
        CpuUsed {
            server: self.server.and_then(cpu_time),
            postgres: (!postgres_processes.is_empty()).then(|| postgres_processes.values().sum()),
            generator: cpu_time(std::process::id()),
            postgres_processes,
        }
    }
}

impl CpuUsed {
    /// What payhook's CPU per event counts: the server's, and PostgreSQL's processes' when it
    /// stores there.
    pub fn server_and_postgres(&self) -> Option<Duration> {
        Some(self.server? + self.postgres.unwrap_or_default())
    }

    /// What was used between `before` and this reading.
    pub fn since(&self, before: &CpuUsed) -> CpuUsed {
        let between =
            |now: Option<Duration>, then: Option<Duration>| Some(now?.saturating_sub(then?));
        // A process that started during the run counts from zero; one that ended, not at all.
        let postgres = self.postgres.map(|_| {
            self.postgres_processes
                .iter()
                .map(|(pid, now)| {
                    now.saturating_sub(
                        before
                            .postgres_processes
                            .get(pid)
                            .copied()
                            .unwrap_or_default(),
                    )
                })
                .sum()
        });
        CpuUsed {
            server: between(self.server, before.server),
            postgres,
            generator: between(self.generator, before.generator),
            postgres_processes: HashMap::new(),
        }
    }
}

/// The CPU time (user and system, every thread) process `pid` has used, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command's name, which is in parentheses and may hold anything.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // `utime` and `stime`, the 14th and 15th fields, in USER_HZ ticks: 100 a second on Linux.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The postmaster of the --postgres server when it runs on this machine: only its processes are
/// counted, not those of another PostgreSQL the machine runs.
static POSTMASTER: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// The parent of process `pid`, from `/proc/PID/stat`.
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The CPU time used by each process of this machine named `postgres`: a local server's
/// backends and its own workers, only the --postgres server's when its postmaster is known. Empty
/// when there is none (the server is elsewhere).
fn postgres_cpu_times() -> HashMap<u32, Duration> {
    let mut used = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return used;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let ours = POSTMASTER
            .get()
            .is_none_or(|&pm| pid == pm || parent_pid(pid) == Some(pm));
        if comm.trim_end() == "postgres"
            && ours
            && let Some(time) = cpu_time(pid)
        {
            used.insert(pid, time);
        }
    }
    used
}

/// The scratch stores a benchmark runs on: a SQLite file in a temp directory, and a database on
/// the --postgres server.
struct Stores {
    urls: Vec<(&'static str, String)>,
    scratch: std::path::PathBuf,
    pg_db: String,
}

impl Stores {
    /// Scratch stores named after `tag`, so that each part of the suite starts from empty ones.
    async fn create(args: &BenchArgs, tag: &str) -> anyhow::Result<Stores> {
        let scratch =
            std::env::temp_dir().join(format!("payhook-bench-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&scratch)?;
        let mut urls = Vec::new();
        if !args.no_sqlite {
            urls.push(("sqlite", format!("sqlite://{}/bench.db", scratch.display())));
        }
        let pg_db = format!("payhook_bench_{}_{tag}", std::process::id());
        if let Some(server) = &args.postgres {
            let mut conn = sqlx::PgConnection::connect(server)
                .await
                .context("connecting to --postgres")?;
            // This connection's backend is a child of the postmaster (when the server is local).
            let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut conn)
                .await?;
            if let Some(postmaster) = u32::try_from(backend).ok().and_then(parent_pid) {
                let _ = POSTMASTER.set(postmaster);
            }
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {pg_db}")))
                .execute(&mut conn)
                .await?;
            urls.push(("postgres", with_database(server, &pg_db)?));
        }
        Ok(Stores {
            urls,
            scratch,
            pg_db,
        })
    }

    async fn remove(self, args: &BenchArgs) -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(&self.scratch);
        if let Some(server) = &args.postgres {
            // The killed server's connections take a moment to go away.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut conn = sqlx::PgConnection::connect(server).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.pg_db
            )))
            .execute(&mut conn)
            .await?;
        }
        Ok(())
    }
}

/// When each booking's PUT reached the booking service.
type Arrivals = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>;

/// A minimal booking service on loopback, the target of the end-to-end runs' notifications:
/// records when each booking's PUT arrived, and counts them.
pub(crate) struct BookingService {
    pub url: String,
    arrivals: Arrivals,
    puts: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl BookingService {
    async fn start() -> anyhow::Result<BookingService> {
        let arrivals: Arrivals = Default::default();
        let puts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (recorded, counted) = (arrivals.clone(), puts.clone());
        let router = Router::new().route(
            "/api/v1/bookings/{id}/payment-status",
            axum::routing::put(
                move |axum::extract::Path(id): axum::extract::Path<String>| {
                    let (recorded, counted) = (recorded.clone(), counted.clone());
                    async move {
                        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        recorded
                            .lock()
                            .expect("not poisoned")
                            .insert(id, Instant::now());
                        r#"{"success":true}"#
                    }
                },
            ),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(BookingService {
            url,
            arrivals,
            puts,
        })
    }

    /// PUTs received so far.
    pub fn puts(&self) -> u64 {
        self.puts.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// End to end at each steady `--rate`: each webhook confirms its own booking; the latency is from
/// just before the webhook is sent to the booking service receiving the PUT, next to the same
/// run's webhook acknowledgement latency. In the suite, then the highest rate with bounded lag
/// and the lesson's handler.
async fn end_to_end(args: &BenchArgs, report: &mut Report) -> anyhow::Result<bool> {
    let booking = BookingService::start().await?;
    let stores = Stores::create(args, "e2e").await?;
    let mut failed = false;
    print_steady_header();
    let mut run = 0;
    for (name, url) in &stores.urls {
        for &rate in &args.rate {
            run += 1;
            let steady = steady_run(url, rate, run, args, &booking).await?;
            steady.print(name, rate);
            report.e2e_p99(name, rate, steady.e2e_ms(0.99));
            // An overloaded server's memory holds its backlog: not the steady state the bound is for.
            if let Some(mib) = steady.peak_mib.filter(|_| steady.bounded()) {
                report.peak(name, mib);
            }
            failed |= steady.lost();
        }
    }
    println!(
        "ack: webhook sent to its 200; e2e: webhook sent to the booking service receiving its PUT (ms); sent/s: the rate the load generator achieved; µs/ev: CPU of the server (plus PostgreSQL's processes) per webhook, from the first send until the PUTs arrived"
    );
    if args.suite {
        println!(
            "\nThe highest steady rate with bounded lag: each rate on a fresh server until one is not bounded. Bounded: every webhook acknowledged, every PUT received within 2 s of the last send, and the e2e p99 of the last second's webhooks at most 1 s and at most twice the first second's plus 50 ms\n"
        );
        // What the generator sends when the server costs next to nothing: the steps cannot show
        // more than this.
        if let Some(&top) = args.steps.iter().max() {
            let bare = spawn_server(None, &[]).await?;
            run += 1;
            let sent = steady_load(
                bare.public,
                top,
                run,
                Duration::from_secs(args.seconds),
                args.body_bytes,
            )
            .await?;
            println!(
                "the load generator against the bare endpoint at {top}/s: sent {:.0}/s, {} of {} acknowledged",
                send_rate(&sent),
                sent.iter().filter(|s| s.acked_us.is_some()).count(),
                sent.len()
            );
        }
        print_steady_header();
        for (name, url) in &stores.urls {
            let highest = highest_rate(name, url, &mut run, args, &booking, report).await?;
            report.highest(name, highest);
        }
        for (name, _) in &stores.urls {
            if let Some(h) = report.highest_of(name) {
                println!(
                    "{name}: highest steady rate with bounded lag {}",
                    match (h.rate, h.generator_limited) {
                        (Some(r), false) => format!("{r}/s"),
                        (Some(r), true) => format!("at least {r}/s (the generator's limit)"),
                        (None, _) => format!("below {}/s", args.steps.first().unwrap_or(&0)),
                    }
                );
            }
        }
        let lesson_db = stores
            .urls
            .iter()
            .find(|(n, _)| *n == "postgres")
            .map(|(_, u)| u.as_str());
        let lesson = crate::lesson::run(
            &args.lesson,
            lesson_db,
            args.lesson_connections,
            Duration::from_secs(args.seconds),
            args.body_bytes,
            &booking,
        )
        .await?;
        if let crate::targets::Lesson::Measured { rate, .. } = &lesson
            && let Some(h) = report.highest_of("sqlite")
            && let Some(highest) = h.rate
        {
            println!(
                "payhook on SQLite, highest bounded rate {highest}/s: {:.1}x the lesson's handler",
                highest as f64 / rate
            );
        }
        report.lesson(lesson);
    }
    stores.remove(args).await?;
    Ok(failed)
}

/// Steps through `--steps` on `url`, each rate on a fresh server, until one is not bounded or the
/// load generator cannot send it.
async fn highest_rate(
    name: &str,
    url: &str,
    run: &mut usize,
    args: &BenchArgs,
    booking: &BookingService,
    report: &mut Report,
) -> anyhow::Result<Highest> {
    let mut highest = Highest {
        rate: None,
        generator_limited: false,
    };
    for &rate in &args.steps {
        *run += 1;
        let steady = steady_run(url, rate, *run, args, booking).await?;
        steady.print(name, rate);
        let limited = steady.send_rate < 0.95 * rate as f64;
        if limited {
            println!(
                "the load generator sent only {:.0}/s of {rate}/s to {name} (it shares the cores with the server)",
                steady.send_rate
            );
        }
        if !steady.bounded() {
            break;
        }
        if limited {
            // The server kept up with what it was sent: its own limit is higher.
            highest.generator_limited = true;
            break;
        }
        if let Some(mib) = steady.peak_mib {
            report.peak(name, mib);
        }
        report.e2e_p99(name, rate, steady.e2e_ms(0.99));
        highest.rate = Some(rate);
    }
    Ok(highest)
}

fn print_steady_header() {
    println!(
        "{:<9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6}",
        "store",
        "rate/s",
        "sent/s",
        "sent",
        "delivered",
        "ack p50",
        "ack p99",
        "e2e p50",
        "e2e p99",
        "e2e p999",
        "bounded",
        "µs/ev"
    );
}

/// What one steady run measured.
struct Steady {
    sent: usize,
    /// Acknowledgement latencies (µs), sorted.
    ack: Vec<u32>,
    /// End-to-end latencies (µs) of the delivered ones, sorted.
    e2e: Vec<u32>,
    /// The rate the load generator achieved, first send to last.
    send_rate: f64,
    /// e2e p99 (ms) of the webhooks sent in the first and in the last second; an undelivered one
    /// counts as endless.
    first_p99_ms: f64,
    last_p99_ms: f64,
    /// Every PUT arrived within 2 s of the last send.
    settled: bool,
    peak_mib: Option<f64>,
    /// CPU per webhook sent (µs) of the server, and of PostgreSQL's processes when it stores
    /// there, from the first send until the PUTs arrived (or the wait for them ended).
    cpu_us: Option<f64>,
    /// Where the time went, read from the store after the run.
    stages: Stages,
}

impl Steady {
    fn bounded(&self) -> bool {
        self.ack.len() == self.sent
            && self.settled
            && self.last_p99_ms <= 1000.0
            && self.last_p99_ms <= 2.0 * self.first_p99_ms + 50.0
    }

    fn lost(&self) -> bool {
        self.e2e.len() < self.sent || self.ack.len() < self.sent
    }

    fn e2e_ms(&self, q: f64) -> f64 {
        percentile_ms(&self.e2e, q)
    }

    fn print(&self, name: &str, rate: u64) {
        println!(
            "{name:<9} {rate:>8} {:>8.0} {:>8} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>6}",
            self.send_rate,
            self.sent,
            self.e2e.len(),
            percentile_ms(&self.ack, 0.5),
            percentile_ms(&self.ack, 0.99),
            self.e2e_ms(0.5),
            self.e2e_ms(0.99),
            self.e2e_ms(0.999),
            if self.bounded() { "yes" } else { "no" },
            self.cpu_us.map_or("-".into(), |us| format!("{us:.0}"))
        );
        self.stages.print();
    }
}

/// The two waits of a steady run's webhooks after their acknowledgement, from the timestamps the
/// store keeps (ms, sorted): received to applied (the inbox waiting for the ledger), and applied
/// to delivered (the outbox waiting for the dispatcher, with the booking service's answer). When a
/// run is not bounded they say which of the two fell behind.
struct Stages {
    /// Microseconds, sorted, as the other latencies of a run.
    applied: Vec<u32>,
    delivered: Vec<u32>,
}

impl Stages {
    /// The last event and notification ids in the store at `url`: the run's are those after.
    async fn before(url: &str) -> anyhow::Result<(i64, i64)> {
        let last = |table: &str| {
            [
                format!("SELECT COALESCE(MAX(id), 0)::float8 FROM {table} WHERE id > $1"),
                format!("SELECT CAST(COALESCE(MAX(id), 0) AS REAL) FROM {table} WHERE id > $1"),
            ]
        };
        let events = column(url, last("webhook_events"), 0).await?;
        let deliveries = column(url, last("deliveries"), 0).await?;
        // Ids are far below 2^53: exact as floats.
        let first = |v: Vec<f64>| v.first().map_or(0, |id| *id as i64);
        Ok((first(events), first(deliveries)))
    }

    /// The stages of the events and notifications after `before` in the store at `url`. SQLite
    /// keeps the times as RFC 3339 text, which `julianday()` reads (to the millisecond).
    async fn read(url: &str, before: (i64, i64)) -> anyhow::Result<Stages> {
        let waited = |table: &str, from: &str, to: &str| {
            [
                format!(
                    "SELECT (EXTRACT(EPOCH FROM {to} - {from}) * 1000)::float8
                     FROM {table} WHERE id > $1 AND {to} IS NOT NULL"
                ),
                format!(
                    "SELECT (julianday({to}) - julianday({from})) * 86400000.0
                     FROM {table} WHERE id > $1 AND {to} IS NOT NULL"
                ),
            ]
        };
        let sorted = |ms: Vec<f64>| {
            let mut us: Vec<u32> = ms
                .into_iter()
                .map(|ms| (ms.max(0.0) * 1000.0) as u32)
                .collect();
            us.sort_unstable();
            us
        };
        let applied = waited("webhook_events", "received_at", "processed_at");
        let delivered = waited("deliveries", "created_at", "delivered_at");
        Ok(Stages {
            applied: sorted(column(url, applied, before.0).await?),
            delivered: sorted(column(url, delivered, before.1).await?),
        })
    }

    fn print(&self) {
        let q = percentile_ms;
        println!(
            "{:<9} received to applied p50 {:.0}, p99 {:.0} ms ({} events); applied to delivered p50 {:.0}, p99 {:.0} ms ({} recorded)",
            "",
            q(&self.applied, 0.5),
            q(&self.applied, 0.99),
            self.applied.len(),
            q(&self.delivered, 0.5),
            q(&self.delivered, 0.99),
            self.delivered.len(),
        );
    }
}

/// The one column of `sql`'s rows, `$1` bound to `after`, on the store at `url`: `sql` is the
/// statement for PostgreSQL, then for SQLite.
async fn column(url: &str, sql: [String; 2], after: i64) -> anyhow::Result<Vec<f64>> {
    let [postgres, sqlite] = sql;
    Ok(if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query_scalar(sqlx::AssertSqlSafe(postgres))
            .bind(after)
            .fetch_all(&mut conn)
            .await?
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        if let Some(file) = payhook::app::sqlite_file(url) {
            payhook::store::attach_inbox_of(&mut conn, file).await?;
        }
        sqlx::query_scalar(sqlx::AssertSqlSafe(sqlite))
            .bind(after)
            .fetch_all(&mut conn)
            .await?
    })
}

/// The rate the load generator achieved, first send to last.
fn send_rate(sent: &[Sent]) -> f64 {
    let first = sent.iter().map(|s| s.at).min();
    let last = sent.iter().map(|s| s.at).max();
    match (first, last) {
        (Some(first), Some(last)) if last > first => {
            (sent.len() - 1) as f64 / (last - first).as_secs_f64()
        }
        _ => f64::NAN,
    }
}

/// The `q` quantile of sorted microseconds, in ms.
fn percentile_ms(sorted: &[u32], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(f64::NAN, |us| f64::from(*us) / 1000.0)
}

/// One steady run at `rate` on a fresh payhook storing in `url` (so no run waits behind the last
/// one's backlog), notifying `booking`.
async fn steady_run(
    url: &str,
    rate: u64,
    run: usize,
    args: &BenchArgs,
    booking: &BookingService,
) -> anyhow::Result<Steady> {
    let env = [
        ("BOOKING_SERVICE_URL", booking.url.as_str()),
        ("INTERNAL_SERVICE_TOKEN", "bench-token"),
    ];
    let server = spawn_server(Some(url), &env).await?;
    let before = Stages::before(url)
        .await
        .context("reading the store's last ids")?;
    booking.arrivals.lock().expect("not poisoned").clear();
    let cpu = server.cpu_meter(Some(url));
    let cpu_before = cpu.read();
    let sent = steady_load(
        server.public,
        rate,
        run,
        Duration::from_secs(args.seconds),
        args.body_bytes,
    )
    .await?;
    // Whatever is still on its way gets a few seconds.
    let wait_until = Instant::now() + Duration::from_secs(10);
    while booking.arrivals.lock().expect("not poisoned").len() < sent.len()
        && Instant::now() < wait_until
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_us = cpu
        .read()
        .since(&cpu_before)
        .server_and_postgres()
        .filter(|_| !sent.is_empty())
        .map(|used| used.as_secs_f64() * 1e6 / sent.len() as f64);
    let peak_mib = server.peak_mib();
    drop(server);
    let stages = Stages::read(url, before)
        .await
        .context("reading the run's timestamps from the store")?;
    let arrived = booking.arrivals.lock().expect("not poisoned").clone();
    let first_at = sent.iter().map(|s| s.at).min();
    let last_at = sent.iter().map(|s| s.at).max();
    let send_rate = send_rate(&sent);
    let latency = |s: &Sent| {
        arrived
            .get(&s.booking)
            .map(|at| micros(at.saturating_duration_since(s.at)))
    };
    // The p99 of the webhooks sent in one second of the run.
    let second_p99 = |second: u64| {
        let mut v: Vec<u32> = sent
            .iter()
            .filter(|s| first_at.is_some_and(|f| (s.at - f).as_secs() == second))
            .map(|s| latency(s).unwrap_or(u32::MAX))
            .collect();
        v.sort_unstable();
        percentile_ms(&v, 0.99)
    };
    let last_second = match (first_at, last_at) {
        (Some(first), Some(last)) => (last - first).as_secs(),
        _ => 0,
    };
    let settled = arrived.len() >= sent.len()
        && last_at.is_some_and(|last| {
            sent.iter().all(|s| {
                arrived
                    .get(&s.booking)
                    .is_some_and(|at| *at <= last + Duration::from_secs(2))
            })
        });
    let mut ack: Vec<u32> = sent.iter().filter_map(|s| s.acked_us).collect();
    let mut e2e: Vec<u32> = sent.iter().filter_map(latency).collect();
    ack.sort_unstable();
    e2e.sort_unstable();
    Ok(Steady {
        sent: sent.len(),
        ack,
        e2e,
        send_rate,
        first_p99_ms: second_p99(0),
        last_p99_ms: second_p99(last_second),
        settled,
        peak_mib,
        cpu_us,
        stages,
    })
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// One webhook of the steady load.
struct Sent {
    booking: String,
    at: Instant,
    /// The acknowledgement latency, when it was acknowledged (200).
    acked_us: Option<u32>,
}

/// Sends `rate` webhooks per second for `length`, each at its scheduled time whatever the
/// answers (an open loop: a slow server does not slow the load down), over a keep-alive pool.
async fn steady_load(
    addr: SocketAddr,
    rate: u64,
    run: usize,
    length: Duration,
    body_bytes: usize,
) -> anyhow::Result<Vec<Sent>> {
    let client = payhook::net::client_builder()
        .pool_max_idle_per_host(256)
        // An overloaded server must not hold the suite forever: such a webhook is unacknowledged.
        .timeout(Duration::from_secs(30))
        .build()?;
    let secret = Secret::new(BENCH_SECRET);
    let padding = "x".repeat(body_bytes.saturating_sub(260));
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = rate * length.as_secs();
    let mut tasks = tokio::task::JoinSet::new();
    for seq in 0..total {
        ticks.tick().await;
        let (client, secret, padding) = (client.clone(), secret.clone(), padding.clone());
        tasks.spawn(async move {
            // Unique across the runs, which share a store.
            let booking = format!("booking-e2e-{}-{run}-{seq}", std::process::id());
            let now = chrono::Utc::now().timestamp();
            let body = format!(
                r#"{{"id":"evt_e2e_{booking}","object":"event","created":{now},"type":"payment_intent.succeeded","data":{{"object":{{"id":"pi_e2e_{booking}","object":"payment_intent","amount":2000,"currency":"eur","status":"succeeded","metadata":{{"bookingId":"{booking}"}},"description":"{padding}"}}}}}}"#
            );
            let signature = stripe::sign(body.as_bytes(), &secret, now);
            let at = Instant::now();
            let answer = client
                .post(format!("http://{addr}/webhooks/stripe"))
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(body)
                .send()
                .await;
            let acked_us = match answer {
                Ok(r) if r.status().is_success() => Some(micros(at.elapsed())),
                _ => None,
            };
            Sent {
                booking,
                at,
                acked_us,
            }
        });
    }
    let mut sent = Vec::with_capacity(total as usize);
    while let Some(s) = tasks.join_next().await {
        sent.push(s?);
    }
    Ok(sent)
}

/// One run per connection count against `addr`, a table row each, kept in `report`. With a
/// `database_url`, each run's CPU is read again once the server has applied everything it
/// acknowledged (see [`drained`]). `x base` is against the baseline's row of the same connections,
/// `x empty` against the row of `empty` (the same store, empty). Returns whether anything failed.
async fn measure(
    args: &BenchArgs,
    name: &str,
    addr: SocketAddr,
    cpu: CpuMeter,
    database_url: Option<&str>,
    report: &mut Report,
    empty: Option<&str>,
) -> anyhow::Result<bool> {
    let store = match database_url {
        Some(url) => {
            Some(payhook::store::Store::connect(url, payhook::domain::SqliteSync::Full).await?)
        }
        None => None,
    };
    let mut failed = false;
    for (i, &conns) in args.connections.iter().enumerate() {
        let length = Duration::from_secs(args.seconds);
        let before = cpu.read();
        let result = load(addr, conns, length, args.body_bytes, i).await;
        let used = cpu.read().since(&before);
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                println!("{name:<11} {conns:>6}  failed: {e:#}");
                failed = true;
                continue;
            }
        };
        // What the processor left for after the load is part of what each event costs.
        let applied = match &store {
            Some(store) => {
                let limit = Duration::from_secs(60.max(args.seconds * 20));
                if drained(store, limit).await? {
                    cpu.read().since(&before).server_and_postgres()
                } else {
                    println!(
                        "events still waiting on {name} {} s after the {conns}-connection run: no µs/ev",
                        limit.as_secs()
                    );
                    None
                }
            }
            None => used.server_and_postgres(),
        };
        let per_event = |t: Option<Duration>| {
            t.filter(|_| result.acked > 0)
                .map(|t| t.as_secs_f64() * 1e6 / result.acked as f64)
        };
        let row = IngestRow {
            conns,
            rate: result.rate(),
            p99_ms: result.percentile_ms(0.99),
            applied_us: per_event(applied),
        };
        report.ingest_row(name, row);
        let ratio = |of: Option<f64>| of.map_or("-".to_string(), |b| format!("{b:.2}x"));
        let baseline = report.row("baseline", conns);
        let against_empty = empty.map_or(String::new(), |e| {
            format!(
                " {:>8}",
                ratio(report.row(e, conns).map(|e| row.rate / e.rate))
            )
        });
        let us = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{t:.0}"));
        println!(
            "{name:<11} {conns:>6} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>8}{against_empty} {:>7} {:>7} {:>7} {:>7} {:>7}",
            row.rate,
            result.percentile_ms(0.50),
            row.p99_ms,
            result.percentile_ms(0.999),
            result.errors,
            ratio(baseline.map(|b| row.rate / b.rate)),
            us(per_event(used.server)),
            us(per_event(used.postgres)),
            us(per_event(used.generator)),
            us(row.applied_us),
            ratio(
                baseline
                    .and_then(|b| b.applied_us)
                    .zip(row.applied_us)
                    .map(|(b, us)| us / b)
            ),
        );
        failed |= result.errors > 0;
    }
    if let Some(store) = store {
        store.close().await;
    }
    Ok(failed)
}

/// Waits until the server has applied every event it acknowledged (none is left `received`), at
/// most `limit`; returns whether it did. The polling is one indexed query each 20 ms: this
/// process's CPU, and on PostgreSQL a backend's, next to nothing beside the load's.
async fn drained(store: &payhook::store::Store, limit: Duration) -> anyhow::Result<bool> {
    let until = Instant::now() + limit;
    let waiting =
        payhook::store::EventFilter::status(payhook::domain::status::EventStatus::Received);
    loop {
        if store.list_events(&waiting, 1).await?.is_empty() {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A row of events/s without HTTP, against the baseline at the most connections.
fn print_rate(label: &str, r: &RunResult, report: &Report, cpu_us: Option<f64>) {
    let baseline = report.baseline_last().map_or(f64::NAN, |b| b.rate);
    println!(
        "{label:<9} {:>6} {:>10.0} {:>9} {:>9} {:>9} {:>7} {:>7.2}x {:>7}",
        "-",
        r.rate(),
        "-",
        "-",
        "-",
        r.errors,
        r.rate() / baseline,
        cpu_us.map_or("-".into(), |us| format!("{us:.0}")),
    );
}

/// A meter of this process's CPU, and PostgreSQL's processes' when `database_url` is theirs: the
/// store-only and ledger-only rows run payhook's code in this process.
fn own_cpu_meter(database_url: &str) -> CpuMeter {
    CpuMeter {
        server: Some(std::process::id()),
        postgres: database_url.starts_with("postgres"),
    }
}

/// CPU per event of `r` (µs), from `before` until now.
fn cpu_per_event(meter: &CpuMeter, before: &CpuUsed, r: &RunResult) -> Option<f64> {
    let used = meter.read().since(before).server_and_postgres()?;
    (r.acked > 0).then(|| used.as_secs_f64() * 1e6 / r.acked as f64)
}

/// Applies waiting events to the ledger for at most `length` (or until none is left).
async fn ledger_only(database_url: &str, length: Duration) -> anyhow::Result<RunResult> {
    let store = std::sync::Arc::new(
        payhook::store::Store::connect(database_url, payhook::domain::SqliteSync::Full).await?,
    );
    let processor = payhook::ledger::Processor::new(
        store.clone(),
        payhook::config::Settings::defaults().processor,
        Default::default(),
    );
    let started = Instant::now();
    let (mut acked, mut errors) = (0u64, 0u64);
    while started.elapsed() < length {
        match processor.try_process_next().await? {
            payhook::ledger::Outcome::Handled(batch) => {
                for h in batch {
                    if h.status == payhook::domain::status::EventStatus::Processed {
                        acked += 1;
                    } else {
                        errors += 1;
                    }
                }
            }
            payhook::ledger::Outcome::Empty { .. } => break,
        }
    }
    let elapsed = started.elapsed();
    store.close().await;
    Ok(RunResult {
        acked,
        errors,
        elapsed,
        latencies_us: Vec::new(),
    })
}

const STORE_BATCH: usize = 64;

/// Inserts fresh events in group-commit-sized batches for `length`, straight through the store.
async fn store_only(
    database_url: &str,
    length: Duration,
    body_bytes: usize,
) -> anyhow::Result<RunResult> {
    // The server just ran on this database, so it is migrated.
    let store =
        payhook::store::Store::connect(database_url, payhook::domain::SqliteSync::Full).await?;
    let padding = "x".repeat(body_bytes.saturating_sub(260));
    let started = Instant::now();
    let mut acked = 0u64;
    while started.elapsed() < length {
        let batch: Vec<_> = (0..STORE_BATCH as u64)
            .map(|i| {
                // The same id shape as the HTTP load (128 interleaved sequences), so the unique
                // index sees the same page pattern.
                let n = acked + i;
                let tag = format!("s_{}", n % 128);
                let body = event_body(&tag, n / 128, &padding, chrono::Utc::now().timestamp());
                payhook::store::NewEvent {
                    source: "stripe".into(),
                    event_id: format!("evt_bench_{}_{tag}_{}", std::process::id(), n / 128),
                    payload: Bytes::from(body),
                    event_type: "payment_intent.succeeded".into(),
                    headers: r#"{"content-type":"application/json"}"#.into(),
                    received_at: chrono::Utc::now(),
                    trace_context: None,
                }
            })
            .collect();
        store.insert_events(&batch).await?;
        acked += STORE_BATCH as u64;
    }
    let elapsed = started.elapsed();
    store.close().await;
    Ok(RunResult {
        acked,
        errors: 0,
        elapsed,
        latencies_us: Vec::new(),
    })
}

/// `server` with its database name replaced.
fn with_database(server: &str, db: &str) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(server).context("--postgres is not a URL")?;
    url.set_path(db);
    Ok(url.to_string())
}

/// A server under test; killed when dropped.
struct Server {
    child: Child,
    public: SocketAddr,
    /// The admin listener (payhook only).
    admin: Option<SocketAddr>,
}

impl Server {
    /// What a run against this server, storing in `database_url`, reads the CPU time of.
    fn cpu_meter(&self, database_url: Option<&str>) -> CpuMeter {
        CpuMeter {
            server: self.child.id(),
            postgres: database_url.is_some_and(|u| u.starts_with("postgres")),
        }
    }

    /// "NAME 12.3 MiB": the most it held resident so far, or "" if unknown.
    fn peak(&self, name: &str) -> String {
        self.peak_mib()
            .map_or(String::new(), |mib| format!("{name} {mib:.1} MiB"))
    }

    /// The most it held resident so far, in MiB.
    fn peak_mib(&self) -> Option<f64> {
        self.child
            .id()
            .and_then(peak_rss_kib)
            .map(|kib| kib as f64 / 1024.0)
    }
}

/// Starts `payhook serve` on `database_url`, or the baseline when `None`.
async fn spawn_server(database_url: Option<&str>, env: &[(&str, &str)]) -> anyhow::Result<Server> {
    let exe = std::env::current_exe()?;
    let mut cmd = match database_url {
        None => Command::new(&exe),
        // payhook itself, built beside this binary.
        Some(_) => Command::new(exe.with_file_name("payhook")),
    };
    match database_url {
        None => {
            cmd.arg("--baseline");
        }
        Some(url) => {
            cmd.arg("serve")
                .env("DATABASE_URL", url)
                .env("PAYHOOK_LISTEN", "127.0.0.1:0")
                .env("PAYHOOK_ADMIN_LISTEN", "127.0.0.1:0")
                .env("STRIPE_WEBHOOK_SECRET", BENCH_SECRET)
                // PAYHOOK_BENCH_LOG: the server's RUST_LOG, to see where its time goes (stderr).
                .env(
                    "RUST_LOG",
                    std::env::var("PAYHOOK_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .env_remove("PAYHOOK_CONFIG")
                .env_remove("BOOKING_SERVICE_URL")
                .envs(env.iter().copied());
        }
    }
    cmd.stdout(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().context("starting the server under test")?;
    let (public, admin) = listening(&mut child, database_url.is_some()).await?;
    Ok(Server {
        child,
        public,
        admin,
    })
}

/// The addresses a server just started prints: its public listener, and its admin listener when
/// `payhook` (the baseline and the lesson's handler have none).
pub(crate) async fn listening(
    child: &mut Child,
    payhook: bool,
) -> anyhow::Result<(SocketAddr, Option<SocketAddr>)> {
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let (public, admin) = tokio::time::timeout(Duration::from_secs(60), async {
        let (mut public, mut admin) = (None, None);
        while let Some(line) = lines.next_line().await? {
            if let Some(addr) = line.strip_prefix("public listener: http://") {
                public = Some(addr.trim().parse::<SocketAddr>()?);
            } else if let Some(addr) = line.strip_prefix("admin listener: http://") {
                admin = Some(addr.trim().parse::<SocketAddr>()?);
            }
            if let Some(public) = public
                && (admin.is_some() || !payhook)
            {
                return Ok((public, admin));
            }
        }
        bail!("the server exited before listening")
    })
    .await
    .context("waiting for the server to listen")??;
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((public, admin))
}

pub(crate) async fn load(
    addr: SocketAddr,
    conns: usize,
    length: Duration,
    body_bytes: usize,
    run: usize,
) -> anyhow::Result<RunResult> {
    let started = Instant::now();
    let deadline = started + length;
    let tasks: Vec<_> = (0..conns)
        .map(|c| tokio::spawn(connection(addr, deadline, body_bytes, format!("{run}_{c}"))))
        .collect();
    let mut total = RunResult {
        acked: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for task in tasks {
        let r = task.await??;
        total.acked += r.acked;
        total.errors += r.errors;
        total.latencies_us.extend(r.latencies_us);
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    Ok(total)
}

/// One keep-alive connection sending events back to back until `deadline`.
async fn connection(
    addr: SocketAddr,
    deadline: Instant,
    body_bytes: usize,
    tag: String,
) -> anyhow::Result<RunResult> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let secret = Secret::new(BENCH_SECRET);
    let padding = "x".repeat(body_bytes.saturating_sub(260));
    let mut result = RunResult {
        acked: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::with_capacity(1 << 14),
    };
    let mut seq = 0u64;
    while Instant::now() < deadline {
        seq += 1;
        let now = chrono::Utc::now().timestamp();
        let body = event_body(&tag, seq, &padding, now);
        let signature = stripe::sign(body.as_bytes(), &secret, now);
        let request = Request::post("/webhooks/stripe")
            .header("host", addr.to_string())
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(Full::new(Bytes::from(body)))?;
        let sent = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        result
            .latencies_us
            .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if status.is_success() {
            result.acked += 1;
        } else {
            result.errors += 1;
        }
    }
    Ok(result)
}

/// A signed-to-be `payment_intent.succeeded` of the ingest load, unique by `tag` and `seq`; the
/// processor applies it as a new payment.
fn event_body(tag: &str, seq: u64, padding: &str, now: i64) -> String {
    let process = std::process::id();
    format!(
        r#"{{"id":"evt_bench_{process}_{tag}_{seq}","object":"event","api_version":"2024-06-20","created":{now},"type":"payment_intent.succeeded","livemode":false,"data":{{"object":{{"id":"pi_bench_{tag}_{seq}","object":"payment_intent","amount":2000,"currency":"eur","status":"succeeded","metadata":{{"bookingId":"booking-{process}-{tag}-{seq}"}},"description":"{padding}"}}}}}}"#
    )
}

/// The baseline server: an axum endpoint that reads the body and answers 200, nothing else.
pub async fn baseline(listen: SocketAddr) -> anyhow::Result<ExitCode> {
    let router = Router::new().route(
        "/webhooks/{source}",
        post(|_body: Bytes| async { r#"{"received":true}"# }),
    );
    let listener = TcpListener::bind(listen).await?;
    println!("public listener: http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(ExitCode::SUCCESS)
}
