//! Periodic jobs (issue 14): cron schedules fire exactly once per tick, whatever the clock,
//! the zone, the leaders and the downtime; paused, overlapping and missed ticks do what the
//! schedule says; the API keeps tenants apart and names what is wrong with a request.
//!
//! Most tests drive the schedule firer's passes (`Maintenance::schedules_once`) with a
//! controllable clock; one runs two `spool serve` processes and kills the leader.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use spool::alerts::{Alerts, AlertsConfig};
use spool::maintenance::{Maintenance, MaintenanceConfig, TickCounts};
use spool::model::schedule::{CatchUp, Cron, Overlap};
use spool::model::{ErrorKind, JobState, TenantLimitSpec};
use spool::store::{Failure, JobFilter, ScheduleSpec, Store};
use spool_tests::db::test_db;
use spool_tests::factory::{put_handler, tenant_with_handlers};
use spool_tests::server::{ADMIN_TOKEN, Options, TestServer};
use spool_tests::{cache_dir, spool_bin, terminate};

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A schedule of the `hello` handler, every tick allowed to fire (`overlap: allow`).
fn spec(name: &str, cron: &str, timezone: &str) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        cron: cron.into(),
        timezone: timezone.into(),
        handler: "hello".into(),
        payload: json!({"name": name}),
        queue: "default".into(),
        priority: 0,
        max_attempts: None,
        limits: None,
        overlap: Overlap::Allow,
        catch_up: CatchUp::Latest,
        enabled: true,
    }
}

/// Stores `spec` for `tenant` as created at `at`: its first tick is the first after `at`.
async fn create(store: &Store, tenant: i64, spec: &ScheduleSpec, at: DateTime<Utc>) {
    let next = Cron::parse(&spec.cron, &spec.timezone)
        .unwrap()
        .next_after(at);
    store
        .schedule_upsert(tenant, spec, next, false)
        .await
        .unwrap();
}

fn firer(store: &Store, config: MaintenanceConfig) -> Maintenance {
    Maintenance::new(config, store.clone())
}

/// The ticks (parsed back from the idempotency keys) of `tenant`'s jobs of schedule `name`,
/// with how many jobs each has.
async fn jobs_by_tick(store: &Store, tenant: i64, name: &str) -> BTreeMap<DateTime<Utc>, usize> {
    let jobs = store
        .job_list(tenant, &JobFilter::default(), None, 1000)
        .await
        .unwrap();
    let prefix = format!("schedule:{name}:");
    let mut ticks = BTreeMap::new();
    for job in jobs {
        if let Some(tick) = job.idempotency_key.strip_prefix(&prefix) {
            *ticks.entry(utc(tick)).or_default() += 1;
        }
    }
    ticks
}

fn times(ticks: &BTreeMap<DateTime<Utc>, usize>) -> Vec<String> {
    ticks
        .keys()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .collect()
}

fn assert_once_each(ticks: &BTreeMap<DateTime<Utc>, usize>) {
    for (tick, n) in ticks {
        assert_eq!(*n, 1, "tick {tick} has {n} jobs: {ticks:?}");
    }
}

#[tokio::test]
async fn every_second_and_every_minute_schedules_fire_once_per_tick() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["hello"]).await;
    let t0 = utc("2030-01-01T00:00:00Z");
    create(&db.store, t, &spec("each-second", "* * * * * *", "UTC"), t0).await;
    create(&db.store, t, &spec("each-minute", "* * * * *", "UTC"), t0).await;
    let metrics = std::sync::Arc::new(spool::metrics::Metrics::new());
    let m = firer(&db.store, MaintenanceConfig::default()).with_metrics(metrics.clone());
    let other = firer(&db.store, MaintenanceConfig::default()).with_metrics(metrics.clone());
    // Passes at uneven moments, some twice at the same moment, some on two "leaders" at once.
    for ms in [400, 1_100, 1_100, 1_900, 3_050, 61_000, 61_500, 120_000] {
        let now = Some(t0 + TimeDelta::milliseconds(ms));
        let (a, b) = tokio::join!(m.schedules_once(now), other.schedules_once(now));
        a.unwrap();
        b.unwrap();
    }
    let seconds = jobs_by_tick(&db.store, t, "each-second").await;
    assert_once_each(&seconds);
    assert_eq!(
        seconds.len(),
        120,
        "every second from 00:00:01 to 00:02:00: {:?}",
        times(&seconds)
    );
    let minutes = jobs_by_tick(&db.store, t, "each-minute").await;
    assert_once_each(&minutes);
    assert_eq!(
        times(&minutes),
        ["2030-01-01T00:01:00Z", "2030-01-01T00:02:00Z"]
    );
    // A leader that died after enqueueing, before moving the schedule on: its successor
    // finds the tick's job by its key and makes no second one.
    let s = db.store.schedule_get(t, "each-minute").await.unwrap();
    db.store
        .schedule_upsert(t, &s.spec, Some(utc("2030-01-01T00:02:00Z")), false)
        .await
        .unwrap();
    let counts = m
        .schedules_once(Some(utc("2030-01-01T00:02:05Z")))
        .await
        .unwrap();
    assert_eq!(counts.duplicate, 1, "{counts:?}");
    assert_once_each(&jobs_by_tick(&db.store, t, "each-minute").await);
    assert_once_each(&jobs_by_tick(&db.store, t, "each-second").await);
    // A change that keeps the timing (from a read older than the leader's last pass) keeps
    // the next tick the leader moved on to.
    let s = db.store.schedule_get(t, "each-minute").await.unwrap();
    let (kept, created) = db
        .store
        .schedule_upsert(t, &s.spec, Some(t0), true)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(kept.next_fire_at, Some(utc("2030-01-01T00:03:00Z")));
    // 120 + 2 ticks, then 00:02:01 to 00:02:05, each counted once by whichever fired it.
    let text = metrics.render(&db.store).await;
    for line in [
        "spool_schedule_ticks_total{tenant=\"acme\",outcome=\"enqueued\"} 127",
        "spool_schedule_ticks_total{tenant=\"acme\",outcome=\"duplicate\"} 1",
        "spool_schedule_lag_seconds_count{tenant=\"acme\"} 127",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn a_dst_change_in_a_named_zone_fires_each_local_time_once() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["hello"]).await;
    // Europe/Berlin: 02:00-03:00 is skipped on 2030-03-31 and repeated on 2030-10-27.
    create(
        &db.store,
        t,
        &spec("daily", "30 2 * * *", "Europe/Berlin"),
        utc("2030-03-29T12:00:00Z"),
    )
    .await;
    let m = firer(&db.store, MaintenanceConfig::default());
    let mut now = utc("2030-03-29T12:00:00Z");
    while now < utc("2030-04-01T12:00:00Z") {
        now += TimeDelta::minutes(20);
        m.schedules_once(Some(now)).await.unwrap();
    }
    assert_eq!(
        times(&jobs_by_tick(&db.store, t, "daily").await),
        [
            "2030-03-30T01:30:00Z", // 02:30 CET
            "2030-03-31T01:00:00Z", // 03:00 CEST: 02:30 does not exist that night
            "2030-04-01T00:30:00Z", // 02:30 CEST
        ]
    );
    // An interval schedule fires in both passes of the repeated hour, each once.
    create(
        &db.store,
        t,
        &spec("half-hourly", "*/30 * * * *", "Europe/Berlin"),
        utc("2030-10-26T23:40:00Z"),
    )
    .await;
    let mut now = utc("2030-10-26T23:40:00Z");
    while now < utc("2030-10-27T02:10:00Z") {
        now += TimeDelta::minutes(5);
        m.schedules_once(Some(now)).await.unwrap();
    }
    let ticks = jobs_by_tick(&db.store, t, "half-hourly").await;
    assert_once_each(&ticks);
    assert_eq!(
        times(&ticks),
        [
            "2030-10-27T00:00:00Z", // 02:00 CEST
            "2030-10-27T00:30:00Z", // 02:30 CEST
            "2030-10-27T01:00:00Z", // 02:00 CET
            "2030-10-27T01:30:00Z", // 02:30 CET
            "2030-10-27T02:00:00Z", // 03:00 CET
        ]
    );
}

#[tokio::test]
async fn overlap_skip_holds_a_tick_while_the_last_run_is_pending() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["hello"]).await;
    let t0 = utc("2030-01-01T00:00:00Z");
    let skip = ScheduleSpec {
        overlap: Overlap::Skip,
        ..spec("sync", "* * * * * *", "UTC")
    };
    create(&db.store, t, &skip, t0).await;
    let m = firer(&db.store, MaintenanceConfig::default());
    let at = |s: i64| Some(t0 + TimeDelta::seconds(s));
    assert_eq!(m.schedules_once(at(1)).await.unwrap().enqueued, 1);
    // The job of 00:00:01 has not run: 00:00:02 and 00:00:03 are skipped.
    let counts = m.schedules_once(at(3)).await.unwrap();
    assert_eq!((counts.enqueued, counts.skipped), (0, 2), "{counts:?}");
    let first = db.store.schedule_get(t, "sync").await.unwrap();
    assert!(
        db.store
            .job_cancel(t, first.last_job_id.unwrap())
            .await
            .unwrap()
    );
    let counts = m.schedules_once(at(4)).await.unwrap();
    assert_eq!((counts.enqueued, counts.skipped), (1, 0), "{counts:?}");
    let runs = db.store.schedule_ticks_recent(t, None, 10).await.unwrap();
    let outcomes: Vec<&str> = runs.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["enqueued", "skipped", "skipped", "enqueued"]);
    assert_eq!(runs[3].job_state, Some(JobState::Cancelled));
    assert_eq!(
        times(&jobs_by_tick(&db.store, t, "sync").await),
        ["2030-01-01T00:00:01Z", "2030-01-01T00:00:04Z"]
    );
}

#[tokio::test]
async fn ticks_are_held_to_the_tenants_quotas_like_any_enqueue() {
    let db = test_db().await;
    let limits = TenantLimitSpec {
        max_queued: Some(1),
        ..TenantLimitSpec::default()
    };
    let t = db
        .store
        .tenant_create("acme", &limits, None)
        .await
        .unwrap()
        .id;
    put_handler(&db.store, t, "hello").await;
    let t0 = utc("2030-01-01T00:00:00Z");
    create(&db.store, t, &spec("sync", "* * * * * *", "UTC"), t0).await;
    let m = firer(&db.store, MaintenanceConfig::default());
    let at = |s: i64| Some(t0 + TimeDelta::seconds(s));
    assert_eq!(m.schedules_once(at(1)).await.unwrap().enqueued, 1);
    // One job pending is the tenant's cap: the next tick is refused, recorded, not retried.
    let counts = m.schedules_once(at(2)).await.unwrap();
    assert_eq!((counts.enqueued, counts.refused), (0, 1), "{counts:?}");
    let runs = db.store.schedule_ticks_recent(t, None, 10).await.unwrap();
    assert_eq!(runs[0].outcome, "refused");
    assert!(
        runs[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("queued-jobs cap reached")),
        "{runs:?}"
    );
    assert_eq!(jobs_by_tick(&db.store, t, "sync").await.len(), 1);
}

#[tokio::test]
async fn each_catch_up_policy_after_downtime() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["hello"]).await;
    let t0 = utc("2030-01-01T00:00:30Z");
    for (name, catch_up) in [
        ("none", CatchUp::None),
        ("latest", CatchUp::Latest),
        ("all", CatchUp::All),
    ] {
        let s = ScheduleSpec {
            catch_up,
            ..spec(name, "* * * * *", "UTC")
        };
        create(&db.store, t, &s, t0).await;
    }
    let m = firer(
        &db.store,
        MaintenanceConfig {
            tick_grace: Duration::from_secs(10),
            ..MaintenanceConfig::default()
        },
    );
    // No node ran from 00:00:30 to 00:10:30: ticks 00:01 to 00:10 were missed.
    let counts = m
        .schedules_once(Some(utc("2030-01-01T00:10:30Z")))
        .await
        .unwrap();
    assert_eq!(
        counts,
        TickCounts {
            schedules: 3,
            enqueued: 11,
            missed: 19,
            ..TickCounts::default()
        }
    );
    assert!(jobs_by_tick(&db.store, t, "none").await.is_empty());
    assert_eq!(
        times(&jobs_by_tick(&db.store, t, "latest").await),
        ["2030-01-01T00:10:00Z"]
    );
    let all = jobs_by_tick(&db.store, t, "all").await;
    assert_eq!(all.len(), 10);
    assert_eq!(
        all.keys().next().copied(),
        Some(utc("2030-01-01T00:01:00Z"))
    );
    // Back to normal: the next tick fires on time for each.
    m.schedules_once(Some(utc("2030-01-01T00:11:02Z")))
        .await
        .unwrap();
    for name in ["none", "latest", "all"] {
        let ticks = jobs_by_tick(&db.store, t, name).await;
        assert_once_each(&ticks);
        assert!(
            ticks.contains_key(&utc("2030-01-01T00:11:00Z")),
            "{name}: {ticks:?}"
        );
    }
}

#[tokio::test]
async fn the_last_runs_failing_fire_an_alert_until_one_succeeds() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["hello"]).await;
    let t0 = utc("2030-01-01T00:00:00Z");
    create(&db.store, t, &spec("flaky", "* * * * *", "UTC"), t0).await;
    let m = firer(&db.store, MaintenanceConfig::default());
    // The rule alone: a dead job would fire the queue's dead-letter rule too.
    let mut config = AlertsConfig::default();
    config.failure_rate.enabled = false;
    config.dead_letter_growth.enabled = false;
    config.backlog_age.enabled = false;
    let alerts = Alerts::new(config, db.store.clone()).unwrap();
    // Three runs, each dead-lettered (a permanent failure).
    for minute in 1..=3 {
        let now = t0 + TimeDelta::minutes(minute) + TimeDelta::seconds(1);
        m.schedules_once(Some(now)).await.unwrap();
        let claimed = db
            .store
            .job_claim("default", 1, "w", Duration::from_secs(10), Some(now))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        let j = &claimed[0];
        let failure = Failure {
            tenant_id: t,
            id: j.id,
            run_lease: j.run_lease,
            attempt: 1,
            kind: ErrorKind::Permanent,
            message: "the integration is down".into(),
            logs: json!([]),
            retry_delay: None,
        };
        db.store
            .job_finish_many(&[], &[failure], Some(now))
            .await
            .unwrap();
        let evaluation = alerts.evaluate_once(Some(now)).await.unwrap();
        assert_eq!(
            evaluation.fired,
            usize::from(minute == 3),
            "after run {minute}"
        );
    }
    let listed = db.store.alert_list(Some(t)).await.unwrap();
    let alert = listed
        .iter()
        .find(|a| a.key.rule == "schedule_failing")
        .expect("a schedule_failing alert");
    assert_eq!(alert.key.queue, "flaky");
    assert!(
        alert
            .description
            .contains("3 of the last 3 finished runs of schedule flaky"),
        "{}",
        alert.description
    );
    // The next run completes: the alert resolves.
    let now = t0 + TimeDelta::minutes(4) + TimeDelta::seconds(1);
    m.schedules_once(Some(now)).await.unwrap();
    let claimed = db
        .store
        .job_claim("default", 1, "w", Duration::from_secs(10), Some(now))
        .await
        .unwrap();
    db.store
        .job_finish_many(
            &[spool_tests::factory::success(&claimed[0], "{}")],
            &[],
            Some(now),
        )
        .await
        .unwrap();
    assert_eq!(alerts.evaluate_once(Some(now)).await.unwrap().resolved, 1);
}

/// Creates tenant `name` with the `hello` handler on `s`; returns its token.
async fn tenant(s: &TestServer, name: &str) -> String {
    let token = s.tenant(name, json!({})).await;
    assert_eq!(s.upload(&token, "hello", "hello").await.0, 201);
    token
}

#[tokio::test]
async fn paused_schedules_fire_nothing_and_resume_from_their_next_tick() {
    let s = TestServer::start(Options::default()).await;
    let token = tenant(&s, "acme").await;
    let (status, created) = s
        .post(
            "/v1/schedules",
            &token,
            json!({"name": "sync", "cron": "* * * * * *", "handler": "hello", "overlap": "allow"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["next_fire_times"].as_array().unwrap().len(), 5);
    assert_eq!(
        (created["overlap"].as_str(), created["catch_up"].as_str()),
        (Some("allow"), Some("latest"))
    );
    let tenant_id = s.db.store.tenant_get("acme").await.unwrap().id;
    let m = firer(&s.db.store, MaintenanceConfig::default());
    let later = |secs: i64| Some(Utc::now() + TimeDelta::seconds(secs));
    assert!(m.schedules_once(later(2)).await.unwrap().enqueued >= 1);
    let fired = jobs_by_tick(&s.db.store, tenant_id, "sync").await.len();

    let patch = |enabled: bool| {
        s.call(
            reqwest::Method::PATCH,
            "/v1/schedules/sync",
            &token,
            Some(json!({"enabled": enabled})),
        )
    };
    let (status, paused) = patch(false).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["enabled"], false);
    assert!(paused["next_fire_at"].is_null() && paused["next_fire_times"] == json!([]));
    let paused_at = Utc::now();
    assert_eq!(
        m.schedules_once(later(30)).await.unwrap(),
        TickCounts::default()
    );
    assert_eq!(
        jobs_by_tick(&s.db.store, tenant_id, "sync").await.len(),
        fired
    );

    let resumed_at = Utc::now() + TimeDelta::seconds(30);
    let (status, resumed) = patch(true).await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["enabled"], true);
    // Resumed at "30 s later": ticks while it was paused never fire.
    m.schedules_once(Some(resumed_at)).await.unwrap();
    let ticks = jobs_by_tick(&s.db.store, tenant_id, "sync").await;
    assert_once_each(&ticks);
    assert!(ticks.len() > fired, "{ticks:?}");
    let while_paused: Vec<_> = ticks
        .keys()
        .filter(|t| {
            **t > paused_at + TimeDelta::seconds(2) && **t < resumed_at - TimeDelta::seconds(30)
        })
        .collect();
    assert!(
        while_paused.is_empty(),
        "fired while paused: {while_paused:?}"
    );
    let (_, shown) = s.get("/v1/schedules/sync", &token).await;
    assert!(
        !shown["last_runs"].as_array().unwrap().is_empty(),
        "{shown}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_tenants_schedules_are_invisible_to_another_tenant() {
    let s = TestServer::start(Options::default()).await;
    let acme = tenant(&s, "acme").await;
    let other = tenant(&s, "other").await;
    let body = json!({"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Berlin",
                      "handler": "hello", "payload": {"report": "daily"}});
    assert_eq!(s.post("/v1/schedules", &acme, body.clone()).await.0, 201);
    let (status, list) = s.get("/v1/schedules", &other).await;
    assert_eq!((status, list), (200, json!({"schedules": []})));
    assert_eq!(s.get("/v1/schedules/nightly", &other).await.0, 404);
    let patch = Some(json!({"enabled": false}));
    let (status, _) = s
        .call(
            reqwest::Method::PATCH,
            "/v1/schedules/nightly",
            &other,
            patch,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .call(
            reqwest::Method::DELETE,
            "/v1/schedules/nightly",
            &other,
            None,
        )
        .await;
    assert_eq!(status, 404);
    // The same name is the other tenant's own.
    assert_eq!(s.post("/v1/schedules", &other, body).await.0, 201);
    let (_, mine) = s.get("/v1/schedules/nightly", &acme).await;
    assert_eq!(
        (
            mine["enabled"].as_bool(),
            mine["payload"]["report"].as_str()
        ),
        (Some(true), Some("daily"))
    );
    // The admin sees a tenant's with ?tenant=.
    let (status, list) = s.get("/v1/schedules?tenant=acme", ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(list["schedules"].as_array().unwrap().len(), 1);
    let (status, _) = s
        .call(
            reqwest::Method::DELETE,
            "/v1/schedules/nightly",
            &acme,
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(s.get("/v1/schedules/nightly", &other).await.0, 200);
    s.stop().await;
}

#[tokio::test]
async fn bad_input_is_a_422_naming_the_bad_field() {
    let s = TestServer::start_api(spool::api::ApiConfig::default()).await;
    let token = tenant(&s, "acme").await;
    let good = json!({"name": "sync", "cron": "*/15 * * * *", "handler": "hello"});
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    for (body, field) in [
        (with("cron", json!("61 * * * *")), "cron: "),
        (with("cron", json!("every day")), "cron: "),
        (with("cron", json!("0 0 30 2 *")), "cron: "),
        (with("timezone", json!("Mars/Olympus")), "timezone: "),
        (with("handler", json!("nobody")), "handler: "),
        (with("name", json!("no spaces")), "name: "),
        (with("queue", json!("")), "queue: "),
        (with("overlap", json!("sometimes")), "overlap: "),
        (with("catch_up", json!("most")), "catch_up: "),
        (with("max_attempts", json!(0)), "max_attempts: "),
        (with("limits", json!({"fuel": 0})), "limits.fuel: "),
        (with("payload", json!("x".repeat(300 << 10))), "payload: "),
    ] {
        let (status, problem) = s.post("/v1/schedules", &token, body.clone()).await;
        assert_eq!(status, 422, "{body}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.starts_with(field), "{field}: {detail}");
    }
    let (status, problem) = s
        .post("/v1/schedules", &token, with("bogus", json!(1)))
        .await;
    assert_eq!(status, 422);
    assert!(
        problem["detail"].as_str().unwrap().contains("bogus"),
        "{problem}"
    );
    assert_eq!(s.post("/v1/schedules", &token, good.clone()).await.0, 201);
    assert_eq!(s.post("/v1/schedules", &token, good).await.0, 409);
    let (status, problem) = s
        .call(
            reqwest::Method::PATCH,
            "/v1/schedules/sync",
            &token,
            Some(json!({"timezone": "Nowhere"})),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("timezone: ")
    );
    s.stop().await;
}

#[tokio::test]
async fn a_tenant_may_have_at_most_a_thousand_schedules() {
    let s = TestServer::start_api(spool::api::ApiConfig::default()).await;
    let token = tenant(&s, "acme").await;
    let id = s.db.store.tenant_get("acme").await.unwrap().id;
    s.db.store
        .admin_execute(&format!(
            "INSERT INTO spool.schedules (tenant_id, name, cron, handler) \
             SELECT {id}, 's' || g, '0 3 * * *', 'hello' FROM generate_series(1, 1000) g"
        ))
        .await
        .unwrap();
    let body = json!({"name": "one-more", "cron": "0 3 * * *", "handler": "hello"});
    let (status, problem) = s.post("/v1/schedules", &token, body.clone()).await;
    assert_eq!(status, 422, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("name: this tenant has 1000 schedules"),
        "{problem}"
    );
    let (status, _) = s
        .call(
            reqwest::Method::PUT,
            "/v1/schedules/one-more",
            &token,
            Some(body),
        )
        .await;
    assert_eq!(status, 422);
    // Replacing one it has is no new schedule.
    let (status, replaced) = s
        .call(
            reqwest::Method::PUT,
            "/v1/schedules/s1",
            &token,
            Some(json!({"cron": "0 4 * * *", "handler": "hello"})),
        )
        .await;
    assert_eq!(
        (status, replaced["cron"].as_str()),
        (200, Some("0 4 * * *"))
    );
    s.stop().await;
}

/// Runs the `spool` binary with `args` against `url` as the tenant whose token is `token`.
async fn spool(
    url: &str,
    token: &str,
    args: &[&str],
    dir: Option<&std::path::Path>,
) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(spool_bin());
    command
        .args(args)
        .env_remove("SPOOL_ADMIN_TOKEN")
        .env("SPOOL_URL", url)
        .env("SPOOL_TOKEN", token)
        .env("SPOOL_LOG", "warn");
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let out = command.output().await.expect("running spool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_manages_schedules_and_handler_upload_applies_spool_toml() {
    let s = TestServer::start_api(spool::api::ApiConfig::default()).await;
    let token = s.tenant("acme", json!({})).await;
    // A handler folder: the component and a spool.toml declaring its schedules.
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("hello.wasm");
    std::fs::write(&wasm, spool_tests::component("hello")).unwrap();
    std::fs::write(
        dir.path().join("spool.toml"),
        "[[schedule]]\nname = \"report\"\ncron = \"0 7 * * MON-FRI\"\n\
         timezone = \"Europe/Berlin\"\npayload = { kind = \"daily\" }\n\n\
         [[schedule]]\nname = \"sync\"\ncron = \"*/15 * * * *\"\ncatch_up = \"none\"\n",
    )
    .unwrap();
    let upload = ["handler", "upload", "hello", "hello.wasm"];
    let (ok, out, err) = spool(&s.url, &token, &upload, Some(dir.path())).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("created schedule report") && out.contains("created schedule sync"),
        "{out}"
    );
    let (_, before) = s.get("/v1/schedules/report", &token).await;
    assert_eq!(before["payload"], json!({"kind": "daily"}));
    assert_eq!(before["handler"], "hello");
    // Deploying again changes nothing.
    let (ok, out, err) = spool(&s.url, &token, &upload, Some(dir.path())).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("applied schedule report"), "{out}");
    let (_, after) = s.get("/v1/schedules/report", &token).await;
    assert_eq!(before, after);

    let run = |args: &'static [&'static str]| spool(&s.url, &token, args, None);
    let (ok, out, err) = run(&[
        "schedule",
        "create",
        "nightly",
        "--cron",
        "0 0 3 * * *",
        "--handler",
        "hello",
        "--timezone",
        "America/New_York",
        "--payload",
        "{\"full\": true}",
        "--catch-up",
        "all",
    ])
    .await;
    assert!(
        ok && out.starts_with("created schedule nightly (active); next: "),
        "{out}{err}"
    );
    let (ok, out, _) = run(&["schedule", "list"]).await;
    assert!(ok);
    for name in ["nightly", "report", "sync"] {
        assert!(out.contains(name), "{out}");
    }
    let (ok, out, _) = run(&["schedule", "pause", "nightly"]).await;
    assert!(
        ok && out.starts_with("paused schedule nightly; next: -"),
        "{out}"
    );
    let (ok, out, _) = run(&["schedule", "get", "nightly", "--json"]).await;
    assert!(ok);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (shown["enabled"].as_bool(), shown["catch_up"].as_str()),
        (Some(false), Some("all"))
    );
    // A redeploy keeps a paused schedule paused.
    let (ok, _, _) = run(&["schedule", "pause", "sync"]).await;
    assert!(ok);
    let (ok, _, _) = spool(&s.url, &token, &upload, Some(dir.path())).await;
    assert!(ok);
    let (_, sync) = s.get("/v1/schedules/sync", &token).await;
    assert_eq!(
        (sync["enabled"].as_bool(), sync["catch_up"].as_str()),
        (Some(false), Some("none"))
    );
    let (ok, out, _) = run(&["schedule", "resume", "nightly"]).await;
    assert!(
        ok && out.starts_with("resumed schedule nightly; next: 20"),
        "{out}"
    );
    let (ok, out, _) = run(&["schedule", "get", "nightly"]).await;
    assert!(
        ok && out.contains("0 0 3 * * * in America/New_York") && out.contains("no runs yet"),
        "{out}"
    );
    let (ok, out, _) = run(&["schedule", "delete", "nightly"]).await;
    assert!(ok && out == "deleted schedule nightly\n", "{out}");
    let (ok, _, err) = run(&["schedule", "get", "nightly"]).await;
    assert!(
        !ok && err.contains("no schedule named \"nightly\""),
        "{err}"
    );
    let (ok, _, err) = run(&[
        "schedule",
        "create",
        "x",
        "--cron",
        "nope",
        "--handler",
        "hello",
    ])
    .await;
    assert!(!ok && err.contains("cron: \"nope\""), "{err}");
    s.stop().await;
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `spool serve` (API and maintenance, no worker; a 1 s leader lease) on `url`.
#[allow(
    clippy::zombie_processes,
    reason = "the caller kills or terminates the child and waits for it"
)]
fn serve(url: &str) -> std::process::Child {
    Command::new(spool_bin())
        .args(["serve", "--no-worker", "--leader-ttl", "1s", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .env("DATABASE_URL", url)
        .env("SPOOL_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SPOOL_CACHE_DIR", cache_dir())
        .env("SPOOL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting spool serve")
}

/// Polls until the schedule has a job for a tick at or after `after`, or panics.
async fn wait_tick(store: &Store, tenant: i64, after: DateTime<Utc>) -> DateTime<Utc> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ticks = jobs_by_tick(store, tenant, "beat").await;
        if let Some(last) = ticks.keys().next_back().filter(|t| **t >= after) {
            return *last;
        }
        assert!(
            Instant::now() < deadline,
            "no tick after {after}: {ticks:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_nodes_with_the_leader_killed_fire_each_tick_exactly_once() {
    let db = test_db().await;
    let t = tenant_with_handlers(&db.store, "acme", &["hello"]).await;
    create(
        &db.store,
        t,
        &spec("beat", "* * * * * *", "UTC"),
        Utc::now(),
    )
    .await;
    let mut leader = serve(&db.url);
    let first = wait_tick(&db.store, t, Utc::now()).await;
    let follower = serve(&db.url);
    wait_tick(&db.store, t, first + TimeDelta::seconds(2)).await;
    // Killed mid-run: no lease handed over, whatever it was doing left as it was.
    leader.kill().unwrap();
    leader.wait().unwrap();
    let killed = Utc::now();
    wait_tick(&db.store, t, killed + TimeDelta::seconds(3)).await;
    let status = terminate(follower).await;
    assert!(status.success(), "spool serve exited with {status}");
    let ticks = jobs_by_tick(&db.store, t, "beat").await;
    assert_once_each(&ticks);
    let (from, to) = (
        *ticks.keys().next().unwrap(),
        *ticks.keys().next_back().unwrap(),
    );
    assert_eq!(
        ticks.len() as i64,
        (to - from).num_seconds() + 1,
        "every second from {from} to {to}, none missing: {:?}",
        times(&ticks)
    );
}
