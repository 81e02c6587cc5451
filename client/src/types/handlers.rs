//! `/v1/handlers`: a handler's versions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A handler's current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct HandlerView {
    /// The handler name.
    pub name: String,
    /// The current version, from 1.
    pub version: i32,
    /// The component's SHA-256, hex.
    pub digest: String,
    /// The component's size in bytes.
    pub size: i64,
    /// When the current version was uploaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// `GET /v1/handlers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct HandlerList {
    /// The tenant's handlers, by name.
    pub handlers: Vec<HandlerView>,
}

/// One stored version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct VersionView {
    /// The version number.
    pub version: i32,
    /// Its digest.
    pub digest: String,
    /// Its size in bytes.
    pub size: i64,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/handlers/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct HandlerDetail {
    /// The current version.
    #[serde(flatten)]
    pub current: HandlerView,
    /// Every version, newest first.
    pub versions: Vec<VersionView>,
}
