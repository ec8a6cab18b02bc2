//! `'connector' = 'kafka'` and `'connector' = 'upsert-kafka'`, with Flink's option names.
//!
//! - [`source`]: a consumer per subtask. Partitions are either dealt to the subtasks by sluice
//!   (default, and always for bounded reads and upsert-kafka) or, with `properties.group.id` and an
//!   unbounded read, by Kafka's group protocol so several `sluice run` processes share a topic.
//!   Positions (next offset per partition) are checkpointed; offsets are committed to the group
//!   when the checkpoint holding them is complete, for lag tools.
//! - [`sink`]: `sink.delivery-guarantee` = `none`, `at-least-once` (flush at each checkpoint) or
//!   `exactly-once` (a Kafka transaction per checkpoint, committed when the checkpoint completes;
//!   a transaction left open by a crash between pre-commit and commit is committed on recovery by
//!   its transactional id, see [`txn`]).
//! - Formats ([`crate::format`]): `json`, `avro-confluent`, `raw`, `debezium-json` for keys and values.

pub mod config;
pub mod sink;
pub mod source;
pub mod txn;

pub use config::{KafkaSinkConfig, KafkaSourceConfig};
pub use sink::KafkaSink;
pub use source::KafkaSource;

/// Metadata a Kafka source can read (Flink's keys).
pub const METADATA_READ: &[&str] =
    &["topic", "partition", "offset", "timestamp", "timestamp-type", "headers", "leader-epoch"];
/// Metadata a Kafka sink can write.
pub const METADATA_WRITE: &[&str] = &["headers", "timestamp"];
