//! Counters of the `_bulk` requests: how many, their bytes before and after compression, and
//! the concurrency they were sent at.

use serde::Serialize;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Counters of the requests to the engine.
#[derive(Debug, Default)]
pub struct BulkCounters {
    /// `_bulk` requests sent (retries included).
    pub requests: AtomicU64,
    /// Bytes of their bodies before compression.
    pub body_bytes: AtomicU64,
    /// Bytes of their bodies as sent.
    pub wire_bytes: AtomicU64,
    /// gzip level of the bodies (0: off).
    pub compression_level: AtomicU64,
    /// Whether the concurrency is adaptive.
    pub adaptive: AtomicBool,
    /// The concurrency limit now.
    pub limit: AtomicU64,
    /// The lowest it was.
    pub lowest: AtomicU64,
    /// The highest it was.
    pub highest: AtomicU64,
}

impl BulkCounters {
    /// One request sent: its body's size before and after compression.
    pub fn sent(&self, body: usize, wire: usize) {
        self.requests.fetch_add(1, Relaxed);
        self.body_bytes.fetch_add(body as u64, Relaxed);
        self.wire_bytes.fetch_add(wire as u64, Relaxed);
    }

    /// The concurrency limit now, and the lowest and highest it was.
    pub fn set_limit(&self, last: usize, lowest: usize, highest: usize) {
        self.limit.store(last as u64, Relaxed);
        self.lowest.store(lowest as u64, Relaxed);
        self.highest.store(highest as u64, Relaxed);
    }

    /// The figures, `None` when no request was sent.
    pub fn summary(&self) -> Option<BulkSummary> {
        let requests = self.requests.load(Relaxed);
        if requests == 0 {
            return None;
        }
        let body_bytes = self.body_bytes.load(Relaxed);
        let wire_bytes = self.wire_bytes.load(Relaxed);
        Some(BulkSummary {
            requests,
            body_bytes,
            wire_bytes,
            wire_ratio: (wire_bytes as f64 / body_bytes.max(1) as f64 * 1e4).round() / 1e4,
            compression_level: self.compression_level.load(Relaxed),
            concurrency: ConcurrencySummary {
                mode: if self.adaptive.load(Relaxed) {
                    "adaptive"
                } else {
                    "fixed"
                },
                last: self.limit.load(Relaxed),
                lowest: self.lowest.load(Relaxed),
                highest: self.highest.load(Relaxed),
            },
        })
    }
}

/// The `bulk` part of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct BulkSummary {
    /// `_bulk` requests sent, retries included.
    pub requests: u64,
    /// Bytes of their bodies before compression.
    pub body_bytes: u64,
    /// Bytes of their bodies on the wire.
    pub wire_bytes: u64,
    /// `wire_bytes / body_bytes`.
    pub wire_ratio: f64,
    /// gzip level (0: off).
    pub compression_level: u64,
    /// Requests in flight.
    pub concurrency: ConcurrencySummary,
}

impl BulkSummary {
    /// One line of the table: requests, bytes on the wire, concurrency.
    pub fn write_line(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let compression = match self.compression_level {
            0 => "uncompressed".to_owned(),
            l => format!("gzip {l}"),
        };
        let c = &self.concurrency;
        let concurrency = if c.mode == "adaptive" {
            format!(
                "adaptive concurrency {} (from {} to {})",
                c.last, c.lowest, c.highest
            )
        } else {
            format!("concurrency {}", c.last)
        };
        writeln!(
            out,
            "{} _bulk requests, {:.1} MB on the wire for {:.1} MB of bodies ({compression}, \
             {:.3} bytes per byte), {concurrency}",
            self.requests,
            self.wire_bytes as f64 / 1e6,
            self.body_bytes as f64 / 1e6,
            self.wire_ratio
        )
    }
}

/// The concurrency of the requests.
#[derive(Debug, Clone, Serialize)]
pub struct ConcurrencySummary {
    /// `fixed` or `adaptive`.
    pub mode: &'static str,
    /// The limit at the end.
    pub last: u64,
    /// The lowest it was.
    pub lowest: u64,
    /// The highest it was.
    pub highest: u64,
}
