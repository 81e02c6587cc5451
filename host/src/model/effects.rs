//! The effects an attempt asks for: store writes, follow-up jobs and log lines. The runtime
//! only collects them; whoever commits the attempt applies them, atomically, or not at all.

use serde::Serialize;

/// One buffered write to the tenant's idempotency store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreWrite {
    /// The key written.
    pub key: String,
    /// What the write does.
    pub op: WriteOp,
    /// What the attempt saw under `key` before writing, when it read it: the commit must find
    /// the same, or the attempt runs again (optimistic concurrency). `None` for a blind write,
    /// and always for an [`WriteOp::Add`], which commutes.
    pub expected: Option<Expected>,
}

/// What a buffered store write does to its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOp {
    /// Stores this value.
    Put(Vec<u8>),
    /// Removes the key.
    Delete,
    /// Adds to the integer counter under the key (absent counts as 0).
    Add(i64),
}

impl WriteOp {
    /// Returns the bytes the write stores (a counter's are counted as 20, the most its text
    /// takes), for quotas.
    pub fn stored_bytes(&self) -> usize {
        match self {
            WriteOp::Put(value) => value.len(),
            WriteOp::Delete => 0,
            WriteOp::Add(_) => 20,
        }
    }
}

/// Returns the integer a counter's stored value holds (its decimal text), if it holds one.
pub fn counter_value(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// The committed state of a key as an attempt observed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    /// The key did not exist.
    Absent,
    /// The key existed at this version.
    Version(i64),
}

/// A follow-up job to enqueue when the attempt commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnqueuedJob {
    /// The id the job gets (assigned when the guest asked, so the guest could log it).
    pub id: String,
    /// The handler to run.
    pub handler: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The queue.
    pub queue: String,
    /// The idempotency key (derived from the parent's when the guest gave none).
    pub idempotency_key: String,
    /// Priority: lower runs first.
    pub priority: i16,
    /// Delay before the job becomes available, in milliseconds.
    pub delay_ms: u64,
    /// Attempts before dead-lettering, when the guest chose.
    pub max_attempts: Option<u32>,
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// A call to the `log` interface.
    Log,
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
    /// The host, about an outbound HTTP request the guest made (or was refused).
    Http,
}

/// How severe a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Very fine-grained detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected the handler coped with.
    Warn,
    /// Something failed.
    Error,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Milliseconds since the attempt started.
    pub at_ms: u64,
    /// Where the line came from.
    pub source: LogSource,
    /// Its level (`info` for stdout, `warn` for stderr).
    pub level: LogLevel,
    /// The message text.
    pub message: String,
    /// Structured fields, for `log` calls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<(String, String)>,
}
