//! Event-time temporal join: `l [LEFT] JOIN v FOR SYSTEM_TIME AS OF l.ts ON l.k = v.k`.
//!
//! Input 0 (probe rows) is buffered until the watermark passes its rowtime; each row is then joined
//! with the version of its key valid at that time: the latest version whose rowtime is at or before
//! it. Input 1 (the versioned table) adds a version per `+I`/`+U` row and a tombstone per `-D` row
//! (`-U` is ignored, as in Flink). Versions that no future probe row can reach (older than the newest
//! version at or before the watermark) are dropped as the watermark advances. NULL keys never match.

use crate::metrics::{OperatorMetrics, StateGauge};
use crate::operator::Operator;
use crate::state::{FastMap, RowCodec};
use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, filter_record_batch, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use sluice_common::{RowKind, SluiceError, StreamBatch, Watermark};
use sluice_plan::{TemporalJoinSpec, TemporalJoinType};
use std::collections::HashSet;
use std::sync::Arc;

/// Versions of one key, oldest first; `None` is a deletion.
type Versions = Vec<(i64, Option<Box<[u8]>>)>;

pub struct TemporalJoin {
    spec: TemporalJoinSpec,
    schema: SchemaRef,
    left_keys: RowCodec,
    right_keys: RowCodec,
    right_rows: RowCodec,
    versions: FastMap<Box<[u8]>, Versions>,
    /// Keys holding more than one version: the only ones cleanup has to visit.
    multi: HashSet<Box<[u8]>, foldhash::fast::FixedState>,
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
        Ok(TemporalJoin {
            left_keys: RowCodec::for_exprs(&spec.left_keys, &left)?,
            right_keys: RowCodec::for_exprs(&spec.right_keys, &right)?,
            right_rows: RowCodec::for_rows(&right)?,
            spec,
            schema,
            versions: FastMap::default(),
            multi: HashSet::default(),
            pending: Vec::new(),
            watermark: i64::MIN,
            gauge: StateGauge::new(metrics),
        })
    }

    fn add_versions(&mut self, batch: &StreamBatch) -> Result<(), SluiceError> {
        let (keys, nulls) = self.right_keys.encode(&batch.data)?;
        let (rows, _) = self.right_rows.encode(&batch.data)?;
        let times = millis(batch.data.column(self.spec.right_time))?;
        for i in 0..batch.num_rows() {
            let (Some(ts), false) = (times[i], nulls[i]) else { continue };
            let value = match batch.kind(i) {
                RowKind::Insert | RowKind::UpdateAfter => Some(rows.row(i).data().into()),
                RowKind::Delete => None,
                RowKind::UpdateBefore => continue,
            };
            let key = keys.row(i).data();
            match self.versions.get_mut(key) {
                None => {
                    self.versions.insert(key.into(), vec![(ts, value)]);
                }
                Some(list) => {
                    if self.spec.right_dedup && list.last().is_some_and(|(t, _)| ts < *t) {
                        continue;
                    }
                    match list.binary_search_by_key(&ts, |(t, _)| *t) {
                        Ok(p) => list[p].1 = value,
                        Err(p) => list.insert(p, (ts, value)),
                    }
                    if list.len() > 1 {
                        self.multi.insert(key.into());
                    }
                }
            }
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
        let mut matched: Vec<&[u8]> = Vec::new();
        for i in 0..now.num_rows() {
            let version = match (times[i], nulls[i]) {
                (Some(t), false) => self.versions.get(keys.row(i).data()).and_then(|list| {
                    let p = list.partition_point(|(vt, _)| *vt <= t);
                    p.checked_sub(1).and_then(|p| list[p].1.as_deref())
                }),
                _ => None,
            };
            match version {
                Some(row) => {
                    left_idx.push(i as u32);
                    right_idx.push(Some(matched.len() as u32));
                    matched.push(row);
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
            let right_columns = self.right_rows.decode(matched.iter().copied())?;
            let ri = UInt32Array::from(right_idx);
            for c in right_columns {
                columns.push(take(&c, &ri, None)?);
            }
            out.push(StreamBatch::append_only(RecordBatch::try_new(self.schema.clone(), columns)?));
        }
        Ok(later)
    }

    /// Drops versions no probe row at or after the watermark can reach.
    fn cleanup(&mut self) {
        let wm = self.watermark;
        let versions = &mut self.versions;
        self.multi.retain(|key| {
            let Some(list) = versions.get_mut(key) else { return false };
            let p = list.partition_point(|(t, _)| *t <= wm);
            if p > 1 {
                list.drain(..p - 1);
            }
            if list.len() == 1 && list[0].1.is_none() && list[0].0 <= wm {
                versions.remove(key);
                return false;
            }
            list.len() > 1
        });
    }

    fn update_gauge(&mut self) {
        let bytes: usize = self
            .versions
            .iter()
            .map(|(k, v)| k.len() + 48 + v.iter().map(|(_, r)| 24 + r.as_ref().map_or(0, |r| r.len())).sum::<usize>())
            .sum::<usize>()
            + self.pending.iter().map(|b| b.get_array_memory_size()).sum::<usize>();
        self.gauge.set(self.versions.len(), bytes);
    }
}

impl Operator for TemporalJoin {
    fn name(&self) -> &str {
        "TemporalJoin"
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
        self.cleanup();
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
