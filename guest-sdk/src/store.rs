//! The idempotency store: tenant-scoped key/value state that commits atomically with the job.
//!
//! Reads see the committed state plus this attempt's own writes. Writes ([`put`], [`delete`],
//! [`add`]) are buffered by Spool and committed only if the handler returns `Ok`, in the same
//! database transaction that records the job as done; after a failure or a trap they are
//! discarded, so a retried attempt never sees a failed attempt's writes. If a key that the
//! attempt read and then put or deleted was changed by someone else before the commit, the
//! attempt lost a race: Spool runs it again shortly, without charging it an attempt. Counters
//! that many jobs bump should use [`add`], which never conflicts.
//!
//! Values written with [`put`] are JSON; [`put_bytes`] stores bytes as they are. Keys are
//! strings, listed in byte order by [`list_keys`] and [`keys`].
//!
//! ```no_run
//! # fn main() -> Result<(), spool_guest::store::StoreError> {
//! use spool_guest::store;
//!
//! store::put("order/42", &serde_json::json!({ "state": "charged" }))?;
//! let state: Option<serde_json::Value> = store::get("order/42")?;
//! for key in store::keys("order/") {
//!     let key = key?;
//!     # let _ = key;
//! }
//! # let _ = state;
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::iter::FusedIterator;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::spool::job::idempotency_store as raw;
use crate::sys;

/// The most keys one [`list_keys`] call returns; Spool caps larger limits to this.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// Why a store call was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key is empty or longer than `limit` bytes.
    #[error("invalid store key: a key must be 1 to {limit} bytes long")]
    InvalidKey {
        /// The longest key allowed, in bytes.
        limit: u32,
    },
    /// The value is larger than `limit` bytes.
    #[error("store value too large: the limit is {limit} bytes")]
    ValueTooLarge {
        /// The largest value allowed, in bytes.
        limit: u32,
    },
    /// This attempt's writes would exceed its write budget of `limit` bytes.
    #[error("store write quota exceeded: an attempt may write at most {limit} bytes")]
    QuotaExceeded {
        /// The attempt's write budget, in bytes.
        limit: u64,
    },
    /// The backing store could not be reached; retrying the job later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The value under `key` is not JSON of the type [`get`] asked for.
    #[error("the store value under `{key}` is not valid JSON for the requested type: {source}")]
    Decode {
        /// The key whose value did not decode.
        key: String,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// The value given to [`put`] cannot be encoded as JSON.
    #[error("the store value cannot be encoded as JSON: {0}")]
    Encode(#[source] serde_json::Error),
}

impl StoreError {
    /// Returns true if retrying the job later may succeed (only [`StoreError::Unavailable`]).
    ///
    /// When a `StoreError` is converted into a [`Failure`](crate::Failure) with `?`, a
    /// transient error becomes a retry and any other a permanent failure.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<raw::StoreError> for StoreError {
    fn from(error: raw::StoreError) -> Self {
        match error {
            raw::StoreError::InvalidKey(limit) => StoreError::InvalidKey { limit },
            raw::StoreError::ValueTooLarge(limit) => StoreError::ValueTooLarge { limit },
            raw::StoreError::QuotaExceeded(limit) => StoreError::QuotaExceeded { limit },
            raw::StoreError::Unavailable(reason) => StoreError::Unavailable(reason),
        }
    }
}

/// Returns the JSON value stored under `key` decoded as `T`, or `None` if there is none.
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, StoreError> {
    let Some(bytes) = sys::store_get(key)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StoreError::Decode {
            key: key.to_owned(),
            source,
        })
}

/// Returns the bytes stored under `key`, or `None` if there are none.
pub fn get_bytes(key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    sys::store_get(key)
}

/// Stores `value` as JSON under `key`, replacing any previous value, when the attempt commits.
pub fn put<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).map_err(StoreError::Encode)?;
    sys::store_put(key, &bytes)
}

/// Stores `value` as it is under `key`, replacing any previous value, when the attempt commits.
pub fn put_bytes(key: &str, value: &[u8]) -> Result<(), StoreError> {
    sys::store_put(key, value)
}

/// Removes `key` when the attempt commits; deleting a missing key is not an error.
pub fn delete(key: &str) -> Result<(), StoreError> {
    sys::store_delete(key)
}

/// Adds `delta` to the integer counter under `key` when the attempt commits (an absent key
/// counts as 0): a conflict-free counter.
///
/// Unlike a [`get`] then [`put`], an add carries no check of what the attempt read, so jobs
/// adding to one hot key concurrently never conflict and never re-run for it; each add is
/// applied exactly once, with its job's commit. The counter is stored as the integer's JSON
/// text, so `get::<i64>(key)` reads it: the committed value plus this attempt's own adds.
///
/// ```no_run
/// # fn main() -> Result<(), spool_guest::store::StoreError> {
/// use spool_guest::store;
///
/// store::add("orders/today", 1)?;
/// store::add("revenue/today", 1250)?;
/// # Ok(()) }
/// ```
pub fn add(key: &str, delta: i64) -> Result<(), StoreError> {
    sys::store_add(key, delta)
}

/// Lists up to `limit` keys that start with `prefix`, in byte order, strictly after `after`
/// when given.
///
/// Spool caps `limit` at [`MAX_LIST_LIMIT`]. Page by passing the last key returned as the next
/// `after`, or let [`keys`] do it.
pub fn list_keys(prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<String>, StoreError> {
    sys::store_list_keys(prefix, after, limit)
}

/// Returns an iterator over every key that starts with `prefix`, in byte order, fetching them
/// a page of [`MAX_LIST_LIMIT`] at a time.
///
/// The iterator yields an error once, if a page cannot be fetched, and then ends.
pub fn keys(prefix: &str) -> Keys {
    Keys {
        prefix: prefix.to_owned(),
        after: None,
        page: VecDeque::new(),
        done: false,
    }
}

/// An iterator over the store's keys with one prefix; see [`keys`].
#[derive(Debug)]
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct Keys {
    prefix: String,
    after: Option<String>,
    page: VecDeque<String>,
    done: bool,
}

impl Iterator for Keys {
    type Item = Result<String, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            match list_keys(&self.prefix, self.after.as_deref(), MAX_LIST_LIMIT) {
                // Only an empty page ends the listing: the host may cap a page below the limit
                // we asked for, so a short page proves nothing.
                Ok(page) if page.is_empty() => self.done = true,
                Ok(page) => {
                    self.after = page.last().cloned();
                    self.page = page.into();
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
        self.page.pop_front().map(Ok)
    }
}

impl FusedIterator for Keys {}

/// Returns a key for one side effect of this job, stable across every attempt of it.
///
/// The key is derived from the tenant, the job's idempotency key and `label`, so a handler can
/// pass it to an external API (a payment provider's idempotency key, say) and a retry sends
/// the same key again. Use a different `label` for each distinct side effect.
pub fn effect_key(label: &str) -> String {
    sys::effect_key(label)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::testing;

    #[test]
    fn wit_errors_map_to_their_variants() {
        assert!(matches!(
            StoreError::from(raw::StoreError::InvalidKey(256)),
            StoreError::InvalidKey { limit: 256 }
        ));
        assert!(matches!(
            StoreError::from(raw::StoreError::ValueTooLarge(1024)),
            StoreError::ValueTooLarge { limit: 1024 }
        ));
        assert!(matches!(
            StoreError::from(raw::StoreError::QuotaExceeded(1 << 40)),
            StoreError::QuotaExceeded { limit } if limit == 1 << 40
        ));
        let unavailable = StoreError::from(raw::StoreError::Unavailable("db down".into()));
        assert!(unavailable.is_transient());
        assert_eq!(unavailable.to_string(), "store unavailable: db down");
    }

    #[test]
    fn json_values_round_trip() {
        testing::reset();
        #[derive(Debug, Serialize, Deserialize, PartialEq)]
        struct State {
            step: u8,
        }
        put("order/1", &State { step: 2 }).unwrap();
        assert_eq!(get::<State>("order/1").unwrap(), Some(State { step: 2 }));
        assert_eq!(get_bytes("order/1").unwrap().unwrap(), br#"{"step":2}"#);
        assert_eq!(get::<State>("order/2").unwrap(), None);
    }

    #[test]
    fn a_value_of_the_wrong_shape_is_a_decode_error_naming_the_key() {
        testing::reset();
        put_bytes("raw", b"\xff").unwrap();
        let error = get::<String>("raw").unwrap_err();
        assert!(matches!(&error, StoreError::Decode { key, .. } if key == "raw"));
        assert!(!error.is_transient());
    }

    #[test]
    fn keys_pages_through_every_key_with_the_prefix() {
        testing::reset();
        for i in 0..2500 {
            put_bytes(&format!("k/{i:05}"), b"1").unwrap();
        }
        put_bytes("other", b"1").unwrap();
        let keys: Vec<String> = keys("k/").collect::<Result<_, _>>().unwrap();
        assert_eq!(keys.len(), 2500);
        assert_eq!(keys.first().map(String::as_str), Some("k/00000"));
        assert_eq!(keys.last().map(String::as_str), Some("k/02499"));
        assert!(keys.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn list_keys_starts_strictly_after_the_cursor() {
        testing::reset();
        for key in ["a/1", "a/2", "a/3", "b/1"] {
            put_bytes(key, b"").unwrap();
        }
        assert_eq!(list_keys("a/", Some("a/1"), 10).unwrap(), ["a/2", "a/3"]);
        assert_eq!(list_keys("a/", None, 1).unwrap(), ["a/1"]);
        delete("a/2").unwrap();
        delete("missing").unwrap();
        assert_eq!(list_keys("a/", None, 10).unwrap(), ["a/1", "a/3"]);
    }
}
