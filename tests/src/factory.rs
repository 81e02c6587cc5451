//! Test factories: rows in any state with the fewest words.

use std::time::Duration;

use spool::model::{ClaimedJob, ErrorKind, JobState, NewJob, TenantLimitSpec};
use spool::store::{Completion, Failure, Store};
use uuid::Uuid;

/// Creates a tenant with default limits and `max_running`, returning its id.
pub async fn tenant(store: &Store, name: &str, max_running: u32) -> i64 {
    store
        .tenant_create(
            name,
            &TenantLimitSpec {
                max_running: Some(max_running),
                ..TenantLimitSpec::default()
            },
            None,
        )
        .await
        .expect("creating a tenant")
        .id
}

/// Creates tenant `name` with default limits and, for each of `handlers`, a handler of that name
/// running the component built from the crate of that name; returns the tenant's id.
pub async fn tenant_with_handlers(store: &Store, name: &str, handlers: &[&str]) -> i64 {
    let tenant = store
        .tenant_create(name, &TenantLimitSpec::default(), None)
        .await
        .expect("creating a tenant")
        .id;
    for handler in handlers {
        put_handler(store, tenant, handler).await;
    }
    tenant
}

/// Stores the component built from the crate `name` as `tenant`'s handler `name`.
pub async fn put_handler(store: &Store, tenant: i64, name: &str) {
    let bytes = crate::component(name);
    let digest = spool::runtime::cache::digest(&bytes);
    store
        .handler_put(tenant, name, &digest, &bytes)
        .await
        .unwrap_or_else(|e| panic!("storing handler {name}: {e}"));
}

/// Enqueues `jobs` for `tenant` and returns their ids, in order.
pub async fn enqueue(store: &Store, tenant: i64, jobs: &[NewJob]) -> Vec<Uuid> {
    store
        .job_enqueue_many(tenant, jobs, None)
        .await
        .expect("enqueueing jobs")
        .iter()
        .map(|e| e.id)
        .collect()
}

/// Returns a successful completion of a claimed `job` with `result` and no effects.
pub fn success(job: &ClaimedJob, result: &str) -> Completion {
    Completion {
        tenant_id: job.tenant_id,
        id: job.id,
        run_lease: job.run_lease,
        result: result.as_bytes().to_vec(),
        logs: serde_json::json!([]),
        store_writes: vec![],
        enqueued: vec![],
        retry_delay: Some(Duration::from_secs(1)),
        max_conflicts: 100,
    }
}

/// Enqueues `job` for `tenant` and claims it (with a 10 s lease), returning the claim.
pub async fn claimed(store: &Store, tenant: i64, job: NewJob) -> ClaimedJob {
    store
        .job_enqueue_many(tenant, &[job], None)
        .await
        .expect("enqueueing a job");
    let mut claimed = store
        .job_claim("default", 1, "w", Duration::from_secs(10), None)
        .await
        .expect("claiming a job");
    assert_eq!(claimed.len(), 1, "the job was claimed");
    claimed.remove(0)
}

/// The queue [`job_in`] claims its jobs from, so that it never claims another test's job.
pub const FACTORY_QUEUE: &str = "factory";

/// Writes a job of handler `hello` for `tenant` in `state`, through the same transitions a
/// worker makes (so counters and history agree with it), and returns its id. A job that needs
/// claiming goes through [`FACTORY_QUEUE`]; running ones hold a 10 min lease, scheduled ones
/// are due in an hour, retryable ones have attempts left and wait out their backoff.
pub async fn job_in(store: &Store, tenant: i64, state: JobState) -> Uuid {
    let mut job = NewJob::json("hello", &serde_json::json!({"state": state.as_str()}));
    job.max_attempts = Some(3);
    match state {
        JobState::Scheduled => {
            job.run_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
            return enqueue(store, tenant, &[job]).await[0];
        }
        JobState::Available => return enqueue(store, tenant, &[job]).await[0],
        JobState::Cancelled => {
            let id = enqueue(store, tenant, &[job]).await[0];
            assert!(store.job_cancel(tenant, id).await.expect("cancelling"));
            return id;
        }
        JobState::Running | JobState::Retryable | JobState::Completed | JobState::Dead => {}
    }
    job.queue = Some(FACTORY_QUEUE.to_string());
    enqueue(store, tenant, &[job]).await;
    let mut claimed = store
        .job_claim(FACTORY_QUEUE, 1, "factory", Duration::from_secs(600), None)
        .await
        .expect("claiming a job");
    assert_eq!(claimed.len(), 1, "the factory's job was claimed");
    let job = claimed.remove(0);
    let (completions, failures) = match state {
        JobState::Completed => (vec![success(&job, "{}")], vec![]),
        JobState::Retryable | JobState::Dead => {
            let kind = if state == JobState::Dead {
                ErrorKind::Permanent
            } else {
                ErrorKind::Error
            };
            let message = format!("factory: {kind}");
            let failure = Failure::from_claim(&job, kind, message, serde_json::json!([]));
            (vec![], vec![failure])
        }
        _ => return job.id,
    };
    store
        .job_finish_many(&completions, &failures, None)
        .await
        .expect("finishing the factory's job");
    job.id
}
