//! Window aggregation (TUMBLE, HOP, CUMULATE) over panes, as Flink's slicing window operator.
//!
//! Each input row carries the end of its pane (from `WindowAssign` in pane mode). A row is added to
//! its pane's DataFusion `GroupsAccumulator`s once; when the watermark passes a window's end, the
//! window's panes are combined (for TUMBLE the pane *is* the window) and one append-only row per key
//! is emitted. A row whose pane has already been fired is late: it is dropped and counted, as Flink
//! does (`numLateRecordsDropped`).

use crate::checkpoint::{StateReader, StateWriter};
use crate::metrics::{OperatorMetrics, StateGauge};
use crate::operator::Operator;
use crate::state::{FastMap, RowCodec};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::GroupsAccumulatorAdapter;
use sluice_common::{SluiceError, StreamBatch, Watermark, WindowKind};
use sluice_plan::{GroupSlot, WindowAggSpec};
use std::collections::BTreeMap;
use std::sync::Arc;

fn df(e: datafusion::error::DataFusionError) -> SluiceError {
    SluiceError::user(format!("window aggregate: {e}"))
}

/// Groups of one pane (or of one window being fired): key -> group index, and the accumulators.
struct Groups {
    index: FastMap<Box<[u8]>, usize>,
    keys: Vec<Box<[u8]>>,
    accs: Vec<Box<dyn GroupsAccumulator>>,
}

/// A pane whose accumulators were turned into state arrays so that several windows can merge it.
struct Frozen {
    keys: Vec<Box<[u8]>>,
    state: Vec<Vec<ArrayRef>>,
}

pub struct WindowAggregate {
    spec: WindowAggSpec,
    schema: SchemaRef,
    keys: Option<RowCodec>,
    panes: BTreeMap<i64, Groups>,
    frozen: BTreeMap<i64, Frozen>,
    watermark: i64,
    /// Every window ending at or before this has been emitted.
    fired_to: i64,
    metrics: Arc<OperatorMetrics>,
    gauge: StateGauge,
}

impl WindowAggregate {
    pub fn new(
        spec: WindowAggSpec,
        input: SchemaRef,
        schema: SchemaRef,
        metrics: Arc<OperatorMetrics>,
    ) -> Result<Self, SluiceError> {
        let keys = if spec.keys.is_empty() { None } else { Some(RowCodec::for_exprs(&spec.keys, &input)?) };
        Ok(WindowAggregate {
            spec,
            schema,
            keys,
            panes: BTreeMap::new(),
            frozen: BTreeMap::new(),
            watermark: i64::MIN,
            fired_to: i64::MIN,
            gauge: StateGauge::new(metrics.clone()),
            metrics,
        })
    }

    fn new_groups(&self) -> Result<Groups, SluiceError> {
        let accs = self
            .spec
            .aggregates
            .iter()
            .map(|a| -> Result<Box<dyn GroupsAccumulator>, SluiceError> {
                if a.groups_accumulator_supported() {
                    a.create_groups_accumulator().map_err(df)
                } else {
                    let a = a.clone();
                    Ok(Box::new(GroupsAccumulatorAdapter::new(move || a.create_accumulator())))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Groups { index: FastMap::default(), keys: Vec::new(), accs })
    }

    /// Adds the rows of `batch` (all in the pane ending at `pane_end`).
    fn add(&mut self, pane_end: i64, batch: &RecordBatch) -> Result<(), SluiceError> {
        let n = batch.num_rows();
        let encoded = match &self.keys {
            Some(codec) => Some(codec.encode(batch)?.0),
            None => None,
        };
        if !self.panes.contains_key(&pane_end) {
            let g = self.new_groups()?;
            self.panes.insert(pane_end, g);
        }
        let groups = self.panes.get_mut(&pane_end).expect("inserted above");
        let mut indices = Vec::with_capacity(n);
        for i in 0..n {
            let key: &[u8] = match &encoded {
                Some(rows) => rows.row(i).data(),
                None => &[],
            };
            let g = match groups.index.get(key) {
                Some(g) => *g,
                None => {
                    let g = groups.keys.len();
                    groups.index.insert(key.into(), g);
                    groups.keys.push(key.into());
                    g
                }
            };
            indices.push(g);
        }
        let total = groups.keys.len();
        for (k, agg) in self.spec.aggregates.iter().enumerate() {
            let args = agg
                .expressions()
                .iter()
                .map(|e| e.evaluate(batch).and_then(|v| v.into_array(n)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(df)?;
            let mask = match &self.spec.filters[k] {
                Some(f) => Some(f.evaluate(batch).and_then(|v| v.into_array(n)).map_err(df)?.as_boolean().clone()),
                None => None,
            };
            groups.accs[k].update_batch(&args, &indices, mask.as_ref(), total).map_err(df)?;
        }
        Ok(())
    }

    /// One output row per group of `groups`, for the window `[start, end)`.
    fn emit(
        &self,
        keys: &[&[u8]],
        accs: &mut [Box<dyn GroupsAccumulator>],
        start: i64,
        end: i64,
        out: &mut Vec<StreamBatch>,
    ) -> Result<(), SluiceError> {
        let n = keys.len();
        if n == 0 {
            return Ok(());
        }
        let key_columns = match &self.keys {
            Some(codec) => codec.decode(keys.iter().copied())?,
            None => Vec::new(),
        };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, slot) in self.spec.slots.iter().enumerate() {
            let field_type = self.schema.field(i).data_type();
            let ts = |v: i64| -> Result<ArrayRef, SluiceError> {
                Ok(cast(&TimestampMillisecondArray::from(vec![v; n]), field_type)?)
            };
            columns.push(match slot {
                GroupSlot::Key(k) => key_columns[*k].clone(),
                GroupSlot::WindowStart => ts(start)?,
                GroupSlot::WindowEnd => ts(end)?,
                GroupSlot::WindowTime => ts(end - 1)?,
            });
        }
        for acc in accs.iter_mut() {
            columns.push(acc.evaluate(EmitTo::All).map_err(df)?);
        }
        let columns = crate::state::conform(columns, &self.schema)?;
        out.push(StreamBatch::append_only(RecordBatch::try_new(self.schema.clone(), columns)?));
        Ok(())
    }

    fn freeze(&self, mut g: Groups) -> Result<Frozen, SluiceError> {
        let state = g.accs.iter_mut().map(|a| a.state(EmitTo::All).map_err(df)).collect::<Result<_, _>>()?;
        Ok(Frozen { keys: g.keys, state })
    }

    /// Merges the frozen panes of `[start, end)` into fresh accumulators; keys borrow from the panes.
    #[allow(clippy::type_complexity)]
    fn combine(&self, start: i64, end: i64) -> Result<(Vec<&[u8]>, Vec<Box<dyn GroupsAccumulator>>), SluiceError> {
        let mut accs = self.new_groups()?.accs;
        let mut index: FastMap<&[u8], usize> = FastMap::default();
        let mut keys: Vec<&[u8]> = Vec::new();
        for (_, pane) in self.frozen.range(start + 1..=end) {
            index.reserve(pane.keys.len());
            let mut indices = Vec::with_capacity(pane.keys.len());
            for key in &pane.keys {
                let next = keys.len();
                let g = *index.entry(key.as_ref()).or_insert(next);
                if g == next {
                    keys.push(key.as_ref());
                }
                indices.push(g);
            }
            let total = keys.len();
            for (acc, state) in accs.iter_mut().zip(&pane.state) {
                acc.merge_batch(state, &indices, total).map_err(df)?;
            }
        }
        Ok((keys, accs))
    }

    fn update_gauge(&mut self) {
        let keys: usize = self.panes.values().map(|g| g.keys.len()).sum::<usize>()
            + self.frozen.values().map(|f| f.keys.len()).sum::<usize>();
        let bytes: usize = self
            .panes
            .values()
            .map(|g| {
                g.keys.iter().map(|k| k.len() + 48).sum::<usize>() + g.accs.iter().map(|a| a.size()).sum::<usize>()
            })
            .sum::<usize>()
            + self
                .frozen
                .values()
                .map(|f| {
                    f.keys.iter().map(|k| k.len() + 16).sum::<usize>()
                        + f.state.iter().flatten().map(|a| a.get_array_memory_size()).sum::<usize>()
                })
                .sum::<usize>();
        self.gauge.set(keys, bytes);
    }
}

fn write_keys(w: &mut StateWriter, keys: &[Box<[u8]>]) {
    w.len(keys.len());
    for k in keys {
        w.bytes(k);
    }
}

fn read_keys(r: &mut StateReader<'_>) -> Result<Vec<Box<[u8]>>, SluiceError> {
    (0..r.len()?).map(|_| r.bytes().map(Into::into)).collect()
}

impl Operator for WindowAggregate {
    fn name(&self) -> &str {
        "WindowAggregate"
    }

    /// The watermark and fired-to mark; each open pane's keys and accumulator states (the
    /// accumulators are rebuilt from the state taken); each frozen pane as it is.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, SluiceError> {
        let mut w = StateWriter::new();
        w.i64(self.watermark);
        w.i64(self.fired_to);
        w.len(self.panes.len());
        let ends: Vec<i64> = self.panes.keys().copied().collect();
        for end in ends {
            let mut fresh = self.new_groups()?.accs;
            let g = self.panes.get_mut(&end).expect("listed above");
            w.i64(end);
            write_keys(&mut w, &g.keys);
            let n = g.keys.len();
            let indices: Vec<usize> = (0..n).collect();
            for (acc, new) in g.accs.iter_mut().zip(fresh.iter_mut()) {
                let state = acc.state(EmitTo::All).map_err(df)?;
                w.arrays(n, &state)?;
                new.merge_batch(&state, &indices, n).map_err(df)?;
            }
            g.accs = fresh;
        }
        w.len(self.frozen.len());
        for (end, f) in &self.frozen {
            w.i64(*end);
            write_keys(&mut w, &f.keys);
            for state in &f.state {
                w.arrays(f.keys.len(), state)?;
            }
        }
        Ok(Some(w.finish()))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SluiceError> {
        let mut r = StateReader::new(state);
        self.watermark = r.i64()?;
        self.fired_to = r.i64()?;
        for _ in 0..r.len()? {
            let end = r.i64()?;
            let keys = read_keys(&mut r)?;
            let mut g = self.new_groups()?;
            let n = keys.len();
            let indices: Vec<usize> = (0..n).collect();
            for acc in g.accs.iter_mut() {
                let (_, state) = r.arrays()?;
                acc.merge_batch(&state, &indices, n).map_err(df)?;
            }
            g.index = keys.iter().enumerate().map(|(i, k)| (k.clone(), i)).collect();
            g.keys = keys;
            self.panes.insert(end, g);
        }
        for _ in 0..r.len()? {
            let end = r.i64()?;
            let keys = read_keys(&mut r)?;
            let state =
                (0..self.spec.aggregates.len()).map(|_| r.arrays().map(|a| a.1)).collect::<Result<Vec<_>, _>>()?;
            self.frozen.insert(end, Frozen { keys, state });
        }
        r.finish()
    }

    fn process_batch(&mut self, batch: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        let ends = cast(batch.data.column(self.spec.pane_end), &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        let ends = ends.as_primitive::<TimestampMillisecondType>();
        // Late: the pane was fired already.
        let wm = self.watermark;
        let late = ends.values().iter().filter(|&&e| e.saturating_sub(1) <= wm).count();
        let data = if late > 0 {
            let keep = BooleanArray::from_iter(ends.values().iter().map(|&e| Some(e.saturating_sub(1) > wm)));
            let dropped = BooleanArray::from_iter(ends.values().iter().map(|&e| Some(e.saturating_sub(1) <= wm)));
            self.metrics.late_rows(&filter_record_batch(&batch.data, &dropped)?);
            filter_record_batch(&batch.data, &keep)?
        } else {
            batch.data
        };
        if data.num_rows() == 0 {
            return Ok(());
        }
        let ends = cast(data.column(self.spec.pane_end), &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        let ends = ends.as_primitive::<TimestampMillisecondType>().values().to_vec();
        let first = ends[0];
        if ends.iter().all(|&e| e == first) {
            return self.add(first, &data);
        }
        let mut by_pane: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (i, e) in ends.iter().enumerate() {
            by_pane.entry(*e).or_default().push(i as u32);
        }
        for (end, rows) in by_pane {
            let part = take_record_batch(&data, &UInt32Array::from(rows))?;
            self.add(end, &part)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Watermark, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        self.watermark = watermark.0;
        let limit = watermark.0.saturating_add(1);
        let ready: Vec<i64> = self.panes.range(..=limit).map(|(e, _)| *e).collect();
        if let WindowKind::Tumble { .. } = self.spec.window.kind {
            for end in ready {
                let mut g = self.panes.remove(&end).expect("listed above");
                let keys: Vec<&[u8]> = g.keys.iter().map(|k| k.as_ref()).collect();
                self.emit(&keys, &mut g.accs, self.spec.window.window_start(end), end, out)?;
            }
        } else {
            // Window ends to fire: those of the panes now complete, and of the frozen panes still
            // waiting for later windows.
            let mut ends: Vec<i64> = Vec::new();
            for &p in ready.iter().chain(self.frozen.keys()) {
                ends.extend(
                    self.spec.window.window_ends_of_pane(p).into_iter().filter(|&e| e > self.fired_to && e <= limit),
                );
            }
            ends.sort_unstable();
            ends.dedup();
            for end in ready {
                let g = self.panes.remove(&end).expect("listed above");
                let f = self.freeze(g)?;
                self.frozen.insert(end, f);
            }
            for end in ends {
                let start = self.spec.window.window_start(end);
                let (keys, mut accs) = self.combine(start, end)?;
                self.emit(&keys, &mut accs, start, end, out)?;
            }
            self.fired_to = self.fired_to.max(limit);
            let fired_to = self.fired_to;
            let window = self.spec.window;
            self.frozen.retain(|&p, _| window.window_ends_of_pane(p).last().is_some_and(|&last| last > fired_to));
        }
        if self.gauge.due() {
            self.update_gauge();
        }
        Ok(())
    }

    fn on_end(&mut self, _out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        self.update_gauge();
        Ok(())
    }
}
