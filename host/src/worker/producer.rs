//! The producer loop: claims jobs in batches into free slots, or ahead of them while attempts
//! are short (woken by a debounced `NOTIFY`, polling as the fallback), spawns each attempt to
//! wait for a slot and run, and hands outcomes to the completer; beside
//! it, the heartbeat that extends the leases of everything held, and the `LISTEN` task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Held, HeldJobs, Worker, WorkerConfig, WorkerStats, attempt, completer, lock};
use crate::model::ClaimedJob;
use crate::store::{NOTIFY_CHANNEL, SlotShare, Store};

/// Attempts that take less than this, on recent average, are claimed ahead of free slots: the
/// producer then holds up to a claim batch of jobs (at least one per slot) more than it has
/// slots, waiting for a slot, so that its claims are full batches and a slot given back never
/// waits for a claim. Longer attempts are claimed only into free slots: a job claimed ahead
/// of them would wait behind them, and another tenant's work arriving meanwhile behind it.
const CLAIM_AHEAD_BELOW: Duration = Duration::from_millis(5);

/// How long this worker's attempts take: the recent average of those that ended (in µs, 0
/// before the first; each moves it an eighth of the way to its own time), and when each one
/// still running started, so that attempts running long count before they end.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    average_us: AtomicU64,
    next: AtomicU64,
    running: Mutex<HashMap<u64, Instant>>,
}

impl Pace {
    /// Notes an attempt starting; it ends (and is averaged in) when the guard drops.
    pub(crate) fn start(self: &Arc<Self>) -> Timing {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        self.lock().insert(id, started);
        Timing {
            pace: self.clone(),
            id,
            started,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Instant>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .average_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |avg| {
                Some(if avg == 0 {
                    took
                } else {
                    avg - avg / 8 + took / 8
                })
            });
    }

    /// Whether attempts are short enough to claim ahead of free slots: those that ended lately
    /// took under [`CLAIM_AHEAD_BELOW`] on average, and none running has taken longer yet.
    fn claims_ahead(&self) -> bool {
        let avg = self.average_us.load(Ordering::Relaxed);
        if avg == 0 || u128::from(avg) >= CLAIM_AHEAD_BELOW.as_micros() {
            return false;
        }
        let now = Instant::now();
        self.lock()
            .values()
            .all(|&started| now.duration_since(started) < CLAIM_AHEAD_BELOW)
    }
}

/// One attempt being timed by its worker's [`Pace`].
pub(crate) struct Timing {
    pace: Arc<Pace>,
    id: u64,
    started: Instant,
}

impl Drop for Timing {
    fn drop(&mut self) {
        self.pace.lock().remove(&self.id);
        self.pace.record(self.started.elapsed());
    }
}

/// The jobs in this worker's hands, by tenant: claimed and not yet done running (waiting for a
/// slot, or running in one).
#[derive(Debug, Default, Clone)]
struct InHand {
    by_tenant: Arc<Mutex<HashMap<i64, u32>>>,
    /// Notified whenever a job leaves the worker's hands.
    left: Arc<Notify>,
}

impl InHand {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, u32>> {
        self.by_tenant.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `(tenant, jobs)` for each tenant with any, for the claim's fair share.
    fn snapshot(&self) -> Vec<(i64, u32)> {
        self.lock().iter().map(|(&t, &n)| (t, n)).collect()
    }

    fn total(&self) -> usize {
        self.lock().values().map(|&n| n as usize).sum()
    }

    /// Counts a job of `tenant` in, until the returned slot is dropped.
    fn take(&self, tenant: i64) -> Slot {
        *self.lock().entry(tenant).or_default() += 1;
        Slot {
            tenant,
            in_hand: self.clone(),
            _permit: None,
        }
    }
}

/// One claimed job's place in the worker: counted in its tenant's share from the claim until
/// the attempt ends (or is aborted), and holding an execution slot's permit once it runs. On
/// drop the tenant's count goes down before the permit is given back, so a producer woken by
/// either sees it.
#[derive(Debug)]
pub(crate) struct Slot {
    tenant: i64,
    in_hand: InHand,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut counts = self.in_hand.lock();
            if let Some(n) = counts.get_mut(&self.tenant) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&self.tenant);
                }
            }
        }
        self.in_hand.left.notify_one();
    }
}

/// Where claimed jobs wait for an execution slot, and what becomes of those still waiting at
/// shutdown: they are handed back to the database unstarted (see `Store::job_release_many`).
struct Gate {
    slots: Arc<Semaphore>,
    closed: CancellationToken,
    held: HeldJobs,
    unstarted: Arc<Mutex<Vec<(i64, Uuid, Uuid)>>>,
}

impl Gate {
    /// Waits for a free slot for `job` (in claim order: the semaphore is fair). Returns `None`
    /// when the gate closes first, with the job set aside to be handed back.
    async fn enter(&self, job: &ClaimedJob, mut slot: Slot) -> Option<Slot> {
        tokio::select! {
            biased;
            _ = self.closed.cancelled() => {
                lock(&self.held).remove(&job.id);
                self.unstarted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((job.tenant_id, job.id, job.run_lease));
                None
            }
            permit = self.slots.clone().acquire_owned() => {
                slot._permit = Some(permit.expect("never closed"));
                Some(slot)
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
        let in_hand = InHand::default();
        let pace = Arc::new(Pace::default());
        let gate = Arc::new(Gate {
            slots: Arc::new(Semaphore::new(self.config.slots)),
            closed: CancellationToken::new(),
            held: held.clone(),
            unstarted: Arc::default(),
        });
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

        let runner = Arc::new(attempt::Runner {
            store: self.store.clone(),
            runtime: self.runtime.clone(),
            metrics: self.metrics.clone(),
            quotas: self.quotas.clone(),
            finished: finished_tx,
            pace: pace.clone(),
        });

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
            let ahead = if self.config.claim_ahead && pace.claims_ahead() {
                // A whole claim batch: one per slot measured 3.5 % slower (64 slots, 50k
                // jobs), its claims smaller.
                self.config.slots.max(self.config.claim_batch as usize)
            } else {
                0
            };
            // A tenant's cap counts the jobs in hand, so claiming ahead raises it by as many.
            let most_per_tenant = most_per_tenant + ahead;
            let free = (self.config.slots + ahead)
                .saturating_sub(in_hand.total())
                .min(room);
            if free == 0 {
                // Room comes back as jobs leave the worker's hands or their outcomes commit
                // (either can be what holds the claim back, and both when claiming ahead),
                // or as held jobs lose their lease, with nothing to commit.
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = in_hand.left.notified() => continue,
                    _ = committed.notified() => continue,
                    _ = tokio::time::sleep(self.config.poll_interval) => continue,
                }
            }
            let queue = &self.config.queues[queue_turn % self.config.queues.len()];
            queue_turn = queue_turn.wrapping_add(1);
            let limit = (free as u32).min(self.config.claim_batch);
            let held_by_tenant = in_hand.snapshot();
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
                let slot = in_hand.take(job.tenant_id);
                lock(&held).insert(
                    job.id,
                    Held {
                        tenant_id: job.tenant_id,
                        run_lease: job.run_lease,
                        abort: None,
                    },
                );
                let id = job.id;
                let (gate, runner) = (gate.clone(), runner.clone());
                let task = attempts.spawn(async move {
                    if let Some(slot) = gate.enter(&job, slot).await {
                        runner.run(job, slot).await;
                    }
                });
                if let Some(h) = lock(&held).get_mut(&id) {
                    h.abort = Some(task);
                }
            }
            // After a round of short batches every queue is drained for now: wait for a
            // notification or the poll interval, or, when a tenant is at its share of the
            // slots, for one more job to leave the worker's hands. After a full batch there
            // may be more.
            round_was_full |= got == limit as usize;
            if queue_turn.is_multiple_of(self.config.queues.len())
                && !std::mem::take(&mut round_was_full)
            {
                let capped = std::mem::take(&mut round_was_capped);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = wake.notified() => {}
                    _ = in_hand.left.notified(), if capped => {}
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                }
            } else if queue_turn.is_multiple_of(self.config.queues.len()) {
                round_was_capped = false;
            }
        }

        // Graceful shutdown: no more claims; jobs claimed ahead and still waiting for a slot
        // are handed back unstarted; running attempts get the grace period to finish, then
        // the rest are abandoned (their leases expire and the rescuer retries them).
        gate.closed.cancel();
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
        let unstarted =
            std::mem::take(&mut *gate.unstarted.lock().unwrap_or_else(|e| e.into_inner()));
        if !unstarted.is_empty() {
            match self.store.job_release_many(&unstarted).await {
                Ok(released) => {
                    tracing::info!(jobs = released.len(), "handed back jobs claimed ahead")
                }
                Err(e) => tracing::warn!(error = %e, jobs = unstarted.len(),
                    "handing back jobs claimed ahead failed; they are retried when their leases expire"),
            }
        }
        drop(runner);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_ahead_only_once_attempts_are_known_to_be_short() {
        let pace = Arc::new(Pace::default());
        assert!(!pace.claims_ahead(), "nothing measured yet");
        for _ in 0..4 {
            pace.record(Duration::from_micros(300));
        }
        assert!(pace.claims_ahead());
        // A run of long attempts stops it within a few of them, and short ones bring it back.
        let mut long = 0;
        while pace.claims_ahead() {
            pace.record(Duration::from_millis(100));
            long += 1;
        }
        assert!(long <= 2, "{long} long attempts before it stopped");
        let mut short = 0;
        while !pace.claims_ahead() {
            pace.record(Duration::from_micros(300));
            short += 1;
            assert!(short < 100, "short attempts never brought it back");
        }
    }

    #[test]
    fn an_attempt_running_long_stops_claiming_ahead_before_it_ends() {
        let pace = Arc::new(Pace::default());
        for _ in 0..4 {
            pace.record(Duration::from_micros(300));
        }
        let long = pace.start();
        assert!(pace.claims_ahead(), "it has only just started");
        // As if it had started one bound ago.
        *pace.lock().get_mut(&long.id).unwrap() -= CLAIM_AHEAD_BELOW;
        assert!(!pace.claims_ahead(), "it has run past the bound");
        drop(long);
        assert!(
            pace.claims_ahead(),
            "once it ended it moved the average an eighth of the way: still short"
        );
    }

    #[test]
    fn a_job_counts_in_its_tenant_s_hand_until_its_slot_is_dropped() {
        let in_hand = InHand::default();
        let a = in_hand.take(1);
        let b = in_hand.take(1);
        let c = in_hand.take(2);
        assert_eq!(in_hand.total(), 3);
        let mut snapshot = in_hand.snapshot();
        snapshot.sort();
        assert_eq!(snapshot, [(1, 2), (2, 1)]);
        drop((a, c));
        assert_eq!(in_hand.snapshot(), [(1, 1)]);
        drop(b);
        assert_eq!(in_hand.total(), 0);
    }
}
