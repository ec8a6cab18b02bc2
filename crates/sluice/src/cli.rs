//! Command-line parsing and the three commands. Planning is shared: read the file, plan it with the
//! shipped connectors, build the stream graph; then validate stops, explain prints, run executes.

use crate::summary::print_summary;
use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_connectors::Connectors;
use sluice_plan::{build_graph, explain::explain, Settings, StreamGraph};
use sluice_runtime::{run_graph, Metrics, Shutdown};
use sluice_sql::{plan_script, Diagnostics, SqlError};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Runs real-time pipelines written in Flink SQL, from one binary.
#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 success, 1 invalid SQL or options, 2 bad command line, 3 the pipeline failed."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Plan and run every INSERT in FILE until bounded sources end or Ctrl-C/SIGTERM (which drains
    /// and flushes sinks, then exits 0). Prints a summary on stderr at the end.
    Run {
        /// The Flink SQL file.
        file: PathBuf,
        /// Override a setting, as `SET 'key' = 'value'` would (repeatable), e.g. `--set parallelism.default=1`.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
    },
    /// Parse and plan FILE without running it: silent with exit 0 when valid, every error as
    /// FILE:LINE:COL and exit 1 when not.
    Validate {
        file: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
    },
    /// Print the operator graph of FILE: sources, operators with their keys and parallelism,
    /// exchanges and sinks (secrets masked).
    Explain {
        file: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
    },
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected KEY=VALUE, got '{s}'"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

pub fn execute(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Validate { file, set } => plan(&file, &set).map(|_| ExitCode::SUCCESS),
        Command::Explain { file, set } => plan(&file, &set).map(|(graph, _)| {
            print!("{}", explain(&graph));
            ExitCode::SUCCESS
        }),
        Command::Run { file, set } => match plan(&file, &set) {
            Ok((graph, settings)) => Ok(run(&graph, &settings)),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(code) => code,
        Err(Failure::Invalid(d)) => {
            eprintln!("{d}");
            ExitCode::from(1)
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Invalid(Diagnostics),
    Other(anyhow::Error),
}

fn plan(file: &Path, overrides: &[(String, String)]) -> Result<(StreamGraph, Settings), Failure> {
    let source = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {}", file.display()))
        .map_err(Failure::Other)?;
    let invalid = |errors: Vec<SqlError>| {
        Failure::Invalid(Diagnostics { file: file.display().to_string(), source: source.clone(), errors })
    };
    let env = |name: &str| std::env::var(name).ok();
    let pipeline = plan_script(&source, &Connectors, overrides, &env).map_err(invalid)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let settings = Settings::from_map(&pipeline.settings, cores).map_err(|m| invalid(vec![SqlError::new(None, m)]))?;
    for key in settings.unknown_keys() {
        tracing::warn!(key, "Ignoring unknown setting (not a Flink configuration key)");
    }
    let graph = build_graph(&pipeline, &settings).map_err(|e| invalid(vec![e]))?;
    Ok((graph, settings))
}

fn run(graph: &StreamGraph, settings: &Settings) -> ExitCode {
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let metrics = Metrics::default();
    let shutdown = Shutdown::new();
    let result = runtime.block_on(async {
        tokio::spawn(watch_signals(shutdown.clone()));
        run_graph(graph, Arc::new(Connectors), &settings.raw, &metrics, &shutdown).await
    });
    match result {
        Ok(outcome) => {
            print_summary(&metrics.snapshot(), &metrics.operator_snapshot(), outcome.elapsed, outcome.stopped);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: the pipeline failed: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::from(3)
        }
    }
}

/// First Ctrl-C or SIGTERM: stop sources, drain, flush. Second one: exit at once.
async fn watch_signals(shutdown: Shutdown) {
    #[cfg(unix)]
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    for round in 0.. {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        if round == 0 {
            tracing::warn!("Stopping: draining in-flight records and flushing sinks (signal again to exit at once)");
            shutdown.trigger();
        } else {
            std::process::exit(130);
        }
    }
}
