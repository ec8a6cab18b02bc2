//! Flink's `avro-confluent` format: Avro datums framed in Confluent's wire format (magic byte 0,
//! 4-byte big-endian schema id, Avro binary), with writer schemas from a Confluent Schema Registry.
//!
//! The codecs are usable without a registry: [`AvroRowDecoder`] decodes framed payloads whose
//! writer schemas were added to it ([`AvroRowDecoder::add_writer_schema`]) and
//! [`AvroRowEncoder`] encodes rows for a known schema id. [`ConfluentAvroDecoder`] and
//! [`ConfluentAvroEncoder`] add the registry: writer schemas fetched by id on first sight (and
//! cached forever), the table's schema registered under the subject on the first encode.
//!
//! Types, as Flink's `AvroSchemaConverter` (legacy timestamp mapping): BOOLEAN boolean;
//! TINYINT/SMALLINT/INT int; BIGINT long; FLOAT float; DOUBLE double; STRING string; BYTES bytes;
//! DECIMAL(p, s) bytes+decimal; DATE int+date; TIME int+time-millis; TIMESTAMP(p) and
//! TIMESTAMP_LTZ(p) long+timestamp-millis (p <= 3) or timestamp-micros (p <= 6); ARRAY array;
//! MAP<STRING, V> map; ROW record named after its path. Nullable types are `["null", T]` with
//! default null. Decoding also reads what schema resolution allows into these columns: int/long/
//! float promotions, string <-> bytes, enum and uuid into STRING, local-timestamp-* and
//! timestamp-nanos, time-micros, decimals on fixed, unions in any order.
//!
//! Invariant: a payload never makes decoding panic or fail as a whole; it is either a row, skipped
//! (empty: a tombstone) or reported in [`Decoded::bad`] with the reason.

mod columns;
mod decode;
mod encode;
mod schema;
#[cfg(test)]
mod tests;

pub use schema::{derive_avro_schema, FLINK_NAMESPACE};

use super::record::{Decoded, RecordDecoder, RecordEncoder};
use super::registry::{RegistryConfig, SchemaRegistryClient};
use arrow::array::{RecordBatch, RecordBatchOptions, StructArray};
use arrow::datatypes::{DataType, SchemaRef};
use columns::Col;
use decode::{Cursor, Plan};
use schema::ParsedSchema;
use sluice_common::{OptionBag, OptionError, SluiceError};
use std::collections::HashMap;
use std::sync::Arc;

/// The name of the format, and the prefix of its options.
pub const FORMAT: &str = "avro-confluent";

/// The `avro-confluent.*` options of a table (or of its key or value format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvroConfluentOptions {
    pub registry: RegistryConfig,
    /// `avro-confluent.subject`; `None`: the caller's default (`{topic}-value` / `{topic}-key`).
    pub subject: Option<String>,
    /// `avro-confluent.schema`: the Avro schema (JSON) to write and to read defaults from, instead
    /// of the one derived from the table.
    pub schema: Option<String>,
}

impl AvroConfluentOptions {
    /// Pulls `{prefix}avro-confluent.*` from the bag; `prefix` is `""`, `"key."` or `"value."`.
    pub fn from_options(bag: &mut OptionBag, prefix: &str) -> Result<Self, OptionError> {
        let registry = RegistryConfig::from_options(bag, prefix, FORMAT)?;
        let subject = bag.string(&format!("{prefix}{FORMAT}.subject"));
        let schema_key = format!("{prefix}{FORMAT}.schema");
        let schema = bag.string(&schema_key);
        if let Some(s) = &schema {
            ParsedSchema::parse(s).map_err(|message| OptionError::Invalid {
                key: schema_key,
                value: s.chars().take(80).collect(),
                message,
            })?;
        }
        Ok(AvroConfluentOptions { registry, subject, schema })
    }

    /// The subject to register under: `avro-confluent.subject`, else `default`.
    pub fn subject_or(&self, default: &str) -> String {
        self.subject.clone().unwrap_or_else(|| default.to_string())
    }
}

const HEADER: usize = 5;

/// The schema id of a Confluent-framed payload, or why it is not one.
pub fn confluent_schema_id(payload: &[u8]) -> Result<u32, String> {
    if payload.len() < HEADER {
        return Err(format!(
            "payload of {} bytes is too short for the Confluent wire format (5-byte header)",
            payload.len()
        ));
    }
    if payload[0] != 0 {
        return Err(format!("unknown magic byte 0x{:02x} (not Confluent Avro wire format)", payload[0]));
    }
    Ok(u32::from_be_bytes(payload[1..HEADER].try_into().expect("4 bytes")))
}

/// Decodes Confluent-framed Avro payloads into batches of a fixed schema, given the writer schemas.
pub struct AvroRowDecoder {
    schema: SchemaRef,
    root_type: DataType,
    reader: Option<ParsedSchema>,
    /// Per writer schema id: the plan, or why payloads of that schema cannot be read.
    plans: HashMap<u32, Result<Arc<Plan>, String>>,
    root: Col,
}

impl AvroRowDecoder {
    /// A decoder for rows of `schema`. `reader_schema` (`avro-confluent.schema`) gives the defaults
    /// of fields a writer schema lacks; without it they are NULL.
    pub fn new(schema: SchemaRef, reader_schema: Option<&str>) -> Result<Self, SluiceError> {
        let root_type = DataType::Struct(schema.fields().clone());
        let root = Col::new("", &root_type).map_err(|m| SluiceError::user(format!("format '{FORMAT}': {m}")))?;
        let reader = match reader_schema {
            Some(s) => Some(
                ParsedSchema::parse(s)
                    .map_err(|m| SluiceError::user(format!("format '{FORMAT}': option 'schema': {m}")))?,
            ),
            None => None,
        };
        Ok(AvroRowDecoder { schema, root_type, reader, plans: HashMap::new(), root })
    }

    /// Adds the writer schema (Avro JSON) of `id`. An invalid or unreadable schema is kept as the
    /// reason its payloads are bad.
    pub fn add_writer_schema(&mut self, id: u32, writer_schema: &str) {
        let plan = ParsedSchema::parse(writer_schema)
            .map(|w| Arc::new(Plan::compile(&w, &self.root_type, self.reader.as_ref())));
        self.plans.insert(id, plan.map_err(|m| format!("writer schema id {id}: {m}")));
    }

    /// Marks payloads of `id` as bad for `reason` (a schema the registry has but is not Avro).
    pub fn reject_writer_schema(&mut self, id: u32, reason: String) {
        self.plans.insert(id, Err(reason));
    }

    pub fn has_writer_schema(&self, id: u32) -> bool {
        self.plans.contains_key(&id)
    }

    /// Decodes every payload. Empty payloads (tombstones) give no row and are not bad.
    pub fn decode_payloads(&mut self, payloads: &[&[u8]]) -> Result<Decoded, SluiceError> {
        let mut origin = Vec::with_capacity(payloads.len());
        let mut bad = Vec::new();
        let mut last: Option<(u32, Arc<Plan>)> = None;
        for (i, p) in payloads.iter().enumerate() {
            if p.is_empty() {
                continue;
            }
            let id = match confluent_schema_id(p) {
                Ok(id) => id,
                Err(reason) => {
                    bad.push((i as u32, reason));
                    continue;
                }
            };
            // Runs of one schema id are the rule: keep the last plan at hand.
            let plan = match &last {
                Some((last_id, plan)) if *last_id == id => plan.clone(),
                _ => match self.plans.get(&id) {
                    Some(Ok(plan)) => {
                        last = Some((id, plan.clone()));
                        plan.clone()
                    }
                    Some(Err(reason)) => {
                        bad.push((i as u32, reason.clone()));
                        continue;
                    }
                    None => {
                        bad.push((i as u32, format!("schema id {id} not found in the registry")));
                        continue;
                    }
                },
            };
            let mut cur = Cursor::new(&p[HEADER..]);
            let len = self.root.len();
            match plan.decode(&mut cur, &mut self.root) {
                Ok(()) if cur.remaining() == 0 => origin.push(i as u32),
                Ok(()) => {
                    self.root.truncate(len);
                    bad.push((
                        i as u32,
                        format!(
                            "{} bytes left after the Avro datum (not written with writer schema id {id})",
                            cur.remaining()
                        ),
                    ));
                }
                Err(reason) => bad.push((i as u32, reason)),
            }
        }
        let batch = self.finish()?;
        Ok(Decoded { batch, origin, kinds: None, bad })
    }

    fn finish(&mut self) -> Result<RecordBatch, SluiceError> {
        let rows = self.root.len();
        let columns = self
            .root
            .children_mut()
            .iter_mut()
            .map(Col::finish)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SluiceError::internal(format!("{FORMAT}: building the batch: {e}")))?;
        self.root.truncate(0);
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| SluiceError::internal(format!("{FORMAT}: building the batch: {e}")))
    }
}

/// Encodes rows as Avro datums of one writer schema in the Confluent wire format.
pub struct AvroRowEncoder {
    writer: ParsedSchema,
    json: String,
    /// Bytes of the last payload, to size the next.
    size_hint: usize,
}

impl AvroRowEncoder {
    /// An encoder for rows of `schema`, writing `writer_schema` (Avro JSON) or, when `None`, the
    /// schema Flink derives from the table.
    pub fn new(schema: SchemaRef, writer_schema: Option<&str>) -> Result<Self, SluiceError> {
        let user = |m: String| SluiceError::user(format!("format '{FORMAT}': {m}"));
        let json = match writer_schema {
            Some(s) => s.to_string(),
            None => derive_avro_schema(schema.fields()).map_err(user)?.to_string(),
        };
        let writer = ParsedSchema::parse(&json).map_err(user)?;
        // Binding an empty batch checks that every column can be written as its Avro type.
        let empty = StructArray::from(RecordBatch::new_empty(schema.clone()));
        encode::bind(&empty, &writer.root, &writer, "").map_err(user)?;
        Ok(AvroRowEncoder { writer, json, size_hint: 64 })
    }

    /// The writer schema (Avro JSON), as registered.
    pub fn schema_json(&self) -> &str {
        &self.json
    }

    /// One payload per row: the Confluent header with `schema_id`, then the datum.
    pub fn encode_payloads(
        &mut self,
        batch: &RecordBatch,
        schema_id: u32,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), SluiceError> {
        let rows = StructArray::from(batch.clone());
        let w = encode::bind(&rows, &self.writer.root, &self.writer, "")
            .map_err(|m| SluiceError::user(format!("format '{FORMAT}': {m}")))?;
        let mut header = [0u8; HEADER];
        header[1..].copy_from_slice(&schema_id.to_be_bytes());
        let before = out.len();
        out.reserve(batch.num_rows());
        for row in 0..batch.num_rows() {
            let mut p = Vec::with_capacity(self.size_hint + 16);
            p.extend_from_slice(&header);
            if let Err(m) = encode::write(&w, row, &mut p) {
                out.truncate(before);
                return Err(SluiceError::user(format!("format '{FORMAT}': row {row}: {m}")));
            }
            self.size_hint = p.len();
            out.push(p);
        }
        Ok(())
    }
}

/// `avro-confluent` decoding with writer schemas from the registry.
pub struct ConfluentAvroDecoder {
    codec: AvroRowDecoder,
    registry: Arc<SchemaRegistryClient>,
}

impl ConfluentAvroDecoder {
    pub fn new(
        schema: SchemaRef,
        options: &AvroConfluentOptions,
        registry: Arc<SchemaRegistryClient>,
    ) -> Result<Self, SluiceError> {
        Ok(ConfluentAvroDecoder { codec: AvroRowDecoder::new(schema, options.schema.as_deref())?, registry })
    }
}

#[async_trait::async_trait]
impl RecordDecoder for ConfluentAvroDecoder {
    async fn decode(&mut self, payloads: &[&[u8]]) -> Result<Decoded, SluiceError> {
        let mut wanted: Vec<u32> = Vec::new();
        let mut last = None;
        for p in payloads {
            if let Ok(id) = confluent_schema_id(p) {
                if last != Some(id) && !self.codec.has_writer_schema(id) && !wanted.contains(&id) {
                    wanted.push(id);
                }
                last = Some(id);
            }
        }
        for id in wanted {
            // Unknown ids are not remembered: the schema may be registered later.
            match self.registry.schema_by_id(id).await? {
                None => {}
                Some(s) if !s.schema_type.eq_ignore_ascii_case("AVRO") => self
                    .codec
                    .reject_writer_schema(id, format!("schema id {id} is a {} schema, not Avro", s.schema_type)),
                Some(s) if s.has_references => self.codec.reject_writer_schema(
                    id,
                    format!("schema id {id} references other subjects' schemas, which sluice does not support"),
                ),
                Some(s) => self.codec.add_writer_schema(id, &s.schema),
            }
        }
        self.codec.decode_payloads(payloads)
    }
}

/// `avro-confluent` encoding; the schema is registered under the subject on the first batch.
pub struct ConfluentAvroEncoder {
    codec: AvroRowEncoder,
    registry: Arc<SchemaRegistryClient>,
    subject: String,
    id: Option<u32>,
}

impl ConfluentAvroEncoder {
    /// `default_subject` is used without `avro-confluent.subject` (Flink: `{topic}-value` or
    /// `{topic}-key`).
    pub fn new(
        schema: SchemaRef,
        options: &AvroConfluentOptions,
        registry: Arc<SchemaRegistryClient>,
        default_subject: &str,
    ) -> Result<Self, SluiceError> {
        Ok(ConfluentAvroEncoder {
            codec: AvroRowEncoder::new(schema, options.schema.as_deref())?,
            registry,
            subject: options.subject_or(default_subject),
            id: None,
        })
    }

    pub fn schema_json(&self) -> &str {
        self.codec.schema_json()
    }

    /// Registers the schema (once) and returns its id; also usable as a sink health check.
    pub async fn schema_id(&mut self) -> Result<u32, SluiceError> {
        if let Some(id) = self.id {
            return Ok(id);
        }
        let id = self.registry.register(&self.subject, self.codec.schema_json()).await?;
        self.id = Some(id);
        Ok(id)
    }
}

#[async_trait::async_trait]
impl RecordEncoder for ConfluentAvroEncoder {
    async fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<Vec<u8>>) -> Result<(), SluiceError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let id = self.schema_id().await?;
        self.codec.encode_payloads(batch, id, out)
    }
}
