//! Flink's `json` format for message payloads: one payload is one JSON object. Decoding runs all
//! payloads of a call through one [`JsonLineDecoder`] (arrow-json, a whole chunk at a time);
//! encoding is [`JsonEncoder`]'s text, one object per payload.
//!
//! An empty (or all-whitespace) payload is a tombstone: no row, not bad, as Flink skips null
//! messages.

use super::json::{JsonDecodeOptions, JsonEncoder, JsonLineDecoder, MAX_LINES};
use super::record::{Decoded, RecordDecoder, RecordEncoder};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use sluice_common::SluiceError;

/// Good rows of a run of JSON payloads: the batch, each row's payload index, and the bad payloads.
pub(crate) struct JsonRows {
    pub batch: RecordBatch,
    pub origin: Vec<u32>,
    pub bad: Vec<(u32, String)>,
}

fn is_blank(p: &[u8]) -> bool {
    p.iter().all(u8::is_ascii_whitespace)
}

/// Decodes each non-blank payload as one JSON object of the decoder's schema.
/// `schema` is the decoder's.
pub(crate) fn decode_objects(
    decoder: &mut JsonLineDecoder,
    schema: &SchemaRef,
    payloads: &[&[u8]],
) -> Result<JsonRows, SluiceError> {
    let total: usize = payloads.iter().map(|p| p.len()).sum();
    let mut buf = Vec::with_capacity(total);
    let mut lines = Vec::with_capacity(payloads.len());
    let mut index = Vec::with_capacity(payloads.len());
    for (i, p) in payloads.iter().enumerate() {
        if is_blank(p) {
            continue;
        }
        let start = buf.len();
        buf.extend_from_slice(p);
        lines.push((start, buf.len()));
        index.push(i as u32);
    }
    let mut batches = Vec::new();
    let mut origin = Vec::with_capacity(lines.len());
    let mut bad = Vec::new();
    for (c, chunk) in lines.chunks(MAX_LINES).enumerate() {
        let base = c * MAX_LINES;
        let (batch, bad_lines) = decoder.decode_lines(&buf, chunk);
        let mut next_bad = bad_lines.iter().peekable();
        for j in 0..chunk.len() {
            if next_bad.peek().is_some_and(|b| b.index == j) {
                let b = next_bad.next().expect("peeked");
                bad.push((index[base + j], b.reason.clone()));
            } else {
                origin.push(index[base + j]);
            }
        }
        batches.push(batch);
    }
    let batch = match batches.len() {
        0 => RecordBatch::new_empty(schema.clone()),
        1 => batches.pop().expect("one batch"),
        _ => arrow::compute::concat_batches(schema, &batches)?,
    };
    debug_assert_eq!(batch.num_rows(), origin.len());
    Ok(JsonRows { batch, origin, bad })
}

/// `json` payloads into rows.
pub struct JsonRecordDecoder {
    schema: SchemaRef,
    decoder: JsonLineDecoder,
}

impl JsonRecordDecoder {
    pub fn new(schema: SchemaRef, options: &JsonDecodeOptions) -> Self {
        JsonRecordDecoder { decoder: JsonLineDecoder::new(schema.clone(), options), schema }
    }
}

#[async_trait::async_trait]
impl RecordDecoder for JsonRecordDecoder {
    async fn decode(&mut self, payloads: &[&[u8]]) -> Result<Decoded, SluiceError> {
        let rows = decode_objects(&mut self.decoder, &self.schema, payloads)?;
        Ok(Decoded { batch: rows.batch, origin: rows.origin, kinds: None, bad: rows.bad })
    }
}

/// Rows into `json` payloads, as Flink writes them.
pub struct JsonRecordEncoder {
    encoder: JsonEncoder,
    text: String,
}

impl JsonRecordEncoder {
    pub fn new(options: &JsonDecodeOptions) -> Self {
        JsonRecordEncoder {
            encoder: JsonEncoder { timestamp_standard: options.timestamp_standard },
            text: String::new(),
        }
    }
}

#[async_trait::async_trait]
impl RecordEncoder for JsonRecordEncoder {
    async fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<Vec<u8>>) -> Result<(), SluiceError> {
        self.text.clear();
        self.encoder.encode(batch, &mut self.text);
        // Each object ends with '\n'; JSON text escapes newlines inside strings.
        out.extend(self.text.split_terminator('\n').map(|l| l.as_bytes().to_vec()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true), Field::new("name", DataType::Utf8, true)]))
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn one_object_per_payload() {
        let mut d = JsonRecordDecoder::new(schema(), &JsonDecodeOptions::default());
        let payloads: Vec<&[u8]> = vec![
            br#"{"id": 1, "name": "a"}"#,
            b"",
            b"{\"id\":\n 2}",
            br#"{"id": 3}{"id": 4}"#,
            br#"{"id": "x"}"#,
            br#"{"id": 5, "name": "line\nbreak"}"#,
        ];
        let dec = block(d.decode(&payloads)).unwrap();
        assert_eq!(dec.origin, vec![0, 2, 5]);
        assert_eq!(dec.batch.column(0).as_primitive::<Int64Type>().values(), &[1, 2, 5]);
        assert_eq!(dec.bad.iter().map(|b| b.0).collect::<Vec<_>>(), vec![3, 4]);
        assert!(dec.kinds.is_none());

        let mut e = JsonRecordEncoder::new(&JsonDecodeOptions::default());
        let mut out = Vec::new();
        block(e.encode(&dec.batch, &mut out)).unwrap();
        let out: Vec<String> = out.into_iter().map(|p| String::from_utf8(p).unwrap()).collect();
        assert_eq!(out, vec![r#"{"id":1,"name":"a"}"#, r#"{"id":2,"name":null}"#, r#"{"id":5,"name":"line\nbreak"}"#]);
        assert!(dec.batch.column(1).is_null(1));
    }

    #[test]
    fn more_payloads_than_one_chunk() {
        let mut d = JsonRecordDecoder::new(schema(), &JsonDecodeOptions::default());
        let texts: Vec<String> = (0..MAX_LINES + 10).map(|i| format!("{{\"id\": {i}}}")).collect();
        let mut payloads: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
        payloads[MAX_LINES + 2] = b"nope";
        let dec = block(d.decode(&payloads)).unwrap();
        assert_eq!(dec.batch.num_rows(), MAX_LINES + 9);
        assert_eq!(dec.bad.len(), 1);
        assert_eq!(dec.bad[0].0 as usize, MAX_LINES + 2);
        assert_eq!(dec.origin[MAX_LINES + 2] as usize, MAX_LINES + 3);
    }
}
