//! Host capabilities, one module per WIT interface the host implements.
//!
//! Each module has the same shape: per-attempt state, its `Host` impl, and `add_to_linker`.
//! Everything is denied unless granted.

pub mod http;
pub mod jobs;
pub mod log;
pub mod store;
pub mod wasi;
