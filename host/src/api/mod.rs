//! The HTTP API (DESIGN.md, "HTTP API (v1)"): tenants, handlers, jobs, the dead-letter queue,
//! queue statistics, health, metrics and the dashboard, on axum.
//!
//! Every handler answers JSON or, for any 4xx/5xx, `application/problem+json` ([`ApiError`]).
//! Callers authenticate with a bearer token ([`auth`]): the admin token, or a tenant's.

mod alerts;
mod auth;
mod dashboard;
mod dead;
pub mod error;
mod handlers;
mod health;
mod jobs;
mod openapi;
mod queues;
mod quota;
mod tenants;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::{hash_token, new_token};
pub use error::{ApiError, ApiResult};
pub use openapi::ApiDoc;

use crate::metrics::Metrics;
use crate::quota::Quotas;
use crate::runtime::Runtime;
use crate::store::Store;

/// How the API behaves.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The admin token: manages tenants, and acts as any tenant with `?tenant=NAME`.
    pub admin_token: String,
    /// The largest JSON body any endpoint reads (a 10,000-job batch), in bytes.
    pub max_json_bytes: usize,
    /// How long a tenant's token, limits and queued-job count are cached by this process.
    pub cache_ttl: Duration,
    /// The health of the worker in this process, if any: `/readyz` answers 503 while its
    /// group commit has been failing for 10 s or more.
    pub worker_health: Option<crate::worker::Health>,
    /// The tenants' enqueue quotas, shared with the worker in this process (which holds
    /// follow-up jobs to them too); `None` makes the API's own.
    pub quotas: Option<Arc<Quotas>>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            admin_token: String::new(),
            max_json_bytes: 64 << 20,
            cache_ttl: Duration::from_secs(2),
            worker_health: None,
            quotas: None,
        }
    }
}

/// What every request handler shares.
pub struct AppState {
    /// The database.
    pub store: Store,
    /// The sandbox runtime, for validating and compiling uploads.
    pub runtime: Arc<Runtime>,
    /// The metrics registry `/metrics` renders.
    pub metrics: Arc<Metrics>,
    /// The configuration.
    pub config: ApiConfig,
    tokens: auth::TokenCache,
    quotas: Arc<Quotas>,
    handlers: quota::KnownHandlers,
}

impl AppState {
    /// Returns the shared state for a router.
    pub fn new(
        store: Store,
        runtime: Arc<Runtime>,
        metrics: Arc<Metrics>,
        config: ApiConfig,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            tokens: auth::TokenCache::new(config.cache_ttl),
            quotas: config
                .quotas
                .clone()
                .unwrap_or_else(|| Arc::new(Quotas::new(config.cache_ttl))),
            handlers: quota::KnownHandlers::new(config.cache_ttl),
            store,
            runtime,
            metrics,
            config,
        })
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

/// The shared state, as axum extracts it.
pub type State = axum::extract::State<Arc<AppState>>;

/// Returns the router serving every endpoint.
pub fn router(state: Arc<AppState>) -> Router {
    let max_json = state.config.max_json_bytes;
    let v1 = Router::new()
        .route("/tenants", post(tenants::create).get(tenants::list))
        .route("/tenants/{name}", axum::routing::patch(tenants::update))
        .route(
            "/tenants/{name}/tokens",
            post(tenants::token_create).get(tenants::token_list),
        )
        .route(
            "/tenants/{name}/tokens/{id}",
            axum::routing::delete(tenants::token_revoke),
        )
        .route("/handlers", get(handlers::list))
        .route(
            "/handlers/{name}",
            get(handlers::show)
                .put(handlers::upload)
                .delete(handlers::delete)
                // Uploads are bounded by the tenant's component limit as they are read.
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/jobs", post(jobs::enqueue).get(jobs::list))
        .route("/jobs/batch", post(jobs::enqueue_batch))
        .route("/jobs/{id}", get(jobs::show))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/dead", get(dead::list))
        .route("/dead/retry", post(dead::retry))
        .route("/dead/discard", post(dead::discard))
        .route("/queues", get(queues::list))
        .route("/alerts", get(alerts::list))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { ApiError::not_found("no such endpoint") });
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(max_json))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                axum::response::IntoResponse::into_response(ApiError::internal(
                    "a request handler panicked",
                ))
            },
        ))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then finishes the requests in
/// flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
