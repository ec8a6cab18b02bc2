//! DataFusion errors turned into sluice's planning errors: the place from DataFusion's diagnostic span,
//! and Flink-style wording for the common cases (unknown column with a suggestion, unknown table).

use crate::diagnostics::{Pos, SqlError};
use datafusion::common::{Column, SchemaError};
use datafusion::error::DataFusionError;

pub fn df_error(e: DataFusionError, fallback: Option<Pos>) -> SqlError {
    let pos =
        e.diagnostic().and_then(|d| d.span).map(|s| Pos { line: s.start.line, column: s.start.column }).or(fallback);
    let root = e.find_root();
    let message = match root {
        DataFusionError::SchemaError(schema_error, _) => match schema_error.as_ref() {
            SchemaError::FieldNotFound { field, valid_fields } => unknown_column(field, valid_fields),
            other => clean(&other.to_string()),
        },
        _ => clean(&root.strip_backtrace()),
    };
    SqlError::new(pos, message)
}

fn unknown_column(field: &Column, valid: &[Column]) -> String {
    let mut relations: Vec<String> =
        valid.iter().filter_map(|c| c.relation.as_ref().map(|r| r.table().to_string())).collect();
    relations.sort();
    relations.dedup();
    let place = match (&field.relation, relations.as_slice()) {
        (Some(r), _) => format!(" in '{}'", r.table()),
        (None, [one]) => format!(" in '{one}'"),
        _ => String::new(),
    };
    let candidates = valid.iter().filter(|c| match &field.relation {
        Some(r) => c.relation.as_ref().is_some_and(|cr| cr.table() == r.table()),
        None => true,
    });
    let suggestion = candidates
        .map(|c| (strsim::jaro_winkler(&c.name.to_lowercase(), &field.name.to_lowercase()), &c.name))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| format!(" (did you mean '{name}'?)"))
        .unwrap_or_default();
    format!("unknown column '{}'{place}{suggestion}", field.name)
}

/// Strips DataFusion's category prefixes ("Error during planning: ") that mean nothing to a user.
fn clean(s: &str) -> String {
    let mut s = s.trim();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "SQL error: ",
        "This feature is not implemented: ",
        "Arrow error: ",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
        }
    }
    if let Some(rest) = s.strip_prefix("table '").and_then(|r| r.strip_suffix("' not found")) {
        let name = rest.rsplit('.').next().unwrap_or(rest);
        return format!("unknown table '{name}'");
    }
    s.to_string()
}
