//! Avro schemas: the one Flink's `AvroSchemaConverter` derives from a table's row type (so schemas
//! sluice registers are the ones Flink would register), and parsed schemas with their named types
//! resolved, for the decoder's and encoder's plans.

use apache_avro::schema::{ResolvedSchema, Schema};
use arrow::datatypes::{DataType, Fields, TimeUnit};
use serde_json::{json, Value};
use sluice_common::flink_type_name;
use std::collections::HashMap;

/// Flink's namespace for derived records; the top-level record is `record`, a nested row is named
/// after its path: `record_address`, `record_address_geo`.
pub const FLINK_NAMESPACE: &str = "org.apache.flink.avro.generated";

/// The Avro schema (JSON) of a table with these columns, as Flink derives it: nullable types are
/// `["null", T]` with default `null`; see the module docs of `avro` for the type mapping.
pub fn derive_avro_schema(fields: &Fields) -> Result<Value, String> {
    let mut record = record_schema(fields, "record")?;
    record["namespace"] = json!(FLINK_NAMESPACE);
    Ok(record)
}

fn record_schema(fields: &Fields, name: &str) -> Result<Value, String> {
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        check_name(f.name())?;
        let t = type_schema(f.data_type(), f.is_nullable(), &format!("{name}_{}", f.name())).map_err(|m| {
            if m.starts_with("column") {
                m
            } else {
                format!("column '{}': {m}", f.name())
            }
        })?;
        if f.is_nullable() {
            out.push(json!({"name": f.name(), "type": t, "default": null}));
        } else {
            out.push(json!({"name": f.name(), "type": t}));
        }
    }
    Ok(json!({"type": "record", "name": name, "fields": out}))
}

/// Avro names: `[A-Za-z_][A-Za-z0-9_]*`.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "column '{name}': not a valid Avro field name (letters, digits and '_', not starting with a digit)"
        ))
    }
}

fn type_schema(t: &DataType, nullable: bool, row_name: &str) -> Result<Value, String> {
    let s = match t {
        DataType::Boolean => json!("boolean"),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => json!("int"),
        DataType::Int64 => json!("long"),
        DataType::Float32 => json!("float"),
        DataType::Float64 => json!("double"),
        DataType::Utf8 => json!("string"),
        DataType::Binary => json!("bytes"),
        DataType::Decimal128(p, s) => json!({"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s}),
        DataType::Date32 => json!({"type": "int", "logicalType": "date"}),
        DataType::Time32(TimeUnit::Millisecond) => json!({"type": "int", "logicalType": "time-millis"}),
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second | TimeUnit::Millisecond => json!({"type": "long", "logicalType": "timestamp-millis"}),
            TimeUnit::Microsecond => json!({"type": "long", "logicalType": "timestamp-micros"}),
            TimeUnit::Nanosecond => {
                return Err(format!(
                    "Avro does not support {} (precision 9); use a precision of at most 6",
                    flink_type_name(t)
                ))
            }
        },
        DataType::List(item) => {
            json!({"type": "array", "items": type_schema(item.data_type(), item.is_nullable(), row_name)?})
        }
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(format!("unsupported map type {t}"));
            };
            if kv[0].data_type() != &DataType::Utf8 {
                return Err(format!("Avro maps need STRING keys, not {}", flink_type_name(t)));
            }
            json!({"type": "map", "values": type_schema(kv[1].data_type(), kv[1].is_nullable(), row_name)?})
        }
        DataType::Struct(fields) => record_schema(fields, row_name)?,
        other => return Err(format!("type {} is not supported by the Avro format", flink_type_name(other))),
    };
    Ok(if nullable { json!(["null", s]) } else { s })
}

/// A parsed Avro schema with its named types, so references (`"type": "com.acme.Address"`) can be
/// followed.
#[derive(Debug)]
pub struct ParsedSchema {
    pub root: Schema,
    names: HashMap<String, Schema>,
}

impl ParsedSchema {
    pub fn parse(json: &str) -> Result<ParsedSchema, String> {
        let root = Schema::parse_str(json).map_err(|e| format!("invalid Avro schema: {e}"))?;
        let names = ResolvedSchema::new(&root)
            .map_err(|e| format!("invalid Avro schema: {e}"))?
            .get_names()
            .iter()
            .map(|(n, s)| (n.fullname(None), (*s).clone()))
            .collect();
        Ok(ParsedSchema { root, names })
    }

    /// `s` with a reference replaced by the named schema it refers to.
    pub fn resolve<'a>(&'a self, s: &'a Schema) -> &'a Schema {
        match s {
            Schema::Ref { name } => self.names.get(&name.fullname(None)).unwrap_or(s),
            other => other,
        }
    }

    pub fn lookup(&self, fullname: &str) -> Option<&Schema> {
        self.names.get(fullname)
    }
}

/// A short name of an Avro type for messages: `long`, `string`, `timestamp-millis`, `record com.acme.X`.
pub fn avro_type_name(s: &Schema) -> String {
    match s {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int => "int".into(),
        Schema::Long => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes => "bytes".into(),
        Schema::String => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(u) => {
            format!("union [{}]", u.variants().iter().map(avro_type_name).collect::<Vec<_>>().join(", "))
        }
        Schema::Record(r) => format!("record {}", r.name.fullname(None)),
        Schema::Enum(e) => format!("enum {}", e.name.fullname(None)),
        Schema::Fixed(f) => format!("fixed({})", f.size),
        Schema::Decimal(d) => format!("decimal({}, {})", d.precision, d.scale),
        Schema::BigDecimal => "big-decimal".into(),
        Schema::Uuid(_) => "uuid".into(),
        Schema::Date => "date".into(),
        Schema::TimeMillis => "time-millis".into(),
        Schema::TimeMicros => "time-micros".into(),
        Schema::TimestampMillis => "timestamp-millis".into(),
        Schema::TimestampMicros => "timestamp-micros".into(),
        Schema::TimestampNanos => "timestamp-nanos".into(),
        Schema::LocalTimestampMillis => "local-timestamp-millis".into(),
        Schema::LocalTimestampMicros => "local-timestamp-micros".into(),
        Schema::LocalTimestampNanos => "local-timestamp-nanos".into(),
        Schema::Duration(_) => "duration".into(),
        Schema::Ref { name } => name.fullname(None),
    }
}

/// The unit, as a divisor of a second, of a long-based timestamp type (`None` for other types).
pub fn timestamp_units_per_second(s: &Schema) -> Option<i64> {
    match s {
        Schema::TimestampMillis | Schema::LocalTimestampMillis => Some(1_000),
        Schema::TimestampMicros | Schema::LocalTimestampMicros => Some(1_000_000),
        Schema::TimestampNanos | Schema::LocalTimestampNanos => Some(1_000_000_000),
        _ => None,
    }
}

/// Units per second of an Arrow time unit.
pub fn arrow_units_per_second(u: &TimeUnit) -> i64 {
    match u {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// The Avro unit Flink uses for a timestamp column (what a plain `long` means for it): millis for
/// precision up to 3, micros above.
pub fn flink_timestamp_units(u: &TimeUnit) -> i64 {
    match u {
        TimeUnit::Second | TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond | TimeUnit::Nanosecond => 1_000_000,
    }
}

/// Multiplier and divisor turning a value in `from` units per second into `to` units per second.
pub fn unit_scale(from: i64, to: i64) -> (i64, i64) {
    if to >= from {
        (to / from, 1)
    } else {
        (1, from / to)
    }
}

/// The Avro encoding of a record field's default, or `None` when it has none (or it does not fit
/// the field's type). `names` resolves references in the field's schema.
pub fn encode_default(field: &apache_avro::schema::RecordField, names: &ParsedSchema) -> Option<Vec<u8>> {
    let json = field.default.clone()?;
    let value =
        apache_avro::types::Value::try_from(json).ok()?.resolve_schemata(&field.schema, vec![&names.root]).ok()?;
    apache_avro::writer::datum::GenericDatumWriter::builder(&field.schema)
        .schemata(vec![&names.root])
        .ok()?
        .build()
        .ok()?
        .write_value_to_vec(value)
        .ok()
}
