//! The request pipeline: route, configuration, caller, body, registry, response. Generic over
//! the platform, so Spin, the native benchmark and the tests run the very same code.

use crate::auth;
use crate::config::{Config, require};
use crate::error::ApiError;
use crate::form;
use crate::http::{Body, Request, Response};
use crate::json;
use crate::registry::Registry;
use crate::route::Route;
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

pub fn handle<P: Platform>(platform: &P, req: &Request) -> Response {
    dispatch(platform, req).unwrap_or_else(ApiError::into_response)
}

fn dispatch<P: Platform>(platform: &P, req: &Request) -> Result<Response, ApiError> {
    let route = Route::parse(&req.method, &req.path)?;
    let config = Config::load(|name| platform.variable(name))?;
    let now_ms = platform.now_ms();
    let now_secs = now_ms / 1000;
    let user = auth::authenticate(&config, req, now_secs)?;
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
    }
}
