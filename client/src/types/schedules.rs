//! `/v1/schedules`: a schedule to create, store or change, and a schedule as answered.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::limits::LimitSpec;

/// A schedule to create (`POST`) or a whole schedule to store (`PUT`, where `name` may be
/// left out: the path names it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// The schedule's name: 1-64 characters of A-Za-z0-9._-, unique within the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with
    /// seconds first; `@hourly`, `@daily` and the like too.
    pub cron: String,
    /// The IANA time zone the expression is read in; default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The handler each tick's job runs.
    pub handler: String,
    /// Each tick's job's payload: any JSON value; default null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub payload: Option<Value>,
    /// The queue; default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Lower runs first; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i16>,
    /// Attempts in all (default: the handler's, else 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Per-attempt limits, each at most the tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitSpec>,
    /// `skip` (default): a tick does not fire while the previous tick's job is pending or
    /// running; `allow`: every tick fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
    /// What happens to ticks missed while no node ran: `none` (dropped), `latest` (default:
    /// the latest one fires) or `all` (each fires, at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<String>,
    /// Whether it fires; default true (`PUT` keeps a stored schedule's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Changes to a schedule: only the fields given change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SchedulePatch {
    /// A new cron expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// A new time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A new handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// A new payload (`null` is a payload too).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub payload: Option<Value>,
    /// A new queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// A new priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i16>,
    /// New attempts in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// New per-attempt limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitSpec>,
    /// `skip` or `allow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
    /// `none`, `latest` or `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<String>,
    /// false pauses it (no tick fires), true resumes it from the next tick on (ticks while it
    /// was paused do not fire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Keeps an explicit `null` apart from an absent field.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// One run of a schedule: a tick and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct RunView {
    /// The tick.
    pub tick_at: DateTime<Utc>,
    /// `enqueued`, `duplicate` (an earlier leader had enqueued it), `skipped` (the previous
    /// run was still pending or running) or `refused` (by the tenant's quota).
    pub outcome: String,
    /// The job it made or found (for `skipped`, the one still running).
    pub job_id: Option<Uuid>,
    /// The job's state now, while it is kept.
    pub job_state: Option<String>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A schedule as answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ScheduleView {
    /// Its name.
    pub name: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone it is read in.
    pub timezone: String,
    /// The handler each tick's job runs.
    pub handler: String,
    /// Each tick's job's payload.
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub payload: Value,
    /// The queue.
    pub queue: String,
    /// The priority.
    pub priority: i16,
    /// Attempts in all (null: the handler's or the default).
    pub max_attempts: Option<u32>,
    /// Per-attempt limits.
    pub limits: Option<LimitSpec>,
    /// `skip` or `allow`.
    pub overlap: String,
    /// `none`, `latest` or `all`.
    pub catch_up: String,
    /// Whether it fires (false: paused).
    pub enabled: bool,
    /// The next tick not yet handled (null when paused or when the expression has none).
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The next few ticks, from `next_fire_at` on (empty when paused).
    pub next_fire_times: Vec<DateTime<Utc>>,
    /// The last tick that enqueued (or found) a job.
    pub last_fired_at: Option<DateTime<Utc>>,
    /// The newest runs first.
    pub last_runs: Vec<RunView>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its settings last changed.
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ScheduleList {
    /// The tenant's schedules, by name, each with its next 3 fire times and last 5 runs.
    pub schedules: Vec<ScheduleView>,
}
