//! Bearer tokens: the admin token, and tenants' tokens (random, shown once, stored as their
//! SHA-256, revocable).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Query};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine as _;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::store::{StoreError, Tenant};

/// Returns the SHA-256 of a token, as stored.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The prefix of every tenant token.
const TOKEN_PREFIX: &str = "spool_";
/// The length of a tenant token: the prefix and 32 bytes in unpadded base64url.
const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;

/// Returns whether `token` has the shape [`new_token`] gives tokens (`spool_` and 43
/// base64url characters): anything else cannot be a tenant's token, and is refused without
/// asking the database.
pub fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Makes a new tenant token: `spool_` and 32 random bytes, base64url. Returns the token, its
/// hash and the prefix shown in listings.
pub fn new_token() -> (String, [u8; 32], String) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let token = format!(
        "{TOKEN_PREFIX}{}",
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

    /// Forgets one tenant's tokens: after one is revoked or the tenant's limits change. Other
    /// tenants' stay cached, so a change costs no burst of lookups for everyone.
    pub fn forget_tenant(&self, tenant_id: i64) {
        self.entries
            .lock()
            .expect("token cache lock")
            .retain(|_, (tenant, _)| tenant.id != tenant_id);
    }
}

/// How long a token the database did not know is refused without asking it again. Tokens
/// are random, so none is refused that was made since: and making one here forgets them all.
const UNKNOWN_TTL: Duration = Duration::from_secs(60);
/// How many unknown tokens are remembered, at most.
const UNKNOWN_MAX: usize = 10_000;
/// How many addresses the failure throttle tracks before it forgets the quiet ones.
const THROTTLE_MAX_KEYS: usize = 10_000;

/// Makes refusing a bad token cheap: tokens the database did not know are remembered for a
/// while (so a repeat costs no query), and each client address may fail to authenticate only
/// so often (past it: 429 with `Retry-After`, again without a query).
#[derive(Debug)]
pub struct AuthGuard {
    unknown: Mutex<lru::LruCache<[u8; 32], Instant>>,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses over their failure budget, and until when.
    throttled: Mutex<HashMap<IpAddr, Instant>>,
}

impl AuthGuard {
    /// Returns a guard letting each client address fail `failures_per_minute` times a minute
    /// (as a burst, then one every `60 / failures_per_minute` seconds).
    pub fn new(failures_per_minute: u32) -> AuthGuard {
        let per_minute = NonZeroU32::new(failures_per_minute).unwrap_or(NonZeroU32::MIN);
        AuthGuard {
            unknown: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(UNKNOWN_MAX).expect("a positive capacity"),
            )),
            failures: RateLimiter::keyed(Quota::per_minute(per_minute)),
            throttled: Mutex::new(HashMap::new()),
        }
    }

    /// Returns whether the database recently said it knows no token hashing to `hash`.
    fn is_unknown(&self, hash: &[u8; 32]) -> bool {
        let mut unknown = self.unknown.lock().unwrap_or_else(|e| e.into_inner());
        match unknown.get(hash) {
            Some(at) if at.elapsed() < UNKNOWN_TTL => true,
            Some(_) => {
                unknown.pop(hash);
                false
            }
            None => false,
        }
    }

    fn remember_unknown(&self, hash: [u8; 32]) {
        let mut unknown = self.unknown.lock().unwrap_or_else(|e| e.into_inner());
        unknown.put(hash, Instant::now());
    }

    /// Forgets every unknown token: a token was just made.
    pub fn forget_unknown(&self) {
        self.unknown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Returns how long `ip` must wait before it may try again, if it is throttled.
    fn throttled(&self, ip: IpAddr) -> Option<Duration> {
        let throttled = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        let until = *throttled.get(&ip)?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failure of `ip` and returns the answer: `refusal`, or 429 once `ip` is over
    /// its budget.
    fn failed(&self, ip: IpAddr, refusal: ApiError) -> ApiError {
        if self.failures.len() > THROTTLE_MAX_KEYS {
            self.failures.retain_recent();
        }
        match self.failures.check_key(&ip) {
            Ok(()) => refusal,
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let mut throttled = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
                if throttled.len() > THROTTLE_MAX_KEYS {
                    let now = Instant::now();
                    throttled.retain(|_, until| *until > now);
                }
                throttled.insert(ip, Instant::now() + wait);
                too_many_failures(wait)
            }
        }
    }
}

fn too_many_failures(wait: Duration) -> ApiError {
    ApiError::too_many("too many failed attempts to authenticate from this address; wait")
        .with_retry_after(wait)
}

/// The address a request came from, as the listener saw it (a proxy in front is one
/// address); the unspecified address when the router is not served with connection info.
fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
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
        let ip = client_ip(parts);
        let guard = &state.auth;
        let token = bearer(parts).map_err(|e| guard.failed(ip, e))?;
        let hash = hash_token(token);
        // Compare digests, not the tokens: equal-length and independent of where they differ.
        if !state.config.admin_token.is_empty() && hash == hash_token(&state.config.admin_token) {
            return Ok(Caller::Admin);
        }
        if let Some(tenant) = state.tokens.get(&hash) {
            return Ok(Caller::Tenant(tenant));
        }
        if let Some(wait) = guard.throttled(ip) {
            return Err(too_many_failures(wait));
        }
        let refusal = || ApiError::unauthorized("the token is not valid (unknown or revoked)");
        if !is_well_formed(token) || guard.is_unknown(&hash) {
            return Err(guard.failed(ip, refusal()));
        }
        match state.store.tenant_by_token(&hash).await {
            Ok(tenant) => {
                let tenant = Arc::new(tenant);
                state.tokens.put(hash, tenant.clone());
                Ok(Caller::Tenant(tenant))
            }
            Err(StoreError::NotFound) => {
                guard.remember_unknown(hash);
                Err(guard.failed(ip, refusal()))
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_well_formed_and_little_else_is() {
        for _ in 0..100 {
            assert!(is_well_formed(&new_token().0));
        }
        let token = new_token().0;
        assert!(!is_well_formed(&token[1..]));
        assert!(!is_well_formed(&format!("{token}x")));
        assert!(!is_well_formed(&token.replace("spool_", "sp00l_")));
        assert!(!is_well_formed(&format!("{}+", &token[..TOKEN_LEN - 1])));
        assert!(!is_well_formed(""));
        assert!(!is_well_formed("test-admin-token-0123456789"));
    }

    #[test]
    fn an_address_is_throttled_after_its_failures() {
        let guard = AuthGuard::new(3);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for _ in 0..3 {
            let e = guard.failed(ip, ApiError::unauthorized("no"));
            assert_eq!(e.status().as_u16(), 401);
        }
        assert_eq!(
            guard
                .failed(ip, ApiError::unauthorized("no"))
                .status()
                .as_u16(),
            429
        );
        assert!(guard.throttled(ip).is_some());
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert!(guard.throttled(other).is_none());
        assert_eq!(
            guard
                .failed(other, ApiError::unauthorized("no"))
                .status()
                .as_u16(),
            401
        );
    }
}
