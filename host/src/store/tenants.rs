//! Tenants.

use sqlx::Row;

use super::{Result, Store};
use crate::model::LimitSpec;

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Its id, used in every tenant-owned key.
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// Its per-attempt caps.
    pub limits: LimitSpec,
    /// The most of its jobs that may run at once.
    pub max_running: u32,
}

fn tenant(row: sqlx::postgres::PgRow) -> Result<Tenant> {
    let limits: serde_json::Value = row.try_get("limits")?;
    Ok(Tenant {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        limits: serde_json::from_value(limits).unwrap_or_default(),
        max_running: row.try_get::<i32, _>("max_running")? as u32,
    })
}

impl Store {
    /// Creates a tenant; `token_hash` is the SHA-256 of its API token, if it has one.
    pub async fn tenant_create(
        &self,
        name: &str,
        limits: &LimitSpec,
        max_running: u32,
        token_hash: Option<&[u8]>,
    ) -> Result<Tenant> {
        let row = sqlx::query(
            "INSERT INTO spool.tenants (name, limits, max_running, token_hash)
             VALUES ($1, $2, $3, $4) RETURNING id, name, limits, max_running",
        )
        .bind(name)
        .bind(serde_json::to_value(limits).expect("limits serialize"))
        .bind(max_running.min(i32::MAX as u32) as i32)
        .bind(token_hash)
        .fetch_one(&self.pool)
        .await?;
        tenant(row)
    }

    /// Returns the tenant named `name`.
    pub async fn tenant_get(&self, name: &str) -> Result<Tenant> {
        let row =
            sqlx::query("SELECT id, name, limits, max_running FROM spool.tenants WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
        tenant(row)
    }

    /// Returns the tenant whose token hashes to `token_hash`.
    pub async fn tenant_by_token(&self, token_hash: &[u8]) -> Result<Tenant> {
        let row = sqlx::query(
            "SELECT id, name, limits, max_running FROM spool.tenants WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_one(&self.pool)
        .await?;
        tenant(row)
    }
}
