//! The demo's fake vendors, a payment provider and a shipping API: on loopback, flaky on
//! purpose, deduplicating by `Idempotency-Key` as real providers do.
//!
//! `POST /v1/charges` (or `/v1/shipments`) with `{"order_id", ...}`. Of every seven requests
//! (every eleven for shipping) that do not repeat a key already served, one answers 503
//! (nothing done), one does the work and then answers only after 3 s (the handler has given
//! up by then: a timeout, yet done), and one does the work and then drops the connection
//! mid-answer (the response is lost). A request whose key was already served gets the same
//! answer back and nothing is done again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

/// What the provider saw.
#[derive(Debug, Default, Clone)]
pub(super) struct Ledger {
    /// Requests received.
    pub(super) requests: u64,
    /// What was done (charges, shipments) by idempotency key: the order and the id.
    pub(super) charges: HashMap<String, (String, String)>,
    /// Distinct idempotency keys received.
    pub(super) keys: std::collections::HashSet<String>,
    /// Requests without an idempotency key.
    pub(super) unkeyed: u64,
    /// Requests answered 503, charging nothing.
    pub(super) unavailable: u64,
    /// Charges answered past the handler's timeout.
    pub(super) slow: u64,
    /// Charges whose answer was dropped.
    pub(super) dropped: u64,
    /// Retries of a charge already made, answered with it.
    pub(super) replayed: u64,
}

impl Ledger {
    /// How many times each order was charged (or shipped).
    pub(super) fn charges_per_order(&self) -> HashMap<String, u32> {
        let mut per = HashMap::new();
        for (order, _) in self.charges.values() {
            *per.entry(order.clone()).or_insert(0) += 1;
        }
        per
    }
}

/// What a vendor does and how flaky it is.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kind {
    /// The route it serves.
    route: &'static str,
    /// The prefix of the ids it hands out.
    prefix: &'static str,
    /// One in how many new requests fails each way.
    period: u64,
}

/// The payment provider: `POST /v1/charges`, one in seven requests failing each way.
pub(super) const PAYMENTS: Kind = Kind {
    route: "/v1/charges",
    prefix: "ch",
    period: 7,
};

/// The shipping API: `POST /v1/shipments`, one in eleven failing each way.
pub(super) const SHIPPING: Kind = Kind {
    route: "/v1/shipments",
    prefix: "shp",
    period: 11,
};

/// A running vendor.
pub(super) struct Provider {
    pub(super) addr: SocketAddr,
    ledger: Arc<Mutex<Ledger>>,
    task: tokio::task::JoinHandle<()>,
}

impl Provider {
    /// Starts a vendor of `kind` on `127.0.0.1:0`.
    pub(super) async fn start(kind: Kind) -> anyhow::Result<Provider> {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let app = Router::new()
            .route(kind.route, post(charge))
            .with_state((kind, ledger.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Provider { addr, ledger, task })
    }

    /// What it saw so far.
    pub(super) fn ledger(&self) -> Ledger {
        self.ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn charge(
    State((kind, ledger)): State<(Kind, Arc<Mutex<Ledger>>)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let order: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let order_id = order["order_id"].as_str().unwrap_or("?").to_string();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Decide under the lock; answer (and sleep) outside it.
    let (charge_id, fate) = {
        let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
        l.requests += 1;
        let Some(key) = key else {
            l.unkeyed += 1;
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": "Idempotency-Key required"}),
            );
        };
        l.keys.insert(key.clone());
        if let Some((_, id)) = l.charges.get(&key) {
            // A retry of a charge already made: the same charge, no new one.
            let id = id.clone();
            l.replayed += 1;
            (id, Fate::Answer)
        } else {
            let fate = match l.requests % kind.period {
                3 => Fate::Unavailable,
                5 => Fate::Slow,
                6 => Fate::Drop,
                _ => Fate::Answer,
            };
            match fate {
                Fate::Unavailable => l.unavailable += 1,
                Fate::Slow => l.slow += 1,
                Fate::Drop => l.dropped += 1,
                Fate::Answer => {}
            }
            if fate == Fate::Unavailable {
                return answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "try later"}),
                );
            }
            let id = format!("{}_{:06}", kind.prefix, l.charges.len() + 1);
            l.charges.insert(key, (order_id.clone(), id.clone()));
            (id, fate)
        }
    };
    let charged = json!({"id": charge_id, "order_id": order_id});
    match fate {
        Fate::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            answer(StatusCode::OK, charged)
        }
        Fate::Drop => {
            // Charged; the answer dies on the wire: headers, then a body that fails.
            let lost = futures_util::stream::once(async {
                Err::<Bytes, _>(std::io::Error::other("connection dropped"))
            });
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Body::from_stream(lost))
                .unwrap_or_default()
        }
        _ => answer(StatusCode::OK, charged),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Answer,
    Unavailable,
    Slow,
    Drop,
}

fn answer(status: StatusCode, body: Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}
