//! The completer: gathers outcomes for a few milliseconds and commits them in one
//! transaction. A commit whose outcome is unknown (the connection died) is simply submitted
//! again: completion is fenced on the run lease and on the done-record, so a second submit
//! of an outcome that did commit writes nothing, and the guest is never run again for it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{HeldJobs, WorkerConfig, WorkerStats, lock};
use crate::store::{Completion, CompletionStatus, Failure, Store};

/// An attempt's outcome, on its way to being committed.
#[derive(Debug)]
pub enum Finished {
    /// The attempt succeeded.
    Completed(Completion),
    /// The attempt failed.
    Failed(Failure),
}

/// Commits outcomes from `finished` until the channel closes and everything is flushed.
pub(crate) async fn run(
    store: Store,
    config: WorkerConfig,
    mut finished: mpsc::UnboundedReceiver<Finished>,
    held: HeldJobs,
    stats: Arc<Mutex<WorkerStats>>,
    committed: Arc<tokio::sync::Notify>,
) {
    let mut completions = Vec::new();
    let mut failures = Vec::new();
    while let Some(first) = finished.recv().await {
        push(first, &mut completions, &mut failures);
        // Gather whatever else finishes within the window, up to the batch size.
        let window = tokio::time::sleep(config.commit_window);
        tokio::pin!(window);
        while completions.len() + failures.len() < config.commit_batch {
            tokio::select! {
                _ = &mut window => break,
                next = finished.recv() => match next {
                    Some(next) => push(next, &mut completions, &mut failures),
                    None => break,
                },
            }
        }
        commit(&store, &mut completions, &mut failures, &held, &stats).await;
        // Wake a producer held back by the backpressure bound.
        committed.notify_one();
    }
}

fn push(f: Finished, completions: &mut Vec<Completion>, failures: &mut Vec<Failure>) {
    match f {
        Finished::Completed(c) => completions.push(c),
        Finished::Failed(f) => failures.push(f),
    }
}

/// Commits one batch, retrying with backoff while the database is unreachable. Gives up on
/// a batch only when every job in it has lost its lease anyway (the heartbeat drops those).
async fn commit(
    store: &Store,
    completions: &mut Vec<Completion>,
    failures: &mut Vec<Failure>,
    held: &HeldJobs,
    stats: &Arc<Mutex<WorkerStats>>,
) {
    let mut delay = Duration::from_millis(50);
    loop {
        match store.job_finish_many(completions, failures, None).await {
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
                s.failed += failures.len() as u64;
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = completions.len() + failures.len(),
                    "committing outcomes failed; retrying");
                // Outcomes of jobs whose lease is gone can never commit: stop carrying them.
                {
                    let held_now = lock(held);
                    completions.retain(|c| held_now.contains_key(&c.id));
                    failures.retain(|f| held_now.contains_key(&f.id));
                }
                if completions.is_empty() && failures.is_empty() {
                    break;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    let mut held = lock(held);
    for c in completions.drain(..) {
        held.remove(&c.id);
    }
    for f in failures.drain(..) {
        held.remove(&f.id);
    }
}
