//! The unit of data flow: an Arrow [`RecordBatch`] plus, for updating streams, one [`RowKind`] per row.
//!
//! Invariant: `kinds` is `None` for append-only data (every row is `+I`), otherwise it has exactly
//! `batch.num_rows()` entries. Operators that drop or reorder rows must do the same to `kinds`.

use arrow::array::{Array, BooleanArray, Int8Array, UInt32Array};
use arrow::compute::{filter, take};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use std::fmt;

/// Flink's `RowKind`: the change a row describes in a changelog stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum RowKind {
    Insert = 0,
    UpdateBefore = 1,
    UpdateAfter = 2,
    Delete = 3,
}

impl RowKind {
    /// The short form Flink prints: `+I`, `-U`, `+U`, `-D`.
    pub fn short_string(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    pub fn from_i8(v: i8) -> RowKind {
        match v {
            1 => RowKind::UpdateBefore,
            2 => RowKind::UpdateAfter,
            3 => RowKind::Delete,
            _ => RowKind::Insert,
        }
    }

    /// `+I` and `+U` add a row to the result; `-U` and `-D` take one away.
    pub fn is_addition(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_string())
    }
}

/// A batch of rows with their changelog kinds.
#[derive(Debug, Clone)]
pub struct StreamBatch {
    pub data: RecordBatch,
    /// `None`: all rows are inserts. Otherwise one `RowKind as i8` per row.
    pub kinds: Option<Int8Array>,
}

impl StreamBatch {
    pub fn append_only(data: RecordBatch) -> Self {
        StreamBatch { data, kinds: None }
    }

    pub fn with_kinds(data: RecordBatch, kinds: Vec<RowKind>) -> Self {
        debug_assert_eq!(data.num_rows(), kinds.len());
        let kinds = Int8Array::from_iter_values(kinds.into_iter().map(|k| k as i8));
        StreamBatch { data, kinds: Some(kinds) }
    }

    pub fn num_rows(&self) -> usize {
        self.data.num_rows()
    }

    pub fn kind(&self, row: usize) -> RowKind {
        match &self.kinds {
            None => RowKind::Insert,
            Some(k) => RowKind::from_i8(k.value(row)),
        }
    }

    /// Keeps the rows where `mask` is true (nulls count as false), kinds included.
    pub fn filter(&self, mask: &BooleanArray) -> Result<StreamBatch, ArrowError> {
        let data = arrow::compute::filter_record_batch(&self.data, mask)?;
        let kinds = match &self.kinds {
            None => None,
            Some(k) => Some(
                filter(k, mask)?
                    .as_any()
                    .downcast_ref::<Int8Array>()
                    .expect("filter of Int8Array is Int8Array")
                    .clone(),
            ),
        };
        Ok(StreamBatch { data, kinds })
    }

    /// Rows at `indices`, in that order, kinds included.
    pub fn take(&self, indices: &UInt32Array) -> Result<StreamBatch, ArrowError> {
        let columns =
            self.data.columns().iter().map(|c| take(c.as_ref(), indices, None)).collect::<Result<Vec<_>, _>>()?;
        let data = RecordBatch::try_new_with_options(
            self.data.schema(),
            columns,
            &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(indices.len())),
        )?;
        let kinds = match &self.kinds {
            None => None,
            Some(k) => Some(
                take(k, indices, None)?
                    .as_any()
                    .downcast_ref::<Int8Array>()
                    .expect("take of Int8Array is Int8Array")
                    .clone(),
            ),
        };
        Ok(StreamBatch { data, kinds })
    }
}

/// Event-time progress: no row with an event time at or below `0` (epoch millis) will follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watermark(pub i64);

/// A checkpoint barrier (the checkpoint issue gives it behaviour; the runtime already forwards it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    pub checkpoint_id: u64,
}

impl Watermark {
    /// Sent when bounded input ends: every window and join can complete (as in Flink).
    pub const MAX: Watermark = Watermark(i64::MAX);
}

/// The one message type on every channel, in order: data, watermarks, barriers, end of stream.
#[derive(Debug, Clone)]
pub enum Message {
    Batch(StreamBatch),
    Watermark(Watermark),
    /// The sender has had no data for its idle timeout: do not wait for its watermark until it sends
    /// a batch or a watermark again (Flink's `WatermarkStatus.IDLE`).
    Idle,
    Barrier(Barrier),
    End,
}
