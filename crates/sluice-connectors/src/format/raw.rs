//! Flink's `raw` format: the payload is the value of the table's one physical column.
//!
//! STRING (`raw.charset`: UTF-8 by default, also US-ASCII, ISO-8859-1, UTF-16BE, UTF-16LE,
//! UTF-16; malformed input is replaced by U+FFFD as Java does), BYTES as they are, and BOOLEAN,
//! TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE as fixed-size numbers in `raw.endianness`
//! (`big-endian` by default, or `little-endian`).
//!
//! Payloads cannot say NULL: an empty payload decodes to an empty STRING/BYTES and to NULL for the
//! numeric types; NULL encodes to an empty payload (a connector may send it as a tombstone).

use super::record::{Decoded, RecordDecoder, RecordEncoder};
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, Int8Builder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, SchemaRef};
use sluice_common::{flink_type_name, OptionBag, OptionError, SluiceError};
use std::sync::Arc;

pub const FORMAT: &str = "raw";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    #[default]
    Utf8,
    Ascii,
    Latin1,
    Utf16Be,
    Utf16Le,
    /// Java's `UTF-16`: decoding honours a byte order mark (big-endian without one); encoding
    /// writes a big-endian BOM.
    Utf16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOptions {
    pub charset: Charset,
    pub big_endian: bool,
}

impl Default for RawOptions {
    fn default() -> Self {
        RawOptions { charset: Charset::Utf8, big_endian: true }
    }
}

impl RawOptions {
    /// Pulls `raw.charset` and `raw.endianness` from the bag.
    pub fn from_options(bag: &mut OptionBag) -> Result<Self, OptionError> {
        let key = "raw.charset";
        let charset = match bag.string(key) {
            None => Charset::Utf8,
            Some(v) => match v.trim().to_ascii_uppercase().replace('_', "-").as_str() {
                "UTF-8" | "UTF8" => Charset::Utf8,
                "US-ASCII" | "ASCII" => Charset::Ascii,
                "ISO-8859-1" | "LATIN1" | "ISO8859-1" => Charset::Latin1,
                "UTF-16BE" => Charset::Utf16Be,
                "UTF-16LE" => Charset::Utf16Le,
                "UTF-16" => Charset::Utf16,
                _ => {
                    return Err(OptionError::Invalid {
                        key: key.into(),
                        value: v,
                        message: "expected one of UTF-8, US-ASCII, ISO-8859-1, UTF-16BE, UTF-16LE, UTF-16".into(),
                    })
                }
            },
        };
        let big_endian =
            !matches!(bag.one_of("raw.endianness", &["big-endian", "little-endian"])?, Some("little-endian"));
        Ok(RawOptions { charset, big_endian })
    }
}

/// Checks that the table has one physical column of a type `raw` supports.
fn check_schema(schema: &SchemaRef) -> Result<(), SluiceError> {
    if schema.fields().len() != 1 {
        return Err(SluiceError::user(format!(
            "format 'raw' needs exactly one physical column, the table has {}",
            schema.fields().len()
        )));
    }
    let f = schema.field(0);
    match f.data_type() {
        DataType::Utf8
        | DataType::Binary
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64 => Ok(()),
        other => Err(SluiceError::user(format!(
            "format 'raw' does not support column '{}' of type {} (supported: STRING, BYTES, BOOLEAN, TINYINT, \
             SMALLINT, INT, BIGINT, FLOAT, DOUBLE)",
            f.name(),
            flink_type_name(other)
        ))),
    }
}

fn decode_text(b: &[u8], charset: Charset) -> String {
    match charset {
        Charset::Utf8 => String::from_utf8_lossy(b).into_owned(),
        Charset::Ascii => b.iter().map(|&c| if c < 0x80 { c as char } else { '\u{fffd}' }).collect(),
        Charset::Latin1 => b.iter().map(|&c| c as char).collect(),
        Charset::Utf16Be | Charset::Utf16Le | Charset::Utf16 => {
            let (mut be, mut b) = (charset != Charset::Utf16Le, b);
            if charset == Charset::Utf16 && b.len() >= 2 {
                match (b[0], b[1]) {
                    (0xfe, 0xff) => b = &b[2..],
                    (0xff, 0xfe) => {
                        be = false;
                        b = &b[2..];
                    }
                    _ => {}
                }
            }
            let units = b.chunks(2).map(|c| match c {
                [h, l] if be => u16::from_be_bytes([*h, *l]),
                [l, h] => u16::from_be_bytes([*h, *l]),
                _ => 0xfffd, // an odd trailing byte
            });
            char::decode_utf16(units).map(|c| c.unwrap_or('\u{fffd}')).collect()
        }
    }
}

fn encode_text(s: &str, charset: Charset, out: &mut Vec<u8>) {
    match charset {
        Charset::Utf8 => out.extend_from_slice(s.as_bytes()),
        Charset::Ascii => out.extend(s.chars().map(|c| if c.is_ascii() { c as u8 } else { b'?' })),
        Charset::Latin1 => out.extend(s.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))),
        Charset::Utf16Be | Charset::Utf16 => {
            if charset == Charset::Utf16 {
                out.extend_from_slice(&[0xfe, 0xff]);
            }
            s.encode_utf16().for_each(|u| out.extend_from_slice(&u.to_be_bytes()));
        }
        Charset::Utf16Le => s.encode_utf16().for_each(|u| out.extend_from_slice(&u.to_le_bytes())),
    }
}

/// `raw` payloads into the table's one column.
pub struct RawDecoder {
    schema: SchemaRef,
    options: RawOptions,
}

impl RawDecoder {
    pub fn new(schema: SchemaRef, options: RawOptions) -> Result<Self, SluiceError> {
        check_schema(&schema)?;
        Ok(RawDecoder { schema, options })
    }

    /// The fixed-size number in `p`, or why not.
    fn number<const N: usize>(&self, p: &[u8]) -> Result<[u8; N], String> {
        let mut b: [u8; N] = p.try_into().map_err(|_| {
            format!(
                "a {} value has {N} byte{}, the payload has {}",
                flink_type_name(self.schema.field(0).data_type()),
                if N == 1 { "" } else { "s" },
                p.len()
            )
        })?;
        if !self.options.big_endian {
            b.reverse();
        }
        Ok(b)
    }
}

macro_rules! numbers {
    ($self:ident, $payloads:ident, $origin:ident, $bad:ident, $builder:ty, $t:ty, $n:literal) => {{
        let mut b = <$builder>::with_capacity($payloads.len());
        for (i, p) in $payloads.iter().enumerate() {
            if p.is_empty() {
                b.append_null();
                $origin.push(i as u32);
                continue;
            }
            match $self.number::<$n>(p) {
                Ok(v) => {
                    b.append_value(<$t>::from_be_bytes(v));
                    $origin.push(i as u32);
                }
                Err(reason) => $bad.push((i as u32, reason)),
            }
        }
        Arc::new(b.finish()) as ArrayRef
    }};
}

#[async_trait::async_trait]
impl RecordDecoder for RawDecoder {
    async fn decode(&mut self, payloads: &[&[u8]]) -> Result<Decoded, SluiceError> {
        let mut origin = Vec::with_capacity(payloads.len());
        let mut bad = Vec::new();
        let column: ArrayRef = match self.schema.field(0).data_type() {
            DataType::Utf8 => {
                let mut b = StringBuilder::with_capacity(payloads.len(), payloads.iter().map(|p| p.len()).sum());
                for p in payloads {
                    match (self.options.charset, std::str::from_utf8(p)) {
                        (Charset::Utf8, Ok(s)) => b.append_value(s),
                        _ => b.append_value(decode_text(p, self.options.charset)),
                    }
                }
                origin.extend(0..payloads.len() as u32);
                Arc::new(b.finish())
            }
            DataType::Binary => {
                let mut b = BinaryBuilder::with_capacity(payloads.len(), payloads.iter().map(|p| p.len()).sum());
                payloads.iter().for_each(|p| b.append_value(p));
                origin.extend(0..payloads.len() as u32);
                Arc::new(b.finish())
            }
            DataType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(payloads.len());
                for (i, p) in payloads.iter().enumerate() {
                    match p.len() {
                        0 => b.append_null(),
                        1 => b.append_value(p[0] != 0),
                        n => {
                            bad.push((i as u32, format!("a BOOLEAN value has 1 byte, the payload has {n}")));
                            continue;
                        }
                    }
                    origin.push(i as u32);
                }
                Arc::new(b.finish())
            }
            DataType::Int8 => numbers!(self, payloads, origin, bad, Int8Builder, i8, 1),
            DataType::Int16 => numbers!(self, payloads, origin, bad, Int16Builder, i16, 2),
            DataType::Int32 => numbers!(self, payloads, origin, bad, Int32Builder, i32, 4),
            DataType::Int64 => numbers!(self, payloads, origin, bad, Int64Builder, i64, 8),
            DataType::Float32 => numbers!(self, payloads, origin, bad, Float32Builder, f32, 4),
            DataType::Float64 => numbers!(self, payloads, origin, bad, Float64Builder, f64, 8),
            other => return Err(SluiceError::internal(format!("raw: unchecked type {other}"))),
        };
        let column = if self.schema.field(0).is_nullable() || column.null_count() == 0 {
            column
        } else {
            // A NOT NULL numeric column: empty payloads cannot be NULL there.
            let valid = arrow::compute::is_not_null(&column)?;
            for (i, &p) in origin.iter().enumerate() {
                if !valid.value(i) {
                    bad.push((p, format!("empty payload for NOT NULL column '{}'", self.schema.field(0).name())));
                }
            }
            bad.sort_by_key(|b| b.0);
            origin = origin.iter().zip(valid.iter()).filter(|(_, v)| v == &Some(true)).map(|(o, _)| *o).collect();
            arrow::compute::filter(&column, &valid)?
        };
        let batch = RecordBatch::try_new(self.schema.clone(), vec![column])?;
        Ok(Decoded { batch, origin, kinds: None, bad })
    }
}

/// The table's one column into `raw` payloads.
pub struct RawEncoder {
    options: RawOptions,
}

impl RawEncoder {
    pub fn new(schema: &SchemaRef, options: RawOptions) -> Result<Self, SluiceError> {
        check_schema(schema)?;
        Ok(RawEncoder { options })
    }

    fn number<const N: usize>(&self, be: [u8; N]) -> Vec<u8> {
        let mut b = be;
        if !self.options.big_endian {
            b.reverse();
        }
        b.to_vec()
    }
}

#[async_trait::async_trait]
impl RecordEncoder for RawEncoder {
    async fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<Vec<u8>>) -> Result<(), SluiceError> {
        let c = batch.column(0);
        out.reserve(c.len());
        for i in 0..c.len() {
            if c.is_null(i) {
                out.push(Vec::new());
                continue;
            }
            out.push(match c.data_type() {
                DataType::Utf8 => {
                    let s = c.as_string::<i32>().value(i);
                    let mut p = Vec::with_capacity(s.len());
                    encode_text(s, self.options.charset, &mut p);
                    p
                }
                DataType::Binary => c.as_binary::<i32>().value(i).to_vec(),
                DataType::Boolean => vec![u8::from(c.as_boolean().value(i))],
                DataType::Int8 => self.number(c.as_primitive::<Int8Type>().value(i).to_be_bytes()),
                DataType::Int16 => self.number(c.as_primitive::<Int16Type>().value(i).to_be_bytes()),
                DataType::Int32 => self.number(c.as_primitive::<Int32Type>().value(i).to_be_bytes()),
                DataType::Int64 => self.number(c.as_primitive::<Int64Type>().value(i).to_be_bytes()),
                DataType::Float32 => self.number(c.as_primitive::<Float32Type>().value(i).to_be_bytes()),
                DataType::Float64 => self.number(c.as_primitive::<Float64Type>().value(i).to_be_bytes()),
                other => return Err(SluiceError::internal(format!("raw: unchecked type {other}"))),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn one(t: DataType, nullable: bool) -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("v", t, nullable)]))
    }

    #[test]
    fn strings_round_trip_in_each_charset() {
        for charset in [Charset::Utf8, Charset::Utf16, Charset::Utf16Le, Charset::Utf16Be] {
            let opts = RawOptions { charset, big_endian: true };
            let schema = one(DataType::Utf8, true);
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["héllo 🌍", ""]))]).unwrap();
            let mut out = Vec::new();
            block(RawEncoder::new(&schema, opts).unwrap().encode(&batch, &mut out)).unwrap();
            let refs: Vec<&[u8]> = out.iter().map(|p| p.as_slice()).collect();
            let d = block(RawDecoder::new(schema, opts).unwrap().decode(&refs)).unwrap();
            assert_eq!(d.batch, batch, "{charset:?}");
        }
        let d = block(RawDecoder::new(one(DataType::Utf8, true), RawOptions::default()).unwrap().decode(&[b"a\xffb"]))
            .unwrap();
        assert_eq!(d.batch.column(0).as_string::<i32>().value(0), "a\u{fffd}b", "malformed UTF-8 is replaced");
        assert_eq!(decode_text(b"caf\xe9", Charset::Latin1), "café");
        let mut p = Vec::new();
        encode_text("café", Charset::Ascii, &mut p);
        assert_eq!(p, b"caf?");
    }

    #[test]
    fn numbers_in_either_endianness() {
        let schema = one(DataType::Int32, true);
        let d = block(
            RawDecoder::new(schema.clone(), RawOptions { charset: Charset::Utf8, big_endian: true })
                .unwrap()
                .decode(&[&[0, 0, 1, 2], &[1, 2, 3], &[]]),
        )
        .unwrap();
        assert_eq!(d.batch.column(0).as_primitive::<Int32Type>().iter().collect::<Vec<_>>(), vec![Some(258), None]);
        assert_eq!(d.origin, vec![0, 2]);
        assert_eq!(d.bad, vec![(1, "a INT value has 4 bytes, the payload has 3".to_string())]);

        let le = RawOptions { charset: Charset::Utf8, big_endian: false };
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(vec![Some(258), None]))]).unwrap();
        let mut out = Vec::new();
        block(RawEncoder::new(&schema, le).unwrap().encode(&batch, &mut out)).unwrap();
        assert_eq!(out, vec![vec![2, 1, 0, 0], vec![]]);

        let d = block(RawDecoder::new(one(DataType::Int32, false), le).unwrap().decode(&[&[], &[1, 0, 0, 0]])).unwrap();
        assert_eq!(d.origin, vec![1]);
        assert_eq!(d.bad, vec![(0, "empty payload for NOT NULL column 'v'".to_string())]);
    }

    #[test]
    fn options_and_types() {
        let mut bag = OptionBag::new(
            "kafka",
            [("raw.charset", "utf-16le"), ("raw.endianness", "little-endian")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let o = RawOptions::from_options(&mut bag).unwrap();
        assert_eq!(o, RawOptions { charset: Charset::Utf16Le, big_endian: false });
        let mut bag =
            OptionBag::new("kafka", [("raw.charset".to_string(), "EBCDIC".to_string())].into_iter().collect());
        assert!(RawOptions::from_options(&mut bag).unwrap_err().to_string().starts_with("option 'raw.charset'"));
        let e = RawDecoder::new(one(DataType::Date32, true), RawOptions::default()).err().unwrap().to_string();
        assert!(e.contains("does not support column 'v' of type DATE"), "{e}");
        let two =
            Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true), Field::new("b", DataType::Utf8, true)]));
        assert!(RawEncoder::new(&two, RawOptions::default()).is_err());
    }
}
