//! OVER aggregation on event time: `agg(x) OVER (PARTITION BY k ORDER BY rowtime ROWS|RANGE BETWEEN
//! UNBOUNDED PRECEDING AND CURRENT ROW)`, as Flink's row-time OVER aggregate.
//!
//! Rows wait until the watermark passes their rowtime, then are processed in rowtime order (arrival
//! order among equal times): each is emitted with the aggregates of its key up to and including it
//! (`ROWS`), or up to and including every row with the same time (`RANGE`). Rows behind the
//! watermark on arrival are late: dropped and counted, as in Flink. Accumulators are DataFusion's;
//! state TTL applies per key.

use crate::checkpoint::{StateReader, StateWriter};
use crate::metrics::{OperatorMetrics, StateGauge};
use crate::operator::Operator;
use crate::state::AccumulatorColumns;
use crate::state::{KeyedState, RowCodec};
use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use sluice_common::{SluiceError, StreamBatch, Watermark};
use sluice_plan::OverAggSpec;
use std::sync::Arc;

fn df(e: datafusion::error::DataFusionError) -> SluiceError {
    SluiceError::user(format!("over aggregate: {e}"))
}

pub struct OverAggregate {
    spec: OverAggSpec,
    input: SchemaRef,
    schema: SchemaRef,
    keys: Option<RowCodec>,
    state: KeyedState<Vec<Box<dyn Accumulator>>>,
    pending: Vec<RecordBatch>,
    watermark: i64,
    metrics: Arc<OperatorMetrics>,
    gauge: StateGauge,
}

fn times(batch: &RecordBatch, col: usize) -> Result<Vec<Option<i64>>, SluiceError> {
    let a = cast(batch.column(col), &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    Ok(a.as_primitive::<TimestampMillisecondType>().iter().collect())
}

impl OverAggregate {
    pub fn new(
        spec: OverAggSpec,
        input: SchemaRef,
        schema: SchemaRef,
        metrics: Arc<OperatorMetrics>,
    ) -> Result<Self, SluiceError> {
        let keys = if spec.partition_keys.is_empty() {
            None
        } else {
            Some(RowCodec::for_exprs(&spec.partition_keys, &input)?)
        };
        Ok(OverAggregate {
            state: KeyedState::new(spec.state_ttl),
            spec,
            input,
            schema,
            keys,
            pending: Vec::new(),
            watermark: i64::MIN,
            gauge: StateGauge::new(metrics.clone()),
            metrics,
        })
    }

    /// Emits every pending row at or before the watermark.
    fn fire(&mut self, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let all = concat_batches(&self.input, &self.pending)?;
        self.pending.clear();
        let ts = times(&all, self.spec.time)?;
        let wm = self.watermark;
        let ready_mask = BooleanArray::from_iter(ts.iter().map(|t| Some(t.is_some_and(|t| t <= wm))));
        let rest_mask = BooleanArray::from_iter(ts.iter().map(|t| Some(t.is_some_and(|t| t > wm))));
        let rest = filter_record_batch(&all, &rest_mask)?;
        if rest.num_rows() > 0 {
            self.pending.push(rest);
        }
        let ready = filter_record_batch(&all, &ready_mask)?;
        if ready.num_rows() == 0 {
            return Ok(());
        }
        let ts: Vec<i64> = times(&ready, self.spec.time)?.into_iter().map(|t| t.unwrap_or(i64::MIN)).collect();
        let mut order: Vec<u32> = (0..ready.num_rows() as u32).collect();
        order.sort_by_key(|&i| ts[i as usize]);
        let ready = take_record_batch(&ready, &UInt32Array::from(order.clone()))?;
        let ts: Vec<i64> = order.iter().map(|&i| ts[i as usize]).collect();
        let n = ready.num_rows();
        let encoded = match &self.keys {
            Some(codec) => Some(codec.encode(&ready)?.0),
            None => None,
        };
        let key = |i: usize| -> &[u8] {
            match &encoded {
                Some(rows) => rows.row(i).data(),
                None => &[],
            }
        };
        let args: Vec<Vec<ArrayRef>> = self
            .spec
            .aggregates
            .iter()
            .map(|a| a.expressions().iter().map(|e| e.evaluate(&ready).and_then(|v| v.into_array(n))).collect())
            .collect::<Result<_, _>>()
            .map_err(df)?;
        let mut values: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(n); self.spec.aggregates.len()];
        let aggregates = self.spec.aggregates.clone();
        let new_accs = || -> Result<Vec<Box<dyn Accumulator>>, SluiceError> {
            aggregates.iter().map(|a| a.create_accumulator().map_err(df)).collect()
        };
        let mut start = 0;
        while start < n {
            // RANGE: rows of one time see each other; ROWS: one row at a time.
            let end = if self.spec.rows {
                start + 1
            } else {
                start + ts[start..].iter().take_while(|&&t| t == ts[start]).count()
            };
            for i in start..end {
                let accs = match self.state.get(key(i)) {
                    Some(a) => a,
                    None => {
                        let fresh = new_accs()?;
                        self.state.entry(key(i), || fresh)
                    }
                };
                for (k, acc) in accs.iter_mut().enumerate() {
                    let row: Vec<ArrayRef> = args[k].iter().map(|a| a.slice(i, 1)).collect();
                    acc.update_batch(&row).map_err(df)?;
                }
            }
            for i in start..end {
                let accs = self.state.get(key(i)).expect("updated above");
                for (k, acc) in accs.iter_mut().enumerate() {
                    values[k].push(acc.evaluate().map_err(df)?);
                }
            }
            start = end;
        }
        let mut columns: Vec<ArrayRef> = ready.columns().to_vec();
        for v in values {
            columns.push(ScalarValue::iter_to_array(v).map_err(df)?);
        }
        let columns = crate::state::conform(columns, &self.schema)?;
        out.push(StreamBatch::append_only(RecordBatch::try_new(self.schema.clone(), columns)?));
        Ok(())
    }
}

impl Operator for OverAggregate {
    fn name(&self) -> &str {
        "OverAggregate"
    }

    /// The watermark, per key the accumulator states (as columns per aggregate), and the rows
    /// waiting for the watermark.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, SluiceError> {
        let mut w = StateWriter::new();
        w.i64(self.watermark);
        let mut states = AccumulatorColumns::new(&self.spec.aggregates, false);
        w.len(self.state.len());
        for (key, accs) in self.state.iter_mut() {
            w.bytes(key);
            states.push(accs)?;
        }
        states.write(&mut w)?;
        w.batches(&self.input, &self.pending)?;
        Ok(Some(w.finish()))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SluiceError> {
        let mut r = StateReader::new(state);
        self.watermark = r.i64()?;
        let n = r.len()?;
        let keys = (0..n).map(|_| r.bytes()).collect::<Result<Vec<_>, _>>()?;
        let states = AccumulatorColumns::read(&mut r, self.spec.aggregates.len())?;
        let (_, pending) = r.batches()?;
        r.finish()?;
        for (i, key) in keys.into_iter().enumerate() {
            let accs = AccumulatorColumns::restore(&self.spec.aggregates, &states, i, false)?;
            self.state.insert(key, accs);
        }
        for b in pending {
            self.pending.push(RecordBatch::try_new(self.input.clone(), b.columns().to_vec())?);
        }
        Ok(())
    }

    fn process_batch(&mut self, batch: StreamBatch, _out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        let ts = times(&batch.data, self.spec.time)?;
        let wm = self.watermark;
        let late = ts.iter().filter(|t| t.is_none_or(|t| t <= wm)).count();
        let data = if late > 0 {
            let behind = BooleanArray::from_iter(ts.iter().map(|t| Some(t.is_some_and(|t| t <= wm))));
            self.metrics.late_rows(&filter_record_batch(&batch.data, &behind)?);
            let no_time = BooleanArray::from_iter(ts.iter().map(|t| Some(t.is_none())));
            self.metrics.rows_without_time(&filter_record_batch(&batch.data, &no_time)?);
            let keep = BooleanArray::from_iter(ts.iter().map(|t| Some(t.is_some_and(|t| t > wm))));
            filter_record_batch(&batch.data, &keep)?
        } else {
            batch.data
        };
        if data.num_rows() > 0 {
            self.pending.push(data);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Watermark, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        self.watermark = watermark.0;
        self.fire(out)?;
        self.state.expire();
        if self.gauge.due() {
            let bytes = self.state.key_bytes();
            self.gauge.set(self.state.len(), bytes);
        }
        Ok(())
    }

    fn on_end(&mut self, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        self.watermark = i64::MAX;
        self.fire(out)?;
        let bytes = self.state.key_bytes();
        self.gauge.set(self.state.len(), bytes);
        Ok(())
    }
}
