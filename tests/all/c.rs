//! The C proof: a handler built with wit-bindgen, clang and wasm-tools (`examples/c-hello`, by
//! `scripts/build-c.sh`) runs like a Rust one, and its failures and traps map as the Rust SDK's.

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
async fn a_c_handler_runs_counts_and_logs() {
    let attempt = run("c-hello", serde_json::json!({"name": "ada"})).await;
    let result = json_result(&attempt);
    assert_eq!(
        result,
        serde_json::json!({"greeting": "Hello, ada!", "times": 1})
    );
    let writes: Vec<(&str, &WriteOp)> = attempt
        .store_writes
        .iter()
        .map(|w| (w.key.as_str(), &w.op))
        .collect();
    assert_eq!(writes, [("greetings/ada", &WriteOp::Add(1))]);
    let greeted = attempt
        .logs
        .iter()
        .find(|l| l.source == LogSource::Log && l.message == "greeted")
        .unwrap_or_else(|| panic!("no `greeted` line: {:?}", attempt.logs));
    assert!(greeted.fields.contains(&("times".into(), "1".into())));
    assert!(
        attempt
            .logs
            .iter()
            .any(|l| l.source == LogSource::Stdout && l.message.starts_with("Hello, ada!")),
        "printf is captured: {:?}",
        attempt.logs
    );
}

#[tokio::test]
async fn c_failures_map_to_retry_permanent_and_trap() {
    let retry = run("c-hello", serde_json::json!({"fail": "retry"})).await;
    assert_eq!(
        failure(&retry.outcome),
        (ErrorKind::Error, "asked to fail with retry")
    );
    let permanent = run("c-hello", serde_json::json!({"fail": "permanent"})).await;
    assert_eq!(
        failure(&permanent.outcome),
        (ErrorKind::Permanent, "asked to fail permanently")
    );
    let name = "x".repeat(600);
    let invalid = run("c-hello", serde_json::json!({ "name": name })).await;
    let (kind, message) = failure(&invalid.outcome);
    assert_eq!(kind, ErrorKind::Permanent);
    assert!(message.starts_with("invalid store key"), "{message}");
    let aborted = run("c-hello", serde_json::json!({"fail": "abort"})).await;
    assert_eq!(failure(&aborted.outcome).0, ErrorKind::Trap);
    assert!(
        aborted
            .logs
            .iter()
            .any(|l| l.level == LogLevel::Error && l.message == "asked to abort"),
        "{:?}",
        aborted.logs
    );
    assert!(aborted.store_writes.is_empty());
}
