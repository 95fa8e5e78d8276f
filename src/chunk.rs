//! The unit that flows from a source to the sink: a chunk of consecutive records of one stream,
//! with where it came from and the acknowledgement token its source gave it.

use crate::ack::Ack;
use crate::common::{Charge, InputId};
use std::io;
use std::ops::Range;
use std::sync::Arc;

/// Gather this many bytes of lines into one chunk.
pub const CHUNK_BYTES: usize = 256 << 10;
/// Gather at most this many lines into one chunk.
pub const CHUNK_LINES: usize = 4096;

/// One line of input: its number in its stream (1-based) and its bytes in the chunk buffer,
/// line end removed.
#[derive(Debug, Clone)]
pub struct RawLine {
    /// Line number within its stream (file or archive member), counting blank lines.
    pub number: u64,
    /// Position of the line's bytes in [`RawChunk::buf`].
    pub range: Range<usize>,
    /// `Some(length)` when the line was longer than the decode stage's limit: only its first
    /// bytes are in `range`, and the record is dead-lettered as too long.
    pub cut: Option<u64>,
}

/// A position in a stream: lines and bytes consumed so far (blank lines included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamPos {
    /// Lines consumed; the next line is `line + 1`.
    pub line: u64,
    /// Bytes consumed.
    pub offset: u64,
}

/// Consecutive records of one stream.
#[derive(Debug)]
pub struct RawChunk {
    /// Which input they came from.
    pub input: InputId,
    /// The stream's name: a file path, or `archive!member`.
    pub origin: Arc<str>,
    /// The records' bytes.
    pub buf: Vec<u8>,
    /// The records.
    pub lines: Vec<RawLine>,
    /// Where the stream stands after this chunk.
    pub end: StreamPos,
    /// Position among all chunks the run read, in reading order (file outputs keep it).
    pub order: u64,
    /// What the source does once every record has an outcome (given at hand-over).
    pub ack: Ack,
    /// Whether a record's place in its stream is part of its identity (files: two
    /// byte-identical lines are two events), or only its content is (records pushed by a
    /// sender, which may send them again in other windows or requests).
    pub identity: Identity,
    /// Where each record asked to go (one per line, or none): a `_bulk` client's action.
    pub routes: Vec<Route>,
    /// The bytes of the listeners' memory budget its records hold, given back once the chunk
    /// is settled and dropped.
    pub charge: Option<Charge>,
}

/// What makes the id of a record without a Windows record identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Identity {
    /// Its bytes and its line number in its stream.
    #[default]
    Position,
    /// Its bytes alone.
    Content,
}

/// Where a record asked to go: the action a `_bulk` client gave it, or the id of a document
/// evtship's Kafka output wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// The index it named, when the pipeline lets clients name it.
    pub index: Option<String>,
    /// The id it named.
    pub id: Option<String>,
    /// `index` (create or overwrite) rather than `create` (the default: a record present is
    /// a duplicate).
    pub overwrite: bool,
    /// The record is a final document already (from evtship's Kafka output): it is indexed
    /// as it is, under `id`, not transformed again.
    pub verbatim: bool,
}

impl RawChunk {
    /// An empty chunk for records of `origin`.
    pub fn new(input: InputId, origin: &Arc<str>) -> Self {
        let mut chunk = Self::growing(input, origin);
        chunk.buf.reserve(CHUNK_BYTES + 16 * 1024);
        chunk.lines.reserve(256);
        chunk
    }

    /// An empty chunk that allocates only as records come (a listener's, whose memory is
    /// charged to the budget by what it holds).
    pub fn growing(input: InputId, origin: &Arc<str>) -> Self {
        Self {
            input,
            origin: origin.clone(),
            buf: Vec::new(),
            lines: Vec::new(),
            end: StreamPos::default(),
            order: 0,
            ack: Ack::default(),
            identity: Identity::Position,
            routes: Vec::new(),
            charge: None,
        }
    }

    /// Bytes of memory its records take: their bytes and their line entries.
    pub fn held_bytes(&self) -> usize {
        self.buf.capacity() + self.lines.capacity() * std::mem::size_of::<RawLine>()
    }

    /// The route of line `i`, when records carry routes.
    pub fn route(&self, i: usize) -> Option<&Route> {
        self.routes.get(i)
    }

    /// Appends one record given as a whole (not read from lines), numbered `number`.
    pub fn push_record(&mut self, number: u64, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        write(&mut self.buf);
        self.lines.push(RawLine {
            number,
            range: start..self.buf.len(),
            cut: None,
        });
    }

    /// Whether the chunk is big enough to hand over.
    pub fn is_full(&self) -> bool {
        self.buf.len() >= CHUNK_BYTES || self.lines.len() >= CHUNK_LINES
    }

    /// The bytes of line `i` of this chunk.
    pub fn line(&self, i: usize) -> &[u8] {
        &self.buf[self.lines[i].range.clone()]
    }
}

/// A read error inside a stream, with the position reached.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: line {line}: {source}")]
pub struct StreamError {
    /// The stream.
    pub origin: Arc<str>,
    /// The line that could not be read completely.
    pub line: u64,
    /// The cause.
    pub source: io::Error,
}

/// What the consumer of a chunk said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The chunk was taken: go on reading.
    Continue,
    /// The chunk was not taken, and no more are wanted: the pipeline is shutting down.
    Stop,
}

/// What one stream gave.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamTotals {
    /// Non-empty lines.
    pub records: u64,
    /// Bytes read, line ends included.
    pub bytes: u64,
    /// Where the stream ended.
    pub end: StreamPos,
}

/// Something wrong in a stream, reported by whoever reads it to the source, which counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamProblem {
    /// Part of the input could not be read: records were lost (an input error).
    Lost(String),
    /// Nothing was lost (a warning).
    Harmless(String),
}
