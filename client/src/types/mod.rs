//! The API's request and response bodies: one definition, which the server answers and reads
//! and this client sends and reads. With the `schema` feature each also derives
//! `utoipa::ToSchema`, for the server's OpenAPI document.

mod dead;
mod handlers;
mod jobs;
mod schedules;
mod tenants;

pub use crate::limits::{LimitSpec, TenantLimitSpec, TenantLimits};
pub use dead::{DeadSelection, Discarded, MAX_PER_CALL, Retried, Sweep};
pub use handlers::{HandlerDetail, HandlerList, HandlerView, VersionView};
pub use jobs::{
    AttemptError, BatchRequest, BatchView, EnqueuedView, JobPage, JobRequest, JobView, ListQuery,
    StateView,
};
pub use schedules::{RunView, ScheduleList, SchedulePatch, ScheduleRequest, ScheduleView};
pub use tenants::{CreateTenant, TenantList, TenantView, TokenList, TokenView, UpdateTenant};
