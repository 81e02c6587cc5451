//! Prometheus metrics move as jobs move: a real worker with metrics attached, real
//! components, a fresh database; figures read back from the text exposition `render` serves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use spool::maintenance::{Maintenance, MaintenanceConfig};
use spool::metrics::Metrics;
use spool::model::NewJob;
use spool_tests::background::{self, Background};
use spool_tests::db::{TestDb, test_db};
use spool_tests::factory::{enqueue, tenant_with_handlers};
use spool_tests::test_runtime;

/// One sample of the exposition: its name, labels and value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses the OpenMetrics text format (as far as Spool's metrics need: label values
/// without escaped quotes).
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("labels end with }");
                let labels = inner
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, Vec::new()),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

/// Returns the sum of the samples named `name` that carry every label of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .sum()
}

/// Returns whether a sample named `name` with `labels` is present at all.
fn present(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> bool {
    samples.iter().any(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
    })
}

/// Starts a worker reporting to `metrics` (and, `with_maintenance`, maintenance) over the test
/// database.
fn start(db: &TestDb, metrics: &Arc<Metrics>, with_maintenance: bool) -> Background {
    let config = background::Config {
        metrics: Some(metrics.clone()),
        maintenance: with_maintenance.then(background::maintenance),
        ..background::Config::default()
    };
    Background::start(&db.store, test_runtime(), config)
}

/// Folds the counters, renders and parses the metrics.
async fn scrape(db: &TestDb, metrics: &Metrics) -> Vec<Sample> {
    Maintenance::new(MaintenanceConfig::default(), db.store.clone())
        .fold_once()
        .await
        .unwrap();
    parse(&metrics.render(&db.store).await)
}

/// Scrapes until `done` holds, or panics at the deadline with the last exposition.
async fn scrape_until(
    db: &TestDb,
    metrics: &Metrics,
    within: Duration,
    done: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    let deadline = Instant::now() + within;
    loop {
        let samples = scrape(db, metrics).await;
        if done(&samples) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "the metrics never got there: {samples:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const HELLO: [(&str, &str); 3] = [
    ("tenant", "acme"),
    ("queue", "default"),
    ("handler", "hello"),
];
const HOSTILE: [(&str, &str); 3] = [
    ("tenant", "acme"),
    ("queue", "default"),
    ("handler", "hostile"),
];

fn with<'a>(base: &[(&'a str, &'a str)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(more).copied().collect()
}

#[tokio::test]
async fn enqueued_and_completed_jobs_move_the_counters_and_the_backlog() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["hello"]).await;
    let metrics = Arc::new(Metrics::new().with_stats_ttl(Duration::ZERO));
    let jobs: Vec<NewJob> = (0..3)
        .map(|i| NewJob::json("hello", &json!({ "i": i })))
        .collect();
    enqueue(&db.store, t, &jobs).await;
    // What the API does for every job it creates.
    metrics.jobs_enqueued("acme", "default", "hello", 3);

    let before = scrape(&db, &metrics).await;
    assert_eq!(value(&before, "spool_jobs_enqueued_total", &HELLO), 3.0);
    assert_eq!(value(&before, "spool_queue_stats_up", &[]), 1.0);
    let available = [
        ("tenant", "acme"),
        ("queue", "default"),
        ("state", "available"),
    ];
    assert_eq!(value(&before, "spool_queue_jobs", &available), 3.0);
    assert!(present(
        &before,
        "spool_queue_oldest_available_age_seconds",
        &[("tenant", "acme"), ("queue", "default")]
    ));
    assert_eq!(value(&before, "spool_jobs_completed_total", &HELLO), 0.0);
    assert_eq!(value(&before, "spool_worker_slots", &[]), 0.0);
    assert!(present(
        &before,
        "spool_db_pool_connections",
        &[("state", "in_use")]
    ));

    let running = start(&db, &metrics, false);
    let completed = [
        ("tenant", "acme"),
        ("queue", "default"),
        ("state", "completed"),
    ];
    let after = scrape_until(&db, &metrics, Duration::from_secs(60), |s| {
        value(s, "spool_jobs_completed_total", &HELLO) == 3.0
            && value(s, "spool_queue_jobs", &completed) == 3.0
            && value(s, "spool_worker_running_jobs", &[]) == 0.0
    })
    .await;
    assert_eq!(value(&after, "spool_queue_jobs", &available), 0.0);
    assert_eq!(
        value(&after, "spool_queue_oldest_available_age_seconds", &[]),
        0.0,
        "nothing is waiting"
    );
    let ok = with(&HELLO, &[("outcome", "ok")]);
    assert_eq!(
        value(&after, "spool_attempt_duration_seconds_count", &ok),
        3.0
    );
    assert!(value(&after, "spool_attempt_duration_seconds_sum", &ok) > 0.0);
    assert_eq!(value(&after, "spool_attempt_fuel_consumed_count", &ok), 3.0);
    assert!(value(&after, "spool_attempt_fuel_consumed_sum", &ok) > 0.0);
    assert_eq!(value(&after, "spool_attempt_errors_total", &[]), 0.0);
    assert_eq!(value(&after, "spool_worker_slots", &[]), 8.0);
    assert_eq!(value(&after, "spool_worker_free_slots", &[]), 8.0);
    assert_eq!(value(&after, "spool_sandboxes_in_use", &[]), 0.0);
    assert_eq!(value(&after, "spool_sandboxes_max", &[]), 16.0);

    running.stop().await;
    let stopped = scrape(&db, &metrics).await;
    assert_eq!(
        value(&stopped, "spool_worker_slots", &[]),
        0.0,
        "a stopped worker gives its slots back"
    );
}

#[tokio::test]
async fn retried_and_dead_lettered_jobs_are_counted_by_error_kind() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["hostile"]).await;
    let metrics = Arc::new(Metrics::new().with_stats_ttl(Duration::ZERO));
    let mut retry = NewJob::json("hostile", &json!({ "action": "retry" }));
    retry.max_attempts = Some(2);
    retry.backoff = Some((Duration::from_millis(1), Duration::from_millis(10)));
    let permanent = NewJob::json("hostile", &json!({ "action": "permanent" }));
    enqueue(&db.store, t, &[retry, permanent]).await;

    let running = start(&db, &metrics, true);
    let dead = [("tenant", "acme"), ("queue", "default")];
    let s = scrape_until(&db, &metrics, Duration::from_secs(60), |s| {
        value(s, "spool_jobs_dead_lettered_total", &HOSTILE) == 2.0
            && value(s, "spool_dead_letter_jobs", &dead) == 2.0
    })
    .await;
    running.stop().await;

    // The retry job: attempt 1 retried, attempt 2 dead; the permanent one dead at once.
    assert_eq!(value(&s, "spool_jobs_retried_total", &HOSTILE), 1.0);
    assert_eq!(value(&s, "spool_jobs_completed_total", &HOSTILE), 0.0);
    let kind = |k| with(&HOSTILE, &[("kind", k)]);
    assert_eq!(value(&s, "spool_attempt_errors_total", &kind("error")), 2.0);
    assert_eq!(
        value(&s, "spool_attempt_errors_total", &kind("permanent")),
        1.0
    );
    let outcome = |o| with(&HOSTILE, &[("outcome", o)]);
    assert_eq!(
        value(
            &s,
            "spool_attempt_duration_seconds_count",
            &outcome("retry")
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            "spool_attempt_duration_seconds_count",
            &outcome("permanent")
        ),
        1.0
    );
    let state = |st| [("tenant", "acme"), ("queue", "default"), ("state", st)];
    assert_eq!(value(&s, "spool_queue_jobs", &state("dead")), 2.0);
    assert_eq!(value(&s, "spool_queue_jobs", &state("retryable")), 0.0);
    assert_eq!(value(&s, "spool_queue_jobs", &state("running")), 0.0);
}

#[tokio::test]
async fn a_job_whose_key_is_already_done_counts_as_a_duplicate() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["hello"]).await;
    let metrics = Arc::new(Metrics::new().with_stats_ttl(Duration::ZERO));
    let mut job = NewJob::json("hello", &json!({}));
    job.idempotency_key = Some("order-1".into());
    enqueue(&db.store, t, &[job]).await;
    // Another job already committed this key (through a second path, say).
    db.mark_done_by_another_job(t, "order-1").await;

    let running = start(&db, &metrics, false);
    let s = scrape_until(&db, &metrics, Duration::from_secs(60), |s| {
        value(s, "spool_jobs_duplicate_total", &HELLO) == 1.0
    })
    .await;
    running.stop().await;
    assert_eq!(value(&s, "spool_jobs_completed_total", &HELLO), 0.0);
    assert_eq!(
        value(&s, "spool_attempt_duration_seconds_count", &HELLO),
        0.0,
        "nothing ran in the sandbox"
    );
}

#[tokio::test]
async fn follow_up_jobs_a_handler_enqueues_count_as_enqueued_when_they_commit() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["fulfil-order", "send-receipt"]).await;
    let metrics = Arc::new(Metrics::new().with_stats_ttl(Duration::ZERO));
    let order = NewJob::json(
        "fulfil-order",
        &json!({"order_id": "A-1", "amount_cents": 4200, "email": "ada@example.com"}),
    );
    enqueue(&db.store, t, &[order]).await;

    let running = start(&db, &metrics, true);
    let receipt = [
        ("tenant", "acme"),
        ("queue", "default"),
        ("handler", "send-receipt"),
    ];
    let s = scrape_until(&db, &metrics, Duration::from_secs(60), |s| {
        value(s, "spool_jobs_completed_total", &receipt) == 1.0
    })
    .await;
    running.stop().await;
    assert_eq!(value(&s, "spool_jobs_enqueued_total", &receipt), 1.0);
    let order = [
        ("tenant", "acme"),
        ("queue", "default"),
        ("handler", "fulfil-order"),
    ];
    assert_eq!(value(&s, "spool_jobs_completed_total", &order), 1.0);
}
