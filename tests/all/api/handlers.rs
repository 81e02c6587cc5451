//! Handlers: uploads validated, versioned, listed and deleted; jobs pinned to a version.

use super::{WAIT, acme, api_only, problem, with_worker};
use reqwest::Method;
use serde_json::json;
use spool_client::types::JobView;
use spool_tests::component;
use spool_tests::server::TestServer;

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
