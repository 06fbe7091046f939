//! The push-devices benchmark: per-request latency of every route through the host's
//! in-process API, against a hello-world floor and the same core compiled natively, on the
//! in-memory and the SQLite store, with 10 and with 100,000 users preloaded; store calls per
//! route; and the component's footprint.
//!
//! ```text
//! cargo run --profile host -p push-devices-host --bin bench [-- --rounds N --batch N --users N --skip-sqlite --perf-map --only ROUTE --component FILE]
//! ```
//!
//! `--perf-map` profiles instead of measuring cleanly: the components are built unstripped
//! into `<target>/perf` and the engine writes `/tmp/perf-<pid>.map`, so
//! `perf record -g -- target/host/bench --perf-map` then `perf report` name guest functions;
//! `--only sync-token` runs just the routes whose name contains the text, or one of several
//! comma-separated texts, and the floor (targets of the routes not run then read NaN or MISS);
//! `--component FILE` measures a prebuilt component instead of building one, for A/B runs of
//! two builds (BENCHMARKS.md, "Where the time goes").
//!
//! It builds the component (`cargo build --target wasm32-wasip2 --release`) and the floor
//! fixture (`host/bench-fixtures/hello`, into the same target dir) first; both are no-ops when
//! fresh. Every figure of one table comes from one run: each round runs a batch of every case
//! in turn, a floor batch before each route batch, so load from elsewhere on the machine hits
//! them alike. Medians and p99 are over all the samples of a case. Run it on a quiet machine
//! (`uptime`) and compare ratios, not absolute figures. BENCHMARKS.md holds the latest table.

use bytes::Bytes;
use push_devices as pd;
use push_devices_host::{
    Access, Dispatch, GuestOutput, Host, HostConfig, KeyValue, KvBackend, KvError, MemoryStore,
    SqliteStore, StoreChoice, SwapOutcome,
};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error>;
/// Opens a fresh backend of one kind, given a tag for its file.
type MakeBackend = Box<dyn Fn(&str) -> Result<Arc<dyn KvBackend>, BoxError>>;

const AUTH: &str = "bench-auth-secret-0123456789abcdef0123456789";
const SYNC: &str = "bench-sync-secret-0123456789abcdef0123456789";
const ADMIN: &str = "bench-admin-key-0123456789abcdef0123456789ab";
const LABEL: &str = "default";
/// First preloaded user id (ids must be non-zero snowflakes; any positive number parses).
const FIRST_USER: u64 = 1_000_000;
const SMALL: usize = 10;
const SYNC_SIZES: [usize; 3] = [1, 8, 32];
const LIMITED: &str = "re-register, rate limiter on";

struct Options {
    rounds: usize,
    batch: usize,
    large: usize,
    sqlite: bool,
    perf_map: bool,
    /// Runs only the routes whose name contains one of these comma-separated parts, for
    /// profiling (register with delete keeps the records' size steady).
    only: Option<String>,
    /// A prebuilt push-devices component to measure instead of building one, for A/B runs.
    component: Option<PathBuf>,
}

impl Options {
    fn wants(&self, case: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|part| case.contains(part)))
    }
}

fn options() -> Result<Options, BoxError> {
    let mut o = Options {
        rounds: 25,
        batch: 40,
        large: 100_000,
        sqlite: true,
        perf_map: false,
        only: None,
        component: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<usize, BoxError> {
            Ok(args
                .next()
                .ok_or(format!("{name} needs a number"))?
                .parse()?)
        };
        match a.as_str() {
            "--rounds" => o.rounds = num("--rounds")?,
            "--batch" => o.batch = num("--batch")?,
            "--users" => o.large = num("--users")?,
            "--skip-sqlite" => o.sqlite = false,
            "--perf-map" => o.perf_map = true,
            "--only" => o.only = Some(args.next().ok_or("--only needs a route name")?),
            "--component" => {
                o.component = Some(args.next().ok_or("--component needs a .wasm path")?.into())
            }
            _ => return Err(format!("unknown argument {a}; see the file's doc comment").into()),
        }
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------
// Store-call counting

/// A backend that counts every call (each is one round trip behind a networked store).
struct Counting<B> {
    inner: B,
    calls: AtomicU64,
}

impl<B> Counting<B> {
    fn new(inner: B) -> Self {
        Counting {
            inner,
            calls: AtomicU64::new(0),
        }
    }
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

impl<B: KvBackend> KvBackend for Counting<B> {
    fn get(&self, s: &str, k: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.tick();
        self.inner.get(s, k)
    }
    fn set(&self, s: &str, k: &str, v: &[u8]) -> Result<(), KvError> {
        self.tick();
        self.inner.set(s, k, v)
    }
    fn delete(&self, s: &str, k: &str) -> Result<(), KvError> {
        self.tick();
        self.inner.delete(s, k)
    }
    fn list_keys(&self, s: &str) -> Result<Vec<String>, KvError> {
        self.tick();
        self.inner.list_keys(s)
    }
    fn swap(
        &self,
        s: &str,
        k: &str,
        expected: Option<&[u8]>,
        v: &[u8],
    ) -> Result<SwapOutcome, KvError> {
        self.tick();
        self.inner.swap(s, k, expected, v)
    }
    fn increment(&self, s: &str, k: &str, delta: i64) -> Result<i64, KvError> {
        self.tick();
        self.inner.increment(s, k, delta)
    }
    fn exists(&self, s: &str, k: &str) -> Result<bool, KvError> {
        self.tick();
        self.inner.exists(s, k)
    }
    fn get_many(&self, s: &str, keys: &[String]) -> Result<Vec<KeyValue>, KvError> {
        self.tick();
        self.inner.get_many(s, keys)
    }
    fn set_many(&self, s: &str, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        self.tick();
        self.inner.set_many(s, entries)
    }
    fn delete_many(&self, s: &str, keys: &[String]) -> Result<(), KvError> {
        self.tick();
        self.inner.delete_many(s, keys)
    }
    fn dispatch(&self, access: Access) -> Dispatch {
        self.inner.dispatch(access)
    }
}

// ---------------------------------------------------------------------------------------
// The population

/// Deterministic mixing (splitmix64), for device counts and random picks.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn user(i: usize) -> u64 {
    FIRST_USER + i as u64
}

/// Devices of the users the routes are measured on (see `Workload::random_user`).
const TYPICAL_DEVICES: usize = 3;

/// 1 to 5 devices per user.
fn device_count(user: u64) -> usize {
    1 + (mix(user) % 5) as usize
}

fn device_token(user: u64, i: usize) -> String {
    format!("bench-{user}-{i}")
}

/// Preloads `users` users natively through the component's own registry code, so the records
/// are byte-identical to what the component writes.
fn preload(users: usize, now_ms: u64) -> Result<pd::memory::MemStore, BoxError> {
    let store = pd::memory::MemStore::new();
    let registry = pd::registry::Registry::new(&store, pd::registry::Limits::default(), now_ms);
    for i in 0..users {
        let u = user(i);
        for d in 0..device_count(u) {
            let reg = pd::form::Registration {
                provider: pd::device::Provider::Gcm,
                token: device_token(u, d),
                voip: None,
                bypass_server_throttling_supported: false,
                bundle_id: pd::device::DEFAULT_BUNDLE_ID.to_owned(),
            };
            registry
                .register(u, &reg)
                .map_err(|e| format!("preload: {e}"))?;
        }
    }
    Ok(store)
}

// ---------------------------------------------------------------------------------------
// Requests

/// One request, in both shapes: for the host (wasm) and for `service::handle` (native).
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Req {
    fn http(&self) -> http::Request<Bytes> {
        let mut b = http::Request::builder()
            .method(self.method)
            .uri(self.path.as_str());
        for (k, v) in &self.headers {
            b = b.header(*k, v.as_str());
        }
        b.body(Bytes::from(self.body.clone()))
            .unwrap_or_else(|_| http::Request::new(Bytes::new()))
    }
    fn native(&self) -> pd::http::Request {
        let mut r = pd::http::Request::new(self.method, &self.path, self.body.as_bytes());
        for (k, v) in &self.headers {
            r = r.with_header(k, v);
        }
        r
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Route {
    Register,
    Reregister,
    Delete,
    SyncToken,
    Sync(usize),
    List,
}

impl Route {
    const ALL: [Route; 8] = [
        Route::Register,
        Route::Reregister,
        Route::Delete,
        Route::SyncToken,
        Route::Sync(1),
        Route::Sync(8),
        Route::Sync(32),
        Route::List,
    ];
    fn name(self) -> String {
        match self {
            Route::Register => "register (new device)".into(),
            Route::Reregister => "re-register".into(),
            Route::Delete => "delete".into(),
            Route::SyncToken => "sync-token".into(),
            Route::Sync(n) => format!("sync, {n} token{}", if n == 1 { "" } else { "s" }),
            Route::List => "list-devices".into(),
        }
    }
}

/// What a scale's requests are made from: its users and the state the cases carry between
/// batches (devices registered but not yet deleted, the sync fixtures).
struct Workload {
    users: usize,
    now_secs: u64,
    auth: pd::token::Keyring,
    rng: u64,
    fresh: u64,
    tag: &'static str,
    /// (user, token) registered by `Register`, deleted by `Delete`.
    pending: VecDeque<(u64, String)>,
    /// Per sync size: the caller, the device token, and the body with its sync tokens.
    syncs: BTreeMap<usize, (u64, String)>,
}

impl Workload {
    fn new(users: usize, now_secs: u64, tag: &'static str) -> Result<Self, BoxError> {
        let auth = pd::token::Keyring::parse(AUTH).map_err(|e| format!("{e:?}"))?;
        let sync = pd::token::Keyring::parse(SYNC).map_err(|e| format!("{e:?}"))?;
        let mut syncs = BTreeMap::new();
        for n in SYNC_SIZES {
            // The caller and the named accounts: preloaded users when N is below the small
            // population, else (N = 32) accounts beyond the population at both scales, created
            // by the first sync with this one device, so both scales sync the same records.
            let caller = user(n % users.max(1));
            let device = format!("bench-sync-device-{n}");
            let named: Vec<String> = (0..n)
                .map(|j| {
                    // Distinct accounts, none of them the caller.
                    let stride = (users / (n + 1)).max(1);
                    let account = if n < SMALL {
                        user((n + 1 + j * stride) % users)
                    } else {
                        user(users + 1000 * n + j)
                    };
                    sync.mint(pd::token::Purpose::Sync, account, now_secs)
                })
                .collect();
            let body = serde_json_body(&device, &named);
            syncs.insert(n, (caller, body));
        }
        Ok(Workload {
            users,
            now_secs,
            auth,
            rng: 7,
            fresh: 0,
            tag,
            pending: VecDeque::new(),
            syncs,
        })
    }

    /// A random preloaded user holding 3 devices, the population's mean, so both scales work on
    /// records of one size: any user of the 10 would average 2.4 devices against 3.0 of the
    /// 100,000, and a route's cost follows its record's size, which is not what scale measures.
    /// (A population too small to hold one, from `--users`, gets any user.)
    fn random_user(&mut self) -> u64 {
        let mut u = 0;
        for _ in 0..1000 {
            self.rng = mix(self.rng);
            u = user((self.rng % self.users as u64) as usize);
            if device_count(u) == TYPICAL_DEVICES {
                break;
            }
        }
        u
    }

    fn bearer(&self, u: u64) -> String {
        format!(
            "Bearer {}",
            self.auth.mint(pd::token::Purpose::Auth, u, self.now_secs)
        )
    }

    fn next(&mut self, route: Route) -> Req {
        let (method, path, u, body): (&'static str, String, u64, String) = match route {
            Route::Register => {
                // Round robin on the small population (no user nears the 20-device cap and
                // its evictions), random on the large one.
                let u = if self.users <= SMALL {
                    user(self.fresh as usize % self.users)
                } else {
                    self.random_user()
                };
                self.fresh += 1;
                let token = format!("bench-new-{}-{}", self.tag, self.fresh);
                self.pending.push_back((u, token.clone()));
                ("POST", "/users/@me/devices".into(), u, gcm(&token))
            }
            Route::Reregister => {
                let u = self.random_user();
                self.rng = mix(self.rng);
                let d = (self.rng % device_count(u) as u64) as usize;
                (
                    "POST",
                    "/users/@me/devices".into(),
                    u,
                    gcm(&device_token(u, d)),
                )
            }
            Route::Delete => {
                let (u, token) = self.pending.pop_front().unwrap_or_else(|| {
                    // Nothing pending: deleting an absent device is a valid request too.
                    (user(0), "bench-absent".to_owned())
                });
                ("DELETE", "/users/@me/devices".into(), u, gcm(&token))
            }
            Route::SyncToken => {
                let u = self.random_user();
                (
                    "GET",
                    "/users/@me/devices/sync-token".into(),
                    u,
                    String::new(),
                )
            }
            Route::Sync(n) => {
                let (caller, body) = self.syncs.get(&n).cloned().unwrap_or_default();
                ("PUT", "/users/@me/devices/sync".into(), caller, body)
            }
            Route::List => {
                let u = self.random_user();
                return Req {
                    method: "GET",
                    path: format!("/internal/users/{u}/devices"),
                    headers: vec![("x-admin-key", ADMIN.to_owned())],
                    body: String::new(),
                };
            }
        };
        let mut headers = vec![("authorization", self.bearer(u))];
        if !body.is_empty() {
            headers.push(("content-type", "application/json".to_owned()));
        }
        Req {
            method,
            path,
            headers,
            body,
        }
    }
}

fn gcm(token: &str) -> String {
    format!(r#"{{"provider": "gcm", "token": "{token}"}}"#)
}

fn serde_json_body(device: &str, tokens: &[String]) -> String {
    let list: Vec<String> = tokens.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        r#"{{"provider": "gcm", "token": "{device}", "push_sync_tokens": [{}]}}"#,
        list.join(", ")
    )
}

// ---------------------------------------------------------------------------------------
// Samples

#[derive(Default, Clone)]
struct Samples {
    ns: Vec<u64>,
    calls: BTreeMap<u64, u64>,
    /// Largest linear-memory total of one request (wasm only).
    memory: usize,
}

impl Samples {
    fn push(&mut self, d: Duration, calls: u64) {
        self.ns.push(d.as_nanos() as u64);
        *self.calls.entry(calls).or_default() += 1;
    }
    fn quantile(&self, q: f64) -> f64 {
        let mut v = self.ns.clone();
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i.min(v.len() - 1)] as f64 / 1000.0
    }
    fn median(&self) -> f64 {
        self.quantile(0.5)
    }
    fn p99(&self) -> f64 {
        self.quantile(0.99)
    }
    /// Store calls per request: "n" when constant, "a-b" when it varied.
    fn calls_text(&self) -> String {
        match (self.calls.keys().next(), self.calls.keys().last()) {
            (Some(a), Some(b)) if a == b => a.to_string(),
            (Some(a), Some(b)) => format!("{a}-{b}"),
            _ => "-".into(),
        }
    }
    /// The most frequent count.
    fn calls_mode(&self) -> Option<u64> {
        self.calls.iter().max_by_key(|(_, n)| **n).map(|(c, _)| *c)
    }
}

// ---------------------------------------------------------------------------------------
// One store kind: hosts, natives, the interleaved rounds

struct Scale {
    name: &'static str,
    work: Workload,
    native_work: Workload,
    host: Host,
    limited: Host,
    counter: Arc<Counting<Arc<dyn KvBackend>>>,
    native: pd::memory::MemPlatform,
    native_limited: pd::memory::MemPlatform,
    /// Store calls of the first sync with N tokens, when all N accounts change: (wasm, native).
    first_sync: BTreeMap<usize, (u64, u64)>,
}

fn variables(limit: &str) -> BTreeMap<String, String> {
    [
        ("auth_token_secret", AUTH),
        ("sync_token_secret", SYNC),
        ("admin_key", ADMIN),
        ("rate_limit_writes", limit),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The limiter's cost is measured with a limit nobody reaches.
const NO_LIMIT: &str = "0";
const HUGE_LIMIT: &str = "4000000000";

fn native_platform(
    limit: &str,
    now_ms: u64,
    store: Arc<pd::memory::MemStore>,
) -> pd::memory::MemPlatform {
    let mut p = pd::memory::MemPlatform::new(
        &[
            ("auth_token_secret", AUTH),
            ("sync_token_secret", SYNC),
            ("admin_key", ADMIN),
            ("rate_limit_writes", limit),
        ],
        now_ms,
    );
    p.store = store;
    p
}

fn load(
    component: &Path,
    store: StoreChoice,
    vars: BTreeMap<String, String>,
) -> Result<Host, BoxError> {
    let mut config = HostConfig::new(component);
    config.store = store;
    config.variables = vars;
    config.guest_output = GuestOutput::Discard;
    Ok(Host::load(config)?)
}

fn scale(
    name: &'static str,
    users: usize,
    backend: Arc<dyn KvBackend>,
    component: &Path,
    now_ms: u64,
) -> Result<Scale, BoxError> {
    let t = Instant::now();
    let preloaded = preload(users, now_ms)?;
    let dump = preloaded.dump();
    let entries: Vec<(String, Vec<u8>)> = dump.into_iter().collect();
    for chunk in entries.chunks(10_000) {
        backend.set_many(LABEL, chunk)?;
    }
    eprintln!(
        "  {name}: preloaded {users} users ({} keys) in {:.1?}",
        entries.len(),
        t.elapsed()
    );
    let native_store = Arc::new(preloaded);
    let counter = Arc::new(Counting::new(backend));
    let host = load(
        component,
        StoreChoice::Custom(counter.clone()),
        variables(NO_LIMIT),
    )?;
    let limited = load(
        component,
        StoreChoice::Custom(counter.clone()),
        variables(HUGE_LIMIT),
    )?;
    Ok(Scale {
        name,
        work: Workload::new(users, now_ms / 1000, name)?,
        native_work: Workload::new(users, now_ms / 1000, name)?,
        host,
        limited,
        counter,
        native: native_platform(NO_LIMIT, now_ms, native_store.clone()),
        native_limited: native_platform(HUGE_LIMIT, now_ms, native_store),
        first_sync: BTreeMap::new(),
    })
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Wasm,
    Typed,
    Native,
    WasmLimited,
    NativeLimited,
}

type Key = (&'static str, Kind, String);

struct Results {
    floor: Samples,
    cases: BTreeMap<Key, Samples>,
}

async fn wasm_once(
    host: &Host,
    counter: &Counting<Arc<dyn KvBackend>>,
    req: &Req,
    s: &mut Samples,
) -> Result<(), BoxError> {
    let r = req.http();
    let before = counter.calls();
    let t = Instant::now();
    let resp = host.handle(r).await?;
    let d = t.elapsed();
    let calls = counter.calls() - before;
    if !resp.status().is_success() {
        return Err(format!(
            "{} {} answered {}: {}",
            req.method,
            req.path,
            resp.status(),
            String::from_utf8_lossy(resp.body())
        )
        .into());
    }
    s.push(d, calls);
    Ok(())
}

fn native_once(p: &pd::memory::MemPlatform, req: &Req, s: &mut Samples) -> Result<(), BoxError> {
    let r = req.native();
    let before = p.store.calls();
    let t = Instant::now();
    let resp = pd::service::handle(p, &r);
    let d = t.elapsed();
    let calls = p.store.calls() - before;
    if !(200..300).contains(&resp.status) {
        return Err(format!(
            "native {} {} answered {}: {}",
            req.method,
            req.path,
            resp.status,
            String::from_utf8_lossy(&resp.body)
        )
        .into());
    }
    s.push(d, calls);
    Ok(())
}

async fn floor_batch(hello: &Host, n: usize, s: &mut Samples) -> Result<(), BoxError> {
    for _ in 0..n {
        let req = http::Request::get("/").body(Bytes::new())?;
        let t = Instant::now();
        let resp = hello.handle(req).await?;
        let d = t.elapsed();
        if !resp.status().is_success() {
            return Err(format!("hello answered {}", resp.status()).into());
        }
        s.push(d, 0);
    }
    s.memory = s.memory.max(hello.take_peak_memory().total);
    Ok(())
}

async fn run_store(scales: &mut [Scale], hello: &Host, o: &Options) -> Result<Results, BoxError> {
    let mut res = Results {
        floor: Samples::default(),
        cases: BTreeMap::new(),
    };
    // First syncs: every named account changes. Counted once, then the syncs are steady.
    for sc in scales.iter_mut() {
        for n in SYNC_SIZES {
            let req = sc.work.next(Route::Sync(n));
            let mut s = Samples::default();
            wasm_once(&sc.host, &sc.counter, &req, &mut s).await?;
            let mut ns = Samples::default();
            let req = sc.native_work.next(Route::Sync(n));
            native_once(&sc.native, &req, &mut ns)?;
            sc.first_sync.insert(
                n,
                (s.calls_mode().unwrap_or(0), ns.calls_mode().unwrap_or(0)),
            );
        }
    }
    let _ = hello.take_peak_memory();
    for round in 0..o.rounds {
        for sc in scales.iter_mut() {
            for route in Route::ALL.into_iter().filter(|r| o.wants(&r.name())) {
                floor_batch(hello, o.batch, &mut res.floor).await?;
                let _ = sc.host.take_peak_memory();
                let s = res
                    .cases
                    .entry((sc.name, Kind::Wasm, route.name()))
                    .or_default();
                for _ in 0..o.batch {
                    let req = sc.work.next(route);
                    wasm_once(&sc.host, &sc.counter, &req, s).await?;
                }
                s.memory = s.memory.max(sc.host.take_peak_memory().total);
                if route == Route::List {
                    // The gateway's typed call, same users.
                    let s = res
                        .cases
                        .entry((sc.name, Kind::Typed, route.name()))
                        .or_default();
                    for _ in 0..o.batch {
                        let u = sc.work.random_user();
                        let before = sc.counter.calls();
                        let t = Instant::now();
                        let devices = sc.host.list_devices(u).await?;
                        let d = t.elapsed();
                        let calls = sc.counter.calls() - before;
                        devices.map_err(|e| format!("list_devices({u}): {e:?}"))?;
                        s.push(d, calls);
                    }
                    s.memory = s.memory.max(sc.host.take_peak_memory().total);
                }
                let s = res
                    .cases
                    .entry((sc.name, Kind::Native, route.name()))
                    .or_default();
                for _ in 0..o.batch {
                    let req = sc.native_work.next(route);
                    native_once(&sc.native, &req, s)?;
                }
            }
            // The rate limiter's cost, on re-registration.
            if !o.wants(LIMITED) {
                continue;
            }
            let s = res
                .cases
                .entry((sc.name, Kind::WasmLimited, Route::Reregister.name()))
                .or_default();
            for _ in 0..o.batch {
                let req = sc.work.next(Route::Reregister);
                wasm_once(&sc.limited, &sc.counter, &req, s).await?;
            }
            s.memory = s.memory.max(sc.limited.take_peak_memory().total);
            let s = res
                .cases
                .entry((sc.name, Kind::NativeLimited, Route::Reregister.name()))
                .or_default();
            for _ in 0..o.batch {
                let req = sc.native_work.next(Route::Reregister);
                native_once(&sc.native_limited, &req, s)?;
            }
        }
        if round % 5 == 4 {
            eprintln!("  round {}/{}", round + 1, o.rounds);
        }
    }
    Ok(res)
}

// ---------------------------------------------------------------------------------------
// Building and footprint

/// `unstripped` keeps the `name` section, for profiles that name guest functions.
fn build(dir: &Path, target_dir: &Path, unstripped: bool) -> Result<(), BoxError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    if unstripped {
        command.env("CARGO_PROFILE_RELEASE_STRIP", "false");
    }
    let status = command
        .current_dir(dir)
        .args([
            "build",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "--release",
            "--target-dir",
        ])
        .arg(target_dir)
        .status()?;
    if !status.success() {
        return Err(format!("cargo build in {} failed", dir.display()).into());
    }
    Ok(())
}

fn engine() -> Result<wasmtime::Engine, BoxError> {
    // As the host's engine: epoch interruption and the pooling allocator keeping 4 MiB resident.
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.linear_memory_keep_resident(4 << 20);
    pool.table_keep_resident(4 << 20);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    Ok(wasmtime::Engine::new(&config)?)
}

/// Compile time (median of 3) and bare instantiation time (median of 2000: a fresh store and
/// an instance, imports stubbed as traps: instantiation runs only the modules' own start-up code).
fn footprint(path: &Path, engine: &wasmtime::Engine) -> Result<(u64, f64, f64), BoxError> {
    let bytes = std::fs::read(path)?;
    let mut compiles = Vec::new();
    let mut component = None;
    for _ in 0..3 {
        let t = Instant::now();
        component = Some(wasmtime::component::Component::new(engine, &bytes)?);
        compiles.push(t.elapsed().as_secs_f64() * 1e3);
    }
    compiles.sort_by(f64::total_cmp);
    let component = component.ok_or("no component")?;
    let mut linker = wasmtime::component::Linker::<()>::new(engine);
    linker.define_unknown_imports_as_traps(&component)?;
    let pre = linker.instantiate_pre(&component)?;
    let mut s = Samples::default();
    for _ in 0..2000 {
        let t = Instant::now();
        let mut store = wasmtime::Store::new(engine, ());
        store.set_epoch_deadline(1 << 40);
        pre.instantiate(&mut store)?;
        drop(store);
        s.push(t.elapsed(), 0);
    }
    Ok((bytes.len() as u64, compiles[1], s.median()))
}

// ---------------------------------------------------------------------------------------
// Report

fn fmt_us(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.2} ms", x / 1000.0)
    } else {
        format!("{x:.1} µs")
    }
}

/// One row of the per-store table: a wasm case beside its native counterpart and the floor.
fn row(label: &str, users: &str, w: &Samples, n: &Samples, floor: f64) -> String {
    format!(
        "| {label} | {users} | {} | {} | {:.2} | {} | {} | {:.1} | {} / {} | {} KiB |\n",
        fmt_us(w.median()),
        fmt_us(w.p99()),
        w.median() / floor,
        fmt_us(n.median()),
        fmt_us(n.p99()),
        (w.median() - floor) / n.median(),
        w.calls_text(),
        n.calls_text(),
        w.memory / 1024
    )
}

struct Check {
    what: String,
    figure: String,
    pass: bool,
}

fn report(store: &str, res: &Results, scales: &[Scale], checks: &mut Vec<Check>) -> String {
    let mut out = String::new();
    let floor = res.floor.median();
    out.push_str(&format!(
        "\n### {store} store\n\nFloor (hello component): median {}, p99 {}, {} samples.\n\n",
        fmt_us(floor),
        fmt_us(res.floor.p99()),
        res.floor.ns.len()
    ));
    out.push_str("| route | users | wasm median | wasm p99 | × floor | native median | native p99 | (wasm − floor) / native | store calls wasm / native | peak memory |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let get = |sc: &'static str, k: Kind, r: &str| res.cases.get(&(sc, k, r.to_owned()));
    for route in Route::ALL {
        for sc in scales {
            let (Some(w), Some(n)) = (
                get(sc.name, Kind::Wasm, &route.name()),
                get(sc.name, Kind::Native, &route.name()),
            ) else {
                continue;
            };
            let over = (w.median() - floor) / n.median();
            out.push_str(&row(&route.name(), sc.name, w, n, floor));
            if route == Route::List
                && let Some(t) = get(sc.name, Kind::Typed, &route.name())
            {
                out.push_str(&row("list-devices (typed call)", sc.name, t, n, floor));
            }
            if sc.name == scales[0].name {
                checks.push(Check {
                    what: format!("{store}: {} − floor ≤ 2 × native", route.name()),
                    figure: format!("{:.1} ×", over),
                    pass: over <= 2.0,
                });
                if let Some(calls) = w.calls_mode() {
                    checks.push(Check {
                        what: format!("{store}: {} store calls, wasm = native", route.name()),
                        figure: format!("{} / {}", w.calls_text(), n.calls_text()),
                        // The same counts occur on both sides (new registrations vary, 4 or 5,
                        // with whether the token's index shard exists yet) and the commonest agrees.
                        pass: Some(calls) == n.calls_mode() && w.calls.keys().eq(n.calls.keys()),
                    });
                }
            }
        }
    }
    for sc in scales {
        if let (Some(w), Some(n), Some(wb), Some(nb)) = (
            get(sc.name, Kind::WasmLimited, &Route::Reregister.name()),
            get(sc.name, Kind::NativeLimited, &Route::Reregister.name()),
            get(sc.name, Kind::Wasm, &Route::Reregister.name()),
            get(sc.name, Kind::Native, &Route::Reregister.name()),
        ) {
            out.push_str(&row(LIMITED, sc.name, w, n, floor));
            checks.push(Check {
                what: format!(
                    "{store}, {} users: rate limiter's cost on re-register",
                    sc.name
                ),
                figure: format!(
                    "+{} store calls, +{} wasm, +{} native",
                    w.calls_mode().unwrap_or(0) as i64 - wb.calls_mode().unwrap_or(0) as i64,
                    fmt_us(w.median() - wb.median()),
                    fmt_us(n.median() - nb.median())
                ),
                pass: true,
            });
        }
    }
    let first: Vec<String> = scales
        .iter()
        .flat_map(|sc| {
            sc.first_sync
                .iter()
                .map(move |(n, (w, nat))| format!("{n} → {w} / {nat} ({} users)", sc.name))
        })
        .collect();
    out.push_str(&format!(
        "\nStore calls of a first sync, where every named account gains the device (wasm / native): {}.\n",
        first.join("; ")
    ));

    // Ratio targets.
    let small = scales[0].name;
    let med = |k: Kind, r: Route| {
        get(small, k, &r.name())
            .map(Samples::median)
            .unwrap_or(f64::NAN)
    };
    let reg = med(Kind::Wasm, Route::Register) / floor;
    checks.push(Check {
        what: format!("{store}: register median ≤ 1.5 × floor"),
        figure: format!("{reg:.2} ×"),
        pass: reg <= 1.5,
    });
    let s32 = med(Kind::Wasm, Route::Sync(32)) / floor;
    checks.push(Check {
        what: format!("{store}: sync with 32 tokens ≤ 4 × floor"),
        figure: format!("{s32:.2} ×"),
        pass: s32 <= 4.0,
    });
    if let Some(large) = scales.get(1) {
        for route in Route::ALL {
            for k in [Kind::Wasm, Kind::Typed] {
                let (Some(a), Some(b)) = (
                    get(small, k, &route.name()),
                    get(large.name, k, &route.name()),
                ) else {
                    continue;
                };
                let r = b.median() / a.median();
                checks.push(Check {
                    what: format!(
                        "{store}: {}{} {} users vs {small} ≤ 1.1 ×",
                        route.name(),
                        if k == Kind::Typed { " (typed)" } else { "" },
                        large.name
                    ),
                    figure: format!("{r:.2} ×"),
                    pass: r <= 1.1,
                });
            }
        }
    }
    for sc in scales {
        let calls = |r: Route| get(sc.name, Kind::Wasm, &r.name()).and_then(Samples::calls_mode);
        for (route, max) in [
            (Route::SyncToken, 0),
            (Route::Reregister, 2),
            (Route::Register, 4),
        ] {
            let c = calls(route).unwrap_or(u64::MAX);
            checks.push(Check {
                what: format!(
                    "{store}, {} users: {} store calls ≤ {max}",
                    sc.name,
                    route.name()
                ),
                figure: c.to_string(),
                pass: c <= max,
            });
        }
        let steady: Vec<u64> = SYNC_SIZES
            .iter()
            .filter_map(|n| calls(Route::Sync(*n)))
            .collect();
        let firsts: Vec<String> = sc
            .first_sync
            .iter()
            .map(|(n, (w, _))| format!("{n}:{w}"))
            .collect();
        checks.push(Check {
            what: format!(
                "{store}, {} users: sync calls flat in N when nothing changes",
                sc.name
            ),
            figure: format!(
                "steady {steady:?} for N = {SYNC_SIZES:?}; all change: {}",
                firsts.join(" ")
            ),
            pass: steady.windows(2).all(|w| w[0] == w[1]),
        });
    }
    out
}

fn main() -> Result<(), BoxError> {
    let o = options()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no repository root")?
        .to_owned();
    let mut target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    if o.perf_map {
        target.push("perf");
        if !push_devices_host::enable_perf_map() {
            return Err("the engine was built before --perf-map could take effect".into());
        }
    }
    eprintln!("building the component and the hello fixture…");
    if o.component.is_none() {
        build(&root, &target, o.perf_map)?;
    }
    build(&root.join("host/bench-fixtures/hello"), &target, o.perf_map)?;
    let component = o
        .component
        .clone()
        .unwrap_or_else(|| target.join("wasm32-wasip2/release/push_devices.wasm"));
    let hello_wasm = target.join("wasm32-wasip2/release/bench_hello.wasm");

    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();

    // Footprint first, on an engine of its own.
    eprintln!("footprint…");
    let engine = engine()?;
    let (pd_size, pd_compile, pd_inst) = footprint(&component, &engine)?;
    let (hello_size, hello_compile, hello_inst) = footprint(&hello_wasm, &engine)?;
    let t = Instant::now();
    let hello = load(&hello_wasm, StoreChoice::Memory, BTreeMap::new())?;
    let hello_load = t.elapsed();
    let t = Instant::now();
    let _ = load(&component, StoreChoice::Memory, variables(NO_LIMIT))?;
    let pd_load = t.elapsed();

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut checks = Vec::new();
    let mut tables = String::new();
    let mut memory_peak = 0usize;

    let db = std::env::temp_dir().join(format!("push-devices-bench-{}", std::process::id()));
    let mut kinds: Vec<(&str, MakeBackend)> = vec![(
        "memory",
        Box::new(|_| Ok(Arc::new(MemoryStore::new()) as Arc<dyn KvBackend>)),
    )];
    if o.sqlite {
        let db = db.clone();
        kinds.push((
            "SQLite",
            Box::new(move |tag| {
                let path = db.with_extension(format!("{tag}.db"));
                remove_db(&path);
                Ok(Arc::new(SqliteStore::open(&path)?) as Arc<dyn KvBackend>)
            }),
        ));
    }
    let large_name: &'static str = Box::leak(o.large.to_string().into_boxed_str());
    for (store, make) in &kinds {
        eprintln!("{store} store: preloading…");
        let mut scales = vec![
            scale("10", SMALL, make("small")?, &component, now_ms)?,
            scale(large_name, o.large, make("large")?, &component, now_ms)?,
        ];
        eprintln!(
            "{store} store: {} rounds of {} requests per case…",
            o.rounds, o.batch
        );
        let res = rt.block_on(run_store(&mut scales, &hello, &o))?;
        for s in res.cases.values() {
            memory_peak = memory_peak.max(s.memory);
        }
        tables.push_str(&report(store, &res, &scales, &mut checks));
        if res.floor.memory > 0 {
            tables.push_str(&format!(
                "Hello's peak linear memory per request: {} KiB.\n",
                res.floor.memory / 1024
            ));
        }
    }
    for tag in ["small", "large"] {
        remove_db(&db.with_extension(format!("{tag}.db")));
    }

    checks.push(Check {
        what: "release .wasm ≤ 300 KB".into(),
        figure: format!("{:.1} KB ({pd_size} bytes)", pd_size as f64 / 1000.0),
        pass: pd_size <= 300_000,
    });
    checks.push(Check {
        what: "one request's peak linear memory ≤ 2 MiB".into(),
        figure: format!(
            "{:.2} MiB (largest of any route)",
            memory_peak as f64 / (1 << 20) as f64
        ),
        pass: memory_peak <= 2 << 20,
    });

    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = String::new();
    out.push_str(&format!(
        "Machine: {cpus} CPUs ({cpu_model}); load average before {}, after {}.\n",
        load_avg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load_after
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    out.push_str(&format!(
        "Run: {} rounds × {} requests per case, current-thread tokio, sequential; users {} and {}.\n",
        o.rounds, o.batch, SMALL, o.large
    ));
    out.push_str("\n### Footprint\n\n| component | .wasm size | compile once | instantiate (bare) | Host::load, first |\n|---|---:|---:|---:|---:|\n");
    out.push_str(&format!(
        "| push-devices | {:.1} KB | {pd_compile:.0} ms | {} | {:.0} ms |\n",
        pd_size as f64 / 1000.0,
        fmt_us(pd_inst),
        pd_load.as_secs_f64() * 1e3
    ));
    out.push_str(&format!(
        "| hello (floor) | {:.1} KB | {hello_compile:.0} ms | {} | {:.0} ms |\n",
        hello_size as f64 / 1000.0,
        fmt_us(hello_inst),
        hello_load.as_secs_f64() * 1e3
    ));
    out.push_str(&format!(
        "\nPeak linear memory of one push-devices request: {} KiB (all memories of the instance).\n",
        memory_peak / 1024
    ));
    out.push_str(&tables);
    out.push_str("\n### Targets\n\n| target | figure | |\n|---|---|---|\n");
    for c in &checks {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            c.what,
            c.figure,
            if c.pass { "pass" } else { "**MISS**" }
        ));
    }
    println!("{out}");
    Ok(())
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}
