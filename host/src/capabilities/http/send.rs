//! Sending one request: the checks in order, then connect, TLS and one HTTP/1.1 exchange.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http::header::HeaderValue;
use http::{Method, Uri};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::body::{self, RequestBody, ResponseBody};
use super::guard::{self, Verdict};
use super::record::{Outcome, Pending};
use super::{HttpLimits, Policy};
use crate::capabilities::store::effect_key;
use crate::model::allow_list::{HostError, Scheme, normalize_host};

/// The header that carries the automatic key.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Why a request did not get a response: how the log and metrics count it, what the log
/// says, and the `wasi:http` error the guest gets.
struct Refusal {
    outcome: Outcome,
    reason: String,
    error: Error,
}

impl Refusal {
    fn new(outcome: Outcome, reason: impl Into<String>, error: Error) -> Refusal {
        Refusal {
            outcome,
            reason: reason.into(),
            error,
        }
    }
}

type Response = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// Sends `request`, the attempt's `ordinal`-th, under `policy`, recording it in `call`.
pub(super) async fn send(
    policy: Arc<Policy>,
    ordinal: u32,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    mut call: Pending,
) -> Result<Response, Error> {
    let limits = policy.limits.clamped(options.as_ref());
    if ordinal > policy.limits.max_requests {
        let reason = format!(
            "this attempt already made its {} requests (max_http_requests)",
            policy.limits.max_requests
        );
        return refuse(
            request,
            call,
            Refusal::new(Outcome::Limit, reason, Error::ConnectionLimitReached),
        )
        .await;
    }
    let target = match check_origin(&policy, request.uri()) {
        Ok(target) => target,
        Err(refusal) => return refuse(request, call, refusal).await,
    };
    call.allowed(target.label.clone());
    let mut request = request;
    if let Some(key) = add_idempotency_key(&policy, ordinal, &mut request) {
        call.keyed(key);
    }
    if let Some(length) = content_length(request.headers())
        && length > limits.max_request_bytes
    {
        let reason = format!(
            "the request body is {length} bytes, over the {}-byte limit (max_http_request_bytes)",
            limits.max_request_bytes
        );
        let refusal = Refusal::new(
            Outcome::Limit,
            reason,
            Error::HttpRequestBodySize(Some(length)),
        );
        return refuse(request, call, refusal).await;
    }
    match exchange(&policy, &target, request, limits).await {
        Ok((response, driver)) => {
            call.responded(response.status().as_u16());
            let (parts, incoming) = response.into_parts();
            if let Some(length) = content_length(&parts.headers)
                && length > limits.max_response_bytes
            {
                let reason = format!(
                    "the response body is {length} bytes, over the {}-byte limit \
                     (max_http_response_bytes)",
                    limits.max_response_bytes
                );
                call.finish(Outcome::Limit, 0, Some(&reason));
                return Err(Error::HttpResponseBodySize(Some(length)));
            }
            let body = ResponseBody::new(
                incoming,
                limits.max_response_bytes,
                limits.between_bytes,
                call,
            );
            let response = http::Response::from_parts(parts, body.boxed_unsync());
            // wasmtime keeps this with the response: dropping it stops the connection.
            let io = async move {
                driver.await;
                Ok(())
            };
            Ok((response, Box::new(io)))
        }
        Err(refusal) => {
            call.finish(refusal.outcome, 0, Some(&refusal.reason));
            Err(refusal.error)
        }
    }
}

/// Records `refusal` and answers it, after reading some of the body (see [`body::drain`]).
async fn refuse(
    request: http::Request<WasiBody>,
    mut call: Pending,
    refusal: Refusal,
) -> Result<Response, Error> {
    call.finish(refusal.outcome, 0, Some(&refusal.reason));
    body::drain(request.into_body()).await;
    Err(refusal.error)
}

/// Where a request that passed the allow-list goes.
struct Target {
    scheme: Scheme,
    /// The normalised host name: what is resolved and what TLS checks.
    host: String,
    port: u16,
    /// The allow-list entry's label, for metrics.
    label: String,
}

/// Checks the request's origin against the tenant's allow-list.
fn check_origin(policy: &Policy, uri: &Uri) -> Result<Target, Refusal> {
    let denied = |reason: String| Refusal::new(Outcome::Denied, reason, Error::HttpRequestDenied);
    let scheme = uri
        .scheme_str()
        .and_then(Scheme::parse)
        .ok_or_else(|| denied("only http and https requests are allowed".into()))?;
    // The host, not the raw authority: no userinfo.
    let raw = uri.host().unwrap_or_default();
    let host = match normalize_host(raw.trim_start_matches('[').trim_end_matches(']')) {
        Ok(host) => host,
        Err(HostError::IpLiteral) => {
            return Err(denied(format!(
                "{raw} is an IP address: requests must name a host on the tenant's allow-list"
            )));
        }
        Err(HostError::NotAName) => return Err(denied(format!("{raw:?} is not a host name"))),
    };
    let port = uri.port_u16().unwrap_or(scheme.default_port());
    match policy.allow.find(scheme, &host, port) {
        Some(entry) => Ok(Target {
            label: entry.label(),
            scheme,
            host,
            port,
        }),
        None => Err(denied(format!(
            "{scheme}://{host}:{port} is not on the tenant's allow-list"
        ))),
    }
}

/// Sets the automatic `Idempotency-Key` on a request other than GET/HEAD that has none, and
/// returns the key the request carries, if any.
fn add_idempotency_key(
    policy: &Policy,
    ordinal: u32,
    request: &mut http::Request<WasiBody>,
) -> Option<String> {
    if let Some(value) = request.headers().get(IDEMPOTENCY_KEY) {
        return Some(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let key = effect_key(
        &policy.tenant,
        &policy.idempotency_key,
        &format!("http/{ordinal}"),
    );
    let value = HeaderValue::from_str(&key).expect("an effect key is ASCII");
    request.headers_mut().insert(IDEMPOTENCY_KEY, value);
    Some(key)
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Resolves, checks, connects (TLS for https) and exchanges the request, all within the
/// connect and first-byte timeouts.
async fn exchange(
    policy: &Policy,
    target: &Target,
    request: http::Request<WasiBody>,
    limits: HttpLimits,
) -> Result<Exchanged, Refusal> {
    let tls = target.scheme == Scheme::Https;
    let connecting = async {
        let addrs = resolve(&target.host, target.port).await?;
        let addrs = admitted(policy, &target.host, &addrs, tls)?;
        let tcp = connect(&addrs).await?;
        Ok::<_, Refusal>(tcp)
    };
    let tcp = tokio::time::timeout(limits.connect, connecting)
        .await
        .map_err(|_| {
            Refusal::new(
                Outcome::Timeout,
                format!(
                    "connecting took longer than {} ms (connect timeout)",
                    limits.connect.as_millis()
                ),
                Error::ConnectionTimeout,
            )
        })??;
    if tls {
        let name = rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|e| {
            Refusal::new(
                Outcome::Error,
                format!("{}: {e}", target.host),
                Error::HttpRequestUriInvalid,
            )
        })?;
        let connector = tokio_rustls::TlsConnector::from(policy.config.tls.clone());
        let stream = tokio::time::timeout(limits.connect, connector.connect(name, tcp))
            .await
            .map_err(|_| {
                Refusal::new(
                    Outcome::Timeout,
                    "the TLS handshake took longer than the connect timeout",
                    Error::ConnectionTimeout,
                )
            })?
            .map_err(|e| {
                Refusal::new(
                    Outcome::Error,
                    format!("TLS with {}: {e}", target.host),
                    Error::TlsProtocolError,
                )
            })?;
        http1(stream, request, limits).await
    } else {
        http1(tcp, request, limits).await
    }
}

/// Resolves `host` once (the addresses are then checked and connected to as they are).
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refusal> {
    let found = tokio::net::lookup_host((host, port)).await.map_err(|e| {
        Refusal::new(
            Outcome::Error,
            format!("looking up {host}: {e}"),
            Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            },
        )
    })?;
    Ok(found.collect())
}

/// Keeps the addresses the SSRF guard admits; refuses when none is left.
fn admitted(
    policy: &Policy,
    host: &str,
    addrs: &[SocketAddr],
    tls: bool,
) -> Result<Vec<SocketAddr>, Refusal> {
    let mut kept = Vec::new();
    let mut refused: Option<(IpAddr, Verdict)> = None;
    for addr in addrs {
        match guard::check(addr.ip(), tls, &policy.config.networks) {
            Verdict::Allowed => kept.push(*addr),
            verdict => refused = refused.or(Some((addr.ip(), verdict))),
        }
    }
    if !kept.is_empty() {
        return Ok(kept);
    }
    let reason = match refused {
        Some((ip, Verdict::Blocked(kind))) => format!(
            "{host} resolves to {ip}, a {} address: blocked (an operator may allow the \
             network with --allow-private-network)",
            kind.describe()
        ),
        Some((ip, _)) => format!(
            "{host} resolves to {ip}, a public address: plain http goes only to networks the \
             operator allows; use https"
        ),
        None => format!("{host} resolves to no address"),
    };
    Err(Refusal::new(
        Outcome::Blocked,
        reason,
        Error::DestinationIpProhibited,
    ))
}

/// Connects to the first of `addrs` that answers.
async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, Refusal> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last = Some((*addr, e)),
        }
    }
    let (addr, e) = last.expect("at least one address");
    let error = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
        _ => Error::DestinationUnavailable,
    };
    Err(Refusal::new(
        Outcome::Error,
        format!("connecting to {addr}: {e}"),
        error,
    ))
}

/// A response, and the task driving its connection.
type Exchanged = (
    http::Response<hyper::body::Incoming>,
    AbortOnDrop<hyper::Result<()>>,
);

/// One HTTP/1.1 exchange on `stream`; the connection is driven by a task that ends with it
/// (or when the response, and with it the sandbox, is dropped).
async fn http1<S>(
    stream: S,
    request: http::Request<WasiBody>,
    limits: HttpLimits,
) -> Result<Exchanged, Refusal>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let over = Arc::new(AtomicBool::new(false));
    let (mut parts, body) = request.into_parts();
    // The connection is to the checked address already: the request line carries the path.
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|p| Uri::from(p.clone()))
        .unwrap_or_else(|| Uri::from_static("/"));
    let request = http::Request::from_parts(
        parts,
        RequestBody::new(body, limits.max_request_bytes, over.clone()),
    );
    let exchange = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| {
                Refusal::new(
                    Outcome::Error,
                    format!("HTTP handshake: {e}"),
                    Error::Hyper(e),
                )
            })?;
        let driver = AbortOnDrop(tokio::spawn(conn));
        let response = sender.send_request(request).await;
        Ok::<_, Refusal>((response, driver))
    };
    let first_byte = limits.first_byte;
    let (response, driver) = tokio::time::timeout(first_byte, exchange)
        .await
        .map_err(|_| {
            Refusal::new(
                Outcome::Timeout,
                format!(
                    "no response headers within {} ms (first-byte timeout)",
                    first_byte.as_millis()
                ),
                Error::HttpResponseTimeout,
            )
        })??;
    match response {
        Ok(response) => Ok((response, driver)),
        Err(_) if over.load(Ordering::Relaxed) => Err(Refusal::new(
            Outcome::Limit,
            format!(
                "the request body passed the {}-byte limit (max_http_request_bytes)",
                limits.max_request_bytes
            ),
            Error::HttpRequestBodySize(Some(limits.max_request_bytes)),
        )),
        Err(e) => Err(Refusal::new(
            Outcome::Error,
            format!("the exchange failed: {e}"),
            Error::Hyper(e),
        )),
    }
}

/// The task driving a connection: stopped when dropped (so when the response is dropped, or
/// the request abandoned before it), else done when the connection is.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
