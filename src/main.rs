use clap::Parser;

/// jemalloc instead of glibc's `malloc`, for Rust's allocations and SQLite's alike (its symbols
/// replace glibc's). Under load glibc's `malloc`, `free` and their consolidation of freed chunks
/// were an eighth of the server's CPU (see docs/benchmarks.md).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its first allocation: one arena (rather than four per core), so
/// memory freed by any thread is reused by all. With two, memory one arena kept after the admin
/// queries' sorts over a large store took the peak over 64 MiB (see docs/benchmarks.md); the
/// threads' own caches keep most allocations off the arena's lock.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[unsafe(export_name = "malloc_conf")]
static MALLOC_CONF: &[u8; 10] = b"narenas:1\0";

fn main() -> std::process::ExitCode {
    payhook::cli::Cli::parse().run()
}
