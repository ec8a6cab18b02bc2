//! Choosing a record format by name (`'format'`, `'key.format'`, `'value.format'`) and reading its
//! options, which Flink accepts both plain (`json.ignore-parse-errors`) and with the role's prefix
//! (`value.json.ignore-parse-errors`).

use super::avro::{AvroConfluentOptions, ConfluentAvroDecoder, ConfluentAvroEncoder};
use super::debezium::{DebeziumJsonDecoder, DebeziumJsonOptions};
use super::json::JsonDecodeOptions;
use super::json_record::{JsonRecordDecoder, JsonRecordEncoder};
use super::raw::{RawDecoder, RawEncoder, RawOptions};
use super::record::{RecordDecoder, RecordEncoder};
use super::registry::SchemaRegistryClient;
use arrow::datatypes::SchemaRef;
use sluice_common::{ConnectorError, OptionBag, SluiceError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Whether a format serves a message's key or its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Key,
    Value,
}

impl Role {
    fn prefix(self) -> &'static str {
        match self {
            Role::Key => "key.",
            Role::Value => "value.",
        }
    }
}

/// A format with its options, ready to build decoders and encoders.
#[derive(Debug, Clone)]
pub enum FormatConfig {
    Json(JsonDecodeOptions),
    /// With the subject to register under when the options name none (`{topic}-value`/`-key`).
    AvroConfluent(Box<AvroConfluentOptions>, String),
    Raw(RawOptions),
    DebeziumJson(DebeziumJsonOptions),
}

pub const FORMATS: &[&str] = &["json", "avro-confluent", "raw", "debezium-json"];

/// The options of `format` for `role`: keys `{role}.{format}.*` and (for the value, or when the
/// table has one format) `{format}.*`, handed over as one bag of `{format}.*` keys.
fn format_bag(bag: &mut OptionBag, role: Role, format: &str) -> OptionBag {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    if role == Role::Value {
        for (k, v) in bag.with_prefix(&format!("{format}.")) {
            out.insert(format!("{format}.{k}"), v);
        }
    }
    for (k, v) in bag.with_prefix(&format!("{}{format}.", role.prefix())) {
        out.insert(format!("{format}.{k}"), v);
    }
    OptionBag::new(bag.connector().to_string(), out)
}

/// Parses format `name` for `role` of a table on `topic`, whose fields are `schema`.
pub fn parse(
    bag: &mut OptionBag,
    role: Role,
    name: &str,
    topic: &str,
    schema: &SchemaRef,
) -> Result<FormatConfig, ConnectorError> {
    let mut fb = format_bag(bag, role, name);
    let option = |k: &str| format!("{}{k}", if role == Role::Key { "key." } else { "" });
    let config = match name {
        "json" => FormatConfig::Json(JsonDecodeOptions::from_options(&mut fb)?),
        "avro-confluent" => {
            let default_subject = match role {
                Role::Key => format!("{topic}-key"),
                Role::Value => format!("{topic}-value"),
            };
            FormatConfig::AvroConfluent(Box::new(AvroConfluentOptions::from_options(&mut fb, "")?), default_subject)
        }
        "raw" => {
            if schema.fields().len() != 1 {
                return Err(ConnectorError::at_option(
                    option("format"),
                    format!(
                        "the 'raw' format holds exactly one column, this {} has {}",
                        if role == Role::Key { "key" } else { "value" },
                        schema.fields().len()
                    ),
                ));
            }
            FormatConfig::Raw(RawOptions::from_options(&mut fb)?)
        }
        "debezium-json" => {
            if role == Role::Key {
                return Err(ConnectorError::at_option("key.format", "'debezium-json' is a value format"));
            }
            FormatConfig::DebeziumJson(DebeziumJsonOptions::from_options(&mut fb)?)
        }
        other => {
            return Err(ConnectorError::at_option(
                option("format"),
                format!("unknown format '{other}' (supported: {})", FORMATS.join(", ")),
            ))
        }
    };
    fb.finish().map_err(|e| {
        let mut e = ConnectorError::from(e);
        if let Some(o) = e.option.as_mut() {
            *o = format!("{}{o}", role.prefix());
        }
        e
    })?;
    Ok(config)
}

impl FormatConfig {
    pub fn name(&self) -> &'static str {
        match self {
            FormatConfig::Json(_) => "json",
            FormatConfig::AvroConfluent(..) => "avro-confluent",
            FormatConfig::Raw(_) => "raw",
            FormatConfig::DebeziumJson(_) => "debezium-json",
        }
    }

    /// Produces a changelog (`-U`, `+U`, `-D` rows), not only inserts.
    pub fn is_changelog(&self) -> bool {
        matches!(self, FormatConfig::DebeziumJson(_))
    }

    /// The format's own option asks to skip bad records (`json.ignore-parse-errors`).
    pub fn ignores_parse_errors(&self) -> bool {
        match self {
            FormatConfig::Json(o) => o.ignore_parse_errors,
            FormatConfig::DebeziumJson(o) => o.ignore_parse_errors,
            _ => false,
        }
    }

    pub fn decoder(&self, schema: &SchemaRef) -> Result<Box<dyn RecordDecoder>, SluiceError> {
        Ok(match self {
            FormatConfig::Json(o) => Box::new(JsonRecordDecoder::new(schema.clone(), o)),
            FormatConfig::AvroConfluent(o, _) => {
                let registry = Arc::new(SchemaRegistryClient::new(&o.registry)?);
                Box::new(ConfluentAvroDecoder::new(schema.clone(), o, registry)?)
            }
            FormatConfig::Raw(o) => Box::new(RawDecoder::new(schema.clone(), *o)?),
            FormatConfig::DebeziumJson(o) => Box::new(DebeziumJsonDecoder::new(schema.clone(), o)),
        })
    }

    pub fn encoder(&self, schema: &SchemaRef) -> Result<Box<dyn RecordEncoder>, SluiceError> {
        Ok(match self {
            FormatConfig::Json(o) => Box::new(JsonRecordEncoder::new(o)),
            FormatConfig::AvroConfluent(o, subject) => {
                let registry = Arc::new(SchemaRegistryClient::new(&o.registry)?);
                Box::new(ConfluentAvroEncoder::new(schema.clone(), o, registry, subject)?)
            }
            FormatConfig::Raw(o) => Box::new(RawEncoder::new(schema, *o)?),
            FormatConfig::DebeziumJson(_) => {
                return Err(SluiceError::user(
                    "'debezium-json' can only be read by sluice so far; write changelogs with upsert-kafka",
                ))
            }
        })
    }
}
