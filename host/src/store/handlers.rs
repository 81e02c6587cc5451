//! Handlers and their versions (component bytes, digests).

use sqlx::Row;

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
}

impl Store {
    /// Stores `component` as the new current version of handler `name`, unless its digest is
    /// the current version's already.
    pub async fn handler_put(
        &self,
        tenant_id: i64,
        name: &str,
        digest: &str,
        component: &[u8],
    ) -> Result<HandlerVersion> {
        let row = sqlx::query(include_str!("sql/handler_put.sql"))
            .bind(tenant_id)
            .bind(name)
            .bind(digest)
            .bind(component)
            .fetch_one(&self.pool)
            .await?;
        Ok(HandlerVersion {
            name: name.to_string(),
            version: row.try_get("version")?,
            digest: row.try_get("digest")?,
            size: row.try_get::<i32, _>("size")? as i64,
            created: row.try_get("created")?,
        })
    }

    /// Returns the component bytes of one handler version.
    pub async fn handler_component(
        &self,
        tenant_id: i64,
        name: &str,
        version: i32,
    ) -> Result<Vec<u8>> {
        Ok(sqlx::query_scalar(
            "SELECT component FROM spool.handler_versions
             WHERE tenant_id = $1 AND name = $2 AND version = $3",
        )
        .bind(tenant_id)
        .bind(name)
        .bind(version)
        .fetch_one(&self.pool)
        .await?)
    }
}
