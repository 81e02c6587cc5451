//! `/v1/dead`: redriving or discarding dead jobs in bulk (the listing is a
//! [`JobPage`](super::JobPage)).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::limits::TenantLimits;

/// The most dead jobs one `POST /v1/dead/retry` or `/discard` by filter takes: past it the
/// answer says so (`more`, `next_cursor`), and the caller asks again.
pub const MAX_PER_CALL: usize = TenantLimits::MAX_BATCH;

/// `POST /v1/dead/retry` and `POST /v1/dead/discard`: ids, or a filter (nothing: all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeadSelection {
    /// These dead jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<Uuid>>,
    /// Dead jobs of this handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Dead jobs of this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// With a filter: continue a sweep where the previous answer's `next_cursor` left it
    /// (dead jobs older than it), so that a job requeued and dead again meanwhile is not
    /// taken twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Uuid>,
}

/// How far a by-filter call got: at most [`MAX_PER_CALL`] dead jobs a call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Sweep {
    /// More dead jobs match the filter: call again with `cursor` set to `next_cursor`.
    pub more: bool,
    /// Where the next call continues; null when none are left (and for ids).
    pub next_cursor: Option<Uuid>,
}

/// `POST /v1/dead/retry`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Retried {
    /// Jobs requeued.
    pub retried: u64,
    /// How far a by-filter call got.
    #[serde(flatten)]
    pub sweep: Sweep,
}

/// `POST /v1/dead/discard`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Discarded {
    /// Jobs deleted.
    pub discarded: u64,
    /// How far a by-filter call got.
    #[serde(flatten)]
    pub sweep: Sweep,
}
