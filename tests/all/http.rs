//! Outbound HTTP (issue 11): real components (`tests/fixtures/http-client`, and the Python
//! example `examples/python-http`) calling a real vendor server on loopback, through the
//! allow-list, the SSRF guard and the bounds.
//!
//! Loopback is a private address: the runtime here allows `127.0.0.0/8` as an operator
//! would with `--allow-private-network`, and tenants name the vendor `localhost` (tenants may
//! not list IP addresses). The shared test runtime, without the setting, shows the guard.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spool::capabilities::store::{MemoryBackend, effect_key};
use spool::model::{
    AllowList, ErrorKind, JobContext, JobState, Limits, NewJob, Outcome, TenantLimitSpec,
};
use spool::runtime::{Attempt, Runtime, RuntimeConfig};
use spool_tests::background::{self, Background};
use spool_tests::db::{test_db, wait_finished};
use spool_tests::factory::put_handler;
use spool_tests::server::{ADMIN_TOKEN, Options, TestServer};
use spool_tests::vendor::Vendor;
use spool_tests::{cache_dir, component, job, json_result, runtime};

/// A runtime whose operator allows loopback, as `--allow-private-network 127.0.0.0/8` does.
fn loopback_runtime() -> &'static Runtime {
    static RUNTIME: LazyLock<Runtime> =
        LazyLock::new(|| Runtime::new(loopback_config()).expect("building the loopback runtime"));
    &RUNTIME
}

fn loopback_config() -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: Some(cache_dir()),
        allow_private_networks: vec!["127.0.0.0/8".parse().unwrap()],
        ..RuntimeConfig::default()
    }
}

/// Runs the fixture with `plan` in `runtime` as `job`, allowing `allowed`.
async fn call_in(
    runtime: &Runtime,
    job: &JobContext,
    plan: Value,
    allowed: &[String],
    limits: &Limits,
) -> Attempt {
    invoke_in(runtime, "http-client", job, plan, allowed, limits).await
}

/// Runs the component `name` with `payload` in `runtime` as `job`, allowing `allowed`.
async fn invoke_in(
    runtime: &Runtime,
    name: &str,
    job: &JobContext,
    payload: Value,
    allowed: &[String],
    limits: &Limits,
) -> Attempt {
    let handler = runtime
        .load(&component(name))
        .await
        .unwrap_or_else(|e| panic!("loading {name}: {e}"));
    let job = JobContext {
        payload: serde_json::to_vec(&payload).unwrap(),
        ..job.clone()
    };
    runtime
        .invoke_allowing(
            &handler,
            &job,
            limits,
            Arc::new(MemoryBackend::default()),
            Arc::new(AllowList::parse(allowed).expect("a valid allow-list")),
        )
        .await
}

/// Runs `plan` in the loopback runtime, allowing `allowed`, under `limits`.
async fn call(plan: Value, allowed: &[String], limits: &Limits) -> Attempt {
    call_in(
        loopback_runtime(),
        &job("http-client", json!({})),
        plan,
        allowed,
        limits,
    )
    .await
}

fn results(attempt: &Attempt) -> Vec<Value> {
    json_result(attempt)["results"].as_array().unwrap().clone()
}

/// The attempt's `http` log lines.
fn http_lines(attempt: &Attempt) -> Vec<Value> {
    attempt
        .logs
        .iter()
        .map(|l| serde_json::to_value(l).unwrap())
        .filter(|l| l["source"] == "http")
        .collect()
}

fn field(line: &Value, name: &str) -> String {
    line["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f[0] == name)
        .map(|f| f[1].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_host_is_called_and_the_vendor_sees_the_automatic_key() {
    let vendor = Vendor::start().await;
    let plan = json!({"requests": [
        {"method": "POST", "url": vendor.url("/charges?secret=1"), "body": "{\"amount\": 5}"},
        {"method": "GET", "url": vendor.url("/charges/1")},
        {"method": "PUT", "url": vendor.url("/shipments")},
    ]});
    let attempt = call(plan, &[vendor.origin()], &Limits::default()).await;
    let results = results(&attempt);
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
    assert_eq!(results[0]["status"], 200);
    assert_eq!(results[0]["body"], json!({"len": 13}).to_string());

    let seen = vendor.seen();
    assert_eq!(seen.len(), 3);
    // The key is the job's effect key for the request's ordinal: 1 and 3; GET gets none.
    assert_eq!(
        seen[0].idempotency_key.as_deref(),
        Some(effect_key("acme", "job-1", "http/1").as_str())
    );
    assert_eq!(seen[0].body_len, 13);
    assert_eq!(seen[1].idempotency_key, None);
    assert_eq!(
        seen[2].idempotency_key.as_deref(),
        Some(effect_key("acme", "job-1", "http/3").as_str())
    );
    assert_eq!(
        results[0]["idempotency_key"],
        json!(seen[0].idempotency_key)
    );

    // Each request is one line: method, host, path without query, status, bytes, duration.
    let lines = http_lines(&attempt);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let host = format!("localhost:{}", vendor.port);
    assert_eq!(lines[0]["message"], format!("POST {host}/charges -> 200"));
    assert_eq!(field(&lines[0], "path"), "/charges");
    assert_eq!(field(&lines[0], "status"), "200");
    assert_eq!(field(&lines[0], "bytes"), "10");
    assert!(!field(&lines[0], "duration_ms").is_empty());
    assert_eq!(
        attempt
            .http_calls
            .iter()
            .map(|c| c.host.as_str())
            .collect::<Vec<_>>(),
        ["localhost"; 3]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_set_idempotency_key_wins_and_a_retry_sends_the_same_keys() {
    let vendor = Vendor::start().await;
    let plan = json!({"requests": [
        {"method": "POST", "url": vendor.url("/charges"), "headers": [["Idempotency-Key", "mine-1"]]},
        {"method": "POST", "url": vendor.url("/charges")},
    ]});
    let first = job("http-client", json!({}));
    let second = JobContext {
        attempt: 2,
        ..first.clone()
    };
    for job in [&first, &second] {
        let attempt = call_in(
            loopback_runtime(),
            job,
            plan.clone(),
            &[vendor.origin()],
            &Limits::default(),
        )
        .await;
        assert!(results(&attempt).iter().all(|r| r["ok"] == true));
    }
    let keys: Vec<_> = vendor
        .seen()
        .into_iter()
        .map(|s| s.idempotency_key)
        .collect();
    let auto = Some(effect_key("acme", "job-1", "http/2"));
    assert_eq!(
        keys,
        [
            Some("mine-1".into()),
            auto.clone(),
            Some("mine-1".into()),
            auto
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unlisted_host_is_denied_with_the_reason_in_the_log() {
    let vendor = Vendor::start().await;
    // The same host on another port, and over https.
    let allowed = [
        format!("http://localhost:{}", vendor.port.wrapping_add(1).max(1)),
        format!("https://localhost:{}", vendor.port),
    ];
    let plan = json!({"requests": [
        {"method": "POST", "url": vendor.url("/charges"), "body_bytes": 200_000},
        {"url": format!("http://LOCALHOST.:{}/", vendor.port.wrapping_add(2).max(1))},
    ]});
    let attempt = call(plan, &allowed, &Limits::default()).await;
    let results = results(&attempt);
    for r in &results {
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["kind"], "denied", "{r}");
        assert_eq!(r["transient"], false);
    }
    assert!(vendor.seen().is_empty());
    let lines = http_lines(&attempt);
    assert_eq!(lines.len(), 2);
    let reason = field(&lines[0], "reason");
    assert!(
        reason.contains(&format!(
            "http://localhost:{} is not on the tenant's allow-list",
            vendor.port
        )),
        "{reason}"
    );
    assert_eq!(field(&lines[0], "outcome"), "denied");
    assert_eq!(attempt.http_calls[0].host, "other");
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_literals_are_denied_even_where_the_operator_allows_the_network() {
    let vendor = Vendor::start().await;
    let port = vendor.port;
    let urls = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::1]:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        format!("http://2130706433:{port}/"),
    ];
    let plan = json!({"requests": urls.iter().map(|u| json!({"url": u})).collect::<Vec<_>>()});
    let attempt = call(plan, &[vendor.origin()], &Limits::default()).await;
    for (r, line) in results(&attempt).iter().zip(http_lines(&attempt)) {
        assert_eq!(r["kind"], "denied", "{r}");
        let reason = field(&line, "reason");
        assert!(reason.contains("is an IP address"), "{reason}");
    }
    assert!(vendor.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_resolving_to_loopback_is_blocked_unless_the_operator_allows_the_network() {
    let vendor = Vendor::start().await;
    let plan =
        json!({"requests": [{"method": "POST", "url": vendor.url("/charges"), "body": "x"}]});
    // The shared runtime has no operator setting: localhost is on the list, but loopback.
    let attempt = call_in(
        runtime(),
        &job("http-client", json!({})),
        plan.clone(),
        &[vendor.origin()],
        &Limits::default(),
    )
    .await;
    let result = &results(&attempt)[0];
    assert_eq!(result["kind"], "denied", "{result}");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("DestinationIpProhibited")
    );
    let reason = field(&http_lines(&attempt)[0], "reason");
    assert!(reason.contains("loopback address: blocked"), "{reason}");
    assert_eq!(attempt.http_calls[0].outcome.label(), "blocked");
    assert!(vendor.seen().is_empty());

    // With 127.0.0.0/8 allowed by the operator, the same call goes through.
    let attempt = call(plan, &[vendor.origin()], &Limits::default()).await;
    assert_eq!(results(&attempt)[0]["status"], 200);
    assert_eq!(vendor.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_requests_per_attempt_are_capped() {
    let vendor = Vendor::start().await;
    let limits = Limits {
        max_http_requests: 3,
        ..Limits::default()
    };
    let plan = json!({"requests": [{"url": vendor.url("/ping"), "repeat": 5}]});
    let attempt = call(plan, &[vendor.origin()], &limits).await;
    let kinds: Vec<_> = results(&attempt)
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or("ok").to_string())
        .collect();
    assert_eq!(kinds, ["ok", "ok", "ok", "limit", "limit"]);
    assert_eq!(vendor.seen().len(), 3);
    let reason = field(&http_lines(&attempt)[3], "reason");
    assert!(reason.contains("already made its 3 requests"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_over_the_size_limit_is_an_error_to_the_guest() {
    let vendor = Vendor::start().await;
    let limits = Limits {
        max_http_response_bytes: 10_000,
        ..Limits::default()
    };
    let plan = json!({"requests": [
        {"url": vendor.url("/big?bytes=10000")},
        {"url": vendor.url("/big?bytes=10001")},
        {"url": vendor.url("/big?bytes=1000000&chunked=true")},
    ]});
    let attempt = call(plan, &[vendor.origin()], &limits).await;
    let results = results(&attempt);
    assert_eq!(results[0]["body_len"], 10_000, "{:?}", results[0]);
    // Declared too long: refused before any of it is read.
    assert_eq!(results[1]["kind"], "limit", "{:?}", results[1]);
    // Streamed without a length: cut off at the limit, mid-body.
    assert_eq!(results[2]["ok"], false, "{:?}", results[2]);
    let lines = http_lines(&attempt);
    assert_eq!(field(&lines[1], "outcome"), "limit");
    assert_eq!(field(&lines[2], "outcome"), "limit");
    assert!(field(&lines[2], "reason").contains("10000-byte limit"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_body_over_the_size_limit_is_refused() {
    let vendor = Vendor::start().await;
    let limits = Limits {
        max_http_request_bytes: 10_000,
        ..Limits::default()
    };
    let plan = json!({"requests": [
        {"method": "POST", "url": vendor.url("/ok"), "body_bytes": 10_000},
        {"method": "POST", "url": vendor.url("/streamed"), "body_bytes": 200_000},
        {"method": "POST", "url": vendor.url("/declared"), "body_bytes": 200_000,
         "headers": [["content-length", "200000"]]},
    ]});
    let attempt = call(plan, &[vendor.origin()], &limits).await;
    let results = results(&attempt);
    assert_eq!(results[0]["status"], 200, "{:?}", results[0]);
    assert_eq!(results[1]["ok"], false, "{:?}", results[1]);
    assert_eq!(results[2]["kind"], "limit", "{:?}", results[2]);
    let lines = http_lines(&attempt);
    assert_eq!(field(&lines[1], "outcome"), "limit", "{lines:?}");
    assert_eq!(field(&lines[2], "outcome"), "limit", "{lines:?}");
    // The vendor never got a whole oversized body.
    assert!(vendor.seen().iter().all(|s| s.body_len <= 10_000));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_vendor_meets_the_tenants_timeouts_whatever_the_guest_asks() {
    let vendor = Vendor::start().await;
    let limits = Limits {
        http_first_byte_timeout: Duration::from_millis(300),
        http_between_bytes_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let plan = json!({"requests": [
        // The guest asks for a minute: the tenant's 300 ms cap holds.
        {"url": vendor.url("/slow?ms=5000"), "timeout_ms": 60_000},
        // The guest asks for less than the cap: its own bound holds.
        {"url": vendor.url("/slow?ms=5000"), "timeout_ms": 100},
        {"url": vendor.url("/slow?ms=50")},
        {"url": vendor.url("/drip?ms=5000")},
    ]});
    let started = Instant::now();
    let attempt = call(plan, &[vendor.origin()], &limits).await;
    let elapsed = started.elapsed();
    let results = results(&attempt);
    assert_eq!(results[0]["kind"], "timeout", "{:?}", results[0]);
    assert_eq!(results[0]["transient"], true);
    assert_eq!(results[1]["kind"], "timeout", "{:?}", results[1]);
    assert_eq!(results[2]["status"], 200, "{:?}", results[2]);
    assert_eq!(results[3]["ok"], false, "{:?}", results[3]);
    let durations: Vec<u64> = http_lines(&attempt)
        .iter()
        .map(|l| field(l, "duration_ms").parse().unwrap())
        .collect();
    assert!((300..2000).contains(&durations[0]), "{durations:?}");
    assert!(durations[1] < 300, "{durations:?}");
    let lines = http_lines(&attempt);
    assert!(
        field(&lines[3], "reason").contains("between-bytes timeout"),
        "{lines:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_that_never_accepts_meets_the_connect_timeout() {
    // A listener with a backlog of 1 that never accepts: once its queue is full the kernel
    // drops further SYNs, and a new connection hangs in the handshake.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let _listener = socket.listen(1).unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let connecting = tokio::net::TcpStream::connect(("127.0.0.1", port));
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(200), connecting).await {
            fillers.push(stream);
        }
    }
    let limits = Limits {
        http_connect_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let origin = format!("http://localhost:{port}");
    let plan = json!({"requests": [{"url": format!("{origin}/"), "connect_timeout_ms": 60_000}]});
    let started = Instant::now();
    let attempt = call(plan, &[origin], &limits).await;
    let result = &results(&attempt)[0];
    assert_eq!(result["kind"], "timeout", "{result}");
    let line = &http_lines(&attempt)[0];
    assert!(field(line, "reason").contains("connect timeout"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_on_http_counts_against_the_attempts_wall_clock() {
    let vendor = Vendor::start().await;
    let limits = Limits {
        timeout: Duration::from_millis(800),
        ..Limits::default()
    };
    let plan = json!({"requests": [{"url": vendor.url("/slow?ms=20000")}]});
    let started = Instant::now();
    let attempt = call(plan, &[vendor.origin()], &limits).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    match &attempt.outcome {
        Outcome::Failed { kind, .. } => assert_eq!(kind.as_str(), "timeout", "{attempt:?}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // The request in flight is recorded as cut short by the end of the attempt.
    let lines = http_lines(&attempt);
    assert!(
        lines.is_empty() || field(&lines[0], "outcome") == "cancelled",
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_lists_are_validated_on_create_and_patch_naming_the_entry() {
    let server = TestServer::start(Options::default()).await;
    for bad in [
        "api.example.com",
        "https://*",
        "https://127.0.0.1",
        "https://10.0.0.0/8",
        "ftp://files.example.com",
        "https://*.com",
    ] {
        let (status, body) = server
            .post(
                "/v1/tenants",
                ADMIN_TOKEN,
                json!({"name": "acme", "allowed_hosts": ["https://ok.example.com", bad]}),
            )
            .await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("{bad:?}")),
            "{bad}: {body}"
        );
    }
    let (status, body) = server
        .post(
            "/v1/tenants",
            ADMIN_TOKEN,
            json!({"name": "acme", "allowed_hosts": ["https://api.example.com", "https://*.example.org:8443"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // A component importing wasi:http/outgoing-handler passes upload validation.
    let token = body["token"].as_str().unwrap().to_string();
    let (status, uploaded) = server.upload(&token, "caller", "http-client").await;
    assert!((200..300).contains(&status), "{uploaded}");
    let (status, body) = server
        .call(
            reqwest::Method::PATCH,
            "/v1/tenants/acme",
            ADMIN_TOKEN,
            Some(json!({"allowed_hosts": ["https://[::1]"]})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("\"https://[::1]\""),
        "{body}"
    );
    let (status, body) = server
        .call(
            reqwest::Method::PATCH,
            "/v1/tenants/acme",
            ADMIN_TOKEN,
            Some(json!({"limits": {"max_http_requests": 0, "http_first_byte_timeout_ms": 0}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("http_first_byte_timeout_ms")
    );
    let (_, listed) = server.get("/v1/tenants", ADMIN_TOKEN).await;
    assert_eq!(
        listed["tenants"][0]["allowed_hosts"],
        json!(["https://api.example.com", "https://*.example.org:8443"])
    );
    assert_eq!(listed["tenants"][0]["limits"]["max_http_requests"], 50);
    server.stop().await;
}

/// Runs `examples/python-http` with `payload` in the loopback runtime, allowing `allowed`.
async fn call_python(payload: Value, allowed: &[String]) -> Attempt {
    invoke_in(
        loopback_runtime(),
        "python-http",
        &job("python-http", json!({})),
        payload,
        allowed,
        &Limits::default(),
    )
    .await
}

/// The Python example (componentize-py's own `wasi:http` bindings) goes through the same
/// allow-list and gets the same automatic key as a Rust guest.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_example_calls_the_vendor_end_to_end() {
    let vendor = Vendor::start().await;
    let payload = json!({"url": vendor.url("/charges?order=A-1"), "body": {"amount": 500}});
    let attempt = call_python(payload, &[vendor.origin()]).await;

    // `{"amount": 500}`, as Python's json.dumps writes it: 15 bytes.
    let result = json_result(&attempt);
    assert_eq!(result["status"], 200, "{result}");
    assert_eq!(result["body"], json!({"len": 15}).to_string());
    let seen = vendor.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/charges")
    );
    assert_eq!(seen[0].body_len, 15);
    assert_eq!(
        seen[0].idempotency_key.as_deref(),
        Some(effect_key("acme", "job-1", "http/1").as_str())
    );

    // Spool's line for the request, and the handler's own with the status.
    let lines = http_lines(&attempt);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0]["message"],
        format!("POST localhost:{}/charges -> 200", vendor.port)
    );
    let answered = attempt
        .logs
        .iter()
        .map(|l| serde_json::to_value(l).unwrap())
        .find(|l| l["message"] == "vendor answered")
        .unwrap_or_else(|| panic!("no `vendor answered` line: {:?}", attempt.logs));
    assert_eq!(field(&answered, "status"), "200");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_example_fails_permanently_when_denied_and_retries_a_5xx() {
    let vendor = Vendor::start().await;
    let payload = json!({"url": vendor.url("/charges"), "body": {"amount": 500}});
    // Not on this tenant's list: the same host on another port.
    let elsewhere = format!("http://localhost:{}", vendor.port.wrapping_add(1).max(1));
    let attempt = call_python(payload, &[elsewhere]).await;
    match &attempt.outcome {
        Outcome::Failed {
            kind: ErrorKind::Permanent,
            message,
        } => assert!(
            message.contains("HttpRequestDenied") && message.contains("allow-list"),
            "{message}"
        ),
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    assert!(vendor.seen().is_empty());
    let reason = field(&http_lines(&attempt)[0], "reason");
    assert!(
        reason.contains("is not on the tenant's allow-list"),
        "{reason}"
    );

    let payload = json!({"url": vendor.url("/charges?status=503")});
    let attempt = call_python(payload, &[vendor.origin()]).await;
    match &attempt.outcome {
        Outcome::Failed {
            kind: ErrorKind::Error,
            message,
        } => assert!(message.contains("vendor answered 503"), "{message}"),
        other => panic!("expected a retry, got {other:?}"),
    }
    assert_eq!(vendor.seen().len(), 1);
}

/// Through the worker: a tenant's allow-list is its own, a retried job sends the same key,
/// and the requests land in the job's log and in the metrics.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_allow_list_never_applies_to_another_and_retries_resend_the_same_key() {
    let vendor = Vendor::start().await;
    let db = test_db().await;
    let store = &db.store;
    let allowed = store
        .tenant_create_with_hosts(
            "allowed",
            &TenantLimitSpec::default(),
            &[vendor.origin()],
            None,
        )
        .await
        .unwrap();
    let other = store
        .tenant_create_with_hosts(
            "other",
            &TenantLimitSpec::default(),
            &["https://elsewhere.example.com".to_string()],
            None,
        )
        .await
        .unwrap();
    let plan = json!({"requests": [{"method": "POST", "url": vendor.url("/charges"), "body": "{}"}],
                      "then": "retry"});
    let mut ids = Vec::new();
    for tenant in [allowed.id, other.id] {
        put_handler(store, tenant, "http-client").await;
        let job = NewJob {
            max_attempts: Some(3),
            backoff: Some((Duration::from_millis(10), Duration::from_millis(10))),
            ..NewJob::json("http-client", &plan)
        };
        ids.push(spool_tests::factory::enqueue(store, tenant, &[job]).await[0]);
    }
    let metrics = Arc::new(spool::metrics::Metrics::new());
    let background = Background::start(
        store,
        Arc::new(Runtime::new(loopback_config()).unwrap()),
        background::Config {
            metrics: Some(metrics.clone()),
            ..background::Config::default()
        },
    );
    wait_finished(store, allowed.id, &ids[..1], Duration::from_secs(60)).await;
    wait_finished(store, other.id, &ids[1..], Duration::from_secs(60)).await;
    background.stop().await;

    // Three attempts, three requests, one key: the job's effect key for request 1.
    let seen = vendor.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let key = effect_key("allowed", &ids[0].to_string(), "http/1");
    assert!(
        seen.iter()
            .all(|s| s.idempotency_key.as_deref() == Some(key.as_str()))
    );
    assert!(
        seen.iter()
            .all(|s| s.method == "POST" && s.path == "/charges")
    );

    let job = store.job_get(allowed.id, ids[0]).await.unwrap();
    assert_eq!(job.state, JobState::Dead);
    let logged = job.logs.to_string();
    assert!(logged.contains("POST localhost"), "{logged}");

    // The other tenant's identical job was denied every time, and says why.
    let job = store.job_get(other.id, ids[1]).await.unwrap();
    let logged = job.logs.to_string();
    assert!(
        logged.contains("is not on the tenant's allow-list"),
        "{logged}"
    );

    let rendered = metrics.render(store).await;
    assert!(
        rendered.contains(
            r#"spool_http_requests_total{tenant="allowed",host="localhost",outcome="ok"} 3"#
        ),
        "{rendered}"
    );
    assert!(
        rendered.contains(
            r#"spool_http_requests_total{tenant="other",host="other",outcome="denied"} 3"#
        ),
        "{rendered}"
    );
    assert!(rendered.contains("spool_http_request_duration_seconds_bucket"));
}

/// Figures for the issue's closing note, not a check: the time one outbound request adds to
/// an attempt on loopback, against a plain client making the same requests (a new
/// connection each, as Spool makes them). `cargo test -p spool-tests --test all --release --
/// --ignored --nocapture per_request`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement; run it by name"]
async fn per_request_overhead_on_loopback() {
    const N: usize = 200;
    let vendor = Vendor::start().await;
    let origin = [vendor.origin()];
    let limits = Limits {
        max_http_requests: N as u32,
        ..Limits::default()
    };
    let run = async |n: usize| {
        let plan = json!({"requests": [{"url": vendor.url("/ping"), "repeat": n}]});
        let started = Instant::now();
        let attempt = call(plan, &origin, &limits).await;
        let failed: Vec<_> = results(&attempt)
            .into_iter()
            .filter(|r| r["ok"] != true)
            .collect();
        assert!(
            failed.is_empty(),
            "{} failed, first {:?}; {:?}",
            failed.len(),
            failed.first(),
            http_lines(&attempt)
                .iter()
                .find(|l| field(l, "outcome") != "ok")
        );
        started.elapsed()
    };
    run(N).await; // warm: compiled, cached
    let mut empty = Duration::MAX;
    let mut full = Duration::MAX;
    for _ in 0..5 {
        empty = empty.min(run(0).await);
        full = full.min(run(N).await);
    }
    let in_sandbox = (full - empty) / N as u32;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{}/ping", vendor.port);
    let mut plain = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..N {
            client
                .get(&url)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
        }
        plain = plain.min(started.elapsed() / N as u32);
    }
    println!(
        "per request on loopback: {:?} from a guest through Spool (attempt without requests: \
         {empty:?}), {plain:?} from a plain client with a new connection each: overhead {:?}",
        in_sandbox,
        in_sandbox.saturating_sub(plain)
    );
}
