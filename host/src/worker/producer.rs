//! The producer loop: claims jobs in batches into free slots (woken by a debounced `NOTIFY`,
//! polling as the fallback), spawns each attempt, and hands outcomes to the completer; beside
//! it, the heartbeat that extends the leases of everything held, and the `LISTEN` task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Held, HeldJobs, Worker, WorkerConfig, WorkerStats, attempt, completer, lock};
use crate::model::ClaimedJob;
use crate::store::{NOTIFY_CHANNEL, SlotShare, Store};

/// How many of this worker's slots each tenant's attempts take now.
#[derive(Debug, Default, Clone)]
struct SlotsByTenant(Arc<Mutex<HashMap<i64, u32>>>);

impl SlotsByTenant {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, u32>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `(tenant, slots)` for each tenant holding any, for the claim's fair share.
    fn snapshot(&self) -> Vec<(i64, u32)> {
        self.lock().iter().map(|(&t, &n)| (t, n)).collect()
    }

    /// Takes `permit` for an attempt of `tenant`.
    fn take(&self, tenant: i64, permit: OwnedSemaphorePermit) -> Slot {
        *self.lock().entry(tenant).or_default() += 1;
        Slot {
            tenant,
            by_tenant: self.clone(),
            _permit: permit,
        }
    }
}

/// One attempt's slot. Dropped when the attempt ends (or is aborted): the tenant's count
/// goes down before the permit is given back, so a producer woken by the permit sees it.
#[derive(Debug)]
pub(crate) struct Slot {
    tenant: i64,
    by_tenant: SlotsByTenant,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.by_tenant.lock();
        if let Some(n) = counts.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.tenant);
            }
        }
    }
}

/// Whether a tenant holds `most` jobs (the most it may) once `claimed` joins `held`.
fn reaches_cap(held: &[(i64, u32)], claimed: &[ClaimedJob], most: usize) -> bool {
    let mut counts: HashMap<i64, usize> = held.iter().map(|&(t, n)| (t, n as usize)).collect();
    for job in claimed {
        *counts.entry(job.tenant_id).or_default() += 1;
    }
    counts.values().any(|&n| n >= most)
}

impl Worker {
    /// Runs until `shutdown` is cancelled, then stops claiming, gives running attempts the
    /// grace period to finish, commits what finished, and returns.
    pub async fn run(&self, shutdown: CancellationToken) -> WorkerStats {
        let held: HeldJobs = Arc::default();
        let slots = Arc::new(Semaphore::new(self.config.slots));
        let by_tenant = SlotsByTenant::default();
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

        let most_per_tenant = self.config.most_per_tenant();
        let mut attempts = JoinSet::new();
        let mut queue_turn = 0usize;
        // Whether any queue in the current round gave a full batch (so there may be more).
        let mut round_was_full = false;
        // Whether a tenant held all the slots it may in the current round: its claim came
        // back short for that, not for want of work, so a slot given back is worth a new
        // claim before the next notification or poll.
        let mut round_was_capped = false;
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
            let held_by_tenant = by_tenant.snapshot();
            let claimed = match self
                .store
                .job_claim_sharing(
                    queue,
                    limit,
                    &self.config.id,
                    self.config.lease,
                    None,
                    SlotShare {
                        held: &held_by_tenant,
                        most_per_tenant: Some(most_per_tenant as u32),
                    },
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
            round_was_capped |= reaches_cap(&held_by_tenant, &claimed, most_per_tenant);
            self.stats.lock().unwrap_or_else(|e| e.into_inner()).claimed += got as u64;
            for job in claimed {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                let slot = by_tenant.take(job.tenant_id, permit);
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
                    slot,
                ));
                if let Some(h) = lock(&held).get_mut(&id) {
                    h.abort = Some(task);
                }
            }
            // After a round of short batches every queue is drained for now: wait for a
            // notification or the poll interval, or, when a tenant is at its share of the
            // slots, for one more slot to be given back. After a full batch there may be more.
            round_was_full |= got == limit as usize;
            if queue_turn.is_multiple_of(self.config.queues.len())
                && !std::mem::take(&mut round_was_full)
            {
                let capped = std::mem::take(&mut round_was_capped);
                let one_more = (slots.available_permits() + 1).min(self.config.slots) as u32;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = wake.notified() => {}
                    _ = slots.acquire_many(one_more), if capped => {}
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                }
            } else if queue_turn.is_multiple_of(self.config.queues.len()) {
                round_was_capped = false;
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
