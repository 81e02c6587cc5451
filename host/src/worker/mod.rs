//! Workers: claim → execute → complete.
//!
//! A [`Worker`] has N execution slots. Its producer claims jobs in batches (woken by a
//! debounced `NOTIFY`, with polling as the fallback), runs each attempt in the sandbox, and
//! hands the outcome to the completer, which commits outcomes gathered over a few
//! milliseconds in one transaction (the group commit). A heartbeat extends the leases of
//! everything claimed and not yet committed, and abandons attempts whose lease was lost.
//!
//! Attach a [`Metrics`] registry with [`Worker::with_metrics`] to have attempts and committed
//! outcomes counted. Every attempt also logs a start and an end event with fixed field names
//! (`job.id`, `job.handler`, `tenant`, `queue`, `attempt`, `outcome`, `error.kind`,
//! `fuel.consumed`, `duration_ms`), and re-emits the guest's log lines (target
//! `spool::guest`) with the same job fields.

mod attempt;
mod completer;
pub(crate) mod fields;
mod producer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::metrics::Metrics;
use crate::model::DEFAULT_QUEUE;
use crate::quota::Quotas;
use crate::runtime::Runtime;
use crate::store::Store;

pub use completer::Finished;

/// Settings for a [`Worker`].
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's name, recorded on the jobs it claims. Default: host, pid and a random
    /// suffix.
    pub id: String,
    /// The queues to work, in turn. Default `["default"]`.
    pub queues: Vec<String>,
    /// Attempts that may run at once. Default 32.
    pub slots: usize,
    /// The most slots one tenant's attempts take at once; the rest are kept for the other
    /// tenants, so that work arriving while one tenant's long jobs fill the worker starts at
    /// once. Default (`None`): all slots but an eighth (every slot when there are fewer
    /// than eight).
    pub tenant_slots: Option<usize>,
    /// The most jobs claimed in one statement. Default 200.
    pub claim_batch: u32,
    /// While attempts are short (under 5 ms on recent average), claim up to a claim batch (at
    /// least one job per slot) ahead of the free slots, each waiting for a slot in claim
    /// order; the jobs still waiting at shutdown are handed back unstarted. Default on.
    pub claim_ahead: bool,
    /// How long a claim holds a job before the rescuer may take it back. Default 15 s.
    pub lease: Duration,
    /// How often leases are extended. Default 5 s (a third of the lease).
    pub heartbeat_interval: Duration,
    /// How often to look for work when no notification arrives. Default 1 s.
    pub poll_interval: Duration,
    /// How long the completer gathers outcomes before committing them. Default 5 ms.
    pub commit_window: Duration,
    /// The most outcomes committed in one transaction. Default 1000.
    pub commit_batch: usize,
    /// On shutdown, how long running attempts get to finish before they are abandoned (to be
    /// rescued by lease expiry). Default 10 s.
    pub grace_period: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            id: default_worker_id(),
            queues: vec![DEFAULT_QUEUE.to_string()],
            slots: 32,
            tenant_slots: None,
            claim_batch: 200,
            claim_ahead: true,
            lease: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            commit_window: Duration::from_millis(5),
            commit_batch: 1000,
            grace_period: Duration::from_secs(10),
        }
    }
}

impl WorkerConfig {
    /// Checks the settings for values that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.queues.is_empty() {
            return Err("a worker needs at least one queue".into());
        }
        if let Some(bad) = self.queues.iter().find(|q| !crate::model::is_valid_name(q)) {
            return Err(format!("queue name {bad:?} is not valid"));
        }
        if self.slots == 0 || self.claim_batch == 0 || self.commit_batch == 0 {
            return Err("slots, claim batch and commit batch must be at least 1".into());
        }
        if self.tenant_slots == Some(0) {
            return Err("tenant slots must be at least 1".into());
        }
        if self.heartbeat_interval >= self.lease {
            return Err("the heartbeat interval must be shorter than the lease".into());
        }
        Ok(())
    }
}

impl WorkerConfig {
    /// The most slots one tenant may hold: [`WorkerConfig::tenant_slots`], or its default.
    pub fn most_per_tenant(&self) -> usize {
        self.tenant_slots
            .unwrap_or(self.slots - self.slots / 8)
            .clamp(1, self.slots.max(1))
    }
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let suffix = &Uuid::new_v4().simple().to_string()[..6];
    format!("{host}-{}-{suffix}", std::process::id())
}

/// What a worker did, counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    /// Jobs claimed.
    pub claimed: u64,
    /// Attempts committed as completed.
    pub completed: u64,
    /// Attempts recorded as failed.
    pub failed: u64,
    /// Completions that found the key already done.
    pub duplicates: u64,
    /// Outcomes dropped because the lease had been lost.
    pub stale: u64,
    /// Attempts whose store write lost a race at commit (each runs again).
    pub conflicts: u64,
}

/// A job claimed and not yet committed: what the heartbeat needs.
#[derive(Debug, Clone)]
struct Held {
    tenant_id: i64,
    run_lease: Uuid,
    abort: Option<tokio::task::AbortHandle>,
}

/// Jobs this worker holds a lease on, by id.
type HeldJobs = Arc<Mutex<HashMap<Uuid, Held>>>;

fn lock(held: &HeldJobs) -> std::sync::MutexGuard<'_, HashMap<Uuid, Held>> {
    held.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a worker's group commit is getting through, for readiness checks: a worker whose
/// commits have failed for a while should take no traffic. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    failing_since: Arc<Mutex<Option<std::time::Instant>>>,
}

impl Health {
    /// Returns whether commits have been failing, with none getting through, for at least
    /// `for_at_least`.
    pub fn commits_stuck(&self, for_at_least: Duration) -> bool {
        self.failing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|since| since.elapsed() >= for_at_least)
    }

    /// Notes a commit that got through.
    pub(crate) fn committed(&self) {
        *self.failing_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Notes a commit that failed.
    pub(crate) fn failed(&self) {
        self.failing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(std::time::Instant::now);
    }
}

/// A worker process's engine: claims, runs and commits jobs until cancelled.
pub struct Worker {
    config: WorkerConfig,
    store: Store,
    runtime: Arc<Runtime>,
    stats: Arc<Mutex<WorkerStats>>,
    metrics: Arc<Metrics>,
    health: Health,
    quotas: Arc<Quotas>,
}

impl Worker {
    /// Returns a worker over `store` running attempts in `runtime`.
    pub fn new(config: WorkerConfig, store: Store, runtime: Arc<Runtime>) -> Worker {
        Worker {
            config,
            store,
            runtime,
            stats: Arc::default(),
            // Counted into a registry nobody renders unless one is attached.
            metrics: Arc::new(Metrics::new()),
            health: Health::default(),
            quotas: Arc::new(Quotas::new(Duration::from_secs(2))),
        }
    }

    /// Returns this worker holding follow-up jobs to `quotas` (the API's, when both run in
    /// one process, so that a tenant's enqueues through either are counted together).
    pub fn with_quotas(mut self, quotas: Arc<Quotas>) -> Worker {
        self.quotas = quotas;
        self
    }

    /// Returns the handle that tells whether this worker's commits get through.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// Returns this worker recording into `metrics`: per-attempt durations and fuel, committed
    /// outcomes (completed, duplicate, retried, dead-lettered, by error kind), follow-up jobs
    /// enqueued, and its slots, running jobs and sandboxes in use. Share one registry between
    /// every worker of a process and the code that renders it.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Worker {
        self.metrics = metrics;
        self
    }

    /// Returns what the worker has done so far.
    pub fn stats(&self) -> WorkerStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}
