//! Jobs: enqueue, run, read back, idempotency keys, batches, and bad input answered with a 4xx
//! that changes nothing.

use super::{WAIT, acme, api_only, job_count, problem, with_worker};
use serde_json::{Value, json};
use spool_tests::server::ADMIN_TOKEN;

#[tokio::test]
async fn a_job_is_enqueued_run_and_read_back_with_its_result() {
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
    let by_handler = s
        .get("/v1/jobs?handler=hello&state=completed", &token)
        .await;
    assert_eq!(by_handler.1["jobs"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_key_enqueued_again_is_a_duplicate_with_the_same_payload_and_a_conflict_with_another() {
    let (s, token) = acme(api_only(), json!({}), &[("hello", "hello")]).await;
    let job = json!({"handler": "hello", "payload": {"name": "Ada"}, "idempotency_key": "k1"});
    let created = s.post("/v1/jobs", &token, job.clone()).await;
    assert_eq!(created.0, 201, "{}", created.1);
    let id = created.1["id"].as_str().unwrap();

    let duplicate = s.post("/v1/jobs", &token, job).await;
    assert_eq!(duplicate.0, 200);
    assert_eq!(duplicate.1["duplicate"], true);
    assert_eq!(duplicate.1["id"], id);
    let conflict = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "payload": {"name": "Bob"}, "idempotency_key": "k1"}),
        )
        .await;
    assert!(problem(&conflict, 409).contains("k1"));
    assert_eq!(job_count(&s, &token).await, 1);
    s.stop().await;
}

#[tokio::test]
async fn raw_bytes_go_in_as_base64_and_come_back_the_same_way() {
    let (s, token) = acme(api_only(), json!({}), &[("hello", "hello")]).await;
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
    s.stop().await;
}

#[tokio::test]
async fn a_batch_is_enqueued_in_order_and_paged_back_newest_first() {
    let (s, token) = acme(api_only(), json!({}), &[("hello", "hello")]).await;
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
    s.stop().await;
}

#[tokio::test]
async fn a_malformed_or_invalid_job_gets_a_4xx_and_changes_nothing() {
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
    assert_eq!(job_count(&s, &token).await, before);
    s.stop().await;
}

#[tokio::test]
async fn a_batch_with_one_bad_item_is_refused_whole() {
    let (s, token) = acme(api_only(), json!({}), &[("hello", "hello")]).await;
    s.post(
        "/v1/jobs",
        &token,
        json!({"handler": "hello", "payload": 1, "idempotency_key": "taken", "delay_ms": 3_600_000}),
    )
    .await;
    let after_one = job_count(&s, &token).await;
    assert_eq!(after_one, 1);
    // One item's key is taken: none of the batch is enqueued.
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
    s.stop().await;
}

#[tokio::test]
async fn a_bad_list_query_is_a_400_and_an_unknown_job_a_404() {
    let (s, token) = acme(api_only(), json!({}), &[("hello", "hello")]).await;
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
