//! Counters per table (records read, written, skipped) and per operator (late records, state size),
//! shared by all subtasks, read for the run summary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
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

#[derive(Debug, Default, Clone)]
pub struct Metrics {
    tables: Arc<Mutex<BTreeMap<String, Arc<TableMetrics>>>>,
}

impl Metrics {
    pub fn table(&self, name: &str) -> Arc<TableMetrics> {
        self.tables.lock().expect("metrics lock is never poisoned").entry(name.to_string()).or_default().clone()
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
