//! sluice's connectors, one module each, and [`Connectors`]: the explicit registry that validates a
//! table's options for the planner ([`ConnectorCatalog`]) and builds sources and sinks for the runtime
//! ([`ConnectorRegistry`]).

pub mod datagen;
pub mod filesystem;
pub mod format;
pub mod kafka;
pub mod print;

use sluice_common::{ConnectorCatalog, ConnectorError, SinkCaps, SluiceError, SourceCaps, TableSpec};
use sluice_runtime::{ConnectorRegistry, Sink, SinkInit, Source, SourceInit};

/// Every connector sluice ships.
#[derive(Debug, Default, Clone, Copy)]
pub struct Connectors;

const NAMES: &[&str] = &["blackhole", "datagen", "filesystem", "kafka", "print", "upsert-kafka"];

fn only_sink(name: &str) -> ConnectorError {
    ConnectorError::at_option(
        "connector",
        format!("connector '{name}' can only be written to (it is a sink), not read"),
    )
}

fn unknown(name: &str) -> ConnectorError {
    let close = NAMES.iter().filter(|n| strsim::levenshtein(n, name) <= 2).min_by_key(|n| strsim::levenshtein(n, name));
    let hint = close.map(|c| format!("did you mean '{c}'? ")).unwrap_or_default();
    ConnectorError::new(format!("unknown connector '{name}' ({hint}known: {})", NAMES.join(", ")))
}

fn config_error(spec: &TableSpec, e: ConnectorError) -> SluiceError {
    SluiceError::user(format!("table '{}': {}", spec.name, spec.redact(&e.message)))
}

impl ConnectorCatalog for Connectors {
    fn connectors(&self) -> Vec<&'static str> {
        NAMES.to_vec()
    }

    fn check_source(&self, spec: &TableSpec) -> Result<SourceCaps, ConnectorError> {
        match spec.connector.as_str() {
            "filesystem" => {
                filesystem::FileSourceConfig::from_spec(spec)?;
                Ok(SourceCaps { bounded: true, changelog: false })
            }
            "datagen" => {
                let c = datagen::DatagenConfig::from_spec(spec)?;
                Ok(SourceCaps { bounded: c.number_of_rows.is_some(), changelog: false })
            }
            "kafka" | "upsert-kafka" => {
                let c = kafka::KafkaSourceConfig::from_spec(spec)?;
                Ok(SourceCaps { bounded: c.bounded.is_some(), changelog: c.upsert || c.layout.value.0.is_changelog() })
            }
            "print" | "blackhole" => Err(only_sink(&spec.connector)),
            other => Err(unknown(other)),
        }
    }

    fn check_sink(&self, spec: &TableSpec) -> Result<SinkCaps, ConnectorError> {
        match spec.connector.as_str() {
            "filesystem" => {
                filesystem::FileSinkConfig::from_spec(spec)?;
                Ok(SinkCaps { accepts_updates: false, exactly_once: true })
            }
            "kafka" | "upsert-kafka" => {
                let c = kafka::KafkaSinkConfig::from_spec(spec)?;
                Ok(SinkCaps {
                    accepts_updates: c.upsert,
                    exactly_once: c.delivery == kafka::config::Delivery::ExactlyOnce,
                })
            }
            "print" => {
                print::PrintConfig::from_spec(spec)?;
                // Rows are printed as they come: after a recovery, rows since the last checkpoint print again.
                Ok(SinkCaps { accepts_updates: true, exactly_once: false })
            }
            "blackhole" => {
                print::check_blackhole(spec)?;
                Ok(SinkCaps { accepts_updates: true, exactly_once: true })
            }
            "datagen" => Err(ConnectorError::at_option(
                "connector",
                "connector 'datagen' can only be read (it is a source), not written",
            )),
            other => Err(unknown(other)),
        }
    }
}

impl ConnectorRegistry for Connectors {
    fn create_sources(&self, spec: &TableSpec, init: &SourceInit) -> Result<Vec<Box<dyn Source>>, SluiceError> {
        let n = init.parallelism;
        match spec.connector.as_str() {
            "filesystem" => {
                let c = filesystem::FileSourceConfig::from_spec(spec).map_err(|e| config_error(spec, e))?;
                let c = match &init.projection {
                    Some(p) => c.project(p)?,
                    None => c,
                };
                let assignments = filesystem::assign_splits(&c.path, n)?;
                assignments
                    .into_iter()
                    .enumerate()
                    .map(|(s, splits)| {
                        let restored = init.restored.as_ref().map(|r| r[s].as_slice());
                        let source = filesystem::FileSource::new(c.clone(), splits, restored, init.batch_rows)?;
                        Ok(Box::new(source) as _)
                    })
                    .collect()
            }
            "datagen" => {
                let c = datagen::DatagenConfig::from_spec(spec).map_err(|e| config_error(spec, e))?;
                (0..n)
                    .map(|s| {
                        let restored = init.restored.as_ref().map(|r| r[s].as_slice());
                        let source =
                            datagen::DatagenSource::new(c.clone(), init.projection.clone(), restored, init.batch_rows)?;
                        Ok(Box::new(source) as _)
                    })
                    .collect()
            }
            "kafka" | "upsert-kafka" => {
                let c = kafka::KafkaSourceConfig::from_spec(spec).map_err(|e| config_error(spec, e))?;
                let sources = kafka::KafkaSource::create_all(
                    &c,
                    n,
                    init.projection.clone(),
                    init.restored.as_deref(),
                    init.batch_rows,
                )?;
                Ok(sources.into_iter().map(|s| Box::new(s) as _).collect())
            }
            other => Err(SluiceError::user(format!("connector '{other}' cannot be read"))),
        }
    }

    fn create_sink(&self, spec: &TableSpec, init: &SinkInit) -> Result<Box<dyn Sink>, SluiceError> {
        match spec.connector.as_str() {
            "filesystem" => {
                let c = filesystem::FileSinkConfig::from_spec(spec).map_err(|e| config_error(spec, e))?;
                Ok(Box::new(filesystem::FileSink::new(c, init)?))
            }
            "print" => {
                let c = print::PrintConfig::from_spec(spec).map_err(|e| config_error(spec, e))?;
                Ok(Box::new(print::PrintSink::new(c, init)))
            }
            "blackhole" => Ok(Box::new(print::BlackholeSink)),
            "kafka" | "upsert-kafka" => {
                let c = kafka::KafkaSinkConfig::from_spec(spec).map_err(|e| config_error(spec, e))?;
                Ok(Box::new(kafka::KafkaSink::new(c, init)?))
            }
            other => Err(SluiceError::user(format!("connector '{other}' cannot be written"))),
        }
    }
}
