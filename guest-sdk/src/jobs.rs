//! Follow-up jobs, enqueued atomically with this attempt's commit.
//!
//! A follow-up job becomes visible only if the handler returns `Ok` and Spool commits the
//! attempt. Unless it is given an idempotency key, a follow-up's key is derived from this job's
//! key and the order of the enqueue calls, so a retried attempt enqueues the same follow-ups
//! rather than new ones.
//!
//! ```no_run
//! # fn main() -> Result<(), spool_guest::jobs::EnqueueError> {
//! use std::time::Duration;
//! use spool_guest::jobs;
//!
//! let receipt = serde_json::json!({ "order": "42", "email": "ada@example.com" });
//! // The common case: JSON payload, default queue, priority and attempts.
//! let id = jobs::enqueue("send-receipt", &receipt)?;
//! // Everything else through the builder.
//! let id = jobs::Enqueue::new("send-receipt")
//!     .payload(&receipt)?
//!     .queue("email")
//!     .idempotency_key("receipt/42")
//!     .priority(-1)
//!     .delay(Duration::from_secs(60))
//!     .max_attempts(5)
//!     .send()?;
//! # let _ = id;
//! # Ok(()) }
//! ```

use std::time::Duration;

use serde::Serialize;

use crate::bindings::spool::job::jobs as raw;
use crate::sys;

/// Why a follow-up job was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The request is malformed (an empty handler name, say); the reason is given.
    #[error("invalid follow-up job: {0}")]
    Invalid(String),
    /// The payload is larger than `limit` bytes.
    #[error("follow-up job payload too large: the limit is {limit} bytes")]
    PayloadTooLarge {
        /// The largest payload allowed, in bytes.
        limit: u32,
    },
    /// This attempt already enqueued the most follow-ups it may, `limit`.
    #[error("too many follow-up jobs: an attempt may enqueue at most {limit}")]
    TooMany {
        /// How many follow-ups one attempt may enqueue.
        limit: u32,
    },
    /// The payload cannot be encoded as JSON.
    #[error("the follow-up job's payload cannot be encoded as JSON: {0}")]
    Encode(#[source] serde_json::Error),
}

impl EnqueueError {
    /// Returns true if retrying the job later may succeed; none of the current kinds is
    /// transient, since the same request is refused the same way on every attempt.
    ///
    /// When an `EnqueueError` is converted into a [`Failure`](crate::Failure) with `?`, a
    /// transient error becomes a retry and any other a permanent failure.
    pub fn is_transient(&self) -> bool {
        false
    }
}

impl From<raw::EnqueueError> for EnqueueError {
    fn from(error: raw::EnqueueError) -> Self {
        match error {
            raw::EnqueueError::Invalid(reason) => EnqueueError::Invalid(reason),
            raw::EnqueueError::PayloadTooLarge(limit) => EnqueueError::PayloadTooLarge { limit },
            raw::EnqueueError::TooMany(limit) => EnqueueError::TooMany { limit },
        }
    }
}

/// Enqueues a follow-up job for `handler` with `payload` encoded as JSON, and returns the id it
/// will have once this attempt commits.
///
/// The job goes on the `default` queue with default priority and attempts; use [`Enqueue`] to
/// choose them.
pub fn enqueue<T: Serialize + ?Sized>(handler: &str, payload: &T) -> Result<String, EnqueueError> {
    Enqueue::new(handler).payload(payload)?.send()
}

/// A follow-up job being built; [`Enqueue::send`] enqueues it.
///
/// Every setting is optional except the handler. Defaults: payload JSON `null`, queue
/// `default`, priority 0, no delay, the tenant's default attempts, and an idempotency key
/// derived from this job's key and the order of the enqueue calls.
#[derive(Clone, Debug)]
#[must_use = "a follow-up job is enqueued only by `send`"]
pub struct Enqueue {
    handler: String,
    payload: Vec<u8>,
    queue: Option<String>,
    idempotency_key: Option<String>,
    priority: Option<i16>,
    delay: Option<Duration>,
    max_attempts: Option<u32>,
}

impl Enqueue {
    /// Starts a follow-up job for `handler`, with a JSON `null` payload.
    pub fn new(handler: impl Into<String>) -> Self {
        Self {
            handler: handler.into(),
            payload: b"null".to_vec(),
            queue: None,
            idempotency_key: None,
            priority: None,
            delay: None,
            max_attempts: None,
        }
    }

    /// Sets the payload to `payload` encoded as JSON.
    pub fn payload<T: Serialize + ?Sized>(mut self, payload: &T) -> Result<Self, EnqueueError> {
        self.payload = serde_json::to_vec(payload).map_err(EnqueueError::Encode)?;
        Ok(self)
    }

    /// Sets the payload to `bytes` as they are.
    pub fn payload_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.payload = bytes.into();
        self
    }

    /// Sets the queue (`default` otherwise).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Sets the idempotency key: a job whose key is already done in this tenant never runs
    /// again.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the priority: lower runs first (0 otherwise).
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Makes the job wait `delay` (whole milliseconds; longer delays saturate) before it
    /// becomes available.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Sets how many attempts the job gets before it is dead-lettered (the tenant's default
    /// otherwise).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// Enqueues the job when this attempt commits, and returns the id it will have.
    pub fn send(self) -> Result<String, EnqueueError> {
        sys::enqueue(&self.into_request())
    }

    fn into_request(self) -> raw::EnqueueRequest {
        raw::EnqueueRequest {
            handler: self.handler,
            payload: self.payload,
            queue: self.queue,
            idempotency_key: self.idempotency_key,
            priority: self.priority,
            delay_ms: self
                .delay
                .map(|delay| u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
            max_attempts: self.max_attempts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn a_bare_request_has_a_null_payload_and_no_options() {
        let request = Enqueue::new("send-receipt").into_request();
        assert_eq!(request.handler, "send-receipt");
        assert_eq!(request.payload, b"null");
        assert_eq!(request.queue, None);
        assert_eq!(request.idempotency_key, None);
        assert_eq!(request.priority, None);
        assert_eq!(request.delay_ms, None);
        assert_eq!(request.max_attempts, None);
    }

    #[test]
    fn the_builder_fills_every_field() {
        let request = Enqueue::new("send-receipt")
            .payload(&serde_json::json!({ "order": "42" }))
            .unwrap()
            .queue("email")
            .idempotency_key("receipt/42")
            .priority(-3)
            .delay(Duration::from_millis(1500))
            .max_attempts(4)
            .into_request();
        assert_eq!(request.payload, br#"{"order":"42"}"#);
        assert_eq!(request.queue.as_deref(), Some("email"));
        assert_eq!(request.idempotency_key.as_deref(), Some("receipt/42"));
        assert_eq!(request.priority, Some(-3));
        assert_eq!(request.delay_ms, Some(1500));
        assert_eq!(request.max_attempts, Some(4));
    }

    #[test]
    fn a_huge_delay_saturates() {
        let request = Enqueue::new("h").delay(Duration::MAX).into_request();
        assert_eq!(request.delay_ms, Some(u64::MAX));
    }

    #[test]
    fn raw_payload_bytes_pass_through() {
        let request = Enqueue::new("h")
            .payload_bytes(vec![0xff, 0])
            .into_request();
        assert_eq!(request.payload, [0xff, 0]);
    }

    #[test]
    fn wit_errors_map_to_their_variants() {
        assert!(matches!(
            EnqueueError::from(raw::EnqueueError::TooMany(100)),
            EnqueueError::TooMany { limit: 100 }
        ));
        assert!(matches!(
            EnqueueError::from(raw::EnqueueError::PayloadTooLarge(10)),
            EnqueueError::PayloadTooLarge { limit: 10 }
        ));
        let invalid = EnqueueError::from(raw::EnqueueError::Invalid("empty handler".into()));
        assert_eq!(invalid.to_string(), "invalid follow-up job: empty handler");
    }

    #[test]
    fn enqueue_records_the_job_in_the_fake() {
        testing::reset();
        let id = enqueue("send-receipt", &serde_json::json!({ "n": 1 })).unwrap();
        let enqueued = testing::enqueued();
        assert_eq!(enqueued.len(), 1);
        assert_eq!(enqueued[0].id, id);
        assert_eq!(enqueued[0].handler, "send-receipt");
        assert_eq!(enqueued[0].payload, br#"{"n":1}"#);
    }
}
