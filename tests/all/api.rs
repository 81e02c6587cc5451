//! The HTTP API over loopback: every endpoint, its error paths, tenant isolation and limits.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use spool_client::types::JobView;
use spool_tests::component;
use spool_tests::server::{ADMIN_TOKEN, Options, TestServer};

const WAIT: Duration = Duration::from_secs(60);

fn api_only() -> Options {
    Options::default()
}

fn with_worker() -> Options {
    Options { worker: true }
}

/// Asserts a problem+json answer with `status`, returning its detail.
fn problem(got: &(u16, Value), status: u16) -> String {
    assert_eq!(got.0, status, "expected {status}, got {} {}", got.0, got.1);
    assert_eq!(got.1["status"], status, "problem body: {}", got.1);
    assert!(got.1["title"].is_string() && got.1["type"].is_string());
    got.1["detail"].as_str().expect("a detail").to_string()
}

/// Starts a server with tenant `acme` (with `limits`) and uploads `handlers` as
/// (name, crate) pairs; returns the server and the tenant's token.
async fn acme(options: Options, limits: Value, handlers: &[(&str, &str)]) -> (TestServer, String) {
    let s = TestServer::start(options).await;
    let token = s.tenant("acme", limits).await;
    for (name, crate_name) in handlers {
        let uploaded = s.upload(&token, name, crate_name).await;
        assert_eq!(uploaded.0, 201, "uploading {name}: {}", uploaded.1);
    }
    (s, token)
}

async fn job_count(s: &TestServer, token: &str) -> usize {
    let (status, page) = s.get("/v1/jobs?limit=1000", token).await;
    assert_eq!(status, 200, "{page}");
    page["jobs"].as_array().unwrap().len()
}

#[tokio::test]
async fn tenants_are_made_by_the_admin_with_tokens_shown_once() {
    let s = TestServer::start(api_only()).await;
    let created = s
        .post(
            "/v1/tenants",
            ADMIN_TOKEN,
            json!({"name": "acme", "limits": {"fuel": 5000}}),
        )
        .await;
    assert_eq!(created.0, 201, "{}", created.1);
    let token = created.1["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("spool_"));
    assert_eq!(created.1["limits"]["fuel"], 5000);
    assert_eq!(
        created.1["limits"]["max_running"], 100,
        "defaults fill the rest"
    );

    // The token is stored hashed: it appears nowhere in the database.
    let listed = s.get("/v1/tenants", ADMIN_TOKEN).await;
    assert_eq!(listed.0, 200);
    assert_eq!(listed.1["tenants"][0]["name"], "acme");
    assert!(listed.1["tenants"][0].get("token").is_none());

    problem(
        &s.post("/v1/tenants", ADMIN_TOKEN, json!({"name": "acme"}))
            .await,
        409,
    );
    problem(
        &s.post("/v1/tenants", ADMIN_TOKEN, json!({"name": "no spaces"}))
            .await,
        422,
    );
    problem(
        &s.post(
            "/v1/tenants",
            ADMIN_TOKEN,
            json!({"name": "x", "limits": {"fuel": 0}}),
        )
        .await,
        422,
    );
    problem(
        &s.post(
            "/v1/tenants",
            ADMIN_TOKEN,
            json!({"name": "x", "limitz": {}}),
        )
        .await,
        422,
    );
    // Not more memory than this server's sandbox gives an attempt; not unbounded host lists.
    let greedy = json!({"name": "x", "limits": {"memory_mb": 100_000}});
    assert!(problem(&s.post("/v1/tenants", ADMIN_TOKEN, greedy).await, 422).contains("memory_mb"));
    let hosts: Vec<String> = (0..101)
        .map(|i| format!("https://h{i}.example.com"))
        .collect();
    let many = json!({"name": "x", "allowed_hosts": hosts});
    problem(&s.post("/v1/tenants", ADMIN_TOKEN, many).await, 422);
    // A tenant's token cannot manage tenants; no token or a wrong one is 401.
    problem(&s.get("/v1/tenants", &token).await, 403);
    problem(&s.get("/v1/tenants", "").await, 401);
    problem(&s.get("/v1/tenants", "spool_not-a-real-token").await, 401);
    let no_header = s
        .http
        .get(format!("{}/v1/handlers", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.status(), 401);
    assert_eq!(
        no_header.headers()["content-type"],
        "application/problem+json"
    );

    // PATCH changes the limits given and keeps the rest.
    let patched = s
        .call(
            Method::PATCH,
            "/v1/tenants/acme",
            ADMIN_TOKEN,
            Some(
                json!({"limits": {"max_running": 7}, "allowed_hosts": ["https://api.example.com"]}),
            ),
        )
        .await;
    assert_eq!(patched.0, 200, "{}", patched.1);
    assert_eq!(patched.1["limits"]["max_running"], 7);
    assert_eq!(patched.1["limits"]["fuel"], 5000);
    assert_eq!(
        patched.1["allowed_hosts"],
        json!(["https://api.example.com"])
    );
    problem(
        &s.call(
            Method::PATCH,
            "/v1/tenants/nobody",
            ADMIN_TOKEN,
            Some(json!({})),
        )
        .await,
        404,
    );
    problem(
        &s.call(
            Method::PATCH,
            "/v1/tenants/acme",
            ADMIN_TOKEN,
            Some(json!({"limits": {"fuel": "lots"}})),
        )
        .await,
        422,
    );

    // A second token works alongside the first; revoking one leaves the other.
    let second = s
        .post("/v1/tenants/acme/tokens", ADMIN_TOKEN, json!({}))
        .await;
    assert_eq!(second.0, 201, "{}", second.1);
    let second_token = second.1["token"].as_str().unwrap().to_string();
    assert_eq!(s.get("/v1/handlers", &second_token).await.0, 200);
    let id = second.1["id"].as_str().unwrap();
    let revoked = s
        .call(
            Method::DELETE,
            &format!("/v1/tenants/acme/tokens/{id}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(revoked.0, 204);
    problem(&s.get("/v1/handlers", &second_token).await, 401);
    assert_eq!(s.get("/v1/handlers", &token).await.0, 200);
    let tokens = s.get("/v1/tenants/acme/tokens", ADMIN_TOKEN).await;
    assert_eq!(tokens.1["tokens"].as_array().unwrap().len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn uploads_are_validated_versioned_listed_and_deleted() {
    let s = TestServer::start(api_only()).await;
    let token = s.tenant("acme", json!({})).await;

    let first = s.upload(&token, "greet", "hello").await;
    assert_eq!(first.0, 201, "{}", first.1);
    assert_eq!(first.1["version"], 1);
    assert_eq!(first.1["size"], component("hello").len());
    assert_eq!(first.1["digest"].as_str().unwrap().len(), 64);
    let again = s.upload(&token, "greet", "hello").await;
    assert_eq!(again.0, 200, "the same digest is not a new version");
    assert_eq!(again.1["version"], 1);
    let second = s.upload(&token, "greet", "send-receipt").await;
    assert_eq!(second.0, 201);
    assert_eq!(second.1["version"], 2);

    let garbage = s
        .upload_bytes(&token, "bad", b"not wasm at all".to_vec())
        .await;
    assert!(problem(&garbage, 422).contains("not a WebAssembly binary"));
    // The smallest valid core module: a header and nothing else.
    let core = s
        .upload_bytes(&token, "bad", b"\0asm\x01\0\0\0".to_vec())
        .await;
    assert!(problem(&core, 422).contains("core WebAssembly module"));
    let wrong_world = s.upload(&token, "bad", "wrong-world").await;
    assert!(problem(&wrong_world, 422).contains("world"));
    let unknown_import = s.upload(&token, "bad", "unknown-import").await;
    assert!(problem(&unknown_import, 422).contains("imports"));
    let empty = s.upload_bytes(&token, "bad", Vec::new()).await;
    problem(&empty, 400);
    let bad_name = s.upload(&token, "no%20spaces", "hello").await;
    problem(&bad_name, 400);
    assert!(problem(&s.get("/v1/handlers/bad", &token).await, 404).contains("bad"));

    // Over the tenant's component limit: refused before it is compiled.
    let small = s
        .tenant("small", json!({"max_component_bytes": 1000}))
        .await;
    problem(&s.upload(&small, "greet", "hello").await, 413);

    let listed = s.get("/v1/handlers", &token).await;
    assert_eq!(listed.0, 200);
    let handlers = listed.1["handlers"].as_array().unwrap();
    assert_eq!(
        handlers.len(),
        1,
        "failed uploads store nothing: {}",
        listed.1
    );
    assert_eq!(handlers[0]["version"], 2);
    let shown = s.get("/v1/handlers/greet", &token).await;
    assert_eq!(shown.0, 200);
    assert_eq!(shown.1["versions"].as_array().unwrap().len(), 2);

    let deleted = s
        .call(Method::DELETE, "/v1/handlers/greet", &token, None)
        .await;
    assert_eq!(deleted.0, 204);
    problem(&s.get("/v1/handlers/greet", &token).await, 404);
    problem(
        &s.call(Method::DELETE, "/v1/handlers/greet", &token, None)
            .await,
        404,
    );
    s.stop().await;
}

#[tokio::test]
async fn jobs_enqueue_run_and_read_back_with_idempotency() {
    let (s, token) = acme(with_worker(), json!({}), &[("hello", "hello")]).await;

    let created = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "payload": {"name": "Ada"}, "idempotency_key": "k1"}),
        )
        .await;
    assert_eq!(created.0, 201, "{}", created.1);
    assert_eq!(created.1["duplicate"], false);
    let id = created.1["id"].as_str().unwrap().to_string();

    let duplicate = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "payload": {"name": "Ada"}, "idempotency_key": "k1"}),
        )
        .await;
    assert_eq!(duplicate.0, 200);
    assert_eq!(duplicate.1["duplicate"], true);
    assert_eq!(duplicate.1["id"], id.as_str());
    let conflict = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "payload": {"name": "Bob"}, "idempotency_key": "k1"}),
        )
        .await;
    assert!(problem(&conflict, 409).contains("k1"));

    let job = s
        .wait_job(&token, &id, WAIT, |j| j.state == "completed")
        .await;
    assert_eq!(job.payload, Some(json!({"name": "Ada"})));
    assert_eq!(job.handler, "hello");
    assert_eq!(job.idempotency_key, "k1");
    assert_eq!(job.attempt, 1);
    assert!(
        job.result.as_ref().is_some_and(Value::is_object),
        "a JSON result: {job:?}"
    );
    assert!(job.finished_at.is_some());
    assert!(job.errors.is_empty());

    // Raw bytes go in as base64 and come back the same way.
    let raw = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "payload_base64": "AAEC/w==", "delay_ms": 3_600_000}),
        )
        .await;
    assert_eq!(raw.0, 201, "{}", raw.1);
    assert_eq!(raw.1["state"], "scheduled");
    let raw_id = raw.1["id"].as_str().unwrap();
    let raw_job = s.get(&format!("/v1/jobs/{raw_id}"), &token).await;
    assert_eq!(raw_job.1["payload_base64"], "AAEC/w==");

    // A batch: all enqueued, in order, paged back newest first.
    let jobs: Vec<Value> = (0..5)
        .map(|i| json!({"handler": "hello", "payload": {"n": i}, "queue": "bulk", "delay_ms": 3_600_000}))
        .collect();
    let batch = s
        .post("/v1/jobs/batch", &token, json!({ "jobs": jobs }))
        .await;
    assert_eq!(batch.0, 201, "{}", batch.1);
    let ids: Vec<String> = batch.1["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 5);
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = s
            .get(
                &format!("/v1/jobs?queue=bulk&state=scheduled&limit=2&cursor={cursor}"),
                &token,
            )
            .await;
        assert_eq!(page.0, 200, "{}", page.1);
        for j in page.1["jobs"].as_array().unwrap() {
            assert_eq!(j["queue"], "bulk");
            seen.push(j["id"].as_str().unwrap().to_string());
        }
        match page.1["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let by_handler = s
        .get("/v1/jobs?handler=hello&state=completed", &token)
        .await;
    assert_eq!(by_handler.1["jobs"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_4xx_and_changes_nothing() {
    let (s, token) = acme(api_only(), json!({}), &[("hello", "hello")]).await;
    let before = job_count(&s, &token).await;

    let raw = |body: &'static str, content_type: &'static str| {
        s.http
            .post(format!("{}/v1/jobs", s.url))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let malformed = raw("{\"handler\": ", "application/json").await.unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        malformed.headers()["content-type"],
        "application/problem+json"
    );
    let not_json = raw("handler=hello", "text/plain").await.unwrap();
    assert_eq!(not_json.status(), 415);

    for (body, status) in [
        (json!({"handler": 7}), 422),
        (json!({"payload": {}}), 422),
        (json!({"handler": "hello", "surprise": true}), 422),
        (json!({"handler": "nope", "payload": {}}), 422),
        (
            json!({"handler": "hello", "payload": {}, "payload_base64": "AA=="}),
            422,
        ),
        (json!({"handler": "hello", "payload_base64": "***"}), 422),
        (
            json!({"handler": "hello", "delay_ms": 5, "run_at": "2030-01-01T00:00:00Z"}),
            422,
        ),
        (json!({"handler": "hello", "run_at": "tomorrow"}), 422),
        (json!({"handler": "hello", "max_attempts": 0}), 422),
        (json!({"handler": "hello", "priority": 1_000_000}), 422),
        (json!({"handler": "hello", "queue": "a queue"}), 422),
        (
            json!({"handler": "hello", "limits": {"fuel": 1, "gas": 2}}),
            422,
        ),
        (json!({"handler": "hello", "idempotency_key": ""}), 422),
    ] {
        let got = s.post("/v1/jobs", &token, body.clone()).await;
        assert_eq!(got.0, status, "{body} -> {}", got.1);
        problem(&got, status);
    }
    // A batch with one conflicting key is refused whole.
    s.post(
        "/v1/jobs",
        &token,
        json!({"handler": "hello", "payload": 1, "idempotency_key": "taken", "delay_ms": 3_600_000}),
    )
    .await;
    let after_one = job_count(&s, &token).await;
    let batch = s
        .post(
            "/v1/jobs/batch",
            &token,
            json!({"jobs": [
                {"handler": "hello", "payload": 1, "delay_ms": 3_600_000},
                {"handler": "hello", "payload": 2, "idempotency_key": "taken"},
            ]}),
        )
        .await;
    assert!(problem(&batch, 409).contains("jobs[1]"));
    assert_eq!(job_count(&s, &token).await, after_one);
    assert_eq!(after_one, before + 1);
    let bad_item = s
        .post(
            "/v1/jobs/batch",
            &token,
            json!({"jobs": [{"handler": "hello"}, {"handler": "hello", "max_attempts": 0}]}),
        )
        .await;
    assert!(problem(&bad_item, 422).contains("jobs[1]"));
    problem(
        &s.post("/v1/jobs/batch", &token, json!({"jobs": []})).await,
        422,
    );
    let too_many: Vec<Value> = (0..10_001).map(|_| json!({"handler": "hello"})).collect();
    problem(
        &s.post("/v1/jobs/batch", &token, json!({ "jobs": too_many }))
            .await,
        413,
    );
    assert_eq!(job_count(&s, &token).await, after_one);

    problem(&s.get("/v1/jobs?state=finished", &token).await, 400);
    problem(&s.get("/v1/jobs?limit=0", &token).await, 400);
    problem(&s.get("/v1/jobs?limit=1001", &token).await, 400);
    problem(&s.get("/v1/jobs?cursor=abc", &token).await, 400);
    problem(&s.get("/v1/jobs?limit=ten", &token).await, 400);
    problem(&s.get("/v1/jobs/not-an-id", &token).await, 404);
    problem(
        &s.get(&format!("/v1/jobs/{}", uuid::Uuid::now_v7()), &token)
            .await,
        404,
    );
    problem(&s.get("/v1/nothing-here", &token).await, 404);
    problem(&s.get("/v1/jobs", ADMIN_TOKEN).await, 400);
    problem(&s.get("/v1/jobs?tenant=ghost", ADMIN_TOKEN).await, 404);
    s.stop().await;
}

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

#[tokio::test]
async fn dead_letters_are_listed_redriven_and_discarded() {
    let (s, token) = acme(with_worker(), json!({}), &[("hostile", "hostile")]).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let job = s
            .post(
                "/v1/jobs",
                &token,
                json!({"handler": "hostile", "payload": {"action": "panic", "n": i},
                       "max_attempts": 1, "queue": if i == 2 { "other" } else { "default" }}),
            )
            .await;
        assert_eq!(job.0, 201, "{}", job.1);
        ids.push(job.1["id"].as_str().unwrap().to_string());
    }
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
    problem(&s.get("/v1/dead?state=completed", &token).await, 400);

    // One by id: back to available with one more attempt, then dead again.
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
    // Retrying a job that is not dead or cancelled is a conflict.
    assert_eq!(s.upload(&token, "hello", "hello").await.0, 201);
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
    // Cancel: once, then a conflict; a cancelled job can be retried.
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

    // In bulk, by queue, then everything left; then discard.
    let by_queue = s
        .post("/v1/dead/retry", &token, json!({"queue": "other"}))
        .await;
    assert_eq!(by_queue.1["retried"], 1);
    s.wait_job(&token, &ids[2], WAIT, |j| {
        j.state == "dead" && j.attempt == 2
    })
    .await;
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

#[tokio::test]
async fn a_job_runs_the_handler_version_current_when_it_was_enqueued() {
    let (s, token) = acme(with_worker(), json!({}), &[("h", "hello")]).await;
    // Parked an hour ahead until v2 is current, then brought forward by cancel and retry.
    let early = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "h", "payload": {"action": "ok", "name": "v1"},
                   "delay_ms": 3_600_000}),
        )
        .await;
    let v2 = s.upload(&token, "h", "hostile").await;
    assert_eq!(v2.1["version"], 2);
    let late = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "h", "payload": {"action": "ok", "name": "v2"}}),
        )
        .await;
    let early_id = early.1["id"].as_str().unwrap();
    let late_id = late.1["id"].as_str().unwrap();
    for step in ["cancel", "retry"] {
        let moved = s
            .post(&format!("/v1/jobs/{early_id}/{step}"), &token, json!({}))
            .await;
        assert_eq!(moved.0, 200, "{step}: {}", moved.1);
    }
    let done = |j: &JobView| j.state == "completed";
    let early_job = s.wait_job(&token, early_id, WAIT, done).await;
    let late_job = s.wait_job(&token, late_id, WAIT, done).await;
    // hello greets; hostile's "ok" action answers {"ok": true}.
    let early = early_job.result.unwrap_or_default();
    assert!(
        early.get("ok").is_none(),
        "v1 (hello) ran the early job: {early}"
    );
    assert_eq!(late_job.result, Some(json!({"ok": true})));
    s.stop().await;
}
