//! Spool: sandboxed background jobs on PostgreSQL.
//!
//! A tenant's job handler is a WebAssembly component; every attempt runs in a fresh wasmtime
//! sandbox ([`runtime`]) with the host capabilities of [`capabilities`]. See
//! `docs/architecture.md` for the modules, a job's path and where each limit is enforced.

pub mod alerts;
pub mod api;
pub mod capabilities;
mod fair;
pub mod leader;
pub mod maintenance;
pub mod metrics;
pub mod model;
pub mod quota;
pub mod runtime;
pub mod store;
pub mod wit;
pub mod worker;

/// The sqlx this crate is built with, for [`store::Store::job_enqueue_in`]'s transaction type.
pub use sqlx;
