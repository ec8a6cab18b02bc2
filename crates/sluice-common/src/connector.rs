//! The contract between the planner and the connectors. The planner sees a table as a [`TableSpec`]
//! and asks a [`ConnectorCatalog`] (handed in by the binary) whether it can be read or written; it
//! never links a connector implementation.

use arrow::datatypes::SchemaRef;
use std::collections::BTreeMap;

/// A `METADATA [FROM 'key'] [VIRTUAL]` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataColumn {
    pub column: String,
    pub key: String,
    pub is_virtual: bool,
}

/// One `CREATE TABLE`, resolved: options with `${VAR}` substituted, and the columns a connector
/// produces (physical and metadata columns, in declaration order; computed columns are the planner's).
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: String,
    pub connector: String,
    /// Every `WITH` option except `connector`.
    pub options: BTreeMap<String, String>,
    /// Option values as written, before `${VAR}` substitution, for the options that had variables.
    /// Substituted values are secrets: messages, logs and `explain` show the written text instead.
    pub written: BTreeMap<String, String>,
    /// Physical and metadata columns, what the source emits and (less virtual ones) what a sink gets.
    pub connector_schema: SchemaRef,
    pub metadata: Vec<MetadataColumn>,
    pub primary_key: Vec<String>,
}

impl TableSpec {
    /// Options for display (`explain`, logs): values from the environment shown as written (`${VAR}`).
    pub fn display_options(&self) -> Vec<(String, String)> {
        self.options.iter().map(|(k, v)| (k.clone(), self.display_value(k).unwrap_or(v).to_string())).collect()
    }

    /// The text to show for an option's value: as written when it holds a `${VAR}`.
    pub fn display_value(&self, key: &str) -> Option<&str> {
        self.written.get(key).or_else(|| self.options.get(key)).map(String::as_str)
    }

    /// Replaces every substituted secret value in `message` by the text the user wrote.
    pub fn redact(&self, message: &str) -> String {
        let mut out = message.to_string();
        for (k, written) in &self.written {
            if let Some(v) = self.options.get(k).filter(|v| !v.is_empty()) {
                out = out.replace(v.as_str(), written);
            }
        }
        out
    }

    pub fn metadata_for(&self, column: &str) -> Option<&MetadataColumn> {
        self.metadata.iter().find(|m| m.column == column)
    }
}

/// How a connector reads a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceCaps {
    /// The source ends by itself (a file, `number-of-rows`).
    pub bounded: bool,
    /// Emits a changelog (`-U`, `+U`, `-D` rows: upsert-kafka, debezium-json), not only inserts.
    pub changelog: bool,
}

/// What a sink accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkCaps {
    /// Accepts `-U`, `+U` and `-D` rows (upsert or retract sinks); else insert-only.
    pub accepts_updates: bool,
    /// With checkpoints on, every row reaches the output exactly once, also across failures
    /// (two-phase commit or idempotent writes); else at least once (rows after the last checkpoint
    /// are written again on recovery).
    pub exactly_once: bool,
}

/// Error from a connector check: the option key it concerns (for the SQL span) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorError {
    pub option: Option<String>,
    pub message: String,
}

impl ConnectorError {
    pub fn new(message: impl Into<String>) -> Self {
        ConnectorError { option: None, message: message.into() }
    }
    pub fn at_option(option: impl Into<String>, message: impl Into<String>) -> Self {
        ConnectorError { option: Some(option.into()), message: message.into() }
    }
}

impl From<crate::OptionError> for ConnectorError {
    fn from(e: crate::OptionError) -> Self {
        let option = match &e {
            crate::OptionError::Invalid { key, .. } => Some(key.clone()),
            crate::OptionError::Unknown { keys, .. } => keys.first().cloned(),
            crate::OptionError::Missing { .. } => None,
        };
        ConnectorError { option, message: e.to_string() }
    }
}

/// Validates a table's options for reading or writing, without opening anything.
pub trait ConnectorCatalog: Send + Sync {
    /// Names of every connector, for `unknown connector` messages.
    fn connectors(&self) -> Vec<&'static str>;
    fn check_source(&self, table: &TableSpec) -> Result<SourceCaps, ConnectorError>;
    fn check_sink(&self, table: &TableSpec) -> Result<SinkCaps, ConnectorError>;
}
