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

/// `GET /readyz`: the database answers and every migration is applied.
pub async fn ready(state: State) -> ApiResult<Json<Value>> {
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
