use clap::Parser;

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    payhook::cli::Cli::parse().run()
}

/// glibc gives each thread that allocates under contention an arena of its own (up to 8 per core),
/// and memory freed in one arena is not reused by another: with the runtime's threads and one
/// thread per SQLite connection, the peak resident memory at 128 connections on a store of 10
/// million events reached 65 MiB. Two arenas took 3-4 MiB off the peak at the same CPU per event.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first in `main`, before any other thread exists; `mallopt` only sets a limit.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
