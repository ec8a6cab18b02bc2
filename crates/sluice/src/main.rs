//! The `sluice` binary: `run`, `validate` and `explain` a Flink SQL file.
//!
//! Exit codes: 0 success; 1 the SQL or its options are invalid (errors printed as `FILE:LINE:COL`);
//! 2 bad command line; 3 the pipeline failed while running.

mod cli;
mod summary;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
    cli::execute(args)
}
