//! The operator trait. An operator turns input batches into output batches; the runtime forwards
//! watermarks, barriers and end-of-stream after calling the matching hook, so stateless operators
//! implement only `process_batch`. Stateful operators also implement `snapshot` and `restore`
//! (checkpoints), writing their state with [`crate::checkpoint::StateWriter`].

use sluice_common::{SluiceError, StreamBatch, Watermark};

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

    /// A checkpoint barrier passed (every row before it was processed, none after): the state to
    /// keep, as bytes that [`Operator::restore`] reads back. `None`: the operator has no state. The
    /// operator must behave afterwards exactly as if it had not been called.
    fn snapshot(&mut self) -> Result<Option<Vec<u8>>, SluiceError> {
        Ok(None)
    }

    /// Called once, before any input, with what [`Operator::snapshot`] returned in the checkpoint
    /// being resumed.
    fn restore(&mut self, _state: &[u8]) -> Result<(), SluiceError> {
        Err(SluiceError::internal(format!("operator {} has no state to restore", self.name())))
    }

    /// All input ended: flush anything buffered.
    fn on_end(&mut self, _out: &mut Vec<StreamBatch>) -> Result<(), SluiceError> {
        Ok(())
    }
}
