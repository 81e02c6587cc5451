//! `/v1/handlers`: upload (validated and compiled before it is stored), list, show, delete.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Scope;
use super::error::ApiPath;
use super::{ApiError, ApiResult, State};
use crate::model::is_valid_name;
use crate::runtime::ValidationError;
use crate::store::{HandlerInfo, StoreError, VersionInfo};

/// A handler's current version.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandlerView {
    /// The handler name.
    pub name: String,
    /// The current version, from 1.
    pub version: i32,
    /// The component's SHA-256, hex.
    pub digest: String,
    /// The component's size in bytes.
    pub size: i64,
    /// When the current version was uploaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

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

/// `GET /v1/handlers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandlerList {
    /// The tenant's handlers, by name.
    pub handlers: Vec<HandlerView>,
}

/// One stored version.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// The version number.
    pub version: i32,
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: i64,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/handlers/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandlerDetail {
    /// The current version.
    #[serde(flatten)]
    pub current: HandlerView,
    /// Every version, newest first.
    pub versions: Vec<VersionView>,
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
/// request threads, time-bounded) before anything is stored; jobs enqueued from now on run it.
#[utoipa::path(put, path = "/v1/handlers/{name}", tag = "handlers", params(("name" = String, Path, description = "The handler's name")),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = HandlerView, description = "a new version"),
              (status = 200, body = HandlerView, description = "already the current version"),
              (status = 413), (status = 422, description = "not a valid handler component")),
    security(("bearer" = [])))]
pub async fn upload(
    state: State,
    Scope(tenant): Scope,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<HandlerView>)> {
    check_name(&name)?;
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
    let prepared = state.runtime.load(&bytes).await.map_err(|e| match e {
        ValidationError::TooLarge { .. } => too_large(),
        e => ApiError::unprocessable(e.to_string()),
    })?;
    let stored = state
        .store
        .handler_put(tenant.id, &name, prepared.digest(), &bytes)
        .await?;
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
