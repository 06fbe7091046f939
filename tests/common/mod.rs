//! Shared harness of the end-to-end tests: builds the release `.wasm` once, serves it through
//! our wasmtime host on 127.0.0.1 with real HTTP, and reads back what the store holds.
#![allow(dead_code)] // each test binary uses its own share of the harness

use push_devices::cas;
use push_devices::registry::{IndexShard, UserRecord};
use push_devices::token::{Keyring, Purpose};
use push_devices_host::{
    Device, GuestOutput, Host, HostConfig, InvalidationReason, KvBackend, OutputCapture, Provider, RegistryError,
    ServerHandle, StoreChoice,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

pub const AUTH_SECRET: &str = "e2e-auth-secret-e2e-auth-secret-0001";
pub const SYNC_SECRET: &str = "e2e-sync-secret-e2e-sync-secret-0001";
pub const GATEWAY_KEY: &str = "e2e-gateway-key-e2e-gateway-key-0001";
pub const ADMIN_KEY: &str = "e2e-admin-key-e2e-admin-key-e2e-0001";

/// The release component, built once per test binary exactly as the README says.
pub fn component() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let status = std::process::Command::new(cargo)
                .current_dir(&root)
                .args(["build", "--target", "wasm32-wasip2", "--release", "-p", "push-devices"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the component failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            target.join("wasm32-wasip2/release/push_devices.wasm")
        })
        .clone()
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub fn user_token(user: u64) -> String {
    Keyring::parse(AUTH_SECRET).unwrap().mint(Purpose::Auth, user, now_secs())
}

pub fn sync_token_at(user: u64, issued: u64) -> String {
    Keyring::parse(SYNC_SECRET).unwrap().mint(Purpose::Sync, user, issued)
}

/// Variables every test server starts with; tests override or remove them.
pub fn default_variables() -> BTreeMap<String, String> {
    [
        ("auth_token_secret", AUTH_SECRET),
        ("sync_token_secret", SYNC_SECRET),
        ("admin_key", ADMIN_KEY),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// One host serving the component on a free loopback port, with its own runtime.
pub struct Server {
    pub host: Host,
    pub url: String,
    pub output: OutputCapture,
    handle: Option<ServerHandle>,
    runtime: tokio::runtime::Runtime,
    agent: ureq::Agent,
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Server {
    pub fn start(variables: BTreeMap<String, String>, store: StoreChoice) -> Server {
        Server::start_with(variables, store, |_| {})
    }

    /// As [`Server::start`], with a last say on the host's configuration.
    pub fn start_with(
        variables: BTreeMap<String, String>,
        store: StoreChoice,
        tweak: impl FnOnce(&mut HostConfig),
    ) -> Server {
        let mut config = HostConfig::new(component());
        config.variables = variables;
        config.store = store;
        tweak(&mut config);
        let output = OutputCapture::new();
        config.guest_output = GuestOutput::Capture(output.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let host = Host::load(config).expect("component loads");
        let handle = runtime.block_on(host.spawn_server("127.0.0.1:0")).expect("server starts");
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Server { host, url: handle.url(), output, handle: Some(handle), runtime, agent }
    }

    pub fn memory() -> Server {
        Server::start(default_variables(), StoreChoice::Memory)
    }

    /// Sends a request; `auth` is the user to authenticate as with a fresh user token.
    pub fn call(&self, method: &str, path: &str, auth: Option<u64>, body: &str) -> Reply {
        let mut headers = Vec::new();
        let token;
        if let Some(user) = auth {
            token = format!("Bearer {}", user_token(user));
            headers.push(("authorization", token.as_str()));
        }
        self.send(method, path, &headers, body.as_bytes())
    }

    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut req = http::Request::builder().method(method).uri(format!("{}{path}", self.url));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(body.to_vec()).unwrap();
        let mut resp = self.agent.run(req).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Reply { status: resp.status().as_u16(), headers: resp.headers().clone(), body }
    }

    pub fn admin(&self, method: &str, path: &str, body: &str) -> Reply {
        self.send(method, path, &[("x-admin-key", ADMIN_KEY)], body.as_bytes())
    }

    pub fn register(&self, user: u64, provider: &str, token: &str) -> Reply {
        self.call(
            "POST",
            "/users/@me/devices",
            Some(user),
            &format!(r#"{{"provider": "{provider}", "token": "{token}"}}"#),
        )
    }

    /// The tokens a user holds, read through the internal API.
    pub fn tokens_of(&self, user: u64) -> Vec<String> {
        let reply = self.admin("GET", &format!("/internal/users/{user}/devices"), "");
        assert_eq!(reply.status, 200, "{}", reply.body);
        let mut tokens: Vec<String> = reply.json()["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["token"].as_str().unwrap().to_owned())
            .collect();
        tokens.sort();
        tokens
    }

    /// Runs a typed call on the host to completion from a sync test, on the server's runtime:
    /// `s.block_on(s.host.list_devices(user))`.
    pub fn block_on<F: std::future::Future>(&self, call: F) -> F::Output {
        self.runtime.block_on(call)
    }

    /// `list-devices` through the typed export; panics on a trap (with the guest's output).
    pub fn list_devices(&self, user: u64) -> Result<Vec<Device>, RegistryError> {
        self.block_on(self.host.list_devices(user))
            .unwrap_or_else(|e| panic!("list-devices({user}) trapped: {e:#}\n{}", self.output.contents()))
    }

    /// `invalidate` through the typed export; panics on a trap (with the guest's output).
    pub fn invalidate(
        &self,
        provider: Provider,
        token: &str,
        reason: InvalidationReason,
    ) -> Result<u32, RegistryError> {
        self.block_on(self.host.invalidate(provider, token, reason))
            .unwrap_or_else(|e| panic!("invalidate({token}) trapped: {e:#}\n{}", self.output.contents()))
    }

    pub fn backend(&self) -> Arc<dyn KvBackend> {
        Arc::clone(self.host.backend())
    }

    pub fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            self.runtime.block_on(handle.shutdown()).unwrap();
        }
    }
}

/// Everything in the `default` store of a backend.
pub fn dump(backend: &dyn KvBackend) -> BTreeMap<String, Vec<u8>> {
    backend
        .list_keys("default")
        .unwrap()
        .into_iter()
        .filter_map(|k| backend.get("default", &k).unwrap().map(|v| (k, v)))
        .collect()
}

/// The store's invariants: records decode, no duplicate registrations, the cap holds, and the
/// holders index never misses an account that holds a token.
pub fn assert_store_invariants(store: &BTreeMap<String, Vec<u8>>, max_devices: usize) {
    for (key, bytes) in store {
        if let Some(user) = key.strip_prefix("pd:u:").and_then(|u| u.parse::<u64>().ok()) {
            let record: UserRecord = cas::decode(key, bytes).unwrap();
            assert!(record.devices.len() <= max_devices, "{key} holds {} devices", record.devices.len());
            let mut seen = std::collections::BTreeSet::new();
            for device in &record.devices {
                assert!(seen.insert((device.provider, device.token.clone())), "duplicate device in {key}");
                for (provider, token) in device.push_tokens() {
                    let slot = push_devices::keys::token_index(provider, token);
                    let shard: IndexShard = store
                        .get(&slot.shard)
                        .map(|b| cas::decode(&slot.shard, b).unwrap())
                        .unwrap_or_default();
                    assert!(shard.holders(&slot.entry).contains(&user), "index {slot:?} misses holder {user}");
                }
            }
        }
    }
}

/// Prints what the guest wrote when a test fails, then fails.
pub fn guest_log(server: &Server) -> String {
    server.output.contents()
}
