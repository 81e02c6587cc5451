//! Dead letters: listed, redriven and discarded; retry and cancel of jobs in other states.

use super::{WAIT, acme, problem, with_worker};
use serde_json::json;
use spool_tests::server::TestServer;

/// Starts a server with a worker and tenant `acme`, and lets one job die (a panic, one
/// attempt) on each of `queues`; returns the server, the token and the dead jobs' ids.
async fn dead_jobs(queues: &[&str]) -> (TestServer, String, Vec<String>) {
    let (s, token) = acme(
        with_worker(),
        json!({}),
        &[("hostile", "hostile"), ("hello", "hello")],
    )
    .await;
    let mut ids = Vec::new();
    for (i, queue) in queues.iter().enumerate() {
        let job = s
            .post(
                "/v1/jobs",
                &token,
                json!({"handler": "hostile", "payload": {"action": "panic", "n": i},
                       "max_attempts": 1, "queue": queue}),
            )
            .await;
        assert_eq!(job.0, 201, "{}", job.1);
        ids.push(job.1["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        s.wait_job(&token, id, WAIT, |j| j.state == "dead").await;
    }
    (s, token, ids)
}

#[tokio::test]
async fn a_dead_job_is_listed_with_its_trap_and_filtered_by_queue() {
    let (s, token, ids) = dead_jobs(&["default", "default", "other"]).await;
    for id in &ids {
        let dead = s.wait_job(&token, id, WAIT, |j| j.state == "dead").await;
        let errors = &dead.errors;
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].kind, "trap");
        assert_eq!(errors[0].attempt, 1);
        assert!(!errors[0].message.is_empty());
    }
    let dead = s.get("/v1/dead", &token).await;
    assert_eq!(dead.1["jobs"].as_array().unwrap().len(), 3);
    let dead_other = s.get("/v1/dead?queue=other", &token).await;
    assert_eq!(dead_other.1["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(dead_other.1["jobs"][0]["id"], ids[2].as_str());
    problem(&s.get("/v1/dead?state=completed", &token).await, 400);
    s.stop().await;
}

#[tokio::test]
async fn a_dead_job_retried_by_id_runs_again_with_one_more_attempt() {
    let (s, token, ids) = dead_jobs(&["default"]).await;
    let retried = s
        .post(&format!("/v1/jobs/{}/retry", ids[0]), &token, json!({}))
        .await;
    assert_eq!(retried.0, 200, "{}", retried.1);
    assert_eq!(retried.1["state"], "available");
    let again = s
        .wait_job(&token, &ids[0], WAIT, |j| {
            j.state == "dead" && j.attempt == 2
        })
        .await;
    assert_eq!(again.errors.len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn retrying_a_pending_job_or_cancelling_twice_is_a_conflict_and_a_cancelled_job_retries() {
    let (s, token) = acme(with_worker(), json!({}), &[("hello", "hello")]).await;
    let pending = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "delay_ms": 3_600_000}),
        )
        .await;
    let pending_id = pending.1["id"].as_str().unwrap().to_string();
    problem(
        &s.post(&format!("/v1/jobs/{pending_id}/retry"), &token, json!({}))
            .await,
        409,
    );
    let cancelled = s
        .post(&format!("/v1/jobs/{pending_id}/cancel"), &token, json!({}))
        .await;
    assert_eq!(cancelled.1["state"], "cancelled");
    problem(
        &s.post(&format!("/v1/jobs/{pending_id}/cancel"), &token, json!({}))
            .await,
        409,
    );
    let back = s
        .post(&format!("/v1/jobs/{pending_id}/retry"), &token, json!({}))
        .await;
    assert_eq!(back.0, 200);
    assert_eq!(back.1["state"], "available");
    s.stop().await;
}

#[tokio::test]
async fn dead_letters_are_retried_by_queue_and_discarded_by_id_or_all_at_once() {
    let (s, token, ids) = dead_jobs(&["default", "default", "other"]).await;
    let by_queue = s
        .post("/v1/dead/retry", &token, json!({"queue": "other"}))
        .await;
    assert_eq!(by_queue.1["retried"], 1);
    s.wait_job(&token, &ids[2], WAIT, |j| {
        j.state == "dead" && j.attempt == 2
    })
    .await;
    // Ids and a queue at once are ambiguous.
    problem(
        &s.post(
            "/v1/dead/retry",
            &token,
            json!({"ids": [ids[0]], "queue": "x"}),
        )
        .await,
        422,
    );
    let discarded = s
        .post("/v1/dead/discard", &token, json!({"ids": [ids[1]]}))
        .await;
    assert_eq!(discarded.1["discarded"], 1);
    problem(&s.get(&format!("/v1/jobs/{}", ids[1]), &token).await, 404);
    let all = s.post("/v1/dead/discard", &token, json!({})).await;
    assert_eq!(all.1["discarded"], 2);
    assert_eq!(s.get("/v1/dead", &token).await.1["jobs"], json!([]));
    s.stop().await;
}
