//! The run summary printed on stderr (stdout belongs to `print` sinks).

use sluice_runtime::checkpoint::CheckpointCounts;
use sluice_runtime::metrics::{OperatorCounts, TableCounts};
use std::collections::BTreeMap;
use std::time::Duration;

pub fn print_summary(
    tables: &BTreeMap<String, TableCounts>,
    operators: &BTreeMap<String, OperatorCounts>,
    elapsed: Duration,
    stopped: bool,
) {
    eprint!("{}", render(tables, elapsed, stopped));
    eprint!("{}", render_operators(operators));
}

/// Stateful operators: late rows dropped, rows dropped for a NULL rowtime, state held at the end.
pub fn render_operators(operators: &BTreeMap<String, OperatorCounts>) -> String {
    if operators.is_empty() {
        return String::new();
    }
    let width = operators.keys().map(|k| k.len()).max().unwrap_or(8).max(8);
    let cell = |n: u64| if n == 0 { "-".to_string() } else { n.to_string() };
    let mut s = format!(
        "  {:<width$}  {:>12}  {:>12}  {:>12}  {:>12}\n",
        "operator", "late", "no rowtime", "state keys", "state bytes"
    );
    for (name, c) in operators {
        s.push_str(&format!(
            "  {:<width$}  {:>12}  {:>12}  {:>12}  {:>12}\n",
            name,
            cell(c.late),
            cell(c.dropped),
            c.state_keys,
            human_bytes(c.state_bytes)
        ));
    }
    s
}

fn human_bytes(b: i64) -> String {
    match b {
        b if b >= 10 << 20 => format!("{} MiB", b >> 20),
        b if b >= 10 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

pub fn render(tables: &BTreeMap<String, TableCounts>, elapsed: Duration, stopped: bool) -> String {
    let how = if stopped { "stopped on request" } else { "input ended" };
    let mut s = format!("sluice: finished in {:.3}s ({how})\n", elapsed.as_secs_f64());
    let width = tables.keys().map(|k| k.len()).max().unwrap_or(5).max(5);
    s.push_str(&format!("  {:<width$}  {:>12}  {:>12}  {:>10}\n", "table", "read", "written", "skipped"));
    let cell = |n: u64| {
        if n == 0 {
            "-".to_string()
        } else {
            n.to_string()
        }
    };
    for (name, c) in tables {
        s.push_str(&format!(
            "  {:<width$}  {:>12}  {:>12}  {:>10}\n",
            name,
            cell(c.read),
            cell(c.written),
            cell(c.skipped)
        ));
    }
    s
}

/// One line on the checkpoints of the run, and where the savepoint is when it stopped with one.
pub fn render_checkpoints(c: &CheckpointCounts, savepoint: Option<&str>) -> String {
    let mut s = String::new();
    if c.completed > 0 {
        s.push_str(&format!(
            "  checkpoints: {} completed, last #{} ({}, {} ms, longest {} ms)\n",
            c.completed,
            c.last_id,
            human_bytes(c.last_bytes as i64),
            c.last_duration.as_millis(),
            c.max_duration.as_millis()
        ));
    }
    if !c.restore.is_zero() {
        s.push_str(&format!("  restored state into the operators in {} ms\n", c.restore.as_millis()));
    }
    if let Some(p) = savepoint {
        s.push_str(&format!("  savepoint: {p} (the next run resumes from it)\n"));
    }
    s
}
