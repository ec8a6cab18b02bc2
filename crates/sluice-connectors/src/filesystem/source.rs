//! Filesystem source. The input (a file, or every visible file under a directory, in name order) is
//! cut into byte-range splits at line boundaries, spread over the subtasks, so one big file is read
//! in parallel. A line belongs to the split holding its first byte.
//!
//! Bad lines fail the pipeline with `FILE:LINE` and the reason, or with `json.ignore-parse-errors`
//! are skipped, counted and logged (first few) with the same place.

use super::{bag, path_and_format, METADATA_KEYS};
use crate::format::{JsonDecodeOptions, JsonLineDecoder};
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{Schema, SchemaRef};
use sluice_common::{ConnectorError, SluiceError, StreamBatch, TableSpec};
use sluice_runtime::checkpoint::{StateReader, StateWriter};
use sluice_runtime::{Source, SourceContext};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes read per call.
const READ_SIZE: usize = 4 << 20;
/// Splits are at least this big, so small inputs are not cut up.
const MIN_SPLIT: u64 = 8 << 20;
/// Longest line accepted (a file without newlines is not JSON lines; do not read it all into memory).
const MAX_LINE: usize = 64 << 20;
/// Skipped lines logged individually before only counting.
const LOGGED_SKIPS: u64 = 10;

#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    pub path: PathBuf,
    pub json: JsonDecodeOptions,
    /// Physical columns decoded from JSON (metadata columns excluded).
    pub physical: SchemaRef,
    /// The full connector schema (physical and metadata columns in declaration order).
    pub output: SchemaRef,
    /// For each output column: `None` for physical, `Some(key)` for metadata.
    pub columns: Vec<Option<String>>,
    /// The table, to keep `${VAR}` values out of logs.
    pub spec: Arc<TableSpec>,
}

impl FileSourceConfig {
    pub fn from_spec(spec: &TableSpec) -> Result<Self, ConnectorError> {
        let mut bag = bag(spec);
        let (path, json) = path_and_format(&mut bag)?;
        bag.finish()?;
        let mut physical = Vec::new();
        let mut columns = Vec::new();
        for f in spec.connector_schema.fields() {
            match spec.metadata_for(f.name()) {
                Some(m) => {
                    if !METADATA_KEYS.contains(&m.key.as_str()) {
                        return Err(ConnectorError::new(format!(
                            "unknown metadata key '{}' for column '{}' (filesystem provides: {})",
                            m.key,
                            f.name(),
                            METADATA_KEYS.join(", ")
                        )));
                    }
                    columns.push(Some(m.key.clone()));
                }
                None => {
                    physical.push(f.as_ref().clone());
                    columns.push(None);
                }
            }
        }
        Ok(FileSourceConfig {
            path: PathBuf::from(path),
            json,
            physical: Arc::new(Schema::new(physical)),
            output: spec.connector_schema.clone(),
            columns,
            spec: Arc::new(spec.clone()),
        })
    }
}

impl FileSourceConfig {
    /// Only the connector columns at `indices`, in that order (projection pushdown: fields that are
    /// not read are not decoded).
    pub fn project(self, indices: &[usize]) -> Result<Self, SluiceError> {
        let output = Arc::new(self.output.project(indices)?);
        let columns: Vec<Option<String>> = indices.iter().map(|&i| self.columns[i].clone()).collect();
        let physical = output
            .fields()
            .iter()
            .zip(&columns)
            .filter(|(_, c)| c.is_none())
            .map(|(f, _)| f.as_ref().clone())
            .collect::<Vec<_>>();
        Ok(FileSourceConfig { physical: Arc::new(Schema::new(physical)), output, columns, ..self })
    }
}

/// A byte range of one file, read by one subtask.
#[derive(Debug, Clone)]
pub struct Split {
    file: PathBuf,
    start: u64,
    end: u64,
    size: u64,
    modified_ms: i64,
}

fn list_files(path: &Path) -> Result<Vec<PathBuf>, SluiceError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| SluiceError::user(format!("cannot read '{}': {e}", path.display())).with_source(e))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| SluiceError::external(format!("cannot list '{}': {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| SluiceError::external(format!("cannot list '{}': {e}", dir.display())))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // Hidden and in-progress files are not input (Flink's convention).
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn splits(files: &[PathBuf], parallelism: usize) -> Result<Vec<Split>, SluiceError> {
    let mut metas = Vec::new();
    for f in files {
        let m =
            std::fs::metadata(f).map_err(|e| SluiceError::external(format!("cannot read '{}': {e}", f.display())))?;
        let modified_ms = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        metas.push((f.clone(), m.len(), modified_ms));
    }
    let total: u64 = metas.iter().map(|m| m.1).sum();
    let split_size = (total / parallelism.max(1) as u64 + 1).max(MIN_SPLIT);
    let mut out = Vec::new();
    for (file, size, modified_ms) in metas {
        let mut start = 0;
        loop {
            let end = (start + split_size).min(size);
            out.push(Split { file: file.clone(), start, end, size, modified_ms });
            if end >= size {
                break;
            }
            start = end;
        }
    }
    Ok(out)
}

/// Lists the input once and deals its splits round-robin to `parallelism` subtasks.
pub fn assign_splits(path: &Path, parallelism: usize) -> Result<Vec<Vec<Split>>, SluiceError> {
    let files = list_files(path)?;
    let mut out = vec![Vec::new(); parallelism.max(1)];
    for (i, split) in splits(&files, parallelism)?.into_iter().enumerate() {
        out[i % parallelism.max(1)].push(split);
    }
    Ok(out)
}

/// How far a subtask got in one of its splits (its checkpointed position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    NotStarted,
    /// Every line before byte `pos` (a line start) was emitted; `line` is its line number, if known.
    At {
        pos: u64,
        line: Option<u64>,
    },
    Done,
}

pub struct FileSource {
    config: FileSourceConfig,
    splits: Vec<Split>,
    progress: Vec<Progress>,
    decoder: JsonLineDecoder,
    batch_rows: usize,
}

impl FileSource {
    /// A subtask reading `splits`; `restored` is its [`Source::position`] from a checkpoint.
    pub fn new(
        config: FileSourceConfig,
        splits: Vec<Split>,
        restored: Option<&[u8]>,
        batch_rows: usize,
    ) -> Result<Self, SluiceError> {
        let decoder = JsonLineDecoder::new(config.physical.clone(), &config.json);
        let progress = match restored {
            None => vec![Progress::NotStarted; splits.len()],
            Some(bytes) => decode_progress(bytes, &splits)?,
        };
        Ok(FileSource { config, splits, progress, decoder, batch_rows: batch_rows.max(1) })
    }

    async fn read_split(&mut self, index: usize, ctx: &mut SourceContext) -> Result<(), SluiceError> {
        let split = self.splits[index].clone();
        let split = &split;
        let io_err = |e: std::io::Error| SluiceError::external(format!("reading '{}': {e}", split.file.display()));
        let mut file = File::open(&split.file).map_err(io_err)?;
        // Position at the first line that starts inside the split.
        let mut pos = split.start;
        let mut line_no: Option<u64> = (split.start == 0).then_some(1);
        if let Progress::At { pos: resume, line } = self.progress[index] {
            pos = resume;
            line_no = line;
            file.seek(SeekFrom::Start(pos)).map_err(io_err)?;
        } else if split.start > 0 {
            // Skip the rest of the line that started in the previous split.
            file.seek(SeekFrom::Start(split.start - 1)).map_err(io_err)?;
            let mut chunk = vec![0u8; 64 * 1024];
            let mut skipped = 0u64;
            loop {
                let n = file.read(&mut chunk).map_err(io_err)?;
                if n == 0 {
                    return Ok(());
                }
                if let Some(i) = memchr::memchr(b'\n', &chunk[..n]) {
                    skipped += i as u64 + 1;
                    break;
                }
                skipped += n as u64;
            }
            pos = split.start - 1 + skipped;
            file.seek(SeekFrom::Start(pos)).map_err(io_err)?;
            if pos >= split.end {
                return Ok(());
            }
        }
        // Line numbers are known from the start of the file; other splits count them on error.
        let mut buf: Vec<u8> = Vec::with_capacity(READ_SIZE * 2);
        let mut eof = false;
        let mut skipped_logged = 0u64;
        while !eof || !buf.is_empty() {
            if ctx.should_stop() {
                return Ok(());
            }
            if !eof && buf.len() < READ_SIZE {
                let old = buf.len();
                buf.resize(old + READ_SIZE, 0);
                let n = file.read(&mut buf[old..]).map_err(io_err)?;
                buf.truncate(old + n);
                if n == 0 {
                    eof = true;
                }
                continue;
            }
            // Collect whole lines that start inside the split.
            let mut lines = Vec::with_capacity(self.batch_rows);
            let mut offset = 0usize;
            let mut past_end = false;
            while lines.len() < self.batch_rows {
                if pos + offset as u64 >= split.end {
                    past_end = true;
                    break;
                }
                match memchr::memchr(b'\n', &buf[offset..]) {
                    Some(i) => {
                        let end = offset + i;
                        let end_trim = if end > offset && buf[end - 1] == b'\r' { end - 1 } else { end };
                        lines.push((offset, end_trim));
                        offset = end + 1;
                    }
                    None if eof => {
                        if offset < buf.len() {
                            lines.push((offset, buf.len()));
                            offset = buf.len();
                        }
                        break;
                    }
                    None => break,
                }
            }
            if lines.is_empty() && !past_end && !eof {
                if buf.len() >= MAX_LINE {
                    let line = match line_no {
                        Some(n) => n,
                        None => count_lines_before(&split.file, pos)? + 1,
                    };
                    return Err(SluiceError::user(format!(
                        "{}:{line}: line longer than {} MiB; is this a JSON-lines file?",
                        split.file.display(),
                        MAX_LINE >> 20
                    )));
                }
                // A line longer than the buffer: read more.
                let old = buf.len();
                buf.resize(old + READ_SIZE, 0);
                let n = file.read(&mut buf[old..]).map_err(io_err)?;
                buf.truncate(old + n);
                eof = n == 0;
                continue;
            }
            let (batch, bad) = self.decoder.decode_lines(&buf, &lines);
            if !bad.is_empty() {
                let first_line = match line_no {
                    Some(n) => n,
                    None => {
                        // Counted once per split; kept up to date from here on.
                        let n = count_lines_before(&split.file, pos)? + 1;
                        line_no = Some(n);
                        n
                    }
                };
                for b in &bad {
                    let place = format!("{}:{}", split.file.display(), first_line + b.index as u64);
                    if self.config.json.ignore_parse_errors {
                        if skipped_logged < LOGGED_SKIPS {
                            let place = self.config.spec.redact(&place);
                            tracing::warn!(place = %place, reason = %b.reason, "Skipping malformed JSON line");
                        }
                        skipped_logged += 1;
                    } else {
                        return Err(SluiceError::user(format!(
                            "{place}: malformed JSON line: {} (set 'json.ignore-parse-errors' = 'true' to skip such lines)",
                            b.reason
                        )));
                    }
                }
                ctx.metrics.add_skipped(bad.len());
            }
            if let Some(n) = line_no.as_mut() {
                *n += lines.len() as u64;
            }
            pos += offset as u64;
            buf.drain(..offset);
            if batch.num_rows() > 0 {
                let batch = self.with_metadata(batch, split)?;
                ctx.emit(StreamBatch::append_only(batch)).await?;
            }
            self.progress[index] = Progress::At { pos, line: line_no };
            ctx.checkpoint_point(|| encode_progress(&self.splits, &self.progress)).await?;
            if past_end || (eof && buf.is_empty()) {
                break;
            }
        }
        Ok(())
    }

    fn with_metadata(&self, physical: RecordBatch, split: &Split) -> Result<RecordBatch, SluiceError> {
        if self.config.columns.iter().all(|c| c.is_none()) {
            // Same columns; the output schema may differ in nullability only.
            return Ok(physical.with_schema(self.config.output.clone())?);
        }
        let n = physical.num_rows();
        let mut next_physical = 0;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.config.columns.len());
        for (i, c) in self.config.columns.iter().enumerate() {
            let array: ArrayRef = match c.as_deref() {
                None => {
                    next_physical += 1;
                    physical.column(next_physical - 1).clone()
                }
                Some("file.path") => Arc::new(StringArray::from(vec![split.file.display().to_string(); n])),
                Some("file.name") => Arc::new(StringArray::from(vec![
                    split
                        .file
                        .file_name()
                        .map(|s| s.to_string_lossy().to_string())
                        .unwrap_or_default();
                    n
                ])),
                Some("file.size") => Arc::new(Int64Array::from(vec![split.size as i64; n])),
                Some(_) => Arc::new(TimestampMillisecondArray::from(vec![split.modified_ms; n]).with_timezone("UTC")),
            };
            let want = self.config.output.field(i).data_type();
            let array = if array.data_type() == want { array } else { arrow::compute::cast(&array, want)? };
            columns.push(array);
        }
        Ok(RecordBatch::try_new(self.config.output.clone(), columns)?)
    }
}

fn count_lines_before(path: &Path, offset: u64) -> Result<u64, SluiceError> {
    let mut f = File::open(path).map_err(|e| SluiceError::external(format!("reading '{}': {e}", path.display())))?;
    let mut remaining = offset;
    let mut buf = vec![0u8; 1 << 20];
    let mut lines = 0;
    while remaining > 0 {
        let want = remaining.min(buf.len() as u64) as usize;
        let n = f
            .read(&mut buf[..want])
            .map_err(|e| SluiceError::external(format!("reading '{}': {e}", path.display())))?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&c| c == b'\n').count() as u64;
        remaining -= n as u64;
    }
    Ok(lines)
}

/// Position format: per split its file, range and [`Progress`]; checked against the splits of the
/// resumed run, so a changed input is an error rather than a silent skip or repeat.
fn encode_progress(splits: &[Split], progress: &[Progress]) -> Vec<u8> {
    let mut w = StateWriter::new();
    w.len(splits.len());
    for (s, p) in splits.iter().zip(progress) {
        w.str(&s.file.display().to_string());
        w.u64(s.start);
        w.u64(s.end);
        match p {
            Progress::NotStarted => w.u8(0),
            Progress::At { pos, line } => {
                w.u8(1);
                w.u64(*pos);
                w.i64(line.map_or(-1, |l| l as i64));
            }
            Progress::Done => w.u8(2),
        }
    }
    w.finish()
}

fn decode_progress(bytes: &[u8], splits: &[Split]) -> Result<Vec<Progress>, SluiceError> {
    let mut r = StateReader::new(bytes);
    let n = r.len()?;
    let changed = |what: String| {
        SluiceError::user(format!(
            "the input changed since the checkpoint ({what}); resume with the same files or run with --from-scratch"
        ))
    };
    if n != splits.len() {
        return Err(changed(format!("{n} byte ranges then, {} now", splits.len())));
    }
    let mut out = Vec::with_capacity(n);
    for s in splits {
        let (file, start, end) = (r.str()?.to_string(), r.u64()?, r.u64()?);
        if file != s.file.display().to_string() || start != s.start || end != s.end {
            return Err(changed(format!(
                "'{file}' bytes {start}..{end} then, '{}' bytes {}..{} now",
                s.file.display(),
                s.start,
                s.end
            )));
        }
        out.push(match r.u8()? {
            0 => Progress::NotStarted,
            1 => {
                let pos = r.u64()?;
                let line = r.i64()?;
                Progress::At { pos, line: (line >= 0).then_some(line as u64) }
            }
            _ => Progress::Done,
        });
    }
    r.finish()?;
    Ok(out)
}

#[async_trait::async_trait]
impl Source for FileSource {
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<(), SluiceError> {
        for index in 0..self.splits.len() {
            if self.progress[index] == Progress::Done {
                continue;
            }
            self.read_split(index, ctx).await?;
            if ctx.should_stop() {
                break;
            }
            self.progress[index] = Progress::Done;
            ctx.checkpoint_point(|| encode_progress(&self.splits, &self.progress)).await?;
        }
        Ok(())
    }

    fn position(&self) -> Vec<u8> {
        encode_progress(&self.splits, &self.progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(file: &str, start: u64, end: u64) -> Split {
        Split { file: PathBuf::from(file), start, end, size: end, modified_ms: 0 }
    }

    #[test]
    fn a_position_comes_back_and_a_changed_input_is_refused() {
        let splits = vec![split("/in/a.jsonl", 0, 100), split("/in/a.jsonl", 100, 180)];
        let progress = vec![Progress::Done, Progress::At { pos: 140, line: None }];
        let bytes = encode_progress(&splits, &progress);
        assert_eq!(decode_progress(&bytes, &splits).unwrap(), progress);
        // The file grew: its ranges differ, so resuming would skip or repeat lines.
        let grown = vec![split("/in/a.jsonl", 0, 100), split("/in/a.jsonl", 100, 220)];
        let err = decode_progress(&bytes, &grown).unwrap_err();
        assert!(err.message.contains("the input changed since the checkpoint"), "{}", err.message);
        assert!(decode_progress(&bytes, &splits[..1]).is_err(), "a file less");
        assert!(decode_progress(&bytes[..bytes.len() - 3], &splits).is_err(), "truncated");
    }
}
