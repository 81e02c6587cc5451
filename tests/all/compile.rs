//! Compiling is a metered service (security review 6fe51aa, H2 and L11): compiles run in a
//! process of their own that is killed at its limits, uploads and the worker compile behind
//! gates of their own, each tenant's uploads are rate-limited, and what uploads leave behind
//! (handler versions, compiled artifacts) is bounded.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spool::api::ApiConfig;
use spool::runtime::{CompileConfig, Compiler, Runtime, RuntimeConfig, ValidationError};
use spool_tests::server::TestServer;
use spool_tests::{component, job, json_result, spool_bin};

/// Tests that start compiler processes take turns, so that each one's look at this process's
/// children sees only its own.
static COMPILERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Returns a runtime caching in `dir` that compiles in `spool compile-component` processes
/// under `compile`'s limits.
fn compiling_runtime(dir: &Path, compile: CompileConfig) -> Arc<Runtime> {
    Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.to_path_buf()),
            max_instances: 4,
            compile: CompileConfig {
                compiler: Compiler::Subprocess(spool_bin()),
                ..compile
            },
            ..RuntimeConfig::default()
        })
        .unwrap(),
    )
}

/// Returns a runtime caching in `dir`, compiling in this process.
fn runtime_at(dir: &Path, cache_max_bytes: u64) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.to_path_buf()),
        cache_max_bytes,
        max_instances: 4,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

/// Returns the pids of this process's children that are compiler processes.
fn compiler_children() -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces, so split after its `)`.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if ppid == me && String::from_utf8_lossy(&cmdline).contains("compile-component") {
            found.push(pid);
        }
    }
    found
}

/// Waits until this process has no compiler children, or panics after 10 s.
async fn no_compiler_remains() {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !compiler_children().is_empty() {
        assert!(
            Instant::now() < deadline,
            "compiler processes remain: {:?}",
            compiler_children()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until this process has a compiler child, or panics after 30 s.
async fn a_compiler_runs() {
    let deadline = Instant::now() + Duration::from_secs(30);
    while compiler_children().is_empty() {
        assert!(Instant::now() < deadline, "no compiler process started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Returns `bytes` with a custom section named `tag` added: the same component, another digest.
fn tagged(mut bytes: Vec<u8>, tag: u8) -> Vec<u8> {
    bytes.extend_from_slice(&[0, 2, 1, b'a' + tag]);
    bytes
}

#[tokio::test]
async fn a_compiler_process_compiles_a_component_that_runs() {
    let _turn = COMPILERS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let runtime = compiling_runtime(dir.path(), CompileConfig::default());
    let hello = runtime.load(&component("hello")).await.unwrap();
    assert_eq!(runtime.cache_stats().compiled, 1);
    let attempt = runtime
        .invoke(
            &hello,
            &job("hello", json!({"name": "Ada"})),
            &spool::model::Limits::default(),
            Arc::new(spool::capabilities::store::MemoryBackend::default()),
        )
        .await;
    assert!(json_result(&attempt).to_string().contains("Ada"));
    no_compiler_remains().await;

    // Its artifact went through the sealed cache: a runtime compiling in-process reads it.
    let reader = runtime_at(dir.path(), u64::MAX);
    reader.load(&component("hello")).await.unwrap();
    assert_eq!(reader.cache_stats().compiled, 0);
    assert_eq!(reader.cache_stats().from_disk, 1);

    let invalid = runtime
        .load(&component("hello")[..1000])
        .await
        .err()
        .unwrap();
    assert!(
        matches!(invalid, ValidationError::Invalid(_)),
        "{invalid:?}"
    );
}

#[tokio::test]
async fn an_upload_whose_compile_outlasts_its_timeout_is_refused_and_its_compiler_killed() {
    let _turn = COMPILERS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let runtime = compiling_runtime(
        dir.path(),
        CompileConfig {
            timeout: Duration::from_secs(1),
            ..CompileConfig::default()
        },
    );
    let s = TestServer::start_api_on(ApiConfig::default(), runtime).await;
    let token = s.tenant("acme", json!({})).await;
    // CPython: a minute of compiling on two cores.
    let started = Instant::now();
    let (status, body) = s.upload(&token, "py", "python-hello").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("longer than 1 s"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    no_compiler_remains().await;
    assert_eq!(s.get("/v1/handlers/py", &token).await.0, 404);
    s.stop().await;
}

#[tokio::test]
async fn a_compile_past_its_cpu_or_memory_limit_is_stopped() {
    let _turn = COMPILERS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let python = component("python-hello");
    let cpu_bound = compiling_runtime(
        dir.path(),
        CompileConfig {
            cpu_limit: Duration::from_secs(1),
            ..CompileConfig::default()
        },
    );
    let err = cpu_bound.load(&python).await.err().unwrap();
    assert!(
        matches!(&err, ValidationError::CompileLimit(m) if m.contains("CPU")),
        "{err:?}"
    );
    no_compiler_remains().await;

    let memory_bound = compiling_runtime(
        dir.path(),
        CompileConfig {
            memory_bytes: 64 << 20,
            ..CompileConfig::default()
        },
    );
    let err = memory_bound.load(&python).await.err().unwrap();
    assert!(
        matches!(&err, ValidationError::CompileLimit(m) if m.contains("memory")),
        "{err:?}"
    );
    no_compiler_remains().await;
}

#[tokio::test]
async fn uploads_wait_behind_their_own_gate_and_the_worker_does_not() {
    let _turn = COMPILERS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let runtime = compiling_runtime(
        dir.path(),
        CompileConfig {
            upload_slots: 1,
            upload_queue: 1,
            upload_wait: Duration::from_millis(300),
            ..CompileConfig::default()
        },
    );
    let s = TestServer::start_api_on(ApiConfig::default(), runtime.clone()).await;
    let token = s.tenant("acme", json!({})).await;
    let slow = {
        let (url, token) = (s.url.clone(), token.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .put(format!("{url}/v1/handlers/py"))
                .bearer_auth(token)
                .body(component("python-hello"))
                .send()
                .await
        })
    };
    a_compiler_runs().await;

    // The queue's one place: waits its bounded time, then 503 with Retry-After.
    let waited = upload_response(&s, &token, "greet", component("hello")).await;
    assert_eq!(waited.status(), 503);
    let retry_after: u64 = waited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=30).contains(&retry_after),
        "Retry-After: {retry_after}"
    );

    // The worker's cache misses compile meanwhile, behind their own gate.
    let loaded = tokio::time::timeout(
        Duration::from_secs(30),
        runtime.load(&component("send-receipt")),
    )
    .await
    .expect("the worker's compile is not held up by an upload's");
    loaded.unwrap();

    // A client that gives up takes its compiler with it.
    slow.abort();
    no_compiler_remains().await;
    s.stop().await;
}

async fn upload_response(
    s: &TestServer,
    token: &str,
    name: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    s.http
        .put(format!("{}/v1/handlers/{name}", s.url))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_upload_flood_is_refused_past_the_tenants_budget_while_others_upload() {
    let s = TestServer::start_api(ApiConfig {
        uploads_per_minute: 3,
        ..ApiConfig::default()
    })
    .await;
    let flooder = s.tenant("flooder", json!({})).await;
    let other = s.tenant("other", json!({})).await;
    for i in 0..3 {
        let (status, body) = s.upload(&flooder, "h", "hello").await;
        assert!(
            status == 201 || status == 200,
            "upload {i}: {status} {body}"
        );
    }
    let refused = upload_response(&s, &flooder, "h", tagged(component("hello"), 0)).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("upload rate"),
        "{body}"
    );

    let (status, body) = s.upload(&other, "h", "hello").await;
    assert_eq!(status, 201, "another tenant's budget is its own: {body}");
    s.stop().await;
}

#[tokio::test]
async fn old_versions_are_pruned_but_one_a_pending_job_is_pinned_to_survives() {
    let s = TestServer::start_api(ApiConfig {
        handler_versions_kept: 2,
        ..ApiConfig::default()
    })
    .await;
    let token = s.tenant("acme", json!({})).await;
    assert_eq!(s.upload(&token, "h", "hello").await.0, 201);
    let (status, pinned) = s
        .post(
            "/v1/jobs",
            &token,
            json!({"handler": "h", "payload": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(status, 201, "{pinned}");
    for tag in 0..4 {
        let (status, body) = s
            .upload_bytes(&token, "h", tagged(component("hello"), tag))
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["version"], tag + 2);
    }
    let (_, shown) = s.get("/v1/handlers/h", &token).await;
    let versions: Vec<i64> = shown["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(
        versions,
        [5, 4, 1],
        "the newest two, and version 1 for the pending job"
    );
    let tenant = s.db.store.tenant_get("acme").await.unwrap();
    let component_bytes =
        s.db.store
            .handler_component(tenant.id, "h", 1)
            .await
            .unwrap();
    assert_eq!(component_bytes, component("hello"));
    s.stop().await;
}

// Security review 6fe51aa, L11.
#[tokio::test]
async fn an_artifact_renamed_to_stand_in_for_another_component_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let hello = component("hello");
    let receipt = component("send-receipt");
    runtime_at(dir.path(), u64::MAX).load(&hello).await.unwrap();
    let hello_digest = spool::runtime::cache::digest(&hello);
    let receipt_digest = spool::runtime::cache::digest(&receipt);
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(rest) = name.strip_prefix(&hello_digest) {
            std::fs::rename(
                entry.path(),
                dir.path().join(format!("{receipt_digest}{rest}")),
            )
            .unwrap();
        }
    }
    let again = runtime_at(dir.path(), u64::MAX);
    let loaded = again.load(&receipt).await.unwrap();
    assert_eq!(loaded.digest(), receipt_digest);
    assert_eq!(
        again.cache_stats().from_disk,
        0,
        "the renamed file is refused"
    );
    assert_eq!(again.cache_stats().compiled, 1);
}

#[tokio::test]
async fn the_disk_cache_evicts_the_least_recently_used_past_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let artifacts = |dir: &Path| -> Vec<(String, u64)> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension() == Some("cwasm".as_ref()))
            .map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                (name, e.metadata().unwrap().len())
            })
            .collect()
    };
    let (hello, receipt) = (component("hello"), component("send-receipt"));
    let sizes = tempfile::tempdir().unwrap();
    let unbounded = runtime_at(sizes.path(), u64::MAX);
    unbounded.load(&hello).await.unwrap();
    let hello_size = artifacts(sizes.path())[0].1;
    unbounded.load(&receipt).await.unwrap();
    let both: u64 = artifacts(sizes.path()).iter().map(|(_, len)| len).sum();
    // Room for send-receipt's artifact, not for both.
    let cap = both - hello_size / 2;
    runtime_at(dir.path(), cap).load(&hello).await.unwrap();
    let bounded = runtime_at(dir.path(), cap);
    bounded.load(&receipt).await.unwrap();
    let kept = artifacts(dir.path());
    let receipt_digest = spool::runtime::cache::digest(&receipt);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].0.starts_with(&receipt_digest), "{kept:?}");
    let again = runtime_at(dir.path(), cap);
    again.load(&hello).await.unwrap();
    assert_eq!(again.cache_stats().compiled, 1, "hello was evicted");
}
