//! `/v1/tenants` (admin): create, list, change limits; tenants' tokens.

use axum::Json;
use axum::http::StatusCode;
use spool_client::types::{
    CreateTenant, TenantList, TenantView, TokenList, TokenView, UpdateTenant,
};
use uuid::Uuid;

use super::auth::{Admin, new_token};
use super::error::{ApiJson, ApiPath};
use super::{ApiError, ApiResult, State};
use crate::model::{AllowList, TenantLimitSpec, is_valid_name};
use crate::store::{StoreError, Tenant, TokenInfo};

/// A tenant as answered: `token` only in the answer that created it.
fn tenant_view(t: &Tenant, token: Option<String>) -> TenantView {
    TenantView {
        name: t.name.clone(),
        limits: t.effective_limits(),
        allowed_hosts: t.allowed_hosts.clone(),
        created_at: t.created_at,
        token,
    }
}

/// A token as listed; `token` only when it was just made.
fn token_view(t: TokenInfo, token: Option<String>) -> TokenView {
    TokenView {
        id: t.id,
        prefix: t.prefix,
        created_at: t.created_at,
        revoked_at: t.revoked_at,
        token,
    }
}

/// Checks limits for range and against what this server's sandbox can give an attempt.
fn check_limits(state: &State, limits: &TenantLimitSpec) -> ApiResult<()> {
    limits.check().map_err(ApiError::unprocessable)?;
    let max_mb = state.runtime.config().max_limits.memory_bytes >> 20;
    if limits.memory_mb.is_some_and(|mb| mb > max_mb) {
        return Err(ApiError::unprocessable(format!(
            "limits.memory_mb may be at most {max_mb} on this server"
        )));
    }
    Ok(())
}

/// Checks an allow-list: every entry `scheme://host[:port]` or `scheme://*.name.tld[:port]`,
/// no IP literal, no bare `*`; a bad entry answers 422 naming it.
fn check_hosts(hosts: &[String]) -> ApiResult<()> {
    AllowList::parse(hosts)
        .map(|_| ())
        .map_err(|e| ApiError::unprocessable(format!("allowed_hosts: {e}")))
}

/// Creates a tenant and its first token.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = TenantView), (status = 409, description = "name taken")),
    security(("bearer" = [])))]
pub async fn create(
    state: State,
    _: Admin,
    ApiJson(req): ApiJson<CreateTenant>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    if !is_valid_name(&req.name) {
        return Err(ApiError::unprocessable(
            "name: 1-64 characters of A-Za-z0-9._-, starting with a letter or digit",
        ));
    }
    check_limits(&state, &req.limits)?;
    check_hosts(&req.allowed_hosts)?;
    let (token, hash, prefix) = new_token();
    // The tenant, its hosts and its token, in one transaction: all of it or nothing.
    let tenant = match state
        .store
        .tenant_create_with_hosts(
            &req.name,
            &req.limits,
            &req.allowed_hosts,
            Some((&hash, &prefix)),
        )
        .await
    {
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(format!(
                "a tenant named {:?} exists",
                req.name
            )));
        }
        r => r?,
    };
    state.auth.forget_unknown();
    Ok((StatusCode::CREATED, Json(tenant_view(&tenant, Some(token)))))
}

/// Lists the tenants.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    responses((status = 200, body = TenantList)), security(("bearer" = [])))]
pub async fn list(state: State, _: Admin) -> ApiResult<Json<TenantList>> {
    let tenants = state.store.tenant_list().await?;
    Ok(Json(TenantList {
        tenants: tenants.iter().map(|t| tenant_view(t, None)).collect(),
    }))
}

async fn tenant(state: &State, name: &str) -> ApiResult<Tenant> {
    match state.store.tenant_get(name).await {
        Err(StoreError::NotFound) => Err(ApiError::not_found(format!("no tenant named {name:?}"))),
        r => Ok(r?),
    }
}

/// Changes a tenant's limits or allowed hosts.
#[utoipa::path(patch, path = "/v1/tenants/{name}", tag = "tenants", request_body = UpdateTenant,
    params(("name" = String, Path, description = "The tenant's name")),
    responses((status = 200, body = TenantView), (status = 404)), security(("bearer" = [])))]
pub async fn update(
    state: State,
    _: Admin,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateTenant>,
) -> ApiResult<Json<TenantView>> {
    let current = tenant(&state, &name).await?;
    let limits = match &req.limits {
        Some(patch) => current.limits.merged(patch),
        None => current.limits,
    };
    check_limits(&state, &limits)?;
    if let Some(hosts) = &req.allowed_hosts {
        check_hosts(hosts)?;
    }
    let updated = state
        .store
        .tenant_update(&name, &limits, req.allowed_hosts.as_deref())
        .await?;
    state.tokens.forget_tenant(updated.id);
    Ok(Json(tenant_view(&updated, None)))
}

/// Makes a new token for a tenant (its other tokens stay valid until revoked).
#[utoipa::path(post, path = "/v1/tenants/{name}/tokens", tag = "tenants", params(("name" = String, Path, description = "The tenant's name")),
    responses((status = 201, body = TokenView), (status = 404)), security(("bearer" = [])))]
pub async fn token_create(
    state: State,
    _: Admin,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<TokenView>)> {
    let tenant = tenant(&state, &name).await?;
    let (token, hash, prefix) = new_token();
    let info = state.store.token_create(tenant.id, &hash, &prefix).await?;
    state.auth.forget_unknown();
    Ok((StatusCode::CREATED, Json(token_view(info, Some(token)))))
}

/// Lists a tenant's tokens (never the tokens themselves).
#[utoipa::path(get, path = "/v1/tenants/{name}/tokens", tag = "tenants", params(("name" = String, Path, description = "The tenant's name")),
    responses((status = 200, body = TokenList), (status = 404)), security(("bearer" = [])))]
pub async fn token_list(
    state: State,
    _: Admin,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<TokenList>> {
    let tenant = tenant(&state, &name).await?;
    let tokens = state.store.token_list(tenant.id).await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(|t| token_view(t, None)).collect(),
    }))
}

/// Revokes a token: it stops working at once on this host, within seconds on others.
#[utoipa::path(delete, path = "/v1/tenants/{name}/tokens/{id}", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name"), ("id" = Uuid, Path, description = "The token's id")),
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn token_revoke(
    state: State,
    _: Admin,
    ApiPath((name, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let tenant = tenant(&state, &name).await?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("no such token"))?;
    match state.store.token_revoke(tenant.id, id).await {
        Err(StoreError::NotFound) => return Err(ApiError::not_found("no such token")),
        r => r?,
    };
    state.tokens.forget_tenant(tenant.id);
    Ok(StatusCode::NO_CONTENT)
}
