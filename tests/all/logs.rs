//! Structured logs of a real `spool worker` process: each attempt logs a start and an end
//! event with fixed field names, the guest's own lines come out with the same job fields,
//! and they stay stored, bounded, on the job.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use spool::model::{JobState, NewJob};
use spool_tests::db::{TestDb, test_db, wait_finished};
use spool_tests::factory::{enqueue, tenant_with_handlers};
use spool_tests::{cache_dir, spool_bin};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};
use uuid::Uuid;

/// Starts `spool worker` with `SPOOL_LOG=info` and `extra` arguments, its stderr piped.
fn spawn_worker(db: &TestDb, extra: &[&str]) -> (Child, Lines<BufReader<ChildStderr>>) {
    let bin = spool_bin();
    let mut child = Command::new(&bin)
        .args(["worker", "--slots", "2", "--no-maintenance"])
        .args(extra)
        .env("DATABASE_URL", &db.url)
        .env("SPOOL_CACHE_DIR", cache_dir())
        .env("SPOOL_LOG", "info")
        .env_remove("SPOOL_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}; `make test` builds it first", bin.display()));
    let stderr = child.stderr.take().expect("stderr is piped");
    (child, BufReader::new(stderr).lines())
}

/// Stops the worker with SIGTERM and waits for it to exit cleanly.
async fn stop(mut child: Child) {
    let pid = child.id().expect("the worker is running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the worker exits on SIGTERM")
        .unwrap();
    assert!(exited.success(), "{exited}");
}

/// Reads lines until `done` holds for the lines read so far, or panics at the deadline.
async fn read_until(
    lines: &mut Lines<BufReader<ChildStderr>>,
    within: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut read = Vec::new();
    while !done(&read) {
        match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => read.push(line),
            Ok(Ok(None)) => panic!("the worker exited; it wrote:\n{}", read.join("\n")),
            Ok(Err(e)) => panic!("reading the worker's stderr: {e}"),
            Err(_) => panic!("timed out; the worker wrote:\n{}", read.join("\n")),
        }
    }
    read
}

/// Returns the events about job `id`, in order.
fn events_of(events: &[Value], id: Uuid) -> Vec<&Value> {
    let id = id.to_string();
    events
        .iter()
        .filter(|e| e["job.id"].as_str() == Some(id.as_str()))
        .collect()
}

fn find<'a>(events: &[&'a Value], message: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["message"] == message)
        .unwrap_or_else(|| panic!("no {message:?} event in {events:#?}"))
}

fn assert_job_fields(event: &Value, id: Uuid, handler: &str) {
    assert_eq!(event["job.id"], json!(id.to_string()), "{event}");
    assert_eq!(event["job.handler"], json!(handler), "{event}");
    assert_eq!(event["tenant"], json!("acme"), "{event}");
    assert_eq!(event["queue"], json!("default"), "{event}");
    assert_eq!(event["attempt"], json!(1), "{event}");
}

#[tokio::test]
async fn json_logs_carry_the_fixed_job_fields_and_the_guests_own_lines() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["hello", "hostile"]).await;
    let hello = NewJob::json("hello", &json!({"greeting": "hi"}));
    let permanent = NewJob::json("hostile", &json!({"action": "permanent"}));
    let ids = enqueue(&db.store, t, &[hello, permanent]).await;
    let (hello_id, failing_id) = (ids[0], ids[1]);

    let (child, mut lines) = spawn_worker(&db, &["--log-format", "json"]);
    let needles = [
        format!("\"job.id\":\"{hello_id}\""),
        format!("\"job.id\":\"{failing_id}\""),
    ];
    let lines = read_until(&mut lines, Duration::from_secs(60), |read| {
        needles.iter().all(|needle| {
            read.iter().any(|l| {
                l.contains(needle.as_str())
                    && (l.contains("\"attempt finished\"") || l.contains("\"job dead-lettered\""))
            })
        })
    })
    .await;
    stop(child).await;

    // Every line is one JSON object.
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(events.iter().all(Value::is_object));

    let ok = events_of(&events, hello_id);
    let started = find(&ok, "attempt started");
    assert_job_fields(started, hello_id, "hello");
    assert_eq!(started["level"], "INFO");
    let finished = find(&ok, "attempt finished");
    assert_job_fields(finished, hello_id, "hello");
    assert_eq!(finished["outcome"], "ok");
    assert!(finished.get("error.kind").is_none(), "{finished}");
    assert!(
        finished["fuel.consumed"].as_u64().unwrap() > 0,
        "{finished}"
    );
    assert!(
        finished["duration_ms"].as_f64().unwrap() > 0.0,
        "{finished}"
    );

    // The guest's `log` call and its stdout line, with the job's fields, in between.
    let logged = find(&ok, "hello from a Spool handler");
    assert_job_fields(logged, hello_id, "hello");
    assert_eq!(logged["target"], "spool::guest");
    assert_eq!(logged["level"], "INFO");
    assert_eq!(logged["source"], "log");
    let guest_fields: HashMap<String, String> =
        serde_json::from_str(logged["fields"].as_str().unwrap()).unwrap();
    assert_eq!(guest_fields["job.id"], hello_id.to_string());
    let printed = ok
        .iter()
        .find(|e| e["source"] == "stdout")
        .unwrap_or_else(|| panic!("no stdout line in {ok:#?}"));
    assert_job_fields(printed, hello_id, "hello");
    assert!(
        printed["message"]
            .as_str()
            .unwrap()
            .starts_with("hello: echoing")
    );
    let position = |e: &Value| ok.iter().position(|x| *x == e).unwrap();
    assert!(position(started) < position(logged) && position(logged) < position(finished));

    let failed = events_of(&events, failing_id);
    assert_job_fields(find(&failed, "attempt started"), failing_id, "hostile");
    let end = find(&failed, "attempt failed");
    assert_job_fields(end, failing_id, "hostile");
    assert_eq!(end["level"], "WARN");
    assert_eq!(end["outcome"], "permanent");
    assert_eq!(end["error.kind"], "permanent");
    assert!(end["fuel.consumed"].is_u64(), "{end}");
    assert!(end["duration_ms"].is_f64(), "{end}");
    let dead = find(&failed, "job dead-lettered");
    assert_eq!(dead["error.kind"], "permanent");
    assert_eq!(
        db.store.job_get(t, failing_id).await.unwrap().state,
        JobState::Dead
    );
}

#[tokio::test]
async fn guest_logs_stay_stored_on_the_job_bounded_and_the_human_format_names_the_fields() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["hello", "hostile"]).await;
    let hello = NewJob::json("hello", &json!({}));
    // 1 MiB through `log` and as much to stdout: far past the 64 KiB a job keeps.
    let chatty = NewJob::json("hostile", &json!({"action": "spam-logs", "mb": 1}));
    let ids = enqueue(&db.store, t, &[hello, chatty]).await;

    let (child, mut lines) = spawn_worker(&db, &[]);
    let needles: Vec<String> = ids.iter().map(|id| format!("job.id={id}")).collect();
    let read = read_until(&mut lines, Duration::from_secs(60), |read| {
        needles.iter().all(|needle| {
            read.iter()
                .any(|l| l.contains(needle.as_str()) && l.contains("attempt finished"))
        })
    })
    .await;
    wait_finished(&db.store, t, &ids, Duration::from_secs(30)).await;
    stop(child).await;

    let finished = read
        .iter()
        .find(|l| l.contains(&needles[0]) && l.contains("attempt finished"))
        .unwrap();
    for field in [
        "job.handler=hello",
        "tenant=acme",
        "queue=default",
        "attempt=1",
        "outcome=\"ok\"",
        "fuel.consumed=",
        "duration_ms=",
    ] {
        assert!(finished.contains(field), "{field} missing from {finished}");
    }
    // The guest's lines are bounded in the process's log too: the job keeps at most 64 KiB.
    let guest_lines = read
        .iter()
        .filter(|l| l.contains("spool::guest") && l.contains(&needles[1]))
        .count();
    assert!(
        (1..200).contains(&guest_lines),
        "{guest_lines} guest lines logged"
    );

    let hello = db.store.job_get(t, ids[0]).await.unwrap();
    let logs = hello.logs.as_array().expect("logs are a JSON array");
    assert!(
        logs.iter()
            .any(|l| l["message"] == "hello from a Spool handler" && l["source"] == "log"),
        "{logs:?}"
    );
    let chatty = db.store.job_get(t, ids[1]).await.unwrap();
    assert_eq!(chatty.state, JobState::Completed);
    let logs = chatty.logs.as_array().expect("logs are a JSON array");
    let kept: usize = logs
        .iter()
        .map(|l| l["message"].as_str().unwrap_or("").len())
        .sum();
    assert!(kept <= 64 << 10, "{kept} bytes kept");
    let last = logs.last().expect("some lines are kept");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .starts_with("log truncated"),
        "{last}"
    );
}
