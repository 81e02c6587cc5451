//! The schedule firer: each pass fires the due ticks of every enabled schedule, as
//! [`Cron::plan`] decides (on-time ticks fire, missed ones follow the schedule's `catch_up`),
//! through the tenant's quotas, each with the idempotency key `schedule:<name>:<tick>`
//! (docs/architecture.md, "Schedules").
//!
//! Exactly once per tick: `spool.schedule_fire` enqueues a schedule's ticks and moves its next
//! tick on in one transaction, guarded by the next tick this pass planned from; a leader that
//! dies between enqueueing and moving on left keys behind, so its successor finds the jobs
//! (`duplicate`) rather than making them again.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::Maintenance;
use crate::model::TenantLimits;
use crate::model::schedule::{Cron, tick_key};
use crate::store::{DueSchedule, StoreError, TickFiring};

/// What one pass of the schedule firer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickCounts {
    /// Schedules that were due.
    pub schedules: u64,
    /// Ticks that enqueued a job.
    pub enqueued: u64,
    /// Ticks whose key had a job already (fired by an earlier leader).
    pub duplicate: u64,
    /// Ticks skipped because the previous tick's job had not finished (`overlap: skip`).
    pub skipped: u64,
    /// Ticks the tenant's quota refused.
    pub refused: u64,
    /// Ticks missed while no node ran and not caught up.
    pub missed: u64,
}

impl TickCounts {
    fn add(&mut self, outcome: &str, n: u64) {
        match outcome {
            "enqueued" => self.enqueued += n,
            "duplicate" => self.duplicate += n,
            "skipped" => self.skipped += n,
            "refused" => self.refused += n,
            _ => self.missed += n,
        }
    }
}

impl Maintenance {
    /// Fires the ticks due by `now` (this host's clock when `None`) of every enabled
    /// schedule, batch after batch until a batch comes back short. A schedule whose
    /// expression no longer parses is paused in effect (its next tick is cleared) and logged.
    pub async fn schedules_once(
        &self,
        now: Option<DateTime<Utc>>,
    ) -> Result<TickCounts, StoreError> {
        let now = now.unwrap_or_else(Utc::now);
        let mut counts = TickCounts::default();
        loop {
            let due = self
                .store
                .schedule_due_list(self.config.batch, Some(now))
                .await?;
            let full = due.len() == self.config.batch as usize;
            let mut progressed = false;
            for d in &due {
                counts.schedules += 1;
                progressed |= self.fire(d, now, &mut counts).await?;
            }
            // A full batch none of which moved on (another leader holds them) would be found
            // again at once: leave it to the next pass.
            if !full || !progressed {
                return Ok(counts);
            }
        }
    }

    /// Fires one due schedule's ticks. Returns whether its next tick moved on.
    async fn fire(
        &self,
        d: &DueSchedule,
        now: DateTime<Utc>,
        counts: &mut TickCounts,
    ) -> Result<bool, StoreError> {
        let s = &d.schedule;
        let spec = &s.spec;
        let (ticks, missed, next) = match Cron::parse(&spec.cron, &spec.timezone) {
            Ok(cron) => {
                let from = s.next_fire_at.unwrap_or(now);
                let plan = cron.plan(from, now, self.config.tick_grace, spec.catch_up);
                (plan.fire, plan.missed, plan.next)
            }
            Err(e) => {
                // Validated when written; a newer Spool's expression, or a zone this build's
                // tz database lacks, is no reason to fail the pass.
                tracing::warn!(tenant = %d.tenant, schedule = %spec.name, error = %e,
                    "schedule cannot be evaluated; it will not fire until it is changed");
                (vec![], 0, None)
            }
        };
        let keys: Vec<String> = ticks.iter().map(|t| tick_key(&spec.name, *t)).collect();
        let refused = if ticks.is_empty() {
            None
        } else {
            self.admit(d, ticks.len()).await?
        };
        let fired = self
            .store
            .schedule_fire(
                &TickFiring {
                    tenant_id: s.tenant_id,
                    name: &spec.name,
                    from: s.next_fire_at,
                    ticks: &ticks,
                    keys: &keys,
                    refused: refused.as_deref(),
                    next,
                    keep: self.config.schedule_ticks_kept,
                },
                Some(now),
            )
            .await?;
        if fired.is_empty() && !ticks.is_empty() {
            return Ok(false);
        }
        let mut by_outcome: HashMap<&str, u64> = HashMap::new();
        for tick in &fired {
            *by_outcome.entry(tick.outcome.as_str()).or_default() += 1;
            if tick.outcome == "enqueued" {
                let lag = (now - tick.tick_at).to_std().unwrap_or_default();
                if let Some(m) = &self.metrics {
                    m.schedule_lag(&d.tenant, lag);
                }
                tracing::debug!(tenant = %d.tenant, schedule = %spec.name, tick = %tick.tick_at,
                    job.id = ?tick.job_id, lag_ms = lag.as_millis() as u64, "schedule fired");
            }
        }
        if missed > 0 {
            by_outcome.insert("missed", missed);
            tracing::info!(tenant = %d.tenant, schedule = %spec.name, missed,
                catch_up = spec.catch_up.as_str(), "schedule ticks missed while no node ran");
        }
        if let Some(reason) = &refused {
            tracing::warn!(tenant = %d.tenant, schedule = %spec.name, %reason,
                "schedule ticks refused by the tenant's quota");
        }
        for (outcome, n) in by_outcome {
            counts.add(outcome, n);
            if let Some(m) = &self.metrics {
                m.schedule_ticks(&d.tenant, outcome, n);
            }
        }
        Ok(true)
    }

    /// Holds `n` jobs of a schedule to its tenant's quotas (rate, pending jobs, queues), as
    /// the API holds an enqueue. Returns why they were refused, if they were.
    async fn admit(&self, d: &DueSchedule, n: usize) -> Result<Option<String>, StoreError> {
        let limits = TenantLimits::resolve(&d.limits);
        let tenant_id = d.schedule.tenant_id;
        let admitted = match self.quotas.admit(&self.store, tenant_id, &limits, n).await {
            Ok(()) => {
                self.quotas
                    .admit_queues(
                        &self.store,
                        tenant_id,
                        limits.max_queues,
                        &[d.schedule.spec.queue.as_str()],
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        match admitted {
            Ok(()) => Ok(None),
            Err(crate::quota::QuotaError::Store(e)) => Err(e),
            Err(e) => Ok(Some(e.to_string())),
        }
    }
}
