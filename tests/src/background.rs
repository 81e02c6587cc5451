//! A worker and maintenance running in-process over a test database, and whatever else a test
//! runs beside them (the API, say), all stopped through one shutdown handle.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use spool::maintenance::{Maintenance, MaintenanceConfig};
use spool::metrics::Metrics;
use spool::runtime::Runtime;
use spool::store::Store;
use spool::worker::{Health, Worker, WorkerConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How many jobs a test worker runs at once, unless told otherwise.
pub const SLOTS_DEFAULT: usize = 8;

/// How often an idle test worker polls for jobs, unless told otherwise: far more often than a
/// production worker, so that tests do not wait on it.
pub const POLL_INTERVAL_DEFAULT: Duration = Duration::from_millis(100);

/// How often test maintenance makes scheduled and retryable jobs available.
pub const SCHEDULE_INTERVAL: Duration = Duration::from_millis(50);

/// What a test worker works and how, and whether maintenance runs beside it.
#[derive(Debug, Clone)]
pub struct Config {
    /// The queues the worker works. Default: the worker's default, `default` alone.
    pub queues: Vec<String>,
    /// How many jobs it runs at once. Default: [`SLOTS_DEFAULT`].
    pub slots: usize,
    /// How often it polls when idle. Default: [`POLL_INTERVAL_DEFAULT`].
    pub poll_interval: Duration,
    /// The registry it reports to. Default: none.
    pub metrics: Option<Arc<Metrics>>,
    /// Maintenance to run beside it; `None` runs none. Default: [`maintenance`].
    pub maintenance: Option<MaintenanceConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            queues: WorkerConfig::default().queues,
            slots: SLOTS_DEFAULT,
            poll_interval: POLL_INTERVAL_DEFAULT,
            metrics: None,
            maintenance: Some(maintenance()),
        }
    }
}

/// Returns the maintenance settings of a test: the defaults, but scheduling every
/// [`SCHEDULE_INTERVAL`].
pub fn maintenance() -> MaintenanceConfig {
    MaintenanceConfig {
        schedule_interval: SCHEDULE_INTERVAL,
        ..MaintenanceConfig::default()
    }
}

/// Tasks running until [`stop`](Background::stop) (or drop) cancels their shutdown token.
#[derive(Default)]
pub struct Background {
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Starts a worker over `store` running jobs in `runtime` and, when `config` asks for it,
    /// maintenance.
    pub fn start(store: &Store, runtime: Arc<Runtime>, config: Config) -> Background {
        let mut background = Background::default();
        background.worker(store, runtime, config);
        background
    }

    /// Adds a worker over `store` running jobs in `runtime` and, when `config` asks for it,
    /// maintenance; returns the worker's health handle.
    pub fn worker(&mut self, store: &Store, runtime: Arc<Runtime>, config: Config) -> Health {
        let mut worker = Worker::new(
            WorkerConfig {
                queues: config.queues,
                slots: config.slots,
                poll_interval: config.poll_interval,
                ..WorkerConfig::default()
            },
            store.clone(),
            runtime,
        );
        if let Some(metrics) = config.metrics {
            worker = worker.with_metrics(metrics);
        }
        let health = worker.health();
        self.spawn(|shutdown| async move {
            worker.run(shutdown).await;
        });
        if let Some(maintenance) = config.maintenance {
            let maintenance = Maintenance::new(maintenance, store.clone());
            self.spawn(|shutdown| async move { maintenance.run(shutdown).await });
        }
        health
    }

    /// Spawns the task `run` returns when given the shutdown token.
    pub fn spawn<F>(&mut self, run: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push(tokio::spawn(run(self.shutdown.clone())));
    }

    /// Cancels the shutdown token and waits for every task to end.
    ///
    /// # Panics
    ///
    /// When a task panicked.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        for task in std::mem::take(&mut self.tasks) {
            task.await.expect("a background task panicked");
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
