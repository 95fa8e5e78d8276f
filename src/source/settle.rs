//! A file's side of the acknowledgement model: once every record of one of its chunks has an
//! outcome, the chunk is settled into the checkpoints, whose position for the file moves past
//! the longest prefix of settled chunks. A chunk with a record that failed (neither delivered
//! nor dead-lettered) never completes that prefix, so a later run reads it again.

use crate::ack::{Settle, Settled};
use crate::checkpoint::Checkpoints;
use crate::chunk::StreamPos;
use crate::common::InputId;
use std::sync::Arc;

/// Where one chunk of a file ends, for its checkpoint.
pub(crate) struct FileMark {
    pub checkpoints: Arc<Checkpoints>,
    pub input: InputId,
    /// The chunk's number among the file's chunks (0, 1, ...).
    pub seq: u64,
    /// Where the stream stands after the chunk.
    pub end: StreamPos,
    /// Records of the input up to and including the chunk.
    pub records: u64,
}

impl Settle for FileMark {
    fn settled(self: Box<Self>, settled: Settled) {
        let delivered = settled.tally.failed == 0;
        self.checkpoints
            .settled(self.input, self.seq, self.end, self.records, delivered);
    }
}
