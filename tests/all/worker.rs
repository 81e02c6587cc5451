//! The worker end to end, in-process: real Postgres, real components, real sandbox.

use std::time::{Duration, Instant};

use serde_json::json;
use spool::model::{JobState, NewJob};
use spool_tests::background::{self, Background};
use spool_tests::db::{TestDb, test_db, wait_finished};
use spool_tests::factory::{enqueue, tenant_with_handlers};
use spool_tests::test_runtime;

/// Starts a worker and maintenance over the test database.
fn start(db: &TestDb) -> Background {
    Background::start(&db.store, test_runtime(), background::Config::default())
}

#[tokio::test]
async fn jobs_run_in_the_sandbox_and_complete_with_their_results() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["hello"]).await;
    let jobs: Vec<NewJob> = (0..50)
        .map(|i| NewJob::json("hello", &json!({"i": i})))
        .collect();
    let ids = enqueue(&db.store, t, &jobs).await;
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
    let t = tenant_with_handlers(&db.store, "acme", &["fulfil-order", "send-receipt"]).await;
    let mut order = NewJob::json(
        "fulfil-order",
        &json!({"order_id": "A-1", "amount_cents": 4200, "email": "ada@example.com", "fail_times": 2}),
    );
    order.idempotency_key = Some("order-A-1".into());
    // Retries after about 1 ms, then 2 ms: the test need not wait for the default backoff.
    order.backoff = Some((Duration::from_millis(1), Duration::from_millis(10)));
    let id = enqueue(&db.store, t, &[order]).await[0];
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
    let t = tenant_with_handlers(&db.store, "acme", &["fulfil-order", "hostile"]).await;
    let poison = NewJob::json(
        "fulfil-order",
        &json!({"order_id": "X", "amount_cents": 1, "email": "x@example.com", "poison": true}),
    );
    let mut trap = NewJob::json("hostile", &json!({"action": "write-then-panic"}));
    trap.max_attempts = Some(1);
    let ids = enqueue(&db.store, t, &[poison, trap]).await;
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
    let t = tenant_with_handlers(&db.store, "acme", &[]).await;
    let id = enqueue(&db.store, t, &[NewJob::json("nope", &json!({}))]).await[0];
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
