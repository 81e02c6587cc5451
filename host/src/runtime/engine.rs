//! The wasmtime engine and linker shared by every attempt.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::config::{OptLevel, RuntimeConfig};
use crate::capabilities::http::HttpState;
use crate::capabilities::{jobs::JobsState, log::LogState, store::StoreState};

/// Most table elements a sandbox may have: large language runtimes (CPython) need tens of
/// thousands of function-table slots.
pub const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Most core instances, tables and memories per component.
const MAX_CORE_INSTANCES: u32 = 50;
const MAX_TABLES: u32 = 10;
const MAX_MEMORIES: u32 = 4;

/// The data of every attempt's `Store`.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) log: LogState,
    pub(crate) store: StoreState,
    pub(crate) jobs: JobsState,
    pub(crate) http: HttpState,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http.ctx,
            table: &mut self.table,
            hooks: &mut self.http.hooks,
        }
    }
}

/// Caps what a sandbox may allocate, and remembers whether it hit the memory cap so that the
/// resulting trap can say so.
pub(crate) struct Limiter {
    /// The cap on all of the instance's linear memories together.
    pub(crate) memory_bytes: u64,
    pub(crate) memory_exceeded: bool,
    /// Bytes the instance's memories hold now, summed over every memory (a component may
    /// have several: the cap is per attempt, not per memory).
    pub(crate) memory_used: u64,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.memory_used - (current as u64).min(self.memory_used))
            .saturating_add(desired as u64);
        if total > self.memory_bytes {
            self.memory_exceeded = true;
            wasmtime::bail!(
                "memory limit exceeded: the sandbox's memories would hold {total} bytes, the \
                 limit is {}",
                self.memory_bytes
            );
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES as usize
    }

    fn tables(&self) -> usize {
        MAX_TABLES as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES as usize
    }
}

/// The most of a table kept resident: a table's slots are pointers, and a guest's tables are
/// small next to its memory.
const MAX_TABLE_KEEP_RESIDENT: usize = 1 << 20;

/// [`RuntimeConfig::keep_resident`]'s default: 16 MiB where the kernel can say which pages an
/// attempt touched (`PAGEMAP_SCAN`, Linux 6.7+), so that only those are reset; 64 KiB where it
/// cannot, since all of it is then rewritten on every free.
pub(crate) fn default_keep_resident() -> usize {
    if kernel_has_pagemap_scan() {
        16 << 20
    } else {
        64 << 10
    }
}

/// Whether the running kernel is Linux 6.7 or later (`/proc/sys/kernel/osrelease`).
fn kernel_has_pagemap_scan() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut parts = release.trim().split(['.', '-']);
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 7)
}

/// Builds the engine for `config`: Cranelift, fuel, epoch interruption, a bounded stack and
/// (by default) the pooling allocator.
pub fn build_engine(config: &RuntimeConfig) -> wasmtime::Result<Engine> {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack)
        // Host calls run on the same fiber stack as the guest: leave them room above it.
        .async_stack_size(config.max_wasm_stack + (1 << 20))
        .cranelift_opt_level(match config.opt_level {
            OptLevel::None => wasmtime::OptLevel::None,
            OptLevel::Speed => wasmtime::OptLevel::Speed,
            OptLevel::SpeedAndSize => wasmtime::OptLevel::SpeedAndSize,
        });
    if config.pooling {
        let instances = config.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            .total_core_instances(instances * 4)
            .total_memories(instances * 2)
            .total_tables(instances * 2)
            .total_stacks(instances)
            .max_core_instances_per_component(MAX_CORE_INSTANCES)
            .max_memories_per_component(MAX_MEMORIES)
            .max_tables_per_component(MAX_TABLES)
            .max_memory_size(config.max_limits.memory_bytes as usize)
            .table_elements(MAX_TABLE_ELEMENTS)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(4 << 20)
            // Return freed slots to the kernel in batches: fewer madvise calls and fewer
            // cross-core TLB shootdowns per attempt. A slot waiting in a batch is not free,
            // and an allocation that finds the pool empty flushes the batches but misses one
            // that another thread is flushing at that moment: so batches stay small beside
            // the pool (a quarter of its instances), and a small pool never sits whole in
            // them. With 16 for a pool of 8, one attempt in about 15 small benches failed.
            .decommit_batch_size((instances as usize / 4).clamp(1, 16))
            .linear_memory_keep_resident(config.keep_resident)
            .table_keep_resident(config.keep_resident.min(MAX_TABLE_KEEP_RESIDENT))
            .pagemap_scan(wasmtime::Enabled::Auto);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&c)
}

/// Returns a linker with WASI 0.2, `wasi:http/outgoing-handler` 0.2 and Spool's own
/// capabilities. A component that imports no `wasi:http` links as before.
pub fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker: Linker<HostState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    crate::capabilities::store::add_to_linker(&mut linker, |s| &mut s.store)?;
    crate::capabilities::jobs::add_to_linker(&mut linker, |s| &mut s.jobs)?;
    crate::capabilities::log::add_to_linker(&mut linker, |s| &mut s.log)?;
    crate::capabilities::http::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// Advances the engine's epoch every `tick` on a thread of its own, until dropped, and takes
/// CPU lanes back from guests parked for three ticks.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(
        engine: &Engine,
        tick: Duration,
        lanes: Arc<super::lanes::Lanes>,
    ) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("spool-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                    lanes.reclaim(tick * 3);
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter as _;

    use super::*;

    #[test]
    fn the_memory_cap_holds_across_all_of_an_instances_memories() {
        let mut limiter = Limiter {
            memory_bytes: 100,
            memory_exceeded: false,
            memory_used: 0,
        };
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        // A second memory may not take the first's room as well.
        assert!(limiter.memory_growing(0, 60, None).is_err());
        assert!(limiter.memory_exceeded);
        // Growing one memory counts only the growth; the sum is what is capped.
        assert!(limiter.memory_growing(60, 110, None).is_err());
        assert!(limiter.memory_growing(60, 70, None).unwrap());
        assert!(limiter.memory_growing(0, 30, None).unwrap());
        assert!(limiter.memory_growing(0, 1, None).is_err());
    }
}
