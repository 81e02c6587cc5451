//! The HTTP API over loopback: every endpoint, its error paths, tenant isolation and limits,
//! one file per module of `host/src/api/`, sharing the helpers below.

mod auth;
mod dead;
mod handlers;
mod jobs;
mod queues;
mod quota;
mod tenants;

use std::time::Duration;

use serde_json::Value;
use spool_tests::server::{Options, TestServer};

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
