//! The `--worker-processes` phase: the same burn-down by one `spool worker` process and then
//! by several, against the bench database, so that what a second process adds is measured in
//! one run.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use spool::model::NewJob;
use spool::store::Store;

use super::{bench_tenant, progress, wait_drained};

/// How often the phase counts the jobs still pending.
const POLL: Duration = Duration::from_millis(50);

/// One burn-down by `processes` worker processes.
pub struct Run {
    pub processes: u32,
    pub jobs_per_s: f64,
}

/// What the phase needs from the bench's settings.
pub struct Settings<'a> {
    /// The bench database's URL, for the workers.
    pub url: String,
    pub jobs: u64,
    pub batch: usize,
    pub slots: usize,
    pub cache_dir: Option<&'a Path>,
    pub component: &'a [u8],
}

/// Burns `jobs` jobs down with one worker process, then with `processes`, each time enqueued
/// for a tenant of the phase's own before the workers start, and timed from their start to the
/// last job's commit (so each figure includes starting the processes).
pub async fn run(
    store: &Store,
    job: &NewJob,
    s: &Settings<'_>,
    processes: u32,
) -> anyhow::Result<Vec<Run>> {
    let mut runs = Vec::new();
    for n in [1, processes] {
        let tenant = bench_tenant(store, &format!("scale-out-{n}"), s.component).await?;
        let mut left = s.jobs;
        while left > 0 {
            let k = left.min(s.batch as u64);
            store
                .job_enqueue_many(tenant.id, &vec![job.clone(); k as usize], None)
                .await?;
            left -= k;
        }
        let bar = progress(
            s.jobs,
            if n == 1 {
                "1 worker process"
            } else {
                "worker processes"
            },
        );
        let started = Instant::now();
        let mut workers = Workers(
            (0..n)
                .map(|_| spawn(s))
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
        wait_drained(store, tenant.id, s.jobs, &bar, POLL, || workers.check()).await?;
        let secs = started.elapsed().as_secs_f64();
        drop(workers);
        bar.finish();
        runs.push(Run {
            processes: n,
            jobs_per_s: s.jobs as f64 / secs,
        });
    }
    Ok(runs)
}

/// `spool worker` (this binary) on the bench database.
fn spawn(s: &Settings<'_>) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding the spool binary")?;
    let mut command = Command::new(exe);
    command
        .args(["worker", "--slots", &s.slots.to_string()])
        .env("DATABASE_URL", &s.url)
        .env_remove("SPOOL_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(dir) = s.cache_dir {
        command.env("SPOOL_CACHE_DIR", dir);
    }
    command.spawn().context("starting a spool worker")
}

/// The phase's worker processes, killed when dropped.
struct Workers(Vec<Child>);

impl Workers {
    /// Fails if a worker has exited.
    fn check(&mut self) -> anyhow::Result<()> {
        for child in &mut self.0 {
            if let Some(status) = child.try_wait()? {
                bail!("a spool worker exited early: {status}");
            }
        }
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
