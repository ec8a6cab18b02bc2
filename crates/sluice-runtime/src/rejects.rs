//! Rows the pipeline does not deliver to their result — late rows now, bad records of connectors
//! later — go through one path: counted per operator, logged (the first few per operator, with the
//! row), and handed to a [`RejectSink`] (the Kafka issue's dead-letter topic implements it).

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use std::collections::HashMap;
use std::sync::Mutex;

/// Rows of one batch an operator did not deliver, and why.
#[derive(Debug)]
pub struct Rejected<'a> {
    /// The operator, e.g. `WindowAggregate[3]`.
    pub operator: &'a str,
    /// Why, e.g. `late`.
    pub reason: &'a str,
    pub rows: &'a RecordBatch,
}

/// Where rejected rows go besides the counters.
pub trait RejectSink: Send + Sync + std::fmt::Debug {
    fn reject(&self, rejected: &Rejected<'_>);
}

/// Rows logged per operator before only counting.
const LOGGED_PER_OPERATOR: u64 = 10;

/// The default: logs the first rows of each operator at WARN.
#[derive(Debug, Default)]
pub struct LogRejects {
    logged: Mutex<HashMap<String, u64>>,
}

/// `[a, b, c]` for row `i`.
pub fn format_row(rows: &RecordBatch, i: usize) -> String {
    let options = FormatOptions::default().with_null("null");
    let cells: Vec<String> = rows
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).map(|f| f.value(i).to_string()).unwrap_or_default())
        .collect();
    format!("[{}]", cells.join(", "))
}

impl RejectSink for LogRejects {
    fn reject(&self, r: &Rejected<'_>) {
        let mut logged = self.logged.lock().expect("reject log lock is never poisoned");
        let count = logged.entry(r.operator.to_string()).or_default();
        for i in 0..r.rows.num_rows() {
            if *count >= LOGGED_PER_OPERATOR {
                break;
            }
            *count += 1;
            let more =
                if *count == LOGGED_PER_OPERATOR { " (further rows of this operator are only counted)" } else { "" };
            tracing::warn!(operator = r.operator, reason = r.reason, row = %format_row(r.rows, i), "Dropped a row{more}");
        }
    }
}
