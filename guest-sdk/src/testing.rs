//! In-memory stand-ins for Spool's host calls, for unit-testing handlers natively.
//!
//! This module exists on every target but `wasm32`. There, [`store`](crate::store),
//! [`jobs`](crate::jobs) and [`log`](crate::log) call into a fake kept per thread (so each
//! `#[test]`, which runs on its own thread, starts from an empty one). [`attempt`] runs a
//! handler the way Spool does: the store writes and follow-up jobs of a failed attempt are
//! discarded.
//!
//! ```
//! use spool_guest::{testing, Failure, Job};
//!
//! fn count(job: Job<u32>) -> Result<u32, Failure> {
//!     let seen: u32 = spool_guest::store::get("seen")?.unwrap_or(0);
//!     spool_guest::store::put("seen", &(seen + job.payload))?;
//!     Ok(seen + job.payload)
//! }
//!
//! assert_eq!(testing::attempt(count, testing::job(2)), Ok(2));
//! assert_eq!(testing::attempt(count, testing::job(3)), Ok(5));
//! assert_eq!(testing::store()["seen"], b"5");
//! ```
//!
//! The fake enforces none of Spool's limits (key and value sizes, write budget, follow-up
//! count), and an effect key is simply `"{tenant}/{idempotency_key}/{label}"` of the job that
//! [`attempt`] is running (of [`job`]'s defaults outside it).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::log::Level;
use crate::{Failure, Job};

/// A follow-up job recorded by the fake [`jobs`](crate::jobs) interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The id [`enqueue`](crate::jobs::enqueue) returned.
    pub id: String,
    /// The handler the job is for.
    pub handler: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The queue, if one was named.
    pub queue: Option<String>,
    /// The idempotency key, if one was given.
    pub idempotency_key: Option<String>,
    /// The priority, if one was given.
    pub priority: Option<i16>,
    /// The delay, if one was given.
    pub delay: Option<Duration>,
    /// The attempts, if they were given.
    pub max_attempts: Option<u32>,
}

impl Enqueued {
    /// Returns the payload decoded from JSON as `T`.
    ///
    /// # Panics
    ///
    /// If the payload is not JSON for `T`: this is a test helper.
    pub fn payload_json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.payload).expect("the enqueued payload is JSON for T")
    }
}

/// A line recorded by the fake [`log`](crate::log) interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The line's level.
    pub level: Level,
    /// The message.
    pub message: String,
    /// The structured fields, in the order given.
    pub fields: Vec<(String, String)>,
}

#[derive(Clone, Default)]
struct State {
    store: BTreeMap<String, Vec<u8>>,
    enqueued: Vec<Enqueued>,
    logs: Vec<LogLine>,
    next_id: u64,
    // (tenant, idempotency key) of the job `attempt` is running.
    current: Option<(String, String)>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|state| f(&mut state.borrow_mut()))
}

/// Empties this thread's fake store, follow-up jobs and log.
pub fn reset() {
    with(|state| *state = State::default());
}

/// Returns a copy of this thread's fake store.
pub fn store() -> BTreeMap<String, Vec<u8>> {
    with(|state| state.store.clone())
}

/// Returns the follow-up jobs enqueued on this thread so far, oldest first.
pub fn enqueued() -> Vec<Enqueued> {
    with(|state| state.enqueued.clone())
}

/// Returns the log lines written on this thread so far, oldest first.
pub fn logs() -> Vec<LogLine> {
    with(|state| state.logs.clone())
}

/// Returns a job carrying `payload`, on its first attempt of 20, with id and idempotency key
/// `test-job`, tenant `test`, handler `test` and queue `default`; change the fields as needed.
pub fn job<T>(payload: T) -> Job<T> {
    Job {
        id: "test-job".to_owned(),
        tenant: "test".to_owned(),
        handler: "test".to_owned(),
        queue: "default".to_owned(),
        attempt: 1,
        max_attempts: 20,
        idempotency_key: "test-job".to_owned(),
        payload,
    }
}

/// Runs one attempt of `handler` on `job` as Spool would: if it returns `Err`, its store
/// writes and follow-up jobs are discarded (its log lines are kept, as Spool keeps them).
pub fn attempt<T, R>(handler: fn(Job<T>) -> Result<R, Failure>, job: Job<T>) -> Result<R, Failure> {
    let before = with(|state| {
        let before = (state.store.clone(), state.enqueued.len());
        state.current = Some((job.tenant.clone(), job.idempotency_key.clone()));
        before
    });
    let result = handler(job);
    with(|state| {
        state.current = None;
        if result.is_err() {
            state.store = before.0;
            state.enqueued.truncate(before.1);
        }
    });
    result
}

/// The fake host calls that [`crate::sys`] routes to on native targets.
pub(crate) mod fake {
    use super::{Enqueued, LogLine, with};
    use crate::bindings::spool::job::jobs::EnqueueRequest;
    use crate::jobs::EnqueueError;
    use crate::log::Level;
    use crate::store::{MAX_LIST_LIMIT, StoreError};

    pub(crate) fn store_get(key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(with(|state| state.store.get(key).cloned()))
    }

    pub(crate) fn store_put(key: &str, value: &[u8]) -> Result<(), StoreError> {
        with(|state| state.store.insert(key.to_owned(), value.to_vec()));
        Ok(())
    }

    pub(crate) fn store_delete(key: &str) -> Result<(), StoreError> {
        with(|state| state.store.remove(key));
        Ok(())
    }

    pub(crate) fn store_add(key: &str, delta: i64) -> Result<(), StoreError> {
        with(|state| {
            let now = match state.store.get(key) {
                None => 0,
                Some(bytes) => std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|text| text.trim().parse::<i64>().ok())
                    .ok_or_else(|| {
                        StoreError::Unavailable(format!(
                            "store key {key:?} does not hold an integer to add to"
                        ))
                    })?,
            };
            let sum = now.saturating_add(delta).to_string().into_bytes();
            state.store.insert(key.to_owned(), sum);
            Ok(())
        })
    }

    pub(crate) fn store_list_keys(
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let limit = limit.min(MAX_LIST_LIMIT) as usize;
        Ok(with(|state| {
            state
                .store
                .range(prefix.to_owned()..)
                .map(|(key, _)| key)
                .take_while(|key| key.starts_with(prefix))
                .filter(|key| after.is_none_or(|after| key.as_str() > after))
                .take(limit)
                .cloned()
                .collect()
        }))
    }

    pub(crate) fn effect_key(label: &str) -> String {
        with(|state| {
            let (tenant, key) = state
                .current
                .clone()
                .unwrap_or_else(|| ("test".to_owned(), "test-job".to_owned()));
            format!("{tenant}/{key}/{label}")
        })
    }

    pub(crate) fn enqueue(request: &EnqueueRequest) -> Result<String, EnqueueError> {
        if request.handler.is_empty() {
            return Err(EnqueueError::Invalid(
                "the handler name is empty".to_owned(),
            ));
        }
        Ok(with(|state| {
            state.next_id += 1;
            let id = format!("test-job-{}", state.next_id);
            state.enqueued.push(Enqueued {
                id: id.clone(),
                handler: request.handler.clone(),
                payload: request.payload.clone(),
                queue: request.queue.clone(),
                idempotency_key: request.idempotency_key.clone(),
                priority: request.priority,
                delay: request.delay_ms.map(std::time::Duration::from_millis),
                max_attempts: request.max_attempts,
            });
            id
        }))
    }

    pub(crate) fn log(level: Level, message: &str, fields: &[(String, String)]) {
        with(|state| {
            state.logs.push(LogLine {
                level,
                message: message.to_owned(),
                fields: fields.to_vec(),
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{jobs, store};

    fn charge(job: Job<bool>) -> Result<(), Failure> {
        store::put("charged", &true)?;
        jobs::enqueue("send-receipt", &())?;
        if job.payload {
            Ok(())
        } else {
            Err(Failure::retry("card network timeout"))
        }
    }

    #[test]
    fn a_failed_attempt_leaves_no_writes_and_no_follow_ups() {
        reset();
        assert!(attempt(charge, job(false)).is_err());
        assert!(store().is_empty());
        assert!(enqueued().is_empty());
        assert!(attempt(charge, job(true)).is_ok());
        assert_eq!(store()["charged"], b"true");
        assert_eq!(enqueued().len(), 1);
    }

    #[test]
    fn effect_keys_follow_the_running_job() {
        reset();
        fn key(_: Job<()>) -> Result<String, Failure> {
            Ok(store::effect_key("charge"))
        }
        let mut other = job(());
        other.tenant = "acme".into();
        other.idempotency_key = "order-7".into();
        assert_eq!(attempt(key, other).unwrap(), "acme/order-7/charge");
        assert_eq!(attempt(key, job(())).unwrap(), "test/test-job/charge");
    }
}
