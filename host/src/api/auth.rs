//! Bearer tokens: the admin token, and tenants' tokens (random, shown once, stored as their
//! SHA-256, revocable).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Query};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::store::{StoreError, Tenant};

/// Returns the SHA-256 of a token, as stored.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Makes a new tenant token: `spool_` and 32 random bytes, base64url. Returns the token, its
/// hash and the prefix shown in listings.
pub fn new_token() -> (String, [u8; 32], String) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let token = format!(
        "spool_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_token(&token);
    let prefix = token[..12].to_string();
    (token, hash, prefix)
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The admin token.
    Admin,
    /// A tenant's token.
    Tenant(Arc<Tenant>),
}

/// The tenant a request acts for: the caller's own, or, for the admin, the one named by
/// `?tenant=NAME`.
#[derive(Debug, Clone)]
pub struct Scope(pub Arc<Tenant>);

/// A caller that must be the admin.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

/// A cached tenant, and when it was read.
type Cached = (Arc<Tenant>, Instant);

/// Tenants by token hash, cached briefly so that an enqueue costs no extra query.
#[derive(Debug)]
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], Cached>>,
}

impl TokenCache {
    /// Returns an empty cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> TokenCache {
        TokenCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, hash: &[u8; 32]) -> Option<Arc<Tenant>> {
        let entries = self.entries.lock().expect("token cache lock");
        entries
            .get(hash)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(t, _)| t.clone())
    }

    fn put(&self, hash: [u8; 32], tenant: Arc<Tenant>) {
        let mut entries = self.entries.lock().expect("token cache lock");
        if entries.len() > 10_000 {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        entries.insert(hash, (tenant, Instant::now()));
    }

    /// Forgets everything: after a token is revoked or a tenant's limits change.
    pub fn clear(&self) {
        self.entries.lock().expect("token cache lock").clear();
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(token.trim())
        }
        _ => Err(ApiError::unauthorized(
            "expected Authorization: Bearer <token>",
        )),
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Caller, ApiError> {
        let token = bearer(parts)?;
        let hash = hash_token(token);
        // Compare digests, not the tokens: equal-length and independent of where they differ.
        if !state.config.admin_token.is_empty() && hash == hash_token(&state.config.admin_token) {
            return Ok(Caller::Admin);
        }
        if let Some(tenant) = state.tokens.get(&hash) {
            return Ok(Caller::Tenant(tenant));
        }
        match state.store.tenant_by_token(&hash).await {
            Ok(tenant) => {
                let tenant = Arc::new(tenant);
                state.tokens.put(hash, tenant.clone());
                Ok(Caller::Tenant(tenant))
            }
            Err(StoreError::NotFound) => Err(ApiError::unauthorized(
                "the token is not valid (unknown or revoked)",
            )),
            Err(e) => Err(e.into()),
        }
    }
}

#[derive(Deserialize)]
struct TenantParam {
    tenant: Option<String>,
}

impl FromRequestParts<Arc<AppState>> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Scope, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Query(param) = Query::<TenantParam>::try_from_uri(&parts.uri)
            .unwrap_or(Query(TenantParam { tenant: None }));
        match (caller, param.tenant) {
            (Caller::Tenant(tenant), None) => Ok(Scope(tenant)),
            (Caller::Tenant(tenant), Some(name)) if name == tenant.name => Ok(Scope(tenant)),
            (Caller::Tenant(_), Some(_)) => Err(ApiError::forbidden(
                "only the admin token may act for another tenant",
            )),
            (Caller::Admin, Some(name)) => match state.store.tenant_get(&name).await {
                Ok(tenant) => Ok(Scope(Arc::new(tenant))),
                Err(StoreError::NotFound) => {
                    Err(ApiError::not_found(format!("no tenant named {name:?}")))
                }
                Err(e) => Err(e.into()),
            },
            (Caller::Admin, None) => Err(ApiError::bad_request(
                "the admin token acts for a tenant only with ?tenant=NAME",
            )),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Admin, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Admin => Ok(Admin),
            Caller::Tenant(_) => Err(ApiError::forbidden("this endpoint needs the admin token")),
        }
    }
}
