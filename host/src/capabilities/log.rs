//! The `spool:job/log` capability, and the capture of the guest's stdout and stderr.
//!
//! Both write into one bounded [`JobLog`] per attempt, so lines keep their order. Past the
//! byte bound lines are dropped and counted, never failing the attempt: a chatty handler is
//! not a broken one.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::model::text::without_nul;
use crate::model::{LogLevel, LogLine, LogSource};
use crate::wit::spool::job::log as wit;

/// A partial stdout/stderr line longer than this is cut into a line of its own.
const MAX_PARTIAL_LINE: usize = 4096;

/// The log of one attempt, bounded in bytes.
#[derive(Debug)]
pub struct JobLog {
    started: Instant,
    max_bytes: u64,
    bytes: u64,
    lines: Vec<LogLine>,
    dropped_lines: u64,
    dropped_bytes: u64,
    partial_stdout: Vec<u8>,
    partial_stderr: Vec<u8>,
}

impl JobLog {
    /// Returns an empty log that keeps at most `max_bytes` of messages and fields.
    pub fn new(max_bytes: u64) -> JobLog {
        JobLog {
            started: Instant::now(),
            max_bytes,
            bytes: 0,
            lines: Vec::new(),
            dropped_lines: 0,
            dropped_bytes: 0,
            partial_stdout: Vec::new(),
            partial_stderr: Vec::new(),
        }
    }

    /// Appends a line, or drops and counts it when the log is full.
    pub fn push(
        &mut self,
        source: LogSource,
        level: LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        // The database stores no NUL: clean it here, where the guest's text enters.
        let message = without_nul(message);
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .map(|(k, v)| (without_nul(k), without_nul(v)))
            .collect();
        let size =
            (message.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()) as u64;
        if self.bytes + size > self.max_bytes {
            self.dropped_lines += 1;
            self.dropped_bytes += size;
            return;
        }
        self.bytes += size;
        self.lines.push(LogLine {
            at_ms: self.started.elapsed().as_millis() as u64,
            source,
            level,
            message,
            fields,
        });
    }

    /// Appends raw stdout/stderr bytes, emitting a line per newline.
    fn write_stream(&mut self, source: LogSource, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let partial = match source {
                LogSource::Stderr => &mut self.partial_stderr,
                _ => &mut self.partial_stdout,
            };
            // Once the log is full, count what a guest writes without buffering any of it.
            if self.bytes >= self.max_bytes {
                self.dropped_bytes += (bytes.len() + partial.len()) as u64;
                partial.clear();
                return;
            }
            let room = MAX_PARTIAL_LINE - partial.len();
            match bytes.iter().position(|&b| b == b'\n') {
                Some(newline) if newline <= room => {
                    partial.extend_from_slice(&bytes[..newline]);
                    bytes = &bytes[newline + 1..];
                }
                _ if bytes.len() < room => {
                    partial.extend_from_slice(bytes);
                    return;
                }
                _ => {
                    partial.extend_from_slice(&bytes[..room]);
                    bytes = &bytes[room..];
                }
            }
            self.flush_partial(source);
        }
    }

    fn flush_partial(&mut self, source: LogSource) {
        let (partial, level) = match source {
            LogSource::Stderr => (&mut self.partial_stderr, LogLevel::Warn),
            _ => (&mut self.partial_stdout, LogLevel::Info),
        };
        let message = String::from_utf8_lossy(partial).into_owned();
        partial.clear();
        self.push(source, level, message, Vec::new());
    }

    /// Finishes the log: flushes unterminated stdout/stderr lines and notes what was dropped.
    pub fn finish(mut self) -> Vec<LogLine> {
        for source in [LogSource::Stdout, LogSource::Stderr] {
            let partial = match source {
                LogSource::Stderr => &self.partial_stderr,
                _ => &self.partial_stdout,
            };
            if !partial.is_empty() {
                self.flush_partial(source);
            }
        }
        if self.dropped_lines > 0 || self.dropped_bytes > 0 {
            let at_ms = self.started.elapsed().as_millis() as u64;
            // The truncation note is written past the bound on purpose: it must always be seen.
            self.lines.push(LogLine {
                at_ms,
                source: LogSource::Log,
                level: LogLevel::Warn,
                message: format!(
                    "log truncated: {} more bytes dropped past the {}-byte limit",
                    self.dropped_bytes, self.max_bytes
                ),
                fields: Vec::new(),
            });
        }
        self.lines
    }
}

/// The per-attempt state of the log capability: a handle on the attempt's [`JobLog`].
#[derive(Debug, Clone)]
pub struct LogState {
    log: Arc<Mutex<JobLog>>,
}

impl LogState {
    /// Returns a fresh state keeping at most `max_bytes`.
    pub fn new(max_bytes: u64) -> LogState {
        LogState {
            log: Arc::new(Mutex::new(JobLog::new(max_bytes))),
        }
    }

    /// Returns a stream for the guest's stdout or stderr that writes into this log.
    pub fn stream(&self, source: LogSource) -> CapturedOutput {
        CapturedOutput {
            log: self.log.clone(),
            source,
        }
    }

    /// Appends a line the host writes about the attempt (an outbound request, say).
    pub fn push(
        &self,
        source: LogSource,
        level: LogLevel,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        lock(&self.log).push(source, level, message, fields);
    }

    /// Takes the lines logged so far, leaving an empty log behind.
    pub fn take(&self) -> Vec<LogLine> {
        let mut log = lock(&self.log);
        let max = log.max_bytes;
        std::mem::replace(&mut *log, JobLog::new(max)).finish()
    }
}

fn lock(log: &Mutex<JobLog>) -> MutexGuard<'_, JobLog> {
    // A panic while holding the lock cannot leave a log inconsistent enough to matter.
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl wit::Host for LogState {
    fn log(&mut self, level: wit::Level, message: String, fields: Vec<(String, String)>) {
        let level = match level {
            wit::Level::Trace => LogLevel::Trace,
            wit::Level::Debug => LogLevel::Debug,
            wit::Level::Info => LogLevel::Info,
            wit::Level::Warn => LogLevel::Warn,
            wit::Level::Error => LogLevel::Error,
        };
        lock(&self.log).push(LogSource::Log, level, message, fields);
    }
}

/// Adds `spool:job/log` to `linker`, reading the state with `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LogState,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<LogState>>(linker, get)
}

/// The guest's stdout or stderr, captured into the attempt's log.
#[derive(Clone)]
pub struct CapturedOutput {
    log: Arc<Mutex<JobLog>>,
    source: LogSource,
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// How much a guest may write per call; the stream is always ready for this much more.
const WRITE_BUDGET: usize = 64 << 10;

#[async_trait::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        lock(&self.log).write_stream(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

impl AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        lock(&self.log).write_stream(self.source, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_bytes_become_lines() {
        let mut log = JobLog::new(1024);
        log.write_stream(LogSource::Stdout, b"hello\nwor");
        log.write_stream(LogSource::Stdout, b"ld\n");
        log.write_stream(LogSource::Stderr, b"oops");
        let lines = log.finish();
        let messages: Vec<_> = lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["hello", "world", "oops"]);
        assert_eq!(lines[2].level, LogLevel::Warn);
    }

    #[test]
    fn a_full_log_drops_lines_and_says_so() {
        let mut log = JobLog::new(10);
        log.push(LogSource::Log, LogLevel::Info, "12345".into(), vec![]);
        log.push(LogSource::Log, LogLevel::Info, "1234567".into(), vec![]);
        log.write_stream(LogSource::Stdout, &[b'x'; 100_000]);
        let lines = log.finish();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].message, "12345");
        assert!(
            lines[1].message.starts_with("log truncated"),
            "{:?}",
            lines[1]
        );
    }

    #[test]
    fn a_line_without_newline_is_cut_at_the_partial_bound() {
        let mut log = JobLog::new(1 << 20);
        log.write_stream(LogSource::Stdout, &[b'x'; MAX_PARTIAL_LINE * 2 + 1]);
        let lines = log.finish();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].message.len(), MAX_PARTIAL_LINE);
    }
}
