//! The request pipeline: route, configuration, caller, body, registry, response. Generic over
//! the platform, so Spin, the native benchmark and the tests run the very same code.

use crate::auth;
use crate::config::Variables;
use crate::error::ApiError;
use crate::form;
use crate::http::{Body, Request, Response};
use crate::json;
use crate::registry::Registry;
use crate::device::{Device, InvalidationReason, Provider};
use crate::keys;
use crate::ratelimit;
use crate::route::{self, Route};
use crate::store::{KvStore, StoreError};
use crate::token::Purpose;
use serde::Serialize;

/// What the component needs from its host.
pub trait Platform {
    type Store: KvStore;
    /// A Spin variable's value, `None` when undefined.
    fn variable(&self, name: &str) -> Option<String>;
    fn open_store(&self, label: &str) -> Result<Self::Store, StoreError>;
    /// Unix time in milliseconds.
    fn now_ms(&self) -> u64;
}

#[derive(Serialize)]
struct SyncTokenBody {
    token: String,
}

#[derive(Serialize)]
struct SyncBody<'a> {
    invalid_push_sync_tokens: &'a [&'a str],
}

/// A device as the internal API lists it: the registration body's names plus
/// `last_registered_at` (RFC 3339, UTC, milliseconds).
#[derive(Serialize)]
struct DeviceView<'a> {
    provider: &'a str,
    token: &'a str,
    voip_provider: Option<&'a str>,
    voip_token: Option<&'a str>,
    bypass_server_throttling_supported: bool,
    bundle_id: &'a str,
    last_registered_at: String,
}

impl<'a> From<&'a Device> for DeviceView<'a> {
    fn from(d: &'a Device) -> Self {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(d.registered_at);
        DeviceView {
            provider: d.provider.as_str(),
            token: &d.token,
            voip_provider: d.voip.as_ref().map(|v| v.provider.as_str()),
            voip_token: d.voip.as_ref().map(|v| v.token.as_str()),
            bypass_server_throttling_supported: d.bypass_server_throttling_supported,
            bundle_id: &d.bundle_id,
            last_registered_at: rfc3339(at),
        }
    }
}

/// RFC 3339 with milliseconds; years past 9999 (a broken clock) clamp instead of failing.
fn rfc3339(at: std::time::SystemTime) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(24);
    if write!(out, "{}", humantime::format_rfc3339_millis(at)).is_err() {
        out = "9999-12-31T23:59:59.999Z".to_owned();
    }
    out
}

#[derive(Serialize)]
struct DevicesBody<'a> {
    devices: Vec<DeviceView<'a>>,
}

/// The variables of one call, read through the platform.
fn variables<P: Platform>(platform: &P) -> Variables<impl Fn(&str) -> Option<String> + '_> {
    Variables::new(|name| platform.variable(name))
}

/// The live devices of a user, for the typed interface.
pub fn list_devices<P: Platform>(platform: &P, user: u64) -> Result<Vec<Device>, ApiError> {
    let vars = variables(platform);
    let store = platform.open_store(&vars.store_label())?;
    Ok(Registry::new(&store, vars.limits()?, platform.now_ms()).devices(user)?)
}

/// Drops a dead token from every account holding it, for the typed interface and the internal
/// API; returns how many did.
pub fn invalidate<P: Platform>(
    platform: &P,
    provider: Provider,
    token: &str,
    reason: InvalidationReason,
) -> Result<usize, ApiError> {
    let vars = variables(platform);
    let store = platform.open_store(&vars.store_label())?;
    let removed = Registry::new(&store, vars.limits()?, platform.now_ms()).invalidate(provider, token)?;
    eprintln!(
        "push-devices: invalidated {} ({}) on {removed} account(s)",
        keys::log_label(provider, token),
        reason.as_str()
    );
    Ok(removed)
}

/// The registry as a write sees it: the variables read, the store open.
type Apply<'a, S> = dyn Fn(&Registry<'_, S>) -> Result<Response, ApiError> + 'a;

/// Runs a validated write under the caller's rate limit; the answer carries the limit headers.
/// `apply` is a `dyn`: one copy of this function serves every write route.
fn write<P: Platform, F: Fn(&str) -> Option<String>>(
    platform: &P,
    vars: &Variables<F>,
    user: u64,
    now_ms: u64,
    apply: &Apply<'_, P::Store>,
) -> Result<Response, ApiError> {
    // Every variable first: a misconfigured write must not spend the caller's rate limit.
    let (label, policy, limits) = (vars.store_label(), vars.rate_limit()?, vars.limits()?);
    let store = platform.open_store(&label)?;
    let standing = ratelimit::consume(&store, user, policy, now_ms)?;
    if let Some(standing) = standing.filter(|s| s.limited) {
        return Err(ApiError::RateLimited(standing));
    }
    let mut response = apply(&Registry::new(&store, limits, now_ms))?;
    if let Some(standing) = standing {
        response.headers.extend(standing.headers());
    }
    Ok(response)
}

pub fn handle<P: Platform>(platform: &P, req: &Request) -> Response {
    dispatch(platform, req).unwrap_or_else(ApiError::into_response)
}

fn dispatch<P: Platform>(platform: &P, req: &Request) -> Result<Response, ApiError> {
    let route = Route::parse(&req.method, &req.path);
    if let Err(ApiError::NotFound) = route {
        return Err(ApiError::NotFound);
    }
    let vars = variables(platform);
    if route::is_internal(&req.path) {
        auth::authenticate_admin(vars.admin_key()?.as_deref(), req)?;
    }
    let route = route?;
    let now_ms = platform.now_ms();
    let now_secs = now_ms / 1000;
    let user = match route.internal() {
        true => 0, // the admin acts for no user; internal routes name theirs
        false => auth::authenticate(&vars.auth()?, req, now_secs)?,
    };
    let body = match (&req.body, route.writes()) {
        (_, false) => &[][..],
        (Body::TooLarge, true) => return Err(ApiError::PayloadTooLarge),
        (Body::Complete(body), true) => body.as_slice(),
    };
    match route {
        Route::SyncToken => {
            let token = vars.sync_keys()?.mint(Purpose::Sync, user, now_secs);
            Ok(Response::json(200, json::to_vec(&SyncTokenBody { token })))
        }
        Route::RegisterDevice => {
            let registration = form::parse_registration(body)?;
            write(platform, &vars, user, now_ms, &|registry| {
                registry.register(user, &registration)?;
                Ok(Response::no_content())
            })
        }
        Route::UnregisterDevice => {
            let device = form::parse_push_token(body)?;
            write(platform, &vars, user, now_ms, &|registry| {
                registry.unregister(user, &device)?;
                Ok(Response::no_content())
            })
        }
        Route::SyncDevices => {
            let sync = form::parse_sync(body)?;
            let (keys, lifetime_secs) = (vars.sync_keys()?, vars.sync_lifetime_secs()?);
            let mut named = Vec::with_capacity(sync.push_sync_tokens.len());
            let mut invalid = Vec::new();
            for token in &sync.push_sync_tokens {
                match keys.verify(Purpose::Sync, token, now_secs, lifetime_secs) {
                    Ok(account) => named.push(account),
                    Err(_) => invalid.push(token.as_str()),
                }
            }
            write(platform, &vars, user, now_ms, &|registry| {
                registry.sync(user, &sync.device, &named)?;
                Ok(Response::json(200, json::to_vec(&SyncBody { invalid_push_sync_tokens: &invalid })))
            })
        }
        Route::InternalDevices { user_id } => {
            let devices = list_devices(platform, user_id)?;
            let body = DevicesBody { devices: devices.iter().map(DeviceView::from).collect() };
            Ok(Response::json(200, json::to_vec(&body)))
        }
        Route::InternalInvalidate => {
            let request = form::parse_invalidation(body)?;
            invalidate(platform, request.device.provider, &request.device.token, request.reason)?;
            Ok(Response::no_content())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemPlatform;
    use crate::token::Keyring;

    const AUTH: &str = "auth-key-auth-key-auth-key-auth-key";
    const SYNC: &str = "sync-key-sync-key-sync-key-sync-key";
    const ADMIN: &str = "admin-key-admin-key-admin-key-admin";
    const NOW: u64 = 1_760_000_000_000;

    fn platform() -> MemPlatform {
        MemPlatform::new(&[("auth_token_secret", AUTH), ("sync_token_secret", SYNC), ("admin_key", ADMIN)], NOW)
    }

    fn as_user(user: u64, method: &str, path: &str, body: &str) -> Request {
        let token = Keyring::parse(AUTH).unwrap().mint(Purpose::Auth, user, NOW / 1000);
        Request::new(method, path, body.as_bytes()).with_header("authorization", &format!("Bearer {token}"))
    }

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn register_list_and_rate_limit_headers() {
        let p = platform();
        let r = handle(&p, &as_user(5, "POST", "/users/@me/devices", r#"{"provider": "gcm", "token": "f:1"}"#));
        assert_eq!(r.status, 204);
        assert_eq!(header(&r, "x-ratelimit-remaining"), Some("9"));
        assert_eq!(header(&r, "x-ratelimit-scope"), Some("user"));
        let list = handle(&p, &Request::new("GET", "/internal/users/5/devices", b"").with_header("x-admin-key", ADMIN));
        assert_eq!(list.status, 200);
        assert_eq!(
            String::from_utf8(list.body).unwrap(),
            r#"{"devices": [{"provider": "gcm", "token": "f:1", "voip_provider": null, "voip_token": null, "bypass_server_throttling_supported": false, "bundle_id": "com.discord", "last_registered_at": "2025-10-09T08:53:20.000Z"}]}"#
        );
    }

    #[test]
    fn eleventh_write_gets_discords_429() {
        let p = platform();
        for _ in 0..10 {
            let r = handle(&p, &as_user(5, "DELETE", "/users/@me/devices", r#"{"provider": "gcm", "token": "x"}"#));
            assert_eq!(r.status, 204);
        }
        p.now_ms.store(NOW + 1_250, std::sync::atomic::Ordering::Relaxed);
        let r = handle(&p, &as_user(5, "POST", "/users/@me/devices", r#"{"provider": "gcm", "token": "x"}"#));
        assert_eq!(r.status, 429);
        assert_eq!(String::from_utf8(r.body.clone()).unwrap(), r#"{"message": "You are being rate limited.", "retry_after": 58.75, "global": false}"#);
        assert_eq!(header(&r, "retry-after"), Some("59"));
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("10"));
        assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
        assert_eq!(header(&r, "x-ratelimit-reset-after"), Some("58.750"));
        assert_eq!(header(&r, "x-ratelimit-bucket"), Some("devices-write"));
        assert!(p.store.dump().keys().all(|k| !k.starts_with("pd:u:")), "nothing registered");
        // Reads are not limited; invalid bodies are refused before they count.
        assert_eq!(handle(&p, &as_user(5, "GET", "/users/@me/devices/sync-token", "")).status, 200);
    }

    #[test]
    fn sync_reports_invalid_tokens_in_order() {
        let p = platform();
        let sync = Keyring::parse(SYNC).unwrap();
        let good = sync.mint(Purpose::Sync, 6, NOW / 1000);
        let expired = sync.mint(Purpose::Sync, 7, NOW / 1000 - 604_801);
        let auth_kind = Keyring::parse(SYNC).unwrap().mint(Purpose::Auth, 8, NOW / 1000);
        let body = format!(r#"{{"provider": "gcm", "token": "phone", "push_sync_tokens": ["junk", "{good}", "{expired}", "{auth_kind}"]}}"#);
        let r = handle(&p, &as_user(5, "PUT", "/users/@me/devices/sync", &body));
        assert_eq!(r.status, 200);
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            format!(r#"{{"invalid_push_sync_tokens": ["junk", "{expired}", "{auth_kind}"]}}"#)
        );
        let store = &*p.store;
        let registry = Registry::new(store, crate::registry::Limits::default(), NOW);
        assert_eq!(registry.holders(Provider::Gcm, "phone").unwrap(), [5, 6]);
    }

    #[test]
    fn timestamps_never_panic() {
        let far = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::MAX);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn errors_in_discords_format() {
        let p = platform();
        let cases: &[(Request, u16, &str)] = &[
            (Request::new("POST", "/users/@me/devices", b"{}"), 401, r#"{"message": "401: Unauthorized", "code": 0}"#),
            (as_user(1, "GET", "/users/@me/devices", ""), 405, r#"{"message": "405: Method Not Allowed", "code": 0}"#),
            (as_user(1, "GET", "/nope", ""), 404, r#"{"message": "404: Not Found", "code": 0}"#),
            (as_user(1, "POST", "/users/@me/devices", "{"), 400, r#"{"code": 50109, "message": "The request body contains invalid JSON."}"#),
            (Request::new("GET", "/internal/users/1/devices", b""), 401, r#"{"message": "401: Unauthorized", "code": 0}"#),
        ];
        for (req, status, body) in cases {
            let r = handle(&p, req);
            assert_eq!((r.status, String::from_utf8(r.body).unwrap().as_str()), (*status, *body), "{} {}", req.method, req.path);
        }
        let mut big = as_user(1, "POST", "/users/@me/devices", "");
        big.body = crate::http::Body::TooLarge;
        assert_eq!(handle(&p, &big).status, 413);
        let off = MemPlatform::new(&[("auth_token_secret", AUTH)], NOW);
        let r = handle(&off, &Request::new("GET", "/internal/users/1/devices", b"").with_header("x-admin-key", ADMIN));
        assert_eq!(r.status, 404);
        let r = handle(&off, &as_user(1, "GET", "/users/@me/devices/sync-token", ""));
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            r#"{"message": "500: Server misconfigured: variable `sync_token_secret` is not set", "code": 0}"#
        );
    }
}
