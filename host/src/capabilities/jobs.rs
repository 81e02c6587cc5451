//! The `spool:job/jobs` capability: follow-up jobs, enqueued only if the attempt commits.

use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};

use crate::model::text::{is_valid_key, prefix};
use crate::model::{DEFAULT_QUEUE, EnqueuedJob, Limits, MAX_ATTEMPTS, MAX_DELAY, is_valid_name};
use crate::wit::spool::job::jobs as wit;

/// A derived idempotency key longer than this is replaced by a hash.
const MAX_DERIVED_KEY_LEN: usize = 200;

/// The per-attempt state of the jobs capability: the follow-ups asked for so far.
#[derive(Debug)]
pub struct JobsState {
    parent_key: String,
    max_enqueued: u32,
    max_payload_bytes: u32,
    enqueued: Vec<EnqueuedJob>,
}

impl JobsState {
    /// Returns the state for one attempt of the job whose idempotency key is `parent_key`.
    pub fn new(parent_key: &str, limits: &Limits) -> JobsState {
        JobsState {
            parent_key: parent_key.to_string(),
            max_enqueued: limits.max_enqueued,
            max_payload_bytes: limits.max_payload_bytes,
            enqueued: Vec::new(),
        }
    }

    /// Returns the follow-ups, in the order they were asked for.
    pub fn into_enqueued(self) -> Vec<EnqueuedJob> {
        self.enqueued
    }
}

/// Returns the idempotency key of the `index`th follow-up of the job keyed `parent_key`: the
/// same on every attempt, so a retried attempt enqueues the same follow-ups, not new ones.
pub fn child_key(parent_key: &str, index: usize) -> String {
    let key = format!("{parent_key}/{index}");
    if key.len() <= MAX_DERIVED_KEY_LEN {
        return key;
    }
    let digest = Sha256::digest(key.as_bytes());
    format!("spool-child-{}", hex::encode(&digest[..16]))
}

impl wit::Host for JobsState {
    fn enqueue(&mut self, req: wit::EnqueueRequest) -> Result<String, wit::EnqueueError> {
        if self.enqueued.len() >= self.max_enqueued as usize {
            return Err(wit::EnqueueError::TooMany(self.max_enqueued));
        }
        if !is_valid_name(&req.handler) {
            return Err(wit::EnqueueError::Invalid(format!(
                "handler name {:?} is not valid (1-64 of a-z, A-Z, 0-9, '-', '_', '.')",
                truncated(&req.handler)
            )));
        }
        let queue = req.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_string());
        if !is_valid_name(&queue) {
            return Err(wit::EnqueueError::Invalid(format!(
                "queue name {:?} is not valid",
                truncated(&queue)
            )));
        }
        if req.payload.len() > self.max_payload_bytes as usize {
            return Err(wit::EnqueueError::PayloadTooLarge(self.max_payload_bytes));
        }
        let idempotency_key = match req.idempotency_key {
            Some(key) if !is_valid_key(&key, MAX_DERIVED_KEY_LEN) => {
                return Err(wit::EnqueueError::Invalid(format!(
                    "idempotency key must be 1 to {MAX_DERIVED_KEY_LEN} bytes without control \
                     characters"
                )));
            }
            Some(key) => key,
            None => child_key(&self.parent_key, self.enqueued.len()),
        };
        if req
            .max_attempts
            .is_some_and(|m| !(1..=MAX_ATTEMPTS).contains(&m))
        {
            return Err(wit::EnqueueError::Invalid(format!(
                "max-attempts must be between 1 and {MAX_ATTEMPTS}"
            )));
        }
        if req
            .delay_ms
            .is_some_and(|ms| ms > MAX_DELAY.as_millis() as u64)
        {
            return Err(wit::EnqueueError::Invalid(format!(
                "delay-ms must be at most {} (ten years)",
                MAX_DELAY.as_millis()
            )));
        }
        let id = uuid::Uuid::now_v7().to_string();
        self.enqueued.push(EnqueuedJob {
            id: id.clone(),
            handler: req.handler,
            payload: req.payload,
            queue,
            idempotency_key,
            priority: req.priority.unwrap_or(0),
            delay_ms: req.delay_ms.unwrap_or(0),
            max_attempts: req.max_attempts,
        });
        Ok(id)
    }
}

fn truncated(s: &str) -> &str {
    prefix(s, 80)
}

/// Adds `spool:job/jobs` to `linker`, reading the state with `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut JobsState,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<JobsState>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit::Host;

    fn request(handler: &str) -> wit::EnqueueRequest {
        wit::EnqueueRequest {
            handler: handler.into(),
            payload: b"{}".to_vec(),
            queue: None,
            idempotency_key: None,
            priority: None,
            delay_ms: None,
            max_attempts: None,
        }
    }

    #[test]
    fn follow_ups_get_keys_derived_from_the_parent_in_order() {
        let mut jobs = JobsState::new("order-7", &Limits::default());
        jobs.enqueue(request("send-receipt")).unwrap();
        jobs.enqueue(request("ship")).unwrap();
        let out = jobs.into_enqueued();
        assert_eq!(out[0].idempotency_key, "order-7/0");
        assert_eq!(out[1].idempotency_key, "order-7/1");
        assert_eq!(out[1].queue, DEFAULT_QUEUE);
    }

    #[test]
    fn long_derived_keys_are_hashed() {
        let key = child_key(&"k".repeat(300), 3);
        assert!(key.starts_with("spool-child-") && key.len() < 64, "{key}");
        assert_eq!(key, child_key(&"k".repeat(300), 3));
    }

    #[test]
    fn limits_and_bad_requests_are_refused() {
        let limits = Limits {
            max_enqueued: 1,
            max_payload_bytes: 4,
            ..Limits::default()
        };
        let mut jobs = JobsState::new("p", &limits);
        assert!(matches!(
            jobs.enqueue(request("")),
            Err(wit::EnqueueError::Invalid(_))
        ));
        let mut big = request("x");
        big.payload = vec![0; 5];
        assert!(matches!(
            jobs.enqueue(big),
            Err(wit::EnqueueError::PayloadTooLarge(4))
        ));
        for bad in [
            wit::EnqueueRequest {
                idempotency_key: Some("a\0b".into()),
                ..request("x")
            },
            wit::EnqueueRequest {
                delay_ms: Some(u64::MAX),
                ..request("x")
            },
            wit::EnqueueRequest {
                max_attempts: Some(u32::MAX),
                ..request("x")
            },
            wit::EnqueueRequest {
                max_attempts: Some(0),
                ..request("x")
            },
        ] {
            assert!(matches!(
                jobs.enqueue(bad),
                Err(wit::EnqueueError::Invalid(_))
            ));
        }
        jobs.enqueue(request("x")).unwrap();
        assert!(matches!(
            jobs.enqueue(request("x")),
            Err(wit::EnqueueError::TooMany(1))
        ));
    }
}
