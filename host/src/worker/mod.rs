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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::model::DEFAULT_QUEUE;
use crate::quota::Quotas;
use crate::runtime::Runtime;
use crate::store::{NOTIFY_CHANNEL, Store};

pub use attempt::retry_delay;
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
    /// The most jobs claimed in one statement. Default 200.
    pub claim_batch: u32,
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
            claim_batch: 200,
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
        if self.heartbeat_interval >= self.lease {
            return Err("the heartbeat interval must be shorter than the lease".into());
        }
        Ok(())
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

/// How many of this worker's slots each tenant's attempts take now, for the claim's fair
/// share of them. Attempts that finished and wait for the group commit hold no slot.
fn held_by_tenant(held: &HeldJobs) -> Vec<(i64, u32)> {
    let mut counts: HashMap<i64, u32> = HashMap::new();
    for job in lock(held).values() {
        if job.abort.as_ref().is_none_or(|task| !task.is_finished()) {
            *counts.entry(job.tenant_id).or_default() += 1;
        }
    }
    counts.into_iter().collect()
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

    /// Runs until `shutdown` is cancelled, then stops claiming, gives running attempts the
    /// grace period to finish, commits what finished, and returns.
    pub async fn run(&self, shutdown: CancellationToken) -> WorkerStats {
        let held: HeldJobs = Arc::default();
        let slots = Arc::new(Semaphore::new(self.config.slots));
        let wake = Arc::new(Notify::new());
        let committed = Arc::new(Notify::new());
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        let _slots_counted = self.metrics.worker_slots(self.config.slots);
        self.metrics
            .set_sandboxes_max(self.runtime.config().max_instances);

        let stop_background = CancellationToken::new();
        let completer = tokio::spawn(completer::run(
            completer::Completer {
                store: self.store.clone(),
                config: self.config.clone(),
                held: held.clone(),
                stats: self.stats.clone(),
                metrics: self.metrics.clone(),
                committed: committed.clone(),
                health: self.health.clone(),
            },
            finished_rx,
        ));
        let heartbeat = tokio::spawn(heartbeat(
            self.store.clone(),
            self.config.clone(),
            held.clone(),
            stop_background.clone(),
        ));
        let listener = tokio::spawn(listen(
            self.store.clone(),
            self.config.queues.clone(),
            wake.clone(),
            stop_background.clone(),
        ));

        let mut attempts = JoinSet::new();
        let mut queue_turn = 0usize;
        // Whether any queue in the current round gave a full batch (so there may be more).
        let mut round_was_full = false;
        while !shutdown.is_cancelled() {
            // Reap finished attempt tasks so the set does not grow without bound.
            while attempts.try_join_next().is_some() {}
            // Backpressure: slots are given back before outcomes commit, so also bound what
            // is claimed and not yet committed; otherwise claims outrun a slow commit and
            // every lease held meanwhile makes commits slower still.
            let uncommitted = lock(&held).len();
            let room = (self.config.slots + self.config.commit_batch).saturating_sub(uncommitted);
            let free = slots.available_permits().min(room);
            if free == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = slots.acquire(), if room > 0 => continue,
                    _ = committed.notified(), if room == 0 => continue,
                    // Held jobs can also leave by losing their lease, with nothing to commit.
                    _ = tokio::time::sleep(self.config.poll_interval), if room == 0 => continue,
                }
            }
            let queue = &self.config.queues[queue_turn % self.config.queues.len()];
            queue_turn = queue_turn.wrapping_add(1);
            let limit = (free as u32).min(self.config.claim_batch);
            let held_by_tenant = held_by_tenant(&held);
            let claimed = match self
                .store
                .job_claim_sharing(
                    queue,
                    limit,
                    &self.config.id,
                    self.config.lease,
                    None,
                    &held_by_tenant,
                )
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, queue, "claiming jobs failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(self.config.poll_interval) => continue,
                    }
                }
            };
            let got = claimed.len();
            self.stats.lock().unwrap_or_else(|e| e.into_inner()).claimed += got as u64;
            for job in claimed {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                lock(&held).insert(
                    job.id,
                    Held {
                        tenant_id: job.tenant_id,
                        run_lease: job.run_lease,
                        abort: None,
                    },
                );
                let id = job.id;
                let task = attempts.spawn(attempt::run(
                    job,
                    self.store.clone(),
                    self.runtime.clone(),
                    self.metrics.clone(),
                    self.quotas.clone(),
                    finished_tx.clone(),
                    permit,
                ));
                if let Some(h) = lock(&held).get_mut(&id) {
                    h.abort = Some(task);
                }
            }
            // After a round of short batches every queue is drained for now: wait for a
            // notification or the poll interval. After a full batch there may be more.
            round_was_full |= got == limit as usize;
            if queue_turn.is_multiple_of(self.config.queues.len())
                && !std::mem::take(&mut round_was_full)
            {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                }
            }
        }

        // Graceful shutdown: no more claims; let running attempts finish within the grace
        // period, then abandon the rest (their leases expire and the rescuer retries them).
        let drained = tokio::time::timeout(self.config.grace_period, async {
            while attempts.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                abandoned = attempts.len(),
                "grace period over: abandoning running attempts to lease expiry"
            );
            attempts.abort_all();
            while attempts.join_next().await.is_some() {}
        }
        drop(finished_tx);
        // What finished is committed within another grace period; past it the outcomes are
        // dropped (their jobs are retried when the leases expire), so SIGTERM always ends.
        let flushing = completer.abort_handle();
        if tokio::time::timeout(self.config.grace_period, completer)
            .await
            .is_err()
        {
            tracing::warn!("grace period over: dropping outcomes not yet committed");
            flushing.abort();
        }
        stop_background.cancel();
        let _ = heartbeat.await;
        let _ = listener.await;
        self.stats()
    }
}

/// Extends the leases of every held job, in one statement per interval; abandons attempts
/// whose lease was lost.
async fn heartbeat(store: Store, config: WorkerConfig, held: HeldJobs, stop: CancellationToken) {
    let mut interval = tokio::time::interval(config.heartbeat_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        let jobs: Vec<(i64, Uuid, Uuid)> = lock(&held)
            .iter()
            .map(|(id, h)| (h.tenant_id, *id, h.run_lease))
            .collect();
        if jobs.is_empty() {
            continue;
        }
        match store.job_heartbeat(&jobs, config.lease, None).await {
            Ok(lost) => {
                let mut held = lock(&held);
                for id in lost {
                    if let Some(h) = held.remove(&id) {
                        tracing::warn!(job.id = %id, "lease lost; abandoning the attempt");
                        if let Some(abort) = h.abort {
                            abort.abort();
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "extending leases failed"),
        }
    }
}

/// Wakes the producer when an enqueuer notifies one of `queues`. Notifications are
/// debounced: however many arrive, the producer is woken once and then claims in batches.
async fn listen(store: Store, queues: Vec<String>, wake: Arc<Notify>, stop: CancellationToken) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(store.pool()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "LISTEN unavailable; polling only");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        };
        if listener.listen(NOTIFY_CHANNEL).await.is_err() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
            }
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                received = listener.recv() => match received {
                    Ok(n) if queues.iter().any(|q| q == n.payload()) => wake.notify_one(),
                    Ok(_) => {}
                    Err(_) => break,
                },
            }
        }
    }
}
