//! Liveness, readiness and the Prometheus endpoint.

use axum::Json;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::auth::Admin;
use super::{ApiError, ApiResult, State};

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The process answers")))]
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// How long a worker's commits may fail before its node reports itself unready.
const COMMITS_STUCK: std::time::Duration = std::time::Duration::from_secs(10);

/// `GET /readyz`: the database answers, every migration is applied, and this node's worker
/// (if it runs one) gets its outcomes committed.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, description = "Ready to serve"),
              (status = 503, description = "The database is unreachable or behind, or this \
                                            node's worker cannot commit")))]
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

/// `GET /metrics`: Prometheus text format, for the admin token only: it names every tenant,
/// queue and handler. `--metrics-listen` serves it without a token on an address of its own.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "The metrics (OpenMetrics text)",
               content_type = "application/openmetrics-text")))]
pub async fn metrics(state: State, _: Admin) -> impl IntoResponse {
    let body = state.metrics.render(&state.store).await;
    (
        [(header::CONTENT_TYPE, crate::metrics::Metrics::CONTENT_TYPE)],
        body,
    )
}
