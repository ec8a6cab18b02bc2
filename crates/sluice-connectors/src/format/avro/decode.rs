//! Avro binary datums straight into Arrow column builders.
//!
//! For each writer schema a [`Plan`] is compiled once: Avro schema resolution of the writer schema
//! against the table's columns (fields matched by name, missing fields NULL or the reader
//! schema's default, extra writer fields skipped, numeric promotions, logical-type unit
//! conversions). Decoding a datum then walks the plan and appends to [`Col`]s; no per-row schema
//! lookups and no per-value allocation. A datum that fails half-way is rolled back by truncating
//! the columns to their length before it, so one bad payload costs nothing to the others.

use super::columns::{values_of, Col, Values};
use super::schema::{
    arrow_units_per_second, avro_type_name, encode_default, flink_timestamp_units, timestamp_units_per_second,
    unit_scale, ParsedSchema,
};
use apache_avro::schema::{InnerDecimalSchema, RecordSchema, Schema, UuidSchema};
use arrow::datatypes::{DataType, Fields, TimeUnit};
use sluice_common::flink_type_name;
use std::collections::HashMap;

type Res<T> = Result<T, String>;

fn ends_early() -> String {
    "the Avro datum ends early (truncated, or not written with this schema)".into()
}

/// Reads Avro's binary encoding from a slice.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn long(&mut self) -> Res<i64> {
        let mut v: u64 = 0;
        let mut shift = 0;
        loop {
            let Some(&b) = self.buf.get(self.pos) else { return Err(ends_early()) };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err("invalid Avro varint (longer than 10 bytes)".into());
            }
        }
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    #[inline]
    fn int(&mut self) -> Res<i32> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("Avro int {v} is out of range"))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        if self.remaining() < n {
            return Err(ends_early());
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    fn bytes(&mut self) -> Res<&'a [u8]> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| format!("negative Avro length {n}"))?;
        self.take(n)
    }

    #[inline]
    fn float(&mut self) -> Res<f32> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    #[inline]
    fn double(&mut self) -> Res<f64> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    #[inline]
    fn boolean(&mut self) -> Res<bool> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("invalid Avro boolean byte 0x{b:02x}")),
        }
    }

    /// The item count of the next array or map block (0 at the end); skips a block's byte size.
    #[inline]
    fn block(&mut self) -> Res<usize> {
        let n = self.long()?;
        let n = if n < 0 {
            self.long()?;
            n.unsigned_abs()
        } else {
            n as u64
        };
        // Every item takes at least one byte except null or empty records; this bounds garbage counts.
        if n > self.remaining() as u64 + 4096 {
            return Err(format!("Avro block of {n} items is longer than the datum"));
        }
        Ok(n as usize)
    }
}

/// What to do with one writer value.
enum Op {
    /// The writer's `null`, into a nullable column.
    Null,
    Bool,
    IntToI8,
    IntToI16,
    IntToI32,
    IntToI64,
    IntToF32,
    IntToF64,
    /// A long, times `mul`, divided (flooring) by `div`: timestamp unit changes.
    LongToI64 {
        mul: i64,
        div: i64,
    },
    /// `time-micros` into a TIME(3) column.
    LongToI32Div(i64),
    LongToF32,
    LongToF64,
    FloatToF32,
    FloatToF64,
    DoubleToF64,
    /// `string` or `bytes` into STRING (checked UTF-8) or BYTES.
    Text {
        utf8: bool,
    },
    Fixed(usize),
    /// `uuid` on `fixed(16)` (or `bytes`, as older writers did) into STRING.
    UuidBytes {
        fixed: bool,
    },
    Enum(Vec<String>),
    Decimal {
        fixed: Option<usize>,
        rescale: i32,
        precision: u8,
    },
    Union(Vec<Op>),
    Record {
        reads: Vec<FieldRead>,
        missing: Vec<Missing>,
    },
    Array(Box<Op>),
    Map(Box<Op>),
    /// The writer's type cannot be read into the column; an error only when a value comes.
    Fail(String),
}

enum FieldRead {
    Into(usize, Op),
    Skip(Skip),
}

/// A reader field the writer does not have.
enum Missing {
    Null(usize),
    /// The reader schema's default, encoded once, decoded with its own plan.
    Default {
        child: usize,
        datum: Vec<u8>,
        plan: Box<Plan>,
    },
}

/// Skipping a writer value the table has no column for.
enum Skip {
    Nothing,
    Varint,
    Fixed(usize),
    Bytes,
    Union(Vec<Skip>),
    Record(Vec<Skip>),
    Array(Box<Skip>),
    Map(Box<Skip>),
    /// A named record, by index in [`Plan::skips`] (schemas may be recursive).
    Named(usize),
    Fail(String),
}

/// Reading one writer schema into the table's columns.
pub struct Plan {
    op: Op,
    skips: Vec<Skip>,
}

struct Compiler<'a> {
    writer: &'a ParsedSchema,
    reader: Option<&'a ParsedSchema>,
    skips: Vec<Skip>,
    skip_index: HashMap<String, usize>,
}

impl Plan {
    /// Resolves `writer` against a root column of type `root` (a struct of the table's columns).
    /// `reader` is an explicit reader schema, used only for the defaults of fields the writer lacks.
    pub fn compile(writer: &ParsedSchema, root: &DataType, reader: Option<&ParsedSchema>) -> Plan {
        let mut c = Compiler { writer, reader, skips: Vec::new(), skip_index: HashMap::new() };
        let op = c.op(&writer.root, root, false, reader.map(|r| &r.root), "");
        Plan { op, skips: c.skips }
    }

    /// Appends the datum at the cursor to `root`, or leaves `root` as it was and says why not.
    pub fn decode(&self, cur: &mut Cursor<'_>, root: &mut Col) -> Res<()> {
        let len = root.len();
        let r = run(&self.op, cur, root, &self.skips);
        if r.is_err() {
            root.truncate(len);
        }
        r
    }
}

fn path_of(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

impl Compiler<'_> {
    fn reader_resolve<'r>(&'r self, s: &'r Schema) -> &'r Schema {
        match self.reader {
            Some(r) => r.resolve(s),
            None => s,
        }
    }

    /// The non-null branch of a reader schema (`["null", T]` -> `T`).
    fn reader_value<'r>(&'r self, s: Option<&'r Schema>) -> Option<&'r Schema> {
        let s = self.reader_resolve(s?);
        match s {
            Schema::Union(u) => {
                u.variants().iter().find(|v| !matches!(v, Schema::Null)).map(|v| self.reader_resolve(v))
            }
            other => Some(other),
        }
    }

    fn op(&mut self, w: &Schema, dt: &DataType, nullable: bool, reader: Option<&Schema>, path: &str) -> Op {
        let w = self.writer.resolve(w);
        match w {
            Schema::Union(u) => {
                Op::Union(u.variants().iter().map(|b| self.op(b, dt, nullable, reader, path)).collect())
            }
            Schema::Null if nullable => Op::Null,
            Schema::Null if path.is_empty() => Op::Fail("the record is null".into()),
            Schema::Null => Op::Fail(format!("NULL for NOT NULL field '{path}'")),
            _ => self.value_op(w, dt, reader, path),
        }
    }

    fn value_op(&mut self, w: &Schema, dt: &DataType, reader: Option<&Schema>, path: &str) -> Op {
        use DataType as D;
        use Schema as S;
        let int_like = matches!(w, S::Int | S::Date | S::TimeMillis);
        let long_like = matches!(w, S::Long | S::TimeMicros) || timestamp_units_per_second(w).is_some();
        match (dt, w) {
            (D::Boolean, S::Boolean) => Op::Bool,
            (D::Int8, S::Int) => Op::IntToI8,
            (D::Int16, S::Int) => Op::IntToI16,
            (D::Int32, _) if int_like => Op::IntToI32,
            (D::Int64, _) if int_like => Op::IntToI64,
            (D::Int64, _) if long_like => Op::LongToI64 { mul: 1, div: 1 },
            (D::Float32, _) if int_like => Op::IntToF32,
            (D::Float32, _) if long_like => Op::LongToF32,
            (D::Float32, S::Float) => Op::FloatToF32,
            (D::Float64, _) if int_like => Op::IntToF64,
            (D::Float64, _) if long_like => Op::LongToF64,
            (D::Float64, S::Float) => Op::FloatToF64,
            (D::Float64, S::Double) => Op::DoubleToF64,
            (D::Utf8, S::String | S::Bytes | S::Uuid(UuidSchema::String)) => Op::Text { utf8: true },
            (D::Utf8, S::Enum(e)) => Op::Enum(e.symbols.clone()),
            (D::Utf8, S::Uuid(UuidSchema::Fixed(_))) => Op::UuidBytes { fixed: true },
            (D::Utf8, S::Uuid(UuidSchema::Bytes)) => Op::UuidBytes { fixed: false },
            (D::Binary, S::Bytes | S::String | S::Uuid(UuidSchema::String | UuidSchema::Bytes)) => {
                Op::Text { utf8: false }
            }
            (D::Binary, S::Decimal(d)) => match &d.inner {
                InnerDecimalSchema::Bytes => Op::Text { utf8: false },
                InnerDecimalSchema::Fixed(f) => Op::Fixed(f.size),
            },
            (D::Binary, S::Fixed(f)) => Op::Fixed(f.size),
            (D::Binary, S::Uuid(UuidSchema::Fixed(_))) => Op::Fixed(16),
            (D::Decimal128(p, s), S::Decimal(d)) => Op::Decimal {
                fixed: match &d.inner {
                    InnerDecimalSchema::Bytes => None,
                    InnerDecimalSchema::Fixed(f) => Some(f.size),
                },
                rescale: i32::from(*s) - d.scale as i32,
                precision: *p,
            },
            // Schema resolution ignores logical types: plain bytes hold the unscaled value.
            (D::Decimal128(p, _), S::Bytes) => Op::Decimal { fixed: None, rescale: 0, precision: *p },
            (D::Decimal128(p, _), S::Fixed(f)) => Op::Decimal { fixed: Some(f.size), rescale: 0, precision: *p },
            (D::Date32, S::Date | S::Int) => Op::IntToI32,
            (D::Time32(TimeUnit::Millisecond), S::TimeMillis | S::Int) => Op::IntToI32,
            (D::Time32(TimeUnit::Millisecond), S::TimeMicros) => Op::LongToI32Div(1000),
            (D::Timestamp(unit, _), _) if long_like && !matches!(w, S::TimeMicros) => {
                // A plain long means what the column's derived schema says: millis or micros.
                let from = timestamp_units_per_second(w).unwrap_or_else(|| flink_timestamp_units(unit));
                let (mul, div) = unit_scale(from, arrow_units_per_second(unit));
                Op::LongToI64 { mul, div }
            }
            (D::List(f), S::Array(a)) => {
                let r = self.reader_value(reader).and_then(|r| match r {
                    S::Array(ra) => Some(ra.items.as_ref()),
                    _ => None,
                });
                // Clone out of `self` to end the borrow of the reader schema before recursing.
                let r = r.cloned();
                Op::Array(Box::new(self.op(&a.items, f.data_type(), f.is_nullable(), r.as_ref(), &format!("{path}[]"))))
            }
            (D::Map(f, _), S::Map(m)) => {
                let D::Struct(kv) = f.data_type() else { return Op::Fail(format!("unsupported map type {dt}")) };
                let r = self
                    .reader_value(reader)
                    .and_then(|r| match r {
                        S::Map(rm) => Some(rm.types.as_ref()),
                        _ => None,
                    })
                    .cloned();
                let v = &kv[1];
                Op::Map(Box::new(self.op(&m.types, v.data_type(), v.is_nullable(), r.as_ref(), &format!("{path}{{}}"))))
            }
            (D::Struct(fields), S::Record(r)) => {
                let reader = self.reader_value(reader).cloned();
                self.record(r, fields, reader.as_ref(), path)
            }
            _ => {
                let what = if path.is_empty() { "the table's row".to_string() } else { format!("field '{path}'") };
                Op::Fail(format!(
                    "{what}: the writer's {} cannot be read as {}",
                    avro_type_name(w),
                    flink_type_name(dt)
                ))
            }
        }
    }

    fn record(&mut self, w: &RecordSchema, fields: &Fields, reader: Option<&Schema>, path: &str) -> Op {
        let reader_rec = match reader {
            Some(Schema::Record(r)) => Some(r),
            _ => None,
        };
        let reader_field = |name: &str| reader_rec.and_then(|r| r.lookup.get(name).map(|&i| &r.fields[i]));
        let mut seen = vec![false; fields.len()];
        let mut reads = Vec::with_capacity(w.fields.len());
        for wf in &w.fields {
            match fields.iter().position(|f| f.name() == &wf.name) {
                Some(i) if !seen[i] => {
                    seen[i] = true;
                    let f = &fields[i];
                    let r = reader_field(&wf.name).map(|rf| rf.schema.clone());
                    let op = self.op(&wf.schema, f.data_type(), f.is_nullable(), r.as_ref(), &path_of(path, &wf.name));
                    reads.push(FieldRead::Into(i, op));
                }
                _ => {
                    let s = self.skip(&wf.schema);
                    reads.push(FieldRead::Skip(s));
                }
            }
        }
        let mut missing = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if seen[i] {
                continue;
            }
            if let Some(m) =
                reader_field(f.name()).and_then(|rf| self.default_of(rf, i, f.data_type(), f.is_nullable()))
            {
                missing.push(m);
            } else if f.is_nullable() {
                missing.push(Missing::Null(i));
            } else {
                return Op::Fail(format!(
                    "NOT NULL field '{}' is missing in the writer schema and has no default",
                    path_of(path, f.name())
                ));
            }
        }
        Op::Record { reads, missing }
    }

    /// A reader field's default as a datum plus a plan reading it (from the reader schema).
    fn default_of(
        &self,
        rf: &apache_avro::schema::RecordField,
        child: usize,
        dt: &DataType,
        nullable: bool,
    ) -> Option<Missing> {
        let reader = self.reader?;
        let datum = encode_default(rf, reader)?;
        let mut c = Compiler { writer: reader, reader: None, skips: Vec::new(), skip_index: HashMap::new() };
        let op = c.op(&rf.schema, dt, nullable, None, &rf.name);
        Some(Missing::Default { child, datum, plan: Box::new(Plan { op, skips: c.skips }) })
    }

    fn skip(&mut self, w: &Schema) -> Skip {
        use Schema as S;
        match w {
            S::Null => Skip::Nothing,
            S::Boolean => Skip::Fixed(1),
            S::Int | S::Long | S::Date | S::TimeMillis | S::TimeMicros | S::Enum(_) => Skip::Varint,
            s if timestamp_units_per_second(s).is_some() => Skip::Varint,
            S::Float => Skip::Fixed(4),
            S::Double => Skip::Fixed(8),
            S::Bytes | S::String | S::BigDecimal | S::Uuid(UuidSchema::String | UuidSchema::Bytes) => Skip::Bytes,
            S::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => Skip::Bytes,
                InnerDecimalSchema::Fixed(f) => Skip::Fixed(f.size),
            },
            S::Fixed(f) => Skip::Fixed(f.size),
            S::Uuid(UuidSchema::Fixed(_)) => Skip::Fixed(16),
            S::Duration(_) => Skip::Fixed(12),
            S::Union(u) => Skip::Union(u.variants().iter().map(|v| self.skip(v)).collect()),
            S::Array(a) => Skip::Array(Box::new(self.skip(&a.items))),
            S::Map(m) => Skip::Map(Box::new(self.skip(&m.types))),
            S::Record(r) => Skip::Record(r.fields.iter().map(|f| self.skip(&f.schema)).collect()),
            S::Ref { name } => {
                let full = name.fullname(None);
                if let Some(&i) = self.skip_index.get(&full) {
                    return Skip::Named(i);
                }
                let Some(target) = self.writer.lookup(&full) else {
                    return Skip::Fail(format!("unknown Avro type '{full}'"));
                };
                let i = self.skips.len();
                self.skips.push(Skip::Nothing);
                self.skip_index.insert(full, i);
                let s = self.skip(target);
                self.skips[i] = s;
                Skip::Named(i)
            }
            _ => Skip::Fail(format!("cannot skip Avro type {}", avro_type_name(w))),
        }
    }
}

/// Named types may be recursive; this bounds how deep a value of one can nest (each level takes
/// at least one byte, so a payload could otherwise overflow the stack).
const MAX_NESTING: usize = 256;

fn skip(s: &Skip, cur: &mut Cursor<'_>, table: &[Skip]) -> Res<()> {
    skip_at(s, cur, table, 0)
}

fn skip_at(s: &Skip, cur: &mut Cursor<'_>, table: &[Skip], depth: usize) -> Res<()> {
    let skip = |s: &Skip, cur: &mut Cursor<'_>, table: &[Skip]| skip_at(s, cur, table, depth);
    match s {
        Skip::Nothing => {}
        Skip::Varint => {
            cur.long()?;
        }
        Skip::Fixed(n) => {
            cur.take(*n)?;
        }
        Skip::Bytes => {
            cur.bytes()?;
        }
        Skip::Union(branches) => {
            let i = cur.long()?;
            let b =
                usize::try_from(i).ok().and_then(|i| branches.get(i)).ok_or_else(|| bad_branch(i, branches.len()))?;
            skip(b, cur, table)?;
        }
        Skip::Record(fields) => {
            for f in fields {
                skip(f, cur, table)?;
            }
        }
        Skip::Array(item) => skip_blocks(cur, |cur| skip(item, cur, table))?,
        Skip::Map(value) => skip_blocks(cur, |cur| {
            cur.bytes()?;
            skip(value, cur, table)
        })?,
        Skip::Named(i) => {
            if depth >= MAX_NESTING {
                return Err(format!("the Avro value nests more than {MAX_NESTING} levels deep"));
            }
            skip_at(&table[*i], cur, table, depth + 1)?
        }
        Skip::Fail(m) => return Err(m.clone()),
    }
    Ok(())
}

/// Skips array or map blocks; a block with a byte size is skipped whole.
fn skip_blocks(cur: &mut Cursor<'_>, mut item: impl FnMut(&mut Cursor<'_>) -> Res<()>) -> Res<()> {
    loop {
        let n = cur.long()?;
        if n == 0 {
            return Ok(());
        }
        if n < 0 {
            let size = cur.long()?;
            let size = usize::try_from(size).map_err(|_| format!("negative Avro block size {size}"))?;
            cur.take(size)?;
            continue;
        }
        if n as u64 > cur.remaining() as u64 + 4096 {
            return Err(format!("Avro block of {n} items is longer than the datum"));
        }
        for _ in 0..n {
            item(cur)?;
        }
    }
}

fn bad_branch(i: i64, n: usize) -> String {
    format!("Avro union branch {i} does not exist (the union has {n})")
}

fn out_of_range(v: impl std::fmt::Display, col: &Col) -> String {
    format!("field '{}': {v} is out of range for {}", col.name, flink_type_name(&col.data_type))
}

#[inline]
fn run(op: &Op, cur: &mut Cursor<'_>, col: &mut Col, skips: &[Skip]) -> Res<()> {
    match op {
        Op::Null => {
            col.push_null();
            return Ok(());
        }
        Op::Bool => {
            let v = cur.boolean()?;
            values_of!(col, Bool).append(v);
        }
        Op::IntToI8 => {
            let v = cur.int()?;
            let v = i8::try_from(v).map_err(|_| out_of_range(v, col))?;
            values_of!(col, I8).push(v);
        }
        Op::IntToI16 => {
            let v = cur.int()?;
            let v = i16::try_from(v).map_err(|_| out_of_range(v, col))?;
            values_of!(col, I16).push(v);
        }
        Op::IntToI32 => {
            let v = cur.int()?;
            values_of!(col, I32).push(v);
        }
        Op::IntToI64 => {
            let v = cur.int()?;
            values_of!(col, I64).push(i64::from(v));
        }
        Op::IntToF32 => {
            let v = cur.int()?;
            values_of!(col, F32).push(v as f32);
        }
        Op::IntToF64 => {
            let v = cur.int()?;
            values_of!(col, F64).push(f64::from(v));
        }
        Op::LongToI64 { mul, div } => {
            let v = cur.long()?;
            let v = if *div != 1 {
                v.div_euclid(*div)
            } else if *mul != 1 {
                v.checked_mul(*mul).ok_or_else(|| out_of_range(v, col))?
            } else {
                v
            };
            values_of!(col, I64).push(v);
        }
        Op::LongToI32Div(div) => {
            let v = cur.long()?;
            let t = i32::try_from(v.div_euclid(*div)).map_err(|_| out_of_range(v, col))?;
            values_of!(col, I32).push(t);
        }
        Op::LongToF32 => {
            let v = cur.long()?;
            values_of!(col, F32).push(v as f32);
        }
        Op::LongToF64 => {
            let v = cur.long()?;
            values_of!(col, F64).push(v as f64);
        }
        Op::FloatToF32 => {
            let v = cur.float()?;
            values_of!(col, F32).push(v);
        }
        Op::FloatToF64 => {
            let v = cur.float()?;
            values_of!(col, F64).push(f64::from(v));
        }
        Op::DoubleToF64 => {
            let v = cur.double()?;
            values_of!(col, F64).push(v);
        }
        Op::Text { utf8 } => {
            let b = cur.bytes()?;
            if *utf8 && std::str::from_utf8(b).is_err() {
                return Err(format!("field '{}': the string is not valid UTF-8", col.name));
            }
            return col.push_bytes(b);
        }
        Op::Fixed(n) => {
            let b = cur.take(*n)?;
            return col.push_bytes(b);
        }
        Op::UuidBytes { fixed } => {
            let b = if *fixed { cur.take(16)? } else { cur.bytes()? };
            if b.len() != 16 {
                return Err(format!("field '{}': a uuid has 16 bytes, not {}", col.name, b.len()));
            }
            let mut s = [0u8; 36];
            let mut j = 0;
            for (i, byte) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    s[j] = b'-';
                    j += 1;
                }
                const HEX: &[u8; 16] = b"0123456789abcdef";
                s[j] = HEX[usize::from(byte >> 4)];
                s[j + 1] = HEX[usize::from(byte & 15)];
                j += 2;
            }
            return col.push_bytes(&s);
        }
        Op::Enum(symbols) => {
            let i = cur.long()?;
            let s = usize::try_from(i).ok().and_then(|i| symbols.get(i)).ok_or_else(|| {
                format!("field '{}': enum symbol {i} does not exist (the enum has {})", col.name, symbols.len())
            })?;
            return col.push_bytes(s.as_bytes());
        }
        Op::Decimal { fixed, rescale, precision } => {
            let b = match fixed {
                Some(n) => cur.take(*n)?,
                None => cur.bytes()?,
            };
            let v = decimal_value(b, *rescale, *precision).map_err(|m| format!("field '{}': {m}", col.name))?;
            values_of!(col, I128).push(v);
        }
        Op::Union(branches) => {
            let i = cur.long()?;
            let b =
                usize::try_from(i).ok().and_then(|i| branches.get(i)).ok_or_else(|| bad_branch(i, branches.len()))?;
            return run(b, cur, col, skips);
        }
        Op::Record { reads, missing } => {
            let Values::Struct { children, .. } = &mut col.values else {
                unreachable!("the plan was compiled for this column's type")
            };
            for r in reads {
                match r {
                    FieldRead::Into(i, op) => run(op, cur, &mut children[*i], skips)?,
                    FieldRead::Skip(s) => skip(s, cur, skips)?,
                }
            }
            for m in missing {
                match m {
                    Missing::Null(i) => children[*i].push_null(),
                    Missing::Default { child, datum, plan } => {
                        run(&plan.op, &mut Cursor::new(datum), &mut children[*child], &plan.skips)?
                    }
                }
            }
        }
        Op::Array(item) => {
            let Values::List { offsets, child, .. } = &mut col.values else {
                unreachable!("the plan was compiled for this column's type")
            };
            loop {
                let n = cur.block()?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    run(item, cur, child, skips)?;
                }
            }
            offsets.push(i32::try_from(child.len()).map_err(|_| "too many array items in one run".to_string())?);
        }
        Op::Map(value) => {
            let Values::Map { offsets, keys, values, .. } = &mut col.values else {
                unreachable!("the plan was compiled for this column's type")
            };
            loop {
                let n = cur.block()?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    let k = cur.bytes()?;
                    if std::str::from_utf8(k).is_err() {
                        return Err(format!("field '{}': a map key is not valid UTF-8", col.name));
                    }
                    keys.push_bytes(k)?;
                    run(value, cur, values, skips)?;
                }
            }
            offsets.push(i32::try_from(keys.len()).map_err(|_| "too many map entries in one run".to_string())?);
        }
        Op::Fail(m) => return Err(m.clone()),
    }
    col.valid.append(true);
    Ok(())
}

/// A big-endian two's complement unscaled value, rescaled by `10^rescale`, checked against
/// `precision` digits.
fn decimal_value(b: &[u8], rescale: i32, precision: u8) -> Res<i128> {
    // Drop redundant sign bytes, then sign-extend into 16 bytes.
    let mut b = b;
    while b.len() > 16 && (b[0] == 0 && b[1] & 0x80 == 0 || b[0] == 0xff && b[1] & 0x80 != 0) {
        b = &b[1..];
    }
    if b.len() > 16 {
        return Err(format!("a decimal of {} bytes does not fit 38 digits", b.len()));
    }
    let v = if b.is_empty() {
        0
    } else {
        let fill = if b[0] & 0x80 != 0 { 0xff } else { 0 };
        let mut buf = [fill; 16];
        buf[16 - b.len()..].copy_from_slice(b);
        i128::from_be_bytes(buf)
    };
    let v = match rescale {
        0 => v,
        r if r > 0 => 10i128.checked_pow(r as u32).and_then(|m| v.checked_mul(m)).ok_or("decimal overflow")?,
        r => {
            // Round half up (away from zero), as Flink's decimal casts.
            let d = 10i128.checked_pow(r.unsigned_abs()).ok_or("decimal overflow")?;
            let (q, rem) = (v / d, v % d);
            if rem.abs() * 2 >= d {
                q + v.signum()
            } else {
                q
            }
        }
    };
    let limit = 10i128.pow(u32::from(precision));
    if v.abs() >= limit {
        return Err(format!("decimal with unscaled value {v} has more than {precision} digits"));
    }
    Ok(v)
}
