//! Each outcome one attempt can produce (README, "The sandbox" and "Running jobs").

use serde_json::json;
use spool::model::{ErrorKind, Outcome};
use spool_tests::{json_result, run};

fn failure(outcome: &Outcome) -> (ErrorKind, &str) {
    match outcome {
        Outcome::Failed { kind, message } => (*kind, message.as_str()),
        Outcome::Ok(_) => panic!("expected a failure, got ok"),
    }
}

#[tokio::test]
async fn ok_returns_the_result_bytes_and_measures_the_attempt() {
    let attempt = run("hello", json!({"hi": 1})).await;
    assert_eq!(json_result(&attempt), json!({"hi": 1}));
    assert!(attempt.fuel_consumed > 0);
    assert!(!attempt.duration.is_zero());
    assert!(attempt.logs.iter().any(|l| l.message.contains("hello")));
}

#[tokio::test]
async fn the_guest_sees_the_job_it_was_given() {
    let attempt = run("hostile", json!({"action": "echo-job"})).await;
    let job = json_result(&attempt);
    assert_eq!(job["id"], "job-1");
    assert_eq!(job["tenant"], "acme");
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["max_attempts"], 20);
    assert_eq!(job["idempotency_key"], "job-1");
}

#[tokio::test]
async fn returned_retry_is_an_error_that_will_be_retried() {
    let attempt = run(
        "hostile",
        json!({"action": "retry", "message": "try later"}),
    )
    .await;
    let (kind, message) = failure(&attempt.outcome);
    assert_eq!(kind, ErrorKind::Error);
    assert_eq!(message, "try later");
    assert!(kind.is_retryable());
}

#[tokio::test]
async fn returned_permanent_is_never_retried() {
    let attempt = run(
        "hostile",
        json!({"action": "permanent", "message": "bad order"}),
    )
    .await;
    let (kind, message) = failure(&attempt.outcome);
    assert_eq!(kind, ErrorKind::Permanent);
    assert_eq!(message, "bad order");
    assert!(!kind.is_retryable());
}

#[tokio::test]
async fn a_panic_is_a_trap_and_its_message_reaches_the_log() {
    let attempt = run("hostile", json!({"action": "panic"})).await;
    let (kind, message) = failure(&attempt.outcome);
    assert_eq!(kind, ErrorKind::Trap);
    assert!(message.starts_with("unreachable"), "{message}");
    assert!(
        attempt
            .logs
            .iter()
            .any(|l| l.message.contains("panic requested")),
        "the panic message is on stderr: {:?}",
        attempt.logs
    );
}

#[tokio::test]
async fn unreachable_is_a_trap_with_its_code() {
    let attempt = run("hostile", json!({"action": "unreachable"})).await;
    let (kind, message) = failure(&attempt.outcome);
    assert_eq!(kind, ErrorKind::Trap);
    assert!(message.starts_with("unreachable:"), "{message}");
}

#[tokio::test]
async fn effects_of_a_failed_attempt_are_never_returned() {
    for action in ["write-then-retry", "write-then-panic"] {
        let attempt = run("hostile", json!({"action": action})).await;
        assert!(attempt.outcome.error_kind().is_some(), "{action}");
        assert!(attempt.store_writes.is_empty(), "{action}");
        assert!(attempt.enqueued.is_empty(), "{action}");
    }
}

#[tokio::test]
async fn the_job_payload_and_a_fulfilment_flow_produce_effects() {
    let order = json!({"order_id": "o-1", "amount_cents": 1250, "email": "ada@example.com"});
    let attempt = run("fulfil-order", order).await;
    let receipt = json_result(&attempt);
    assert_eq!(receipt["order_id"], "o-1");
    let keys: Vec<_> = attempt
        .store_writes
        .iter()
        .map(|w| w.key.as_str())
        .collect();
    assert!(keys.contains(&"order/o-1"), "{keys:?}");
    assert_eq!(attempt.enqueued.len(), 1);
    assert_eq!(attempt.enqueued[0].handler, "send-receipt");
}
