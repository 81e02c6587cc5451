//! Test factories: rows in any state with the fewest words.

use std::time::Duration;

use spool::model::{ClaimedJob, TenantLimitSpec};
use spool::store::{Completion, Store};

/// Creates a tenant with default limits and `max_running`, returning its id.
pub async fn tenant(store: &Store, name: &str, max_running: u32) -> i64 {
    store
        .tenant_create(name, &TenantLimitSpec { max_running: Some(max_running), ..TenantLimitSpec::default() }, None)
        .await
        .expect("creating a tenant")
        .id
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
    }
}

/// Enqueues `job` for `tenant` and claims it (with a 10 s lease), returning the claim.
pub async fn claimed(store: &Store, tenant: i64, job: spool::model::NewJob) -> ClaimedJob {
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
