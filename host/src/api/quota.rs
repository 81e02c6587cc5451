//! Enqueue checks the API adds to the tenant's quotas (`crate::quota`): a short-lived
//! memory of which handlers exist, and of which queues a tenant has jobs in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ApiError;
use crate::quota::QuotaError;
use crate::store::Store;

impl From<QuotaError> for ApiError {
    fn from(e: QuotaError) -> ApiError {
        match e {
            QuotaError::Store(e) => e.into(),
            e @ QuotaError::Queues { .. } => ApiError::unprocessable(e.to_string()),
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
