//! The structured log fields of a job attempt, named once: `job.id`, `job.handler`, `tenant`,
//! `queue` and `attempt` on every event about an attempt, and `outcome`, `error.kind`,
//! `fuel.consumed` and `duration_ms` on the event that ends it. The guest's own log lines
//! (`log` calls, stdout and stderr) are re-emitted as events of target `spool::guest` with
//! the same job fields, their `source`, and the guest's level as the event's level.

use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use crate::metrics::JobLabels;
use crate::model::{ClaimedJob, ErrorKind, LogLevel, LogLine, LogSource, Outcome};

/// The target of the guest's log lines, for filters such as `SPOOL_LOG=info,spool::guest=off`.
pub(crate) const GUEST_TARGET: &str = "spool::guest";

/// Which attempt of which job an event or a figure is about.
#[derive(Debug, Clone)]
pub(crate) struct JobFields {
    pub(crate) id: Uuid,
    pub(crate) attempt: u32,
    pub(crate) labels: JobLabels,
}

impl JobFields {
    pub(crate) fn of(job: &ClaimedJob) -> JobFields {
        JobFields {
            id: job.id,
            attempt: job.attempt,
            labels: JobLabels::new(&job.tenant, &job.queue, &job.handler),
        }
    }
}

/// Emits a tracing event carrying a [`JobFields`]' fixed fields, then the fields and message
/// given.
macro_rules! job_event {
    (target: $target:expr, $level:expr, $job:expr, $($rest:tt)+) => {
        ::tracing::event!(
            target: $target,
            $level,
            job.id = %$job.id,
            job.handler = %$job.labels.handler,
            tenant = %$job.labels.tenant,
            queue = %$job.labels.queue,
            attempt = $job.attempt,
            $($rest)+
        )
    };
    ($level:expr, $job:expr, $($rest:tt)+) => {
        $crate::worker::fields::job_event!(target: module_path!(), $level, $job, $($rest)+)
    };
}
pub(crate) use job_event;

/// Logs the start of an attempt.
pub(crate) fn attempt_started(job: &JobFields) {
    job_event!(tracing::Level::INFO, job, "attempt started");
}

/// Logs the end of an attempt: `info` when it succeeded, `warn` when it failed.
pub(crate) fn attempt_finished(job: &JobFields, outcome: &Outcome, fuel: u64, duration: Duration) {
    match outcome {
        Outcome::Ok(_) => job_event!(
            tracing::Level::INFO,
            job,
            outcome = outcome.label(),
            fuel.consumed = fuel,
            duration_ms = millis(duration),
            "attempt finished"
        ),
        Outcome::Failed { kind, message } => attempt_failed(job, *kind, message, fuel, duration),
    }
}

/// Logs the end of an attempt that failed with `kind`, at `warn`.
pub(crate) fn attempt_failed(
    job: &JobFields,
    kind: ErrorKind,
    message: &str,
    fuel: u64,
    duration: Duration,
) {
    job_event!(
        tracing::Level::WARN,
        job,
        outcome = Outcome::failed(kind, "").label(),
        error.kind = kind.as_str(),
        error.message = %Printable(message),
        fuel.consumed = fuel,
        duration_ms = millis(duration),
        "attempt failed"
    );
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Logs that a job went to the dead-letter queue as its failure committed.
pub(crate) fn dead_lettered(job: &JobFields, kind: ErrorKind) {
    job_event!(
        tracing::Level::WARN,
        job,
        outcome = "dead",
        error.kind = kind.as_str(),
        "job dead-lettered"
    );
}

/// Re-emits the guest's log lines as tracing events with the job's fields.
pub(crate) fn guest_lines(job: &JobFields, lines: &[LogLine]) {
    for line in lines {
        guest_line(job, line);
    }
}

fn guest_line(job: &JobFields, line: &LogLine) {
    let source = match line.source {
        LogSource::Log => "log",
        LogSource::Stdout => "stdout",
        LogSource::Stderr => "stderr",
        LogSource::Http => "http",
    };
    // A level must be known at compile time for each call site: one per level. The fields
    // are only formatted when the level is enabled.
    macro_rules! emit {
        ($level:expr) => {
            job_event!(
                target: GUEST_TARGET,
                $level,
                job,
                source,
                at_ms = line.at_ms,
                fields = (!line.fields.is_empty())
                    .then(|| tracing::field::display(GuestFields(&line.fields))),
                "{}",
                Printable(&line.message)
            )
        };
    }
    match line.level {
        LogLevel::Trace => emit!(tracing::Level::TRACE),
        LogLevel::Debug => emit!(tracing::Level::DEBUG),
        LogLevel::Info => emit!(tracing::Level::INFO),
        LogLevel::Warn => emit!(tracing::Level::WARN),
        LogLevel::Error => emit!(tracing::Level::ERROR),
    }
}

/// The guest's own key/value pairs of a log line, shown as one JSON object: they may not
/// shadow the host's fields.
struct GuestFields<'a>(&'a [(String, String)]);

impl fmt::Display for GuestFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        // JSON escapes control characters itself.
        write!(f, "{}", serde_json::Value::Object(map))
    }
}

/// Text from a guest with control characters escaped, so that it cannot forge log lines (a
/// newline) or drive the terminal (an escape sequence) in the human-readable format.
struct Printable<'a>(&'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(char::is_control) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().expect("found at this index");
            write!(f, "{}", c.escape_default())?;
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(Printable("plain é").to_string(), "plain é");
        assert_eq!(
            Printable("a\nfake line\u{1b}[31m").to_string(),
            "a\\nfake line\\u{1b}[31m"
        );
    }
}
