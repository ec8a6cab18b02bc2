//! JSON lines, as Flink's `json` format: decoding into Arrow with `arrow-json` (fast path: a whole
//! chunk of lines per call; on an error the chunk is decoded again line by line to find and report or
//! skip the bad lines), and encoding rows to Flink's JSON text.
//!
//! Options: `json.ignore-parse-errors` (skip and count bad lines), `json.fail-on-missing-field`,
//! `json.timestamp-format.standard` (`SQL` or `ISO-8601`; decoding accepts both spellings).

use super::values::{decimal_string, flink_json_timestamp, java_double, scalar_text, timestamp_of, timestamp_value};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Decimal128Type, Field, Schema, SchemaRef};
use arrow_json::reader::{Decoder, ReaderBuilder};
use base64::Engine;
use sluice_common::{OptionBag, OptionError};
use std::fmt::Write;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampStandard {
    #[default]
    Sql,
    Iso8601,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonDecodeOptions {
    pub ignore_parse_errors: bool,
    pub fail_on_missing_field: bool,
    pub timestamp_standard: TimestampStandard,
}

impl JsonDecodeOptions {
    /// Pulls the `json.*` options (Flink's names) from the bag.
    pub fn from_options(bag: &mut OptionBag) -> Result<Self, OptionError> {
        let ignore_parse_errors = bag.bool("json.ignore-parse-errors")?.unwrap_or(false);
        let fail_on_missing_field = bag.bool("json.fail-on-missing-field")?.unwrap_or(false);
        if ignore_parse_errors && fail_on_missing_field {
            return Err(OptionError::Invalid {
                key: "json.fail-on-missing-field".into(),
                value: "true".into(),
                message: "cannot be combined with 'json.ignore-parse-errors' = 'true'".into(),
            });
        }
        let timestamp_standard = match bag.one_of("json.timestamp-format.standard", &["SQL", "ISO-8601"])? {
            Some("ISO-8601") => TimestampStandard::Iso8601,
            _ => TimestampStandard::Sql,
        };
        // Accepted for compatibility with Flink's option set; sluice writes NULL map keys as "null".
        bag.string("json.map-null-key.mode");
        bag.string("json.map-null-key.literal");
        bag.bool("json.encode.decimal-as-plain-number")?;
        Ok(JsonDecodeOptions { ignore_parse_errors, fail_on_missing_field, timestamp_standard })
    }
}

/// A bad line: its 0-based index within the chunk passed to [`JsonLineDecoder::decode_lines`] and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub index: usize,
    pub reason: String,
}

/// Decodes chunks of JSON lines into batches of `schema`.
pub struct JsonLineDecoder {
    schema: SchemaRef,
    decode_schema: SchemaRef,
    decoder: Decoder,
}

/// Most lines one [`JsonLineDecoder::decode_lines`] call may take.
pub const MAX_LINES: usize = 16 * 1024;

fn build(schema: &SchemaRef) -> Decoder {
    ReaderBuilder::new(schema.clone())
        .with_batch_size(MAX_LINES)
        .with_strict_mode(false)
        .build_decoder()
        .expect("a decoder for any schema sluice builds")
}

impl JsonLineDecoder {
    /// The schema of the batches it returns.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub fn new(schema: SchemaRef, options: &JsonDecodeOptions) -> Self {
        // Missing fields become errors by decoding into non-nullable fields.
        let decode_schema = if options.fail_on_missing_field {
            Arc::new(Schema::new(
                schema.fields().iter().map(|f| Field::new(f.name(), f.data_type().clone(), false)).collect::<Vec<_>>(),
            ))
        } else {
            schema.clone()
        };
        let decoder = build(&decode_schema);
        JsonLineDecoder { schema, decode_schema, decoder }
    }

    /// Decodes `lines` (each one JSON object, without the newline). Returns the batch of good rows
    /// and the bad lines. Blank lines are ignored.
    pub fn decode_lines(&mut self, buf: &[u8], lines: &[(usize, usize)]) -> (RecordBatch, Vec<BadLine>) {
        assert!(lines.len() <= MAX_LINES, "at most MAX_LINES lines per call");
        if let Some(batch) = self.try_decode(buf, lines) {
            return (batch, Vec::new());
        }
        // Slow path: one line at a time to find the bad ones.
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (i, &(start, end)) in lines.iter().enumerate() {
            let line = &buf[start..end];
            if is_blank(line) {
                continue;
            }
            match self.decode_one(line) {
                Ok(b) => good.push(b),
                Err(reason) => {
                    self.decoder = build(&self.decode_schema);
                    bad.push(BadLine { index: i, reason });
                }
            }
        }
        let batch = if good.is_empty() {
            RecordBatch::new_empty(self.schema.clone())
        } else {
            let merged =
                arrow::compute::concat_batches(&self.decode_schema, &good).expect("batches of one schema concatenate");
            merged.with_schema(self.schema.clone()).expect("same fields, relaxed nullability")
        };
        (batch, bad)
    }

    /// Exactly one JSON object from `line` as a one-row batch, or why not.
    fn decode_one(&mut self, line: &[u8]) -> Result<RecordBatch, String> {
        let n = self.decoder.decode(line).map_err(|e| clean_reason(&e.to_string()))?;
        if self.decoder.has_partial_record() {
            return Err("the JSON value is not complete".into());
        }
        if n < line.len() && !is_blank(&line[n..]) || self.decoder.len() != 1 {
            return Err("expected exactly one JSON object on the line".into());
        }
        match self.decoder.flush() {
            Ok(Some(b)) if b.num_rows() == 1 => Ok(b),
            Ok(_) => Err("not a JSON object".into()),
            Err(e) => Err(clean_reason(&e.to_string())),
        }
    }

    /// Fast path: every line into one decoder, checking after each that it held exactly one complete
    /// object; one flush for the chunk. `None` when any line is bad (the decoder is then rebuilt).
    fn try_decode(&mut self, buf: &[u8], lines: &[(usize, usize)]) -> Option<RecordBatch> {
        let mut rows = 0;
        for &(start, end) in lines {
            let line = &buf[start..end];
            if is_blank(line) {
                continue;
            }
            let ok = match self.decoder.decode(line) {
                Ok(n) => (n == line.len() || is_blank(&line[n..])) && !self.decoder.has_partial_record(),
                Err(_) => false,
            };
            rows += 1;
            if !ok || self.decoder.len() != rows {
                self.decoder = build(&self.decode_schema);
                return None;
            }
        }
        match self.decoder.flush() {
            Ok(Some(b)) if b.num_rows() == rows => {
                Some(b.with_schema(self.schema.clone()).expect("same fields, relaxed nullability"))
            }
            Ok(None) if rows == 0 => Some(RecordBatch::new_empty(self.schema.clone())),
            _ => {
                // Type errors surface only when flushing; the slow path finds the line.
                self.decoder = build(&self.decode_schema);
                None
            }
        }
    }
}

fn is_blank(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_whitespace)
}

fn clean_reason(s: &str) -> String {
    s.trim_start_matches("Json error: ").trim_start_matches("Parser error: ").to_string()
}

/// Encodes rows as Flink's `json` format writes them.
#[derive(Debug, Clone, Copy)]
pub struct JsonEncoder {
    pub timestamp_standard: TimestampStandard,
}

impl JsonEncoder {
    /// Appends one JSON object per row, each followed by `\n`.
    pub fn encode(&self, batch: &RecordBatch, out: &mut String) {
        let schema = batch.schema();
        let names: Vec<String> =
            schema.fields().iter().map(|f| serde_json::to_string(f.name()).expect("strings serialize")).collect();
        for row in 0..batch.num_rows() {
            out.push('{');
            for (i, c) in batch.columns().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&names[i]);
                out.push(':');
                self.value(c.as_ref(), row, out);
            }
            out.push_str("}\n");
        }
    }

    fn value(&self, a: &dyn Array, row: usize, out: &mut String) {
        if a.is_null(row) {
            out.push_str("null");
            return;
        }
        let iso = self.timestamp_standard == TimestampStandard::Iso8601;
        match a.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let s = scalar_text(a, row).unwrap_or_default();
                out.push_str(&serde_json::to_string(&s).expect("strings serialize"));
            }
            DataType::Float32 | DataType::Float64 => {
                let v = match a.data_type() {
                    DataType::Float32 => a.as_primitive::<arrow::datatypes::Float32Type>().value(row) as f64,
                    _ => a.as_primitive::<arrow::datatypes::Float64Type>().value(row),
                };
                if v.is_finite() {
                    out.push_str(&java_double(v));
                } else {
                    let _ = write!(out, "\"{}\"", java_double(v));
                }
            }
            DataType::Decimal128(_, s) => {
                out.push_str(&decimal_string(a.as_primitive::<Decimal128Type>().value(row), *s))
            }
            DataType::Timestamp(unit, tz) => {
                let t = timestamp_value(a, row).and_then(|v| timestamp_of(unit, v));
                match t {
                    Some(t) => {
                        let _ = write!(out, "\"{}\"", flink_json_timestamp(&t, iso, tz.is_some()));
                    }
                    None => out.push_str("null"),
                }
            }
            DataType::Date32 | DataType::Time32(_) => {
                let _ = write!(out, "\"{}\"", scalar_text(a, row).unwrap_or_default());
            }
            DataType::Binary => {
                let b = a.as_binary::<i32>().value(row);
                let _ = write!(out, "\"{}\"", base64::engine::general_purpose::STANDARD.encode(b));
            }
            DataType::List(_) => {
                let values = a.as_list::<i32>().value(row);
                out.push('[');
                for i in 0..values.len() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.value(values.as_ref(), i, out);
                }
                out.push(']');
            }
            DataType::Map(_, _) => {
                let entries = a.as_map().value(row);
                out.push('{');
                for i in 0..entries.len() {
                    if i > 0 {
                        out.push(',');
                    }
                    let key = if entries.column(0).is_null(i) {
                        "null".to_string()
                    } else {
                        scalar_text(entries.column(0).as_ref(), i).unwrap_or_default()
                    };
                    out.push_str(&serde_json::to_string(&key).expect("strings serialize"));
                    out.push(':');
                    self.value(entries.column(1).as_ref(), i, out);
                }
                out.push('}');
            }
            DataType::Struct(fields) => {
                let s = a.as_struct();
                out.push('{');
                for (i, (f, c)) in fields.iter().zip(s.columns()).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(f.name()).expect("strings serialize"));
                    out.push(':');
                    self.value(c.as_ref(), row, out);
                }
                out.push('}');
            }
            _ => match scalar_text(a, row) {
                Some(s) => out.push_str(&s),
                None => out.push_str("null"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    fn lines(buf: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, b) in buf.iter().enumerate() {
            if *b == b'\n' {
                out.push((start, i));
                start = i + 1;
            }
        }
        if start < buf.len() {
            out.push((start, buf.len()));
        }
        out
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true),
        ]))
    }

    #[test]
    fn decodes_good_lines_in_one_batch() {
        let buf = b"{\"id\":1,\"name\":\"a\",\"ts\":\"2024-01-01T00:00:00.123Z\"}\n{\"id\":2,\"extra\":true}\n";
        let mut d = JsonLineDecoder::new(schema(), &JsonDecodeOptions::default());
        let (b, bad) = d.decode_lines(buf, &lines(buf));
        assert!(bad.is_empty());
        assert_eq!(b.num_rows(), 2);
        assert!(b.column(1).is_null(1), "missing fields are NULL by default");
    }

    #[test]
    fn bad_lines_are_found_and_the_rest_kept() {
        let buf = b"{\"id\":1}\n{\"id\": oops}\n{\"id\":\"x\"}\n{\"id\":4}\n";
        let mut d = JsonLineDecoder::new(schema(), &JsonDecodeOptions::default());
        let (b, bad) = d.decode_lines(buf, &lines(buf));
        assert_eq!(b.num_rows(), 2);
        assert_eq!(bad.iter().map(|b| b.index).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn type_errors_found_at_flush_are_reported_not_dropped() {
        let buf = b"{\"id\":1}\n{\"id\":\"x\"}\n{\"id\":3}\n";
        let mut d = JsonLineDecoder::new(schema(), &JsonDecodeOptions::default());
        let (b, bad) = d.decode_lines(buf, &lines(buf));
        assert_eq!(b.num_rows(), 2);
        assert_eq!(bad.iter().map(|b| b.index).collect::<Vec<_>>(), vec![1]);
        // The decoder is clean afterwards: the next chunk decodes fully.
        let (b, bad) = d.decode_lines(b"{\"id\":9}\n", &[(0, 8)]);
        assert_eq!((b.num_rows(), bad.len()), (1, 0));
    }

    #[test]
    fn a_line_must_hold_exactly_one_complete_object() {
        let buf = b"{\"id\":1}{\"id\":2}\n\n{\"id\":\n3}\n{\"id\":4}";
        let mut d = JsonLineDecoder::new(schema(), &JsonDecodeOptions::default());
        let (b, bad) = d.decode_lines(buf, &lines(buf));
        assert_eq!(b.num_rows(), 1, "only the last line is good");
        assert_eq!(bad.iter().map(|b| b.index).collect::<Vec<_>>(), vec![0, 2, 3]);
    }

    #[test]
    fn missing_fields_fail_when_asked() {
        let buf = b"{\"id\":1,\"name\":\"a\",\"ts\":null}\n{\"id\":2}\n";
        let opts = JsonDecodeOptions { fail_on_missing_field: true, ..Default::default() };
        let mut d = JsonLineDecoder::new(schema(), &opts);
        let (_, bad) = d.decode_lines(buf, &lines(buf));
        assert!(bad.iter().any(|b| b.index == 1), "{bad:?}");
    }

    #[test]
    fn encodes_flink_json() {
        let buf = b"{\"id\":1,\"name\":\"a\\\"b\",\"ts\":\"2024-01-01T00:00:00.120Z\"}\n";
        let mut d = JsonLineDecoder::new(schema(), &JsonDecodeOptions::default());
        let (b, _) = d.decode_lines(buf, &lines(buf));
        let mut out = String::new();
        JsonEncoder { timestamp_standard: TimestampStandard::Sql }.encode(&b, &mut out);
        assert_eq!(out, "{\"id\":1,\"name\":\"a\\\"b\",\"ts\":\"2024-01-01 00:00:00.12Z\"}\n");
    }
}
