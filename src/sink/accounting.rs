//! The accounting of outcomes: every record's outcome is counted (per input, for the summary
//! and the metrics) and told to its source through the record's chunk's acknowledgement token,
//! in one place, so that the counts and what sources are told cannot disagree.

use super::dlq::{DeadLetter, DeadRecord};
use crate::ack::Outcome;
use crate::chunk::RawChunk;
use crate::common::printable;
use crate::metrics::Stats;
use crate::transform::EncodedChunk;
use serde_json::Value;
use std::sync::atomic::Ordering::Relaxed;

/// Shared state every stage uses to account for records.
#[derive(Debug)]
pub struct Accounting {
    /// Counters.
    pub stats: std::sync::Arc<Stats>,
    /// Dead letter queue.
    pub dlq: DeadLetter,
}

impl Accounting {
    /// Record `line` (an index into the chunk's lines) of `raw` has `outcome`; `answer` gives
    /// the status and error a source answering per record passes on (asked only then).
    pub fn resolve(
        &self,
        raw: &RawChunk,
        line: usize,
        outcome: Outcome,
        answer: impl FnOnce() -> (u16, Option<Value>),
    ) {
        let counters = self.stats.input(raw.input);
        let counter = match outcome {
            Outcome::Indexed => &counters.indexed,
            Outcome::Duplicate => &counters.duplicates,
            Outcome::DeadLettered => &counters.dead_lettered,
            Outcome::Failed => &counters.failed,
        };
        counter.fetch_add(1, Relaxed);
        raw.ack.resolve(line, outcome, answer);
    }

    /// Dead-letters record `line` of `raw`: dead-lettered, or failed when even the dead letter
    /// file cannot be written.
    pub fn dead_letter(
        &self,
        raw: &RawChunk,
        line: usize,
        reason: &str,
        status: Option<u16>,
        error: Option<&Value>,
    ) {
        let number = raw.lines[line].number;
        let rec = DeadRecord {
            reason,
            status,
            error,
            input: &raw.origin,
            line: number,
            record: raw.line(line),
        };
        let outcome = match self.dlq.write(&rec) {
            Ok(()) => Outcome::DeadLettered,
            Err(e) => {
                tracing::error!(
                    "{}: line {number}: could not write to the dead letter file {}: {e}; record not delivered ({reason})",
                    raw.origin,
                    self.dlq.path().display()
                );
                Outcome::Failed
            }
        };
        self.resolve(raw, line, outcome, || {
            let error = error.cloned().unwrap_or_else(
                || serde_json::json!({"type": "evtship_rejected", "reason": reason}),
            );
            (status.unwrap_or(400), Some(error))
        });
    }

    /// Dead-letters the records of a chunk that are not JSON objects, with a warning naming each.
    pub fn reject_unparsable(&self, chunk: &EncodedChunk) {
        for r in &chunk.rejected {
            let number = chunk.raw.lines[r.line].number;
            tracing::warn!(
                "{}: line {number}: {}; sent to the dead letter queue",
                printable(&chunk.raw.origin),
                printable(&r.reason)
            );
            self.dead_letter(&chunk.raw, r.line, &r.reason, None, None);
        }
    }
}
