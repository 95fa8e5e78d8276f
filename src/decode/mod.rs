//! Bytes to records: NDJSON framing ([`lines`]) and `.evtx` records ([`evtx`]).
//!
//! Sources find and open inputs and know where each stream stands; they hand every stream to
//! a [`Decoder`] (through [`crate::source::Decode`]), which turns its bytes into chunks of
//! records. A source never frames records itself, and this stage never opens a file by name
//! but an `.evtx` one, which needs random access.

pub mod evtx;
mod evtx_check;
pub mod lines;

pub use crate::chunk::{Flow, RawChunk, StreamPos};
pub use evtx::EvtxShape;
pub use lines::{read_lines, read_lines_limited, MAX_LINE_BYTES};

use crate::chunk::{StreamError, StreamProblem, StreamTotals};
use crate::common::InputId;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

/// The settings of the decode stage (the `[decode]` section).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeSettings {
    /// Longest line kept whole (`"16MiB"` by default); a longer one is dead-lettered as too
    /// long, its first bytes kept, and never held in memory whole.
    pub max_line_bytes: crate::common::ByteSize,
}

impl Default for DecodeSettings {
    fn default() -> Self {
        Self {
            max_line_bytes: crate::common::ByteSize(MAX_LINE_BYTES),
        }
    }
}

impl DecodeSettings {
    /// Checks the bounds: the error names the setting and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let n = self.max_line_bytes.0;
        if !(1024..=1 << 30).contains(&n) {
            return Err((
                "decode.max_line_bytes",
                format!("{n} bytes is not between 1KiB and 1GiB"),
            ));
        }
        Ok(())
    }
}

/// The decode stage as the readers use it.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    /// Its settings.
    pub settings: DecodeSettings,
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
        let max = self.settings.max_line_bytes.0;
        read_lines_limited(reader, input, origin, start, max, emit)
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
