//! Keyed state held by the runtime for operators.
//!
//! Keys and rows are kept in Arrow's row format ([`RowCodec`]): one compact byte string per key or
//! row, comparable with `memcmp`, turned back into columns in bulk when a result is emitted.
//! [`KeyedState`] maps encoded keys to an operator's value and applies state TTL
//! (`table.exec.state.ttl`): a key not written or read for the TTL is dropped, as in Flink.
//!
//! Checkpoints write keys and rows as these byte strings, and accumulators as their state arrays.

use crate::checkpoint::{ScalarColumns, StateReader, StateWriter};
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::{PhysicalExpr, PhysicalSortExpr};
use sluice_common::SluiceError;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn internal(what: &str, e: impl std::fmt::Display) -> SluiceError {
    SluiceError::internal(format!("{what}: {e}"))
}

/// Encodes expressions (keys, sort keys) or whole rows of a batch as byte strings.
#[derive(Debug)]
pub struct RowCodec {
    converter: RowConverter,
    exprs: Vec<Arc<dyn PhysicalExpr>>,
}

impl RowCodec {
    /// Encodes the values of `exprs` (key columns), compared ascending.
    pub fn for_exprs(exprs: &[Arc<dyn PhysicalExpr>], input: &SchemaRef) -> Result<Self, SluiceError> {
        let fields = exprs
            .iter()
            .map(|e| e.data_type(input).map(SortField::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| internal("key type", e))?;
        let converter = RowConverter::new(fields).map_err(|e| internal("key encoding", e))?;
        Ok(RowCodec { converter, exprs: exprs.to_vec() })
    }

    /// Encodes sort keys so that byte order is the ORDER BY order (directions, NULLS FIRST/LAST).
    pub fn for_sort(order: &[PhysicalSortExpr], input: &SchemaRef) -> Result<Self, SluiceError> {
        let fields = order
            .iter()
            .map(|s| s.expr.data_type(input).map(|t| SortField::new_with_options(t, s.options)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| internal("sort key type", e))?;
        let converter = RowConverter::new(fields).map_err(|e| internal("sort key encoding", e))?;
        Ok(RowCodec { converter, exprs: order.iter().map(|s| s.expr.clone()).collect() })
    }

    /// Encodes every column of rows of `schema`.
    pub fn for_rows(schema: &SchemaRef) -> Result<Self, SluiceError> {
        let fields = schema.fields().iter().map(|f| SortField::new(f.data_type().clone())).collect();
        let converter = RowConverter::new(fields).map_err(|e| internal("row encoding", e))?;
        Ok(RowCodec { converter, exprs: Vec::new() })
    }

    /// The encoded keys of every row, and which rows have a NULL in any key column.
    pub fn encode(&self, batch: &RecordBatch) -> Result<(Rows, Vec<bool>), SluiceError> {
        let n = batch.num_rows();
        let columns: Vec<ArrayRef> = if self.exprs.is_empty() {
            batch.columns().to_vec()
        } else {
            self.exprs
                .iter()
                .map(|e| e.evaluate(batch).and_then(|v| v.into_array(n)))
                .collect::<Result<_, _>>()
                .map_err(|e| internal("evaluating keys", e))?
        };
        let mut nulls = vec![false; n];
        for c in &columns {
            if c.null_count() > 0 {
                for (i, null) in nulls.iter_mut().enumerate() {
                    *null |= c.is_null(i);
                }
            }
        }
        let rows = self.converter.convert_columns(&columns).map_err(|e| internal("encoding keys", e))?;
        Ok((rows, nulls))
    }

    /// Columns back from encoded byte strings.
    pub fn decode<'a>(&self, encoded: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>, SluiceError> {
        let parser = self.converter.parser();
        self.converter
            .convert_rows(encoded.into_iter().map(|b| parser.parse(b)))
            .map_err(|e| internal("decoding rows", e))
    }
}

/// Casts each column to its field's type where they differ: the planned types (e.g. Flink's AVG
/// result type) are authoritative over what an accumulator produced.
pub fn conform(columns: Vec<ArrayRef>, schema: &SchemaRef) -> Result<Vec<ArrayRef>, SluiceError> {
    columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c)
            } else {
                datafusion::arrow::compute::cast(&c, f.data_type()).map_err(|e| internal("casting a result column", e))
            }
        })
        .collect()
}

pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// A fresh accumulator for `agg`. With `updating` input, SUM uses DataFusion's sliding
/// accumulator, which can take rows back (its state, sum and count, is complete, so it checkpoints
/// like the plain one); other functions retract with their plain accumulator or are refused when
/// planning.
pub fn new_accumulator(agg: &AggregateFunctionExpr, updating: bool) -> datafusion::error::Result<Box<dyn Accumulator>> {
    if updating && !agg.is_distinct() && agg.fun().name() == "sum" {
        agg.create_sliding_accumulator()
    } else {
        agg.create_accumulator()
    }
}

/// The state of `acc` for a checkpoint. DataFusion's `Accumulator::state` may consume the state, so
/// unless the function is known to only read it, `acc` is replaced by a fresh accumulator that
/// merged it back: it goes on exactly as before.
pub fn take_accumulator_state(
    acc: &mut Box<dyn Accumulator>,
    agg: &AggregateFunctionExpr,
    updating: bool,
) -> Result<Vec<ScalarValue>, SluiceError> {
    let state = acc.state().map_err(|e| internal("accumulator state", e))?;
    // These read their state without consuming it (checked in DataFusion 55); COUNT(DISTINCT) and
    // others hand their sets over and must be rebuilt.
    let reads_only = !agg.is_distinct()
        && matches!(agg.fun().name(), "count" | "sum" | "avg" | "min" | "max" | "first_value" | "last_value");
    if reads_only {
        return Ok(state);
    }
    let arrays = state.iter().map(|s| s.to_array()).collect::<Result<Vec<_>, _>>().map_err(|e| internal("state", e))?;
    let mut fresh = new_accumulator(agg, updating).map_err(|e| internal("accumulator", e))?;
    fresh.merge_batch(&arrays).map_err(|e| internal("restoring an accumulator", e))?;
    *acc = fresh;
    Ok(state)
}

/// A fresh accumulator holding row `row` of the state columns `state` (written by a checkpoint).
pub fn restore_accumulator(
    agg: &AggregateFunctionExpr,
    state: &[ArrayRef],
    row: usize,
    updating: bool,
) -> Result<Box<dyn Accumulator>, SluiceError> {
    let mut acc = new_accumulator(agg, updating).map_err(|e| internal("accumulator", e))?;
    if !state.is_empty() {
        let slice: Vec<ArrayRef> = state.iter().map(|a| a.slice(row, 1)).collect();
        acc.merge_batch(&slice).map_err(|e| internal("restoring an accumulator", e))?;
    }
    Ok(acc)
}

/// Accumulator states of many keys for a checkpoint: per aggregate, one column per state field.
pub struct AccumulatorColumns<'a> {
    aggregates: &'a [Arc<AggregateFunctionExpr>],
    columns: Vec<ScalarColumns>,
    /// The accumulators consume updating input ([`new_accumulator`]).
    updating: bool,
}

impl<'a> AccumulatorColumns<'a> {
    pub fn new(aggregates: &'a [Arc<AggregateFunctionExpr>], updating: bool) -> Self {
        AccumulatorColumns {
            aggregates,
            columns: aggregates.iter().map(|_| ScalarColumns::default()).collect(),
            updating,
        }
    }

    /// Adds one key's accumulators (see [`take_accumulator_state`]).
    pub fn push(&mut self, accs: &mut [Box<dyn Accumulator>]) -> Result<(), SluiceError> {
        for ((acc, agg), cols) in accs.iter_mut().zip(self.aggregates).zip(&mut self.columns) {
            cols.push_row(take_accumulator_state(acc, agg, self.updating)?)?;
        }
        Ok(())
    }

    pub fn write(self, w: &mut StateWriter) -> Result<(), SluiceError> {
        self.columns.into_iter().try_for_each(|c| c.write(w))
    }

    /// What [`AccumulatorColumns::write`] wrote: per aggregate its state columns.
    pub fn read(r: &mut StateReader<'_>, aggregates: usize) -> Result<Vec<Vec<ArrayRef>>, SluiceError> {
        (0..aggregates).map(|_| r.arrays().map(|a| a.1)).collect()
    }

    /// Fresh accumulators holding row `row` of what [`AccumulatorColumns::read`] returned.
    pub fn restore(
        aggregates: &[Arc<AggregateFunctionExpr>],
        states: &[Vec<ArrayRef>],
        row: usize,
        updating: bool,
    ) -> Result<Vec<Box<dyn Accumulator>>, SluiceError> {
        aggregates.iter().zip(states).map(|(agg, s)| restore_accumulator(agg, s, row, updating)).collect()
    }
}

/// Writes optional bytes (a version's value, a deletion).
pub fn write_opt(w: &mut StateWriter, v: Option<&[u8]>) {
    w.bool(v.is_some());
    if let Some(v) = v {
        w.bytes(v);
    }
}

pub fn read_opt<'a>(r: &mut StateReader<'a>) -> Result<Option<&'a [u8]>, SluiceError> {
    Ok(if r.bool()? { Some(r.bytes()?) } else { None })
}

/// An operator's state: one `V` per encoded key, with optional TTL since last access.
#[derive(Debug)]
pub struct KeyedState<V> {
    map: FastMap<Box<[u8]>, Slot<V>>,
    ttl: Option<Duration>,
    /// Time of the last TTL sweep.
    swept: Instant,
}

#[derive(Debug)]
struct Slot<V> {
    value: V,
    touched: Instant,
}

impl<V> KeyedState<V> {
    pub fn new(ttl: Option<Duration>) -> Self {
        KeyedState { map: FastMap::default(), ttl, swept: Instant::now() }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&mut self, key: &[u8]) -> Option<&mut V> {
        let ttl = self.ttl.is_some();
        self.map.get_mut(key).map(|s| {
            if ttl {
                s.touched = Instant::now();
            }
            &mut s.value
        })
    }

    /// The value for `key`, created with `init` when absent.
    pub fn entry(&mut self, key: &[u8], init: impl FnOnce() -> V) -> &mut V {
        let now = if self.ttl.is_some() { Instant::now() } else { self.swept };
        if !self.map.contains_key(key) {
            self.map.insert(key.into(), Slot { value: init(), touched: now });
        }
        let slot = self.map.get_mut(key).expect("inserted above");
        slot.touched = now;
        &mut slot.value
    }

    /// Puts a restored key back (its TTL clock starts now).
    pub fn insert(&mut self, key: &[u8], value: V) {
        self.map.insert(key.into(), Slot { value, touched: Instant::now() });
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.map.remove(key).map(|s| s.value)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&[u8], &mut V)> {
        self.map.iter_mut().map(|(k, s)| (k.as_ref(), &mut s.value))
    }

    /// Drops keys idle for longer than the TTL; sweeps at most every tenth of the TTL.
    pub fn expire(&mut self) -> usize {
        let Some(ttl) = self.ttl else { return 0 };
        let now = Instant::now();
        if now.duration_since(self.swept) < ttl / 10 {
            return 0;
        }
        self.swept = now;
        let before = self.map.len();
        self.map.retain(|_, s| now.duration_since(s.touched) < ttl);
        before - self.map.len()
    }

    /// Bytes of keys plus table overhead (values are accounted by the operator).
    pub fn key_bytes(&self) -> usize {
        self.map.keys().map(|k| k.len()).sum::<usize>()
            + self.map.capacity() * (std::mem::size_of::<(Box<[u8]>, Slot<V>)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_untouched_for_the_ttl_are_forgotten_and_touched_ones_stay() {
        let ttl = Duration::from_millis(200);
        let mut s: KeyedState<u32> = KeyedState::new(Some(ttl));
        *s.entry(b"idle", || 0) += 1;
        *s.entry(b"busy", || 0) += 1;
        std::thread::sleep(ttl / 2);
        assert_eq!(s.get(b"busy").copied(), Some(1), "reading touches the key");
        std::thread::sleep(ttl / 2 + Duration::from_millis(20));
        assert_eq!(s.expire(), 1);
        assert!(s.get(b"idle").is_none());
        assert_eq!(s.get(b"busy").copied(), Some(1));
        let mut forever: KeyedState<u32> = KeyedState::new(None);
        forever.entry(b"k", || 7);
        assert_eq!(forever.expire(), 0);
    }

    #[test]
    fn sort_keys_compare_in_order_by_order() {
        use datafusion::arrow::array::Int64Array;
        use datafusion::arrow::compute::SortOptions;
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::physical_expr::expressions::Column;
        let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![Some(3), None, Some(10)]))])
                .expect("batch");
        let desc = PhysicalSortExpr {
            expr: Arc::new(Column::new("x", 0)),
            options: SortOptions { descending: true, nulls_first: false },
        };
        let codec = RowCodec::for_sort(&[desc], &schema).expect("codec");
        let (rows, nulls) = codec.encode(&batch).expect("encode");
        assert!(rows.row(2) < rows.row(0), "10 sorts before 3 descending");
        assert!(rows.row(0) < rows.row(1), "NULLS LAST");
        assert_eq!(nulls, [false, true, false]);
        let back = codec.decode([rows.row(2).data(), rows.row(1).data()]).expect("decode");
        assert_eq!(back[0].as_ref(), &Int64Array::from(vec![Some(10), None]) as &dyn Array);
    }
}
