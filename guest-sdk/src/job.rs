//! The job a handler runs: its metadata and its decoded payload.

use crate::bindings::spool::job::types as raw;
use crate::{Bytes, Failure, FromPayload};

/// One job, as the handler sees it on one attempt: its metadata and its payload decoded as `T`.
///
/// `T` is any `serde::de::DeserializeOwned` type (the payload is JSON) or [`Bytes`] (the
/// payload as enqueued); see [`FromPayload`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job<T = Bytes> {
    /// The job's id: opaque, unique, the same on every attempt.
    pub id: String,
    /// The tenant that owns the job.
    pub tenant: String,
    /// The handler name the job was enqueued for.
    pub handler: String,
    /// The queue the job was enqueued on (`default` unless named).
    pub queue: String,
    /// Which attempt this is, starting at 1.
    pub attempt: u32,
    /// How many attempts the job gets before it is dead-lettered.
    pub max_attempts: u32,
    /// The job's idempotency key within its tenant; the job id unless one was given when it
    /// was enqueued.
    pub idempotency_key: String,
    /// The payload, decoded.
    pub payload: T,
}

impl<T> Job<T> {
    /// Returns true on the job's last attempt: a retryable failure now dead-letters it.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// Returns the same job with its payload transformed by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Job<U> {
        Job {
            id: self.id,
            tenant: self.tenant,
            handler: self.handler,
            queue: self.queue,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            idempotency_key: self.idempotency_key,
            payload: f(self.payload),
        }
    }
}

impl<T: FromPayload> Job<T> {
    /// Builds the job from the WIT record, decoding the payload; a payload that does not decode
    /// is a permanent failure.
    pub(crate) fn decode(raw: raw::Job) -> Result<Self, Failure> {
        let payload = T::from_payload(raw.payload)?;
        Ok(Job {
            id: raw.id,
            tenant: raw.tenant,
            handler: raw.handler,
            queue: raw.queue,
            attempt: raw.attempt,
            max_attempts: raw.max_attempts,
            idempotency_key: raw.idempotency_key,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    fn raw_job(payload: &[u8]) -> raw::Job {
        raw::Job {
            id: "job-1".into(),
            tenant: "acme".into(),
            handler: "fulfil-order".into(),
            queue: "default".into(),
            payload: payload.to_vec(),
            attempt: 2,
            max_attempts: 5,
            idempotency_key: "order-42".into(),
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Hello {
        hi: u32,
    }

    #[test]
    fn decode_keeps_the_metadata_and_decodes_the_payload() {
        let job = Job::<Hello>::decode(raw_job(br#"{"hi":1}"#)).unwrap();
        assert_eq!(job.id, "job-1");
        assert_eq!(job.tenant, "acme");
        assert_eq!(job.handler, "fulfil-order");
        assert_eq!(job.queue, "default");
        assert_eq!(job.attempt, 2);
        assert_eq!(job.max_attempts, 5);
        assert_eq!(job.idempotency_key, "order-42");
        assert_eq!(job.payload, Hello { hi: 1 });
        assert!(!job.is_last_attempt());
    }

    #[test]
    fn decode_of_a_malformed_payload_is_permanent() {
        let failure = Job::<Hello>::decode(raw_job(b"[1,2]")).unwrap_err();
        assert!(failure.is_permanent(), "{failure:?}");
    }

    #[test]
    fn decode_as_bytes_keeps_the_payload() {
        let job = Job::<Bytes>::decode(raw_job(b"\x00\x01")).unwrap();
        assert_eq!(job.payload, Bytes(vec![0, 1]));
    }

    #[test]
    fn map_transforms_only_the_payload() {
        let job = Job::<Bytes>::decode(raw_job(b"abc"))
            .unwrap()
            .map(|p| p.len());
        assert_eq!((job.payload, job.attempt), (3, 2));
    }

    #[test]
    fn dispatch_runs_the_handler_and_encodes_its_result() {
        fn double(job: Job<Hello>) -> Result<u32, Failure> {
            Ok(job.payload.hi * 2)
        }
        let out = crate::__private::dispatch(raw_job(br#"{"hi":21}"#), double).unwrap();
        assert_eq!(out, b"42");
    }

    #[test]
    fn dispatch_reports_a_handler_failure() {
        fn fails(_: Job<Bytes>) -> Result<(), Failure> {
            Err(Failure::retry("try later"))
        }
        let err = crate::__private::dispatch(raw_job(b""), fails).unwrap_err();
        assert!(matches!(err, raw::Failure::Retry(m) if m == "try later"));
    }

    #[test]
    fn dispatch_never_calls_the_handler_with_a_malformed_payload() {
        fn unreachable_handler(_: Job<Hello>) -> Result<(), Failure> {
            panic!("must not run")
        }
        let err = crate::__private::dispatch(raw_job(b"nope"), unreachable_handler).unwrap_err();
        assert!(matches!(err, raw::Failure::Permanent(_)));
    }
}
