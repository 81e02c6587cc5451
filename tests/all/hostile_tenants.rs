//! One tenant's hostile or careless guest never stops the group commit for the others: values
//! the database cannot take are cleaned or refused where they enter, an outcome the database
//! refuses anyway fails alone, and follow-up jobs are held to the tenant's quotas.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spool_tests::server::{ADMIN_TOKEN, Options, TestServer};

/// A server with a worker, a hostile tenant with the `hostile` fixture uploaded, and a victim
/// tenant with `hello`; returns the server and both tokens.
async fn two_tenants(hostile_limits: Value) -> (TestServer, String, String) {
    let server = TestServer::start(Options { worker: true }).await;
    let hostile = server.tenant("mallory", hostile_limits).await;
    let victim = server.tenant("victim", json!({})).await;
    assert_eq!(server.upload(&hostile, "hostile", "hostile").await.0, 201);
    assert_eq!(server.upload(&hostile, "noop", "hello").await.0, 201);
    assert_eq!(server.upload(&victim, "hello", "hello").await.0, 201);
    (server, hostile, victim)
}

/// Enqueues one job and returns its id.
async fn enqueue(server: &TestServer, token: &str, body: Value) -> String {
    let (status, job) = server.post("/v1/jobs", token, body).await;
    assert!(status == 201 || status == 200, "enqueue: {status} {job}");
    job["id"].as_str().expect("an id").to_string()
}

/// Enqueues `n` `hello` jobs for the victim and returns their ids.
async fn victim_jobs(server: &TestServer, token: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            enqueue(
                server,
                token,
                json!({"handler": "hello", "payload": {"name": i}}),
            )
            .await,
        );
    }
    ids
}

/// Waits until each of `ids` is finished and returns them.
async fn finished(server: &TestServer, token: &str, ids: &[String]) -> Vec<Value> {
    let mut jobs = Vec::new();
    for id in ids {
        let job = server
            .wait_job(token, id, Duration::from_secs(60), |j| {
                matches!(j.state.as_str(), "completed" | "dead" | "cancelled")
            })
            .await;
        jobs.push(serde_json::json!(job));
    }
    jobs
}

fn hostile(action: Value, max_attempts: u32) -> Value {
    json!({"handler": "hostile", "payload": action, "max_attempts": max_attempts})
}

#[tokio::test]
async fn a_nul_anywhere_a_guest_writes_is_cleaned_or_refused_and_commits_go_on() {
    let (server, mallory, victim) = two_tenants(json!({})).await;
    let mut ids = Vec::new();
    for place in ["stdout", "log", "failure", "store-key", "child-key"] {
        let body = hostile(json!({"action": "nul", "where": place}), 1);
        ids.push(enqueue(&server, &mallory, body).await);
    }
    let absurd = enqueue(
        &server,
        &mallory,
        hostile(json!({"action": "absurd-child"}), 1),
    )
    .await;
    let victims = victim_jobs(&server, &victim, 10).await;

    let jobs = finished(&server, &mallory, &ids).await;
    let [stdout, log, failure, store_key, child_key] = &jobs[..] else {
        unreachable!()
    };
    for (job, what) in [(stdout, "stdout"), (log, "log")] {
        assert_eq!(job["state"], "completed", "{what}: {job}");
        let logs = job["logs"].to_string();
        assert!(
            logs.contains('\u{FFFD}'),
            "{what}: the NUL is replaced: {logs}"
        );
    }
    assert_eq!(failure["state"], "dead", "{failure}");
    let message = failure["errors"][0]["message"].as_str().unwrap();
    assert_eq!(message, "failure\u{FFFD}with nul");
    assert_eq!(store_key["state"], "completed");
    assert_eq!(
        store_key["result"]["put"]["kind"], "invalid-key",
        "{store_key}"
    );
    assert_eq!(child_key["state"], "completed");
    assert_eq!(
        child_key["result"]["enqueue"]["kind"], "invalid",
        "{child_key}"
    );

    let absurd = &finished(&server, &mallory, &[absurd]).await[0];
    assert_eq!(absurd["state"], "completed", "{absurd}");
    assert_eq!(absurd["result"]["delay"]["kind"], "invalid", "{absurd}");
    assert_eq!(
        absurd["result"]["max_attempts"]["kind"], "invalid",
        "{absurd}"
    );

    for job in finished(&server, &victim, &victims).await {
        assert_eq!(job["state"], "completed", "{job}");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_outcome_the_database_refuses_fails_alone_and_the_rest_commit() {
    let (server, mallory, victim) = two_tenants(json!({})).await;
    // Stands for any outcome the database cannot take: the done-record of a result that
    // says "poison-outcome" is refused, so the group commit holding it fails as a whole.
    server
        .db
        .store
        .admin_execute(
            "CREATE FUNCTION public.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF position('poison-outcome' in encode(NEW.result, 'escape')) > 0 THEN
                     RAISE EXCEPTION 'refusing a poisoned outcome';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON spool.job_history
             FOR EACH ROW EXECUTE FUNCTION public.refuse_poison();",
        )
        .await
        .unwrap();
    let poison = enqueue(
        &server,
        &mallory,
        hostile(json!({"action": "result", "text": "poison-outcome"}), 2),
    )
    .await;
    let victims = victim_jobs(&server, &victim, 20).await;
    for job in finished(&server, &victim, &victims).await {
        assert_eq!(job["state"], "completed", "{job}");
    }
    let poison = &finished(&server, &mallory, &[poison]).await[0];
    assert_eq!(poison["state"], "dead", "{poison}");
    let errors = poison["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{poison}");
    for error in errors {
        assert_eq!(error["kind"], "commit", "{poison}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("could not be stored"), "{message}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_follow_up_whose_key_is_taken_fails_its_parent_alone() {
    let (server, mallory, victim) = two_tenants(json!({})).await;
    let first = enqueue(
        &server,
        &mallory,
        hostile(json!({"action": "taken-child-key"}), 1),
    )
    .await;
    let first = &finished(&server, &mallory, &[first]).await[0];
    assert_eq!(first["state"], "completed", "{first}");
    // A second parent asks for the same child key with another payload: it cannot commit.
    let second = enqueue(
        &server,
        &mallory,
        hostile(json!({"action": "taken-child-key"}), 2),
    )
    .await;
    let victims = victim_jobs(&server, &victim, 5).await;
    let second = &finished(&server, &mallory, &[second]).await[0];
    assert_eq!(second["state"], "dead", "{second}");
    assert_eq!(second["errors"][0]["kind"], "commit", "{second}");
    let message = second["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("used before with another payload"),
        "{message}"
    );
    for job in finished(&server, &victim, &victims).await {
        assert_eq!(job["state"], "completed", "{job}");
    }
    server.stop().await;
}

/// Returns tenant `name`'s pending jobs (scheduled, available, running, retryable), exactly.
async fn pending(server: &TestServer, name: &str) -> i64 {
    let store = &server.db.store;
    let tenant = store.tenant_get(name).await.expect("the tenant");
    store.tenant_pending(tenant.id).await.expect("counting")
}

#[tokio::test]
async fn a_self_replicating_handler_stays_within_the_pending_cap() {
    const CAP: i64 = 40;
    let (server, mallory, victim) = two_tenants(json!({"max_queued": CAP})).await;
    enqueue(
        &server,
        &mallory,
        hostile(json!({"action": "replicate", "copies": 5}), 3),
    )
    .await;
    // The tree grows until the cap refuses its follow-ups; sample it meanwhile.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut most = 0;
    loop {
        let now = pending(&server, "mallory").await;
        most = most.max(now);
        // A refused parent is retried (kind `quota`), and dead-lettered in the end.
        let (_, retrying) = server.get("/v1/jobs?state=retryable", &mallory).await;
        let (_, dead) = server.get("/v1/dead", &mallory).await;
        let refused = [&retrying, &dead].iter().any(|page| {
            page["jobs"].as_array().is_some_and(|jobs| {
                jobs.iter()
                    .any(|j| j["errors"].to_string().contains("\"quota\""))
            })
        });
        if refused {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no follow-up was ever refused; {most} pending at most: {retrying} {dead}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(most <= CAP, "{most} jobs pending, past the cap of {CAP}");
    // The other tenant is served all the while.
    let started = Instant::now();
    let victims = victim_jobs(&server, &victim, 10).await;
    for job in finished(&server, &victim, &victims).await {
        assert_eq!(job["state"], "completed", "{job}");
    }
    eprintln!(
        "victim jobs done in {:?} beside the replicator",
        started.elapsed()
    );
    assert!(pending(&server, "mallory").await <= CAP);
    server.stop().await;
}

#[tokio::test]
async fn readyz_goes_unready_while_commits_fail_and_shutdown_still_ends() {
    let (server, mallory, _victim) = two_tenants(json!({})).await;
    let (status, _) = server.get("/readyz", ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    // Every outcome and every failure record refused: nothing this worker finishes commits.
    server
        .db
        .store
        .admin_execute(
            "CREATE FUNCTION public.refuse_all() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'refusing every outcome'; END $$;
             CREATE TRIGGER refuse_history BEFORE INSERT ON spool.job_history
             FOR EACH ROW EXECUTE FUNCTION public.refuse_all();
             CREATE TRIGGER refuse_retry BEFORE UPDATE ON spool.jobs
             FOR EACH ROW WHEN (NEW.state = 'retryable') EXECUTE FUNCTION public.refuse_all();",
        )
        .await
        .unwrap();
    for _ in 0..3 {
        enqueue(&server, &mallory, hostile(json!({"action": "ok"}), 3)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = server.get("/readyz", ADMIN_TOKEN).await;
        if status == 503 {
            assert!(body["detail"].to_string().contains("commit"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Commits get through again: the node is ready again after its next commit.
    server
        .db
        .store
        .admin_execute(
            "DROP TRIGGER refuse_history ON spool.job_history; \
             DROP TRIGGER refuse_retry ON spool.jobs;",
        )
        .await
        .unwrap();
    let id = enqueue(&server, &mallory, hostile(json!({"action": "ok"}), 3)).await;
    finished(&server, &mallory, &[id]).await;
    let (status, body) = server.get("/readyz", ADMIN_TOKEN).await;
    assert_eq!(status, 200, "{body}");
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), server.stop())
        .await
        .expect("the server stops within its grace periods");
    eprintln!("stopped in {:?}", stopping.elapsed());
}

#[tokio::test]
async fn a_store_read_loop_is_cut_at_its_read_budget_and_others_are_served() {
    let (server, mallory, victim) = two_tenants(json!({})).await;
    let mut loops = Vec::new();
    for _ in 0..4 {
        loops.push(
            enqueue(
                &server,
                &mallory,
                hostile(json!({"action": "store-read-loop"}), 1),
            )
            .await,
        );
    }
    let victims = victim_jobs(&server, &victim, 10).await;
    for job in finished(&server, &victim, &victims).await {
        assert_eq!(job["state"], "completed", "{job}");
    }
    for job in finished(&server, &mallory, &loops).await {
        assert_eq!(job["state"], "completed", "{job}");
        let reads = job["result"]["reads"].as_u64().unwrap();
        assert_eq!(reads, 10_000, "{job}");
        assert_eq!(
            job["result"]["stopped_by"]["kind"], "quota-exceeded",
            "{job}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn follow_ups_into_more_queues_than_the_tenant_may_use_fail_the_parent_with_quota() {
    let (server, mallory, victim) = two_tenants(json!({"max_queues": 3})).await;
    let parent = enqueue(
        &server,
        &mallory,
        hostile(json!({"action": "fan-queues", "copies": 5}), 1),
    )
    .await;
    let parent = &finished(&server, &mallory, &[parent]).await[0];
    assert_eq!(parent["state"], "dead", "{parent}");
    assert_eq!(parent["errors"][0]["kind"], "quota", "{parent}");
    let message = parent["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("max_queues"), "{message}");
    // Within the cap, follow-ups go through.
    let fine = enqueue(
        &server,
        &mallory,
        hostile(json!({"action": "fan-queues", "copies": 2}), 1),
    )
    .await;
    let fine = &finished(&server, &mallory, &[fine]).await[0];
    assert_eq!(fine["state"], "completed", "{fine}");
    let victims = victim_jobs(&server, &victim, 3).await;
    for job in finished(&server, &victim, &victims).await {
        assert_eq!(job["state"], "completed", "{job}");
    }
    server.stop().await;
}

/// The jobs of `token`'s tenant in `state`, counted from `GET /v1/jobs`.
async fn count_in(server: &TestServer, token: &str, state: &str) -> usize {
    let (status, page) = server
        .get(&format!("/v1/jobs?state={state}&limit=100"), token)
        .await;
    assert_eq!(status, 200, "{page}");
    page["jobs"].as_array().expect("a page of jobs").len()
}

/// A tenant whose jobs run long fills no more than its share of a worker's slots: a job of
/// another tenant arriving meanwhile starts at once, not when one of those jobs ends.
#[tokio::test]
async fn long_jobs_of_one_tenant_leave_slots_for_work_arriving_meanwhile() {
    let (server, mallory, victim) = two_tenants(json!({})).await;
    // More long jobs than the worker has slots (eight): each sleeps 25 s in a host call.
    for _ in 0..spool_tests::background::SLOTS_DEFAULT + 2 {
        enqueue(
            &server,
            &mallory,
            hostile(json!({"action": "sleep-in-host", "ms": 25_000}), 1),
        )
        .await;
    }
    let most = spool::worker::WorkerConfig {
        slots: spool_tests::background::SLOTS_DEFAULT,
        ..Default::default()
    }
    .most_per_tenant();
    assert!(most < spool_tests::background::SLOTS_DEFAULT);
    spool_tests::eventually(
        "mallory's long jobs take the slots it may have",
        Duration::from_secs(20),
        || async {
            match count_in(&server, &mallory, "running").await {
                n if n == most => Ok(()),
                n => Err(n),
            }
        },
    )
    .await;
    // Long before any of mallory's jobs ends, the victim's job has run.
    let started = Instant::now();
    let ids = victim_jobs(&server, &victim, 1).await;
    server
        .wait_job(&victim, &ids[0], Duration::from_secs(10), |j| {
            j.state == "completed"
        })
        .await;
    eprintln!("the victim's job completed in {:?}", started.elapsed());
    assert_eq!(
        count_in(&server, &mallory, "running").await,
        most,
        "mallory still holds its share, no more"
    );
    server.stop().await;
}
