//! Where the reader stands in one input, and the hand-over of its chunks: numbered for the
//! checkpoint, with records acknowledged before skipped, the shard applied, and each chunk's
//! acknowledgement token attached.

use super::settle::FileMark;
use super::{Decode, Shard};
use crate::ack::{Ack, Settle};
use crate::checkpoint::Checkpoints;
use crate::chunk::{Flow, RawChunk, StreamPos, StreamProblem};
use crate::common::{printable, InputId};
use crate::metrics::{InputCounters, Stats};
use std::cell::Cell;
use std::io::{self, BufRead, Read, Seek};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// A file whose reads and seeks move its input's [`InputCounters::position`] (progress).
pub(crate) struct Counted<R> {
    inner: R,
    at: u64,
    counters: Arc<InputCounters>,
}

impl<R> Counted<R> {
    pub(crate) fn new(inner: R, counters: Arc<InputCounters>) -> Self {
        counters.position.store(0, Relaxed);
        Self {
            inner,
            at: 0,
            counters,
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.at += n as u64;
        self.counters.position.store(self.at, Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counted<R> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.at = self.inner.seek(pos)?;
        self.counters.position.store(self.at, Relaxed);
        Ok(self.at)
    }
}

/// Where the reader stands in one input: chunks handed over, records passed, records still to
/// skip (when resuming an input that cannot be sought), errors met.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cursor {
    pub seq: u64,
    pub records: u64,
    pub skip: u64,
    pub errors: u64,
}

/// One input being read: its counters, its cursor, and what its chunks are handed to.
pub(crate) struct StreamContext<'a> {
    pub input: InputId,
    pub stats: &'a Stats,
    pub counters: Arc<InputCounters>,
    pub decode: &'a dyn Decode,
    pub cursor: Cell<Cursor>,
    /// Where the input's positions are kept; its chunks then settle into them.
    pub checkpoints: Option<Arc<Checkpoints>>,
    /// Whether an archive inside an archive is being read (one level is).
    pub nested: Cell<bool>,
    shard: Option<Shard>,
}

impl<'a> StreamContext<'a> {
    pub fn new(input: InputId, stats: &'a Stats, decode: &'a dyn Decode) -> Self {
        Self::with_cursor(input, stats, decode, Cursor::default())
    }

    pub fn with_cursor(
        input: InputId,
        stats: &'a Stats,
        decode: &'a dyn Decode,
        cursor: Cursor,
    ) -> Self {
        Self {
            input,
            stats,
            counters: stats.input(input),
            decode,
            cursor: Cell::new(cursor),
            checkpoints: None,
            nested: Cell::new(false),
            shard: None,
        }
    }

    pub fn sharded(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Chunks of this input settle into `checkpoints` (positions of registered inputs).
    pub fn settling_into(mut self, checkpoints: Option<Arc<Checkpoints>>) -> Self {
        self.checkpoints = checkpoints;
        self
    }

    /// Hands a chunk over, numbering it for checkpoints, dropping records to skip and records
    /// of other shares, and attaching its acknowledgement token.
    pub fn hand_over(&self, mut chunk: RawChunk, emit: &mut dyn FnMut(RawChunk) -> Flow) -> Flow {
        let mut c = self.cursor.get();
        let n = chunk.lines.len() as u64;
        if c.skip > 0 {
            let k = c.skip.min(n);
            chunk.lines.drain(..k as usize);
            c.skip -= k;
        }
        c.records += n;
        if let Some(shard) = self.shard {
            chunk.lines.retain(|l| shard.takes(l.number));
        }
        if chunk.lines.is_empty() {
            self.cursor.set(c);
            return Flow::Continue;
        }
        let settle = self.checkpoints.as_ref().map(|cp| {
            Box::new(FileMark {
                checkpoints: cp.clone(),
                input: self.input,
                seq: c.seq,
                end: chunk.end,
                records: c.records,
            }) as Box<dyn Settle>
        });
        chunk.ack = Ack::new(chunk.lines.len(), settle);
        // Counted as read before it goes (its outcomes may come at once), and uncounted if it
        // was not taken: what the summary calls read is what entered the pipeline.
        let taken = chunk.lines.len() as u64;
        self.counters.read.fetch_add(taken, Relaxed);
        let flow = emit(chunk);
        if flow == Flow::Stop {
            self.counters.read.fetch_sub(taken, Relaxed);
        } else {
            c.seq += 1;
        }
        self.cursor.set(c);
        flow
    }

    /// Reads NDJSON lines from one stream, starting at `start`, counting what was read.
    pub fn lines(
        &self,
        reader: &mut dyn BufRead,
        origin: &Arc<str>,
        start: StreamPos,
        emit: &mut dyn FnMut(RawChunk) -> Flow,
    ) -> Flow {
        self.lines_to(reader, origin, start, emit).0
    }

    /// Like [`Self::lines`], also returning where the stream ended.
    pub fn lines_to(
        &self,
        reader: &mut dyn BufRead,
        origin: &Arc<str>,
        start: StreamPos,
        emit: &mut dyn FnMut(RawChunk) -> Flow,
    ) -> (Flow, Option<StreamPos>) {
        let mut hand_over = |chunk: RawChunk| self.hand_over(chunk, emit);
        match self
            .decode
            .lines(reader, self.input, origin, start, &mut hand_over)
        {
            Ok((totals, flow)) => {
                self.counters.bytes.fetch_add(totals.bytes, Relaxed);
                (flow, Some(totals.end))
            }
            Err(e) => {
                self.error(&format!("{e}; the rest of this stream is skipped"));
                (Flow::Continue, None)
            }
        }
    }

    /// A problem reported while reading.
    pub fn problem(&self, p: StreamProblem) {
        match p {
            StreamProblem::Lost(m) => self.error(&m),
            StreamProblem::Harmless(m) => self.warn(&m),
        }
    }

    /// A problem that lost nothing.
    pub fn warn(&self, message: &str) {
        self.stats.warnings.fetch_add(1, Relaxed);
        tracing::warn!("{}", printable(message));
    }

    /// A part of the input that could not be read.
    pub fn error(&self, message: &str) {
        let mut c = self.cursor.get();
        c.errors += 1;
        self.cursor.set(c);
        self.counters.errors.fetch_add(1, Relaxed);
        tracing::error!("{}", printable(message));
    }
}
