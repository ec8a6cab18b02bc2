//! Watermark generation in a source subtask (`WATERMARK FOR ts AS expr`).
//!
//! The watermark is the running maximum of `expr` over the rows read. It is emitted after every batch,
//! and also *inside* a batch right before a row whose rowtime is at or behind the watermark of the rows
//! before it, so each row meets downstream exactly the watermark it would meet if one were emitted per
//! row (Flink's `'scan.watermark.emit.strategy' = 'on-event'`). Lateness therefore does not depend on
//! how input is cut into batches.

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
}

fn millis(a: &dyn Array, what: &str) -> Result<Vec<Option<i64>>, SluiceError> {
    let ms = cast(a, &DataType::Timestamp(TimeUnit::Millisecond, None))
        .map_err(|e| SluiceError::internal(format!("{what} is not a timestamp: {e}")))?;
    Ok(ms.as_primitive::<TimestampMillisecondType>().iter().collect())
}

impl WatermarkGenerator {
    pub fn new(spec: SourceWatermark) -> Self {
        WatermarkGenerator { spec, current: i64::MIN, emitted: i64::MIN, last_data: Instant::now(), idle: false }
    }

    /// Splits `batch` into rows and watermarks (see the module docs), dropping the columns only the
    /// watermark needed.
    pub fn process(&mut self, batch: StreamBatch) -> Result<Vec<Piece>, SluiceError> {
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
                self.current = self.current.max(w);
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
