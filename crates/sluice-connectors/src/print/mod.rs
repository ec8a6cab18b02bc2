//! `'connector' = 'print'` writes every row to stdout (or stderr) as Flink does:
//! `[identifier[:subtask]> ]+I[v1, v2]`; and `'connector' = 'blackhole'` discards rows (benchmarks).

use crate::format::text::rows_text;
use sluice_common::{ConnectorError, OptionBag, SluiceError, StreamBatch, TableSpec};
use sluice_runtime::{Sink, SinkInit};
use std::io::Write;

#[derive(Debug, Clone, Default)]
pub struct PrintConfig {
    pub identifier: Option<String>,
    pub standard_error: bool,
}

impl PrintConfig {
    pub fn from_spec(spec: &TableSpec) -> Result<Self, ConnectorError> {
        let mut bag = OptionBag::new(&spec.connector, spec.options.clone());
        let identifier = bag.string("print-identifier");
        let standard_error = bag.bool("standard-error")?.unwrap_or(false);
        bag.ignore("sink.parallelism");
        bag.finish()?;
        Ok(PrintConfig { identifier, standard_error })
    }
}

pub struct PrintSink {
    config: PrintConfig,
    prefix: String,
    buf: String,
}

impl PrintSink {
    pub fn new(config: PrintConfig, init: &SinkInit) -> Self {
        let prefix = match (&config.identifier, init.parallelism > 1) {
            (Some(id), true) => format!("{id}:{}> ", init.subtask + 1),
            (Some(id), false) => format!("{id}> "),
            (None, true) => format!("{}> ", init.subtask + 1),
            (None, false) => String::new(),
        };
        PrintSink { config, prefix, buf: String::new() }
    }
}

#[async_trait::async_trait]
impl Sink for PrintSink {
    async fn write_batch(&mut self, batch: StreamBatch) -> Result<(), SluiceError> {
        self.buf.clear();
        rows_text(&batch, &self.prefix, &mut self.buf);
        let result = if self.config.standard_error {
            std::io::stderr().lock().write_all(self.buf.as_bytes())
        } else {
            std::io::stdout().lock().write_all(self.buf.as_bytes())
        };
        result.map_err(|e| SluiceError::external(format!("print: cannot write: {e}")))
    }

    async fn finish(&mut self) -> Result<(), SluiceError> {
        let _ = std::io::stdout().flush();
        Ok(())
    }
}

pub struct BlackholeSink;

pub fn check_blackhole(spec: &TableSpec) -> Result<(), ConnectorError> {
    let mut bag = OptionBag::new(&spec.connector, spec.options.clone());
    bag.ignore("sink.parallelism");
    bag.finish()?;
    Ok(())
}

#[async_trait::async_trait]
impl Sink for BlackholeSink {
    async fn write_batch(&mut self, _batch: StreamBatch) -> Result<(), SluiceError> {
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), SluiceError> {
        Ok(())
    }
}
