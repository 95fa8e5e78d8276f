//! The acknowledgement model: one way for every kind of source to learn what became of its
//! records.
//!
//! Every batch of records ([`crate::chunk::RawChunk`]) carries an [`Ack`] from its source to
//! the sink. The sink reports one [`Outcome`] per record; when the last record of a batch has
//! one, the batch is settled and its source's [`Settle`] is told, once, with the counts (and,
//! when the source asks for them, each record's answer). Each kind of source acts on that in
//! its own terms:
//!
//! ```text
//! file   -> its checkpoint advances past the longest settled prefix of its batches
//! beats  -> a window's ACK is sent once all of its events are settled
//! http   -> the response is sent once the request's records are settled (per item for _bulk)
//! spool  -> settled records leave the disk spool
//! kafka  -> a partition's offset is stored past the longest settled prefix
//! ```
//!
//! A batch dropped before it settles (the run aborted) never calls its `Settle`: nothing is
//! acknowledged to a sender and no position moves. [`InOrder`] turns batches settled in any
//! order into the longest settled prefix, which files, windows and partitions all need.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The engine created the document (or a file output wrote it).
    Indexed,
    /// The engine already had it (409 on create): delivered before.
    Duplicate,
    /// Written to the dead letter file with the reason.
    DeadLettered,
    /// Neither delivered nor dead-lettered (the dead letter file could not be written, or the
    /// run gave up on it).
    Failed,
}

impl Outcome {
    /// Whether the record is safely somewhere: in the index or in the dead letter file.
    pub fn is_settled_safely(self) -> bool {
        !matches!(self, Self::Failed)
    }
}

/// One record's answer from the engine, for sources that answer their client per record
/// (`/_bulk`).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemAnswer {
    /// What became of the record.
    pub outcome: Outcome,
    /// The HTTP status the engine gave the item (201, 409, 400, ...), or the one evtship
    /// stands for (400 for a line that is no JSON object, 429 when it gave up retrying).
    pub status: u16,
    /// The engine's error object, when it gave one.
    pub error: Option<Value>,
}

/// Records of a batch by outcome.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Documents created.
    pub indexed: u64,
    /// Documents already present.
    pub duplicates: u64,
    /// Records dead-lettered.
    pub dead_lettered: u64,
    /// Records neither delivered nor dead-lettered.
    pub failed: u64,
}

impl Tally {
    /// Records counted.
    pub fn total(&self) -> u64 {
        self.indexed + self.duplicates + self.dead_lettered + self.failed
    }
}

/// What a source is told when every record of a batch has an outcome.
#[derive(Debug, Clone)]
pub struct Settled {
    /// The records by outcome.
    pub tally: Tally,
    /// Each record's answer, in the batch's order, when the source asked for them
    /// ([`Settle::wants_answers`]).
    pub answers: Option<Vec<ItemAnswer>>,
}

/// A source's way of acting once every record of one of its batches has an outcome.
pub trait Settle: Send + Sync {
    /// Called once, when the last record of the batch has its outcome.
    fn settled(self: Box<Self>, settled: Settled);

    /// Whether the source needs each record's answer (status and error), not only counts.
    fn wants_answers(&self) -> bool {
        false
    }
}

/// The acknowledgement token of one batch of records.
pub struct Ack {
    pending: AtomicUsize,
    counts: [AtomicU64; 4],
    answers: Option<Mutex<Vec<Option<ItemAnswer>>>>,
    settle: Mutex<Option<Box<dyn Settle>>>,
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for Ack {
    fn default() -> Self {
        Self::new(0, None)
    }
}

impl Ack {
    /// A token for `records` records, telling `settle` (if any) when all have an outcome.
    /// A batch of no records is settled at once.
    pub fn new(records: usize, settle: Option<Box<dyn Settle>>) -> Self {
        let answers = settle
            .as_ref()
            .filter(|s| s.wants_answers())
            .map(|_| Mutex::new(vec![None; records]));
        let ack = Self {
            pending: AtomicUsize::new(records),
            counts: Default::default(),
            answers,
            settle: Mutex::new(settle),
        };
        if records == 0 {
            ack.finish();
        }
        ack
    }

    /// Whether each record's answer is wanted (so the caller builds [`ItemAnswer`]s).
    pub fn wants_answers(&self) -> bool {
        self.answers.is_some()
    }

    /// Record `i` of the batch has `outcome`; `answer` gives the engine's status and error,
    /// asked only when the source wants them. The last outcome settles the batch.
    pub fn resolve(
        &self,
        i: usize,
        outcome: Outcome,
        answer: impl FnOnce() -> (u16, Option<Value>),
    ) {
        let slot = match outcome {
            Outcome::Indexed => 0,
            Outcome::Duplicate => 1,
            Outcome::DeadLettered => 2,
            Outcome::Failed => 3,
        };
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        if let Some(answers) = &self.answers {
            let (status, error) = answer();
            let mut answers = answers.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(a) = answers.get_mut(i) {
                *a = Some(ItemAnswer {
                    outcome,
                    status,
                    error,
                });
            }
        }
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.finish();
        }
    }

    /// Records still without an outcome.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    fn finish(&self) {
        let Some(settle) = self.settle.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let count = |i: usize| self.counts[i].load(Ordering::Relaxed);
        let tally = Tally {
            indexed: count(0),
            duplicates: count(1),
            dead_lettered: count(2),
            failed: count(3),
        };
        let answers = self.answers.as_ref().map(|a| {
            std::mem::take(&mut *a.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .map(|a| {
                    a.unwrap_or(ItemAnswer {
                        outcome: Outcome::Failed,
                        status: 500,
                        error: None,
                    })
                })
                .collect()
        });
        settle.settled(Settled { tally, answers });
    }
}

/// One acknowledgement over several batches: a source that hands one unit (a Beats window)
/// over in parts as it arrives, so that no unit is held whole in memory, learns once, when the
/// unit is closed and every part of it is settled, with the counts of all of them. A joint
/// dropped without [`Joint::close`] (its connection died) never settles. Parts give counts
/// only, not per-record answers.
pub struct Joint {
    inner: std::sync::Arc<JointInner>,
}

struct JointInner {
    /// Parts not settled yet, plus one until the unit is closed.
    open: AtomicUsize,
    tally: Mutex<Tally>,
    settle: Mutex<Option<Box<dyn Settle>>>,
}

impl JointInner {
    fn release(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            let settle = self.settle.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(settle) = settle {
                let tally = *self.tally.lock().unwrap_or_else(|e| e.into_inner());
                settle.settled(Settled {
                    tally,
                    answers: None,
                });
            }
        }
    }
}

struct Part(std::sync::Arc<JointInner>);

impl Settle for Part {
    fn settled(self: Box<Self>, settled: Settled) {
        {
            let mut t = self.0.tally.lock().unwrap_or_else(|e| e.into_inner());
            t.indexed += settled.tally.indexed;
            t.duplicates += settled.tally.duplicates;
            t.dead_lettered += settled.tally.dead_lettered;
            t.failed += settled.tally.failed;
        }
        self.0.release();
    }
}

impl Joint {
    /// A unit that tells `settle` once it is closed and all of its parts are settled.
    pub fn new(settle: Box<dyn Settle>) -> Self {
        Self {
            inner: std::sync::Arc::new(JointInner {
                open: AtomicUsize::new(1),
                tally: Mutex::new(Tally::default()),
                settle: Mutex::new(Some(settle)),
            }),
        }
    }

    /// The token of the next part, of `records` records.
    pub fn part(&self, records: usize) -> Ack {
        self.inner.open.fetch_add(1, Ordering::AcqRel);
        Ack::new(records, Some(Box::new(Part(self.inner.clone()))))
    }

    /// No more parts: the unit settles when the last part does (at once if all have).
    pub fn close(self) {
        self.inner.release();
    }
}

/// Batches numbered 0, 1, 2, ... that settle in any order, given back as the longest settled
/// prefix: a file's checkpoint, a connection's windows and a partition's offsets all move
/// only past it.
#[derive(Debug)]
pub struct InOrder<T> {
    next: u64,
    waiting: BTreeMap<u64, T>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        Self {
            next: 0,
            waiting: BTreeMap::new(),
        }
    }
}

impl<T> InOrder<T> {
    /// Batch `seq` settled with `mark`; returns the marks of the batches that now extend the
    /// settled prefix, in order (none while an earlier batch is unsettled).
    pub fn settle(&mut self, seq: u64, mark: T) -> Vec<T> {
        self.waiting.insert(seq, mark);
        let mut done = Vec::new();
        while let Some(m) = self.waiting.remove(&self.next) {
            self.next += 1;
            done.push(m);
        }
        done
    }

    /// How many batches the settled prefix holds.
    pub fn settled(&self) -> u64 {
        self.next
    }

    /// Batches settled beyond the prefix, waiting for an earlier one.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Record(Arc<Mutex<Vec<Settled>>>, bool);

    impl Settle for Record {
        fn settled(self: Box<Self>, settled: Settled) {
            self.0.lock().unwrap().push(settled);
        }
        fn wants_answers(&self) -> bool {
            self.1
        }
    }

    #[test]
    fn a_batch_settles_once_when_its_last_record_has_an_outcome() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ack = Ack::new(3, Some(Box::new(Record(seen.clone(), true))));
        ack.resolve(2, Outcome::Duplicate, || (409, None));
        ack.resolve(0, Outcome::Indexed, || (201, None));
        assert!(seen.lock().unwrap().is_empty());
        ack.resolve(1, Outcome::DeadLettered, || (400, Some(Value::from("x"))));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0].tally,
            Tally {
                indexed: 1,
                duplicates: 1,
                dead_lettered: 1,
                failed: 0
            }
        );
        let statuses: Vec<u16> = seen[0]
            .answers
            .as_ref()
            .unwrap()
            .iter()
            .map(|a| a.status)
            .collect();
        assert_eq!(statuses, vec![201, 400, 409]);
    }

    #[test]
    fn a_joint_settles_once_closed_and_every_part_settled() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let joint = Joint::new(Box::new(Record(seen.clone(), false)));
        let a = joint.part(2);
        let b = joint.part(1);
        a.resolve(0, Outcome::Indexed, || (201, None));
        a.resolve(1, Outcome::Duplicate, || (409, None));
        b.resolve(0, Outcome::Indexed, || (201, None));
        assert!(seen.lock().unwrap().is_empty(), "not closed yet");
        let c = joint.part(1);
        joint.close();
        assert!(seen.lock().unwrap().is_empty(), "a part is open");
        c.resolve(0, Outcome::Failed, || (500, None));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0].tally,
            Tally {
                indexed: 2,
                duplicates: 1,
                dead_lettered: 0,
                failed: 1
            }
        );
    }

    #[test]
    fn a_joint_dropped_unclosed_never_settles() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let joint = Joint::new(Box::new(Record(seen.clone(), false)));
        let a = joint.part(1);
        drop(joint);
        a.resolve(0, Outcome::Indexed, || (201, None));
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn answers_are_built_only_when_wanted_and_empty_batches_settle_at_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let ack = Ack::new(1, Some(Box::new(Record(seen.clone(), false))));
        ack.resolve(0, Outcome::Indexed, || panic!("not wanted"));
        assert!(seen.lock().unwrap()[0].answers.is_none());
        let _empty = Ack::new(0, Some(Box::new(Record(seen.clone(), false))));
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[test]
    fn the_settled_prefix_grows_only_over_contiguous_batches() {
        let mut order = InOrder::default();
        assert!(order.settle(1, "b").is_empty());
        assert!(order.settle(3, "d").is_empty());
        assert_eq!(order.settle(0, "a"), vec!["a", "b"]);
        assert_eq!(order.settled(), 2);
        assert_eq!(order.waiting(), 1);
        assert_eq!(order.settle(2, "c"), vec!["c", "d"]);
    }
}
