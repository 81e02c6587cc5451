//! `spool demo`: an order-fulfilment flow, end to end, over the HTTP API.
//!
//! Starts Spool on the embedded default (a private PostgreSQL under `.spool/` when
//! `DATABASE_URL` is unset), then acts as a shop would: creates a tenant, uploads the
//! `fulfil-order` and `send-receipt` example handlers, enqueues a day's orders in one batch (a
//! few with transient payment failures, one poisoned), enqueues one order twice, and watches
//! until everything settles: retried, fulfilled, receipted, or dead-lettered.
//!
//! The payment provider and the shipping API are real HTTP: fakes on loopback
//! ([`super::demo_vendor`]), flaky on purpose (503s, answers past the handler's timeout,
//! answers lost after the work is done), which dedupe by `Idempotency-Key`. The handler sets
//! no key; Spool's automatic one is the same on every retry, so every order is charged and
//! shipped exactly once however often it is attempted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::StatusCode;
use serde_json::{Value, json};
use spool::api;
use tokio_util::sync::CancellationToken;

use super::demo_vendor::{PAYMENTS, Provider, SHIPPING};
use super::serve::{ServerConfig, connect, run, start_cluster, stop_cluster};

/// Arguments of `spool demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// A PostgreSQL URL to run on instead of the private cluster.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Where the private PostgreSQL cluster lives when there is no DATABASE_URL.
    #[arg(long, env = "SPOOL_DEV_DIR", default_value = ".spool")]
    dir: PathBuf,
    /// Where the example components were built.
    #[arg(long, default_value = "target/wasm32-wasip2/release")]
    components: PathBuf,
    /// How many orders to enqueue.
    #[arg(long, default_value_t = 24)]
    orders: u32,
}

const POISONED: u32 = 13;

fn order(n: u32, vendors: &Vendors) -> Value {
    let mut payload = json!({
        "order_id": format!("A-{n:04}"),
        "amount_cents": 500 + n * 137 % 9000,
        "email": format!("customer{n}@example.com"),
        "provider": vendors.payments_origin(),
        "shipping": vendors.shipping_origin(),
    });
    // Every fifth order's payment provider times out once or twice first.
    if n.is_multiple_of(5) {
        payload["fail_times"] = json!(1 + n % 2);
    }
    if n == POISONED {
        payload["poison"] = json!(true);
    }
    json!({
        "handler": "fulfil-order",
        "payload": payload,
        "idempotency_key": format!("order-A-{n:04}"),
    })
}

/// Runs the demo.
pub async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    ensure!(
        args.orders >= POISONED,
        "--orders must be at least {POISONED}"
    );
    match args.database_url.clone() {
        Some(url) => demo_on(&args, url).await,
        None => {
            let cluster = start_cluster(&args.dir).await?;
            let result = demo_on(&args, cluster.url()).await;
            stop_cluster(cluster).await?;
            result
        }
    }
}

async fn demo_on(args: &DemoArgs, database_url: String) -> anyhow::Result<ExitCode> {
    let (admin_token, _, _) = api::new_token();
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let mut config = ServerConfig::embedded(listen, database_url, admin_token.clone(), Some(8));
    // The fake vendors listen on loopback: the operator's exception to the SSRF guard.
    config.allow_private_networks = vec!["127.0.0.0/8".parse().expect("a network")];
    let store = connect(&config).await?;
    let shutdown = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(run(config, store, shutdown.clone(), move |address| {
        let _ = tx.send(address);
    }));
    let address = match rx.await {
        Ok(address) => address,
        Err(_) => return server.await?,
    };
    let shop = Shop {
        http: reqwest::Client::new(),
        base: format!("http://{address}"),
        token: String::new(),
    };
    let vendors = Vendors {
        payments: Provider::start(PAYMENTS).await?,
        shipping: Provider::start(SHIPPING).await?,
    };
    let result = walk_through(args, shop, &admin_token, &vendors).await;
    shutdown.cancel();
    server.await??;
    result
}

/// The fake vendors the handlers call.
struct Vendors {
    payments: Provider,
    shipping: Provider,
}

impl Vendors {
    /// Tenants name hosts, never addresses: `localhost`, resolved and checked per request.
    fn payments_origin(&self) -> String {
        format!("http://localhost:{}", self.payments.addr.port())
    }

    fn shipping_origin(&self) -> String {
        format!("http://localhost:{}", self.shipping.addr.port())
    }
}

/// The demo's HTTP client: the shop's backend, calling Spool.
struct Shop {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Shop {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<reqwest::Body>,
        json_body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/wasm")
                .body(body);
        }
        if let Some(value) = json_body {
            request = request.json(value);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_client_error() || status.is_server_error() {
            bail!("{path}: {status}: {}", value["detail"]);
        }
        Ok((status, value))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.call(reqwest::Method::GET, path, None, None).await?.1)
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        self.call(reqwest::Method::POST, path, None, Some(body))
            .await
    }

    /// Every job in `state`, following the cursor.
    async fn jobs(&self, state: &str) -> anyhow::Result<Vec<Value>> {
        let mut jobs = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .get(&format!(
                    "/v1/jobs?state={state}&limit=1000&cursor={cursor}"
                ))
                .await?;
            jobs.extend(page["jobs"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => return Ok(jobs),
            }
        }
    }
}

async fn walk_through(
    args: &DemoArgs,
    mut shop: Shop,
    admin_token: &str,
    vendors: &Vendors,
) -> anyhow::Result<ExitCode> {
    let tenant = format!("shop-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    println!(
        "Spool demo: {} is serving; tenant {tenant} runs a day of orders\n",
        shop.base
    );
    shop.token = admin_token.to_string();
    let (_, created) = shop
        .post(
            "/v1/tenants",
            &json!({"name": tenant, "limits": {"max_running": 50}, "allowed_hosts": [vendors.payments_origin(), vendors.shipping_origin()]}),
        )
        .await?;
    shop.token = created["token"]
        .as_str()
        .context("the tenant's token")?
        .to_string();

    for (name, file) in [
        ("fulfil-order", "fulfil_order"),
        ("send-receipt", "send_receipt"),
    ] {
        let path = args.components.join(format!("{file}.wasm"));
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading {} (build it with `make guests`)", path.display()))?;
        let (_, v) = shop
            .call(
                reqwest::Method::PUT,
                &format!("/v1/handlers/{name}"),
                Some(bytes.into()),
                None,
            )
            .await?;
        println!(
            "  PUT /v1/handlers/{name:<13} -> v{} ({} KiB, sha256 {}…), validated and compiled",
            v["version"],
            v["size"].as_u64().unwrap_or(0) / 1024,
            &v["digest"].as_str().unwrap_or("")[..12]
        );
    }

    let orders: Vec<Value> = (1..=args.orders).map(|n| order(n, vendors)).collect();
    let (_, batch) = shop
        .post("/v1/jobs/batch", &json!({ "jobs": orders }))
        .await?;
    println!(
        "  POST /v1/jobs/batch          -> {} orders enqueued in one call",
        batch["jobs"].as_array().map_or(0, Vec::len)
    );
    // The shop's request handler retries its enqueue after a timeout: recognised, not doubled.
    let (status, again) = shop.post("/v1/jobs", &order(3, vendors)).await?;
    println!(
        "  POST /v1/jobs (A-0003 again) -> {status}, duplicate={} (the same job {})",
        again["duplicate"],
        again["id"].as_str().unwrap_or("?")
    );

    // Every order but the poisoned one completes, and so does its receipt.
    let expected = (args.orders as u64 - 1) * 2;
    println!("\n  a worker with 8 sandboxed slots runs them:");
    let bar = ProgressBar::new(expected + 1);
    bar.set_style(
        ProgressStyle::with_template("  {bar:40} {pos}/{len} settled  {msg}")
            .expect("a valid template"),
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(180);
    loop {
        let queues = shop.get("/v1/queues").await?;
        let count = |state: &str| -> u64 {
            queues["queues"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|q| q["counts"][state].as_u64().unwrap_or(0))
                .sum()
        };
        let (completed, dead) = (count("completed"), count("dead"));
        let retrying = count("retryable");
        bar.set_position(completed + dead);
        bar.set_message(format!(
            "completed {completed}, retrying {retrying}, dead-lettered {dead}"
        ));
        if completed >= expected && dead >= 1 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the demo did not settle in time: {queues}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish();
    let took = started.elapsed();

    let done = shop.jobs("completed").await?;
    let receipts = done
        .iter()
        .filter(|j| j["handler"] == "send-receipt")
        .count();
    let retried: usize = done
        .iter()
        .map(|j| j["errors"].as_array().map_or(0, Vec::len))
        .sum();
    let mut charges = std::collections::BTreeSet::new();
    for job in done.iter().filter(|j| j["handler"] == "fulfil-order") {
        let id = job["id"].as_str().unwrap_or_default();
        let full = shop.get(&format!("/v1/jobs/{id}")).await?;
        if let Some(charge) = full["result"]["charge_ref"].as_str() {
            charges.insert(charge.to_string());
        }
    }
    let dead_letters = shop.get("/v1/dead").await?;
    let poison = &dead_letters["jobs"][0];

    println!("\nSummary ({:.1} s):", took.as_secs_f64());
    println!("  orders fulfilled       {}", done.len() - receipts);
    println!("  receipts sent          {receipts} (follow-up jobs, committed with their orders)");
    println!("  transient failures     {retried} (retried with exponential backoff and jitter)");
    println!(
        "  cards charged          {} (one effect key per order, never twice)",
        charges.len()
    );
    let payments = vendors.payments.ledger();
    let shipping = vendors.shipping.ledger();
    for (name, ledger, done) in [
        ("payments API", &payments, "charged"),
        ("shipping API", &shipping, "shipped"),
    ] {
        println!(
            "  {name:<12}           {} requests, {} Idempotency-Keys (set by Spool), {} orders \
             {done} once",
            ledger.requests,
            ledger.keys.len(),
            ledger.charges_per_order().len()
        );
        println!(
            "                         503 x{}, {done} but too slow x{}, {done} but answer lost \
             x{}; {} retries answered from the key",
            ledger.unavailable, ledger.slow, ledger.dropped, ledger.replayed
        );
    }
    println!("  duplicate enqueues     1 recognised by idempotency key");
    println!(
        "  dead-lettered          {}: {} ({}): {}",
        dead_letters["jobs"].as_array().map_or(0, Vec::len),
        poison["idempotency_key"].as_str().unwrap_or("?"),
        poison["errors"][0]["kind"].as_str().unwrap_or("?"),
        poison["errors"][0]["message"].as_str().unwrap_or("?"),
    );
    println!("\n  redrive it with: POST /v1/dead/retry, or `spool dead retry`");
    ensure!(
        done.len() as u64 == expected && charges.len() as u64 == expected / 2,
        "the totals do not add up"
    );
    for (name, ledger) in [("payments", &payments), ("shipping", &shipping)] {
        let per_order = ledger.charges_per_order();
        ensure!(
            per_order.len() as u64 == expected / 2
                && per_order.values().all(|&n| n == 1)
                && ledger.unkeyed == 0,
            "the {name} API did an order twice, or a request came without a key: {per_order:?}"
        );
    }
    ensure!(
        again["duplicate"] == true && retried > 0,
        "the duplicate or the retries were not seen"
    );
    Ok(ExitCode::SUCCESS)
}
