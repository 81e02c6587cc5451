//! Tenants and their tokens: made by the admin, tokens shown once.

use super::{api_only, problem};
use reqwest::Method;
use serde_json::{Value, json};
use spool_tests::server::{ADMIN_TOKEN, TestServer};

/// Starts a server and has the admin create tenant `acme` with a fuel limit of 5000; returns
/// the server and the creation's answer.
async fn acme() -> (TestServer, Value) {
    let s = TestServer::start(api_only()).await;
    let created = s
        .post(
            "/v1/tenants",
            ADMIN_TOKEN,
            json!({"name": "acme", "limits": {"fuel": 5000}}),
        )
        .await;
    assert_eq!(created.0, 201, "{}", created.1);
    (s, created.1)
}

fn token_of(created: &Value) -> String {
    created["token"].as_str().expect("a token").to_string()
}

#[tokio::test]
async fn a_tenant_is_made_by_the_admin_with_defaults_for_the_limits_not_given() {
    let (s, created) = acme().await;
    assert!(token_of(&created).starts_with("spool_"));
    assert_eq!(created["limits"]["fuel"], 5000);
    assert_eq!(
        created["limits"]["max_running"], 100,
        "defaults fill the rest"
    );
    // The token is shown once: listing tenants never shows it again.
    let listed = s.get("/v1/tenants", ADMIN_TOKEN).await;
    assert_eq!(listed.0, 200);
    assert_eq!(listed.1["tenants"][0]["name"], "acme");
    assert!(listed.1["tenants"][0].get("token").is_none());
    s.stop().await;
}

#[tokio::test]
async fn a_taken_name_is_a_conflict_and_a_bad_tenant_body_is_unprocessable() {
    let (s, _) = acme().await;
    problem(
        &s.post("/v1/tenants", ADMIN_TOKEN, json!({"name": "acme"}))
            .await,
        409,
    );
    for body in [
        json!({"name": "no spaces"}),
        json!({"name": "x", "limits": {"fuel": 0}}),
        json!({"name": "x", "limitz": {}}),
    ] {
        problem(&s.post("/v1/tenants", ADMIN_TOKEN, body).await, 422);
    }
    // Not more memory than this server's sandbox gives an attempt; not unbounded host lists.
    let greedy = json!({"name": "x", "limits": {"memory_mb": 100_000}});
    assert!(problem(&s.post("/v1/tenants", ADMIN_TOKEN, greedy).await, 422).contains("memory_mb"));
    let hosts: Vec<String> = (0..101)
        .map(|i| format!("https://h{i}.example.com"))
        .collect();
    let many = json!({"name": "x", "allowed_hosts": hosts});
    problem(&s.post("/v1/tenants", ADMIN_TOKEN, many).await, 422);
    let listed = s.get("/v1/tenants", ADMIN_TOKEN).await;
    assert_eq!(listed.1["tenants"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn only_the_admin_manages_tenants_and_a_missing_or_wrong_token_is_401() {
    let (s, created) = acme().await;
    problem(&s.get("/v1/tenants", &token_of(&created)).await, 403);
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
    s.stop().await;
}

#[tokio::test]
async fn patch_changes_the_limits_given_and_keeps_the_rest() {
    let (s, _) = acme().await;
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
    // The refused patch changed nothing.
    let listed = s.get("/v1/tenants", ADMIN_TOKEN).await;
    assert_eq!(listed.1["tenants"][0]["limits"]["fuel"], 5000);
    assert_eq!(listed.1["tenants"][0]["limits"]["max_running"], 7);
    s.stop().await;
}

#[tokio::test]
async fn a_second_token_works_beside_the_first_and_revoking_it_leaves_the_first() {
    let (s, created) = acme().await;
    let token = token_of(&created);
    let second = s
        .post("/v1/tenants/acme/tokens", ADMIN_TOKEN, json!({}))
        .await;
    assert_eq!(second.0, 201, "{}", second.1);
    let second_token = token_of(&second.1);
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
