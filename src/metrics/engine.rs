//! Whether the run has reached its engine yet, and when it first did: a run with listeners
//! starts before the engine answers, and its HTTP listener answers `503` until then.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// When the engine first answered, in milliseconds after the run started.
#[derive(Debug)]
pub struct EngineState {
    reached_after_ms: AtomicU64,
}

impl Default for EngineState {
    fn default() -> Self {
        Self {
            reached_after_ms: AtomicU64::new(u64::MAX),
        }
    }
}

impl EngineState {
    /// The engine answered (or the run sends to no engine), `since` the run started; only the
    /// first call counts.
    pub fn reached(&self, since: Instant) {
        self.mark(since.elapsed());
    }

    /// The engine answered `after` the run started (or before it: 0); only the first counts.
    pub fn mark(&self, after: Duration) {
        let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX - 1);
        let _ = self
            .reached_after_ms
            .compare_exchange(u64::MAX, ms, Relaxed, Relaxed);
    }

    /// Whether the engine has answered.
    pub fn is_reached(&self) -> bool {
        self.reached_after_ms.load(Relaxed) != u64::MAX
    }

    /// How long after the start it first answered.
    pub fn reached_after(&self) -> Option<Duration> {
        let ms = self.reached_after_ms.load(Relaxed);
        (ms != u64::MAX).then(|| Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_answer_counts() {
        let e = EngineState::default();
        assert!(!e.is_reached());
        let start = Instant::now() - Duration::from_secs(3);
        e.reached(start);
        let first = e.reached_after().unwrap();
        assert!(first >= Duration::from_secs(3));
        e.reached(start - Duration::from_secs(60));
        assert_eq!(e.reached_after(), Some(first));
    }
}
