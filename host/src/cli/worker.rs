//! `spool worker` and `spool migrate`: the job-running process, and schema setup.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use spool::maintenance::MaintenanceConfig;
use spool::metrics::Metrics;
use spool::runtime::RuntimeConfig;
use spool::store::Store;
use spool::worker::WorkerConfig;

use super::node::Node;
use tokio_util::sync::CancellationToken;

/// Where the database is.
#[derive(Debug, clap::Args)]
pub struct DatabaseArgs {
    /// The PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// The most database connections this process opens.
    #[arg(long, env = "SPOOL_DB_CONNECTIONS", default_value_t = 10)]
    pub db_connections: u32,
}

impl DatabaseArgs {
    /// Connects to the database.
    pub async fn connect(&self) -> anyhow::Result<Store> {
        Store::connect(&self.database_url, self.db_connections)
            .await
            .context("connecting to the database")
    }
}

/// The operator's exceptions to the SSRF guard of handlers' outbound HTTP.
#[derive(Debug, Clone, clap::Args)]
pub struct NetworkArgs {
    /// A non-public network (CIDR, or one address) handlers' outbound HTTP may reach, e.g.
    /// `10.20.0.0/16` for a vendor's private endpoint or `127.0.0.0/8` for a local test
    /// server (repeatable). Plain `http://` goes only to these networks. Without it, every
    /// loopback, private, link-local (169.254.169.254), CGNAT, ULA, ... address is refused.
    #[arg(
        long = "allow-private-network",
        env = "SPOOL_ALLOW_PRIVATE_NETWORKS",
        value_delimiter = ',',
        value_parser = parse_network,
        value_name = "CIDR"
    )]
    pub allow_private_network: Vec<ipnet::IpNet>,
}

/// Parses a network given as `CIDR` or as one address.
pub fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    spool::capabilities::http::PrivateNetworks::parse_one(text)
}

/// Arguments of `spool worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// Queues to work, comma-separated.
    #[arg(
        long,
        env = "SPOOL_QUEUES",
        value_delimiter = ',',
        default_value = "default"
    )]
    queues: Vec<String>,
    /// Attempts that may run at once.
    #[arg(long, env = "SPOOL_SLOTS", default_value_t = WorkerConfig::default().slots)]
    slots: usize,
    /// The most slots one tenant's attempts take at once, the rest kept for other tenants'
    /// work [default: all but an eighth of --slots].
    #[arg(long, env = "SPOOL_TENANT_SLOTS")]
    tenant_slots: Option<usize>,
    /// Claim only into free slots, never ahead of them (by default the worker claims up to
    /// 200 jobs, or one per slot if it has more slots, ahead while its attempts are short).
    #[arg(long, env = "SPOOL_NO_CLAIM_AHEAD")]
    no_claim_ahead: bool,
    /// The lease a claim holds, in milliseconds.
    #[arg(long, env = "SPOOL_LEASE_MS", default_value_t = 15_000)]
    lease_ms: u64,
    /// How long running attempts get to finish on shutdown, in milliseconds.
    #[arg(long, env = "SPOOL_GRACE_MS", default_value_t = 10_000)]
    grace_ms: u64,
    /// Where compiled components are cached.
    #[arg(long, env = "SPOOL_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// The most MiB of compiled components kept in the cache directory; the least recently
    /// used go first.
    #[arg(long, env = "SPOOL_CACHE_MAX_MB", default_value_t = RuntimeConfig::default().cache_max_bytes >> 20)]
    cache_max_mb: u64,
    /// Do not run maintenance (scheduler, rescuer, pruner) in this process.
    #[arg(long)]
    no_maintenance: bool,
    /// Apply migrations before starting.
    #[arg(long)]
    migrate: bool,
    /// Serve Prometheus metrics at `GET /metrics` on this address (e.g. `127.0.0.1:9090`).
    /// Off by default; `spool serve` renders the same metrics on its own port.
    #[arg(long, env = "SPOOL_METRICS_LISTEN")]
    metrics_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    network: NetworkArgs,
}

/// Runs a worker (and, unless disabled, maintenance) until SIGTERM or Ctrl-C.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let store = args.db.connect().await?;
    if args.migrate {
        store.migrate().await?;
    }
    let lease = Duration::from_millis(args.lease_ms);
    let config = WorkerConfig {
        queues: args.queues,
        slots: args.slots,
        tenant_slots: args.tenant_slots,
        claim_ahead: !args.no_claim_ahead,
        lease,
        heartbeat_interval: lease / 3,
        grace_period: Duration::from_millis(args.grace_ms),
        ..WorkerConfig::default()
    };
    config.validate().map_err(anyhow::Error::msg)?;
    let node = Node::new(
        args.cache_dir.or_else(super::default_cache_dir),
        args.cache_max_mb.saturating_mul(1 << 20),
        args.slots,
        args.network.allow_private_network,
    )?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signalled(shutdown.clone()));
    let metrics_server = match args.metrics_listen {
        Some(addr) => Some(
            serve_metrics(
                addr,
                node.metrics.clone(),
                store.bounded(),
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };

    let maintenance = (!args.no_maintenance).then(|| {
        let m = node.maintenance(
            config.id.clone(),
            MaintenanceConfig::default().leader_ttl,
            store.clone(),
        );
        let token = shutdown.clone();
        tokio::spawn(async move { m.run(token).await })
    });
    tracing::info!(worker = %config.id, slots = config.slots, queues = ?config.queues, "worker started");
    let worker = node.worker(config, store.clone());
    let stats = worker.run(shutdown).await;
    if let Some(m) = maintenance {
        let _ = m.await;
    }
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    store.close().await;
    tracing::info!(?stats, "worker stopped");
    Ok(ExitCode::SUCCESS)
}

/// Serves `GET /metrics` on `addr`, without a token (the address is the operator's private
/// one), until `shutdown` is cancelled.
pub(super) async fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    store: Store,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use axum::http::header::CONTENT_TYPE;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move {
            let body = metrics.render(&store).await;
            ([(CONTENT_TYPE, Metrics::CONTENT_TYPE)], body)
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for metrics on {addr}"))?;
    tracing::info!(%addr, "serving metrics at /metrics");
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the metrics server stopped");
        }
    }))
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub async fn signalled(token: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: no more claims, finishing running attempts");
    token.cancel();
}

/// Arguments of `spool migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    db: DatabaseArgs,
}

/// Applies the schema migrations.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let store = args.db.connect().await?;
    store.migrate().await?;
    println!("migrations applied");
    Ok(ExitCode::SUCCESS)
}
