//! Command-line parsing and the wiring behind each subcommand. The only place `anyhow` is used.

mod bench;
mod client;
mod demo;
mod demo_vendor;
mod node;
mod project;
mod run;
mod serve;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Spool: sandboxed background jobs on PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "spool", version, about)]
struct Cli {
    /// How log lines are written to stderr: `human`, or `json` (one JSON object per line,
    /// event fields such as `job.id` at the top level). Verbosity comes from `SPOOL_LOG`
    /// (default `warn`; `info` shows every attempt).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SPOOL_LOG_FORMAT",
        default_value_t = LogFormat::Human
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a handler project from a template: a handler that reads its JSON payload, uses
    /// the idempotency store, logs and returns a result, with its build configuration.
    New(project::NewArgs),
    /// Build the handler project in a folder as its spool.toml says, installing what the
    /// toolchain pins, and print the component's path, size and digest.
    Build(project::BuildArgs),
    /// Run one attempt of a handler locally, without a database, and print what happened.
    Run(run::RunArgs),
    /// Serve the HTTP API, run jobs and maintenance: the whole of Spool in one process.
    Serve(serve::ServeArgs),
    /// Start a private PostgreSQL under .spool/ and serve Spool on it, printing ready tokens.
    Dev(serve::DevArgs),
    /// Run jobs: claim, execute in the sandbox, commit; plus maintenance unless disabled.
    Worker(worker::WorkerArgs),
    /// Run the order-fulfilment demo over the HTTP API (on a private PostgreSQL unless
    /// DATABASE_URL is set).
    Demo(demo::DemoArgs),
    /// Apply the database migrations.
    Migrate(worker::MigrateArgs),
    /// Measure throughput and latency against a fresh database of its own, and print JSON.
    Bench(bench::BenchArgs),
    /// Create and list tenants through the API (admin token).
    Tenant(client::TenantArgs),
    /// Upload, list, show and delete handlers through the API.
    Handler(client::HandlerArgs),
    /// Enqueue, show, list, cancel and retry jobs through the API.
    Job(client::JobArgs),
    /// Create, list, show, pause, resume and delete cron schedules through the API.
    Schedule(client::ScheduleArgs),
    /// List, retry and discard dead jobs through the API.
    Dead(client::DeadArgs),
    /// Compile one component read on stdin and write the artifact on stdout: the compiler
    /// process `spool serve` and `spool worker` start, under their limits. Not for people.
    #[command(name = spool::runtime::compile::SUBCOMMAND, hide = true)]
    CompileComponent {
        /// The engine's settings, `KEY=VALUE`, as the parent passes them.
        #[arg(allow_hyphen_values = true)]
        settings: Vec<String>,
    },
}

/// Parses the command line and runs the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // No async runtime, no logging set up: the compiler process only compiles.
    if let Command::CompileComponent { settings } = &cli.command {
        return spool::runtime::compile::compiler_main(
            settings,
            std::io::stdin().lock(),
            std::io::stdout().lock(),
        );
    }
    // The demo narrates on stdout; its injected failures need not be logged as warnings too.
    let default_filter = match cli.command {
        Command::Demo(_) => "error",
        _ => "warn",
    };
    init_tracing(cli.log_format, default_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::New(args) => project::new(args),
            Command::Build(args) => project::build(args),
            Command::Run(args) => run::run(args).await,
            Command::Worker(args) => worker::worker(args).await,
            Command::Serve(args) => serve::serve(args).await,
            Command::Dev(args) => serve::dev(args).await,
            Command::Migrate(args) => worker::migrate(args).await,
            Command::Demo(args) => demo::demo(args).await,
            Command::Bench(args) => bench::bench(args).await,
            Command::Tenant(args) => client::tenant(args).await,
            Command::Handler(args) => client::handler(args).await,
            Command::Job(args) => client::job(args).await,
            Command::Schedule(args) => client::schedule(args).await,
            Command::Dead(args) => client::dead(args).await,
            Command::CompileComponent { .. } => unreachable!("handled before the runtime"),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Returns where compiled components are cached by default: `$XDG_CACHE_HOME/spool/components`
/// or `~/.cache/spool/components`.
fn default_cache_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    Some(base.join("spool").join("components"))
}

/// Installs the log subscriber: stderr, filtered by `SPOOL_LOG` (else `default_filter`), in
/// `format`.
fn init_tracing(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPOOL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colours only on a terminal: escape codes in a file or a pipe break `grep`.
        LogFormat::Human => subscriber
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // Flattened: `{"timestamp", "level", "target", "message", "job.id", ...}`, so that
        // log pipelines can index the fixed field names without knowing Spool.
        LogFormat::Json => subscriber.json().flatten_event(true).init(),
    }
}
