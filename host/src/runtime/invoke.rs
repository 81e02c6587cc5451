//! One attempt: a fresh `Store`, instantiate, call `run`, map what happened, drop it all.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::engine::{HostState, Limiter};
use super::{Prepared, Runtime};
use crate::capabilities::http::{HttpCall, HttpState};
use crate::capabilities::jobs::JobsState;
use crate::capabilities::log::LogState;
use crate::capabilities::store::{StoreBackend, StoreState};
use crate::capabilities::wasi;
use crate::model::text::{self, MAX_MESSAGE_BYTES};
use crate::model::{
    AllowList, EnqueuedJob, ErrorKind, JobContext, Limits, LogLine, Outcome, StoreWrite,
};
use crate::wit::spool::job::types::{Failure, Job};

/// What one attempt did. Its effects are only collected: committing them is the caller's job.
#[derive(Debug)]
pub struct Attempt {
    /// How it ended.
    pub outcome: Outcome,
    /// Fuel burned.
    pub fuel_consumed: u64,
    /// Wall-clock time from the start of instantiation to the end of the call.
    pub duration: Duration,
    /// The attempt's log: `log` calls and stdout/stderr lines, bounded.
    pub logs: Vec<LogLine>,
    /// Buffered store writes; empty unless the outcome is `Ok`.
    pub store_writes: Vec<StoreWrite>,
    /// Follow-up jobs; empty unless the outcome is `Ok`.
    pub enqueued: Vec<EnqueuedJob>,
    /// The outbound HTTP requests the attempt made, refused ones included, in the order
    /// they ended.
    pub http_calls: Vec<HttpCall>,
}

impl Runtime {
    /// Runs one attempt of `job` with `handler` in a fresh sandbox, within `limits` (lowered to
    /// the runtime's maximums), reading committed store state from `backend`, allowed no
    /// outbound HTTP (see [`Runtime::invoke_allowing`]).
    pub async fn invoke(
        &self,
        handler: &Prepared,
        job: &JobContext,
        limits: &Limits,
        backend: Arc<dyn StoreBackend>,
    ) -> Attempt {
        self.invoke_allowing(handler, job, limits, backend, Arc::default())
            .await
    }

    /// [`Runtime::invoke`], with outbound HTTP to the origins `allowed` lists (the tenant's
    /// allow-list), through the SSRF guard and within `limits`' HTTP bounds.
    ///
    /// Never fails: every way an attempt can go wrong is an [`Outcome::Failed`] of some
    /// [`ErrorKind`]. The sandbox is dropped before this returns, so a trapped instance is
    /// never reused.
    pub async fn invoke_allowing(
        &self,
        handler: &Prepared,
        job: &JobContext,
        limits: &Limits,
        backend: Arc<dyn StoreBackend>,
        allowed: Arc<AllowList>,
    ) -> Attempt {
        let limits = limits.capped_by(&self.config.max_limits);
        let started = Instant::now();
        let log = LogState::new(limits.max_log_bytes);
        let http = HttpState::new(&self.http, job, allowed, &limits, &log);
        let http_calls = http.calls();
        let state = HostState {
            wasi: wasi::context(job, &log),
            table: resource_table(),
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                memory_exceeded: false,
                memory_used: 0,
            },
            log: log.clone(),
            store: StoreState::new(backend, &job.tenant, &job.idempotency_key, &limits),
            jobs: JobsState::new(&job.idempotency_key, &limits),
            http,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
            .set_fuel(limits.fuel)
            .expect("fuel is enabled on the engine");
        let deadline = started + limits.timeout;
        // Every epoch tick the guest yields, giving back its CPU lane and waiting for one
        // (`lanes.rs`), and past the deadline it is interrupted. The timeout around the call
        // below also stops a guest that is parked in a host call.
        store.set_epoch_deadline(1);
        let (lanes, hold) = (self.lanes.clone(), self.lanes.hold(&job.tenant));
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::YieldCustom(1, lanes.turn(&hold)))
        });

        let record = Job::from(job);
        let called = tokio::time::timeout(limits.timeout, call(&mut store, handler, &record)).await;
        let duration = started.elapsed();
        let fuel_consumed = limits.fuel - store.get_fuel().unwrap_or(0);

        let outcome = match called {
            Err(_) => timed_out(&limits),
            Ok(Ok(Ok(result))) if result.len() as u64 > limits.max_result_bytes => Outcome::failed(
                ErrorKind::Trap,
                format!(
                    "result_too_large: the result is {} bytes, the limit is {}",
                    result.len(),
                    limits.max_result_bytes
                ),
            ),
            Ok(Ok(Ok(result))) => Outcome::Ok(result),
            Ok(Ok(Err(Failure::Retry(message)))) => {
                Outcome::failed(ErrorKind::Error, truncate(message))
            }
            Ok(Ok(Err(Failure::Permanent(message)))) => {
                Outcome::failed(ErrorKind::Permanent, truncate(message))
            }
            Ok(Err(error)) => classify(&error, store.data().limiter.memory_exceeded, &limits),
        };

        // The rest of the sandbox (its resource table, so every response body and request
        // still in flight) is dropped with this statement: their log lines and records are
        // written before the log is taken.
        let HostState {
            store: kv, jobs, ..
        } = store.into_data();
        let (store_writes, enqueued) = match outcome {
            Outcome::Ok(_) => (kv.into_writes(), jobs.into_enqueued()),
            Outcome::Failed { .. } => (Vec::new(), Vec::new()),
        };
        let http_calls = std::mem::take(
            &mut *http_calls
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        Attempt {
            outcome,
            fuel_consumed,
            duration,
            logs: log.take(),
            store_writes,
            enqueued,
            http_calls,
        }
    }
}

async fn call(
    store: &mut Store<HostState>,
    handler: &Prepared,
    job: &Job,
) -> wasmtime::Result<Result<Vec<u8>, Failure>> {
    let instance = handler.pre.instantiate_async(&mut *store).await?;
    instance.call_run(&mut *store, job).await
}

fn timed_out(limits: &Limits) -> Outcome {
    Outcome::failed(
        ErrorKind::Timeout,
        format!(
            "the attempt ran past its {} ms deadline",
            limits.timeout.as_millis()
        ),
    )
}

/// Handles (streams, pollables, ...) one attempt may hold at once: wasmtime's default of a
/// million lets a guest allocate host memory outside the sandbox's memory limit.
const MAX_RESOURCES: usize = 10_000;

fn resource_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    table
}

/// Maps an error out of instantiation or the call to an outcome.
fn classify(error: &wasmtime::Error, memory_exceeded: bool, limits: &Limits) -> Outcome {
    if memory_exceeded {
        return Outcome::failed(
            ErrorKind::Trap,
            format!(
                "memory_limit: the sandbox tried to grow past its {} MiB memory limit",
                limits.memory_bytes >> 20
            ),
        );
    }
    if error.is::<wasmtime::PoolConcurrencyLimitError>() {
        // The host's trouble, not the guest's: the job runs again later.
        return Outcome::failed(
            ErrorKind::Error,
            format!("no free sandbox slot on this worker: {error}"),
        );
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::failed(
            ErrorKind::OutOfFuel,
            format!("the attempt burned all of its {} fuel", limits.fuel),
        ),
        Some(Trap::Interrupt) => timed_out(limits),
        Some(trap) => Outcome::failed(ErrorKind::Trap, format!("{}: {trap}", trap_code(trap))),
        None => Outcome::failed(ErrorKind::Trap, truncate(format!("{error:#}"))),
    }
}

/// Returns the trap's code in snake_case (`StackOverflow` → `stack_overflow`).
fn trap_code(trap: &Trap) -> String {
    let name = match trap {
        Trap::UnreachableCodeReached => "Unreachable".to_string(),
        other => format!("{other:?}"),
    };
    let mut code = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                code.push('_');
            }
            code.push(c.to_ascii_lowercase());
        } else {
            code.push(c);
        }
    }
    code
}

/// Bounds a failure message and cleans what the database cannot store (NUL).
fn truncate(message: String) -> String {
    text::truncated(text::without_nul(message), MAX_MESSAGE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_codes_are_snake_case() {
        assert_eq!(trap_code(&Trap::StackOverflow), "stack_overflow");
        assert_eq!(trap_code(&Trap::UnreachableCodeReached), "unreachable");
        assert_eq!(trap_code(&Trap::MemoryOutOfBounds), "memory_out_of_bounds");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let cut = truncate("é".repeat(MAX_MESSAGE_BYTES));
        assert!(cut.ends_with(" [truncated]"));
        assert!(cut.len() <= MAX_MESSAGE_BYTES + 12);
    }
}
