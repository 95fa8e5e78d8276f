//! Where sources that are sent to (listeners, and the spool that reads for some of them) put
//! what they receive: the pipeline's queue of raw chunks, with the run's counters.

use crate::chunk::RawChunk;
use crate::metrics::Stats;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Where listeners put what they receive: the pipeline's queue of raw chunks.
#[derive(Clone)]
pub struct Intake {
    /// The queue.
    pub tx: flume::Sender<RawChunk>,
    /// The run's counters.
    pub stats: Arc<Stats>,
    /// The next chunk's place in reading order (shared with every source).
    pub order: Arc<AtomicU64>,
    /// Set once the run is stopping.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

impl Intake {
    /// Sends a chunk into the pipeline, waiting while its queues are full (the backpressure
    /// that stops a listener reading); `false` when the pipeline takes no more.
    pub async fn send(&self, mut chunk: RawChunk) -> bool {
        let (n, bytes) = (chunk.lines.len() as u64, chunk.buf.len() as u64);
        let counters = self.stats.input(chunk.input);
        chunk.order = self.order.fetch_add(1, Relaxed);
        counters.read.fetch_add(n, Relaxed);
        if self.tx.send_async(chunk).await.is_ok() {
            counters.bytes.fetch_add(bytes, Relaxed);
            true
        } else {
            counters.read.fetch_sub(n, Relaxed);
            false
        }
    }

    /// [`Intake::send`] from a thread that is not async (the spool's reader).
    pub fn send_blocking(&self, mut chunk: RawChunk) -> bool {
        let (n, bytes) = (chunk.lines.len() as u64, chunk.buf.len() as u64);
        let counters = self.stats.input(chunk.input);
        chunk.order = self.order.fetch_add(1, Relaxed);
        counters.read.fetch_add(n, Relaxed);
        if self.tx.send(chunk).is_ok() {
            counters.bytes.fetch_add(bytes, Relaxed);
            true
        } else {
            counters.read.fetch_sub(n, Relaxed);
            false
        }
    }

    /// Sends a chunk into the pipeline if its queues take it within `patience`; a sender that
    /// can be told to come back (HTTP: 429) is told so rather than held.
    pub async fn send_within(&self, mut chunk: RawChunk, patience: Duration) -> Result<(), Busy> {
        let (n, bytes) = (chunk.lines.len() as u64, chunk.buf.len() as u64);
        let counters = self.stats.input(chunk.input);
        let deadline = tokio::time::Instant::now() + patience;
        chunk.order = self.order.fetch_add(1, Relaxed);
        loop {
            counters.read.fetch_add(n, Relaxed);
            match self.tx.try_send(chunk) {
                Ok(()) => {
                    counters.bytes.fetch_add(bytes, Relaxed);
                    return Ok(());
                }
                Err(e) => {
                    counters.read.fetch_sub(n, Relaxed);
                    match e {
                        flume::TrySendError::Disconnected(_) => return Err(Busy::Closed),
                        flume::TrySendError::Full(back) => chunk = back,
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Busy::Full);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the run is stopping.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waits until the run is stopping.
    pub async fn stopped(&mut self) {
        while !*self.stop.borrow_and_update() {
            if self.stop.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Why a chunk was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The pipeline's queues stayed full.
    Full,
    /// The pipeline takes nothing more (the run is ending).
    Closed,
}

impl Busy {
    /// The refusal's cause, for the counters.
    pub fn cause(self) -> &'static str {
        match self {
            Self::Full => "queues_full",
            Self::Closed => "stopping",
        }
    }
}
