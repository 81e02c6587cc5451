//! The JavaScript proof: a handler built with componentize-js (`examples/js-hello`, by
//! `scripts/build-js.sh`) runs like a Rust one, and what it throws maps to failures the way the
//! Rust SDK maps errors.

use spool::model::{ErrorKind, LogLevel, LogSource, Outcome, WriteOp};
use spool_tests::{json_result, run};

/// Returns a failed outcome's kind and message.
fn failure(outcome: &Outcome) -> (ErrorKind, &str) {
    match outcome {
        Outcome::Failed { kind, message } => (*kind, message),
        Outcome::Ok(_) => panic!("expected a failure, got ok"),
    }
}

#[tokio::test]
async fn a_javascript_handler_runs_and_writes_the_store() {
    let attempt = run("js-hello", serde_json::json!({"name": "ada"})).await;
    let result = json_result(&attempt);
    assert_eq!(result["greeting"], "hello, ada");
    assert_eq!(result["count"], 1);
    assert!(result["effect_key"].as_str().unwrap().starts_with("spool-"));
    let writes: Vec<(&str, &WriteOp)> = attempt
        .store_writes
        .iter()
        .map(|w| (w.key.as_str(), &w.op))
        .collect();
    assert_eq!(
        writes,
        [
            ("greetings-total", &WriteOp::Add(1)),
            ("greetings/ada", &WriteOp::Put(b"1".to_vec())),
        ]
    );
    let greeted = attempt
        .logs
        .iter()
        .find(|l| l.source == LogSource::Log && l.message == "greeted")
        .unwrap_or_else(|| panic!("no `greeted` line: {:?}", attempt.logs));
    assert!(greeted.fields.contains(&("name".into(), "ada".into())));
    assert!(
        attempt
            .logs
            .iter()
            .any(|l| l.source == LogSource::Stdout && l.message.contains("hello, ada")),
        "console.log is captured: {:?}",
        attempt.logs
    );
}

#[tokio::test]
async fn javascript_failures_map_to_retry_and_permanent() {
    let retry = run("js-hello", serde_json::json!({"fail": "retry"})).await;
    assert_eq!(
        failure(&retry.outcome),
        (ErrorKind::Error, "asked to fail with retry")
    );
    let permanent = run("js-hello", serde_json::json!({"fail": "permanent"})).await;
    assert_eq!(
        failure(&permanent.outcome),
        (ErrorKind::Permanent, "asked to fail permanently")
    );
    assert!(permanent.store_writes.is_empty());
}

#[tokio::test]
async fn a_store_error_thrown_in_javascript_is_a_permanent_failure() {
    // The key `greetings/<name>` is over the store's key limit: `put` throws the store's
    // `invalid-key`, which no retry can fix (as `?` on a `StoreError` in the Rust SDK).
    let name = "x".repeat(600);
    let attempt = run("js-hello", serde_json::json!({ "name": name })).await;
    let (kind, message) = failure(&attempt.outcome);
    assert_eq!(kind, ErrorKind::Permanent);
    assert!(message.starts_with("invalid store key"), "{message}");
}

#[tokio::test]
async fn an_uncaught_javascript_exception_logs_its_message_and_stack_and_traps() {
    let attempt = run("js-hello", serde_json::json!({"fail": "throw"})).await;
    // A bug, as a Rust panic is: the attempt traps (and is retried with backoff).
    let (kind, _) = failure(&attempt.outcome);
    assert_eq!(kind, ErrorKind::Trap);
    // The message, then the stack a frame a line, the handler's own frame (its file and line)
    // first and none of the bindings' frames.
    let lines: Vec<&str> = attempt
        .logs
        .iter()
        .filter(|l| l.source == LogSource::Log && l.level == LogLevel::Error)
        .map(|l| l.message.as_str())
        .collect();
    assert_eq!(
        lines.first(),
        Some(&"uncaught exception: Error: asked to throw"),
        "{:#?}",
        attempt.logs
    );
    let frames = &lines[1..];
    assert!(
        frames
            .first()
            .is_some_and(|f| f.starts_with("  run") && f.contains("@app.js:")),
        "{frames:#?}"
    );
    assert!(
        frames.iter().all(|f| !f.contains("initializer.js")),
        "{frames:#?}"
    );
    assert!(attempt.store_writes.is_empty());
}
