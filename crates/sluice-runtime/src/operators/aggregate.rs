//! Non-windowed GROUP BY with an updating result, as Flink's `GroupAggregate`: for each key whose
//! result changed in a batch it emits `+I` (first result), or `-U` old / `+U` new, or `-D` when the
//! last row of the group was retracted. Unchanged results emit nothing. Accumulators are DataFusion's
//! (`update_batch`, `retract_batch` for updating input).
//!
//! By default every input row produces its own update, as Flink does. With
//! `SET 'table.exec.mini-batch.enabled' = 'true'` the rows of one input batch are folded per key
//! first and only the net change is emitted (Flink's mini-batch aggregation), which is much faster.
//!
//! State is a [`KeyedState`] from the row-encoded key to the group's accumulators. With
//! `SET 'table.exec.state.ttl'` a key untouched that long is forgotten, as in Flink: its next row
//! starts a new group (`+I`), seed 002's "forget a user 10 minutes after their last event".

use crate::checkpoint::{ScalarColumns, StateReader, StateWriter};
use crate::operator::Operator;
use crate::state::{AccumulatorColumns, KeyedState};
use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, UInt32Array};
use datafusion::arrow::compute::{and, filter, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::Accumulator;
use sluice_common::{RowKind, SluiceError, StreamBatch};
use sluice_plan::AggregateSpec;
use std::collections::HashMap;

/// The rows of one key within a batch: (key, additions, retractions, first row).
type KeyRun = (Box<[u8]>, Vec<u32>, Vec<u32>, usize);

struct Group {
    key: Vec<ScalarValue>,
    accumulators: Vec<Box<dyn Accumulator>>,
    /// Rows currently in the group (additions minus retractions).
    rows: i64,
    /// The aggregate values last emitted, if any.
    emitted: Option<Vec<ScalarValue>>,
}

pub struct GroupAggregate {
    spec: AggregateSpec,
    schema: SchemaRef,
    converter: RowConverter,
    groups: KeyedState<Group>,
}

fn df(e: datafusion::error::DataFusionError) -> SluiceError {
    SluiceError::user(format!("aggregate: {e}"))
}

impl GroupAggregate {
    pub fn new(spec: AggregateSpec, schema: SchemaRef) -> Result<Self, SluiceError> {
        let fields = schema.fields()[..spec.keys.len()].iter().map(|f| SortField::new(f.data_type().clone())).collect();
        let converter = RowConverter::new(fields).map_err(|e| SluiceError::internal(format!("key encoder: {e}")))?;
        let groups = KeyedState::new(spec.state_ttl);
        Ok(GroupAggregate { spec, schema, converter, groups })
    }

    /// Argument arrays of aggregate `i` for the rows at `idx`, with its FILTER applied.
    fn args_for(
        &self,
        args: &[Vec<ArrayRef>],
        masks: &[Option<BooleanArray>],
        i: usize,
        idx: &UInt32Array,
    ) -> Result<Vec<ArrayRef>, SluiceError> {
        let mut out = args[i].iter().map(|a| take(a.as_ref(), idx, None)).collect::<Result<Vec<_>, _>>()?;
        if let Some(mask) = &masks[i] {
            let m = take(mask, idx, None)?;
            let m = m.as_boolean();
            out = out.iter().map(|a| filter(a.as_ref(), m)).collect::<Result<Vec<_>, _>>()?;
        }
        Ok(out)
    }
}

impl Operator for GroupAggregate {
    fn name(&self) -> &str {
        "GroupAggregate"
    }

    /// Per group: the encoded key, the row count and whether a result was emitted; then, per
    /// aggregate, the accumulator states of every group as columns, and the emitted results.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, SluiceError> {
        let mut w = StateWriter::new();
        let mut states = AccumulatorColumns::new(&self.spec.aggregates, self.spec.input_updating);
        let mut emitted = ScalarColumns::default();
        w.len(self.groups.len());
        for (key, g) in self.groups.iter_mut() {
            w.bytes(key);
            w.i64(g.rows);
            w.bool(g.emitted.is_some());
            states.push(&mut g.accumulators)?;
            if let Some(e) = &g.emitted {
                emitted.push_row(e.iter().cloned())?;
            }
        }
        states.write(&mut w)?;
        emitted.write(&mut w)?;
        Ok(Some(w.finish()))
    }

    fn restore(&mut self, state: &[u8]) -> Result<(), SluiceError> {
        let mut r = StateReader::new(state);
        let n = r.len()?;
        let mut groups = Vec::with_capacity(n);
        for _ in 0..n {
            groups.push((r.bytes()?, r.i64()?, r.bool()?));
        }
        let states = AccumulatorColumns::read(&mut r, self.spec.aggregates.len())?;
        let (_, emitted) = r.arrays()?;
        r.finish()?;
        let key_columns = if self.spec.keys.is_empty() || n == 0 {
            Vec::new()
        } else {
            let parser = self.converter.parser();
            self.converter
                .convert_rows(groups.iter().map(|g| parser.parse(g.0)))
                .map_err(|e| SluiceError::internal(format!("decoding keys: {e}")))?
        };
        let mut next_emitted = 0;
        for (i, (key, rows, has_emitted)) in groups.into_iter().enumerate() {
            let key_values = key_columns
                .iter()
                .map(|c| ScalarValue::try_from_array(c, i))
                .collect::<Result<Vec<_>, _>>()
                .map_err(df)?;
            let accumulators =
                AccumulatorColumns::restore(&self.spec.aggregates, &states, i, self.spec.input_updating)?;
            let emitted = if has_emitted {
                let v = emitted
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c, next_emitted))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(df)?;
                next_emitted += 1;
                Some(v)
            } else {
                None
            };
            self.groups.insert(key, Group { key: key_values, accumulators, rows, emitted });
        }
        Ok(())
    }

    fn process_batch(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        let n = batch.num_rows();
        let eval = |e: &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>| {
            e.evaluate(&batch.data).and_then(|v| v.into_array(n)).map_err(df)
        };
        let keys = self.spec.keys.iter().map(eval).collect::<Result<Vec<_>, _>>()?;
        let args = self
            .spec
            .aggregates
            .iter()
            .map(|a| a.expressions().iter().map(eval).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()?;
        let masks = self
            .spec
            .filters
            .iter()
            .map(|f| match f {
                None => Ok(None),
                Some(f) => {
                    let m = eval(f)?;
                    // NULL counts as false: AND with itself's validity via `and` of the mask and is_not_null.
                    let m = m.as_boolean();
                    let valid = datafusion::arrow::compute::is_not_null(m)?;
                    Ok(Some(and(m, &valid)?))
                }
            })
            .collect::<Result<Vec<_>, SluiceError>>()?;

        // Rows per key in first-appearance order, split into additions and retractions.
        let rows =
            self.converter.convert_columns(&keys).map_err(|e| SluiceError::internal(format!("encoding keys: {e}")))?;
        // A global aggregate (no GROUP BY) has no key columns: every row has the empty key.
        let key_of = |row: usize| -> &[u8] {
            if keys.is_empty() {
                &[]
            } else {
                rows.row(row).data()
            }
        };
        let mut order: Vec<KeyRun> = Vec::new();
        let mut index: HashMap<&[u8], usize> = HashMap::new();
        for row in 0..n {
            let key = key_of(row);
            let slot = if self.spec.mini_batch {
                *index.entry(key).or_insert_with(|| {
                    order.push((key.into(), Vec::new(), Vec::new(), row));
                    order.len() - 1
                })
            } else {
                // Flink's default: every input row is applied and its update emitted on its own.
                order.push((key.into(), Vec::new(), Vec::new(), row));
                order.len() - 1
            };
            if batch.kind(row).is_addition() {
                order[slot].1.push(row as u32);
            } else {
                order[slot].2.push(row as u32);
            }
        }
        drop(index);

        let mut out_rows: Vec<(RowKind, Vec<ScalarValue>)> = Vec::new();
        for (key, adds, mut retracts, first_row) in order {
            if self.groups.get(&key).is_none() {
                // Retractions for a group without state (e.g. expired) have nothing to take back;
                // only those after the group's first addition in this batch count.
                let Some(&first_add) = adds.first() else { continue };
                retracts.retain(|&r| r > first_add);
                let key_values = keys
                    .iter()
                    .map(|k| ScalarValue::try_from_array(k, first_row))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(df)?;
                let accumulators = self
                    .spec
                    .aggregates
                    .iter()
                    .map(|a| crate::state::new_accumulator(a, self.spec.input_updating))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(df)?;
                self.groups.entry(&key, || Group { key: key_values, accumulators, rows: 0, emitted: None });
            }
            let adds = UInt32Array::from(adds);
            let retracts = UInt32Array::from(retracts);
            let mut update_args = Vec::with_capacity(self.spec.aggregates.len());
            let mut retract_args = Vec::with_capacity(self.spec.aggregates.len());
            for i in 0..self.spec.aggregates.len() {
                update_args.push(if adds.is_empty() { None } else { Some(self.args_for(&args, &masks, i, &adds)?) });
                retract_args.push(if retracts.is_empty() {
                    None
                } else {
                    Some(self.args_for(&args, &masks, i, &retracts)?)
                });
            }
            let group = self.groups.get(&key).expect("inserted above");
            for (i, acc) in group.accumulators.iter_mut().enumerate() {
                if let Some(a) = &update_args[i] {
                    acc.update_batch(a).map_err(df)?;
                }
                if let Some(a) = &retract_args[i] {
                    acc.retract_batch(a).map_err(df)?;
                }
            }
            group.rows += adds.len() as i64 - retracts.len() as i64;
            if group.rows <= 0 {
                let group = self.groups.remove(&key).expect("present");
                if let Some(old) = group.emitted {
                    out_rows.push((RowKind::Delete, group.key.iter().cloned().chain(old).collect()));
                }
                continue;
            }
            let values =
                group.accumulators.iter_mut().map(|a| a.evaluate()).collect::<Result<Vec<_>, _>>().map_err(df)?;
            match &group.emitted {
                Some(old) if *old == values => {}
                Some(old) => {
                    out_rows
                        .push((RowKind::UpdateBefore, group.key.iter().cloned().chain(old.iter().cloned()).collect()));
                    out_rows.push((
                        RowKind::UpdateAfter,
                        group.key.iter().cloned().chain(values.iter().cloned()).collect(),
                    ));
                }
                None => {
                    out_rows.push((RowKind::Insert, group.key.iter().cloned().chain(values.iter().cloned()).collect()))
                }
            }
            group.emitted = Some(values);
        }
        self.groups.expire();
        if out_rows.is_empty() {
            return Ok(());
        }
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for (c, field) in self.schema.fields().iter().enumerate() {
            let values = out_rows.iter().map(|(_, r)| r[c].clone());
            let array = ScalarValue::iter_to_array(values).map_err(df)?;
            let array = if array.data_type() == field.data_type() {
                array
            } else {
                datafusion::arrow::compute::cast(&array, field.data_type())?
            };
            columns.push(array);
        }
        let data = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(out_rows.len())),
        )
        .map_err(|e| SluiceError::internal(format!("aggregate output: {e}")))?;
        out.push(StreamBatch::with_kinds(data, out_rows.into_iter().map(|(k, _)| k).collect()));
        Ok(())
    }
}
