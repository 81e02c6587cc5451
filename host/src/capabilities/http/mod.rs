//! `wasi:http/outgoing-handler`: handlers call the outside world, contained.
//!
//! The shape of every capability: validated config ([`HttpConfig`], once per runtime; the
//! tenant's [`AllowList`], checked when it is set), per-attempt state ([`HttpState`]), the
//! hook wasmtime-wasi-http calls for each request ([`WasiHttpHooks::send_request`]), and
//! `add_to_linker`. For each request, in order:
//!
//! 1. the attempt's request count ([`Limits::max_http_requests`]);
//! 2. the tenant's allow-list (scheme, host and port; IP literals never match);
//! 3. an `Idempotency-Key` for a request other than GET/HEAD that has none: the job's effect
//!    key for `http/<n>`, `n` the request's ordinal in the attempt, so that a retried attempt
//!    making the same calls sends the same keys (a guest-set header wins);
//! 4. the SSRF guard ([`guard`]): resolve once, keep the addresses that pass, connect to one
//!    of them; TLS with the host name as SNI and the webpki roots;
//! 5. the bounds: connect, first-byte and between-bytes timeouts (the guest's, clamped to the
//!    tenant's caps), request and response body bytes.
//!
//! Every request, refused or not, becomes one line in the job's log (source `http`) and one
//! [`HttpCall`] in the attempt, which the worker turns into metrics. Time spent waiting on
//! HTTP is inside the attempt's wall-clock timeout (a guest blocked in `wasi:io/poll` burns no
//! fuel: the wall clock is what stops it). No connection is pooled: each request connects
//! and is checked anew.

mod body;
pub mod guard;
mod record;
mod send;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpCtx, WasiHttpHooks};

pub use guard::PrivateNetworks;
pub use record::{HttpCall, Outcome};

use crate::capabilities::log::LogState;
use crate::model::{AllowList, JobContext, Limits};

/// The runtime-wide settings of outbound HTTP: the operator's exceptions to the SSRF guard
/// and the TLS client configuration. Built once per [`Runtime`](crate::runtime::Runtime).
#[derive(Clone)]
pub struct HttpConfig {
    networks: Arc<PrivateNetworks>,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("networks", &self.networks)
            .finish_non_exhaustive()
    }
}

impl HttpConfig {
    /// The settings for `networks` (the operator's `--allow-private-network`), with TLS
    /// verified against the webpki roots.
    pub fn new(networks: PrivateNetworks) -> Result<HttpConfig, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // The provider is named: with both ring and aws-lc-rs in the build, rustls cannot
        // choose one by itself and `ClientConfig::builder()` panics.
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpConfig {
            networks: Arc::new(networks),
            tls: Arc::new(tls),
        })
    }
}

/// What one attempt's requests share: who is calling, what it may reach, its bounds.
pub(crate) struct Policy {
    tenant: String,
    idempotency_key: String,
    allow: Arc<AllowList>,
    config: HttpConfig,
    limits: HttpLimits,
}

/// The per-attempt bounds of outbound HTTP, from [`Limits`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    pub(crate) max_requests: u32,
    pub(crate) max_response_bytes: u64,
    pub(crate) max_request_bytes: u64,
    pub(crate) connect: Duration,
    pub(crate) first_byte: Duration,
    pub(crate) between_bytes: Duration,
}

impl HttpLimits {
    fn of(limits: &Limits) -> HttpLimits {
        HttpLimits {
            max_requests: limits.max_http_requests,
            max_response_bytes: limits.max_http_response_bytes,
            max_request_bytes: limits.max_http_request_bytes,
            connect: limits.http_connect_timeout,
            first_byte: limits.http_first_byte_timeout,
            between_bytes: limits.http_between_bytes_timeout,
        }
    }

    /// These bounds with the guest's timeouts applied: a guest may ask for less, never more.
    fn clamped(mut self, options: Option<&RequestOptions>) -> HttpLimits {
        if let Some(o) = options {
            let clamp = |asked: Option<Duration>, cap: Duration| asked.map_or(cap, |d| d.min(cap));
            self.connect = clamp(o.connect_timeout, self.connect);
            self.first_byte = clamp(o.first_byte_timeout, self.first_byte);
            self.between_bytes = clamp(o.between_bytes_timeout, self.between_bytes);
        }
        self
    }
}

/// The per-attempt state of outbound HTTP.
pub struct HttpState {
    pub(crate) ctx: WasiHttpCtx,
    pub(crate) hooks: HttpHooks,
}

impl HttpState {
    /// Returns the state for one attempt of `job` by a tenant allowing `allow`, logging into
    /// `log`.
    pub fn new(
        config: &HttpConfig,
        job: &JobContext,
        allow: Arc<AllowList>,
        limits: &Limits,
        log: &LogState,
    ) -> HttpState {
        HttpState {
            ctx: WasiHttpCtx::new(),
            hooks: HttpHooks {
                policy: Arc::new(Policy {
                    tenant: job.tenant.clone(),
                    idempotency_key: job.idempotency_key.clone(),
                    allow,
                    config: config.clone(),
                    limits: HttpLimits::of(limits),
                }),
                sent: 0,
                log: log.clone(),
                calls: Arc::default(),
            },
        }
    }

    /// Returns a handle on the attempt's record of requests, complete once the sandbox (and
    /// with it every response body) is dropped.
    pub fn calls(&self) -> Arc<Mutex<Vec<HttpCall>>> {
        self.hooks.calls.clone()
    }
}

/// The hooks wasmtime-wasi-http calls; kept apart from the context it borrows beside them.
pub struct HttpHooks {
    policy: Arc<Policy>,
    /// Requests made so far in this attempt, refused ones included.
    sent: u32,
    log: LogState,
    calls: Arc<Mutex<Vec<HttpCall>>>,
}

type Exchange = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                ),
                wasmtime_wasi_http::Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Exchange {
        // Called synchronously by `handle`: the count needs no lock.
        self.sent = self.sent.saturating_add(1);
        let call = record::Pending::start(&request, self.log.clone(), self.calls.clone());
        Box::new(send::send(
            self.policy.clone(),
            self.sent,
            request,
            options,
            call,
        ))
    }
}

/// Adds `wasi:http/outgoing-handler` and `wasi:http/types` (0.2.x) to `linker`.
pub fn add_to_linker<T: wasmtime_wasi_http::WasiHttpView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}
