//! Tenants and their API tokens.

use chrono::{DateTime, Utc};
use sqlx::FromRow as _;
use uuid::Uuid;

use super::{Result, Store};
use crate::model::{TenantLimitSpec, TenantLimits};

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Its id, used in every tenant-owned key.
    pub id: i64,
    /// Its unique name.
    pub name: String,
    /// The limits it was given explicitly (the rest are defaults).
    pub limits: TenantLimitSpec,
    /// Hosts its handlers may reach over outbound HTTP.
    pub allowed_hosts: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Tenant {
    /// Its effective limits.
    pub fn effective_limits(&self) -> TenantLimits {
        TenantLimits::resolve(&self.limits)
    }
}

/// One of a tenant's API tokens, as listed (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenInfo {
    /// The token's id.
    pub id: Uuid,
    /// Its first characters.
    pub prefix: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "t.id, t.name, t.limits, t.allowed_hosts, t.created_at";

/// A row of `COLUMNS`.
#[derive(sqlx::FromRow)]
struct TenantRow {
    id: i64,
    name: String,
    limits: serde_json::Value,
    allowed_hosts: Vec<String>,
    created_at: DateTime<Utc>,
}

fn tenant(row: sqlx::postgres::PgRow) -> Result<Tenant> {
    let row = TenantRow::from_row(&row)?;
    Ok(Tenant {
        id: row.id,
        name: row.name,
        // Limits are written by Spool only; a spec this version cannot read means defaults.
        limits: serde_json::from_value(row.limits).unwrap_or_default(),
        allowed_hosts: row.allowed_hosts,
        created_at: row.created_at,
    })
}

fn max_running(limits: &TenantLimitSpec) -> i32 {
    TenantLimits::resolve(limits)
        .max_running
        .min(i32::MAX as u32) as i32
}

impl Store {
    /// Creates a tenant; `token` is the SHA-256 and display prefix of its first API token, if
    /// it has one.
    pub async fn tenant_create(
        &self,
        name: &str,
        limits: &TenantLimitSpec,
        token: Option<(&[u8], &str)>,
    ) -> Result<Tenant> {
        self.tenant_create_with_hosts(name, limits, &[], token)
            .await
    }

    /// Creates a tenant whose handlers may reach `allowed_hosts`, with its first token (see
    /// [`Store::tenant_create`]): all of it or, on any error, nothing.
    pub async fn tenant_create_with_hosts(
        &self,
        name: &str,
        limits: &TenantLimitSpec,
        allowed_hosts: &[String],
        token: Option<(&[u8], &str)>,
    ) -> Result<Tenant> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "INSERT INTO spool.tenants AS t (name, limits, max_running, allowed_hosts)
             VALUES ($1, $2, $3, $4)
             RETURNING t.id, t.name, t.limits, t.allowed_hosts, t.created_at",
        )
        .bind(name)
        .bind(serde_json::to_value(limits).expect("limits serialize"))
        .bind(max_running(limits))
        .bind(allowed_hosts)
        .fetch_one(&mut *tx)
        .await?;
        let tenant = tenant(row)?;
        if let Some((hash, prefix)) = token {
            token_insert(&mut tx, tenant.id, hash, prefix).await?;
        }
        tx.commit().await?;
        Ok(tenant)
    }

    /// Returns the tenant named `name`.
    pub async fn tenant_get(&self, name: &str) -> Result<Tenant> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM spool.tenants t WHERE t.name = $1"
        ))
        .bind(name)
        .fetch_one(&self.pool)
        .await?;
        tenant(row)
    }

    /// Returns every tenant, by name.
    pub async fn tenant_list(&self) -> Result<Vec<Tenant>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM spool.tenants t ORDER BY t.name"
        ))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(tenant)
        .collect()
    }

    /// Replaces a tenant's explicit limits and, when given, its allowed hosts.
    pub async fn tenant_update(
        &self,
        name: &str,
        limits: &TenantLimitSpec,
        allowed_hosts: Option<&[String]>,
    ) -> Result<Tenant> {
        let row = sqlx::query(
            "UPDATE spool.tenants t
             SET limits = $2, max_running = $3, allowed_hosts = coalesce($4, t.allowed_hosts)
             WHERE t.name = $1
             RETURNING t.id, t.name, t.limits, t.allowed_hosts, t.created_at",
        )
        .bind(name)
        .bind(serde_json::to_value(limits).expect("limits serialize"))
        .bind(max_running(limits))
        .bind(allowed_hosts)
        .fetch_one(&self.pool)
        .await?;
        tenant(row)
    }

    /// Returns the tenant holding an unrevoked token that hashes to `token_hash`.
    pub async fn tenant_by_token(&self, token_hash: &[u8]) -> Result<Tenant> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM spool.tenant_tokens k JOIN spool.tenants t ON t.id = k.tenant_id
             WHERE k.hash = $1 AND k.revoked_at IS NULL"
        ))
        .bind(token_hash)
        .fetch_one(&self.pool)
        .await?;
        tenant(row)
    }

    /// Adds an API token (by its hash) to a tenant.
    pub async fn token_create(
        &self,
        tenant_id: i64,
        hash: &[u8],
        prefix: &str,
    ) -> Result<TokenInfo> {
        let mut conn = self.pool.acquire().await?;
        token_insert(&mut conn, tenant_id, hash, prefix).await
    }

    /// Lists a tenant's tokens, newest first.
    pub async fn token_list(&self, tenant_id: i64) -> Result<Vec<TokenInfo>> {
        sqlx::query(
            "SELECT id, prefix, created_at, revoked_at FROM spool.tenant_tokens
             WHERE tenant_id = $1 ORDER BY created_at DESC",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(token_info)
        .collect()
    }

    /// Revokes a token. Returns the hash it had, for caches to forget, or `NotFound`.
    pub async fn token_revoke(&self, tenant_id: i64, id: Uuid) -> Result<Vec<u8>> {
        Ok(sqlx::query_scalar(
            "UPDATE spool.tenant_tokens SET revoked_at = coalesce(revoked_at, now())
             WHERE tenant_id = $1 AND id = $2 RETURNING hash",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }
}

fn token_info(row: sqlx::postgres::PgRow) -> Result<TokenInfo> {
    Ok(TokenInfo::from_row(&row)?)
}

async fn token_insert(
    conn: &mut sqlx::PgConnection,
    tenant_id: i64,
    hash: &[u8],
    prefix: &str,
) -> Result<TokenInfo> {
    let row = sqlx::query(
        "INSERT INTO spool.tenant_tokens (tenant_id, id, hash, prefix) VALUES ($1, $2, $3, $4)
         RETURNING id, prefix, created_at, revoked_at",
    )
    .bind(tenant_id)
    .bind(Uuid::new_v4())
    .bind(hash)
    .bind(prefix)
    .fetch_one(conn)
    .await?;
    token_info(row)
}
