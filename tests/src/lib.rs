//! Shared helpers for Spool's integration tests: where the built components and the `spool`
//! binary are, the runtimes tests run them in, and (in the modules) databases, rows, a worker
//! in the background and a server.

pub mod background;
pub mod cli;
pub mod db;
pub mod factory;
pub mod server;
pub mod vendor;

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use spool::capabilities::store::MemoryBackend;
use spool::model::{DEFAULT_QUEUE, JobContext, Limits};
use spool::runtime::{Attempt, Prepared, Runtime, RuntimeConfig};

/// How often [`eventually`] checks.
const POLL: Duration = Duration::from_millis(20);

/// Waits for something to happen: calls `check` every 20 ms until it returns `Ok`, and returns
/// its value.
///
/// # Panics
///
/// When `within` passes first, naming `what` and the last `Err` `check` returned (say, the
/// state a job is stuck in).
pub async fn eventually<T, E, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}; last seen: {last}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Returns the `spool` binary: `$SPOOL_BIN`, or `debug/spool` in the target directory (which
/// `make test` builds before the tests run).
///
/// # Panics
///
/// When there is no file there, saying how to build it.
pub fn spool_bin() -> PathBuf {
    let path = std::env::var_os("SPOOL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug").join("spool"));
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p spool` (`make test` does), or point \
         SPOOL_BIN at a spool binary",
        path.display()
    );
    path
}

/// Returns the workspace's root directory.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Returns the build's target directory: `$CARGO_TARGET_DIR`, or `target/` of the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Returns the directory the build puts guest components in.
pub fn components_dir() -> PathBuf {
    target_dir().join("wasm32-wasip2").join("release")
}

/// Returns the directory every test's runtime (and every `spool` process a test starts, as
/// `SPOOL_CACHE_DIR`) caches compiled components in, so that reruns do not compile them again.
pub fn cache_dir() -> PathBuf {
    components_dir().join("spool-test-cache")
}

/// Returns the bytes of the component built from the crate `name` (`hello`, `hostile`, ...).
///
/// # Panics
///
/// When the component has not been built: `make guests` builds them all.
pub fn component(name: &str) -> Vec<u8> {
    let path = components_dir().join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the guest components first with `make guests`",
            path.display()
        )
    })
}

/// A runtime shared by all tests of one test binary that invoke components directly, caching
/// compiled components in [`cache_dir`].
pub fn runtime() -> &'static Runtime {
    static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
        let defaults = RuntimeConfig::default();
        Runtime::new(RuntimeConfig {
            cache_dir: Some(cache_dir()),
            // Room for tests that need a guest to outlast its deadline rather than its fuel.
            max_limits: Limits {
                fuel: 1_000_000_000_000,
                ..defaults.max_limits
            },
            ..defaults
        })
        .expect("building the shared test runtime")
    });
    &RUNTIME
}

/// How many sandboxes a [`test_runtime`] runs at once.
pub const TEST_MAX_INSTANCES: u32 = 16;

/// Builds a runtime of one test's own for a worker or a server, caching compiled components in
/// [`cache_dir`] and running at most [`TEST_MAX_INSTANCES`] sandboxes.
///
/// A fresh one per call rather than [`runtime`]: its sandbox count is the test's alone, so
/// that what a test reads of it (its metrics, say) is not moved by tests running alongside.
pub fn test_runtime() -> Arc<Runtime> {
    Arc::new(
        Runtime::new(RuntimeConfig {
            cache_dir: Some(cache_dir()),
            max_instances: TEST_MAX_INSTANCES,
            ..RuntimeConfig::default()
        })
        .expect("building a test runtime"),
    )
}

/// Returns a job for `handler` with a JSON `payload`, on its first attempt.
pub fn job(handler: &str, payload: serde_json::Value) -> JobContext {
    JobContext {
        id: "job-1".into(),
        tenant: "acme".into(),
        handler: handler.into(),
        queue: DEFAULT_QUEUE.into(),
        payload: serde_json::to_vec(&payload).expect("JSON serializes"),
        attempt: 1,
        max_attempts: 20,
        idempotency_key: "job-1".into(),
    }
}

/// Loads the component `name` into the shared runtime.
pub async fn load(name: &str) -> Arc<Prepared> {
    runtime()
        .load(&component(name))
        .await
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// Runs one attempt of `name` with `payload` under `limits`, against an empty store.
pub async fn run_with(name: &str, payload: serde_json::Value, limits: &Limits) -> Attempt {
    let handler = load(name).await;
    runtime()
        .invoke(
            &handler,
            &job(name, payload),
            limits,
            Arc::new(MemoryBackend::default()),
        )
        .await
}

/// Runs one attempt of `name` with `payload` under the default limits.
pub async fn run(name: &str, payload: serde_json::Value) -> Attempt {
    run_with(name, payload, &Limits::default()).await
}

/// Returns an `ok` attempt's result parsed as JSON.
///
/// # Panics
///
/// When the attempt failed or its result is not JSON.
pub fn json_result(attempt: &Attempt) -> serde_json::Value {
    match &attempt.outcome {
        spool::model::Outcome::Ok(bytes) => {
            serde_json::from_slice(bytes).expect("the result is JSON")
        }
        failed => panic!("expected ok, got {failed:?}; logs: {:?}", attempt.logs),
    }
}

/// Sends SIGTERM to `child` (a `spool` process) and waits, off the async threads, for it to
/// exit; returns how it exited.
///
/// # Panics
///
/// When the signal cannot be sent or the wait fails.
pub async fn terminate(mut child: std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("running kill");
    assert!(sent.success(), "kill -TERM {pid} failed");
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("the waiting thread")
        .expect("waiting for the process")
}
