//! Tenant isolation: a tenant's token sees only that tenant's things.

use super::{WAIT, problem, with_worker};
use serde_json::json;
use spool_tests::server::{ADMIN_TOKEN, TestServer};

#[tokio::test]
async fn tenants_see_only_their_own_things() {
    let s = TestServer::start(with_worker()).await;
    let a = s.tenant("a", json!({})).await;
    let b = s.tenant("b", json!({})).await;
    assert_eq!(s.upload(&a, "hostile", "hostile").await.0, 201);
    let job = s
        .post(
            "/v1/jobs",
            &a,
            json!({"handler": "hostile", "payload": {"action": "panic"}, "max_attempts": 1}),
        )
        .await;
    let id = job.1["id"].as_str().unwrap().to_string();
    s.wait_job(&a, &id, WAIT, |j| j.state == "dead").await;

    // Every resource of A is a 404 or absent for B: handlers, jobs, dead letters, statistics.
    problem(&s.get(&format!("/v1/jobs/{id}"), &b).await, 404);
    problem(
        &s.post(&format!("/v1/jobs/{id}/cancel"), &b, json!({}))
            .await,
        404,
    );
    problem(
        &s.post(&format!("/v1/jobs/{id}/retry"), &b, json!({})).await,
        404,
    );
    problem(&s.get("/v1/handlers/hostile", &b).await, 404);
    assert_eq!(s.get("/v1/handlers", &b).await.1["handlers"], json!([]));
    assert_eq!(s.get("/v1/jobs", &b).await.1["jobs"], json!([]));
    assert_eq!(s.get("/v1/dead", &b).await.1["jobs"], json!([]));
    assert_eq!(s.get("/v1/queues", &b).await.1["queues"], json!([]));
    let redrive = s.post("/v1/dead/retry", &b, json!({"ids": [id]})).await;
    assert_eq!(redrive.1["retried"], 0);
    let discard = s.post("/v1/dead/discard", &b, json!({})).await;
    assert_eq!(discard.1["discarded"], 0);
    // B cannot run A's handler either: handler names are per tenant.
    problem(
        &s.post("/v1/jobs", &b, json!({"handler": "hostile", "payload": {}}))
            .await,
        422,
    );
    // Nor act for A.
    problem(&s.get("/v1/jobs?tenant=a", &b).await, 403);

    // A still sees all of it; so does the admin acting for A.
    assert_eq!(s.get("/v1/dead", &a).await.1["jobs"][0]["id"], id.as_str());
    let as_admin = s.get(&format!("/v1/jobs/{id}?tenant=a"), ADMIN_TOKEN).await;
    assert_eq!(as_admin.0, 200);
    assert_eq!(as_admin.1["state"], "dead");
    problem(
        &s.get(&format!("/v1/jobs/{id}?tenant=b"), ADMIN_TOKEN).await,
        404,
    );
    s.stop().await;
}
