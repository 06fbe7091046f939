//! Per-request store data: WASI, WASI HTTP, key-value and variables state.
//!
//! A fresh [`RequestState`] (and `Store`) is made for every request, as Spin does, so
//! nothing leaks from one request to the next except what the backend stores.

use crate::imports::KvShared;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Store data of one request.
pub(crate) struct RequestState {
    pub(crate) table: ResourceTable,
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) hooks: DenyOutbound,
    pub(crate) kv: Arc<KvShared>,
    pub(crate) variables: Arc<BTreeMap<String, String>>,
    pub(crate) memory: MemoryProbe,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// `wasi:http/outgoing-handler` hooks: the component makes no outbound requests, so
/// every attempt is refused with `HTTP-request-denied`.
pub(crate) struct DenyOutbound;

impl WasiHttpHooks for DenyOutbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        eprintln!(
            "push-devices-host: denied outbound request {} {}",
            request.method(),
            request.uri().authority().map(|a| a.as_str()).unwrap_or("?")
        );
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// Linear memory one request used: a [`wasmtime::ResourceLimiter`] on each request's store
/// that allows every growth and records it, folding the request's total into a shared peak
/// when the store drops. Read with [`crate::Host::take_peak_memory`]; the benchmark uses it.
pub(crate) struct MemoryProbe {
    peak: Arc<PeakMemory>,
    /// Bytes of all linear memories of this request (initial sizes plus growth).
    total: usize,
    /// The largest single memory of this request.
    largest: usize,
}

/// The largest request seen since the last [`crate::Host::take_peak_memory`].
#[derive(Debug, Default)]
pub(crate) struct PeakMemory {
    pub(crate) total: std::sync::atomic::AtomicUsize,
    pub(crate) largest: std::sync::atomic::AtomicUsize,
}

impl MemoryProbe {
    pub(crate) fn new(peak: Arc<PeakMemory>) -> Self {
        MemoryProbe {
            peak,
            total: 0,
            largest: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryProbe {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called for each memory's initial allocation too (current = 0).
        self.total += desired.saturating_sub(current);
        self.largest = self.largest.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl Drop for MemoryProbe {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.peak.total.fetch_max(self.total, Relaxed);
        self.peak.largest.fetch_max(self.largest, Relaxed);
    }
}
