//! CPU lanes: how many attempts may run guest code past their first epoch tick at once
//! ([`RuntimeConfig::cpu_lanes`](super::RuntimeConfig::cpu_lanes)), shared fairly between
//! tenants ([`FairShare`]).
//!
//! At every epoch tick a running guest gives back its lane (if it held one) and waits for one,
//! behind the attempts already waiting. So at most `cpu_lanes` long-running guests are on the
//! executor at once, taking turns, while attempts that finish within a tick, and the worker's
//! own tasks, do not queue behind all of them.
//!
//! While several tenants have attempts in the runtime, each holds at most its share of the
//! lanes. A tenant whose attempts all finish within a tick holds none, so its share is CPU the
//! others' long-running guests leave to its short attempts, the worker and the database: one
//! tenant's CPU-bound loops take at most its share of the cores, not all of them.
//!
//! A guest parked in a host call (a database read, an HTTP request, a timer) runs no guest
//! code and sees no tick: the epoch thread takes its lane back once it has not been seen for a
//! few ticks, so a parked guest cannot keep a lane from the others.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::fair::{FairShare, Member};

/// The lanes of one runtime.
#[derive(Debug)]
pub(crate) struct Lanes(Arc<FairShare>);

/// One attempt's place in the lanes; gives back its lane when dropped.
pub(crate) type Hold = Member;

impl Lanes {
    /// Returns `n` lanes (at least one).
    pub(crate) fn new(n: usize) -> Arc<Lanes> {
        Arc::new(Lanes(FairShare::new(n)))
    }

    /// Returns a hold for a new attempt of `tenant`, holding no lane yet.
    pub(crate) fn hold(&self, tenant: &str) -> Hold {
        self.0.join(tenant)
    }

    /// At an epoch tick of `hold`'s guest: gives back its lane and returns the wait for the
    /// next one.
    pub(crate) fn turn(&self, hold: &Hold) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let lane = self.0.acquire(hold);
        Box::pin(async move {
            // Always give the executor a turn, even when a lane is free at once.
            tokio::task::yield_now().await;
            lane.await;
        })
    }

    /// Takes the lanes back from guests that have not run guest code for `idle` (parked in a
    /// host call).
    pub(crate) fn reclaim(&self, idle: Duration) {
        self.0.release_idle(idle);
    }
}
