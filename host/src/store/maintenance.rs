//! Maintenance transitions: scheduling, rescue, counters, pruning, leader leases.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Failure, Result, Store, StoreError};
use crate::model::JobState;

/// A running job whose lease expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredJob {
    /// The tenant.
    pub tenant_id: i64,
    /// The job.
    pub id: Uuid,
    /// The lease it was claimed under.
    pub run_lease: Uuid,
    /// The attempt that was lost.
    pub attempt: u32,
    /// Attempts in all.
    pub max_attempts: u32,
    /// Backoff base, in milliseconds.
    pub backoff_base_ms: u64,
    /// Backoff cap, in milliseconds.
    pub backoff_cap_ms: u64,
}

/// Jobs of one tenant's queue in one state, from the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCount {
    /// The tenant.
    pub tenant_id: i64,
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: JobState,
    /// How many jobs.
    pub n: i64,
}

/// A row of `spool.expired`.
#[derive(sqlx::FromRow)]
struct ExpiredRow {
    tenant_id: i64,
    id: Uuid,
    run_lease: Uuid,
    attempt: i32,
    max_attempts: i32,
    backoff_base_ms: i64,
    backoff_cap_ms: i64,
}

impl From<ExpiredRow> for ExpiredJob {
    fn from(row: ExpiredRow) -> ExpiredJob {
        ExpiredJob {
            tenant_id: row.tenant_id,
            id: row.id,
            run_lease: row.run_lease,
            attempt: row.attempt.max(0) as u32,
            max_attempts: row.max_attempts.max(0) as u32,
            backoff_base_ms: row.backoff_base_ms.max(0) as u64,
            backoff_cap_ms: row.backoff_cap_ms.max(0) as u64,
        }
    }
}

/// A row of `queue_counts.sql`.
#[derive(sqlx::FromRow)]
struct QueueCountRow {
    tenant_id: i64,
    queue: String,
    state: String,
    n: i64,
}

impl Store {
    /// Makes up to `limit` due scheduled and retryable jobs available. Returns how many.
    pub async fn job_schedule_due(&self, limit: u32, now: Option<DateTime<Utc>>) -> Result<u64> {
        let n: i32 = sqlx::query_scalar("SELECT spool.schedule_due($1, $2)")
            .bind(limit.min(i32::MAX as u32) as i32)
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    /// Returns up to `limit` running jobs whose lease expired by `now`: candidates for
    /// [`Store::job_rescue_many`], which checks each again under its row lock.
    pub async fn job_expired(
        &self,
        limit: u32,
        now: Option<DateTime<Utc>>,
    ) -> Result<Vec<ExpiredJob>> {
        let rows: Vec<ExpiredRow> = sqlx::query_as("SELECT * FROM spool.expired($1, $2)")
            .bind(limit.min(i32::MAX as u32) as i32)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(ExpiredJob::from).collect())
    }

    /// Records `failures` of attempts whose lease expired, each only if its job still runs
    /// under that lease and the lease is still expired at `now` (default: the database's
    /// clock), checked under the row's lock: a lease renewed since [`Store::job_expired`] found
    /// it, or being renewed right now, keeps its job running. Returns how many were rescued.
    /// The failures' logs are not used: the job keeps the log it has.
    pub async fn job_rescue_many(
        &self,
        failures: &[Failure],
        now: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        let tenants: Vec<i64> = failures.iter().map(|f| f.tenant_id).collect();
        let ids: Vec<Uuid> = failures.iter().map(|f| f.id).collect();
        let leases: Vec<Uuid> = failures.iter().map(|f| f.run_lease).collect();
        let attempts: Vec<i32> = failures
            .iter()
            .map(|f| i32::try_from(f.attempt).unwrap_or(i32::MAX))
            .collect();
        let kinds: Vec<&str> = failures.iter().map(|f| f.kind.as_str()).collect();
        let messages: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
        let delays: Vec<Option<i64>> = failures
            .iter()
            .map(|f| {
                f.retry_delay
                    .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            })
            .collect();
        let rescued: Vec<Uuid> = sqlx::query_scalar(
            "SELECT job_id FROM spool.rescue_many($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(&leases)
        .bind(&attempts)
        .bind(&kinds)
        .bind(&messages)
        .bind(&delays)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rescued.len() as u64)
    }

    /// Folds up to `limit` count deltas into the queue totals. Returns how many.
    pub async fn queue_fold_counts(&self, limit: u32) -> Result<u64> {
        let n: i32 = sqlx::query_scalar("SELECT spool.fold_counts($1)")
            .bind(limit.min(i32::MAX as u32) as i32)
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    /// Vacuums the hot table once its dead row versions reach `min_dead` (a table whose lock
    /// another session holds is skipped). Returns the dead rows it found, and whether it
    /// vacuumed.
    ///
    /// Every claim and every finish leaves an entry behind in `spool.jobs`' indexes, at the
    /// front of the queue order: until vacuum removes them, each claim walks them all.
    /// Autovacuum looks at a table about once a minute, while a queue that burns down
    /// thousands of jobs a second needs it every few seconds. Runs on the unbounded pool: a
    /// vacuum of a large table may take longer than the bounded pool's statement timeout.
    pub async fn jobs_vacuum_if_churned(&self, min_dead: u64) -> Result<(u64, bool)> {
        let dead: i64 = sqlx::query_scalar(include_str!("sql/jobs_dead_rows.sql"))
            .fetch_one(&self.unbounded)
            .await?;
        let dead = dead.max(0) as u64;
        if dead < min_dead {
            return Ok((dead, false));
        }
        sqlx::raw_sql("VACUUM (SKIP_LOCKED) spool.jobs")
            .execute(&self.unbounded)
            .await?;
        Ok((dead, true))
    }

    /// Sets every tenant's running count to the jobs it has running, where it has drifted
    /// (see `migrations/functions/running_reconcile.sql`). Returns `(tenant, off by)` for each
    /// count that was off.
    pub async fn running_reconcile(&self) -> Result<Vec<(i64, i64)>> {
        let tenants: Vec<i64> = sqlx::query_scalar(include_str!("sql/running_count_tenants.sql"))
            .fetch_all(&self.pool)
            .await?;
        let mut off = Vec::new();
        for tenant in tenants {
            let by: i64 = sqlx::query_scalar("SELECT spool.running_reconcile($1)")
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?;
            if by != 0 {
                off.push((tenant, by));
            }
        }
        Ok(off)
    }

    /// Returns every (tenant, queue, state) count, folded totals plus pending deltas.
    pub async fn queue_counts(&self) -> Result<Vec<QueueCount>> {
        let rows: Vec<QueueCountRow> = sqlx::query_as(include_str!("sql/queue_counts.sql"))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(QueueCount {
                    state: JobState::parse(&row.state)
                        .ok_or_else(|| StoreError::Database(row.state.clone()))?,
                    tenant_id: row.tenant_id,
                    queue: row.queue,
                    n: row.n,
                })
            })
            .collect()
    }

    /// Takes or renews the lease `name` for `holder` for `ttl`. Returns whether it holds it.
    pub async fn lease_acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT spool.lease_acquire($1, $2, $3)")
            .bind(name)
            .bind(holder)
            .bind(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
            .fetch_one(&self.pool)
            .await?)
    }

    /// Gives up the lease `name` if `holder` holds it, so another node can take over at once.
    pub async fn lease_release(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM spool.leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes done-records and the keys of jobs that never completed, older than
    /// `retention`, at most `limit`, never one whose job is pending (a dead job being retried
    /// keeps its key). Returns how many.
    pub async fn idempotency_prune(&self, retention: Duration, limit: u32) -> Result<u64> {
        let n: i32 = sqlx::query_scalar("SELECT spool.idempotency_prune($1, $2)")
            .bind(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
            .bind(limit.min(i32::MAX as u32) as i32)
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    /// Deletes per-minute throughput older than `retention`. Returns how many minutes.
    pub async fn queue_minutes_prune(&self, retention: Duration) -> Result<u64> {
        let n = sqlx::query(include_str!("sql/queue_minutes_prune.sql"))
            .bind(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }

    /// Makes sure history has a partition per day from today to `days_ahead` days on, and
    /// drops the partitions that ended more than `retention` ago, taking their jobs off the
    /// queue counters. Returns (created, dropped).
    ///
    /// Two statements: the first detaches the expired partitions (a moment's lock on the whole
    /// history), the second counts and drops them without holding up anyone. A partition
    /// detached by a pass that failed before dropping it is dropped by the next one.
    pub async fn history_partitions(
        &self,
        days_ahead: u32,
        retention: Duration,
    ) -> Result<(u32, u32)> {
        let created: i32 =
            sqlx::query_scalar("SELECT created FROM spool.history_partitions($1, $2)")
                .bind(days_ahead as i32)
                .bind(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX))
                .fetch_one(&self.pool)
                .await?;
        let dropped: i32 = sqlx::query_scalar("SELECT spool.history_retire()")
            .fetch_one(&self.pool)
            .await?;
        Ok((created as u32, dropped as u32))
    }
}
