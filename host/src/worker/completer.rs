//! The completer: gathers outcomes for a few milliseconds and commits them in one
//! transaction. A commit whose outcome is unknown (the connection died) is simply submitted
//! again: completion is fenced on the run lease and on the done-record, so a second submit
//! of an outcome that did commit writes nothing, and the guest is never run again for it.
//!
//! What committed is counted here, once per outcome: completed, duplicate, retried,
//! dead-lettered, by error kind.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::fields::{self, JobFields};
use super::{HeldJobs, WorkerConfig, WorkerStats, lock};
use crate::metrics::Metrics;
use crate::model::ErrorKind;
use crate::store::{Completion, CompletionStatus, Failure, Store};

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

/// Commits outcomes from `finished` until the channel closes and everything is flushed.
pub(crate) async fn run(
    store: Store,
    config: WorkerConfig,
    mut finished: mpsc::UnboundedReceiver<Done>,
    held: HeldJobs,
    stats: Arc<Mutex<WorkerStats>>,
    metrics: Arc<Metrics>,
    committed: Arc<tokio::sync::Notify>,
) {
    let mut batch = Batch::default();
    while let Some(first) = finished.recv().await {
        batch.push(first);
        // Gather whatever else finishes within the window, up to the batch size.
        let window = tokio::time::sleep(config.commit_window);
        tokio::pin!(window);
        while batch.len() < config.commit_batch {
            tokio::select! {
                _ = &mut window => break,
                next = finished.recv() => match next {
                    Some(next) => batch.push(next),
                    None => break,
                },
            }
        }
        commit(&store, &mut batch, &held, &stats, &metrics).await;
        // Wake a producer held back by the backpressure bound.
        committed.notify_one();
    }
}

/// Commits one batch, retrying with backoff while the database is unreachable. Gives up on
/// a batch only when every job in it has lost its lease anyway (the heartbeat drops those).
async fn commit(
    store: &Store,
    batch: &mut Batch,
    held: &HeldJobs,
    stats: &Arc<Mutex<WorkerStats>>,
    metrics: &Metrics,
) {
    let mut delay = Duration::from_millis(50);
    loop {
        // A failure whose lease is already known lost records nothing (it is fenced); the
        // store does not say which failures were, so ask the heartbeat's view before.
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
                let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                for status in &statuses {
                    match status {
                        CompletionStatus::Completed => s.completed += 1,
                        CompletionStatus::Duplicate => s.duplicates += 1,
                        CompletionStatus::Stale => s.stale += 1,
                        CompletionStatus::Conflict => s.failed += 1,
                    }
                }
                s.failed += batch.failures.len() as u64;
                drop(s);
                count(batch, &statuses, &failures_held, metrics);
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = batch.len(),
                    "committing outcomes failed; retrying");
                // Outcomes of jobs whose lease is gone can never commit: stop carrying them.
                batch.retain_held(held);
                if batch.len() == 0 {
                    break;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
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
            CompletionStatus::Conflict => failed(job, ErrorKind::Commit, c.retry_delay, metrics),
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
