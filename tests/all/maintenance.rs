//! Maintenance: counters kept right, history dropped by partition, done-records pruned but
//! never while their job is pending, and one leader at a time.

use std::time::Duration;

use serde_json::json;
use spool::maintenance::{Maintenance, MaintenanceConfig};
use spool::model::{ErrorKind, JobState, NewJob};
use spool::store::Failure;
use spool_tests::db::test_db;
use spool_tests::factory::{success, tenant};

const LEASE: Duration = Duration::from_secs(10);

fn maintenance(store: &spool::store::Store, retention: Duration) -> Maintenance {
    Maintenance::new(
        MaintenanceConfig {
            history_retention: retention,
            idempotency_retention: retention,
            ..MaintenanceConfig::default()
        },
        store.clone(),
    )
}

#[tokio::test]
async fn counters_follow_every_transition() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 100).await;
    let jobs: Vec<NewJob> = (0..6).map(|i| NewJob::json("h", &json!(i))).collect();
    db.store.job_enqueue_many(t, &jobs, None).await.unwrap();
    let claimed = db
        .store
        .job_claim("default", 4, "w", LEASE, None)
        .await
        .unwrap();
    let done = success(&claimed[0], "");
    let fail = |i: usize, kind: ErrorKind, delay: Option<Duration>| Failure {
        tenant_id: t,
        id: claimed[i].id,
        run_lease: claimed[i].run_lease,
        attempt: 1,
        kind,
        message: "x".into(),
        logs: json!([]),
        retry_delay: delay,
    };
    db.store
        .job_finish_many(
            &[done],
            &[
                fail(1, ErrorKind::Error, Some(Duration::from_secs(60))),
                fail(2, ErrorKind::Permanent, None),
            ],
            None,
        )
        .await
        .unwrap();
    let m = maintenance(&db.store, Duration::from_secs(86_400));
    assert!(m.fold_once().await.unwrap() > 0);
    let counts = db.store.queue_counts().await.unwrap();
    let n = |state: JobState| counts.iter().find(|c| c.state == state).map_or(0, |c| c.n);
    assert_eq!(n(JobState::Available), 2);
    assert_eq!(n(JobState::Running), 1);
    assert_eq!(n(JobState::Retryable), 1);
    assert_eq!(n(JobState::Completed), 1);
    assert_eq!(n(JobState::Dead), 1);
    // Folding again changes nothing; unfolded deltas are counted too.
    db.store
        .job_cancel(
            t,
            db.store
                .job_ids_in_state(t, JobState::Available, 1)
                .await
                .unwrap()[0],
        )
        .await
        .unwrap();
    let counts = db.store.queue_counts().await.unwrap();
    let n = |state: JobState| counts.iter().find(|c| c.state == state).map_or(0, |c| c.n);
    assert_eq!(n(JobState::Available), 1);
    assert_eq!(n(JobState::Cancelled), 1);
    db.assert_running_counts_agree().await;
}

/// Jobs a worker claimed and never started go back as they were: available, no attempt
/// charged, off the running count, counted as available again; a job finished since is left.
#[tokio::test]
async fn claimed_jobs_given_back_unstarted_are_available_again_and_uncharged() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 100).await;
    let jobs: Vec<NewJob> = (0..3).map(|i| NewJob::json("h", &json!(i))).collect();
    db.store.job_enqueue_many(t, &jobs, None).await.unwrap();
    let claimed = db
        .store
        .job_claim("default", 3, "w", LEASE, None)
        .await
        .unwrap();
    db.store
        .job_finish_many(&[success(&claimed[0], "")], &[], None)
        .await
        .unwrap();
    let given: Vec<(i64, uuid::Uuid, uuid::Uuid)> = claimed
        .iter()
        .map(|j| (j.tenant_id, j.id, j.run_lease))
        .collect();
    let mut released = db.store.job_release_many(&given).await.unwrap();
    released.sort();
    let mut expected = vec![claimed[1].id, claimed[2].id];
    expected.sort();
    assert_eq!(released, expected, "the finished job is not given back");
    for job in &claimed[1..] {
        let after = db.store.job_get(t, job.id).await.unwrap();
        assert_eq!((after.state, after.attempt), (JobState::Available, 0));
    }
    db.assert_running_counts_agree().await;
    let counts = db.store.queue_counts().await.unwrap();
    let n = |state: JobState| counts.iter().find(|c| c.state == state).map_or(0, |c| c.n);
    assert_eq!(
        (n(JobState::Available), n(JobState::Running)),
        (2, 0),
        "{counts:?}"
    );
    // Given back twice: the lease is gone, nothing changes.
    assert!(db.store.job_release_many(&given).await.unwrap().is_empty());
    let again = db
        .store
        .job_claim("default", 3, "w", LEASE, None)
        .await
        .unwrap();
    assert_eq!(again.len(), 2, "both are claimed again");
    assert!(again.iter().all(|j| j.attempt == 1), "{again:?}");
}

/// The vacuumer leaves a quiet hot table alone, and vacuums it once claims and finishes have
/// left the dead rows it waits for.
#[tokio::test]
async fn the_hot_table_is_vacuumed_once_it_has_churned() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 1_000).await;
    let m = Maintenance::new(
        MaintenanceConfig {
            vacuum_min_dead: 500,
            ..MaintenanceConfig::default()
        },
        db.store.clone(),
    );
    assert_eq!(
        m.vacuum_once().await.unwrap(),
        (0, false),
        "nothing to vacuum yet"
    );
    let jobs: Vec<NewJob> = (0..400).map(|i| NewJob::json("h", &json!(i))).collect();
    db.store.job_enqueue_many(t, &jobs, None).await.unwrap();
    let claimed = db
        .store
        .job_claim("default", 400, "w", LEASE, None)
        .await
        .unwrap();
    let done: Vec<_> = claimed.iter().map(|j| success(j, "")).collect();
    db.store.job_finish_many(&done, &[], None).await.unwrap();
    // Each job left two dead versions (the claim's update, the finish's delete); the server
    // publishes its statistics within a second or so.
    let (dead, vacuumed) = spool_tests::eventually(
        "the vacuumer to vacuum the churned table",
        Duration::from_secs(30),
        || async {
            match m.vacuum_once().await.unwrap() {
                (dead, true) => Ok((dead, true)),
                (dead, false) => Err(format!("{dead} dead rows seen")),
            }
        },
    )
    .await;
    assert!(vacuumed && dead >= 500, "{dead}");
    let (after, vacuumed) = m.vacuum_once().await.unwrap();
    assert!(
        !vacuumed && after < 500,
        "the vacuum left {after} dead rows behind"
    );
}

#[tokio::test]
async fn old_history_goes_by_whole_partitions() {
    let db = test_db().await;
    let m = maintenance(&db.store, Duration::from_secs(7 * 86_400));
    let (created, _, _) = m.prune_once().await.unwrap();
    assert_eq!(
        created, 0,
        "the migration made today's and three days ahead"
    );
    db.store
        .admin_execute(
            "CREATE TABLE spool.job_history_20200101 PARTITION OF spool.job_history
             FOR VALUES FROM ('2020-01-01 00:00+00') TO ('2020-01-02 00:00+00')",
        )
        .await
        .unwrap();
    let (created, dropped, _) = m.prune_once().await.unwrap();
    assert_eq!((created, dropped), (0, 1));
}

// Review finding L4: history dropped past its retention stayed in the queue counters (and in
// the dead-letter figures) for ever.
#[tokio::test]
async fn history_past_its_retention_leaves_the_counters_with_what_it_held() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 100).await;
    let jobs: Vec<NewJob> = (0..6).map(|i| NewJob::json("h", &json!(i))).collect();
    let ids = db.store.job_enqueue_many(t, &jobs, None).await.unwrap();
    db.store.job_cancel(t, ids[5].id).await.unwrap();
    let claimed = db
        .store
        .job_claim("default", 4, "w", LEASE, None)
        .await
        .unwrap();
    let dead = |i: usize| Failure {
        tenant_id: t,
        id: claimed[i].id,
        run_lease: claimed[i].run_lease,
        attempt: 1,
        kind: ErrorKind::Permanent,
        message: "x".into(),
        logs: json!([]),
        retry_delay: None,
    };
    db.store
        .job_finish_many(
            &[success(&claimed[0], "")],
            &[dead(1), dead(2), dead(3)],
            None,
        )
        .await
        .unwrap();
    // One completed and one dead job finished on a day that has a partition of its own, one
    // dead and the cancelled job on days that have none (the default partition), long ago.
    db.store
        .admin_execute(
            "CREATE TABLE spool.job_history_20200101 PARTITION OF spool.job_history
             FOR VALUES FROM ('2020-01-01 00:00+00') TO ('2020-01-02 00:00+00')",
        )
        .await
        .unwrap();
    let age = |id: uuid::Uuid, at: &str| {
        format!("UPDATE spool.job_history SET finished_at = '{at}' WHERE id = '{id}'")
    };
    for sql in [
        age(claimed[0].id, "2020-01-01 10:00+00"),
        age(claimed[1].id, "2020-01-01 11:00+00"),
        age(claimed[2].id, "2019-06-01 12:00+00"),
        age(ids[5].id, "2019-06-01 13:00+00"),
    ] {
        db.store.admin_execute(&sql).await.unwrap();
    }
    let m = maintenance(&db.store, Duration::from_secs(14 * 86_400));
    m.fold_once().await.unwrap();
    let count = |counts: &[spool::store::QueueCount], state: JobState| {
        counts.iter().find(|c| c.state == state).map_or(0, |c| c.n)
    };
    let before = db.store.queue_counts().await.unwrap();
    assert_eq!(
        [
            JobState::Completed,
            JobState::Dead,
            JobState::Cancelled,
            JobState::Available
        ]
        .map(|s| count(&before, s)),
        [1, 3, 1, 1]
    );

    let (_, dropped, _) = m.prune_once().await.unwrap();
    assert_eq!(dropped, 1, "the 2020-01-01 partition");
    for counts in [db.store.queue_counts().await.unwrap(), {
        m.fold_once().await.unwrap();
        db.store.queue_counts().await.unwrap()
    }] {
        assert_eq!(
            [
                JobState::Completed,
                JobState::Dead,
                JobState::Cancelled,
                JobState::Available
            ]
            .map(|s| count(&counts, s)),
            [0, 1, 0, 1],
            "only the recent dead letter and the available job are left: {counts:?}"
        );
    }
    // A second pass has nothing more to take off.
    assert_eq!(m.prune_once().await.unwrap().1, 0);
    m.fold_once().await.unwrap();
    assert_eq!(
        count(&db.store.queue_counts().await.unwrap(), JobState::Dead),
        1
    );
}

// A pass that detached an expired partition but failed before dropping it: the next one
// drops it and uncounts its jobs, once.
#[tokio::test]
async fn a_partition_detached_but_not_dropped_is_dropped_by_the_next_pass() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 100).await;
    let job = spool_tests::factory::claimed(&db.store, t, NewJob::json("h", &json!(1))).await;
    db.store
        .job_finish_many(&[success(&job, "")], &[], None)
        .await
        .unwrap();
    db.store
        .admin_execute(
            "CREATE TABLE spool.job_history_20200101 PARTITION OF spool.job_history
             FOR VALUES FROM ('2020-01-01 00:00+00') TO ('2020-01-02 00:00+00');
             UPDATE spool.job_history SET finished_at = '2020-01-01 10:00+00';
             SELECT spool.history_partitions(3, 86400000)",
        )
        .await
        .unwrap();
    let m = maintenance(&db.store, Duration::from_secs(86_400));
    m.fold_once().await.unwrap();
    let completed = |counts: Vec<spool::store::QueueCount>| {
        counts
            .iter()
            .find(|c| c.state == JobState::Completed)
            .map_or(0, |c| c.n)
    };
    assert_eq!(
        completed(db.store.queue_counts().await.unwrap()),
        1,
        "detached, not yet uncounted"
    );
    let (_, dropped, _) = m.prune_once().await.unwrap();
    assert_eq!(dropped, 1);
    m.fold_once().await.unwrap();
    assert_eq!(completed(db.store.queue_counts().await.unwrap()), 0);
}

#[tokio::test]
async fn done_records_are_pruned_but_never_a_pending_jobs_key() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 100).await;
    let mut a = NewJob::json("h", &json!("a"));
    a.idempotency_key = Some("done-key".into());
    let mut b = NewJob::json("h", &json!("b"));
    b.idempotency_key = Some("pending-key".into());
    db.store
        .job_enqueue_many(t, &[a.clone()], None)
        .await
        .unwrap();
    let claimed = db
        .store
        .job_claim("default", 1, "w", LEASE, None)
        .await
        .unwrap();
    let done = success(&claimed[0], "");
    db.store.job_finish_many(&[done], &[], None).await.unwrap();
    db.store
        .job_enqueue_many(t, &[b.clone()], None)
        .await
        .unwrap();

    let m = maintenance(&db.store, Duration::ZERO);
    let (_, _, pruned) = m.prune_once().await.unwrap();
    assert_eq!(pruned, 1, "only the done-record");
    // The pending job's key still deduplicates; the pruned key is free again.
    let again = db.store.job_enqueue_many(t, &[b, a], None).await.unwrap();
    assert!(again[0].duplicate);
    assert!(!again[1].duplicate && !again[1].conflict);
}

/// What the statistics say about reads of `spool.idempotency` so far: (sequential scans, rows
/// fetched by index scans). `store` must have a single connection, the one whose statistics
/// are flushed here.
async fn idempotency_reads(store: &spool::store::Store, pool: &sqlx::PgPool) -> (i64, i64) {
    store
        .admin_execute("SELECT pg_stat_force_next_flush()")
        .await
        .unwrap();
    sqlx::query_as(
        "SELECT seq_scan, coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables
         WHERE relid = 'spool.idempotency'::regclass",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

// Review finding L5: the prune's `coalesce(done_at, created_at) < ...` could use no index, so
// every batch read the whole table.
#[tokio::test]
async fn a_large_prune_walks_indexes_and_reads_about_what_it_deletes() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 100).await;
    // Old done-records, old keys of jobs that never completed, recent rows of both kinds, and
    // old keys of jobs still pending.
    db.store
        .admin_execute(&format!(
            "INSERT INTO spool.idempotency (tenant_id, key, job_id, payload_hash, created_at, done_at)
             SELECT {t}, 'done-' || g, gen_random_uuid(), '\\x00', now() - interval '30 days',
                    now() - interval '20 days' + g * interval '1 second'
             FROM generate_series(1, 20000) g;
             INSERT INTO spool.idempotency (tenant_id, key, job_id, payload_hash, created_at)
             SELECT {t}, 'dead-' || g, gen_random_uuid(), '\\x00',
                    now() - interval '20 days' + g * interval '1 second'
             FROM generate_series(1, 20000) g;
             INSERT INTO spool.idempotency (tenant_id, key, job_id, payload_hash, created_at, done_at)
             SELECT {t}, 'new-' || g, gen_random_uuid(), '\\x00', now(),
                    CASE WHEN g % 2 = 0 THEN now() END
             FROM generate_series(1, 10000) g;"
        ))
        .await
        .unwrap();
    let pending: Vec<NewJob> = (0..50)
        .map(|i| {
            let mut job = NewJob::json("h", &json!(i));
            job.idempotency_key = Some(format!("pending-{i}"));
            job
        })
        .collect();
    db.store.job_enqueue_many(t, &pending, None).await.unwrap();
    db.store
        .admin_execute(
            "UPDATE spool.idempotency SET created_at = now() - interval '30 days'
             WHERE key LIKE 'pending-%';
             ANALYZE spool.idempotency",
        )
        .await
        .unwrap();

    let store = spool::store::Store::connect(&db.url, 1).await.unwrap();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (seq_before, fetched_before) = idempotency_reads(&store, &pool).await;
    let (batch, mut pruned, mut batches) = (1000, 0, 0);
    loop {
        let n = store
            .idempotency_prune(Duration::from_secs(7 * 86_400), batch)
            .await
            .unwrap();
        pruned += n;
        batches += 1;
        if n < u64::from(batch) {
            break;
        }
    }
    let (seq_after, fetched_after) = idempotency_reads(&store, &pool).await;
    assert_eq!(pruned, 40_000);
    assert_eq!(seq_after - seq_before, 0, "no batch scanned the table");
    // Each batch reads the rows it deletes, and passes over the pending jobs' old keys.
    let fetched = fetched_after - fetched_before;
    assert!(
        fetched <= 40_000 + batches * 2 * (50 + 10),
        "{fetched} rows read over {batches} batches to prune 40000"
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM spool.idempotency")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 10_050, "the recent rows and the pending jobs' keys");
    pool.close().await;
    store.close().await;
}

/// Makes a dead job with idempotency key `key`, its key row first used long ago.
async fn dead_job_with_an_old_key(store: &spool::store::Store, t: i64, key: &str) -> uuid::Uuid {
    let mut job = NewJob::json("h", &json!({ "key": key }));
    job.idempotency_key = Some(key.into());
    let job = spool_tests::factory::claimed(store, t, job).await;
    store
        .job_finish_many(
            &[],
            &[Failure {
                tenant_id: t,
                id: job.id,
                run_lease: job.run_lease,
                attempt: 1,
                kind: ErrorKind::Permanent,
                message: "x".into(),
                logs: json!([]),
                retry_delay: None,
            }],
            None,
        )
        .await
        .unwrap();
    store
        .admin_execute(&format!(
            "UPDATE spool.idempotency SET created_at = now() - interval '30 days'
             WHERE key = '{key}'"
        ))
        .await
        .unwrap();
    job.id
}

/// Asserts that enqueueing `key` again finds job `id`, and that it is the only job with that
/// key.
async fn key_is_held_by(db: &spool_tests::db::TestDb, t: i64, key: &str, id: uuid::Uuid) {
    let mut again = NewJob::json("h", &json!({ "key": key }));
    again.idempotency_key = Some(key.into());
    let enqueued = db.store.job_enqueue_many(t, &[again], None).await.unwrap();
    assert!(
        enqueued[0].duplicate,
        "the key still leads to the requeued job"
    );
    assert_eq!(enqueued[0].id, id);
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let jobs: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM spool.jobs WHERE idempotency_key = $1)
              + (SELECT count(*) FROM spool.job_history WHERE idempotency_key = $1)",
    )
    .bind(key)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(jobs, 1, "one job per key");
    pool.close().await;
}

// Review finding L5: the prune could delete the key of a dead job being retried at that moment,
// and enqueueing the key again made a second job. Here the retry holds the key row first.
#[tokio::test]
async fn a_prune_during_a_retry_leaves_the_requeued_jobs_key() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 100).await;
    let id = dead_job_with_an_old_key(&db.store, t, "k").await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();

    let mut retry = pool.begin().await.unwrap();
    let requeued: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT job_id FROM spool.retry_many($1, $2)")
            .bind(t)
            .bind(vec![id])
            .fetch_all(&mut *retry)
            .await
            .unwrap();
    assert_eq!(requeued, [id]);
    let pruned = tokio::time::timeout(
        Duration::from_secs(5),
        db.store
            .idempotency_prune(Duration::from_secs(7 * 86_400), 1000),
    )
    .await
    .expect("the prune does not wait for the retry")
    .unwrap();
    assert_eq!(pruned, 0, "the key row the retry holds is left alone");
    retry.commit().await.unwrap();
    assert_eq!(
        db.store
            .idempotency_prune(Duration::from_secs(7 * 86_400), 1000)
            .await
            .unwrap(),
        0,
        "the requeued job's key is renewed"
    );
    key_is_held_by(&db, t, "k", id).await;
    pool.close().await;
}

// The same race the other way round: the prune deletes the key row first, and the retry, which
// waits for it, makes the row again.
#[tokio::test]
async fn a_retry_during_a_prune_makes_the_requeued_jobs_key_again() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 100).await;
    let id = dead_job_with_an_old_key(&db.store, t, "k").await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();

    let mut prune = pool.begin().await.unwrap();
    let pruned: i32 = sqlx::query_scalar("SELECT spool.idempotency_prune($1, $2)")
        .bind(7 * 86_400_000_i64)
        .bind(1000)
        .fetch_one(&mut *prune)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let store = db.store.clone();
    let retry = tokio::spawn(async move { store.job_retry_many(t, &[id]).await });
    // Let the retry reach the key row the prune holds (or finish, if it never waits).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting > 0 || retry.is_finished() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the retry never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    prune.commit().await.unwrap();
    assert_eq!(retry.await.unwrap().unwrap(), [id]);
    key_is_held_by(&db, t, "k", id).await;
    pool.close().await;
}

#[tokio::test]
async fn one_leader_at_a_time_until_its_lease_lapses() {
    let db = test_db().await;
    let ttl = Duration::from_millis(300);
    assert!(
        db.store
            .lease_acquire("maintenance", "a", ttl)
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .lease_acquire("maintenance", "b", ttl)
            .await
            .unwrap()
    );
    assert!(
        db.store
            .lease_acquire("maintenance", "a", ttl)
            .await
            .unwrap(),
        "renewal"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !db
        .store
        .lease_acquire("maintenance", "b", ttl)
        .await
        .unwrap()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the lapsed lease was never taken over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !db.store
            .lease_acquire("maintenance", "a", ttl)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn throughput_older_than_history_is_dropped() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 100).await;
    db.store
        .admin_execute(&format!(
            "INSERT INTO spool.queue_minutes (tenant_id, queue, minute, completed)
             VALUES ({t}, 'default', now() - interval '30 days', 5),
                    ({t}, 'default', date_trunc('minute', now()), 7)"
        ))
        .await
        .unwrap();
    maintenance(&db.store, Duration::from_secs(7 * 86_400))
        .prune_once()
        .await
        .unwrap();
    let stats = db
        .store
        .queue_stats(Some(t), Duration::from_secs(40 * 86_400))
        .await
        .unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].completed, 7, "only the recent minute is left");
}

/// A running count that drifted from the jobs running (here: set off by hand) is set back by
/// the reconciler, and one that is right is left alone.
#[tokio::test]
async fn a_drifted_running_count_is_set_back_to_the_jobs_running() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 100).await;
    let other = tenant(&db.store, "other", 100).await;
    let jobs: Vec<NewJob> = (0..5).map(|i| NewJob::json("h", &json!(i))).collect();
    db.store.job_enqueue_many(t, &jobs, None).await.unwrap();
    db.store.job_enqueue_many(other, &jobs, None).await.unwrap();
    let claimed = db
        .store
        .job_claim("default", 10, "w", LEASE, None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 10);
    let mine: Vec<_> = claimed.iter().filter(|j| j.tenant_id == t).collect();
    db.store
        .job_finish_many(&[success(mine[0], "")], &[], None)
        .await
        .unwrap();
    db.store
        .admin_execute(&format!(
            "INSERT INTO spool.running_counts (tenant_id, stripe, n) VALUES ({t}, 7, 3)
             ON CONFLICT (tenant_id, stripe) DO UPDATE SET n = spool.running_counts.n + 3"
        ))
        .await
        .unwrap();
    let m = maintenance(&db.store, Duration::from_secs(86_400));
    assert_eq!(
        m.reconcile_once().await.unwrap(),
        1,
        "only acme's count was off"
    );
    db.assert_running_counts_agree().await;
    assert_eq!(m.reconcile_once().await.unwrap(), 0, "and now it is right");
    // Counted on from there: finishing the rest takes acme's count to zero, as its jobs are.
    db.store
        .job_finish_many(
            &mine[1..].iter().map(|j| success(j, "")).collect::<Vec<_>>(),
            &[],
            None,
        )
        .await
        .unwrap();
    db.assert_running_counts_agree().await;
}
