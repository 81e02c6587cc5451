//! The tenant key/value store behind the idempotency-store capability (reads only: writes
//! are applied by the group commit).

use sqlx::Row;

use super::{Result, Store, int};

/// Reads of one tenant's key/value store.
#[derive(Debug, Clone)]
pub struct KvBackend {
    store: Store,
    tenant_id: i64,
}

impl Store {
    /// Returns a reader of `tenant_id`'s key/value store.
    pub fn kv(&self, tenant_id: i64) -> KvBackend {
        KvBackend {
            store: self.clone(),
            tenant_id,
        }
    }
}

impl KvBackend {
    /// Returns the value and version under `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, i64)>> {
        let row =
            sqlx::query("SELECT value, version FROM spool.kv WHERE tenant_id = $1 AND key = $2")
                .bind(self.tenant_id)
                .bind(key)
                .fetch_optional(&self.store.pool)
                .await?;
        row.map(|r| Ok((r.try_get("value")?, r.try_get("version")?)))
            .transpose()
    }

    /// Returns up to `limit` keys starting with `prefix`, in byte order, after `after`.
    pub async fn list_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(include_str!("sql/kv_list_keys.sql"))
            .bind(self.tenant_id)
            .bind(prefix)
            .bind(after)
            .bind(int(limit.into()))
            .fetch_all(&self.store.pool)
            .await?)
    }
}
