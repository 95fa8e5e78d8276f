//! Counters kept while a pipeline runs ([`Stats`]), of listeners ([`listeners`]), and the
//! summary printed at its end ([`summary`]).

mod bulk;
mod engine;
mod kafka;
mod listeners;
mod summary;

pub use bulk::{BulkCounters, BulkSummary, ConcurrencySummary};
pub use engine::EngineState;
pub use kafka::{KafkaCounters, KafkaSummary, PartitionSummary};
pub use listeners::{ListenerCounters, ListenerSummary};
pub use summary::{InputSummary, Summary};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub use crate::common::InputId;

/// Counters of one input file.
#[derive(Debug, Default)]
pub struct InputCounters {
    /// Non-empty lines (records) read.
    pub read: AtomicU64,
    /// Decoded bytes read (after decompression), line ends included.
    pub bytes: AtomicU64,
    /// Documents the engine created (or the file output wrote).
    pub indexed: AtomicU64,
    /// Documents the engine already had (409 on create).
    pub duplicates: AtomicU64,
    /// Records written to the dead letter queue.
    pub dead_lettered: AtomicU64,
    /// Records neither delivered nor dead-lettered.
    pub failed: AtomicU64,
    /// Parts of the input that could not be read (truncated archive, I/O error).
    pub errors: AtomicU64,
    /// Size of the file on disk (compressed, for archives); 0 when unknown (standard input).
    pub size: AtomicU64,
    /// How far into the file on disk the reader is, in bytes (for progress).
    pub position: AtomicU64,
}

/// Counters of a whole run.
#[derive(Debug)]
pub struct Stats {
    inputs: RwLock<Vec<(String, Arc<InputCounters>)>>,
    /// Requests or items sent again after a retryable failure.
    pub retries: AtomicU64,
    /// Warnings about the input that lost nothing (e.g. stray bytes after a gzip stream).
    pub warnings: AtomicU64,
    /// Records lost to damage in the disk spool (frames the spool's reader had to skip).
    pub spool_lost: AtomicU64,
    /// Retries by cause (`connection`, `request_429`, `item_503`, ...).
    retry_causes: Mutex<BTreeMap<String, u64>>,
    /// Seconds each `_bulk` request took, answer read (exported as a histogram).
    pub bulk_latency: Histogram,
    /// `_bulk` requests sent and not answered yet.
    pub bulk_in_flight: AtomicU64,
    /// `_bulk` requests in a row that found no engine (0 after any answer); for health.
    pub engine_failures: AtomicU64,
    listeners: RwLock<Vec<(String, Arc<ListenerCounters>)>>,
    /// The Kafka consumer's commits, rebalances and offsets.
    pub kafka: KafkaCounters,
    /// The `_bulk` requests: bytes before and after compression, concurrency.
    pub bulk: BulkCounters,
    /// When the engine first answered.
    pub engine: EngineState,
    started: Instant,
}

impl Stats {
    /// Counters for the given inputs, named by `labels`.
    pub fn new(labels: Vec<String>) -> Self {
        let inputs = labels
            .into_iter()
            .map(|l| (l, Arc::new(InputCounters::default())))
            .collect();
        Self {
            inputs: RwLock::new(inputs),
            retries: AtomicU64::new(0),
            warnings: AtomicU64::new(0),
            spool_lost: AtomicU64::new(0),
            retry_causes: Mutex::new(BTreeMap::new()),
            bulk_latency: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            bulk_in_flight: AtomicU64::new(0),
            engine_failures: AtomicU64::new(0),
            listeners: RwLock::new(Vec::new()),
            kafka: KafkaCounters::default(),
            bulk: BulkCounters::default(),
            engine: EngineState::default(),
            started: Instant::now(),
        }
    }

    /// Counts `n` records or requests sent again because of `cause`.
    pub fn retried(&self, cause: &str, n: u64) {
        self.retries.fetch_add(n, Relaxed);
        *self
            .retry_causes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(cause.to_owned())
            .or_default() += n;
    }

    /// Retries so far by cause.
    pub fn retry_causes(&self) -> BTreeMap<String, u64> {
        self.retry_causes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Labels, sizes and positions of every input, for progress display.
    pub fn positions(&self) -> Vec<(String, u64, u64)> {
        self.inputs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(l, c)| (l.clone(), c.size.load(Relaxed), c.position.load(Relaxed)))
            .collect()
    }

    /// The counters of one input.
    pub fn input(&self, id: InputId) -> Arc<InputCounters> {
        self.inputs.read().unwrap_or_else(|e| e.into_inner())[id]
            .1
            .clone()
    }

    /// The name of input `id`.
    pub fn input_label(&self, id: InputId) -> String {
        self.inputs.read().unwrap_or_else(|e| e.into_inner())[id]
            .0
            .clone()
    }

    /// Adds an input found while the run goes on (tail mode) and returns its id.
    pub fn add_input(&self, label: String) -> InputId {
        let mut inputs = self.inputs.write().unwrap_or_else(|e| e.into_inner());
        inputs.push((label, Arc::new(InputCounters::default())));
        inputs.len() - 1
    }

    /// The counters of the listener named `label` (made on first use).
    pub fn listener(&self, label: &str) -> Arc<ListenerCounters> {
        let mut all = self.listeners.write().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = all.iter().find(|(l, _)| l == label) {
            return c.clone();
        }
        let c = Arc::new(ListenerCounters::default());
        all.push((label.to_owned(), c.clone()));
        c
    }

    /// Every listener's counters now.
    pub fn listener_summaries(&self) -> Vec<ListenerSummary> {
        self.listeners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(l, c)| c.summary(l))
            .collect()
    }

    /// When the run started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// After an abort, every record read without an outcome counts as failed.
    pub fn mark_unsettled_as_failed(&self) {
        for (id, i) in self.summary().inputs.iter().enumerate() {
            let settled = i.events_indexed + i.duplicates + i.dead_lettered + i.failed;
            if i.events_read > settled {
                self.input(id)
                    .failed
                    .fetch_add(i.events_read - settled, Relaxed);
            }
        }
    }

    /// A consistent-enough snapshot of every counter.
    pub fn summary(&self) -> Summary {
        let inputs: Vec<InputSummary> = self
            .inputs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(label, c)| {
                let mut i = InputSummary {
                    input: label.clone(),
                    events_read: c.read.load(Relaxed),
                    events_indexed: c.indexed.load(Relaxed),
                    duplicates: c.duplicates.load(Relaxed),
                    dead_lettered: c.dead_lettered.load(Relaxed),
                    failed: c.failed.load(Relaxed),
                    unsettled: 0,
                    bytes_read: c.bytes.load(Relaxed),
                    input_errors: c.errors.load(Relaxed),
                };
                let settled = i.events_indexed + i.duplicates + i.dead_lettered + i.failed;
                i.unsettled = i.events_read.saturating_sub(settled);
                i
            })
            .collect();
        let sum = |f: fn(&InputSummary) -> u64| inputs.iter().map(f).sum::<u64>();
        let elapsed = self.elapsed().as_secs_f64();
        let events_read = sum(|i| i.events_read);
        let bytes_read = sum(|i| i.bytes_read);
        Summary {
            events_read,
            events_indexed: sum(|i| i.events_indexed),
            duplicates: sum(|i| i.duplicates),
            dead_lettered: sum(|i| i.dead_lettered),
            failed: sum(|i| i.failed),
            unsettled: sum(|i| i.unsettled),
            interrupted: false,
            bytes_read,
            input_errors: sum(|i| i.input_errors),
            warnings: self.warnings.load(Relaxed),
            spool_lost: self.spool_lost.load(Relaxed),
            retries: self.retries.load(Relaxed),
            elapsed_seconds: (elapsed * 1000.0).round() / 1000.0,
            events_per_second: rate(events_read as f64, elapsed),
            megabytes_per_second: rate(bytes_read as f64 / 1e6, elapsed),
            output: String::new(),
            dead_letter_path: None,
            inputs,
            listeners: self.listener_summaries(),
            kafka: self.kafka.summary(),
            bulk: self.bulk.summary(),
            engine_reached_after_seconds: self
                .engine
                .reached_after()
                .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
        }
    }
}

fn rate(amount: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        (amount / seconds * 10.0).round() / 10.0
    } else {
        0.0
    }
}
