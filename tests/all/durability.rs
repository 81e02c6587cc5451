//! Durability: real `spool worker` processes killed, paused past their lease and cut off by a
//! PostgreSQL restart in the middle of their work, and every job's effects still committed
//! exactly once.
//!
//! The workers are the binary `make test` builds, `target/debug/spool` (`$SPOOL_BIN`
//! overrides it). Every job runs the `hostile` fixture's `effect` action: it bumps
//! `count/<job id>` in the store, records `seen/<job id>` = its attempt and enqueues one
//! follow-up, then sleeps so that attempts are in flight when the worker is hit. Had one job's
//! effects committed twice, its counter would read 2 (and its key's version would be 2).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use spool::model::{JobState, NewJob};
use spool::sqlx::{self, PgPool, Row};
use spool::store::Store;
use spool_devdb::{Cluster, ClusterConfig};
use spool_tests::db::test_db;
use spool_tests::{factory, spool_bin, workspace_root};
use uuid::Uuid;

/// The lease workers claim under: short, so that the rescuer takes lost work back quickly.
const LEASE_MS: &str = "1000";
/// How long a stopping worker lets running attempts finish.
const GRACE_MS: &str = "2000";

/// Where this file's tests keep what they write: worker logs and the compiled-component cache.
fn scratch_dir() -> PathBuf {
    workspace_root().join("target").join("spool-durability")
}

/// A directory of worker logs for one test, removed when the test passes and kept (its path
/// is in the failure messages) when it fails.
struct Logs {
    dir: PathBuf,
}

impl Logs {
    fn new(test: &str) -> Logs {
        let dir = scratch_dir().join("logs").join(format!(
            "{test}-{}",
            &Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&dir).expect("creating the log directory");
        Logs { dir }
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A `spool worker` process, killed when dropped.
struct WorkerProcess {
    child: Child,
    log: PathBuf,
}

impl WorkerProcess {
    /// Starts `spool worker` on `url` with the short lease, logging to `<name>.log` in `logs`.
    fn spawn(url: &str, logs: &Logs, name: &str, extra: &[&str]) -> WorkerProcess {
        let log = logs.dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).expect("creating the worker log");
        let child = Command::new(spool_bin())
            .args(["worker", "--database-url", url, "--lease-ms", LEASE_MS])
            .args(["--grace-ms", GRACE_MS])
            .args(extra)
            // A cache of the test's own, shared by its processes so that a restarted worker
            // loads the compiled component instead of compiling it again.
            .env("SPOOL_CACHE_DIR", scratch_dir().join("cache"))
            .env("SPOOL_LOG", "spool=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("starting spool worker");
        WorkerProcess { child, log }
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`, ...) to the process.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -s {signal} failed: {status}");
    }

    /// Returns the exit status if the process has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("waiting for the worker")
    }

    /// Kills the process with SIGKILL, as a crash would, and reaps it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Returns what the process has logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the process the way an operator would (SIGTERM), checks that it shut down
    /// cleanly within the grace period, and returns its log.
    async fn stop(mut self) -> String {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not stop within 30 s of SIGTERM; log: {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            status.success(),
            "the worker exited with {status}; log: {}",
            self.log.display()
        );
        let log = self.log();
        assert!(
            !log.contains("deadlock"),
            "the worker's transactions deadlocked; log: {}",
            self.log.display()
        );
        log
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            // A paused process dies of SIGKILL too.
            self.kill();
        }
    }
}

/// Creates the tenant and its `hostile` handler, whose retries back off for milliseconds
/// rather than seconds. Returns the tenant's id.
async fn setup(store: &Store) -> i64 {
    let tenant = factory::tenant(store, "acme", 1000).await;
    factory::put_handler(store, tenant, "hostile").await;
    store
        .admin_execute(&format!(
            "UPDATE spool.handlers SET backoff_base_ms = 20, backoff_cap_ms = 200
             WHERE tenant_id = {tenant} AND name = 'hostile'"
        ))
        .await
        .unwrap();
    tenant
}

/// Enqueues `k` `effect` jobs whose attempts take `sleep_ms`, and returns their ids.
async fn enqueue_effects(store: &Store, tenant: i64, k: usize, sleep_ms: u64) -> Vec<Uuid> {
    let jobs: Vec<NewJob> = (0..k)
        .map(|i| {
            NewJob::json(
                "hostile",
                &json!({"action": "effect", "sleep_ms": sleep_ms, "i": i}),
            )
        })
        .collect();
    factory::enqueue(store, tenant, &jobs).await
}

/// Opens the test's own connections, for the counting queries the store API has no call for.
async fn pool(url: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .expect("connecting to the test database")
}

/// How many jobs are in each state, over the hot table and history.
#[derive(Debug, Default)]
struct Census(BTreeMap<String, i64>);

impl Census {
    async fn take(pool: &PgPool) -> Result<Census, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT state::text AS state, count(*) AS n FROM spool.jobs GROUP BY state
             UNION ALL
             SELECT state::text, count(*) FROM spool.job_history GROUP BY state",
        )
        .fetch_all(pool)
        .await?;
        let mut census = BTreeMap::new();
        for row in rows {
            *census.entry(row.try_get("state")?).or_insert(0) += row.try_get::<i64, _>("n")?;
        }
        Ok(Census(census))
    }

    fn get(&self, state: JobState) -> i64 {
        self.0.get(state.as_str()).copied().unwrap_or(0)
    }

    /// Jobs not finished yet.
    fn pending(&self) -> i64 {
        [
            JobState::Scheduled,
            JobState::Available,
            JobState::Running,
            JobState::Retryable,
        ]
        .into_iter()
        .map(|s| self.get(s))
        .sum()
    }
}

/// Polls the census until `done` holds, failing at the deadline with the last census seen.
/// Query errors (the database restarting, say) count as "not yet".
async fn wait_for(
    pool: &PgPool,
    what: &str,
    within: Duration,
    done: impl Fn(&Census) -> bool,
) -> Census {
    let deadline = Instant::now() + within;
    loop {
        let last = Census::take(pool).await;
        if let Ok(census) = &last
            && done(census)
        {
            return last.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; last census: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `done` holds, failing at the deadline with `state` of the last poll.
async fn poll<T: Debug>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let state = probe().await;
        if done(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; last seen: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks that every job and follow-up completed, once, with the effects of exactly one
/// attempt each: for each of `parents`, `count/<id>` is 1 and was written once, `seen/<id>` is
/// the attempt that completed, and it has exactly one follow-up. Returns how many attempts the
/// rescuer recorded as `lost`.
async fn assert_effects_exactly_once(pool: &PgPool, parents: &[Uuid]) -> i64 {
    let census = Census::take(pool).await.unwrap();
    assert_eq!(census.pending(), 0, "jobs left unfinished: {census:?}");
    let total: i64 = census.0.values().sum();
    assert_eq!(
        census.get(JobState::Completed),
        total,
        "every job completed: {census:?}"
    );

    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT id) FROM spool.job_history")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(rows, distinct, "a job was finished twice");

    let rows = sqlx::query(
        "SELECT h.id, h.attempt,
                convert_from(c.value, 'UTF8') AS count, c.version AS count_version,
                convert_from(s.value, 'UTF8') AS seen, s.version AS seen_version,
                (SELECT count(*) FROM spool.job_history f WHERE f.parent_id = h.id) AS followups
         FROM spool.job_history h
         LEFT JOIN spool.kv c ON c.tenant_id = h.tenant_id AND c.key = 'count/' || h.id
         LEFT JOIN spool.kv s ON s.tenant_id = h.tenant_id AND s.key = 'seen/' || h.id
         WHERE h.id = ANY ($1)",
    )
    .bind(parents)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), parents.len(), "every job is in history");
    for row in &rows {
        let id: Uuid = row.get("id");
        let attempt: i32 = row.get("attempt");
        let count: Option<String> = row.get("count");
        let count_version: Option<i64> = row.get("count_version");
        let seen: Option<String> = row.get("seen");
        let seen_version: Option<i64> = row.get("seen_version");
        let followups: i64 = row.get("followups");
        assert_eq!(
            (count.as_deref(), count_version),
            (Some("1"), Some(1)),
            "job {id}: count/<id> shows its effects committed other than once"
        );
        assert_eq!(
            (seen, seen_version),
            (Some(attempt.to_string()), Some(1)),
            "job {id}: the committed effects are not those of attempt {attempt}, which completed"
        );
        assert_eq!(followups, 1, "job {id}: follow-ups enqueued");
    }
    let (counters, followups, keys): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM spool.kv WHERE key LIKE 'count/%'),
                count(*), count(DISTINCT idempotency_key)
         FROM spool.job_history WHERE parent_id IS NOT NULL",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let k = parents.len() as i64;
    assert_eq!(counters, k, "one counter per job");
    assert_eq!(
        (followups, keys),
        (k, k),
        "one follow-up per job, each its own key"
    );

    sqlx::query_scalar(
        "SELECT count(*) FROM spool.job_history h, jsonb_array_elements(h.errors) e
         WHERE e->>'kind' = 'lost'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// At-least-once delivery, exactly-once effects: workers die mid-attempt (SIGKILL) again and
/// again, and yet every job completes, with its effects once.
#[tokio::test]
async fn killed_workers_lose_attempts_but_never_duplicate_effects() {
    const K: usize = 200;
    const KILLS: usize = 5;
    let started = Instant::now();
    let db = test_db().await;
    let tenant = setup(&db.store).await;
    let parents = enqueue_effects(&db.store, tenant, K, 300).await;
    let pool = pool(&db.url).await;
    let logs = Logs::new("crash");
    let slots = ["--slots", "16"];

    let mut worker = WorkerProcess::spawn(&db.url, &logs, "worker-0", &slots);
    // Once a job has completed, the component is compiled and every slot is busy: a kill from
    // now on lands on attempts in flight.
    wait_for(
        &pool,
        "the first worker to complete a job",
        Duration::from_secs(60),
        |c| c.get(JobState::Completed) > 0,
    )
    .await;
    for kill in 1..=KILLS {
        let after = rand::random_range(100..=600);
        tokio::time::sleep(Duration::from_millis(after)).await;
        worker.kill();
        let census = Census::take(&pool).await.unwrap();
        eprintln!("kill {kill} after {after} ms: {census:?}");
        worker = WorkerProcess::spawn(&db.url, &logs, &format!("worker-{kill}"), &slots);
    }
    // The last worker finishes the work, rescuing what the dead ones held once it takes over
    // maintenance (the dead leader's lease has to run out first).
    wait_for(
        &pool,
        "every job and follow-up to complete",
        Duration::from_secs(60),
        |c| c.get(JobState::Completed) == 2 * K as i64 && c.pending() == 0,
    )
    .await;
    worker.stop().await;

    let lost = assert_effects_exactly_once(&pool, &parents).await;
    db.assert_running_counts_agree().await;
    assert!(
        lost > 0,
        "no attempt was lost: the kills missed the work, so this test proved nothing"
    );
    eprintln!(
        "{lost} attempts lost and rescued; took {:?}",
        started.elapsed()
    );
    pool.close().await;
}

/// A worker paused (SIGSTOP) mid-attempt past its lease is a zombie: another worker rescues
/// and completes the job, and when the zombie wakes, its late commit is fenced off.
#[tokio::test]
async fn a_worker_paused_past_its_lease_commits_nothing_when_it_wakes() {
    let started = Instant::now();
    let db = test_db().await;
    let tenant = setup(&db.store).await;
    let store = db.store.clone();
    let logs = Logs::new("zombie");
    // No maintenance in the zombie, so that the rescuer is the other worker's and need not wait
    // for a paused leader's lease to run out.
    let zombie = WorkerProcess::spawn(&db.url, &logs, "zombie", &["--no-maintenance"]);

    // A first job makes the zombie compile the component, so the attempt that matters starts
    // the moment it is claimed.
    let warm_up = store
        .job_enqueue_many(
            tenant,
            &[NewJob::json("hostile", &json!({"action": "ok"}))],
            None,
        )
        .await
        .unwrap()[0]
        .id;
    let job = async |id| store.job_get(tenant, id).await.unwrap();
    poll(
        "the warm-up job",
        Duration::from_secs(60),
        async || job(warm_up).await.state,
        |s| *s == JobState::Completed,
    )
    .await;

    let id = enqueue_effects(&store, tenant, 1, 1500).await[0];
    poll(
        "the zombie to claim the job",
        Duration::from_secs(30),
        async || job(id).await.state,
        |s| *s == JobState::Running,
    )
    .await;
    zombie.signal("STOP");

    let rescuer = WorkerProcess::spawn(&db.url, &logs, "rescuer", &[]);
    let done = poll(
        "the rescuer to complete the job",
        Duration::from_secs(30),
        async || job(id).await,
        |j| j.state.is_finished(),
    )
    .await;
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.attempt, 2, "completed once, by the second attempt");
    let kinds: Vec<(u32, &str)> = done
        .errors
        .iter()
        .map(|e| (e.attempt, e.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [(1, "lost")],
        "the zombie's attempt was rescued as lost"
    );
    rescuer.stop().await;

    // Wake the zombie. Its heartbeat would notice the lost lease at once and abandon the
    // attempt, racing the attempt to its commit; so, as a slow heartbeat would, it first waits
    // for a lock on the jobs table held here, while the attempt (which needs no such lock to
    // finish) hands its outcome to the completer. Nothing yields between the attempt's
    // "attempt finished" line and that hand-over.
    let pool = pool(&db.url).await;
    let mut slow_heartbeat = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE spool.jobs IN EXCLUSIVE MODE")
        .execute(&mut *slow_heartbeat)
        .await
        .unwrap();
    zombie.signal("CONT");
    let id_field = format!("job.id={id}");
    poll(
        "the zombie's attempt to finish",
        Duration::from_secs(30),
        async || zombie.log(),
        |log| {
            log.lines()
                .any(|l| l.contains(&id_field) && l.contains("attempt finished"))
        },
    )
    .await;
    // Now its completion goes to the database, late.
    slow_heartbeat.commit().await.unwrap();
    let log = zombie.stop().await;
    let stats = log
        .lines()
        .find(|l| l.contains("worker stopped"))
        .unwrap_or_else(|| panic!("the zombie logged no stats:\n{log}"));
    // Besides the warm-up job, the zombie may have completed the job's follow-up once it woke
    // (the rescuer enqueued it on commit, and may have handed it back unstarted when stopped).
    assert!(
        (stats.contains("completed: 1,") || stats.contains("completed: 2,"))
            && stats.contains("stale: 1"),
        "the zombie completed the warm-up job and its late commit was stale: {stats}"
    );

    let lost = assert_effects_exactly_once(&pool, &[id]).await;
    assert_eq!(lost, 1);
    db.assert_running_counts_agree().await;
    let after = job(id).await;
    assert_eq!(
        (after.state, after.attempt, after.errors.len()),
        (JobState::Completed, 2, 1),
        "the zombie's late commit changed the job"
    );
    eprintln!("took {:?}", started.elapsed());
    pool.close().await;
}

/// A private PostgreSQL cluster for one test, stopped and deleted when dropped.
struct PrivateCluster {
    cluster: Option<Cluster>,
    dir: PathBuf,
}

impl PrivateCluster {
    async fn start(dir: PathBuf) -> PrivateCluster {
        let config = ClusterConfig {
            data_dir: dir.clone(),
            fast: true,
            port: None,
            ..ClusterConfig::default()
        };
        let cluster = tokio::task::spawn_blocking(move || Cluster::start(config))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("starting a cluster in {}: {e}", dir.display()));
        PrivateCluster {
            cluster: Some(cluster),
            dir,
        }
    }

    fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("the cluster is there")
    }

    /// Stops the server and starts it again on the same port, as an outage would.
    async fn restart(&mut self) {
        let mut cluster = self.cluster.take().expect("the cluster is there");
        let (cluster, result) = tokio::task::spawn_blocking(move || {
            let result = cluster.restart();
            (cluster, result)
        })
        .await
        .unwrap();
        self.cluster = Some(cluster);
        result.unwrap_or_else(|e| panic!("restarting the cluster: {e}"));
    }

    /// Stops the server and deletes the cluster.
    async fn remove(mut self) {
        let cluster = self.cluster.take();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || remove(cluster, &dir))
            .await
            .unwrap();
    }
}

fn remove(cluster: Option<Cluster>, dir: &Path) {
    if let Some(mut cluster) = cluster {
        let _ = cluster.stop();
    }
    let _ = std::fs::remove_dir_all(dir);
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if self.cluster.is_some() {
            remove(self.cluster.take(), &self.dir);
        }
    }
}

/// The database goes away under a running worker (the server restarts): the worker rides it
/// out by itself, and nothing is lost or done twice.
#[tokio::test]
async fn a_worker_recovers_by_itself_when_postgres_restarts() {
    const K: usize = 200;
    let started = Instant::now();
    let dir = workspace_root().join("target").join(format!(
        "spool-test-pg-restart-{}",
        &Uuid::new_v4().simple().to_string()[..8]
    ));
    let mut cluster = PrivateCluster::start(dir).await;
    let admin = Store::connect(&cluster.cluster().url(), 1).await.unwrap();
    admin.admin_execute("CREATE DATABASE spool").await.unwrap();
    admin.close().await;
    let url = cluster.cluster().url_for("spool");
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let tenant = setup(&store).await;
    let parents = enqueue_effects(&store, tenant, K, 200).await;
    let pool = pool(&url).await;
    let logs = Logs::new("pg-restart");

    let mut worker = WorkerProcess::spawn(&url, &logs, "worker", &["--slots", "16"]);
    let before = wait_for(
        &pool,
        "a quarter of the work to complete",
        Duration::from_secs(60),
        |c| c.get(JobState::Completed) >= K as i64 / 2,
    )
    .await;
    let restart = Instant::now();
    cluster.restart().await;
    eprintln!(
        "restarted PostgreSQL in {:?}; before: {before:?}",
        restart.elapsed()
    );
    let after = wait_for(
        &pool,
        "the database to answer again",
        Duration::from_secs(30),
        |_| true,
    )
    .await;
    assert!(
        after.pending() > 0,
        "the worker had finished before the restart, so this test proved nothing: {after:?}"
    );

    wait_for(
        &pool,
        "every job and follow-up to complete after the restart",
        Duration::from_secs(60),
        |c| c.get(JobState::Completed) == 2 * K as i64 && c.pending() == 0,
    )
    .await;
    assert!(
        worker.exited().is_none(),
        "the worker exited on the outage; log: {}",
        worker.log.display()
    );
    let log = worker.stop().await;
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    eprintln!(
        "the worker logged {} warnings through the outage:\n{}",
        warnings.len(),
        warnings.join("\n")
    );

    assert_effects_exactly_once(&pool, &parents).await;
    pool.close().await;
    store.close().await;
    cluster.remove().await;
    eprintln!("took {:?}", started.elapsed());
}

/// Regression test for the heartbeat deadlocking with the group commit (see spool.heartbeat in
/// migrations/0003_lifecycle.sql): a
/// job whose row another transaction holds (its commit under way) is skipped, not waited
/// for, and not reported lost.
#[tokio::test]
async fn a_heartbeat_skips_a_job_whose_commit_is_under_way_instead_of_waiting() {
    let db = test_db().await;
    let tenant = setup(&db.store).await;
    enqueue_effects(&db.store, tenant, 2, 0).await;
    let lease = Duration::from_secs(10);
    let claimed = db
        .store
        .job_claim("default", 2, "w1", lease, None)
        .await
        .unwrap();
    let held: Vec<(i64, Uuid, Uuid)> = claimed
        .iter()
        .map(|j| (j.tenant_id, j.id, j.run_lease))
        .collect();
    let pool = pool(&db.url).await;
    let expiry = async |id: Uuid| -> chrono::DateTime<chrono::Utc> {
        sqlx::query_scalar("SELECT lease_expires_at FROM spool.jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let (busy, free) = (held[0].1, held[1].1);
    let (busy_before, free_before) = (expiry(busy).await, expiry(free).await);

    // Another transaction holds the first job's row, as a group commit finishing it does.
    let mut commit = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM spool.jobs WHERE id = $1 FOR UPDATE")
        .bind(busy)
        .execute(&mut *commit)
        .await
        .unwrap();
    let lost = tokio::time::timeout(
        Duration::from_secs(5),
        db.store.job_heartbeat(&held, lease, None),
    )
    .await
    .expect("the heartbeat waited for a row another transaction holds")
    .unwrap();
    assert!(
        lost.is_empty(),
        "a job being committed is still held: {lost:?}"
    );
    commit.rollback().await.unwrap();
    assert_eq!(
        expiry(busy).await,
        busy_before,
        "the locked job was skipped"
    );
    assert!(
        expiry(free).await > free_before,
        "the other job was extended"
    );

    // The next round extends it; once it has finished, the heartbeat reports it lost.
    let lost = db.store.job_heartbeat(&held, lease, None).await.unwrap();
    assert!(lost.is_empty(), "{lost:?}");
    assert!(expiry(busy).await > busy_before);
    db.store
        .admin_execute(&format!(
            "UPDATE spool.jobs SET run_lease = gen_random_uuid() WHERE id = '{busy}'"
        ))
        .await
        .unwrap();
    assert_eq!(
        db.store.job_heartbeat(&held, lease, None).await.unwrap(),
        [busy]
    );
    pool.close().await;
}
