//! The worker end to end, in-process: real Postgres, real components, real sandbox.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use spool::model::{JobState, NewJob, TenantLimitSpec};
use spool::runtime::{Runtime, RuntimeConfig};
use spool::store::Store;
use spool::worker::{Worker, WorkerConfig};
use spool_tests::db::{TestDb, test_db};
use spool_tests::{component, components_dir};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A running worker and maintenance over a test database.
struct Running {
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            t.await.unwrap();
        }
    }
}

fn start(db: &TestDb) -> Running {
    let runtime = Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: Some(components_dir().join("spool-test-cache")),
            max_instances: 16,
            ..RuntimeConfig::default()
        })
        .unwrap(),
    );
    let shutdown = CancellationToken::new();
    let worker = Worker::new(
        WorkerConfig {
            slots: 8,
            poll_interval: Duration::from_millis(100),
            ..WorkerConfig::default()
        },
        db.store.clone(),
        runtime,
    );
    let maintenance = spool::maintenance::Maintenance::new(
        spool::maintenance::MaintenanceConfig {
            schedule_interval: Duration::from_millis(50),
            ..Default::default()
        },
        db.store.clone(),
    );
    let (a, b) = (shutdown.clone(), shutdown.clone());
    Running {
        shutdown,
        tasks: vec![
            tokio::spawn(async move {
                worker.run(a).await;
            }),
            tokio::spawn(async move { maintenance.run(b).await }),
        ],
    }
}

async fn setup(db: &TestDb, handlers: &[(&str, &str)]) -> i64 {
    let t = db
        .store
        .tenant_create("acme", &TenantLimitSpec::default(), None)
        .await
        .unwrap()
        .id;
    for (name, crate_name) in handlers {
        let bytes = component(crate_name);
        let digest = spool::runtime::cache::digest(&bytes);
        db.store
            .handler_put(t, name, &digest, &bytes)
            .await
            .unwrap();
    }
    t
}

/// Polls until every job in `ids` is finished, or panics at the deadline.
async fn wait_finished(store: &Store, tenant: i64, ids: &[Uuid], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut pending = 0;
        for id in ids {
            if !store
                .job_get(tenant, *id)
                .await
                .unwrap()
                .state
                .is_finished()
            {
                pending += 1;
            }
        }
        if pending == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{pending} jobs still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn jobs_run_in_the_sandbox_and_complete_with_their_results() {
    let db = test_db().await;
    let t = setup(&db, &[("hello", "hello")]).await;
    let jobs: Vec<NewJob> = (0..50)
        .map(|i| NewJob::json("hello", &json!({"i": i})))
        .collect();
    let ids: Vec<Uuid> = db
        .store
        .job_enqueue_many(t, &jobs, None)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let running = start(&db);
    wait_finished(&db.store, t, &ids, Duration::from_secs(60)).await;
    running.stop().await;
    for (i, id) in ids.iter().enumerate() {
        let job = db.store.job_get(t, *id).await.unwrap();
        assert_eq!(job.state, JobState::Completed);
        let result: serde_json::Value =
            serde_json::from_slice(job.result.as_ref().unwrap()).unwrap();
        assert_eq!(result, json!({"i": i}));
        assert!(
            job.logs.as_array().is_some_and(|l| !l.is_empty()),
            "the log is kept"
        );
    }
}

#[tokio::test]
async fn transient_failures_retry_until_success_with_effects_once() {
    let db = test_db().await;
    let t = setup(
        &db,
        &[
            ("fulfil-order", "fulfil-order"),
            ("send-receipt", "send-receipt"),
        ],
    )
    .await;
    let mut order = NewJob::json(
        "fulfil-order",
        &json!({"order_id": "A-1", "amount_cents": 4200, "email": "ada@example.com", "fail_times": 2}),
    );
    order.idempotency_key = Some("order-A-1".into());
    // Retries after about 1 ms, then 2 ms: the test need not wait for the default backoff.
    order.backoff = Some((Duration::from_millis(1), Duration::from_millis(10)));
    let id = db.store.job_enqueue_many(t, &[order], None).await.unwrap()[0].id;
    let running = start(&db);
    wait_finished(&db.store, t, &[id], Duration::from_secs(60)).await;
    let job = db.store.job_get(t, id).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.attempt, 3);
    assert_eq!(job.errors.len(), 2);
    assert!(job.errors.iter().all(|e| e.kind == "error"));
    let (order_state, _) = db.store.kv(t).get("order/A-1").await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&order_state).contains("fulfilled"));

    // The follow-up receipt job was enqueued exactly once and runs too.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let receipts = db
            .store
            .job_ids_in_state(t, JobState::Completed, 10)
            .await
            .unwrap();
        if receipts.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the receipt job did not complete: {receipts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.stop().await;
}

#[tokio::test]
async fn poison_goes_to_the_dead_letter_queue_and_trapped_effects_never_show() {
    let db = test_db().await;
    let t = setup(
        &db,
        &[("fulfil-order", "fulfil-order"), ("hostile", "hostile")],
    )
    .await;
    let poison = NewJob::json(
        "fulfil-order",
        &json!({"order_id": "X", "amount_cents": 1, "email": "x@example.com", "poison": true}),
    );
    let mut trap = NewJob::json("hostile", &json!({"action": "write-then-panic"}));
    trap.max_attempts = Some(1);
    let ids: Vec<Uuid> = db
        .store
        .job_enqueue_many(t, &[poison, trap], None)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let running = start(&db);
    wait_finished(&db.store, t, &ids, Duration::from_secs(60)).await;
    running.stop().await;
    let poisoned = db.store.job_get(t, ids[0]).await.unwrap();
    assert_eq!(poisoned.state, JobState::Dead);
    assert_eq!(poisoned.attempt, 1, "never retried");
    assert_eq!(poisoned.errors[0].kind, "permanent");
    let trapped = db.store.job_get(t, ids[1]).await.unwrap();
    assert_eq!(trapped.state, JobState::Dead);
    assert_eq!(trapped.errors[0].kind, "trap");
    let keys = db.store.kv(t).list_keys("", None, 100).await.unwrap();
    assert!(
        keys.is_empty(),
        "a trapped attempt's writes are never visible: {keys:?}"
    );
}

#[tokio::test]
async fn an_unknown_handler_is_a_permanent_failure() {
    let db = test_db().await;
    let t = setup(&db, &[]).await;
    let id = db
        .store
        .job_enqueue_many(t, &[NewJob::json("nope", &json!({}))], None)
        .await
        .unwrap()[0]
        .id;
    let running = start(&db);
    wait_finished(&db.store, t, &[id], Duration::from_secs(30)).await;
    running.stop().await;
    let job = db.store.job_get(t, id).await.unwrap();
    assert_eq!(job.state, JobState::Dead);
    assert!(
        job.errors[0].message.contains("no handler named"),
        "{:?}",
        job.errors
    );
}
