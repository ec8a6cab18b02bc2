//! Window TVF: appends `window_start`, `window_end`, `window_time` to each row. Standalone it emits one
//! row per window the row belongs to; under a window aggregation (`panes`) it emits the row once with
//! the bounds of its pane, and the aggregation combines panes into windows.

use crate::metrics::OperatorMetrics;
use crate::operator::Operator;
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{cast, take, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use sluice_common::{SluiceError, StreamBatch, WindowKind, WindowSpec};
use std::sync::Arc;

pub struct WindowAssign {
    metrics: Arc<OperatorMetrics>,
    window: WindowSpec,
    time: usize,
    panes: bool,
    schema: SchemaRef,
}

impl WindowAssign {
    pub fn new(window: WindowSpec, time: usize, panes: bool, schema: SchemaRef, metrics: Arc<OperatorMetrics>) -> Self {
        WindowAssign { metrics, window, time, panes, schema }
    }
}

impl Operator for WindowAssign {
    fn name(&self) -> &str {
        "WindowAssign"
    }

    fn process_batch(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        let ts = cast(batch.data.column(self.time), &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        let ts = ts.as_primitive::<TimestampMillisecondType>();
        let mut rows = Vec::with_capacity(ts.len());
        let mut starts = Vec::with_capacity(ts.len());
        let mut ends = Vec::with_capacity(ts.len());
        let mut no_time = Vec::new();
        for (i, t) in ts.iter().enumerate() {
            // A row without a rowtime belongs to no window (Flink rejects NULL rowtimes at the source).
            let Some(t) = t else {
                no_time.push(i as u32);
                continue;
            };
            if let (true, WindowKind::Session { gap }) = (self.panes, self.window.kind) {
                // A session starts as the row's own window; the aggregation merges them.
                rows.push(i as u32);
                starts.push(t);
                ends.push(t + gap);
            } else if self.panes {
                let end = self.window.pane_end(t);
                rows.push(i as u32);
                starts.push(end - self.window.pane());
                ends.push(end);
            } else {
                for (s, e) in self.window.windows_of(t) {
                    rows.push(i as u32);
                    starts.push(s);
                    ends.push(e);
                }
            }
        }
        if !no_time.is_empty() {
            self.metrics.rows_without_time(&take_record_batch(&batch.data, &UInt32Array::from(no_time))?);
        }
        let idx = UInt32Array::from(rows);
        let mut columns: Vec<ArrayRef> =
            batch.data.columns().iter().map(|c| take(c.as_ref(), &idx, None)).collect::<Result<_, _>>()?;
        let time_type = self.schema.field(self.schema.fields().len() - 1).data_type().clone();
        let times: Vec<i64> = ends.iter().map(|e| e - 1).collect();
        columns.push(Arc::new(TimestampMillisecondArray::from(starts)));
        columns.push(Arc::new(TimestampMillisecondArray::from(ends)));
        columns.push(cast(&TimestampMillisecondArray::from(times), &time_type)?);
        let data = RecordBatch::try_new(self.schema.clone(), columns)?;
        out.push(StreamBatch { data, kinds: None });
        Ok(())
    }
}
