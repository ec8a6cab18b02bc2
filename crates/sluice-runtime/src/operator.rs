//! The operator trait. An operator turns input batches into output batches; the runtime forwards
//! watermarks, barriers and end-of-stream after calling the matching hook, so stateless operators
//! implement only `process_batch`.

use sluice_common::{Barrier, SluiceError, StreamBatch, Watermark};

pub trait Operator: Send {
    /// A short name for errors and logs, e.g. `GroupAggregate`.
    fn name(&self) -> &str;

    fn process_batch(&mut self, batch: StreamBatch, out: &mut Vec<StreamBatch>) -> Result<(), SluiceError>;

    /// A batch from input `input` of an operator with several inputs (joins); input 0 goes to
    /// [`Operator::process_batch`].
    fn process_input(
        &mut self,
        input: usize,
        batch: StreamBatch,
        out: &mut Vec<StreamBatch>,
    ) -> Result<(), SluiceError> {
        let _ = input;
        self.process_batch(batch, out)
    }

    /// Event time advanced: emit what it completes (windows, joins). Called before the watermark is forwarded.
    fn on_watermark(&mut self, _watermark: Watermark, _out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        Ok(())
    }

    /// A checkpoint barrier passed: the checkpoint issue snapshots declared state here.
    fn on_barrier(&mut self, _barrier: Barrier) -> Result<(), SluiceError> {
        Ok(())
    }

    /// All input ended: flush anything buffered.
    fn on_end(&mut self, _out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        Ok(())
    }
}
