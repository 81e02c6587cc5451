//! `spool demo`: an order-fulfilment flow on a real database, end to end.
//!
//! Uploads the `fulfil-order` and `send-receipt` example handlers, enqueues a day's orders
//! (a few with transient payment failures, one poisoned, one enqueued twice), runs a worker
//! until everything settles, and prints what happened.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use spool::maintenance::{Maintenance, MaintenanceConfig};
use spool::model::{JobState, NewJob, TenantLimitSpec};
use spool::runtime::{Runtime, RuntimeConfig, cache};
use spool::worker::{Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

/// Arguments of `spool demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    db: super::worker::DatabaseArgs,
    /// Where the example components were built.
    #[arg(long, default_value = "target/wasm32-wasip2/release")]
    components: PathBuf,
    /// How many orders to enqueue.
    #[arg(long, default_value_t = 24)]
    orders: u32,
}

const POISONED: u32 = 13;

fn order(n: u32) -> NewJob {
    let mut payload = json!({
        "order_id": format!("A-{n:04}"),
        "amount_cents": 500 + n * 137 % 9000,
        "email": format!("customer{n}@example.com"),
    });
    // Every fifth order's payment provider times out once or twice first.
    if n.is_multiple_of(5) {
        payload["fail_times"] = json!(1 + n % 2);
    }
    if n == POISONED {
        payload["poison"] = json!(true);
    }
    let mut job = NewJob::json("fulfil-order", &payload);
    job.idempotency_key = Some(format!("order-A-{n:04}"));
    job
}

/// Runs the demo against `DATABASE_URL`.
pub async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let store = args.db.connect().await?;
    store.migrate().await?;
    let tenant_name = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let tenant = store
        .tenant_create(&tenant_name, &TenantLimitSpec { max_running: Some(50), ..TenantLimitSpec::default() }, None)
        .await?;
    println!("Spool demo: tenant {tenant_name}, a day of orders for an online shop\n");

    for (name, file) in [
        ("fulfil-order", "fulfil_order"),
        ("send-receipt", "send_receipt"),
    ] {
        let path = args.components.join(format!("{file}.wasm"));
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading {} (build it with `make guests`)", path.display()))?;
        let v = store
            .handler_put(tenant.id, name, &cache::digest(&bytes), &bytes)
            .await?;
        println!(
            "  uploaded handler {name:<13} v{} ({} KiB, sha256 {}…)",
            v.version,
            v.size / 1024,
            &v.digest[..12]
        );
    }

    let orders: Vec<NewJob> = (1..=args.orders).map(order).collect();
    let enqueued = store.job_enqueue_many(tenant.id, &orders, None).await?;
    println!("  enqueued {} orders in one batch", enqueued.len());
    // The shop's request handler retries its enqueue after a timeout: recognised, not doubled.
    let again = store.job_enqueue_many(tenant.id, &[order(3)], None).await?;
    println!(
        "  enqueued order A-0003 again: duplicate={} (same job {})",
        again[0].duplicate, again[0].id
    );

    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        cache_dir: super::default_cache_dir(),
        max_instances: 32,
        ..RuntimeConfig::default()
    })?);
    let shutdown = CancellationToken::new();
    let worker = Worker::new(
        WorkerConfig {
            slots: 8,
            ..WorkerConfig::default()
        },
        store.clone(),
        runtime,
    );
    let maintenance = Maintenance::new(MaintenanceConfig::default(), store.clone());
    let (w, m) = (shutdown.clone(), shutdown.clone());
    let worker_task = tokio::spawn(async move { worker.run(w).await });
    let maintenance_task = tokio::spawn(async move { maintenance.run(m).await });

    println!("\n  running a worker with 8 sandboxed slots…");
    let started = Instant::now();
    let expected_receipts = args.orders as usize - usize::from(args.orders >= POISONED);
    let deadline = started + Duration::from_secs(120);
    let mut last = None;
    let (completed, dead) = loop {
        let completed = store
            .job_ids_in_state(tenant.id, JobState::Completed, 10_000)
            .await?;
        let dead = store
            .job_ids_in_state(tenant.id, JobState::Dead, 10_000)
            .await?;
        let retrying = store
            .job_ids_in_state(tenant.id, JobState::Retryable, 10_000)
            .await?;
        let counts = (completed.len(), retrying.len(), dead.len());
        if last != Some(counts) {
            println!(
                "  {:>5.1}s  completed {:>3}   retrying {:>2}   dead-lettered {}",
                started.elapsed().as_secs_f64(),
                counts.0,
                counts.1,
                counts.2
            );
            last = Some(counts);
        }
        // Every order but the poisoned one completes, and so does its receipt.
        if completed.len() == expected_receipts * 2 && dead.len() == 1 {
            break (completed, dead);
        }
        anyhow::ensure!(Instant::now() < deadline, "the demo did not settle in time");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let took = started.elapsed();
    shutdown.cancel();
    worker_task.await?;
    maintenance_task.await?;

    let mut retried = 0;
    let mut receipts = 0;
    for id in &completed {
        let job = store.job_get(tenant.id, *id).await?;
        retried += job.errors.len();
        receipts += usize::from(job.handler == "send-receipt");
    }
    let poison = store.job_get(tenant.id, dead[0]).await?;
    let charges = store.kv(tenant.id).list_keys("charge/", None, 1000).await?;

    println!("\nSummary ({:.1} s):", took.as_secs_f64());
    println!("  orders fulfilled       {}", completed.len() - receipts);
    println!("  receipts sent          {receipts} (follow-up jobs, committed with their orders)");
    println!("  transient failures     {retried} (retried with exponential backoff)");
    println!(
        "  cards charged          {} (one effect key per order, never twice)",
        charges.len()
    );
    println!("  duplicate enqueues     1 recognised by idempotency key");
    println!(
        "  dead-lettered          1: {} — {}",
        poison.idempotency_key, poison.errors[0].message
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
