//! `payhook-bench`: the benchmark suite, a program of its own beside `payhook` (which it starts
//! and measures) so the service carries no load generator. `scripts/bench` builds and runs it.

mod fill;
mod lesson;
mod suite;
mod targets;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "payhook-bench",
    version,
    about = "Measure payhook's ingest, end to end and CPU per event against a same-run baseline"
)]
struct Cli {
    #[command(flatten)]
    args: suite::BenchArgs,
    /// Run the baseline instead: a minimal axum endpoint that only answers 200, on this address.
    #[arg(long, hide = true, value_name = "LISTEN", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    baseline: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The suite's own process applies events too: its per-event lines would be measured.
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async move {
        match cli.baseline {
            Some(listen) => suite::baseline(listen).await,
            None => suite::run(cli.args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("payhook-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
