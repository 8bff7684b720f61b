use clap::Parser;

/// jemalloc instead of glibc's `malloc`, for Rust's allocations and SQLite's alike (its symbols
/// replace glibc's). Under load glibc's `malloc`, `free` and their consolidation of freed chunks
/// were an eighth of the server's CPU (see docs/benchmarks.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its first allocation: two arenas (rather than four per core), as
/// the runtime's threads and SQLite's connection threads share two cores, and each arena keeps
/// memory it freed for other threads to reuse.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[unsafe(export_name = "malloc_conf")]
static MALLOC_CONF: &[u8; 10] = b"narenas:2\0";

fn main() -> std::process::ExitCode {
    payhook::cli::Cli::parse().run()
}
