//! Hot keys: many jobs bumping a few shared counters. A lost race on a store key is not the
//! job's failure: it runs again promptly, is not charged an attempt, and the counters stay
//! exact; `add` never conflicts at all. Components built against the contract before `add`
//! keep working.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spool::model::{JobState, NewJob, TenantLimitSpec};
use spool::store::{CompletionStatus, Store};
use spool_tests::background::{self, Background};
use spool_tests::db::{TestDb, test_db};
use spool_tests::factory::{claimed, enqueue, put_handler, success};
use spool_tests::test_runtime;
use uuid::Uuid;

const COUNTERS: u64 = 16;

/// Jobs per workload: `SPOOL_HOT_KEYS_JOBS`, or 2,000 (the figures, with 10,000, are
/// in the closing note: `SPOOL_HOT_KEYS_JOBS=10000 cargo test ... hot_keys -- --nocapture`).
fn jobs() -> usize {
    std::env::var("SPOOL_HOT_KEYS_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000)
}

/// Creates tenant `name` with `hostile` and `noop` (`hello`) handlers and `limits`.
async fn tenant(store: &Store, name: &str, limits: TenantLimitSpec) -> i64 {
    let id = store
        .tenant_create(name, &limits, None)
        .await
        .expect("creating a tenant")
        .id;
    put_handler(store, id, "hostile").await;
    let bytes = spool_tests::component("hello");
    let digest = spool::runtime::cache::digest(&bytes);
    store
        .handler_put(id, "noop", &digest, &bytes)
        .await
        .unwrap();
    id
}

/// Enqueues `n` jobs running `action` on one of the counters in turn, with `max_attempts` 3.
async fn enqueue_bumps(store: &Store, tenant: i64, action: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
        let jobs: Vec<NewJob> = chunk
            .iter()
            .map(|i| {
                let mut job = NewJob::json(
                    "hostile",
                    &json!({"action": action, "copies": *i as u64 % COUNTERS}),
                );
                job.max_attempts = Some(3);
                job
            })
            .collect();
        enqueue(store, tenant, &jobs).await;
    }
}

/// Runs `workers` workers until the tenant has nothing pending; returns how long it took.
async fn drain(db: &TestDb, tenant: i64, workers: usize) -> Duration {
    let started = Instant::now();
    let mut running = Background::default();
    for _ in 0..workers {
        running.worker(&db.store, test_runtime(), background::Config::default());
    }
    let deadline = started + Duration::from_secs(600);
    while db.store.tenant_pending(tenant).await.unwrap() > 0 {
        assert!(
            Instant::now() < deadline,
            "the hot-key workload never drained"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    running.stop().await;
    took
}

/// Returns one figure from the database.
async fn scalar(db: &TestDb, sql: &str, tenant: i64) -> i64 {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql)
        .bind(tenant)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// Checks the workload's end: every job and follow-up completed, none dead, the counters sum
/// to the jobs; returns the races lost.
async fn check_exact(db: &TestDb, tenant: i64) -> i64 {
    let counted = scalar(
        db,
        "SELECT coalesce(sum(convert_from(value, 'UTF8')::bigint), 0)::bigint FROM spool.kv \
         WHERE tenant_id = $1 AND key LIKE 'hot/%'",
        tenant,
    )
    .await;
    assert_eq!(counted, jobs() as i64, "the counters sum to the jobs");
    let completed = scalar(
        db,
        "SELECT count(*) FROM spool.job_history WHERE tenant_id = $1 AND state = 'completed'",
        tenant,
    )
    .await;
    assert_eq!(
        completed,
        2 * jobs() as i64,
        "every job and its follow-up completed"
    );
    let dead = scalar(
        db,
        "SELECT count(*) FROM spool.job_history WHERE tenant_id = $1 AND state <> 'completed'",
        tenant,
    )
    .await;
    assert_eq!(dead, 0, "nothing dead-lettered");
    let charged = scalar(
        db,
        "SELECT count(*) FROM spool.job_history WHERE tenant_id = $1 AND attempt <> 1",
        tenant,
    )
    .await;
    assert_eq!(charged, 0, "no job was charged an attempt for a race");
    db.assert_running_counts_agree().await;
    scalar(
        db,
        "SELECT coalesce(sum(conflicts), 0)::bigint FROM spool.job_history WHERE tenant_id = $1",
        tenant,
    )
    .await
}

async fn hot_counters(workers: usize, action: &str) -> (Duration, i64) {
    let db = test_db().await;
    let t = tenant(&db.store, "hot", TenantLimitSpec::default()).await;
    enqueue_bumps(&db.store, t, action, jobs()).await;
    let took = drain(&db, t, workers).await;
    let conflicts = check_exact(&db, t).await;
    eprintln!(
        "{} jobs ({action}) on {COUNTERS} counters, {workers} worker(s): drained in \
         {took:?}, {conflicts} races lost",
        jobs()
    );
    (took, conflicts)
}

#[tokio::test]
async fn read_modify_writes_on_hot_counters_all_complete_on_one_worker() {
    let (_, conflicts) = hot_counters(1, "bump").await;
    assert!(conflicts > 0, "the workload is meant to contend");
}

#[tokio::test]
async fn read_modify_writes_on_hot_counters_all_complete_on_two_workers() {
    let (_, conflicts) = hot_counters(2, "bump").await;
    assert!(conflicts > 0, "the workload is meant to contend");
}

#[tokio::test]
async fn adds_to_hot_counters_never_conflict() {
    let (_, conflicts) = hot_counters(2, "bump-add").await;
    assert_eq!(conflicts, 0);
}

/// Runs a slow read-modify-write of `hot/0` for `tenant` and, while it sleeps between its read
/// and its write, a quick one that wins the race; returns the slow job once it is finished.
async fn lose_one_race(db: &TestDb, tenant: i64) -> spool::model::Job {
    let mut slow = NewJob::json("hostile", &json!({"action": "bump", "sleep_ms": 1500}));
    slow.max_attempts = Some(2);
    slow.backoff = Some((Duration::from_millis(10), Duration::from_millis(10)));
    let slow = enqueue(&db.store, tenant, &[slow]).await[0];
    let running = Background::start(&db.store, test_runtime(), background::Config::default());
    wait_state(&db.store, tenant, slow, |s| s == JobState::Running).await;
    // It too reads first and writes 300 ms later, so it commits well after the slow job read.
    let quick = NewJob::json("hostile", &json!({"action": "bump", "sleep_ms": 300}));
    let quick = enqueue(&db.store, tenant, &[quick]).await[0];
    wait_state(&db.store, tenant, quick, |s| s == JobState::Completed).await;
    let job = wait_state(&db.store, tenant, slow, JobState::is_finished).await;
    running.stop().await;
    job
}

async fn wait_state(
    store: &Store,
    tenant: i64,
    id: Uuid,
    done: impl Fn(JobState) -> bool,
) -> spool::model::Job {
    let done = &done;
    spool_tests::eventually(
        &format!("job {id} moves on"),
        Duration::from_secs(60),
        || async move {
            let job = store.job_get(tenant, id).await.unwrap();
            if done(job.state) {
                Ok(job)
            } else {
                Err(format!("{:?}", job.state))
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_lost_race_runs_the_job_again_without_charging_an_attempt() {
    let db = test_db().await;
    let t = tenant(&db.store, "racer", TenantLimitSpec::default()).await;
    let job = lose_one_race(&db, t).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.attempt, 1, "the race cost no attempt");
    assert_eq!(job.conflicts, 1);
    assert_eq!(job.errors.len(), 1);
    assert_eq!(job.errors[0].kind, "conflict");
    let (value, _) = db.store.kv(t).get("hot/0").await.unwrap().unwrap();
    assert_eq!(value, b"2", "both bumps counted once");
}

#[tokio::test]
async fn past_its_conflict_bound_a_lost_race_is_an_ordinary_commit_failure() {
    let db = test_db().await;
    let limits = TenantLimitSpec {
        max_conflicts: Some(0),
        ..TenantLimitSpec::default()
    };
    let t = tenant(&db.store, "unlucky", limits).await;
    let job = lose_one_race(&db, t).await;
    // Retried as a failure of kind commit, charged an attempt; the second attempt wins.
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.attempt, 2);
    assert_eq!(job.conflicts, 0);
    assert_eq!(job.errors[0].kind, "commit", "{job:?}");
    assert!(job.errors[0].message.contains("lost more races"), "{job:?}");
}

#[tokio::test]
async fn a_component_built_against_the_previous_contract_still_runs() {
    let db = test_db().await;
    let t = db
        .store
        .tenant_create("legacy", &TenantLimitSpec::default(), None)
        .await
        .unwrap()
        .id;
    put_handler(&db.store, t, "contract-0-1-0").await;
    let jobs = vec![NewJob::json("contract-0-1-0", &json!({})); 2];
    let ids = enqueue(&db.store, t, &jobs).await;
    let running = Background::start(&db.store, test_runtime(), background::Config::default());
    let mut counts = Vec::new();
    for id in ids {
        let job = wait_state(&db.store, t, id, JobState::is_finished).await;
        assert_eq!(job.state, JobState::Completed, "{job:?}");
        let result: Value = serde_json::from_slice(job.result.as_ref().unwrap()).unwrap();
        counts.push(result["count"].as_u64().unwrap());
    }
    running.stop().await;
    counts.sort_unstable();
    assert_eq!(counts, [1, 2]);
}

/// A completion of `job` that puts `value` under `key` (a blind write).
fn writing(job: &spool::model::ClaimedJob, key: &str, value: &str) -> spool::store::Completion {
    let mut completion = success(job, "{}");
    completion.store_writes = vec![spool::model::StoreWrite {
        key: key.to_string(),
        op: spool::model::WriteOp::Put(value.as_bytes().to_vec()),
        expected: None,
    }];
    completion
}

/// A lock cycle (40P01) between a group commit and another transaction costs the job caught in
/// it one prompt re-run, like a lost race, and nothing else: the other jobs of the batch,
/// another tenant's among them, commit.
#[tokio::test]
async fn a_deadlock_in_a_group_commit_reruns_only_the_job_caught_in_it() {
    let db = test_db().await;
    let store = &db.store;
    let victim = tenant(store, "cycle", TenantLimitSpec::default()).await;
    let other = tenant(store, "bystander", TenantLimitSpec::default()).await;
    let ok = || NewJob::json("hostile", &json!({"action": "ok"}));
    let caught = claimed(store, victim, ok()).await;
    let plain = claimed(store, other, ok()).await;
    let writer = claimed(store, other, ok()).await;

    // Another transaction holds the victim's store-quota row, which a commit that writes to
    // the victim's store locks first.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO spool.kv_usage (tenant_id, bytes) VALUES ($1, 0) ON CONFLICT DO NOTHING",
    )
    .bind(victim)
    .execute(&pool)
    .await
    .unwrap();
    let mut blocker = pool.begin().await.unwrap();
    // Only the group commit looks for the cycle, so it is the one PostgreSQL cancels.
    sqlx::query("SET LOCAL deadlock_timeout = '1h'")
        .execute(&mut *blocker)
        .await
        .unwrap();
    sqlx::query("SELECT 1 FROM spool.kv_usage WHERE tenant_id = $1 FOR UPDATE")
        .bind(victim)
        .execute(&mut *blocker)
        .await
        .unwrap();

    let batch = vec![
        writing(&caught, "k", "caught"),
        success(&plain, "{}"),
        writing(&writer, "k", "bystander"),
    ];
    let commit = tokio::spawn({
        let store = store.clone();
        async move { store.job_finish_many(&batch, &[], None).await }
    });
    // The commit has locked the caught job's row and now waits for the quota row.
    let pool_ref = &pool;
    spool_tests::eventually(
        "the group commit waits",
        Duration::from_secs(30),
        || async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(pool_ref)
            .await
            .unwrap();
            if waiting > 0 {
                Ok(())
            } else {
                Err("no session waits for a lock")
            }
        },
    )
    .await;
    // Closing the cycle: the other transaction now wants the job's row. It gets it once
    // PostgreSQL has cancelled the commit's part for the caught job.
    sqlx::query("SELECT 1 FROM spool.jobs WHERE tenant_id = $1 AND id = $2 FOR UPDATE")
        .bind(victim)
        .bind(caught.id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    blocker.rollback().await.unwrap();

    let statuses = commit.await.unwrap().expect("the batch commits");
    assert_eq!(
        statuses,
        [
            CompletionStatus::Conflict,
            CompletionStatus::Completed,
            CompletionStatus::Completed
        ],
        "only the caught job is put back"
    );
    let job = store.job_get(victim, caught.id).await.unwrap();
    assert_eq!(job.state, JobState::Retryable, "the caught job runs again");
    assert_eq!(job.attempt, 0, "the cycle is not charged as an attempt");
    assert_eq!(job.conflicts, 1);
    let last = job.errors.last().expect("the conflict is noted");
    assert_eq!(last.kind, "conflict");
    assert!(
        last.message.contains("deadlock"),
        "the note says why: {}",
        last.message
    );
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT value FROM spool.kv WHERE tenant_id = $1 AND key = 'k'")
            .bind(other)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, b"bystander", "the other tenant's write committed");
    let none: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT value FROM spool.kv WHERE tenant_id = $1 AND key = 'k'")
            .bind(victim)
            .fetch_optional(&pool)
            .await
            .unwrap();
    assert_eq!(none, None, "the caught job's write did not");
    pool.close().await;
}
