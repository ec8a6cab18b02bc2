//! Command-line parsing and the three commands. Planning is shared: read the file, plan it with the
//! shipped connectors, build the stream graph; then validate stops, explain prints, run executes.

use crate::summary::{print_summary, render_checkpoints};
use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_common::SluiceError;
use sluice_connectors::Connectors;
use sluice_plan::{build_graph, explain::explain, Settings, StreamGraph};
use sluice_runtime::{run_graph, CheckpointStore, Checkpointing, Metrics, PlanIdentity, Shutdown};
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
    /// and flushes sinks, then exits 0; with checkpoints on it takes a savepoint instead and the
    /// next run resumes from it). Prints a summary on stderr at the end.
    ///
    /// With `execution.checkpointing.interval` set, a run resumes from the latest complete
    /// checkpoint in `execution.checkpointing.dir` unless `--from-scratch` is given.
    Run {
        /// The Flink SQL file.
        file: PathBuf,
        /// Override a setting, as `SET 'key' = 'value'` would (repeatable), e.g. `--set parallelism.default=1`.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Resume from this checkpoint or savepoint folder (`.../chk-<id>`).
        #[arg(long, value_name = "PATH", conflicts_with = "from_scratch")]
        from_savepoint: Option<PathBuf>,
        /// Ignore the checkpoints in the checkpoint directory and start from the beginning.
        #[arg(long)]
        from_scratch: bool,
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
        Command::Run { file, set, from_savepoint, from_scratch } => match plan(&file, &set) {
            Ok((graph, settings)) => Ok(run(&graph, &settings, Resume { from_savepoint, from_scratch })),
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

/// Where a run starts: `--from-savepoint`, `--from-scratch`, or the latest checkpoint.
struct Resume {
    from_savepoint: Option<PathBuf>,
    from_scratch: bool,
}

/// The checkpoint configuration of a run, and the checkpoint to resume from.
async fn checkpointing(
    graph: &StreamGraph,
    settings: &Settings,
    resume: &Resume,
) -> Result<Option<Checkpointing>, SluiceError> {
    if settings.checkpoint_interval.is_none() && resume.from_savepoint.is_none() {
        return Ok(None);
    }
    let dir = match (&settings.checkpoint_dir, &resume.from_savepoint) {
        (Some(d), _) => PathBuf::from(d),
        // Resuming without a checkpoint directory: later checkpoints go next to the savepoint.
        (None, Some(p)) => p.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
        (None, None) => unreachable!("settings require a directory with an interval"),
    };
    let store = CheckpointStore::open(&dir)?;
    let identity = PlanIdentity::new(graph.state_operators().into_iter().map(|(_, line)| line).collect());
    let loading = std::time::Instant::now();
    let restore = if let Some(path) = &resume.from_savepoint {
        Some(CheckpointStore::load_path(path).await?)
    } else if resume.from_scratch {
        None
    } else {
        match store.latest().await? {
            Some(r) if store.finished().await == Some(r.id) => {
                tracing::info!(checkpoint = %r.location, "The last run ended; starting from the beginning");
                None
            }
            other => other,
        }
    };
    let checkpointing =
        Checkpointing::new(store, settings.checkpoint_interval, settings.checkpoints_retained, identity, restore)
            .map_err(|e| SluiceError {
                message: format!(
            "{}\n(run with --from-scratch to start from the beginning, or use another 'execution.checkpointing.dir')",
            e.message
        ),
                ..e
            })?;
    if let Some(r) = checkpointing.restore() {
        let bytes: usize = r.states.values().map(Vec::len).sum();
        eprintln!(
            "sluice: resuming from {} ({} bytes of state, read and verified in {} ms)",
            r.location,
            bytes,
            loading.elapsed().as_millis()
        );
    }
    Ok(Some(checkpointing))
}

fn run(graph: &StreamGraph, settings: &Settings, resume: Resume) -> ExitCode {
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
    let checkpoints = match runtime.block_on(checkpointing(graph, settings, &resume)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let savepoints = checkpoints.is_some();
    let result = runtime.block_on(async {
        tokio::spawn(watch_signals(shutdown.clone(), savepoints));
        run_graph(graph, Arc::new(Connectors), &settings.raw, &metrics, &shutdown, checkpoints).await
    });
    match result {
        Ok(outcome) => {
            print_summary(&metrics.snapshot(), &metrics.operator_snapshot(), outcome.elapsed, outcome.stopped);
            eprint!("{}", render_checkpoints(&metrics.checkpoints.snapshot(), outcome.savepoint.as_deref()));
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

/// First Ctrl-C or SIGTERM: stop sources, drain, flush (with checkpoints: take a savepoint).
/// Second one: exit at once.
async fn watch_signals(shutdown: Shutdown, savepoint: bool) {
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
        if round == 0 && savepoint {
            tracing::warn!("Stopping with a savepoint: the next run resumes from it (signal again to exit at once)");
            shutdown.trigger();
        } else if round == 0 {
            tracing::warn!("Stopping: draining in-flight records and flushing sinks (signal again to exit at once)");
            shutdown.trigger();
        } else {
            std::process::exit(130);
        }
    }
}
