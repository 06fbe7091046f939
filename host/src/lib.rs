//! # push-devices-host
//!
//! A native [wasmtime] host that runs the push-devices WebAssembly component the way
//! Spin would: a fresh instance per request, `wasi:http` in, `wasi:keyvalue@0.2.0-draft2`
//! and `fermyon:spin/variables@2.0.0` provided with Spin's semantics. It serves real
//! HTTP ([`Host::serve`], [`Host::spawn_server`]) or takes requests in-process
//! ([`Host::handle`]), which is what a Rust gateway or a test uses. The component's typed
//! export `push:devices/registry@0.1.0` is offered as plain async calls,
//! [`Host::list_devices`] and [`Host::invalidate`], each on a fresh instance like a request.
//!
//! ```no_run
//! use bytes::Bytes;
//! use push_devices_host::{Host, HostConfig, StoreChoice};
//!
//! # async fn demo() -> Result<(), push_devices_host::Error> {
//! let mut config = HostConfig::new("target/wasm32-wasip2/release/push_devices.wasm");
//! config.store = StoreChoice::Memory;
//! config.variables.insert("auth_token_secret".into(), "k1".into());
//! let host = Host::load(config)?;
//!
//! // In-process: no socket.
//! let req = http::Request::get("/users/@me/devices/sync-token")
//!     .header("authorization", "…")
//!     .body(Bytes::new())?;
//! let resp = host.handle(req).await?;
//! println!("{} {:?}", resp.status(), resp.body());
//!
//! // What was stored:
//! let stored = host.memory_store().unwrap().dump("default");
//! # let _ = stored;
//!
//! // Real HTTP on a free port, stopped on drop or with `shutdown().await`.
//! let server = host.spawn_server("127.0.0.1:0").await?;
//! println!("listening on {}", server.url());
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! A push sender asks for a user's devices and drops the tokens Apple or Google reported
//! dead, with no HTTP in between. The outer `Result` is the host's (the guest trapped or
//! ran out of time, or the component lacks the export); the inner one is the interface's
//! own typed error:
//!
//! ```no_run
//! use push_devices_host::{Host, HostConfig, InvalidationReason, Provider, RegistryError};
//!
//! # async fn demo(host: Host) -> Result<(), push_devices_host::Error> {
//! match host.list_devices(80351110224678912).await? {
//!     Ok(devices) => {
//!         for d in &devices {
//!             println!("{:?} {} (voip: {:?})", d.provider, d.token, d.voip);
//!         }
//!     }
//!     Err(RegistryError::StoreUnavailable(why)) => eprintln!("retry later: {why}"),
//!     Err(other) => eprintln!("cannot list: {other:?}"),
//! }
//! // APNs answered 410 Unregistered for this token:
//! let removed = host
//!     .invalidate(Provider::Apns, "a1b2c3", InvalidationReason::Unregistered)
//!     .await?;
//! println!("{removed:?} accounts held it");
//! # Ok(()) }
//! ```
//!
//! Modules: [`kv`] holds the storage contract and its backends (memory, SQLite, and the
//! `Quirks`/`Faults` test wrappers); `imports` maps the WIT imports onto it;
//! `engine` owns the process-wide engine, epoch ticker and compiled-component cache;
//! `server` is the hyper front end; [`registry`] holds the typed bindings of the
//! component's own export; [`manifest`] reads `[variables]` from `spin.toml`;
//! [`dev`] mints throwaway secrets and a user token for `serve --dev`.
//!
//! [wasmtime]: https://docs.rs/wasmtime

#![deny(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod dev;
mod engine;
mod imports;
pub mod kv;
pub mod manifest;
pub mod registry;
pub mod routes;
mod server;
mod state;

pub use engine::enable_perf_map;
pub use imports::is_valid_variable_name;
pub use kv::{Access, Dispatch, KeyValue, KvBackend, KvError, MemoryStore, SqliteStore, SwapOutcome};
pub use registry::{Device, InvalidationReason, Provider, RegistryError, VoipToken};
pub use routes::Routes;
pub use server::ServerHandle;
/// The error type of this crate: wasmtime's (converts into `Box<dyn std::error::Error>`).
pub use wasmtime::Error;
/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use imports::KvShared;
use registry::PushDevicesPre;
use state::{DenyOutbound, MemoryProbe, PeakMemory, RequestState};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline, format_err};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

/// Where the component comes from.
#[derive(Debug, Clone)]
pub enum ComponentSource {
    /// A `.wasm` component file.
    Path(PathBuf),
    /// Component bytes already in memory.
    Bytes(Vec<u8>),
}

impl From<PathBuf> for ComponentSource {
    fn from(p: PathBuf) -> Self {
        ComponentSource::Path(p)
    }
}
impl From<&std::path::Path> for ComponentSource {
    fn from(p: &std::path::Path) -> Self {
        ComponentSource::Path(p.to_owned())
    }
}
impl From<&str> for ComponentSource {
    fn from(p: &str) -> Self {
        ComponentSource::Path(p.into())
    }
}
impl From<Vec<u8>> for ComponentSource {
    fn from(b: Vec<u8>) -> Self {
        ComponentSource::Bytes(b)
    }
}

/// Which key-value backend serves the component's buckets.
#[derive(Clone)]
pub enum StoreChoice {
    /// A fresh [`MemoryStore`]; reach it with [`Host::memory_store`].
    Memory,
    /// A [`SqliteStore`] on this file (created if missing).
    Sqlite(PathBuf),
    /// Any backend, e.g. `Arc::new(Faults::new(MemoryStore::new(), 0.1, 7))`; keep your
    /// own clone of the `Arc` to inspect it or flip faults.
    Custom(Arc<dyn KvBackend>),
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChoice::Memory => f.write_str("Memory"),
            StoreChoice::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            StoreChoice::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Where the guest's stdout and stderr go.
#[derive(Debug, Clone, Default)]
pub enum GuestOutput {
    /// To the host's stderr (the default).
    #[default]
    Stderr,
    /// Into a shared buffer, for tests to print when they fail.
    Capture(OutputCapture),
    /// Nowhere.
    Discard,
}

/// A buffer collecting guest stdout and stderr (interleaved, across all requests).
#[derive(Debug, Clone)]
pub struct OutputCapture(MemoryOutputPipe);

impl OutputCapture {
    /// Capacity: past this a guest write traps, so keep it generous.
    const CAPACITY: usize = 64 << 20;

    /// An empty buffer.
    pub fn new() -> Self {
        OutputCapture(MemoryOutputPipe::new(Self::CAPACITY))
    }

    /// Everything captured so far, lossily decoded as UTF-8.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.contents()).into_owned()
    }
}

impl Default for OutputCapture {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything [`Host::load`] needs. Start from [`HostConfig::new`] and set fields.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The component to run.
    pub component: ComponentSource,
    /// The key-value backend (default [`StoreChoice::Memory`]).
    pub store: StoreChoice,
    /// Values for `fermyon:spin/variables.get` (default empty). The binary fills this from
    /// the manifest and `SPIN_VARIABLE_*`; the library never reads the environment.
    pub variables: BTreeMap<String, String>,
    /// Labels `store.open` accepts (default `["default"]`); others get `no-such-store`.
    pub store_labels: Vec<String>,
    /// Wall-clock budget of one request, guest CPU included (default 10 s). Past it the
    /// guest is interrupted and the request fails.
    pub request_timeout: Duration,
    /// Largest request body accepted by the HTTP server (default 1 MiB); larger is answered
    /// 413 with the component's own body (`{"message": "Request entity too large", "code":
    /// 40005}`) without running it. Only a guard: the component refuses bodies over 16 KiB.
    pub max_request_body: usize,
    /// Where guest stdout/stderr go (default host stderr).
    pub guest_output: GuestOutput,
    /// The HTTP trigger routes of the component (default `/...`, everything). Requests
    /// matching none get a bare 404 without reaching the component, as in Spin.
    pub routes: Routes,
}

impl HostConfig {
    /// Defaults for everything but the component.
    pub fn new(component: impl Into<ComponentSource>) -> Self {
        HostConfig {
            component: component.into(),
            store: StoreChoice::Memory,
            variables: BTreeMap::new(),
            store_labels: vec!["default".to_owned()],
            request_timeout: Duration::from_secs(10),
            max_request_body: 1 << 20,
            guest_output: GuestOutput::Stderr,
            routes: Routes::default(),
        }
    }
}

/// A loaded component with its backend and configuration, ready to serve. Cheap to
/// clone (an `Arc`); clones share everything.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    /// The HTTP export, from the component linked and pre-instantiated once.
    proxy: ProxyPre<RequestState>,
    /// The typed export, from the same `InstancePre`; `Err` (why not) for a component
    /// without it, e.g. an older build, which still serves HTTP.
    registry: std::result::Result<PushDevicesPre<RequestState>, String>,
    kv: Arc<KvShared>,
    memory: Option<Arc<MemoryStore>>,
    variables: Arc<BTreeMap<String, String>>,
    request_timeout: Duration,
    max_request_body: usize,
    guest_output: GuestOutput,
    routes: Routes,
    /// Largest linear memory of one request since the last `take_peak_memory`.
    peak_memory: Arc<PeakMemory>,
}

/// Linear memory of the largest request since the last [`Host::take_peak_memory`], in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestMemory {
    /// All linear memories of one instance together (initial sizes plus growth).
    pub total: usize,
    /// The largest single linear memory.
    pub largest: usize,
}

impl Host {
    /// Compiles (once per distinct component, per process) and links the component,
    /// and opens the backend. Blocking: compiling takes about 0.1 s in release builds.
    pub fn load(config: HostConfig) -> Result<Host> {
        let bytes = match config.component {
            ComponentSource::Bytes(b) => b,
            ComponentSource::Path(p) => std::fs::read(&p)
                .map_err(|e| format_err!("cannot read component {}: {e}", p.display()))?,
        };
        let instance_pre = engine::instance_pre(&bytes)?;
        let proxy = ProxyPre::new(instance_pre.clone())
            .map_err(|e| e.context("component does not export wasi:http/incoming-handler"))?;
        let registry = PushDevicesPre::new(instance_pre).map_err(|e| format!("{e:#}"));
        let (backend, memory): (Arc<dyn KvBackend>, _) = match config.store {
            StoreChoice::Memory => {
                let m = Arc::new(MemoryStore::new());
                (m.clone(), Some(m))
            }
            StoreChoice::Sqlite(path) => {
                let s = SqliteStore::open(&path)
                    .map_err(|e| format_err!("cannot open store {}: {e}", path.display()))?;
                (Arc::new(s), None)
            }
            StoreChoice::Custom(b) => (b, None),
        };
        Ok(Host {
            inner: Arc::new(Inner {
                proxy,
                registry,
                kv: Arc::new(KvShared {
                    backend,
                    labels: config.store_labels,
                }),
                memory,
                variables: Arc::new(config.variables),
                request_timeout: config.request_timeout,
                max_request_body: config.max_request_body,
                guest_output: config.guest_output,
                routes: config.routes,
                peak_memory: Arc::default(),
            }),
        })
    }

    /// The key-value backend the component uses.
    pub fn backend(&self) -> &Arc<dyn KvBackend> {
        &self.inner.kv.backend
    }

    /// The in-memory store, when loaded with [`StoreChoice::Memory`].
    pub fn memory_store(&self) -> Option<&Arc<MemoryStore>> {
        self.inner.memory.as_ref()
    }

    /// Sends one request to a fresh instance, in-process, and returns the whole response.
    ///
    /// The URI may be just a path (`/users/@me/devices`); a missing `Host` header is
    /// set to `localhost`. A path matching none of [`HostConfig::routes`] is answered 404
    /// with an empty body, without running the component. `Err` means the guest trapped,
    /// ran out of time, or never answered: the HTTP server turns it into a 500.
    pub async fn handle(&self, req: http::Request<Bytes>) -> Result<http::Response<Bytes>> {
        self.handle_from(req, None).await
    }

    pub(crate) async fn handle_from(
        &self,
        req: http::Request<Bytes>,
        client: Option<SocketAddr>,
    ) -> Result<http::Response<Bytes>> {
        let Some(route) = self.inner.routes.find(req.uri().path()) else {
            let mut resp = http::Response::new(Bytes::new());
            *resp.status_mut() = http::StatusCode::NOT_FOUND;
            return Ok(resp);
        };
        let req = spin_request(req, &route, client)?;
        self.within_deadline(self.run(req)).await
    }

    /// The live devices of `user_id`, oldest registration first, from the component's
    /// `push:devices/registry.list-devices` on a fresh instance.
    ///
    /// Runs like a request: same variables, store, guest output and
    /// [`HostConfig::request_timeout`]. The outer `Err` means the guest trapped or timed
    /// out, or the component does not export `push:devices/registry@0.1.0` (an older
    /// build); the inner one is the interface's typed error, e.g.
    /// [`RegistryError::InvalidUserId`] for user 0.
    pub async fn list_devices(
        &self,
        user_id: u64,
    ) -> Result<std::result::Result<Vec<Device>, RegistryError>> {
        let pre = self.registry()?;
        self.within_deadline(async move {
            let mut store = self.new_store();
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .push_devices_registry()
                .call_list_devices(&mut store, user_id)
                .await
        })
        .await
        .map_err(|e| e.context("push:devices/registry.list-devices failed"))
    }

    /// Removes `(provider, token)` from every account holding it and returns how many
    /// did, from the component's `push:devices/registry.invalidate` on a fresh instance.
    ///
    /// A VoIP token (`Provider::ApnsVoip`, `Provider::ApnsInternalVoip`) is removed on its
    /// own: the device keeps its regular token. Errors as for [`Host::list_devices`]; a
    /// token malformed for its provider is [`RegistryError::InvalidToken`].
    pub async fn invalidate(
        &self,
        provider: Provider,
        token: &str,
        reason: InvalidationReason,
    ) -> Result<std::result::Result<u32, RegistryError>> {
        let pre = self.registry()?;
        self.within_deadline(async move {
            let mut store = self.new_store();
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .push_devices_registry()
                .call_invalidate(&mut store, provider, token, reason)
                .await
        })
        .await
        .map_err(|e| e.context("push:devices/registry.invalidate failed"))
    }

    /// Whether the component exports `push:devices/registry@0.1.0`, i.e. whether
    /// [`Host::list_devices`] and [`Host::invalidate`] can work.
    pub fn has_registry(&self) -> bool {
        self.inner.registry.is_ok()
    }

    fn registry(&self) -> Result<&PushDevicesPre<RequestState>> {
        self.inner.registry.as_ref().map_err(|why| {
            format_err!(
                "the component does not export {} (built before it existed?): {why}",
                registry::INTERFACE
            )
        })
    }

    /// Runs one guest call under [`HostConfig::request_timeout`]. The store's epoch
    /// callback ([`Host::new_store`]) interrupts a busy guest; this outer timeout also
    /// covers a guest waiting on something that never comes.
    async fn within_deadline<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let timeout = self.inner.request_timeout;
        match tokio::time::timeout(timeout + EPOCH_SLACK, call).await {
            Ok(result) => result,
            Err(_) => Err(format_err!("request timed out after {timeout:?}")),
        }
    }

    fn new_state(&self) -> RequestState {
        let mut wasi = WasiCtx::builder();
        match &self.inner.guest_output {
            GuestOutput::Stderr => {
                wasi.stdout(std::io::stderr()).stderr(std::io::stderr());
            }
            GuestOutput::Capture(c) => {
                wasi.stdout(c.0.clone()).stderr(c.0.clone());
            }
            GuestOutput::Discard => {}
        }
        RequestState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: DenyOutbound,
            kv: Arc::clone(&self.inner.kv),
            variables: Arc::clone(&self.inner.variables),
            memory: MemoryProbe::new(Arc::clone(&self.inner.peak_memory)),
        }
    }

    /// The linear memory of the largest request (instance) since the last call, then resets.
    /// Every request's store records its memories' initial sizes and growth through a
    /// `wasmtime::ResourceLimiter` that refuses nothing; the benchmark reads it per route.
    pub fn take_peak_memory(&self) -> RequestMemory {
        use std::sync::atomic::Ordering::Relaxed;
        RequestMemory {
            total: self.inner.peak_memory.total.swap(0, Relaxed),
            largest: self.inner.peak_memory.largest.swap(0, Relaxed),
        }
    }

    /// A fresh store for one guest call (an HTTP request or a typed call): its own WASI,
    /// HTTP and resource state over the shared backend and variables, and an epoch
    /// callback that yields to tokio every tick and fails the call past
    /// [`HostConfig::request_timeout`].
    fn new_store(&self) -> Store<RequestState> {
        let mut store = Store::new(self.inner.proxy.engine(), self.new_state());
        store.limiter(|state| &mut state.memory);
        let deadline = Instant::now() + self.inner.request_timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Err(format_err!("guest exceeded the request deadline"))
            } else {
                // tokio's own yield: unlike a bare wake-up, it lets the runtime poll I/O
                // before resuming this guest, so other connections are served meanwhile.
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
            }
        });
        store
    }

    async fn run(&self, req: http::Request<Bytes>) -> Result<http::Response<Bytes>> {
        let mut store = self.new_store();
        let req = req.map(|body| {
            Full::new(body)
                .map_err(|never: Infallible| -> wasmtime_wasi_http::Error { match never {} })
        });
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;
        let proxy = self.inner.proxy.clone();

        // The guest and the response reader run side by side in this task: the guest
        // may still be writing the body after it has sent the headers.
        let guest = async move {
            let instance = proxy.instantiate_async(&mut store).await?;
            instance
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await
            // `store` drops here, closing the body if the guest did not.
        };
        let response = async move {
            let resp = match receiver.await {
                Ok(Ok(resp)) => resp,
                Ok(Err(code)) => return Err(format_err!("guest answered with error {code:?}")),
                Err(_) => return Err(format_err!("guest never set a response")),
            };
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format_err!("reading the guest's response body: {e:?}"))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body))
        };
        let (guest, response) = tokio::join!(guest, response);
        guest.map_err(|e| e.context("guest failed"))?;
        response
    }

    /// Serves HTTP/1.1 on `listener` until `shutdown` completes, then stops accepting,
    /// lets in-flight requests finish, and returns. One log line per request on stderr.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        server::serve(self.clone(), listener, shutdown).await
    }

    /// Binds `addr` (e.g. `"127.0.0.1:0"` for a free port) and serves on a spawned task
    /// of the current tokio runtime. See [`ServerHandle`].
    pub async fn spawn_server(&self, addr: &str) -> Result<ServerHandle> {
        server::spawn(self.clone(), addr).await
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    pub(crate) fn max_request_body(&self) -> usize {
        self.inner.max_request_body
    }
}

/// Extra wall-clock time past the request timeout before the outer timeout fires.
const EPOCH_SLACK: Duration = Duration::from_millis(500);

/// Adds the headers Spin's HTTP trigger adds (`spin-full-url`, `spin-path-info`, …)
/// after removing any such headers the client sent, and makes sure there is a `Host`
/// header.
fn spin_request(
    mut req: http::Request<Bytes>,
    route: &routes::RouteMatch<'_>,
    client: Option<SocketAddr>,
) -> Result<http::Request<Bytes>> {
    use http::header::{HOST, HeaderName, HeaderValue};
    let host = match (req.uri().authority(), req.headers().get(HOST)) {
        (Some(a), _) => a.as_str().to_owned(),
        (None, Some(h)) => h
            .to_str()
            .map_err(|_| format_err!("invalid Host header"))?
            .to_owned(),
        (None, None) => "localhost".to_owned(),
    };
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let headers = req.headers_mut();
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for k in spoofed {
        headers.remove(k);
    }
    let mut set = |name: &'static str, value: String| -> Result<()> {
        let v = HeaderValue::try_from(value).map_err(|_| format_err!("invalid {name} value"))?;
        headers.insert(HeaderName::from_static(name), v);
        Ok(())
    };
    set("spin-full-url", format!("http://{host}{path_and_query}"))?;
    set("spin-path-info", route.path_info.clone())?;
    set("spin-matched-route", route.raw.to_owned())?;
    set("spin-raw-component-route", route.raw.to_owned())?;
    set("spin-component-route", route.component_route.to_owned())?;
    set("spin-base-path", "/".to_owned())?;
    if let Some(addr) = client {
        set("spin-client-addr", addr.to_string())?;
    }
    if !req.headers().contains_key(HOST) {
        let v = HeaderValue::try_from(host).map_err(|_| format_err!("invalid Host"))?;
        req.headers_mut().insert(HOST, v);
    }
    Ok(req)
}
