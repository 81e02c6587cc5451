//! `spool bench`: throughput and latency of the whole path (enqueue, claim, a sandboxed
//! attempt, group commit) against a fresh database of its own.
//!
//! The bench creates `spool_bench_<random>` on the server `--database-url` names, migrates it,
//! creates a tenant and uploads the component as its handler, then runs its phases with one
//! worker (plus maintenance) in this process, configured as `spool worker` would be:
//!
//! 1. **enqueue**: `--jobs` no-op jobs in batches of `--batch`, one statement per batch, into
//!    an idle queue (the worker is not started yet) → enqueue jobs/s;
//! 2. **burn-down**: the worker starts on the full queue; the time until every job has
//!    committed → burn-down jobs/s;
//! 3. **latency**: jobs offered at `--rate` per second for `--latency-secs`, enqueued in small
//!    batches every 10 ms while the worker runs; enqueue→start (`created_at` → `attempted_at`,
//!    both database clocks) p50/p99/max, computed in SQL from history;
//! 4. **api**: `--api-requests` single-job `POST /v1/jobs`, one after another over one
//!    keep-alive connection to the HTTP API served on loopback in this process, as an
//!    application enqueues from its request path: the client's round-trip p50/p99/max;
//! 5. **hostile** (only with `--hostile ACTIONS`): with the worker running, the bench tenant's
//!    `--jobs` are enqueued and burned down once alone and once after a second tenant, with
//!    default limits, has queued as many jobs of the `hostile` fixture running those actions:
//!    the victim's jobs/s in both, and their ratio.
//!
//! The database is dropped at the end (also after an error or Ctrl-C) unless `--keep`.
//!
//! With `--peer graphile`, the same burn-down is then measured on graphile-worker against the
//! same server (see [`peer`]), and the report gives both rates and Spool's ratio to the peer's.
//!
//! The default handler is the `hostile` test fixture with payload `{"action":"ok"}`: it
//! returns `{"ok":true}` without logging or printing anything, so it is the cheapest real
//! component the workspace builds (`hello` costs about as much to run but writes a log line
//! and a stdout line into every job's record). Every attempt still runs in a fresh sandbox
//! with the default limits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use spool::maintenance::{Maintenance, MaintenanceConfig};
use spool::model::NewJob;
use spool::runtime::{Runtime, RuntimeConfig, cache};
use spool::store::Store;
use spool::worker::{Worker, WorkerConfig, WorkerStats};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod peer;
mod scale_out;

/// The handler name the component is uploaded under.
const HANDLER: &str = "bench-noop";
/// How often the latency phase enqueues (at most; slower for rates under 100 jobs/s).
const OFFER_TICK: Duration = Duration::from_millis(10);
/// How long the bench waits without any job committing before it gives up.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Arguments of `spool bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The PostgreSQL server, as a URL; the bench makes (and drops) a database of its own
    /// there, so the URL's database only needs to exist.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// No-op jobs to enqueue and burn down.
    #[arg(long, default_value_t = 100_000)]
    jobs: u64,
    /// Attempts the worker runs at once.
    #[arg(long, default_value_t = 64)]
    slots: usize,
    /// The most slots one tenant's attempts take at once [default: all but an eighth of
    /// --slots].
    #[arg(long)]
    tenant_slots: Option<usize>,
    /// The handler component. Default: the `hostile` fixture (see `--payload`), built by
    /// `make guests`.
    #[arg(long, default_value = "target/wasm32-wasip2/release/hostile.wasm")]
    component: PathBuf,
    /// The JSON payload of every job.
    #[arg(long, default_value = r#"{"action":"ok"}"#)]
    payload: String,
    /// Jobs per enqueue statement in the enqueue phase.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// The offered rate of the latency phase, in jobs/s; 0 skips the phase.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// How long the latency phase offers jobs, in seconds; 0 skips the phase.
    #[arg(long, default_value_t = 10)]
    latency_secs: u64,
    /// Single-job enqueues over the HTTP API in the api phase; 0 skips the phase.
    #[arg(long, default_value_t = 2000)]
    api_requests: u32,
    /// The most jobs the worker claims in one statement.
    #[arg(long, default_value_t = WorkerConfig::default().claim_batch)]
    claim_batch: u32,
    /// The worker claims only into free slots, never ahead of them (`spool worker
    /// --no-claim-ahead`).
    #[arg(long)]
    no_claim_ahead: bool,
    /// The dead rows in `spool.jobs` at which maintenance vacuums it.
    #[arg(long, default_value_t = MaintenanceConfig::default().vacuum_min_dead)]
    vacuum_min_dead: u64,
    /// How long the worker's completer gathers outcomes before committing, in milliseconds.
    #[arg(long, default_value_t = WorkerConfig::default().commit_window.as_millis() as u64)]
    commit_window_ms: u64,
    /// The most outcomes committed in one transaction.
    #[arg(long, default_value_t = WorkerConfig::default().commit_batch)]
    commit_batch: usize,
    /// The most database connections the bench (worker, maintenance, enqueuer) opens.
    #[arg(long, default_value_t = 16)]
    db_connections: u32,
    /// Where compiled components are cached.
    #[arg(long, env = "SPOOL_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// SQL to run on the bench database after migrating it and before enqueueing: a changed
    /// lifecycle function or a per-database setting to try without rebuilding.
    #[arg(long)]
    setup_sql: Option<PathBuf>,
    /// Keep the bench database instead of dropping it (its name is printed on stderr).
    #[arg(long)]
    keep: bool,
    /// Print only the JSON report on stdout.
    #[arg(long)]
    json: bool,
    /// Adds a last phase: `--jobs` burned down by one `spool worker` process (this binary,
    /// with `--slots`) and then by this many, against the bench database; reports both rates.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..))]
    worker_processes: Option<u32>,
    /// Adds a last phase with a hostile neighbour: the bench tenant's `--jobs` are burned down
    /// once alone and once beside a second tenant (default limits) whose jobs run these
    /// actions of the `hostile` fixture (comma-separated, e.g.
    /// `spin,replicate,store-read-loop,spam-logs`), and the victim's throughput is reported
    /// for both.
    #[arg(long, value_name = "ACTIONS", value_delimiter = ',')]
    hostile: Vec<String>,
    /// The neighbour's component for `--hostile`.
    #[arg(long, default_value = "target/wasm32-wasip2/release/hostile.wasm")]
    hostile_component: PathBuf,
    /// After Spool's phases, burns down `--jobs` no-op jobs with this peer job queue against
    /// the same server, and reports its rate and Spool's burn-down ratio to it. Needs Node.js
    /// 20+ with npm.
    #[arg(long, value_enum)]
    peer: Option<peer::Peer>,
    /// The peer's bench folder [default: bench/peers/<peer> of the checkout the current
    /// directory is in].
    #[arg(long, requires = "peer")]
    peer_dir: Option<PathBuf>,
    /// Jobs the peer runs at once.
    #[arg(long, default_value_t = 10, requires = "peer")]
    peer_concurrency: u32,
}

/// The victim's throughput without and with a hostile neighbour.
struct Neighbour {
    alone_jobs_per_s: f64,
    beside_jobs_per_s: f64,
    /// The neighbour's jobs that ran (any outcome) while the victim's burned down.
    neighbour_attempts: u64,
}

/// Enqueue→start latency of the latency phase.
struct Latency {
    jobs: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// What the bench reads before it touches the database.
struct Inputs {
    /// The `--setup-sql` file's text.
    setup_sql: Option<String>,
    /// The component's bytes.
    component: Vec<u8>,
    /// The job enqueued over and over.
    job: NewJob,
    /// The `--hostile` neighbour's component, when asked for.
    hostile_component: Option<Vec<u8>>,
    /// Where compiled components are cached (the worker processes' too).
    cache_dir: Option<PathBuf>,
}

/// What the phases measured.
struct Measured {
    enqueue_jobs_per_s: f64,
    burn_down_jobs_per_s: f64,
    burn_down_secs: f64,
    latency: Option<Latency>,
    /// Round trips of `POST /v1/jobs`, in milliseconds: p50, p99, max.
    api: Option<(f64, f64, f64)>,
    /// The `--hostile` phase.
    neighbour: Option<Neighbour>,
    /// The `--worker-processes` phase.
    scale_out: Vec<scale_out::Run>,
    /// What the worker counted over the whole run.
    stats: WorkerStats,
}

/// Runs the bench and prints its report.
pub async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.jobs == 0 || args.batch == 0 || args.slots == 0 {
        bail!("--jobs, --batch and --slots must be at least 1");
    }
    let payload: Value = serde_json::from_str(&args.payload).context("--payload is not JSON")?;
    let setup_sql = match &args.setup_sql {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let bytes = std::fs::read(&args.component).with_context(|| {
        format!(
            "reading {} (build the guests with `make guests`, or pass --component)",
            args.component.display()
        )
    })?;
    let hostile_component = if args.hostile.is_empty() {
        None
    } else {
        Some(std::fs::read(&args.hostile_component).with_context(|| {
            format!(
                "reading {} (build the guests with `make guests`, or pass --hostile-component)",
                args.hostile_component.display()
            )
        })?)
    };
    let peer_bench = match args.peer {
        Some(p) => Some(peer::PeerBench {
            peer: p,
            source: peer::locate(p, args.peer_dir.as_deref())?,
            work: super::default_cache_dir()
                .and_then(|c| c.parent().map(|p| p.to_path_buf()))
                .unwrap_or_else(std::env::temp_dir)
                .join("bench-peers")
                .join(p.name()),
            concurrency: args.peer_concurrency,
        }),
        None => None,
    };
    let worker_config = WorkerConfig {
        slots: args.slots,
        tenant_slots: args.tenant_slots,
        claim_batch: args.claim_batch,
        claim_ahead: !args.no_claim_ahead,
        commit_window: Duration::from_millis(args.commit_window_ms),
        commit_batch: args.commit_batch,
        ..WorkerConfig::default()
    };
    worker_config.validate().map_err(anyhow::Error::msg)?;
    let tenant_slots = worker_config.most_per_tenant();
    // The runtime `spool worker` would build for these slots; compiling happens here, before
    // anything is timed.
    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        cache_dir: args.cache_dir.clone().or_else(super::default_cache_dir),
        max_instances: (args.slots as u32).max(4) * 2,
        ..RuntimeConfig::default()
    })?);
    runtime
        .load(&bytes)
        .await
        .with_context(|| format!("loading {}", args.component.display()))?;

    let admin = Store::connect(&args.database_url, 2)
        .await
        .context("connecting to the database server")?;
    let postgres_version = admin.bench().server_version().await?;
    let database = format!("spool_bench_{}", &Uuid::new_v4().simple().to_string()[..12]);
    admin
        .bench()
        .database_create(&database)
        .await
        .with_context(|| format!("creating the bench database {database}"))?;

    let inputs = Inputs {
        setup_sql,
        job: NewJob::json(HANDLER, &payload),
        component: bytes,
        hostile_component,
        cache_dir: args.cache_dir.clone().or_else(super::default_cache_dir),
    };
    let shutdown = CancellationToken::new();
    let measured = tokio::select! {
        m = run(&args, &database, &inputs, worker_config, runtime, shutdown.clone()) => m,
        _ = interrupted() => Err(anyhow::anyhow!("interrupted")),
    };
    // Stops the worker if the phases ended early (an error, Ctrl-C).
    shutdown.cancel();
    if args.keep {
        eprintln!("spool bench: kept database {database}");
    } else if let Err(e) = admin.bench().database_drop(&database).await {
        eprintln!("spool bench: could not drop database {database}: {e}");
    }
    let measured = match measured {
        Ok(m) => m,
        Err(e) => {
            admin.close().await;
            return Err(e);
        }
    };
    let peer_run = match &peer_bench {
        Some(bench) => {
            let peer_database = format!("{database}_peer");
            let ran = match admin.bench().database_create(&peer_database).await {
                Ok(()) => tokio::select! {
                    r = peer::run(bench, &args.database_url, &peer_database, args.jobs) => r,
                    _ = interrupted() => Err(anyhow::anyhow!("interrupted")),
                },
                Err(e) => Err(anyhow::Error::new(e)
                    .context(format!("creating the peer's database {peer_database}"))),
            };
            // Dropped whatever happened (also after Ctrl-C, which drops the peer's run).
            if let Err(e) = admin.bench().database_drop(&peer_database).await {
                eprintln!("spool bench: could not drop database {peer_database}: {e}");
            }
            Some(ran)
        }
        None => None,
    };
    admin.close().await;
    let peer_run = peer_run.transpose()?;

    let report = json!({
        "jobs": args.jobs,
        "slots": args.slots,
        "tenant_slots": tenant_slots,
        "enqueue_jobs_per_s": measured.enqueue_jobs_per_s.round(),
        "burn_down_jobs_per_s": measured.burn_down_jobs_per_s.round(),
        "latency": measured.latency.as_ref().map(|l| json!({
            "offered_rate": args.rate,
            "secs": args.latency_secs,
            "jobs": l.jobs,
            "p50_ms": round3(l.p50_ms),
            "p99_ms": round3(l.p99_ms),
            "max_ms": round3(l.max_ms),
        })),
        "api_enqueue": measured.api.map(|(p50, p99, max)| json!({
            "requests": args.api_requests,
            "p50_ms": round3(p50),
            "p99_ms": round3(p99),
            "max_ms": round3(max),
        })),
        "hostile": measured.neighbour.as_ref().map(|n| json!({
            "actions": args.hostile,
            "victim_alone_jobs_per_s": n.alone_jobs_per_s.round(),
            "victim_beside_neighbour_jobs_per_s": n.beside_jobs_per_s.round(),
            "ratio": round3(n.beside_jobs_per_s / n.alone_jobs_per_s),
            "neighbour_attempts": n.neighbour_attempts,
        })),
        "scale_out": (!measured.scale_out.is_empty()).then(|| {
            measured.scale_out.iter().map(|r| json!({
                "worker_processes": r.processes,
                "burn_down_jobs_per_s": r.jobs_per_s.round(),
            })).collect::<Vec<_>>()
        }),
        "peer": peer_run.as_ref().map(|p| json!({
            "name": args.peer.map(|p| p.name()),
            "burn_down_jobs_per_s": p.jobs_per_s.round(),
            "spool_ratio": round3(measured.burn_down_jobs_per_s / p.jobs_per_s),
            "report": p.report,
        })),
        "component": args.component.display().to_string(),
        "payload": payload,
        "postgres_version": postgres_version,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "batch": args.batch,
        "database": database,
        "database_kept": args.keep,
        "worker": {
            "claim_batch": args.claim_batch,
            "claim_ahead": !args.no_claim_ahead,
            "vacuum_min_dead": args.vacuum_min_dead,
            "commit_window_ms": args.commit_window_ms,
            "commit_batch": args.commit_batch,
            "db_connections": args.db_connections,
            "claimed": measured.stats.claimed,
            "completed": measured.stats.completed,
            "stale": measured.stats.stale,
        },
    });
    if !args.json {
        print_human(&args, &measured, &postgres_version);
        if let Some(p) = &peer_run {
            println!(
                "  peer       {:>9.0} jobs/s  ({}); Spool's burn-down is {:.2}x the peer's",
                p.jobs_per_s,
                p.report["peer"].as_str().unwrap_or("peer"),
                measured.burn_down_jobs_per_s / p.jobs_per_s
            );
        }
    }
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM, so that an interrupted bench still drops its database.
async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn print_human(args: &BenchArgs, m: &Measured, postgres_version: &str) {
    println!(
        "spool bench: {} jobs of {} {}, {} slots, PostgreSQL {postgres_version}",
        args.jobs,
        args.component.display(),
        args.payload,
        args.slots
    );
    println!(
        "  enqueue    {:>9.0} jobs/s  (batches of {})",
        m.enqueue_jobs_per_s, args.batch
    );
    println!(
        "  burn-down  {:>9.0} jobs/s  ({:.2} s)",
        m.burn_down_jobs_per_s, m.burn_down_secs
    );
    match &m.latency {
        Some(l) => println!(
            "  enqueue→start at {} jobs/s for {} s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            args.rate, args.latency_secs, l.p50_ms, l.p99_ms, l.max_ms
        ),
        None => println!("  latency phase skipped"),
    }
    if let Some((p50, p99, max)) = m.api {
        println!(
            "  POST /v1/jobs x{}: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
            args.api_requests
        );
    }
    for r in &m.scale_out {
        println!(
            "  burn-down by {} spool worker process{}: {:.0} jobs/s",
            r.processes,
            if r.processes == 1 { "" } else { "es" },
            r.jobs_per_s
        );
    }
    if let Some(n) = &m.neighbour {
        println!(
            "  victim burn-down alone {:.0} jobs/s, beside a neighbour running {} {:.0} jobs/s \
             ({:.0} %; {} neighbour attempts meanwhile)",
            n.alone_jobs_per_s,
            args.hostile.join(","),
            n.beside_jobs_per_s,
            100.0 * n.beside_jobs_per_s / n.alone_jobs_per_s,
            n.neighbour_attempts
        );
    }
}

/// Runs the phases against the fresh database `database`.
async fn run(
    args: &BenchArgs,
    database: &str,
    inputs: &Inputs,
    worker_config: WorkerConfig,
    runtime: Arc<Runtime>,
    shutdown: CancellationToken,
) -> anyhow::Result<Measured> {
    let store = Store::connect_database(&args.database_url, database, args.db_connections)
        .await
        .with_context(|| format!("connecting to {database}"))?;
    store.migrate().await?;
    if let Some(sql) = &inputs.setup_sql {
        store
            .admin_execute(sql)
            .await
            .context("running the --setup-sql file")?;
    }
    let tenant = bench_tenant(&store, "bench", &inputs.component).await?;
    let job = &inputs.job;

    // Phase 1: enqueue into an idle queue.
    let bar = progress(args.jobs, "enqueue");
    let started = Instant::now();
    let mut left = args.jobs;
    while left > 0 {
        let n = left.min(args.batch as u64);
        let jobs = vec![job.clone(); n as usize];
        store.job_enqueue_many(tenant.id, &jobs, None).await?;
        left -= n;
        bar.inc(n);
    }
    let enqueue_secs = started.elapsed().as_secs_f64();
    bar.finish();

    // Phase 2: burn down with the worker (and maintenance) as `spool worker` runs them.
    let maintenance = Maintenance::new(
        MaintenanceConfig {
            node: worker_config.id.clone(),
            vacuum_min_dead: args.vacuum_min_dead,
            ..MaintenanceConfig::default()
        },
        store.clone(),
    );
    let runtime_for_api = runtime.clone();
    let worker = Arc::new(Worker::new(worker_config, store.clone(), runtime));
    let bar = progress(args.jobs, "burn-down");
    let started = Instant::now();
    let maintenance = tokio::spawn({
        let token = shutdown.clone();
        async move { maintenance.run(token).await }
    });
    let running = tokio::spawn({
        let (worker, token) = (worker.clone(), shutdown.clone());
        async move { worker.run(token).await }
    });
    wait_for(&worker, args.jobs, &bar).await?;
    let burn_down_secs = started.elapsed().as_secs_f64();
    bar.finish();

    // Phase 3: latency at an offered rate.
    let total = u64::from(args.rate) * args.latency_secs;
    let latency = if total > 0 {
        let bar = progress(total, "latency");
        let ids = offer(&store, tenant.id, job, args.rate, total, &bar).await?;
        wait_for(&worker, args.jobs + total, &bar).await?;
        bar.finish();
        let l = store.bench().job_start_latency(tenant.id, &ids).await?;
        Some(Latency {
            jobs: l.jobs,
            p50_ms: l.p50_ms,
            p99_ms: l.p99_ms,
            max_ms: l.max_ms,
        })
    } else {
        None
    };

    // Phase 4: single enqueues over the HTTP API, into a queue no worker takes.
    let api = if args.api_requests > 0 {
        let samples = api_enqueues(&store, &tenant, runtime_for_api, args.api_requests).await?;
        Some(samples)
    } else {
        None
    };

    // Phase 5: the victim alone, then beside a hostile neighbour (last: the neighbour's work
    // may never drain).
    let neighbour = match &inputs.hostile_component {
        Some(component) => Some(neighbour(args, &store, tenant.id, job, component, &worker).await?),
        None => None,
    };

    shutdown.cancel();
    let stats = running.await.unwrap_or_else(|_| worker.stats());
    let _ = maintenance.await;

    // Phase 6: worker processes, this process's worker stopped.
    let scale_out = match args.worker_processes {
        Some(n) => {
            let mut url =
                url::Url::parse(&args.database_url).context("--database-url is not a URL")?;
            url.set_path(database);
            let settings = scale_out::Settings {
                url: url.to_string(),
                jobs: args.jobs,
                batch: args.batch,
                slots: args.slots,
                cache_dir: inputs.cache_dir.as_deref(),
                component: &inputs.component,
            };
            scale_out::run(&store, job, &settings, n).await?
        }
        None => Vec::new(),
    };
    store.close().await;
    Ok(Measured {
        neighbour,
        scale_out,
        enqueue_jobs_per_s: args.jobs as f64 / enqueue_secs,
        burn_down_jobs_per_s: args.jobs as f64 / burn_down_secs,
        burn_down_secs,
        latency,
        api,
        stats,
    })
}

/// The `--hostile` phase, with the worker running: the victim's `--jobs` burned down alone,
/// then again after a neighbour tenant has queued as many jobs running the hostile actions.
async fn neighbour(
    args: &BenchArgs,
    store: &Store,
    victim: i64,
    job: &NewJob,
    component: &[u8],
    worker: &Worker,
) -> anyhow::Result<Neighbour> {
    let alone = victim_burn_down(args, store, victim, job, "victim alone").await?;
    let neighbour = store
        .tenant_create("neighbour", &spool::model::TenantLimitSpec::default(), None)
        .await?;
    store
        .handler_put(
            neighbour.id,
            "hostile",
            &cache::digest(component),
            component,
        )
        .await?;
    let before = worker.stats().claimed;
    let per_action = (args.jobs / args.hostile.len() as u64).max(1);
    for action in &args.hostile {
        let hostile = NewJob::json("hostile", &json!({ "action": action }));
        let mut left = per_action;
        while left > 0 {
            let n = left.min(args.batch as u64);
            store
                .job_enqueue_many(neighbour.id, &vec![hostile.clone(); n as usize], None)
                .await
                .with_context(|| format!("enqueueing the neighbour's {action:?} jobs"))?;
            left -= n;
        }
    }
    let beside = victim_burn_down(args, store, victim, job, "victim beside neighbour").await?;
    let attempts = worker.stats().claimed.saturating_sub(before + args.jobs);
    Ok(Neighbour {
        alone_jobs_per_s: args.jobs as f64 / alone,
        beside_jobs_per_s: args.jobs as f64 / beside,
        neighbour_attempts: attempts,
    })
}

/// Creates tenant `name` running `component` as the bench's handler, with no running cap:
/// the cap must never be what limits the bench (besides the attempts in the slots, every
/// attempt that finished and waits for its commit still counts as running, and a claim cut
/// short by the cap leaves the producer idle until its next poll).
async fn bench_tenant(
    store: &Store,
    name: &str,
    component: &[u8],
) -> anyhow::Result<spool::store::Tenant> {
    let tenant = store
        .tenant_create(
            name,
            &spool::model::TenantLimitSpec {
                max_running: Some(i32::MAX as u32),
                ..Default::default()
            },
            None,
        )
        .await?;
    store
        .handler_put(tenant.id, HANDLER, &cache::digest(component), component)
        .await?;
    Ok(tenant)
}

/// Enqueues the victim's `--jobs` while the worker runs and waits until the victim has nothing
/// pending; returns the seconds it took.
async fn victim_burn_down(
    args: &BenchArgs,
    store: &Store,
    victim: i64,
    job: &NewJob,
    phase: &'static str,
) -> anyhow::Result<f64> {
    let bar = progress(args.jobs, phase);
    let started = Instant::now();
    let mut left = args.jobs;
    while left > 0 {
        let n = left.min(args.batch as u64);
        store
            .job_enqueue_many(victim, &vec![job.clone(); n as usize], None)
            .await?;
        left -= n;
    }
    wait_drained(
        store,
        victim,
        args.jobs,
        &bar,
        Duration::from_millis(20),
        || Ok(()),
    )
    .await?;
    bar.finish();
    Ok(started.elapsed().as_secs_f64())
}

/// Waits until `tenant` has nothing pending, polling `every` (each poll counts the tenant's
/// pending jobs: a cost the database pays beside the work measured), moving `bar` along
/// (`jobs` in all) and calling `check` (what else may have gone wrong) on every poll. Fails
/// past [`STALL_TIMEOUT`] without progress.
async fn wait_drained(
    store: &Store,
    tenant: i64,
    jobs: u64,
    bar: &ProgressBar,
    every: Duration,
    mut check: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut last = (u64::MAX, Instant::now());
    loop {
        check()?;
        let pending = store.tenant_pending(tenant).await?.max(0) as u64;
        bar.set_position(jobs.saturating_sub(pending));
        if pending == 0 {
            return Ok(());
        }
        if pending != last.0 {
            last = (pending, Instant::now());
        } else if last.1.elapsed() > STALL_TIMEOUT {
            bail!("jobs stalled for {STALL_TIMEOUT:?} with {pending} pending");
        }
        tokio::time::sleep(every).await;
    }
}

/// Serves the API on loopback and times `requests` single-job enqueues, one after another:
/// returns p50, p99 and max in milliseconds.
async fn api_enqueues(
    store: &Store,
    tenant: &spool::store::Tenant,
    runtime: Arc<Runtime>,
    requests: u32,
) -> anyhow::Result<(f64, f64, f64)> {
    let (token, hash, prefix) = spool::api::new_token();
    store.token_create(tenant.id, &hash, &prefix).await?;
    let state = spool::api::AppState::new(
        store.clone(),
        runtime,
        Arc::new(spool::metrics::Metrics::new()),
        spool::api::ApiConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/jobs", listener.local_addr()?);
    let stop = CancellationToken::new();
    let server = tokio::spawn(spool::api::serve(
        listener,
        spool::api::router(state),
        stop.clone(),
    ));
    let client = reqwest::Client::new();
    let body = json!({"handler": HANDLER, "payload": {"action": "ok"}, "queue": "bench-api"});
    let bar = progress(u64::from(requests), "api");
    let mut samples = Vec::with_capacity(requests as usize);
    for _ in 0..requests {
        let started = Instant::now();
        let response = client
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        response.bytes().await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        if status != reqwest::StatusCode::CREATED {
            bail!("POST /v1/jobs answered {status}");
        }
        bar.inc(1);
    }
    bar.finish();
    stop.cancel();
    let _ = server.await;
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99), at(1.0)))
}

/// Returns a progress bar on stderr (drawn only when stderr is a terminal).
fn progress(len: u64, phase: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>9} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} {per_sec}",
        )
        .expect("a valid template"),
    );
    bar.set_prefix(phase);
    bar
}

/// Jobs the worker has finished with: committed, or found done already.
fn settled(stats: &WorkerStats) -> u64 {
    stats.completed + stats.duplicates
}

/// Waits until the worker has settled `target` jobs in all, moving `bar` along; fails if an
/// attempt fails (a no-op must not) or nothing commits for [`STALL_TIMEOUT`].
async fn wait_for(worker: &Worker, target: u64, bar: &ProgressBar) -> anyhow::Result<()> {
    let base = target - bar.length().unwrap_or(0);
    let mut last = (settled(&worker.stats()), Instant::now());
    loop {
        let stats = worker.stats();
        let done = settled(&stats);
        if stats.failed > 0 {
            bail!(
                "{} attempts failed: the component is not a no-op for this payload \
                 (try it with `spool run COMPONENT --payload JSON`)",
                stats.failed
            );
        }
        bar.set_position(done.saturating_sub(base).min(bar.length().unwrap_or(0)));
        if done >= target {
            return Ok(());
        }
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > STALL_TIMEOUT {
            bail!("no job committed for {STALL_TIMEOUT:?}: {done} of {target} done; {stats:?}");
        }
        // Fine enough that the burn-down's end is seen within a fraction of a percent.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Enqueues `total` copies of `job` at `rate` jobs/s, in small batches on a timer, and
/// returns their ids. A tick that comes late enqueues what is due by then, so the offered
/// rate holds on average even when one enqueue is slow.
async fn offer(
    store: &Store,
    tenant_id: i64,
    job: &NewJob,
    rate: u32,
    total: u64,
    bar: &ProgressBar,
) -> anyhow::Result<Vec<Uuid>> {
    let tick = OFFER_TICK.max(Duration::from_secs(1) / rate.max(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ids = Vec::with_capacity(total as usize);
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        interval.tick().await;
        let due = ((started.elapsed().as_secs_f64() * f64::from(rate)) as u64).min(total);
        if due <= sent {
            continue;
        }
        let jobs = vec![job.clone(); (due - sent) as usize];
        let enqueued = store.job_enqueue_many(tenant_id, &jobs, None).await?;
        ids.extend(enqueued.iter().map(|e| e.id));
        sent = due;
        // The bar counts committed jobs; enqueueing shows in its message.
        bar.set_message(format!("offered {sent}"));
    }
    Ok(ids)
}
