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
    /// Default: [`Limits::default`] with 512 MiB of memory and the outbound-HTTP limits at
    /// the most a tenant may set ([`Limits::with_http_maxima`]).
    pub max_limits: Limits,
    /// Sandboxes that may be alive at once: the pooling allocator's instance count.
    /// Default 128.
    pub max_instances: u32,
    /// Use the pooling allocator (pre-reserved slots, copy-on-write memory images). Default on.
    pub pooling: bool,
    /// With the pooling allocator: bytes of each sandbox's linear memory (and table) that stay
    /// resident when its slot is freed, reset in place to the component's initial image rather
    /// than handed back to the kernel, so that the next attempt in the slot takes no page
    /// faults on them. Where the kernel has `PAGEMAP_SCAN` (Linux 6.7+) only the pages the
    /// attempt touched are reset; elsewhere the whole amount is rewritten on every free.
    /// Default 16 MiB with `PAGEMAP_SCAN`, 64 KiB without; 0 hands every page back.
    pub keep_resident: usize,
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
    /// How components are compiled, and the bounds on compiling.
    pub compile: CompileConfig,
    /// WebAssembly stack per sandbox, in bytes. Default 1 MiB.
    pub max_wasm_stack: usize,
    /// How often the epoch advances: the granularity of timeouts and of yielding to other
    /// tasks. Default 1 ms: a guest holds an executor thread at most that long at a time.
    pub epoch_tick: Duration,
    /// How many attempts may run guest code past their first epoch tick at once (the CPU
    /// lanes, `lanes.rs`); the others wait their turn outside the executor, in order, so that
    /// one tenant's CPU-bound guests cannot keep other tenants' short attempts (or the
    /// worker's own tasks) waiting behind all of them. Tenants share them: while several have
    /// attempts running, each holds at most its share. Default: the machine's cores.
    pub cpu_lanes: usize,
    /// Optimisation level for compiled handlers. Default [`OptLevel::Speed`].
    pub opt_level: OptLevel,
    /// Non-public networks handlers' outbound HTTP may reach (the operator's
    /// `--allow-private-network`), and the only networks plain `http://` may reach. Default
    /// none: the SSRF guard refuses every loopback, private, link-local, ... address.
    pub allow_private_networks: Vec<ipnet::IpNet>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_limits: Limits {
                memory_bytes: 512 << 20,
                ..Limits::default()
            }
            .with_http_maxima(),
            max_instances: 128,
            pooling: true,
            keep_resident: super::engine::default_keep_resident(),
            cache_dir: None,
            cache_max_bytes: super::cache::MAX_BYTES_DEFAULT,
            loaded_capacity: 64,
            max_component_bytes: 64 << 20,
            compile: CompileConfig::default(),
            max_wasm_stack: 1 << 20,
            epoch_tick: Duration::from_millis(1),
            cpu_lanes: std::thread::available_parallelism().map_or(1, |n| n.get()),
            opt_level: OptLevel::Speed,
            allow_private_networks: Vec::new(),
        }
    }
}

/// Where components are compiled.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Compiler {
    /// On a blocking thread of this process (the default, for library use and tests, where
    /// there is no `spool` binary to run). Only [`CompileConfig::timeout`] applies, and a
    /// compile past it is abandoned, not stopped: it runs on to its end, holding its CPU and
    /// memory. Servers use [`Compiler::Subprocess`].
    #[default]
    InProcess,
    /// In a child process, `PROGRAM compile-component`, which must be a `spool` binary of the
    /// same build: the kernel caps its CPU time and memory ([`CompileConfig::cpu_limit`],
    /// [`CompileConfig::memory_bytes`]), it is killed at [`CompileConfig::timeout`] or when
    /// the load waiting for it is dropped, and it gets no environment (no tokens, no
    /// database URL). What `spool serve` and `spool worker` use.
    Subprocess(PathBuf),
}

impl Compiler {
    /// Compiles in a child process running this very binary: `/proc/self/exe`, which stays
    /// this build even if the file was replaced since it started (else the path it was started
    /// from). Only right in the `spool` binary.
    pub fn this_binary() -> Compiler {
        let proc_exe = PathBuf::from("/proc/self/exe");
        if proc_exe.exists() {
            return Compiler::Subprocess(proc_exe);
        }
        match std::env::current_exe() {
            Ok(path) => Compiler::Subprocess(path),
            Err(_) => Compiler::InProcess,
        }
    }
}

/// How components are compiled, and how much compiling may cost.
///
/// Uploads and the worker's cache misses compile behind gates of their own, so that neither
/// waits behind the other: a flood of uploads does not hold up other tenants' jobs on a node
/// whose cache is cold, and jobs do not hold up uploads.
#[derive(Debug, Clone)]
pub struct CompileConfig {
    /// Where compiling happens. Default [`Compiler::InProcess`].
    pub compiler: Compiler,
    /// Longest a compile may take, wall-clock; a compiler process is killed then. Default
    /// 120 s.
    pub timeout: Duration,
    /// The most CPU time a compiler process may use, over all its threads (Cranelift compiles
    /// functions in parallel). Default 300 s. [`Compiler::Subprocess`] only.
    pub cpu_limit: Duration,
    /// The most memory (data segment and private mappings: `RLIMIT_DATA`) a compiler process
    /// may use. Default 4 GiB. [`Compiler::Subprocess`] only.
    pub memory_bytes: u64,
    /// Compiles at once for the worker's cache misses (and [`Runtime::load`]). Each compile
    /// uses every core already. Default 1.
    ///
    /// [`Runtime::load`]: super::Runtime::load
    pub worker_slots: usize,
    /// Compiles at once for uploads. Default 1.
    pub upload_slots: usize,
    /// Uploads that may wait for one of the [`upload_slots`](Self::upload_slots) (each
    /// holding its component in memory); more are refused at once. Default 4.
    pub upload_queue: usize,
    /// Longest an upload waits for a compile slot before it is refused. Default 30 s.
    pub upload_wait: Duration,
}

impl Default for CompileConfig {
    fn default() -> Self {
        CompileConfig {
            compiler: Compiler::InProcess,
            timeout: Duration::from_secs(120),
            cpu_limit: Duration::from_secs(300),
            memory_bytes: 4 << 30,
            worker_slots: 1,
            upload_slots: 1,
            upload_queue: 4,
            upload_wait: Duration::from_secs(30),
        }
    }
}
