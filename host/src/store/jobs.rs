//! Jobs: enqueue, claim, heartbeat, complete, fail, cancel, retry, read.

use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgExecutor, Postgres};
use uuid::Uuid;

use super::{Result, Store, StoreError, int};
use crate::model::{
    ClaimedJob, Enqueued, EnqueuedJob, ErrorKind, Expected, Job, JobState, NewJob, StoreWrite,
    WriteOp,
};

/// A successful attempt to commit.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The job's tenant.
    pub tenant_id: i64,
    /// The job.
    pub id: Uuid,
    /// The attempt's lease token: nothing is written if the job no longer holds it.
    pub run_lease: Uuid,
    /// The result bytes.
    pub result: Vec<u8>,
    /// The attempt's log, as JSON.
    pub logs: Value,
    /// Store writes to apply.
    pub store_writes: Vec<StoreWrite>,
    /// Follow-up jobs to enqueue.
    pub enqueued: Vec<EnqueuedJob>,
    /// If the outcome cannot be committed: the delay before a retry, or `None` to
    /// dead-letter.
    pub retry_delay: Option<Duration>,
    /// Store-key races the job may lose in all before a conflict is a failure (its tenant's
    /// `max_conflicts`).
    pub max_conflicts: u32,
}

/// What committing a [`Completion`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionStatus {
    /// Committed with its effects.
    Completed,
    /// The key already had a done-record: completed, effects discarded.
    Duplicate,
    /// The lease was lost: nothing written.
    Stale,
    /// A checked store write lost a race: the job runs again shortly, not charged an attempt.
    Conflict,
    /// The database could not take the outcome (a value out of range, a follow-up whose key
    /// is taken): the job failed alone with kind `commit`, retried or dead-lettered.
    Failed,
    /// Its writes would take the tenant's store past `max_store_bytes`: the job failed alone
    /// with kind `quota`, retried or dead-lettered.
    Quota,
}

/// A failed attempt to record.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The job's tenant.
    pub tenant_id: i64,
    /// The job.
    pub id: Uuid,
    /// The attempt's lease token.
    pub run_lease: Uuid,
    /// Which attempt failed.
    pub attempt: u32,
    /// The kind of failure.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
    /// The attempt's log, as JSON; `Value::Null` keeps the log the job already has.
    pub logs: Value,
    /// The delay before the next attempt, or `None` to dead-letter.
    pub retry_delay: Option<Duration>,
}

impl Failure {
    /// Attempt `job.attempt` of a claimed job failed with `kind`: to be retried after the
    /// delay the job's retry policy gives that kind and attempt, or dead-lettered (`None`).
    pub fn from_claim(job: &ClaimedJob, kind: ErrorKind, message: String, logs: Value) -> Failure {
        Failure {
            tenant_id: job.tenant_id,
            id: job.id,
            run_lease: job.run_lease,
            attempt: job.attempt,
            kind,
            message,
            logs,
            retry_delay: job.retry_policy().next_delay(kind, job.attempt),
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Encodes an attempt's effects as complete_many expects them, or `None` when there are none.
fn effects(c: &Completion) -> Option<Value> {
    if c.store_writes.is_empty() && c.enqueued.is_empty() {
        return None;
    }
    let writes: Vec<Value> = c
        .store_writes
        .iter()
        .map(|w| {
            let expected = match w.expected {
                None => Value::Null,
                Some(Expected::Absent) => json!("absent"),
                Some(Expected::Version(v)) => json!(v),
            };
            match &w.op {
                WriteOp::Add(delta) => json!({ "key": w.key, "add": delta }),
                WriteOp::Put(value) => {
                    json!({ "key": w.key, "value": b64(value), "expected": expected })
                }
                WriteOp::Delete => json!({ "key": w.key, "value": null, "expected": expected }),
            }
        })
        .collect();
    let children: Vec<Value> = c
        .enqueued
        .iter()
        .map(|j| {
            json!({
                "id": j.id,
                "handler": j.handler,
                "queue": j.queue,
                "payload": b64(&j.payload),
                "idempotency_key": j.idempotency_key,
                "priority": j.priority,
                "delay_ms": j.delay_ms,
                "max_attempts": j.max_attempts,
            })
        })
        .collect();
    Some(json!({ "writes": writes, "children": children }))
}

/// Enqueues `jobs` for `tenant_id` through any executor (the pool or a transaction).
async fn enqueue_many<'e>(
    executor: impl PgExecutor<'e>,
    tenant_id: i64,
    jobs: &[NewJob],
    now: Option<DateTime<Utc>>,
) -> Result<Vec<Enqueued>> {
    let n = jobs.len();
    let mut ids = Vec::with_capacity(n);
    let (mut handlers, mut queues, mut payloads) = (Vec::new(), Vec::new(), Vec::new());
    let (mut is_json, mut keys, mut priorities) = (Vec::new(), Vec::new(), Vec::new());
    let (mut run_at, mut max_attempts, mut limits) = (Vec::new(), Vec::new(), Vec::new());
    let (mut backoff_base, mut backoff_cap): (Vec<Option<i64>>, Vec<Option<i64>>) =
        (Vec::new(), Vec::new());
    for job in jobs {
        ids.push(Uuid::now_v7());
        handlers.push(job.handler.as_str());
        queues.push(job.queue.as_deref());
        payloads.push(job.payload.as_slice());
        is_json.push(job.payload_is_json);
        keys.push(job.idempotency_key.as_deref());
        priorities.push(job.priority);
        run_at.push(job.run_at);
        max_attempts.push(job.max_attempts.map(|m| m.min(i32::MAX as u32) as i32));
        limits.push(
            job.limits
                .map(|l| serde_json::to_value(l).expect("limits serialize")),
        );
        backoff_base.push(job.backoff.map(|(base, _)| ms(base)));
        backoff_cap.push(job.backoff.map(|(_, cap)| ms(cap)));
    }
    let rows: Vec<EnqueueRow> = sqlx::query_as(
        "SELECT ord, job_id, state::text AS state, duplicate, conflict
         FROM spool.enqueue_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12,
                                 $13, $14)",
    )
    .bind(tenant_id)
    .bind(&ids)
    .bind(&handlers)
    .bind(&queues)
    .bind(&payloads)
    .bind(&is_json)
    .bind(&keys)
    .bind(&priorities)
    .bind(&run_at)
    .bind(&max_attempts)
    .bind(&limits)
    .bind(now)
    .bind(&backoff_base)
    .bind(&backoff_cap)
    .fetch_all(executor)
    .await?;
    let mut out = vec![None; n];
    for row in rows {
        let slot = usize::try_from(row.ord - 1)
            .ok()
            .and_then(|i| out.get_mut(i))
            .ok_or_else(|| StoreError::Database(format!("enqueue answered row {}", row.ord)))?;
        *slot = Some(Enqueued {
            id: row.job_id,
            state: JobState::parse(&row.state)
                .ok_or_else(|| StoreError::Database(row.state.clone()))?,
            duplicate: row.duplicate,
            conflict: row.conflict,
        });
    }
    out.into_iter()
        .map(|e| e.ok_or_else(|| StoreError::Database("enqueue lost a job".into())))
        .collect()
}

impl Store {
    /// Enqueues a batch of jobs for a tenant in one statement (up to 10,000 is the intended
    /// size), answering one [`Enqueued`] per job, in order.
    pub async fn job_enqueue_many(
        &self,
        tenant_id: i64,
        jobs: &[NewJob],
        now: Option<DateTime<Utc>>,
    ) -> Result<Vec<Enqueued>> {
        enqueue_many(&self.pool, tenant_id, jobs, now).await
    }

    /// Enqueues a batch all or none: if any job's key was used before with another payload,
    /// nothing is enqueued and the answer is `Err(index)` of the first such job.
    pub async fn job_enqueue_all_or_none(
        &self,
        tenant_id: i64,
        jobs: &[NewJob],
    ) -> Result<std::result::Result<Vec<Enqueued>, usize>> {
        let mut tx = self.pool.begin().await?;
        let enqueued = enqueue_many(&mut *tx, tenant_id, jobs, None).await?;
        if let Some(index) = enqueued.iter().position(|e| e.conflict) {
            tx.rollback().await?;
            return Ok(Err(index));
        }
        tx.commit().await?;
        Ok(Ok(enqueued))
    }

    /// Enqueues jobs inside the caller's own transaction: they exist if and only if it
    /// commits. The transactional-enqueue path for applications sharing Spool's database.
    pub async fn job_enqueue_in(
        tx: &mut sqlx::Transaction<'_, Postgres>,
        tenant_id: i64,
        jobs: &[NewJob],
    ) -> Result<Vec<Enqueued>> {
        enqueue_many(&mut **tx, tenant_id, jobs, None).await
    }

    /// Claims up to `limit` available jobs of `queue` for `worker`, fairly between tenants
    /// and within each tenant's running cap, each under a lease of `lease`.
    pub async fn job_claim(
        &self,
        queue: &str,
        limit: u32,
        worker: &str,
        lease: Duration,
        now: Option<DateTime<Utc>>,
    ) -> Result<Vec<ClaimedJob>> {
        self.job_claim_sharing(queue, limit, worker, lease, now, SlotShare::default())
            .await
    }

    /// [`Store::job_claim`] for a worker that shares its slots between tenants
    /// ([`SlotShare`]): they go first to the tenants holding fewest, so that long jobs of one
    /// tenant cannot fill them while another tenant waits, and no tenant takes more than its
    /// cap.
    pub async fn job_claim_sharing(
        &self,
        queue: &str,
        limit: u32,
        worker: &str,
        lease: Duration,
        now: Option<DateTime<Utc>>,
        share: SlotShare<'_>,
    ) -> Result<Vec<ClaimedJob>> {
        let held_tenants: Vec<i64> = share.held.iter().map(|h| h.0).collect();
        let held_counts: Vec<i32> = share
            .held
            .iter()
            .map(|h| h.1.min(i32::MAX as u32) as i32)
            .collect();
        let most_per_tenant = share.most_per_tenant.map(|n| n.min(i32::MAX as u32) as i32);
        let rows: Vec<ClaimRow> =
            sqlx::query_as("SELECT * FROM spool.claim($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(queue)
                .bind(limit.min(i32::MAX as u32) as i32)
                .bind(worker)
                .bind(ms(lease))
                .bind(now)
                .bind(&held_tenants)
                .bind(&held_counts)
                .bind(most_per_tenant)
                .fetch_all(&self.lease_pool)
                .await?;
        Ok(rows.into_iter().map(ClaimedJob::from).collect())
    }

    /// Extends the leases of running jobs `(tenant, id, run_lease)` by `lease`; returns the
    /// ids whose lease was lost.
    pub async fn job_heartbeat(
        &self,
        jobs: &[(i64, Uuid, Uuid)],
        lease: Duration,
        now: Option<DateTime<Utc>>,
    ) -> Result<Vec<Uuid>> {
        let tenants: Vec<i64> = jobs.iter().map(|j| j.0).collect();
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.1).collect();
        let leases: Vec<Uuid> = jobs.iter().map(|j| j.2).collect();
        Ok(
            sqlx::query_scalar("SELECT lost_id FROM spool.heartbeat($1, $2, $3, $4, $5)")
                .bind(&tenants)
                .bind(&ids)
                .bind(&leases)
                .bind(ms(lease))
                .bind(now)
                .fetch_all(&self.lease_pool)
                .await?,
        )
    }

    /// Gives back claimed jobs that were never started (`(tenant, id, run_lease)` each): each
    /// still held under its lease goes back to available with its attempt not charged.
    /// Returns the ids released.
    pub async fn job_release_many(&self, jobs: &[(i64, Uuid, Uuid)]) -> Result<Vec<Uuid>> {
        let tenants: Vec<i64> = jobs.iter().map(|j| j.0).collect();
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.1).collect();
        let leases: Vec<Uuid> = jobs.iter().map(|j| j.2).collect();
        Ok(
            sqlx::query_scalar("SELECT job_id FROM spool.release_many($1, $2, $3)")
                .bind(&tenants)
                .bind(&ids)
                .bind(&leases)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The group commit: commits successes and records failures in one transaction.
    /// Returns each completion's status, in order; failures whose lease was lost are skipped
    /// silently (fenced).
    pub async fn job_finish_many(
        &self,
        completions: &[Completion],
        failures: &[Failure],
        now: Option<DateTime<Utc>>,
    ) -> Result<Vec<CompletionStatus>> {
        let mut tx = self.pool.begin().await?;
        let mut statuses = Vec::with_capacity(completions.len());
        if !completions.is_empty() {
            let tenants: Vec<i64> = completions.iter().map(|c| c.tenant_id).collect();
            let ids: Vec<Uuid> = completions.iter().map(|c| c.id).collect();
            let leases: Vec<Uuid> = completions.iter().map(|c| c.run_lease).collect();
            let results: Vec<&[u8]> = completions.iter().map(|c| c.result.as_slice()).collect();
            let logs: Vec<&Value> = completions.iter().map(|c| &c.logs).collect();
            let effects: Vec<Option<Value>> = completions.iter().map(effects).collect();
            let delays: Vec<Option<i64>> =
                completions.iter().map(|c| c.retry_delay.map(ms)).collect();
            let max_conflicts: Vec<i32> = completions
                .iter()
                .map(|c| c.max_conflicts.min(i32::MAX as u32) as i32)
                .collect();
            let rows: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT job_id, status
                 FROM spool.complete_many($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&tenants)
            .bind(&ids)
            .bind(&leases)
            .bind(&results)
            .bind(&logs)
            .bind(&effects)
            .bind(&delays)
            .bind(&max_conflicts)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let by_id: std::collections::HashMap<Uuid, String> = rows.into_iter().collect();
            for c in completions {
                statuses.push(match by_id.get(&c.id).map(String::as_str) {
                    Some("completed") => CompletionStatus::Completed,
                    Some("duplicate") => CompletionStatus::Duplicate,
                    Some("conflict") => CompletionStatus::Conflict,
                    Some("failed") => CompletionStatus::Failed,
                    Some("quota") => CompletionStatus::Quota,
                    _ => CompletionStatus::Stale,
                });
            }
        }
        if !failures.is_empty() {
            let tenants: Vec<i64> = failures.iter().map(|f| f.tenant_id).collect();
            let ids: Vec<Uuid> = failures.iter().map(|f| f.id).collect();
            let leases: Vec<Uuid> = failures.iter().map(|f| f.run_lease).collect();
            let attempts: Vec<i32> = failures.iter().map(|f| f.attempt as i32).collect();
            let kinds: Vec<&str> = failures.iter().map(|f| f.kind.as_str()).collect();
            let messages: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
            // JSON null binds as SQL NULL: the job keeps the log it has.
            let logs: Vec<Option<&Value>> = failures
                .iter()
                .map(|f| Some(&f.logs).filter(|l| !l.is_null()))
                .collect();
            let delays: Vec<Option<i64>> = failures.iter().map(|f| f.retry_delay.map(ms)).collect();
            sqlx::query("SELECT * FROM spool.fail_many($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(&tenants)
                .bind(&ids)
                .bind(&leases)
                .bind(&attempts)
                .bind(&kinds)
                .bind(&messages)
                .bind(&logs)
                .bind(&delays)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        for (c, status) in completions.iter().zip(&statuses) {
            if *status == CompletionStatus::Completed && !c.store_writes.is_empty() {
                // Counted as growth even when a write replaces a value: the usage errs high
                // until it is read again.
                let bytes = c
                    .store_writes
                    .iter()
                    .map(|w| (w.key.len() + w.op.stored_bytes()) as u64)
                    .sum();
                self.kv_usage.add(c.tenant_id, bytes);
            }
        }
        Ok(statuses)
    }

    /// Cancels a pending job. Returns whether there was one to cancel.
    pub async fn job_cancel(&self, tenant_id: i64, id: Uuid) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT spool.cancel($1, $2)")
            .bind(tenant_id)
            .bind(id)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Requeues dead or cancelled jobs. Returns the ids requeued.
    pub async fn job_retry_many(&self, tenant_id: i64, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        Ok(
            sqlx::query_scalar("SELECT job_id FROM spool.retry_many($1, $2)")
                .bind(tenant_id)
                .bind(ids)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Returns a job, from the hot table or history.
    pub async fn job_get(&self, tenant_id: i64, id: Uuid) -> Result<Job> {
        let row: JobRow = sqlx::query_as(include_str!("sql/job_get.sql"))
            .bind(tenant_id)
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Job::try_from(row)
    }

    /// Returns a page of a tenant's jobs, newest first, matching `filter`, with ids below
    /// `before`, at most `limit`. Payloads, results and logs are left empty.
    pub async fn job_list(
        &self,
        tenant_id: i64,
        filter: &JobFilter,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Job>> {
        let dead = filter.state == Some(JobState::Dead);
        let sql = if dead {
            include_str!("sql/job_list_dead.sql")
        } else {
            include_str!("sql/job_list.sql")
        };
        let query = sqlx::query_as::<_, JobRow>(sql)
            .bind(tenant_id)
            .bind(filter.queue.as_deref())
            .bind(filter.handler.as_deref())
            .bind(before)
            .bind(i64::from(limit));
        let query = if dead {
            query
        } else {
            query.bind(filter.state.map(JobState::as_str))
        };
        query
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(Job::try_from)
            .collect()
    }

    /// Returns the ids of a tenant's dead jobs matching `filter` (its state is ignored),
    /// newest first, below `before`, at most `limit`.
    pub async fn job_dead_ids(
        &self,
        tenant_id: i64,
        filter: &JobFilter,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Uuid>> {
        Ok(sqlx::query_scalar(include_str!("sql/job_ids_dead.sql"))
            .bind(tenant_id)
            .bind(filter.queue.as_deref())
            .bind(filter.handler.as_deref())
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
    }

    /// Deletes dead jobs for good (and the enqueue-time keys that pointed at them, so the key
    /// can be used again). Returns how many were deleted.
    pub async fn job_discard_dead(&self, tenant_id: i64, ids: &[Uuid]) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(include_str!("sql/job_discard_dead.sql"))
            .bind(tenant_id)
            .bind(ids)
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }
}

/// How a claiming worker shares its slots between tenants.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlotShare<'a> {
    /// The jobs it holds per tenant, `(tenant, jobs)`: its slots go first to the tenants
    /// holding fewest.
    pub held: &'a [(i64, u32)],
    /// The most jobs one tenant may hold (`None`: no cap).
    pub most_per_tenant: Option<u32>,
}

/// Which jobs a list asks for; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Jobs in this state.
    pub state: Option<JobState>,
    /// Jobs of this queue.
    pub queue: Option<String>,
    /// Jobs of this handler.
    pub handler: Option<String>,
}

/// A row of `spool.enqueue_many`.
#[derive(sqlx::FromRow)]
struct EnqueueRow {
    ord: i32,
    job_id: Uuid,
    state: String,
    duplicate: bool,
    conflict: bool,
}

/// A row of `spool.claim`.
#[derive(sqlx::FromRow)]
struct ClaimRow {
    tenant_id: i64,
    tenant: String,
    tenant_limits: Value,
    allowed_hosts: Vec<String>,
    id: Uuid,
    queue: String,
    handler: String,
    handler_version: Option<i32>,
    digest: Option<String>,
    #[sqlx(try_from = "i32")]
    attempt: u32,
    #[sqlx(try_from = "i32")]
    max_attempts: u32,
    #[sqlx(try_from = "i64")]
    backoff_base_ms: u64,
    #[sqlx(try_from = "i64")]
    backoff_cap_ms: u64,
    idempotency_key: String,
    payload: Vec<u8>,
    limits: Option<Value>,
    run_lease: Uuid,
    already_done: bool,
}

impl From<ClaimRow> for ClaimedJob {
    fn from(row: ClaimRow) -> Self {
        ClaimedJob {
            tenant_id: row.tenant_id,
            tenant: row.tenant,
            // Limits are written by Spool only; a spec this version cannot read runs with
            // the defaults rather than not at all.
            tenant_limits: serde_json::from_value(row.tenant_limits).unwrap_or_default(),
            allowed_hosts: row.allowed_hosts,
            id: row.id,
            queue: row.queue,
            handler: row.handler,
            handler_version: row.handler_version,
            digest: row.digest,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            backoff_base_ms: row.backoff_base_ms,
            backoff_cap_ms: row.backoff_cap_ms,
            idempotency_key: row.idempotency_key,
            payload: row.payload,
            limits: row
                .limits
                .and_then(|l| serde_json::from_value(l).ok())
                .unwrap_or_default(),
            run_lease: row.run_lease,
            already_done: row.already_done,
        }
    }
}

/// A row of `job_get.sql`, `job_list.sql` and `job_list_dead.sql`.
#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    tenant_id: i64,
    handler: String,
    queue: String,
    state: String,
    #[sqlx(try_from = "i32")]
    attempt: u32,
    #[sqlx(try_from = "i32")]
    max_attempts: u32,
    #[sqlx(try_from = "i32")]
    conflicts: u32,
    priority: i16,
    idempotency_key: String,
    payload: Vec<u8>,
    result: Option<Vec<u8>>,
    duplicate: bool,
    errors: Value,
    logs: Value,
    parent_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    run_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Job> {
        Ok(Job {
            state: JobState::parse(&row.state)
                .ok_or_else(|| StoreError::Database(row.state.clone()))?,
            id: row.id,
            tenant_id: row.tenant_id,
            handler: row.handler,
            queue: row.queue,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            conflicts: row.conflicts,
            priority: row.priority,
            idempotency_key: row.idempotency_key,
            payload: row.payload,
            result: row.result,
            duplicate: row.duplicate,
            errors: serde_json::from_value(row.errors).unwrap_or_default(),
            logs: row.logs,
            parent_id: row.parent_id,
            created_at: row.created_at,
            run_at: row.run_at,
            finished_at: row.finished_at,
        })
    }
}

impl Store {
    /// Returns the ids of a tenant's jobs in `state`, oldest first, at most `limit`.
    pub async fn job_ids_in_state(
        &self,
        tenant_id: i64,
        state: JobState,
        limit: u32,
    ) -> Result<Vec<Uuid>> {
        Ok(sqlx::query_scalar(include_str!("sql/job_ids_in_state.sql"))
            .bind(tenant_id)
            .bind(state.as_str())
            .bind(int(limit.into()))
            .fetch_all(&self.pool)
            .await?)
    }
}
