//! Tenants and their tokens: made by the admin, tokens shown once.

use super::{api_only, problem};
use reqwest::Method;
use serde_json::json;
use spool_tests::server::{ADMIN_TOKEN, TestServer};

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
