//! A typed client of Spool's HTTP API, and the API's request and response types.
//!
//! The types ([`types`], and the limits in [`limits`]) are the API's one definition: the
//! server answers and reads them (with the `schema` feature they also describe themselves for
//! its OpenAPI document), and this client sends and reads them.
//!
//! ```no_run
//! # async fn example() -> Result<(), spool_client::Error> {
//! use spool_client::Client;
//! use spool_client::types::JobRequest;
//!
//! let client = Client::new("http://127.0.0.1:8080".parse().unwrap(), "TOKEN")?;
//! let job = JobRequest::new("send-receipt").with_payload(&serde_json::json!({"order": 7}));
//! let enqueued = client.job_enqueue(&job).await?;
//! let job = client.job_get(enqueued.id).await?;
//! println!("{} is {}", job.id, job.state);
//! # Ok(())
//! # }
//! ```
//!
//! Each operation is a method returning a [`Call`]: `.await` it for the answer's value, or
//! ask for the [`Reply`] to keep the status and the JSON as they came. An error answer (an
//! RFC 9457 problem) is an [`Error::Problem`], which prints as `<title>: <detail>`.

#[macro_use]
mod limit_table;
mod client;
mod error;
pub mod limits;
mod ops;
pub mod types;

pub use client::{Builder, CONNECT_TIMEOUT_DEFAULT, Call, Client, Reply};
pub use error::Error;
pub use reqwest::{Method, StatusCode};
