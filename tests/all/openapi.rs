//! The OpenAPI document is client-grade: every path parameter declared, every `/v1` operation
//! secured, every error documented; and what the server answers to bad requests is what the
//! document lists for the operation, never a 5xx. Plus a property test of `POST /v1/jobs`.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};
use spool::api::ApiConfig;
use spool_tests::server::{ADMIN_TOKEN, TestServer};

/// Every operation of the document: (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                out.push((method.clone(), path.clone(), operation.clone()));
            }
        }
    }
    out
}

/// The statuses an operation documents.
fn documented(operation: &Value) -> BTreeSet<u16> {
    operation["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .filter_map(|s| s.parse().ok())
        .collect()
}

async fn document(s: &TestServer) -> Value {
    let (status, doc) = s.get("/v1/openapi.json", "").await;
    assert_eq!(status, 200);
    doc
}

/// A server whose throttle does not get in the way of many bad requests from one address.
async fn server() -> TestServer {
    TestServer::start_api(ApiConfig {
        auth_failures_per_minute: 100_000,
        ..ApiConfig::default()
    })
    .await
}

#[tokio::test]
async fn every_operation_declares_its_parameters_security_and_errors() {
    let s = server().await;
    let doc = document(&s).await;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let global = doc["security"].as_array().cloned().unwrap_or_default();
    let ops = operations(&doc);
    assert!(ops.len() >= 24, "{} operations", ops.len());
    for (method, path, op) in &ops {
        let at = format!("{} {path}", method.to_uppercase());
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, in_path, "{at}: path parameters");
        let public = matches!(path.as_str(), "/healthz" | "/readyz" | "/v1/openapi.json");
        let security = op["security"].as_array().cloned().unwrap_or(global.clone());
        let secured = security
            .iter()
            .any(|r| r.as_object().is_some_and(|r| r.contains_key("bearer")));
        assert_eq!(secured, !public, "{at}: security {security:?}");
        let statuses = documented(op);
        if !public {
            for status in [401, 403, 408, 429, 500, 503] {
                assert!(statuses.contains(&status), "{at}: {status} undocumented");
            }
        }
        if !op["requestBody"].is_null() {
            for status in [400, 413, 415, 422] {
                assert!(statuses.contains(&status), "{at}: {status} undocumented");
            }
        }
        if path.contains('{') {
            assert!(statuses.contains(&404), "{at}: 404 undocumented");
        }
        for (status, response) in op["responses"].as_object().unwrap() {
            if status.as_str() >= "400" {
                assert!(
                    response["content"]["application/problem+json"].is_object(),
                    "{at}: {status} is not a problem: {response}"
                );
            }
        }
    }
    s.stop().await;
}

/// A bad request to send, and with which token.
struct Bad {
    what: &'static str,
    token: String,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
}

#[tokio::test]
async fn bad_requests_get_a_documented_status_and_never_a_5xx() {
    let s = server().await;
    let doc = document(&s).await;
    let acme = s.tenant("acme", json!({})).await;
    assert_eq!(s.upload(&acme, "hello", "hello").await.0, 201);
    // Another tenant's things, which acme must not reach.
    let other = s.tenant("other", json!({})).await;
    assert_eq!(s.upload(&other, "theirs", "hello").await.0, 201);
    let (status, theirs) = s
        .post("/v1/jobs", &other, json!({"handler": "theirs"}))
        .await;
    assert_eq!(status, 201);
    let foreign_job = theirs["id"].as_str().unwrap().to_string();
    let (status, _) = s
        .post(
            "/v1/schedules",
            &other,
            json!({"name": "theirs", "cron": "0 3 * * *", "handler": "theirs"}),
        )
        .await;
    assert_eq!(status, 201);
    let unknown = spool::api::new_token().0;
    let big = {
        let mut b = b"{\"pad\": \"".to_vec();
        b.resize(3 << 20, b'x');
        b.extend_from_slice(b"\"}");
        b
    };
    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        let statuses = documented(&op);
        let admin_only = path.starts_with("/v1/tenants") || path == "/metrics";
        let owner = if admin_only { ADMIN_TOKEN } else { &acme };
        let url = path
            .replace("/v1/tenants/{name}", "/v1/tenants/acme")
            .replace("{name}", "theirs")
            .replace("{id}", &foreign_job);
        let mut cases = vec![
            Bad {
                what: "no token",
                token: String::new(),
                content_type: None,
                body: None,
            },
            Bad {
                what: "unknown token",
                token: unknown.clone(),
                content_type: None,
                body: None,
            },
            Bad {
                what: "malformed token",
                token: "x y".into(),
                content_type: None,
                body: None,
            },
            Bad {
                what: "foreign ids",
                token: owner.to_string(),
                content_type: None,
                body: None,
            },
            Bad {
                what: "another's role",
                token: if admin_only {
                    acme.clone()
                } else {
                    ADMIN_TOKEN.into()
                },
                content_type: None,
                body: None,
            },
        ];
        if !op["requestBody"].is_null() {
            let json = Some("application/json");
            for (what, content_type, body) in [
                ("malformed JSON", json, b"{\"handler\": ".to_vec()),
                ("wrong content type", Some("text/plain"), b"{}".to_vec()),
                ("oversized body", json, big.clone()),
                ("unknown fields", json, b"{\"bogus\": 1}".to_vec()),
                (
                    "wrong types",
                    json,
                    b"{\"name\": 7, \"handler\": [], \"jobs\": {}}".to_vec(),
                ),
            ] {
                cases.push(Bad {
                    what,
                    token: owner.to_string(),
                    content_type,
                    body: Some(body),
                });
            }
        }
        for case in cases {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut request = s.http.request(method.clone(), format!("{}{url}", s.url));
            if !case.token.is_empty() {
                request = request.header("authorization", format!("Bearer {}", case.token));
            }
            if let Some(content_type) = case.content_type {
                request = request.header("content-type", content_type);
            }
            if let Some(body) = case.body {
                request = request.body(body);
            }
            let answer = request.send().await.expect("an answer");
            let status = answer.status().as_u16();
            let at = format!("{method} {url} ({})", case.what);
            assert!(
                status < 500,
                "{at}: {status} {}",
                answer.text().await.unwrap()
            );
            assert!(
                statuses.contains(&status),
                "{at}: {status} is not among the documented {statuses:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} requests");
    // Nothing of the other tenant's moved.
    let (_, job) = s.get(&format!("/v1/jobs/{foreign_job}"), &other).await;
    assert_eq!(job["state"], "available", "{job}");
    let (_, schedule) = s.get("/v1/schedules/theirs", &other).await;
    assert_eq!(
        (schedule["enabled"].as_bool(), schedule["cron"].as_str()),
        (Some(true), Some("0 3 * * *")),
        "{schedule}"
    );
    s.stop().await;
}

/// JSON text: any value, with strings holding anything (NUL and other control characters
/// included), numbers too large for any machine type, and things that look like times.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        "-?[0-9]{1,30}(\\.[0-9]{1,10})?([eE][+-]?[0-9]{1,4})?",
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        "[\\x00-\\x1f\\\\\"a]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        "[+-]?[0-9]{1,6}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})"
            .prop_map(|s| format!("\"{s}\"")),
        Just("\"hello\"".to_string()),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|items| format!("[{}]", items.join(","))),
            proptest::collection::vec((any::<String>(), inner), 0..4).prop_map(|fields| {
                let fields: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// A `POST /v1/jobs` body: some of its fields (and others), each holding any JSON.
fn job_body() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("handler".to_string()),
        Just("payload".to_string()),
        Just("payload_base64".to_string()),
        Just("queue".to_string()),
        Just("idempotency_key".to_string()),
        Just("priority".to_string()),
        Just("run_at".to_string()),
        Just("delay_ms".to_string()),
        Just("max_attempts".to_string()),
        Just("limits".to_string()),
        any::<String>(),
    ];
    (
        any::<bool>(),
        proptest::collection::vec((field, json_text()), 0..5),
    )
        .prop_map(|(with_handler, fields)| {
            let mut parts: Vec<String> = fields
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                .collect();
            if with_handler {
                parts.insert(0, "\"handler\":\"hello\"".into());
            }
            format!("{{{}}}", parts.join(","))
        })
}

#[test]
fn no_job_body_gets_a_5xx() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (s, token) = rt.block_on(async {
        let s = server().await;
        let token = s.tenant("acme", json!({})).await;
        assert_eq!(s.upload(&token, "hello", "hello").await.0, 201);
        (s, token)
    });
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&job_body(), |body| {
        let status = rt.block_on(async {
            let answer = s
                .http
                .post(format!("{}/v1/jobs", s.url))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .expect("an answer");
            answer.status().as_u16()
        });
        prop_assert!(
            status < 500 && [200, 201, 400, 409, 413, 422, 429].contains(&status),
            "{status} for {body}"
        );
        Ok(())
    });
    rt.block_on(s.stop());
    result.unwrap();
}
