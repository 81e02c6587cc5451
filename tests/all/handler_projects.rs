//! A handler from an empty folder to a job that ran, as the README's "Writing a handler" and
//! the guides walk it, per language: `spool new`, `spool build`, `spool run`, then
//! `spool handler upload NAME DIR` to a server and `spool job enqueue`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use spool_tests::cli::Run;
use spool_tests::server::{Options, TestServer};
use spool_tests::target_dir;

/// How long a build may take: a first Rust build compiles the SDK and its dependencies.
const BUILD_PATIENCE: Duration = Duration::from_secs(15 * 60);
/// How long any other command may take.
const PATIENCE: Duration = Duration::from_secs(120);

/// What each language's project builds into, and the folder its build caches between test
/// runs (symlinked into the fresh project, to `shared_cache` under `target/` when given, else
/// to `target/handler-projects/<name>`).
struct Lang {
    name: &'static str,
    component: &'static str,
    cache: &'static str,
    shared_cache: Option<&'static str>,
}

const RUST: Lang = Lang {
    name: "rust",
    component: "target/wasm32-wasip2/release/greeter.wasm",
    cache: "target",
    shared_cache: None,
};

const PYTHON: Lang = Lang {
    name: "python",
    component: "build/greeter.wasm",
    cache: ".venv",
    shared_cache: None,
};

const JS: Lang = Lang {
    name: "js",
    component: "build/greeter.wasm",
    cache: "node_modules",
    shared_cache: None,
};

const C: Lang = Lang {
    name: "c",
    component: "build/greeter.wasm",
    cache: ".spool-tools",
    // The pinned wit-bindgen and wasm-tools `scripts/build-c.sh` installed for `make guests`.
    shared_cache: Some("c-tools"),
};

/// Walks the guide for `lang`.
async fn walk_the_guide(lang: Lang) {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let project = scratch.path().join("greeter");
    let project_arg = project.to_str().expect("a UTF-8 path");
    Run::spool(
        &["new", "greeter", "--lang", lang.name, "--dir", project_arg],
        &[],
        None,
        PATIENCE,
    )
    .await
    .success();
    assert!(project.join("spool.toml").is_file());
    assert!(project.join("README.md").is_file());
    reuse_build_cache(&project, &lang);

    let built = Run::spool(&["build"], &[], Some(&project), BUILD_PATIENCE)
        .await
        .success();
    assert_eq!(
        PathBuf::from(built.stdout.trim()),
        Path::new(".").join(lang.component),
        "{built:#?}"
    );
    assert!(built.stderr.contains("sha256 "), "{built:#?}");
    let run = Run::spool(
        &["run", lang.component, "--payload", r#"{"name":"ada"}"#],
        &[],
        Some(&project),
        PATIENCE,
    )
    .await
    .success()
    .json();
    assert_eq!(run["outcome"], "ok", "{run}");
    assert_eq!(run["result"], json!({"greeting": "hello, ada", "times": 1}));
    assert_eq!(run["store_writes"][0]["key"], "greetings/ada", "{run}");
    assert!(
        run["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "greeted"),
        "{run}"
    );

    let server = TestServer::start(Options { worker: true }).await;
    let token = server.tenant("acme", json!({})).await;
    let env = [("SPOOL_URL", server.url.as_str()), ("SPOOL_TOKEN", &token)];
    Run::spool(
        &["handler", "upload", "greeter", project_arg],
        &env,
        None,
        BUILD_PATIENCE,
    )
    .await
    .success();
    let enqueued = Run::spool(
        &[
            "job",
            "enqueue",
            "greeter",
            "--payload",
            r#"{"name":"ada"}"#,
        ],
        &env,
        None,
        PATIENCE,
    )
    .await
    .success();
    let id = enqueued.id_after("enqueued");
    let job = server
        .wait_job(&token, &id, Duration::from_secs(60), |j| {
            j.state == "completed"
        })
        .await;
    assert_eq!(
        job.result,
        Some(json!({"greeting": "hello, ada", "times": 1}))
    );
    server.stop().await;
}

/// Points the project's build cache (Cargo's `target/`, Python's `.venv`, C's tools) at a
/// folder under the workspace's `target/`, so that a rerun does not compile or download it all
/// again.
fn reuse_build_cache(project: &Path, lang: &Lang) {
    let cache = match lang.shared_cache {
        Some(shared) => target_dir().join(shared),
        None => target_dir().join("handler-projects").join(lang.name),
    };
    std::fs::create_dir_all(&cache).expect("the cache folder");
    std::os::unix::fs::symlink(&cache, project.join(lang.cache)).expect("linking the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_handler_goes_from_spool_new_to_a_completed_job() {
    walk_the_guide(RUST).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_handler_goes_from_spool_new_to_a_completed_job() {
    walk_the_guide(PYTHON).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_handler_goes_from_spool_new_to_a_completed_job() {
    walk_the_guide(JS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_handler_goes_from_spool_new_to_a_completed_job() {
    walk_the_guide(C).await;
}
