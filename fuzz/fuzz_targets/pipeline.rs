//! The whole request pipeline (`service::handle` over `MemPlatform`), a short session at a time.
//!
//! The input, read with `arbitrary`, picks a configuration (token or gateway auth, a small device
//! cap, a tight rate limit) and up to six requests against one in-memory platform, each with a
//! clock step, a method (real ones and junk), a path (real ones, near misses such as
//! `/users/%40me/devices`, `/%69nternal/...`, bad escapes), credentials (a valid minted token,
//! expired, from the future, the wrong purpose or key, junk, non-UTF-8; admin key right or wrong)
//! and a body (raw bytes, or JSON built field by field from real and broken values, sync tokens
//! minted valid, expired or for the wrong purpose, or one byte over the size limit).
//!
//! After every request:
//! - the status is below 500 (in memory nothing can fail on the server's side: no store outage,
//!   no contention, and the configuration is valid), a 204 has no body, any other answer is JSON;
//! - no 2xx without credentials: a user route answers 2xx only to a valid user token (or gateway
//!   headers), an internal route only to the admin key;
//! - what a 2xx claims is true: the registered device is listed as sent, an unregistered one is
//!   gone, a sync leaves the device on exactly the caller and the accounts its valid sync tokens
//!   name (and reports exactly the others as invalid), an invalidated token is held by nobody,
//!   a minted sync token names the caller;
//! - the registry's invariants hold over the whole store: every token in an account record is in
//!   its holders index, no account exceeds the device cap or holds one token twice.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use push_devices::cas;
use push_devices::device::{Device, InvalidationReason, Provider};
use push_devices::form;
use push_devices::http::{MAX_BODY_BYTES, Request, Response};
use push_devices::memory::MemPlatform;
use push_devices::registry::{Limits, Registry, UserRecord};
use push_devices::service::{self, Platform as _};
use push_devices::token::{Keyring, Purpose};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

const AUTH_KEY: &str = "fuzz-auth-key-0123456789abcdef0123456789abcdef";
const SYNC_KEY: &str = "fuzz-sync-key-0123456789abcdef0123456789abcdef";
const ADMIN_KEY: &str = "fuzz-admin-key-0123456789abcdef0123456789abcdef";
const GATEWAY_KEY: &str = "fuzz-gateway-key-0123456789abcdef0123456789abcd";
const START_MS: u64 = 1_760_000_000_000;
const SYNC_LIFETIME_SECS: u64 = 604_800;
const MAX_STEPS: usize = 6;

/// `PIPELINE_TRACE=1` prints each request and its answer to stderr (for triage: run the target
/// on one input, e.g. `PIPELINE_TRACE=1 cargo +nightly fuzz run pipeline <file>`).
static TRACE: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| std::env::var_os("PIPELINE_TRACE").is_some());

/// Tokens that recur across requests, so a session builds up and tears down shared state.
/// The hex ones are valid for every provider, the others for `gcm` only.
const TOKEN_POOL: [&str; 6] = ["00ff", "abcdef0123456789", "fcm:token-1", "fcm:token-2", "ABCD", "zz"];

/// Text with a one-byte length in front (lossy UTF-8), and bytes with a two-byte little-endian
/// length: `arbitrary`'s own strings take their lengths from the end of the input, which no one
/// can write by hand; these keep the seeds (see `make_seeds.py`) writable front to back.
#[derive(Debug, Clone)]
struct Text(String);

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u8::arbitrary(u)?).min(u.len());
        Ok(Text(String::from_utf8_lossy(u.bytes(len)?).into_owned()))
    }
}

#[derive(Debug, Clone)]
struct Blob(Vec<u8>);

impl<'a> Arbitrary<'a> for Blob {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u16::arbitrary(u)?).min(u.len());
        Ok(Blob(u.bytes(len)?.to_vec()))
    }
}

#[derive(Arbitrary, Debug)]
struct Session {
    gateway: bool,
    small_cap: bool,
    tight_rate: bool,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
struct Step {
    advance: Advance,
    method: Method,
    path: PathChoice,
    auth: Auth,
    admin: Admin,
    body: BodyChoice,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Advance {
    None,
    Second,
    Minute,
    Day,
    Week,
    Year,
    Millis(u32),
}

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
    Patch,
    Head,
    Lower(u8),
    Empty,
    Junk(Text),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum UserPick {
    /// Users 1 to 4: the same few accounts again and again.
    Small(u8),
    Zero,
    Max,
    Any(u64),
}

impl UserPick {
    fn id(self) -> u64 {
        match self {
            UserPick::Small(n) => u64::from(n % 4) + 1,
            UserPick::Zero => 0,
            UserPick::Max => u64::MAX,
            UserPick::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum PathChoice {
    Devices,
    DevicesEncoded,
    DevicesQuery,
    DevicesFragment,
    SyncToken,
    SyncTokenEncoded,
    Sync,
    SyncEncoded,
    DevicesSlash,
    UpperMe,
    DoubleSlash,
    NoLeadingSlash,
    BadEscape,
    NonUtf8Escape,
    OtherUser(UserPick),
    InternalDevices(UserPick),
    InternalDevicesRaw(Text),
    InternalInvalidate,
    InternalEncoded,
    InternalRoot,
    Root,
    Empty,
    Raw(Text),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Devices,
    SyncToken,
    Sync,
    InternalDevices(u64),
    InternalInvalidate,
    /// Not a route, or one the harness does not predict.
    Other,
}

impl PathChoice {
    fn render(&self) -> (String, Target) {
        let fixed = |p: &str, t| (p.to_owned(), t);
        match self {
            PathChoice::Devices => fixed("/users/@me/devices", Target::Devices),
            PathChoice::DevicesEncoded => fixed("/users/%40me/devices", Target::Devices),
            PathChoice::DevicesQuery => fixed("/users/@me/devices?with=1&x=%zz", Target::Devices),
            PathChoice::DevicesFragment => fixed("/users/@me/devices#top", Target::Devices),
            PathChoice::SyncToken => fixed("/users/@me/devices/sync-token", Target::SyncToken),
            PathChoice::SyncTokenEncoded => fixed("/users/%40me/devices/sync%2Dtoken", Target::SyncToken),
            PathChoice::Sync => fixed("/users/@me/devices/sync", Target::Sync),
            PathChoice::SyncEncoded => fixed("/users/%40me/devices/sync", Target::Sync),
            PathChoice::DevicesSlash => fixed("/users/@me/devices/", Target::Other),
            PathChoice::UpperMe => fixed("/users/%40ME/devices", Target::Other),
            PathChoice::DoubleSlash => fixed("/users/@me//devices", Target::Other),
            PathChoice::NoLeadingSlash => fixed("users/@me/devices", Target::Other),
            PathChoice::BadEscape => fixed("/users/%4/devices", Target::Other),
            PathChoice::NonUtf8Escape => fixed("/users/%ff%40me/devices", Target::Other),
            PathChoice::OtherUser(u) => (format!("/users/{}/devices", u.id()), Target::Other),
            PathChoice::InternalDevices(u) => {
                let id = u.id();
                let target = if id == 0 { Target::Other } else { Target::InternalDevices(id) };
                (format!("/internal/users/{id}/devices"), target)
            }
            PathChoice::InternalDevicesRaw(s) => (format!("/internal/users/{}/devices", s.0), Target::Other),
            PathChoice::InternalInvalidate => fixed("/internal/devices/invalidate", Target::InternalInvalidate),
            PathChoice::InternalEncoded => fixed("/%69nternal/devices/invalidate", Target::InternalInvalidate),
            PathChoice::InternalRoot => fixed("/internal", Target::Other),
            PathChoice::Root => fixed("/", Target::Other),
            PathChoice::Empty => fixed("", Target::Other),
            PathChoice::Raw(s) => (s.0.clone(), Target::Other),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum BearerStyle {
    Bare,
    Bearer,
    LowerDoubleSpace,
    Padded,
}

#[derive(Arbitrary, Debug)]
enum GatewayUser {
    Pick(UserPick),
    Raw(Text),
    Missing,
}

#[derive(Arbitrary, Debug)]
enum Auth {
    None,
    Valid { user: UserPick, style: BearerStyle },
    Expired(UserPick),
    FromTheFuture(UserPick),
    WrongPurpose(UserPick),
    WrongKey(UserPick),
    Junk(Text),
    NonUtf8(Blob),
    Gateway { key_ok: bool, user: GatewayUser },
}

#[derive(Arbitrary, Debug)]
enum Admin {
    None,
    Valid,
    Padded,
    Wrong(Text),
}

#[derive(Arbitrary, Debug)]
enum ProviderPick {
    Known(u8),
    Junk(Text),
    Missing,
    Null,
    Number(i32),
}

#[derive(Arbitrary, Debug)]
enum TokenPick {
    Pool(u8),
    Any(Text),
    Longest,
    TooLong,
    Missing,
    Null,
    Number(i64),
}

#[derive(Arbitrary, Debug)]
struct DeviceBody {
    provider: ProviderPick,
    token: TokenPick,
}

#[derive(Arbitrary, Debug)]
enum SyncTok {
    Valid(UserPick),
    Expired(UserPick),
    AuthPurpose(UserPick),
    Junk(Text),
    NotAString(i32),
}

#[derive(Arbitrary, Debug)]
enum BodyChoice {
    Empty,
    Raw(Blob),
    Register {
        device: DeviceBody,
        voip: Option<DeviceBody>,
        bypass: Option<Option<bool>>,
        bundle_id: Option<Text>,
        extra: Option<(Text, Text)>,
    },
    Device(DeviceBody),
    Sync { device: DeviceBody, tokens: Vec<SyncTok> },
    Invalidate { device: DeviceBody, reason: Result<u8, Text> },
    TooLarge,
}

fn put_device(obj: &mut Map<String, Value>, d: &DeviceBody, provider_field: &str, token_field: &str) {
    match &d.provider {
        ProviderPick::Known(i) => {
            obj.insert(provider_field.into(), json!(Provider::ALL[usize::from(*i) % 5].as_str()));
        }
        ProviderPick::Junk(s) => {
            obj.insert(provider_field.into(), json!(s.0));
        }
        ProviderPick::Missing => {}
        ProviderPick::Null => {
            obj.insert(provider_field.into(), Value::Null);
        }
        ProviderPick::Number(n) => {
            obj.insert(provider_field.into(), json!(n));
        }
    }
    let token = match &d.token {
        TokenPick::Pool(i) => json!(TOKEN_POOL[usize::from(*i) % TOKEN_POOL.len()]),
        TokenPick::Any(s) => json!(s.0),
        TokenPick::Longest => json!("ab".repeat(form::MAX_TOKEN_LEN / 2)),
        TokenPick::TooLong => json!("ab".repeat(form::MAX_TOKEN_LEN / 2 + 1)),
        TokenPick::Missing => return,
        TokenPick::Null => Value::Null,
        TokenPick::Number(n) => json!(n),
    };
    obj.insert(token_field.into(), token);
}

/// Who the harness expects `@me` to be, from the credentials it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    User(u64),
    Nobody,
    /// Junk the harness does not judge.
    Unknown,
}

struct Harness {
    platform: MemPlatform,
    auth_ring: Keyring,
    sync_ring: Keyring,
    gateway: bool,
    max_devices: usize,
}

impl Harness {
    fn now_ms(&self) -> u64 {
        self.platform.now_ms()
    }

    fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    fn body(&self, choice: &BodyChoice) -> Vec<u8> {
        let mut obj = Map::new();
        match choice {
            BodyChoice::Empty => return Vec::new(),
            BodyChoice::Raw(bytes) => return bytes.0.clone(),
            BodyChoice::TooLarge => return vec![b' '; MAX_BODY_BYTES + 1],
            BodyChoice::Register { device, voip, bypass, bundle_id, extra } => {
                put_device(&mut obj, device, "provider", "token");
                if let Some(voip) = voip {
                    put_device(&mut obj, voip, "voip_provider", "voip_token");
                }
                if let Some(bypass) = bypass {
                    obj.insert("bypass_server_throttling_supported".into(), json!(bypass));
                }
                if let Some(id) = bundle_id {
                    obj.insert("bundle_id".into(), json!(id.0));
                }
                if let Some((k, v)) = extra {
                    obj.insert(k.0.clone(), json!(v.0));
                }
            }
            BodyChoice::Device(device) => put_device(&mut obj, device, "provider", "token"),
            BodyChoice::Sync { device, tokens } => {
                put_device(&mut obj, device, "provider", "token");
                let now = self.now_secs();
                let tokens: Vec<Value> = tokens
                    .iter()
                    .take(form::MAX_SYNC_TOKENS + 2)
                    .map(|t| match t {
                        SyncTok::Valid(u) => json!(self.sync_ring.mint(Purpose::Sync, u.id(), now)),
                        SyncTok::Expired(u) => json!(self.sync_ring.mint(
                            Purpose::Sync,
                            u.id(),
                            now.saturating_sub(SYNC_LIFETIME_SECS + 1)
                        )),
                        SyncTok::AuthPurpose(u) => json!(self.sync_ring.mint(Purpose::Auth, u.id(), now)),
                        SyncTok::Junk(s) => json!(s.0),
                        SyncTok::NotAString(n) => json!(n),
                    })
                    .collect();
                obj.insert("push_sync_tokens".into(), Value::Array(tokens));
            }
            BodyChoice::Invalidate { device, reason } => {
                put_device(&mut obj, device, "provider", "token");
                let reason = match reason {
                    Ok(i) => InvalidationReason::ALL[usize::from(*i) % 5].as_str().to_owned(),
                    Err(s) => s.0.clone(),
                };
                obj.insert("reason".into(), json!(reason));
            }
        }
        serde_json::to_vec(&Value::Object(obj)).expect("a JSON value serializes")
    }

    /// Adds the credentials; returns who they should authenticate as.
    fn credentials(&self, mut req: Request, auth: &Auth) -> (Request, Caller) {
        let now = self.now_secs();
        let token_mode = |user: u64| if self.gateway || user == 0 { Caller::Nobody } else { Caller::User(user) };
        let caller = match auth {
            Auth::None => Caller::Nobody,
            Auth::Valid { user, style } => {
                let token = self.auth_ring.mint(Purpose::Auth, user.id(), now);
                let value = match style {
                    BearerStyle::Bare => token,
                    BearerStyle::Bearer => format!("Bearer {token}"),
                    BearerStyle::LowerDoubleSpace => format!("bearer  {token}"),
                    BearerStyle::Padded => format!(" \tBearer {token} "),
                };
                req = req.with_header("Authorization", &value);
                token_mode(user.id())
            }
            Auth::Expired(u) => {
                let token = self.auth_ring.mint(Purpose::Auth, u.id(), now.saturating_sub(86_401));
                req = req.with_header("authorization", &format!("Bearer {token}"));
                Caller::Nobody
            }
            Auth::FromTheFuture(u) => {
                let token = self.auth_ring.mint(Purpose::Auth, u.id(), now + 3_600);
                req = req.with_header("authorization", &format!("Bearer {token}"));
                Caller::Nobody
            }
            Auth::WrongPurpose(u) => {
                let token = self.auth_ring.mint(Purpose::Sync, u.id(), now);
                req = req.with_header("authorization", &format!("Bearer {token}"));
                Caller::Nobody
            }
            Auth::WrongKey(u) => {
                let token = self.sync_ring.mint(Purpose::Auth, u.id(), now);
                req = req.with_header("authorization", &format!("Bearer {token}"));
                Caller::Nobody
            }
            Auth::Junk(s) => {
                req = req.with_header("authorization", &s.0);
                if self.gateway { Caller::Nobody } else { Caller::Unknown }
            }
            Auth::NonUtf8(bytes) => {
                req.headers.push(("authorization".to_owned(), bytes.0.clone()));
                if self.gateway || std::str::from_utf8(&bytes.0).is_err() { Caller::Nobody } else { Caller::Unknown }
            }
            Auth::Gateway { key_ok, user } => {
                let key = if *key_ok { GATEWAY_KEY } else { "fuzz-gateway-key-0123456789abcdef0123456789abcX" };
                req = req.with_header("x-gateway-key", key);
                let expected = match user {
                    GatewayUser::Pick(u) => {
                        req = req.with_header("x-user-id", &u.id().to_string());
                        if u.id() == 0 { Caller::Nobody } else { Caller::User(u.id()) }
                    }
                    GatewayUser::Raw(s) => {
                        req = req.with_header("x-user-id", &s.0);
                        Caller::Unknown
                    }
                    GatewayUser::Missing => Caller::Nobody,
                };
                if self.gateway && *key_ok { expected } else { Caller::Nobody }
            }
        };
        (req, caller)
    }

    fn live_devices(&self, user: u64) -> Vec<Device> {
        service::list_devices(&self.platform, user).unwrap_or_else(|e| panic!("listing user {user}: {e:?}"))
    }

    /// Every account with a record in the store.
    fn accounts(&self) -> Vec<(u64, UserRecord)> {
        self.platform
            .store
            .dump()
            .into_iter()
            .filter_map(|(key, bytes)| {
                let user = key.strip_prefix("pd:u:")?.parse::<u64>().ok()?;
                let record = cas::decode::<UserRecord>(&key, &bytes)
                    .unwrap_or_else(|e| panic!("stored record {key} unreadable: {e}"));
                Some((user, record))
            })
            .collect()
    }

    fn holds(&self, user: u64, provider: Provider, token: &str) -> (bool, bool) {
        let devices = self.live_devices(user);
        let primary = devices.iter().any(|d| d.is(provider, token));
        let voip = devices.iter().any(|d| d.voip.as_ref().is_some_and(|v| v.provider == provider && v.token == token));
        (primary, voip)
    }

    fn check_invariants(&self) {
        let registry = Registry::new(&*self.platform.store, Limits::default(), self.now_ms());
        for (user, record) in self.accounts() {
            assert!(
                record.devices.len() <= self.max_devices,
                "user {user} holds {} devices, cap {}",
                record.devices.len(),
                self.max_devices
            );
            let mut seen = BTreeSet::new();
            for device in &record.devices {
                assert!(seen.insert((device.provider, device.token.clone())), "user {user} holds {:?} twice", device.token);
                for (provider, token) in device.push_tokens() {
                    let holders = registry.holders(provider, token).expect("holders readable");
                    assert!(
                        holders.contains(&user),
                        "index misses user {user} for {provider:?} {token:?} (holders {holders:?})"
                    );
                }
            }
        }
    }

    fn check_response(&self, req: &Request, response: &Response, target: Target, caller: Caller, admin_ok: bool) {
        let status = response.status;
        assert!((200..500).contains(&status), "status {status} for {} {:?}", req.method, req.path);
        if status == 204 {
            assert!(response.body.is_empty(), "204 with a body");
        } else {
            serde_json::from_slice::<Value>(&response.body).unwrap_or_else(|e| {
                panic!("{status} body is not JSON ({e}): {:?}", String::from_utf8_lossy(&response.body))
            });
            assert!(
                response.headers.iter().any(|(n, v)| *n == "content-type" && v == "application/json"),
                "JSON body without its content type"
            );
        }
        if !(200..300).contains(&status) {
            return;
        }
        // No success without credentials.
        match target {
            Target::InternalDevices(_) | Target::InternalInvalidate => {
                assert!(admin_ok, "internal route answered {status} without the admin key");
            }
            Target::Devices | Target::SyncToken | Target::Sync => {
                assert_ne!(caller, Caller::Nobody, "user route answered {status} to bad credentials");
            }
            Target::Other => {}
        }
    }

    /// What a success claims must be what the registry now holds.
    fn check_effect(&self, req: &Request, body: &[u8], response: &Response, target: Target, caller: Caller) {
        let status = response.status;
        if !(200..300).contains(&status) {
            return;
        }
        let user = match caller {
            Caller::User(u) => Some(u),
            _ => None,
        };
        match (target, req.method.as_str(), user) {
            (Target::Devices, "POST", Some(user)) => {
                assert_eq!(status, 204);
                let reg = form::parse_registration(body).expect("a 204 registration parses");
                let devices = self.live_devices(user);
                let found: Vec<&Device> = devices.iter().filter(|d| d.is(reg.provider, &reg.token)).collect();
                assert_eq!(found.len(), 1, "registered device listed {} times", found.len());
                let d = found[0];
                assert_eq!(d.voip, reg.voip);
                assert_eq!(d.bypass_server_throttling_supported, reg.bypass_server_throttling_supported);
                assert_eq!(d.bundle_id, reg.bundle_id);
                assert_eq!(d.registered_at, self.now_ms());
            }
            (Target::Devices, "DELETE", Some(user)) => {
                assert_eq!(status, 204);
                let device = form::parse_push_token(body).expect("a 204 removal parses");
                assert!(!self.holds(user, device.provider, &device.token).0, "unregistered device still listed");
            }
            (Target::SyncToken, "GET", Some(user)) => {
                assert_eq!(status, 200);
                let v: Value = serde_json::from_slice(&response.body).expect("JSON");
                let token = v["token"].as_str().expect("a token field");
                assert_eq!(self.sync_ring.verify(Purpose::Sync, token, self.now_secs(), SYNC_LIFETIME_SECS), Ok(user));
            }
            (Target::Sync, "PUT", Some(user)) => {
                assert_eq!(status, 200);
                let sync = form::parse_sync(body).expect("a 200 sync parses");
                let v: Value = serde_json::from_slice(&response.body).expect("JSON");
                let reported: Vec<&str> = v["invalid_push_sync_tokens"]
                    .as_array()
                    .expect("invalid_push_sync_tokens list")
                    .iter()
                    .map(|t| t.as_str().expect("strings"))
                    .collect();
                let mut named = BTreeSet::new();
                let mut invalid = Vec::new();
                for t in &sync.push_sync_tokens {
                    match self.sync_ring.verify(Purpose::Sync, t, self.now_secs(), SYNC_LIFETIME_SECS) {
                        Ok(account) => {
                            named.insert(account);
                        }
                        Err(_) => invalid.push(t.as_str()),
                    }
                }
                assert_eq!(reported, invalid, "invalid sync tokens misreported");
                named.insert(user);
                let (provider, token) = (sync.device.provider, sync.device.token.as_str());
                let mut everyone: BTreeSet<u64> = self.accounts().into_iter().map(|(u, _)| u).collect();
                everyone.extend(&named);
                for account in everyone {
                    let (primary, voip) = self.holds(account, provider, token);
                    if named.contains(&account) {
                        assert!(primary, "sync left account {account} without the device");
                    } else {
                        assert!(!primary && !voip, "sync left account {account} (not named) with the device");
                    }
                }
            }
            (Target::InternalInvalidate, "POST", _) => {
                assert_eq!(status, 204);
                let inv = form::parse_invalidation(body).expect("a 204 invalidation parses");
                for (account, _) in self.accounts() {
                    let (primary, voip) = self.holds(account, inv.device.provider, &inv.device.token);
                    assert!(!primary && !voip, "invalidated token still held by {account}");
                }
            }
            (Target::InternalDevices(user), "GET", _) => {
                assert_eq!(status, 200);
                let v: Value = serde_json::from_slice(&response.body).expect("JSON");
                let listed = v["devices"].as_array().expect("devices list").len();
                assert_eq!(listed, self.live_devices(user).len());
            }
            _ => {}
        }
    }
}

fuzz_target!(|session: Session| {
    let mut vars = vec![
        ("auth_token_secret", AUTH_KEY),
        ("sync_token_secret", SYNC_KEY),
        ("admin_key", ADMIN_KEY),
    ];
    if session.gateway {
        vars.push(("auth_mode", "gateway"));
        vars.push(("gateway_key", GATEWAY_KEY));
    }
    if session.small_cap {
        vars.push(("max_devices_per_user", "2"));
    }
    if session.tight_rate {
        vars.push(("rate_limit_writes", "3"));
    }
    let harness = Harness {
        platform: MemPlatform::new(&vars, START_MS),
        auth_ring: Keyring::parse(AUTH_KEY).expect("key"),
        sync_ring: Keyring::parse(SYNC_KEY).expect("key"),
        gateway: session.gateway,
        max_devices: if session.small_cap { 2 } else { Limits::default().max_devices },
    };

    for step in session.steps.iter().take(MAX_STEPS) {
        let advance_ms = match step.advance {
            Advance::None => 0,
            Advance::Second => 1_000,
            Advance::Minute => 61_000,
            Advance::Day => 86_401_000,
            Advance::Week => 7 * 86_400_000 + 1_000,
            Advance::Year => 366 * 86_400_000,
            Advance::Millis(ms) => u64::from(ms),
        };
        harness.platform.now_ms.fetch_add(advance_ms, Ordering::Relaxed);

        let method = match &step.method {
            Method::Get => "GET".to_owned(),
            Method::Post => "POST".to_owned(),
            Method::Put => "PUT".to_owned(),
            Method::Delete => "DELETE".to_owned(),
            Method::Patch => "PATCH".to_owned(),
            Method::Head => "HEAD".to_owned(),
            Method::Lower(i) => ["get", "post", "put", "delete"][usize::from(*i) % 4].to_owned(),
            Method::Empty => String::new(),
            Method::Junk(s) => s.0.clone(),
        };
        let (path, target) = step.path.render();
        let body = harness.body(&step.body);
        let (mut req, caller) = harness.credentials(Request::new(&method, &path, &body), &step.auth);
        match &step.admin {
            Admin::None => {}
            Admin::Valid => req = req.with_header("x-admin-key", ADMIN_KEY),
            Admin::Padded => req = req.with_header("x-admin-key", &format!(" {ADMIN_KEY}")),
            Admin::Wrong(s) => req = req.with_header("x-admin-key", &s.0),
        }

        let response = service::handle(&harness.platform, &req);
        if *TRACE {
            eprintln!(
                "{} {:?} caller={caller:?} body={:?} -> {} {}",
                req.method,
                req.path,
                String::from_utf8_lossy(&body).chars().take(300).collect::<String>(),
                response.status,
                String::from_utf8_lossy(&response.body)
            );
        }
        // Whether the caller knew the admin key (a junk header could contain it too).
        let admin_ok = match &step.admin {
            Admin::None => false,
            Admin::Valid | Admin::Padded => true,
            Admin::Wrong(s) => s.0.contains(ADMIN_KEY),
        };
        harness.check_response(&req, &response, target, caller, admin_ok);
        harness.check_effect(&req, &body, &response, target, caller);
        harness.check_invariants();
    }
});
