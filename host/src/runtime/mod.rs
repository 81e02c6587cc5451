//! The wasmtime runtime: one engine, a cache of compiled handlers, and a fresh sandbox per
//! attempt. It knows nothing of Postgres: store reads go through an injected
//! [`StoreBackend`](crate::capabilities::store::StoreBackend), and the effects of an attempt
//! are returned in its [`Attempt`], never applied here.

pub mod bindings;
pub mod cache;
mod config;
mod engine;
mod invoke;
pub mod validate;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

pub use config::{OptLevel, RuntimeConfig};
pub use engine::HostState;
pub use invoke::Attempt;
pub use validate::ValidationError;

use bindings::HandlerPre;
use cache::{CacheError, DiskCache};
use engine::EpochTicker;

/// A handler compiled and linked, ready to instantiate in microseconds.
pub struct Prepared {
    digest: String,
    pre: HandlerPre<HostState>,
}

impl Prepared {
    /// Returns the component's digest (hex SHA-256 of its bytes).
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

/// Counts of how handlers were loaded, for tests and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Components compiled from their bytes.
    pub compiled: u64,
    /// Compiled artifacts read back from the disk cache.
    pub from_disk: u64,
    /// Loads answered from memory.
    pub from_memory: u64,
}

#[derive(Default)]
struct Counters {
    compiled: AtomicU64,
    from_disk: AtomicU64,
    from_memory: AtomicU64,
}

/// Why a runtime could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine or linker could not be configured.
    #[error("configuring wasmtime: {0}")]
    Engine(String),
    /// The compiled-component cache could not be opened.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The sandbox runtime. Cheap to share behind an `Arc`; one per process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    config: RuntimeConfig,
    disk: Option<DiskCache>,
    prepared: Mutex<LruCache<String, Arc<Prepared>>>,
    compile_gate: tokio::sync::Semaphore,
    counters: Counters,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds a runtime: the engine, the linker with every capability, the disk cache, and
    /// the epoch thread.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine =
            engine::build_engine(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let linker =
            engine::build_linker(&engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let disk = match &config.cache_dir {
            Some(dir) => Some(DiskCache::open(dir, &engine, config.cache_max_bytes)?),
            None => None,
        };
        let capacity = NonZeroUsize::new(config.loaded_capacity.max(1)).expect("at least 1");
        Ok(Runtime {
            _ticker: EpochTicker::start(&engine, config.epoch_tick),
            engine,
            linker,
            disk,
            prepared: Mutex::new(LruCache::new(capacity)),
            // Compiling is CPU-bound and parallel inside Cranelift already: one at a time.
            compile_gate: tokio::sync::Semaphore::new(1),
            counters: Counters::default(),
            config,
        })
    }

    /// Returns the runtime's settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Returns how handlers have been loaded so far.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.counters.compiled.load(Ordering::Relaxed),
            from_disk: self.counters.from_disk.load(Ordering::Relaxed),
            from_memory: self.counters.from_memory.load(Ordering::Relaxed),
        }
    }

    /// Returns the handler with `digest` if it is compiled already, in memory or on disk.
    pub fn cached(&self, digest: &str) -> Option<Arc<Prepared>> {
        if let Some(found) = self.lock_prepared().get(digest) {
            self.counters.from_memory.fetch_add(1, Ordering::Relaxed);
            return Some(found.clone());
        }
        let artifact = self.disk.as_ref()?.read(digest)?;
        // SAFETY: the artifact carries a valid seal under this cache's key, so it is a file
        // this runtime's `Component::serialize` wrote for this engine configuration (the seal
        // covers the engine hash); wasmtime's own header checks run on top of that.
        #[allow(unsafe_code, reason = "loading a sealed artifact that Spool compiled")]
        let component = unsafe { Component::deserialize(&self.engine, &artifact) }.ok()?;
        let prepared = self.prepare(digest, &component).ok()?;
        self.counters.from_disk.fetch_add(1, Ordering::Relaxed);
        Some(self.remember(prepared))
    }

    /// Validates, compiles (or finds compiled) and links a component.
    ///
    /// The component must be a component (not a core module), import only what the host
    /// provides, and export `run` as the `spool:job/handler` world says. Compiling is bounded
    /// by [`RuntimeConfig::compile_timeout`] and runs off the async threads.
    pub async fn load(&self, bytes: &[u8]) -> Result<Arc<Prepared>, ValidationError> {
        validate::check_header(bytes, self.config.max_component_bytes)?;
        let digest = cache::digest(bytes);
        if let Some(found) = self.cached(&digest) {
            return Ok(found);
        }
        let _permit = self.compile_gate.acquire().await.expect("never closed");
        // Another task may have compiled it while this one waited.
        if let Some(found) = self.cached(&digest) {
            return Ok(found);
        }
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        let compile = tokio::task::spawn_blocking(move || Component::new(&engine, &owned));
        let timeout = self.config.compile_timeout;
        let component = match tokio::time::timeout(timeout, compile).await {
            Err(_) => return Err(ValidationError::CompileTimeout(timeout.as_secs())),
            Ok(Err(join)) => return Err(ValidationError::Invalid(format!("compiler: {join}"))),
            Ok(Ok(Err(e))) => return Err(ValidationError::Invalid(format!("{e:#}"))),
            Ok(Ok(Ok(component))) => component,
        };
        self.counters.compiled.fetch_add(1, Ordering::Relaxed);
        let prepared = self.prepare(&digest, &component)?;
        if let Some(disk) = &self.disk {
            match component.serialize() {
                Ok(artifact) => {
                    if let Err(e) = disk.write(&digest, &artifact) {
                        tracing::warn!(error = %e, digest, "could not cache a compiled component");
                    }
                }
                Err(e) => tracing::warn!(error = %e, digest, "could not serialize a component"),
            }
        }
        Ok(self.remember(prepared))
    }

    fn prepare(&self, digest: &str, component: &Component) -> Result<Prepared, ValidationError> {
        let ty = component.component_type();
        validate::check_imports(ty.imports(&self.engine).map(|(name, _)| name))?;
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| ValidationError::WrongWorld(format!("{e:#}")))?;
        let pre =
            HandlerPre::new(pre).map_err(|e| ValidationError::WrongWorld(format!("{e:#}")))?;
        Ok(Prepared {
            digest: digest.to_string(),
            pre,
        })
    }

    fn remember(&self, prepared: Prepared) -> Arc<Prepared> {
        let prepared = Arc::new(prepared);
        self.lock_prepared()
            .put(prepared.digest.clone(), prepared.clone());
        prepared
    }

    fn lock_prepared(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<Prepared>>> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }
}
