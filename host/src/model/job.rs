//! Jobs as stored: states, what is enqueued, and what a worker claims.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::LimitSpec;

/// A job's place in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its `run_at`.
    Scheduled,
    /// Ready to be claimed.
    Available,
    /// Claimed by a worker, under a lease.
    Running,
    /// Failed, waiting for its backoff to pass.
    Retryable,
    /// Succeeded (finished).
    Completed,
    /// Failed for good: in the dead-letter queue (finished).
    Dead,
    /// Cancelled before it ran (finished).
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Dead,
        JobState::Cancelled,
    ];

    /// Returns the state's name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses a state name.
    pub fn parse(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Returns whether the job has finished (completed, dead or cancelled).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Dead | JobState::Cancelled
        )
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The handler to run.
    pub handler: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Whether the payload is JSON text (it is then stored in canonical form).
    pub payload_is_json: bool,
    /// The queue; `default` when `None`.
    pub queue: Option<String>,
    /// The idempotency key; the job id when `None`.
    pub idempotency_key: Option<String>,
    /// Priority: lower runs first.
    pub priority: i16,
    /// When to run; now when `None`.
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts in all; the handler's or the default when `None`.
    pub max_attempts: Option<u32>,
    /// Limits asked for, capped by the tenant's.
    pub limits: Option<LimitSpec>,
    /// Retry backoff `(base, cap)`; the handler's or the default (1 s, 1 h) when `None`.
    pub backoff: Option<(std::time::Duration, std::time::Duration)>,
}

impl NewJob {
    /// Returns a job for `handler` with a JSON payload and every option at its default.
    pub fn json(handler: impl Into<String>, payload: &serde_json::Value) -> NewJob {
        NewJob {
            handler: handler.into(),
            payload: serde_json::to_vec(payload).expect("a JSON value serializes"),
            payload_is_json: true,
            queue: None,
            idempotency_key: None,
            priority: 0,
            run_at: None,
            max_attempts: None,
            limits: None,
            backoff: None,
        }
    }
}

/// What enqueueing one job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The job's id: the new job's, or the existing one's for a duplicate or conflict.
    pub id: Uuid,
    /// Its state.
    pub state: JobState,
    /// The key was already used with the same payload: no new job was made.
    pub duplicate: bool,
    /// The key was already used with another payload: no new job was made.
    pub conflict: bool,
}

/// A job a worker has claimed: everything needed to run one attempt and to commit it.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The owning tenant's id.
    pub tenant_id: i64,
    /// The owning tenant's name.
    pub tenant: String,
    /// The tenant's explicit limits.
    pub tenant_limits: super::TenantLimitSpec,
    /// The tenant's outbound-HTTP allow-list, as stored.
    pub allowed_hosts: Vec<String>,
    /// The job id.
    pub id: Uuid,
    /// The queue.
    pub queue: String,
    /// The handler name.
    pub handler: String,
    /// The handler version to run, if the handler exists.
    pub handler_version: Option<i32>,
    /// That version's component digest.
    pub digest: Option<String>,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Attempts in all.
    pub max_attempts: u32,
    /// Backoff base, in milliseconds.
    pub backoff_base_ms: u64,
    /// Backoff cap, in milliseconds.
    pub backoff_cap_ms: u64,
    /// The idempotency key.
    pub idempotency_key: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Limits the enqueuer asked for.
    pub limits: LimitSpec,
    /// This attempt's lease token: completion is fenced on it.
    pub run_lease: Uuid,
    /// The key already has a done-record: complete as a duplicate without running.
    pub already_done: bool,
}

impl ClaimedJob {
    /// The job's retry policy: its backoff and its attempts in all.
    pub fn retry_policy(&self) -> super::RetryPolicy {
        super::RetryPolicy::of_job(self.backoff_base_ms, self.backoff_cap_ms, self.max_attempts)
    }
}

/// One failure in a job's history: part of the API's answer for a job, so defined beside it.
pub use spool_client::types::AttemptError;

/// A job as stored, in the hot table or in history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// The job id.
    pub id: Uuid,
    /// The owning tenant's id.
    #[serde(skip)]
    pub tenant_id: i64,
    /// The handler.
    pub handler: String,
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: JobState,
    /// Attempts made so far.
    pub attempt: u32,
    /// Attempts in all.
    pub max_attempts: u32,
    /// Races on store keys its attempts lost (each ran it again without charging an attempt).
    pub conflicts: u32,
    /// Priority.
    pub priority: i16,
    /// The idempotency key.
    pub idempotency_key: String,
    /// The payload bytes.
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// The result bytes, once completed.
    #[serde(skip)]
    pub result: Option<Vec<u8>>,
    /// Completed as a duplicate of an earlier job with the same key.
    pub duplicate: bool,
    /// Every failed attempt.
    pub errors: Vec<AttemptError>,
    /// The last attempt's log lines.
    pub logs: serde_json::Value,
    /// The job that enqueued this one, for follow-ups.
    pub parent_id: Option<Uuid>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it runs (or ran) next.
    pub run_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}
