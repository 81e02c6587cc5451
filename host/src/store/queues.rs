//! Queue statistics from the counters: backlog per state, oldest available job, throughput.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Result, Store};
use crate::model::JobState;

/// One queue of one tenant, as the counters see it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueStats {
    /// The tenant's id.
    pub tenant_id: i64,
    /// The tenant's name.
    pub tenant: String,
    /// The queue.
    pub queue: String,
    /// Jobs per state; every state is present, zero when none.
    pub counts: BTreeMap<JobState, i64>,
    /// How long the oldest available job has been runnable, if any is available.
    pub oldest_available_age: Option<Duration>,
    /// Jobs completed over the window.
    pub completed: i64,
    /// Attempts failed (retried or dead-lettered) over the window.
    pub failed: i64,
    /// Jobs dead-lettered over the window.
    pub dead: i64,
    /// The window the three figures above cover, in whole minutes (the current one included).
    pub window_minutes: u32,
}

impl QueueStats {
    /// Jobs completed per minute over the window.
    pub fn completed_per_min(&self) -> f64 {
        self.completed as f64 / f64::from(self.window_minutes.max(1))
    }

    /// Attempts failed per minute over the window.
    pub fn failed_per_min(&self) -> f64 {
        self.failed as f64 / f64::from(self.window_minutes.max(1))
    }

    /// Jobs waiting to run or running: scheduled, available, running and retryable.
    pub fn pending(&self) -> i64 {
        JobState::ALL
            .iter()
            .filter(|s| !s.is_finished())
            .map(|s| self.counts.get(s).copied().unwrap_or(0))
            .sum()
    }
}

impl Store {
    /// Returns statistics for every queue of `tenant_id` (every tenant's when `None`), with
    /// throughput over the last `window` (rounded up to whole minutes). Cheap: counters and a
    /// few index probes per queue, never a count over the jobs.
    pub async fn queue_stats(
        &self,
        tenant_id: Option<i64>,
        window: Duration,
    ) -> Result<Vec<QueueStats>> {
        let minutes = window_minutes(window);
        let rows = sqlx::query_as(include_str!("sql/queue_stats.sql"))
            .bind(tenant_id)
            .bind(minutes as i32)
            .fetch_all(&self.pool)
            .await?;
        Ok(queue_stats(rows, minutes))
    }

    /// [`Store::queue_stats`], cancelled by PostgreSQL (an error) when it runs longer than
    /// `timeout`: for a caller that would rather go without than wait.
    pub async fn queue_stats_within(
        &self,
        tenant_id: Option<i64>,
        window: Duration,
        timeout: Duration,
    ) -> Result<Vec<QueueStats>> {
        let minutes = window_minutes(window);
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT set_config('statement_timeout', $1, true)")
            .bind(timeout.as_millis().max(1).to_string())
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query_as(include_str!("sql/queue_stats.sql"))
            .bind(tenant_id)
            .bind(minutes as i32)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(queue_stats(rows, minutes))
    }
}

/// A window in whole minutes, the current one included.
fn window_minutes(window: Duration) -> u32 {
    window.as_secs().div_ceil(60).clamp(1, 24 * 60) as u32
}

/// A row of `queue_stats.sql`.
#[derive(sqlx::FromRow)]
struct StatsRow {
    tenant_id: i64,
    tenant: String,
    queue: String,
    counts: serde_json::Value,
    oldest_available: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    completed: i64,
    failed: i64,
    dead: i64,
}

fn queue_stats(rows: Vec<StatsRow>, minutes: u32) -> Vec<QueueStats> {
    rows.into_iter()
        .map(|row| {
            let mut counts: BTreeMap<JobState, i64> =
                JobState::ALL.into_iter().map(|s| (s, 0)).collect();
            if let serde_json::Value::Object(map) = row.counts {
                for (state, n) in map {
                    if let Some(s) = JobState::parse(&state) {
                        counts.insert(s, n.as_i64().unwrap_or(0).max(0));
                    }
                }
            }
            QueueStats {
                tenant_id: row.tenant_id,
                tenant: row.tenant,
                queue: row.queue,
                counts,
                oldest_available_age: row
                    .oldest_available
                    .map(|at| (row.now - at).to_std().unwrap_or(Duration::ZERO)),
                completed: row.completed,
                failed: row.failed,
                dead: row.dead,
                window_minutes: minutes,
            }
        })
        .collect()
}

impl Store {
    /// Returns how many of a tenant's jobs are pending (scheduled, available, running or
    /// retryable), from the counters: folded totals plus the deltas not folded yet.
    pub async fn tenant_pending(&self, tenant_id: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(include_str!("sql/tenant_pending.sql"))
            .bind(tenant_id)
            .fetch_one(&self.pool)
            .await?)
    }
}

impl Store {
    /// Returns the names of the queues a tenant has jobs in, in any state (folded totals plus
    /// the deltas not folded yet; a queue whose every count is back to zero is not one).
    pub async fn queue_names(&self, tenant_id: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(include_str!("sql/queue_names.sql"))
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?)
    }
}
