//! The API's hardening (security review of 6fe51aa): what strangers may read, what refusing
//! them costs, bounds on bodies, time and statements, and the review's low findings in the
//! API. Each test names the finding it guards.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spool::api::{ApiConfig, ApiError};
use spool::metrics::Metrics;
use spool::model::NewJob;
use spool::store::StoreError;
use spool_tests::factory::tenant;
use spool_tests::server::{ADMIN_TOKEN, Options, TestServer};
use spool_tests::{cache_dir, spool_bin};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Asserts a problem+json answer with `status`, returning its detail.
fn problem(got: &(u16, Value), status: u16) -> String {
    assert_eq!(got.0, status, "expected {status}, got {} {}", got.0, got.1);
    assert_eq!(got.1["status"], status, "problem body: {}", got.1);
    got.1["detail"].as_str().expect("a detail").to_string()
}

/// A server with tenant `acme` (with `limits`) and its handler `hello`; returns the token.
async fn acme(s: &TestServer, limits: Value) -> String {
    let token = s.tenant("acme", limits).await;
    let uploaded = s.upload(&token, "hello", "hello").await;
    assert_eq!(uploaded.0, 201, "{}", uploaded.1);
    token
}

/// Sends `head` (and whatever body bytes follow it) on a raw connection and returns the
/// status of the answer, read within `within`.
async fn raw_status(url: &str, head: &str, within: Duration) -> u16 {
    let address = url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(address).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(within, conn.read(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

// H1: /metrics.

#[tokio::test]
async fn metrics_on_the_api_listener_need_the_admin_token() {
    let s = TestServer::start(Options::default()).await;
    let token = s.tenant("acme", json!({})).await;
    let anonymous = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(s.get("/metrics", &token).await.0, 403);
    let admin = s
        .http
        .get(format!("{}/metrics", s.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    assert!(admin.text().await.unwrap().contains("spool_queue_stats_up"));
    s.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_without_a_token() {
    let db = spool_tests::db::test_db().await;
    let (api, metrics) = (free_port(), free_port());
    let mut child = Command::new(spool_bin())
        .args(["serve", "--no-worker", "--listen"])
        .arg(format!("127.0.0.1:{api}"))
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{metrics}"))
        .env("DATABASE_URL", &db.url)
        .env("SPOOL_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SPOOL_CACHE_DIR", cache_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting spool serve");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let private = loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{metrics}/metrics"))
            .send()
            .await
        {
            break r;
        }
        assert!(Instant::now() < deadline, "spool serve never listened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(private.status(), 200);
    assert!(
        private
            .text()
            .await
            .unwrap()
            .contains("spool_queue_stats_up")
    );
    let public = http
        .get(format!("http://127.0.0.1:{api}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 401);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn scrapes_read_the_store_at_most_once_per_ttl_and_share_the_reading() {
    let db = spool_tests::db::test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let cached = Arc::new(Metrics::new());
    let before = cached.render(&db.store).await;
    assert!(!before.contains("tenant=\"acme\""), "{before}");
    spool_tests::factory::put_handler(&db.store, t, "hello").await;
    spool_tests::factory::enqueue(&db.store, t, &[NewJob::json("hello", &json!({}))]).await;
    // Scrapes at once, right after: one reading (the first one's), shared.
    let scrapes: Vec<String> = scrape_at_once(cached.clone(), &db.store).await;
    for scrape in &scrapes {
        assert!(!scrape.contains("tenant=\"acme\""), "read again: {scrape}");
    }
    let fresh = Metrics::new().with_stats_ttl(Duration::ZERO);
    assert!(fresh.render(&db.store).await.contains("tenant=\"acme\""));
}

async fn scrape_at_once(metrics: Arc<Metrics>, store: &spool::store::Store) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (metrics, store) = (metrics.clone(), store.clone());
        tasks.spawn(async move { metrics.render(&store).await });
    }
    tasks.join_all().await
}

// M2: refusing bad tokens.

#[tokio::test]
async fn bad_tokens_are_refused_without_asking_the_database_twice() {
    let s = TestServer::start(Options::default()).await;
    let unknown = spool::api::new_token().0;
    assert_eq!(s.get("/v1/jobs", &unknown).await.0, 401);
    // With the database gone, only what needs it fails.
    s.db.store.close().await;
    for token in ["x", "spool_short", &format!("{unknown}x"), &unknown] {
        let refused = s.get("/v1/jobs", token).await;
        problem(&refused, 401);
    }
    let another = spool::api::new_token().0;
    assert_eq!(
        s.get("/v1/jobs", &another).await.0,
        503,
        "a token never seen needs the database"
    );
    s.stop().await;
}

#[tokio::test]
async fn repeated_auth_failures_from_an_address_are_throttled() {
    let s = TestServer::start_api(ApiConfig {
        auth_failures_per_minute: 5,
        ..ApiConfig::default()
    })
    .await;
    let token = s.tenant("acme", json!({})).await;
    assert_eq!(s.get("/v1/jobs", &token).await.0, 200);
    for _ in 0..5 {
        assert_eq!(s.get("/v1/jobs", "nope").await.0, 401);
    }
    let throttled = s
        .http
        .get(format!("{}/v1/jobs", s.url))
        .bearer_auth(spool::api::new_token().0)
        .send()
        .await
        .unwrap();
    assert_eq!(throttled.status(), 429);
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    // Known tokens still pass: the admin's, and a tenant's it has just used.
    assert_eq!(s.get("/v1/tenants", ADMIN_TOKEN).await.0, 200);
    assert_eq!(s.get("/v1/jobs", &token).await.0, 200);
    s.stop().await;
}

// M8: bad input is 4xx.

#[tokio::test]
async fn payloads_with_nul_and_times_out_of_range_are_422() {
    let s = TestServer::start(Options::default()).await;
    let token = acme(&s, json!({})).await;
    let bad = [
        r#"{"handler": "hello", "payload": {"a": "\u0000"}}"#,
        r#"{"handler": "hello", "payload": {"\u0000": 1}}"#,
        r#"{"handler": "hello", "payload": [[["x\u0000y"]]]}"#,
        r#"{"handler": "hello", "run_at": "-5000-01-01T00:00:00Z"}"#,
        r#"{"handler": "hello", "run_at": "+300000-01-01T00:00:00Z"}"#,
        r#"{"handler": "hello", "run_at": "0000-12-31T23:59:59Z"}"#,
        r#"{"handler": "hello", "payload": 1e400}"#,
    ];
    for body in bad {
        let answer = s
            .http
            .post(format!("{}/v1/jobs", s.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let detail: Value = answer.json().await.unwrap();
        assert_eq!(status, 422, "{body}: {detail}");
    }
    let batch = s
        .post(
            "/v1/jobs/batch",
            &token,
            json!({"jobs": [{"handler": "hello"}, {"handler": "hello", "payload": "a\u{0}"}]}),
        )
        .await;
    assert!(problem(&batch, 422).contains("jobs[1]"));
    // Escaped, it is an ordinary string; and bytes go as base64.
    let fine = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "payload": "\\u0000"}),
        )
        .await;
    assert_eq!(fine.0, 201, "{}", fine.1);
    let bytes = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "hello", "payload_base64": "AAE="}),
        )
        .await;
    assert_eq!(bytes.0, 201, "{}", bytes.1);
    s.stop().await;
}

#[tokio::test]
async fn a_value_the_database_refuses_is_a_422_not_a_500() {
    let db = spool_tests::db::test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    spool_tests::factory::put_handler(&db.store, t, "hello").await;
    let mut job = NewJob::json("hello", &json!({}));
    job.payload = br#"{"a": "\u0000"}"#.to_vec();
    let refused = db
        .store
        .job_enqueue_many(t, &[job], None)
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::InvalidValue(_)), "{refused}");
    assert_eq!(ApiError::from(refused).status().as_u16(), 422);
}

// M3: bodies, time and concurrency.

#[tokio::test]
async fn bodies_are_bounded_before_they_are_parsed() {
    let s = TestServer::start(Options::default()).await;
    let token = acme(&s, json!({})).await;
    // Past twice the payload limit: refused unread, even with a field that is not allowed.
    let big = json!({"handler": "hello", "payload": "x".repeat(600 << 10), "bogus": 1});
    problem(&s.post("/v1/jobs", &token, big).await, 413);
    let ids: Vec<String> = (0..40_000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    problem(
        &s.post("/v1/dead/retry", &token, json!({ "ids": ids }))
            .await,
        413,
    );
    // The bound follows the tenant's payload limit.
    let roomy = s
        .tenant("roomy", json!({"max_payload_bytes": 2 << 20}))
        .await;
    assert_eq!(s.upload(&roomy, "hello", "hello").await.0, 201);
    let large = json!({"handler": "hello", "payload": "x".repeat(1 << 20)});
    let enqueued = s.post("/v1/jobs", &roomy, large).await;
    assert_eq!(enqueued.0, 201, "{}", enqueued.1);
    s.stop().await;
}

#[tokio::test]
async fn a_body_that_arrives_too_slowly_times_out() {
    let s = TestServer::start_api(ApiConfig {
        request_timeout: Duration::from_secs(1),
        ..ApiConfig::default()
    })
    .await;
    let token = s.tenant("acme", json!({})).await;
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"handler\""
    );
    let started = Instant::now();
    assert_eq!(
        raw_status(&s.url, &head, Duration::from_secs(10)).await,
        408
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    s.stop().await;
}

#[tokio::test]
async fn requests_past_the_concurrency_limit_are_refused_at_once() {
    let s = TestServer::start_api(ApiConfig {
        max_requests: 1,
        request_timeout: Duration::from_secs(3),
        ..ApiConfig::default()
    })
    .await;
    let token = s.tenant("acme", json!({})).await;
    // One request holds the only place while its body trickles in.
    let address = s.url.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = s.get("/v1/jobs", &token).await;
    problem(&refused, 503);
    drop(slow);
    s.stop().await;
}

// M4: queues per tenant.

#[tokio::test]
async fn a_tenant_has_jobs_in_at_most_max_queues_queues() {
    let s = TestServer::start(Options::default()).await;
    let token = acme(&s, json!({"max_queues": 2})).await;
    let on = |queue: &str| json!({"handler": "hello", "queue": queue});
    assert_eq!(s.post("/v1/jobs", &token, on("q1")).await.0, 201);
    assert_eq!(s.post("/v1/jobs", &token, on("q2")).await.0, 201);
    let third = s.post("/v1/jobs", &token, on("q3")).await;
    assert!(problem(&third, 422).contains("max_queues"));
    assert_eq!(s.post("/v1/jobs", &token, on("q1")).await.0, 201);
    let batch = s
        .post(
            "/v1/jobs/batch",
            &token,
            json!({"jobs": [on("q2"), on("q4")]}),
        )
        .await;
    problem(&batch, 422);
    // Another tenant's queues are its own.
    let other = s.tenant("other", json!({"max_queues": 1})).await;
    assert_eq!(s.upload(&other, "hello", "hello").await.0, 201);
    assert_eq!(s.post("/v1/jobs", &other, on("q3")).await.0, 201);
    s.stop().await;
}

// M1: statements are bounded.

#[tokio::test]
async fn a_request_waiting_on_a_lock_gives_up_with_503() {
    let s = TestServer::start(Options::default()).await;
    use sqlx::Connection as _;
    let mut holder = sqlx::PgConnection::connect(&s.db.url).await.unwrap();
    let mut tx = holder.begin().await.unwrap();
    sqlx::query("LOCK TABLE spool.tenants IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let started = Instant::now();
    let waited = tokio::time::timeout(Duration::from_secs(20), s.get("/v1/tenants", ADMIN_TOKEN))
        .await
        .expect("the request gives up on its own");
    let elapsed = started.elapsed();
    tx.rollback().await.unwrap();
    problem(&waited, 503);
    assert!(
        elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(9),
        "gave up after {elapsed:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn job_lists_filtered_by_handler_queue_or_state_walk_an_index() {
    let db = spool_tests::db::test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(&format!(
        "INSERT INTO spool.job_history (tenant_id, id, queue, state, priority, run_at, handler,
             attempt, max_attempts, backoff_base_ms, backoff_cap_ms, idempotency_key, payload,
             payload_hash, errors, logs, created_at, finished_at)
         SELECT {t}, gen_random_uuid(), 'default', 'completed', 0, now(), 'busy', 1, 1, 1, 1,
                'k' || g, '', '', '[]', '[]', now(), now()
         FROM generate_series(1, 50000) g;
         ANALYZE spool.job_history;"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql(&format!(
        "PREPARE list(bigint, text, text, uuid, bigint, text) AS {}",
        include_str!("../../host/src/store/sql/job_list.sql")
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    // (queue, handler, state, the index expected, by its partitions' name ending).
    let cases = [
        ("NULL", "'rare'", "NULL", "tenant_id_handler_id_idx"),
        ("'rare'", "NULL", "NULL", "tenant_id_queue_id_idx"),
        ("NULL", "NULL", "'cancelled'", "tenant_id_state_id_idx"),
    ];
    for (queue, handler, state, index) in cases {
        let plan: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN EXECUTE list({t}, {queue}, {handler}, NULL, 100, {state})"
        ))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        // The partition holding the rows is walked along the index (empty ones may be
        // scanned: they cost nothing).
        let shown = plan.join("\n");
        assert!(
            plan.iter().any(|l| l.contains("Index Scan")
                && l.contains("job_history")
                && l.contains(index)),
            "{queue} {handler} {state}: {index}: {shown}"
        );
    }
}

// L3 and L2: handler versions.

#[tokio::test]
async fn concurrent_uploads_of_one_handler_each_get_a_version() {
    let db = spool_tests::db::test_db().await;
    let t = tenant(&db.store, "acme", 10).await;
    let mut uploads = tokio::task::JoinSet::new();
    for i in 0..16 {
        let store = db.store.clone();
        uploads.spawn(async move {
            let bytes = format!("component {i}").into_bytes();
            store
                .handler_put(t, "h", &spool::runtime::cache::digest(&bytes), &bytes)
                .await
        });
    }
    let mut versions: Vec<i32> = uploads
        .join_all()
        .await
        .into_iter()
        .map(|r| r.expect("no upload conflicts").version)
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=16).collect::<Vec<_>>());
}

#[tokio::test]
async fn version_numbers_are_never_given_out_twice() {
    let s = TestServer::start(Options::default()).await;
    let token = s.tenant("acme", json!({})).await;
    let mut hello = spool_tests::component("hello");
    assert_eq!(
        s.upload_bytes(&token, "h", hello.clone()).await.1["version"],
        1
    );
    // The same component with a custom section of its own: another digest.
    hello.extend_from_slice(&[0, 4, 3, b'a', b'b', b'c']);
    assert_eq!(
        s.upload_bytes(&token, "h", hello.clone()).await.1["version"],
        2
    );
    let deleted = s
        .call(reqwest::Method::DELETE, "/v1/handlers/h", &token, None)
        .await;
    assert_eq!(deleted.0, 204);
    let again = s.upload(&token, "h", "hello").await;
    assert_eq!(again.0, 201, "{}", again.1);
    assert_eq!(again.1["version"], 3);
    s.stop().await;
}

// L9: tenant creation is atomic.

#[tokio::test]
async fn a_tenant_is_created_with_its_hosts_in_one_step() {
    let s = TestServer::start(Options::default()).await;
    // A second step would fail: any change to a tenant row after its insert is refused.
    s.db.store
        .admin_execute(
            "CREATE FUNCTION pg_temp_refuse() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'no updates'; END $$;
             CREATE TRIGGER refuse BEFORE UPDATE ON spool.tenants
                 FOR EACH ROW EXECUTE FUNCTION pg_temp_refuse();",
        )
        .await
        .unwrap();
    let created = s
        .post(
            "/v1/tenants",
            ADMIN_TOKEN,
            json!({"name": "acme", "allowed_hosts": ["https://api.example.com"]}),
        )
        .await;
    assert_eq!(created.0, 201, "{}", created.1);
    assert_eq!(
        created.1["allowed_hosts"],
        json!(["https://api.example.com"])
    );
    let listed = s.get("/v1/tenants", ADMIN_TOKEN).await;
    assert_eq!(
        listed.1["tenants"][0]["allowed_hosts"],
        json!(["https://api.example.com"])
    );
    s.stop().await;
}

// L13: bulk dead-letter actions are bounded per call.

#[tokio::test]
async fn dead_letters_by_filter_are_taken_at_most_10000_a_call() {
    let s = TestServer::start(Options::default()).await;
    let token = s.tenant("acme", json!({})).await;
    let t = s.db.store.tenant_get("acme").await.unwrap().id;
    s.db.store
        .admin_execute(&format!(
            "INSERT INTO spool.job_history (tenant_id, id, queue, state, priority, run_at,
                 handler, attempt, max_attempts, backoff_base_ms, backoff_cap_ms,
                 idempotency_key, payload, payload_hash, errors, logs, created_at, finished_at)
             SELECT {t}, gen_random_uuid(), 'default', 'dead', 0, now(), 'h', 1, 1, 1, 1,
                    'k' || g, '', '', '[]', '[]', now(), now()
             FROM generate_series(1, 10050) g"
        ))
        .await
        .unwrap();
    let first = s.post("/v1/dead/discard", &token, json!({})).await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["discarded"], 10_000);
    assert_eq!(first.1["more"], true);
    let cursor = first.1["next_cursor"].clone();
    assert!(cursor.is_string());
    let second = s
        .post("/v1/dead/discard", &token, json!({ "cursor": cursor }))
        .await;
    assert_eq!(second.1["discarded"], 50, "{}", second.1);
    assert_eq!(second.1["more"], false);
    assert!(second.1["next_cursor"].is_null());
    let none = s.post("/v1/dead/discard", &token, json!({})).await;
    assert_eq!(none.1["discarded"], 0);
    s.stop().await;
}
