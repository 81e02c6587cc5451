//! `/v1/schedules`: a tenant's periodic jobs — create, list, show, replace (`PUT`, an upsert
//! for deploy tooling), change (`PATCH`, pause and resume too) and delete. Each schedule is
//! shown with its next fire times and the outcome of its last runs.

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::Value;
use spool_client::types::{RunView, ScheduleList, SchedulePatch, ScheduleRequest, ScheduleView};

use super::auth::Scope;
use super::error::{ApiJson, ApiPath};
use super::jobs::{check_limits, holds_nul};
use super::{ApiError, ApiResult, State};
use crate::model::schedule::{CatchUp, Cron, Overlap};
use crate::model::{DEFAULT_QUEUE, MAX_ATTEMPTS, TenantLimits, is_valid_name};
use crate::store::{Schedule, ScheduleSpec, ScheduleTick, StoreError, Tenant};

/// The most schedules a tenant may have.
pub const MAX_SCHEDULES: usize = 1_000;

/// Next fire times shown per schedule in a list, and for one schedule.
const NEXT_SHOWN: (usize, usize) = (3, 5);

/// Last runs shown per schedule in a list, and for one schedule.
const RUNS_SHOWN: (u32, u32) = (5, 20);

impl From<ScheduleTick> for RunView {
    fn from(t: ScheduleTick) -> RunView {
        RunView {
            tick_at: t.tick_at,
            outcome: t.outcome,
            job_id: t.job_id,
            job_state: t.job_state.map(|s| s.as_str().to_string()),
            detail: t.detail,
        }
    }
}

/// A schedule as answered, with its `runs` and its `next` fire times.
fn schedule_view(s: Schedule, runs: Vec<ScheduleTick>, next: usize) -> ScheduleView {
    let spec = s.spec;
    // From the next tick not yet handled: what the leader will fire next, even while it
    // is overdue (no node leads).
    let next_fire_times = match (
        s.next_fire_at.filter(|_| spec.enabled),
        Cron::parse(&spec.cron, &spec.timezone),
    ) {
        (Some(first), Ok(cron)) => {
            let mut times = vec![first];
            times.extend(cron.upcoming(first, next.saturating_sub(1)));
            times
        }
        _ => vec![],
    };
    ScheduleView {
        name: spec.name,
        cron: spec.cron,
        timezone: spec.timezone,
        handler: spec.handler,
        payload: spec.payload,
        queue: spec.queue,
        priority: spec.priority,
        max_attempts: spec.max_attempts,
        limits: spec.limits,
        overlap: spec.overlap.as_str().into(),
        catch_up: spec.catch_up.as_str().into(),
        enabled: spec.enabled,
        next_fire_at: s.next_fire_at.filter(|_| spec.enabled),
        next_fire_times,
        last_fired_at: s.last_fired_at,
        last_runs: runs.into_iter().map(RunView::from).collect(),
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

fn unprocessable(m: impl Into<String>) -> ApiError {
    ApiError::unprocessable(m)
}

/// Checks `spec` as a schedule of `tenant` may be: every field in range, the expression and
/// zone valid, the handler stored. Returns the parsed expression.
async fn validate(state: &State, tenant: &Tenant, spec: &ScheduleSpec) -> ApiResult<Cron> {
    if !is_valid_name(&spec.name) {
        return Err(unprocessable(
            "name: 1-64 characters of A-Za-z0-9._-, starting with a letter or digit",
        ));
    }
    let cron = Cron::parse(&spec.cron, &spec.timezone).map_err(|e| unprocessable(e.to_string()))?;
    if !is_valid_name(&spec.handler) {
        return Err(unprocessable("handler: not a valid handler name"));
    }
    if !is_valid_name(&spec.queue) {
        return Err(unprocessable(
            "queue: 1-64 characters of A-Za-z0-9._-, starting with a letter or digit",
        ));
    }
    let limits: TenantLimits = tenant.effective_limits();
    let payload = serde_json::to_vec(&spec.payload).expect("a JSON value serializes");
    if payload.len() > limits.max_payload_bytes as usize {
        return Err(unprocessable(format!(
            "payload: {} bytes, over this tenant's limit of {} bytes",
            payload.len(),
            limits.max_payload_bytes
        )));
    }
    if holds_nul(&spec.payload) {
        return Err(unprocessable(
            "payload: a string holds U+0000 (\\u0000), which a JSON payload cannot",
        ));
    }
    if let Some(m) = spec.max_attempts
        && !(1..=MAX_ATTEMPTS).contains(&m)
    {
        return Err(unprocessable(format!(
            "max_attempts: between 1 and {MAX_ATTEMPTS}"
        )));
    }
    if let Some(asked) = &spec.limits {
        check_limits(asked, &limits, "")?;
    }
    if let Some(missing) = state
        .handlers
        .first_missing(&state.store, tenant.id, &[spec.handler.as_str()])
        .await?
    {
        return Err(unprocessable(format!(
            "handler: no handler named {missing:?}; upload it with PUT /v1/handlers/{missing}"
        )));
    }
    Ok(cron)
}

fn overlap(name: Option<&str>, current: Overlap) -> ApiResult<Overlap> {
    match name {
        None => Ok(current),
        Some(n) => Overlap::parse(n)
            .ok_or_else(|| unprocessable(format!("overlap: {n:?} is not skip or allow"))),
    }
}

fn catch_up(name: Option<&str>, current: CatchUp) -> ApiResult<CatchUp> {
    match name {
        None => Ok(current),
        Some(n) => CatchUp::parse(n)
            .ok_or_else(|| unprocessable(format!("catch_up: {n:?} is not none, latest or all"))),
    }
}

/// Turns a request into settings: `name` as the path or body gives it, `enabled` from the
/// request, else `enabled`.
fn spec_of(req: ScheduleRequest, name: String, enabled: bool) -> ApiResult<ScheduleSpec> {
    Ok(ScheduleSpec {
        name,
        overlap: overlap(req.overlap.as_deref(), Overlap::default())?,
        catch_up: catch_up(req.catch_up.as_deref(), CatchUp::default())?,
        cron: req.cron,
        timezone: req.timezone.unwrap_or_else(|| "UTC".into()),
        handler: req.handler,
        payload: req.payload.unwrap_or(Value::Null),
        queue: req.queue.unwrap_or_else(|| DEFAULT_QUEUE.into()),
        priority: req.priority.unwrap_or(0),
        max_attempts: req.max_attempts,
        limits: req.limits,
        enabled: req.enabled.unwrap_or(enabled),
    })
}

/// The next tick to store for `spec`, and whether a stored schedule keeps its own: it does
/// when its timing did not change (so that deploying the same schedule twice changes nothing,
/// and a tick the leader fired meanwhile is not handed back), else it is the first after now;
/// none while paused.
fn next_fire_at(
    cron: &Cron,
    spec: &ScheduleSpec,
    old: Option<&Schedule>,
) -> (Option<DateTime<Utc>>, bool) {
    if !spec.enabled {
        return (None, false);
    }
    match old {
        Some(o)
            if o.spec.enabled
                && o.spec.cron == spec.cron
                && o.spec.timezone == spec.timezone
                && o.next_fire_at.is_some() =>
        {
            (o.next_fire_at, true)
        }
        _ => (cron.next_after(Utc::now()), false),
    }
}

async fn existing(state: &State, tenant: &Tenant, name: &str) -> ApiResult<Option<Schedule>> {
    match state.store.schedule_get(tenant.id, name).await {
        Ok(s) => Ok(Some(s)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn view(state: &State, tenant: &Tenant, s: Schedule) -> ApiResult<ScheduleView> {
    let names = [s.spec.name.clone()];
    let runs = state
        .store
        .schedule_ticks_recent(tenant.id, Some(&names), RUNS_SHOWN.1)
        .await?;
    Ok(schedule_view(s, runs, NEXT_SHOWN.1))
}

async fn under_cap(state: &State, tenant: &Tenant) -> ApiResult<()> {
    let n = state.store.schedule_list(tenant.id).await?.len();
    if n >= MAX_SCHEDULES {
        return Err(unprocessable(format!(
            "name: this tenant has {n} schedules, the most it may have; delete one first"
        )));
    }
    Ok(())
}

async fn store(
    state: &State,
    tenant: &Tenant,
    spec: &ScheduleSpec,
    (next, keep): (Option<DateTime<Utc>>, bool),
) -> ApiResult<(ScheduleView, bool)> {
    let (stored, created) = state
        .store
        .schedule_upsert(tenant.id, spec, next, keep)
        .await?;
    Ok((view(state, tenant, stored).await?, created))
}

/// Creates a schedule.
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", request_body = ScheduleRequest,
    responses((status = 201, body = ScheduleView),
              (status = 409, description = "a schedule of that name exists"),
              (status = 422, description = "a bad field, named in the detail (cron, timezone, handler, ...)")),
    security(("bearer" = [])))]
pub async fn create(
    state: State,
    Scope(tenant): Scope,
    ApiJson(req): ApiJson<ScheduleRequest>,
) -> ApiResult<(StatusCode, Json<ScheduleView>)> {
    let Some(name) = req.name.clone() else {
        return Err(unprocessable("name: give the schedule a name"));
    };
    let spec = spec_of(req, name, true)?;
    let cron = validate(&state, &tenant, &spec).await?;
    if existing(&state, &tenant, &spec.name).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "a schedule named {:?} exists; change it with PATCH or PUT /v1/schedules/{}",
            spec.name, spec.name
        )));
    }
    under_cap(&state, &tenant).await?;
    let (view, _) = store(&state, &tenant, &spec, next_fire_at(&cron, &spec, None)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Creates or replaces a schedule (what `spool handler upload` does with `spool.toml`):
/// storing the same settings twice changes nothing, its next tick included; `enabled`, when
/// absent, keeps a stored schedule's (a paused schedule stays paused).
#[utoipa::path(put, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    request_body = ScheduleRequest,
    responses((status = 201, body = ScheduleView, description = "created"),
              (status = 200, body = ScheduleView, description = "replaced (or unchanged)"),
              (status = 422, description = "a bad field, named in the detail")),
    security(("bearer" = [])))]
pub async fn put(
    state: State,
    Scope(tenant): Scope,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<ScheduleRequest>,
) -> ApiResult<(StatusCode, Json<ScheduleView>)> {
    if let Some(body) = &req.name
        && body != &name
    {
        return Err(unprocessable(format!(
            "name: the body names {body:?} and the path {name:?}"
        )));
    }
    let old = existing(&state, &tenant, &name).await?;
    let enabled = old.as_ref().is_none_or(|o| o.spec.enabled);
    let spec = spec_of(req, name, enabled)?;
    let cron = validate(&state, &tenant, &spec).await?;
    if old.is_none() {
        under_cap(&state, &tenant).await?;
    }
    let next = next_fire_at(&cron, &spec, old.as_ref());
    if let Some(o) = &old
        && o.spec == spec
        && (next.1 || !spec.enabled)
    {
        return Ok((
            StatusCode::OK,
            Json(view(&state, &tenant, o.clone()).await?),
        ));
    }
    let (view, created) = store(&state, &tenant, &spec, next).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

async fn get_schedule(state: &State, tenant: &Tenant, name: &str) -> ApiResult<Schedule> {
    existing(state, tenant, name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no schedule named {name:?}")))
}

/// Changes some of a schedule's settings; `{"enabled": false}` pauses it, `{"enabled":
/// true}` resumes it (from the next tick on).
#[utoipa::path(patch, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    request_body = SchedulePatch,
    responses((status = 200, body = ScheduleView),
              (status = 422, description = "a bad field, named in the detail")),
    security(("bearer" = [])))]
pub async fn update(
    state: State,
    Scope(tenant): Scope,
    ApiPath(name): ApiPath<String>,
    ApiJson(patch): ApiJson<SchedulePatch>,
) -> ApiResult<Json<ScheduleView>> {
    let old = get_schedule(&state, &tenant, &name).await?;
    let o = old.spec.clone();
    let spec = ScheduleSpec {
        name: o.name,
        overlap: overlap(patch.overlap.as_deref(), o.overlap)?,
        catch_up: catch_up(patch.catch_up.as_deref(), o.catch_up)?,
        cron: patch.cron.unwrap_or(o.cron),
        timezone: patch.timezone.unwrap_or(o.timezone),
        handler: patch.handler.unwrap_or(o.handler),
        payload: patch.payload.unwrap_or(o.payload),
        queue: patch.queue.unwrap_or(o.queue),
        priority: patch.priority.unwrap_or(o.priority),
        max_attempts: patch.max_attempts.or(o.max_attempts),
        limits: patch.limits.or(o.limits),
        enabled: patch.enabled.unwrap_or(o.enabled),
    };
    let cron = validate(&state, &tenant, &spec).await?;
    let next = next_fire_at(&cron, &spec, Some(&old));
    let (view, _) = store(&state, &tenant, &spec, next).await?;
    Ok(Json(view))
}

/// Lists the tenant's schedules, each with its next fire times and last runs.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    responses((status = 200, body = ScheduleList)), security(("bearer" = [])))]
pub async fn list(state: State, Scope(tenant): Scope) -> ApiResult<Json<ScheduleList>> {
    let schedules = state.store.schedule_list(tenant.id).await?;
    let mut runs = state
        .store
        .schedule_ticks_recent(tenant.id, None, RUNS_SHOWN.0)
        .await?;
    let schedules = schedules
        .into_iter()
        .map(|s| {
            let mine: Vec<ScheduleTick> =
                runs.extract_if(.., |t| t.schedule == s.spec.name).collect();
            schedule_view(s, mine, NEXT_SHOWN.0)
        })
        .collect();
    Ok(Json(ScheduleList { schedules }))
}

/// Shows a schedule, its next fire times and its last runs.
#[utoipa::path(get, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses((status = 200, body = ScheduleView)), security(("bearer" = [])))]
pub async fn show(
    state: State,
    Scope(tenant): Scope,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ScheduleView>> {
    let s = get_schedule(&state, &tenant, &name).await?;
    Ok(Json(view(&state, &tenant, s).await?))
}

/// Deletes a schedule; the jobs it enqueued stay.
#[utoipa::path(delete, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses((status = 204, description = "deleted")), security(("bearer" = [])))]
pub async fn delete(
    state: State,
    Scope(tenant): Scope,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    if state.store.schedule_delete(tenant.id, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no schedule named {name:?}")))
    }
}
