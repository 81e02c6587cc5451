//! One claimed job: load its handler, run one attempt, and hand the outcome to the completer.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::completer::{Done, Finished};
use super::fields::{self, JobFields, job_event};
use crate::metrics::Metrics;
use crate::model::{AllowList, ClaimedJob, ErrorKind, JobContext, Outcome};
use crate::quota::{QuotaError, Quotas};
use crate::runtime::{Prepared, Runtime};
use crate::store::{Completion, Failure, Store, StoreError};

/// What running attempts needs, shared (behind an `Arc`) by every attempt of a worker.
pub(crate) struct Runner {
    pub(crate) store: Store,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) quotas: Arc<Quotas>,
    pub(crate) finished: mpsc::UnboundedSender<Done>,
    pub(crate) pace: Arc<super::producer::Pace>,
}

impl Runner {
    /// Runs one attempt of `job` in `slot` and sends its outcome; the slot is given back
    /// before the outcome is committed.
    pub(crate) async fn run(&self, job: ClaimedJob, slot: super::producer::Slot) {
        let running = self.metrics.worker_running();
        let fields = JobFields::of(&job);
        let timing = self.pace.start();
        let outcome = execute(
            &job,
            &fields,
            &self.store,
            &self.runtime,
            &self.metrics,
            &self.quotas,
        )
        .await;
        drop(timing);
        drop(slot);
        drop(running);
        let _ = self.finished.send(Done {
            job: fields,
            finished: outcome,
        });
    }
}

async fn execute(
    job: &ClaimedJob,
    fields: &JobFields,
    store: &Store,
    runtime: &Runtime,
    metrics: &Metrics,
    quotas: &Quotas,
) -> Finished {
    let fail = |kind: ErrorKind, message: String, logs: serde_json::Value| {
        Finished::Failed(Failure::from_claim(job, kind, message, logs))
    };
    if job.already_done {
        // The key has a done-record: acknowledge and stop, without running anything.
        job_event!(
            tracing::Level::INFO,
            fields,
            "attempt skipped: the idempotency key is already done"
        );
        return Finished::Completed(Completion {
            tenant_id: job.tenant_id,
            id: job.id,
            run_lease: job.run_lease,
            result: Vec::new(),
            logs: serde_json::json!([]),
            store_writes: Vec::new(),
            enqueued: Vec::new(),
            retry_delay: None,
            max_conflicts: 0,
        });
    }
    fields::attempt_started(fields);
    let started = Instant::now();
    let handler = match load(job, store, runtime).await {
        Ok(handler) => handler,
        Err((kind, message)) => {
            fields::attempt_failed(fields, kind, &message, 0, started.elapsed());
            return fail(kind, message, serde_json::json!([]));
        }
    };
    let tenant_limits = crate::model::TenantLimits::resolve(&job.tenant_limits);
    // The attempt may write no more than the store had room for a moment ago, so that a guest
    // hears of a full store when it writes; concurrent attempts may each get that room, and
    // the commit holds them to the quota (apply_writes fails a commit that would pass it). An
    // unreadable usage counts as full.
    let store_used = store
        .kv_usage(job.tenant_id)
        .await
        .unwrap_or(tenant_limits.max_store_bytes);
    let caps = tenant_limits.attempt_caps_with_store(store_used);
    let limits = caps.with(&job.limits).capped_by(&caps);
    let context = JobContext::from(job);
    let backend = Arc::new(store.kv(job.tenant_id));
    // Stored entries were checked when set; one that no longer parses allows nothing.
    let allowed = Arc::new(AllowList::parse_lenient(&job.allowed_hosts));
    let attempt = {
        let _in_use = metrics.sandbox_in_use();
        runtime
            .invoke_allowing(&handler, &context, &limits, backend, allowed)
            .await
    };
    for call in &attempt.http_calls {
        metrics.http_request(&job.tenant, &call.host, call.outcome.label(), call.duration);
    }
    // Follow-up jobs are enqueues like the API's: held to the tenant's queues, rate and pending
    // cap, so that no job tree grows past what the tenant may have pending. Checked before the
    // attempt is reported finished: nothing awaits between that line and the hand-over to the
    // completer, so a heartbeat that abandons the attempt cannot drop a finished outcome.
    let mut outcome = attempt.outcome;
    if matches!(outcome, Outcome::Ok(_)) && !attempt.enqueued.is_empty() {
        let mut queues: Vec<&str> = attempt.enqueued.iter().map(|j| j.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        let admitted = match quotas
            .admit_queues(store, job.tenant_id, tenant_limits.max_queues, &queues)
            .await
        {
            Ok(()) => {
                quotas
                    .admit(store, job.tenant_id, &tenant_limits, attempt.enqueued.len())
                    .await
            }
            Err(e) => Err(e),
        };
        outcome = match admitted {
            Ok(()) => outcome,
            Err(QuotaError::Store(e)) => Outcome::failed(
                ErrorKind::Commit,
                format!("checking the tenant's quotas for follow-up jobs: {e}"),
            ),
            Err(e) => Outcome::failed(
                ErrorKind::Quota,
                format!("{} follow-up jobs refused: {e}", attempt.enqueued.len()),
            ),
        };
    }
    metrics.attempt_finished(
        &fields.labels,
        outcome.label(),
        attempt.duration,
        attempt.fuel_consumed,
    );
    fields::guest_lines(fields, &attempt.logs);
    fields::attempt_finished(fields, &outcome, attempt.fuel_consumed, attempt.duration);
    let logs = serde_json::to_value(&attempt.logs).unwrap_or_default();
    match outcome {
        Outcome::Ok(result) => Finished::Completed(Completion {
            tenant_id: job.tenant_id,
            id: job.id,
            run_lease: job.run_lease,
            result,
            logs,
            store_writes: attempt.store_writes,
            enqueued: attempt.enqueued,
            retry_delay: job
                .retry_policy()
                .next_delay(ErrorKind::Commit, job.attempt),
            max_conflicts: tenant_limits.max_conflicts,
        }),
        Outcome::Failed { kind, message } => fail(kind, message, logs),
    }
}

/// Finds the job's handler compiled, or fetches and compiles it.
async fn load(
    job: &ClaimedJob,
    store: &Store,
    runtime: &Runtime,
) -> Result<Arc<Prepared>, (ErrorKind, String)> {
    let (Some(digest), Some(version)) = (&job.digest, job.handler_version) else {
        return Err((
            ErrorKind::Permanent,
            format!(
                "tenant {} has no handler named {:?}",
                job.tenant, job.handler
            ),
        ));
    };
    if let Some(prepared) = runtime.cached(digest) {
        return Ok(prepared);
    }
    let bytes = store
        .handler_component(job.tenant_id, &job.handler, version)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => (
                ErrorKind::Permanent,
                format!("handler {:?} version {version} is gone", job.handler),
            ),
            other => (ErrorKind::Error, format!("loading the handler: {other}")),
        })?;
    runtime.load(&bytes).await.map_err(|e| {
        // The compiler failing to start is the host's trouble: run the job again later.
        let kind = if e.is_transient() {
            ErrorKind::Error
        } else {
            ErrorKind::Permanent
        };
        (kind, format!("the handler cannot run: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::RetryPolicy;

    #[test]
    fn permanent_failures_and_the_last_attempt_go_to_the_dead_letter_queue() {
        let policy = RetryPolicy::of_job(1000, 60_000, 20);
        assert_eq!(policy.next_delay(ErrorKind::Permanent, 1), None);
        assert_eq!(policy.next_delay(ErrorKind::Trap, 20), None);
        let delay = policy.next_delay(ErrorKind::Trap, 3).unwrap();
        assert!(delay <= Duration::from_secs(4) && delay >= Duration::from_secs(3));
    }
}
