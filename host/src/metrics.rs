//! Prometheus metrics: what the worker, the API and the database report.
//!
//! Every metric name is defined here, once, and carries the `spool_` prefix. Three kinds:
//!
//! - **Counters of what happened**, by tenant, queue and handler, counted by the process
//!   that saw it happen: `spool_jobs_enqueued_total` (the API, through
//!   [`Metrics::jobs_enqueued`], and the worker for follow-up jobs a handler enqueued),
//!   `spool_jobs_completed_total`, `spool_jobs_retried_total`,
//!   `spool_jobs_dead_lettered_total` and `spool_jobs_duplicate_total` (the worker, as it
//!   commits outcomes), `spool_attempt_errors_total` (also by error kind), and
//!   `spool_store_conflicts_total` (by tenant: attempts that lost a race on a store key).
//!   `spool_schedule_ticks_total` (by tenant and outcome: `enqueued`, `duplicate`, `skipped`,
//!   `refused`, `missed`) and `spool_schedule_lag_seconds` (by tenant: from a tick's time to
//!   its job's enqueue), counted by the maintenance leader that fired them.
//! - **Histograms per attempt**, by tenant, queue, handler and outcome (`ok`, `retry`,
//!   `permanent`, `trap`): `spool_attempt_duration_seconds` and `spool_attempt_fuel_consumed`.
//! - **Outbound HTTP**, by tenant, host and outcome: `spool_http_requests_total` and
//!   `spool_http_request_duration_seconds`. The host label is the tenant's allow-list entry
//!   that allowed the request (a wildcard entry's pattern, not the subdomain) or `other`.
//! - **Gauges read at scrape time**: the backlog per tenant, queue and state
//!   (`spool_queue_jobs`), the age of the oldest available job (`spool_queue_oldest_available_age_seconds`),
//!   the dead-letter count (`spool_dead_letter_jobs`), all from the store's counters (never a
//!   count over the jobs), read at most once per [`STATS_TTL`] however often it is scraped
//!   and cut short by the database after [`STATS_TIMEOUT`]; and this process's own figures: worker slots, running and free
//!   (`spool_worker_*`), sandboxes in use (`spool_sandboxes_*`), database connections
//!   (`spool_db_pool_connections`).
//!
//! Labels are bounded: names of tenants, queues and handlers (each a validated name of at most
//! 64 bytes), fixed outcome, kind and state sets; never a job id. Every process counts only
//! what it did, so counters from several processes add up; the store gauges are the same in
//! every process that renders them (aggregate them with `max`, not `sum`).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::model::ErrorKind;
use crate::store::Store;

/// How long the store may take to answer a scrape's queue statistics: past it the database
/// cancels the statement and the scrape renders without them.
pub const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a scrape's queue statistics are rendered again rather than read again: scrapes
/// in between (from any number of scrapers, at once or not) cost the database nothing.
pub const STATS_TTL: Duration = Duration::from_secs(5);

/// The job a figure is about: its tenant, queue and handler names.
/// The tenant a figure is about.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

/// The labels of a job's series: its tenant and queue.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// The tenant's name.
    pub tenant: String,
    /// The queue.
    pub queue: String,
    /// The handler's name.
    pub handler: String,
}

impl JobLabels {
    /// Returns the labels of a job of `tenant` on `queue` run by `handler`.
    pub fn new(tenant: &str, queue: &str, handler: &str) -> JobLabels {
        JobLabels {
            tenant: tenant.to_string(),
            queue: queue.to_string(),
            handler: handler.to_string(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    tenant: String,
    queue: String,
    handler: String,
    /// `ok`, `retry`, `permanent` or `trap` ([`crate::model::Outcome::label`]).
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    tenant: String,
    queue: String,
    handler: String,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    tenant: String,
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueStateLabels {
    tenant: String,
    queue: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TickLabels {
    tenant: String,
    /// `enqueued`, `duplicate`, `skipped`, `refused` or `missed`.
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    tenant: String,
    /// The allow-list entry's host (`*.example.com` for a wildcard), or `other` for a host
    /// the tenant does not allow: a tenant's labels are bounded by its list.
    host: String,
    /// [`crate::capabilities::http::Outcome::label`].
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Attempt durations: 1 ms to about 65 s, doubling (the default timeout is 30 s).
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Schedule lag: 1 ms to about 65 s, doubling (a tick is on time within a minute).
fn lag_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Fuel burned: 10^4 to about 4·10^10, quadrupling (the default budget is 10^9).
fn fuel_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e4, 4.0, 12))
}

/// Spool's metric registry: create one per process, share it behind an `Arc`, hand it to the
/// [`Worker`](crate::worker::Worker) (`with_metrics`) and the API, and serve
/// [`Metrics::render`] at `GET /metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    enqueued: Family<JobLabels, Counter>,
    completed: Family<JobLabels, Counter>,
    retried: Family<JobLabels, Counter>,
    dead_lettered: Family<JobLabels, Counter>,
    duplicates: Family<JobLabels, Counter>,
    store_conflicts: Family<TenantLabels, Counter>,
    attempt_errors: Family<ErrorLabels, Counter>,
    attempt_duration: HistogramFamily<AttemptLabels>,
    attempt_fuel: HistogramFamily<AttemptLabels>,
    schedule_ticks: Family<TickLabels, Counter>,
    schedule_lag: HistogramFamily<TenantLabels>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<HttpLabels>,
    queue_jobs: Family<QueueStateLabels, Gauge>,
    oldest_available: Family<QueueLabels, Gauge<f64, AtomicU64>>,
    dead_letter: Family<QueueLabels, Gauge>,
    queue_stats_up: Gauge,
    worker_slots: Gauge,
    worker_running: Gauge,
    worker_free: Gauge,
    sandboxes_in_use: Gauge,
    sandboxes_max: Gauge,
    db_connections: Family<PoolLabels, Gauge>,
    /// How long the store gauges are trusted ([`STATS_TTL`] unless set).
    stats_ttl: Duration,
    /// One scrape at a time (a scrape waiting here then finds the gauges fresh), and when
    /// the store gauges were last read.
    scrape: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// The `Content-Type` of [`Metrics::render`]'s output: the OpenMetrics text format
    /// (counters end in `_total`, the exposition ends with `# EOF`).
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// Returns a registry with every Spool metric registered and at zero.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("spool"),
            enqueued: Family::default(),
            completed: Family::default(),
            retried: Family::default(),
            dead_lettered: Family::default(),
            duplicates: Family::default(),
            store_conflicts: Family::default(),
            attempt_errors: Family::default(),
            attempt_duration: Family::new_with_constructor(duration_histogram),
            attempt_fuel: Family::new_with_constructor(fuel_histogram),
            schedule_ticks: Family::default(),
            schedule_lag: Family::new_with_constructor(lag_histogram),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(duration_histogram),
            queue_jobs: Family::default(),
            oldest_available: Family::default(),
            dead_letter: Family::default(),
            queue_stats_up: Gauge::default(),
            worker_slots: Gauge::default(),
            worker_running: Gauge::default(),
            worker_free: Gauge::default(),
            sandboxes_in_use: Gauge::default(),
            sandboxes_max: Gauge::default(),
            db_connections: Family::default(),
            stats_ttl: STATS_TTL,
            scrape: tokio::sync::Mutex::new(None),
        };
        let r = &mut m.registry;
        r.register(
            "jobs_enqueued",
            "Jobs enqueued (duplicates of an existing key not included)",
            m.enqueued.clone(),
        );
        r.register(
            "jobs_completed",
            "Jobs committed as completed",
            m.completed.clone(),
        );
        r.register(
            "jobs_retried",
            "Failed attempts whose job was scheduled to run again",
            m.retried.clone(),
        );
        r.register(
            "jobs_dead_lettered",
            "Jobs moved to the dead-letter queue",
            m.dead_lettered.clone(),
        );
        r.register(
            "jobs_duplicate",
            "Jobs completed as duplicates: their idempotency key was already done",
            m.duplicates.clone(),
        );
        r.register(
            "store_conflicts",
            "Attempts whose checked store write lost a race at commit; each runs again",
            m.store_conflicts.clone(),
        );
        r.register(
            "attempt_errors",
            "Failed attempts by error kind",
            m.attempt_errors.clone(),
        );
        r.register_with_unit(
            "attempt_duration",
            "Wall-clock time of attempts in the sandbox",
            Unit::Seconds,
            m.attempt_duration.clone(),
        );
        r.register(
            "attempt_fuel_consumed",
            "Fuel burned by attempts in the sandbox",
            m.attempt_fuel.clone(),
        );
        r.register(
            "schedule_ticks",
            "Ticks of cron schedules handled by the maintenance leader, by outcome",
            m.schedule_ticks.clone(),
        );
        r.register_with_unit(
            "schedule_lag",
            "Time from a schedule's tick to its job's enqueue",
            Unit::Seconds,
            m.schedule_lag.clone(),
        );
        r.register(
            "http_requests",
            "Outbound HTTP requests handlers made, by allowed host and outcome",
            m.http_requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time from an outbound HTTP request to the end of its response (or its failure)",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        r.register(
            "queue_jobs",
            "Jobs per tenant, queue and state, from the store's counters",
            m.queue_jobs.clone(),
        );
        r.register_with_unit(
            "queue_oldest_available_age",
            "How long the oldest available job of a queue has been runnable",
            Unit::Seconds,
            m.oldest_available.clone(),
        );
        r.register(
            "dead_letter_jobs",
            "Jobs in the dead-letter queue",
            m.dead_letter.clone(),
        );
        r.register(
            "queue_stats_up",
            "1 if the last scrape read the queue statistics from the store, else 0",
            m.queue_stats_up.clone(),
        );
        r.register(
            "worker_slots",
            "Execution slots of this process's workers",
            m.worker_slots.clone(),
        );
        r.register(
            "worker_running_jobs",
            "Jobs holding an execution slot in this process",
            m.worker_running.clone(),
        );
        r.register(
            "worker_free_slots",
            "Execution slots free in this process",
            m.worker_free.clone(),
        );
        r.register(
            "sandboxes_in_use",
            "Attempts inside a wasmtime sandbox in this process",
            m.sandboxes_in_use.clone(),
        );
        r.register(
            "sandboxes_max",
            "Sandboxes this process's runtime may have alive at once",
            m.sandboxes_max.clone(),
        );
        r.register(
            "db_pool_connections",
            "This process's database connections, in use or idle",
            m.db_connections.clone(),
        );
        m
    }

    /// Returns these metrics with the store gauges read again after `ttl` rather than
    /// [`STATS_TTL`] (zero: on every scrape, as tests want).
    pub fn with_stats_ttl(mut self, ttl: Duration) -> Metrics {
        self.stats_ttl = ttl;
        self
    }

    /// Counts `n` jobs enqueued for `tenant` on `queue` to run `handler`. The API calls this
    /// for each job it created (not for duplicates of an existing key); the worker calls it
    /// for follow-up jobs a handler enqueued when they commit.
    pub fn jobs_enqueued(&self, tenant: &str, queue: &str, handler: &str, n: u64) {
        if n > 0 {
            self.enqueued
                .get_or_create(&JobLabels::new(tenant, queue, handler))
                .inc_by(n);
        }
    }

    /// Counts `n` ticks of `tenant`'s schedules that came to `outcome`.
    pub(crate) fn schedule_ticks(&self, tenant: &str, outcome: &str, n: u64) {
        self.schedule_ticks
            .get_or_create(&TickLabels {
                tenant: tenant.to_string(),
                outcome: outcome.to_string(),
            })
            .inc_by(n);
    }

    /// Records how long after its tick a schedule of `tenant`'s enqueued its job.
    pub(crate) fn schedule_lag(&self, tenant: &str, lag: Duration) {
        let labels = TenantLabels {
            tenant: tenant.to_string(),
        };
        self.schedule_lag
            .get_or_create(&labels)
            .observe(lag.as_secs_f64());
    }

    /// Counts one outbound HTTP request of `tenant`'s to `host` (an allow-list label or
    /// `other`) that ended in `outcome`, after `duration`.
    pub fn http_request(
        &self,
        tenant: &str,
        host: &str,
        outcome: &'static str,
        duration: Duration,
    ) {
        let labels = HttpLabels {
            tenant: tenant.to_string(),
            host: host.to_string(),
            outcome,
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
    }

    /// Counts a job committed as completed.
    pub(crate) fn job_completed(&self, job: &JobLabels) {
        self.completed.get_or_create(job).inc();
    }

    /// Counts an attempt of `tenant`'s whose store write lost a race (it runs again).
    pub(crate) fn store_conflict(&self, tenant: &str) {
        let labels = TenantLabels {
            tenant: tenant.to_string(),
        };
        self.store_conflicts.get_or_create(&labels).inc();
    }

    /// Counts a job completed as a duplicate.
    pub(crate) fn job_duplicate(&self, job: &JobLabels) {
        self.duplicates.get_or_create(job).inc();
    }

    /// Counts a failed attempt of kind `kind` as recorded: retried or dead-lettered.
    pub(crate) fn job_failed(&self, job: &JobLabels, kind: ErrorKind, retried: bool) {
        let labels = ErrorLabels {
            tenant: job.tenant.clone(),
            queue: job.queue.clone(),
            handler: job.handler.clone(),
            kind: kind.as_str(),
        };
        self.attempt_errors.get_or_create(&labels).inc();
        let family = if retried {
            &self.retried
        } else {
            &self.dead_lettered
        };
        family.get_or_create(job).inc();
    }

    /// Records one attempt that ran in the sandbox.
    pub(crate) fn attempt_finished(
        &self,
        job: &JobLabels,
        outcome: &'static str,
        duration: Duration,
        fuel: u64,
    ) {
        let labels = AttemptLabels {
            tenant: job.tenant.clone(),
            queue: job.queue.clone(),
            handler: job.handler.clone(),
            outcome,
        };
        self.attempt_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
        self.attempt_fuel
            .get_or_create(&labels)
            .observe(fuel as f64);
    }

    /// Adds `slots` worker slots until the guard is dropped (when the worker stops).
    pub(crate) fn worker_slots(&self, slots: usize) -> GaugeGuard {
        GaugeGuard::add(&self.worker_slots, slots as i64)
    }

    /// Counts a job holding a slot until the guard is dropped.
    pub(crate) fn worker_running(&self) -> GaugeGuard {
        GaugeGuard::add(&self.worker_running, 1)
    }

    /// Counts an attempt inside a sandbox until the guard is dropped.
    pub(crate) fn sandbox_in_use(&self) -> GaugeGuard {
        GaugeGuard::add(&self.sandboxes_in_use, 1)
    }

    /// Records how many sandboxes the runtime may have alive at once.
    pub(crate) fn set_sandboxes_max(&self, max: u32) {
        self.sandboxes_max.set(i64::from(max));
    }

    /// Renders every metric in the Prometheus text format, reading backlog figures from the
    /// store's counters (at most once per [`STATS_TTL`]). When the store does not answer
    /// within [`STATS_TIMEOUT`] the backlog gauges are left out and `spool_queue_stats_up` is
    /// 0; the rest is still rendered.
    pub async fn render(&self, store: &Store) -> String {
        let mut last_read = self.scrape.lock().await;
        self.refresh_process(store);
        if last_read.is_none_or(|at| at.elapsed() >= self.stats_ttl) {
            self.refresh_store(store).await;
            *last_read = Some(std::time::Instant::now());
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        out
    }

    /// Sets the gauges of this process's own figures.
    fn refresh_process(&self, store: &Store) {
        let (size, idle) = store.pool_usage();
        let idle = idle as i64;
        self.db_connections
            .get_or_create(&PoolLabels { state: "in_use" })
            .set((i64::from(size) - idle).max(0));
        self.db_connections
            .get_or_create(&PoolLabels { state: "idle" })
            .set(idle);
        self.worker_free
            .set((self.worker_slots.get() - self.worker_running.get()).max(0));
    }

    /// Sets the gauges read from the store's counters.
    async fn refresh_store(&self, store: &Store) {
        // Queues that disappeared must not keep their last values.
        self.queue_jobs.clear();
        self.oldest_available.clear();
        self.dead_letter.clear();
        // The database cancels the statement; the client-side timeout is for a connection
        // that does not answer at all.
        let stats = tokio::time::timeout(
            STATS_TIMEOUT + Duration::from_secs(1),
            store.queue_stats_within(None, Duration::from_secs(60), STATS_TIMEOUT),
        )
        .await;
        let stats = match stats {
            Ok(Ok(stats)) => stats,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading queue statistics for metrics failed");
                self.queue_stats_up.set(0);
                return;
            }
            Err(_) => {
                tracing::warn!("reading queue statistics for metrics timed out");
                self.queue_stats_up.set(0);
                return;
            }
        };
        self.queue_stats_up.set(1);
        for q in stats {
            let queue = QueueLabels {
                tenant: q.tenant.clone(),
                queue: q.queue.clone(),
            };
            for (state, n) in &q.counts {
                self.queue_jobs
                    .get_or_create(&QueueStateLabels {
                        tenant: q.tenant.clone(),
                        queue: q.queue.clone(),
                        state: state.as_str(),
                    })
                    .set(*n);
            }
            let dead = q
                .counts
                .get(&crate::model::JobState::Dead)
                .copied()
                .unwrap_or(0);
            self.dead_letter.get_or_create(&queue).set(dead);
            let age = q.oldest_available_age.unwrap_or_default();
            self.oldest_available
                .get_or_create(&queue)
                .set(age.as_secs_f64());
        }
    }
}

/// Adds to a gauge while alive and takes it back when dropped, so that an aborted task
/// cannot leave a gauge counting it.
#[derive(Debug)]
pub(crate) struct GaugeGuard {
    gauge: Gauge,
    n: i64,
}

impl GaugeGuard {
    fn add(gauge: &Gauge, n: i64) -> GaugeGuard {
        gauge.inc_by(n);
        GaugeGuard {
            gauge: gauge.clone(),
            n,
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge.dec_by(self.n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(m: &Metrics) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
        out
    }

    #[test]
    fn counters_carry_tenant_queue_and_handler() {
        let m = Metrics::new();
        m.jobs_enqueued("acme", "default", "hello", 3);
        let job = JobLabels::new("acme", "default", "hello");
        m.job_failed(&job, ErrorKind::OutOfFuel, false);
        m.attempt_finished(&job, "trap", Duration::from_millis(3), 42_000);
        let text = encode(&m);
        assert!(
            text.contains(
                r#"spool_jobs_enqueued_total{tenant="acme",queue="default",handler="hello"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"spool_attempt_errors_total{tenant="acme",queue="default",handler="hello",kind="out_of_fuel"} 1"#
        ));
        assert!(text.contains(
            r#"spool_jobs_dead_lettered_total{tenant="acme",queue="default",handler="hello"} 1"#
        ));
        assert!(text.contains(
            r#"spool_attempt_duration_seconds_count{tenant="acme",queue="default",handler="hello",outcome="trap"} 1"#
        ));
        assert!(text.contains(
            r#"spool_attempt_fuel_consumed_sum{tenant="acme",queue="default",handler="hello",outcome="trap"} 42000"#
        ));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn guards_give_back_what_they_took() {
        let m = Metrics::new();
        let slots = m.worker_slots(8);
        let running = m.worker_running();
        let sandbox = m.sandbox_in_use();
        assert_eq!(
            (
                m.worker_slots.get(),
                m.worker_running.get(),
                m.sandboxes_in_use.get()
            ),
            (8, 1, 1)
        );
        drop((slots, running, sandbox));
        assert_eq!(
            (
                m.worker_slots.get(),
                m.worker_running.get(),
                m.sandboxes_in_use.get()
            ),
            (0, 0, 0)
        );
    }
}
