//! Kafka table options: parsed once from a [`TableSpec`], for plan-time checks and for the
//! connector instances.

use super::{METADATA_READ, METADATA_WRITE};
use crate::format::formats::{self, FormatConfig, Role};
use arrow::datatypes::{Schema, SchemaRef};
use sluice_common::{ConnectorError, OptionBag, TableSpec};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Which topics a table reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topics {
    List(Vec<String>),
    /// `topic-pattern`: a regular expression matched against whole topic names.
    Pattern(String),
}

/// Where reading a partition starts (`scan.startup.mode`) or ends (`scan.bounded.mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The group's committed offset.
    Group,
    /// The first offset with a timestamp at or after this (epoch millis).
    Timestamp(i64),
    /// Given offsets per partition (`partition:0,offset:42;partition:1,offset:7`); other
    /// partitions: the group's committed offset.
    Specific(BTreeMap<i32, i64>),
}

/// What to do with a record that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRecords {
    /// Stop the pipeline with the record's topic, partition, offset and the decode error.
    Fail,
    /// Skip it: counted and logged (the first few).
    Skip,
    /// Send its raw key and value to this topic, with the error and its origin in headers.
    DeadLetter(String),
}

/// One column the connector produces or consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// Decoded from the key (index into the key format's fields).
    Key(usize),
    /// Decoded from the value (index into the value format's fields).
    Value(usize),
    /// A metadata column (`timestamp`, `headers`, ...).
    Metadata(String),
}

/// The key and value formats and how the table's columns map onto them.
#[derive(Debug, Clone)]
pub struct Layout {
    pub key: Option<(FormatConfig, SchemaRef)>,
    pub value: (FormatConfig, SchemaRef),
    /// Per connector-schema column.
    pub columns: Vec<Column>,
    /// Indices (into the connector schema) of the key fields, in key order.
    pub key_columns: Vec<usize>,
}

/// Client settings shared by sources and sinks.
#[derive(Debug, Clone)]
pub struct Client {
    /// librdkafka settings from `properties.*` (Java names translated).
    pub properties: BTreeMap<String, String>,
    pub group_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct KafkaSourceConfig {
    pub spec: Arc<TableSpec>,
    pub client: Client,
    pub topics: Topics,
    pub layout: Layout,
    pub startup: OffsetSpec,
    /// `None`: unbounded.
    pub bounded: Option<OffsetSpec>,
    pub discovery: Option<Duration>,
    pub bad_records: BadRecords,
    pub upsert: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    None,
    AtLeastOnce,
    ExactlyOnce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioner {
    /// By key hash (murmur2, as Java clients do), records without key spread by the client.
    Default,
    /// Each subtask writes to one partition (`subtask % partitions`).
    Fixed,
    RoundRobin,
}

#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    pub spec: Arc<TableSpec>,
    pub client: Client,
    pub topic: String,
    pub layout: Layout,
    pub delivery: Delivery,
    pub transactional_id_prefix: Option<String>,
    pub partitioner: Partitioner,
    pub upsert: bool,
}

fn bag(spec: &TableSpec) -> OptionBag {
    let mut bag = OptionBag::new(&spec.connector, spec.options.clone());
    bag.ignore("scan.parallelism");
    bag.ignore("scan.watermark.idle-timeout");
    bag.ignore("sink.parallelism");
    bag
}

/// `properties.*` into librdkafka settings. Java-client spellings users copy from Flink or
/// Confluent Cloud are translated: `sasl.jaas.config` (PLAIN/SCRAM login modules) into
/// `sasl.username`/`sasl.password`, `sasl.mechanism` into `sasl.mechanisms`, `auto.offset.reset`
/// `none` into `error`; Java serializer classes are dropped.
fn client(bag: &mut OptionBag) -> Result<Client, ConnectorError> {
    let props = bag.with_prefix("properties.");
    let mut out = BTreeMap::new();
    for (k, v) in props {
        match k.as_str() {
            "key.deserializer"
            | "value.deserializer"
            | "key.serializer"
            | "value.serializer"
            | "client.dns.lookup"
            | "partition.discovery.interval.ms" => {}
            "sasl.mechanism" => {
                out.insert("sasl.mechanisms".to_string(), v);
            }
            "sasl.jaas.config" => {
                let (user, pass) = jaas_credentials(&v).ok_or_else(|| {
                    ConnectorError::at_option(
                        "properties.sasl.jaas.config",
                        "expected a login module with username=\"...\" and password=\"...\"",
                    )
                })?;
                out.insert("sasl.username".to_string(), user);
                out.insert("sasl.password".to_string(), pass);
            }
            "auto.offset.reset" => {
                let v = match v.to_ascii_lowercase().as_str() {
                    "none" => "error".to_string(),
                    other => other.to_string(),
                };
                out.insert(k, v);
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    if !out.contains_key("bootstrap.servers") {
        return Err(ConnectorError::new(format!(
            "missing required option 'properties.bootstrap.servers' for connector '{}'",
            bag.connector()
        )));
    }
    let group_id = out.get("group.id").cloned();
    Ok(Client { properties: out, group_id })
}

/// `username="u" password="p"` out of a JAAS line.
fn jaas_credentials(jaas: &str) -> Option<(String, String)> {
    let get = |name: &str| -> Option<String> {
        let at = jaas.find(&format!("{name}="))? + name.len() + 1;
        let rest = &jaas[at..];
        let quote = rest.chars().next()?;
        if quote == '"' || quote == '\'' {
            let end = rest[1..].find(quote)?;
            Some(rest[1..1 + end].to_string())
        } else {
            Some(rest.split(|c: char| c.is_whitespace() || c == ';').next()?.to_string())
        }
    };
    Some((get("username")?, get("password")?))
}

fn offsets_spec(
    bag: &mut OptionBag,
    prefix: &str,
    allowed: &[&'static str],
    default: Option<&'static str>,
) -> Result<Option<OffsetSpec>, ConnectorError> {
    let mode = bag.one_of(&format!("{prefix}.mode"), allowed)?.or(default);
    let ts_key = format!("{prefix}.timestamp-millis");
    let off_key = format!("{prefix}.specific-offsets");
    let ts = bag.i64(&ts_key)?;
    let specific = bag.string(&off_key);
    Ok(match mode {
        None | Some("unbounded") => None,
        Some("earliest-offset") => Some(OffsetSpec::Earliest),
        Some("latest-offset") => Some(OffsetSpec::Latest),
        Some("group-offsets") => Some(OffsetSpec::Group),
        Some("timestamp") => Some(OffsetSpec::Timestamp(ts.ok_or_else(|| {
            ConnectorError::at_option(format!("{prefix}.mode"), format!("mode 'timestamp' needs '{ts_key}'"))
        })?)),
        Some(_) => {
            let text = specific.ok_or_else(|| {
                ConnectorError::at_option(
                    format!("{prefix}.mode"),
                    format!("mode 'specific-offsets' needs '{off_key}'"),
                )
            })?;
            Some(OffsetSpec::Specific(
                parse_specific_offsets(&text).map_err(|m| ConnectorError::at_option(off_key, m))?,
            ))
        }
    })
}

/// `topic-pattern` matched against whole topic names; planning compiles exactly this, so the
/// connector's compile cannot fail later.
pub fn whole_name_pattern(p: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{p})$"))
}

/// Flink's `partition:0,offset:42;partition:1,offset:300`.
pub fn parse_specific_offsets(text: &str) -> Result<BTreeMap<i32, i64>, String> {
    let mut out = BTreeMap::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let mut partition = None;
        let mut offset = None;
        for kv in part.split(',') {
            let (k, v) = kv.split_once(':').ok_or_else(|| format!("expected 'partition:N,offset:M', got '{part}'"))?;
            match k.trim() {
                "partition" => partition = v.trim().parse::<i32>().ok(),
                "offset" => offset = v.trim().parse::<i64>().ok(),
                _ => return Err(format!("expected 'partition:N,offset:M', got '{part}'")),
            }
        }
        match (partition, offset) {
            (Some(p), Some(o)) => {
                out.insert(p, o);
            }
            _ => return Err(format!("expected 'partition:N,offset:M' with numbers, got '{part}'")),
        }
    }
    Ok(out)
}

fn split_list(s: &str) -> Vec<String> {
    s.split(';').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()
}

/// Key and value formats and the column mapping, as Flink's `key.format`, `key.fields`,
/// `key.fields-prefix`, `value.format` (or `format`), `value.fields-include`.
fn layout(
    bag: &mut OptionBag,
    spec: &TableSpec,
    topic: &str,
    upsert: bool,
    sink: bool,
) -> Result<Layout, ConnectorError> {
    let allowed_metadata = if sink { METADATA_WRITE } else { METADATA_READ };
    let value_format = match (bag.string("value.format"), bag.string("format")) {
        (Some(v), None) | (None, Some(v)) => v,
        (Some(_), Some(_)) => {
            return Err(ConnectorError::at_option("format", "set either 'format' or 'value.format', not both"))
        }
        (None, None) => {
            return Err(ConnectorError::new(format!(
                "missing required option 'value.format' (or 'format') for connector '{}'",
                spec.connector
            )))
        }
    };
    let key_format = bag.string("key.format");
    let prefix = bag.string("key.fields-prefix").unwrap_or_default();
    let include = bag.one_of("value.fields-include", &["ALL", "EXCEPT_KEY"])?;
    let key_names: Vec<String> = if upsert {
        if bag.string("key.fields").is_some() {
            return Err(ConnectorError::at_option(
                "key.fields",
                "upsert-kafka takes its key from the PRIMARY KEY; remove 'key.fields'",
            ));
        }
        if spec.primary_key.is_empty() {
            return Err(ConnectorError::new(
                "upsert-kafka needs a PRIMARY KEY (... NOT ENFORCED): it is the message key".to_string(),
            ));
        }
        spec.primary_key.clone()
    } else {
        bag.string("key.fields").map(|s| split_list(&s)).unwrap_or_default()
    };
    if !key_names.is_empty() && key_format.is_none() {
        return Err(ConnectorError::new("'key.fields' (or a PRIMARY KEY for upsert-kafka) needs 'key.format'"));
    }
    if key_names.is_empty() && key_format.is_some() {
        return Err(ConnectorError::at_option("key.format", "'key.format' needs 'key.fields'"));
    }
    // Flink's default is ALL: key fields are also in the value (and read from it).
    let except_key = include == Some("EXCEPT_KEY");
    let schema = &spec.connector_schema;
    let mut key_columns = Vec::new();
    for name in &key_names {
        let i = schema.index_of(name).map_err(|_| {
            ConnectorError::at_option("key.fields", format!("key field '{name}' is not a column of the table"))
        })?;
        if spec.metadata_for(name).is_some() {
            return Err(ConnectorError::at_option("key.fields", format!("key field '{name}' is a metadata column")));
        }
        key_columns.push(i);
    }
    let mut columns = Vec::new();
    let mut value_fields = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if let Some(m) = spec.metadata_for(f.name()) {
            if !allowed_metadata.contains(&m.key.as_str()) {
                return Err(ConnectorError::new(format!(
                    "metadata key '{}' of column '{}' cannot be {} (kafka {}: {})",
                    m.key,
                    f.name(),
                    if sink { "written" } else { "read" },
                    if sink { "writes" } else { "provides" },
                    allowed_metadata.join(", ")
                )));
            }
            columns.push(Column::Metadata(m.key.clone()));
            continue;
        }
        let is_key = key_columns.contains(&i);
        if is_key && except_key {
            if !f.name().starts_with(prefix.as_str()) {
                return Err(ConnectorError::at_option(
                    "key.fields-prefix",
                    format!("key field '{}' does not start with the prefix '{prefix}'", f.name()),
                ));
            }
            // Its place in the key (key order, not table order).
            let pos = key_columns.iter().position(|&k| k == i).expect("a key column");
            columns.push(Column::Key(pos));
        } else {
            columns.push(Column::Value(value_fields.len()));
            value_fields.push(f.as_ref().clone());
        }
    }
    if !prefix.is_empty() && !except_key {
        return Err(ConnectorError::at_option(
            "key.fields-prefix",
            "'key.fields-prefix' needs 'value.fields-include' = 'EXCEPT_KEY'",
        ));
    }
    // The key's own fields (decoded from or encoded into the message key), in key order.
    let key_schema = Arc::new(Schema::new(
        key_columns
            .iter()
            .map(|&i| {
                let f = schema.field(i);
                f.clone().with_name(f.name().strip_prefix(prefix.as_str()).unwrap_or(f.name()))
            })
            .collect::<Vec<_>>(),
    ));
    let key = match key_format {
        Some(fmt) if !key_columns.is_empty() => {
            Some((formats::parse(bag, Role::Key, &fmt, topic, &key_schema)?, key_schema.clone()))
        }
        _ => None,
    };
    let value_schema = Arc::new(Schema::new(value_fields));
    let value = (formats::parse(bag, Role::Value, &value_format, topic, &value_schema)?, value_schema);
    Ok(Layout { key, value, columns, key_columns })
}

fn bad_records(bag: &mut OptionBag) -> Result<BadRecords, ConnectorError> {
    let mode = bag.one_of("scan.bad-records", &["fail", "skip", "dead-letter"])?;
    let topic = bag.string("scan.bad-records.topic");
    match (mode, topic) {
        (Some("dead-letter"), Some(t)) | (None, Some(t)) => Ok(BadRecords::DeadLetter(t)),
        (Some("dead-letter"), None) => Err(ConnectorError::at_option(
            "scan.bad-records",
            "'dead-letter' needs 'scan.bad-records.topic' (the topic that receives bad records)",
        )),
        (Some(_), Some(_)) => Err(ConnectorError::at_option(
            "scan.bad-records.topic",
            "a dead-letter topic needs 'scan.bad-records' = 'dead-letter'",
        )),
        (Some("skip"), None) => Ok(BadRecords::Skip),
        _ => Ok(BadRecords::Fail),
    }
}

impl KafkaSourceConfig {
    pub fn from_spec(spec: &TableSpec) -> Result<Self, ConnectorError> {
        let upsert = spec.connector == "upsert-kafka";
        let mut bag = bag(spec);
        let client = client(&mut bag)?;
        let topics = match (bag.string("topic"), bag.string("topic-pattern")) {
            (Some(t), None) => Topics::List(split_list(&t)),
            (None, Some(p)) if !upsert => Topics::Pattern(p),
            (Some(_), Some(_)) => {
                return Err(ConnectorError::at_option(
                    "topic-pattern",
                    "set either 'topic' or 'topic-pattern', not both",
                ))
            }
            _ => {
                return Err(ConnectorError::new(format!(
                    "missing required option 'topic' for connector '{}'",
                    spec.connector
                )))
            }
        };
        if let Topics::Pattern(p) = &topics {
            whole_name_pattern(p)
                .map_err(|e| ConnectorError::at_option("topic-pattern", format!("not a regular expression: {e}")))?;
        }
        let first_topic = match &topics {
            Topics::List(l) => l.first().cloned().unwrap_or_default(),
            Topics::Pattern(_) => String::new(),
        };
        let layout = layout(&mut bag, spec, &first_topic, upsert, false)?;
        if upsert && layout.value.0.is_changelog() {
            return Err(ConnectorError::at_option(
                "value.format",
                format!(
                    "upsert-kafka turns keyed records into a changelog itself; '{}' cannot be its value format",
                    layout.value.0.name()
                ),
            ));
        }
        if client.properties.get("partition.assignment.strategy").is_some_and(|s| s.contains("cooperative")) {
            return Err(ConnectorError::at_option(
                "properties.partition.assignment.strategy",
                "cooperative rebalancing is not supported yet; use 'range' or 'roundrobin'",
            ));
        }
        let modes = &["earliest-offset", "latest-offset", "group-offsets", "timestamp", "specific-offsets"];
        let (startup, bounded) = if upsert {
            // upsert-kafka reads the whole changelog, as in Flink.
            (
                OffsetSpec::Earliest,
                offsets_spec(
                    &mut bag,
                    "scan.bounded",
                    &["unbounded", "latest-offset", "group-offsets", "timestamp", "specific-offsets"],
                    None,
                )?,
            )
        } else {
            let startup =
                offsets_spec(&mut bag, "scan.startup", modes, Some("group-offsets"))?.expect("a default mode");
            let bounded = offsets_spec(
                &mut bag,
                "scan.bounded",
                &["unbounded", "latest-offset", "group-offsets", "timestamp", "specific-offsets"],
                None,
            )?;
            (startup, bounded)
        };
        let group_offsets = matches!(startup, OffsetSpec::Group) || matches!(bounded, Some(OffsetSpec::Group));
        if group_offsets && client.group_id.is_none() {
            return Err(ConnectorError::at_option(
                "scan.startup.mode",
                "'group-offsets' (the default startup mode) needs 'properties.group.id'; or set 'scan.startup.mode' = 'earliest-offset'",
            ));
        }
        let discovery = match bag.string("scan.topic-partition-discovery.interval") {
            None => Some(Duration::from_secs(300)),
            Some(v) if v.eq_ignore_ascii_case("disabled") || v.trim() == "0" || v.trim() == "-1" => None,
            Some(v) => Some(sluice_common::options::parse_duration(&v).map_err(|m| {
                ConnectorError::at_option("scan.topic-partition-discovery.interval", format!("{m}, got '{v}'"))
            })?),
        };
        let mut bad_records = bad_records(&mut bag)?;
        if bad_records == BadRecords::Fail && layout.value.0.ignores_parse_errors() {
            bad_records = BadRecords::Skip;
        }
        bag.finish()?;
        Ok(KafkaSourceConfig {
            spec: Arc::new(spec.clone()),
            client,
            topics,
            layout,
            startup,
            bounded,
            discovery,
            bad_records,
            upsert,
        })
    }

    /// Partitions are assigned by Kafka's group protocol (several processes share the topic).
    pub fn group_managed(&self) -> bool {
        self.client.group_id.is_some()
            && self.bounded.is_none()
            && !self.upsert
            && matches!(self.startup, OffsetSpec::Earliest | OffsetSpec::Latest | OffsetSpec::Group)
    }
}

impl KafkaSinkConfig {
    pub fn from_spec(spec: &TableSpec) -> Result<Self, ConnectorError> {
        let upsert = spec.connector == "upsert-kafka";
        let mut bag = bag(spec);
        let client = client(&mut bag)?;
        let topic = bag.required_string("topic")?;
        if topic.contains(';') {
            return Err(ConnectorError::at_option("topic", "a sink writes to one topic"));
        }
        if bag.string("topic-pattern").is_some() {
            return Err(ConnectorError::at_option("topic-pattern", "a sink writes to one 'topic', not a pattern"));
        }
        let layout = layout(&mut bag, spec, &topic, upsert, true)?;
        if layout.value.0.is_changelog() {
            return Err(ConnectorError::at_option(
                "value.format",
                format!(
                    "'{}' can only be read so far; write updating results with 'upsert-kafka'",
                    layout.value.0.name()
                ),
            ));
        }
        let delivery = match bag.one_of("sink.delivery-guarantee", &["none", "at-least-once", "exactly-once"])? {
            Some("none") => Delivery::None,
            Some("exactly-once") => Delivery::ExactlyOnce,
            _ => Delivery::AtLeastOnce,
        };
        // Flink's older name.
        bag.string("sink.semantic");
        let transactional_id_prefix = bag.string("sink.transactional-id-prefix");
        if delivery == Delivery::ExactlyOnce && transactional_id_prefix.is_none() {
            return Err(ConnectorError::at_option(
                "sink.delivery-guarantee",
                "'exactly-once' needs 'sink.transactional-id-prefix' (unique per pipeline: it names the Kafka transactions)",
            ));
        }
        let partitioner = match bag.string("sink.partitioner").as_deref() {
            None | Some("default") => Partitioner::Default,
            Some("fixed") => Partitioner::Fixed,
            Some("round-robin") => Partitioner::RoundRobin,
            Some(other) => {
                return Err(ConnectorError::at_option(
                    "sink.partitioner",
                    format!("expected one of default, fixed, round-robin, got '{other}' (Java partitioner classes cannot be loaded)"),
                ))
            }
        };
        bag.string("sink.buffer-flush.max-rows");
        bag.string("sink.buffer-flush.interval");
        bag.finish()?;
        Ok(KafkaSinkConfig {
            spec: Arc::new(spec.clone()),
            client,
            topic,
            layout,
            delivery,
            transactional_id_prefix,
            partitioner,
            upsert,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_offsets_parse_as_in_flink() {
        let m = parse_specific_offsets("partition:0,offset:42;partition:1,offset:300").unwrap();
        assert_eq!(m.get(&0), Some(&42));
        assert_eq!(m.get(&1), Some(&300));
        assert!(parse_specific_offsets("partition:x,offset:1").is_err());
        assert!(parse_specific_offsets("0:42").is_err());
    }

    #[test]
    fn jaas_lines_give_username_and_password() {
        let jaas =
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="KEY" password='S3c;r"et';"#;
        assert_eq!(jaas_credentials(jaas), Some(("KEY".into(), "S3c;r\"et".into())));
        assert_eq!(jaas_credentials("nothing here"), None);
    }
}
