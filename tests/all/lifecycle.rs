//! Every state transition of a job, driven through the store with a controllable clock.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use spool::model::{ErrorKind, Expected, JobState, NewJob, StoreWrite, WriteOp};
use spool::store::{Completion, CompletionStatus, Failure};
use spool_tests::db::test_db;
use spool_tests::factory::{claimed, success, tenant};
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(10);

fn t0() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

fn failure(job: &spool::model::ClaimedJob, kind: ErrorKind) -> Failure {
    Failure {
        tenant_id: job.tenant_id,
        id: job.id,
        run_lease: job.run_lease,
        attempt: job.attempt,
        kind,
        message: format!("{kind} on attempt {}", job.attempt),
        logs: json!([]),
        retry_delay: spool::model::RetryPolicy::of_job(1000, 3_600_000, job.max_attempts)
            .next_delay(kind, job.attempt),
    }
}

#[tokio::test]
async fn a_job_goes_available_running_completed_with_its_result() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let enqueued = db
        .store
        .job_enqueue_many(t, &[NewJob::json("hello", &json!({"n": 1}))], None)
        .await
        .unwrap();
    assert_eq!(enqueued[0].state, JobState::Available);
    let claimed = db
        .store
        .job_claim("default", 10, "w", LEASE, None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 1);
    assert_eq!(
        db.store.job_get(t, claimed[0].id).await.unwrap().state,
        JobState::Running
    );

    let statuses = db
        .store
        .job_finish_many(&[success(&claimed[0], "done")], &[], None)
        .await
        .unwrap();
    assert_eq!(statuses, [CompletionStatus::Completed]);
    let job = db.store.job_get(t, claimed[0].id).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.result.as_deref(), Some(&b"done"[..]));
    assert!(job.finished_at.is_some());
    assert!(
        db.store
            .job_claim("default", 10, "w", LEASE, None)
            .await
            .unwrap()
            .is_empty()
    );
    db.assert_running_counts_agree().await;
}

#[tokio::test]
async fn a_scheduled_job_becomes_available_when_due_and_not_before() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let mut job = NewJob::json("hello", &json!({}));
    job.run_at = Some(t0() + TimeDelta::seconds(60));
    let enqueued = db
        .store
        .job_enqueue_many(t, &[job], Some(t0()))
        .await
        .unwrap();
    assert_eq!(enqueued[0].state, JobState::Scheduled);
    let early = t0() + TimeDelta::seconds(59);
    assert_eq!(
        db.store.job_schedule_due(100, Some(early)).await.unwrap(),
        0
    );
    let due = t0() + TimeDelta::seconds(60);
    assert_eq!(db.store.job_schedule_due(100, Some(due)).await.unwrap(), 1);
    assert_eq!(
        db.store.job_get(t, enqueued[0].id).await.unwrap().state,
        JobState::Available
    );
    db.assert_running_counts_agree().await;
}

#[tokio::test]
async fn a_failed_attempt_waits_out_its_backoff_then_runs_again() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    db.store
        .job_enqueue_many(t, &[NewJob::json("hello", &json!({}))], Some(t0()))
        .await
        .unwrap();
    let mut now = t0();
    for attempt in 1..=3u32 {
        let claimed = db
            .store
            .job_claim("default", 1, "w", LEASE, Some(now))
            .await
            .unwrap();
        assert_eq!(claimed[0].attempt, attempt);
        let f = failure(&claimed[0], ErrorKind::Trap);
        let delay = f.retry_delay.unwrap();
        // Exponential: 1 s, 2 s, 4 s, less up to a quarter of jitter.
        let full = Duration::from_secs(1 << (attempt - 1));
        assert!(
            delay <= full && delay >= full.mul_f64(0.75),
            "{delay:?} for {attempt}"
        );
        db.store
            .job_finish_many(&[], &[f], Some(now))
            .await
            .unwrap();
        let job = db.store.job_get(t, claimed[0].id).await.unwrap();
        assert_eq!(job.state, JobState::Retryable);
        let run_at = job.run_at;
        assert_eq!((run_at - now).num_milliseconds(), delay.as_millis() as i64);
        assert_eq!(job.errors.len(), attempt as usize);
        assert_eq!(job.errors.last().unwrap().kind, "trap");

        let just_before = run_at - TimeDelta::milliseconds(1);
        assert_eq!(
            db.store
                .job_schedule_due(10, Some(just_before))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            db.store.job_schedule_due(10, Some(run_at)).await.unwrap(),
            1
        );
        now = run_at;
    }
    db.assert_running_counts_agree().await;
}

#[tokio::test]
async fn permanent_failures_are_dead_lettered_at_once() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let claimed = [claimed(&db.store, t, NewJob::json("hello", &json!({}))).await];
    let f = failure(&claimed[0], ErrorKind::Permanent);
    assert_eq!(f.retry_delay, None);
    db.store.job_finish_many(&[], &[f], None).await.unwrap();
    let job = db.store.job_get(t, claimed[0].id).await.unwrap();
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.errors[0].kind, "permanent");
    db.assert_running_counts_agree().await;
}

#[tokio::test]
async fn exhausted_attempts_are_dead_lettered_and_can_be_retried() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let mut job = NewJob::json("hello", &json!({}));
    job.max_attempts = Some(2);
    db.store
        .job_enqueue_many(t, &[job], Some(t0()))
        .await
        .unwrap();
    let mut now = t0();
    let mut id = Uuid::nil();
    for _ in 0..2 {
        let claimed = db
            .store
            .job_claim("default", 1, "w", LEASE, Some(now))
            .await
            .unwrap();
        id = claimed[0].id;
        db.store
            .job_finish_many(&[], &[failure(&claimed[0], ErrorKind::Timeout)], Some(now))
            .await
            .unwrap();
        now += TimeDelta::hours(2);
        db.store.job_schedule_due(10, Some(now)).await.unwrap();
    }
    let dead = db.store.job_get(t, id).await.unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.errors.len(), 2);

    assert_eq!(db.store.job_retry_many(t, &[id]).await.unwrap(), [id]);
    let again = db.store.job_get(t, id).await.unwrap();
    assert_eq!(again.state, JobState::Available);
    assert_eq!(
        again.max_attempts, 3,
        "a redriven job gets one more attempt"
    );
    let claimed = db
        .store
        .job_claim("default", 1, "w", LEASE, None)
        .await
        .unwrap();
    assert_eq!(claimed[0].attempt, 3);
    db.assert_running_counts_agree().await;
}

#[tokio::test]
async fn a_pending_job_can_be_cancelled_and_a_running_one_cannot() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let jobs = [
        NewJob::json("hello", &json!({"a": 1})),
        NewJob::json("hello", &json!({"a": 2})),
    ];
    let enqueued = db.store.job_enqueue_many(t, &jobs, None).await.unwrap();
    let claimed = db
        .store
        .job_claim("default", 1, "w", LEASE, None)
        .await
        .unwrap();
    let running = claimed[0].id;
    let pending = enqueued.iter().find(|e| e.id != running).unwrap().id;
    assert!(!db.store.job_cancel(t, running).await.unwrap());
    assert!(db.store.job_cancel(t, pending).await.unwrap());
    assert_eq!(
        db.store.job_get(t, pending).await.unwrap().state,
        JobState::Cancelled
    );
    assert!(
        !db.store.job_cancel(t, pending).await.unwrap(),
        "already cancelled"
    );
    db.assert_running_counts_agree().await;
}

#[tokio::test]
async fn a_lost_lease_is_rescued_and_the_late_completion_writes_nothing() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    db.store
        .job_enqueue_many(t, &[NewJob::json("hello", &json!({}))], Some(t0()))
        .await
        .unwrap();
    let claimed = db
        .store
        .job_claim("default", 1, "w", LEASE, Some(t0()))
        .await
        .unwrap();
    let job = &claimed[0];
    let maintenance = spool::maintenance::Maintenance::new(Default::default(), db.store.clone());
    assert_eq!(
        maintenance
            .rescue_once(Some(t0() + TimeDelta::seconds(9)))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        maintenance
            .rescue_once(Some(t0() + TimeDelta::seconds(11)))
            .await
            .unwrap(),
        1
    );
    let rescued = db.store.job_get(t, job.id).await.unwrap();
    assert_eq!(rescued.state, JobState::Retryable);
    assert_eq!(rescued.errors[0].kind, "lost");

    let mut late = success(job, "late");
    late.store_writes = vec![StoreWrite {
        key: "k".into(),
        op: WriteOp::Put(b"v".to_vec()),
        expected: None,
    }];
    let statuses = db.store.job_finish_many(&[late], &[], None).await.unwrap();
    assert_eq!(statuses, [CompletionStatus::Stale]);
    assert_eq!(db.store.kv(t).get("k").await.unwrap(), None);
    assert_eq!(
        db.store.job_get(t, job.id).await.unwrap().state,
        JobState::Retryable
    );
    // The heartbeat of the lost lease says so.
    let lost = db
        .store
        .job_heartbeat(&[(t, job.id, job.run_lease)], LEASE, None)
        .await
        .unwrap();
    assert_eq!(lost, [job.id]);
    db.assert_running_counts_agree().await;
}

#[tokio::test]
async fn effects_commit_with_the_done_record_exactly_once() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let mut job = NewJob::json("fulfil-order", &json!({"order": 1}));
    job.idempotency_key = Some("order-1".into());
    db.store.job_enqueue_many(t, &[job], None).await.unwrap();
    let claimed = db
        .store
        .job_claim("default", 1, "w", LEASE, None)
        .await
        .unwrap();
    let mut done = success(&claimed[0], "receipt");
    done.store_writes = vec![StoreWrite {
        key: "order/1".into(),
        op: WriteOp::Put(b"fulfilled".to_vec()),
        expected: Some(Expected::Absent),
    }];
    done.enqueued = vec![spool::model::EnqueuedJob {
        id: Uuid::now_v7().to_string(),
        handler: "send-receipt".into(),
        payload: b"{}".to_vec(),
        queue: "default".into(),
        idempotency_key: "order-1/0".into(),
        priority: 0,
        delay_ms: 0,
        max_attempts: None,
    }];
    let statuses = db
        .store
        .job_finish_many(&[done.clone()], &[], None)
        .await
        .unwrap();
    assert_eq!(statuses, [CompletionStatus::Completed]);
    let (value, version) = db.store.kv(t).get("order/1").await.unwrap().unwrap();
    assert_eq!((value.as_slice(), version), (&b"fulfilled"[..], 1));
    let children = db
        .store
        .job_claim("default", 10, "w", LEASE, None)
        .await
        .unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].handler, "send-receipt");
    assert_eq!(children[0].idempotency_key, "order-1/0");

    // The same completion again (a commit whose outcome was unknown, resubmitted): nothing.
    let again = db.store.job_finish_many(&[done], &[], None).await.unwrap();
    assert_eq!(again, [CompletionStatus::Stale]);
    assert_eq!(db.store.kv(t).get("order/1").await.unwrap().unwrap().1, 1);
    db.assert_running_counts_agree().await;
}

#[tokio::test]
async fn a_store_version_conflict_runs_the_job_again_without_charging_an_attempt() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let jobs = [
        NewJob::json("h", &json!({"a": 1})),
        NewJob::json("h", &json!({"a": 2})),
    ];
    db.store.job_enqueue_many(t, &jobs, None).await.unwrap();
    let claimed = db
        .store
        .job_claim("default", 2, "w", LEASE, None)
        .await
        .unwrap();
    // Both attempts saw the key absent and both write it: only the first may commit.
    let both: Vec<Completion> = claimed
        .iter()
        .map(|j| {
            let mut c = success(j, "ok");
            c.store_writes = vec![StoreWrite {
                key: "counter".into(),
                op: WriteOp::Put(j.id.to_string().into_bytes()),
                expected: Some(Expected::Absent),
            }];
            c
        })
        .collect();
    let statuses = db.store.job_finish_many(&both, &[], None).await.unwrap();
    assert_eq!(
        statuses,
        [CompletionStatus::Completed, CompletionStatus::Conflict]
    );
    let loser = db.store.job_get(t, claimed[1].id).await.unwrap();
    assert_eq!(loser.state, JobState::Retryable);
    assert_eq!(loser.errors[0].kind, "conflict");
    assert_eq!(
        (loser.attempt, loser.conflicts),
        (0, 1),
        "no attempt charged"
    );
    assert!(loser.run_at <= chrono::Utc::now() + chrono::Duration::seconds(1));
    let (value, _) = db.store.kv(t).get("counter").await.unwrap().unwrap();
    assert_eq!(value, claimed[0].id.to_string().into_bytes());
    db.assert_running_counts_agree().await;
}

#[tokio::test]
async fn a_job_whose_key_is_already_done_completes_as_a_duplicate() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let mut job = NewJob::json("h", &json!({}));
    job.idempotency_key = Some("order-1".into());
    let claimed = [claimed(&db.store, t, job).await];
    // Another job already committed this key (for example through a second path).
    db.mark_done_by_another_job(t, "order-1").await;
    let mut c = success(&claimed[0], "ok");
    c.store_writes = vec![StoreWrite {
        key: "x".into(),
        op: WriteOp::Put(vec![1]),
        expected: None,
    }];
    let statuses = db.store.job_finish_many(&[c], &[], None).await.unwrap();
    assert_eq!(statuses, [CompletionStatus::Duplicate]);
    let job = db.store.job_get(t, claimed[0].id).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert!(job.duplicate);
    assert_eq!(
        db.store.kv(t).get("x").await.unwrap(),
        None,
        "effects discarded"
    );
    db.assert_running_counts_agree().await;
}

/// One batch of outcomes without effects, on the group commit's fast path (one fenced delete):
/// a keyed job whose key another job has done is a duplicate, a keyed and an unkeyed job
/// complete, and an outcome whose lease is gone is stale and leaves its job running.
#[tokio::test]
async fn the_fast_path_sorts_one_batch_into_completed_duplicate_and_stale() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let keyed = |key: &str| {
        let mut job = NewJob::json("h", &json!(key));
        job.idempotency_key = Some(key.into());
        job
    };
    let claimed = [
        claimed(&db.store, t, keyed("done-elsewhere")).await,
        claimed(&db.store, t, keyed("fresh")).await,
        claimed(&db.store, t, NewJob::json("h", &json!(3))).await,
        claimed(&db.store, t, NewJob::json("h", &json!(4))).await,
    ];
    db.mark_done_by_another_job(t, "done-elsewhere").await;
    let mut lost = success(&claimed[3], "late");
    lost.run_lease = uuid::Uuid::new_v4();
    let statuses = db
        .store
        .job_finish_many(
            &[
                success(&claimed[0], "a"),
                success(&claimed[1], "b"),
                success(&claimed[2], "c"),
                lost,
            ],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        statuses,
        [
            CompletionStatus::Duplicate,
            CompletionStatus::Completed,
            CompletionStatus::Completed,
            CompletionStatus::Stale,
        ]
    );
    let mut states = Vec::new();
    for job in &claimed {
        let job = db.store.job_get(t, job.id).await.unwrap();
        states.push((job.state, job.duplicate));
    }
    assert_eq!(
        states,
        [
            (JobState::Completed, true),
            (JobState::Completed, false),
            (JobState::Completed, false),
            (JobState::Running, false),
        ]
    );
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let fresh: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT job_id FROM spool.idempotency
         WHERE tenant_id = $1 AND key = 'fresh' AND done_at IS NOT NULL",
    )
    .bind(t)
    .fetch_optional(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(fresh, Some(claimed[1].id), "the fresh key's done-record");
    db.assert_running_counts_agree().await;
}

/// A job enqueued with a key leaves a done-record when it completes; one without leaves only
/// its history row, which holds its result.
#[tokio::test]
async fn only_a_keyed_job_leaves_a_done_record() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let mut keyed = NewJob::json("h", &json!(1));
    keyed.idempotency_key = Some("order-1".into());
    let claimed = [
        claimed(&db.store, t, keyed).await,
        claimed(&db.store, t, NewJob::json("h", &json!(2))).await,
    ];
    let statuses = db
        .store
        .job_finish_many(
            &[success(&claimed[0], "one"), success(&claimed[1], "two")],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        statuses,
        [CompletionStatus::Completed, CompletionStatus::Completed]
    );
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let records: Vec<(String, uuid::Uuid, bool)> = sqlx::query_as(
        "SELECT key, job_id, done_at IS NOT NULL FROM spool.idempotency WHERE tenant_id = $1",
    )
    .bind(t)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(records, [("order-1".to_string(), claimed[0].id, true)]);
    for (job, result) in claimed.iter().zip(["one", "two"]) {
        let job = db.store.job_get(t, job.id).await.unwrap();
        assert_eq!(job.state, JobState::Completed);
        assert_eq!(job.result.as_deref(), Some(result.as_bytes()), "{job:?}");
    }
    db.assert_running_counts_agree().await;
}

#[tokio::test]
async fn a_job_may_choose_its_own_backoff_and_attempts() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let mut job = NewJob::json("hello", &json!({}));
    job.backoff = Some((Duration::from_millis(50), Duration::from_millis(400)));
    job.max_attempts = Some(7);
    db.store
        .job_enqueue_many(t, &[job, NewJob::json("hello", &json!(1))], None)
        .await
        .unwrap();
    let claimed = db
        .store
        .job_claim("default", 2, "w", LEASE, None)
        .await
        .unwrap();
    let (chosen, default): (Vec<_>, Vec<_>) = claimed.iter().partition(|j| j.max_attempts == 7);
    assert_eq!(
        (chosen[0].backoff_base_ms, chosen[0].backoff_cap_ms),
        (50, 400)
    );
    assert_eq!(
        (default[0].backoff_base_ms, default[0].backoff_cap_ms),
        (1000, 3_600_000)
    );
    assert_eq!(default[0].max_attempts, 20);
    db.assert_running_counts_agree().await;
}

/// The lease expiry of job `id`, read directly.
async fn lease_expires_at(db: &spool_tests::db::TestDb, id: Uuid) -> Option<DateTime<Utc>> {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let at = sqlx::query_scalar("SELECT lease_expires_at FROM spool.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    at
}

// Review finding L6: the rescuer failed whatever its scan had found, so a lease renewed between
// the scan and the failure was rescued anyway and two attempts of the job ran at once.
#[tokio::test]
async fn a_lease_renewed_after_the_rescuer_found_it_expired_is_not_rescued() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    db.store
        .job_enqueue_many(t, &[NewJob::json("hello", &json!({}))], Some(t0()))
        .await
        .unwrap();
    let job = db
        .store
        .job_claim("default", 1, "w", LEASE, Some(t0()))
        .await
        .unwrap()
        .remove(0);
    let scan_at = t0() + TimeDelta::seconds(11);
    let found = db.store.job_expired(100, Some(scan_at)).await.unwrap();
    assert_eq!(found.len(), 1, "the scan finds the expired lease");

    // A heartbeat sent before the lease ran out lands after the scan.
    let lost = db
        .store
        .job_heartbeat(
            &[(t, job.id, job.run_lease)],
            LEASE,
            Some(t0() + TimeDelta::milliseconds(9_500)),
        )
        .await
        .unwrap();
    assert!(lost.is_empty(), "{lost:?}");

    let failures: Vec<Failure> = found
        .iter()
        .map(|j| Failure {
            tenant_id: j.tenant_id,
            id: j.id,
            run_lease: j.run_lease,
            attempt: j.attempt,
            kind: ErrorKind::Lost,
            message: "lost".into(),
            logs: serde_json::Value::Null,
            retry_delay: Some(Duration::from_secs(1)),
        })
        .collect();
    assert_eq!(
        db.store
            .job_rescue_many(&failures, Some(scan_at))
            .await
            .unwrap(),
        0,
        "the renewed lease is checked again under the row lock"
    );
    let still = db.store.job_get(t, job.id).await.unwrap();
    assert_eq!(still.state, JobState::Running);
    assert!(still.errors.is_empty());
    assert_eq!(
        lease_expires_at(&db, job.id).await,
        Some(t0() + TimeDelta::milliseconds(19_500))
    );

    // Once the renewed lease runs out too, the rescuer takes it.
    let maintenance = spool::maintenance::Maintenance::new(Default::default(), db.store.clone());
    assert_eq!(maintenance.rescue_once(Some(scan_at)).await.unwrap(), 0);
    assert_eq!(
        maintenance
            .rescue_once(Some(t0() + TimeDelta::seconds(20)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        db.store.job_get(t, job.id).await.unwrap().state,
        JobState::Retryable
    );
    db.assert_running_counts_agree().await;
}

// Review finding L6: a heartbeat extended a lease that had already expired, racing the rescuer
// that was failing the job.
#[tokio::test]
async fn a_heartbeat_for_an_expired_lease_reports_it_lost_and_does_not_renew_it() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    db.store
        .job_enqueue_many(t, &[NewJob::json("hello", &json!({}))], Some(t0()))
        .await
        .unwrap();
    let job = db
        .store
        .job_claim("default", 1, "w", LEASE, Some(t0()))
        .await
        .unwrap()
        .remove(0);
    let expired_at = t0() + TimeDelta::seconds(10);

    // At the very instant of expiry the lease is still live, and renewed.
    let lost = db
        .store
        .job_heartbeat(&[(t, job.id, job.run_lease)], LEASE, Some(expired_at))
        .await
        .unwrap();
    assert!(lost.is_empty(), "{lost:?}");
    let renewed_until = expired_at + TimeDelta::seconds(10);
    assert_eq!(lease_expires_at(&db, job.id).await, Some(renewed_until));

    let late = renewed_until + TimeDelta::milliseconds(1);
    let lost = db
        .store
        .job_heartbeat(&[(t, job.id, job.run_lease)], LEASE, Some(late))
        .await
        .unwrap();
    assert_eq!(lost, [job.id], "an expired lease is lost");
    assert_eq!(
        lease_expires_at(&db, job.id).await,
        Some(renewed_until),
        "and not renewed"
    );
    let maintenance = spool::maintenance::Maintenance::new(Default::default(), db.store.clone());
    assert_eq!(maintenance.rescue_once(Some(late)).await.unwrap(), 1);
    assert_eq!(
        db.store.job_get(t, job.id).await.unwrap().state,
        JobState::Retryable
    );
    db.assert_running_counts_agree().await;
}

#[tokio::test]
async fn the_factory_writes_a_job_in_every_state_with_counters_that_agree() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    for state in JobState::ALL {
        let id = spool_tests::factory::job_in(&db.store, t, state).await;
        let job = db.store.job_get(t, id).await.unwrap();
        assert_eq!(job.state, state, "{job:?}");
    }
    let counts = db.store.queue_counts().await.unwrap();
    for state in JobState::ALL {
        let n: i64 = counts
            .iter()
            .filter(|c| c.tenant_id == t && c.state == state)
            .map(|c| c.n)
            .sum();
        assert_eq!(n, 1, "one job {state:?} in the counters: {counts:?}");
    }
    db.assert_running_counts_agree().await;
}
