//! The run summary printed on stderr (stdout belongs to `print` sinks).

use sluice_runtime::metrics::TableCounts;
use std::collections::BTreeMap;
use std::time::Duration;

pub fn print_summary(tables: &BTreeMap<String, TableCounts>, elapsed: Duration, stopped: bool) {
    eprint!("{}", render(tables, elapsed, stopped));
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
