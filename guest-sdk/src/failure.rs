//! Why an attempt failed, and whether Spool should try again.

use std::error::Error;
use std::fmt;

use crate::bindings::spool::job::types as raw;
use crate::jobs::EnqueueError;
use crate::store::StoreError;

/// Why an attempt did not succeed: a message, and whether a retry may help.
///
/// Build one with [`Failure::retry`] or [`Failure::permanent`], or let `?` convert an error:
/// any `E: std::error::Error + 'static` becomes a [`FailureKind::Retry`] failure whose message
/// is the error and its chain of sources. Errors of this crate that a retry cannot fix become
/// [`FailureKind::Permanent`] instead: a [`StoreError`], [`EnqueueError`] or
/// [`http::Error`](crate::http::Error) for which `is_transient()` is false (a key or value over the limit, a payload that does not encode).
/// [`ResultExt`] marks any other error as permanent: `parse(x).permanent()?`.
///
/// `Failure` deliberately does not implement [`std::error::Error`] itself: that is what lets it
/// convert from every error type (the same trick as `anyhow::Error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    kind: FailureKind,
    message: String,
}

/// Whether a failed attempt should be retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// A transient failure (a timed-out API, a network blip): Spool retries the job with
    /// exponential backoff and dead-letters it once it runs out of attempts.
    Retry,
    /// A permanent failure (malformed data, a deleted record): Spool dead-letters the job at
    /// once and never retries it.
    Permanent,
}

impl Failure {
    /// Returns a transient failure: the job is retried with backoff.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Retry,
            message: message.into(),
        }
    }

    /// Returns a permanent failure: the job is dead-lettered at once, never retried.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Permanent,
            message: message.into(),
        }
    }

    /// Returns whether the job should be retried.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// Returns the message recorded with the attempt.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Returns true for a [`FailureKind::Retry`] failure.
    pub fn is_retry(&self) -> bool {
        self.kind == FailureKind::Retry
    }

    /// Returns true for a [`FailureKind::Permanent`] failure.
    pub fn is_permanent(&self) -> bool {
        self.kind == FailureKind::Permanent
    }

    /// Returns the same failure with `context` put in front of its message
    /// (`"{context}: {message}"`).
    #[must_use]
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for Failure {
    /// Writes the message alone; the kind is in [`Failure::kind`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E> From<E> for Failure
where
    E: Error + 'static,
{
    /// Converts an error into a failure: retryable unless it is one of this crate's errors
    /// that a retry cannot fix.
    fn from(error: E) -> Self {
        let message = error_chain(&error);
        let transient = if let Some(store) = (&error as &dyn Error).downcast_ref::<StoreError>() {
            store.is_transient()
        } else if let Some(enqueue) = (&error as &dyn Error).downcast_ref::<EnqueueError>() {
            enqueue.is_transient()
        } else if let Some(http) = (&error as &dyn Error).downcast_ref::<crate::http::Error>() {
            http.is_transient()
        } else {
            true
        };
        if transient {
            Self::retry(message)
        } else {
            Self::permanent(message)
        }
    }
}

impl From<Failure> for raw::Failure {
    fn from(failure: Failure) -> Self {
        match failure.kind {
            FailureKind::Retry => raw::Failure::Retry(failure.message),
            FailureKind::Permanent => raw::Failure::Permanent(failure.message),
        }
    }
}

/// Renders `error` and its sources as `"outer: inner: root"`, skipping a source whose text the
/// message already contains (many errors print their source themselves).
fn error_chain(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Marks the error of a `Result` as a permanent or a retryable [`Failure`].
///
/// ```
/// use spool_guest::{Failure, ResultExt};
///
/// fn parse_amount(text: &str) -> Result<u64, Failure> {
///     // Bad input stays bad on every retry: dead-letter the job at once.
///     text.parse::<u64>().permanent()
/// }
/// assert!(parse_amount("twelve").unwrap_err().is_permanent());
/// ```
pub trait ResultExt<T> {
    /// Converts the error into a [`FailureKind::Permanent`] failure with the error's message.
    fn permanent(self) -> Result<T, Failure>;

    /// Converts the error into a [`FailureKind::Retry`] failure with the error's message.
    fn transient(self) -> Result<T, Failure>;
}

impl<T, E> ResultExt<T> for Result<T, E>
where
    E: fmt::Display,
{
    fn permanent(self) -> Result<T, Failure> {
        self.map_err(|error| Failure::permanent(error.to_string()))
    }

    fn transient(self) -> Result<T, Failure> {
        self.map_err(|error| Failure::retry(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(Inner);

    #[derive(Debug)]
    struct Inner;

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("calling the payment API")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connection reset")
        }
    }

    impl Error for Inner {}

    fn question_mark<E: Error + 'static>(error: E) -> Result<(), Failure> {
        Err(error)?
    }

    #[test]
    fn question_mark_on_an_error_is_a_retry() {
        let failure = question_mark(std::io::Error::other("socket closed")).unwrap_err();
        assert_eq!(failure, Failure::retry("socket closed"));
    }

    #[test]
    fn converted_message_includes_the_source_chain() {
        let failure = Failure::from(Outer(Inner));
        assert_eq!(
            failure.message(),
            "calling the payment API: connection reset"
        );
    }

    #[test]
    fn a_source_already_in_the_message_is_not_repeated() {
        #[derive(Debug)]
        struct Wraps(Inner);
        impl fmt::Display for Wraps {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "fetch failed: {}", self.0)
            }
        }
        impl Error for Wraps {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        assert_eq!(
            Failure::from(Wraps(Inner)).message(),
            "fetch failed: connection reset"
        );
    }

    #[test]
    fn store_errors_that_retrying_cannot_fix_are_permanent() {
        assert!(Failure::from(StoreError::ValueTooLarge { limit: 10 }).is_permanent());
        assert!(Failure::from(StoreError::InvalidKey { limit: 10 }).is_permanent());
        assert!(Failure::from(StoreError::Unavailable("db down".into())).is_retry());
    }

    #[test]
    fn enqueue_errors_that_retrying_cannot_fix_are_permanent() {
        assert!(Failure::from(EnqueueError::TooMany { limit: 3 }).is_permanent());
        assert!(Failure::from(EnqueueError::Invalid("empty handler".into())).is_permanent());
    }

    #[test]
    fn result_ext_chooses_the_kind() {
        let bad: Result<u8, _> = "x".parse::<u8>();
        assert!(bad.clone().permanent().unwrap_err().is_permanent());
        assert!(bad.transient().unwrap_err().is_retry());
    }

    #[test]
    fn context_prefixes_the_message_and_keeps_the_kind() {
        let failure = Failure::permanent("no such customer").context("order 42");
        assert_eq!(failure, Failure::permanent("order 42: no such customer"));
    }

    #[test]
    fn converts_to_the_wit_variant() {
        assert!(matches!(
            raw::Failure::from(Failure::permanent("bad")),
            raw::Failure::Permanent(message) if message == "bad"
        ));
        assert!(matches!(
            raw::Failure::from(Failure::retry("later")),
            raw::Failure::Retry(message) if message == "later"
        ));
    }
}
