//! Spool's integration tests, one binary with a module per area (the wasmtime layout).
//!
//! They run real components, built from `examples/` and `tests/fixtures/` by `make guests`,
//! in the real runtime.

mod alerts;
mod api;
mod bench;
mod c;
mod cache;
mod cli_client;
mod compile;
mod dashboard;
mod dev;
mod durability;
mod enqueue;
mod fairness;
mod handler_projects;
mod hardening;
mod hostile_tenants;
mod hot_keys;
mod http;
mod javascript;
mod lifecycle;
mod limits;
mod logs;
mod maintenance;
mod metrics;
mod openapi;
mod outcomes;
mod python;
mod restart;
mod schedules;
mod shutdown;
mod store_quota;
mod validation;
mod wasi;
mod worker;
