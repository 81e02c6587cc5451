//! WASI 0.2, locked down: what language runtimes link in, with nothing behind it.
//!
//! No preopened directories (so no files), no environment but the job's metadata, no
//! arguments, no stdin, no sockets or name lookups, and stdout/stderr captured into the
//! attempt's log. Clocks and randomness are real.

use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

use crate::capabilities::log::LogState;
use crate::model::{JobContext, LogSource};

/// Returns the WASI context for one attempt of `job`, writing stdio into `log`.
pub fn context(job: &JobContext, log: &LogState) -> WasiCtx {
    let attempt = job.attempt.to_string();
    WasiCtxBuilder::new()
        .stdout(log.stream(LogSource::Stdout))
        .stderr(log.stream(LogSource::Stderr))
        .envs(&[
            ("SPOOL_JOB_ID", job.id.as_str()),
            ("SPOOL_TENANT", job.tenant.as_str()),
            ("SPOOL_HANDLER", job.handler.as_str()),
            ("SPOOL_QUEUE", job.queue.as_str()),
            ("SPOOL_ATTEMPT", attempt.as_str()),
        ])
        // These are the defaults today; said out loud so that a new default cannot open a hole.
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .build()
}
