//! Domain types shared by every layer: jobs, limits, outcomes and effects. No I/O here.

pub mod allow_list;
mod effects;
mod job;
mod outcome;
mod retry;
pub mod schedule;
pub mod text;

pub use allow_list::{AllowList, AllowListError};
pub use effects::{
    EnqueuedJob, Expected, LogLevel, LogLine, LogSource, StoreWrite, WriteOp, counter_value,
};
pub use job::{AttemptError, ClaimedJob, Enqueued, Job, JobState, NewJob};
// The limits are part of the API: their table lives beside the API's types, in `spool-client`.
pub use outcome::{ErrorKind, Outcome};
pub use retry::RetryPolicy;
pub use spool_client::limits::{LimitSpec, Limits, TenantLimitSpec, TenantLimits};

/// One job as an attempt sees it: the fields of the WIT `job` record the guest receives in
/// `run` (turned into that record in `wit.rs`), built from a
/// claim with [`JobContext::from`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobContext {
    /// The job's id.
    pub id: String,
    /// The owning tenant.
    pub tenant: String,
    /// The handler name.
    pub handler: String,
    /// The queue.
    pub queue: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Attempts before the job is dead-lettered.
    pub max_attempts: u32,
    /// The idempotency key (the job id unless the enqueuer chose one).
    pub idempotency_key: String,
}

impl From<&ClaimedJob> for JobContext {
    fn from(job: &ClaimedJob) -> JobContext {
        JobContext {
            id: job.id.to_string(),
            tenant: job.tenant.clone(),
            handler: job.handler.clone(),
            queue: job.queue.clone(),
            payload: job.payload.clone(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            idempotency_key: job.idempotency_key.clone(),
        }
    }
}

/// The longest handler, queue or tenant name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Returns whether `name` is a valid handler, queue or tenant name: 1 to 64 ASCII letters,
/// digits, `-`, `_` or `.`, starting with a letter or digit.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The queue a job goes to when none is named.
pub const DEFAULT_QUEUE: &str = "default";

/// The longest idempotency key a job may be given, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 512;

/// The most attempts a job may ask for, through the API or as a follow-up.
pub const MAX_ATTEMPTS: u32 = 1_000;

/// The longest delay before a job's first run, through the API or as a follow-up: ten years.
pub const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(3650 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_plain() {
        assert!(is_valid_name("send-receipt"));
        assert!(is_valid_name("v2.orders_eu"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name("über"));
        assert!(!is_valid_name(&"a".repeat(65)));
    }
}
