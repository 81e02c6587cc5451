//! Queues, health, metrics and the OpenAPI document.

use super::{WAIT, acme, with_worker};
use serde_json::json;
use spool_tests::server::ADMIN_TOKEN;
use std::time::Duration;

#[tokio::test]
async fn queues_health_metrics_and_the_openapi_document() {
    let (s, token) = acme(with_worker(), json!({}), &[("hello", "hello")]).await;
    let done = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "payload": {}}),
        )
        .await;
    let id = done.1["id"].as_str().unwrap().to_string();
    s.post(
        "/v1/jobs",
        &token,
        json!({"handler": "hello", "delay_ms": 3_600_000}),
    )
    .await;
    s.wait_job(&token, &id, WAIT, |j| j.state == "completed")
        .await;

    // The counters are folded by maintenance: poll until they show both jobs.
    let deadline = std::time::Instant::now() + WAIT;
    let queue = loop {
        let (status, body) = s.get("/v1/queues", &token).await;
        assert_eq!(status, 200);
        let q = body["queues"][0].clone();
        let rate = q["completed_per_min"].as_f64().unwrap_or(0.0);
        if q["counts"]["completed"] == 1 && q["counts"]["scheduled"] == 1 && rate > 0.0 {
            break q;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "counts never matched: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(queue["name"], "default");
    assert_eq!(queue["counts"]["dead"], 0);
    assert!(queue["oldest_available_age_ms"].is_null());

    assert_eq!(s.get("/healthz", "").await.0, 200);
    let ready = s.get("/readyz", "").await;
    assert_eq!(ready.0, 200);
    assert_eq!(ready.1["status"], "ready");
    // On the API's listener the metrics (every tenant's names) need the admin token.
    let metrics = s.get("/metrics", &token).await;
    assert_eq!(metrics.0, 403, "a tenant's token: {}", metrics.1);
    let metrics = s
        .http
        .get(format!("{}/metrics", s.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let doc = s.get("/v1/openapi.json", "").await;
    assert_eq!(doc.0, 200);
    let paths = doc.1["paths"].as_object().unwrap();
    for path in [
        "/v1/tenants",
        "/v1/tenants/{name}",
        "/v1/handlers",
        "/v1/handlers/{name}",
        "/v1/jobs",
        "/v1/jobs/batch",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/cancel",
        "/v1/jobs/{id}/retry",
        "/v1/dead",
        "/v1/dead/retry",
        "/v1/queues",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    s.stop().await;
}
