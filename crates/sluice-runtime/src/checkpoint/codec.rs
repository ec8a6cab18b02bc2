//! The byte format of one piece of checkpointed state (an operator's state, a source position, a
//! sink's pending commits): a flat little-endian stream of integers and length-prefixed byte strings,
//! with Arrow data (accumulator states, buffered rows) embedded as Arrow IPC streams.
//!
//! The writer and the reader are used in the same order by each operator's `snapshot` and `restore`;
//! the reader fails with "truncated" or "corrupt" instead of panicking on bad input. Integrity of a
//! whole file (length, CRC32) is checked by the store before a reader sees it.

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::ScalarValue;
use sluice_common::SluiceError;
use std::sync::Arc;

fn corrupt(what: impl std::fmt::Display) -> SluiceError {
    SluiceError::internal(format!("checkpoint state is corrupt: {what}"))
}

/// Builds the bytes of one piece of state.
#[derive(Debug, Default)]
pub struct StateWriter {
    buf: Vec<u8>,
}

impl StateWriter {
    pub fn new() -> Self {
        StateWriter { buf: Vec::new() }
    }

    /// A writer expecting about `bytes` of state (saves regrowing a large buffer).
    pub fn with_capacity(bytes: usize) -> Self {
        StateWriter { buf: Vec::with_capacity(bytes) }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&mut self, v: usize) {
        self.u64(v as u64);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Batches of one schema, as one Arrow IPC stream.
    pub fn batches(&mut self, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<(), SluiceError> {
        let mut ipc = Vec::new();
        {
            let mut w = StreamWriter::try_new(&mut ipc, schema)
                .map_err(|e| SluiceError::internal(format!("writing state: {e}")))?;
            for b in batches {
                w.write(b).map_err(|e| SluiceError::internal(format!("writing state: {e}")))?;
            }
            w.finish().map_err(|e| SluiceError::internal(format!("writing state: {e}")))?;
        }
        self.bytes(&ipc);
        Ok(())
    }

    /// Columns of equal length and any types (accumulator states), with their row count.
    pub fn arrays(&mut self, rows: usize, arrays: &[ArrayRef]) -> Result<(), SluiceError> {
        self.len(rows);
        self.len(arrays.len());
        if arrays.is_empty() {
            return Ok(());
        }
        let fields: Vec<Field> =
            arrays.iter().enumerate().map(|(i, a)| Field::new(format!("c{i}"), a.data_type().clone(), true)).collect();
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new_with_options(
            schema.clone(),
            arrays.to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| SluiceError::internal(format!("writing state: {e}")))?;
        self.batches(&schema, &[batch])
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads what a [`StateWriter`] wrote, in the same order.
#[derive(Debug)]
pub struct StateReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> StateReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        StateReader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SluiceError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| {
            corrupt(format!("truncated: wanted {n} bytes at offset {} of {}", self.pos, self.buf.len()))
        })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, SluiceError> {
        Ok(self.take(1)?[0])
    }
    pub fn bool(&mut self) -> Result<bool, SluiceError> {
        Ok(self.u8()? != 0)
    }
    pub fn u64(&mut self) -> Result<u64, SluiceError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    pub fn i64(&mut self) -> Result<i64, SluiceError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    /// A length or count; bounded by the bytes left so a corrupt value cannot allocate wildly.
    #[allow(clippy::len_without_is_empty)] // reads a length; not a container
    pub fn len(&mut self) -> Result<usize, SluiceError> {
        let v = self.u64()?;
        if v > self.buf.len() as u64 * 8 + 1024 {
            return Err(corrupt(format!("implausible length {v}")));
        }
        Ok(v as usize)
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], SluiceError> {
        let n = self.len()?;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<&'a str, SluiceError> {
        std::str::from_utf8(self.bytes()?).map_err(corrupt)
    }

    pub fn batches(&mut self) -> Result<(SchemaRef, Vec<RecordBatch>), SluiceError> {
        let ipc = self.bytes()?;
        let reader = StreamReader::try_new(std::io::Cursor::new(ipc), None).map_err(corrupt)?;
        let schema = reader.schema();
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(corrupt)?;
        Ok((schema, batches))
    }

    /// What [`StateWriter::arrays`] wrote: the row count and the columns.
    pub fn arrays(&mut self) -> Result<(usize, Vec<ArrayRef>), SluiceError> {
        let rows = self.len()?;
        let n = self.len()?;
        if n == 0 {
            return Ok((rows, Vec::new()));
        }
        let (_, batches) = self.batches()?;
        let batch = match batches.as_slice() {
            [b] => b.clone(),
            _ => return Err(corrupt("expected one batch of columns")),
        };
        if batch.num_columns() != n || batch.num_rows() != rows {
            return Err(corrupt("column count or row count differs"));
        }
        Ok((rows, batch.columns().to_vec()))
    }

    /// Fails unless every byte was read (a format mismatch shows up here).
    pub fn finish(self) -> Result<(), SluiceError> {
        if self.pos != self.buf.len() {
            return Err(corrupt(format!("{} bytes left over", self.buf.len() - self.pos)));
        }
        Ok(())
    }
}

/// Column-wise collection of scalar values (accumulator states taken one group at a time), turned
/// into arrays for [`StateWriter::arrays`].
#[derive(Debug, Default)]
pub struct ScalarColumns {
    columns: Vec<Vec<ScalarValue>>,
    rows: usize,
}

impl ScalarColumns {
    pub fn push_row(&mut self, values: impl IntoIterator<Item = ScalarValue>) -> Result<(), SluiceError> {
        let mut n = 0;
        for (i, v) in values.into_iter().enumerate() {
            if self.columns.len() <= i {
                if self.rows > 0 {
                    return Err(SluiceError::internal("state rows of different widths"));
                }
                self.columns.push(Vec::new());
            }
            self.columns[i].push(v);
            n += 1;
        }
        if n != self.columns.len() {
            return Err(SluiceError::internal("state rows of different widths"));
        }
        self.rows += 1;
        Ok(())
    }

    pub fn write(self, w: &mut StateWriter) -> Result<(), SluiceError> {
        let arrays = self
            .columns
            .into_iter()
            .map(ScalarValue::iter_to_array)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SluiceError::internal(format!("writing state: {e}")))?;
        w.arrays(self.rows, &arrays)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array, StringArray};

    #[test]
    fn values_and_arrays_come_back_in_order() {
        let mut w = StateWriter::new();
        w.u64(7);
        w.i64(-3);
        w.bytes(b"key");
        w.bool(true);
        let a: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]));
        let b: ArrayRef = Arc::new(StringArray::from(vec!["x", "y", "z"]));
        w.arrays(3, &[a.clone(), b.clone()]).unwrap();
        w.arrays(5, &[]).unwrap();
        let bytes = w.finish();
        let mut r = StateReader::new(&bytes);
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(r.i64().unwrap(), -3);
        assert_eq!(r.bytes().unwrap(), b"key");
        assert!(r.bool().unwrap());
        let (rows, arrays) = r.arrays().unwrap();
        assert_eq!(rows, 3);
        assert_eq!(arrays[0].as_ref(), a.as_ref() as &dyn Array);
        assert_eq!(arrays[1].as_ref(), b.as_ref() as &dyn Array);
        assert_eq!(r.arrays().unwrap().0, 5);
        r.finish().unwrap();
    }

    #[test]
    fn truncated_state_is_an_error_not_a_panic() {
        let mut w = StateWriter::new();
        w.bytes(&[1, 2, 3, 4, 5]);
        let a: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        w.arrays(3, &[a]).unwrap();
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            let mut r = StateReader::new(&bytes[..cut]);
            let ok = r.bytes().is_ok() && r.arrays().is_ok();
            assert!(!ok, "reading {cut} of {} bytes must fail", bytes.len());
        }
    }
}
