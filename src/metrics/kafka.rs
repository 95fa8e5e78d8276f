//! Counters of a Kafka consumer: commits, rebalances, and each partition's end and committed
//! offsets (its lag).

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// A partition's offsets as last seen.
#[derive(Debug, Clone, Copy, Default)]
struct Offsets {
    end: i64,
    committed: i64,
}

/// Counters of the run's Kafka consumer.
#[derive(Debug, Default)]
pub struct KafkaCounters {
    /// Whether the run consumes from Kafka.
    pub active: AtomicBool,
    /// Offset commits that succeeded.
    pub commits: AtomicU64,
    /// Offset commits that failed.
    pub commit_failures: AtomicU64,
    /// Partitions assigned or revoked (rebalances seen).
    pub rebalances: AtomicU64,
    partitions: Mutex<BTreeMap<(String, i32), Offsets>>,
}

impl KafkaCounters {
    /// A partition's end offset (its high watermark).
    pub fn set_end(&self, topic: &str, partition: i32, end: i64) {
        self.with(topic, partition, |o| o.end = end);
    }

    /// A partition's committed offset (the next record the group reads).
    pub fn set_committed(&self, topic: &str, partition: i32, committed: i64) {
        self.with(topic, partition, |o| o.committed = committed.max(0));
    }

    fn with(&self, topic: &str, partition: i32, f: impl FnOnce(&mut Offsets)) {
        let mut all = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        f(all.entry((topic.to_owned(), partition)).or_default());
    }

    /// The figures now, `None` when the run does not consume from Kafka.
    pub fn summary(&self) -> Option<KafkaSummary> {
        if !self.active.load(Relaxed) {
            return None;
        }
        let all = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        Some(KafkaSummary {
            commits: self.commits.load(Relaxed),
            commit_failures: self.commit_failures.load(Relaxed),
            rebalances: self.rebalances.load(Relaxed),
            partitions: all
                .iter()
                .map(|((topic, partition), o)| PartitionSummary {
                    topic: topic.clone(),
                    partition: *partition,
                    end_offset: o.end,
                    committed: o.committed,
                    lag: (o.end - o.committed).max(0),
                })
                .collect(),
        })
    }
}

/// The Kafka part of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct KafkaSummary {
    /// Offset commits that succeeded.
    pub commits: u64,
    /// Offset commits that failed.
    pub commit_failures: u64,
    /// Rebalances seen (assignments and revocations).
    pub rebalances: u64,
    /// Each partition's offsets.
    pub partitions: Vec<PartitionSummary>,
}

/// One partition's offsets.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionSummary {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Its end offset (high watermark) when last seen.
    pub end_offset: i64,
    /// The group's committed offset when last seen.
    pub committed: i64,
    /// What the group has still to read.
    pub lag: i64,
}

impl KafkaSummary {
    /// The summary's line for Kafka.
    pub fn write_line(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let lag: i64 = self.partitions.iter().map(|p| p.lag).sum();
        writeln!(
            out,
            "kafka: {} partitions, lag {lag}, {} commits ({} failed), {} rebalances",
            self.partitions.len(),
            self.commits,
            self.commit_failures,
            self.rebalances
        )
    }
}
