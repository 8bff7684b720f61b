use clap::Parser;

fn main() -> std::process::ExitCode {
    payhook::cli::Cli::parse().run()
}
