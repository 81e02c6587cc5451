//! Periodic jobs: tenants' schedules, the leader's probe for due ones, firing their ticks, and
//! what each tick became (migration 0012, `spool.schedule_fire`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Result, Store, StoreError};
use crate::model::schedule::{CatchUp, Overlap};
use crate::model::{JobState, LimitSpec, TenantLimitSpec};

/// A schedule's settings: what the API and `spool.toml` write.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    /// Its name, unique within the tenant.
    pub name: String,
    /// The cron expression (5 fields, or 6 with seconds first).
    pub cron: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    /// The handler each tick's job runs.
    pub handler: String,
    /// Each tick's job's payload.
    pub payload: Value,
    /// The queue each tick's job goes to.
    pub queue: String,
    /// Each tick's job's priority.
    pub priority: i16,
    /// Each tick's job's attempts in all; the handler's or the default when `None`.
    pub max_attempts: Option<u32>,
    /// Each tick's job's limits.
    pub limits: Option<LimitSpec>,
    /// Whether a tick fires while the previous tick's job has not finished.
    pub overlap: Overlap,
    /// What happens to ticks missed while no node ran.
    pub catch_up: CatchUp,
    /// Whether it fires at all (false: paused).
    pub enabled: bool,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The tenant's id.
    pub tenant_id: i64,
    /// Its settings.
    pub spec: ScheduleSpec,
    /// The next tick not yet handled (`None` when the expression has none left).
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The last tick handled, fired or not.
    pub last_tick_at: Option<DateTime<Utc>>,
    /// The last tick that enqueued (or found) a job.
    pub last_fired_at: Option<DateTime<Utc>>,
    /// That tick's job.
    pub last_job_id: Option<Uuid>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its settings last changed.
    pub updated_at: DateTime<Utc>,
}

/// A due schedule, with what the leader needs to hold its ticks to the tenant's quotas.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSchedule {
    /// The schedule.
    pub schedule: Schedule,
    /// The tenant's name.
    pub tenant: String,
    /// The tenant's limits, as given.
    pub limits: TenantLimitSpec,
}

/// What one tick of a schedule became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTick {
    /// The schedule's name.
    pub schedule: String,
    /// The tick.
    pub tick_at: DateTime<Utc>,
    /// `enqueued`, `duplicate`, `skipped` or `refused`.
    pub outcome: String,
    /// The job it made or found (for `skipped`, the job still running).
    pub job_id: Option<Uuid>,
    /// Why it was refused.
    pub detail: Option<String>,
    /// When the leader handled it.
    pub handled_at: DateTime<Utc>,
    /// The job's state now (`None` without a job, or once history dropped it).
    pub job_state: Option<JobState>,
}

/// The ticks of one schedule to fire in one transaction ([`Store::schedule_fire`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TickFiring<'a> {
    /// The tenant's id.
    pub tenant_id: i64,
    /// The schedule's name.
    pub name: &'a str,
    /// The next tick the plan started from: nothing is done unless it is still the schedule's.
    pub from: Option<DateTime<Utc>>,
    /// The ticks, oldest first.
    pub ticks: &'a [DateTime<Utc>],
    /// Their idempotency keys.
    pub keys: &'a [String],
    /// Why the tenant's quota refused them, if it did: they are recorded as refused.
    pub refused: Option<&'a str>,
    /// The schedule's next tick after these.
    pub next: Option<DateTime<Utc>>,
    /// How many ticks' outcomes to keep per schedule.
    pub keep: u32,
}

/// A fired tick's outcome ([`Store::schedule_fire`]).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FiredTick {
    /// The tick.
    pub tick_at: DateTime<Utc>,
    /// `enqueued`, `duplicate`, `skipped` or `refused`.
    pub outcome: String,
    /// The job made, found, or (skipped) still running.
    pub job_id: Option<Uuid>,
}

/// The failing-schedule alert's figures for one schedule.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScheduleFailures {
    /// The tenant's id.
    pub tenant_id: i64,
    /// The tenant's name.
    pub tenant: String,
    /// The schedule's name.
    pub schedule: String,
    /// Of its newest runs asked about, how many have finished.
    pub finished: i64,
    /// How many of those ended dead.
    pub dead: i64,
}

/// A row of `spool.schedules`.
#[derive(sqlx::FromRow)]
struct ScheduleRow {
    tenant_id: i64,
    name: String,
    cron: String,
    timezone: String,
    handler: String,
    payload: Value,
    queue: String,
    priority: i16,
    max_attempts: Option<i32>,
    limits: Option<Value>,
    overlap: String,
    catch_up: String,
    enabled: bool,
    next_fire_at: Option<DateTime<Utc>>,
    last_tick_at: Option<DateTime<Utc>>,
    last_fired_at: Option<DateTime<Utc>>,
    last_job_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ScheduleRow> for Schedule {
    type Error = StoreError;

    fn try_from(row: ScheduleRow) -> Result<Schedule> {
        let bad = |what: &str, v: &str| StoreError::Database(format!("schedule {what}: {v}"));
        Ok(Schedule {
            tenant_id: row.tenant_id,
            spec: ScheduleSpec {
                overlap: Overlap::parse(&row.overlap)
                    .ok_or_else(|| bad("overlap", &row.overlap))?,
                catch_up: CatchUp::parse(&row.catch_up)
                    .ok_or_else(|| bad("catch_up", &row.catch_up))?,
                name: row.name,
                cron: row.cron,
                timezone: row.timezone,
                handler: row.handler,
                payload: row.payload,
                queue: row.queue,
                priority: row.priority,
                max_attempts: row.max_attempts.map(|m| m.max(0) as u32),
                limits: row.limits.and_then(|l| serde_json::from_value(l).ok()),
                enabled: row.enabled,
            },
            next_fire_at: row.next_fire_at,
            last_tick_at: row.last_tick_at,
            last_fired_at: row.last_fired_at,
            last_job_id: row.last_job_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A row of `schedule_upsert.sql`.
#[derive(sqlx::FromRow)]
struct UpsertRow {
    #[sqlx(flatten)]
    schedule: ScheduleRow,
    created: bool,
}

/// A row of `schedule_due_list.sql`.
#[derive(sqlx::FromRow)]
struct DueRow {
    #[sqlx(flatten)]
    schedule: ScheduleRow,
    tenant: String,
    tenant_limits: Value,
}

/// A row of `schedule_ticks_recent.sql`.
#[derive(sqlx::FromRow)]
struct TickRow {
    schedule: String,
    tick_at: DateTime<Utc>,
    outcome: String,
    job_id: Option<Uuid>,
    detail: Option<String>,
    handled_at: DateTime<Utc>,
    job_state: Option<String>,
}

impl Store {
    /// Creates tenant `tenant_id`'s schedule `spec.name`, or replaces the settings of the one
    /// of that name (what its ticks recorded stays), with `next_fire_at` as its next tick; with
    /// `keep_next`, a stored schedule keeps the next tick it has (its timing did not change:
    /// a leader may have moved it on meanwhile). Returns it, and whether it was created.
    pub async fn schedule_upsert(
        &self,
        tenant_id: i64,
        spec: &ScheduleSpec,
        next_fire_at: Option<DateTime<Utc>>,
        keep_next: bool,
    ) -> Result<(Schedule, bool)> {
        let row: UpsertRow = sqlx::query_as(include_str!("sql/schedule_upsert.sql"))
            .bind(tenant_id)
            .bind(&spec.name)
            .bind(&spec.cron)
            .bind(&spec.timezone)
            .bind(&spec.handler)
            .bind(&spec.payload)
            .bind(&spec.queue)
            .bind(spec.priority)
            .bind(spec.max_attempts.map(|m| m.min(i32::MAX as u32) as i32))
            .bind(
                spec.limits
                    .map(|l| serde_json::to_value(l).expect("limits serialize")),
            )
            .bind(spec.overlap.as_str())
            .bind(spec.catch_up.as_str())
            .bind(spec.enabled)
            .bind(next_fire_at)
            .bind(keep_next)
            .fetch_one(&self.pool)
            .await?;
        Ok((row.schedule.try_into()?, row.created))
    }

    /// Returns tenant `tenant_id`'s schedule `name`.
    pub async fn schedule_get(&self, tenant_id: i64, name: &str) -> Result<Schedule> {
        let row: ScheduleRow =
            sqlx::query_as("SELECT * FROM spool.schedules WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
        row.try_into()
    }

    /// Returns tenant `tenant_id`'s schedules, by name.
    pub async fn schedule_list(&self, tenant_id: i64) -> Result<Vec<Schedule>> {
        let rows: Vec<ScheduleRow> =
            sqlx::query_as("SELECT * FROM spool.schedules WHERE tenant_id = $1 ORDER BY name")
                .bind(tenant_id)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(Schedule::try_from).collect()
    }

    /// Deletes tenant `tenant_id`'s schedule `name` and its ticks' records (jobs it enqueued
    /// stay). Returns whether there was one.
    pub async fn schedule_delete(&self, tenant_id: i64, name: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM spool.schedules WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id)
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Returns up to `limit` enabled schedules whose next tick is due by `now` (the
    /// database's clock when `None`), the most overdue first.
    pub async fn schedule_due_list(
        &self,
        limit: u32,
        now: Option<DateTime<Utc>>,
    ) -> Result<Vec<DueSchedule>> {
        let rows: Vec<DueRow> = sqlx::query_as(include_str!("sql/schedule_due_list.sql"))
            .bind(i64::from(limit))
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(DueSchedule {
                    schedule: row.schedule.try_into()?,
                    tenant: row.tenant,
                    limits: serde_json::from_value(row.tenant_limits).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Fires `f.ticks` of a schedule and moves its next tick on to `f.next`, in one
    /// transaction, unless its next tick is no longer `f.from` (another leader handled them,
    /// or the schedule changed or was paused): then nothing is done and nothing returned.
    /// Each tick is enqueued with its key; one fired before answers its earlier job
    /// (`duplicate`). Returns each tick's outcome.
    pub async fn schedule_fire(
        &self,
        f: &TickFiring<'_>,
        now: Option<DateTime<Utc>>,
    ) -> Result<Vec<FiredTick>> {
        let ids: Vec<Uuid> = f.ticks.iter().map(|_| Uuid::now_v7()).collect();
        Ok(sqlx::query_as(
            "SELECT tick_at, outcome, job_id
             FROM spool.schedule_fire($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(f.tenant_id)
        .bind(f.name)
        .bind(f.from)
        .bind(f.ticks)
        .bind(&ids)
        .bind(f.keys)
        .bind(f.refused)
        .bind(f.next)
        .bind(i32::try_from(f.keep).unwrap_or(i32::MAX))
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Returns the newest `per` ticks of each of tenant `tenant_id`'s schedules named in
    /// `names` (all of them when `None`), by schedule and newest first.
    pub async fn schedule_ticks_recent(
        &self,
        tenant_id: i64,
        names: Option<&[String]>,
        per: u32,
    ) -> Result<Vec<ScheduleTick>> {
        let rows: Vec<TickRow> = sqlx::query_as(include_str!("sql/schedule_ticks_recent.sql"))
            .bind(tenant_id)
            .bind(names)
            .bind(i64::from(per))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| ScheduleTick {
                job_state: row.job_state.as_deref().and_then(JobState::parse),
                schedule: row.schedule,
                tick_at: row.tick_at,
                outcome: row.outcome,
                job_id: row.job_id,
                detail: row.detail,
                handled_at: row.handled_at,
            })
            .collect())
    }

    /// Returns, per schedule with finished runs, how many of its newest `runs` finished runs
    /// there are and how many ended dead.
    pub async fn schedule_failures(&self, runs: u32) -> Result<Vec<ScheduleFailures>> {
        Ok(sqlx::query_as(include_str!("sql/schedule_failures.sql"))
            .bind(i64::from(runs))
            .fetch_all(&self.pool)
            .await?)
    }
}
