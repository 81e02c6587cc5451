//! Spool served in-process on loopback: the real router, a real worker and maintenance, over
//! a test database, for tests that talk HTTP.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use spool::api::{self, ApiConfig, AppState};
use spool::maintenance::MaintenanceConfig;
use spool::metrics::Metrics;
use spool::runtime::Runtime;
use spool_client::Client;
use spool_client::types::{CreateTenant, JobView, TenantLimitSpec};

use crate::background::{self, Background};
use crate::db::{TestDb, test_db};
use crate::{component, test_runtime};

/// The admin token every test server uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789-0123456789";

/// A running server.
pub struct TestServer {
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its database.
    pub db: TestDb,
    /// Its metrics registry.
    pub metrics: Arc<Metrics>,
    /// An HTTP client.
    pub http: reqwest::Client,
    background: Background,
}

/// The queues a test server's worker works.
pub const WORKED_QUEUES: [&str; 2] = ["default", "other"];

/// What to run besides the API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Run a worker (and maintenance) so that jobs actually run.
    pub worker: bool,
}

impl TestServer {
    /// Starts the API (and, with `options.worker`, a worker working [`WORKED_QUEUES`] and
    /// maintenance folding counters every 100 ms) on a fresh database.
    pub async fn start(options: Options) -> TestServer {
        let worker = options.worker.then(|| background::Config {
            queues: WORKED_QUEUES.iter().map(|q| q.to_string()).collect(),
            maintenance: Some(MaintenanceConfig {
                fold_interval: Duration::from_millis(100),
                ..background::maintenance()
            }),
            ..background::Config::default()
        });
        TestServer::start_with(worker).await
    }

    /// Starts the API and, given a `worker` config, a worker (reporting to the server's
    /// metrics) and the maintenance it asks for, on a fresh database.
    pub async fn start_with(worker: Option<background::Config>) -> TestServer {
        TestServer::start_configured(worker, ApiConfig::default(), test_runtime()).await
    }

    /// Starts the API alone with `config` (its admin token set to [`ADMIN_TOKEN`]) on a
    /// fresh database: for tests of the API's own bounds (timeouts, throttles).
    pub async fn start_api(config: ApiConfig) -> TestServer {
        TestServer::start_configured(None, config, test_runtime()).await
    }

    /// Starts the API alone with `config` and `runtime` (a compiler process, its limits) on a
    /// fresh database.
    pub async fn start_api_on(config: ApiConfig, runtime: Arc<Runtime>) -> TestServer {
        TestServer::start_configured(None, config, runtime).await
    }

    /// Starts the API with `config` and, given a `worker` config, a worker, on `runtime`.
    async fn start_configured(
        worker: Option<background::Config>,
        config: ApiConfig,
        runtime: Arc<Runtime>,
    ) -> TestServer {
        let db = test_db().await;
        let metrics = Arc::new(Metrics::new());
        let mut background = Background::default();
        let worker_health = worker.map(|config| {
            let config = background::Config {
                metrics: Some(metrics.clone()),
                ..config
            };
            background.worker(&db.store, runtime.clone(), config)
        });
        let state = AppState::new(
            db.store.clone(),
            runtime.clone(),
            metrics.clone(),
            ApiConfig {
                admin_token: ADMIN_TOKEN.into(),
                worker_health,
                ..config
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        background.spawn(|shutdown| async move {
            api::serve(listener, api::router(state), shutdown)
                .await
                .expect("serving");
        });
        TestServer {
            url,
            db,
            metrics,
            http: reqwest::Client::new(),
            background,
        }
    }

    /// Returns a client of this server's API with `token`.
    pub fn client(&self, token: &str) -> Client {
        Client::new(self.url.parse().expect("the server's URL"), token).expect("a client")
    }

    /// Returns a client of this server's API with the admin token.
    pub fn admin(&self) -> Client {
        self.client(ADMIN_TOKEN)
    }

    /// Sends a request with `token` and returns the status and the body as JSON (`Null` when
    /// empty or not JSON): for tests of status codes and problem documents.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("a body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Creates a tenant with `limits` (a `TenantLimitSpec` as JSON) and returns its token.
    pub async fn tenant(&self, name: &str, limits: Value) -> String {
        let limits: TenantLimitSpec =
            serde_json::from_value(limits).expect("limits a tenant may be given");
        let tenant = CreateTenant {
            name: name.into(),
            limits,
            allowed_hosts: Vec::new(),
        };
        let created = self
            .admin()
            .tenant_create(&tenant)
            .await
            .unwrap_or_else(|e| panic!("creating tenant {name}: {e}"));
        created.token.expect("a token")
    }

    /// Uploads the built component `crate_name` as handler `name`; returns status and body.
    pub async fn upload(&self, token: &str, name: &str, crate_name: &str) -> (u16, Value) {
        self.upload_bytes(token, name, component(crate_name)).await
    }

    /// Uploads `bytes` as handler `name`; returns status and body (a handler, or a problem).
    pub async fn upload_bytes(&self, token: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
        let len = bytes.len() as u64;
        let reply = self
            .client(token)
            .handler_upload(name, bytes, len)
            .raw()
            .await
            .expect("the server answers");
        (
            reply.status.as_u16(),
            serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
        )
    }

    /// Polls `GET /v1/jobs/{id}` until `done` holds for it, or panics after `within`.
    pub async fn wait_job(
        &self,
        token: &str,
        id: &str,
        within: Duration,
        done: impl Fn(&JobView) -> bool,
    ) -> JobView {
        let client = self.client(token);
        crate::eventually(&format!("job {id} gets there"), within, || {
            let (client, done) = (&client, &done);
            async move {
                let job = client
                    .job_get(id)
                    .await
                    .unwrap_or_else(|e| panic!("reading job {id}: {e}"));
                if done(&job) {
                    Ok(job)
                } else {
                    Err(serde_json::json!(job))
                }
            }
        })
        .await
    }

    /// Stops the server and its worker.
    ///
    /// # Panics
    ///
    /// When one of them panicked.
    pub async fn stop(self) {
        self.background.stop().await;
    }
}
