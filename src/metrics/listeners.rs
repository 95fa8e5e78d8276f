//! Counters of listeners: connections, windows and requests, ACKs, keep-alives, and refusals by
//! cause (oversize frames, protocol errors, TLS, authentication, too many connections, idle).

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counters of one listener.
#[derive(Debug, Default)]
pub struct ListenerCounters {
    /// Connections accepted (TLS handshake done).
    pub connections: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Beats windows (or HTTP requests) received whole.
    pub windows: AtomicU64,
    /// Windows ACKed (or requests answered) once their records were settled.
    pub acks: AtomicU64,
    /// Keep-alive ACKs sent while windows waited for the engine.
    pub keepalives: AtomicU64,
    /// Records on the spool's disk (TCP, UDP, syslog listeners).
    pub received: AtomicU64,
    /// Records not kept: UDP datagrams that came while the spool was full, or records the
    /// spool could not write.
    pub dropped: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Per cause: when its last warning was written, and refusals since that were not.
    warned: Mutex<BTreeMap<&'static str, (Instant, u64)>>,
}

/// A cause of refusal gets at most one warning line this often; the next says how many more
/// came meanwhile.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

impl ListenerCounters {
    /// A connection opened.
    pub fn opened(&self) {
        self.connections.fetch_add(1, Relaxed);
        self.open.fetch_add(1, Relaxed);
    }

    /// A connection closed.
    pub fn closed(&self) {
        self.open.fetch_sub(1, Relaxed);
    }

    /// `n` records received and not kept.
    pub fn lost(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    /// A connection, frame or request refused because of `cause`.
    pub fn refused(&self, cause: &'static str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(cause)
            .or_default() += 1;
    }

    /// A refusal of `cause`, counted, and said in a warning unless one of that cause was
    /// written less than [`WARN_EVERY`] ago (a flood of refusals writes one line per cause per
    /// interval, with the count of those it did not write).
    pub fn refuse(&self, cause: &'static str, message: impl FnOnce() -> String) {
        self.refused(cause);
        let now = Instant::now();
        let more = {
            let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
            match warned.get_mut(cause) {
                Some((last, held)) if now.duration_since(*last) < WARN_EVERY => {
                    *held += 1;
                    return;
                }
                Some((last, held)) => {
                    *last = now;
                    std::mem::take(held)
                }
                None => {
                    warned.insert(cause, (now, 0));
                    0
                }
            }
        };
        let text = message();
        if more > 0 {
            tracing::warn!(
                "{text} (and {more} more refusals for `{cause}` in the last {} s)",
                WARN_EVERY.as_secs()
            );
        } else {
            tracing::warn!("{text}");
        }
    }

    /// Refusals by cause.
    pub fn refusals(&self) -> BTreeMap<&'static str, u64> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The figures now, under the listener's name.
    pub fn summary(&self, label: &str) -> ListenerSummary {
        ListenerSummary {
            listener: label.to_owned(),
            connections: self.connections.load(Relaxed),
            windows: self.windows.load(Relaxed),
            acks: self.acks.load(Relaxed),
            keepalives: self.keepalives.load(Relaxed),
            received: self.received.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            refused: self
                .refusals()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        }
    }
}

/// Per-listener part of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerSummary {
    /// The listener (`beats://0.0.0.0:5044`).
    pub listener: String,
    /// Connections accepted.
    pub connections: u64,
    /// Windows (Beats) or requests (HTTP) received whole.
    pub windows: u64,
    /// Windows ACKed or requests answered after their records settled.
    pub acks: u64,
    /// Keep-alive ACKs sent.
    pub keepalives: u64,
    /// Records written to the spool (TCP, UDP and syslog listeners).
    pub received: u64,
    /// Records not kept (UDP while the spool was full; spool write failures).
    pub dropped: u64,
    /// Refusals by cause.
    pub refused: BTreeMap<String, u64>,
}

impl ListenerSummary {
    /// One line of the summary table.
    pub fn write_line(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let refused: Vec<String> = self
            .refused
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let refused = if refused.is_empty() {
            "none".to_owned()
        } else {
            refused.join(", ")
        };
        let spooled = ["tcp", "udp", "syslog"]
            .iter()
            .any(|k| self.listener.starts_with(k));
        if spooled {
            // A spooled listener: no windows or ACKs, records on disk instead.
            return writeln!(
                out,
                "{}: {} connections, {} records spooled, {} dropped, refused: {refused}",
                self.listener, self.connections, self.received, self.dropped
            );
        }
        writeln!(
            out,
            "{}: {} connections, {} windows or requests, {} acknowledged, {} keep-alives, refused: {refused}",
            self.listener, self.connections, self.windows, self.acks, self.keepalives,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_all_counted_and_warned_once_per_interval() {
        let c = ListenerCounters::default();
        let mut said = 0;
        for _ in 0..500 {
            c.refuse("auth", || {
                said += 1;
                "refused".into()
            });
        }
        assert_eq!((c.refusals()["auth"], said), (500, 1));
        c.refuse("connections", || {
            said += 1;
            "full".into()
        });
        assert_eq!(said, 2);
    }
}
