//! The request pipeline: route, configuration, caller, body, registry, response. Generic over
//! the platform, so Spin, the native benchmark and the tests run the very same code.

use crate::auth;
use crate::config::{Config, require};
use crate::error::ApiError;
use crate::form;
use crate::http::{Body, Request, Response};
use crate::json;
use crate::registry::Registry;
use crate::device::{Device, InvalidationReason, Provider};
use crate::keys;
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
struct SyncBody {
    invalid_push_sync_tokens: Vec<String>,
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
            last_registered_at: humantime::format_rfc3339_millis(at).to_string(),
        }
    }
}

#[derive(Serialize)]
struct DevicesBody<'a> {
    devices: Vec<DeviceView<'a>>,
}

/// The live devices of a user: the internal API and the typed interface share it.
pub fn list_devices<P: Platform>(platform: &P, user: u64) -> Result<Vec<Device>, ApiError> {
    let config = Config::load(|name| platform.variable(name))?;
    let store = platform.open_store(&config.store_label)?;
    Ok(Registry::new(&store, config.limits, platform.now_ms()).devices(user)?)
}

/// Drops a dead token from every account holding it; returns how many did.
pub fn invalidate<P: Platform>(
    platform: &P,
    provider: Provider,
    token: &str,
    reason: InvalidationReason,
) -> Result<usize, ApiError> {
    let config = Config::load(|name| platform.variable(name))?;
    let store = platform.open_store(&config.store_label)?;
    let removed = Registry::new(&store, config.limits, platform.now_ms()).invalidate(provider, token)?;
    eprintln!(
        "push-devices: invalidated {} ({}) on {removed} account(s)",
        keys::log_label(provider, token),
        reason.as_str()
    );
    Ok(removed)
}

pub fn handle<P: Platform>(platform: &P, req: &Request) -> Response {
    dispatch(platform, req).unwrap_or_else(ApiError::into_response)
}

fn dispatch<P: Platform>(platform: &P, req: &Request) -> Result<Response, ApiError> {
    let route = Route::parse(&req.method, &req.path);
    if let Err(ApiError::NotFound) = route {
        return Err(ApiError::NotFound);
    }
    let config = Config::load(|name| platform.variable(name))?;
    if route::is_internal(&req.path) {
        auth::authenticate_admin(&config, req)?;
    }
    let route = route?;
    let now_ms = platform.now_ms();
    let now_secs = now_ms / 1000;
    let user = match route.internal() {
        true => 0, // the admin acts for no user; internal routes name theirs
        false => auth::authenticate(&config, req, now_secs)?,
    };
    let body = match (&req.body, route.writes()) {
        (_, false) => &[][..],
        (Body::TooLarge, true) => return Err(ApiError::PayloadTooLarge),
        (Body::Complete(body), true) => body.as_slice(),
    };
    match route {
        Route::SyncToken => {
            let keys = require(&config.sync_keys)?;
            let token = keys.mint(Purpose::Sync, user, now_secs);
            Ok(Response::json(200, json::to_vec(&SyncTokenBody { token })))
        }
        Route::RegisterDevice => {
            let registration = form::parse_registration(body)?;
            let store = platform.open_store(&config.store_label)?;
            Registry::new(&store, config.limits, now_ms).register(user, &registration)?;
            Ok(Response::no_content())
        }
        Route::UnregisterDevice => {
            let device = form::parse_push_token(body)?;
            let store = platform.open_store(&config.store_label)?;
            Registry::new(&store, config.limits, now_ms).unregister(user, &device)?;
            Ok(Response::no_content())
        }
        Route::SyncDevices => {
            let sync = form::parse_sync(body)?;
            let keys = require(&config.sync_keys)?;
            let mut named = Vec::with_capacity(sync.push_sync_tokens.len());
            let mut invalid = Vec::new();
            for token in sync.push_sync_tokens {
                match keys.verify(Purpose::Sync, &token, now_secs, config.sync_lifetime_secs) {
                    Ok(account) => named.push(account),
                    Err(_) => invalid.push(token),
                }
            }
            let store = platform.open_store(&config.store_label)?;
            Registry::new(&store, config.limits, now_ms).sync(user, &sync.device, &named)?;
            Ok(Response::json(200, json::to_vec(&SyncBody { invalid_push_sync_tokens: invalid })))
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
