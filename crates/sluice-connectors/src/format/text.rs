//! Flink's `Row.toString` text, as the `print` connector writes it: `+I[1, Alice, 2024-01-01T10:00]`.

use super::values::scalar_text;
use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use sluice_common::StreamBatch;
use std::fmt::Write;

pub fn value_text(array: &dyn Array, row: usize, out: &mut String) {
    if array.is_null(row) {
        out.push_str("null");
        return;
    }
    if let Some(s) = scalar_text(array, row) {
        out.push_str(&s);
        return;
    }
    match array.data_type() {
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            out.push('[');
            for i in 0..values.len() {
                if i > 0 {
                    out.push_str(", ");
                }
                value_text(values.as_ref(), i, out);
            }
            out.push(']');
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            out.push('{');
            for i in 0..entries.len() {
                if i > 0 {
                    out.push_str(", ");
                }
                value_text(entries.column(0).as_ref(), i, out);
                out.push('=');
                value_text(entries.column(1).as_ref(), i, out);
            }
            out.push('}');
        }
        DataType::Struct(_) => {
            let s = array.as_struct();
            out.push('(');
            for (i, c) in s.columns().iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                value_text(c.as_ref(), row, out);
            }
            out.push(')');
        }
        DataType::Binary => {
            let b = array.as_binary::<i32>().value(row);
            let _ = write!(out, "{b:?}");
        }
        other => {
            let _ = write!(out, "<{other}>");
        }
    }
}

/// One line per row: `+I[v1, v2, ...]`.
pub fn rows_text(batch: &StreamBatch, prefix: &str, out: &mut String) {
    let columns = batch.data.columns();
    for row in 0..batch.num_rows() {
        out.push_str(prefix);
        out.push_str(batch.kind(row).short_string());
        out.push('[');
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            value_text(c.as_ref(), row, out);
        }
        out.push_str("]\n");
    }
}
