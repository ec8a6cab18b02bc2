//! Rendering single Arrow values the way Flink (Java) prints them: `LocalDateTime.toString`,
//! `Instant.toString`, `Double.toString`, `BigDecimal.toPlainString`.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    Time32MillisecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use chrono::{DateTime, NaiveDateTime, Timelike};
use std::fmt::Write;

/// Java's `Double.toString`: `1.0`, `12.5`, `1.0E10`, `1.5E-5`.
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let s = format!("{v:E}");
        let (m, e) = s.split_once('E').expect("{:E} always has an exponent");
        let m = if m.contains('.') { m.to_string() } else { format!("{m}.0") };
        format!("{m}E{e}")
    }
}

/// `BigDecimal.toPlainString` of an unscaled value and scale.
pub fn decimal_string(v: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut s = v.to_string();
        for _ in 0..(-scale) {
            s.push('0');
        }
        return s;
    }
    let neg = v < 0;
    let digits = v.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded =
        if digits.len() <= scale { format!("{}{}", "0".repeat(scale - digits.len() + 1), digits) } else { digits };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if neg { "-" } else { "" })
}

pub fn timestamp_of(unit: &TimeUnit, v: i64) -> Option<NaiveDateTime> {
    let dt = match unit {
        TimeUnit::Second => DateTime::from_timestamp(v, 0),
        TimeUnit::Millisecond => DateTime::from_timestamp_millis(v),
        TimeUnit::Microsecond => DateTime::from_timestamp_micros(v),
        TimeUnit::Nanosecond => Some(DateTime::from_timestamp_nanos(v)),
    };
    dt.map(|d| d.naive_utc())
}

/// The fraction of a second with as few digits as needed, in groups of three (Java's ISO format).
fn java_fraction(nanos: u32, out: &mut String) {
    if nanos == 0 {
        return;
    }
    if nanos.is_multiple_of(1_000_000) {
        let _ = write!(out, ".{:03}", nanos / 1_000_000);
    } else if nanos.is_multiple_of(1_000) {
        let _ = write!(out, ".{:06}", nanos / 1_000);
    } else {
        let _ = write!(out, ".{nanos:09}");
    }
}

/// Java's `LocalDateTime.toString`: `2024-01-01T10:00`, `2024-01-01T10:00:05.120`.
pub fn java_local_date_time(t: &NaiveDateTime) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M").to_string();
    if t.second() != 0 || t.nanosecond() != 0 {
        let _ = write!(s, ":{:02}", t.second());
        java_fraction(t.nanosecond(), &mut s);
    }
    s
}

/// Flink JSON's timestamp text: SQL `2024-01-01 10:00:05.12` or ISO `2024-01-01T10:00:05.12`
/// (fraction printed with as few digits as needed), plus `Z` for instants.
pub fn flink_json_timestamp(t: &NaiveDateTime, iso: bool, instant: bool) -> String {
    let mut s = t.format(if iso { "%Y-%m-%dT%H:%M:%S" } else { "%Y-%m-%d %H:%M:%S" }).to_string();
    let nanos = t.nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        let _ = write!(s, ".{}", frac.trim_end_matches('0'));
    }
    if instant {
        s.push('Z');
    }
    s
}

/// Primitive values as Flink prints them; `None` for types the caller renders itself (nested, binary).
pub fn scalar_text(array: &dyn Array, row: usize) -> Option<String> {
    Some(match array.data_type() {
        DataType::Boolean => array.as_boolean().value(row).to_string(),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::Float32 => java_double(array.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => java_double(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(_, s) => decimal_string(array.as_primitive::<Decimal128Type>().value(row), *s),
        DataType::Utf8 => array.as_string::<i32>().value(row).to_string(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => array.as_string_view().value(row).to_string(),
        DataType::Date32 => {
            let d = array.as_primitive::<Date32Type>().value(row);
            chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163).map(|d| d.to_string()).unwrap_or_default()
        }
        DataType::Time32(TimeUnit::Millisecond) => {
            let ms = array.as_primitive::<Time32MillisecondType>().value(row);
            let t = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                (ms / 1000) as u32,
                ((ms % 1000) * 1_000_000) as u32,
            )?;
            let mut s = t.format("%H:%M").to_string();
            if t.second() != 0 || t.nanosecond() != 0 {
                let _ = write!(s, ":{:02}", t.second());
                java_fraction(t.nanosecond(), &mut s);
            }
            s
        }
        DataType::Timestamp(unit, tz) => {
            let v = timestamp_value(array, row)?;
            let t = timestamp_of(unit, v)?;
            let s = java_local_date_time(&t);
            if tz.is_some() {
                // Instant.toString always prints seconds.
                let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
                java_fraction(t.nanosecond(), &mut s);
                s.push('Z');
                s
            } else {
                s
            }
        }
        _ => return None,
    })
}

pub fn timestamp_value(array: &dyn Array, row: usize) -> Option<i64> {
    Some(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => array.as_primitive::<TimestampSecondType>().value(row),
        DataType::Timestamp(TimeUnit::Millisecond, _) => array.as_primitive::<TimestampMillisecondType>().value(row),
        DataType::Timestamp(TimeUnit::Microsecond, _) => array.as_primitive::<TimestampMicrosecondType>().value(row),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => array.as_primitive::<TimestampNanosecondType>().value(row),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_java() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(12.5), "12.5");
        assert_eq!(java_double(1e10), "1.0E10");
        assert_eq!(java_double(1.5e-5), "1.5E-5");
        assert_eq!(java_double(-0.25), "-0.25");
    }

    #[test]
    fn decimals_print_plain() {
        assert_eq!(decimal_string(12500000, 6), "12.500000");
        assert_eq!(decimal_string(-5, 2), "-0.05");
        assert_eq!(decimal_string(4533, 2), "45.33");
        assert_eq!(decimal_string(7, 0), "7");
    }

    #[test]
    fn timestamps_print_like_java() {
        let t = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_milli_opt(10, 0, 0, 0).unwrap();
        assert_eq!(java_local_date_time(&t), "2024-01-01T10:00");
        let t = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap().and_hms_milli_opt(10, 0, 5, 120).unwrap();
        assert_eq!(java_local_date_time(&t), "2024-01-01T10:00:05.120");
        assert_eq!(flink_json_timestamp(&t, false, false), "2024-01-01 10:00:05.12");
        assert_eq!(flink_json_timestamp(&t, true, true), "2024-01-01T10:00:05.12Z");
    }
}
