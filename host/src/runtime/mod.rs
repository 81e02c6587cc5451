//! The wasmtime runtime: one engine, a cache of compiled handlers, and a fresh sandbox per
//! attempt. It knows nothing of Postgres: store reads go through an injected
//! [`StoreBackend`](crate::capabilities::store::StoreBackend), and the effects of an attempt
//! are returned in its [`Attempt`], never applied here.

pub mod cache;
pub mod compile;
mod config;
mod engine;
mod invoke;
mod lanes;
pub mod validate;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

pub use compile::UploadSlot;
pub use config::{CompileConfig, Compiler, OptLevel, RuntimeConfig};
pub use engine::HostState;
pub use invoke::Attempt;
pub use validate::ValidationError;

use crate::wit::HandlerPre;
use cache::{CacheError, DiskCache};
use compile::{Gate, Gates};
use engine::EpochTicker;

use crate::capabilities::http::{HttpConfig, PrivateNetworks};

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
    gates: Gates,
    counters: Counters,
    http: HttpConfig,
    /// The CPU lanes ([`RuntimeConfig::cpu_lanes`]).
    lanes: Arc<lanes::Lanes>,
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
        let http = HttpConfig::new(PrivateNetworks::new(config.allow_private_networks.clone()))
            .map_err(|e| RuntimeError::Engine(format!("configuring TLS: {e}")))?;
        let capacity = NonZeroUsize::new(config.loaded_capacity.max(1)).expect("at least 1");
        let lanes = lanes::Lanes::new(config.cpu_lanes);
        Ok(Runtime {
            _ticker: EpochTicker::start(&engine, config.epoch_tick, lanes.clone()),
            engine,
            linker,
            disk,
            prepared: Mutex::new(LruCache::new(capacity)),
            gates: Gates::new(&config.compile),
            counters: Counters::default(),
            http,
            lanes,
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

    /// Validates, compiles (or finds compiled) and links a component, for the worker (or any
    /// library use): its compiles wait their turn behind the worker's gate, as long as it takes.
    ///
    /// The component must be a component (not a core module), import only what the host
    /// provides, and export `run` as the `spool:job/handler` world says. Compiling is bounded
    /// as [`RuntimeConfig::compile`] says and runs off the async threads.
    pub async fn load(&self, bytes: &[u8]) -> Result<Arc<Prepared>, ValidationError> {
        self.load_behind(Gate::Worker, bytes).await
    }

    /// Takes a place among the uploads that may be compiling or waiting to
    /// ([`CompileConfig::upload_slots`] plus [`CompileConfig::upload_queue`]), for
    /// [`load_upload`](Self::load_upload); [`ValidationError::Busy`] when there is none.
    ///
    /// Take it before reading the upload's body, so that no more bodies than places are held
    /// in memory waiting.
    pub fn upload_slot(&self) -> Result<UploadSlot, ValidationError> {
        self.gates.admit_upload()
    }

    /// Loads an uploaded component as [`load`](Self::load) does, compiling behind the
    /// uploads' gate: it waits at most [`CompileConfig::upload_wait`] for its turn, then
    /// gives up with [`ValidationError::Busy`].
    pub async fn load_upload(
        &self,
        // Held for the whole load, and proof that the upload took its place.
        _slot: &UploadSlot,
        bytes: &[u8],
    ) -> Result<Arc<Prepared>, ValidationError> {
        self.load_behind(Gate::Upload, bytes).await
    }

    async fn load_behind(
        &self,
        gate: Gate,
        bytes: &[u8],
    ) -> Result<Arc<Prepared>, ValidationError> {
        validate::check_header(bytes, self.config.max_component_bytes)?;
        let digest = cache::digest(bytes);
        // The caches are shared by every tenant, so an upload of bytes someone compiled before
        // answers sooner (security review 6fe51aa, L12). Accepted: it tells only that someone
        // on this node uploaded these exact bytes (a SHA-256 of the whole component, which a
        // tenant cannot guess for another's private handler), at the tenant's upload rate; a
        // cache per tenant would multiply the compiles and the disk the limits here bound.
        if let Some(found) = self.cached(&digest) {
            return Ok(found);
        }
        let _permit = self.gates.enter(gate).await?;
        // Another task may have compiled it while this one waited.
        if let Some(found) = self.cached(&digest) {
            return Ok(found);
        }
        let (component, artifact) = match &self.config.compile.compiler {
            Compiler::Subprocess(program) => {
                let artifact = compile::in_subprocess(program, &self.config, bytes).await?;
                // SAFETY: the artifact is what a compiler process this runtime started (a
                // `spool` binary of this build, given only the component) wrote for an engine
                // configured as this one; wasmtime checks its header and that the engine
                // settings match on top of that. The compiler only translates the component,
                // it never runs any of it.
                #[allow(unsafe_code, reason = "loading what Spool's compiler process wrote")]
                let component = unsafe { Component::deserialize(&self.engine, &artifact) }
                    .map_err(|e| {
                        ValidationError::Compiler(format!("loading its artifact: {e:#}"))
                    })?;
                (component, Some(artifact))
            }
            Compiler::InProcess => (self.compile_here(bytes).await?, None),
        };
        self.counters.compiled.fetch_add(1, Ordering::Relaxed);
        let prepared = self.prepare(&digest, &component)?;
        if let Some(disk) = &self.disk {
            let artifact = match artifact {
                Some(artifact) => Ok(artifact),
                None => component.serialize(),
            };
            match artifact {
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

    /// Compiles on a blocking thread of this process ([`Compiler::InProcess`]). Past the
    /// timeout the compile is abandoned, not stopped: a thread cannot be killed.
    async fn compile_here(&self, bytes: &[u8]) -> Result<Component, ValidationError> {
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        let compile = tokio::task::spawn_blocking(move || Component::new(&engine, &owned));
        let timeout = self.config.compile.timeout;
        match tokio::time::timeout(timeout, compile).await {
            Err(_) => Err(ValidationError::CompileTimeout(timeout.as_secs())),
            Ok(Err(join)) => Err(ValidationError::Invalid(format!("compiler: {join}"))),
            Ok(Ok(Err(e))) => Err(ValidationError::Invalid(format!("{e:#}"))),
            Ok(Ok(Ok(component))) => Ok(component),
        }
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
