//! Tenant limits and quotas: pending jobs, queues, store bytes.

use super::{WAIT, acme, api_only, job_count, problem, with_worker};
use serde_json::{Value, json};
use spool_tests::server::TestServer;

#[tokio::test]
async fn tenant_limits_cap_jobs_and_queues() {
    let s = TestServer::start(api_only()).await;
    let token = s
        .tenant(
            "acme",
            json!({"fuel": 1000, "max_queued": 3, "max_payload_bytes": 64, "enqueue_rate": 1000}),
        )
        .await;
    assert_eq!(s.upload(&token, "hello", "hello").await.0, 201);
    let over = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "limits": {"fuel": 2000}}),
        )
        .await;
    assert!(problem(&over, 422).contains("cap of 1000"));
    let under = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "limits": {"fuel": 500}, "delay_ms": 3_600_000}),
        )
        .await;
    assert_eq!(
        under.0, 201,
        "asking for less than the cap is fine: {}",
        under.1
    );
    let big = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "payload": "x".repeat(100)}),
        )
        .await;
    problem(&big, 413);
    for _ in 0..2 {
        let ok = s
            .post(
                "/v1/jobs",
                &token,
                json!({"handler": "hello", "delay_ms": 3_600_000}),
            )
            .await;
        assert_eq!(ok.0, 201, "{}", ok.1);
    }
    let capped = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "delay_ms": 3_600_000}),
        )
        .await;
    assert!(problem(&capped, 429).contains("queued-jobs cap"));
    assert_eq!(job_count(&s, &token).await, 3);

    // The enqueue rate: a second's worth at once, then 429.
    let slow = s.tenant("slow", json!({"enqueue_rate": 3})).await;
    assert_eq!(s.upload(&slow, "hello", "hello").await.0, 201);
    let three: Vec<Value> = (0..3).map(|_| json!({"handler": "hello"})).collect();
    assert_eq!(
        s.post("/v1/jobs/batch", &slow, json!({ "jobs": three }))
            .await
            .0,
        201
    );
    let limited = s.post("/v1/jobs", &slow, json!({"handler": "hello"})).await;
    assert!(problem(&limited, 429).contains("rate"));
    s.stop().await;
}

#[tokio::test]
async fn a_tenants_store_quota_holds_across_jobs() {
    let (s, token) = acme(
        with_worker(),
        json!({"max_store_bytes": 10_000}),
        &[("hostile", "hostile")],
    )
    .await;
    let flood = json!({"handler": "hostile",
                       "payload": {"action": "store-flood", "value_bytes": 1000, "max": 100}});
    let mut written = 0;
    for round in 0..2 {
        let job = s.post("/v1/jobs", &token, flood.clone()).await;
        let id = job.1["id"].as_str().unwrap().to_string();
        let done = s
            .wait_job(&token, &id, WAIT, |j| j.state == "completed")
            .await;
        let result = done.result.unwrap_or_default();
        assert_eq!(
            result["stopped_by"]["kind"], "quota-exceeded",
            "round {round}: {result}"
        );
        written += result["bytes_written"].as_u64().unwrap();
    }
    assert!(written > 0, "the first job had room to write");
    assert!(
        written <= 10_000,
        "the two jobs wrote {written} bytes past a 10,000-byte quota"
    );
    s.stop().await;
}
