//! Codec tests without a registry: writer schemas are added by id; datums of other writer schemas
//! are produced with `apache-avro` itself, an independent implementation.

use super::*;
use apache_avro::types::Value;
use apache_avro::Schema as AvroSchema;
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, Int8Array, ListBuilder, MapBuilder, StringArray, StringBuilder,
    Time32MillisecondArray, TimestampMicrosecondArray, TimestampMillisecondArray,
};
use arrow::datatypes::{Field, Fields, Int64Type, Schema, TimeUnit};

fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(datum);
    p
}

fn avro_datum(schema: &str, value: Value) -> Vec<u8> {
    let schema = AvroSchema::parse_str(schema).unwrap();
    apache_avro::writer::datum::GenericDatumWriter::builder(&schema).build().unwrap().write_value_to_vec(value).unwrap()
}

fn avro_read(schema: &str, datum: &[u8]) -> Value {
    let schema = AvroSchema::parse_str(schema).unwrap();
    apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .unwrap()
        .read_value(&mut &datum[..])
        .unwrap()
}

fn decode(d: &mut AvroRowDecoder, payloads: &[Vec<u8>]) -> Decoded {
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    d.decode_payloads(&refs).unwrap()
}

fn ltz() -> Option<Arc<str>> {
    Some("UTC".into())
}

/// One column of every type the format maps, all nullable except `id`.
fn all_types_schema() -> SchemaRef {
    let address =
        Fields::from(vec![Field::new("city", DataType::Utf8, true), Field::new("zip", DataType::Int32, true)]);
    let tags = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    let entries =
        Fields::from(vec![Field::new("keys", DataType::Utf8, false), Field::new("values", DataType::Int64, true)]);
    let map = DataType::Map(Arc::new(Field::new("entries", DataType::Struct(entries), false)), false);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("flag", DataType::Boolean, true),
        Field::new("tiny", DataType::Int8, true),
        Field::new("small", DataType::Int16, true),
        Field::new("n", DataType::Int32, true),
        Field::new("f", DataType::Float32, true),
        Field::new("d", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::Binary, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new("day", DataType::Date32, true),
        Field::new("t", DataType::Time32(TimeUnit::Millisecond), true),
        Field::new("ts3", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("ts6", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("ltz", DataType::Timestamp(TimeUnit::Millisecond, ltz()), true),
        Field::new("tags", tags, true),
        Field::new("attrs", map, true),
        Field::new("address", DataType::Struct(address), true),
    ]))
}

fn all_types_batch() -> RecordBatch {
    let schema = all_types_schema();
    let mut tags = ListBuilder::new(StringBuilder::new());
    tags.values().append_value("a");
    tags.values().append_null();
    tags.append(true);
    tags.append(false);
    tags.append(true); // empty list
    let mut attrs = MapBuilder::new(None, StringBuilder::new(), arrow::array::Int64Builder::new());
    attrs.keys().append_value("k");
    attrs.values().append_value(7);
    attrs.keys().append_value("nil");
    attrs.values().append_null();
    attrs.append(true).unwrap();
    attrs.append(false).unwrap();
    attrs.append(true).unwrap();
    let DataType::Struct(address_fields) = schema.field(17).data_type().clone() else { unreachable!() };
    let address = StructArray::try_new(
        address_fields,
        vec![
            Arc::new(StringArray::from(vec![Some("Oslo"), None, Some("x")])) as ArrayRef,
            Arc::new(Int32Array::from(vec![Some(150), Some(1), None])),
        ],
        Some(vec![true, false, true].into()),
    )
    .unwrap();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, -2, i64::MAX])),
        Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        Arc::new(Int8Array::from(vec![Some(-128), None, Some(127)])),
        Arc::new(Int16Array::from(vec![Some(-3), None, Some(32767)])),
        Arc::new(Int32Array::from(vec![Some(i32::MIN), None, Some(5)])),
        Arc::new(Float32Array::from(vec![Some(1.5), None, Some(f32::NAN)])),
        Arc::new(Float64Array::from(vec![Some(-0.25), None, Some(1e300)])),
        Arc::new(StringArray::from(vec![Some("héllo"), None, Some("")])),
        Arc::new(BinaryArray::from(vec![Some(&b"\x00\xff"[..]), None, Some(&b""[..])])),
        Arc::new(
            Decimal128Array::from(vec![Some(12345), None, Some(-9_999_999_999)])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        Arc::new(Date32Array::from(vec![Some(19_723), None, Some(-1)])),
        Arc::new(Time32MillisecondArray::from(vec![Some(45_296_789), None, Some(0)])),
        Arc::new(TimestampMillisecondArray::from(vec![Some(1_704_067_200_123), None, Some(-1)])),
        Arc::new(TimestampMicrosecondArray::from(vec![Some(1_704_067_200_123_456), None, Some(-1)])),
        Arc::new(
            TimestampMillisecondArray::from(vec![Some(1_704_067_200_123), None, Some(0)]).with_timezone_opt(ltz()),
        ),
        Arc::new(tags.finish()),
        Arc::new(attrs.finish()),
        Arc::new(address),
    ];
    // The builders name list items `item` and map fields `keys`/`values` like the schema.
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(&c, f.data_type()).unwrap())
        .collect();
    RecordBatch::try_new(schema, columns).unwrap()
}

#[test]
fn derived_schema_is_flinks() {
    let fields = Fields::from(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), false),
        Field::new(
            "address",
            DataType::Struct(Fields::from(vec![Field::new(
                "geo",
                DataType::Struct(Fields::from(vec![Field::new("lat", DataType::Float64, false)])),
                true,
            )])),
            true,
        ),
    ]);
    let s = derive_avro_schema(&fields).unwrap();
    let expected = serde_json::json!({
        "type": "record", "name": "record", "namespace": "org.apache.flink.avro.generated",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "price", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}], "default": null},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "address", "type": ["null", {"type": "record", "name": "record_address", "fields": [
                {"name": "geo", "type": ["null", {"type": "record", "name": "record_address_geo", "fields": [
                    {"name": "lat", "type": "double"}
                ]}], "default": null}
            ]}], "default": null}
        ]
    });
    assert_eq!(s, expected);
    // apache-avro accepts it, and names the nested record in Flink's namespace.
    let parsed = AvroSchema::parse_str(&s.to_string()).unwrap();
    assert!(parsed.canonical_form().contains("org.apache.flink.avro.generated.record_address_geo"));
}

#[test]
fn unsupported_types_and_names_are_refused() {
    let e =
        derive_avro_schema(&Fields::from(vec![Field::new("x", DataType::Timestamp(TimeUnit::Nanosecond, None), true)]))
            .unwrap_err();
    assert_eq!(e, "column 'x': Avro does not support TIMESTAMP(9) (precision 9); use a precision of at most 6");
    let e = derive_avro_schema(&Fields::from(vec![Field::new("my col", DataType::Int32, true)])).unwrap_err();
    assert!(e.contains("not a valid Avro field name"), "{e}");
}

#[test]
fn round_trip_every_type() {
    let batch = all_types_batch();
    let mut enc = AvroRowEncoder::new(batch.schema(), None).unwrap();
    let mut out = Vec::new();
    enc.encode_payloads(&batch, 7, &mut out).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(&out[0][..5], &[0, 0, 0, 0, 7]);
    // An independent reader agrees with what we wrote.
    let v = avro_read(enc.schema_json(), &out[0][5..]);
    let Value::Record(fields) = v else { panic!("{v:?}") };
    assert_eq!(fields[0], ("id".into(), Value::Long(1)));
    assert_eq!(fields[9].1, Value::Union(1, Box::new(Value::Decimal(apache_avro::Decimal::from(vec![0x30, 0x39])))));
    assert_eq!(fields[12].1, Value::Union(1, Box::new(Value::TimestampMillis(1_704_067_200_123))));

    let mut dec = AvroRowDecoder::new(batch.schema(), None).unwrap();
    dec.add_writer_schema(7, enc.schema_json());
    let d = decode(&mut dec, &out);
    assert!(d.bad.is_empty(), "{:?}", d.bad);
    assert_eq!(d.origin, vec![0, 1, 2]);
    assert_eq!(d.batch.num_rows(), 3);
    for (i, (a, b)) in d.batch.columns().iter().zip(batch.columns()).enumerate() {
        if i == 5 {
            // NaN != NaN: compare the bits.
            let (a, b) =
                (a.as_primitive::<arrow::datatypes::Float32Type>(), b.as_primitive::<arrow::datatypes::Float32Type>());
            assert_eq!(a.value(2).to_bits(), b.value(2).to_bits());
            assert_eq!(a.value(0), b.value(0));
            continue;
        }
        assert_eq!(a.as_ref(), b.as_ref(), "column {}", batch.schema().field(i).name());
    }
}

const WRITER_V2: &str = r#"{"type": "record", "name": "Order", "namespace": "com.acme", "fields": [
    {"name": "extra", "type": {"type": "array", "items": {"type": "map", "values": "string"}}},
    {"name": "amount", "type": "int"},
    {"name": "id", "type": "long"},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    {"name": "note", "type": ["string", "null"]},
    {"name": "skipped", "type": {"type": "record", "name": "Blob", "fields": [
        {"name": "x", "type": "double"}, {"name": "y", "type": ["null", "bytes"]}]}}
]}"#;

fn v2_value(id: i64, amount: i32, status: u32, note: Option<&str>) -> Value {
    Value::Record(vec![
        (
            "extra".into(),
            Value::Array(vec![Value::Map([("k".to_string(), Value::String("v".into()))].into_iter().collect())]),
        ),
        ("amount".into(), Value::Int(amount)),
        ("id".into(), Value::Long(id)),
        ("status".into(), Value::Enum(status, ["NEW", "PAID"][status as usize].into())),
        (
            "note".into(),
            match note {
                Some(n) => Value::Union(0, Box::new(Value::String(n.into()))),
                None => Value::Union(1, Box::new(Value::Null)),
            },
        ),
        (
            "skipped".into(),
            Value::Record(vec![
                ("x".into(), Value::Double(1.0)),
                ("y".into(), Value::Union(1, Box::new(Value::Bytes(vec![1, 2, 3])))),
            ]),
        ),
    ])
}

fn orders_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Int64, true),  // int promoted to long
        Field::new("status", DataType::Utf8, true),   // enum into STRING
        Field::new("note", DataType::Utf8, true),     // union in the other order
        Field::new("added", DataType::Float64, true), // not in the writer: NULL
    ]))
}

#[test]
fn schema_evolution_resolves_by_name() {
    let mut dec = AvroRowDecoder::new(orders_schema(), None).unwrap();
    dec.add_writer_schema(3, WRITER_V2);
    let payloads = vec![
        framed(3, &avro_datum(WRITER_V2, v2_value(1, 10, 0, Some("first")))),
        framed(3, &avro_datum(WRITER_V2, v2_value(2, -5, 1, None))),
    ];
    let d = decode(&mut dec, &payloads);
    assert!(d.bad.is_empty(), "{:?}", d.bad);
    let b = &d.batch;
    assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
    assert_eq!(b.column(1).as_primitive::<Int64Type>().values(), &[10, -5]);
    assert_eq!(b.column(2).as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some("NEW"), Some("PAID")]);
    assert_eq!(b.column(3).as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some("first"), None]);
    assert_eq!(b.column(4).null_count(), 2);
}

#[test]
fn reader_schema_defaults_fill_missing_fields() {
    let reader = r#"{"type": "record", "name": "record", "fields": [
        {"name": "id", "type": "long"},
        {"name": "region", "type": "string", "default": "eu"},
        {"name": "n", "type": ["int", "null"], "default": 42}
    ]}"#;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("n", DataType::Int32, true),
    ]));
    let writer = r#"{"type": "record", "name": "W", "fields": [{"name": "id", "type": "long"}]}"#;
    let mut dec = AvroRowDecoder::new(schema.clone(), Some(reader)).unwrap();
    dec.add_writer_schema(1, writer);
    let payloads = vec![framed(1, &avro_datum(writer, Value::Record(vec![("id".into(), Value::Long(9))])))];
    let d = decode(&mut dec, &payloads);
    assert!(d.bad.is_empty(), "{:?}", d.bad);
    assert_eq!(d.batch.column(1).as_string::<i32>().value(0), "eu");
    assert_eq!(d.batch.column(2).as_primitive::<arrow::datatypes::Int32Type>().value(0), 42);

    // Without a default, a NOT NULL column the writer lacks makes its payloads bad.
    let mut dec = AvroRowDecoder::new(schema, None).unwrap();
    dec.add_writer_schema(1, writer);
    let d = decode(&mut dec, &payloads);
    assert_eq!(
        d.bad,
        vec![(0, "NOT NULL field 'region' is missing in the writer schema and has no default".to_string())]
    );
}

#[test]
fn logical_types_of_other_writers() {
    let writer = r#"{"type": "record", "name": "L", "fields": [
        {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "uf", "type": {"type": "fixed", "name": "U16", "size": 16, "logicalType": "uuid"}},
        {"name": "lts", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "tsn", "type": {"type": "long", "logicalType": "timestamp-nanos"}},
        {"name": "tms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tmicros", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "dec", "type": {"type": "fixed", "name": "D8", "size": 8, "logicalType": "decimal", "precision": 12, "scale": 1}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "plain", "type": "long"}
    ]}"#;
    let schema = Arc::new(Schema::new(vec![
        Field::new("u", DataType::Utf8, true),
        Field::new("uf", DataType::Utf8, true),
        Field::new("lts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("tsn", DataType::Timestamp(TimeUnit::Microsecond, ltz()), true),
        Field::new("tms", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("tmicros", DataType::Time32(TimeUnit::Millisecond), true),
        Field::new("dec", DataType::Decimal128(12, 3), true), // scale 1 -> 3
        Field::new("day", DataType::Date32, true),
        Field::new("plain", DataType::Timestamp(TimeUnit::Microsecond, None), true),
    ]));
    let uuid = apache_avro::Uuid::parse_str("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap();
    let mut dec_bytes = vec![0xffu8; 8];
    dec_bytes[6..].copy_from_slice(&(-1234i16).to_be_bytes()); // -123.4
    let value = Value::Record(vec![
        ("u".into(), Value::Uuid(uuid)),
        ("uf".into(), Value::Uuid(uuid)),
        ("lts".into(), Value::LocalTimestampMicros(1_500_999)),
        ("tsn".into(), Value::TimestampNanos(2_000_001_999)),
        ("tms".into(), Value::TimestampMillis(-1)),
        ("tmicros".into(), Value::TimeMicros(1_234_567)),
        ("dec".into(), Value::Decimal(apache_avro::Decimal::from(dec_bytes))),
        ("day".into(), Value::Date(19_000)),
        ("plain".into(), Value::Long(77)),
    ]);
    let mut dec = AvroRowDecoder::new(schema, None).unwrap();
    dec.add_writer_schema(5, writer);
    let d = decode(&mut dec, &[framed(5, &avro_datum(writer, value))]);
    assert!(d.bad.is_empty(), "{:?}", d.bad);
    let b = &d.batch;
    assert_eq!(b.column(0).as_string::<i32>().value(0), "0f8fad5b-d9cb-469f-a165-70867728950e");
    assert_eq!(b.column(1).as_string::<i32>().value(0), "0f8fad5b-d9cb-469f-a165-70867728950e");
    assert_eq!(b.column(2).as_primitive::<arrow::datatypes::TimestampMillisecondType>().value(0), 1_500);
    assert_eq!(b.column(3).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(0), 2_000_001);
    assert_eq!(b.column(4).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(0), -1_000);
    assert_eq!(b.column(5).as_primitive::<arrow::datatypes::Time32MillisecondType>().value(0), 1_234);
    assert_eq!(b.column(6).as_primitive::<arrow::datatypes::Decimal128Type>().value(0), -123_400);
    assert_eq!(b.column(7).as_primitive::<arrow::datatypes::Date32Type>().value(0), 19_000);
    assert_eq!(b.column(8).as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(0), 77);
}

#[test]
fn bad_payloads_are_reported_and_the_rest_kept() {
    let schema = orders_schema();
    let mut dec = AvroRowDecoder::new(schema, None).unwrap();
    dec.add_writer_schema(3, WRITER_V2);
    dec.add_writer_schema(4, "{not json");
    let good = framed(3, &avro_datum(WRITER_V2, v2_value(1, 10, 0, Some("a"))));
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    let mut trailing = good.clone();
    trailing.push(0);
    // A datum that fails after some columns were appended: the union index of `note` is 7.
    let mut bad_branch = framed(3, &avro_datum(WRITER_V2, v2_value(2, 20, 1, Some("b"))));
    let note_at = bad_branch.iter().rposition(|&b| b == b'b').unwrap() - 2;
    assert_eq!(bad_branch[note_at], 0, "union index of note");
    bad_branch[note_at] = 14; // zigzag 7
    let payloads = vec![
        good.clone(),
        vec![0, 0, 1],
        br#"{"id": 1}"#.to_vec(),
        framed(42, &[2]),
        truncated,
        vec![],
        trailing,
        framed(4, &[]),
        bad_branch,
        good,
    ];
    let d = decode(&mut dec, &payloads);
    assert_eq!(d.origin, vec![0, 9]);
    assert_eq!(d.batch.num_rows(), 2);
    assert_eq!(d.batch.column(3).as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some("a"), Some("a")]);
    let reasons: Vec<(u32, &str)> = d.bad.iter().map(|(i, r)| (*i, r.as_str())).collect();
    assert_eq!(reasons[0], (1, "payload of 3 bytes is too short for the Confluent wire format (5-byte header)"));
    assert_eq!(reasons[1], (2, "unknown magic byte 0x7b (not Confluent Avro wire format)"));
    assert_eq!(reasons[2], (3, "schema id 42 not found in the registry"));
    assert_eq!(reasons[3], (4, "the Avro datum ends early (truncated, or not written with this schema)"));
    assert_eq!(reasons[4], (6, "1 bytes left after the Avro datum (not written with writer schema id 3)"));
    assert_eq!(reasons[5].0, 7);
    assert!(reasons[5].1.starts_with("writer schema id 4: invalid Avro schema"), "{}", reasons[5].1);
    assert_eq!(reasons[6], (8, "Avro union branch 7 does not exist (the union has 2)"));
}

#[test]
fn values_that_do_not_fit_are_bad() {
    let writer = r#"{"type": "record", "name": "W", "fields": [
        {"name": "tiny", "type": "int"}, {"name": "id", "type": ["null", "long"]}, {"name": "s", "type": "long"}]}"#;
    let schema = Arc::new(Schema::new(vec![
        Field::new("tiny", DataType::Int8, true),
        Field::new("id", DataType::Int64, false),
        Field::new("s", DataType::Utf8, true),
    ]));
    let mut dec = AvroRowDecoder::new(schema, None).unwrap();
    dec.add_writer_schema(1, writer);
    let v = |tiny: i32, id: Option<i64>| {
        Value::Record(vec![
            ("tiny".into(), Value::Int(tiny)),
            (
                "id".into(),
                match id {
                    Some(i) => Value::Union(1, Box::new(Value::Long(i))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
            ("s".into(), Value::Long(1)),
        ])
    };
    let d = decode(
        &mut dec,
        &[framed(1, &avro_datum(writer, v(300, Some(1)))), framed(1, &avro_datum(writer, v(1, None)))],
    );
    assert_eq!(
        d.bad,
        vec![
            (0, "field 'tiny': 300 is out of range for TINYINT".to_string()),
            (1, "NULL for NOT NULL field 'id'".to_string()),
        ]
    );
    // The type mismatch of `s` only matters once a value gets that far; here it is the third field.
    let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
    let mut dec = AvroRowDecoder::new(schema, None).unwrap();
    dec.add_writer_schema(1, writer);
    let d = decode(&mut dec, &[framed(1, &avro_datum(writer, v(1, Some(1))))]);
    assert_eq!(d.bad, vec![(0, "field 's': the writer's long cannot be read as STRING".to_string())]);
}

#[test]
fn recursive_writer_types_are_skipped() {
    let writer = r#"{"type": "record", "name": "Node", "fields": [
        {"name": "id", "type": "long"},
        {"name": "next", "type": ["null", "Node"]}]}"#;
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let mut dec = AvroRowDecoder::new(schema, None).unwrap();
    dec.add_writer_schema(1, writer);
    let inner =
        Value::Record(vec![("id".into(), Value::Long(2)), ("next".into(), Value::Union(0, Box::new(Value::Null)))]);
    let outer = Value::Record(vec![("id".into(), Value::Long(1)), ("next".into(), Value::Union(1, Box::new(inner)))]);
    let d = decode(&mut dec, &[framed(1, &avro_datum(writer, outer))]);
    assert!(d.bad.is_empty(), "{:?}", d.bad);
    assert_eq!(d.batch.column(0).as_primitive::<Int64Type>().value(0), 1);

    // A value nested deeper than the decoder follows is bad, not a stack overflow. Hand-made:
    // id 0, then "next" = branch 1 again and again.
    let mut datum = Vec::new();
    for _ in 0..100_000 {
        datum.extend_from_slice(&[0, 2]);
    }
    datum.extend_from_slice(&[0, 0]);
    let d = decode(&mut dec, &[framed(1, &datum)]);
    assert_eq!(d.bad, vec![(0, "the Avro value nests more than 256 levels deep".to_string())]);
}

#[test]
fn encoding_with_a_given_writer_schema() {
    let writer = r#"{"type": "record", "name": "Out", "namespace": "com.acme", "fields": [
        {"name": "status", "type": {"type": "enum", "name": "S", "symbols": ["A", "B"]}},
        {"name": "amount", "type": {"type": "fixed", "name": "F", "size": 6, "logicalType": "decimal", "precision": 12, "scale": 4}},
        {"name": "at", "type": ["null", {"type": "long", "logicalType": "local-timestamp-micros"}]},
        {"name": "version", "type": "int", "default": 3}
    ]}"#;
    let schema = Arc::new(Schema::new(vec![
        Field::new("status", DataType::Utf8, false),
        Field::new("amount", DataType::Decimal128(10, 2), false),
        Field::new("at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["B", "C"])),
            Arc::new(Decimal128Array::from(vec![-150, 1]).with_precision_and_scale(10, 2).unwrap()),
            Arc::new(TimestampMillisecondArray::from(vec![Some(5), None])),
        ],
    )
    .unwrap();
    let mut enc = AvroRowEncoder::new(schema.clone(), Some(writer)).unwrap();
    let mut out = Vec::new();
    let e = enc.encode_payloads(&batch, 1, &mut out).unwrap_err().to_string();
    assert_eq!(e, "format 'avro-confluent': row 1: column 'status': 'C' is not a symbol of the Avro enum");
    assert!(out.is_empty(), "nothing is left behind on an error");
    enc.encode_payloads(&batch.slice(0, 1), 1, &mut out).unwrap();
    let v = avro_read(writer, &out[0][5..]);
    let Value::Record(f) = v else { panic!() };
    assert_eq!(f[0].1, Value::Enum(1, "B".into()));
    let mut fixed = vec![0xff; 6];
    fixed[4..].copy_from_slice(&(-15000i16).to_be_bytes());
    assert_eq!(f[1].1, Value::Decimal(apache_avro::Decimal::from(fixed)));
    assert_eq!(f[2].1, Value::Union(1, Box::new(Value::LocalTimestampMicros(5000))));
    assert_eq!(f[3].1, Value::Int(3));

    // Columns the schema lacks and types that do not fit are refused when building the encoder.
    let e = AvroRowEncoder::new(all_types_schema(), Some(writer)).err().unwrap().to_string();
    assert_eq!(e, "format 'avro-confluent': the Avro schema's field 'status' is not a column and has no default");
    let narrow = Arc::new(Schema::new(vec![Field::new("status", DataType::Int32, false)]));
    let e = AvroRowEncoder::new(
        narrow,
        Some(r#"{"type":"record","name":"R","fields":[{"name":"status","type":"string"}]}"#),
    )
    .err()
    .unwrap()
    .to_string();
    assert_eq!(e, "format 'avro-confluent': column 'status': INT cannot be written as Avro string");
}

#[test]
fn null_in_a_non_null_avro_type_is_an_error() {
    let writer = r#"{"type":"record","name":"R","fields":[{"name":"n","type":"long"}]}"#;
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![Some(1), None]))]).unwrap();
    let mut enc = AvroRowEncoder::new(schema, Some(writer)).unwrap();
    let e = enc.encode_payloads(&batch, 1, &mut Vec::new()).unwrap_err().to_string();
    assert_eq!(e, "format 'avro-confluent': row 1: column 'n' is NULL but its Avro type does not allow null");
}

#[test]
fn options_with_prefixes() {
    let mut bag = OptionBag::new(
        "kafka",
        [
            ("value.avro-confluent.url", "http://localhost:8081"),
            ("value.avro-confluent.subject", "orders-v"),
            ("value.avro-confluent.properties.max.schemas.per.subject", "10"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    let o = AvroConfluentOptions::from_options(&mut bag, "value.").unwrap();
    assert_eq!(o.subject_or("orders-value"), "orders-v");
    assert_eq!(o.registry.urls, vec!["http://localhost:8081".to_string()]);
    bag.finish().unwrap();

    let mut bag = OptionBag::new(
        "kafka",
        [("avro-confluent.url", "http://r"), ("avro-confluent.schema", "{\"type\": \"recrod\"}")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let e = AvroConfluentOptions::from_options(&mut bag, "").unwrap_err().to_string();
    assert!(e.starts_with("option 'avro-confluent.schema': invalid Avro schema"), "{e}");
}

#[test]
fn many_rows_decode_in_one_run() {
    let schema = orders_schema();
    let enc_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Int64, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("note", DataType::Utf8, true),
        Field::new("added", DataType::Float64, true),
    ]));
    let n = 10_000;
    let batch = RecordBatch::try_new(
        enc_schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(Int64Array::from_iter((0..n).map(|i| (i % 3 != 0).then_some(i * 2)))),
            Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("s{i}")))),
            Arc::new(StringArray::from_iter((0..n).map(|i| (i % 2 == 0).then(|| "note".to_string())))),
            Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
        ],
    )
    .unwrap();
    let mut enc = AvroRowEncoder::new(enc_schema, None).unwrap();
    let mut out = Vec::new();
    enc.encode_payloads(&batch, 9, &mut out).unwrap();
    let mut dec = AvroRowDecoder::new(schema, None).unwrap();
    dec.add_writer_schema(9, enc.schema_json());
    let d = decode(&mut dec, &out);
    assert!(d.bad.is_empty());
    assert_eq!(d.batch, batch);
}

/// Through the registry test double, when it is there.
mod with_registry {
    use super::*;
    use crate::format::registry::{test_double, RegistryConfig, SchemaRegistryClient};

    #[test]
    fn encoder_registers_and_decoder_fetches() {
        let Some(reg) = test_double::start(None) else { return };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut bag = OptionBag::new(
                "kafka",
                [("value.avro-confluent.url".to_string(), reg.url.clone())].into_iter().collect(),
            );
            let opts = AvroConfluentOptions::from_options(&mut bag, "value.").unwrap();
            let registry = Arc::new(SchemaRegistryClient::new(&opts.registry).unwrap());
            let batch = all_types_batch();
            let mut enc = ConfluentAvroEncoder::new(batch.schema(), &opts, registry.clone(), "orders-value").unwrap();
            let mut out = Vec::new();
            enc.encode(&batch, &mut out).await.unwrap();
            let id = confluent_schema_id(&out[0]).unwrap();

            // Another writer's schema (v2 of the subject), registered by someone else.
            let v2 = registry.register("orders-value", WRITER_V2).await.unwrap();
            assert_ne!(v2, id);

            // A fresh client, as another process would have.
            let fresh = Arc::new(
                SchemaRegistryClient::new(&RegistryConfig { urls: vec![reg.url.clone()], ..Default::default() })
                    .unwrap(),
            );
            let mut dec = ConfluentAvroDecoder::new(batch.schema(), &opts, fresh.clone()).unwrap();
            let mut payloads: Vec<&[u8]> = out.iter().map(|p| p.as_slice()).collect();
            let unknown = framed(id + 100, &[0]);
            payloads.push(&unknown);
            let d = dec.decode(&payloads).await.unwrap();
            assert_eq!(d.origin, vec![0, 1, 2]);
            assert_eq!(d.bad, vec![(3, format!("schema id {} not found in the registry", id + 100))]);
            assert_eq!(d.batch.column(7), batch.column(7));

            let mut dec = ConfluentAvroDecoder::new(orders_schema(), &opts, fresh).unwrap();
            let p = framed(v2, &avro_datum(WRITER_V2, v2_value(5, 6, 1, None)));
            let d = dec.decode(&[&p]).await.unwrap();
            assert!(d.bad.is_empty(), "{:?}", d.bad);
            assert_eq!(d.batch.column(0).as_primitive::<Int64Type>().value(0), 5);
        });
    }
}

#[test]
#[ignore = "throughput print, not an assertion: cargo test --release -- --ignored avro_throughput --nocapture"]
fn avro_throughput() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Int64, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("note", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, ltz()), true),
        Field::new("score", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
    ]));
    let n = 200_000i64;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(Int64Array::from_iter((0..n).map(|i| (i % 3 != 0).then_some(i * 2)))),
            Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("status-{}", i % 7)))),
            Arc::new(StringArray::from_iter((0..n).map(|i| (i % 2 == 0).then(|| format!("a note about {i}"))))),
            Arc::new(Decimal128Array::from_iter_values(0..n as i128).with_precision_and_scale(10, 2).unwrap()),
            Arc::new(TimestampMillisecondArray::from_iter_values(0..n).with_timezone_opt(ltz())),
            Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64 / 3.0))),
            Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i % 2 == 0)))),
        ],
    )
    .unwrap();
    let mut enc = AvroRowEncoder::new(schema.clone(), None).unwrap();
    let mut dec = AvroRowDecoder::new(schema, None).unwrap();
    dec.add_writer_schema(1, enc.schema_json());
    let t = std::time::Instant::now();
    let mut out = Vec::new();
    enc.encode_payloads(&batch, 1, &mut out).unwrap();
    let e = t.elapsed();
    let refs: Vec<&[u8]> = out.iter().map(|p| p.as_slice()).collect();
    let t = std::time::Instant::now();
    let mut rows = 0;
    for chunk in refs.chunks(4096) {
        rows += dec.decode_payloads(chunk).unwrap().batch.num_rows();
    }
    let d = t.elapsed();
    assert_eq!(rows, n as usize);
    println!("encode {:.0} rows/s, decode {:.0} rows/s", n as f64 / e.as_secs_f64(), n as f64 / d.as_secs_f64());
}
