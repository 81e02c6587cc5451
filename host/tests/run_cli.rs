//! `spool run`: the handler author's inner loop, as a process.

use std::process::Command;

use serde_json::Value;

mod common;
use common::component;

fn spool_run(args: &[&str]) -> (Option<i32>, Value, String) {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spool"))
        .arg("run")
        .args(args)
        .env("SPOOL_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn an_ok_attempt_prints_the_whole_report_and_exits_zero() {
    let hello = component("hello");
    let (code, report, _) = spool_run(&[hello.to_str().unwrap(), "--payload", r#"{"a":[1,2]}"#]);
    assert_eq!(code, Some(0));
    assert_eq!(report["outcome"], "ok");
    assert_eq!(report["result"], serde_json::json!({"a": [1, 2]}));
    assert_eq!(report["error"], Value::Null);
    assert!(report["fuel_consumed"].as_u64().unwrap() > 0);
    assert!(report["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(!report["logs"].as_array().unwrap().is_empty());
    assert!(report["store_writes"].is_array());
    assert!(report["enqueued"].is_array());
}

#[test]
fn effects_are_reported() {
    let order = component("fulfil_order");
    let payload = r#"{"order_id":"o-9","amount_cents":5,"email":"e@example.com"}"#;
    let (code, report, _) = spool_run(&[order.to_str().unwrap(), "--payload", payload]);
    assert_eq!(code, Some(0));
    assert!(!report["store_writes"].as_array().unwrap().is_empty());
    assert_eq!(report["enqueued"][0]["handler"], "send-receipt");
}

#[test]
fn a_failed_attempt_exits_non_zero_with_its_error_kind() {
    let hostile = component("hostile");
    let (code, report, _) = spool_run(&[
        hostile.to_str().unwrap(),
        "--payload",
        r#"{"action":"spin"}"#,
        "--fuel",
        "1000000",
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(report["outcome"], "trap");
    assert_eq!(report["error"]["kind"], "out_of_fuel");
    assert_eq!(report["fuel_consumed"], 1_000_000);
}

#[test]
fn limits_from_flags_apply() {
    let hostile = component("hostile");
    let (_, report, _) = spool_run(&[
        hostile.to_str().unwrap(),
        "--payload",
        r#"{"action":"sleep-in-host"}"#,
        "--timeout-ms",
        "200",
    ]);
    assert_eq!(report["error"]["kind"], "timeout");
    let (_, report, _) = spool_run(&[
        hostile.to_str().unwrap(),
        "--payload",
        r#"{"action":"grow-memory"}"#,
        "--memory-mb",
        "16",
    ]);
    assert_eq!(report["error"]["kind"], "trap");
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("16 MiB")
    );
}

#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let hello = component("hello");
    let (code, _, stderr) = spool_run(&[hello.to_str().unwrap(), "--payload", "{not json"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--payload is not valid JSON"), "{stderr}");

    let (code, _, stderr) = spool_run(&["/nonexistent.wasm"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("/nonexistent.wasm"), "{stderr}");

    let wrong = component("wrong_world");
    let (code, _, stderr) = spool_run(&[wrong.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("spool:job/handler"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
