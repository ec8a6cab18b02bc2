//! Arrow rows into Avro binary datums of a writer schema (derived from the table or given).
//!
//! Per batch the Avro schema is bound to the batch's arrays once ([`W`]: typed slices and the
//! union branch of each value), then each row is written by walking that tree; no per-value
//! downcasts or lookups. Mismatches between the table and a given schema are found when the
//! encoder is built (by binding an empty batch), values that do not fit (a NULL for a non-null
//! Avro type, an unknown enum symbol) when they are written.

use super::schema::{
    arrow_units_per_second, avro_type_name, encode_default, flink_timestamp_units, timestamp_units_per_second,
    unit_scale, ParsedSchema,
};
use apache_avro::schema::{InnerDecimalSchema, Schema, UuidSchema};
use arrow::array::{Array, AsArray, BinaryArray, BooleanArray, StringArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    Time32MillisecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use sluice_common::flink_type_name;
use std::collections::HashMap;

type Res<T> = Result<T, String>;

#[inline]
pub fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[inline]
fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

/// Numbers of any integer or float column.
#[derive(Clone, Copy)]
pub(super) enum Src<'a> {
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl Src<'_> {
    #[inline]
    fn int(&self, i: usize) -> i64 {
        match self {
            Src::I8(v) => i64::from(v[i]),
            Src::I16(v) => i64::from(v[i]),
            Src::I32(v) => i64::from(v[i]),
            Src::I64(v) => v[i],
            Src::F32(v) => v[i] as i64,
            Src::F64(v) => v[i] as i64,
        }
    }
    #[inline]
    fn float(&self, i: usize) -> f64 {
        match self {
            Src::F32(v) => f64::from(v[i]),
            Src::F64(v) => v[i],
            _ => self.int(i) as f64,
        }
    }
}

fn src_of(a: &dyn Array) -> Option<Src<'_>> {
    Some(match a.data_type() {
        DataType::Int8 => Src::I8(a.as_primitive::<Int8Type>().values()),
        DataType::Int16 => Src::I16(a.as_primitive::<Int16Type>().values()),
        DataType::Int32 => Src::I32(a.as_primitive::<Int32Type>().values()),
        DataType::Int64 => Src::I64(a.as_primitive::<Int64Type>().values()),
        DataType::Date32 => Src::I32(a.as_primitive::<Date32Type>().values()),
        DataType::Time32(TimeUnit::Millisecond) => Src::I32(a.as_primitive::<Time32MillisecondType>().values()),
        DataType::Timestamp(TimeUnit::Second, _) => Src::I64(a.as_primitive::<TimestampSecondType>().values()),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Src::I64(a.as_primitive::<TimestampMillisecondType>().values())
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            Src::I64(a.as_primitive::<TimestampMicrosecondType>().values())
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Src::I64(a.as_primitive::<TimestampNanosecondType>().values()),
        DataType::Float32 => Src::F32(a.as_primitive::<Float32Type>().values()),
        DataType::Float64 => Src::F64(a.as_primitive::<Float64Type>().values()),
        _ => return None,
    })
}

#[derive(Clone, Copy)]
pub(super) enum Bin<'a> {
    Str(&'a StringArray),
    Bin(&'a BinaryArray),
}

impl Bin<'_> {
    #[inline]
    fn get(&self, i: usize) -> &[u8] {
        match self {
            Bin::Str(a) => a.value(i).as_bytes(),
            Bin::Bin(a) => a.value(i),
        }
    }
}

/// An Avro schema bound to an array of one batch.
pub(super) enum W<'a> {
    /// A union with a `null` branch for a column that may hold nulls.
    Nullable {
        nulls: Option<&'a NullBuffer>,
        null_branch: i64,
        branch: Option<i64>,
        inner: Box<W<'a>>,
    },
    /// A column with nulls where the Avro type has none: a null is an error.
    NoNulls {
        nulls: &'a NullBuffer,
        branch: Option<i64>,
        inner: Box<W<'a>>,
        path: String,
    },
    /// A non-null union branch.
    Branch {
        branch: i64,
        inner: Box<W<'a>>,
    },
    /// Avro `null`: writes nothing.
    Nothing,
    Bool(&'a BooleanArray),
    /// `int`: range-checked.
    Int {
        src: Src<'a>,
        mul: i64,
        path: String,
    },
    Long {
        src: Src<'a>,
        mul: i64,
        div: i64,
        path: String,
    },
    Float(Src<'a>),
    Double(Src<'a>),
    Bytes(Bin<'a>),
    Fixed {
        src: Bin<'a>,
        size: usize,
        path: String,
    },
    /// UUID text into `fixed(16)`.
    UuidFixed {
        src: &'a StringArray,
        path: String,
    },
    Enum {
        src: &'a StringArray,
        symbols: HashMap<&'a str, i64>,
        path: String,
    },
    Decimal {
        values: &'a [i128],
        rescale: u32,
        fixed: Option<usize>,
        path: String,
    },
    Record(Vec<FieldW<'a>>),
    Array {
        offsets: &'a [i32],
        item: Box<W<'a>>,
    },
    Map {
        offsets: &'a [i32],
        keys: &'a StringArray,
        values: Box<W<'a>>,
    },
}

pub(super) enum FieldW<'a> {
    Col(W<'a>),
    /// A field the table does not have: its default, encoded once.
    Const(Vec<u8>),
}

fn path_of(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Binds `schema` to `a`. `Err` when the column's type cannot be written as the Avro type.
pub(super) fn bind<'a>(a: &'a dyn Array, schema: &'a Schema, names: &'a ParsedSchema, path: &str) -> Res<W<'a>> {
    let schema = names.resolve(schema);
    let nulls = a.nulls().filter(|n| n.null_count() > 0);
    if let Schema::Union(u) = schema {
        let variants = u.variants();
        let null_branch = variants.iter().position(|v| matches!(v, Schema::Null));
        let mut first_err = None;
        let mut value = None;
        for (i, v) in variants.iter().enumerate() {
            if matches!(v, Schema::Null) {
                continue;
            }
            match bind_value(a, names.resolve(v), names, path) {
                Ok(w) => {
                    value = Some((i as i64, w));
                    break;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        return match (value, null_branch) {
            (Some((b, w)), Some(n)) => {
                Ok(W::Nullable { nulls: a.nulls(), null_branch: n as i64, branch: Some(b), inner: Box::new(w) })
            }
            (Some((b, w)), None) => match nulls {
                Some(nulls) => Ok(W::NoNulls { nulls, branch: Some(b), inner: Box::new(w), path: path.to_string() }),
                None => Ok(W::Branch { branch: b, inner: Box::new(w) }),
            },
            // A union of null alone.
            (None, Some(n)) if variants.len() == 1 => {
                Ok(W::Nullable { nulls: None, null_branch: n as i64, branch: None, inner: Box::new(W::Nothing) })
            }
            (None, _) => Err(first_err.unwrap_or_else(|| format!("column '{path}': empty Avro union"))),
        };
    }
    if matches!(schema, Schema::Null) {
        return Ok(W::Nothing);
    }
    let w = bind_value(a, schema, names, path)?;
    Ok(match nulls {
        Some(nulls) => W::NoNulls { nulls, branch: None, inner: Box::new(w), path: path.to_string() },
        None => w,
    })
}

fn bind_value<'a>(a: &'a dyn Array, s: &'a Schema, names: &'a ParsedSchema, path: &str) -> Res<W<'a>> {
    use DataType as D;
    use Schema as S;
    let dt = a.data_type();
    let mismatch = || {
        let what = if path.is_empty() { "the table's row".to_string() } else { format!("column '{path}'") };
        format!("{what}: {} cannot be written as Avro {}", flink_type_name(dt), avro_type_name(s))
    };
    let p = path.to_string();
    let integer = matches!(dt, D::Int8 | D::Int16 | D::Int32 | D::Int64);
    Ok(match (dt, s) {
        (D::Boolean, S::Boolean) => W::Bool(a.as_boolean()),
        (_, S::Int) if integer => W::Int { src: src_of(a).expect("integer"), mul: 1, path: p },
        (_, S::Long) if integer => W::Long { src: src_of(a).expect("integer"), mul: 1, div: 1, path: p },
        (_, S::Float) if integer || matches!(dt, D::Float32 | D::Float64) => W::Float(src_of(a).expect("number")),
        (_, S::Double) if integer || matches!(dt, D::Float32 | D::Float64) => W::Double(src_of(a).expect("number")),
        (D::Date32, S::Date | S::Int) => W::Int { src: src_of(a).expect("date"), mul: 1, path: p },
        (D::Time32(TimeUnit::Millisecond), S::TimeMillis | S::Int) => {
            W::Int { src: src_of(a).expect("time"), mul: 1, path: p }
        }
        (D::Time32(TimeUnit::Millisecond), S::TimeMicros) => {
            W::Long { src: src_of(a).expect("time"), mul: 1000, div: 1, path: p }
        }
        (D::Timestamp(unit, _), S::Long) => {
            let (mul, div) = unit_scale(arrow_units_per_second(unit), flink_timestamp_units(unit));
            W::Long { src: src_of(a).expect("timestamp"), mul, div, path: p }
        }
        (D::Timestamp(unit, _), s) if timestamp_units_per_second(s).is_some() => {
            let to = timestamp_units_per_second(s).expect("checked");
            let (mul, div) = unit_scale(arrow_units_per_second(unit), to);
            W::Long { src: src_of(a).expect("timestamp"), mul, div, path: p }
        }
        (D::Utf8, S::String | S::Bytes | S::Uuid(UuidSchema::String)) => W::Bytes(Bin::Str(a.as_string::<i32>())),
        (D::Utf8, S::Uuid(UuidSchema::Fixed(_))) => W::UuidFixed { src: a.as_string::<i32>(), path: p },
        (D::Utf8, S::Enum(e)) => W::Enum {
            src: a.as_string::<i32>(),
            symbols: e.symbols.iter().enumerate().map(|(i, s)| (s.as_str(), i as i64)).collect(),
            path: p,
        },
        (D::Binary, S::Bytes | S::Uuid(UuidSchema::Bytes)) => W::Bytes(Bin::Bin(a.as_binary::<i32>())),
        (D::Binary, S::Fixed(f)) => W::Fixed { src: Bin::Bin(a.as_binary::<i32>()), size: f.size, path: p },
        (D::Binary, S::Uuid(UuidSchema::Fixed(_))) => {
            W::Fixed { src: Bin::Bin(a.as_binary::<i32>()), size: 16, path: p }
        }
        (D::Decimal128(_, scale), S::Decimal(d)) if d.scale as i32 >= i32::from(*scale) => W::Decimal {
            values: a.as_primitive::<Decimal128Type>().values(),
            rescale: (d.scale as i32 - i32::from(*scale)) as u32,
            fixed: match &d.inner {
                InnerDecimalSchema::Bytes => None,
                InnerDecimalSchema::Fixed(f) => Some(f.size),
            },
            path: p,
        },
        (D::Decimal128(_, _), S::Bytes) => {
            W::Decimal { values: a.as_primitive::<Decimal128Type>().values(), rescale: 0, fixed: None, path: p }
        }
        (D::List(_), S::Array(arr)) => {
            let l = a.as_list::<i32>();
            W::Array {
                offsets: l.value_offsets(),
                item: Box::new(bind(l.values().as_ref(), &arr.items, names, &format!("{path}[]"))?),
            }
        }
        (D::Map(_, _), S::Map(m)) => {
            let map = a.as_map();
            let Some(keys) = map.keys().as_string_opt::<i32>() else { return Err(mismatch()) };
            W::Map {
                offsets: map.value_offsets(),
                keys,
                values: Box::new(bind(map.values().as_ref(), &m.types, names, &format!("{path}{{}}"))?),
            }
        }
        (D::Struct(fields), S::Record(r)) => {
            let st = a.as_struct();
            let mut out = Vec::with_capacity(r.fields.len());
            for rf in &r.fields {
                let child_path = path_of(path, &rf.name);
                match fields.iter().position(|f| f.name() == &rf.name) {
                    Some(i) => out.push(FieldW::Col(bind(st.column(i).as_ref(), &rf.schema, names, &child_path)?)),
                    None => {
                        let datum = encode_default(rf, names).ok_or_else(|| {
                            format!("the Avro schema's field '{child_path}' is not a column and has no default")
                        })?;
                        out.push(FieldW::Const(datum));
                    }
                }
            }
            for f in fields {
                if !r.lookup.contains_key(f.name()) {
                    return Err(format!("column '{}' is not in the Avro schema", path_of(path, f.name())));
                }
            }
            W::Record(out)
        }
        _ => return Err(mismatch()),
    })
}

fn too_big(v: impl std::fmt::Display, path: &str, what: &str) -> String {
    format!("column '{path}': {v} does not fit Avro {what}")
}

/// Appends the Avro encoding of row `i`.
pub(super) fn write(w: &W<'_>, i: usize, out: &mut Vec<u8>) -> Res<()> {
    match w {
        W::Nullable { nulls, null_branch, branch, inner } => {
            if nulls.is_some_and(|n| n.is_null(i)) || branch.is_none() {
                write_long(out, *null_branch);
            } else {
                write_long(out, branch.expect("checked"));
                write(inner, i, out)?;
            }
        }
        W::NoNulls { nulls, branch, inner, path } => {
            if nulls.is_null(i) {
                return Err(format!("column '{path}' is NULL but its Avro type does not allow null"));
            }
            if let Some(b) = branch {
                write_long(out, *b);
            }
            write(inner, i, out)?;
        }
        W::Branch { branch, inner } => {
            write_long(out, *branch);
            write(inner, i, out)?;
        }
        W::Nothing => {}
        W::Bool(a) => out.push(u8::from(a.value(i))),
        W::Int { src, mul, path } => {
            let v = src.int(i).checked_mul(*mul).and_then(|v| i32::try_from(v).ok());
            write_long(out, i64::from(v.ok_or_else(|| too_big(src.int(i), path, "int"))?));
        }
        W::Long { src, mul, div, path } => {
            let v = src.int(i);
            let v = if *div != 1 {
                v.div_euclid(*div)
            } else {
                v.checked_mul(*mul).ok_or_else(|| too_big(v, path, "long"))?
            };
            write_long(out, v);
        }
        W::Float(src) => out.extend_from_slice(&(src.float(i) as f32).to_le_bytes()),
        W::Double(src) => out.extend_from_slice(&src.float(i).to_le_bytes()),
        W::Bytes(src) => write_bytes(out, src.get(i)),
        W::Fixed { src, size, path } => {
            let b = src.get(i);
            if b.len() != *size {
                return Err(format!("column '{path}': {} bytes do not fit Avro fixed({size})", b.len()));
            }
            out.extend_from_slice(b);
        }
        W::UuidFixed { src, path } => {
            let s = src.value(i);
            let bytes = parse_uuid(s).ok_or_else(|| format!("column '{path}': '{s}' is not a UUID"))?;
            out.extend_from_slice(&bytes);
        }
        W::Enum { src, symbols, path } => {
            let s = src.value(i);
            let idx =
                symbols.get(s).ok_or_else(|| format!("column '{path}': '{s}' is not a symbol of the Avro enum"))?;
            write_long(out, *idx);
        }
        W::Decimal { values, rescale, fixed, path } => {
            let v = values[i];
            let v = 10i128
                .checked_pow(*rescale)
                .and_then(|m| v.checked_mul(m))
                .ok_or_else(|| too_big(v, path, "decimal"))?;
            let be = v.to_be_bytes();
            // Minimal two's complement, as Java's BigInteger.toByteArray.
            let mut start = 0;
            while start < 15
                && (be[start] == 0 && be[start + 1] & 0x80 == 0 || be[start] == 0xff && be[start + 1] & 0x80 != 0)
            {
                start += 1;
            }
            match fixed {
                None => write_bytes(out, &be[start..]),
                Some(n) => {
                    if 16 - start > *n {
                        return Err(too_big(v, path, &format!("fixed({n}) decimal")));
                    }
                    let fill = if v < 0 { 0xff } else { 0 };
                    out.extend(std::iter::repeat_n(fill, n.saturating_sub(16)));
                    out.extend_from_slice(&be[16 - (*n).min(16)..]);
                }
            }
        }
        W::Record(fields) => {
            for f in fields {
                match f {
                    FieldW::Col(w) => write(w, i, out)?,
                    FieldW::Const(datum) => out.extend_from_slice(datum),
                }
            }
        }
        W::Array { offsets, item } => {
            let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
            if end > start {
                write_long(out, (end - start) as i64);
                for j in start..end {
                    write(item, j, out)?;
                }
            }
            out.push(0);
        }
        W::Map { offsets, keys, values } => {
            let (start, end) = (offsets[i] as usize, offsets[i + 1] as usize);
            if end > start {
                write_long(out, (end - start) as i64);
                for j in start..end {
                    write_bytes(out, keys.value(j).as_bytes());
                    write(values, j, out)?;
                }
            }
            out.push(0);
        }
    }
    Ok(())
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let h = (pair[0] as char).to_digit(16)?;
        let l = (pair[1] as char).to_digit(16)?;
        out[i] = (h * 16 + l) as u8;
    }
    Some(out)
}
