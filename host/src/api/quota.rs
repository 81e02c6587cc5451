//! Per-tenant enqueue quotas: a rate (token bucket) and a cap on pending jobs.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::ApiError;
use crate::store::{Store, Tenant};

/// This process's view of each tenant's enqueue rate and pending jobs.
#[derive(Debug)]
pub struct Quotas {
    ttl: Duration,
    limiters: Mutex<HashMap<i64, (u32, Arc<DefaultDirectRateLimiter>)>>,
    pending: Mutex<HashMap<i64, (i64, Instant)>>,
}

impl Quotas {
    /// Returns quotas whose pending-job counts are re-read after `ttl`.
    pub fn new(ttl: Duration) -> Quotas {
        Quotas {
            ttl,
            limiters: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` jobs from the tenant's enqueue rate, or answers 429 with when to retry.
    pub fn take_rate(&self, tenant: &Tenant, n: usize) -> Result<(), ApiError> {
        let rate = tenant.effective_limits().enqueue_rate.max(1);
        let limiter = {
            let mut limiters = self.limiters.lock().expect("quota lock");
            let entry = limiters
                .entry(tenant.id)
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
            Ok(Err(_)) => Err(ApiError::too_many(format!(
                "enqueue rate exceeded: this tenant may enqueue {rate} jobs per second; slow \
                 down and retry"
            ))),
            Err(_) => Err(ApiError::too_many(format!(
                "a batch of {n} jobs is more than this tenant's enqueue rate of {rate} per \
                 second allows at once; send smaller batches"
            ))),
        }
    }

    /// Answers 429 when `n` more jobs would take the tenant past its pending-job cap. The count
    /// comes from the counters, re-read at most every `ttl` and advanced by what this process
    /// enqueues in between, so the cap holds within what other hosts enqueue meanwhile.
    pub async fn check_pending(
        &self,
        store: &Store,
        tenant: &Tenant,
        n: usize,
    ) -> Result<(), ApiError> {
        let cap = tenant.effective_limits().max_queued;
        let cached = {
            let pending = self.pending.lock().expect("quota lock");
            pending
                .get(&tenant.id)
                .filter(|(_, at)| at.elapsed() < self.ttl)
                .map(|(count, _)| *count)
        };
        let count = match cached {
            Some(count) => count,
            None => {
                let count = store.tenant_pending(tenant.id).await?;
                self.pending
                    .lock()
                    .expect("quota lock")
                    .insert(tenant.id, (count, Instant::now()));
                count
            }
        };
        if count.max(0) as u64 + n as u64 > cap {
            return Err(ApiError::too_many(format!(
                "queued-jobs cap reached: this tenant has {count} jobs pending and may have at \
                 most {cap}; retry when some have run"
            )));
        }
        Ok(())
    }

    /// Counts `n` jobs this process just enqueued for the tenant.
    pub fn enqueued(&self, tenant_id: i64, n: usize) {
        if let Some((count, _)) = self.pending.lock().expect("quota lock").get_mut(&tenant_id) {
            *count += n as i64;
        }
    }
}

fn limiter(per_second: u32) -> Arc<DefaultDirectRateLimiter> {
    // The bucket holds one second's worth: a batch may use a whole second at once.
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(Quota::per_second(rate)))
}

/// Handlers known to exist, per tenant, remembered for a short while so that an enqueue costs
/// one statement. A handler deleted meanwhile is noticed within the TTL; its jobs fail when
/// they run, as jobs enqueued just before a delete do.
#[derive(Debug)]
pub struct KnownHandlers {
    ttl: Duration,
    seen: Mutex<HashMap<(i64, String), Instant>>,
}

impl KnownHandlers {
    /// Returns an empty set whose entries live `ttl`.
    pub fn new(ttl: Duration) -> KnownHandlers {
        KnownHandlers {
            ttl,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the first of `names` that is not a handler of the tenant, if any.
    pub async fn first_missing<'a>(
        &self,
        store: &Store,
        tenant_id: i64,
        names: &[&'a str],
    ) -> Result<Option<&'a str>, ApiError> {
        let unknown: Vec<&str> = {
            let seen = self.seen.lock().expect("handler cache lock");
            names
                .iter()
                .copied()
                .filter(|n| {
                    seen.get(&(tenant_id, n.to_string()))
                        .is_none_or(|at| at.elapsed() >= self.ttl)
                })
                .collect()
        };
        if unknown.is_empty() {
            return Ok(None);
        }
        let existing = store.handler_existing(tenant_id, &unknown).await?;
        let mut seen = self.seen.lock().expect("handler cache lock");
        if seen.len() > 10_000 {
            seen.retain(|_, at| at.elapsed() < self.ttl);
        }
        for name in &existing {
            seen.insert((tenant_id, name.clone()), Instant::now());
        }
        Ok(unknown
            .into_iter()
            .find(|n| !existing.iter().any(|e| e == n)))
    }

    /// Forgets a handler (it was deleted here).
    pub fn forget(&self, tenant_id: i64, name: &str) {
        self.seen
            .lock()
            .expect("handler cache lock")
            .remove(&(tenant_id, name.to_string()));
    }
}
