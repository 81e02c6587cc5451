//! `spool run`: one attempt of a component, locally, with an in-memory store.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use serde_json::{Value, json};
use spool::capabilities::store::MemoryBackend;
use spool::model::{DEFAULT_QUEUE, JobContext, Limits, Outcome, RetryPolicy, WriteOp};
use spool::runtime::{Runtime, RuntimeConfig};

/// Arguments of `spool run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The component to run (a `.wasm` file built for the spool:job/handler world).
    component: PathBuf,
    /// The payload, as JSON text.
    #[arg(long, default_value = "{}")]
    payload: String,
    /// Fuel for the attempt.
    #[arg(long, default_value_t = Limits::DEFAULT_FUEL)]
    fuel: u64,
    /// Wall-clock timeout, in milliseconds.
    #[arg(long, default_value_t = Limits::DEFAULT_TIMEOUT.as_millis() as u64)]
    timeout_ms: u64,
    /// Memory limit, in MiB.
    #[arg(long, default_value_t = Limits::DEFAULT_MEMORY_BYTES >> 20)]
    memory_mb: u64,
    /// Which attempt to pretend this is (1-based).
    #[arg(long, default_value_t = 1)]
    attempt: u32,
    /// How many attempts the job gets in all.
    #[arg(long, default_value_t = RetryPolicy::DEFAULT_MAX_ATTEMPTS)]
    max_attempts: u32,
    /// The job's idempotency key (default: the job id).
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Where compiled components are cached (default: $XDG_CACHE_HOME/spool or ~/.cache/spool).
    #[arg(long, env = "SPOOL_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every time; keep nothing on disk.
    #[arg(long)]
    no_cache: bool,
}

/// Runs one attempt and prints it as one JSON object; exit code 0 only on `ok`.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        serde_json::from_str::<Value>(&args.payload).is_ok(),
        "--payload is not valid JSON"
    );
    anyhow::ensure!(args.attempt >= 1, "--attempt starts at 1");
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("reading {}", args.component.display()))?;
    let max_memory = args.memory_mb.max(Limits::DEFAULT_MEMORY_BYTES >> 20) << 20;
    let config = RuntimeConfig {
        cache_dir: if args.no_cache {
            None
        } else {
            args.cache_dir.or_else(super::default_cache_dir)
        },
        max_limits: Limits {
            fuel: args.fuel.max(Limits::DEFAULT_FUEL),
            timeout: Duration::from_millis(args.timeout_ms).max(Limits::DEFAULT_TIMEOUT),
            memory_bytes: max_memory,
            ..Limits::default()
        },
        max_instances: 4,
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(config)?;
    let handler = runtime
        .load(&bytes)
        .await
        .with_context(|| format!("{} cannot run", args.component.display()))?;

    let id = uuid::Uuid::now_v7().to_string();
    let job = JobContext {
        idempotency_key: args.idempotency_key.unwrap_or_else(|| id.clone()),
        id,
        tenant: "local".into(),
        handler: handler_name(&args.component),
        queue: DEFAULT_QUEUE.into(),
        payload: args.payload.into_bytes(),
        attempt: args.attempt,
        max_attempts: args.max_attempts.max(args.attempt),
    };
    let limits = Limits {
        fuel: args.fuel,
        timeout: Duration::from_millis(args.timeout_ms),
        memory_bytes: args.memory_mb << 20,
        ..Limits::default()
    };
    let attempt = runtime
        .invoke(&handler, &job, &limits, Arc::new(MemoryBackend::default()))
        .await;

    let (result, error) = match &attempt.outcome {
        Outcome::Ok(bytes) => (render(bytes), Value::Null),
        Outcome::Failed { kind, message } => {
            (Value::Null, json!({ "kind": kind, "message": message }))
        }
    };
    let report = json!({
        "outcome": attempt.outcome.label(),
        "result": result,
        "error": error,
        "fuel_consumed": attempt.fuel_consumed,
        "duration_ms": attempt.duration.as_secs_f64() * 1000.0,
        "logs": attempt.logs,
        "store_writes": attempt.store_writes.iter().map(|w| json!({
            "key": w.key,
            "op": match &w.op {
                WriteOp::Put(_) => "put",
                WriteOp::Delete => "delete",
                WriteOp::Add(_) => "add",
            },
            "value": match &w.op {
                WriteOp::Put(value) => render(value),
                WriteOp::Delete => Value::Null,
                WriteOp::Add(delta) => json!(delta),
            },
        })).collect::<Vec<_>>(),
        "enqueued": attempt.enqueued.iter().map(|j| json!({
            "id": j.id,
            "handler": j.handler,
            "queue": j.queue,
            "idempotency_key": j.idempotency_key,
            "priority": j.priority,
            "delay_ms": j.delay_ms,
            "max_attempts": j.max_attempts,
            "payload": render(&j.payload),
        })).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&report)?;
    // A reader that closed the pipe early (`spool run … | head`) wanted no more: not an error.
    match writeln!(std::io::stdout(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    Ok(match attempt.outcome {
        Outcome::Ok(_) => ExitCode::SUCCESS,
        Outcome::Failed { .. } => ExitCode::FAILURE,
    })
}

/// Shows bytes as JSON when they are JSON, as a string when UTF-8, else as base64.
fn render(bytes: &[u8]) -> Value {
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        return value;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.into()),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
    }
}

fn handler_name(path: &std::path::Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("local")
        .to_string()
}
