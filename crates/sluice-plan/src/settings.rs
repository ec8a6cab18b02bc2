//! Pipeline settings from `SET 'key' = 'value'` and `--set`, with Flink's key names.

use sluice_common::options::parse_duration;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `parallelism.default`: subtasks per operator (default: number of cores).
    pub parallelism: usize,
    /// `pipeline.name`.
    pub pipeline_name: Option<String>,
    /// `table.exec.state.ttl` (used by the state issue).
    pub state_ttl: Option<Duration>,
    /// `table.exec.mini-batch.enabled` (default false, as in Flink).
    pub mini_batch: bool,
    /// `table.exec.source.idle-timeout`: a source subtask without data this long stops holding back
    /// the watermark (default: never).
    pub idle_timeout: Option<Duration>,
    /// `execution.checkpointing.interval`: take a checkpoint this often (default: no checkpoints).
    pub checkpoint_interval: Option<Duration>,
    /// `execution.checkpointing.dir` (or Flink's `state.checkpoints.dir`): where checkpoints go.
    pub checkpoint_dir: Option<String>,
    /// `execution.checkpointing.num-retained` (or `state.checkpoints.num-retained`): complete
    /// checkpoints kept (default 2: one to fall back on if the newest is damaged).
    pub checkpoints_retained: usize,
    /// Every setting as written, for operators that read their own keys.
    pub raw: BTreeMap<String, String>,
}

/// Key prefixes of Flink's configuration that a pipeline may set; anything else is likely a typo.
const KNOWN_PREFIXES: &[&str] = &[
    "parallelism.",
    "pipeline.",
    "table.",
    "execution.",
    "state.",
    "restart-strategy",
    "sql-client.",
    "taskmanager.",
    "jobmanager.",
    "python.",
];

impl Settings {
    /// Keys that sluice does not know, for a warning (Flink accepts any key, so they are not errors).
    pub fn unknown_keys(&self) -> Vec<&str> {
        self.raw.keys().map(String::as_str).filter(|k| !KNOWN_PREFIXES.iter().any(|p| k.starts_with(p))).collect()
    }
}

impl Settings {
    pub fn from_map(raw: &BTreeMap<String, String>, default_parallelism: usize) -> Result<Settings, String> {
        let parallelism = match raw.get("parallelism.default") {
            None => default_parallelism.max(1),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(-1) => default_parallelism.max(1),
                Ok(n) if n >= 1 => n as usize,
                _ => return Err(format!("setting 'parallelism.default': expected a positive integer, got '{v}'")),
            },
        };
        let state_ttl = match raw.get("table.exec.state.ttl") {
            None => None,
            Some(v) => {
                let d = parse_duration(v).map_err(|m| format!("setting 'table.exec.state.ttl': {m}, got '{v}'"))?;
                (!d.is_zero()).then_some(d)
            }
        };
        let mini_batch = match raw.get("table.exec.mini-batch.enabled").map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => {
                return Err(format!("setting 'table.exec.mini-batch.enabled': expected 'true' or 'false', got '{v}'"))
            }
        };
        let idle_timeout = match raw.get("table.exec.source.idle-timeout") {
            None => None,
            Some(v) => {
                let d = parse_duration(v)
                    .map_err(|m| format!("setting 'table.exec.source.idle-timeout': {m}, got '{v}'"))?;
                (!d.is_zero()).then_some(d)
            }
        };
        let checkpoint_interval = match raw.get("execution.checkpointing.interval") {
            None => None,
            Some(v) => {
                let d = parse_duration(v)
                    .map_err(|m| format!("setting 'execution.checkpointing.interval': {m}, got '{v}'"))?;
                (!d.is_zero()).then_some(d)
            }
        };
        let checkpoint_dir = raw
            .get("execution.checkpointing.dir")
            .or_else(|| raw.get("state.checkpoints.dir"))
            .map(|d| d.strip_prefix("file://").unwrap_or(d).to_string());
        let retained_key = ["execution.checkpointing.num-retained", "state.checkpoints.num-retained"]
            .into_iter()
            .find(|k| raw.contains_key(*k));
        let checkpoints_retained = match retained_key {
            None => 2,
            Some(k) => match raw[k].trim().parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(format!("setting '{k}': expected a positive integer, got '{}'", raw[k])),
            },
        };
        if checkpoint_interval.is_some() && checkpoint_dir.is_none() {
            return Err("setting 'execution.checkpointing.interval' needs a place for the checkpoints: set \
                 'execution.checkpointing.dir' (or 'state.checkpoints.dir') to a directory"
                .to_string());
        }
        Ok(Settings {
            checkpoint_interval,
            checkpoint_dir,
            checkpoints_retained,
            idle_timeout,
            parallelism,
            pipeline_name: raw.get("pipeline.name").cloned(),
            state_ttl,
            mini_batch,
            raw: raw.clone(),
        })
    }
}
