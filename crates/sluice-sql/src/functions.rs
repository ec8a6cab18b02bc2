//! Flink's functions where DataFusion's differ or are missing, registered over DataFusion's own:
//! `ROUND` (HALF_UP, DECIMAL result type as in Flink), `CONCAT` (NULL if any argument is NULL),
//! `DATE_FORMAT` (Java date patterns), `TO_TIMESTAMP_LTZ`, `JSON_VALUE`, `PROCTIME`; and the type
//! names Flink allows in `CAST` (`TIMESTAMP_LTZ(p)`, `BYTES`).

use crate::types::{timestamp_unit, LTZ_ZONE};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float32Array, Float64Array, StringArray, StringBuilder,
    TimestampMillisecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::execution::session_state::SessionState;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::planner::TypePlanner;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use datafusion::sql::sqlparser::ast::{self, DataType as SqlType};
use std::sync::Arc;

pub fn register(state: &mut SessionState) {
    for udf in [
        ScalarUDF::from(Round::new()),
        ScalarUDF::from(Concat::new()),
        ScalarUDF::from(DateFormat::new()),
        ScalarUDF::from(ToTimestampLtz::new()),
        ScalarUDF::from(JsonValue::new()),
        ScalarUDF::from(Proctime::new()),
        ScalarUDF::from(ToTimestamp::new()),
        ScalarUDF::from(If::new()),
        ScalarUDF::from(SystemTimeMarker::new()),
    ] {
        state.register_udf(Arc::new(udf)).expect("registering a UDF cannot fail");
    }
    state
        .register_udaf(Arc::new(datafusion::logical_expr::AggregateUDF::from(crate::aggregates::FlinkAvg::new())))
        .expect("registering a UDAF cannot fail");
}

/// `CAST(x AS TIMESTAMP_LTZ(3))`, `CAST(x AS BYTES)`.
#[derive(Debug)]
pub struct FlinkTypePlanner;

impl TypePlanner for FlinkTypePlanner {
    fn plan_type_field(&self, sql_type: &SqlType) -> Result<Option<FieldRef>> {
        let dt = match sql_type {
            SqlType::Custom(name, args) => {
                let n = name.to_string().to_ascii_uppercase();
                match n.as_str() {
                    "TIMESTAMP_LTZ" => {
                        let p = args.first().and_then(|a| a.parse().ok()).unwrap_or(6);
                        DataType::Timestamp(timestamp_unit(p), Some(LTZ_ZONE.into()))
                    }
                    "BYTES" => DataType::Binary,
                    "STRING" => DataType::Utf8,
                    _ => return Ok(None),
                }
            }
            SqlType::Timestamp(p, ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone) => {
                DataType::Timestamp(timestamp_unit(p.unwrap_or(6)), None)
            }
            _ => return Ok(None),
        };
        Ok(Some(Arc::new(Field::new("", dt, true))))
    }
}

macro_rules! udf_boilerplate {
    ($name:literal) => {
        fn name(&self) -> &str {
            $name
        }
        fn signature(&self) -> &Signature {
            &self.signature
        }
    };
}

fn arrays(args: &ScalarFunctionArgs) -> Result<Vec<ArrayRef>> {
    ColumnarValue::values_to_arrays(&args.args)
}

fn scalar_i64(v: Option<&ScalarValue>) -> Option<i64> {
    match v? {
        ScalarValue::Int8(Some(x)) => Some(*x as i64),
        ScalarValue::Int16(Some(x)) => Some(*x as i64),
        ScalarValue::Int32(Some(x)) => Some(*x as i64),
        ScalarValue::Int64(Some(x)) => Some(*x),
        ScalarValue::UInt8(Some(x)) => Some(*x as i64),
        ScalarValue::UInt32(Some(x)) => Some(*x as i64),
        ScalarValue::UInt64(Some(x)) => Some(*x as i64),
        _ => None,
    }
}

// ---------------------------------------------------------------- ROUND

/// Flink's `ROUND(x [, d])`: HALF_UP; `DECIMAL(p, s)` gives `DECIMAL(1 + p - s + d, d)` when `d < s`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Round {
    signature: Signature,
}

impl Round {
    fn new() -> Self {
        Round {
            signature: Signature::one_of(vec![TypeSignature::Any(1), TypeSignature::Any(2)], Volatility::Immutable),
        }
    }
}

fn round_decimal_type(p: u8, s: i8, d: i64) -> DataType {
    let (p, s) = (p as i64, s as i64);
    if d >= s {
        DataType::Decimal128(p as u8, s as i8)
    } else if d < 0 {
        DataType::Decimal128((1 + p - s).clamp(1, 38) as u8, 0)
    } else {
        DataType::Decimal128((1 + p - s + d).clamp(1, 38) as u8, d as i8)
    }
}

fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

/// HALF_UP rounding of `v` (scaled by 10^`from`) to `to` decimal places; result scaled by 10^max(to,0).
fn round_half_up_i128(v: i128, from: i64, to: i64) -> i128 {
    if to >= from {
        return v;
    }
    let drop = (from - to) as u32;
    if drop > 38 {
        return 0;
    }
    let d = pow10(drop);
    let (q, r) = (v / d, v % d);
    let q = if r.abs() * 2 >= d { q + v.signum() } else { q };
    if to < 0 {
        // Saturates instead of overflowing (a panic in debug builds) on values beyond 38 digits.
        q.saturating_mul(pow10((-to) as u32))
    } else {
        q
    }
}

/// `BigDecimal.valueOf(x).setScale(d, HALF_UP).doubleValue()`, as Flink rounds doubles.
fn round_f64(x: f64, d: i64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let s = format!("{x}");
    let (neg, s) = s.strip_prefix('-').map(|r| (true, r)).unwrap_or((false, &s));
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = format!("{int}{frac}");
    let Ok(v) = digits.parse::<i128>() else {
        let m = 10f64.powi(d as i32);
        return (x * m).round() / m;
    };
    let v = if neg { -v } else { v };
    let scale = frac.len() as i64;
    if d >= scale {
        return x;
    }
    let r = round_half_up_i128(v, scale, d);
    format!("{}e-{}", r, d.max(0)).parse().unwrap_or(x)
}

impl ScalarUDFImpl for Round {
    udf_boilerplate!("round");

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match &arg_types[0] {
            DataType::Decimal128(p, s) => round_decimal_type(*p, *s, 0),
            t => t.clone(),
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let d = if args.arg_fields.len() > 1 {
            match scalar_i64(args.scalar_arguments.get(1).copied().flatten()) {
                Some(d) => d,
                None => return plan_err!("ROUND: the number of decimal places must be an integer literal"),
            }
        } else {
            0
        };
        let t = match args.arg_fields[0].data_type() {
            DataType::Decimal128(p, s) => round_decimal_type(*p, *s, d),
            t if t.is_numeric() || t.is_null() => t.clone(),
            t => return plan_err!("ROUND expects a number, got {}", sluice_common::flink_type_name(t)),
        };
        Ok(Arc::new(Field::new("round", t, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let d = match args.args.get(1) {
            None => 0,
            Some(ColumnarValue::Scalar(s)) => scalar_i64(Some(s)).unwrap_or(0),
            Some(_) => return exec_err!("ROUND: the number of decimal places must be a literal"),
        };
        let target = args.return_field.data_type().clone();
        let x = arrays(&args)?.swap_remove(0);
        let out: ArrayRef = match x.data_type() {
            DataType::Decimal128(_, s) => {
                let s = *s as i64;
                let a: &Decimal128Array = x.as_primitive();
                let (tp, ts) = match target {
                    DataType::Decimal128(p, s) => (p, s),
                    _ => unreachable!("decimal input gives a decimal result"),
                };
                let r: Decimal128Array = a.unary(|v| {
                    let r = round_half_up_i128(v, s, d);
                    // d < 0 keeps scale 0; d >= s keeps the input unchanged.
                    if d >= s {
                        v
                    } else {
                        r
                    }
                });
                Arc::new(r.with_precision_and_scale(tp, ts)?)
            }
            DataType::Float64 => {
                let a: &Float64Array = x.as_primitive();
                Arc::new(a.unary::<_, datafusion::arrow::datatypes::Float64Type>(|v| round_f64(v, d)))
            }
            DataType::Float32 => {
                let a: &Float32Array = x.as_primitive();
                Arc::new(a.unary::<_, datafusion::arrow::datatypes::Float32Type>(|v| round_f64(v as f64, d) as f32))
            }
            t if t.is_integer() => {
                if d >= 0 {
                    x
                } else {
                    let a = cast(&x, &DataType::Int64)?;
                    let a = a.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                    let r = a.unary::<_, datafusion::arrow::datatypes::Int64Type>(|v| {
                        round_half_up_i128(v as i128, 0, d) as i64
                    });
                    cast(&r, t)?
                }
            }
            DataType::Null => x,
            t => return exec_err!("ROUND expects a number, got {t}"),
        };
        Ok(ColumnarValue::Array(out))
    }
}

// ---------------------------------------------------------------- CONCAT

/// Flink's `CONCAT(s1, s2, ...)`: NULL if any argument is NULL (DataFusion skips NULLs).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Concat {
    signature: Signature,
}

impl Concat {
    fn new() -> Self {
        Concat { signature: Signature::variadic_any(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for Concat {
    udf_boilerplate!("concat");

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let cols = arrays(&args)?
            .into_iter()
            .map(|a| cast(&a, &DataType::Utf8))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let cols: Vec<&StringArray> = cols.iter().map(|a| a.as_string::<i32>()).collect();
        let mut b = StringBuilder::with_capacity(n, n * 16);
        let mut buf = String::new();
        for row in 0..n {
            if cols.iter().any(|c| c.is_null(row)) {
                b.append_null();
                continue;
            }
            buf.clear();
            for c in &cols {
                buf.push_str(c.value(row));
            }
            b.append_value(&buf);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

// ---------------------------------------------------------------- DATE_FORMAT

/// Flink's `DATE_FORMAT(timestamp, 'yyyy-MM-dd HH:mm:ss')` with Java `SimpleDateFormat` letters.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateFormat {
    signature: Signature,
}

impl DateFormat {
    fn new() -> Self {
        DateFormat { signature: Signature::any(2, Volatility::Immutable) }
    }
}

/// Translates a Java date pattern into a chrono format string.
pub fn java_to_chrono(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '%' {
                    out.push('%');
                }
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let piece = match (c, n) {
            ('y', 2) => "%y".to_string(),
            ('y', _) => "%Y".to_string(),
            ('M', 1) => "%-m".to_string(),
            ('M', 2) => "%m".to_string(),
            ('M', 3) => "%b".to_string(),
            ('M', _) => "%B".to_string(),
            ('d', 1) => "%-d".to_string(),
            ('d', _) => "%d".to_string(),
            ('H', 1) => "%-H".to_string(),
            ('H', _) => "%H".to_string(),
            ('h', _) => "%I".to_string(),
            ('m', 1) => "%-M".to_string(),
            ('m', _) => "%M".to_string(),
            ('s', 1) => "%-S".to_string(),
            ('s', _) => "%S".to_string(),
            ('S', n) => format!("%{}f", n.min(9)),
            ('a', _) => "%p".to_string(),
            ('E', 1..=3) => "%a".to_string(),
            ('E', _) => "%A".to_string(),
            ('D', _) => "%j".to_string(),
            ('Z', _) => "%z".to_string(),
            ('X', _) => "%:z".to_string(),
            ('%', _) => "%%".repeat(n),
            (c, n) => c.to_string().repeat(n),
        };
        // chrono's %3f etc. print the fraction without the leading dot: exactly Java's SSS.
        out.push_str(&piece);
        i += n;
    }
    out
}

impl ScalarUDFImpl for DateFormat {
    udf_boilerplate!("date_format");

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let ts = cast(&a[0], &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
        let ts = ts.as_primitive::<datafusion::arrow::datatypes::TimestampNanosecondType>();
        let fmt = cast(&a[1], &DataType::Utf8)?;
        let fmt = fmt.as_string::<i32>();
        let mut b = StringBuilder::with_capacity(ts.len(), ts.len() * 20);
        let mut cached: Option<(String, String)> = None;
        for row in 0..ts.len() {
            if ts.is_null(row) || fmt.is_null(row) {
                b.append_null();
                continue;
            }
            let java = fmt.value(row);
            if cached.as_ref().is_none_or(|(j, _)| j != java) {
                cached = Some((java.to_string(), java_to_chrono(java)));
            }
            let chrono_fmt = &cached.as_ref().expect("set above").1;
            let t = chrono::DateTime::from_timestamp_nanos(ts.value(row)).naive_utc();
            use std::fmt::Write;
            let mut s = String::new();
            if write!(s, "{}", t.format(chrono_fmt)).is_err() {
                return exec_err!("DATE_FORMAT: invalid pattern '{java}'");
            }
            b.append_value(s);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

// ---------------------------------------------------------------- TO_TIMESTAMP_LTZ

/// `TO_TIMESTAMP_LTZ(epoch, precision)`: precision 0 = seconds, 3 = milliseconds.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestampLtz {
    signature: Signature,
}

impl ToTimestampLtz {
    fn new() -> Self {
        ToTimestampLtz {
            signature: Signature::one_of(vec![TypeSignature::Any(1), TypeSignature::Any(2)], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ToTimestampLtz {
    udf_boilerplate!("to_timestamp_ltz");

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, Some(LTZ_ZONE.into())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let precision = match args.args.get(1) {
            None => 3,
            Some(ColumnarValue::Scalar(s)) => scalar_i64(Some(s)).unwrap_or(3),
            Some(_) => return exec_err!("TO_TIMESTAMP_LTZ: precision must be a literal 0 or 3"),
        };
        let factor = match precision {
            0 => 1000.0,
            3 => 1.0,
            p => return exec_err!("TO_TIMESTAMP_LTZ: precision must be 0 or 3, got {p}"),
        };
        let a = cast(&arrays(&args)?[0], &DataType::Float64)?;
        let a = a.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let out: TimestampMillisecondArray = a.unary(|v| (v * factor) as i64);
        Ok(ColumnarValue::Array(Arc::new(out.with_timezone(LTZ_ZONE))))
    }
}

// ---------------------------------------------------------------- JSON_VALUE

/// `JSON_VALUE(json, '$.path')`: the scalar at the path as STRING; NULL when missing, not scalar or
/// not JSON (Flink's default `NULL ON EMPTY`, `NULL ON ERROR`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonValue {
    signature: Signature,
}

impl JsonValue {
    fn new() -> Self {
        JsonValue { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for JsonValue {
    udf_boilerplate!("json_value");

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let json = cast(&a[0], &DataType::Utf8)?;
        let json = json.as_string::<i32>();
        let path = cast(&a[1], &DataType::Utf8)?;
        let path = path.as_string::<i32>();
        let mut b = StringBuilder::with_capacity(json.len(), json.len() * 8);
        let mut cached: Option<(String, serde_json_path::JsonPath)> = None;
        for row in 0..json.len() {
            if json.is_null(row) || path.is_null(row) {
                b.append_null();
                continue;
            }
            let p = path.value(row);
            if cached.as_ref().is_none_or(|(s, _)| s != p) {
                match serde_json_path::JsonPath::parse(p) {
                    Ok(jp) => cached = Some((p.to_string(), jp)),
                    Err(e) => return exec_err!("JSON_VALUE: invalid path '{p}': {e}"),
                }
            }
            let jp = &cached.as_ref().expect("set above").1;
            let value: Option<String> = serde_json::from_str::<serde_json::Value>(json.value(row)).ok().and_then(|v| {
                match jp.query(&v).exactly_one() {
                    Ok(serde_json::Value::String(s)) => Some(s.clone()),
                    Ok(serde_json::Value::Number(n)) => Some(n.to_string()),
                    Ok(serde_json::Value::Bool(b)) => Some(b.to_string()),
                    _ => None,
                }
            });
            b.append_option(value);
        }
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

// ---------------------------------------------------------------- PROCTIME

/// `PROCTIME()`: the wall-clock time when the row is processed, as `TIMESTAMP_LTZ(3)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Proctime {
    signature: Signature,
}

impl Proctime {
    fn new() -> Self {
        Proctime { signature: Signature::nullary(Volatility::Volatile) }
    }
}

impl ScalarUDFImpl for Proctime {
    udf_boilerplate!("proctime");

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, Some(LTZ_ZONE.into())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let now = chrono::Utc::now().timestamp_millis();
        let a = TimestampMillisecondArray::from_value(now, args.number_rows).with_timezone(LTZ_ZONE);
        Ok(ColumnarValue::Array(Arc::new(a)))
    }
}

// ---------------------------------------------------------------- FOR SYSTEM_TIME AS OF marker

/// Name of the marker the planner ANDs into a temporal join's ON clause: `__sluice_system_time(l.ts)`
/// keeps the probe side's time attribute alive through projection pushdown and tells the stream
/// planner which column it is. It is removed from the join condition before execution.
pub const SYSTEM_TIME_MARKER: &str = "__sluice_system_time";

#[derive(Debug, PartialEq, Eq, Hash)]
struct SystemTimeMarker {
    signature: Signature,
}

impl SystemTimeMarker {
    fn new() -> Self {
        // Volatile, so that the optimizer neither folds it nor pushes it below the join.
        SystemTimeMarker { signature: Signature::variadic_any(Volatility::Volatile) }
    }
}

impl ScalarUDFImpl for SystemTimeMarker {
    udf_boilerplate!("__sluice_system_time");

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all = datafusion::arrow::array::BooleanArray::from(vec![true; args.number_rows]);
        Ok(ColumnarValue::Array(Arc::new(all)))
    }
}

// ---------------------------------------------------------------- TO_TIMESTAMP

/// Flink's `TO_TIMESTAMP(string [, format])`: parses with a Java date pattern (default
/// `yyyy-MM-dd HH:mm:ss`) into `TIMESTAMP(3)`; NULL when the text does not match, as in Flink.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ToTimestamp {
    signature: Signature,
}

impl ToTimestamp {
    fn new() -> Self {
        ToTimestamp {
            signature: Signature::one_of(vec![TypeSignature::Any(1), TypeSignature::Any(2)], Volatility::Immutable),
        }
    }
}

fn parse_timestamp(text: &str, chrono_fmt: &str) -> Option<i64> {
    use chrono::{NaiveDate, NaiveDateTime};
    let text = text.trim();
    if let Ok(t) = NaiveDateTime::parse_from_str(text, chrono_fmt) {
        return Some(t.and_utc().timestamp_millis());
    }
    // Date-only patterns such as 'yyyy-MM-dd' mean midnight.
    NaiveDate::parse_from_str(text, chrono_fmt)
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

impl ScalarUDFImpl for ToTimestamp {
    udf_boilerplate!("to_timestamp");

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let text = cast(&a[0], &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let fmt = match a.get(1) {
            Some(f) => Some(cast(f, &DataType::Utf8)?),
            None => None,
        };
        let mut cached: Option<(String, String)> = None;
        let out: TimestampMillisecondArray = (0..text.len())
            .map(|row| {
                if text.is_null(row) {
                    return None;
                }
                let java = match &fmt {
                    Some(f) if f.is_null(row) => return None,
                    Some(f) => f.as_string::<i32>().value(row),
                    None => "yyyy-MM-dd HH:mm:ss",
                };
                if cached.as_ref().is_none_or(|(j, _)| j != java) {
                    cached = Some((java.to_string(), java_to_chrono(java)));
                }
                let chrono_fmt = &cached.as_ref().expect("set above").1;
                let value = text.value(row);
                // Flink's default pattern also accepts a fraction of a second.
                parse_timestamp(value, chrono_fmt).or_else(|| {
                    if fmt.is_none() {
                        parse_timestamp(value, "%Y-%m-%d %H:%M:%S%.f")
                    } else {
                        None
                    }
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

// ---------------------------------------------------------------- IF

/// Flink's `IF(condition, then, else)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct If {
    signature: Signature,
}

impl If {
    fn new() -> Self {
        If { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for If {
    udf_boilerplate!("if");

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() != 3 {
            return plan_err!("IF takes three arguments: IF(condition, value_if_true, value_if_false)");
        }
        let common = datafusion::logical_expr::type_coercion::binary::comparison_coercion(&arg_types[1], &arg_types[2])
            .or_else(|| if arg_types[1].is_null() { Some(arg_types[2].clone()) } else { None })
            .or_else(|| if arg_types[2].is_null() { Some(arg_types[1].clone()) } else { None });
        match common {
            Some(t) => Ok(vec![DataType::Boolean, t.clone(), t]),
            None => plan_err!(
                "IF: the two values have incompatible types {} and {}",
                sluice_common::flink_type_name(&arg_types[1]),
                sluice_common::flink_type_name(&arg_types[2])
            ),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let a = arrays(&args)?;
        let cond = a[0].as_boolean();
        // NULL conditions choose the else branch, as in SQL's CASE.
        let mask =
            if cond.null_count() > 0 { datafusion::arrow::compute::prep_null_mask_filter(cond) } else { cond.clone() };
        Ok(ColumnarValue::Array(datafusion::arrow::compute::kernels::zip::zip(&mask, &a[1], &a[2])?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_up() {
        assert_eq!(round_half_up_i128(12345, 3, 2), 1235); // 12.345 -> 12.35
        assert_eq!(round_half_up_i128(-12345, 3, 2), -1235);
        assert_eq!(round_half_up_i128(12344, 3, 2), 1234);
        assert_eq!(round_f64(2.675, 2), 2.68); // binary 2.67499.. but Flink rounds the decimal text
        assert_eq!(round_f64(-0.5, 0), -1.0);
        assert_eq!(round_f64(1.005, 2), 1.01);
        assert_eq!(round_f64(3.0, 2), 3.0);
        assert_eq!(round_half_up_i128(i128::MAX, 0, -38), i128::MAX, "saturates, no overflow panic");
    }

    #[test]
    fn round_result_types_follow_flink() {
        assert_eq!(round_decimal_type(38, 7, 2), DataType::Decimal128(34, 2));
        assert_eq!(round_decimal_type(10, 2, 4), DataType::Decimal128(10, 2));
        assert_eq!(round_decimal_type(10, 2, -1), DataType::Decimal128(9, 0));
    }

    #[test]
    fn java_patterns_translate() {
        assert_eq!(java_to_chrono("yyyy-MM-dd HH:mm:ss"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(java_to_chrono("yyyy-MM-dd'T'HH:mm:ss.SSS"), "%Y-%m-%dT%H:%M:%S.%3f");
    }
}
