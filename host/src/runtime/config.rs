//! The runtime's settings: how the engine is built and how big its pools and caches are.

use std::path::PathBuf;
use std::time::Duration;

use crate::model::Limits;

/// How the optimiser treats handler code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptLevel {
    /// No optimisation: fastest compiles, slowest code.
    None,
    /// Optimise for speed (the default).
    #[default]
    Speed,
    /// Optimise for speed and size.
    SpeedAndSize,
}

/// Settings for a [`Runtime`](super::Runtime).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The most any attempt may be granted; also sizes the pooling allocator's memory slots.
    /// Default: [`Limits::default`] with 512 MiB of memory.
    pub max_limits: Limits,
    /// Sandboxes that may be alive at once: the pooling allocator's instance count.
    /// Default 128.
    pub max_instances: u32,
    /// Use the pooling allocator (pre-reserved slots, copy-on-write memory images). Default on.
    pub pooling: bool,
    /// Where compiled components are kept between runs; `None` keeps them in memory only.
    /// The directory is created with owner-only permissions.
    pub cache_dir: Option<PathBuf>,
    /// The most bytes of compiled artifacts kept in [`cache_dir`](Self::cache_dir); past
    /// it the least recently used are removed. Default 2 GiB.
    pub cache_max_bytes: u64,
    /// Compiled handlers kept ready to instantiate in memory. Default 64.
    pub loaded_capacity: usize,
    /// Largest component accepted, in bytes. Default 64 MiB.
    pub max_component_bytes: usize,
    /// Longest a component may take to compile. Default 120 s.
    pub compile_timeout: Duration,
    /// WebAssembly stack per sandbox, in bytes. Default 1 MiB.
    pub max_wasm_stack: usize,
    /// How often the epoch advances: the granularity of timeouts and of yielding to other
    /// tasks. Default 10 ms.
    pub epoch_tick: Duration,
    /// Optimisation level for compiled handlers. Default [`OptLevel::Speed`].
    pub opt_level: OptLevel,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_limits: Limits {
                memory_bytes: 512 << 20,
                ..Limits::default()
            },
            max_instances: 128,
            pooling: true,
            cache_dir: None,
            cache_max_bytes: super::cache::MAX_BYTES_DEFAULT,
            loaded_capacity: 64,
            max_component_bytes: 64 << 20,
            compile_timeout: Duration::from_secs(120),
            max_wasm_stack: 1 << 20,
            epoch_tick: Duration::from_millis(10),
            opt_level: OptLevel::Speed,
        }
    }
}
