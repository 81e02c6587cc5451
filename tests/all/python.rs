//! The Python proof: a handler built with componentize-py runs like a Rust one.

use spool::model::{ErrorKind, LogSource, Outcome, WriteOp};
use spool_tests::{json_result, run};

#[tokio::test]
async fn a_python_handler_runs_and_writes_the_store() {
    let attempt = run("python-hello", serde_json::json!({"name": "ada"})).await;
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
    assert!(
        attempt
            .logs
            .iter()
            .any(|l| l.message.contains("hello, ada")),
        "stdout is captured: {:?}",
        attempt.logs
    );
}

#[tokio::test]
async fn python_failures_map_to_retry_and_permanent() {
    let retry = run("python-hello", serde_json::json!({"fail": "retry"})).await;
    assert_eq!(retry.outcome.error_kind(), Some(ErrorKind::Error));
    let permanent = run("python-hello", serde_json::json!({"fail": "permanent"})).await;
    assert!(
        matches!(
            permanent.outcome,
            Outcome::Failed {
                kind: ErrorKind::Permanent,
                ..
            }
        ),
        "{:?}",
        permanent.outcome
    );
    assert!(permanent.store_writes.is_empty());
}

#[tokio::test]
async fn an_uncaught_python_exception_logs_its_traceback_and_traps() {
    let attempt = run("python-hello", serde_json::json!({"fail": "throw"})).await;
    // A bug, as a Rust panic is: componentize-py prints the traceback and the attempt traps.
    assert_eq!(attempt.outcome.error_kind(), Some(ErrorKind::Trap));
    let stderr: Vec<&str> = attempt
        .logs
        .iter()
        .filter(|l| l.source == LogSource::Stderr)
        .map(|l| l.message.as_str())
        .collect();
    let traceback = stderr
        .iter()
        .position(|l| *l == "Traceback (most recent call last):")
        .unwrap_or_else(|| panic!("no traceback on stderr: {stderr:#?}"));
    let rest = &stderr[traceback..];
    assert!(
        rest.iter()
            .any(|l| l.contains("app.py\", line ") && l.ends_with(", in run")),
        "the traceback names the handler's frame: {rest:#?}"
    );
    assert!(
        rest.contains(&"RuntimeError: asked to throw"),
        "the traceback ends with the exception: {rest:#?}"
    );
}
