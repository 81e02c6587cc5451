//! What every long-running command (`spool serve`, `spool worker`, `spool dev`) builds, built
//! one way with one set of defaults: the runtime, the metrics registry, the tenants' quotas,
//! and the worker and maintenance over them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use spool::api::ApiConfig;
use spool::maintenance::{Maintenance, MaintenanceConfig};
use spool::metrics::Metrics;
use spool::quota::Quotas;
use spool::runtime::{CompileConfig, Compiler, Runtime, RuntimeConfig};
use spool::store::Store;
use spool::worker::{Worker, WorkerConfig};

/// The parts a node's services share.
pub(super) struct Node {
    /// Compiles and runs components; sized for the node's slots.
    pub runtime: Arc<Runtime>,
    /// One registry for everything `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// One view of the tenants' quotas for the API's enqueues, the worker's follow-ups and
    /// the schedules' ticks.
    pub quotas: Arc<Quotas>,
}

impl Node {
    /// Builds the parts for a node running `slots` attempts at once (the runtime's sandboxes
    /// are sized for them), caching compiled components under `cache_dir` up to
    /// `cache_max_bytes`, with outbound HTTP allowed into `allow_private_networks` (the
    /// operator's setting; nothing private otherwise). Compiles run in a child process of
    /// this binary, killed at their limits.
    pub fn new(
        cache_dir: Option<PathBuf>,
        cache_max_bytes: u64,
        slots: usize,
        allow_private_networks: Vec<ipnet::IpNet>,
    ) -> anyhow::Result<Node> {
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir,
            cache_max_bytes,
            max_instances: (slots as u32).max(4) * 2,
            compile: CompileConfig {
                compiler: Compiler::this_binary(),
                ..CompileConfig::default()
            },
            allow_private_networks,
            ..RuntimeConfig::default()
        })?;
        Ok(Node {
            runtime: Arc::new(runtime),
            metrics: Arc::new(Metrics::new()),
            quotas: Arc::new(Quotas::new(ApiConfig::default().cache_ttl)),
        })
    }

    /// Returns a worker over `store` with this node's runtime, metrics and quotas.
    pub fn worker(&self, config: WorkerConfig, store: Store) -> Worker {
        Worker::new(config, store, self.runtime.clone())
            .with_metrics(self.metrics.clone())
            .with_quotas(self.quotas.clone())
    }

    /// Returns maintenance as `node` in the leader election (whose lease lasts
    /// `leader_ttl`), over `store` (bounded sessions), with this node's metrics and quotas.
    pub fn maintenance(&self, node: String, leader_ttl: Duration, store: Store) -> Maintenance {
        Maintenance::new(
            MaintenanceConfig {
                node,
                leader_ttl,
                ..MaintenanceConfig::default()
            },
            store.bounded(),
        )
        .with_quotas(self.quotas.clone())
        .with_metrics(self.metrics.clone())
    }
}
