//! Event-time temporal join: `l [LEFT] JOIN v FOR SYSTEM_TIME AS OF l.ts ON l.k = v.k`.
//!
//! Input 0 (probe rows) is buffered until the watermark passes its rowtime; each row is then joined
//! with the version of its key valid at that time: the latest version whose rowtime is at or before
//! it. Input 1 (the versioned table) adds a version per `+I`/`+U` row and a tombstone per `-D` row
//! (`-U` is ignored, as in Flink). Versions that no future probe row can reach (older than the newest
//! version at or before the watermark) are dropped as the watermark advances. NULL keys never match.

use crate::checkpoint::{StateReader, StateWriter};
use crate::metrics::{OperatorMetrics, StateGauge};
use crate::operator::Operator;
use crate::state::RowCodec;
use crate::versions::VersionStore;
use datafusion::arrow::array::TimestampMillisecondArray;
use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, filter_record_batch, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::PhysicalExpr;
use sluice_common::{RowKind, SluiceError, StreamBatch, Watermark};
use sluice_plan::{TemporalJoinSpec, TemporalJoinType};
use std::sync::Arc;

/// Where each column of the versioned side is kept: in the key, as the version's time, or in the value.
#[derive(Debug, Clone, Copy)]
enum RightColumn {
    Key(usize),
    Time,
    Value(usize),
}

pub struct TemporalJoin {
    spec: TemporalJoinSpec,
    schema: SchemaRef,
    left_schema: SchemaRef,
    right_schema: SchemaRef,
    left_keys: RowCodec,
    right_keys: RowCodec,
    /// The versioned side's columns that are neither key nor time.
    values: RowCodec,
    layout: Vec<RightColumn>,
    versions: VersionStore,
    pending: Vec<RecordBatch>,
    watermark: i64,
    gauge: StateGauge,
}

fn millis(a: &ArrayRef) -> Result<Vec<Option<i64>>, SluiceError> {
    let ms = cast(a, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    Ok(ms.as_primitive::<TimestampMillisecondType>().iter().collect())
}

impl TemporalJoin {
    pub fn new(
        spec: TemporalJoinSpec,
        left: SchemaRef,
        right: SchemaRef,
        schema: SchemaRef,
        metrics: Arc<OperatorMetrics>,
    ) -> Result<Self, SluiceError> {
        let key_column = |c: usize| {
            spec.right_keys.iter().position(|k| k.downcast_ref::<PhysicalColumn>().is_some_and(|col| col.index() == c))
        };
        let mut layout = Vec::new();
        let mut value_exprs: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        for (c, field) in right.fields().iter().enumerate() {
            layout.push(match key_column(c) {
                Some(k) => RightColumn::Key(k),
                None if c == spec.right_time => RightColumn::Time,
                None => {
                    value_exprs.push(Arc::new(PhysicalColumn::new(field.name(), c)));
                    RightColumn::Value(value_exprs.len() - 1)
                }
            });
        }
        Ok(TemporalJoin {
            left_keys: RowCodec::for_exprs(&spec.left_keys, &left)?,
            right_keys: RowCodec::for_exprs(&spec.right_keys, &right)?,
            values: RowCodec::for_exprs(&value_exprs, &right)?,
            layout,
            right_schema: right,
            left_schema: left,
            spec,
            schema,
            versions: VersionStore::default(),
            pending: Vec::new(),
            watermark: i64::MIN,
            gauge: StateGauge::new(metrics),
        })
    }

    fn add_versions(&mut self, batch: &StreamBatch) -> Result<(), SluiceError> {
        let (keys, nulls) = self.right_keys.encode(&batch.data)?;
        let (values, _) = self.values.encode(&batch.data)?;
        let times = millis(batch.data.column(self.spec.right_time))?;
        let no_time: Vec<u32> = (0..batch.num_rows() as u32).filter(|&i| times[i as usize].is_none()).collect();
        if !no_time.is_empty() {
            let rows = datafusion::arrow::compute::take_record_batch(&batch.data, &UInt32Array::from(no_time))?;
            self.gauge.metrics().rows_without_time(&rows);
        }
        for i in 0..batch.num_rows() {
            // A NULL key can never be matched (NULL keys never join); a NULL time was reported above.
            let (Some(ts), false) = (times[i], nulls[i]) else { continue };
            let value = match batch.kind(i) {
                RowKind::Insert | RowKind::UpdateAfter => Some(values.row(i).data()),
                RowKind::Delete => None,
                RowKind::UpdateBefore => continue,
            };
            self.versions.insert(keys.row(i).data(), ts, value, self.spec.right_dedup);
        }
        Ok(())
    }

    /// Joins the probe rows of `batch` whose rowtime is at or before the watermark; returns the rest.
    fn join_ready(
        &mut self,
        batch: RecordBatch,
        out: &mut Vec<StreamBatch>,
    ) -> Result<Option<RecordBatch>, SluiceError> {
        let times = millis(batch.column(self.spec.left_time))?;
        let wm = self.watermark;
        let ready = times.iter().filter(|t| t.is_some_and(|t| t <= wm)).count();
        // Rows without a rowtime can never be joined in time; they pass through unmatched.
        let no_time = times.iter().filter(|t| t.is_none()).count();
        if ready + no_time == 0 {
            return Ok(Some(batch));
        }
        let (now, later) = if ready + no_time == batch.num_rows() {
            (batch, None)
        } else {
            let mask = BooleanArray::from_iter(times.iter().map(|t| Some(t.is_none_or(|t| t <= wm))));
            let rest = BooleanArray::from_iter(times.iter().map(|t| Some(t.is_some_and(|t| t > wm))));
            (filter_record_batch(&batch, &mask)?, Some(filter_record_batch(&batch, &rest)?))
        };
        let times = millis(now.column(self.spec.left_time))?;
        let (keys, nulls) = self.left_keys.encode(&now)?;
        let mut left_idx: Vec<u32> = Vec::with_capacity(now.num_rows());
        let mut right_idx: Vec<Option<u32>> = Vec::with_capacity(now.num_rows());
        let mut matched_keys: Vec<&[u8]> = Vec::new();
        let mut matched_values: Vec<&[u8]> = Vec::new();
        let mut matched_times: Vec<i64> = Vec::new();
        for i in 0..now.num_rows() {
            let version = match (times[i], nulls[i]) {
                (Some(t), false) => self.versions.lookup(keys.row(i).data(), t),
                _ => None,
            };
            match version {
                Some((time, value)) => {
                    left_idx.push(i as u32);
                    right_idx.push(Some(matched_values.len() as u32));
                    matched_keys.push(keys.row(i).data());
                    matched_values.push(value);
                    matched_times.push(time);
                }
                None if self.spec.join_type == TemporalJoinType::Left => {
                    left_idx.push(i as u32);
                    right_idx.push(None);
                }
                None => {}
            }
        }
        if !left_idx.is_empty() {
            let li = UInt32Array::from(left_idx);
            let mut columns: Vec<ArrayRef> =
                now.columns().iter().map(|c| take(c, &li, None)).collect::<Result<_, _>>()?;
            let key_columns = self.right_keys.decode(matched_keys.iter().copied())?;
            let value_columns = self.values.decode(matched_values.iter().copied())?;
            let time_type = self.right_schema.field(self.spec.right_time).data_type();
            let time_column = cast(&TimestampMillisecondArray::from(matched_times), time_type)?;
            let ri = UInt32Array::from(right_idx);
            for (c, place) in self.layout.iter().enumerate() {
                let column = match place {
                    RightColumn::Key(k) => key_columns[*k].clone(),
                    RightColumn::Time => time_column.clone(),
                    RightColumn::Value(v) => value_columns[*v].clone(),
                };
                let field_type = self.right_schema.field(c).data_type();
                let column = if column.data_type() == field_type { column } else { cast(&column, field_type)? };
                columns.push(take(&column, &ri, None)?);
            }
            out.push(StreamBatch::append_only(RecordBatch::try_new(self.schema.clone(), columns)?));
        }
        Ok(later)
    }

    fn update_gauge(&mut self) {
        let pending: usize = self.pending.iter().map(|b| b.get_array_memory_size()).sum();
        self.gauge.set(self.versions.keys(), self.versions.bytes() + pending);
    }
}

impl Operator for TemporalJoin {
    fn name(&self) -> &str {
        "TemporalJoin"
    }

    /// The watermark, the versions, and the probe rows waiting for the watermark.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, SluiceError> {
        let mut w = StateWriter::with_capacity(self.versions.bytes());
        w.i64(self.watermark);
        self.versions.snapshot(&mut w);
        w.batches(&self.left_schema, &self.pending)?;
        Ok(Some(w.finish()))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SluiceError> {
        let mut r = StateReader::new(state);
        self.watermark = r.i64()?;
        self.versions = VersionStore::restore(&mut r)?;
        let (_, pending) = r.batches()?;
        r.finish()?;
        for b in pending {
            self.pending.push(RecordBatch::try_new(self.left_schema.clone(), b.columns().to_vec())?);
        }
        Ok(())
    }

    fn process_batch(&mut self, batch: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        if batch.num_rows() > 0 {
            self.pending.push(batch.data);
        }
        Ok(())
    }

    fn process_input(
        &mut self,
        input: usize,
        batch: StreamBatch,
        out: &mut Vec<StreamBatch>,
    ) -> Result<(), SluiceError> {
        match input {
            0 => self.process_batch(batch, out),
            _ => self.add_versions(&batch),
        }
    }

    fn on_watermark(&mut self, watermark: Watermark, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        self.watermark = watermark.0;
        let pending = std::mem::take(&mut self.pending);
        for b in pending {
            if let Some(rest) = self.join_ready(b, out)? {
                self.pending.push(rest);
            }
        }
        self.versions.cleanup(self.watermark);
        if self.gauge.due() {
            self.update_gauge();
        }
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        // End of input implies the maximum watermark; join whatever is still buffered.
        self.watermark = i64::MAX;
        for b in std::mem::take(&mut self.pending) {
            self.join_ready(b, out)?;
        }
        self.update_gauge();
        Ok(())
    }
}
