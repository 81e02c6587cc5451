//! `/v1/jobs`: enqueue (one or a batch), read, list, cancel and retry.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use chrono::{Datelike as _, Utc};
use serde_json::Value;
use serde_json::value::RawValue;
use spool_client::types::{
    BatchRequest, BatchView, EnqueuedView, JobPage, JobRequest, JobView, ListQuery, StateView,
};
use uuid::Uuid;

use super::auth::Scope;
use super::error::{ApiJson, ApiPath, ApiQuery, json_within};
use super::{ApiError, ApiResult, State};
use crate::model::text::is_valid_key;
use crate::model::{
    Enqueued, Job, JobState, LimitSpec, MAX_ATTEMPTS, MAX_DELAY,
    MAX_IDEMPOTENCY_KEY_BYTES as MAX_KEY_BYTES, NewJob, TenantLimits, is_valid_name,
};
use crate::store::{JobFilter, StoreError, Tenant};

/// The default and largest page of a list.
const PAGE: (u32, u32) = (100, 1_000);
/// The room a `POST /v1/jobs` body may take beside its payload (the other fields, and
/// whitespace).
const ENVELOPE_BYTES: usize = 64 << 10;

/// The largest `POST /v1/jobs` body for a tenant whose payloads may take `max_payload`
/// bytes: the payload as JSON text may be longer than its compact form (whitespace, escapes),
/// and as base64 it takes 4/3 of its bytes.
fn max_job_body(max_payload: u32, ceiling: usize) -> usize {
    (max_payload as usize)
        .saturating_mul(2)
        .saturating_add(ENVELOPE_BYTES)
        .min(ceiling)
}

/// Returns whether a string of `value`, or a key of one of its objects, holds U+0000, which
/// PostgreSQL's jsonb (and so a JSON payload) cannot hold.
pub(super) fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

/// The years a `run_at` may fall in (PostgreSQL's timestamps reach further, but nothing
/// sensible does).
const RUN_AT_YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

impl From<Enqueued> for EnqueuedView {
    fn from(e: Enqueued) -> EnqueuedView {
        EnqueuedView {
            id: e.id,
            state: e.state.as_str().to_string(),
            duplicate: e.duplicate,
        }
    }
}

/// Splits bytes into JSON, when they are JSON text, or base64.
fn json_or_base64(bytes: &[u8]) -> (Option<Value>, Option<String>) {
    match serde_json::from_slice(bytes) {
        Ok(value) => (Some(value), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    }
}

/// A job as answered: with its payload and result when `full`, else without (in a list).
fn job_view(job: Job, full: bool) -> JobView {
    let (payload, payload_base64) = if full {
        json_or_base64(&job.payload)
    } else {
        (None, None)
    };
    let (result, result_base64) = match &job.result {
        Some(bytes) if full => json_or_base64(bytes),
        _ => (None, None),
    };
    JobView {
        id: job.id,
        handler: job.handler,
        queue: job.queue,
        state: job.state.as_str().to_string(),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        conflicts: job.conflicts,
        priority: job.priority,
        idempotency_key: job.idempotency_key,
        payload,
        payload_base64,
        result,
        result_base64,
        duplicate: job.duplicate,
        errors: job.errors,
        logs: job.logs,
        parent_id: job.parent_id,
        created_at: job.created_at,
        run_at: job.run_at,
        finished_at: job.finished_at,
    }
}

/// Turns one request into a job, or says what is wrong with it (`at` names it in a batch).
fn new_job(req: JobRequest, limits: &TenantLimits, at: &str) -> ApiResult<NewJob> {
    let bad = |m: String| ApiError::unprocessable(format!("{at}{m}"));
    if !is_valid_name(&req.handler) {
        return Err(bad("handler: not a valid handler name".into()));
    }
    let max_payload = limits.max_payload_bytes as usize;
    let too_large = |n: usize| {
        ApiError::too_large(format!(
            "{at}payload: {n} bytes, over this tenant's limit of {max_payload} bytes"
        ))
    };
    let (payload, payload_is_json) = match (req.payload, req.payload_base64) {
        (Some(_), Some(_)) => {
            return Err(bad("give payload or payload_base64, not both".into()));
        }
        (_, Some(b64)) => {
            if b64.len() / 4 * 3 > max_payload.saturating_add(3) {
                return Err(too_large(b64.len() / 4 * 3));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| bad(format!("payload_base64: {e}")))?;
            (bytes, false)
        }
        (raw, None) => {
            let text = raw.as_deref().map_or("null", RawValue::get);
            // Its compact form is shorter: a text this long cannot fit, and is not parsed.
            if text.len() > max_payload.saturating_mul(2).saturating_add(1024) {
                return Err(too_large(text.len()));
            }
            let value: Value =
                serde_json::from_str(text).map_err(|e| bad(format!("payload: {e}")))?;
            if holds_nul(&value) {
                return Err(bad(
                    "payload: a string holds U+0000 (\\u0000), which a JSON \
                                payload cannot; send such bytes as payload_base64"
                        .into(),
                ));
            }
            (
                serde_json::to_vec(&value).expect("a JSON value serializes"),
                true,
            )
        }
    };
    if payload.len() > max_payload {
        return Err(too_large(payload.len()));
    }
    if let Some(queue) = &req.queue
        && !is_valid_name(queue)
    {
        return Err(bad(
            "queue: 1-64 characters of A-Za-z0-9._-, starting with a letter or digit".into(),
        ));
    }
    if let Some(key) = &req.idempotency_key
        && !is_valid_key(key, MAX_KEY_BYTES)
    {
        return Err(bad(format!(
            "idempotency_key: 1-{MAX_KEY_BYTES} bytes without control characters"
        )));
    }
    if let Some(m) = req.max_attempts
        && !(1..=MAX_ATTEMPTS).contains(&m)
    {
        return Err(bad(format!("max_attempts: between 1 and {MAX_ATTEMPTS}")));
    }
    let run_at = match (req.run_at, req.delay_ms) {
        (Some(_), Some(_)) => return Err(bad("give run_at or delay_ms, not both".into())),
        (Some(at), None) if !RUN_AT_YEARS.contains(&at.year()) => {
            return Err(bad(format!(
                "run_at: {at} is out of range; give a time between the years {} and {}",
                RUN_AT_YEARS.start(),
                RUN_AT_YEARS.end()
            )));
        }
        (Some(at), None) => Some(at),
        (None, Some(ms)) => {
            let delay = chrono::Duration::try_milliseconds(ms.min(i64::MAX as u64) as i64)
                .filter(|d| d.to_std().is_ok_and(|d| d <= MAX_DELAY))
                .ok_or_else(|| bad("delay_ms: at most ten years".into()))?;
            Some(Utc::now() + delay)
        }
        (None, None) => None,
    };
    if let Some(asked) = &req.limits {
        check_limits(asked, limits, at)?;
    }
    Ok(NewJob {
        handler: req.handler,
        payload,
        payload_is_json,
        queue: req.queue,
        idempotency_key: req.idempotency_key,
        priority: req.priority.unwrap_or(0),
        run_at,
        max_attempts: req.max_attempts,
        limits: req.limits,
        backoff: None,
    })
}

/// Refuses per-attempt `asked` limits of zero or over the tenant's caps (`at` names the job
/// in a batch).
pub(super) fn check_limits(asked: &LimitSpec, limits: &TenantLimits, at: &str) -> ApiResult<()> {
    for (name, asked, cap) in asked.against(limits) {
        match asked {
            Some(0) => {
                return Err(ApiError::unprocessable(format!(
                    "{at}limits.{name}: must be greater than 0"
                )));
            }
            Some(n) if n > cap => {
                return Err(ApiError::unprocessable(format!(
                    "{at}limits.{name}: {n} is over this tenant's cap of {cap}; a job may ask \
                     for less than its tenant's limits, never more"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks quotas and that every handler exists, then enqueues `jobs` in one transaction.
/// A key reused with another payload refuses the whole batch with 409.
async fn enqueue_jobs(
    state: &State,
    tenant: &Tenant,
    jobs: Vec<NewJob>,
) -> ApiResult<Vec<Enqueued>> {
    let limits = tenant.effective_limits();
    state.quotas.take_rate(tenant.id, &limits, jobs.len())?;
    state
        .quotas
        .check_pending(&state.store, tenant.id, &limits, jobs.len())
        .await?;
    let mut names: Vec<&str> = jobs.iter().map(|j| j.handler.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if let Some(missing) = state
        .handlers
        .first_missing(&state.store, tenant.id, &names)
        .await?
    {
        return Err(ApiError::unprocessable(format!(
            "handler: no handler named {missing:?}; upload it with PUT /v1/handlers/{missing}"
        )));
    }
    let mut queues: Vec<&str> = jobs
        .iter()
        .map(|j| j.queue.as_deref().unwrap_or(crate::model::DEFAULT_QUEUE))
        .collect();
    queues.sort_unstable();
    queues.dedup();
    state
        .quotas
        .admit_queues(&state.store, tenant.id, limits.max_queues, &queues)
        .await?;
    // Only a reused key can conflict; a batch with keys is enqueued all or none, in a
    // transaction, and anything else in one statement.
    let keyed = jobs.iter().any(|j| j.idempotency_key.is_some());
    let enqueued = if keyed && jobs.len() > 1 {
        state
            .store
            .job_enqueue_all_or_none(tenant.id, &jobs)
            .await?
    } else {
        let enqueued = state.store.job_enqueue_many(tenant.id, &jobs, None).await?;
        match enqueued.iter().position(|e| e.conflict) {
            Some(index) => Err(index),
            None => Ok(enqueued),
        }
    };
    let enqueued = match enqueued {
        Ok(enqueued) => enqueued,
        Err(index) => {
            let key = jobs[index].idempotency_key.as_deref().unwrap_or_default();
            let at = if jobs.len() > 1 {
                format!("jobs[{index}]: ")
            } else {
                String::new()
            };
            return Err(ApiError::conflict(format!(
                "{at}idempotency key {key:?} was used before with a different payload"
            )));
        }
    };
    let fresh = enqueued.iter().filter(|e| !e.duplicate).count();
    state.quotas.enqueued(tenant.id, fresh);
    // Counted per (queue, handler), not per job: a batch is mostly one or two of those.
    let mut counts: std::collections::HashMap<(&str, &str), u64> = Default::default();
    for (job, e) in jobs.iter().zip(&enqueued) {
        if !e.duplicate {
            let queue = job.queue.as_deref().unwrap_or(crate::model::DEFAULT_QUEUE);
            *counts.entry((queue, job.handler.as_str())).or_default() += 1;
        }
    }
    for ((queue, handler), n) in counts {
        state.metrics.jobs_enqueued(&tenant.name, queue, handler, n);
    }
    Ok(enqueued)
}

/// Enqueues a job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = JobRequest,
    responses((status = 201, body = EnqueuedView), (status = 200, body = EnqueuedView,
               description = "a duplicate: the key was used before with the same payload"),
              (status = 409), (status = 413), (status = 422), (status = 429)),
    security(("bearer" = [])))]
pub async fn enqueue(
    state: State,
    Scope(tenant): Scope,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<EnqueuedView>)> {
    let limits = tenant.effective_limits();
    let max_body = max_job_body(limits.max_payload_bytes, state.config.max_json_bytes);
    let req: JobRequest = json_within(&headers, body, max_body).await?;
    let job = new_job(req, &limits, "")?;
    let enqueued = enqueue_jobs(&state, &tenant, vec![job]).await?;
    let e = enqueued[0];
    let status = if e.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(e.into())))
}

/// Enqueues up to 10,000 jobs at once, all or none.
#[utoipa::path(post, path = "/v1/jobs/batch", tag = "jobs", request_body = BatchRequest,
    responses((status = 201, body = BatchView), (status = 409), (status = 413), (status = 422),
              (status = 429)),
    security(("bearer" = [])))]
pub async fn enqueue_batch(
    state: State,
    Scope(tenant): Scope,
    ApiJson(req): ApiJson<BatchRequest>,
) -> ApiResult<(StatusCode, Json<BatchView>)> {
    if req.jobs.is_empty() {
        return Err(ApiError::unprocessable("jobs: give at least one job"));
    }
    if req.jobs.len() > TenantLimits::MAX_BATCH {
        return Err(ApiError::too_large(format!(
            "jobs: {} jobs, over the batch limit of {}",
            req.jobs.len(),
            TenantLimits::MAX_BATCH
        )));
    }
    let limits = tenant.effective_limits();
    let jobs = req
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, r)| new_job(r, &limits, &format!("jobs[{i}].")))
        .collect::<ApiResult<Vec<_>>>()?;
    let enqueued = enqueue_jobs(&state, &tenant, jobs).await?;
    Ok((
        StatusCode::CREATED,
        Json(BatchView {
            jobs: enqueued.into_iter().map(EnqueuedView::from).collect(),
        }),
    ))
}

fn job_id(raw: &str) -> ApiResult<Uuid> {
    // A malformed id cannot name any job: the same answer as an unknown one.
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no job {raw:?}")))
}

async fn get_job(state: &State, tenant: &Tenant, id: Uuid) -> ApiResult<Job> {
    match state.store.job_get(tenant.id, id).await {
        Err(StoreError::NotFound) => Err(ApiError::not_found(format!("no job {id}"))),
        r => Ok(r?),
    }
}

/// Shows a job: payload, result, errors per attempt, logs.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path, description = "The job's id")),
    responses((status = 200, body = JobView), (status = 404)), security(("bearer" = [])))]
pub async fn show(
    state: State,
    Scope(tenant): Scope,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<JobView>> {
    let job = get_job(&state, &tenant, job_id(&id)?).await?;
    Ok(Json(job_view(job, true)))
}

pub(super) fn filter(q: &ListQuery) -> ApiResult<(JobFilter, Option<Uuid>, u32)> {
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state: {s:?} is not one of scheduled, available, running, retryable, \
                 completed, dead, cancelled"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(PAGE.0);
    if !(1..=PAGE.1).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: between 1 and {}",
            PAGE.1
        )));
    }
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            Uuid::parse_str(c)
                .map_err(|_| ApiError::bad_request("cursor: not a cursor this API gave"))?,
        ),
    };
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    Ok((
        JobFilter {
            state,
            queue: nonempty(&q.queue),
            handler: nonempty(&q.handler),
        },
        cursor,
        limit,
    ))
}

pub(super) async fn page(
    state: &State,
    tenant: &Tenant,
    f: JobFilter,
    cursor: Option<Uuid>,
    limit: u32,
) -> ApiResult<JobPage> {
    let jobs = state.store.job_list(tenant.id, &f, cursor, limit).await?;
    let next_cursor = (jobs.len() == limit as usize)
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    Ok(JobPage {
        jobs: jobs.into_iter().map(|j| job_view(j, false)).collect(),
        next_cursor,
    })
}

/// Lists jobs, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListQuery),
    responses((status = 200, body = JobPage), (status = 400)), security(("bearer" = [])))]
pub async fn list(
    state: State,
    Scope(tenant): Scope,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<JobPage>> {
    let (f, cursor, limit) = filter(&q)?;
    Ok(Json(page(&state, &tenant, f, cursor, limit).await?))
}

/// Cancels a job that has not started running.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = Uuid, Path, description = "The job's id")),
    responses((status = 200, body = StateView), (status = 404),
              (status = 409, description = "running or finished")),
    security(("bearer" = [])))]
pub async fn cancel(
    state: State,
    Scope(tenant): Scope,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<StateView>> {
    let id = job_id(&id)?;
    if state.store.job_cancel(tenant.id, id).await? {
        return Ok(Json(StateView {
            id,
            state: JobState::Cancelled.as_str().into(),
        }));
    }
    let job = get_job(&state, &tenant, id).await?;
    Err(ApiError::conflict(format!(
        "job {id} is {}: only a job that has not started running can be cancelled",
        job.state.as_str()
    )))
}

/// Requeues a dead or cancelled job.
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs", params(("id" = Uuid, Path, description = "The job's id")),
    responses((status = 200, body = StateView), (status = 404),
              (status = 409, description = "not dead or cancelled")),
    security(("bearer" = [])))]
pub async fn retry(
    state: State,
    Scope(tenant): Scope,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<StateView>> {
    let id = job_id(&id)?;
    if !state
        .store
        .job_retry_many(tenant.id, &[id])
        .await?
        .is_empty()
    {
        return Ok(Json(StateView {
            id,
            state: JobState::Available.as_str().into(),
        }));
    }
    let job = get_job(&state, &tenant, id).await?;
    Err(ApiError::conflict(format!(
        "job {id} is {}: only dead or cancelled jobs can be retried",
        job.state.as_str()
    )))
}
