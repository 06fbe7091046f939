//! The process-wide wasmtime engine, its epoch ticker, and the compiled-component cache.
//!
//! One engine per process (as `wasmtime serve` and Spin have): its pooling allocator
//! reserves address space for many instances up front, so building one per `Host` would
//! waste it (tests build many hosts). Components are compiled once per distinct bytes.

use crate::state::RequestState;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy};

/// How often the epoch advances. Each tick a running guest yields to the async runtime
/// (so one busy guest cannot starve the other requests on a current-thread runtime) and
/// checks its request deadline.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of each pooled linear memory kept resident between instances (HOST-NOTES:
/// 4 MiB saved about 10 % per request; 1 MiB was worse).
const KEEP_RESIDENT: usize = 4 << 20;

static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();

/// Set by [`enable_perf_map`] before the engine exists.
static PERF_MAP: AtomicBool = AtomicBool::new(false);

/// Makes the engine write `/tmp/perf-<pid>.map`, so `perf record`/`perf report` name the
/// guest's compiled functions (from the component's `name` section: build it unstripped).
/// Process-wide, like the engine: it must be called before the first [`crate::Host::load`],
/// and returns `false` when the engine already exists (then it has no effect).
pub fn enable_perf_map() -> bool {
    PERF_MAP.store(true, Ordering::Relaxed);
    ENGINE.get().is_none()
}

/// The shared engine, built (and its epoch thread started) on first use.
pub(crate) fn engine() -> wasmtime::Result<Engine> {
    ENGINE
        .get_or_init(|| {
            let engine = build(true).or_else(|pooled| {
                eprintln!(
                    "push-devices-host: pooling allocator unavailable ({pooled}); using on-demand allocation"
                );
                build(false)
            });
            match engine {
                Ok(engine) => {
                    start_epoch_thread(&engine);
                    Ok(engine)
                }
                Err(e) => Err(format!("{e:#}")),
            }
        })
        .clone()
        .map_err(|e| wasmtime::format_err!("cannot build wasmtime engine: {e}"))
}

fn build(pooling: bool) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    if PERF_MAP.load(Ordering::Relaxed) {
        config.profiler(ProfilingStrategy::PerfMap);
    }
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.linear_memory_keep_resident(KEEP_RESIDENT);
        pool.table_keep_resident(KEEP_RESIDENT);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config)
}

fn start_epoch_thread(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("push-devices-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        // Without ticks, deadlines are not enforced; say so rather than fail.
        eprintln!("push-devices-host: cannot start epoch thread ({e}); request deadlines are off");
    }
}

type Cache = HashMap<(u64, usize), InstancePre<RequestState>>;
static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();

/// Compiles and links `bytes` (a component binary), once per distinct content.
pub(crate) fn instance_pre(bytes: &[u8]) -> wasmtime::Result<InstancePre<RequestState>> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    let id = (hasher.finish(), bytes.len());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(pre) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
        return Ok(pre.clone());
    }
    let engine = engine()?;
    let component = Component::new(&engine, bytes)?;
    let mut linker = Linker::<RequestState>::new(&engine);
    // The `wasmtime serve -Scli` set: full WASI p2 (spin-sdk imports wasi:cli beyond
    // the proxy world), then only the HTTP interfaces on top.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::imports::add_to_linker(&mut linker)?;
    let pre = linker.instantiate_pre(&component)?;
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, pre.clone());
    Ok(pre)
}
