//! Watermark generation in a source subtask (`WATERMARK FOR ts AS expr`).
//!
//! The watermark is the running maximum of `expr` over the rows read. It is emitted after every batch,
//! and also *inside* a batch right before a row whose rowtime is at or behind the watermark of the rows
//! before it, so each row meets downstream exactly the watermark it would meet if one were emitted per
//! row (Flink's `'scan.watermark.emit.strategy' = 'on-event'`). Lateness therefore does not depend on
//! how input is cut into batches.
//!
//! Sources that read several splits (Kafka partitions) in one subtask can generate watermarks per
//! split, as Flink does per partition: each split keeps its own maximum, the subtask's watermark is
//! the minimum over its splits ([`WatermarkGenerator::process_splits`]). A split without data for
//! the table's idle timeout no longer holds it back.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use sluice_common::{SluiceError, StreamBatch, Watermark};
use sluice_plan::SourceWatermark;
use std::time::Instant;

/// What a batch turns into: rows and the watermarks between them, in order.
#[derive(Debug)]
pub enum Piece {
    Rows(StreamBatch),
    Watermark(Watermark),
}

#[derive(Debug)]
pub struct WatermarkGenerator {
    spec: SourceWatermark,
    /// Highest watermark seen (emitted or not).
    current: i64,
    emitted: i64,
    last_data: Instant,
    idle: bool,
    /// Per split: its maximum and when it last had data (split-aware sources only).
    splits: std::collections::BTreeMap<u32, (i64, Instant)>,
}

fn millis(a: &dyn Array, what: &str) -> Result<Vec<Option<i64>>, SluiceError> {
    let ms = cast(a, &DataType::Timestamp(TimeUnit::Millisecond, None))
        .map_err(|e| SluiceError::internal(format!("{what} is not a timestamp: {e}")))?;
    Ok(ms.as_primitive::<TimestampMillisecondType>().iter().collect())
}

impl WatermarkGenerator {
    pub fn new(spec: SourceWatermark) -> Self {
        WatermarkGenerator {
            spec,
            current: i64::MIN,
            emitted: i64::MIN,
            last_data: Instant::now(),
            idle: false,
            splits: Default::default(),
        }
    }

    /// Splits `batch` into rows and watermarks (see the module docs), dropping the columns only the
    /// watermark needed.
    pub fn process(&mut self, batch: StreamBatch) -> Result<Vec<Piece>, SluiceError> {
        self.generate(batch, None)
    }

    /// As [`WatermarkGenerator::process`], with row `i` read from split `split_of[i]`: the
    /// watermark is the minimum of the splits' maxima (registered with [`Self::add_split`]).
    pub fn process_splits(&mut self, batch: StreamBatch, split_of: &[u32]) -> Result<Vec<Piece>, SluiceError> {
        debug_assert_eq!(batch.num_rows(), split_of.len());
        let now = Instant::now();
        for s in split_of {
            self.splits.entry(*s).or_insert((i64::MIN, now)).1 = now;
        }
        // The watermark never goes back, also when a split joins behind it.
        self.current = self.current.max(self.split_minimum());
        self.generate(batch, Some(split_of))
    }

    fn generate(&mut self, batch: StreamBatch, split_of: Option<&[u32]>) -> Result<Vec<Piece>, SluiceError> {
        self.last_data = Instant::now();
        self.idle = false;
        let n = batch.num_rows();
        let eval = |e: &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>, what: &str| {
            e.evaluate(&batch.data)
                .and_then(|v| v.into_array(n))
                .map_err(|err| SluiceError::internal(format!("evaluating the {what}: {err}")))
        };
        let rowtime = millis(eval(&self.spec.rowtime, "rowtime")?.as_ref(), "rowtime")?;
        let wm = millis(eval(&self.spec.watermark, "watermark expression")?.as_ref(), "watermark")?;
        let keep = |b: StreamBatch| -> Result<StreamBatch, SluiceError> {
            match &self.spec.keep {
                None => Ok(b),
                Some(cols) => Ok(StreamBatch { data: b.data.project(cols)?, kinds: b.kinds }),
            }
        };
        let mut out = Vec::new();
        let mut start = 0;
        for i in 0..n {
            if let Some(t) = rowtime[i] {
                if t <= self.current && self.current > self.emitted {
                    if i > start {
                        out.push(Piece::Rows(keep(slice(&batch, start, i - start))?));
                    }
                    out.push(Piece::Watermark(Watermark(self.current)));
                    self.emitted = self.current;
                    start = i;
                }
            }
            if let Some(w) = wm[i] {
                match split_of {
                    None => self.current = self.current.max(w),
                    Some(splits) => {
                        let split = self.splits.get_mut(&splits[i]).expect("registered by process_splits");
                        if w > split.0 {
                            split.0 = w;
                            self.current = self.current.max(self.split_minimum());
                        }
                    }
                }
            }
        }
        if start == 0 {
            out.push(Piece::Rows(keep(batch)?));
        } else if start < n {
            out.push(Piece::Rows(keep(slice(&batch, start, n - start))?));
        }
        if self.current > self.emitted {
            out.push(Piece::Watermark(Watermark(self.current)));
            self.emitted = self.current;
        }
        Ok(out)
    }

    /// A split this subtask now reads: until it has data it holds the watermark back (at its
    /// restored maximum, if it had one).
    pub fn add_split(&mut self, split: u32, restored: Option<i64>) {
        self.splits.entry(split).or_insert((restored.unwrap_or(i64::MIN), Instant::now()));
    }

    pub fn remove_split(&mut self, split: u32) {
        self.splits.remove(&split);
    }

    /// Per-split maxima, for checkpoints.
    pub fn split_state(&self) -> Vec<(u32, i64)> {
        self.splits.iter().map(|(&k, &(v, _))| (k, v)).collect()
    }

    /// The minimum over the splits that are not idle (all of them when every one is).
    fn split_minimum(&self) -> i64 {
        let now = Instant::now();
        let active = |t: &Instant| self.spec.idle_timeout.is_none_or(|d| now.duration_since(*t) < d);
        let min_active = self.splits.values().filter(|(_, t)| active(t)).map(|(v, _)| *v).min();
        min_active.or_else(|| self.splits.values().map(|(v, _)| *v).max()).unwrap_or(i64::MIN)
    }

    /// `(current, emitted)`: what a checkpoint keeps of the generator.
    pub fn state(&self) -> (i64, i64) {
        (self.current, self.emitted)
    }

    pub fn restore(&mut self, current: i64, emitted: i64) {
        self.current = current;
        self.emitted = emitted;
    }

    /// Marks the subtask idle now (it has no input: a Kafka subtask without partitions); true if
    /// it was not idle already.
    pub fn mark_idle(&mut self) -> bool {
        !std::mem::replace(&mut self.idle, true)
    }

    /// True once when the subtask has had no data for its idle timeout.
    pub fn became_idle(&mut self) -> bool {
        match self.spec.idle_timeout {
            Some(t) if !self.idle && self.last_data.elapsed() >= t => {
                self.idle = true;
                true
            }
            _ => false,
        }
    }
}

fn slice(b: &StreamBatch, offset: usize, len: usize) -> StreamBatch {
    StreamBatch { data: b.data.slice(offset, len), kinds: b.kinds.as_ref().map(|k| k.slice(offset, len)) }
}
