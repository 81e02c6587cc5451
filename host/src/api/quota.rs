//! Enqueue checks the API adds to the tenant's quotas (`crate::quota`): a short-lived
//! memory of which handlers exist, and of which queues a tenant has jobs in.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ApiError;
use crate::quota::QuotaError;
use crate::store::Store;

impl From<QuotaError> for ApiError {
    fn from(e: QuotaError) -> ApiError {
        match e {
            QuotaError::Store(e) => e.into(),
            other => ApiError::too_many(other.to_string()),
        }
    }
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

/// The queues each tenant has jobs in, remembered for a short while, so that the cap on
/// distinct queues (`limits.max_queues`) costs an enqueue on a known queue no query. Queues
/// this process adds are remembered at once; other hosts' within the TTL, so the cap holds
/// within what several hosts add at the same moment.
#[derive(Debug)]
pub struct KnownQueues {
    ttl: Duration,
    seen: Mutex<HashMap<i64, (HashSet<String>, Instant)>>,
}

impl KnownQueues {
    /// Returns an empty memory whose entries live `ttl`.
    pub fn new(ttl: Duration) -> KnownQueues {
        KnownQueues {
            ttl,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses `queues` with 422 when the ones the tenant has no jobs in yet would take it
    /// past `cap` distinct queues.
    pub async fn admit(
        &self,
        store: &Store,
        tenant_id: i64,
        cap: u32,
        queues: &[&str],
    ) -> Result<(), ApiError> {
        let fresh = |seen: &HashMap<i64, (HashSet<String>, Instant)>| {
            seen.get(&tenant_id)
                .filter(|(_, at)| at.elapsed() < self.ttl)
                .map(|(known, _)| queues.iter().all(|q| known.contains(*q)))
        };
        if fresh(&self.seen.lock().expect("queue cache lock")) == Some(true) {
            return Ok(());
        }
        let stale = fresh(&self.seen.lock().expect("queue cache lock")).is_none();
        if stale {
            let names: HashSet<String> = store.queue_names(tenant_id).await?.into_iter().collect();
            let mut seen = self.seen.lock().expect("queue cache lock");
            if seen.len() > 10_000 {
                seen.retain(|_, (_, at)| at.elapsed() < self.ttl);
            }
            seen.insert(tenant_id, (names, Instant::now()));
        }
        let mut seen = self.seen.lock().expect("queue cache lock");
        let (known, _) = seen
            .get_mut(&tenant_id)
            .expect("the tenant's queues were just read");
        let new: HashSet<&str> = queues
            .iter()
            .copied()
            .filter(|q| !known.contains(*q))
            .collect();
        if known.len() + new.len() > cap as usize {
            return Err(ApiError::unprocessable(format!(
                "queue: this tenant has jobs in {} queues and may have at most {cap} \
                 (limits.max_queues); enqueue on one of them, or let the admin raise the limit",
                known.len()
            )));
        }
        known.extend(new.into_iter().map(str::to_string));
        Ok(())
    }
}
