//! Compiling components, bounded: in a child process whose CPU time and memory the kernel caps
//! and which is killed at its timeout, or (for library use) on a blocking thread of this
//! process; behind gates that keep uploads and the worker's cache misses apart.
//!
//! The child is `spool compile-component KEY=VALUE...`: it reads a component on stdin,
//! compiles it with an engine configured as the parent's ([`engine_args`]), writes the
//! serialized artifact on stdout and exits. Exit status 0: the artifact is complete;
//! [`EXIT_INVALID`]: the component does not compile, and stderr says why.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use super::config::{CompileConfig, OptLevel, RuntimeConfig};
use super::validate::ValidationError;

/// The hidden subcommand of the `spool` binary that compiles one component.
pub const SUBCOMMAND: &str = "compile-component";

/// The exit status of a compiler process whose component does not compile (`EX_DATAERR`).
pub const EXIT_INVALID: u8 = 65;

/// The exit status of a compiler process that ran out of memory where it could tell
/// (`EX_OSERR`); elsewhere an allocation failure aborts it.
pub const EXIT_NO_MEMORY: u8 = 71;

/// The most of a compiler process's stderr kept for an error message.
const STDERR_MAX: u64 = 16 << 10;

/// Returns the arguments (after [`SUBCOMMAND`]) that make a compiler process build an engine
/// whose artifacts the engine of `config` loads.
///
/// Only what changes compiled code is passed; the pooling allocator, which only changes how
/// instances are allocated, is left off in the child (it would reserve address space for
/// every slot).
pub fn engine_args(config: &RuntimeConfig) -> Vec<String> {
    let opt_level = match config.opt_level {
        OptLevel::None => "none",
        OptLevel::Speed => "speed",
        OptLevel::SpeedAndSize => "speed-and-size",
    };
    vec![
        format!("opt-level={opt_level}"),
        format!("max-wasm-stack={}", config.max_wasm_stack),
    ]
}

/// Parses [`engine_args`] back into the settings of a compiling engine.
fn parse_engine_args(args: &[String]) -> Result<RuntimeConfig, String> {
    let mut config = RuntimeConfig {
        pooling: false,
        ..RuntimeConfig::default()
    };
    for arg in args {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| format!("expected KEY=VALUE, got {arg:?}"))?;
        match key {
            "opt-level" => {
                config.opt_level = match value {
                    "none" => OptLevel::None,
                    "speed" => OptLevel::Speed,
                    "speed-and-size" => OptLevel::SpeedAndSize,
                    _ => return Err(format!("unknown opt-level {value:?}")),
                }
            }
            "max-wasm-stack" => {
                config.max_wasm_stack = value
                    .parse()
                    .map_err(|_| format!("max-wasm-stack {value:?} is not a number"))?;
            }
            _ => return Err(format!("unknown setting {key:?}")),
        }
    }
    Ok(config)
}

/// Runs a compiler process: reads a component from `input`, compiles it for the engine `args`
/// describe ([`engine_args`]) and writes the artifact to `output`. The whole of
/// `spool compile-component`.
pub fn compiler_main(args: &[String], input: impl Read, output: impl Write) -> ExitCode {
    let config = match parse_engine_args(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("spool {SUBCOMMAND}: {e}");
            return ExitCode::from(2);
        }
    };
    let engine = match super::engine::build_engine(&config) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("spool {SUBCOMMAND}: configuring wasmtime: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut bytes = Vec::new();
    let mut input = input;
    if let Err(e) = input.read_to_end(&mut bytes) {
        eprintln!("spool {SUBCOMMAND}: reading the component: {e}");
        if e.kind() == std::io::ErrorKind::OutOfMemory {
            return ExitCode::from(EXIT_NO_MEMORY);
        }
        return ExitCode::from(74);
    }
    let artifact = match engine.precompile_component(&bytes) {
        Ok(artifact) => artifact,
        // Wasmtime reports some failed allocations as errors rather than aborting: the
        // memory limit, not the component.
        Err(e) if e.is::<wasmtime::OutOfMemory>() => {
            eprintln!("spool {SUBCOMMAND}: {e:#}");
            return ExitCode::from(EXIT_NO_MEMORY);
        }
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let mut output = output;
    if let Err(e) = output.write_all(&artifact).and_then(|()| output.flush()) {
        eprintln!("spool {SUBCOMMAND}: writing the artifact: {e}");
        return ExitCode::from(74);
    }
    ExitCode::SUCCESS
}

/// Compiles `bytes` in a child process running `program`, bounded by the limits of
/// `runtime.compile`, and returns the serialized artifact (for engines configured as
/// `runtime`).
pub(crate) async fn in_subprocess(
    program: &Path,
    runtime: &RuntimeConfig,
    bytes: &[u8],
) -> Result<Vec<u8>, ValidationError> {
    let config = &runtime.compile;
    let mut command = tokio::process::Command::new(program);
    command
        .arg(SUBCOMMAND)
        .args(engine_args(runtime))
        // The compiler reads hostile input: it gets no tokens, no database URL.
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A load that is dropped (its request timed out, say) kills its compiler.
        .kill_on_drop(true);
    let cpu = config.cpu_limit.as_secs().max(1);
    let memory = config.memory_bytes;
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-
    // safe calls are allowed: it only makes getrlimit and setrlimit system calls (rustix calls
    // the kernel directly: no allocation, no locks) and captures two integers.
    #[allow(
        unsafe_code,
        reason = "setting resource limits in the compiler process"
    )]
    unsafe {
        command.pre_exec(move || limit_self(cpu, memory));
    }
    let mut child = command
        .spawn()
        .map_err(|e| ValidationError::Compiler(format!("starting {}: {e}", program.display())))?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    // An artifact is larger than its component, but never larger than the compiler's memory.
    let artifact_max = memory;
    let run = async {
        let feed = async move {
            // A child that stops reading has failed; its status says how.
            let _ = stdin.write_all(bytes).await;
        };
        let mut artifact = Vec::new();
        let mut message = Vec::new();
        let (mut stdout, mut stderr) = (stdout.take(artifact_max), stderr.take(STDERR_MAX));
        let read = stdout.read_to_end(&mut artifact);
        let read_err = stderr.read_to_end(&mut message);
        let ((), read, _) = tokio::join!(feed, read, read_err);
        let status = child.wait().await;
        (status, read.map(|_| artifact), message)
    };
    let outcome = tokio::time::timeout(config.timeout, run).await;
    let Ok((status, artifact, message)) = outcome else {
        // Killed and reaped, so that nothing of it outlives this call.
        let _ = child.kill().await;
        return Err(ValidationError::CompileTimeout(config.timeout.as_secs()));
    };
    let status = status.map_err(|e| ValidationError::Compiler(format!("waiting: {e}")))?;
    let message = String::from_utf8_lossy(&message).trim().to_string();
    if status.success() {
        return artifact.map_err(|e| ValidationError::Compiler(format!("reading: {e}")));
    }
    Err(failure(status, &message, cpu, memory))
}

/// Sets the calling process's limits: `cpu` seconds of CPU time, `memory` bytes of data, no
/// core files; never above the hard limits it already has (only a privileged process may
/// raise those). Runs in a forked child before exec.
fn limit_self(cpu: u64, memory: u64) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = |resource, soft: u64, hard: u64| {
        let ceiling = getrlimit(resource).maximum.unwrap_or(u64::MAX);
        setrlimit(
            resource,
            Rlimit {
                current: Some(soft.min(ceiling)),
                maximum: Some(hard.min(ceiling)),
            },
        )
    };
    limit(Resource::Core, 0, 0)?;
    // Past the soft limit the kernel sends SIGXCPU, past the hard one SIGKILL.
    limit(Resource::Cpu, cpu, cpu + 1)?;
    // RLIMIT_DATA rather than RLIMIT_AS: it counts memory the compiler can write (heap, private
    // mappings), not the reserved address space of thread stacks and malloc arenas, which
    // grows with the core count.
    limit(Resource::Data, memory, memory)?;
    Ok(())
}

/// Explains how a compiler process that did not succeed ended.
fn failure(
    status: std::process::ExitStatus,
    message: &str,
    cpu: u64,
    memory: u64,
) -> ValidationError {
    use std::os::unix::process::ExitStatusExt;
    const SIGKILL: i32 = 9;
    const SIGXCPU: i32 = 24;
    if status.code() == Some(i32::from(EXIT_INVALID)) {
        return ValidationError::Invalid(message.to_string());
    }
    // Rust aborts when an allocation fails, saying so on stderr.
    if message.contains("memory allocation of") || status.code() == Some(i32::from(EXIT_NO_MEMORY))
    {
        return ValidationError::CompileLimit(format!("its memory limit of {memory} bytes"));
    }
    match status.signal() {
        Some(SIGXCPU) => ValidationError::CompileLimit(format!("its CPU time limit of {cpu} s")),
        // The hard CPU limit, or the kernel's out-of-memory killer.
        Some(SIGKILL) => ValidationError::CompileLimit(format!(
            "its limits (killed: {cpu} s of CPU time, {memory} bytes of memory)"
        )),
        _ => ValidationError::Compiler(format!(
            "the compiler process ended with {status}: {message}"
        )),
    }
}

/// The gates compiles wait at: one for the worker (and library use), one for uploads, so that
/// neither waits behind the other.
#[derive(Debug)]
pub(crate) struct Gates {
    worker: Semaphore,
    upload: Semaphore,
    /// Uploads compiling or waiting to: compile slots plus the queue.
    upload_admission: Arc<Semaphore>,
    upload_wait: Duration,
}

/// A place among the uploads that may be compiling or waiting to, taken before the upload's
/// body is read: see [`Runtime::upload_slot`](super::Runtime::upload_slot).
#[derive(Debug)]
pub struct UploadSlot {
    _permit: OwnedSemaphorePermit,
}

/// Which gate a load compiles behind.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Gate {
    /// The worker's: waits as long as it takes.
    Worker,
    /// The uploads': waits at most the configured time.
    Upload,
}

impl Gates {
    pub(crate) fn new(config: &CompileConfig) -> Gates {
        let upload_slots = config.upload_slots.max(1);
        Gates {
            worker: Semaphore::new(config.worker_slots.max(1)),
            upload: Semaphore::new(upload_slots),
            upload_admission: Arc::new(Semaphore::new(upload_slots + config.upload_queue)),
            upload_wait: config.upload_wait,
        }
    }

    /// How long a refused upload should wait before trying again.
    fn retry_after(&self) -> Duration {
        self.upload_wait
            .clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// Takes a place among the uploads, or says to come back later.
    pub(crate) fn admit_upload(&self) -> Result<UploadSlot, ValidationError> {
        match self.upload_admission.clone().try_acquire_owned() {
            Ok(permit) => Ok(UploadSlot { _permit: permit }),
            Err(_) => Err(ValidationError::Busy(self.retry_after())),
        }
    }

    /// Waits for a compile slot behind `gate`.
    pub(crate) async fn enter(&self, gate: Gate) -> Result<SemaphorePermit<'_>, ValidationError> {
        match gate {
            Gate::Worker => Ok(self.worker.acquire().await.expect("never closed")),
            Gate::Upload => {
                match tokio::time::timeout(self.upload_wait, self.upload.acquire()).await {
                    Ok(permit) => Ok(permit.expect("never closed")),
                    Err(_) => Err(ValidationError::Busy(self.retry_after())),
                }
            }
        }
    }
}

/// Builds the engine a compiler process uses for `config`: the runtime's own settings, less
/// the pooling allocator.
#[cfg(test)]
fn compiler_engine(config: &RuntimeConfig) -> wasmtime::Engine {
    let args = engine_args(config);
    super::engine::build_engine(&parse_engine_args(&args).unwrap()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::cache::engine_hash;

    #[test]
    fn the_compiler_engine_makes_artifacts_the_runtime_engine_loads() {
        for config in [
            RuntimeConfig::default(),
            RuntimeConfig {
                opt_level: OptLevel::None,
                max_wasm_stack: 2 << 20,
                max_instances: 8,
                ..RuntimeConfig::default()
            },
            RuntimeConfig {
                pooling: false,
                opt_level: OptLevel::SpeedAndSize,
                ..RuntimeConfig::default()
            },
        ] {
            let runtime = super::super::engine::build_engine(&config).unwrap();
            assert_eq!(
                engine_hash(&compiler_engine(&config)),
                engine_hash(&runtime),
                "{config:?}"
            );
        }
        let speed = compiler_engine(&RuntimeConfig::default());
        let none = compiler_engine(&RuntimeConfig {
            opt_level: OptLevel::None,
            ..RuntimeConfig::default()
        });
        assert_ne!(
            engine_hash(&speed),
            engine_hash(&none),
            "the hash sees the settings"
        );
    }

    #[test]
    fn engine_args_round_trip() {
        let config = RuntimeConfig {
            opt_level: OptLevel::SpeedAndSize,
            max_wasm_stack: 12345,
            ..RuntimeConfig::default()
        };
        let parsed = parse_engine_args(&engine_args(&config)).unwrap();
        assert_eq!(parsed.opt_level, OptLevel::SpeedAndSize);
        assert_eq!(parsed.max_wasm_stack, 12345);
        assert!(!parsed.pooling);
        assert!(parse_engine_args(&["nonsense".into()]).is_err());
    }

    #[test]
    fn an_invalid_component_exits_with_its_status() {
        let mut out = Vec::new();
        let code = compiler_main(&[], &b"\0asm\x0d\x00\x01\x00garbage"[..], &mut out);
        assert_eq!(code, ExitCode::from(EXIT_INVALID));
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn uploads_past_the_queue_are_refused_and_waits_are_bounded() {
        let gates = Gates::new(&CompileConfig {
            upload_slots: 1,
            upload_queue: 1,
            upload_wait: Duration::from_millis(50),
            ..CompileConfig::default()
        });
        let first = gates.admit_upload().unwrap();
        let _second = gates.admit_upload().unwrap();
        assert!(matches!(
            gates.admit_upload(),
            Err(ValidationError::Busy(_))
        ));
        let compiling = gates.enter(Gate::Upload).await.unwrap();
        assert!(matches!(
            gates.enter(Gate::Upload).await,
            Err(ValidationError::Busy(_))
        ));
        // The worker's gate is its own.
        drop(gates.enter(Gate::Worker).await.unwrap());
        drop(compiling);
        drop(first);
        assert!(gates.admit_upload().is_ok());
    }
}
