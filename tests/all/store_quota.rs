//! The store quota (`max_store_bytes`) is hard: each tenant's store bytes are counted when a
//! commit writes, exactly, and no commit takes a store past its quota, however many attempts
//! commit at once.

use std::time::Duration;

use serde_json::json;
use spool::model::{Expected, NewJob, StoreWrite, TenantLimitSpec, TenantLimits, WriteOp};
use spool::store::{Completion, CompletionStatus, Store};
use spool_tests::db::{TestDb, test_db};
use spool_tests::factory::success;

const LEASE: Duration = Duration::from_secs(30);

/// Creates tenant `name` with `max_store_bytes` (or the default), returning its id.
async fn tenant(store: &Store, name: &str, max_store_bytes: Option<u64>) -> i64 {
    store
        .tenant_create(
            name,
            &TenantLimitSpec {
                max_store_bytes,
                ..TenantLimitSpec::default()
            },
            None,
        )
        .await
        .unwrap()
        .id
}

/// Enqueues and claims `n` jobs of `tenant`.
async fn claim(store: &Store, tenant: i64, n: usize) -> Vec<spool::model::ClaimedJob> {
    let jobs: Vec<NewJob> = (0..n).map(|i| NewJob::json("h", &json!(i))).collect();
    store.job_enqueue_many(tenant, &jobs, None).await.unwrap();
    let claimed = store
        .job_claim("default", n as u32, "w", LEASE, None)
        .await
        .unwrap();
    assert_eq!(claimed.len(), n);
    claimed
}

fn put(key: &str, value: &[u8]) -> StoreWrite {
    StoreWrite {
        key: key.into(),
        op: WriteOp::Put(value.to_vec()),
        expected: None,
    }
}

fn with_writes(job: &spool::model::ClaimedJob, writes: Vec<StoreWrite>) -> Completion {
    Completion {
        store_writes: writes,
        ..success(job, "")
    }
}

/// Commits one job of `tenant` that makes `writes`, returning its status.
async fn commit(store: &Store, tenant: i64, writes: Vec<StoreWrite>) -> CompletionStatus {
    let job = claim(store, tenant, 1).await.remove(0);
    store
        .job_finish_many(&[with_writes(&job, writes)], &[], None)
        .await
        .unwrap()[0]
}

/// Returns (the tenant's counted store bytes, what its store holds).
async fn usage(db: &TestDb, tenant: i64) -> (i64, i64) {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let figures = sqlx::query_as(
        "SELECT coalesce((SELECT bytes FROM spool.kv_usage WHERE tenant_id = $1), 0),
                (SELECT coalesce(sum(octet_length(key) + octet_length(value)), 0)::bigint
                 FROM spool.kv WHERE tenant_id = $1)",
    )
    .bind(tenant)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    figures
}

// Review finding M6: each attempt was given the room a cached usage figure showed, so attempts
// committing at once took a tenant past its quota by up to max_running × 4 MiB.
#[tokio::test]
async fn concurrent_commits_near_the_quota_never_take_the_store_past_it() {
    let db = test_db().await;
    let quota = 10_000;
    let t = tenant(&db.store, "acme", Some(quota)).await;
    assert_eq!(
        commit(&db.store, t, vec![put("base", &[0; 6_000])]).await,
        CompletionStatus::Completed
    );
    // 39 attempts of 1,003 bytes each with 3,996 bytes of room: three fit.
    let jobs = claim(&db.store, t, 39).await;
    let commits: Vec<_> = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let store = db.store.clone();
            let completion = with_writes(job, vec![put(&format!("k{i:02}"), &[1; 1_000])]);
            tokio::spawn(async move { store.job_finish_many(&[completion], &[], None).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for commit in commits {
        statuses.push(commit.await.unwrap().unwrap()[0]);
    }
    let completed = statuses
        .iter()
        .filter(|s| **s == CompletionStatus::Completed)
        .count();
    assert_eq!(completed, 3, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, CompletionStatus::Completed | CompletionStatus::Quota)),
        "{statuses:?}"
    );
    let (counted, held) = usage(&db, t).await;
    assert_eq!(counted, held, "the count is exact");
    assert!(
        held <= quota as i64,
        "{held} bytes stored over a quota of {quota}"
    );
    assert_eq!(held, 6_004 + 3 * 1_003);

    for (job, status) in jobs.iter().zip(&statuses) {
        if *status == CompletionStatus::Quota {
            let failed = db.store.job_get(t, job.id).await.unwrap();
            let error = failed.errors.last().unwrap();
            assert_eq!(error.kind, "quota");
            assert!(
                error.message.contains("store quota exceeded"),
                "{}",
                error.message
            );
        }
    }
}

#[tokio::test]
async fn the_count_follows_puts_overwrites_adds_and_deletes() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", None).await;
    let other = tenant(&db.store, "other", None).await;
    let add = |key: &str, delta: i64| StoreWrite {
        key: key.into(),
        op: WriteOp::Add(delta),
        expected: None,
    };
    let steps: Vec<(i64, Vec<StoreWrite>)> = vec![
        (t, vec![put("a", b"0123456789"), put("b", b"x")]),
        (other, vec![put("a", b"someone else's")]),
        (t, vec![put("a", b"012")]),
        (
            t,
            vec![StoreWrite {
                key: "a".into(),
                op: WriteOp::Put(b"0123456".to_vec()),
                expected: Some(Expected::Version(2)),
            }],
        ),
        (t, vec![add("n", 9)]),
        (t, vec![add("n", 1), add("n", 90)]),
        (t, vec![add("n", -100)]),
        // The same key written twice by one attempt counts once.
        (t, vec![put("c", b"long value"), put("c", b"v")]),
        (
            t,
            vec![StoreWrite {
                key: "b".into(),
                op: WriteOp::Delete,
                expected: None,
            }],
        ),
        (
            t,
            vec![StoreWrite {
                key: "d".into(),
                op: WriteOp::Put(b"new".to_vec()),
                expected: Some(Expected::Absent),
            }],
        ),
        (
            t,
            vec![StoreWrite {
                key: "nothing".into(),
                op: WriteOp::Delete,
                expected: None,
            }],
        ),
    ];
    for (i, (tenant, writes)) in steps.into_iter().enumerate() {
        assert_eq!(
            commit(&db.store, tenant, writes).await,
            CompletionStatus::Completed,
            "step {i}"
        );
        for tenant in [t, other] {
            let (counted, held) = usage(&db, tenant).await;
            assert_eq!(counted, held, "step {i}, tenant {tenant}");
        }
    }
    // a: 1 + 7, n: 1 + 1 ("0"), c: 1 + 1, d: 1 + 3.
    assert_eq!(usage(&db, t).await, (16, 16));
    assert_eq!(db.store.kv_usage(t).await.unwrap(), 16);
}

#[tokio::test]
async fn a_commit_over_the_quota_fails_alone_and_one_that_frees_room_commits() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", Some(100)).await;
    let jobs = claim(&db.store, t, 3).await;
    let statuses = db
        .store
        .job_finish_many(
            &[
                with_writes(&jobs[0], vec![put("a", &[0; 79])]),
                with_writes(&jobs[1], vec![put("b", &[0; 49])]),
                success(&jobs[2], ""),
            ],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        statuses,
        [
            CompletionStatus::Completed,
            CompletionStatus::Quota,
            CompletionStatus::Completed
        ]
    );
    assert_eq!(usage(&db, t).await, (80, 80));

    // Under a quota lowered below what the store holds, a commit that does not grow it still
    // commits; one that grows it does not.
    db.store
        .tenant_update(
            "acme",
            &TenantLimitSpec {
                max_store_bytes: Some(10),
                ..TenantLimitSpec::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        commit(&db.store, t, vec![put("a", &[1; 79])]).await,
        CompletionStatus::Completed,
        "the same size"
    );
    assert_eq!(
        commit(&db.store, t, vec![put("a", &[1; 40]), put("z", b"1")]).await,
        CompletionStatus::Completed,
        "smaller in all"
    );
    assert_eq!(
        commit(&db.store, t, vec![put("y", b"1")]).await,
        CompletionStatus::Quota
    );
    assert_eq!(usage(&db, t).await, (43, 43));
}

#[tokio::test]
async fn a_tenant_without_a_store_limit_of_its_own_is_held_to_the_default() {
    let db = test_db().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let default: i64 =
        sqlx::query_scalar("SELECT (limits->>'max_store_bytes')::bigint FROM spool.limit_defaults")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        default as u64,
        TenantLimits::DEFAULT.max_store_bytes,
        "migrate writes the Rust defaults"
    );
    // A smaller default, as if the Rust constant had changed, binds a tenant that set none.
    sqlx::query(
        "UPDATE spool.limit_defaults SET limits = jsonb_set(limits, '{max_store_bytes}', '100')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let t = tenant(&db.store, "acme", None).await;
    assert_eq!(
        commit(&db.store, t, vec![put("a", &[0; 99])]).await,
        CompletionStatus::Completed
    );
    assert_eq!(
        commit(&db.store, t, vec![put("b", b"")]).await,
        CompletionStatus::Quota
    );
    // Migrating again puts the Rust defaults back.
    db.store.migrate().await.unwrap();
    assert_eq!(
        commit(&db.store, t, vec![put("b", b"")]).await,
        CompletionStatus::Completed
    );
    pool.close().await;
}

#[tokio::test]
async fn the_migration_counts_what_each_tenants_store_already_holds() {
    let db = spool_tests::db::empty_db_owned_by("postgres").await;
    // The migrations before the store count.
    let before = tempfile::tempdir().unwrap();
    let all = spool_tests::workspace_root().join("migrations");
    for entry in std::fs::read_dir(&all).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".sql") && name.as_str() < "0009" {
            std::fs::copy(entry.path(), before.path().join(&name)).unwrap();
        }
    }
    let pool = sqlx::PgPool::connect(&db.admin_db_url).await.unwrap();
    sqlx::migrate::Migrator::new(before.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO spool.tenants (name) VALUES ('a'), ('b'), ('c');
         INSERT INTO spool.kv (tenant_id, key, value, version)
         SELECT t.id, k, convert_to(repeat('x', length(k) * 10), 'UTF8'), 1
         FROM spool.tenants t, unnest(ARRAY['k1', 'key2', 'k3']) k WHERE t.name <> 'c';",
    )
    .execute(&pool)
    .await
    .unwrap();

    let store = Store::connect(&db.admin_db_url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let counted: Vec<(String, i64)> = sqlx::query_as(
        "SELECT t.name, u.bytes FROM spool.tenants t JOIN spool.kv_usage u ON u.tenant_id = t.id
         ORDER BY t.name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // Per tenant: k1 2 + 20, key2 4 + 40, k3 2 + 20.
    assert_eq!(
        counted,
        [("a".into(), 88), ("b".into(), 88), ("c".into(), 0)]
    );
    store.close().await;
    pool.close().await;
}
