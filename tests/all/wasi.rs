//! Deny by default: no files, no environment but job metadata, no sockets; and the store and
//! follow-up bounds, probed by a hostile guest that reports what each try returned.

use serde_json::{Value, json};
use spool_tests::{json_result, run};

fn refused(outcome: &Value) -> bool {
    outcome["ok"] == json!(false)
}

#[tokio::test]
async fn the_guest_can_read_and_write_no_files() {
    let report = json_result(&run("hostile", json!({"action": "read-file"})).await);
    for probe in [
        "read_etc_passwd",
        "read_relative",
        "list_dot",
        "list_root",
        "write_tmp",
    ] {
        assert!(refused(&report[probe]), "{probe}: {}", report[probe]);
    }
}

#[tokio::test]
async fn the_guest_sees_only_its_job_metadata_in_the_environment() {
    let report = json_result(&run("hostile", json!({"action": "read-env"})).await);
    let vars = report["vars"].as_object().unwrap();
    let mut names: Vec<_> = vars.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "SPOOL_ATTEMPT",
            "SPOOL_HANDLER",
            "SPOOL_JOB_ID",
            "SPOOL_QUEUE",
            "SPOOL_TENANT"
        ]
    );
    assert_eq!(vars["SPOOL_JOB_ID"], "job-1");
    assert_eq!(report["args"], json!([]));
}

#[tokio::test]
async fn the_guest_can_open_no_sockets_and_resolve_no_names() {
    let report = json_result(&run("hostile", json!({"action": "open-socket"})).await);
    for probe in ["tcp_connect", "tcp_listen", "udp_bind", "dns_lookup"] {
        assert!(refused(&report[probe]), "{probe}: {}", report[probe]);
    }
}

#[tokio::test]
async fn oversized_store_keys_and_values_are_refused() {
    let attempt = run("hostile", json!({"action": "store-oversized"})).await;
    let report = json_result(&attempt);
    assert_eq!(report["empty_key"]["kind"], "invalid-key");
    assert_eq!(report["long_key"]["kind"], "invalid-key");
    assert_eq!(report["long_key_get"]["kind"], "invalid-key");
    assert_eq!(report["big_value"]["kind"], "value-too-large");
    assert!(
        attempt.store_writes.is_empty(),
        "nothing refused was buffered"
    );
}

#[tokio::test]
async fn a_store_flood_stops_at_the_write_budget() {
    let attempt = run("hostile", json!({"action": "store-flood"})).await;
    let report = json_result(&attempt);
    assert_eq!(report["stopped_by"]["kind"], "quota-exceeded");
    let budget = spool::model::Limits::default().max_store_write_bytes;
    let written: u64 = attempt
        .store_writes
        .iter()
        .map(|w| (w.key.len() + w.op.stored_bytes()) as u64)
        .sum();
    assert!(written <= budget, "{written} > {budget}");
}

#[tokio::test]
async fn an_enqueue_flood_stops_at_the_follow_up_limit() {
    let attempt = run("hostile", json!({"action": "enqueue-flood"})).await;
    let report = json_result(&attempt);
    let limit = spool::model::Limits::default().max_enqueued;
    assert_eq!(report["enqueued"], limit);
    assert_eq!(report["stopped_by"]["kind"], "too-many");
    assert_eq!(attempt.enqueued.len(), limit as usize);
}

#[tokio::test]
async fn store_reads_see_the_attempts_own_writes() {
    let report = json_result(&run("hostile", json!({"action": "store-roundtrip"})).await);
    assert_eq!(report["get_a"]["value"], json!({"n": 1}));
    assert_eq!(report["get_missing"]["value"], Value::Null);
    assert_eq!(report["get_a_after_delete"]["value"], Value::Null);
    assert_eq!(
        report["list"]["value"],
        json!(["roundtrip/a", "roundtrip/b"])
    );
    assert_eq!(report["list_after_delete"]["value"], json!(["roundtrip/b"]));
    assert_eq!(report["effect_key_is_stable"], true);
    assert_eq!(report["effect_key_depends_on_label"], true);
}
