//! Liveness, readiness and the Prometheus endpoint.

use axum::Json;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, State};

/// `GET /healthz`: the process answers.
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// How long a worker's commits may fail before its node reports itself unready.
const COMMITS_STUCK: std::time::Duration = std::time::Duration::from_secs(10);

/// `GET /readyz`: the database answers, every migration is applied, and this node's worker
/// (if it runs one) gets its outcomes committed.
pub async fn ready(state: State) -> ApiResult<Json<Value>> {
    if let Some(health) = &state.config.worker_health
        && health.commits_stuck(COMMITS_STUCK)
    {
        return Err(ApiError::unavailable(
            "this node's worker cannot commit outcomes: its group commit has been failing",
        ));
    }
    match state.store.ready().await {
        Ok(true) => Ok(Json(json!({ "status": "ready" }))),
        Ok(false) => Err(ApiError::unavailable(
            "the database schema is behind: run `spool migrate`",
        )),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::unavailable("the database is unreachable"))
        }
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: State) -> impl IntoResponse {
    let body = state.metrics.render(&state.store).await;
    (
        [(header::CONTENT_TYPE, crate::metrics::Metrics::CONTENT_TYPE)],
        body,
    )
}
