//! What came of one attempt.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an attempt failed, as recorded in a job's error history.
///
/// Every kind but [`ErrorKind::Permanent`] is retried with backoff until the job runs out of
/// attempts (README, "Running jobs"; docs/architecture.md, "A job's path").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The handler returned `err(retry(..))`.
    Error,
    /// The handler returned `err(permanent(..))`: dead-lettered at once.
    Permanent,
    /// The guest trapped: a panic or `unreachable`, an out-of-bounds access, a stack overflow,
    /// the memory limit, an oversized result.
    Trap,
    /// The attempt burned all of its fuel.
    OutOfFuel,
    /// The attempt ran past its wall-clock deadline.
    Timeout,
    /// The worker running the attempt died or lost its lease.
    Lost,
    /// The attempt succeeded but committing it failed.
    Commit,
    /// The attempt succeeded but its follow-up jobs would take the tenant past its quotas
    /// (its pending-job cap or its enqueue rate).
    Quota,
}

impl ErrorKind {
    /// Returns the kind's stable snake_case name, as stored and as shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Error => "error",
            ErrorKind::Permanent => "permanent",
            ErrorKind::Trap => "trap",
            ErrorKind::OutOfFuel => "out_of_fuel",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Lost => "lost",
            ErrorKind::Commit => "commit",
            ErrorKind::Quota => "quota",
        }
    }

    /// Returns whether a failure of this kind is retried (while attempts remain).
    pub fn is_retryable(self) -> bool {
        self != ErrorKind::Permanent
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of running one attempt, before anything is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `run` returned `ok(bytes)`: the job's result.
    Ok(Vec<u8>),
    /// The attempt failed.
    Failed {
        /// What kind of failure it was.
        kind: ErrorKind,
        /// A human-readable message (the guest's own, or the trap's description).
        message: String,
    },
}

impl Outcome {
    /// Returns a failed outcome.
    pub fn failed(kind: ErrorKind, message: impl Into<String>) -> Outcome {
        Outcome::Failed {
            kind,
            message: message.into(),
        }
    }

    /// Returns the error kind, or `None` for [`Outcome::Ok`].
    pub fn error_kind(&self) -> Option<ErrorKind> {
        match self {
            Outcome::Ok(_) => None,
            Outcome::Failed { kind, .. } => Some(*kind),
        }
    }

    /// Returns the outcome's short label: `ok`, `retry`, `permanent` or `trap`, the way
    /// `spool run` reports it. Fuel and timeouts are traps; a returned `retry` is `retry`.
    pub fn label(&self) -> &'static str {
        match self.error_kind() {
            None => "ok",
            Some(ErrorKind::Error | ErrorKind::Lost | ErrorKind::Commit | ErrorKind::Quota) => {
                "retry"
            }
            Some(ErrorKind::Permanent) => "permanent",
            Some(ErrorKind::Trap | ErrorKind::OutOfFuel | ErrorKind::Timeout) => "trap",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_permanent_failures_are_not_retried() {
        assert!(!ErrorKind::Permanent.is_retryable());
        for kind in [
            ErrorKind::Error,
            ErrorKind::Trap,
            ErrorKind::OutOfFuel,
            ErrorKind::Timeout,
            ErrorKind::Lost,
            ErrorKind::Commit,
            ErrorKind::Quota,
        ] {
            assert!(kind.is_retryable(), "{kind}");
        }
    }

    #[test]
    fn labels_follow_the_spool_run_contract() {
        assert_eq!(Outcome::Ok(vec![]).label(), "ok");
        assert_eq!(Outcome::failed(ErrorKind::Error, "x").label(), "retry");
        assert_eq!(Outcome::failed(ErrorKind::OutOfFuel, "x").label(), "trap");
        assert_eq!(
            Outcome::failed(ErrorKind::Permanent, "x").label(),
            "permanent"
        );
    }

    #[test]
    fn kinds_serialize_as_snake_case() {
        let json = serde_json::to_string(&ErrorKind::OutOfFuel).unwrap();
        assert_eq!(json, "\"out_of_fuel\"");
    }
}
