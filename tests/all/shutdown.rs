//! Graceful shutdown of a `spool worker` process: SIGTERM stops claiming, running attempts
//! finish within the grace period, and what does not finish is left to lease expiry.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use spool::model::{JobState, NewJob};
use spool_tests::db::{TestDb, test_db};
use spool_tests::factory::{put_handler, tenant};
use spool_tests::{cache_dir, spool_bin};
use uuid::Uuid;

fn spawn_worker(db: &TestDb, grace_ms: u64) -> Child {
    let bin = spool_bin();
    Command::new(&bin)
        .args([
            "worker",
            "--slots",
            "2",
            "--lease-ms",
            "3000",
            "--no-maintenance",
        ])
        .arg("--grace-ms")
        .arg(grace_ms.to_string())
        .env("DATABASE_URL", &db.url)
        .env("SPOOL_CACHE_DIR", cache_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}; `make test` builds it first", bin.display()))
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn setup(db: &TestDb, sleep_ms: u64) -> (i64, Uuid) {
    let t = tenant(&db.store, "acme", 10).await;
    put_handler(&db.store, t, "hostile").await;
    let job = NewJob::json(
        "hostile",
        &json!({"action": "sleep-in-host", "ms": sleep_ms}),
    );
    let id = db.store.job_enqueue_many(t, &[job], None).await.unwrap()[0].id;
    (t, id)
}

async fn wait_for_state(db: &TestDb, t: i64, id: Uuid, state: JobState, within: Duration) {
    spool_tests::eventually(
        &format!("the job becomes {state:?}"),
        within,
        || async move {
            let now = db.store.job_get(t, id).await.unwrap().state;
            if now == state {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        },
    )
    .await
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the worker did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn sigterm_lets_the_running_attempt_finish_and_commit() {
    let db = test_db().await;
    let (t, id) = setup(&db, 1500).await;
    let mut worker = spawn_worker(&db, 10_000);
    wait_for_state(&db, t, id, JobState::Running, Duration::from_secs(30)).await;
    signal(&worker, "TERM");
    let status = wait_exit(&mut worker, Duration::from_secs(20));
    assert!(status.success(), "{status}");
    let job = db.store.job_get(t, id).await.unwrap();
    assert_eq!(
        job.state,
        JobState::Completed,
        "finished within the grace period"
    );
    assert_eq!(job.attempt, 1);
}

#[tokio::test]
async fn an_attempt_outlasting_the_grace_period_is_left_to_lease_expiry() {
    let db = test_db().await;
    let (t, id) = setup(&db, 20_000).await;
    let mut worker = spawn_worker(&db, 300);
    wait_for_state(&db, t, id, JobState::Running, Duration::from_secs(30)).await;
    let stopped = Instant::now();
    signal(&worker, "TERM");
    let status = wait_exit(&mut worker, Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "the grace period bounds the wait"
    );
    // Still running in the database, under a lease that will expire; the rescuer retries it.
    assert_eq!(
        db.store.job_get(t, id).await.unwrap().state,
        JobState::Running
    );
    let maintenance = spool::maintenance::Maintenance::new(Default::default(), db.store.clone());
    let later = chrono::Utc::now() + chrono::TimeDelta::seconds(60);
    assert_eq!(maintenance.rescue_once(Some(later)).await.unwrap(), 1);
    let job = db.store.job_get(t, id).await.unwrap();
    assert_eq!(job.state, JobState::Retryable);
    assert_eq!(job.errors[0].kind, "lost");
}

/// While attempts are short the worker claims ahead of its free slots; on SIGTERM the jobs
/// still waiting for a slot are handed back at once: available again, no attempt charged,
/// while the running ones finish.
#[tokio::test]
async fn jobs_claimed_ahead_are_handed_back_unstarted_on_sigterm() {
    let db = test_db().await;
    let t = tenant(&db.store, "acme", 100).await;
    put_handler(&db.store, t, "hello").await;
    put_handler(&db.store, t, "hostile").await;
    // Short attempts first, so that the worker learns its attempts are short.
    let quick: Vec<NewJob> = (0..100)
        .map(|i| NewJob::json("hello", &json!({ "name": format!("n{i}") })))
        .collect();
    let quick = db.store.job_enqueue_many(t, &quick, None).await.unwrap();
    let quick: Vec<Uuid> = quick.iter().map(|e| e.id).collect();
    let mut worker = spawn_worker(&db, 10_000);
    spool_tests::db::wait_finished(&db.store, t, &quick, Duration::from_secs(60)).await;
    let slow: Vec<NewJob> = (0..6)
        .map(|_| NewJob::json("hostile", &json!({"action": "sleep-in-host", "ms": 1500})))
        .collect();
    db.store.job_enqueue_many(t, &slow, None).await.unwrap();
    // Two slots: two run, and the other four are claimed ahead (up to a claim batch ahead),
    // waiting for a slot.
    spool_tests::eventually(
        "all six jobs held by the worker",
        Duration::from_secs(30),
        || async {
            let running = db
                .store
                .job_ids_in_state(t, JobState::Running, 10)
                .await
                .unwrap()
                .len();
            if running == 6 {
                Ok(())
            } else {
                Err(format!("{running} running"))
            }
        },
    )
    .await;
    signal(&worker, "TERM");
    let status = wait_exit(&mut worker, Duration::from_secs(20));
    assert!(status.success(), "{status}");
    let completed = db
        .store
        .job_ids_in_state(t, JobState::Completed, 200)
        .await
        .unwrap();
    assert_eq!(completed.len(), 102, "the two running attempts finished");
    let available = db
        .store
        .job_ids_in_state(t, JobState::Available, 10)
        .await
        .unwrap();
    assert_eq!(available.len(), 4, "the four waiting handed back");
    for id in available {
        assert_eq!(db.store.job_get(t, id).await.unwrap().attempt, 0);
    }
    db.assert_running_counts_agree().await;
}
