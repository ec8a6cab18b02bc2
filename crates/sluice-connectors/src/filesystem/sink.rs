//! Filesystem sink: JSON lines into a directory, in part files named
//! `part-<run id>-<subtask>-<n>.json`. A file is written as a hidden `.part-...inprogress` and
//! renamed to its final name when it rolls (`sink.rolling-policy.file-size`,
//! `sink.rolling-policy.rollover-interval`) or the input ends, so readers never see half a file.
//! Append-only: the planner refuses updating input.
//!
//! With checkpoints the sink is exactly-once (two-phase commit): a checkpoint barrier closes the
//! current file (pre-commit); closed files are renamed to their final names only when the
//! checkpoint is complete. On recovery the files the checkpoint pre-committed are renamed, and this
//! subtask's files numbered after the checkpoint (written by the failed run) are removed.

use super::{bag, path_and_format};
use crate::format::json::{JsonEncoder, TimestampStandard};
use sluice_common::{ConnectorError, SluiceError, StreamBatch, TableSpec};
use sluice_runtime::checkpoint::{StateReader, StateWriter};
use sluice_runtime::{Sink, SinkInit};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    pub path: PathBuf,
    pub timestamp_standard: TimestampStandard,
    /// `sink.rolling-policy.file-size`, default 128 MB.
    pub file_size: u64,
    /// `sink.rolling-policy.rollover-interval`, default 30 min.
    pub rollover_interval: Duration,
}

impl FileSinkConfig {
    pub fn from_spec(spec: &TableSpec) -> Result<Self, ConnectorError> {
        let mut bag = bag(spec);
        let (path, json) = path_and_format(&mut bag)?;
        let file_size = bag.memory_size("sink.rolling-policy.file-size")?.unwrap_or(128 << 20);
        let rollover_interval =
            bag.duration("sink.rolling-policy.rollover-interval")?.unwrap_or(Duration::from_secs(1800));
        bag.ignore("sink.rolling-policy.check-interval");
        bag.ignore("sink.parallelism");
        bag.finish()?;
        if !spec.metadata.is_empty() {
            return Err(ConnectorError::new("the filesystem sink writes no metadata columns"));
        }
        Ok(FileSinkConfig {
            path: PathBuf::from(path),
            timestamp_standard: json.timestamp_standard,
            file_size,
            rollover_interval,
        })
    }
}

struct PartFile {
    file: File,
    in_progress: PathBuf,
    done: PathBuf,
    bytes: u64,
    opened: Instant,
}

pub struct FileSink {
    config: FileSinkConfig,
    encoder: JsonEncoder,
    run_id: String,
    subtask: usize,
    next_part: u64,
    current: Option<PartFile>,
    buf: String,
    /// Two-phase commit: part files become visible when a checkpoint completes.
    checkpointing: bool,
    /// Closed part files not yet visible: (in-progress name, final name).
    closed: Vec<(String, String)>,
    /// Part files pre-committed at checkpoint `.0`, made visible when it completes.
    pending: Vec<(u64, String, String)>,
}

impl FileSink {
    pub fn new(config: FileSinkConfig, init: &SinkInit) -> Result<Self, SluiceError> {
        std::fs::create_dir_all(&config.path)
            .map_err(|e| SluiceError::external(format!("cannot create '{}': {e}", config.path.display())))?;
        let run_id = format!("{:016x}", rand::random::<u64>());
        Ok(FileSink {
            encoder: JsonEncoder { timestamp_standard: config.timestamp_standard },
            config,
            run_id,
            subtask: init.subtask,
            next_part: 0,
            current: None,
            buf: String::new(),
            checkpointing: init.checkpointing,
            closed: Vec::new(),
            pending: Vec::new(),
        })
    }

    fn io(&self, what: &str, e: std::io::Error) -> SluiceError {
        SluiceError::external(format!("{what} in '{}': {e}", self.config.path.display()))
    }

    fn part_name(&self, n: u64) -> String {
        format!("part-{}-{}-{n}.json", self.run_id, self.subtask)
    }

    fn open(&mut self) -> Result<&mut PartFile, SluiceError> {
        if self.current.is_none() {
            let name = self.part_name(self.next_part);
            self.next_part += 1;
            let in_progress = self.config.path.join(format!(".{name}.inprogress"));
            let file = File::create(&in_progress).map_err(|e| self.io("cannot create a part file", e))?;
            self.current = Some(PartFile {
                file,
                in_progress,
                done: self.config.path.join(name),
                bytes: 0,
                opened: Instant::now(),
            });
        }
        Ok(self.current.as_mut().expect("opened above"))
    }

    /// Closes the current part file: durable on disk, then visible at once (no checkpoints) or
    /// when the next checkpoint completes.
    fn roll(&mut self) -> Result<(), SluiceError> {
        if let Some(mut part) = self.current.take() {
            part.file.flush().map_err(|e| self.io("cannot flush a part file", e))?;
            part.file.sync_data().map_err(|e| self.io("cannot sync a part file", e))?;
            if self.checkpointing {
                let name = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                self.closed.push((name(&part.in_progress), name(&part.done)));
            } else {
                std::fs::rename(&part.in_progress, &part.done).map_err(|e| self.io("cannot finish a part file", e))?;
            }
        }
        Ok(())
    }

    /// Makes a closed part file visible; idempotent (recovery may repeat a commit).
    fn publish(&self, in_progress: &str, done: &str) -> Result<(), SluiceError> {
        let (from, to) = (self.config.path.join(in_progress), self.config.path.join(done));
        match std::fs::rename(&from, &to) {
            Ok(()) => Ok(()),
            Err(_) if to.exists() => Ok(()),
            Err(e) => Err(self.io(&format!("cannot commit part file '{done}'"), e)),
        }
    }

    /// After a restore: removes this subtask's part files numbered `next_part` or later, written
    /// after the checkpoint (their rows are written again).
    fn discard_after_checkpoint(&self) -> Result<(), SluiceError> {
        let prefix = format!("part-{}-{}-", self.run_id, self.subtask);
        let entries = std::fs::read_dir(&self.config.path).map_err(|e| self.io("cannot list", e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let visible = !name.starts_with('.');
            let base = name.trim_start_matches('.').trim_end_matches(".inprogress");
            let Some(n) = base.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".json")) else { continue };
            let Ok(n) = n.parse::<u64>() else { continue };
            if n < self.next_part {
                continue;
            }
            if visible {
                tracing::warn!(file = %name, "Removing a part file committed after the checkpoint being resumed");
            }
            std::fs::remove_file(entry.path()).map_err(|e| self.io("cannot remove an uncommitted part file", e))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Sink for FileSink {
    async fn write_batch(&mut self, batch: StreamBatch) -> Result<(), SluiceError> {
        self.buf.clear();
        let mut buf = std::mem::take(&mut self.buf);
        self.encoder.encode(&batch.data, &mut buf);
        let part = self.open()?;
        let result = part.file.write_all(buf.as_bytes());
        part.bytes += buf.len() as u64;
        let (bytes, age) = (part.bytes, part.opened.elapsed());
        self.buf = buf;
        result.map_err(|e| self.io("cannot write a part file", e))?;
        if bytes >= self.config.file_size || age >= self.config.rollover_interval {
            self.roll()?;
        }
        Ok(())
    }

    /// Closes the current part file (a checkpoint rolls it, as Flink's bulk formats do) and
    /// returns the run id, the next part number and the files waiting to become visible.
    async fn pre_commit(&mut self, checkpoint_id: u64) -> Result<Vec<u8>, SluiceError> {
        self.roll()?;
        for (a, b) in self.closed.drain(..) {
            self.pending.push((checkpoint_id, a, b));
        }
        let mut w = StateWriter::new();
        w.str(&self.run_id);
        w.u64(self.next_part);
        w.len(self.pending.len());
        for (id, a, b) in &self.pending {
            w.u64(*id);
            w.str(a);
            w.str(b);
        }
        Ok(w.finish())
    }

    async fn commit(&mut self, checkpoint_id: u64) -> Result<(), SluiceError> {
        let (ready, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending).into_iter().partition(|p| p.0 <= checkpoint_id);
        self.pending = later;
        for (_, a, b) in &ready {
            self.publish(a, b)?;
        }
        Ok(())
    }

    async fn restore(&mut self, state: &[u8]) -> Result<(), SluiceError> {
        let mut r = StateReader::new(state);
        self.run_id = r.str()?.to_string();
        self.next_part = r.u64()?;
        let mut pending = Vec::new();
        for _ in 0..r.len()? {
            pending.push((r.u64()?, r.str()?.to_string(), r.str()?.to_string()));
        }
        r.finish()?;
        // The restored checkpoint is complete: what it pre-committed is committed now.
        for (_, a, b) in &pending {
            if !self.config.path.join(a).exists() && !self.config.path.join(b).exists() {
                return Err(SluiceError::external(format!(
                    "part file '{b}' of the checkpoint is missing from '{}'",
                    self.config.path.display()
                )));
            }
            self.publish(a, b)?;
        }
        self.discard_after_checkpoint()
    }

    async fn finish(&mut self) -> Result<(), SluiceError> {
        self.roll()?;
        for (a, b) in std::mem::take(&mut self.closed) {
            self.publish(&a, &b)?;
        }
        for (_, a, b) in std::mem::take(&mut self.pending) {
            self.publish(&a, &b)?;
        }
        Ok(())
    }
}
