//! `/v1/handlers`: upload (validated and compiled before it is stored), list, show, delete.
//!
//! Uploads are a compile service, so they are metered: a rate per tenant ([`UploadLimiter`]),
//! a bounded number waiting for the uploads' compile gate (past it, 503), and a bounded
//! number of versions kept per handler.

use std::num::NonZeroU32;

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use spool_client::types::{HandlerDetail, HandlerList, HandlerView, VersionView};

use super::auth::Scope;
use super::error::ApiPath;
use super::{ApiError, ApiResult, State};
use crate::model::is_valid_name;
use crate::runtime::ValidationError;
use crate::store::{HandlerInfo, StoreError, VersionInfo};

impl From<HandlerInfo> for HandlerView {
    fn from(h: HandlerInfo) -> HandlerView {
        HandlerView {
            name: h.name,
            version: h.version,
            digest: h.digest,
            size: h.size,
            updated_at: Some(h.updated_at),
        }
    }
}

/// Tenants whose upload budgets a process tracks before it forgets the full ones.
const LIMITER_MAX_KEYS: usize = 10_000;

/// Each tenant's upload budget: a token bucket of [`ApiConfig::uploads_per_minute`] uploads
/// (as a burst, then evenly), per process.
///
/// [`ApiConfig::uploads_per_minute`]: super::ApiConfig::uploads_per_minute
#[derive(Debug)]
pub struct UploadLimiter {
    per_minute: u32,
    buckets: DefaultKeyedRateLimiter<i64>,
}

impl UploadLimiter {
    /// Returns a limiter letting each tenant upload `per_minute` times a minute (at least 1).
    pub fn new(per_minute: u32) -> UploadLimiter {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        UploadLimiter {
            per_minute: per_minute.get(),
            buckets: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// Takes one upload from `tenant`'s budget, or answers 429 saying when to come back.
    fn check(&self, tenant: i64) -> ApiResult<()> {
        if self.buckets.len() > LIMITER_MAX_KEYS {
            self.buckets.retain_recent();
        }
        self.buckets.check_key(&tenant).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::too_many(format!(
                "upload rate exceeded: a tenant may upload {} components a minute; retry later",
                self.per_minute
            ))
            .with_retry_after(wait)
        })
    }
}

/// Answers a component that could not be loaded.
fn refused(e: ValidationError, too_large: impl FnOnce() -> ApiError) -> ApiError {
    match e {
        ValidationError::TooLarge { .. } => too_large(),
        ValidationError::Busy(wait) => ApiError::unavailable(e.to_string()).with_retry_after(wait),
        // The host's failure, not the component's.
        ValidationError::Compiler(_) => ApiError::internal(e),
        e => ApiError::unprocessable(e.to_string()),
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "handler names are 1-64 characters of A-Za-z0-9._-, starting with a letter or digit",
        ))
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("no handler named {name:?}"))
}

/// Uploads a component as the handler's new version. It is validated and compiled (off the
/// request threads, time-, CPU- and memory-bounded) before anything is stored; jobs enqueued
/// from now on run it. The handler's versions past the newest
/// [`ApiConfig::handler_versions_kept`](super::ApiConfig::handler_versions_kept) are deleted,
/// except those a pending job is pinned to.
///
/// Each tenant may upload [`ApiConfig::uploads_per_minute`](super::ApiConfig::uploads_per_minute)
/// times a minute (429 past it); when too many uploads are compiling or waiting to, 503.
#[utoipa::path(put, path = "/v1/handlers/{name}", tag = "handlers", params(("name" = String, Path, description = "The handler's name")),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = HandlerView, description = "a new version"),
              (status = 200, body = HandlerView, description = "already the current version"),
              (status = 413), (status = 422, description = "not a valid handler component, or its compile went over its time, CPU or memory limit"),
              (status = 429, description = "the tenant's upload rate is exceeded; see Retry-After"),
              (status = 503, description = "too many uploads are being compiled; see Retry-After")),
    security(("bearer" = [])))]
pub async fn upload(
    state: State,
    Scope(tenant): Scope,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<HandlerView>)> {
    check_name(&name)?;
    state.uploads.check(tenant.id)?;
    // Before the body is read: uploads beyond the places are refused without holding theirs.
    let slot = state
        .runtime
        .upload_slot()
        .map_err(|e| refused(e, || ApiError::internal("a slot is never too large")))?;
    let limit = tenant
        .effective_limits()
        .max_component_bytes
        .min(state.runtime.config().max_component_bytes as u64) as usize;
    let too_large = || {
        ApiError::too_large(format!(
            "the component is over this tenant's limit of {limit} bytes"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty: send the component bytes (application/wasm)",
        ));
    }
    let prepared = state
        .runtime
        .load_upload(&slot, &bytes)
        .await
        .map_err(|e| refused(e, too_large))?;
    drop(slot);
    let stored = state
        .store
        .handler_put_keeping(
            tenant.id,
            &name,
            prepared.digest(),
            &bytes,
            Some(state.config.handler_versions_kept),
        )
        .await?;
    if stored.pruned > 0 {
        tracing::info!(tenant = %tenant.name, handler = %name, pruned = stored.pruned, "deleted old handler versions");
    }
    let status = if stored.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(HandlerView {
            name: stored.name,
            version: stored.version,
            digest: stored.digest,
            size: stored.size,
            updated_at: None,
        }),
    ))
}

/// Lists the tenant's handlers.
#[utoipa::path(get, path = "/v1/handlers", tag = "handlers",
    responses((status = 200, body = HandlerList)), security(("bearer" = [])))]
pub async fn list(state: State, Scope(tenant): Scope) -> ApiResult<Json<HandlerList>> {
    let handlers = state.store.handler_list(tenant.id).await?;
    Ok(Json(HandlerList {
        handlers: handlers.into_iter().map(HandlerView::from).collect(),
    }))
}

/// Shows a handler and its versions.
#[utoipa::path(get, path = "/v1/handlers/{name}", tag = "handlers", params(("name" = String, Path, description = "The handler's name")),
    responses((status = 200, body = HandlerDetail), (status = 404)), security(("bearer" = [])))]
pub async fn show(
    state: State,
    Scope(tenant): Scope,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<HandlerDetail>> {
    check_name(&name)?;
    let (current, versions) = match state.store.handler_get(tenant.id, &name).await {
        Err(StoreError::NotFound) => return Err(not_found(&name)),
        r => r?,
    };
    Ok(Json(HandlerDetail {
        current: current.into(),
        versions: versions
            .into_iter()
            .map(|v: VersionInfo| VersionView {
                version: v.version,
                digest: v.digest,
                size: v.size,
                created_at: v.created_at,
            })
            .collect(),
    }))
}

/// Deletes a handler and its versions; its pending jobs fail permanently when they run.
#[utoipa::path(delete, path = "/v1/handlers/{name}", tag = "handlers", params(("name" = String, Path, description = "The handler's name")),
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn delete(
    state: State,
    Scope(tenant): Scope,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    check_name(&name)?;
    match state.store.handler_delete(tenant.id, &name).await {
        Err(StoreError::NotFound) => Err(not_found(&name)),
        r => {
            r?;
            state.handlers.forget(tenant.id, &name);
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
