//! Every limit a guest controls, exceeded by a hostile fixture: contained, classified, and
//! the host keeps serving.

use std::time::Duration;

use serde_json::json;
use spool::model::{ErrorKind, Limits, Outcome};
use spool_tests::{json_result, run, run_with};

fn kind_and_message(outcome: &Outcome) -> (ErrorKind, String) {
    match outcome {
        Outcome::Failed { kind, message } => (*kind, message.clone()),
        Outcome::Ok(_) => panic!("expected a failure, got ok"),
    }
}

#[tokio::test]
async fn a_spinning_guest_runs_out_of_fuel() {
    let limits = Limits {
        fuel: 50_000_000,
        ..Limits::default()
    };
    let attempt = run_with("hostile", json!({"action": "spin"}), &limits).await;
    let (kind, _) = kind_and_message(&attempt.outcome);
    assert_eq!(kind, ErrorKind::OutOfFuel);
    assert_eq!(attempt.fuel_consumed, limits.fuel);
}

#[tokio::test]
async fn fuel_consumed_grows_with_the_work_done() {
    let small = run(
        "hostile",
        json!({"action": "fuel-burn", "iterations": 1_000}),
    )
    .await;
    let large = run(
        "hostile",
        json!({"action": "fuel-burn", "iterations": 1_000_000}),
    )
    .await;
    json_result(&small);
    json_result(&large);
    assert!(
        large.fuel_consumed > small.fuel_consumed + 1_000_000,
        "{} vs {}",
        large.fuel_consumed,
        small.fuel_consumed
    );
}

#[tokio::test]
async fn a_spinning_guest_with_fuel_to_spare_times_out() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let attempt = run_with("hostile", json!({"action": "spin"}), &limits).await;
    let (kind, _) = kind_and_message(&attempt.outcome);
    assert_eq!(kind, ErrorKind::Timeout);
    assert!(
        attempt.duration < Duration::from_secs(5),
        "{:?}",
        attempt.duration
    );
}

#[tokio::test]
async fn a_guest_blocked_in_host_calls_times_out() {
    let limits = Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let attempt = run_with("hostile", json!({"action": "sleep-in-host"}), &limits).await;
    let (kind, _) = kind_and_message(&attempt.outcome);
    assert_eq!(kind, ErrorKind::Timeout);
}

#[tokio::test]
async fn growing_memory_without_bound_hits_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let attempt = run_with("hostile", json!({"action": "grow-memory"}), &limits).await;
    let (kind, message) = kind_and_message(&attempt.outcome);
    assert_eq!(kind, ErrorKind::Trap);
    assert!(message.starts_with("memory_limit"), "{message}");
}

#[tokio::test]
async fn memory_under_the_limit_is_usable() {
    let attempt = run("hostile", json!({"action": "grow-memory", "mb": 16})).await;
    assert_eq!(json_result(&attempt)["allocated_mb"], 16);
}

#[tokio::test]
async fn unbounded_recursion_overflows_the_stack_and_traps() {
    let attempt = run("hostile", json!({"action": "recurse"})).await;
    let (kind, message) = kind_and_message(&attempt.outcome);
    assert_eq!(kind, ErrorKind::Trap);
    assert!(message.starts_with("stack_overflow"), "{message}");
}

#[tokio::test]
async fn a_huge_result_is_refused() {
    let attempt = run(
        "hostile",
        json!({"action": "huge-result", "bytes": 8 << 20}),
    )
    .await;
    let (kind, message) = kind_and_message(&attempt.outcome);
    assert_eq!(kind, ErrorKind::Trap);
    assert!(message.starts_with("result_too_large"), "{message}");
}

#[tokio::test]
async fn spammed_logs_are_truncated_at_the_bound() {
    let limits = Limits {
        max_log_bytes: 16 << 10,
        ..Limits::default()
    };
    let attempt = run_with("hostile", json!({"action": "spam-logs", "mb": 2}), &limits).await;
    json_result(&attempt);
    let kept: usize = attempt.logs.iter().map(|l| l.message.len()).sum();
    let last = attempt.logs.last().unwrap();
    assert!(last.message.starts_with("log truncated"), "{last:?}");
    assert!(kept - last.message.len() <= 16 << 10, "kept {kept} bytes");
}

#[tokio::test]
async fn stdout_and_stderr_are_captured_in_order() {
    let attempt = run("hostile", json!({"action": "write-stdout", "lines": 2})).await;
    json_result(&attempt);
    let lines: Vec<_> = attempt.logs.iter().map(|l| l.message.as_str()).collect();
    assert!(lines.contains(&"stdout line 0"), "{lines:?}");
    assert!(lines.contains(&"stderr line 1"), "{lines:?}");
}

#[tokio::test]
async fn the_host_keeps_serving_after_hostile_attempts() {
    let limits = Limits {
        fuel: 100_000_000,
        timeout: Duration::from_millis(500),
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let hostile = [
        "spin",
        "sleep-in-host",
        "grow-memory",
        "recurse",
        "panic",
        "unreachable",
        "huge-result",
    ];
    let attempts = hostile.map(|action| {
        tokio::spawn(async move { run_with("hostile", json!({"action": action}), &limits).await })
    });
    for (action, attempt) in hostile.iter().zip(attempts) {
        let attempt = attempt.await.expect("the host task did not panic");
        assert!(attempt.outcome.error_kind().is_some(), "{action} failed");
    }
    let after = run("hello", json!({"still": "here"})).await;
    assert_eq!(json_result(&after), json!({"still": "here"}));
}

/// A worker whose sandbox pool is exhausted does not blame the guest: an attempt that finds no
/// free slot fails as the host's error (retried later), never as a trap that could
/// dead-letter a sound job. One slot, three attempts at once: only one can hold it.
#[tokio::test]
async fn an_attempt_finding_the_sandbox_pool_full_is_a_host_error_not_a_trap() {
    let runtime = spool::runtime::Runtime::new(spool::runtime::RuntimeConfig {
        cache_dir: Some(spool_tests::cache_dir()),
        max_instances: 1,
        ..spool::runtime::RuntimeConfig::default()
    })
    .unwrap();
    let handler = runtime
        .load(&spool_tests::component("hostile"))
        .await
        .unwrap();
    let job = spool_tests::job("hostile", json!({"action": "sleep-in-host", "ms": 500}));
    let limits = Limits::default();
    let attempt = || async {
        let backend = std::sync::Arc::new(spool::capabilities::store::MemoryBackend::default());
        runtime.invoke(&handler, &job, &limits, backend).await
    };
    let attempts = futures_util::future::join3(attempt(), attempt(), attempt()).await;
    let outcomes = [attempts.0.outcome, attempts.1.outcome, attempts.2.outcome];
    let ok = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Ok(_)))
        .count();
    assert!(ok >= 1, "one attempt holds the slot: {outcomes:?}");
    assert!(ok < 3, "one slot cannot serve three at once: {outcomes:?}");
    for outcome in outcomes.iter().filter(|o| !matches!(o, Outcome::Ok(_))) {
        let (kind, message) = kind_and_message(outcome);
        assert_eq!(kind, ErrorKind::Error, "{message}");
        assert!(message.contains("no free sandbox slot"), "{message}");
    }
}
