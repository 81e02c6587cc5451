//! The embedded default, as a newcomer meets it: `spool dev` and `spool demo` with no
//! `DATABASE_URL`, each starting a private PostgreSQL of its own from nothing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spool_tests::{cache_dir, component, components_dir, spool_bin, terminate};

/// Reads `spool dev`'s stdout until it has printed the URL and the tenant token.
/// The rest of stdout is drained in the background, so that the server never writes to a
/// closed pipe.
fn read_banner(stdout: impl std::io::Read + Send + 'static) -> (String, String, String) {
    let (mut url, mut admin, mut token) = (None, None, None);
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next() {
        let line = line.expect("spool dev's stdout");
        let value = |prefix: &str| {
            line.trim()
                .strip_prefix(prefix)
                .map(|v| v.split_whitespace().next().unwrap_or_default().to_string())
        };
        url = url.or(value("export SPOOL_URL="));
        admin = admin.or(value("export SPOOL_ADMIN_TOKEN="));
        token = token.or(value("export SPOOL_TOKEN="));
        if let (Some(u), Some(a), Some(t)) = (&url, &admin, &token) {
            let banner = (u.clone(), a.clone(), t.clone());
            std::thread::spawn(move || lines.for_each(drop));
            return banner;
        }
    }
    panic!("spool dev exited before printing its URL and tokens");
}

/// Sends `GET url` as `token` and returns the JSON answer.
async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// A `spool dev` process and what it printed.
struct Dev {
    child: std::process::Child,
    url: String,
    admin: String,
    token: String,
}

/// Starts `spool dev` on the private cluster under `dir` and waits for its banner.
async fn start_dev(dir: &std::path::Path) -> Dev {
    let mut child = Command::new(spool_bin())
        .args(["dev", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir)
        .env_remove("DATABASE_URL")
        .env("SPOOL_CACHE_DIR", cache_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting spool dev");
    let stdout = child.stdout.take().unwrap();
    let (url, admin, token) = tokio::task::spawn_blocking(move || read_banner(stdout))
        .await
        .unwrap();
    assert_ne!(admin, token);
    Dev {
        child,
        url,
        admin,
        token,
    }
}

/// Stops `spool dev` with SIGTERM and asserts that it and its database stopped cleanly.
async fn stop_dev(dev: Dev, dir: &std::path::Path) {
    let status = terminate(dev.child).await;
    assert!(status.success(), "spool dev exited with {status}");
    assert!(
        !dir.join("pg/data/postmaster.pid").exists(),
        "the private PostgreSQL is still running"
    );
}

#[tokio::test]
async fn spool_dev_starts_from_nothing_serves_a_job_and_keeps_it_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dev = start_dev(dir.path()).await;
    let (url, token) = (&dev.url, &dev.token);

    let http = reqwest::Client::new();
    let upload = http
        .put(format!("{url}/v1/handlers/hello"))
        .bearer_auth(token)
        .body(component("hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
    let enqueued: Value = http
        .post(format!("{url}/v1/jobs"))
        .bearer_auth(token)
        .json(&json!({"handler": "hello", "payload": {"name": "dev"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = enqueued["id"].as_str().expect("a job id").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = get_json(&http, &format!("{url}/v1/jobs/{id}"), token).await;
        if job["state"] == "completed" {
            assert!(job["result"].is_object(), "{job}");
            break;
        }
        assert!(Instant::now() < deadline, "the job never completed: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The admin token manages tenants; the printed tenant exists.
    let tenants = get_json(&http, &format!("{url}/v1/tenants"), &dev.admin).await;
    assert_eq!(tenants["tenants"][0]["name"], "dev");
    // SIGTERM: the server stops, and so does its database.
    stop_dev(dev, dir.path()).await;

    // Started again on the same directory: the same cluster, migrated already, with the job.
    let again = start_dev(dir.path()).await;
    let job = get_json(&http, &format!("{}/v1/jobs/{id}", again.url), &again.token).await;
    assert_eq!(job["state"], "completed", "{job}");
    stop_dev(again, dir.path()).await;
}

/// Runs `spool demo` on the private cluster under `dir` and asserts its summary.
async fn run_demo(dir: &std::path::Path) {
    let dir = dir.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(spool_bin())
            .args(["demo", "--dir"])
            .arg(dir)
            .arg("--components")
            .arg(components_dir())
            .env_remove("DATABASE_URL")
            .env("SPOOL_CACHE_DIR", cache_dir())
            .output()
            .expect("running spool demo")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "spool demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "orders fulfilled       23",
        "receipts sent          23",
        "cards charged          23",
        "duplicate=true",
        "dead-lettered          1: order-A-0013",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[tokio::test]
async fn the_demo_runs_twice_on_the_embedded_default_and_spool_dev_after_it() {
    let dir = tempfile::tempdir().unwrap();
    run_demo(dir.path()).await;
    run_demo(dir.path()).await;
    // `spool dev` on the demo's cluster sees both shops beside its own tenant.
    let dev = start_dev(dir.path()).await;
    let http = reqwest::Client::new();
    let tenants = get_json(&http, &format!("{}/v1/tenants", dev.url), &dev.admin).await;
    let names: Vec<&str> = tenants["tenants"]
        .as_array()
        .expect("a tenant list")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names.len(), 3, "{tenants}");
    assert_eq!(names.iter().filter(|n| n.starts_with("shop-")).count(), 2);
    assert!(names.contains(&"dev"), "{tenants}");
    stop_dev(dev, dir.path()).await;
}

#[test]
fn spool_serve_refuses_bad_settings_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spool.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nworkers = 3\n").unwrap();
    let serve = |args: &[&str], envs: &[(&str, &str)]| {
        let mut command = Command::new(spool_bin());
        command
            .arg("serve")
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("SPOOL_ADMIN_TOKEN");
        for (k, v) in envs {
            command.env(k, v);
        }
        let output = command.output().expect("running spool serve");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?} should fail at start"
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let url = ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none");
    let token = ("SPOOL_ADMIN_TOKEN", "a-long-enough-admin-token-0123456789");
    assert!(serve(&[], &[token]).contains("DATABASE_URL"));
    assert!(serve(&[], &[url]).contains("SPOOL_ADMIN_TOKEN"));
    assert!(serve(&[], &[url, ("SPOOL_ADMIN_TOKEN", "short")]).contains("at least 32"));
    assert!(serve(&["--listen", "localhost"], &[url, token]).contains("--listen"));
    let bad_file = serve(&["--config", file.to_str().unwrap()], &[url, token]);
    assert!(
        bad_file.contains("spool.toml") && bad_file.contains("workers"),
        "{bad_file}"
    );
    assert!(serve(&["--slots", "0"], &[url, token]).contains("slots"));
}
