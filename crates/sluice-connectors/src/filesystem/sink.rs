//! Filesystem sink: JSON lines into a directory, in part files named
//! `part-<run id>-<subtask>-<n>.json`. A file is written as a hidden `.part-...inprogress` and
//! renamed to its final name when it rolls (`sink.rolling-policy.file-size`,
//! `sink.rolling-policy.rollover-interval`) or the input ends, so readers never see half a file.
//! Append-only: the planner refuses updating input.

use super::{bag, path_and_format};
use crate::format::json::{JsonEncoder, TimestampStandard};
use sluice_common::{ConnectorError, SluiceError, StreamBatch, TableSpec};
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
        })
    }

    fn io(&self, what: &str, e: std::io::Error) -> SluiceError {
        SluiceError::external(format!("{what} in '{}': {e}", self.config.path.display()))
    }

    fn open(&mut self) -> Result<&mut PartFile, SluiceError> {
        if self.current.is_none() {
            let name = format!("part-{}-{}-{}.json", self.run_id, self.subtask, self.next_part);
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

    fn roll(&mut self) -> Result<(), SluiceError> {
        if let Some(mut part) = self.current.take() {
            part.file.flush().map_err(|e| self.io("cannot flush a part file", e))?;
            part.file.sync_data().map_err(|e| self.io("cannot sync a part file", e))?;
            std::fs::rename(&part.in_progress, &part.done).map_err(|e| self.io("cannot finish a part file", e))?;
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

    async fn finish(&mut self) -> Result<(), SluiceError> {
        self.roll()
    }
}
