//! `spool-devdb run -- COMMAND [ARG...]`: runs a command with `DATABASE_URL` naming a private
//! PostgreSQL cluster, and exits with its status.
//!
//! When `DATABASE_URL` is set (and not empty) the command just runs against it. Otherwise the
//! cluster under `--data-dir` is started, or reused when it runs already (see the library's
//! docs for its layout, locks and OS user), with test settings (`fsync` off), and stopped
//! afterwards by its last user if Spool's tooling started it. `scripts/with-postgres.sh` and
//! `make test` run the tests through it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use spool_devdb::{Cluster, ClusterConfig, DevDbError};
use tokio::signal::unix::{SignalKind, signal};

/// A private PostgreSQL cluster for Spool's development and tests.
#[derive(Debug, Parser)]
#[command(name = "spool-devdb", version)]
enum Cli {
    /// Runs COMMAND with DATABASE_URL naming the cluster's `postgres` database.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Spool's directory for the cluster. Default: `target/spool-pg` under the current
    /// directory, or a directory in /tmp when the server's OS user cannot reach that one.
    #[arg(long, env = "SPOOL_PG_DIR")]
    data_dir: Option<PathBuf>,
    /// The TCP port on 127.0.0.1 for a server started here (default: the last start's port
    /// when free, else any free port). A running server keeps its port.
    #[arg(long, env = "SPOOL_PG_PORT")]
    port: Option<u16>,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<OsString>,
}

fn main() -> ExitCode {
    let Cli::Run(args) = Cli::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("spool-devdb: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if let Some(url) = std::env::var_os("DATABASE_URL").filter(|u| !u.is_empty()) {
        eprintln!("spool-devdb: using DATABASE_URL from the environment");
        return wait(&args.command, url);
    }
    let cluster = start(&args)?;
    eprintln!(
        "spool-devdb: using a private PostgreSQL ({}, {}, binaries in {}): {}",
        if cluster.started_here() {
            "started"
        } else {
            "reused"
        },
        cluster.data_dir().display(),
        cluster.bin_dir().display(),
        cluster.url()
    );
    let code = wait(&args.command, cluster.url().into());
    // The last user of a server Spool started stops it.
    drop(cluster);
    code
}

/// Starts or reuses the cluster; the default directory moves to /tmp when the server's OS
/// user cannot reach it (a clone under a private home directory, say).
fn start(args: &RunArgs) -> Result<Cluster, DevDbError> {
    let config = |data_dir: PathBuf| ClusterConfig {
        port: args.port,
        fast: true,
        ..ClusterConfig::new(data_dir)
    };
    if let Some(dir) = &args.data_dir {
        return Cluster::start(config(dir.clone()));
    }
    let default = std::path::absolute("target/spool-pg").unwrap_or("target/spool-pg".into());
    match Cluster::start(config(default.clone())) {
        Err(DevDbError::NotAccessible { user, .. }) => {
            let _ = std::fs::remove_dir(default.join("socket"));
            let _ = std::fs::remove_dir(&default);
            // Stable for a clone's path, so the clone keeps finding its cluster.
            let id = default
                .to_string_lossy()
                .bytes()
                .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
            let dir = std::env::temp_dir().join(format!("spool-pg-{id:016x}"));
            eprintln!(
                "spool-devdb: OS user {user} cannot reach {}; using {}",
                default.display(),
                dir.display()
            );
            Cluster::start(config(dir))
        }
        r => r,
    }
}

/// Runs the command with `DATABASE_URL` and waits for it. Ctrl-C reaches the command through
/// the terminal; SIGTERM and SIGHUP are passed on to it. Either way this process waits for
/// the command to end, so that the cluster is stopped after it.
fn wait(command: &[OsString], url: OsString) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let mut child = tokio::process::Command::new(&command[0])
            .args(&command[1..])
            .env("DATABASE_URL", url)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("running {}: {e}", command[0].to_string_lossy()),
                )
            })?;
        let pass_on = |child: &tokio::process::Child, signal: rustix::process::Signal| {
            let pid = child
                .id()
                .and_then(|id| rustix::process::Pid::from_raw(id as i32));
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, signal);
            }
        };
        loop {
            tokio::select! {
                status = child.wait() => return status,
                _ = interrupt.recv() => {}
                _ = terminate.recv() => pass_on(&child, rustix::process::Signal::TERM),
                _ = hangup.recv() => pass_on(&child, rustix::process::Signal::HUP),
            }
        }
    })?;
    use std::os::unix::process::ExitStatusExt as _;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
