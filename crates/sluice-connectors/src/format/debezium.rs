//! Flink's `debezium-json` decoding: Debezium's change envelope
//! `{"before": {...}, "after": {...}, "op": "c" | "r" | "u" | "d", "source": ..., "ts_ms": ...}`,
//! or with `'debezium-json.schema-include' = 'true'` the same inside `{"schema": ..., "payload": ...}`.
//!
//! `c` and `r` give `+I` of `after`; `u` gives `-U` of `before` then `+U` of `after` (two rows with
//! one payload index in [`Decoded::origin`]); `d` gives `-D` of `before`. Empty payloads (Kafka
//! tombstones after a delete) give no row and are not bad. The envelopes of a whole run are
//! decoded by one arrow-json pass ([`JsonLineDecoder`]); the row images are then interleaved.
//!
//! `debezium-json.ignore-parse-errors` is for the caller: bad payloads are always reported in
//! [`Decoded::bad`], and the source skips them (and counts them) when it is set.

use super::json::{JsonDecodeOptions, JsonLineDecoder, TimestampStandard};
use super::json_record::decode_objects;
use super::record::{Decoded, RecordDecoder};
use arrow::array::{Array, AsArray, RecordBatch, RecordBatchOptions, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use sluice_common::{OptionBag, OptionError, RowKind, SluiceError};
use std::sync::Arc;

pub const FORMAT: &str = "debezium-json";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DebeziumJsonOptions {
    pub schema_include: bool,
    pub ignore_parse_errors: bool,
    pub timestamp_standard: TimestampStandard,
}

impl DebeziumJsonOptions {
    /// Pulls the `debezium-json.*` options (Flink's names) from the bag.
    pub fn from_options(bag: &mut OptionBag) -> Result<Self, OptionError> {
        let schema_include = bag.bool("debezium-json.schema-include")?.unwrap_or(false);
        let ignore_parse_errors = bag.bool("debezium-json.ignore-parse-errors")?.unwrap_or(false);
        let timestamp_standard = match bag.one_of("debezium-json.timestamp-format.standard", &["SQL", "ISO-8601"])? {
            Some("ISO-8601") => TimestampStandard::Iso8601,
            _ => TimestampStandard::Sql,
        };
        // Encoding options Flink accepts; sluice has no debezium-json encoder.
        bag.string("debezium-json.map-null-key.mode");
        bag.string("debezium-json.map-null-key.literal");
        bag.bool("debezium-json.encode.decimal-as-plain-number")?;
        Ok(DebeziumJsonOptions { schema_include, ignore_parse_errors, timestamp_standard })
    }
}

/// `debezium-json` payloads into changelog rows of a table's columns.
pub struct DebeziumJsonDecoder {
    schema: SchemaRef,
    schema_include: bool,
    envelope_schema: SchemaRef,
    envelope: JsonLineDecoder,
}

fn replica_identity(kind: &str) -> String {
    format!(
        "the \"before\" field of {kind} message is null, if you are using Debezium Postgres Connector, \
         please check the Postgres table has been set REPLICA IDENTITY to FULL level"
    )
}

impl DebeziumJsonDecoder {
    pub fn new(schema: SchemaRef, options: &DebeziumJsonOptions) -> Self {
        // Row images with every top-level column nullable: NOT NULL is checked per row below, so one
        // bad image does not fail the whole run.
        let image = DataType::Struct(Fields::from(
            schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect::<Vec<Field>>(),
        ));
        let change = vec![
            Field::new("before", image.clone(), true),
            Field::new("after", image, true),
            Field::new("op", DataType::Utf8, true),
        ];
        let envelope = if options.schema_include {
            Schema::new(vec![Field::new("payload", DataType::Struct(Fields::from(change)), true)])
        } else {
            let mut fields = change;
            // Only to say what is wrong when messages carry a schema but the option is off.
            let hint = Fields::from(vec![Field::new("op", DataType::Utf8, true)]);
            fields.push(Field::new("payload", DataType::Struct(hint), true));
            Schema::new(fields)
        };
        let json = JsonDecodeOptions { timestamp_standard: options.timestamp_standard, ..Default::default() };
        let envelope_schema = Arc::new(envelope);
        DebeziumJsonDecoder {
            schema,
            schema_include: options.schema_include,
            envelope: JsonLineDecoder::new(envelope_schema.clone(), &json),
            envelope_schema,
        }
    }
}

#[async_trait::async_trait]
impl RecordDecoder for DebeziumJsonDecoder {
    async fn decode(&mut self, payloads: &[&[u8]]) -> Result<Decoded, SluiceError> {
        let rows = decode_objects(&mut self.envelope, &self.envelope_schema, payloads)?;
        let mut bad = rows.bad;
        let change: StructArray = if self.schema_include {
            let payload = rows.batch.column(0).as_struct().clone();
            for (i, &p) in rows.origin.iter().enumerate() {
                if payload.is_null(i) {
                    bad.push((p, "no \"payload\" in the message (is 'debezium-json.schema-include' right?)".into()));
                }
            }
            payload
        } else {
            StructArray::from(rows.batch.clone())
        };
        let before = change.column(0).as_struct();
        let after = change.column(1).as_struct();
        let op = change.column(2).as_string::<i32>();
        let hint = (!self.schema_include).then(|| change.column(3).as_struct().column(0).as_string::<i32>());

        // (image, row) pairs for interleave: image 0 is `before`, 1 is `after`.
        let mut take: Vec<(usize, usize)> = Vec::with_capacity(rows.origin.len());
        let mut kinds = Vec::with_capacity(rows.origin.len());
        let mut origin = Vec::with_capacity(rows.origin.len());
        let bad_before = bad.len();
        for (i, &p) in rows.origin.iter().enumerate() {
            if change.is_null(i) {
                continue; // reported above
            }
            if op.is_null(i) {
                let reason = if hint.is_some_and(|h| h.is_valid(i)) {
                    "the message has a \"schema\" and \"payload\": set 'debezium-json.schema-include' = 'true'"
                        .to_string()
                } else {
                    "no \"op\" in the message (not a Debezium JSON change event?)".to_string()
                };
                bad.push((p, reason));
                continue;
            }
            let emit: &[(usize, RowKind)] = match op.value(i) {
                "c" | "r" => &[(1, RowKind::Insert)],
                "u" => &[(0, RowKind::UpdateBefore), (1, RowKind::UpdateAfter)],
                "d" => &[(0, RowKind::Delete)],
                other => {
                    bad.push((p, format!("unknown \"op\" value \"{other}\"")));
                    continue;
                }
            };
            if let Some(&(image, _)) = emit.iter().find(|(image, _)| [before, after][*image].is_null(i)) {
                let reason = match (image, op.value(i)) {
                    (0, "u") => replica_identity("UPDATE"),
                    (0, _) => replica_identity("DELETE"),
                    (_, o) => format!("the \"after\" field of a \"{o}\" message is null"),
                };
                bad.push((p, reason));
                continue;
            }
            if let Some(column) = self.null_in_not_null(before, after, emit, i) {
                bad.push((p, format!("NULL for NOT NULL column '{column}'")));
                continue;
            }
            for &(image, kind) in emit {
                take.push((image, i));
                kinds.push(kind);
                origin.push(p);
            }
        }
        if bad.len() != bad_before {
            bad.sort_by_key(|b| b.0);
        }
        let images: [&dyn Array; 2] = [before, after];
        let rows_out = arrow::compute::interleave(&images, &take)?;
        let columns = rows_out.as_struct().columns().to_vec();
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(take.len())),
        )?;
        Ok(Decoded { batch, origin, kinds: Some(kinds), bad })
    }
}

impl DebeziumJsonDecoder {
    /// The first NOT NULL column that is NULL in an image `emit` takes from row `i`.
    fn null_in_not_null(
        &self,
        before: &StructArray,
        after: &StructArray,
        emit: &[(usize, RowKind)],
        i: usize,
    ) -> Option<String> {
        for (c, f) in self.schema.fields().iter().enumerate() {
            if f.is_nullable() {
                continue;
            }
            for &(image, _) in emit {
                if [before, after][image].column(c).is_null(i) {
                    return Some(f.name().clone());
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Int64Type;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]))
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn run(options: &DebeziumJsonOptions, payloads: &[&str]) -> Decoded {
        let mut d = DebeziumJsonDecoder::new(schema(), options);
        let p: Vec<&[u8]> = payloads.iter().map(|s| s.as_bytes()).collect();
        block(d.decode(&p)).unwrap()
    }

    fn ids(d: &Decoded) -> Vec<i64> {
        d.batch.column(0).as_primitive::<Int64Type>().values().to_vec()
    }

    #[test]
    fn ops_become_row_kinds() {
        let d = run(
            &DebeziumJsonOptions::default(),
            &[
                r#"{"before": null, "after": {"id": 1, "name": "a"}, "op": "c", "source": {"db": "x"}, "ts_ms": 1}"#,
                r#"{"before": null, "after": {"id": 2, "name": "b"}, "op": "r"}"#,
                "",
                r#"{"before": {"id": 1, "name": "a"}, "after": {"id": 1, "name": "A"}, "op": "u"}"#,
                r#"{"before": {"id": 2, "name": "b"}, "after": null, "op": "d"}"#,
            ],
        );
        assert!(d.bad.is_empty(), "{:?}", d.bad);
        assert_eq!(ids(&d), vec![1, 2, 1, 1, 2]);
        assert_eq!(d.origin, vec![0, 1, 3, 3, 4]);
        let kinds: Vec<&str> = d.kinds.as_ref().unwrap().iter().map(|k| k.short_string()).collect();
        assert_eq!(kinds, vec!["+I", "+I", "-U", "+U", "-D"]);
        let names: Vec<_> = d.batch.column(1).as_string::<i32>().iter().collect();
        assert_eq!(names, vec![Some("a"), Some("b"), Some("a"), Some("A"), Some("b")]);
        assert_eq!(d.batch.schema(), schema(), "the table's schema, NOT NULL included");
    }

    #[test]
    fn bad_messages_have_reasons() {
        let d = run(
            &DebeziumJsonOptions::default(),
            &[
                r#"{"before": null, "after": {"id": 1}, "op": "u"}"#,
                r#"{"before": null, "after": null, "op": "d"}"#,
                r#"{"after": {"id": 3}, "op": "x"}"#,
                r#"{"after": {"id": 4}}"#,
                r#"{"schema": {}, "payload": {"after": {"id": 5}, "op": "c"}}"#,
                r#"{"after": {"name": "no id"}, "op": "c"}"#,
                r#"not json"#,
                r#"{"before": null, "after": {"id": 9}, "op": "c"}"#,
            ],
        );
        assert_eq!(ids(&d), vec![9]);
        assert_eq!(d.origin, vec![7]);
        let reasons: Vec<(u32, &str)> = d.bad.iter().map(|(i, r)| (*i, r.as_str())).collect();
        assert_eq!(reasons[0], (0, replica_identity("UPDATE").as_str()));
        assert_eq!(reasons[1], (1, replica_identity("DELETE").as_str()));
        assert_eq!(reasons[2], (2, "unknown \"op\" value \"x\""));
        assert_eq!(reasons[3], (3, "no \"op\" in the message (not a Debezium JSON change event?)"));
        assert_eq!(
            reasons[4],
            (4, "the message has a \"schema\" and \"payload\": set 'debezium-json.schema-include' = 'true'")
        );
        assert_eq!(reasons[5], (5, "NULL for NOT NULL column 'id'"));
        assert_eq!(reasons[6].0, 6);
    }

    #[test]
    fn schema_include_reads_the_payload() {
        let opts = DebeziumJsonOptions { schema_include: true, ..Default::default() };
        let d = run(
            &opts,
            &[
                r#"{"schema": {"type": "struct"}, "payload": {"before": {"id": 7, "name": "x"}, "after": {"id": 7, "name": "y"}, "op": "u"}}"#,
                r#"{"before": null, "after": {"id": 8}, "op": "c"}"#,
            ],
        );
        assert_eq!(ids(&d), vec![7, 7]);
        assert_eq!(d.origin, vec![0, 0]);
        assert_eq!(d.bad.len(), 1);
        assert_eq!(d.bad[0].0, 1);
    }

    #[test]
    fn options() {
        let mut bag = OptionBag::new(
            "kafka",
            [("debezium-json.schema-include", "true"), ("debezium-json.timestamp-format.standard", "ISO-8601")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let o = DebeziumJsonOptions::from_options(&mut bag).unwrap();
        assert!(o.schema_include && !o.ignore_parse_errors);
        assert_eq!(o.timestamp_standard, TimestampStandard::Iso8601);
        bag.finish().unwrap();
    }
}
