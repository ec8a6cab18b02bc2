//! SESSION window aggregation: per key, a row opens the window `[ts, ts + gap)`; windows that touch
//! are merged (Flink's merging window set), accumulators included. A session is emitted once, when
//! the watermark passes its end. A row that merges into no open session and whose own window has
//! already closed is late: dropped and counted.

use crate::checkpoint::{StateReader, StateWriter};
use crate::metrics::{OperatorMetrics, StateGauge};
use crate::operator::Operator;
use crate::state::AccumulatorColumns;
use crate::state::{FastMap, RowCodec};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, TimestampMillisecondArray, UInt32Array};
use datafusion::arrow::compute::{cast, filter, take};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use datafusion::logical_expr::Accumulator;
use sluice_common::{SluiceError, StreamBatch, Watermark, WindowKind};
use sluice_plan::{GroupSlot, WindowAggSpec};
use std::collections::BTreeSet;
use std::sync::Arc;

fn df(e: datafusion::error::DataFusionError) -> SluiceError {
    SluiceError::user(format!("session window: {e}"))
}

/// A fired session: key, start, end, aggregate values.
type Closed = (Box<[u8]>, i64, i64, Vec<datafusion::common::ScalarValue>);

struct Session {
    start: i64,
    end: i64,
    accs: Vec<Box<dyn Accumulator>>,
    /// Rows of the current batch that belong to this session (added after the batch is placed).
    pending: Vec<u32>,
}

pub struct SessionWindow {
    spec: WindowAggSpec,
    gap: i64,
    schema: SchemaRef,
    keys: Option<RowCodec>,
    sessions: FastMap<Box<[u8]>, Vec<Session>>,
    /// (session end, key): when to look at a key's sessions.
    timers: BTreeSet<(i64, Box<[u8]>)>,
    watermark: i64,
    metrics: Arc<OperatorMetrics>,
    gauge: StateGauge,
}

impl SessionWindow {
    pub fn new(
        spec: WindowAggSpec,
        input: SchemaRef,
        schema: SchemaRef,
        metrics: Arc<OperatorMetrics>,
    ) -> Result<Self, SluiceError> {
        let WindowKind::Session { gap } = spec.window.kind else {
            return Err(SluiceError::internal("session operator for a non-session window"));
        };
        let keys = if spec.keys.is_empty() { None } else { Some(RowCodec::for_exprs(&spec.keys, &input)?) };
        Ok(SessionWindow {
            spec,
            gap,
            schema,
            keys,
            sessions: FastMap::default(),
            timers: BTreeSet::new(),
            watermark: i64::MIN,
            gauge: StateGauge::new(metrics.clone()),
            metrics,
        })
    }

    fn new_accs(&self) -> Result<Vec<Box<dyn Accumulator>>, SluiceError> {
        self.spec.aggregates.iter().map(|a| a.create_accumulator().map_err(df)).collect()
    }

    /// Merges the accumulators of `from` into `into`.
    fn merge(into: &mut Session, mut from: Session) -> Result<(), SluiceError> {
        for (a, b) in into.accs.iter_mut().zip(from.accs.iter_mut()) {
            let state = b.state().map_err(df)?;
            let arrays = state.iter().map(|s| s.to_array()).collect::<Result<Vec<_>, _>>().map_err(df)?;
            a.merge_batch(&arrays).map_err(df)?;
        }
        into.start = into.start.min(from.start);
        into.end = into.end.max(from.end);
        into.pending.append(&mut from.pending);
        Ok(())
    }

    fn emit(&mut self, key: &[u8], mut s: Session, out: &mut Vec<Closed>) -> Result<(), SluiceError> {
        let values = s.accs.iter_mut().map(|a| a.evaluate().map_err(df)).collect::<Result<Vec<_>, _>>()?;
        out.push((key.into(), s.start, s.end, values));
        Ok(())
    }

    fn update_gauge(&mut self) {
        let n: usize = self.sessions.values().map(|v| v.len()).sum();
        let bytes: usize = self
            .sessions
            .iter()
            .map(|(k, v)| {
                k.len() + 48 + v.iter().map(|s| 40 + s.accs.iter().map(|a| a.size()).sum::<usize>()).sum::<usize>()
            })
            .sum();
        self.gauge.set(n, bytes);
    }
}

impl Operator for SessionWindow {
    fn name(&self) -> &str {
        "SessionWindowAggregate"
    }

    /// The watermark; per open session its key, bounds and (per aggregate, as columns) accumulator state.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, SluiceError> {
        let mut w = StateWriter::new();
        w.i64(self.watermark);
        let mut states = AccumulatorColumns::new(&self.spec.aggregates, false);
        w.len(self.sessions.values().map(Vec::len).sum());
        for (key, list) in self.sessions.iter_mut() {
            for s in list.iter_mut() {
                w.bytes(key);
                w.i64(s.start);
                w.i64(s.end);
                states.push(&mut s.accs)?;
            }
        }
        states.write(&mut w)?;
        Ok(Some(w.finish()))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SluiceError> {
        let mut r = StateReader::new(state);
        self.watermark = r.i64()?;
        let n = r.len()?;
        let mut bounds = Vec::with_capacity(n);
        for _ in 0..n {
            bounds.push((r.bytes()?, r.i64()?, r.i64()?));
        }
        let states = AccumulatorColumns::read(&mut r, self.spec.aggregates.len())?;
        r.finish()?;
        for (i, (key, start, end)) in bounds.into_iter().enumerate() {
            let accs = AccumulatorColumns::restore(&self.spec.aggregates, &states, i, false)?;
            self.timers.insert((end, key.into()));
            self.sessions.entry(key.into()).or_default().push(Session { start, end, accs, pending: Vec::new() });
        }
        Ok(())
    }

    fn process_batch(&mut self, batch: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        let data = batch.data;
        let n = data.num_rows();
        let ends = cast(data.column(self.spec.pane_end), &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        let ends = ends.as_primitive::<TimestampMillisecondType>();
        let encoded = match &self.keys {
            Some(codec) => Some(codec.encode(&data)?.0),
            None => None,
        };
        let mut touched: Vec<Box<[u8]>> = Vec::new();
        let mut late: Vec<u32> = Vec::new();
        for i in 0..n {
            let end = ends.value(i);
            let start = end - self.gap;
            let key: &[u8] = match &encoded {
                Some(rows) => rows.row(i).data(),
                None => &[],
            };
            if !self.sessions.contains_key(key) {
                self.sessions.insert(key.into(), Vec::new());
            }
            let list = self.sessions.get_mut(key).expect("inserted above");
            let (overlapping, rest): (Vec<Session>, Vec<Session>) =
                std::mem::take(list).into_iter().partition(|s| s.start <= end && start <= s.end);
            *list = rest;
            let mut merged = Session { start, end, accs: Vec::new(), pending: vec![i as u32] };
            let mut base: Option<Session> = None;
            for s in overlapping {
                match &mut base {
                    None => base = Some(s),
                    Some(b) => Self::merge(b, s)?,
                }
            }
            match base {
                Some(mut b) => {
                    Self::merge(
                        &mut b,
                        std::mem::replace(&mut merged, Session { start, end, accs: Vec::new(), pending: Vec::new() }),
                    )?;
                    merged = b;
                }
                None => {
                    if end.saturating_sub(1) <= self.watermark {
                        late.push(i as u32);
                        if list.is_empty() {
                            self.sessions.remove(key);
                        }
                        continue;
                    }
                    merged.accs = self.new_accs()?;
                }
            }
            self.timers.insert((merged.end, key.into()));
            let list = self.sessions.get_mut(key).expect("present");
            list.push(merged);
            if touched.last().is_none_or(|t| t.as_ref() != key) {
                touched.push(key.into());
            }
        }
        if !late.is_empty() {
            let rows = datafusion::arrow::compute::take_record_batch(&data, &UInt32Array::from(late))?;
            self.metrics.late_rows(&rows);
        }
        // Feed each session the rows placed in it.
        let args: Vec<Vec<ArrayRef>> = self
            .spec
            .aggregates
            .iter()
            .map(|a| a.expressions().iter().map(|e| e.evaluate(&data).and_then(|v| v.into_array(n))).collect())
            .collect::<Result<_, _>>()
            .map_err(df)?;
        let masks: Vec<Option<ArrayRef>> = self
            .spec
            .filters
            .iter()
            .map(|f| f.as_ref().map(|f| f.evaluate(&data).and_then(|v| v.into_array(n))).transpose())
            .collect::<Result<_, _>>()
            .map_err(df)?;
        touched.sort();
        touched.dedup();
        for key in touched {
            let Some(list) = self.sessions.get_mut(&key) else { continue };
            for s in list.iter_mut().filter(|s| !s.pending.is_empty()) {
                let idx = UInt32Array::from(std::mem::take(&mut s.pending));
                for (k, acc) in s.accs.iter_mut().enumerate() {
                    let mut values = args[k].iter().map(|a| take(a, &idx, None)).collect::<Result<Vec<_>, _>>()?;
                    if let Some(mask) = &masks[k] {
                        let m = take(mask, &idx, None)?;
                        values = values.iter().map(|v| filter(v, m.as_boolean())).collect::<Result<Vec<_>, _>>()?;
                    }
                    acc.update_batch(&values).map_err(df)?;
                }
            }
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Watermark, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        self.watermark = watermark.0;
        let mut results = Vec::new();
        while let Some((end, _)) = self.timers.first() {
            if end.saturating_sub(1) > watermark.0 {
                break;
            }
            let (end, key) = self.timers.pop_first().expect("peeked");
            let Some(list) = self.sessions.get_mut(&key) else { continue };
            let Some(pos) = list.iter().position(|s| s.end == end) else { continue };
            let s = list.remove(pos);
            if list.is_empty() {
                self.sessions.remove(&key);
            }
            self.emit(&key, s, &mut results)?;
        }
        if !results.is_empty() {
            let n = results.len();
            let key_columns = match &self.keys {
                Some(codec) => codec.decode(results.iter().map(|r| r.0.as_ref()))?,
                None => Vec::new(),
            };
            let mut columns: Vec<ArrayRef> = Vec::new();
            for (i, slot) in self.spec.slots.iter().enumerate() {
                let t = self.schema.field(i).data_type();
                let ts = |f: &dyn Fn(&Closed) -> i64| {
                    cast(&TimestampMillisecondArray::from_iter_values(results.iter().map(f)), t)
                };
                columns.push(match slot {
                    GroupSlot::Key(k) => key_columns[*k].clone(),
                    GroupSlot::WindowStart => ts(&|r| r.1)?,
                    GroupSlot::WindowEnd => ts(&|r| r.2)?,
                    GroupSlot::WindowTime => ts(&|r| r.2 - 1)?,
                });
            }
            for k in 0..self.spec.aggregates.len() {
                let values = results.iter().map(|r| r.3[k].clone());
                let array = datafusion::common::ScalarValue::iter_to_array(values).map_err(df)?;
                columns.push(array);
            }
            let columns = crate::state::conform(columns, &self.schema)?;
            debug_assert_eq!(columns.first().map(|c| c.len()), Some(n));
            out.push(StreamBatch::append_only(RecordBatch::try_new(self.schema.clone(), columns)?));
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
