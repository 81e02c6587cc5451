//! The API client as a user runs it: the real `spool` binary (`target/debug/spool`, or
//! `$SPOOL_BIN`) against the real API served in-process on a loopback port over a fresh
//! database, with a real worker where jobs must run.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spool_tests::cli::Run;
use spool_tests::server::{ADMIN_TOKEN, Options, TestServer};
use spool_tests::{components_dir, workspace_root};

/// How long a job may take to reach the state a test waits for.
const PATIENCE: Duration = Duration::from_secs(60);

/// Returns the path of the built component of crate `name`.
fn component_path(name: &str) -> String {
    let path = components_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the guests with `make guests`",
        path.display()
    );
    path.to_str().expect("a UTF-8 path").to_string()
}

/// Spool in-process ([`TestServer`]): the API on a loopback port and, when asked, a worker.
struct Spool {
    url: String,
    server: TestServer,
}

impl Spool {
    async fn start(with_worker: bool) -> Spool {
        let server = TestServer::start(Options {
            worker: with_worker,
        })
        .await;
        Spool {
            url: server.url.clone(),
            server,
        }
    }

    async fn stop(self) {
        self.server.stop().await;
    }

    /// Runs `spool ARGS` as the admin (`SPOOL_ADMIN_TOKEN`).
    async fn admin(&self, args: &[&str]) -> Run {
        run(&self.url, &[("SPOOL_ADMIN_TOKEN", ADMIN_TOKEN)], args).await
    }

    /// Runs `spool ARGS` as the tenant whose token is `token` (`SPOOL_TOKEN`).
    async fn as_tenant(&self, token: &str, args: &[&str]) -> Run {
        run(&self.url, &[("SPOOL_TOKEN", token)], args).await
    }

    /// Creates the tenant `name` with `spool tenant create --json` and returns its token.
    async fn tenant(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec!["tenant", "create", name, "--json"];
        args.extend_from_slice(extra);
        let created = self.admin(&args).await.success().json();
        assert_eq!(created["name"], name);
        created["token"]
            .as_str()
            .expect("the new tenant's token")
            .to_string()
    }

    /// Polls `spool job get ID --json` until the job is in `state`, and returns it.
    async fn wait_for(&self, token: &str, id: &str, state: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let job = self
                .as_tenant(token, &["job", "get", id, "--json"])
                .await
                .success()
                .json();
            if job["state"] == state {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} did not become {state} within {PATIENCE:?}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs the `spool` binary with `args`, `SPOOL_URL=url` and `env`, and none of the client's
/// other settings from the test's own environment.
async fn run(url: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut env = env.to_vec();
    env.push(("SPOOL_URL", url));
    Run::spool(args, &env, None, PATIENCE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_uploads_a_handler_and_enqueues_a_job_that_runs() {
    let spool = Spool::start(true).await;
    let token = spool.tenant("acme", &[]).await;
    let listed = spool.admin(&["tenant", "list"]).await.success();
    assert!(listed.stdout.starts_with("NAME "), "{listed:#?}");
    assert!(
        listed.stdout.lines().any(|l| l.starts_with("acme ")),
        "{listed:#?}"
    );

    let hello = component_path("hello");
    let uploaded = spool
        .as_tenant(&token, &["handler", "upload", "hello", &hello])
        .await
        .success();
    assert!(
        uploaded.stdout.starts_with("uploaded hello v1 (sha256:"),
        "{uploaded:#?}"
    );
    let again = spool
        .as_tenant(&token, &["handler", "upload", "hello", &hello])
        .await
        .success();
    assert!(again.stdout.starts_with("unchanged"), "{again:#?}");
    let handlers = spool
        .as_tenant(&token, &["handler", "list"])
        .await
        .success();
    assert!(
        handlers.stdout.lines().any(|l| l.starts_with("hello ")),
        "{handlers:#?}"
    );
    let detail = spool
        .as_tenant(&token, &["handler", "get", "hello", "--json"])
        .await
        .success()
        .json();
    assert_eq!(detail["version"], 1);
    assert_eq!(detail["versions"].as_array().unwrap().len(), 1);

    let enqueue = [
        "job",
        "enqueue",
        "hello",
        "--payload",
        r#"{"n": 1}"#,
        "--key",
        "order-1",
    ];
    let enqueued = spool.as_tenant(&token, &enqueue).await.success();
    let id = enqueued.id_after("enqueued ");
    assert!(
        enqueued.stdout.trim_end().ends_with("(available)"),
        "{enqueued:#?}"
    );
    let duplicate = spool.as_tenant(&token, &enqueue).await.success();
    assert_eq!(duplicate.id_after("duplicate of "), id);

    let job = spool.wait_for(&token, &id, "completed").await;
    assert_eq!(job["result"], json!({"n": 1}));
    let shown = spool
        .as_tenant(&token, &["job", "get", &id])
        .await
        .success();
    assert!(
        shown.stdout.contains("state      completed\n"),
        "{shown:#?}"
    );
    assert!(
        shown.stdout.contains("result     {\"n\":1}\n"),
        "{shown:#?}"
    );
    assert!(
        shown.stdout.contains("hello from a Spool handler"),
        "{shown:#?}"
    );

    let page = spool
        .as_tenant(&token, &["job", "list", "--json"])
        .await
        .success()
        .json();
    assert_eq!(page["jobs"][0]["id"], id.as_str());
    assert_eq!(page["next_cursor"], Value::Null);
    let table = spool
        .as_tenant(&token, &["job", "list", "--state", "completed"])
        .await
        .success();
    assert!(table.stdout.starts_with("ID "), "{table:#?}");
    assert!(table.stdout.contains(&id), "{table:#?}");

    // The admin token acts for the tenant with --tenant.
    let as_admin = spool
        .admin(&["job", "list", "--tenant", "acme", "--json"])
        .await
        .success()
        .json();
    assert_eq!(as_admin["jobs"][0]["id"], id.as_str());

    let deleted = spool
        .as_tenant(&token, &["handler", "delete", "hello"])
        .await
        .success();
    assert_eq!(deleted.stdout, "deleted handler hello\n");
    spool
        .as_tenant(&token, &["handler", "get", "hello"])
        .await
        .failure(1, "error: Not Found: no handler named \"hello\"");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_file_is_sent_in_chunks_and_list_all_follows_every_cursor() {
    let spool = Spool::start(false).await;
    let token = spool
        .tenant("bulk", &["--limits", r#"{"enqueue_rate": 100000}"#])
        .await;
    let hello = component_path("hello");
    spool
        .as_tenant(&token, &["handler", "upload", "hello", &hello])
        .await
        .success();

    // More than one request's worth, as JSON lines, with a blank line.
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..10_050)
        .map(|i| format!("{}\n", json!({"handler": "hello", "payload": {"i": i}})))
        .collect();
    let jsonl = dir.path().join("jobs.jsonl");
    std::fs::write(&jsonl, format!("\n{lines}")).unwrap();
    let batch = spool
        .as_tenant(&token, &["job", "enqueue-batch", jsonl.to_str().unwrap()])
        .await
        .success();
    assert_eq!(batch.stdout, "enqueued 10050 jobs\n");

    // A JSON array, with --json: the jobs the API answered, in order.
    let array = dir.path().join("jobs.json");
    let jobs = json!([
        {"handler": "hello", "payload": 1, "idempotency_key": "a"},
        {"handler": "hello", "payload": 2, "queue": "other"},
        {"handler": "hello", "payload": 1, "idempotency_key": "a"},
    ]);
    std::fs::write(&array, jobs.to_string()).unwrap();
    let answer = spool
        .as_tenant(
            &token,
            &["job", "enqueue-batch", array.to_str().unwrap(), "--json"],
        )
        .await
        .success()
        .json();
    let answered = answer["jobs"].as_array().unwrap();
    assert_eq!(answered.len(), 3);
    assert_eq!(answered[2]["duplicate"], true);
    assert_eq!(answered[2]["id"], answered[0]["id"]);

    let all = spool
        .as_tenant(&token, &["job", "list", "--all", "--json"])
        .await
        .success()
        .json();
    let ids: std::collections::HashSet<&str> = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 10_052);
    assert_eq!(all["next_cursor"], Value::Null);

    let page = spool
        .as_tenant(
            &token,
            &["job", "list", "--queue", "default", "--limit", "2"],
        )
        .await
        .success();
    assert_eq!(page.stdout.lines().count(), 3, "{page:#?}");
    assert!(page.stderr.contains("--cursor "), "{page:#?}");
    let other = spool
        .as_tenant(&token, &["job", "list", "--queue", "other", "--json"])
        .await
        .success()
        .json();
    let other_id = other["jobs"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(other["jobs"].as_array().unwrap().len(), 1);

    let cancelled = spool
        .as_tenant(&token, &["job", "cancel", &other_id])
        .await
        .success();
    assert_eq!(cancelled.stdout, format!("cancelled {other_id}\n"));
    spool
        .as_tenant(&token, &["job", "cancel", &other_id])
        .await
        .failure(1, "error: Conflict: ");
    let retried = spool
        .as_tenant(&token, &["job", "retry", &other_id])
        .await
        .success();
    assert_eq!(retried.stdout, format!("requeued {other_id} (available)\n"));

    // A tenant whose enqueue rate is below one request's worth: the client slows down and
    // sends smaller chunks rather than failing on 429.
    let slow = spool
        .tenant("slow", &["--limits", r#"{"enqueue_rate": 500}"#])
        .await;
    spool
        .as_tenant(&slow, &["handler", "upload", "hello", &hello])
        .await
        .success();
    let few: String = lines
        .lines()
        .take(1_200)
        .map(|l| format!("{l}\n"))
        .collect();
    let few_path = dir.path().join("few.jsonl");
    std::fs::write(&few_path, few).unwrap();
    let throttled = spool
        .as_tenant(&slow, &["job", "enqueue-batch", few_path.to_str().unwrap()])
        .await
        .success();
    assert_eq!(throttled.stdout, "enqueued 1200 jobs\n");

    // A batch the API refuses enqueues nothing and says so.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"handler\": \"hello\"}\n{\"handler\": \"nope\"}\n").unwrap();
    spool
        .as_tenant(&token, &["job", "enqueue-batch", bad.to_str().unwrap()])
        .await
        .failure(1, "no job was enqueued: Unprocessable Entity: ")
        .failure(1, "no handler named \"nope\"");
    let unparsable = dir.path().join("oops.jsonl");
    std::fs::write(&unparsable, "{\"handler\": \"hello\"}\n{oops\n").unwrap();
    spool
        .as_tenant(
            &token,
            &["job", "enqueue-batch", unparsable.to_str().unwrap()],
        )
        .await
        .failure(1, "oops.jsonl: line 2: not JSON");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_jobs_are_listed_retried_and_discarded() {
    let spool = Spool::start(true).await;
    let token = spool.tenant("grim", &[]).await;
    let hostile = component_path("hostile");
    spool
        .as_tenant(&token, &["handler", "upload", "hostile", &hostile])
        .await
        .success();
    let enqueued = spool
        .as_tenant(
            &token,
            &[
                "job",
                "enqueue",
                "hostile",
                "--payload",
                r#"{"action": "panic"}"#,
                "--max-attempts",
                "1",
            ],
        )
        .await
        .success();
    let id = enqueued.id_after("enqueued ");
    let job = spool.wait_for(&token, &id, "dead").await;
    assert_eq!(job["errors"].as_array().unwrap().len(), 1, "{job}");

    let listed = spool.as_tenant(&token, &["dead", "list"]).await.success();
    let row = listed
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} is not listed: {listed:#?}"));
    assert!(row.contains(" dead "), "{row}");
    assert!(listed.stdout.starts_with("ID "), "{listed:#?}");
    assert!(
        listed
            .stdout
            .lines()
            .next()
            .unwrap()
            .ends_with("LAST ERROR")
    );
    let page = spool
        .as_tenant(&token, &["dead", "list", "--json"])
        .await
        .success()
        .json();
    assert_eq!(page["jobs"][0]["id"], id.as_str());

    // Nothing selected: a usage error, not a redrive of everything.
    spool
        .as_tenant(&token, &["dead", "retry"])
        .await
        .failure(2, "required");
    let retried = spool
        .as_tenant(&token, &["dead", "retry", &id])
        .await
        .success();
    assert_eq!(retried.stdout, "retried 1 dead job\n");

    // It panics again, and is retried by handler.
    spool.wait_for(&token, &id, "dead").await;
    let by_handler = spool
        .as_tenant(&token, &["dead", "retry", "--handler", "hostile", "--json"])
        .await
        .success()
        .json();
    // Once, even though it panics again at once: a bulk retry walks the dead jobs once.
    assert_eq!(by_handler["retried"], 1, "{by_handler}");
    // The API's answer as it came: nothing left to take.
    assert_eq!(by_handler["more"], false, "{by_handler}");
    assert!(by_handler["next_cursor"].is_null(), "{by_handler}");

    spool.wait_for(&token, &id, "dead").await;
    let discarded = spool
        .as_tenant(&token, &["dead", "discard", "--all"])
        .await
        .success();
    assert_eq!(discarded.stdout, "discarded 1 dead job\n");
    let empty = spool.as_tenant(&token, &["dead", "list"]).await.success();
    assert_eq!(empty.stdout, "no dead jobs\n");
    spool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn errors_print_the_problem_on_stderr_and_exit_non_zero() {
    let spool = Spool::start(false).await;
    let token = spool.tenant("oops", &[]).await;

    // A token the API does not know: the problem's title and detail, exit 1.
    let bad = spool.as_tenant("spool_nope", &["job", "list"]).await;
    assert_eq!(bad.code, Some(1), "{bad:#?}");
    assert_eq!(
        bad.stderr,
        "error: Unauthorized: the token is not valid (unknown or revoked)\n"
    );
    assert_eq!(bad.stdout, "");
    // A tenant's token on an admin endpoint.
    run(
        &spool.url,
        &[("SPOOL_ADMIN_TOKEN", &token)],
        &["tenant", "list"],
    )
    .await
    .failure(1, "error: Forbidden: this endpoint needs the admin token");
    spool
        .admin(&["tenant", "create", "oops"])
        .await
        .failure(1, "error: Conflict: a tenant named \"oops\" exists");

    // A handler that does not exist.
    spool
        .as_tenant(&token, &["job", "enqueue", "nope", "--payload", "{}"])
        .await
        .failure(
            1,
            "error: Unprocessable Entity: handler: no handler named \"nope\"",
        );
    spool
        .as_tenant(
            &token,
            &["job", "get", "00000000-0000-0000-0000-000000000000"],
        )
        .await
        .failure(1, "error: Not Found: ");
    // A component of the wrong world: the server's reason.
    spool
        .as_tenant(
            &token,
            &["handler", "upload", "w", &component_path("wrong_world")],
        )
        .await
        .failure(1, "error: Unprocessable Entity: ");

    // Files that are not there.
    let missing = workspace_root()
        .join("target")
        .join("no-such-component.wasm");
    let missing = missing.to_str().unwrap();
    spool
        .as_tenant(&token, &["handler", "upload", "hello", missing])
        .await
        .failure(1, &format!("error: cannot read {missing}: "));
    spool
        .as_tenant(&token, &["job", "enqueue-batch", missing])
        .await
        .failure(1, &format!("error: cannot read {missing}: "));
    spool
        .as_tenant(
            &token,
            &["job", "enqueue", "hello", "--payload-file", missing],
        )
        .await
        .failure(1, &format!("error: cannot read {missing}: "));

    // Bad command-line input and missing settings: exit 2.
    spool
        .as_tenant(&token, &["job", "enqueue", "hello", "--payload", "{oops"])
        .await
        .failure(2, "not JSON");
    spool
        .as_tenant(&token, &["job", "list", "--state", "asleep"])
        .await
        .failure(2, "asleep");
    run(&spool.url, &[], &["job", "list"])
        .await
        .failure(2, "no token: set SPOOL_TOKEN or pass --token");

    // Nothing listening: the URL is named.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    run(&url, &[("SPOOL_TOKEN", &token)], &["job", "list"])
        .await
        .failure(1, &format!("error: cannot reach the Spool API at {url}/"));
    spool.stop().await;
}
