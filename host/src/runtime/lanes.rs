//! CPU lanes: how many attempts may run guest code past their first epoch tick at once
//! ([`RuntimeConfig::cpu_lanes`](super::RuntimeConfig::cpu_lanes)).
//!
//! At every epoch tick a running guest gives back its lane (if it held one) and waits for one,
//! behind the attempts already waiting (the semaphore is fair). So at most `cpu_lanes`
//! long-running guests are on the executor at once, taking turns, while attempts that finish
//! within a tick, and the worker's own tasks, do not queue behind all of them. A guest parked
//! in a host call (a database read, an HTTP request, a timer) runs no guest code and sees no
//! tick: the epoch thread takes its lane back once it has not been seen for a few ticks, so a
//! parked guest cannot keep a lane from the others.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The lanes of one runtime, and who holds them.
#[derive(Debug)]
pub(crate) struct Lanes {
    semaphore: Arc<Semaphore>,
    holders: Mutex<Vec<Weak<Hold>>>,
}

/// One attempt's hold on a lane.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    /// The lane, while held.
    permit: Mutex<Option<OwnedSemaphorePermit>>,
    /// When the guest last ran guest code (its last tick, or getting its lane).
    seen: Mutex<Option<Instant>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Lanes {
    /// Returns `n` lanes (at least one).
    pub(crate) fn new(n: usize) -> Arc<Lanes> {
        Arc::new(Lanes {
            semaphore: Arc::new(Semaphore::new(n.max(1))),
            holders: Mutex::new(Vec::new()),
        })
    }

    /// Returns a hold for a new attempt, holding no lane yet.
    pub(crate) fn hold(&self) -> Arc<Hold> {
        let hold = Arc::new(Hold::default());
        locked(&self.holders).push(Arc::downgrade(&hold));
        hold
    }

    /// At an epoch tick of `hold`'s guest: gives back its lane and returns the wait for the
    /// next one.
    pub(crate) fn turn(&self, hold: &Arc<Hold>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        *locked(&hold.seen) = Some(Instant::now());
        locked(&hold.permit).take();
        let (semaphore, hold) = (self.semaphore.clone(), hold.clone());
        Box::pin(async move {
            // Always give the executor a turn, even when a lane is free at once.
            tokio::task::yield_now().await;
            if let Ok(permit) = semaphore.acquire_owned().await {
                *locked(&hold.seen) = Some(Instant::now());
                *locked(&hold.permit) = Some(permit);
            }
        })
    }

    /// Takes the lanes back from guests that have not run guest code for `idle` (parked in a
    /// host call), and forgets finished attempts.
    pub(crate) fn reclaim(&self, idle: Duration) {
        let now = Instant::now();
        locked(&self.holders).retain(|weak| {
            let Some(hold) = weak.upgrade() else {
                return false;
            };
            let parked = locked(&hold.seen).is_some_and(|seen| now.duration_since(seen) > idle);
            if parked {
                locked(&hold.permit).take();
            }
            true
        });
    }

    /// Returns how many lanes are free now.
    #[cfg(test)]
    fn free(&self) -> usize {
        self.semaphore.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lane_is_held_between_ticks_given_back_at_each_and_reclaimed_when_parked() {
        let lanes = Lanes::new(1);
        let (a, b) = (lanes.hold(), lanes.hold());
        lanes.turn(&a).await;
        assert_eq!(lanes.free(), 0, "a holds the lane");
        let waiting = tokio::spawn({
            let (lanes, b) = (lanes.clone(), b.clone());
            async move { lanes.turn(&b).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "b waits for the lane");
        // a is parked (no tick): its lane is taken back and b gets it.
        std::thread::sleep(Duration::from_millis(5));
        lanes.reclaim(Duration::from_millis(2));
        waiting.await.unwrap();
        assert_eq!(lanes.free(), 0, "b holds the lane now");
        assert!(locked(&a.permit).is_none(), "a's lane was taken back");
        // A finished attempt's hold is forgotten and its lane freed.
        drop(b);
        lanes.reclaim(Duration::from_secs(60));
        assert_eq!(lanes.free(), 1);
        assert_eq!(
            locked(&lanes.holders).len(),
            1,
            "only a is still registered"
        );
    }
}
