//! Formats for message-oriented connectors (Kafka keys and values): a payload is one record.
//! [`RecordDecoder`] turns payloads into rows of a table's columns; [`RecordEncoder`] the reverse.
//! Implementations: JSON, Avro with a Confluent Schema Registry, raw bytes, Debezium JSON.

use arrow::array::RecordBatch;
use sluice_common::{RowKind, SluiceError};

/// Rows decoded from a run of payloads.
#[derive(Debug)]
pub struct Decoded {
    /// The decoded rows, in payload order.
    pub batch: RecordBatch,
    /// For each row, the index of the payload it came from (a Debezium update gives two rows).
    pub origin: Vec<u32>,
    /// Row kinds for changelog formats (`debezium-json`); `None`: every row is an insert.
    pub kinds: Option<Vec<RowKind>>,
    /// Payloads that could not be decoded: index and reason. They produce no row.
    pub bad: Vec<(u32, String)>,
}

/// Decodes payloads into rows of a fixed schema.
#[async_trait::async_trait]
pub trait RecordDecoder: Send {
    /// Decodes every payload. A payload that is malformed is reported in [`Decoded::bad`]; `Err` is
    /// only for problems that are not the record's fault (a schema registry that cannot be reached).
    async fn decode(&mut self, payloads: &[&[u8]]) -> Result<Decoded, SluiceError>;
}

/// Encodes rows into payloads.
#[async_trait::async_trait]
pub trait RecordEncoder: Send {
    /// One payload per row of `batch`, appended to `out`.
    async fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<Vec<u8>>) -> Result<(), SluiceError>;
}
