//! Test factories: rows in any state with the fewest words.

use std::time::Duration;

use spool::model::{ClaimedJob, NewJob, TenantLimitSpec};
use spool::store::{Completion, Store};
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
