//! `spool serve` (API, workers and maintenance in one process) and `spool dev` (the same on a
//! private PostgreSQL cluster under `.spool/`, with tokens made and printed).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Deserialize;
use spool::alerts::{Alerts, AlertsConfig};
use spool::api::{self, ApiConfig, AppState};
use spool::maintenance::MaintenanceConfig;
use spool::model::TenantLimitSpec;
use spool::runtime::RuntimeConfig;
use spool::store::{HANDLER_VERSIONS_KEPT_MIN, Store, StoreError};
use spool::worker::{Worker, WorkerConfig};

use super::node::Node;
use spool_devdb::{Cluster, ClusterConfig};
use tokio_util::sync::CancellationToken;

/// The address `spool serve` listens on by default.
const LISTEN_DEFAULT: &str = "127.0.0.1:8080";
/// The shortest admin token accepted: as hard to guess as a tenant's (`spool_` and 43
/// random characters) would take a random one of 32 or more.
const ADMIN_TOKEN_MIN: usize = 32;

/// Settings a config file may give (`--config FILE`, TOML); flags and environment variables
/// win over it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    database_url: Option<String>,
    admin_token: Option<String>,
    db_connections: Option<u32>,
    queues: Option<Vec<String>>,
    slots: Option<usize>,
    tenant_slots: Option<usize>,
    cache_dir: Option<PathBuf>,
    cache_max_mb: Option<u64>,
    uploads_per_minute: Option<u32>,
    handler_versions_kept: Option<u32>,
    maintenance: Option<bool>,
    leader_ttl: Option<String>,
    migrate: Option<bool>,
    #[serde(default)]
    alerts: Option<AlertsConfig>,
    allow_private_networks: Option<Vec<String>>,
}

/// Arguments of `spool serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A TOML file with any of: listen, database_url, admin_token, db_connections, queues,
    /// slots, tenant_slots, cache_dir, cache_max_mb, uploads_per_minute, handler_versions_kept,
    /// maintenance, leader_ttl, migrate, allow_private_networks, and an [alerts] section (see
    /// docs/alerts.md).
    #[arg(long, env = "SPOOL_CONFIG")]
    config: Option<PathBuf>,
    /// The address to serve the API on [default: 127.0.0.1:8080].
    #[arg(long, env = "SPOOL_LISTEN")]
    listen: Option<String>,
    /// The PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// The admin token (at least 32 characters: `openssl rand -base64 32`, say).
    #[arg(long, env = "SPOOL_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The most database connections this process opens, split between the worker's and
    /// those of the API and maintenance (whose statements are bounded) [default: 20].
    #[arg(long, env = "SPOOL_DB_CONNECTIONS")]
    db_connections: Option<u32>,
    /// Queues this process works, comma-separated [default: default].
    #[arg(long, env = "SPOOL_QUEUES", value_delimiter = ',')]
    queues: Option<Vec<String>>,
    /// Attempts that may run at once in this process.
    #[arg(long, env = "SPOOL_SLOTS")]
    slots: Option<usize>,
    /// The most slots one tenant's attempts take at once, the rest kept for other tenants'
    /// work [default: all but an eighth of --slots].
    #[arg(long, env = "SPOOL_TENANT_SLOTS")]
    tenant_slots: Option<usize>,
    /// Where compiled components are cached.
    #[arg(long, env = "SPOOL_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// The most MiB of compiled components kept in the cache directory; the least recently
    /// used go first [default: 2048].
    #[arg(long, env = "SPOOL_CACHE_MAX_MB")]
    cache_max_mb: Option<u64>,
    /// Handler uploads each tenant may make a minute, per process (429 past it) [default: 10].
    #[arg(long, env = "SPOOL_UPLOADS_PER_MINUTE")]
    uploads_per_minute: Option<u32>,
    /// Versions of each handler kept when an upload adds one, besides those pending jobs are
    /// pinned to; at least 2 [default: 10].
    #[arg(long, env = "SPOOL_HANDLER_VERSIONS_KEPT")]
    handler_versions_kept: Option<u32>,
    /// Run no workers in this process (API and maintenance only).
    #[arg(long)]
    no_worker: bool,
    /// Run no maintenance (scheduler, schedule firer, rescuer, pruner) in this process.
    #[arg(long)]
    no_maintenance: bool,
    /// How long maintenance leadership lasts without renewal: how soon another process takes
    /// over (fires schedules, rescues jobs) when the leader dies, e.g. `15s` [default: 15s].
    #[arg(long, env = "SPOOL_LEADER_TTL")]
    leader_ttl: Option<String>,
    /// Apply migrations before starting.
    #[arg(long)]
    migrate: bool,
    /// Where the built-in alerts post when they fire and resolve (overrides [alerts]
    /// webhook_url).
    #[arg(long, env = "SPOOL_ALERT_WEBHOOK")]
    alert_webhook: Option<url::Url>,
    /// Also serve /metrics on this address of its own, without a token: for a private
    /// network (on the API's address it needs the admin token).
    #[arg(long, env = "SPOOL_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    network: super::worker::NetworkArgs,
}

/// Everything a server needs, validated.
#[derive(Debug)]
pub(super) struct ServerConfig {
    listen: SocketAddr,
    database_url: String,
    admin_token: String,
    db_connections: u32,
    worker: Option<WorkerConfig>,
    maintenance: bool,
    leader_ttl: std::time::Duration,
    migrate: bool,
    cache_dir: Option<PathBuf>,
    cache_max_bytes: u64,
    uploads_per_minute: u32,
    handler_versions_kept: u32,
    alerts: AlertsConfig,
    metrics_listen: Option<SocketAddr>,
    /// The operator's exceptions to the SSRF guard.
    pub(super) allow_private_networks: Vec<ipnet::IpNet>,
}

fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in the config file {}", path.display()))
}

fn parse_listen(listen: &str) -> anyhow::Result<SocketAddr> {
    listen
        .parse()
        .with_context(|| format!("--listen {listen:?}: expected an address like 127.0.0.1:8080"))
}

fn check_admin_token(token: &str) -> anyhow::Result<()> {
    if token.len() < ADMIN_TOKEN_MIN {
        bail!(
            "the admin token must be at least {ADMIN_TOKEN_MIN} characters (for example \
             `openssl rand -base64 32`)"
        );
    }
    Ok(())
}

impl ServerConfig {
    /// A server on `database_url` that migrates it, with a worker of `slots` (default when
    /// `None`) and maintenance: what `spool dev` and `spool demo` run.
    pub(super) fn embedded(
        listen: SocketAddr,
        database_url: String,
        admin_token: String,
        slots: Option<usize>,
    ) -> ServerConfig {
        let mut worker = WorkerConfig::default();
        if let Some(slots) = slots {
            worker.slots = slots;
        }
        ServerConfig {
            listen,
            database_url,
            admin_token,
            db_connections: 20,
            worker: Some(worker),
            maintenance: true,
            leader_ttl: MaintenanceConfig::default().leader_ttl,
            migrate: true,
            cache_dir: super::default_cache_dir(),
            cache_max_bytes: RuntimeConfig::default().cache_max_bytes,
            uploads_per_minute: ApiConfig::default().uploads_per_minute,
            handler_versions_kept: ApiConfig::default().handler_versions_kept,
            alerts: AlertsConfig::default(),
            metrics_listen: None,
            allow_private_networks: Vec::new(),
        }
    }
}

/// Starts (or reuses) the private PostgreSQL cluster under `dir/pg`.
pub(super) async fn start_cluster(dir: &Path) -> anyhow::Result<Cluster> {
    let dir = dir.join("pg");
    eprintln!(
        "spool: starting a private PostgreSQL under {}",
        dir.display()
    );
    tokio::task::spawn_blocking(move || Cluster::start(ClusterConfig::new(dir)))
        .await?
        .context("starting the private PostgreSQL cluster")
}

/// Stops a private cluster started by [`start_cluster`].
pub(super) async fn stop_cluster(mut cluster: Cluster) -> anyhow::Result<()> {
    eprintln!("spool: stopping the private PostgreSQL");
    tokio::task::spawn_blocking(move || cluster.stop())
        .await?
        .context("stopping the private PostgreSQL cluster")
}

impl ServeArgs {
    fn resolve(self) -> anyhow::Result<ServerConfig> {
        let file = match &self.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| LISTEN_DEFAULT.into());
        let Some(database_url) = self.database_url.or(file.database_url) else {
            bail!("no database: set DATABASE_URL (or database_url in --config), or use `spool dev`")
        };
        let Some(admin_token) = self.admin_token.or(file.admin_token) else {
            bail!("no admin token: set SPOOL_ADMIN_TOKEN (or admin_token in --config)")
        };
        check_admin_token(&admin_token)?;
        let mut worker = WorkerConfig::default();
        if let Some(queues) = self.queues.or(file.queues) {
            worker.queues = queues;
        }
        if let Some(slots) = self.slots.or(file.slots) {
            worker.slots = slots;
        }
        worker.tenant_slots = self.tenant_slots.or(file.tenant_slots);
        worker
            .validate()
            .map_err(|e| anyhow::anyhow!("worker settings: {e}"))?;
        let mut alerts = file.alerts.unwrap_or_default();
        if let Some(url) = self.alert_webhook {
            alerts.webhook_url = Some(url);
        }
        alerts
            .validate()
            .map_err(|e| anyhow::anyhow!("alerts settings: {e}"))?;
        let db_connections = self.db_connections.or(file.db_connections).unwrap_or(20);
        if db_connections < 2 {
            bail!("db_connections must be at least 2");
        }
        let handler_versions_kept = self
            .handler_versions_kept
            .or(file.handler_versions_kept)
            .unwrap_or(ApiConfig::default().handler_versions_kept);
        if handler_versions_kept < HANDLER_VERSIONS_KEPT_MIN {
            bail!("handler_versions_kept must be at least {HANDLER_VERSIONS_KEPT_MIN}");
        }
        let uploads_per_minute = self
            .uploads_per_minute
            .or(file.uploads_per_minute)
            .unwrap_or(ApiConfig::default().uploads_per_minute);
        if uploads_per_minute == 0 {
            bail!("uploads_per_minute must be at least 1");
        }
        let leader_ttl = match self.leader_ttl.or(file.leader_ttl) {
            Some(text) => spool::alerts::parse_duration(&text).with_context(|| {
                format!("leader_ttl: {text:?} is not a duration like 15s or 500ms")
            })?,
            None => MaintenanceConfig::default().leader_ttl,
        };
        if leader_ttl < std::time::Duration::from_millis(300) {
            bail!("leader_ttl must be at least 300ms");
        }
        let mut allow_private_networks = self.network.allow_private_network;
        if allow_private_networks.is_empty() {
            for net in file.allow_private_networks.unwrap_or_default() {
                allow_private_networks.push(
                    super::worker::parse_network(&net)
                        .map_err(|e| anyhow::anyhow!("allow_private_networks: {e}"))?,
                );
            }
        }
        let cache_max_bytes = match self.cache_max_mb.or(file.cache_max_mb) {
            Some(mb) => mb.saturating_mul(1 << 20),
            None => RuntimeConfig::default().cache_max_bytes,
        };
        Ok(ServerConfig {
            listen: parse_listen(&listen)?,
            database_url,
            admin_token,
            db_connections,
            worker: (!self.no_worker).then_some(worker),
            maintenance: !self.no_maintenance && file.maintenance.unwrap_or(true),
            leader_ttl,
            migrate: self.migrate || file.migrate.unwrap_or(false),
            cache_dir: self
                .cache_dir
                .or(file.cache_dir)
                .or_else(super::default_cache_dir),
            cache_max_bytes,
            uploads_per_minute,
            handler_versions_kept,
            alerts,
            metrics_listen: self.metrics_listen,
            allow_private_networks,
        })
    }
}

/// Runs `spool serve`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.resolve()?;
    let shutdown = CancellationToken::new();
    tokio::spawn(super::worker::signalled(shutdown.clone()));
    let store = connect(&config).await?;
    run(config, store, shutdown, |_| {}).await
}

pub(super) async fn connect(config: &ServerConfig) -> anyhow::Result<Store> {
    // Half for the worker's commits and claims' reads, half for the API and maintenance.
    let bounded = config.db_connections / 2;
    let store = Store::connect_split(
        &config.database_url,
        config.db_connections - bounded,
        bounded,
    )
    .await
    .context("connecting to the database")?;
    if config.migrate {
        store.migrate().await.context("migrating the database")?;
    } else if !store.ready().await.unwrap_or(false) {
        bail!("the database schema is missing or behind: run `spool migrate` or pass --migrate");
    }
    Ok(store)
}

/// Runs the API, a worker and maintenance until `shutdown`; `on_listening` is told the
/// address once the API accepts connections.
pub(super) async fn run(
    config: ServerConfig,
    store: Store,
    shutdown: CancellationToken,
    on_listening: impl FnOnce(SocketAddr),
) -> anyhow::Result<ExitCode> {
    let slots = config.worker.as_ref().map_or(4, |w| w.slots);
    let node = Node::new(
        config.cache_dir.clone(),
        config.cache_max_bytes,
        slots,
        config.allow_private_networks.clone(),
    )?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    let worker = config
        .worker
        .map(|worker_config| node.worker(worker_config, store.clone()));
    let state = AppState::new(
        store.clone(),
        node.runtime.clone(),
        node.metrics.clone(),
        ApiConfig {
            admin_token: config.admin_token.clone(),
            worker_health: worker.as_ref().map(Worker::health),
            quotas: Some(node.quotas.clone()),
            uploads_per_minute: config.uploads_per_minute,
            handler_versions_kept: config.handler_versions_kept,
            ..ApiConfig::default()
        },
    );
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(address) = config.metrics_listen {
        let server = super::worker::serve_metrics(
            address,
            node.metrics.clone(),
            store.bounded(),
            shutdown.clone(),
        )
        .await?;
        tasks.spawn(async move {
            let _ = server.await;
        });
    }
    if let Some(worker) = worker {
        let token = shutdown.clone();
        tasks.spawn(async move {
            worker.run(token).await;
        });
    }
    if config.maintenance {
        let name = format!("serve-{}", uuid::Uuid::new_v4().simple());
        let alerts = Alerts::new(config.alerts, store.bounded())
            .context("starting the alerts")?
            .with_node(name.clone());
        let token = shutdown.clone();
        tasks.spawn(async move { alerts.run(token).await });
        let m = node.maintenance(name, config.leader_ttl, store.clone());
        let token = shutdown.clone();
        tasks.spawn(async move { m.run(token).await });
    }
    tracing::info!(%address, "serving the API");
    on_listening(address);
    let served = api::serve(listener, api::router(state), shutdown.clone()).await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    store.close().await;
    served.context("serving the API")?;
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `spool dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Where the private PostgreSQL cluster lives.
    #[arg(long, env = "SPOOL_DEV_DIR", default_value = ".spool")]
    dir: PathBuf,
    /// The address to serve the API on.
    #[arg(long, env = "SPOOL_LISTEN", default_value = LISTEN_DEFAULT)]
    listen: String,
    /// The tenant to make (or reuse) and print a fresh token for.
    #[arg(long, default_value = "dev")]
    tenant: String,
    /// Attempts that may run at once.
    #[arg(long, env = "SPOOL_SLOTS")]
    slots: Option<usize>,
    #[command(flatten)]
    network: super::worker::NetworkArgs,
}

/// Runs `spool dev`: a private cluster, the server on it, and ready tokens.
pub async fn dev(args: DevArgs) -> anyhow::Result<ExitCode> {
    let listen = parse_listen(&args.listen)?;
    let cluster = start_cluster(&args.dir).await?;
    let result = dev_on(&args, listen, &cluster).await;
    stop_cluster(cluster).await?;
    result
}

async fn dev_on(args: &DevArgs, listen: SocketAddr, cluster: &Cluster) -> anyhow::Result<ExitCode> {
    let (admin_token, _, _) = api::new_token();
    let mut config = ServerConfig::embedded(listen, cluster.url(), admin_token.clone(), args.slots);
    config.allow_private_networks = args.network.allow_private_network.clone();
    let store = connect(&config).await?;
    let (tenant_token, hash, prefix) = api::new_token();
    match store.tenant_get(&args.tenant).await {
        Ok(tenant) => {
            store.token_create(tenant.id, &hash, &prefix).await?;
        }
        Err(StoreError::NotFound) => {
            store
                .tenant_create(
                    &args.tenant,
                    &TenantLimitSpec::default(),
                    Some((&hash, &prefix)),
                )
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(super::worker::signalled(shutdown.clone()));
    let tenant = args.tenant.clone();
    run(config, store, shutdown, move |address| {
        // Nobody may be reading stdout any more; the server keeps serving regardless.
        let _ = writeln!(
            std::io::stdout(),
            "Spool is running at http://{address}/ (Ctrl-C stops it and its database)\n\n  \
             export SPOOL_URL=http://{address}\n  export SPOOL_ADMIN_TOKEN={admin_token}\n  \
             export SPOOL_TOKEN={tenant_token}    # tenant {tenant:?}\n"
        );
    })
    .await
}
