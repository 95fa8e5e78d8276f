//! Bytes to records: NDJSON framing ([`lines`]) and `.evtx` records ([`evtx`]).
//!
//! Sources find and open inputs and know where each stream stands; they hand every stream to
//! a [`Decoder`] (through [`crate::source::Decode`]), which turns its bytes into chunks of
//! records. A source never frames records itself, and this stage never opens a file by name
//! but an `.evtx` one, which needs random access.

pub mod evtx;
pub mod lines;

pub use crate::chunk::{Flow, RawChunk, StreamPos};
pub use evtx::EvtxShape;
pub use lines::read_lines;

use crate::chunk::{StreamError, StreamProblem, StreamTotals};
use crate::common::InputId;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

/// The decode stage as the readers use it.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    /// Threads for `.evtx` chunk parsing.
    pub threads: usize,
    /// The shape `.evtx` records are handed over in.
    pub evtx_shape: EvtxShape,
}

impl crate::source::Decode for Decoder {
    fn lines(
        &self,
        reader: &mut dyn BufRead,
        input: InputId,
        origin: &Arc<str>,
        start: StreamPos,
        emit: &mut dyn FnMut(RawChunk) -> Flow,
    ) -> Result<(StreamTotals, Flow), StreamError> {
        read_lines(reader, input, origin, start, emit)
    }

    fn evtx(
        &self,
        path: &Path,
        input: InputId,
        origin: &Arc<str>,
        emit: &mut dyn FnMut(RawChunk) -> Flow,
        problem: &mut dyn FnMut(StreamProblem),
    ) -> Flow {
        evtx::read(
            path,
            input,
            origin,
            self.threads,
            self.evtx_shape,
            emit,
            problem,
        )
    }
}
