//! One memory budget for what the listeners have received and not yet settled: every frame,
//! body, line and chunk a sender makes evtship hold is charged against it, by what it costs in
//! memory, before it is allocated. When the budget is spent, a listener stops reading (TCP pushes
//! back on the sender) or refuses (HTTP `429`); nothing is allocated beyond it, so a hostile
//! sender can slow evtship, never exhaust its memory.
//!
//! A [`Charge`] holds bytes of the budget and gives them back when dropped; it grows while a
//! frame or body is read, and can be split so that a chunk carries its own bytes into the
//! pipeline and frees them once it is settled.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why bytes were not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// More than the whole budget: it could never be granted.
    #[error(
        "{wanted} bytes are more than the whole memory budget of {total} bytes \
         (max_buffered_bytes)"
    )]
    TooLarge {
        /// What was asked for (with what the charge held already).
        wanted: usize,
        /// The budget.
        total: usize,
    },
    /// The budget stayed spent for as long as the caller could wait.
    #[error("the memory budget of {total} bytes (max_buffered_bytes) is spent")]
    Spent {
        /// The budget.
        total: usize,
    },
}

/// The budget: a number of bytes shared by every listener of a run.
#[derive(Debug, Clone)]
pub struct Budget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl Budget {
    /// A budget of `total` bytes.
    pub fn new(total: usize) -> Self {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Its size.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes charged now.
    pub fn in_use(&self) -> usize {
        self.total - self.bytes.available_permits()
    }

    /// A charge of nothing yet.
    pub fn charge(&self) -> Charge {
        Charge {
            budget: self.clone(),
            held: None,
        }
    }
}

/// Bytes held from a [`Budget`]; given back when dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Budget,
    held: Option<OwnedSemaphorePermit>,
}

impl Charge {
    /// The size of the budget it is part of.
    pub fn budget_total(&self) -> usize {
        self.budget.total
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.held
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits)
    }

    fn wanted(&self, more: usize) -> Result<u32, Refused> {
        let wanted = self.bytes().saturating_add(more);
        let too_large = Refused::TooLarge {
            wanted,
            total: self.budget.total,
        };
        if wanted > self.budget.total {
            return Err(too_large);
        }
        u32::try_from(more).map_err(|_| too_large)
    }

    fn add(&mut self, permit: OwnedSemaphorePermit) {
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
    }

    /// Grows by `more` bytes if the budget has them now; `Ok(false)` when it does not.
    pub fn try_grow(&mut self, more: usize) -> Result<bool, Refused> {
        let n = self.wanted(more)?;
        if n == 0 {
            return Ok(true);
        }
        match self.budget.bytes.clone().try_acquire_many_owned(n) {
            Ok(permit) => {
                self.add(permit);
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    /// Grows by `more` bytes, waiting while the budget is spent.
    pub async fn grow(&mut self, more: usize) -> Result<(), Refused> {
        let n = self.wanted(more)?;
        if n == 0 {
            return Ok(());
        }
        let permit = self
            .budget
            .bytes
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the budget's semaphore is never closed");
        self.add(permit);
        Ok(())
    }

    /// Grows by `more` bytes, waiting at most `patience` for them.
    pub async fn grow_within(&mut self, more: usize, patience: Duration) -> Result<(), Refused> {
        let total = self.budget.total;
        match tokio::time::timeout(patience, self.grow(more)).await {
            Ok(r) => r,
            Err(_) => Err(Refused::Spent { total }),
        }
    }

    /// Grows by `more` bytes, waiting at most `patience` for them, or without limit.
    pub async fn grow_waiting(
        &mut self,
        more: usize,
        patience: Option<Duration>,
    ) -> Result<(), Refused> {
        match patience {
            Some(p) => self.grow_within(more, p).await,
            None => self.grow(more).await,
        }
    }

    /// Gives back what is held beyond `bytes`.
    pub fn shrink_to(&mut self, bytes: usize) {
        let held = self.bytes();
        if bytes == 0 {
            self.held = None;
        } else if let Some(permit) = self.held.as_mut().filter(|_| bytes < held) {
            drop(permit.split(held - bytes));
        }
    }

    /// Moves every byte held into a new charge (which a chunk then carries), leaving this one
    /// empty.
    pub fn take(&mut self) -> Charge {
        Charge {
            budget: self.budget.clone(),
            held: self.held.take(),
        }
    }

    /// Moves `bytes` of what is held (all of it, when it holds less) into a new charge.
    pub fn split(&mut self, bytes: usize) -> Charge {
        if bytes >= self.bytes() {
            return self.take();
        }
        Charge {
            budget: self.budget.clone(),
            held: self.held.as_mut().and_then(|p| p.split(bytes)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn charges_hold_bytes_until_dropped_and_refuse_past_the_budget() {
        let budget = Budget::new(100);
        let mut a = budget.charge();
        assert!(a.try_grow(60).unwrap());
        assert_eq!((a.bytes(), budget.in_use()), (60, 60));
        let mut b = budget.charge();
        assert!(!b.try_grow(50).unwrap());
        assert_eq!(
            b.grow_within(50, Duration::from_millis(20)).await,
            Err(Refused::Spent { total: 100 })
        );
        assert!(matches!(
            b.try_grow(101),
            Err(Refused::TooLarge { wanted: 101, .. })
        ));
        a.shrink_to(10);
        assert_eq!(budget.in_use(), 10);
        b.grow(50).await.unwrap();
        let part = b.split(20);
        assert_eq!((b.bytes(), part.bytes(), budget.in_use()), (30, 20, 60));
        let moved = b.take();
        assert_eq!((b.bytes(), moved.bytes(), budget.in_use()), (0, 30, 60));
        drop((moved, part));
        a.shrink_to(0);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_waiting_charge_gets_its_bytes_once_another_gives_them_back() {
        let budget = Budget::new(10);
        let mut first = budget.charge();
        first.grow(10).await.unwrap();
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move {
                let mut c = budget.charge();
                c.grow(8).await.unwrap();
                c.bytes()
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(first);
        assert_eq!(waiter.await.unwrap(), 8);
    }
}
