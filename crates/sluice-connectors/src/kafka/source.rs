//! Kafka source subtask: one librdkafka consumer, records decoded in runs into Arrow batches.
//!
//! Partitions: dealt by sluice (each subtask takes the partitions whose stable index falls to it,
//! new ones found every `scan.topic-partition-discovery.interval`), or by Kafka's group protocol
//! when the table has a group id and an unbounded read ([`KafkaSourceConfig::group_managed`]).
//! Either way a partition starts at its checkpointed offset when there is one, else as
//! `scan.startup.mode` says (with the group protocol: the group's committed offset when it has
//! one, so a process joining the group continues where the last owner committed).
//!
//! The position is the next offset of every partition this subtask read; restored positions of
//! all subtasks are merged, so partitions can move between subtasks and processes.

use super::config::{BadRecords, Column, KafkaSourceConfig, OffsetSpec, Topics};
use crate::format::RecordDecoder;
use arrow::array::{
    Array, ArrayRef, BinaryBuilder, Int32Array, Int64Array, MapBuilder, MapFieldNames, RecordBatch, StringArray,
    StringBuilder, TimestampMillisecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, SortField};
use futures::FutureExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, Timestamp};
use sluice_common::{RowKind, SluiceError, StreamBatch};
use sluice_runtime::checkpoint::{StateReader, StateWriter};
use sluice_runtime::{Source, SourceContext};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bad records logged individually before only counting.
const LOGGED_BAD: u64 = 10;
/// How long one blocking metadata or offsets request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Without checkpoints, a group's offsets are committed this often.
const AUTO_COMMIT: Duration = Duration::from_secs(5);

type Positions = HashMap<(String, i32), i64>;

/// Shared between the subtask and its consumer's rebalance callback.
#[derive(Default)]
struct Shared {
    /// Next offset to read per partition: restored, then advanced as records are emitted.
    positions: Positions,
    /// Partitions currently assigned (group protocol).
    assigned: HashSet<(String, i32)>,
    /// Partitions revoked since the last batch (group protocol): their fetched records are dropped
    /// and older checkpoint positions are not committed for them.
    revoked: HashSet<(String, i32)>,
}

struct Ctx {
    shared: Arc<Mutex<Shared>>,
    table: String,
}

impl ClientContext for Ctx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel::*;
        match level {
            Emerg | Alert | Critical | Error => tracing::error!(table = %self.table, "kafka: {fac}: {log_message}"),
            Warning => tracing::warn!(table = %self.table, "kafka: {fac}: {log_message}"),
            _ => tracing::debug!(table = %self.table, "kafka: {fac}: {log_message}"),
        }
    }
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::PartitionEOF(_)) {
            return;
        }
        tracing::warn!(table = %self.table, "kafka client: {error}: {reason}");
    }
}

impl ConsumerContext for Ctx {
    /// Group protocol: assigned partitions start at the checkpointed offset when there is one;
    /// revoked ones commit how far this process got, so the next owner does not read them again.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        use rdkafka::types::RDKafkaRespErr::*;
        let mut shared = self.shared.lock().expect("not poisoned");
        match err {
            RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                for e in tpl.elements() {
                    shared.assigned.insert((e.topic().to_string(), e.partition()));
                }
                let mut out = TopicPartitionList::new();
                for e in tpl.elements() {
                    let key = (e.topic().to_string(), e.partition());
                    let offset = match shared.positions.get(&key) {
                        Some(&o) => Offset::Offset(o),
                        None => Offset::Stored,
                    };
                    let _ = out.add_partition_offset(e.topic(), e.partition(), offset);
                }
                tracing::info!(table = %self.table, partitions = out.count(), "Kafka group assigned partitions");
                if let Err(e) = consumer.assign(&out) {
                    tracing::error!(table = %self.table, "assigning partitions failed: {e}");
                }
            }
            RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let mut commit = TopicPartitionList::new();
                for e in tpl.elements() {
                    let key = (e.topic().to_string(), e.partition());
                    // Forgotten: if the partition comes back, it continues at the group's offset
                    // (another process may have moved it on).
                    if let Some(o) = shared.positions.remove(&key) {
                        let _ = commit.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o));
                    }
                    shared.assigned.remove(&key);
                    shared.revoked.insert(key);
                }
                if commit.count() > 0 {
                    if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                        tracing::warn!(table = %self.table, "committing offsets of revoked partitions failed: {e}");
                    }
                }
                tracing::info!(table = %self.table, partitions = tpl.count(), "Kafka group revoked partitions");
                let _ = consumer.unassign();
            }
            other => {
                tracing::error!(table = %self.table, "Kafka rebalance error: {other:?}");
                let _ = consumer.unassign();
            }
        }
    }
}

/// One record, copied out of the client's buffer.
struct Rec {
    topic: u32,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    timestamp_type: &'static str,
    leader_epoch: Option<i32>,
    key: Option<(usize, usize)>,
    value: Option<(usize, usize)>,
    headers: Vec<(String, Option<(usize, usize)>)>,
}

pub struct KafkaSource {
    config: KafkaSourceConfig,
    subtask: usize,
    parallelism: usize,
    projection: Option<Vec<usize>>,
    batch_rows: usize,
    shared: Arc<Mutex<Shared>>,
    /// Offsets at which each partition ends (bounded reads).
    stop_at: HashMap<(String, i32), i64>,
    /// Stop offsets of the run a checkpoint was taken in: they win over newly resolved ones.
    restored_stops: Positions,
    /// Partitions registered as watermark splits.
    registered: HashSet<(String, i32)>,
    /// Partitions this subtask reads when sluice assigns them.
    mine: HashSet<(String, i32)>,
    topic_names: Vec<String>,
    /// [`topic_hash`] of each of `topic_names`.
    topic_hashes: Vec<u32>,
    value_decoder: Box<dyn RecordDecoder>,
    key_decoder: Option<Box<dyn RecordDecoder>>,
    want_headers: bool,
    bad_logged: u64,
    dead_letter: Option<FutureProducer>,
    /// upsert-kafka: the last row of every key (raw key bytes) this subtask has seen.
    upsert: Option<UpsertState>,
    /// Positions of checkpoints taken and not yet committed to the group.
    to_commit: Vec<(u64, Positions)>,
}

struct UpsertState {
    converter: RowConverter,
    rows: HashMap<Vec<u8>, OwnedRow>,
}

fn external(spec: &KafkaSourceConfig, what: &str, e: impl std::fmt::Display) -> SluiceError {
    SluiceError::external(spec.spec.redact(&format!("table '{}': {what}: {e}", spec.spec.name)))
}

impl KafkaSource {
    /// Every subtask of one table; `restored` are the positions of all subtasks of a checkpoint.
    pub fn create_all(
        config: &KafkaSourceConfig,
        parallelism: usize,
        projection: Option<Vec<usize>>,
        restored: Option<&[Vec<u8>]>,
        batch_rows: usize,
    ) -> Result<Vec<KafkaSource>, SluiceError> {
        let mut positions = Positions::new();
        let mut restored_stops = Positions::new();
        let mut upsert_rows: Vec<HashMap<Vec<u8>, Vec<u8>>> = vec![HashMap::new(); parallelism];
        if let Some(all) = restored {
            for (s, bytes) in all.iter().enumerate() {
                let (p, rows, stops) = decode_position(bytes)?;
                restored_stops.extend(stops);
                for (k, o) in p {
                    let e = positions.entry(k).or_insert(o);
                    *e = (*e).max(o);
                }
                if s < parallelism {
                    upsert_rows[s] = rows;
                }
            }
        }
        let mut out = Vec::new();
        for (subtask, rows) in upsert_rows.into_iter().enumerate() {
            let (value_format, value_schema) = &config.layout.value;
            let value_decoder = value_format.decoder(value_schema)?;
            let key_decoder = match &config.layout.key {
                Some((f, s)) if config.layout.columns.iter().any(|c| matches!(c, Column::Key(_))) => {
                    Some(f.decoder(s)?)
                }
                _ => None,
            };
            let wanted: Vec<usize> = projection.clone().unwrap_or_else(|| (0..config.layout.columns.len()).collect());
            let want_headers = wanted.iter().any(|&i| config.layout.columns[i] == Column::Metadata("headers".into()));
            let upsert = if config.upsert {
                let fields = config
                    .spec
                    .connector_schema
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect();
                let converter = RowConverter::new(fields)?;
                let parser = converter.parser();
                let rows = rows.into_iter().map(|(k, v)| (k, parser.parse(&v).owned())).collect();
                Some(UpsertState { converter, rows })
            } else {
                None
            };
            out.push(KafkaSource {
                config: config.clone(),
                subtask,
                parallelism,
                projection: projection.clone(),
                batch_rows: batch_rows.max(1),
                shared: Arc::new(Mutex::new(Shared { positions: positions.clone(), ..Default::default() })),
                stop_at: HashMap::new(),
                restored_stops: restored_stops.clone(),
                registered: HashSet::new(),
                mine: HashSet::new(),
                topic_names: Vec::new(),
                topic_hashes: Vec::new(),
                value_decoder,
                key_decoder,
                want_headers,
                bad_logged: 0,
                dead_letter: None,
                upsert,
                to_commit: Vec::new(),
            });
        }
        Ok(out)
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        // Defaults first; `properties.*` may override them.
        c.set("enable.auto.commit", "false");
        c.set("enable.auto.offset.store", "false");
        c.set("enable.partition.eof", "true");
        c.set("isolation.level", "read_committed");
        c.set("auto.offset.reset", "error");
        c.set("client.id", format!("sluice-{}-{}", self.config.spec.name, self.subtask));
        for (k, v) in &self.config.client.properties {
            c.set(k, v);
        }
        if self.config.client.group_id.is_none() {
            // Required by the client; never used to commit.
            c.set("group.id", format!("sluice-{}-{:016x}", self.config.spec.name, rand::random::<u64>()));
        }
        if self.config.group_managed() {
            // The startup mode is the group's reset policy, unless the user set one.
            let reset = match self.config.startup {
                OffsetSpec::Earliest => Some("earliest"),
                OffsetSpec::Latest => Some("latest"),
                _ => None,
            };
            if let (Some(r), false) = (reset, self.config.client.properties.contains_key("auto.offset.reset")) {
                c.set("auto.offset.reset", r);
            }
        }
        c
    }

    fn create_consumer(&self) -> Result<Arc<StreamConsumer<Ctx>>, SluiceError> {
        let ctx = Ctx { shared: self.shared.clone(), table: self.config.spec.name.clone() };
        let consumer: StreamConsumer<Ctx> = self.client_config().create_with_context(ctx).map_err(|e| {
            SluiceError::user(
                self.config.spec.redact(&format!("table '{}': Kafka client settings: {e}", self.config.spec.name)),
            )
        })?;
        Ok(Arc::new(consumer))
    }

    /// Topics to read now: the list, or every topic matching the pattern.
    async fn topics(
        config: &KafkaSourceConfig,
        consumer: &Arc<StreamConsumer<Ctx>>,
    ) -> Result<Vec<(String, usize)>, SluiceError> {
        let c = consumer.clone();
        let pattern = match &config.topics {
            Topics::List(l) => Err(l.clone()),
            Topics::Pattern(p) => Ok(super::config::whole_name_pattern(p).expect("checked when planning")),
        };
        let wanted: Option<Vec<String>> = pattern.as_ref().err().cloned();
        let meta = tokio::task::spawn_blocking(move || -> Result<Vec<(String, usize, Option<String>)>, KafkaError> {
            let mut out = Vec::new();
            match wanted {
                Some(list) => {
                    for t in list {
                        // A topic whose leaders are being elected reports an error for a moment.
                        let mut tries = 0;
                        let m = loop {
                            let m = c.fetch_metadata(Some(&t), REQUEST_TIMEOUT)?;
                            let settled = m.topics().iter().all(|t| {
                                t.error().is_none()
                                    && t.partitions().iter().all(|p| p.error().is_none() && p.leader() >= 0)
                            });
                            tries += 1;
                            if settled || tries >= 50 {
                                break m;
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        };
                        for topic in m.topics() {
                            out.push((
                                topic.name().to_string(),
                                topic.partitions().len(),
                                topic.error().map(|e| format!("{e:?}")),
                            ));
                        }
                    }
                }
                None => {
                    let m = c.fetch_metadata(None, REQUEST_TIMEOUT)?;
                    for topic in m.topics() {
                        out.push((
                            topic.name().to_string(),
                            topic.partitions().len(),
                            topic.error().map(|e| format!("{e:?}")),
                        ));
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| SluiceError::internal(e.to_string()))?
        .map_err(|e| external(config, "reading topic metadata", e))?;
        let mut out = Vec::new();
        for (name, partitions, error) in meta {
            match &pattern {
                Ok(re) => {
                    if re.is_match(&name) && !name.starts_with("__") {
                        out.push((name, partitions));
                    }
                }
                Err(_) => {
                    if let Some(e) = error {
                        return Err(SluiceError::user(format!(
                            "table '{}': topic '{name}' cannot be read: {e}",
                            config.spec.name
                        )));
                    }
                    if partitions == 0 {
                        return Err(SluiceError::user(format!(
                            "table '{}': topic '{name}' does not exist (or has no partitions)",
                            config.spec.name
                        )));
                    }
                    out.push((name, partitions));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Partitions that fall to this subtask (Flink's rule: a topic's partitions are dealt
    /// round-robin starting at a subtask picked by the topic's hash).
    fn owns(&self, topic: &str, partition: i32) -> bool {
        let h = topic.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) as usize;
        (h + partition as usize) % self.parallelism == self.subtask
    }

    fn topic_index(&mut self, topic: &str) -> u32 {
        match self.topic_names.iter().position(|t| t == topic) {
            Some(i) => i as u32,
            None => {
                self.topic_names.push(topic.to_string());
                self.topic_hashes.push(topic_hash(topic));
                (self.topic_names.len() - 1) as u32
            }
        }
    }

    /// Resolves where each of `partitions` starts and (bounded) ends, then assigns them.
    async fn assign_new(
        &mut self,
        consumer: &Arc<StreamConsumer<Ctx>>,
        partitions: Vec<(String, i32)>,
    ) -> Result<(), SluiceError> {
        if partitions.is_empty() {
            return Ok(());
        }
        let restored: Positions = self.shared.lock().expect("not poisoned").positions.clone();
        let startup = self.config.startup.clone();
        let bounded = self.config.bounded.clone();
        let reset = self.config.client.properties.get("auto.offset.reset").map(|r| r.to_ascii_lowercase());
        let c = consumer.clone();
        let parts = partitions.clone();
        let (starts, stops) =
            tokio::task::spawn_blocking(move || -> Result<(Vec<Offset>, Vec<Option<i64>>), KafkaError> {
                let starts = resolve(&c, &parts, &startup, Some(&restored))?;
                let mut starts = starts;
                if bounded.is_some() {
                    for (i, (t, p)) in parts.iter().enumerate() {
                        starts[i] = match starts[i] {
                            Offset::Beginning => Offset::Offset(c.fetch_watermarks(t, *p, REQUEST_TIMEOUT)?.0),
                            Offset::End => Offset::Offset(c.fetch_watermarks(t, *p, REQUEST_TIMEOUT)?.1),
                            // No committed offset: where the reset policy would start.
                            Offset::Stored
                                if matches!(reset.as_deref(), Some("earliest" | "smallest" | "beginning")) =>
                            {
                                Offset::Offset(c.fetch_watermarks(t, *p, REQUEST_TIMEOUT)?.0)
                            }
                            Offset::Stored if matches!(reset.as_deref(), Some("latest" | "largest" | "end")) => {
                                Offset::Offset(c.fetch_watermarks(t, *p, REQUEST_TIMEOUT)?.1)
                            }
                            o => o,
                        };
                    }
                }
                let stops = match &bounded {
                    None => vec![None; parts.len()],
                    Some(b) => {
                        let mut out = Vec::new();
                        for (i, o) in resolve(&c, &parts, b, None)?.into_iter().enumerate() {
                            out.push(Some(match o {
                                Offset::Offset(o) => o,
                                // No committed offset / no record at or after the timestamp: the end.
                                _ => c.fetch_watermarks(&parts[i].0, parts[i].1, REQUEST_TIMEOUT)?.1,
                            }));
                        }
                        out
                    }
                };
                Ok((starts, stops))
            })
            .await
            .map_err(|e| SluiceError::internal(e.to_string()))?
            .map_err(|e| external(&self.config, "resolving start offsets", e))?;
        let mut assignment = consumer.assignment().map_err(|e| external(&self.config, "reading the assignment", e))?;
        for ((p, start), stop) in partitions.iter().zip(starts).zip(stops) {
            if let Some(stop) = stop {
                let stop = self.restored_stops.get(p).copied().unwrap_or(stop);
                self.stop_at.insert(p.clone(), stop);
                if let Offset::Offset(o) = start {
                    // Nothing to read in this partition (or it was read to its end before).
                    if o >= stop {
                        let mut shared = self.shared.lock().expect("not poisoned");
                        let cur = shared.positions.entry(p.clone()).or_insert(o);
                        *cur = (*cur).max(o);
                    }
                }
            }
            assignment
                .add_partition_offset(&p.0, p.1, start)
                .map_err(|e| external(&self.config, "building the assignment", e))?;
            self.mine.insert(p.clone());
        }
        consumer.assign(&assignment).map_err(|e| external(&self.config, "assigning partitions", e))?;
        tracing::info!(table = %self.config.spec.name, subtask = self.subtask, partitions = partitions.len(), "Reading Kafka partitions");
        Ok(())
    }

    /// Finds partitions this subtask should read and has not assigned yet.
    async fn discover(&mut self, consumer: &Arc<StreamConsumer<Ctx>>) -> Result<(), SluiceError> {
        let topics = Self::topics(&self.config, consumer).await?;
        let mut new = Vec::new();
        for (t, n) in topics {
            for p in 0..n as i32 {
                let key = (t.clone(), p);
                if !self.mine.contains(&key) && self.owns(&t, p) {
                    new.push(key);
                }
            }
        }
        self.assign_new(consumer, new).await
    }

    /// Keeps the watermark's splits equal to the partitions this subtask reads and has not
    /// finished (a finished bounded partition no longer holds the watermark back).
    fn sync_splits(&mut self, ctx: &mut SourceContext, group: bool) {
        let reading: HashSet<(String, i32)> = {
            let shared = self.shared.lock().expect("not poisoned");
            let all = if group { shared.assigned.clone() } else { self.mine.clone() };
            all.into_iter()
                .filter(|k| self.stop_at.get(k).is_none_or(|&s| shared.positions.get(k).is_none_or(|&p| p < s)))
                .collect()
        };
        for k in reading.difference(&self.registered) {
            ctx.add_split(split_id(&k.0, k.1));
        }
        for k in self.registered.difference(&reading) {
            ctx.remove_split(split_id(&k.0, k.1));
        }
        self.registered = reading;
    }

    /// Bounded reads: every partition reached its stop offset.
    fn all_done(&self) -> bool {
        let shared = self.shared.lock().expect("not poisoned");
        self.stop_at.iter().all(|(k, &stop)| shared.positions.get(k).is_some_and(|&p| p >= stop))
    }
}

/// Start or stop offsets for `parts` under `spec`; restored positions win for starts.
fn resolve(
    c: &StreamConsumer<Ctx>,
    parts: &[(String, i32)],
    spec: &OffsetSpec,
    restored: Option<&Positions>,
) -> Result<Vec<Offset>, KafkaError> {
    let mut out = vec![Offset::Invalid; parts.len()];
    let mut need_committed = TopicPartitionList::new();
    let mut need_times = TopicPartitionList::new();
    for (i, (t, p)) in parts.iter().enumerate() {
        if let Some(&o) = restored.and_then(|r| r.get(&(t.clone(), *p))) {
            out[i] = Offset::Offset(o);
            continue;
        }
        out[i] = match spec {
            OffsetSpec::Earliest => Offset::Beginning,
            OffsetSpec::Latest => Offset::End,
            OffsetSpec::Group => {
                need_committed.add_partition(t, *p);
                Offset::Stored
            }
            OffsetSpec::Timestamp(ts) => {
                need_times.add_partition_offset(t, *p, Offset::Offset(*ts))?;
                Offset::End
            }
            OffsetSpec::Specific(m) => match m.get(p) {
                Some(&o) => Offset::Offset(o),
                None => {
                    need_committed.add_partition(t, *p);
                    Offset::Stored
                }
            },
        };
    }
    if need_committed.count() > 0 {
        let committed = c.committed_offsets(need_committed, REQUEST_TIMEOUT)?;
        for e in committed.elements() {
            if let Some(i) = parts.iter().position(|(t, p)| t == e.topic() && *p == e.partition()) {
                out[i] = match e.offset() {
                    Offset::Offset(o) => Offset::Offset(o),
                    // No committed offset: the client's reset policy decides (an error by default).
                    _ => Offset::Stored,
                };
            }
        }
    }
    if need_times.count() > 0 {
        let found = c.offsets_for_times(need_times, REQUEST_TIMEOUT)?;
        for e in found.elements() {
            if let Some(i) = parts.iter().position(|(t, p)| t == e.topic() && *p == e.partition()) {
                out[i] = match e.offset() {
                    Offset::Offset(o) => Offset::Offset(o),
                    _ => Offset::End,
                };
            }
        }
    }
    // Stop offsets must be numbers: resolve symbolic ones.
    if restored.is_none() {
        for (i, (t, p)) in parts.iter().enumerate() {
            out[i] = match out[i] {
                Offset::Beginning => Offset::Offset(c.fetch_watermarks(t, *p, REQUEST_TIMEOUT)?.0),
                Offset::End => Offset::Offset(c.fetch_watermarks(t, *p, REQUEST_TIMEOUT)?.1),
                o => o,
            };
        }
    }
    Ok(out)
}

/// Next offsets, the stop offsets of a bounded read (so a restored run ends where the first one
/// would have), and upsert-kafka's last row per key.
/// The partitions of a run of records (topic index, partition) with the highest offset read from
/// each; a run holds few partitions, so a list is enough.
fn partitions_of(recs: &[Rec]) -> Vec<(u32, i32, i64)> {
    let mut out: Vec<(u32, i32, i64)> = Vec::new();
    for r in recs {
        match out.iter_mut().find(|(t, p, _)| *t == r.topic && *p == r.partition) {
            Some(e) => e.2 = e.2.max(r.offset),
            None => out.push((r.topic, r.partition, r.offset)),
        }
    }
    out
}

/// A partition's watermark split: stable across runs (it is checkpointed), from topic and number.
fn split_id(topic: &str, partition: i32) -> u32 {
    split_of(topic_hash(topic), partition)
}

fn topic_hash(topic: &str) -> u32 {
    topic.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

fn split_of(topic_hash: u32, partition: i32) -> u32 {
    topic_hash.wrapping_add((partition as u32).wrapping_mul(0x9e37_79b1))
}

fn encode_position(
    positions: &Positions,
    stops: &HashMap<(String, i32), i64>,
    upsert: Option<&UpsertState>,
) -> Vec<u8> {
    let mut w = StateWriter::new();
    let mut sorted: Vec<_> = positions.iter().collect();
    sorted.sort();
    w.len(sorted.len());
    for ((t, p), o) in sorted {
        w.str(t);
        w.i64(*p as i64);
        w.i64(*o);
    }
    match upsert {
        None => w.len(0),
        Some(u) => {
            w.len(u.rows.len());
            for (k, row) in &u.rows {
                w.bytes(k);
                w.bytes(row.row().data());
            }
        }
    }
    let mut stops: Vec<_> = stops.iter().collect();
    stops.sort();
    w.len(stops.len());
    for ((t, p), o) in stops {
        w.str(t);
        w.i64(*p as i64);
        w.i64(*o);
    }
    w.finish()
}

type DecodedPosition = (Positions, HashMap<Vec<u8>, Vec<u8>>, Positions);

fn decode_position(bytes: &[u8]) -> Result<DecodedPosition, SluiceError> {
    let mut r = StateReader::new(bytes);
    let mut positions = Positions::new();
    for _ in 0..r.len()? {
        let t = r.str()?.to_string();
        let p = r.i64()? as i32;
        positions.insert((t, p), r.i64()?);
    }
    let mut rows = HashMap::new();
    for _ in 0..r.len()? {
        let k = r.bytes()?.to_vec();
        rows.insert(k, r.bytes()?.to_vec());
    }
    let mut stops = Positions::new();
    for _ in 0..r.len()? {
        let t = r.str()?.to_string();
        let p = r.i64()? as i32;
        stops.insert((t, p), r.i64()?);
    }
    r.finish()?;
    Ok((positions, rows, stops))
}

impl KafkaSource {
    fn place(&self, rec: &Rec) -> String {
        format!("topic '{}' partition {} offset {}", self.topic_names[rec.topic as usize], rec.partition, rec.offset)
    }

    /// A record that cannot be decoded, handled as `scan.bad-records` says.
    async fn bad_record(
        &mut self,
        ctx: &mut SourceContext,
        rec: &Rec,
        buf: &[u8],
        what: &str,
        reason: &str,
    ) -> Result<(), SluiceError> {
        let place = self.place(rec);
        match &self.config.bad_records {
            BadRecords::Fail => {
                return Err(SluiceError::user(self.config.spec.redact(&format!(
                    "table '{}': {place}: cannot decode the {what}: {reason} (set 'scan.bad-records' = 'skip' or 'dead-letter' to keep going)",
                    self.config.spec.name
                ))))
            }
            BadRecords::Skip => {}
            BadRecords::DeadLetter(topic) => {
                let topic = topic.clone();
                let producer = match &self.dead_letter {
                    Some(p) => p.clone(),
                    None => {
                        let mut c = ClientConfig::new();
                        for (k, v) in &self.config.client.properties {
                            if !k.starts_with("group.") && !CONSUMER_ONLY.contains(&k.as_str()) {
                                c.set(k, v);
                            }
                        }
                        c.set("enable.idempotence", "true");
                        let p: FutureProducer = c.create().map_err(|e| external(&self.config, "creating the dead-letter producer", e))?;
                        self.dead_letter = Some(p.clone());
                        p
                    }
                };
                let slice = |r: Option<(usize, usize)>| r.map(|(a, b)| &buf[a..b]);
                let headers = OwnedHeaders::new()
                    .insert(Header { key: "sluice.error", value: Some(format!("{what}: {reason}").as_bytes()) })
                    .insert(Header { key: "sluice.table", value: Some(self.config.spec.name.as_bytes()) })
                    .insert(Header { key: "sluice.topic", value: Some(self.topic_names[rec.topic as usize].as_bytes()) })
                    .insert(Header { key: "sluice.partition", value: Some(rec.partition.to_string().as_bytes()) })
                    .insert(Header { key: "sluice.offset", value: Some(rec.offset.to_string().as_bytes()) });
                let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(headers);
                if let Some(k) = slice(rec.key) {
                    record = record.key(k);
                }
                if let Some(v) = slice(rec.value) {
                    record = record.payload(v);
                }
                if let Some(ts) = rec.timestamp {
                    record = record.timestamp(ts);
                }
                // Delivered before the source moves past the record (the checkpoint then covers it).
                producer
                    .send(record, REQUEST_TIMEOUT)
                    .await
                    .map_err(|(e, _)| external(&self.config, &format!("writing {place} to the dead-letter topic '{topic}'"), e))?;
            }
        }
        if self.bad_logged < LOGGED_BAD {
            let more = if self.bad_logged + 1 == LOGGED_BAD { " (further bad records are only counted)" } else { "" };
            tracing::warn!(table = %self.config.spec.name, place = %place, reason = %reason, "Bad Kafka record ({what}){more}");
        }
        self.bad_logged += 1;
        ctx.metrics.add_skipped(1);
        Ok(())
    }

    /// Decodes a run of records into one batch of the table's (projected) columns.
    async fn decode(
        &mut self,
        ctx: &mut SourceContext,
        recs: &[Rec],
        buf: &[u8],
    ) -> Result<Option<(StreamBatch, Vec<u32>)>, SluiceError> {
        let slice = |r: (usize, usize)| &buf[r.0..r.1];
        // Values (tombstones have none).
        let value_recs: Vec<usize> = (0..recs.len()).filter(|&i| recs[i].value.is_some()).collect();
        let payloads: Vec<&[u8]> = value_recs.iter().map(|&i| slice(recs[i].value.expect("filtered"))).collect();
        let decoded = self.value_decoder.decode(&payloads).await.map_err(|e| e.redacted(&self.config.spec))?;
        let mut bad_rec = vec![false; recs.len()];
        for (idx, reason) in &decoded.bad {
            let r = value_recs[*idx as usize];
            bad_rec[r] = true;
            self.bad_record(ctx, &recs[r], buf, "value", reason).await?;
        }
        // Keys, when columns come from them.
        let mut key_row: Vec<Option<u32>> = vec![None; recs.len()];
        let mut key_batch = None;
        if let Some(kd) = self.key_decoder.as_mut() {
            let key_recs: Vec<usize> = (0..recs.len()).filter(|&i| !bad_rec[i] && recs[i].value.is_some()).collect();
            let mut keys = Vec::new();
            let mut missing = Vec::new();
            let mut with_key = Vec::new();
            for &i in &key_recs {
                match recs[i].key {
                    Some(k) => {
                        keys.push(slice(k));
                        with_key.push(i);
                    }
                    None => missing.push(i),
                }
            }
            let dk = kd.decode(&keys).await.map_err(|e| e.redacted(&self.config.spec))?;
            for (idx, reason) in &dk.bad {
                let r = with_key[*idx as usize];
                bad_rec[r] = true;
                self.bad_record(ctx, &recs[r], buf, "key", reason).await?;
            }
            for i in missing {
                bad_rec[i] = true;
                self.bad_record(ctx, &recs[i], buf, "key", "the record has no key").await?;
            }
            for (row, &o) in dk.origin.iter().enumerate() {
                key_row[with_key[o as usize]] = Some(row as u32);
            }
            for &r in &with_key {
                if key_row[r].is_none() && !bad_rec[r] {
                    bad_rec[r] = true;
                    self.bad_record(ctx, &recs[r], buf, "key", "the key is empty").await?;
                }
            }
            key_batch = Some(dk.batch);
        }
        // Rows: value rows whose record decoded fully.
        let mut rows_rec = Vec::new();
        let mut value_take = Vec::new();
        let mut kinds = Vec::new();
        for (row, &o) in decoded.origin.iter().enumerate() {
            let r = value_recs[o as usize];
            if bad_rec[r] {
                continue;
            }
            rows_rec.push(r);
            value_take.push(row as u32);
            kinds.push(decoded.kinds.as_ref().map(|k| k[row]).unwrap_or(RowKind::Insert));
        }
        // Payloads the format skips by design (an empty message, a Debezium tombstone) have no row.
        let mut produced = vec![false; value_recs.len()];
        for &o in &decoded.origin {
            produced[o as usize] = true;
        }
        let silent = produced.iter().enumerate().filter(|(i, p)| !**p && !bad_rec[value_recs[*i]]).count();
        if silent > 0 {
            ctx.metrics.add_skipped(silent);
        }
        let tombstones: Vec<usize> = (0..recs.len()).filter(|&i| recs[i].value.is_none()).collect();
        if !self.config.upsert && !tombstones.is_empty() {
            // A record without value has no row in a plain kafka table (Flink skips it too).
            ctx.metrics.add_skipped(tombstones.len());
        }
        let schema = self.config.spec.connector_schema.clone();
        let columns =
            self.columns(&schema, recs, &rows_rec, &value_take, &decoded.batch, key_batch.as_ref(), &key_row, buf)?;
        let full = RecordBatch::try_new(schema.clone(), columns)?;
        let hashes = &self.topic_hashes;
        let split = |r: &Rec| split_of(hashes[r.topic as usize], r.partition);
        let mut splits: Vec<u32> = rows_rec.iter().map(|&r| split(&recs[r])).collect();
        let mut batch = match self.upsert.as_mut() {
            None if decoded.kinds.is_none() => StreamBatch::append_only(full),
            None => StreamBatch::with_kinds(full, kinds),
            Some(u) => {
                // Normalize to a changelog: -U/+U against the key's last row, -D on a tombstone.
                let rows = u.converter.convert_columns(full.columns())?;
                let mut out: Vec<(RowKind, OwnedRow)> = Vec::new();
                splits.clear();
                let mut next_row = 0;
                for (i, rec) in recs.iter().enumerate() {
                    if bad_rec[i] {
                        continue;
                    }
                    let key = rec.key.map(|k| slice(k).to_vec()).unwrap_or_default();
                    match rec.value {
                        Some(_) => {
                            if next_row >= rows_rec.len() || rows_rec[next_row] != i {
                                continue;
                            }
                            let row = rows.row(next_row).owned();
                            next_row += 1;
                            match u.rows.insert(key, row.clone()) {
                                Some(prev) => {
                                    out.push((RowKind::UpdateBefore, prev));
                                    out.push((RowKind::UpdateAfter, row));
                                    splits.extend([split(rec), split(rec)]);
                                }
                                None => {
                                    out.push((RowKind::Insert, row));
                                    splits.push(split(rec));
                                }
                            }
                        }
                        None => {
                            if let Some(prev) = u.rows.remove(&key) {
                                out.push((RowKind::Delete, prev));
                                splits.push(split(rec));
                            }
                        }
                    }
                }
                let columns = u.converter.convert_rows(out.iter().map(|(_, r)| r.row()))?;
                let data = RecordBatch::try_new(schema.clone(), columns)?;
                StreamBatch::with_kinds(data, out.into_iter().map(|(k, _)| k).collect())
            }
        };
        if let Some(p) = &self.projection {
            batch = StreamBatch { data: batch.data.project(p)?, kinds: batch.kinds };
        }
        Ok((batch.num_rows() > 0).then_some((batch, splits)))
    }

    #[allow(clippy::too_many_arguments)]
    fn columns(
        &self,
        schema: &SchemaRef,
        recs: &[Rec],
        rows_rec: &[usize],
        value_take: &[u32],
        values: &RecordBatch,
        keys: Option<&RecordBatch>,
        key_row: &[Option<u32>],
        buf: &[u8],
    ) -> Result<Vec<ArrayRef>, SluiceError> {
        let value_idx = UInt32Array::from(value_take.to_vec());
        let n = rows_rec.len();
        let mut out = Vec::with_capacity(schema.fields().len());
        for (c, col) in self.config.layout.columns.iter().enumerate() {
            let want = schema.field(c).data_type();
            let array: ArrayRef = match col {
                Column::Value(i) => arrow::compute::take(values.column(*i).as_ref(), &value_idx, None)?,
                Column::Key(i) => {
                    let keys = keys.expect("a key decoder when columns come from the key");
                    let idx = UInt32Array::from(rows_rec.iter().map(|&r| key_row[r]).collect::<Vec<_>>());
                    arrow::compute::take(keys.column(*i).as_ref(), &idx, None)?
                }
                Column::Metadata(key) => match key.as_str() {
                    "topic" => Arc::new(StringArray::from_iter_values(
                        rows_rec.iter().map(|&r| self.topic_names[recs[r].topic as usize].as_str()),
                    )),
                    "partition" => Arc::new(Int32Array::from_iter_values(rows_rec.iter().map(|&r| recs[r].partition))),
                    "offset" => Arc::new(Int64Array::from_iter_values(rows_rec.iter().map(|&r| recs[r].offset))),
                    "timestamp" => Arc::new(
                        TimestampMillisecondArray::from_iter(rows_rec.iter().map(|&r| recs[r].timestamp))
                            .with_timezone("UTC"),
                    ),
                    "timestamp-type" => {
                        Arc::new(StringArray::from_iter_values(rows_rec.iter().map(|&r| recs[r].timestamp_type)))
                    }
                    "leader-epoch" => Arc::new(Int32Array::from_iter(rows_rec.iter().map(|&r| recs[r].leader_epoch))),
                    _ => headers_array(want, rows_rec.iter().map(|&r| &recs[r]), buf)?,
                },
            };
            let array = if array.data_type() == want { array } else { arrow::compute::cast(&array, want)? };
            debug_assert_eq!(array.len(), n);
            out.push(array);
        }
        Ok(out)
    }
}

/// Kafka headers as `MAP<STRING, BYTES>` with the field names of the table's type.
fn headers_array<'a>(
    want: &DataType,
    recs: impl Iterator<Item = &'a Rec>,
    buf: &[u8],
) -> Result<ArrayRef, SluiceError> {
    let names = match want {
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(fields) if fields.len() == 2 => MapFieldNames {
                entry: entries.name().clone(),
                key: fields[0].name().clone(),
                value: fields[1].name().clone(),
            },
            _ => MapFieldNames::default(),
        },
        other => {
            return Err(SluiceError::user(format!(
                "metadata 'headers' is MAP<STRING, BYTES>, the column is declared as {other}"
            )))
        }
    };
    let mut b = MapBuilder::new(Some(names), StringBuilder::new(), BinaryBuilder::new());
    for rec in recs {
        for (k, v) in &rec.headers {
            b.keys().append_value(k);
            match v {
                Some((s, e)) => b.values().append_value(&buf[*s..*e]),
                None => b.values().append_null(),
            }
        }
        b.append(true)?;
    }
    Ok(Arc::new(b.finish()))
}

/// Producer settings a consumer's `properties.*` may hold that a producer refuses.
const CONSUMER_ONLY: &[&str] = &[
    "auto.offset.reset",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "isolation.level",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "fetch.wait.max.ms",
    "max.partition.fetch.bytes",
    "enable.partition.eof",
    "auto.commit.interval.ms",
];

#[async_trait::async_trait]
impl Source for KafkaSource {
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<(), SluiceError> {
        let consumer = self.create_consumer()?;
        let group = self.config.group_managed();
        if group {
            let topics: Vec<String> = match &self.config.topics {
                Topics::List(l) => l.clone(),
                Topics::Pattern(p) => vec![format!("^({p})$")],
            };
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            consumer.subscribe(&refs).map_err(|e| external(&self.config, "subscribing", e))?;
        } else {
            self.discover(&consumer).await?;
        }
        let mut last_discovery = Instant::now();
        let mut last_commit = Instant::now();
        let mut buf: Vec<u8> = Vec::new();
        let mut recs: Vec<Rec> = Vec::with_capacity(self.batch_rows);
        loop {
            if self.config.bounded.is_some() && self.all_done() {
                break;
            }
            if ctx.should_stop() {
                break;
            }
            buf.clear();
            recs.clear();
            // Wait for the first record, then take what is already there, up to a batch.
            let first = tokio::select! {
                m = consumer.recv() => Some(m.map(|m| self.copy(&m, &mut buf, &mut recs))),
                _ = ctx.stopped() => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => None,
            };
            let mut eof = Vec::new();
            match first {
                None => {}
                Some(Ok(())) => {}
                Some(Err(KafkaError::PartitionEOF(p))) => eof.push(p),
                Some(Err(e)) => return Err(self.consume_error(e)),
            }
            while recs.len() < self.batch_rows {
                match consumer.recv().now_or_never() {
                    None => break,
                    Some(Ok(m)) => self.copy(&m, &mut buf, &mut recs),
                    Some(Err(KafkaError::PartitionEOF(p))) => eof.push(p),
                    Some(Err(e)) => return Err(self.consume_error(e)),
                }
            }
            // Per-partition decisions are taken once per partition of the run, not per record.
            let parts = partitions_of(&recs);
            let key_of = |t: u32, p: i32| (self.topic_names[t as usize].clone(), p);
            if group {
                // Records fetched before a revoke belong to the partition's next owner.
                let mut shared = self.shared.lock().expect("not poisoned");
                let revoked_now: Vec<(u32, i32)> = parts
                    .iter()
                    .filter(|&&(t, p, _)| !shared.assigned.contains(&key_of(t, p)))
                    .map(|&(t, p, _)| (t, p))
                    .collect();
                if !revoked_now.is_empty() {
                    recs.retain(|r| !revoked_now.contains(&(r.topic, r.partition)));
                }
                if !shared.revoked.is_empty() {
                    let revoked = std::mem::take(&mut shared.revoked);
                    for (_, p) in self.to_commit.iter_mut() {
                        p.retain(|k, _| !revoked.contains(k));
                    }
                }
            }
            // Bounded reads: drop records past a partition's end (which is then reached).
            if !self.stop_at.is_empty() {
                let mut shared = self.shared.lock().expect("not poisoned");
                let mut past_end: Vec<((u32, i32), i64)> = Vec::new();
                for &(t, p, last) in &parts {
                    let key = key_of(t, p);
                    if let Some(&stop) = self.stop_at.get(&key).filter(|&&stop| last >= stop) {
                        past_end.push(((t, p), stop));
                        let cur = shared.positions.entry(key).or_insert(stop);
                        *cur = (*cur).max(stop);
                    }
                }
                if !past_end.is_empty() {
                    recs.retain(|r| {
                        past_end.iter().all(|&((t, p), stop)| (t, p) != (r.topic, r.partition) || r.offset < stop)
                    });
                }
            }
            self.sync_splits(ctx, group);
            if !recs.is_empty() {
                if let Some((batch, splits)) = self.decode(ctx, &recs, &buf).await? {
                    ctx.emit_splits(batch, &splits).await?;
                }
                let mut shared = self.shared.lock().expect("not poisoned");
                for (t, p, last) in partitions_of(&recs) {
                    shared.positions.insert((self.topic_names[t as usize].clone(), p), last + 1);
                }
            }
            if !eof.is_empty() && !self.stop_at.is_empty() {
                self.at_eof(&consumer)?;
            }
            let taken = ctx.checkpoint_taken();
            let position = encode_position(
                &self.shared.lock().expect("not poisoned").positions,
                &self.stop_at,
                self.upsert.as_ref(),
            );
            ctx.checkpoint_point(move || position).await?;
            if let Some(now) =
                ctx.checkpoint_taken().filter(|&t| Some(t) != taken && self.config.client.group_id.is_some())
            {
                let p = self.shared.lock().expect("not poisoned").positions.clone();
                self.to_commit.push((now, p));
            }
            self.commit_offsets(&consumer, ctx, &mut last_commit)?;
            if recs.is_empty() {
                let none = if group {
                    self.shared.lock().expect("not poisoned").assigned.is_empty()
                } else {
                    self.mine.is_empty()
                };
                if none {
                    ctx.idle_now().await?;
                } else {
                    ctx.tick().await?;
                }
            }
            if let Some(every) = self.config.discovery.filter(|_| !group) {
                if last_discovery.elapsed() >= every {
                    last_discovery = Instant::now();
                    self.discover(&consumer).await?;
                }
            }
        }
        if self.config.client.group_id.is_some() && ctx.checkpoint_completed().is_none() {
            // How far this run got, for the next run with `group-offsets` and for lag tools.
            self.commit_now(&consumer, CommitMode::Sync);
        }
        Ok(())
    }

    fn position(&self) -> Vec<u8> {
        encode_position(&self.shared.lock().expect("not poisoned").positions, &self.stop_at, self.upsert.as_ref())
    }
}

impl KafkaSource {
    fn copy<M: Message>(&mut self, m: &M, buf: &mut Vec<u8>, recs: &mut Vec<Rec>) {
        let mut put = |b: Option<&[u8]>| {
            b.map(|b| {
                let s = buf.len();
                buf.extend_from_slice(b);
                (s, buf.len())
            })
        };
        let key = put(m.key());
        let value = put(m.payload());
        let mut headers = Vec::new();
        if self.want_headers {
            if let Some(h) = m.headers() {
                for i in 0..h.count() {
                    let hd = h.get(i);
                    headers.push((hd.key.to_string(), put(hd.value)));
                }
            }
        }
        let (timestamp, timestamp_type) = match m.timestamp() {
            Timestamp::NotAvailable => (None, "NoTimestampType"),
            Timestamp::CreateTime(t) => (Some(t), "CreateTime"),
            Timestamp::LogAppendTime(t) => (Some(t), "LogAppendTime"),
        };
        let topic = self.topic_index(m.topic());
        recs.push(Rec {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            timestamp,
            timestamp_type,
            leader_epoch: None,
            key,
            value,
            headers,
        });
    }

    fn consume_error(&self, e: KafkaError) -> SluiceError {
        let hint = match &e {
            KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::AutoOffsetReset) => {
                " (a partition has no committed offset for the group: set 'scan.startup.mode' = 'earliest-offset' or 'latest-offset', or 'properties.auto.offset.reset')"
            }
            _ => "",
        };
        external(&self.config, "consuming", format!("{e}{hint}"))
    }

    /// After end-of-partition events: partitions whose position reached the stop offset are done
    /// (a transaction marker can sit between the last record and the stop offset).
    fn at_eof(&mut self, consumer: &StreamConsumer<Ctx>) -> Result<(), SluiceError> {
        let pos = consumer.position().map_err(|e| external(&self.config, "reading positions", e))?;
        let mut shared = self.shared.lock().expect("not poisoned");
        for e in pos.elements() {
            let key = (e.topic().to_string(), e.partition());
            if let (Offset::Offset(o), Some(&stop)) = (e.offset(), self.stop_at.get(&key)) {
                if o >= stop {
                    let cur = shared.positions.entry(key).or_insert(stop);
                    *cur = (*cur).max(stop);
                }
            }
        }
        Ok(())
    }

    fn commit_now(&self, consumer: &StreamConsumer<Ctx>, mode: CommitMode) {
        let positions = self.shared.lock().expect("not poisoned").positions.clone();
        let mut tpl = TopicPartitionList::new();
        let mut sorted: Vec<_> =
            positions.iter().filter(|(k, _)| self.mine.contains(*k) || self.config.group_managed()).collect();
        sorted.sort();
        for ((t, p), o) in sorted {
            let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
        }
        if tpl.count() > 0 {
            if let Err(e) = consumer.commit(&tpl, mode) {
                tracing::warn!(table = %self.config.spec.name, "committing offsets to the group failed: {e}");
            }
        }
    }

    /// Commits offsets to the group: those of complete checkpoints, or (no checkpoints) every few
    /// seconds. For lag tools; sluice resumes from its checkpoints.
    fn commit_offsets(
        &mut self,
        consumer: &StreamConsumer<Ctx>,
        ctx: &SourceContext,
        last: &mut Instant,
    ) -> Result<(), SluiceError> {
        if self.config.client.group_id.is_none() {
            return Ok(());
        }
        let positions = match ctx.checkpoint_completed() {
            Some(done) => {
                let Some(i) = self.to_commit.iter().rposition(|(id, _)| *id <= done) else { return Ok(()) };
                let p = self.to_commit[i].1.clone();
                self.to_commit.drain(..=i);
                p
            }
            None => {
                if last.elapsed() < AUTO_COMMIT {
                    return Ok(());
                }
                *last = Instant::now();
                self.shared.lock().expect("not poisoned").positions.clone()
            }
        };
        let assigned: Option<HashSet<(String, i32)>> =
            self.config.group_managed().then(|| self.shared.lock().expect("not poisoned").assigned.clone());
        let mut tpl = TopicPartitionList::new();
        let mut sorted: BTreeMap<&(String, i32), &i64> = BTreeMap::new();
        for (k, o) in &positions {
            let ours = match &assigned {
                Some(a) => a.contains(k),
                None => self.mine.contains(k),
            };
            if ours {
                sorted.insert(k, o);
            }
        }
        for ((t, p), o) in sorted {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))
                .map_err(|e| external(&self.config, "committing offsets", e))?;
        }
        if tpl.count() > 0 {
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                tracing::warn!(table = %self.config.spec.name, "committing offsets to the group failed: {e}");
            }
        }
        Ok(())
    }
}
