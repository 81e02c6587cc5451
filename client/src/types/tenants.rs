//! `/v1/tenants` (admin): a tenant, its limits, its tokens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::limits::{TenantLimitSpec, TenantLimits};

/// `POST /v1/tenants`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 1–64 of `A-Za-z0-9._-`, starting with a letter or digit.
    pub name: String,
    /// Limits to set; the rest take their defaults.
    #[serde(default)]
    pub limits: TenantLimitSpec,
    /// Origins its handlers may call over outbound HTTP: `https://api.example.com`,
    /// `https://*.example.com:8443` (subdomains only), `http://...` (reachable only inside
    /// networks the operator allows). At most 100; no IP addresses, no bare `*`. Empty (the
    /// default) allows nothing.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// `PATCH /v1/tenants/{name}`: the fields given replace the stored ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// Limits to change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<TenantLimitSpec>,
    /// The new allow-list (see `CreateTenant::allowed_hosts`), replacing the old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_hosts: Option<Vec<String>>,
}

/// A tenant as answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct TenantView {
    /// Its name.
    pub name: String,
    /// Its effective limits.
    pub limits: TenantLimits,
    /// Origins its handlers may call over outbound HTTP.
    pub allowed_hosts: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its token: only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `GET /v1/tenants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct TenantList {
    /// Every tenant, by name.
    pub tenants: Vec<TenantView>,
}

/// A token as listed; `token` only when it was just made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct TokenView {
    /// Its id, to revoke it by.
    pub id: Uuid,
    /// Its first characters.
    pub prefix: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The token itself: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `GET /v1/tenants/{name}/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct TokenList {
    /// The tenant's tokens, newest first.
    pub tokens: Vec<TokenView>,
}
