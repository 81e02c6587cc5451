//! `spool bench --peer`: the same burn-down measured on a peer job queue, against the same
//! PostgreSQL server in the same run, so that Spool's figure comes with the one it is compared
//! to.
//!
//! The only peer today is graphile-worker, measured by the Node.js script in
//! `bench/peers/graphile/` (`bench.js`, with its `package.json` and `package-lock.json`
//! pinning graphile-worker): it enqueues `--jobs` no-op jobs in one statement and times its
//! worker (`--peer-concurrency` jobs at once, with graphile-worker's own high-throughput
//! settings) until none is left, then prints one JSON line. The script's folder is copied into
//! Spool's cache folder and its packages installed there with `npm ci` (once, and again when
//! the lock file changes), so the source tree stays clean.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use tokio::process::Command;

/// The files of a peer's folder the bench copies and runs.
const PEER_FILES: [&str; 3] = ["bench.js", "package.json", "package-lock.json"];

/// A job queue `spool bench` can measure beside Spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// graphile-worker (Node.js, PostgreSQL), with its high-throughput settings.
    Graphile,
}

impl Peer {
    /// The peer's folder in a checkout of Spool, relative to its root.
    fn folder(self) -> &'static str {
        match self {
            Peer::Graphile => "bench/peers/graphile",
        }
    }

    /// The peer's name, as `--peer` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Graphile => "graphile",
        }
    }
}

/// What the peer measured: its own JSON report, and its burn-down rate from it.
pub struct PeerRun {
    pub report: Value,
    pub jobs_per_s: f64,
}

/// Finds the peer's folder: `dir` when given, else the folder in the checkout the current
/// directory is in (or below), else the same folder beside this binary's checkout.
pub fn locate(peer: Peer, dir: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = dir {
        if !dir.join("bench.js").is_file() {
            bail!("--peer-dir {}: no bench.js there", dir.display());
        }
        return Ok(dir.to_path_buf());
    }
    let mut candidates = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        candidates.extend(cwd.ancestors().map(|a| a.join(peer.folder())));
    }
    candidates.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(peer.folder()),
    );
    candidates
        .into_iter()
        .find(|c| c.join("bench.js").is_file())
        .with_context(|| {
            format!(
                "the {} peer's bench ({}/bench.js) was not found from the current directory; \
                 pass --peer-dir",
                peer.name(),
                peer.folder()
            )
        })
}

/// Copies the peer's bench into `work` and installs its packages there when they are missing
/// or its lock file changed.
async fn prepare(source: &Path, work: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let lock_changed = std::fs::read(source.join("package-lock.json")).ok()
        != std::fs::read(work.join("package-lock.json")).ok();
    for file in PEER_FILES {
        // The source may be read-only (and so its copy): replace the copy, not write into it.
        let _ = std::fs::remove_file(work.join(file));
        std::fs::copy(source.join(file), work.join(file))
            .with_context(|| format!("copying {} into {}", file, work.display()))?;
    }
    if lock_changed || !work.join("node_modules").is_dir() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(work)
            .stdout(Stdio::null())
            .status()
            .await
            .context("running `npm ci` for the peer (is Node.js 20+ with npm installed?)")?;
        if !status.success() {
            bail!("`npm ci` in {} failed: {status}", work.display());
        }
    }
    Ok(())
}

/// Which peer to run, from where, how hard.
pub struct PeerBench {
    pub peer: Peer,
    /// The peer's folder (see [`locate`]).
    pub source: PathBuf,
    /// Where its copy and packages live between runs.
    pub work: PathBuf,
    /// Jobs the peer runs at once.
    pub concurrency: u32,
}

/// Runs the peer's burn-down of `jobs` jobs on the empty database `database` of the server
/// `database_url` names, and returns what it measured.
pub async fn run(
    bench: &PeerBench,
    database_url: &str,
    database: &str,
    jobs: u64,
) -> anyhow::Result<PeerRun> {
    let (peer, concurrency, work) = (bench.peer, bench.concurrency, bench.work.as_path());
    prepare(&bench.source, work).await?;
    let mut url = url::Url::parse(database_url).context("--database-url is not a URL")?;
    url.set_path(database);
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    spinner.set_style(
        ProgressStyle::with_template("{prefix:>9} [{elapsed_precise}] {spinner} {msg}")
            .expect("a valid template"),
    );
    spinner.set_prefix(peer.name());
    spinner.set_message(format!("{jobs} jobs, {concurrency} at once"));
    spinner.enable_steady_tick(Duration::from_millis(200));
    let output = Command::new("node")
        .arg("bench.js")
        .current_dir(work)
        .env("DATABASE_URL", url.as_str())
        .env("N", jobs.to_string())
        .env("CONC", concurrency.to_string())
        // graphile-worker's own high-throughput settings (a local queue, batched completion).
        .env("BATCH", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    spinner.finish_and_clear();
    let output = output.context("running `node bench.js` (is Node.js 20+ installed?)")?;
    if !output.status.success() {
        bail!(
            "the {} peer's bench failed ({}): {}",
            peer.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .with_context(|| format!("the {} peer printed no JSON report: {stdout}", peer.name()))?;
    let jobs_per_s = report["jobs_per_s"]
        .as_f64()
        .with_context(|| format!("the peer's report has no jobs_per_s: {report}"))?;
    Ok(PeerRun { report, jobs_per_s })
}
