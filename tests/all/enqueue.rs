//! Enqueueing: batches, idempotency keys (also under concurrency), transactional enqueue,
//! and fair share between tenants at claim time.

use std::time::Duration;

use serde_json::json;
use spool::model::{JobState, NewJob};
use spool::store::Store;
use spool_tests::db::test_db;
use spool_tests::factory::tenant;

fn keyed(key: &str, payload: serde_json::Value) -> NewJob {
    let mut job = NewJob::json("hello", &payload);
    job.idempotency_key = Some(key.into());
    job
}

#[tokio::test]
async fn a_batch_of_ten_thousand_is_one_call() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let jobs: Vec<NewJob> = (0..10_000)
        .map(|i| NewJob::json("hello", &json!({"i": i})))
        .collect();
    let enqueued = db.store.job_enqueue_many(t, &jobs, None).await.unwrap();
    assert_eq!(enqueued.len(), 10_000);
    assert!(
        enqueued
            .iter()
            .all(|e| e.state == JobState::Available && !e.duplicate)
    );
    let claimed = db
        .store
        .job_claim("default", 10_000, "w", Duration::from_secs(5), None)
        .await;
    assert_eq!(
        claimed.unwrap().len(),
        10,
        "capped by the tenant's max_running"
    );
}

#[tokio::test]
async fn the_same_key_and_payload_is_a_duplicate_and_another_payload_a_conflict() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let first = db
        .store
        .job_enqueue_many(t, &[keyed("k", json!({"a": 1, "b": 2}))], None)
        .await
        .unwrap();
    assert!(!first[0].duplicate);
    // Same JSON, other key order and spacing: the same payload.
    let mut same = keyed("k", json!(null));
    same.payload = br#"{ "b": 2, "a": 1 }"#.to_vec();
    let again = db.store.job_enqueue_many(t, &[same], None).await.unwrap();
    assert!(again[0].duplicate && !again[0].conflict);
    assert_eq!(again[0].id, first[0].id);
    let other = db
        .store
        .job_enqueue_many(t, &[keyed("k", json!({"a": 2}))], None)
        .await
        .unwrap();
    assert!(other[0].conflict && !other[0].duplicate);
    assert_eq!(other[0].id, first[0].id);
    // Keys are per tenant.
    let u = tenant(&db.store, "other", 10).await;
    let theirs = db
        .store
        .job_enqueue_many(u, &[keyed("k", json!({"a": 2}))], None)
        .await
        .unwrap();
    assert!(!theirs[0].duplicate && !theirs[0].conflict);
}

#[tokio::test]
async fn duplicates_within_one_batch_resolve_to_the_first() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let jobs = [
        keyed("k", json!(1)),
        keyed("k", json!(1)),
        keyed("k", json!(2)),
    ];
    let out = db.store.job_enqueue_many(t, &jobs, None).await.unwrap();
    assert!(!out[0].duplicate);
    assert!(out[1].duplicate && out[1].id == out[0].id);
    assert!(out[2].conflict && out[2].id == out[0].id);
}

#[tokio::test]
async fn concurrent_enqueues_of_one_key_make_one_job() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .job_enqueue_many(t, &[keyed("race", json!({"x": 1}))], None)
                .await
                .unwrap()[0]
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let created = results.iter().filter(|e| !e.duplicate).count();
    assert_eq!(created, 1, "{results:?}");
    assert!(results.iter().all(|e| e.id == results[0].id));
    let claimed = db
        .store
        .job_claim("default", 100, "w", Duration::from_secs(5), None)
        .await;
    assert_eq!(claimed.unwrap().len(), 1);
}

#[tokio::test]
async fn an_enqueue_in_a_rolled_back_transaction_leaves_nothing_and_frees_its_key() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let pool = spool::sqlx::PgPool::connect(&db.url).await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    Store::job_enqueue_in(&mut tx, t, &[keyed("order-7", json!({"v": 1}))])
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let claimed = db
        .store
        .job_claim("default", 10, "w", Duration::from_secs(5), None)
        .await;
    assert!(claimed.unwrap().is_empty());

    // The key is free again, and a committed transactional enqueue is visible.
    let mut tx = pool.begin().await.unwrap();
    let out = Store::job_enqueue_in(&mut tx, t, &[keyed("order-7", json!({"v": 2}))])
        .await
        .unwrap();
    assert!(!out[0].duplicate && !out[0].conflict);
    tx.commit().await.unwrap();
    assert_eq!(
        db.store.job_get(t, out[0].id).await.unwrap().state,
        JobState::Available
    );
}

#[tokio::test]
async fn the_sql_enqueue_function_joins_the_callers_transaction() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let pool = spool::sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let id: uuid::Uuid = spool::sqlx::query_scalar(
        "SELECT spool.enqueue('acme', 'send-receipt', '{\"order\": 7}', idempotency_key => 'r-7')",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let again: uuid::Uuid = spool::sqlx::query_scalar(
        "SELECT spool.enqueue('acme', 'send-receipt', '{\"order\":7}', idempotency_key => 'r-7')",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(id, again, "same key, same JSON: the same job");
    let conflict = spool::sqlx::query(
        "SELECT spool.enqueue('acme', 'h', '{\"order\": 8}', idempotency_key => 'r-7')",
    )
    .execute(&mut *tx)
    .await;
    assert!(
        conflict.is_err(),
        "another payload under the same key is refused"
    );
    tx.rollback().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    let id: uuid::Uuid =
        spool::sqlx::query_scalar("SELECT spool.enqueue('acme', 'send-receipt', '{\"order\": 9}')")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    let job = db.store.job_get(t, id).await.unwrap();
    assert_eq!(job.handler, "send-receipt");
    assert_eq!(job.payload, br#"{"order": 9}"#);
}

#[tokio::test]
async fn a_deep_backlog_cannot_starve_a_shallow_tenant() {
    let db = test_db().await;
    let deep = tenant(&db.store, "deep", 1000).await;
    let shallow = tenant(&db.store, "shallow", 1000).await;
    // The deep tenant's 2,000 jobs are older than the shallow tenant's 5.
    let backlog: Vec<NewJob> = (0..2000).map(|i| NewJob::json("h", &json!(i))).collect();
    db.store
        .job_enqueue_many(deep, &backlog, None)
        .await
        .unwrap();
    let few: Vec<NewJob> = (0..5).map(|i| NewJob::json("h", &json!(i))).collect();
    db.store
        .job_enqueue_many(shallow, &few, None)
        .await
        .unwrap();

    let claimed = db
        .store
        .job_claim("default", 10, "w", Duration::from_secs(5), None)
        .await
        .unwrap();
    let shallow_got = claimed.iter().filter(|j| j.tenant_id == shallow).count();
    assert_eq!(claimed.len(), 10);
    assert_eq!(
        shallow_got, 5,
        "round-robin: the shallow tenant's whole backlog in one claim"
    );
}

#[tokio::test]
async fn no_tenant_runs_more_than_its_cap() {
    let db = test_db().await;
    let capped = tenant(&db.store, "capped", 3).await;
    let other = tenant(&db.store, "other", 100).await;
    let jobs: Vec<NewJob> = (0..50).map(|i| NewJob::json("h", &json!(i))).collect();
    db.store
        .job_enqueue_many(capped, &jobs, None)
        .await
        .unwrap();
    db.store.job_enqueue_many(other, &jobs, None).await.unwrap();
    let mut capped_running = 0;
    for _ in 0..5 {
        let claimed = db
            .store
            .job_claim("default", 20, "w", Duration::from_secs(5), None)
            .await
            .unwrap();
        capped_running += claimed.iter().filter(|j| j.tenant_id == capped).count();
    }
    assert_eq!(capped_running, 3, "three slots at most, over every claim");
}
