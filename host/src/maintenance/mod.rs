//! Periodic services, run by one leader at a time (elected by a lease in Postgres):
//! the scheduler (due scheduled/retryable jobs → available), the schedule firer (due ticks of
//! tenants' cron schedules → jobs, `schedules.rs`), the rescuer (expired leases → retried as
//! `lost`), the counter folder, the vacuumer (the hot table, once it has churned), and the
//! pruner (history partitions, done-records; with it, the running counts' reconciler).
//!
//! Each service has a `run_once` that does one pass and returns counts, so tests can drive
//! it directly; [`Maintenance::run`] loops them on their intervals.

mod schedules;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use schedules::TickCounts;

use crate::metrics::Metrics;
use crate::model::{ErrorKind, RetryPolicy};
use crate::quota::Quotas;
use crate::store::{Failure, Store, StoreError};

/// The leader lease's name.
const LEADER_LEASE: &str = "maintenance";

/// Settings for maintenance.
#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    /// This node's name in the leader election.
    pub node: String,
    /// How long leadership lasts without renewal. Default 15 s.
    pub leader_ttl: Duration,
    /// How often due jobs are made available. Default 200 ms.
    pub schedule_interval: Duration,
    /// How often the due ticks of tenants' cron schedules are fired. Default 1 s.
    pub schedules_interval: Duration,
    /// How late a schedule's tick may be and still count as on time (it fires whatever the
    /// schedule's `catch_up`); older ticks were missed while no node ran. Covers a leader
    /// hand-over. Default 1 min.
    pub tick_grace: Duration,
    /// How many ticks' outcomes are kept per schedule (its "last runs"). Default 50.
    pub schedule_ticks_kept: u32,
    /// How often expired leases are rescued. Default 2 s.
    pub rescue_interval: Duration,
    /// How often counters are folded. Default 1 s.
    pub fold_interval: Duration,
    /// How often the hot table's dead rows are looked at. Default 2 s.
    pub vacuum_interval: Duration,
    /// The dead rows in the hot table that make the vacuumer vacuum it. Default 10,000.
    pub vacuum_min_dead: u64,
    /// How often old history and done-records are pruned. Default 10 min.
    pub prune_interval: Duration,
    /// How long finished jobs are kept in history. Default 14 days.
    pub history_retention: Duration,
    /// How long done-records are kept. Default 7 days.
    pub idempotency_retention: Duration,
    /// The most rows one statement touches. Default 1000.
    pub batch: u32,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            node: format!("maintenance-{}", uuid::Uuid::new_v4().simple()),
            leader_ttl: Duration::from_secs(15),
            schedule_interval: Duration::from_millis(200),
            schedules_interval: Duration::from_secs(1),
            tick_grace: Duration::from_secs(60),
            schedule_ticks_kept: 50,
            rescue_interval: Duration::from_secs(2),
            fold_interval: Duration::from_secs(1),
            vacuum_interval: Duration::from_secs(2),
            vacuum_min_dead: 10_000,
            prune_interval: Duration::from_secs(600),
            history_retention: Duration::from_secs(14 * 86_400),
            idempotency_retention: Duration::from_secs(7 * 86_400),
            batch: 1000,
        }
    }
}

/// The maintenance services over one store.
#[derive(Debug, Clone)]
pub struct Maintenance {
    config: MaintenanceConfig,
    store: Store,
    /// The tenants' enqueue quotas, which schedules' ticks are held to.
    quotas: Arc<Quotas>,
    metrics: Option<Arc<Metrics>>,
}

impl Maintenance {
    /// Returns the services over `store`, with quotas of their own (see
    /// [`Maintenance::with_quotas`]) and no metrics.
    pub fn new(config: MaintenanceConfig, store: Store) -> Maintenance {
        Maintenance {
            config,
            store,
            quotas: Arc::new(Quotas::new(Duration::from_secs(2))),
            metrics: None,
        }
    }

    /// Holds schedules' ticks to `quotas`, shared with the API and worker of this process.
    pub fn with_quotas(mut self, quotas: Arc<Quotas>) -> Maintenance {
        self.quotas = quotas;
        self
    }

    /// Reports ticks fired (and their lag) to `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Maintenance {
        self.metrics = Some(metrics);
        self
    }

    /// Makes due jobs available, batch after batch until a batch comes back short.
    pub async fn schedule_once(&self, now: Option<DateTime<Utc>>) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = self.store.job_schedule_due(self.config.batch, now).await?;
            total += n;
            if n < u64::from(self.config.batch) {
                return Ok(total);
            }
        }
    }

    /// Retries (as `lost`) or dead-letters running jobs whose lease expired, batch after batch
    /// until a batch comes back short. Each job is checked again under its row lock when it is
    /// failed: a lease renewed in between keeps its job running.
    pub async fn rescue_once(&self, now: Option<DateTime<Utc>>) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let expired = self.store.job_expired(self.config.batch, now).await?;
            let found = expired.len() as u64;
            let failures: Vec<Failure> = expired
                .into_iter()
                .map(|j| Failure {
                    tenant_id: j.tenant_id,
                    id: j.id,
                    run_lease: j.run_lease,
                    attempt: j.attempt,
                    kind: ErrorKind::Lost,
                    message: "the worker running this attempt died or lost its lease".into(),
                    logs: serde_json::Value::Null,
                    retry_delay: RetryPolicy::of_job(
                        j.backoff_base_ms,
                        j.backoff_cap_ms,
                        j.max_attempts,
                    )
                    .next_delay(ErrorKind::Lost, j.attempt),
                })
                .collect();
            let rescued = if failures.is_empty() {
                0
            } else {
                self.store.job_rescue_many(&failures, now).await?
            };
            total += rescued;
            // A full batch of which nothing could be rescued (rows locked elsewhere) would be
            // found again at once: leave it to the next pass.
            if found < u64::from(self.config.batch) || rescued == 0 {
                return Ok(total);
            }
        }
    }

    /// Folds pending counter deltas into the queue totals.
    pub async fn fold_once(&self) -> Result<u64, StoreError> {
        self.store.queue_fold_counts(self.config.batch * 100).await
    }

    /// Vacuums the hot table if it holds `vacuum_min_dead` dead rows (see
    /// [`Store::jobs_vacuum_if_churned`]). Returns the dead rows found and whether it vacuumed.
    pub async fn vacuum_once(&self) -> Result<(u64, bool), StoreError> {
        self.store
            .jobs_vacuum_if_churned(self.config.vacuum_min_dead)
            .await
    }

    /// Sets each tenant's running count (which the claim holds `max_running` to) back to the
    /// jobs it has running wherever it has drifted, and warns of each. Returns how many were
    /// off. Runs with the pruner.
    pub async fn reconcile_once(&self) -> Result<usize, StoreError> {
        let off = self.store.running_reconcile().await?;
        for (tenant, by) in &off {
            tracing::warn!(
                tenant,
                off_by = by,
                "a tenant's running count had drifted; corrected"
            );
        }
        Ok(off.len())
    }

    /// Keeps history partitions ahead, drops expired ones, drops throughput figures as old as
    /// history, and prunes old done-records. Returns (partitions created, partitions dropped,
    /// done-records pruned).
    pub async fn prune_once(&self) -> Result<(u32, u32, u64), StoreError> {
        let (created, dropped) = self
            .store
            .history_partitions(3, self.config.history_retention)
            .await?;
        self.store
            .queue_minutes_prune(self.config.history_retention)
            .await?;
        let mut pruned = 0;
        loop {
            let n = self
                .store
                .idempotency_prune(self.config.idempotency_retention, self.config.batch)
                .await?;
            pruned += n;
            if n < u64::from(self.config.batch) {
                return Ok((created, dropped, pruned));
            }
        }
    }

    /// Runs the services on their intervals while this node holds the leader lease, until
    /// `shutdown` is cancelled.
    pub async fn run(&self, shutdown: CancellationToken) {
        let c = &self.config;
        let (leader_tx, leader_rx) = watch::channel(false);
        tokio::join!(
            crate::leader::lead(
                &self.store,
                LEADER_LEASE,
                &c.node,
                c.leader_ttl,
                &shutdown,
                leader_tx,
            ),
            self.serve(&shutdown, leader_rx),
        );
    }

    async fn serve(&self, shutdown: &CancellationToken, leader: watch::Receiver<bool>) {
        // A vacuum may take a while on a large table: it runs beside the other services, not
        // between their ticks.
        tokio::join!(
            self.serve_services(shutdown, leader.clone()),
            self.serve_vacuum(shutdown, leader),
        );
    }

    async fn serve_vacuum(&self, shutdown: &CancellationToken, mut leader: watch::Receiver<bool>) {
        let mut vacuum = tokio::time::interval(self.config.vacuum_interval);
        vacuum.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let leads = *leader.borrow_and_update();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Ok(()) = leader.changed() => {}
                _ = vacuum.tick(), if leads => log("vacuumer", self.vacuum_once().await),
            }
        }
    }

    async fn serve_services(
        &self,
        shutdown: &CancellationToken,
        mut leader: watch::Receiver<bool>,
    ) {
        let c = &self.config;
        let mut schedule = tokio::time::interval(c.schedule_interval);
        let mut schedules = tokio::time::interval(c.schedules_interval);
        let mut rescue = tokio::time::interval(c.rescue_interval);
        let mut fold = tokio::time::interval(c.fold_interval);
        let mut prune = tokio::time::interval(c.prune_interval);
        for i in [
            &mut schedule,
            &mut schedules,
            &mut rescue,
            &mut fold,
            &mut prune,
        ] {
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            let leads = *leader.borrow_and_update();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Ok(()) = leader.changed() => {}
                _ = schedule.tick(), if leads => log("scheduler", self.schedule_once(None).await),
                _ = schedules.tick(), if leads => {
                    log("schedule firer", self.schedules_once(None).await);
                }
                _ = rescue.tick(), if leads => log("rescuer", self.rescue_once(None).await),
                _ = fold.tick(), if leads => log("counter folder", self.fold_once().await),
                _ = prune.tick(), if leads => {
                    log("pruner", self.prune_once().await);
                    log("running-count reconciler", self.reconcile_once().await);
                }
            }
        }
    }
}

fn log<T: std::fmt::Debug>(service: &str, result: Result<T, StoreError>) {
    match result {
        Ok(counts) => tracing::debug!(service, ?counts, "maintenance pass"),
        Err(e) => tracing::warn!(service, error = %e, "maintenance pass failed"),
    }
}
