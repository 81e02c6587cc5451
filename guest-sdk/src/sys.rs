//! The one place that calls the host.
//!
//! On `wasm32` every function here is a WIT import; elsewhere it goes to the in-memory fake in
//! [`crate::testing`], so that handler logic can be unit-tested natively. The public modules
//! (`store`, `jobs`, `log`) call only these functions.

#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::*;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::fake::*;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use crate::bindings::spool::job::idempotency_store as store;
    use crate::bindings::spool::job::jobs::{self, EnqueueRequest};
    use crate::bindings::spool::job::log as wit_log;
    use crate::jobs::EnqueueError;
    use crate::log::Level;
    use crate::store::StoreError;

    pub(crate) fn store_get(key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        store::get(key).map_err(StoreError::from)
    }

    pub(crate) fn store_put(key: &str, value: &[u8]) -> Result<(), StoreError> {
        store::put(key, value).map_err(StoreError::from)
    }

    pub(crate) fn store_delete(key: &str) -> Result<(), StoreError> {
        store::delete(key).map_err(StoreError::from)
    }

    pub(crate) fn store_add(key: &str, delta: i64) -> Result<(), StoreError> {
        store::add(key, delta).map_err(StoreError::from)
    }

    pub(crate) fn store_list_keys(
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        store::list_keys(prefix, after, limit).map_err(StoreError::from)
    }

    pub(crate) fn effect_key(label: &str) -> String {
        store::effect_key(label)
    }

    pub(crate) fn enqueue(request: &EnqueueRequest) -> Result<String, EnqueueError> {
        jobs::enqueue(request).map_err(EnqueueError::from)
    }

    pub(crate) fn log(level: Level, message: &str, fields: &[(String, String)]) {
        wit_log::log(level.into(), message, fields);
    }
}
