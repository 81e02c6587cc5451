//! The HTTP API (README, "The HTTP API"; `/v1/openapi.json`): tenants, handlers, jobs,
//! schedules, the dead-letter queue, queue statistics, health, metrics and the dashboard, on
//! axum.
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
mod schedules;
mod tenants;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};

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
    /// The largest JSON body any endpoint reads (a 10,000-job batch), in bytes. Default
    /// 64 MiB. Other endpoints read less: [`SMALL_JSON_BYTES`], or for `POST /v1/jobs` what
    /// the tenant's largest payload needs.
    pub max_json_bytes: usize,
    /// How long a request may take, its body read included. Default 30 s.
    pub request_timeout: Duration,
    /// How long an upload may take (its body, validating and compiling it). Default 5 min.
    pub upload_timeout: Duration,
    /// Requests served at once; past it, requests are refused with 503. Default 512.
    pub max_requests: usize,
    /// Requests with large bodies (uploads and batches) served at once; more wait their
    /// turn, within their timeout. Default 8.
    pub max_large_requests: usize,
    /// Failed authentications a client address may make per minute (as a burst, then
    /// evenly); past it, 429. Default 60.
    pub auth_failures_per_minute: u32,
    /// How long a tenant's token, limits and queued-job count are cached by this process.
    pub cache_ttl: Duration,
    /// The health of the worker in this process, if any: `/readyz` answers 503 while its
    /// group commit has been failing for 10 s or more.
    pub worker_health: Option<crate::worker::Health>,
    /// The tenants' enqueue quotas, shared with the worker in this process (which holds
    /// follow-up jobs to them too); `None` makes the API's own.
    pub quotas: Option<Arc<Quotas>>,
    /// Handler uploads each tenant may make per minute, per API process (as a burst, then
    /// evenly); past it, 429. Every upload counts, a new version or not. Default 10.
    pub uploads_per_minute: u32,
    /// Versions of a handler kept when an upload makes a new one: older versions are deleted,
    /// except those a pending job is pinned to. At least 2. Default 10.
    pub handler_versions_kept: u32,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            admin_token: String::new(),
            max_json_bytes: 64 << 20,
            request_timeout: Duration::from_secs(30),
            upload_timeout: Duration::from_secs(300),
            max_requests: 512,
            max_large_requests: 8,
            auth_failures_per_minute: 60,
            cache_ttl: Duration::from_secs(2),
            worker_health: None,
            quotas: None,
            uploads_per_minute: 10,
            handler_versions_kept: 10,
        }
    }
}

/// The largest JSON body of the endpoints that take small ones (tenants, dead-letter
/// selections of up to 10,000 ids), in bytes.
pub const SMALL_JSON_BYTES: usize = 1 << 20;

/// What every request handler shares.
pub struct AppState {
    /// The database, through its bounded pool ([`Store::bounded`]): no statement of a
    /// request runs longer than the store's statement timeout.
    pub store: Store,
    /// The sandbox runtime, for validating and compiling uploads.
    pub runtime: Arc<Runtime>,
    /// The metrics registry `/metrics` renders.
    pub metrics: Arc<Metrics>,
    /// The configuration.
    pub config: ApiConfig,
    tokens: auth::TokenCache,
    auth: auth::AuthGuard,
    quotas: Arc<Quotas>,
    handlers: quota::KnownHandlers,
    uploads: handlers::UploadLimiter,
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
            auth: auth::AuthGuard::new(config.auth_failures_per_minute),
            quotas: config
                .quotas
                .clone()
                .unwrap_or_else(|| Arc::new(Quotas::new(config.cache_ttl))),
            handlers: quota::KnownHandlers::new(config.cache_ttl),
            uploads: handlers::UploadLimiter::new(config.uploads_per_minute),
            store: store.bounded(),
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

/// Answers a request its route's middleware refused: it took too long, or the server is
/// serving as many as it may.
async fn refused(e: BoxError) -> ApiError {
    if e.is::<tower::timeout::error::Elapsed>() {
        ApiError::timeout("the request took too long (its body, or answering it)")
    } else if e.is::<tower::load_shed::error::Overloaded>() {
        ApiError::unavailable("the server is serving as many requests as it may; retry")
            .with_retry_after(Duration::from_secs(1))
    } else {
        ApiError::internal(e)
    }
}

/// Returns the router serving every endpoint.
///
/// Every request is bounded: at most [`ApiConfig::max_requests`] at once, each within
/// [`ApiConfig::request_timeout`] (uploads [`ApiConfig::upload_timeout`]), with a body no
/// larger than its endpoint takes; uploads and batches, whose bodies are large, at most
/// [`ApiConfig::max_large_requests`] at once.
pub fn router(state: Arc<AppState>) -> Router {
    let config = &state.config;
    let timeout = |limit: Duration| {
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(refused))
            .timeout(limit)
    };
    let large = GlobalConcurrencyLimitLayer::new(config.max_large_requests.max(1));
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
        // Reads its body itself, bounded by the tenant's largest payload.
        .route("/jobs", post(jobs::enqueue).get(jobs::list))
        .route(
            "/jobs/batch",
            post(jobs::enqueue_batch).layer(
                ServiceBuilder::new()
                    .layer(large.clone())
                    .layer(DefaultBodyLimit::max(config.max_json_bytes)),
            ),
        )
        .route("/jobs/{id}", get(jobs::show))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/jobs/{id}/retry", post(jobs::retry))
        .route("/dead", get(dead::list))
        .route("/dead/retry", post(dead::retry))
        .route("/dead/discard", post(dead::discard))
        .route("/queues", get(queues::list))
        .route("/alerts", get(alerts::list))
        .route("/schedules", post(schedules::create).get(schedules::list))
        .route(
            "/schedules/{name}",
            get(schedules::show)
                .put(schedules::put)
                .patch(schedules::update)
                .delete(schedules::delete),
        )
        .route("/openapi.json", get(openapi::document))
        .layer(DefaultBodyLimit::max(SMALL_JSON_BYTES))
        .layer(timeout(config.request_timeout))
        .route(
            "/handlers/{name}",
            get(handlers::show)
                .delete(handlers::delete)
                .layer(timeout(config.request_timeout))
                .merge(
                    axum::routing::put(handlers::upload).layer(
                        timeout(config.upload_timeout)
                            .layer(large)
                            // Uploads are bounded by the tenant's component limit as they
                            // are read.
                            .layer(DefaultBodyLimit::disable()),
                    ),
                ),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") });
    Router::new()
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .merge(dashboard::routes())
        .layer(timeout(config.request_timeout))
        // After the layer above: /v1 has its own timeouts (uploads a longer one).
        .nest("/v1", v1)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(refused))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(config.max_requests.max(1))),
        )
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
/// flight. Each request carries the address it came from (for the authentication throttle).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
