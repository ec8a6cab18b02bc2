//! Top-N, window Top-N and deduplication: `ROW_NUMBER() OVER (PARTITION BY k ORDER BY o) <= N`.
//!
//! Per partition key the operator keeps its rows sorted by the encoded ORDER BY key (ties keep arrival
//! order, as Flink). Over a plain stream every change of the top N is emitted as Flink's rank
//! function does: a row entering at rank r shifts the rows below it, each shift is `-U` old / `+U` new,
//! a new rank is `+I`, a rank that disappears is `-D`. Append-only input keeps only the top N rows;
//! updating input keeps every row so a retracted top row can be replaced.
//!
//! Window Top-N (partitioned by `window_start, window_end` over append-only windowed input) ranks each
//! window once the watermark passes its end and emits the top N as inserts.

use crate::checkpoint::{StateReader, StateWriter};
use crate::metrics::{OperatorMetrics, StateGauge};
use crate::operator::Operator;
use crate::state::{FastMap, KeyedState, RowCodec};
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};
use sluice_common::{RowKind, SluiceError, StreamBatch, Watermark};
use sluice_plan::TopNSpec;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
struct Entry {
    sort: Box<[u8]>,
    row: Box<[u8]>,
}

/// Position after every entry whose sort key is <= `sort` (ties keep arrival order).
fn upper_bound(list: &[Entry], sort: &[u8]) -> usize {
    list.partition_point(|e| e.sort.as_ref() <= sort)
}

fn write_list(w: &mut StateWriter, key: &[u8], list: &[Entry]) {
    w.bytes(key);
    w.len(list.len());
    for e in list {
        w.bytes(&e.sort);
        w.bytes(&e.row);
    }
}

fn read_list<'a>(r: &mut StateReader<'a>) -> Result<(&'a [u8], Vec<Entry>), SluiceError> {
    let key = r.bytes()?;
    let n = r.len()?;
    let mut list = Vec::with_capacity(n);
    for _ in 0..n {
        list.push(Entry { sort: r.bytes()?.into(), row: r.bytes()?.into() });
    }
    Ok((key, list))
}

pub struct TopN {
    spec: TopNSpec,
    schema: SchemaRef,
    partition: Option<RowCodec>,
    sort: RowCodec,
    rows: RowCodec,
    state: KeyedState<Vec<Entry>>,
    windows: BTreeMap<i64, FastMap<Box<[u8]>, Vec<Entry>>>,
    watermark: i64,
    metrics: Arc<OperatorMetrics>,
    gauge: StateGauge,
    /// Output being built: row, rank, kind.
    pending: Vec<(Box<[u8]>, u64, RowKind)>,
}

impl TopN {
    pub fn new(
        spec: TopNSpec,
        input: SchemaRef,
        schema: SchemaRef,
        metrics: Arc<OperatorMetrics>,
    ) -> Result<Self, SluiceError> {
        let partition = if spec.partition_keys.is_empty() {
            None
        } else {
            Some(RowCodec::for_exprs(&spec.partition_keys, &input)?)
        };
        let sort = RowCodec::for_sort(&spec.order, &input)?;
        let rows = RowCodec::for_rows(&input)?;
        let state = KeyedState::new(spec.state_ttl);
        Ok(TopN {
            spec,
            schema,
            partition,
            sort,
            rows,
            state,
            windows: BTreeMap::new(),
            watermark: i64::MIN,
            gauge: StateGauge::new(metrics.clone()),
            metrics,
            pending: Vec::new(),
        })
    }

    fn flush(&mut self, out: &mut Vec<StreamBatch>, append_only: bool) -> Result<(), SluiceError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let mut columns = self.rows.decode(pending.iter().map(|(r, _, _)| r.as_ref()))?;
        let ranks: ArrayRef = Arc::new(UInt64Array::from_iter_values(pending.iter().map(|(_, r, _)| *r)));
        let rank_type = self.schema.field(self.schema.fields().len() - 1).data_type();
        columns.push(if ranks.data_type() == rank_type { ranks } else { cast(&ranks, rank_type)? });
        let data = RecordBatch::try_new(self.schema.clone(), columns)?;
        out.push(if append_only {
            StreamBatch::append_only(data)
        } else {
            StreamBatch::with_kinds(data, pending.iter().map(|(_, _, k)| *k).collect())
        });
        Ok(())
    }

    fn add(&mut self, key: &[u8], e: Entry) {
        let limit = self.spec.limit;
        let keep_all = self.spec.input_updating;
        let later_wins = self.spec.later_wins_ties;
        let list = self.state.entry(key, Vec::new);
        let pos = if later_wins {
            list.partition_point(|x| x.sort.as_ref() < e.sort.as_ref())
        } else {
            upper_bound(list, &e.sort)
        };
        if pos >= limit {
            if keep_all {
                list.insert(pos, e);
            }
            return;
        }
        list.insert(pos, e);
        for r in pos..limit.min(list.len()) {
            match list.get(r + 1) {
                Some(old) => {
                    self.pending.push((old.row.clone(), r as u64 + 1, RowKind::UpdateBefore));
                    self.pending.push((list[r].row.clone(), r as u64 + 1, RowKind::UpdateAfter));
                }
                None => self.pending.push((list[r].row.clone(), r as u64 + 1, RowKind::Insert)),
            }
        }
        if !keep_all {
            list.truncate(limit);
        }
    }

    fn retract(&mut self, key: &[u8], e: Entry) {
        let limit = self.spec.limit;
        let Some(list) = self.state.get(key) else { return };
        let Some(pos) = list.iter().position(|x| x.row == e.row && x.sort == e.sort) else { return };
        let removed = list.remove(pos);
        if pos < limit {
            for r in pos..limit {
                let old = if r == pos { Some(&removed) } else { list.get(r - 1) };
                let Some(old) = old else { break };
                match list.get(r) {
                    Some(new) => {
                        self.pending.push((old.row.clone(), r as u64 + 1, RowKind::UpdateBefore));
                        self.pending.push((new.row.clone(), r as u64 + 1, RowKind::UpdateAfter));
                    }
                    None => self.pending.push((old.row.clone(), r as u64 + 1, RowKind::Delete)),
                }
            }
        }
        if list.is_empty() {
            self.state.remove(key);
        }
    }

    fn update_gauge(&mut self) {
        let entries: usize =
            self.state.iter_mut().map(|(_, l)| l.iter().map(|e| e.sort.len() + e.row.len() + 32).sum::<usize>()).sum();
        let windowed: usize = self
            .windows
            .values()
            .flat_map(|w| w.iter())
            .map(|(k, l)| k.len() + l.iter().map(|e| e.sort.len() + e.row.len() + 32).sum::<usize>())
            .sum();
        let keys = self.state.len() + self.windows.values().map(|w| w.len()).sum::<usize>();
        self.gauge.set(keys, self.state.key_bytes() + entries + windowed);
    }
}

impl Operator for TopN {
    fn name(&self) -> &str {
        if self.spec.window.is_some() {
            "WindowRank"
        } else {
            "Rank"
        }
    }

    /// The watermark, every partition's rows (sort key and row bytes) and every open window's.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, SluiceError> {
        let mut w = StateWriter::new();
        w.i64(self.watermark);
        w.len(self.state.len());
        for (key, list) in self.state.iter_mut() {
            write_list(&mut w, key, list);
        }
        w.len(self.windows.len());
        for (end, parts) in &self.windows {
            w.i64(*end);
            w.len(parts.len());
            for (key, list) in parts {
                write_list(&mut w, key, list);
            }
        }
        Ok(Some(w.finish()))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SluiceError> {
        let mut r = StateReader::new(state);
        self.watermark = r.i64()?;
        for _ in 0..r.len()? {
            let (key, list) = read_list(&mut r)?;
            self.state.insert(key, list);
        }
        for _ in 0..r.len()? {
            let end = r.i64()?;
            let window = self.windows.entry(end).or_default();
            for _ in 0..r.len()? {
                let (key, list) = read_list(&mut r)?;
                window.insert(key.into(), list);
            }
        }
        r.finish()
    }

    fn process_batch(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        let n = batch.num_rows();
        let keys = match &self.partition {
            Some(p) => Some(p.encode(&batch.data)?.0),
            None => None,
        };
        let (sorts, _) = self.sort.encode(&batch.data)?;
        let (rows, _) = self.rows.encode(&batch.data)?;
        let key_of = |i: usize| -> &[u8] {
            match &keys {
                Some(k) => k.row(i).data(),
                None => &[],
            }
        };
        if let Some((_, end_col)) = self.spec.window {
            let ends = cast(batch.data.column(end_col), &DataType::Timestamp(TimeUnit::Millisecond, None))?;
            let ends = ends.as_primitive::<TimestampMillisecondType>();
            let mut late = Vec::new();
            for i in 0..n {
                let end = ends.value(i);
                if end.saturating_sub(1) <= self.watermark {
                    late.push(i as u32);
                    continue;
                }
                let window = self.windows.entry(end).or_default();
                let key = key_of(i);
                if !window.contains_key(key) {
                    window.insert(key.into(), Vec::new());
                }
                let list = window.get_mut(key).expect("inserted above");
                let sort = sorts.row(i).data();
                let pos = upper_bound(list, sort);
                if pos < self.spec.limit {
                    list.insert(pos, Entry { sort: sort.into(), row: rows.row(i).data().into() });
                    list.truncate(self.spec.limit);
                }
            }
            if !late.is_empty() {
                let rows = datafusion::arrow::compute::take_record_batch(&batch.data, &UInt32Array::from(late))?;
                self.metrics.late_rows(&rows);
            }
            return Ok(());
        }
        for i in 0..n {
            let e = Entry { sort: sorts.row(i).data().into(), row: rows.row(i).data().into() };
            if batch.kind(i).is_addition() {
                self.add(key_of(i), e);
            } else {
                self.retract(key_of(i), e);
            }
        }
        self.flush(out, false)
    }

    fn on_watermark(&mut self, watermark: Watermark, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        self.watermark = watermark.0;
        if self.spec.window.is_some() {
            let limit = watermark.0.saturating_add(1);
            let ready: Vec<i64> = self.windows.range(..=limit).map(|(e, _)| *e).collect();
            for end in ready {
                let parts = self.windows.remove(&end).expect("listed above");
                for (_, list) in parts {
                    for (r, e) in list.into_iter().enumerate() {
                        self.pending.push((e.row, r as u64 + 1, RowKind::Insert));
                    }
                }
                self.flush(out, true)?;
            }
        } else {
            self.state.expire();
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
