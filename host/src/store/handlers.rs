//! Handlers and their versions (component bytes, digests).

use super::{Result, Store};

/// One stored version of a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerVersion {
    /// The handler name.
    pub name: String,
    /// The version number, from 1.
    pub version: i32,
    /// The component's digest (hex SHA-256).
    pub digest: String,
    /// The component's size in bytes.
    pub size: i64,
    /// Whether this call made a new version (false: the digest was already current).
    pub created: bool,
    /// How many old versions this call deleted ([`Store::handler_put_keeping`]).
    pub pruned: u64,
}

/// The fewest versions of a handler [`Store::handler_put_keeping`] keeps: the current one and
/// the one before it, which an enqueue running during the upload may have pinned.
pub const HANDLER_VERSIONS_KEPT_MIN: u32 = 2;

impl Store {
    /// Stores `component` as the new current version of handler `name`, unless its digest is
    /// the current version's already. Concurrent uploads of one handler are taken one after
    /// the other, each numbered after the highest version the handler ever had. Keeps every
    /// older version: see [`handler_put_keeping`](Self::handler_put_keeping).
    pub async fn handler_put(
        &self,
        tenant_id: i64,
        name: &str,
        digest: &str,
        component: &[u8],
    ) -> Result<HandlerVersion> {
        self.handler_put_keeping(tenant_id, name, digest, component, None)
            .await
    }

    /// Stores `component` as [`handler_put`](Self::handler_put) does and, when that made a
    /// new version and `keep` is given, deletes in the same transaction the handler's
    /// versions older than its newest `keep` (at least [`HANDLER_VERSIONS_KEPT_MIN`]), except
    /// those a job not yet finished is pinned to.
    pub async fn handler_put_keeping(
        &self,
        tenant_id: i64,
        name: &str,
        digest: &str,
        component: &[u8],
        keep: Option<u32>,
    ) -> Result<HandlerVersion> {
        let mut tx = self.pool.begin().await?;
        // A row lock cannot cover a handler that does not exist yet, and the statement's
        // snapshot is taken before it would wait: serialise on the name instead, so that the
        // statement below starts after the upload before it committed.
        sqlx::query(include_str!("sql/handler_lock.sql"))
            .bind(tenant_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let row: PutRow = sqlx::query_as(include_str!("sql/handler_put.sql"))
            .bind(tenant_id)
            .bind(name)
            .bind(digest)
            .bind(component)
            .fetch_one(&mut *tx)
            .await?;
        let pruned = match keep {
            Some(keep) if row.created => {
                let keep = i64::from(keep.max(HANDLER_VERSIONS_KEPT_MIN));
                sqlx::query(include_str!("sql/handler_version_prune.sql"))
                    .bind(tenant_id)
                    .bind(name)
                    .bind(keep)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
            _ => 0,
        };
        tx.commit().await?;
        Ok(HandlerVersion {
            name: name.to_string(),
            version: row.version,
            digest: row.digest,
            size: row.size.into(),
            created: row.created,
            pruned,
        })
    }

    /// Returns the component bytes of one handler version.
    pub async fn handler_component(
        &self,
        tenant_id: i64,
        name: &str,
        version: i32,
    ) -> Result<Vec<u8>> {
        Ok(
            sqlx::query_scalar(include_str!("sql/handler_component.sql"))
                .bind(tenant_id)
                .bind(name)
                .bind(version)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// A row of `handler_put.sql`.
#[derive(sqlx::FromRow)]
struct PutRow {
    version: i32,
    digest: String,
    size: i32,
    created: bool,
}

/// A handler and its current version, as listed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HandlerInfo {
    /// The handler name.
    pub name: String,
    /// The current version.
    pub version: i32,
    /// The current version's digest.
    pub digest: String,
    /// The current version's size in bytes.
    pub size: i64,
    /// When the current version was uploaded.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// One version of a handler, as listed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VersionInfo {
    /// The version number.
    pub version: i32,
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: i64,
    /// When it was uploaded.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl Store {
    /// Lists a tenant's handlers, by name.
    pub async fn handler_list(&self, tenant_id: i64) -> Result<Vec<HandlerInfo>> {
        Ok(sqlx::query_as(include_str!("sql/handler_info.sql"))
            .bind(tenant_id)
            .bind(None::<&str>)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Returns one handler's current version and every version, newest first.
    pub async fn handler_get(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> Result<(HandlerInfo, Vec<VersionInfo>)> {
        let info = sqlx::query_as(include_str!("sql/handler_info.sql"))
            .bind(tenant_id)
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        let versions = sqlx::query_as(include_str!("sql/handler_versions.sql"))
            .bind(tenant_id)
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        Ok((info, versions))
    }

    /// Deletes a handler and its versions. Jobs still pending for it fail when they run. The
    /// highest version number is remembered: a later upload is numbered after it.
    /// Returns `NotFound` when there was none.
    pub async fn handler_delete(&self, tenant_id: i64, name: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Not in the middle of an upload of the same handler (see handler_put).
        sqlx::query(include_str!("sql/handler_lock.sql"))
            .bind(tenant_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(include_str!("sql/handler_delete.sql"))
            .bind(tenant_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(super::StoreError::NotFound)?;
        tx.commit().await?;
        Ok(())
    }

    /// Returns which of `names` are handlers of the tenant.
    pub async fn handler_existing(&self, tenant_id: i64, names: &[&str]) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM spool.handlers WHERE tenant_id = $1 AND name = ANY($2)",
        )
        .bind(tenant_id)
        .bind(names)
        .fetch_all(&self.pool)
        .await?)
    }
}
