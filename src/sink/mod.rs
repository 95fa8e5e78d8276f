//! Where documents go: Elasticsearch/OpenSearch, or a file of documents or `_bulk` bodies; and
//! the dead letter queue for what cannot go anywhere.

pub mod dlq;
pub mod elasticsearch;
pub mod file;
pub mod rate;

use crate::checkpoint::Checkpoints;
use crate::metrics::Stats;
use crate::transform::EncodedChunk;
use dlq::{DeadLetter, DeadRecord};
use serde_json::Value;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};

/// Shared state every stage uses to account for records.
#[derive(Debug)]
pub struct Accounting {
    /// Counters.
    pub stats: Stats,
    /// Dead letter queue.
    pub dlq: DeadLetter,
    /// Checkpoints, when the run keeps them.
    pub checkpoints: Option<Checkpoints>,
}

impl Accounting {
    /// `n` more documents of `chunk` have an outcome; when none is left, the chunk is settled
    /// and its input's checkpoint may move past it. Call with `n = 0` for a chunk without
    /// documents.
    pub fn outcome(&self, chunk: &EncodedChunk, n: usize) {
        if chunk.pending.fetch_sub(n, AcqRel) == n {
            if let Some(cp) = &self.checkpoints {
                let raw = &chunk.raw;
                cp.settled(raw.input, raw.seq, raw.end, raw.records_end);
            }
        }
    }

    /// Dead-letters document `line` (an index into the chunk's lines) of `chunk`, counting it as
    /// dead-lettered, or as failed when even the dead letter file cannot be written.
    pub fn dead_letter(
        &self,
        chunk: &EncodedChunk,
        line: usize,
        reason: &str,
        status: Option<u16>,
        error: Option<&Value>,
    ) {
        let raw = &chunk.raw;
        let counters = self.stats.input(raw.input);
        let number = raw.lines[line].number;
        let rec = DeadRecord {
            reason,
            status,
            error,
            input: &raw.origin,
            line: number,
            record: raw.line(line),
        };
        match self.dlq.write(&rec) {
            Ok(()) => {
                counters.dead_lettered.fetch_add(1, Relaxed);
            }
            Err(e) => {
                counters.failed.fetch_add(1, Relaxed);
                tracing::error!(
                    "{}: line {number}: could not write to the dead letter file {}: {e}; record lost ({reason})",
                    raw.origin,
                    self.dlq.path().display()
                );
            }
        }
    }

    /// Dead-letters the records of a chunk that are not JSON objects, with a warning naming each.
    pub fn reject_unparsable(&self, chunk: &EncodedChunk) {
        for r in &chunk.rejected {
            let number = chunk.raw.lines[r.line].number;
            tracing::warn!(
                "{}: line {number}: {}; sent to the dead letter queue",
                chunk.raw.origin,
                r.reason
            );
            self.dead_letter(chunk, r.line, &r.reason, None, None);
        }
    }
}
