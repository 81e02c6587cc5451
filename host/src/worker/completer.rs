//! The completer: gathers outcomes for a few milliseconds and commits them in one
//! transaction. A commit whose outcome is unknown (the connection died) is simply submitted
//! again: completion is fenced on the run lease and on the done-record, so a second submit
//! of an outcome that did commit writes nothing, and the guest is never run again for it.
//!
//! What committed is counted here, once per outcome: completed, duplicate, retried,
//! dead-lettered, by error kind.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::fields::{self, JobFields};
use super::{Health, HeldJobs, WorkerConfig, WorkerStats, lock};
use crate::metrics::Metrics;
use crate::model::{ErrorKind, text};
use crate::store::{Completion, CompletionStatus, Failure, Store, StoreError};

/// An attempt's outcome, on its way to being committed.
#[derive(Debug)]
pub enum Finished {
    /// The attempt succeeded.
    Completed(Completion),
    /// The attempt failed.
    Failed(Failure),
}

/// An outcome and the job it belongs to, as the completer receives it.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) job: JobFields,
    pub(crate) finished: Finished,
}

/// Outcomes gathered for one commit, each with its job's fields (same order).
#[derive(Default)]
struct Batch {
    completions: Vec<Completion>,
    completed_jobs: Vec<JobFields>,
    failures: Vec<Failure>,
    failed_jobs: Vec<JobFields>,
}

impl Batch {
    fn len(&self) -> usize {
        self.completions.len() + self.failures.len()
    }

    /// Splits the batch in two halves (completions and failures each halved).
    fn split(mut self) -> (Batch, Batch) {
        let second = Batch {
            completions: self.completions.split_off(self.completions.len() / 2),
            completed_jobs: self.completed_jobs.split_off(self.completed_jobs.len() / 2),
            failures: self.failures.split_off(self.failures.len() / 2),
            failed_jobs: self.failed_jobs.split_off(self.failed_jobs.len() / 2),
        };
        (self, second)
    }

    fn push(&mut self, done: Done) {
        match done.finished {
            Finished::Completed(c) => {
                self.completions.push(c);
                self.completed_jobs.push(done.job);
            }
            Finished::Failed(f) => {
                self.failures.push(f);
                self.failed_jobs.push(done.job);
            }
        }
    }

    /// Keeps only the outcomes whose job is still held (its lease not known lost).
    fn retain_held(&mut self, held: &HeldJobs) {
        let held = lock(held);
        let keep: Vec<bool> = self
            .completions
            .iter()
            .map(|c| held.contains_key(&c.id))
            .collect();
        retain_by(&mut self.completions, &keep);
        retain_by(&mut self.completed_jobs, &keep);
        let keep: Vec<bool> = self
            .failures
            .iter()
            .map(|f| held.contains_key(&f.id))
            .collect();
        retain_by(&mut self.failures, &keep);
        retain_by(&mut self.failed_jobs, &keep);
    }
}

fn retain_by<T>(items: &mut Vec<T>, keep: &[bool]) {
    let mut i = 0;
    items.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// What committing needs: the store, the worker's settings, the jobs it holds, and where to
/// count and signal what committed.
pub(crate) struct Completer {
    pub(crate) store: Store,
    pub(crate) config: WorkerConfig,
    pub(crate) held: HeldJobs,
    pub(crate) stats: Arc<Mutex<WorkerStats>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Notified after each commit, to wake a producer held back by the backpressure bound.
    pub(crate) committed: Arc<tokio::sync::Notify>,
    pub(crate) health: Health,
}

/// How many group commits may be in flight at once. With one, the completer's connection was
/// busy most of the time at full speed while the cores sat partly idle: the next batch waited
/// for the commit before it, not for the database.
const COMMITS_IN_FLIGHT: usize = 2;

/// Commits outcomes from `finished` until the channel closes and everything is flushed. A
/// batch gathers for the commit window; while [`COMMITS_IN_FLIGHT`] commits are under way
/// it goes on gathering (up to the batch size) until one ends.
pub(crate) async fn run(c: Completer, mut finished: mpsc::UnboundedReceiver<Done>) {
    let c = Arc::new(c);
    let mut commits = JoinSet::new();
    loop {
        let first = tokio::select! {
            next = finished.recv() => next,
            Some(_) = commits.join_next(), if !commits.is_empty() => continue,
        };
        let Some(first) = first else { break };
        let mut batch = Batch::default();
        batch.push(first);
        let mut open = true;
        // Gather whatever else finishes within the window, up to the batch size.
        let window = tokio::time::sleep(c.config.commit_window);
        tokio::pin!(window);
        while open && batch.len() < c.config.commit_batch {
            tokio::select! {
                _ = &mut window => break,
                next = finished.recv() => match next {
                    Some(next) => batch.push(next),
                    None => open = false,
                },
            }
        }
        // Then, while the commits in flight are as many as may be, go on gathering.
        while commits.len() >= COMMITS_IN_FLIGHT {
            tokio::select! {
                _ = commits.join_next() => {}
                next = finished.recv(), if open && batch.len() < c.config.commit_batch => {
                    match next {
                        Some(next) => batch.push(next),
                        None => open = false,
                    }
                }
            }
        }
        let c = c.clone();
        commits.spawn(async move {
            commit(&c, batch).await;
            c.committed.notify_one();
        });
    }
    while commits.join_next().await.is_some() {}
}

/// What trying to commit one batch came to.
enum Tried {
    /// It committed: each completion's status, and whether each failure's job was still held
    /// (a failure whose lease was already lost records nothing), in order.
    Committed(Vec<CompletionStatus>, Vec<bool>),
    /// The database refused it for what it holds (not for being unreachable).
    Refused(StoreError),
    /// Nothing is left to commit: every job in it lost its lease, or it waited too long.
    Abandoned,
}

/// Commits one batch. While the database is unreachable the batch is retried with backoff;
/// a batch the database refuses is split in halves until the outcome it cannot take is found,
/// and that outcome alone is recorded as a failure of kind `commit` (see [`poisoned`]). So no
/// outcome, whatever a guest put in it, keeps the others from committing.
async fn commit(c: &Completer, batch: Batch) {
    let mut parts = vec![batch];
    while let Some(mut part) = parts.pop() {
        match try_commit(c, &mut part).await {
            Tried::Committed(statuses, failures_held) => {
                record(c, &part, &statuses, &failures_held);
            }
            Tried::Refused(e) if part.len() > 1 => {
                tracing::warn!(error = %e, jobs = part.len(),
                    "the database refused a group commit; splitting it to find the outcome");
                let (first, second) = part.split();
                parts.push(second);
                parts.push(first);
                continue;
            }
            Tried::Refused(e) => poisoned(c, &mut part, e).await,
            Tried::Abandoned => {}
        }
        release(&mut part, &c.held);
    }
}

/// Tries to commit `batch`, retrying with backoff while the database is unreachable, for at
/// most the lease: past it the outcomes are dropped (the heartbeat stops extending their
/// leases, and maintenance retries the jobs once they expire), so that no outcome holds a
/// lease indefinitely.
async fn try_commit(c: &Completer, batch: &mut Batch) -> Tried {
    let (store, config, held, health) = (&c.store, &c.config, &c.held, &c.health);
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        // The store does not say which failures were fenced: ask the heartbeat's view before.
        let failures_held: Vec<bool> = {
            let held = lock(held);
            batch
                .failures
                .iter()
                .map(|f| held.contains_key(&f.id))
                .collect()
        };
        match store
            .job_finish_many(&batch.completions, &batch.failures, None)
            .await
        {
            Ok(statuses) => {
                health.committed();
                return Tried::Committed(statuses, failures_held);
            }
            Err(e) if !e.is_transient() => {
                health.failed();
                return Tried::Refused(e);
            }
            Err(e) => {
                health.failed();
                tracing::warn!(error = %e, jobs = batch.len(),
                    "committing outcomes failed; retrying");
                // Outcomes of jobs whose lease is gone can never commit: stop carrying them.
                batch.retain_held(held);
                if batch.len() == 0 {
                    return Tried::Abandoned;
                }
                if started.elapsed() >= config.lease {
                    tracing::error!(error = %e, jobs = batch.len(),
                        "giving up on committing these outcomes; their jobs are retried \
                         when their leases expire");
                    return Tried::Abandoned;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Records the one outcome in `batch` that the database refused as a failure of kind
/// `commit` (retried, then dead-lettered, like any failure), without the effects or the log
/// it could not take. If even that is refused the outcome is dropped and the job retried when
/// its lease expires.
async fn poisoned(c: &Completer, batch: &mut Batch, error: StoreError) {
    let (failure, job) = match (batch.completions.first(), batch.failures.first()) {
        (Some(c), _) => (
            Failure {
                tenant_id: c.tenant_id,
                id: c.id,
                run_lease: c.run_lease,
                attempt: batch.completed_jobs[0].attempt,
                kind: ErrorKind::Commit,
                message: String::new(),
                logs: serde_json::Value::Null,
                retry_delay: c.retry_delay,
            },
            batch.completed_jobs[0].clone(),
        ),
        (None, Some(f)) => (
            Failure {
                message: String::new(),
                logs: serde_json::Value::Null,
                kind: ErrorKind::Commit,
                ..f.clone()
            },
            batch.failed_jobs[0].clone(),
        ),
        (None, None) => return,
    };
    let failure = Failure {
        message: text::truncated(
            text::without_nul(format!("the outcome could not be stored: {error}")),
            text::MAX_MESSAGE_BYTES,
        ),
        ..failure
    };
    tracing::warn!(job.id = %failure.id, %error, "the database refused an outcome; failing the job alone");
    let mut single = Batch::default();
    single.failures.push(failure);
    single.failed_jobs.push(job);
    match try_commit(c, &mut single).await {
        Tried::Committed(_, held) if held[0] => {
            let (f, job) = (&single.failures[0], &single.failed_jobs[0]);
            failed(job, f.kind, f.retry_delay, &c.metrics);
        }
        Tried::Committed(..) => {}
        Tried::Refused(e) => tracing::error!(job.id = %single.failures[0].id, error = %e,
            "could not record the failure either; the job is retried when its lease expires"),
        Tried::Abandoned => {}
    }
    release(&mut single, &c.held);
}

/// Counts what a committed batch did, in the worker's stats and in metrics.
fn record(c: &Completer, batch: &Batch, statuses: &[CompletionStatus], failures_held: &[bool]) {
    let mut s = c.stats.lock().unwrap_or_else(|e| e.into_inner());
    for status in statuses {
        match status {
            CompletionStatus::Completed => s.completed += 1,
            CompletionStatus::Duplicate => s.duplicates += 1,
            CompletionStatus::Stale => s.stale += 1,
            CompletionStatus::Conflict => s.conflicts += 1,
            CompletionStatus::Failed | CompletionStatus::Quota => s.failed += 1,
        }
    }
    s.failed += batch.failures.len() as u64;
    drop(s);
    count(batch, statuses, failures_held, &c.metrics);
}

/// Forgets the jobs of `batch`: their outcomes are committed or given up, so the heartbeat
/// no longer extends their leases.
fn release(batch: &mut Batch, held: &HeldJobs) {
    let mut held = lock(held);
    for c in batch.completions.drain(..) {
        held.remove(&c.id);
    }
    for f in batch.failures.drain(..) {
        held.remove(&f.id);
    }
    batch.completed_jobs.clear();
    batch.failed_jobs.clear();
}

/// Counts what a committed batch did, in metrics and, for dead letters, in the log.
fn count(batch: &Batch, statuses: &[CompletionStatus], failures_held: &[bool], metrics: &Metrics) {
    let completions = batch.completions.iter().zip(&batch.completed_jobs);
    for ((c, job), status) in completions.zip(statuses) {
        match status {
            CompletionStatus::Completed => {
                metrics.job_completed(&job.labels);
                for child in &c.enqueued {
                    metrics.jobs_enqueued(&job.labels.tenant, &child.queue, &child.handler, 1);
                }
            }
            CompletionStatus::Duplicate => metrics.job_duplicate(&job.labels),
            CompletionStatus::Stale => {}
            CompletionStatus::Conflict => metrics.store_conflict(&job.labels.tenant),
            CompletionStatus::Failed => failed(job, ErrorKind::Commit, c.retry_delay, metrics),
            CompletionStatus::Quota => failed(job, ErrorKind::Quota, c.retry_delay, metrics),
        }
    }
    let failures = batch.failures.iter().zip(&batch.failed_jobs);
    for ((f, job), was_held) in failures.zip(failures_held) {
        if *was_held {
            failed(job, f.kind, f.retry_delay, metrics);
        }
    }
}

fn failed(job: &JobFields, kind: ErrorKind, retry_delay: Option<Duration>, metrics: &Metrics) {
    metrics.job_failed(&job.labels, kind, retry_delay.is_some());
    if retry_delay.is_none() {
        fields::dead_lettered(job, kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_by_keeps_the_marked_items_in_order() {
        let mut items = vec![1, 2, 3, 4];
        retain_by(&mut items, &[true, false, false, true]);
        assert_eq!(items, [1, 4]);
    }
}
