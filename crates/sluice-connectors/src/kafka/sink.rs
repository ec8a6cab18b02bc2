//! Kafka sink subtask.
//!
//! - `none`: records are handed to the client and not waited for (until the end).
//! - `at-least-once`: every record is acknowledged before a checkpoint's pre-commit returns.
//! - `exactly-once`: three transactional producers per subtask, `{prefix}-{subtask}-0`..`-2`, used
//!   in turn. The records between two checkpoints go into one transaction; the barrier flushes it
//!   and leaves it open (pre-commit), the next records go to the next producer, and the transaction
//!   is committed when the checkpoint is complete. Three, so the id named by the newest complete
//!   checkpoint is not reused before a newer checkpoint completes (recovery commits whatever is open
//!   under that id). Recovery commits the restored checkpoint's open transaction by
//!   id ([`super::txn`]) before the producers start, which aborts whatever a failed run left open.
//!
//! upsert-kafka: `+I`/`+U` rows are written under their key, `-D` rows as tombstones (no value),
//! `-U` rows are dropped, as in Flink.

use super::config::{Column, Delivery, KafkaSinkConfig, Partitioner};
use crate::format::RecordEncoder;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use sluice_common::{RowKind, SluiceError, StreamBatch};
use sluice_runtime::checkpoint::{StateReader, StateWriter};
use sluice_runtime::{Sink, SinkInit};
use std::collections::VecDeque;
use std::time::Duration;

const TXN_TIMEOUT: Duration = Duration::from_secs(60);
/// Transactional producers per subtask (see the module docs).
const SLOTS: usize = 3;
/// Unacknowledged records before the sink waits for the oldest.
const MAX_IN_FLIGHT: usize = 200_000;

pub struct KafkaSink {
    config: KafkaSinkConfig,
    subtask: usize,
    value_encoder: Box<dyn RecordEncoder>,
    key_encoder: Option<Box<dyn RecordEncoder>>,
    /// For each column of the batches the sink gets: its role.
    written: Vec<Column>,
    /// For each column of the batches: its index in the table's connector schema.
    table_index: Vec<usize>,
    /// The batch columns of the `timestamp` and `headers` metadata, if written.
    timestamp_col: Option<usize>,
    headers_col: Option<usize>,
    /// One producer, or [`SLOTS`] transactional ones (exactly-once).
    producers: Vec<FutureProducer>,
    /// Exactly-once: the producer the next records go to, whether its transaction is open, and the
    /// pre-committed transaction waiting for its checkpoint (checkpoint id, producer).
    current: usize,
    open: bool,
    pending: Option<(u64, usize)>,
    in_flight: VecDeque<DeliveryFuture>,
    partitions: Option<i32>,
    next_partition: i32,
    keys: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
}

fn external(config: &KafkaSinkConfig, what: &str, e: impl std::fmt::Display) -> SluiceError {
    SluiceError::external(config.spec.redact(&format!("table '{}': {what}: {e}", config.spec.name)))
}

impl KafkaSink {
    pub fn new(config: KafkaSinkConfig, init: &SinkInit) -> Result<Self, SluiceError> {
        if config.delivery == Delivery::ExactlyOnce && !init.checkpointing {
            return Err(SluiceError::user(format!(
                "table '{}': 'sink.delivery-guarantee' = 'exactly-once' commits a transaction per checkpoint; \
                 turn checkpoints on ('execution.checkpointing.interval' and 'execution.checkpointing.dir') \
                 or use 'at-least-once'",
                config.spec.name
            )));
        }
        let value_encoder = config.layout.value.0.encoder(&config.layout.value.1)?;
        let key_encoder = match &config.layout.key {
            Some((f, s)) => Some(f.encoder(s)?),
            None => None,
        };
        // Virtual metadata columns are not in the batches a sink gets.
        let (table_index, written): (Vec<usize>, Vec<Column>) = config
            .spec
            .connector_schema
            .fields()
            .iter()
            .zip(&config.layout.columns)
            .enumerate()
            .filter(|(_, (f, _))| !config.spec.metadata_for(f.name()).is_some_and(|m| m.is_virtual))
            .map(|(i, (_, c))| (i, c.clone()))
            .unzip();
        let position = |key: &str| written.iter().position(|c| *c == Column::Metadata(key.into()));
        let (timestamp_col, headers_col) = (position("timestamp"), position("headers"));
        Ok(KafkaSink {
            subtask: init.subtask,
            value_encoder,
            key_encoder,
            written,
            table_index,
            timestamp_col,
            headers_col,
            producers: Vec::new(),
            current: 0,
            open: false,
            pending: None,
            in_flight: VecDeque::new(),
            partitions: None,
            next_partition: init.subtask as i32,
            keys: Vec::new(),
            values: Vec::new(),
            config,
        })
    }

    fn transactional_id(&self, slot: usize) -> String {
        format!("{}-{}-{}", self.config.transactional_id_prefix.as_deref().unwrap_or("sluice"), self.subtask, slot)
    }

    fn producer_config(&self, slot: usize) -> ClientConfig {
        let mut c = ClientConfig::new();
        // As Java clients partition, so keys land where other producers put them.
        c.set("partitioner", "murmur2_random");
        c.set("linger.ms", "5");
        c.set("client.id", format!("sluice-{}-{}", self.config.spec.name, self.subtask));
        if self.config.delivery != Delivery::None {
            c.set("enable.idempotence", "true");
        }
        if self.config.delivery == Delivery::ExactlyOnce {
            c.set("transactional.id", self.transactional_id(slot));
            // A transaction must outlive the checkpoint interval and a restart: 15 minutes, the
            // broker's default cap (transaction.max.timeout.ms).
            c.set("transaction.timeout.ms", "900000");
        }
        for (k, v) in &self.config.client.properties {
            if k != "group.id" {
                c.set(k, v);
            }
        }
        c
    }

    /// Creates the producers once; transactional ones are initialized, which fences and aborts
    /// whatever earlier runs left open under their ids.
    async fn producers(&mut self) -> Result<(), SluiceError> {
        if !self.producers.is_empty() {
            return Ok(());
        }
        let slots = if self.config.delivery == Delivery::ExactlyOnce { SLOTS } else { 1 };
        let mut out = Vec::new();
        for slot in 0..slots {
            let p: FutureProducer = self.producer_config(slot).create().map_err(|e| {
                SluiceError::user(
                    self.config.spec.redact(&format!("table '{}': Kafka client settings: {e}", self.config.spec.name)),
                )
            })?;
            if self.config.delivery == Delivery::ExactlyOnce {
                let q = p.clone();
                blocking(move || q.init_transactions(TXN_TIMEOUT)).await.map_err(|e| {
                    external(
                        &self.config,
                        &format!("initializing transactions for '{}'", self.transactional_id(slot)),
                        e,
                    )
                })?;
            }
            out.push(p);
        }
        if self.config.partitioner != Partitioner::Default {
            let p = out[0].clone();
            let topic = self.config.topic.clone();
            let n = blocking(move || {
                p.client()
                    .fetch_metadata(Some(&topic), Duration::from_secs(30))
                    .map(|m| m.topics().first().map(|t| t.partitions().len()).unwrap_or(0))
            })
            .await
            .map_err(|e| external(&self.config, "reading the topic's partitions", e))?;
            if n == 0 {
                return Err(SluiceError::user(format!(
                    "table '{}': topic '{}' does not exist",
                    self.config.spec.name, self.config.topic
                )));
            }
            self.partitions = Some(n as i32);
        }
        self.producers = out;
        Ok(())
    }

    /// Waits for every record sent so far; the first failure fails the sink.
    async fn drain(&mut self) -> Result<(), SluiceError> {
        while let Some(f) = self.in_flight.pop_front() {
            delivered(&self.config, f).await?;
        }
        Ok(())
    }

    async fn commit_slot(&mut self, slot: usize) -> Result<(), SluiceError> {
        let p = self.producers[slot].clone();
        blocking(move || p.commit_transaction(TXN_TIMEOUT)).await.map_err(|e| {
            external(&self.config, &format!("committing transaction '{}'", self.transactional_id(slot)), e)
        })
    }

    fn key_and_value_batches(&self, batch: &RecordBatch) -> Result<(Option<RecordBatch>, RecordBatch), SluiceError> {
        let layout = &self.config.layout;
        let mut value_cols: Vec<ArrayRef> = Vec::new();
        let mut key_cols: Vec<Option<ArrayRef>> = vec![None; layout.key_columns.len()];
        // Key fields come from their table columns, wherever the value takes them too.
        for (c, role) in self.written.iter().enumerate() {
            let col = batch.column(c).clone();
            if let Some(k) = layout.key_columns.iter().position(|&t| t == self.table_index[c]) {
                key_cols[k] = Some(col.clone());
            }
            if let Column::Value(_) = role {
                value_cols.push(col);
            }
        }
        let value = RecordBatch::try_new_with_options(
            layout.value.1.clone(),
            value_cols,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )?;
        let key = match &layout.key {
            Some((_, schema)) => Some(RecordBatch::try_new(
                schema.clone(),
                key_cols.into_iter().map(|c| c.expect("every key field is a written column")).collect(),
            )?),
            None => None,
        };
        Ok((key, value))
    }
}

/// Test hook `SLUICE_TEST_KAFKA_CRASH_BEFORE_COMMIT=N`: the process dies when checkpoint `N` is
/// complete and its transaction is not yet committed (the gap recovery must close).
fn crash_hook(checkpoint_id: u64) {
    if std::env::var("SLUICE_TEST_KAFKA_CRASH_BEFORE_COMMIT").ok().and_then(|v| v.parse::<u64>().ok())
        == Some(checkpoint_id)
    {
        eprintln!("sluice: test hook: exiting before committing the transaction of checkpoint {checkpoint_id}");
        std::process::abort();
    }
}

async fn delivered(config: &KafkaSinkConfig, f: DeliveryFuture) -> Result<(), SluiceError> {
    match f.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(external(config, &format!("writing to topic '{}'", config.topic), e)),
        Err(_) => Err(external(config, "writing", "the producer was closed")),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f).await.unwrap_or(Err(KafkaError::Canceled))
}

fn timestamp_millis(array: &dyn Array, row: usize) -> Option<i64> {
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<arrow::datatypes::TimestampSecondType>().value(row) * 1000,
                TimeUnit::Millisecond => array.as_primitive::<arrow::datatypes::TimestampMillisecondType>().value(row),
                TimeUnit::Microsecond => {
                    array.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(row) / 1000
                }
                TimeUnit::Nanosecond => {
                    array.as_primitive::<arrow::datatypes::TimestampNanosecondType>().value(row) / 1_000_000
                }
            };
            Some(v)
        }
        _ => None,
    }
}

fn headers_of(array: &dyn Array, row: usize) -> Option<OwnedHeaders> {
    if array.is_null(row) {
        return None;
    }
    let map = array.as_map_opt()?;
    let entries = map.value(row);
    let keys = entries.column(0);
    let values = entries.column(1);
    let mut h = OwnedHeaders::new();
    for i in 0..entries.len() {
        let k = crate::format::values::scalar_text(keys.as_ref(), i).unwrap_or_default();
        let v: Option<Vec<u8>> = if values.is_null(i) {
            None
        } else {
            match values.data_type() {
                DataType::Binary => Some(values.as_binary::<i32>().value(i).to_vec()),
                DataType::LargeBinary => Some(values.as_binary::<i64>().value(i).to_vec()),
                _ => crate::format::values::scalar_text(values.as_ref(), i).map(String::into_bytes),
            }
        };
        h = h.insert(Header { key: &k, value: v.as_deref() });
    }
    Some(h)
}

#[async_trait::async_trait]
impl Sink for KafkaSink {
    async fn write_batch(&mut self, batch: StreamBatch) -> Result<(), SluiceError> {
        self.producers().await?;
        let exactly_once = self.config.delivery == Delivery::ExactlyOnce;
        if exactly_once && !self.open {
            let p = self.producers[self.current].clone();
            p.begin_transaction().map_err(|e| external(&self.config, "beginning a transaction", e))?;
            self.open = true;
        }
        let data = &batch.data;
        let (key_batch, value_batch) = self.key_and_value_batches(data)?;
        self.values.clear();
        self.value_encoder.encode(&value_batch, &mut self.values).await?;
        self.keys.clear();
        if let (Some(enc), Some(kb)) = (self.key_encoder.as_mut(), key_batch.as_ref()) {
            enc.encode(kb, &mut self.keys).await?;
        }
        let (ts_col, headers_col) = (self.timestamp_col, self.headers_col);
        let producer = self.producers[self.current].clone();
        let topic = self.config.topic.clone();
        let values = std::mem::take(&mut self.values);
        let keys = std::mem::take(&mut self.keys);
        let mut result = Ok(());
        for (row, value) in values.iter().enumerate() {
            let kind = batch.kind(row);
            let tombstone = match kind {
                RowKind::UpdateBefore if self.config.upsert => continue,
                RowKind::Delete if self.config.upsert => true,
                _ => false,
            };
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic);
            if let Some(k) = keys.get(row) {
                record = record.key(k.as_slice());
            }
            if !tombstone {
                record = record.payload(value.as_slice());
            }
            if let Some(ts) = ts_col.and_then(|c| timestamp_millis(data.column(c).as_ref(), row)) {
                record = record.timestamp(ts);
            }
            if let Some(h) = headers_col.and_then(|c| headers_of(data.column(c).as_ref(), row)) {
                record = record.headers(h);
            }
            if let Some(n) = self.partitions {
                let p = match self.config.partitioner {
                    Partitioner::Fixed => self.subtask as i32 % n,
                    _ => {
                        self.next_partition = (self.next_partition + 1) % n;
                        self.next_partition
                    }
                };
                record = record.partition(p);
            }
            loop {
                match producer.send_result(record) {
                    Ok(f) => {
                        self.in_flight.push_back(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        match self.in_flight.pop_front() {
                            Some(f) => {
                                if let Err(e) = delivered(&self.config, f).await {
                                    result = Err(e);
                                    break;
                                }
                            }
                            None => tokio::time::sleep(Duration::from_millis(1)).await,
                        }
                    }
                    Err((e, _)) => {
                        result = Err(external(&self.config, &format!("writing to topic '{}'", topic), e));
                        break;
                    }
                }
            }
            if result.is_err() {
                break;
            }
        }
        self.values = values;
        self.keys = keys;
        result?;
        while self.in_flight.len() > MAX_IN_FLIGHT {
            let f = self.in_flight.pop_front().expect("non-empty");
            delivered(&self.config, f).await?;
        }
        Ok(())
    }

    async fn pre_commit(&mut self, checkpoint_id: u64) -> Result<Vec<u8>, SluiceError> {
        self.producers().await?;
        let mut w = StateWriter::new();
        match self.config.delivery {
            Delivery::None => {}
            Delivery::AtLeastOnce => self.drain().await?,
            Delivery::ExactlyOnce => {
                // The checkpoint before this one is complete (one is in flight at a time).
                if let Some((id, slot)) = self.pending.take() {
                    crash_hook(id);
                    self.commit_slot(slot).await?;
                }
                self.drain().await?;
                if self.open {
                    self.pending = Some((checkpoint_id, self.current));
                    self.current = (self.current + 1) % SLOTS;
                    self.open = false;
                }
            }
        }
        match self.pending {
            Some((id, slot)) => {
                w.bool(true);
                w.u64(id);
                w.u64(slot as u64);
                w.str(&self.transactional_id(slot));
            }
            None => w.bool(false),
        }
        w.u64(self.current as u64);
        Ok(w.finish())
    }

    async fn commit(&mut self, checkpoint_id: u64) -> Result<(), SluiceError> {
        if let Some((id, slot)) = self.pending {
            if id <= checkpoint_id {
                crash_hook(checkpoint_id);
                self.commit_slot(slot).await?;
                self.pending = None;
            }
        }
        Ok(())
    }

    async fn restore(&mut self, state: &[u8]) -> Result<(), SluiceError> {
        let mut r = StateReader::new(state);
        let pending = if r.bool()? {
            let _id = r.u64()?;
            let slot = r.u64()? as usize;
            Some((slot, r.str()?.to_string()))
        } else {
            None
        };
        let current = r.u64()? as usize;
        r.finish()?;
        if self.config.delivery != Delivery::ExactlyOnce {
            return Ok(());
        }
        if let Some((slot, tid)) = &pending {
            let bootstrap = self.config.client.properties.get("bootstrap.servers").cloned().unwrap_or_default();
            let outcome =
                super::txn::commit_pending(&bootstrap, tid).await.map_err(|e| e.redacted(&self.config.spec))?;
            tracing::info!(table = %self.config.spec.name, transaction = %tid, ?outcome, "Restored the checkpoint's Kafka transaction");
            // The next records go to the next producer, so a crash before the next checkpoint
            // leaves this id's committed transaction alone.
            self.current = (slot + 1) % SLOTS;
        } else {
            self.current = current % SLOTS;
        }
        // Fences and aborts what the failed run left open.
        self.producers().await
    }

    async fn finish(&mut self) -> Result<(), SluiceError> {
        if self.producers.is_empty() {
            return Ok(());
        }
        self.drain().await?;
        if self.config.delivery == Delivery::ExactlyOnce {
            if let Some((_, slot)) = self.pending.take() {
                self.commit_slot(slot).await?;
            }
            if self.open {
                let slot = self.current;
                self.commit_slot(slot).await?;
                self.open = false;
            }
        } else {
            let p = self.producers[0].clone();
            blocking(move || p.flush(Duration::from_secs(60)))
                .await
                .map_err(|e| external(&self.config, "flushing", e))?;
        }
        Ok(())
    }
}
