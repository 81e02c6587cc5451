//! A vendor for outbound-HTTP tests: an HTTP server on loopback that records what it is sent
//! (reading every body to its end before it answers) and can be slow, drip its body, send
//! large bodies or answer any status.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::json;

/// One request as the vendor saw it, body read to its end.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The path, without query.
    pub path: String,
    /// Its `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
    /// Body bytes.
    pub body_len: usize,
}

/// A vendor on `127.0.0.1:0`, recording what it is sent.
pub struct Vendor {
    /// Its port on 127.0.0.1.
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: tokio::task::JoinHandle<()>,
}

/// The query parameters the vendor understands.
#[derive(Default)]
struct Params {
    bytes: usize,
    ms: u64,
    status: u16,
    chunked: bool,
}

impl Params {
    fn of(uri: &Uri) -> Params {
        let mut p = Params::default();
        for pair in uri.query().unwrap_or_default().split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "bytes" => p.bytes = value.parse().unwrap(),
                "ms" => p.ms = value.parse().unwrap(),
                "status" => p.status = value.parse().unwrap(),
                "chunked" => p.chunked = value == "true",
                _ => {}
            }
        }
        p
    }
}

/// Answers every path: `/slow?ms=` waits before the headers, `/drip?ms=` sends a chunk and
/// then pauses, `/big?bytes=&chunked=` sends that many bytes (with or without a length),
/// `?status=` chooses the status; otherwise 200 with `{"len": n}`. The body is always read
/// to its end first, and the request's `Idempotency-Key` is echoed in
/// `x-seen-idempotency-key`.
async fn vendor_handler(
    State(seen): State<Arc<Mutex<Vec<Seen>>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::of(&uri);
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap_or("?").to_string());
    seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_string(),
        idempotency_key: key.clone(),
        body_len: body.len(),
    });
    let mut response = Response::builder().status(if p.status == 0 { 200 } else { p.status });
    if let Some(key) = &key {
        response = response.header("x-seen-idempotency-key", key);
    }
    let body = match uri.path() {
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(p.ms)).await;
            Body::from("slow")
        }
        "/drip" => Body::from_stream(drip(p.ms)),
        "/big" if p.chunked => Body::from_stream(chunks(p.bytes)),
        "/big" => Body::from(vec![b'y'; p.bytes]),
        _ => Body::from(json!({ "len": body.len() }).to_string()),
    };
    response.body(body).unwrap()
}

/// A body of one chunk, a pause of `ms`, and another chunk.
fn drip(ms: u64) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
    futures_util::stream::unfold(0u8, move |step| async move {
        match step {
            0 => Some((Ok(Bytes::from_static(b"first ")), 1)),
            1 => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Some((Ok(Bytes::from_static(b"second")), 2))
            }
            _ => None,
        }
    })
}

/// `bytes` bytes of `z` in 1 KiB chunks, without a length.
fn chunks(bytes: usize) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
    futures_util::stream::unfold(bytes, |left| async move {
        (left > 0).then(|| {
            let n = left.min(1024);
            (Ok(Bytes::from(vec![b'z'; n])), left - n)
        })
    })
}

impl Vendor {
    /// Starts it on its own port.
    pub async fn start() -> Vendor {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .fallback(vendor_handler)
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Vendor {
            port,
            seen,
            _task: task,
        }
    }

    /// `http://localhost:PORT`, the origin tenants list.
    pub fn origin(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    /// `path` at the vendor, for a guest.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// What it was sent so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
