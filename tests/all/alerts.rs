//! Built-in alerts: rules fire and resolve against a real webhook receiver on loopback, once
//! per transition, with retries; state shared by every host; listed per tenant over HTTP.
//!
//! Most tests drive jobs through the store and time through `evaluate_once`/`deliver_once`
//! with a controllable clock; two run the real loops (one with a real worker) and poll.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use spool::alerts::{Alerts, AlertsConfig, Delivery, Notification};
use spool::maintenance::{Maintenance, MaintenanceConfig};
use spool::model::{ClaimedJob, ErrorKind, NewJob};
use spool::store::{AlertState, Failure, Store};
use spool_tests::db::test_db;
use spool_tests::factory::{success, tenant};
use spool_tests::server::{ADMIN_TOKEN, Options, TestServer};
use tokio_util::sync::CancellationToken;

const LEASE: Duration = Duration::from_secs(10);

fn t0() -> DateTime<Utc> {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

fn at(secs: i64) -> Option<DateTime<Utc>> {
    Some(t0() + TimeDelta::seconds(secs))
}

/// A webhook receiver on loopback recording every body it accepts; it answers 500 to the
/// first `failures` requests.
#[derive(Clone)]
struct Receiver {
    url: reqwest::Url,
    bodies: Arc<Mutex<Vec<Notification>>>,
    requests: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(failures: usize) -> Receiver {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (b, r) = (bodies.clone(), requests.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |Json(body): Json<Notification>| {
                let (b, r) = (b.clone(), r.clone());
                async move {
                    if r.fetch_add(1, Ordering::SeqCst) < failures {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    b.lock().unwrap().push(body);
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url: url.parse().unwrap(),
            bodies,
            requests,
        }
    }

    fn bodies(&self) -> Vec<Notification> {
        self.bodies.lock().unwrap().clone()
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Polls until at least `n` bodies arrived, or panics after `within`.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Notification> {
        let deadline = Instant::now() + within;
        loop {
            let bodies = self.bodies();
            if bodies.len() >= n {
                return bodies;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} notifications arrived: {bodies:?}",
                bodies.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Settings with only `rules` enabled and the webhook at `receiver`.
fn config(receiver: &Receiver, rules: &[&str]) -> AlertsConfig {
    let mut c = AlertsConfig {
        webhook_url: Some(receiver.url.clone()),
        ..AlertsConfig::default()
    };
    c.failure_rate.enabled = rules.contains(&"failure_rate");
    c.failure_rate.threshold = 0.5;
    c.failure_rate.min_attempts = 4;
    c.dead_letter_growth.enabled = rules.contains(&"dead_letter_growth");
    c.backlog_age.enabled = rules.contains(&"backlog_age");
    c
}

fn fold(store: &Store) -> Maintenance {
    Maintenance::new(MaintenanceConfig::default(), store.clone())
}

fn failure(job: &ClaimedJob, kind: ErrorKind, retry: Option<Duration>) -> Failure {
    Failure {
        tenant_id: job.tenant_id,
        id: job.id,
        run_lease: job.run_lease,
        attempt: job.attempt,
        kind,
        message: format!("{kind}"),
        logs: json!([]),
        retry_delay: retry,
    }
}

/// Claims up to `n` jobs at `now`; fails the first `failed` of them (retried an hour later)
/// and completes the rest; folds the counters.
async fn run_jobs(store: &Store, n: u32, failed: usize, now: Option<DateTime<Utc>>) {
    let claimed = store
        .job_claim("default", n, "w", LEASE, now)
        .await
        .unwrap();
    assert_eq!(claimed.len(), n as usize, "claimed every job asked for");
    let failures: Vec<Failure> = claimed[..failed]
        .iter()
        .map(|j| failure(j, ErrorKind::Trap, Some(Duration::from_secs(3600))))
        .collect();
    let completions: Vec<_> = claimed[failed..].iter().map(|j| success(j, "ok")).collect();
    store
        .job_finish_many(&completions, &failures, now)
        .await
        .unwrap();
    fold(store).fold_once().await.unwrap();
}

/// Dead-letters one new job of `tenant` on `queue` at `now` and folds the counters.
async fn dead_letter_one(store: &Store, tenant: i64, queue: &str, now: Option<DateTime<Utc>>) {
    let job = NewJob {
        queue: Some(queue.into()),
        ..NewJob::json("h", &json!({}))
    };
    store.job_enqueue_many(tenant, &[job], now).await.unwrap();
    let claimed = store.job_claim(queue, 1, "w", LEASE, now).await.unwrap();
    let dead = failure(&claimed[0], ErrorKind::Permanent, None);
    store.job_finish_many(&[], &[dead], now).await.unwrap();
    fold(store).fold_once().await.unwrap();
}

async fn enqueue(store: &Store, tenant: i64, n: usize, now: Option<DateTime<Utc>>) {
    let jobs: Vec<NewJob> = (0..n).map(|i| NewJob::json("h", &json!(i))).collect();
    store.job_enqueue_many(tenant, &jobs, now).await.unwrap();
}

fn delivered(n: usize) -> Delivery {
    Delivery {
        delivered: n,
        ..Delivery::default()
    }
}

#[tokio::test]
async fn failure_rate_fires_once_stays_quiet_while_firing_and_resolves_when_the_rate_falls() {
    let db = test_db().await;
    let receiver = Receiver::start(0).await;
    let t = tenant(&db.store, "acme", 100).await;
    let alerts = Alerts::new(config(&receiver, &["failure_rate"]), db.store.clone()).unwrap();
    enqueue(&db.store, t, 10, at(0)).await;

    // Two of four attempts failed: 50 % is not above the threshold.
    run_jobs(&db.store, 4, 2, at(0)).await;
    let e = alerts.evaluate_once(at(10)).await.unwrap();
    assert_eq!((e.queues, e.fired), (1, 0));

    // Three of five: 60 %.
    run_jobs(&db.store, 1, 1, at(15)).await;
    let e = alerts.evaluate_once(at(20)).await.unwrap();
    assert_eq!((e.fired, e.resolved), (1, 0));
    assert_eq!(alerts.deliver_once(at(20)).await.unwrap(), delivered(1));
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1);
    let fired = &bodies[0];
    assert_eq!(
        (
            fired.status.as_str(),
            fired.rule.as_str(),
            fired.tenant.as_str()
        ),
        ("firing", "failure_rate", "acme")
    );
    assert_eq!(fired.queue, "default");
    assert_eq!((fired.value, fired.threshold), (0.6, 0.5));
    assert_eq!(fired.fired_at, at(20).unwrap());
    assert_eq!(fired.resolved_at, None);
    assert!(
        fired.description.contains("3 of 5 attempts failed (60.0%)"),
        "{fired:?}"
    );

    // Still failing, and failing more: no new notification.
    run_jobs(&db.store, 1, 1, at(25)).await;
    for secs in [30, 40, 50] {
        let e = alerts.evaluate_once(at(secs)).await.unwrap();
        assert_eq!((e.fired, e.resolved, e.still_firing), (0, 0, 1));
        assert_eq!(alerts.deliver_once(at(secs)).await.unwrap(), delivered(0));
    }
    assert_eq!(receiver.requests(), 1);
    let listed = db.store.alert_list(Some(t)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, AlertState::Firing);
    assert!((listed[0].value - 4.0 / 6.0).abs() < 1e-9, "{listed:?}");
    assert_eq!(
        listed[0].fired_at,
        at(20).unwrap(),
        "the episode keeps its start"
    );

    // Four successes: 4 of 10 failed, 40 %.
    run_jobs(&db.store, 4, 0, at(55)).await;
    let e = alerts.evaluate_once(at(60)).await.unwrap();
    assert_eq!((e.fired, e.resolved), (0, 1));
    assert_eq!(alerts.deliver_once(at(60)).await.unwrap(), delivered(1));
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 2);
    let resolved = &bodies[1];
    assert_eq!(resolved.status, "resolved");
    assert_eq!((resolved.value, resolved.threshold), (0.4, 0.5));
    assert_eq!(resolved.fired_at, at(20).unwrap());
    assert_eq!(resolved.resolved_at, at(60));

    // Resolved stays resolved, quietly.
    let e = alerts.evaluate_once(at(70)).await.unwrap();
    assert_eq!((e.fired, e.resolved, e.still_firing), (0, 0, 0));
    assert_eq!(alerts.deliver_once(at(70)).await.unwrap(), delivered(0));
    assert_eq!(receiver.requests(), 2);
}

#[tokio::test]
async fn a_second_host_sees_the_same_alert_and_neither_refires_nor_renotifies_it() {
    let db = test_db().await;
    let receiver = Receiver::start(0).await;
    let t = tenant(&db.store, "acme", 100).await;
    let settings = config(&receiver, &["failure_rate"]);
    let first = Alerts::new(settings.clone(), db.store.clone())
        .unwrap()
        .with_node("host-a");
    let second = Alerts::new(settings, db.store.clone())
        .unwrap()
        .with_node("host-b");
    enqueue(&db.store, t, 4, at(0)).await;
    run_jobs(&db.store, 4, 4, at(0)).await;

    assert_eq!(first.evaluate_once(at(10)).await.unwrap().fired, 1);
    assert_eq!(first.deliver_once(at(10)).await.unwrap(), delivered(1));
    let seen_by_first = db.store.alert_list(None).await.unwrap();

    // Leadership moves to the second host: it finds the alert firing and says nothing.
    let e = second.evaluate_once(at(20)).await.unwrap();
    assert_eq!((e.fired, e.still_firing), (0, 1));
    assert_eq!(second.deliver_once(at(20)).await.unwrap(), delivered(0));
    assert_eq!(receiver.requests(), 1);
    let seen_by_second = db.store.alert_list(None).await.unwrap();
    assert_eq!(seen_by_second.len(), 1);
    assert_eq!(seen_by_second[0].key, seen_by_first[0].key);
    assert_eq!(seen_by_second[0].fired_at, seen_by_first[0].fired_at);

    // Both evaluating at once (a lease hand-over) still fire an alert once.
    fail_on_queue_other(&db.store, t).await;
    let (a, b) = tokio::join!(first.evaluate_once(at(30)), second.evaluate_once(at(30)));
    assert_eq!(a.unwrap().fired + b.unwrap().fired, 1);
}

/// Four failed attempts on queue `other`, for a second alert.
async fn fail_on_queue_other(store: &Store, tenant: i64) {
    let jobs: Vec<NewJob> = (0..4)
        .map(|i| NewJob {
            queue: Some("other".into()),
            ..NewJob::json("h", &json!(i))
        })
        .collect();
    store.job_enqueue_many(tenant, &jobs, at(25)).await.unwrap();
    let claimed = store
        .job_claim("other", 4, "w", LEASE, at(25))
        .await
        .unwrap();
    let failures: Vec<Failure> = claimed
        .iter()
        .map(|j| failure(j, ErrorKind::Error, Some(Duration::from_secs(3600))))
        .collect();
    store.job_finish_many(&[], &failures, at(25)).await.unwrap();
    fold(store).fold_once().await.unwrap();
}

#[tokio::test]
async fn a_failed_webhook_is_retried_with_backoff_until_it_is_delivered() {
    let db = test_db().await;
    let receiver = Receiver::start(2).await;
    let t = tenant(&db.store, "acme", 100).await;
    let alerts = Alerts::new(config(&receiver, &["dead_letter_growth"]), db.store.clone()).unwrap();
    dead_letter_one(&db.store, t, "default", at(0)).await;
    assert_eq!(alerts.evaluate_once(at(10)).await.unwrap().fired, 1);

    // 500: retried after the base backoff (1 s, less up to a quarter of jitter).
    let d = alerts.deliver_once(at(10)).await.unwrap();
    assert_eq!((d.delivered, d.retrying), (0, 1));
    let alert = &db.store.alert_list(None).await.unwrap()[0];
    let next = alert.notify_next_at.expect("a retry is due");
    let wait = (next - at(10).unwrap()).to_std().unwrap();
    assert!(
        wait <= Duration::from_secs(1) && wait >= Duration::from_millis(750),
        "{wait:?}"
    );
    assert_eq!(alert.notify_attempts, 1);
    assert_eq!(
        alert.notify_error.as_deref(),
        Some("the webhook answered 500 Internal Server Error")
    );
    // Not before it is due, and evaluating meanwhile queues nothing new.
    assert_eq!(
        alerts.deliver_once(at(10)).await.unwrap(),
        Delivery::default()
    );
    assert_eq!(alerts.evaluate_once(at(10)).await.unwrap().fired, 0);
    assert_eq!(receiver.requests(), 1);

    // 500 again: the backoff doubles.
    let d = alerts.deliver_once(Some(next)).await.unwrap();
    assert_eq!(d.retrying, 1);
    let alert = &db.store.alert_list(None).await.unwrap()[0];
    let next2 = alert.notify_next_at.unwrap();
    let wait = (next2 - next).to_std().unwrap();
    assert!(
        wait <= Duration::from_secs(2) && wait >= Duration::from_millis(1500),
        "{wait:?}"
    );

    // Then it is accepted, once.
    assert_eq!(
        alerts.deliver_once(Some(next2)).await.unwrap(),
        delivered(1)
    );
    assert_eq!(receiver.requests(), 3);
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(
        (bodies[0].status.as_str(), bodies[0].rule.as_str()),
        ("firing", "dead_letter_growth")
    );
    let alert = &db.store.alert_list(None).await.unwrap()[0];
    assert_eq!((alert.notify, alert.notify_next_at), (None, None));
    assert_eq!(alert.last_notified_at, Some(next2));
    assert_eq!(alert.notify_error, None);
    assert_eq!(
        alerts.deliver_once(at(3600)).await.unwrap(),
        Delivery::default()
    );
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_is_given_up_after_its_last_attempt() {
    let db = test_db().await;
    let receiver = Receiver::start(usize::MAX).await;
    let t = tenant(&db.store, "acme", 100).await;
    let mut settings = config(&receiver, &["dead_letter_growth"]);
    settings.webhook_max_attempts = 3;
    let alerts = Alerts::new(settings, db.store.clone()).unwrap();
    dead_letter_one(&db.store, t, "default", at(0)).await;
    alerts.evaluate_once(at(10)).await.unwrap();

    let hour = |h: i64| at(10 + 3600 * h);
    assert_eq!(alerts.deliver_once(hour(0)).await.unwrap().retrying, 1);
    assert_eq!(alerts.deliver_once(hour(1)).await.unwrap().retrying, 1);
    assert_eq!(alerts.deliver_once(hour(2)).await.unwrap().given_up, 1);
    assert_eq!(
        alerts.deliver_once(hour(3)).await.unwrap(),
        Delivery::default()
    );
    assert_eq!(receiver.requests(), 3);
    let alert = &db.store.alert_list(None).await.unwrap()[0];
    assert_eq!(
        alert.state,
        AlertState::Firing,
        "the alert itself still fires"
    );
    assert_eq!((alert.notify, alert.notify_attempts), (None, 3));
    assert!(alert.notify_error.is_some());
}

#[tokio::test]
async fn backlog_age_fires_when_the_oldest_available_job_waits_too_long() {
    let db = test_db().await;
    let receiver = Receiver::start(0).await;
    let t = tenant(&db.store, "acme", 100).await;
    let mut settings = config(&receiver, &["backlog_age"]);
    settings.backlog_age.threshold = Duration::from_secs(300);
    let alerts = Alerts::new(settings, db.store.clone()).unwrap();
    enqueue(&db.store, t, 3, at(0)).await;
    enqueue(&db.store, t, 1, at(120)).await;

    let e = alerts.evaluate_once(at(240)).await.unwrap();
    assert_eq!((e.queues, e.fired), (1, 0));
    let e = alerts.evaluate_once(at(301)).await.unwrap();
    assert_eq!(e.fired, 1);
    alerts.deliver_once(at(301)).await.unwrap();
    let fired = &receiver.bodies()[0];
    assert_eq!(
        (fired.rule.as_str(), fired.status.as_str()),
        ("backlog_age", "firing")
    );
    assert_eq!((fired.value, fired.threshold), (301.0, 300.0));
    assert!(fired.description.contains("has waited 5m1s"), "{fired:?}");

    // The three old jobs start: the oldest left waited 4 min, below the threshold.
    let claimed = db
        .store
        .job_claim("default", 3, "w", LEASE, at(360))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    assert_eq!(alerts.evaluate_once(at(360)).await.unwrap().resolved, 1);
    alerts.deliver_once(at(360)).await.unwrap();
    let resolved = &receiver.bodies()[1];
    assert_eq!(
        (resolved.status.as_str(), resolved.value),
        ("resolved", 240.0)
    );

    // It fires again when that one waits too long, and resolves when nothing is available.
    assert_eq!(alerts.evaluate_once(at(421)).await.unwrap().fired, 1);
    alerts.deliver_once(at(421)).await.unwrap();
    db.store
        .job_claim("default", 1, "w", LEASE, at(430))
        .await
        .unwrap();
    let e = alerts.evaluate_once(at(430)).await.unwrap();
    assert_eq!(
        (e.queues, e.resolved),
        (0, 1),
        "a queue with nothing to do is quiet"
    );
    alerts.deliver_once(at(430)).await.unwrap();
    let statuses: Vec<_> = receiver.bodies().into_iter().map(|b| b.status).collect();
    assert_eq!(statuses, ["firing", "resolved", "firing", "resolved"]);
    let last = receiver.bodies().pop().unwrap();
    assert_eq!(last.value, 0.0);
    assert!(last.description.contains("no job"), "{last:?}");
}

#[tokio::test]
async fn dead_letter_growth_fires_on_new_dead_jobs_and_resolves_once_the_window_passes() {
    let db = test_db().await;
    let receiver = Receiver::start(0).await;
    let t = tenant(&db.store, "acme", 100).await;
    let mut settings = config(&receiver, &["dead_letter_growth"]);
    settings.dead_letter_growth.window = Duration::from_secs(600);
    settings.dead_letter_growth.threshold = 1;
    let alerts = Alerts::new(settings, db.store.clone()).unwrap();

    dead_letter_one(&db.store, t, "default", at(0)).await;
    assert_eq!(
        alerts.evaluate_once(at(30)).await.unwrap().fired,
        0,
        "1 is not above 1"
    );
    dead_letter_one(&db.store, t, "default", at(60)).await;
    assert_eq!(alerts.evaluate_once(at(90)).await.unwrap().fired, 1);
    alerts.deliver_once(at(90)).await.unwrap();
    // Still two in the window at 10 min.
    let e = alerts.evaluate_once(at(600)).await.unwrap();
    assert_eq!((e.fired, e.resolved, e.still_firing), (0, 0, 1));
    // At 11 min the first minute's dead job has left the window.
    assert_eq!(alerts.evaluate_once(at(660)).await.unwrap().resolved, 1);
    alerts.deliver_once(at(660)).await.unwrap();
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(
        (bodies[0].status.as_str(), bodies[0].value),
        ("firing", 2.0)
    );
    assert_eq!(
        (bodies[1].status.as_str(), bodies[1].value),
        ("resolved", 1.0)
    );
}

#[tokio::test]
async fn a_resolution_replaces_a_firing_notification_not_yet_delivered() {
    let db = test_db().await;
    let receiver = Receiver::start(0).await;
    let t = tenant(&db.store, "acme", 100).await;
    let alerts = Alerts::new(config(&receiver, &["dead_letter_growth"]), db.store.clone()).unwrap();
    dead_letter_one(&db.store, t, "default", at(0)).await;
    assert_eq!(alerts.evaluate_once(at(10)).await.unwrap().fired, 1);
    // The window passes before the receiver heard of it: it learns the latest state only.
    assert_eq!(alerts.evaluate_once(at(3600)).await.unwrap().resolved, 1);
    assert_eq!(alerts.deliver_once(at(3600)).await.unwrap(), delivered(1));
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0].status, "resolved");
    assert_eq!(bodies[0].fired_at, at(10).unwrap());
    assert_eq!(bodies[0].resolved_at, at(3600));
}

#[tokio::test]
async fn renotifying_is_off_by_default_and_repeats_only_at_its_interval() {
    let db = test_db().await;
    let receiver = Receiver::start(0).await;
    let t = tenant(&db.store, "acme", 100).await;
    let mut settings = config(&receiver, &["dead_letter_growth"]);
    settings.dead_letter_growth.window = Duration::from_secs(86_400);
    settings.renotify_interval = Some(Duration::from_secs(3600));
    let alerts = Alerts::new(settings, db.store.clone()).unwrap();
    dead_letter_one(&db.store, t, "default", at(0)).await;
    alerts.evaluate_once(at(10)).await.unwrap();
    alerts.deliver_once(at(10)).await.unwrap();

    let e = alerts.evaluate_once(at(3000)).await.unwrap();
    assert_eq!(e.renotified, 0);
    let e = alerts.evaluate_once(at(3610)).await.unwrap();
    assert_eq!((e.fired, e.renotified), (0, 1));
    alerts.deliver_once(at(3610)).await.unwrap();
    assert_eq!(alerts.evaluate_once(at(3620)).await.unwrap().renotified, 0);
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[1].status, "firing");
    assert_eq!(bodies[1].fired_at, at(10).unwrap(), "the same episode");
}

#[tokio::test]
async fn the_leader_loop_evaluates_and_notifies_once_over_two_hosts_and_hands_over_its_lease() {
    let db = test_db().await;
    let receiver = Receiver::start(0).await;
    let t = tenant(&db.store, "acme", 100).await;
    let mut settings = config(&receiver, &["dead_letter_growth"]);
    settings.interval = Duration::from_millis(50);
    settings.leader_ttl = Duration::from_secs(2);
    dead_letter_one(&db.store, t, "default", None).await;

    let shutdown = CancellationToken::new();
    let hosts: Vec<_> = ["host-a", "host-b"]
        .into_iter()
        .map(|node| {
            let alerts = Alerts::new(settings.clone(), db.store.clone())
                .unwrap()
                .with_node(node);
            let token = shutdown.clone();
            tokio::spawn(async move { alerts.run(token).await })
        })
        .collect();

    let bodies = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(
        (bodies[0].status.as_str(), bodies[0].rule.as_str()),
        ("firing", "dead_letter_growth")
    );
    // Let the leader evaluate a few more times: the alert stays firing, unannounced.
    let first = db.store.alert_list(None).await.unwrap()[0].evaluated_at;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alert = &db.store.alert_list(None).await.unwrap()[0];
        if alert.evaluated_at >= first + TimeDelta::milliseconds(300) {
            break;
        }
        assert!(Instant::now() < deadline, "the leader stopped evaluating");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.requests(), 1);

    shutdown.cancel();
    for host in hosts {
        host.await.unwrap();
    }
    assert!(
        db.store
            .lease_acquire("alerts", "host-c", Duration::from_secs(10))
            .await
            .unwrap(),
        "the leader gave its lease up on shutdown"
    );
}

#[tokio::test]
async fn a_real_worker_failing_jobs_fires_alerts_that_each_tenant_lists_for_itself() {
    let server = TestServer::start(Options { worker: true }).await;
    let receiver = Receiver::start(0).await;
    let acme = server.tenant("acme", json!({})).await;
    let other = server.tenant("other", json!({})).await;
    let (status, body) = server.upload(&acme, "hostile", "hostile").await;
    assert_eq!(status, 201, "{body}");
    for action in ["permanent", "permanent", "permanent", "ok"] {
        let (status, body) = server
            .post(
                "/v1/jobs",
                &acme,
                json!({"handler": "hostile", "payload": {"action": action}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let mut settings = config(&receiver, &["failure_rate", "dead_letter_growth"]);
    settings.interval = Duration::from_millis(100);
    let alerts = Alerts::new(settings, server.db.store.clone()).unwrap();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let running = tokio::spawn(async move { alerts.run(token).await });

    let bodies = receiver.wait_for(2, Duration::from_secs(60)).await;
    let mut rules: Vec<_> = bodies
        .iter()
        .map(|b| (b.rule.as_str(), b.status.as_str()))
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        [("dead_letter_growth", "firing"), ("failure_rate", "firing")]
    );
    let rate = bodies.iter().find(|b| b.rule == "failure_rate").unwrap();
    assert_eq!((rate.value, rate.tenant.as_str()), (0.75, "acme"));
    shutdown.cancel();
    running.await.unwrap();

    let (status, listed) = server.get("/v1/alerts", &acme).await;
    assert_eq!(status, 200, "{listed}");
    let alerts = listed["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{listed}");
    for a in alerts {
        assert_eq!(
            (a["tenant"].as_str(), a["state"].as_str()),
            (Some("acme"), Some("firing"))
        );
        assert_eq!(a["queue"], "default");
        assert!(
            a["fired_at"].is_string() && a["resolved_at"].is_null(),
            "{a}"
        );
        assert!(
            a["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{a}"
        );
    }
    let (status, listed) = server.get("/v1/alerts", &other).await;
    assert_eq!((status, &listed), (200, &json!({"alerts": []})));

    // The other tenant dead-letters a job, and failure rates are no longer watched: the
    // admin sees every tenant's alerts, firing ones first.
    let other_id = server.db.store.tenant_get("other").await.unwrap().id;
    // Not the worker's queue: the test dead-letters it by hand.
    dead_letter_one(&server.db.store, other_id, "manual", None).await;
    let later = Alerts::new(
        config(&receiver, &["dead_letter_growth"]),
        server.db.store.clone(),
    )
    .unwrap();
    let e = later.evaluate_once(None).await.unwrap();
    assert_eq!((e.fired, e.resolved, e.still_firing), (1, 1, 1));
    let (status, listed) = server.get("/v1/alerts", ADMIN_TOKEN).await;
    assert_eq!(status, 200, "{listed}");
    let seen: Vec<_> = listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let field = |name: &str| a[name].as_str().unwrap().to_string();
            (field("state"), field("tenant"), field("rule"))
        })
        .collect();
    assert_eq!(seen.len(), 3, "{listed}");
    assert!(
        seen[..2].iter().all(|(state, _, _)| state == "firing"),
        "{listed}"
    );
    assert_eq!(
        seen[2],
        ("resolved".into(), "acme".into(), "failure_rate".into()),
        "{listed}"
    );
    let (status, listed) = server.get("/v1/alerts", &other).await;
    assert_eq!(status, 200);
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["alerts"][0]["tenant"], "other");
    server.stop().await;
}
