//! `'connector' = 'datagen'`: generated rows, with Flink's options: `rows-per-second` (default
//! 10000, across all subtasks), `number-of-rows` (unbounded when unset), and per field
//! `fields.<f>.kind` = `random` | `sequence`, `min`, `max`, `max-past`, `length`, `start`, `end`,
//! `null-rate`. A field with a `sequence` bounds the table to the sequence's length, as in Flink.

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sluice_common::{ConnectorError, OptionBag, SluiceError, StreamBatch, TableSpec};
use sluice_runtime::{Source, SourceContext};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
pub enum FieldGen {
    Sequence { start: i64, end: i64 },
    Random { min: f64, max: f64, length: usize, max_past_ms: i64, null_rate: f64 },
}

#[derive(Debug, Clone)]
pub struct DatagenConfig {
    pub rows_per_second: u64,
    pub number_of_rows: Option<u64>,
    pub fields: Vec<FieldGen>,
    pub schema: SchemaRef,
}

const FIELD_KEYS: &[&str] = &["kind", "min", "max", "max-past", "length", "start", "end", "null-rate", "var-len"];

impl DatagenConfig {
    pub fn from_spec(spec: &TableSpec) -> Result<Self, ConnectorError> {
        let mut bag = OptionBag::new(&spec.connector, spec.options.clone());
        bag.ignore("scan.parallelism");
        bag.ignore("scan.watermark.idle-timeout");
        let rows_per_second = bag.u64("rows-per-second")?.unwrap_or(10_000);
        let mut number_of_rows = bag.u64("number-of-rows")?;
        let field_opts = bag.with_prefix("fields.");
        bag.finish()?;
        if !spec.metadata.is_empty() {
            return Err(ConnectorError::new("datagen provides no metadata columns"));
        }
        let mut per_field: BTreeMap<String, OptionBag> = BTreeMap::new();
        for (key, value) in field_opts {
            let Some((field, opt)) = key.rsplit_once('.') else {
                return Err(ConnectorError::at_option(
                    format!("fields.{key}"),
                    format!("expected 'fields.<column>.<option>', got 'fields.{key}'"),
                ));
            };
            if spec.connector_schema.field_with_name(field).is_err() {
                return Err(ConnectorError::at_option(
                    format!("fields.{key}"),
                    format!("option 'fields.{key}' names no column of table '{}'", spec.name),
                ));
            }
            per_field
                .entry(field.to_string())
                .or_insert_with(|| OptionBag::new(format!("datagen field '{field}'"), BTreeMap::new()))
                .insert(opt, value);
        }
        let mut fields = Vec::new();
        for f in spec.connector_schema.fields() {
            let mut b = per_field
                .remove(f.name())
                .unwrap_or_else(|| OptionBag::new(format!("datagen field '{}'", f.name()), BTreeMap::new()));
            let prefixed = |e: sluice_common::OptionError| -> ConnectorError {
                let mut c = ConnectorError::from(e);
                c.option = c.option.map(|o| format!("fields.{}.{o}", f.name()));
                c
            };
            let kind = b.one_of("kind", &["random", "sequence"]).map_err(prefixed)?.unwrap_or("random");
            let gen = if kind == "sequence" {
                let start = b.i64("start").map_err(prefixed)?;
                let end = b.i64("end").map_err(prefixed)?;
                let (Some(start), Some(end)) = (start, end) else {
                    return Err(ConnectorError::at_option(
                        format!("fields.{}.kind", f.name()),
                        format!("sequence field '{}' needs 'fields.{0}.start' and 'fields.{0}.end'", f.name()),
                    ));
                };
                if end < start {
                    return Err(ConnectorError::at_option(
                        format!("fields.{}.end", f.name()),
                        "sequence end is before its start",
                    ));
                }
                let len = (end - start + 1) as u64;
                number_of_rows = Some(number_of_rows.map_or(len, |n| n.min(len)));
                FieldGen::Sequence { start, end }
            } else {
                let (dmin, dmax) = default_range(f.data_type());
                FieldGen::Random {
                    min: b.f64("min").map_err(prefixed)?.unwrap_or(dmin),
                    max: b.f64("max").map_err(prefixed)?.unwrap_or(dmax),
                    length: b.u64("length").map_err(prefixed)?.unwrap_or(100) as usize,
                    max_past_ms: b.duration("max-past").map_err(prefixed)?.map(|d| d.as_millis() as i64).unwrap_or(0),
                    null_rate: b.f64("null-rate").map_err(prefixed)?.unwrap_or(0.0),
                }
            };
            b.bool("var-len").map_err(prefixed)?;
            b.finish().map_err(|e| {
                let mut c = ConnectorError::from(e);
                c.message = format!("{} (per-field options: {})", c.message, FIELD_KEYS.join(", "));
                c.option = c.option.map(|o| format!("fields.{}.{o}", f.name()));
                c
            })?;
            if !supported(f.data_type()) {
                return Err(ConnectorError::new(format!(
                    "datagen cannot generate column '{}' of type {} yet",
                    f.name(),
                    sluice_common::flink_type_name(f.data_type())
                )));
            }
            fields.push(gen);
        }
        if let Some((name, _)) = per_field.into_iter().next() {
            return Err(ConnectorError::new(format!("options for unknown column '{name}'")));
        }
        Ok(DatagenConfig { rows_per_second, number_of_rows, fields, schema: spec.connector_schema.clone() })
    }
}

fn default_range(t: &DataType) -> (f64, f64) {
    match t {
        DataType::Int8 => (i8::MIN as f64, i8::MAX as f64),
        DataType::Int16 => (i16::MIN as f64, i16::MAX as f64),
        DataType::Int32 => (i32::MIN as f64, i32::MAX as f64),
        DataType::Int64 => (i64::MIN as f64, i64::MAX as f64),
        _ => (0.0, 1.0e6),
    }
}

fn supported(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Utf8
            | DataType::Date32
            | DataType::Timestamp(..)
    )
}

pub struct DatagenSource {
    config: DatagenConfig,
    projection: Option<Vec<usize>>,
    rng: SmallRng,
    /// Random values of a batch come from `seed` and the batch's first row, so a run resumed from
    /// a checkpoint generates the same rows as one that was not interrupted.
    seed: u64,
    /// The next row of this subtask's share (`None`: not started).
    next: Option<u64>,
    batch_rows: usize,
}

impl DatagenSource {
    /// A subtask; `restored` is its [`Source::position`] from a checkpoint.
    pub fn new(
        config: DatagenConfig,
        projection: Option<Vec<usize>>,
        restored: Option<&[u8]>,
        batch_rows: usize,
    ) -> Result<Self, SluiceError> {
        let (seed, next) = match restored {
            Some(p) if p.len() == 16 => (
                u64::from_le_bytes(p[..8].try_into().expect("8 bytes")),
                Some(u64::from_le_bytes(p[8..].try_into().expect("8 bytes"))).filter(|&n| n != u64::MAX),
            ),
            Some(_) => return Err(SluiceError::internal("datagen: the checkpointed position is not 16 bytes")),
            None => (rand::random(), None),
        };
        Ok(DatagenSource { config, projection, rng: SmallRng::seed_from_u64(seed), seed, next, batch_rows })
    }

    /// Builds rows `[from, to)` of this subtask's share (sequence values are `start + index`).
    fn batch(&mut self, from: u64, to: u64) -> Result<RecordBatch, SluiceError> {
        self.rng = SmallRng::seed_from_u64(self.seed ^ from.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let n = (to - from) as usize;
        let now = chrono::Utc::now().timestamp_millis();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.config.fields.len());
        for (f, gen) in self.config.schema.fields().iter().zip(&self.config.fields) {
            let t = f.data_type();
            let array: ArrayRef = match gen {
                FieldGen::Sequence { start, .. } => {
                    let values = arrow::array::Int64Array::from_iter_values((from..to).map(|i| start + i as i64));
                    arrow::compute::cast(&values, t)?
                }
                FieldGen::Random { min, max, length, max_past_ms, null_rate } => {
                    let rng = &mut self.rng;
                    let nulls: Vec<bool> =
                        (0..n).map(|_| *null_rate > 0.0 && rng.random::<f64>() < *null_rate).collect();
                    let array: ArrayRef = match t {
                        DataType::Boolean => Arc::new(arrow::array::BooleanArray::from_iter(
                            (0..n).map(|i| (!nulls[i]).then(|| rng.random::<bool>())),
                        )),
                        DataType::Utf8 => Arc::new(arrow::array::StringArray::from_iter((0..n).map(|i| {
                            (!nulls[i]).then(|| {
                                (0..*length)
                                    .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
                                    .collect::<String>()
                            })
                        }))),
                        DataType::Timestamp(..) | DataType::Date32 => {
                            let v = arrow::array::TimestampMillisecondArray::from_iter((0..n).map(|i| {
                                (!nulls[i])
                                    .then(|| now - if *max_past_ms > 0 { rng.random_range(0..*max_past_ms) } else { 0 })
                            }));
                            let v = match t {
                                DataType::Timestamp(_, Some(tz)) => v.with_timezone(tz.clone()),
                                _ => v,
                            };
                            arrow::compute::cast(&v, t)?
                        }
                        _ => {
                            let integer = t.is_integer();
                            let v = arrow::array::Float64Array::from_iter((0..n).map(|i| {
                                (!nulls[i]).then(|| {
                                    let x = if max > min { rng.random_range(*min..=*max) } else { *min };
                                    if integer {
                                        x.round()
                                    } else {
                                        x
                                    }
                                })
                            }));
                            arrow::compute::cast(&v, t)?
                        }
                    };
                    array
                }
            };
            columns.push(array);
        }
        Ok(RecordBatch::try_new(self.config.schema.clone(), columns)?)
    }
}

#[async_trait::async_trait]
impl Source for DatagenSource {
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<(), SluiceError> {
        let p = ctx.parallelism as u64;
        let s = ctx.subtask as u64;
        // This subtask's rows: a contiguous share of the total, so sequences are split evenly.
        let (first, last) = match self.config.number_of_rows {
            Some(total) => (total * s / p, total * (s + 1) / p),
            None => (0, u64::MAX),
        };
        let rate = (self.config.rows_per_second / p).max(1);
        let batch_rows = rate.clamp(1, 4096).min(self.batch_rows as u64);
        let started = Instant::now();
        let mut next = self.next.unwrap_or(first);
        let first = next;
        while next < last {
            if ctx.should_stop() {
                break;
            }
            let to = (next + batch_rows).min(last);
            let batch = self.batch(next, to)?;
            let batch = match &self.projection {
                Some(p) => batch.project(p)?,
                None => batch,
            };
            ctx.emit(StreamBatch::append_only(batch)).await?;
            next = to;
            self.next = Some(next);
            ctx.checkpoint_point(|| self.position()).await?;
            // Pace to the rate: rows so far should have taken (rows / rate) seconds.
            let due = Duration::from_secs_f64((next - first) as f64 / rate as f64);
            let elapsed = started.elapsed();
            if due > elapsed {
                tokio::select! {
                    _ = tokio::time::sleep(due - elapsed) => {}
                    _ = ctx.stopped() => break,
                }
                ctx.tick().await?;
            }
        }
        Ok(())
    }

    /// The seed and the next row.
    fn position(&self) -> Vec<u8> {
        let mut p = self.seed.to_le_bytes().to_vec();
        p.extend_from_slice(&self.next.unwrap_or(u64::MAX).to_le_bytes());
        p
    }
}
