//! `/v1/jobs`: a job to enqueue, what enqueueing did, a job as answered, pages of jobs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::limits::LimitSpec;

/// A job to enqueue.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The handler to run.
    pub handler: String,
    /// The payload: any JSON value; the guest receives its JSON text. Kept as text until its
    /// size is checked: a large body never becomes a large tree of values.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub payload: Option<Box<RawValue>>,
    /// Raw payload bytes, base64, instead of `payload`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// The queue; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Makes the enqueue idempotent: the same key and payload answer the first job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Lower runs first; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i16>,
    /// When to run (RFC 3339); not with `delay_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    /// Run after this many milliseconds; not with `run_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Attempts in all (default: the handler's, else 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Per-attempt limits, each at most the tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitSpec>,
}

impl JobRequest {
    /// Returns a request for a job of `handler` with a `null` payload and every other field
    /// left to its default.
    pub fn new(handler: impl Into<String>) -> JobRequest {
        JobRequest {
            handler: handler.into(),
            ..JobRequest::default()
        }
    }

    /// Returns this request with `payload` (any JSON value) as its payload.
    pub fn with_payload(self, payload: &Value) -> JobRequest {
        JobRequest {
            payload: Some(
                serde_json::value::to_raw_value(payload).expect("a JSON value serializes"),
            ),
            ..self
        }
    }
}

/// Keeps an explicit `null` apart from an absent field.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// `POST /v1/jobs/batch`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Up to 10,000 jobs, enqueued together: all or none.
    pub jobs: Vec<JobRequest>,
}

/// What enqueueing one job did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct EnqueuedView {
    /// The job's id (the earlier job's, for a duplicate).
    pub id: Uuid,
    /// Its state.
    pub state: String,
    /// The key was used before with the same payload: no new job.
    pub duplicate: bool,
}

/// `POST /v1/jobs/batch`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct BatchView {
    /// One entry per job asked for, in order.
    pub jobs: Vec<EnqueuedView>,
}

/// One failure in a job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt that failed.
    pub attempt: u32,
    /// When.
    pub at: DateTime<Utc>,
    /// The error kind (`error`, `trap`, `timeout`, ...).
    pub kind: String,
    /// The message.
    pub message: String,
}

/// A job as answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct JobView {
    /// Its id.
    pub id: Uuid,
    /// The handler.
    pub handler: String,
    /// The queue.
    pub queue: String,
    /// Its state.
    pub state: String,
    /// Attempts made.
    pub attempt: u32,
    /// Attempts in all.
    pub max_attempts: u32,
    /// Races on store keys its attempts lost: each ran the job again without charging an
    /// attempt (see `errors`, kind `conflict`).
    pub conflicts: u32,
    /// Priority.
    pub priority: i16,
    /// The idempotency key (the job id when none was given).
    pub idempotency_key: String,
    /// The payload, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schema(value_type = Option<Object>))]
    pub payload: Option<Value>,
    /// The payload, base64, when it is not JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// The result, once completed (JSON when it is).
    #[cfg_attr(feature = "schema", schema(value_type = Option<Object>))]
    pub result: Option<Value>,
    /// The result, base64, when it is not JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_base64: Option<String>,
    /// Completed as a duplicate of an earlier job with the same key.
    pub duplicate: bool,
    /// Every failed attempt.
    #[cfg_attr(feature = "schema", schema(value_type = Vec<Object>))]
    pub errors: Vec<AttemptError>,
    /// The last attempt's log lines.
    #[cfg_attr(feature = "schema", schema(value_type = Vec<Object>))]
    pub logs: Value,
    /// The job that enqueued this one.
    pub parent_id: Option<Uuid>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it runs (or last ran).
    pub run_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A page of jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct JobPage {
    /// The jobs, newest first (payloads, results and logs left out: see `GET /v1/jobs/{id}`).
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// `GET /v1/jobs` and `GET /v1/dead` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "schema", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Jobs in this state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Jobs of this queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Jobs of this handler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Page size: default 100, at most 1000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// (admin) The tenant to act for; read by the `Scope` extractor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// A job as it stands after cancel or retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct StateView {
    /// The job id.
    pub id: Uuid,
    /// Its state now.
    pub state: String,
}
