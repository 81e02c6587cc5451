//! Write Spool job handlers in Rust.
//!
//! A handler is a WebAssembly component that Spool runs once per attempt of a job, in a fresh
//! sandbox. This crate wraps the `spool:job@0.1.1` WIT world (`wit/job.wit` in the Spool
//! repository) in idiomatic Rust, so that a handler is one function:
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use spool_guest::{Failure, Job};
//!
//! #[derive(Deserialize)]
//! struct Order {
//!     id: String,
//!     amount_cents: u64,
//! }
//!
//! #[derive(Serialize)]
//! struct Receipt {
//!     order: String,
//!     charge_ref: String,
//! }
//!
//! #[spool_guest::handler]
//! fn run(job: Job<Order>) -> Result<Receipt, Failure> {
//!     let order = &job.payload;
//!     let charged = format!("charged/{}", order.id);
//!     // Stable across every attempt of this job: a retry sends the same key to the provider.
//!     let key = spool_guest::store::effect_key("charge");
//!     if let Some(charge_ref) = spool_guest::store::get::<String>(&charged)? {
//!         return Ok(Receipt { order: order.id.clone(), charge_ref });
//!     }
//!     // ... call the payment provider with `key` as its idempotency key ...
//!     spool_guest::store::put(&charged, &key)?;
//!     spool_guest::jobs::enqueue(
//!         "send-receipt",
//!         &serde_json::json!({ "order": order.id, "amount_cents": order.amount_cents }),
//!     )?;
//!     spool_guest::log::info!("charged {} ({} cents)", order.id, order.amount_cents);
//!     Ok(Receipt { order: order.id.clone(), charge_ref: key })
//! }
//! ```
//!
//! Build it as a `cdylib` for the `wasm32-wasip2` target, which links straight into a
//! component: `cargo build --release --target wasm32-wasip2`.
//!
//! # What the pieces do
//!
//! - [`handler`] turns the function into the component's `run` export. It takes a [`Job<T>`]
//!   and returns `Result<R, Failure>`.
//! - The payload `T` is decoded from JSON for any `T: serde::de::DeserializeOwned`; use
//!   [`Bytes`] to get the raw bytes. A payload that does not decode is a permanent failure:
//!   malformed data never succeeds on a retry.
//! - The result `R` is encoded as JSON for any `R: serde::Serialize` (`()` becomes `null`);
//!   [`Bytes`] passes through as it is.
//! - [`Failure::retry`] and [`Failure::permanent`] say whether Spool should try again. The `?`
//!   operator turns any `std::error::Error` into a [`Failure`]: a retryable one, except for the
//!   errors of this crate that retrying cannot fix (see [`Failure`]).
//! - [`store`] is the idempotency store: tenant-scoped key/value state whose writes commit
//!   atomically with the job, or not at all.
//! - [`jobs`] enqueues follow-up jobs, also atomically with the job.
//! - [`http`] calls other services over HTTP, to the hosts the tenant allows, with an
//!   automatic `Idempotency-Key` that stays the same across retries.
//! - [`log`] writes structured lines into the job's log; `println!` and `eprintln!` are
//!   captured into it too.
//!
//! # Testing handlers natively
//!
//! On targets other than `wasm32`, the store, jobs and log calls go to an in-memory fake in
//! [`testing`], so a handler's logic can be unit-tested with a plain `cargo test`.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod failure;
pub mod http;
mod job;
pub mod jobs;
pub mod log;
mod payload;
pub mod store;
mod sys;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use failure::{Failure, FailureKind, ResultExt};
pub use job::Job;
pub use payload::{Bytes, FromPayload, IntoJobResult};

/// Turns a function into the handler component's `run` export.
///
/// The function must be a free, non-`async`, non-generic `fn` taking one [`Job<T>`] and
/// returning `Result<R, Failure>`, where `T` implements [`FromPayload`] and `R` implements
/// [`IntoJobResult`]. The function is kept as written (so it can be unit-tested); the attribute
/// adds the glue that decodes the job, calls it and encodes its result. A crate has exactly one
/// handler.
///
/// ```no_run
/// use spool_guest::{Bytes, Failure, Job};
///
/// #[spool_guest::handler]
/// fn echo(job: Job<Bytes>) -> Result<Bytes, Failure> {
///     Ok(job.payload)
/// }
/// ```
pub use spool_guest_macro::handler;

/// The raw bindings that `wit-bindgen` generates for the `spool:job/handler` world.
///
/// Handler code should not need these: every interface has a wrapper in this crate. They are
/// public because the code that [`handler`] generates calls into them.
#[doc(hidden)]
#[allow(
    unsafe_code,
    reason = "wit-bindgen's generated lifting, lowering and export glue is unsafe by nature"
)]
#[allow(
    missing_docs,
    reason = "generated code: the WIT docs are copied where there are any"
)]
#[allow(
    clippy::too_many_arguments,
    reason = "the generated export glue takes the job record flattened into core wasm parameters"
)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "handler",
        pub_export_macro: true,
        default_bindings_module: "spool_guest::bindings",
    });
}

/// Support for the code that [`handler`] generates; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::Guest;

    use crate::bindings::spool::job::types as raw;
    use crate::{Failure, FromPayload, IntoJobResult, Job};

    /// Runs one attempt: decodes `raw`, calls `handler`, encodes what it returns.
    pub fn dispatch<T, R>(
        raw: raw::Job,
        handler: fn(Job<T>) -> Result<R, Failure>,
    ) -> Result<Vec<u8>, raw::Failure>
    where
        T: FromPayload,
        R: IntoJobResult,
    {
        let result = Job::<T>::decode(raw)
            .and_then(handler)
            .and_then(IntoJobResult::into_job_result);
        result.map_err(raw::Failure::from)
    }
}
