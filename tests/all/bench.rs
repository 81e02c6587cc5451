//! `spool bench --peer graphile`: Spool's burn-down and graphile-worker's from one run, on
//! the test server, with both rates and their ratio in the report and no database left behind.

use std::time::Duration;

use spool_tests::cli::Run;
use spool_tests::components_dir;

/// Names of the bench's databases on the server (its own and the peer's).
async fn bench_databases(admin: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE 'spool_bench_%'")
        .fetch_all(admin)
        .await
        .expect("listing databases")
}

/// `spool bench` of 300 no-op jobs of the hostile fixture on 8 slots, burn-down only, with
/// `extra` arguments and `env`; it must succeed.
async fn small_bench(extra: &[&str], env: &[(&str, &str)]) -> Run {
    let component = components_dir().join("hostile.wasm");
    let component = component.to_str().expect("a UTF-8 path");
    let mut args = vec![
        "bench",
        "--jobs",
        "300",
        "--rate",
        "0",
        "--api-requests",
        "0",
        "--slots",
        "8",
        "--component",
        component,
        "--json",
    ];
    args.extend_from_slice(extra);
    Run::spool(&args, env, None, Duration::from_secs(300))
        .await
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_with_a_peer_reports_both_burn_downs_and_their_ratio() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL is set");
    let admin = sqlx::PgPool::connect(&url).await.expect("connecting");
    let before = bench_databases(&admin).await;
    // A first run installs graphile-worker with npm.
    let run = small_bench(&["--peer", "graphile"], &[]).await;
    let report = run.json();
    let spool = report["burn_down_jobs_per_s"]
        .as_f64()
        .expect("Spool's rate");
    let peer = &report["peer"];
    assert_eq!(peer["name"], "graphile", "{report}");
    assert_eq!(
        peer["report"]["jobs"], 300,
        "the peer ran as many jobs: {report}"
    );
    let peer_rate = peer["burn_down_jobs_per_s"]
        .as_f64()
        .expect("the peer's rate");
    assert!(spool > 0.0 && peer_rate > 0.0, "{report}");
    let ratio = peer["spool_ratio"].as_f64().expect("the ratio");
    assert!(
        (ratio - spool / peer_rate).abs() <= (0.01 * ratio).max(0.001),
        "the ratio is Spool's rate over the peer's: {report}"
    );
    let peer_database = format!("{}_peer", report["database"].as_str().unwrap());
    let after = bench_databases(&admin).await;
    for name in [report["database"].as_str().unwrap(), peer_database.as_str()] {
        assert!(
            !after.iter().any(|d| d == name) && !before.iter().any(|d| d == name),
            "{name} was dropped: {after:?}"
        );
    }
}

/// `spool bench --worker-processes 2`: the burn-down again by one and then by two `spool worker`
/// processes against the bench database, each rate in the report, every job of each done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_with_worker_processes_reports_one_and_several() {
    let cache = spool_tests::cache_dir();
    let run = small_bench(
        &["--worker-processes", "2"],
        &[("SPOOL_CACHE_DIR", cache.to_str().unwrap())],
    )
    .await;
    let report = run.json();
    let runs = report["scale_out"].as_array().expect("scale_out runs");
    let processes: Vec<u64> = runs
        .iter()
        .map(|r| r["worker_processes"].as_u64().unwrap())
        .collect();
    assert_eq!(processes, [1, 2], "{report}");
    for r in runs {
        assert!(
            r["burn_down_jobs_per_s"].as_f64().unwrap() > 0.0,
            "{report}"
        );
    }
    // Refused: one process is the baseline the phase always runs.
    Run::spool(
        &["bench", "--worker-processes", "1"],
        &[],
        None,
        Duration::from_secs(30),
    )
    .await
    .failure(2, "--worker-processes");
}
