//! One attempt, end to end: fresh store, instantiate, call `run`, drop. Run with
//! `make guests && cargo bench -p spool --bench attempt`.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::Criterion;
use spool::capabilities::store::MemoryBackend;
use spool::model::{JobContext, Limits};
use spool::runtime::{Runtime, RuntimeConfig};

fn component(name: &str) -> Option<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release");
    std::fs::read(dir.join(format!("{name}.wasm"))).ok()
}

fn job(payload: &[u8]) -> JobContext {
    JobContext {
        id: "bench".into(),
        tenant: "bench".into(),
        handler: "bench".into(),
        queue: "default".into(),
        payload: payload.to_vec(),
        attempt: 1,
        max_attempts: 1,
        idempotency_key: "bench".into(),
    }
}

fn attempts(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-cache");
    // The default runtime, and beside it (`…/madvise`) one that hands every freed page back
    // to the kernel: the baseline for `RuntimeConfig::keep_resident`, in the same run.
    let runtimes = [
        ("", RuntimeConfig::default().keep_resident),
        ("/madvise", 0),
    ]
    .map(|(variant, keep_resident)| {
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(cache.clone()),
            keep_resident,
            ..RuntimeConfig::default()
        })
        .unwrap();
        (variant, runtime)
    });
    let backend: Arc<MemoryBackend> = Arc::new(MemoryBackend::default());
    let limits = Limits::default();

    for (variant, runtime) in &runtimes {
        for (name, payload) in [
            ("hello", &br#"{"hi":1}"#[..]),
            ("python_hello", &br#"{"name":"bench"}"#[..]),
            ("js_hello", &br#"{"name":"bench"}"#[..]),
            ("c_hello", &br#"{"name":"bench"}"#[..]),
        ] {
            let Some(bytes) = component(name) else {
                eprintln!("skipping {name}: not built (run `make guests`)");
                continue;
            };
            let handler = tokio.block_on(runtime.load(&bytes)).unwrap();
            let job = job(payload);
            c.bench_function(&format!("attempt/{name}{variant}"), |b| {
                b.to_async(&tokio).iter(|| async {
                    let attempt = runtime
                        .invoke(&handler, &job, &limits, backend.clone())
                        .await;
                    assert!(matches!(attempt.outcome, spool::model::Outcome::Ok(_)));
                    attempt
                })
            });
        }
    }
}

#[allow(missing_docs, reason = "criterion_group! defines the group's function")]
mod group {
    criterion::criterion_group!(benches, super::attempts);
}
criterion::criterion_main!(group::benches);
