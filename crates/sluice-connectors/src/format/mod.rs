//! Record formats shared by connectors: JSON lines decoding into Arrow (with Flink's `json.*`
//! options), Flink's JSON encoding of rows, and Flink's `Row.toString` text used by `print`.

pub mod json;
pub mod text;
pub mod values;

pub use json::{JsonDecodeOptions, JsonLineDecoder, TimestampStandard};

pub mod formats;
pub mod record;
pub use record::{Decoded, RecordDecoder, RecordEncoder};

// Message formats (one payload = one record): Avro with a Confluent Schema Registry, raw,
// Debezium JSON, and plain JSON payloads.
pub mod avro;
pub mod debezium;
pub mod json_record;
pub mod raw;
pub mod registry;
pub use avro::{AvroConfluentOptions, AvroRowDecoder, AvroRowEncoder, ConfluentAvroDecoder, ConfluentAvroEncoder};
pub use debezium::{DebeziumJsonDecoder, DebeziumJsonOptions};
pub use json_record::{JsonRecordDecoder, JsonRecordEncoder};
pub use raw::{RawDecoder, RawEncoder, RawOptions};
pub use registry::{RegistryAuth, RegistryConfig, SchemaRegistryClient};
