//! Counters per table (records read, written, skipped) and per operator (late records, state size),
//! shared by all subtasks, read for the run summary.

use crate::rejects::{LogRejects, RejectSink, Rejected};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct TableMetrics {
    pub read: AtomicU64,
    pub written: AtomicU64,
    /// Bad records skipped by the connector (e.g. `json.ignore-parse-errors`).
    pub skipped: AtomicU64,
}

impl TableMetrics {
    pub fn add_read(&self, n: usize) {
        self.read.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_written(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_skipped(&self, n: usize) {
        self.skipped.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Snapshot of one table's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableCounts {
    pub read: u64,
    pub written: u64,
    pub skipped: u64,
}

/// Counters of one operator (all its subtasks).
#[derive(Debug)]
pub struct OperatorMetrics {
    /// The operator's name in the summary, e.g. `WindowAggregate[3]`.
    pub name: String,
    rejects: Arc<dyn RejectSink>,
    /// Rows dropped because they arrived behind the watermark (Flink's `numLateRecordsDropped`).
    pub late: AtomicU64,
    /// Rows that cannot be placed in time (a NULL rowtime), which Flink rejects at the source.
    pub dropped: AtomicU64,
    /// Keys held in state, summed over subtasks (each subtask adds its change).
    pub state_keys: AtomicI64,
    /// Approximate bytes held in state, summed over subtasks.
    pub state_bytes: AtomicI64,
}

impl OperatorMetrics {
    pub fn add_late(&self, n: usize) {
        self.late.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Late rows: counted, and handed to the reject path (logged, later a dead-letter topic).
    pub fn late_rows(&self, rows: &datafusion::arrow::array::RecordBatch) {
        if rows.num_rows() == 0 {
            return;
        }
        self.add_late(rows.num_rows());
        self.rejects.reject(&Rejected { operator: &self.name, reason: "late", rows });
    }

    /// Rows without a rowtime: counted apart from late rows and handed to the reject path.
    pub fn rows_without_time(&self, rows: &datafusion::arrow::array::RecordBatch) {
        if rows.num_rows() == 0 {
            return;
        }
        self.dropped.fetch_add(rows.num_rows() as u64, Ordering::Relaxed);
        self.rejects.reject(&Rejected { operator: &self.name, reason: "NULL rowtime", rows });
    }
}

/// Snapshot of one operator's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OperatorCounts {
    pub late: u64,
    pub dropped: u64,
    pub state_keys: i64,
    pub state_bytes: i64,
}

/// Keeps a subtask's share of an operator's state gauges: call [`StateGauge::set`] with the subtask's
/// current totals and the operator-wide sums follow.
#[derive(Debug)]
pub struct StateGauge {
    metrics: Arc<OperatorMetrics>,
    keys: i64,
    bytes: i64,
    last: Option<std::time::Instant>,
}

impl StateGauge {
    pub fn new(metrics: Arc<OperatorMetrics>) -> Self {
        StateGauge { metrics, keys: 0, bytes: 0, last: None }
    }

    /// True at most once a second: measuring state walks it, so operators measure when due (and at
    /// the end of input).
    pub fn due(&mut self) -> bool {
        let now = std::time::Instant::now();
        if self.last.is_some_and(|l| now.duration_since(l) < std::time::Duration::from_secs(1)) {
            return false;
        }
        self.last = Some(now);
        true
    }
    pub fn set(&mut self, keys: usize, bytes: usize) {
        let (keys, bytes) = (keys as i64, bytes as i64);
        self.metrics.state_keys.fetch_add(keys - self.keys, Ordering::Relaxed);
        self.metrics.state_bytes.fetch_add(bytes - self.bytes, Ordering::Relaxed);
        self.keys = keys;
        self.bytes = bytes;
    }
    pub fn metrics(&self) -> &OperatorMetrics {
        &self.metrics
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    tables: Arc<Mutex<BTreeMap<String, Arc<TableMetrics>>>>,
    operators: Arc<Mutex<BTreeMap<String, Arc<OperatorMetrics>>>>,
    rejects: Arc<dyn RejectSink>,
    /// Checkpoints taken by the run.
    pub checkpoints: Arc<crate::checkpoint::CheckpointMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            tables: Arc::default(),
            operators: Arc::default(),
            rejects: Arc::new(LogRejects::default()),
            checkpoints: Arc::default(),
        }
    }
}

impl Metrics {
    pub fn table(&self, name: &str) -> Arc<TableMetrics> {
        self.tables.lock().expect("metrics lock is never poisoned").entry(name.to_string()).or_default().clone()
    }

    /// Counters of the operator called `name` (e.g. `WindowAggregate[3]`).
    pub fn operator(&self, name: &str) -> Arc<OperatorMetrics> {
        self.operators
            .lock()
            .expect("metrics lock is never poisoned")
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(OperatorMetrics {
                    name: name.to_string(),
                    rejects: self.rejects.clone(),
                    late: AtomicU64::new(0),
                    dropped: AtomicU64::new(0),
                    state_keys: AtomicI64::new(0),
                    state_bytes: AtomicI64::new(0),
                })
            })
            .clone()
    }

    /// Sends rejected rows (late rows) to `sink` instead of the log.
    pub fn with_rejects(mut self, sink: Arc<dyn RejectSink>) -> Self {
        self.rejects = sink;
        self
    }

    pub fn operator_snapshot(&self) -> BTreeMap<String, OperatorCounts> {
        self.operators
            .lock()
            .expect("metrics lock is never poisoned")
            .iter()
            .map(|(k, v)| {
                let c = OperatorCounts {
                    late: v.late.load(Ordering::Relaxed),
                    dropped: v.dropped.load(Ordering::Relaxed),
                    state_keys: v.state_keys.load(Ordering::Relaxed),
                    state_bytes: v.state_bytes.load(Ordering::Relaxed),
                };
                (k.clone(), c)
            })
            .collect()
    }

    pub fn snapshot(&self) -> BTreeMap<String, TableCounts> {
        self.tables
            .lock()
            .expect("metrics lock is never poisoned")
            .iter()
            .map(|(k, v)| {
                let c = TableCounts {
                    read: v.read.load(Ordering::Relaxed),
                    written: v.written.load(Ordering::Relaxed),
                    skipped: v.skipped.load(Ordering::Relaxed),
                };
                (k.clone(), c)
            })
            .collect()
    }
}
