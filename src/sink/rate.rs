//! Rate limits for shared clusters: `max_events_per_second` and `max_bytes_per_second`.
//!
//! Tokens are taken before a bulk request is sent. The burst is a tenth of a second's worth, and
//! requests are made no larger than that, so the rate holds over any interval longer than a
//! fraction of a second.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

/// One limit: a token bucket and its burst.
#[derive(Debug)]
struct Limit {
    limiter: DefaultDirectRateLimiter,
    burst: NonZeroU32,
}

impl Limit {
    fn new(per_second: NonZeroU32) -> Self {
        let burst = NonZeroU32::new((per_second.get() / 10).max(1)).expect("at least 1");
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            limiter: RateLimiter::direct(quota),
            burst,
        }
    }

    async fn take(&self, mut n: u64) {
        while n > 0 {
            let step = n.min(u64::from(self.burst.get()));
            let step32 = NonZeroU32::new(step as u32).expect("step > 0");
            // `step` never exceeds the burst, so this cannot fail.
            let _ = self.limiter.until_n_ready(step32).await;
            n -= step;
        }
    }
}

/// The limits of one pipeline.
#[derive(Debug, Default)]
pub struct RateLimits {
    events: Option<Limit>,
    bytes: Option<Limit>,
}

impl RateLimits {
    /// Limits from the settings; `None` means unlimited.
    pub fn new(
        events_per_second: Option<NonZeroU32>,
        bytes_per_second: Option<NonZeroU32>,
    ) -> Self {
        Self {
            events: events_per_second.map(Limit::new),
            bytes: bytes_per_second.map(Limit::new),
        }
    }

    /// The largest request (events, bytes) that keeps the limits smooth.
    pub fn cap(&self, max_events: usize, max_bytes: usize) -> (usize, usize) {
        let events = self
            .events
            .as_ref()
            .map_or(max_events, |l| max_events.min(l.burst.get() as usize));
        let bytes = self
            .bytes
            .as_ref()
            .map_or(max_bytes, |l| max_bytes.min(l.burst.get() as usize));
        (events.max(1), bytes.max(1))
    }

    /// Waits until `events` events of `bytes` bytes may be sent.
    pub async fn acquire(&self, events: usize, bytes: usize) {
        if let Some(l) = &self.events {
            l.take(events as u64).await;
        }
        if let Some(l) = &self.bytes {
            l.take(bytes as u64).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn holds_the_rate() {
        let limits = RateLimits::new(NonZeroU32::new(2000), None);
        assert_eq!(limits.cap(5000, 1 << 20), (200, 1 << 20));
        let start = Instant::now();
        for _ in 0..10 {
            limits.acquire(200, 0).await;
        }
        // 2000 events at 2000/s, the first 200 from the burst: about 0.9 s.
        let took = start.elapsed().as_secs_f64();
        assert!((0.8..1.2).contains(&took), "{took}");
    }
}
