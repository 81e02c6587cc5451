//! `/v1/queues`: statistics per queue, from the counters.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Scope;
use super::{ApiResult, State};

/// The window `completed_per_min` and `failed_per_min` average over.
const RATE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// One queue's statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    /// The queue name.
    pub name: String,
    /// Jobs per state.
    #[schema(value_type = Object)]
    pub counts: BTreeMap<String, i64>,
    /// How long the oldest available job has waited since it became runnable.
    pub oldest_available_age_ms: Option<u64>,
    /// Jobs completed per minute, over the last five minutes.
    pub completed_per_min: f64,
    /// Attempts failed per minute, over the last five minutes.
    pub failed_per_min: f64,
}

/// `GET /v1/queues`.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    /// The tenant's queues, by name.
    pub queues: Vec<QueueView>,
}

/// Statistics per queue: jobs per state, the oldest available job's age, throughput.
#[utoipa::path(get, path = "/v1/queues", tag = "queues",
    responses((status = 200, body = QueueList)), security(("bearer" = [])))]
pub async fn list(state: State, Scope(tenant): Scope) -> ApiResult<Json<QueueList>> {
    let stats = state
        .store
        .queue_stats(Some(tenant.id), RATE_WINDOW)
        .await?;
    Ok(Json(QueueList {
        queues: stats
            .into_iter()
            .map(|q| QueueView {
                completed_per_min: q.completed_per_min(),
                failed_per_min: q.failed_per_min(),
                oldest_available_age_ms: q
                    .oldest_available_age
                    .map(|d| d.as_millis().min(u64::MAX as u128) as u64),
                counts: q
                    .counts
                    .iter()
                    .map(|(s, n)| (s.as_str().to_string(), *n))
                    .collect(),
                name: q.queue,
            })
            .collect(),
    }))
}
