//! `/v1/dead`: the dead-letter queue, and redriving or discarding it in bulk.

use axum::Json;
use spool_client::types::{
    DeadSelection, Discarded, JobPage, ListQuery, MAX_PER_CALL, Retried, Sweep,
};
use uuid::Uuid;

use super::auth::Scope;
use super::error::{ApiJson, ApiQuery};
use super::jobs::{filter, page};
use super::{ApiError, ApiResult, State};
use crate::model::{JobState, TenantLimits};
use crate::store::{JobFilter, Tenant};

/// Dead jobs a by-filter call reads at a time.
const CHUNK: u32 = 1_000;

/// Lists the dead-letter queue, newest first.
#[utoipa::path(get, path = "/v1/dead", tag = "dead letters", params(ListQuery),
    responses((status = 200, body = JobPage)), security(("bearer" = [])))]
pub async fn list(
    state: State,
    Scope(tenant): Scope,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<JobPage>> {
    let (mut f, cursor, limit) = filter(&q)?;
    if f.state.is_some_and(|s| s != JobState::Dead) {
        return Err(ApiError::bad_request(
            "state: the dead-letter queue holds dead jobs only",
        ));
    }
    f.state = Some(JobState::Dead);
    Ok(Json(page(&state, &tenant, f, cursor, limit).await?))
}

/// What to do with selected dead jobs.
#[derive(Debug, Clone, Copy)]
enum DeadAction {
    Retry,
    Discard,
}

async fn apply(state: &State, tenant: &Tenant, action: DeadAction, ids: &[Uuid]) -> ApiResult<u64> {
    Ok(match action {
        DeadAction::Retry => state.store.job_retry_many(tenant.id, ids).await?.len() as u64,
        DeadAction::Discard => state.store.job_discard_dead(tenant.id, ids).await?,
    })
}

/// Applies `action` to dead jobs: the ids given, or up to [`MAX_PER_CALL`] matching the
/// filter, a chunk at a time. Returns how many it applied to, and how far it got.
async fn select_dead(
    state: &State,
    tenant: &Tenant,
    sel: &DeadSelection,
    action: DeadAction,
) -> ApiResult<(u64, Sweep)> {
    if let Some(ids) = &sel.ids {
        if sel.handler.is_some() || sel.queue.is_some() || sel.cursor.is_some() {
            return Err(ApiError::unprocessable(
                "give ids, or handler/queue (and cursor), not both",
            ));
        }
        if ids.len() > TenantLimits::MAX_BATCH {
            return Err(ApiError::too_large(format!(
                "ids: at most {} at once",
                TenantLimits::MAX_BATCH
            )));
        }
        return Ok((apply(state, tenant, action, ids).await?, Sweep::default()));
    }
    let f = JobFilter {
        state: Some(JobState::Dead),
        queue: sel.queue.clone(),
        handler: sel.handler.clone(),
    };
    // Walks the dead jobs newest first: a job that is requeued here and dies again meanwhile
    // is above the cursor and not taken twice.
    let mut total = 0;
    let mut walked = 0;
    let mut cursor = sel.cursor;
    while walked < MAX_PER_CALL {
        let chunk = CHUNK.min((MAX_PER_CALL - walked) as u32);
        let ids = state
            .store
            .job_dead_ids(tenant.id, &f, cursor, chunk)
            .await?;
        let Some(last) = ids.last().copied() else {
            return Ok((total, Sweep::default()));
        };
        total += apply(state, tenant, action, &ids).await?;
        walked += ids.len();
        cursor = Some(last);
        if ids.len() < chunk as usize {
            return Ok((total, Sweep::default()));
        }
    }
    let more = !state
        .store
        .job_dead_ids(tenant.id, &f, cursor, 1)
        .await?
        .is_empty();
    Ok((
        total,
        Sweep {
            more,
            next_cursor: cursor.filter(|_| more),
        },
    ))
}

/// Requeues dead jobs in bulk: by id, or those of a handler and/or queue (`{}`: all), up to
/// 10,000 a call (`more` says whether to call again).
#[utoipa::path(post, path = "/v1/dead/retry", tag = "dead letters", request_body = DeadSelection,
    responses((status = 200, body = Retried)), security(("bearer" = [])))]
pub async fn retry(
    state: State,
    Scope(tenant): Scope,
    ApiJson(sel): ApiJson<DeadSelection>,
) -> ApiResult<Json<Retried>> {
    let (retried, sweep) = select_dead(&state, &tenant, &sel, DeadAction::Retry).await?;
    Ok(Json(Retried { retried, sweep }))
}

/// Deletes dead jobs for good: by id, or those of a handler and/or queue (`{}`: all), up to
/// 10,000 a call (`more` says whether to call again).
#[utoipa::path(post, path = "/v1/dead/discard", tag = "dead letters",
    request_body = DeadSelection, responses((status = 200, body = Discarded)),
    security(("bearer" = [])))]
pub async fn discard(
    state: State,
    Scope(tenant): Scope,
    ApiJson(sel): ApiJson<DeadSelection>,
) -> ApiResult<Json<Discarded>> {
    let (discarded, sweep) = select_dead(&state, &tenant, &sel, DeadAction::Discard).await?;
    Ok(Json(Discarded { discarded, sweep }))
}
