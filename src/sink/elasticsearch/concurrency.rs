//! How many `_bulk` requests are in flight: a fixed number, or one found as the run goes
//! (`concurrency = "adaptive"`).
//!
//! The adaptive limit follows TCP Vegas: it compares the mean round trip of the last round of
//! requests (as many as the limit, and at least [`MIN_ROUND`], so that one slow answer does not
//! decide; [`MIN_FIRST_ROUND`] while it still doubles) with the shortest ever seen (the round
//! trip without queueing), and estimates how many requests wait in a queue somewhere (the
//! engine's, or a link's):
//! `queued = limit * (1 - shortest / mean)`. Fewer than [`QUEUE_LOW`] waiting: the engine or
//! the link could take more, and the limit grows by one (doubling while it has not met any
//! queue yet). More than [`QUEUE_HIGH`]: requests only wait longer, and it shrinks by one.
//! Connection failures, and a share of refusals (429/503) that rises above its running average
//! by more than chance explains, shrink it by a quarter: the rise must be over
//! [`REFUSED_RISE`] and over three standard deviations of a round's share around the average,
//! so that a steady share (a proxy's or a rate limiter's, sent again after a backoff) is no
//! reason to send less however the requests of a round happen to fall. A round with every
//! request refused while most have been for a while shrinks it too. Refused requests do not
//! count as round trips.
//! The limit stays within `min_concurrency..=max_concurrency`, and starts at 4 (or the bound
//! nearer to it).
//!
//! The adaptive limit bounds the requests on the wire. A request waiting to be sent again
//! after a backoff gives its place back and takes one again when its wait is over; at most
//! `max_concurrency` requests are under way at all, so that memory stays bounded. A fixed
//! concurrency counts a request waiting for its retry as in flight, as it always did.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Where an adaptive limit starts (within its bounds): the fixed default.
const START: usize = 4;
/// The fewest requests a round judges by.
pub const MIN_ROUND: usize = 8;
/// The fewest requests a round judges by while the limit is still doubling.
pub const MIN_FIRST_ROUND: usize = 4;
/// Fewer requests than this waiting: the limit grows.
pub const QUEUE_LOW: f64 = 4.0;
/// More requests than this waiting: the limit shrinks.
pub const QUEUE_HIGH: f64 = 8.0;
/// A rise of the share of refused requests by this much over its running average shrinks
/// the limit.
const REFUSED_RISE: f64 = 0.2;
/// Weight of the latest round in the running average of refusals.
const REFUSED_WEIGHT: f64 = 0.3;
/// The share of refusals a round's spread is reckoned from at least (a path that never
/// refused has no spread to compare with).
const REFUSED_FLOOR: f64 = 0.05;
/// The shortest round trip is let grow by this factor each round, so that a lasting change
/// of the path (a slower link, a busier cluster) is learnt within a few hundred rounds.
const SHORTEST_DRIFT: f64 = 1.002;

/// What one answered (or unanswered) request says about the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Answered, its round trip is a load sample.
    Answered,
    /// Refused as a whole, or some items refused, with 429 or 503.
    Refused,
    /// No answer: connection refused, cut or timed out.
    Failed,
}

/// Requests in flight: `Fixed(n)` or `Adaptive` within `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Always this many.
    Fixed(usize),
    /// Found as the run goes, between the bounds.
    Adaptive {
        /// The floor.
        min: usize,
        /// The ceiling.
        max: usize,
    },
}

/// Vegas-style control of the limit, fed with one sample per answered request.
#[derive(Debug, Clone)]
pub struct AdaptiveLimit {
    limit: usize,
    min: usize,
    max: usize,
    /// Whether a queue was ever seen (until then the limit doubles).
    met_queue: bool,
    /// The shortest round-trip mean of a round, in seconds.
    shortest: Option<f64>,
    /// Running average of the share of refused requests.
    refused_share: Option<f64>,
    round: Round,
}

#[derive(Debug, Clone, Default)]
struct Round {
    answered: u32,
    refused: u32,
    failed: u32,
    rtt_sum: f64,
    /// Whether every slot was taken at some point of the round (growing is pointless
    /// otherwise).
    full: bool,
}

impl AdaptiveLimit {
    /// Starts at 4, or at the bound nearer to it.
    pub fn new(min: usize, max: usize) -> Self {
        let min = min.max(1);
        let max = max.max(min);
        Self {
            limit: START.clamp(min, max),
            min,
            max,
            met_queue: false,
            shortest: None,
            refused_share: None,
            round: Round::default(),
        }
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Every slot is taken.
    pub fn saw_full(&mut self) {
        self.round.full = true;
    }

    /// One request's outcome and round trip; returns the new limit when it changed.
    pub fn sample(&mut self, signal: Signal, rtt: Duration) -> Option<usize> {
        match signal {
            Signal::Answered => {
                self.round.answered += 1;
                self.round.rtt_sum += rtt.as_secs_f64();
            }
            Signal::Refused => self.round.refused += 1,
            Signal::Failed => self.round.failed += 1,
        }
        let r = &self.round;
        if ((r.answered + r.refused + r.failed) as usize) < self.round_size() {
            return None;
        }
        let round = std::mem::take(&mut self.round);
        let before = self.limit;
        self.limit = self.next_limit(&round).clamp(self.min, self.max);
        (self.limit != before).then_some(self.limit)
    }

    /// The samples a round judges by: as many as the limit, at least [`MIN_ROUND`]; while no
    /// queue was met yet (the limit doubling), at least [`MIN_FIRST_ROUND`], so that the first
    /// doublings take fewer requests at a low limit.
    fn round_size(&self) -> usize {
        let least = if self.met_queue {
            MIN_ROUND
        } else {
            MIN_FIRST_ROUND
        };
        self.limit.max(least)
    }

    fn next_limit(&mut self, round: &Round) -> usize {
        let total = f64::from(round.answered + round.refused + round.failed);
        let share = f64::from(round.refused) / total;
        let average = *self.refused_share.get_or_insert(share);
        self.refused_share = Some(average + REFUSED_WEIGHT * (share - average));
        let cut = (self.limit * 3 / 4).max(1);
        let p = average.max(REFUSED_FLOOR);
        let spread = 3.0 * (p * (1.0 - p) / total).sqrt();
        let rising = share - average > REFUSED_RISE.max(spread);
        let swamped = round.answered == 0 && average >= 0.5;
        if round.failed > 0 || rising || swamped {
            self.met_queue = true;
            return cut;
        }
        if round.answered == 0 {
            return self.limit;
        }
        let mean = round.rtt_sum / f64::from(round.answered);
        let shortest = self
            .shortest
            .map_or(mean, |s| (s * SHORTEST_DRIFT).min(mean));
        self.shortest = Some(shortest);
        let queued = self.limit as f64 * (1.0 - shortest / mean.max(f64::MIN_POSITIVE));
        if queued > QUEUE_HIGH {
            self.met_queue = true;
            self.limit - 1
        } else if queued < QUEUE_LOW && round.full {
            if self.met_queue {
                self.limit + 1
            } else {
                self.limit * 2
            }
        } else {
            if queued >= QUEUE_LOW {
                self.met_queue = true;
            }
            self.limit
        }
    }
}

/// The slots of requests in flight, under a fixed or an adaptive limit.
#[derive(Debug)]
pub struct Limiter {
    state: Mutex<State>,
    freed: Notify,
    /// Requests under way, waiting for a retry included: the memory bound.
    under_way: Arc<Semaphore>,
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    fixed: usize,
    adaptive: Option<AdaptiveLimit>,
    lowest: usize,
    highest: usize,
}

impl State {
    fn limit(&self) -> usize {
        self.adaptive
            .as_ref()
            .map_or(self.fixed, AdaptiveLimit::limit)
    }
}

/// A request's place: under way (until dropped), and on the wire unless it waits for a retry.
#[derive(Debug)]
pub struct Slot {
    limiter: Arc<Limiter>,
    on_wire: bool,
    _under_way: OwnedSemaphorePermit,
}

impl Slot {
    /// The request waits to be sent again: under an adaptive limit it gives its place on the
    /// wire back meanwhile.
    pub fn idle(&mut self) {
        if self.on_wire && self.limiter.lock().adaptive.is_some() {
            self.limiter.leave_wire();
            self.on_wire = false;
        }
    }

    /// The wait is over: takes a place on the wire again.
    pub async fn resume(&mut self) {
        if !self.on_wire {
            self.limiter.enter_wire().await;
            self.on_wire = true;
        }
    }

    /// This slot's request was answered (or not) after `rtt`: the adaptive limit learns from
    /// it. Returns the limit's figures.
    pub fn sample(&self, signal: Signal, rtt: Duration) -> LimitFigures {
        self.limiter.sample(signal, rtt);
        self.limiter.figures()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.on_wire {
            self.limiter.leave_wire();
        }
    }
}

/// The limit's figures for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitFigures {
    /// The limit at the end.
    pub last: usize,
    /// The lowest it was.
    pub lowest: usize,
    /// The highest it was.
    pub highest: usize,
}

impl Limiter {
    /// Slots under `concurrency`.
    pub fn new(concurrency: Concurrency) -> Arc<Self> {
        let (fixed, adaptive) = match concurrency {
            Concurrency::Fixed(n) => (n.max(1), None),
            Concurrency::Adaptive { min, max } => (min, Some(AdaptiveLimit::new(min, max))),
        };
        let under_way = match concurrency {
            Concurrency::Fixed(n) => n.max(1),
            Concurrency::Adaptive { min, max } => max.max(min).max(1),
        };
        let mut state = State {
            in_flight: 0,
            fixed,
            adaptive,
            lowest: 0,
            highest: 0,
        };
        state.lowest = state.limit();
        state.highest = state.limit();
        Arc::new(Self {
            state: Mutex::new(state),
            freed: Notify::new(),
            under_way: Arc::new(Semaphore::new(under_way)),
        })
    }

    fn leave_wire(&self) {
        self.lock().in_flight -= 1;
        self.freed.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a free slot: this is the backpressure on the readers.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        let under_way = self
            .under_way
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        self.enter_wire().await;
        Slot {
            limiter: self.clone(),
            on_wire: true,
            _under_way: under_way,
        }
    }

    async fn enter_wire(&self) {
        loop {
            {
                let mut s = self.lock();
                if s.in_flight < s.limit() {
                    s.in_flight += 1;
                    if s.in_flight == s.limit() {
                        if let Some(a) = s.adaptive.as_mut() {
                            a.saw_full();
                        }
                    }
                    return;
                }
            }
            self.freed.notified().await;
        }
    }

    /// Whether a slot is free now.
    pub fn has_free_slot(&self) -> bool {
        let s = self.lock();
        s.in_flight < s.limit() && self.under_way.available_permits() > 0
    }

    /// One request's outcome and round trip (the adaptive limit learns from it).
    pub fn sample(&self, signal: Signal, rtt: Duration) {
        let mut s = self.lock();
        let Some(changed) = s.adaptive.as_mut().and_then(|a| a.sample(signal, rtt)) else {
            return;
        };
        s.lowest = s.lowest.min(changed);
        s.highest = s.highest.max(changed);
        drop(s);
        tracing::debug!("bulk concurrency now {changed}");
        self.freed.notify_waiters();
        self.freed.notify_one();
    }

    /// The limit now, and the lowest and highest it was.
    pub fn figures(&self) -> LimitFigures {
        let s = self.lock();
        LimitFigures {
            last: s.limit(),
            lowest: s.lowest,
            highest: s.highest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds rounds of a path where requests beyond `capacity` queue: the round trip is
    /// `base` while the limit is within capacity, and grows with the excess.
    fn run(
        adaptive: &mut AdaptiveLimit,
        rounds: usize,
        rtt_of: impl Fn(usize) -> (Signal, f64),
    ) -> Vec<usize> {
        let mut seen = Vec::new();
        for _ in 0..rounds {
            let limit = adaptive.limit();
            adaptive.saw_full();
            for _ in 0..limit.max(MIN_ROUND) {
                let (signal, rtt) = rtt_of(limit);
                adaptive.sample(signal, Duration::from_secs_f64(rtt));
            }
            seen.push(adaptive.limit());
        }
        seen
    }

    #[test]
    fn grows_to_the_capacity_of_the_path_and_holds_there() {
        let mut adaptive = AdaptiveLimit::new(1, 64);
        let capacity = 6;
        let seen = run(&mut adaptive, 200, |l| {
            (
                Signal::Answered,
                0.05 * (l as f64 / capacity as f64).max(1.0),
            )
        });
        // Holds where QUEUE_LOW to QUEUE_HIGH requests wait: a limit of l queues l - capacity
        // on this path, so it holds at capacity + QUEUE_LOW to capacity + QUEUE_HIGH, give or
        // take one.
        let (low, high) = (
            capacity + QUEUE_LOW as usize,
            capacity + QUEUE_HIGH as usize,
        );
        let last = *seen.last().unwrap();
        assert!((low..=high).contains(&last), "{seen:?}");
        assert!(
            seen[150..].iter().all(|l| (low - 1..=high + 1).contains(l)),
            "{seen:?}"
        );
    }

    #[test]
    fn a_path_without_queueing_reaches_the_ceiling() {
        let mut adaptive = AdaptiveLimit::new(1, 16);
        let seen = run(&mut adaptive, 30, |_| (Signal::Answered, 0.04));
        assert_eq!(*seen.last().unwrap(), 16, "{seen:?}");
    }

    #[test]
    fn failures_cut_the_limit_to_the_floor() {
        let mut adaptive = AdaptiveLimit::new(2, 32);
        run(&mut adaptive, 20, |_| (Signal::Answered, 0.04));
        assert_eq!(adaptive.limit(), 32);
        let seen = run(&mut adaptive, 20, |_| (Signal::Failed, 1.0));
        assert_eq!(*seen.last().unwrap(), 2, "{seen:?}");
    }

    #[test]
    fn a_steady_share_of_refusals_does_not_shrink_the_limit() {
        let mut adaptive = AdaptiveLimit::new(1, 16);
        let n = std::cell::Cell::new(0u32);
        let seen = run(&mut adaptive, 60, |_| {
            n.set(n.get() + 1);
            // 3 of every 10 requests refused, as a fault proxy would.
            let refused = n.get() % 10 < 3;
            let signal = if refused {
                Signal::Refused
            } else {
                Signal::Answered
            };
            (signal, 0.04)
        });
        assert!(seen[40..].iter().all(|&l| l >= 12), "{seen:?}");
    }

    #[test]
    fn refusals_at_random_do_not_shrink_the_limit_by_chance() {
        let mut adaptive = AdaptiveLimit::new(1, 16);
        // A fault proxy's 30%, drawn at random (a fixed-seed LCG).
        let state = std::cell::Cell::new(0x2545_f491_4f6c_dd1du64);
        let seen = run(&mut adaptive, 400, |_| {
            let x = state
                .get()
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1);
            state.set(x);
            let refused = (x >> 33) % 10 < 3;
            let signal = if refused {
                Signal::Refused
            } else {
                Signal::Answered
            };
            (signal, 0.04)
        });
        let low = seen[50..].iter().filter(|&&l| l < 12).count();
        assert!(low * 20 < seen.len() - 50, "{seen:?}");
    }

    #[test]
    fn a_rising_share_of_refusals_shrinks_it() {
        let mut adaptive = AdaptiveLimit::new(1, 32);
        run(&mut adaptive, 20, |_| (Signal::Answered, 0.04));
        let before = adaptive.limit();
        run(&mut adaptive, 1, |_| (Signal::Refused, 0.04));
        assert!(
            adaptive.limit() < before,
            "{} -> {}",
            before,
            adaptive.limit()
        );
    }

    #[tokio::test]
    async fn an_adaptive_request_waiting_for_its_retry_lets_another_on_the_wire() {
        let limiter = Limiter::new(Concurrency::Adaptive { min: 1, max: 5 });
        let mut slots = Vec::new();
        for _ in 0..4 {
            slots.push(limiter.acquire().await);
        }
        assert!(!limiter.has_free_slot(), "it starts at 4");
        slots[0].idle();
        assert!(limiter.has_free_slot());
        let fifth = limiter.acquire().await;
        assert!(!limiter.has_free_slot(), "5 under way is the ceiling");
        let resumed = tokio::spawn(async move {
            let mut first = slots.remove(0);
            first.resume().await;
            (first, slots)
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!resumed.is_finished(), "the wire is full");
        drop(fifth);
        tokio::time::timeout(Duration::from_secs(5), resumed)
            .await
            .expect("a place on the wire is taken again")
            .unwrap();
        let fixed = Limiter::new(Concurrency::Fixed(1));
        let mut only = fixed.acquire().await;
        only.idle();
        assert!(
            !fixed.has_free_slot(),
            "a fixed slot is held through the wait"
        );
    }

    #[tokio::test]
    async fn slots_wait_for_a_free_one() {
        let limiter = Limiter::new(Concurrency::Fixed(2));
        let a = limiter.acquire().await;
        let _b = limiter.acquire().await;
        assert!(!limiter.has_free_slot());
        let waiting = tokio::spawn({
            let l = limiter.clone();
            async move { l.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        drop(a);
        let _c = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("a freed slot is taken")
            .unwrap();
        assert_eq!(limiter.figures().last, 2);
    }
}
