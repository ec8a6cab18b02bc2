//! Arrow columns built value by value for the Avro decoder: validity plus values, nested as the
//! Arrow type is, with truncation so a datum that fails half-way can be rolled back.

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, BooleanBufferBuilder, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, Int8Array, ListArray, MapArray, StringArray, StructArray,
    Time32MillisecondArray, TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, FieldRef, Fields, TimeUnit};
use arrow::error::ArrowError;
use sluice_common::flink_type_name;
use std::sync::Arc;

/// A column being built: validity plus values, nested as the Arrow type is.
pub struct Col {
    /// The field's path (`address.city`), for messages.
    pub(super) name: String,
    pub(super) data_type: DataType,
    pub(super) valid: BooleanBufferBuilder,
    pub(super) values: Values,
}

pub(super) enum Values {
    Bool(BooleanBufferBuilder),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I128(Vec<i128>),
    Bytes { offsets: Vec<i32>, data: Vec<u8> },
    List { offsets: Vec<i32>, child: Box<Col>, field: FieldRef },
    Map { offsets: Vec<i32>, keys: Box<Col>, values: Box<Col>, field: FieldRef, sorted: bool },
    Struct { fields: Fields, children: Vec<Col> },
}

macro_rules! values_of {
    ($col:expr, $variant:ident) => {
        match &mut $col.values {
            Values::$variant(v) => v,
            _ => unreachable!("the plan was compiled for this column's type"),
        }
    };
}
pub(super) use values_of;

impl Col {
    pub fn new(name: &str, data_type: &DataType) -> Result<Col, String> {
        let child_name = |n: &str| if name.is_empty() { n.to_string() } else { format!("{name}.{n}") };
        let values = match data_type {
            DataType::Boolean => Values::Bool(BooleanBufferBuilder::new(0)),
            DataType::Int8 => Values::I8(Vec::new()),
            DataType::Int16 => Values::I16(Vec::new()),
            DataType::Int32 | DataType::Date32 | DataType::Time32(TimeUnit::Millisecond) => Values::I32(Vec::new()),
            DataType::Int64 | DataType::Timestamp(_, _) => Values::I64(Vec::new()),
            DataType::Float32 => Values::F32(Vec::new()),
            DataType::Float64 => Values::F64(Vec::new()),
            DataType::Decimal128(_, _) => Values::I128(Vec::new()),
            DataType::Utf8 | DataType::Binary => Values::Bytes { offsets: vec![0], data: Vec::new() },
            DataType::List(f) => Values::List {
                offsets: vec![0],
                child: Box::new(Col::new(&format!("{name}[]"), f.data_type())?),
                field: f.clone(),
            },
            DataType::Map(f, sorted) => {
                let DataType::Struct(kv) = f.data_type() else {
                    return Err(format!("unsupported map type {data_type}"));
                };
                if kv[0].data_type() != &DataType::Utf8 {
                    return Err(format!("Avro maps need STRING keys, not {}", flink_type_name(data_type)));
                }
                Values::Map {
                    offsets: vec![0],
                    keys: Box::new(Col::new(&format!("{name}{{key}}"), kv[0].data_type())?),
                    values: Box::new(Col::new(&format!("{name}{{}}"), kv[1].data_type())?),
                    field: f.clone(),
                    sorted: *sorted,
                }
            }
            DataType::Struct(fields) => Values::Struct {
                fields: fields.clone(),
                children: fields
                    .iter()
                    .map(|f| Col::new(&child_name(f.name()), f.data_type()))
                    .collect::<Result<_, _>>()?,
            },
            other => return Err(format!("type {} is not supported by the Avro format", flink_type_name(other))),
        };
        Ok(Col { name: name.to_string(), data_type: data_type.clone(), valid: BooleanBufferBuilder::new(0), values })
    }

    pub fn len(&self) -> usize {
        self.valid.len()
    }

    /// A null slot, whether or not the field is nullable (the plan checks nullability; a null
    /// struct's children get such slots, masked by the struct's null).
    pub(super) fn push_null(&mut self) {
        self.valid.append(false);
        match &mut self.values {
            Values::Bool(v) => v.append(false),
            Values::I8(v) => v.push(0),
            Values::I16(v) => v.push(0),
            Values::I32(v) => v.push(0),
            Values::I64(v) => v.push(0),
            Values::F32(v) => v.push(0.0),
            Values::F64(v) => v.push(0.0),
            Values::I128(v) => v.push(0),
            Values::Bytes { offsets, .. } | Values::List { offsets, .. } | Values::Map { offsets, .. } => {
                offsets.push(*offsets.last().expect("offsets start with 0"))
            }
            Values::Struct { children, .. } => children.iter_mut().for_each(Col::push_null),
        }
    }

    #[inline]
    pub(super) fn push_bytes(&mut self, b: &[u8]) -> Result<(), String> {
        let Values::Bytes { offsets, data } = &mut self.values else {
            unreachable!("the plan was compiled for this column's type")
        };
        data.extend_from_slice(b);
        offsets.push(i32::try_from(data.len()).map_err(|_| "more than 2 GiB of text in one run".to_string())?);
        self.valid.append(true);
        Ok(())
    }

    /// Drops everything after the first `len` entries (rolls back a datum that failed half-way).
    pub fn truncate(&mut self, len: usize) {
        self.valid.truncate(len);
        match &mut self.values {
            Values::Bool(v) => v.truncate(len),
            Values::I8(v) => v.truncate(len),
            Values::I16(v) => v.truncate(len),
            Values::I32(v) => v.truncate(len),
            Values::I64(v) => v.truncate(len),
            Values::F32(v) => v.truncate(len),
            Values::F64(v) => v.truncate(len),
            Values::I128(v) => v.truncate(len),
            Values::Bytes { offsets, data } => {
                offsets.truncate(len + 1);
                data.truncate(offsets[len] as usize);
            }
            Values::List { offsets, child, .. } => {
                offsets.truncate(len + 1);
                child.truncate(offsets[len] as usize);
            }
            Values::Map { offsets, keys, values, .. } => {
                offsets.truncate(len + 1);
                keys.truncate(offsets[len] as usize);
                values.truncate(offsets[len] as usize);
            }
            Values::Struct { children, .. } => children.iter_mut().for_each(|c| c.truncate(len)),
        }
    }

    /// The built array; the column starts empty again.
    pub fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let len = self.valid.len();
        let nulls = NullBuffer::new(self.valid.finish());
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        let dt = self.data_type.clone();
        fn take<T>(v: &mut Vec<T>) -> ScalarBuffer<T>
        where
            T: arrow::datatypes::ArrowNativeType,
        {
            ScalarBuffer::from(std::mem::take(v))
        }
        fn offsets(v: &mut Vec<i32>) -> OffsetBuffer<i32> {
            let o = std::mem::replace(v, vec![0]);
            OffsetBuffer::new(ScalarBuffer::from(o))
        }
        Ok(match &mut self.values {
            Values::Bool(v) => Arc::new(BooleanArray::new(v.finish(), nulls)),
            Values::I8(v) => Arc::new(Int8Array::new(take(v), nulls)),
            Values::I16(v) => Arc::new(Int16Array::new(take(v), nulls)),
            Values::I32(v) => match dt {
                DataType::Date32 => Arc::new(Date32Array::new(take(v), nulls)),
                DataType::Time32(_) => Arc::new(Time32MillisecondArray::new(take(v), nulls)),
                _ => Arc::new(Int32Array::new(take(v), nulls)),
            },
            Values::I64(v) => match dt {
                DataType::Timestamp(unit, tz) => match unit {
                    TimeUnit::Second => Arc::new(TimestampSecondArray::new(take(v), nulls).with_timezone_opt(tz)),
                    TimeUnit::Millisecond => {
                        Arc::new(TimestampMillisecondArray::new(take(v), nulls).with_timezone_opt(tz))
                    }
                    TimeUnit::Microsecond => {
                        Arc::new(TimestampMicrosecondArray::new(take(v), nulls).with_timezone_opt(tz))
                    }
                    TimeUnit::Nanosecond => {
                        Arc::new(TimestampNanosecondArray::new(take(v), nulls).with_timezone_opt(tz))
                    }
                },
                _ => Arc::new(Int64Array::new(take(v), nulls)),
            },
            Values::F32(v) => Arc::new(Float32Array::new(take(v), nulls)),
            Values::F64(v) => Arc::new(Float64Array::new(take(v), nulls)),
            Values::I128(v) => {
                let DataType::Decimal128(p, s) = dt else { unreachable!("I128 columns are decimals") };
                Arc::new(Decimal128Array::new(take(v), nulls).with_precision_and_scale(p, s)?)
            }
            Values::Bytes { offsets: o, data } => {
                let o = offsets(o);
                let data = Buffer::from_vec(std::mem::take(data));
                match dt {
                    DataType::Utf8 => Arc::new(StringArray::try_new(o, data, nulls)?),
                    _ => Arc::new(BinaryArray::try_new(o, data, nulls)?),
                }
            }
            Values::List { offsets: o, child, field } => {
                Arc::new(ListArray::try_new(field.clone(), offsets(o), child.finish()?, nulls)?)
            }
            Values::Map { offsets: o, keys, values, field, sorted } => {
                let DataType::Struct(kv) = field.data_type() else { unreachable!("map entries are structs") };
                let entries = StructArray::try_new(kv.clone(), vec![keys.finish()?, values.finish()?], None)?;
                Arc::new(MapArray::try_new(field.clone(), offsets(o), entries, nulls, *sorted)?)
            }
            Values::Struct { fields, children } => {
                let columns = children.iter_mut().map(Col::finish).collect::<Result<Vec<_>, _>>()?;
                if columns.is_empty() {
                    Arc::new(StructArray::new_empty_fields(len, nulls))
                } else {
                    Arc::new(StructArray::try_new(fields.clone(), columns, nulls)?)
                }
            }
        })
    }

    /// For the root struct: its children.
    pub fn children_mut(&mut self) -> &mut [Col] {
        match &mut self.values {
            Values::Struct { children, .. } => children,
            _ => &mut [],
        }
    }
}
