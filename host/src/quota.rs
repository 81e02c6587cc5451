//! Per-tenant enqueue quotas, for every path that enqueues: the HTTP API and the follow-up
//! jobs of a committing attempt. A rate (a token bucket per tenant, per process) and a cap on
//! pending jobs (read from the counters, cached briefly and advanced by what this process
//! enqueues).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::model::TenantLimits;
use crate::store::{Store, StoreError};

/// Why jobs may not be enqueued now.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The tenant enqueues faster than its rate.
    #[error(
        "enqueue rate exceeded: this tenant may enqueue {rate} jobs per second; slow down and \
         retry"
    )]
    Rate {
        /// Jobs per second the tenant may enqueue.
        rate: u32,
    },
    /// More jobs at once than one second of the rate allows.
    #[error(
        "a batch of {jobs} jobs is more than this tenant's enqueue rate of {rate} per second \
         allows at once; send smaller batches"
    )]
    Burst {
        /// The jobs asked for.
        jobs: u32,
        /// Jobs per second the tenant may enqueue.
        rate: u32,
    },
    /// The jobs would take the tenant past its pending-job cap.
    #[error(
        "queued-jobs cap reached: this tenant has {pending} jobs pending and may have at most \
         {cap}; retry when some have run"
    )]
    Pending {
        /// Jobs pending now (as last counted).
        pending: i64,
        /// The cap.
        cap: u64,
    },
    /// The jobs would put the tenant's work in more distinct queues than it may use.
    #[error(
        "queue: this tenant has jobs in {known} queues and may have at most {cap} \
         (limits.max_queues); enqueue on one of them, or let the admin raise the limit"
    )]
    Queues {
        /// Queues the tenant has jobs in now (as last read).
        known: usize,
        /// The cap.
        cap: u32,
    },
    /// The pending count could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This process's view of each tenant's enqueue rate and pending jobs.
#[derive(Debug)]
pub struct Quotas {
    ttl: Duration,
    limiters: Mutex<HashMap<i64, (u32, Arc<DefaultDirectRateLimiter>)>>,
    pending: Mutex<HashMap<i64, (i64, Instant)>>,
    /// The queues each tenant has jobs in, as last read (and extended by this process).
    queues: Mutex<HashMap<i64, (HashSet<String>, Instant)>>,
}

impl Quotas {
    /// Returns quotas whose pending-job counts are re-read after `ttl`.
    pub fn new(ttl: Duration) -> Quotas {
        Quotas {
            ttl,
            limiters: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses `queues` when the ones the tenant has no jobs in yet would take it past `cap`
    /// distinct queues. The tenant's queues are read at most every `ttl` and extended by what
    /// this process admits, so an enqueue on a known queue costs no query; the cap holds
    /// within what several hosts add at the same moment.
    pub async fn admit_queues(
        &self,
        store: &Store,
        tenant_id: i64,
        cap: u32,
        queues: &[&str],
    ) -> Result<(), QuotaError> {
        let lock = || self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = |seen: &HashMap<i64, (HashSet<String>, Instant)>| {
            seen.get(&tenant_id)
                .filter(|(_, at)| at.elapsed() < self.ttl)
                .map(|(known, _)| queues.iter().all(|q| known.contains(*q)))
        };
        let known_now = fresh(&lock());
        if known_now == Some(true) {
            return Ok(());
        }
        if known_now.is_none() {
            let names: HashSet<String> = store.queue_names(tenant_id).await?.into_iter().collect();
            let mut seen = lock();
            if seen.len() > 10_000 {
                seen.retain(|_, (_, at)| at.elapsed() < self.ttl);
            }
            seen.insert(tenant_id, (names, Instant::now()));
        }
        let mut seen = lock();
        let (known, _) = seen
            .entry(tenant_id)
            .or_insert_with(|| (HashSet::new(), Instant::now()));
        let new: HashSet<&str> = queues
            .iter()
            .copied()
            .filter(|q| !known.contains(*q))
            .collect();
        if known.len() + new.len() > cap as usize {
            return Err(QuotaError::Queues {
                known: known.len(),
                cap,
            });
        }
        known.extend(new.into_iter().map(str::to_string));
        Ok(())
    }

    /// Takes `n` jobs from the tenant's enqueue rate.
    pub fn take_rate(
        &self,
        tenant_id: i64,
        limits: &TenantLimits,
        n: usize,
    ) -> Result<(), QuotaError> {
        let rate = limits.enqueue_rate.max(1);
        let limiter = {
            let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
            let entry = limiters
                .entry(tenant_id)
                .or_insert_with(|| (0, limiter(rate)));
            if entry.0 != rate {
                *entry = (rate, limiter(rate));
            }
            entry.1.clone()
        };
        let Some(n) = NonZeroU32::new(n.min(u32::MAX as usize) as u32) else {
            return Ok(());
        };
        match limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(QuotaError::Rate { rate }),
            Err(_) => Err(QuotaError::Burst {
                jobs: n.get(),
                rate,
            }),
        }
    }

    /// Refuses `n` more jobs when they would take the tenant past its pending-job cap. The
    /// count comes from the counters, re-read at most every `ttl` and advanced by what this
    /// process enqueues in between, so the cap holds within what other hosts enqueue
    /// meanwhile.
    pub async fn check_pending(
        &self,
        store: &Store,
        tenant_id: i64,
        limits: &TenantLimits,
        n: usize,
    ) -> Result<(), QuotaError> {
        let cap = limits.max_queued;
        let cached = {
            let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending
                .get(&tenant_id)
                .filter(|(_, at)| at.elapsed() < self.ttl)
                .map(|(count, _)| *count)
        };
        let count = match cached {
            Some(count) => count,
            None => {
                let count = store.tenant_pending(tenant_id).await?;
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(tenant_id, (count, Instant::now()));
                count
            }
        };
        if count.max(0) as u64 + n as u64 > cap {
            return Err(QuotaError::Pending {
                pending: count,
                cap,
            });
        }
        Ok(())
    }

    /// Takes `n` jobs from the rate and checks them against the pending cap, then counts them
    /// as enqueued: the check for jobs that will be enqueued unless something else fails.
    pub async fn admit(
        &self,
        store: &Store,
        tenant_id: i64,
        limits: &TenantLimits,
        n: usize,
    ) -> Result<(), QuotaError> {
        self.take_rate(tenant_id, limits, n)?;
        self.check_pending(store, tenant_id, limits, n).await?;
        self.enqueued(tenant_id, n);
        Ok(())
    }

    /// Counts `n` jobs this process just enqueued for the tenant.
    pub fn enqueued(&self, tenant_id: i64, n: usize) {
        if let Some((count, _)) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&tenant_id)
        {
            *count += n as i64;
        }
    }
}

fn limiter(per_second: u32) -> Arc<DefaultDirectRateLimiter> {
    // The bucket holds one second's worth: a batch may use a whole second at once.
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(Quota::per_second(rate)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_allows_a_second_at_once_and_no_more() {
        let quotas = Quotas::new(Duration::from_secs(2));
        let limits = TenantLimits {
            enqueue_rate: 10,
            ..TenantLimits::resolve(&Default::default())
        };
        assert!(matches!(
            quotas.take_rate(1, &limits, 11),
            Err(QuotaError::Burst { jobs: 11, rate: 10 })
        ));
        quotas.take_rate(1, &limits, 10).unwrap();
        assert!(matches!(
            quotas.take_rate(1, &limits, 1),
            Err(QuotaError::Rate { rate: 10 })
        ));
        // Another tenant has a bucket of its own.
        quotas.take_rate(2, &limits, 10).unwrap();
    }
}
