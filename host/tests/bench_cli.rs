//! `spool bench`, as a process, against the test suite's PostgreSQL server.

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: run the tests with `make test` (scripts/with-postgres.sh \
             provides a server)"
        )
    })
}

fn hostile() -> PathBuf {
    common::component("hostile")
}

fn positive(report: &Value, pointer: &str) -> f64 {
    let x = report
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} is missing from {report}"));
    assert!(x > 0.0, "{pointer} is {x} in {report}");
    x
}

#[test]
fn a_small_bench_prints_every_figure_and_cleans_up() {
    let cache = tempfile::tempdir().unwrap();
    let component = hostile();
    let out = Command::new(env!("CARGO_BIN_EXE_spool"))
        .args(["bench", "--jobs", "200", "--slots", "4", "--rate", "50"])
        .args(["--latency-secs", "1", "--json", "--component"])
        .arg(&component)
        .env("DATABASE_URL", database_url())
        .env("SPOOL_CACHE_DIR", cache.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spool bench failed: {stderr}");
    // --json prints exactly one JSON document.
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {stdout}"));

    assert_eq!(positive(&report, "/jobs"), 200.0);
    assert_eq!(positive(&report, "/slots"), 4.0);
    positive(&report, "/enqueue_jobs_per_s");
    positive(&report, "/burn_down_jobs_per_s");
    assert_eq!(positive(&report, "/latency/offered_rate"), 50.0);
    assert_eq!(positive(&report, "/latency/jobs"), 50.0);
    let p50 = positive(&report, "/latency/p50_ms");
    let p99 = positive(&report, "/latency/p99_ms");
    let max = positive(&report, "/latency/max_ms");
    assert!(
        p50 <= p99 && p99 <= max,
        "percentiles out of order: {report}"
    );
    positive(&report, "/cores");
    assert!(
        report["postgres_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{report}"
    );
    assert_eq!(report["component"], component.display().to_string());
    // The bench's own database is gone again.
    let database = report["database"].as_str().expect("the database is named");
    assert!(database.starts_with("spool_bench_"), "{report}");
    assert!(!stderr.contains("could not drop"), "{stderr}");
}
