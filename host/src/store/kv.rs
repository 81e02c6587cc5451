//! The tenant key/value store behind the idempotency-store capability (reads only: writes
//! are applied by the group commit).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{Result, Store, int};
use crate::fair::Member;

/// How long a tenant's store usage is trusted before it is read again.
const USAGE_TTL: Duration = Duration::from_secs(5);

/// Tenants' store usage in bytes, as last read, shared by every clone of a [`Store`].
#[derive(Debug, Clone, Default)]
pub(super) struct UsageCache(Arc<Mutex<HashMap<i64, (u64, Instant)>>>);

impl UsageCache {
    /// Counts `bytes` just committed to a tenant's store, if its usage is cached.
    pub(super) fn add(&self, tenant_id: i64, bytes: u64) {
        let mut usage = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((used, _)) = usage.get_mut(&tenant_id) {
            *used += bytes;
        }
    }
}

/// Reads of one tenant's key/value store, for one attempt.
///
/// Guests' reads go to a small pool of their own
/// ([`GUEST_READ_CONNECTIONS`](super::GUEST_READ_CONNECTIONS)), shared fairly between tenants:
/// while several tenants' attempts read, each tenant has at most its share of those
/// connections reading at once, so one tenant's read loop slows only itself.
#[derive(Debug)]
pub struct KvBackend {
    store: Store,
    tenant_id: i64,
    /// The attempt's place on the guest-read pool, taken at its first read: an attempt that
    /// never reads costs nothing there, and its tenant takes no share of the pool.
    reader: OnceLock<Member>,
}

/// A read in progress: holds one of the tenant's turns on the guest-read pool until dropped.
struct Reading<'a>(&'a KvBackend);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        if let Some(reader) = self.0.reader.get() {
            self.0.store.guest_read_share.release(reader);
        }
    }
}

impl Store {
    /// Returns the bytes (keys plus values) in `tenant_id`'s key/value store, as counted at
    /// most a few seconds ago: what an attempt's write budget is cut to, so that a guest hears
    /// of a full store when it writes. The quota itself is enforced when a commit writes
    /// (`apply_writes` keeps the count in `spool.kv_usage` and refuses growth past
    /// `max_store_bytes`), whatever this figure said.
    pub async fn kv_usage(&self, tenant_id: i64) -> Result<u64> {
        let cached = self
            .kv_usage
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&tenant_id)
            .filter(|(_, at)| at.elapsed() < USAGE_TTL)
            .map(|(bytes, _)| *bytes);
        if let Some(bytes) = cached {
            return Ok(bytes);
        }
        let bytes: i64 = sqlx::query_scalar(
            "SELECT coalesce((SELECT bytes FROM spool.kv_usage WHERE tenant_id = $1), 0)",
        )
        .bind(tenant_id)
        .fetch_one(&self.pool)
        .await?;
        let bytes = bytes.max(0) as u64;
        self.kv_usage
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant_id, (bytes, Instant::now()));
        Ok(bytes)
    }

    /// Returns a reader of `tenant_id`'s key/value store, for one attempt.
    pub fn kv(&self, tenant_id: i64) -> KvBackend {
        KvBackend {
            store: self.clone(),
            tenant_id,
            reader: OnceLock::new(),
        }
    }
}

impl KvBackend {
    /// Waits for the tenant's turn on the guest-read pool.
    async fn reading(&self) -> Reading<'_> {
        let reader = self.reader.get_or_init(|| {
            self.store
                .guest_read_share
                .join(&self.tenant_id.to_string())
        });
        self.store.guest_read_share.acquire(reader).await;
        Reading(self)
    }

    /// Returns the value and version under `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, i64)>> {
        let _reading = self.reading().await;
        Ok(
            sqlx::query_as("SELECT value, version FROM spool.kv WHERE tenant_id = $1 AND key = $2")
                .bind(self.tenant_id)
                .bind(key)
                .fetch_optional(&self.store.guest_reads)
                .await?,
        )
    }

    /// Returns up to `limit` keys starting with `prefix`, in byte order, after `after`.
    pub async fn list_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        let _reading = self.reading().await;
        Ok(sqlx::query_scalar(include_str!("sql/kv_list_keys.sql"))
            .bind(self.tenant_id)
            .bind(prefix)
            .bind(after)
            .bind(int(limit.into()))
            .fetch_all(&self.store.guest_reads)
            .await?)
    }
}
