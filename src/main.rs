use clap::Parser;

/// mimalloc rather than glibc's malloc: per-thread free lists, no consolidation passes.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    payhook::cli::Cli::parse().run()
}
