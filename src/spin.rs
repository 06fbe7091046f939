//! The Spin glue, and the only code that touches the SDK: the exported HTTP handler, the
//! `wasi:keyvalue` bucket behind [`KvStore`], and Spin variables. Built for `wasm32` only.

use crate::http::{Body, MAX_BODY_BYTES, READ_HEADERS, Request, Response};
use crate::service::{self, Platform};
use crate::store::{KvStore, StoreError, Swap};
use spin_sdk::http::{Headers, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store};

#[spin_sdk::http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let request = read_request(req);
    let response = service::handle(&Spin, &request);
    write_response(out, response).await;
}

fn read_request(req: IncomingRequest) -> Request {
    let method = req.method().to_string();
    let path = req.path_with_query().unwrap_or_default();
    let headers = {
        let fields = req.headers();
        READ_HEADERS
            .iter()
            .filter_map(|name| fields.get(name).into_iter().next().map(|v| ((*name).to_owned(), v)))
            .collect()
    };
    // No route reads the body of a GET.
    let body = match method.as_str() {
        "GET" | "HEAD" => Body::default(),
        _ => read_body(req),
    };
    Request { method, path, headers, body }
}

/// Reads at most one byte past the limit, so a huge body costs no memory.
fn read_body(req: IncomingRequest) -> Body {
    let Ok(incoming) = req.consume() else { return Body::default() };
    let mut bytes = Vec::new();
    if let Ok(stream) = incoming.stream() {
        while bytes.len() <= MAX_BODY_BYTES {
            let want = (MAX_BODY_BYTES + 1 - bytes.len()).min(64 * 1024) as u64;
            match stream.blocking_read(want) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(_) => break, // closed, or the client went away: what we have is the body
            }
        }
    }
    if bytes.len() > MAX_BODY_BYTES { Body::TooLarge } else { Body::Complete(bytes) }
}

async fn write_response(out: ResponseOutparam, response: Response) {
    let fields: Vec<(String, Vec<u8>)> = response
        .headers
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.into_bytes()))
        .collect();
    let headers = Headers::from_list(&fields).unwrap_or_else(|_| Headers::new());
    let outgoing = OutgoingResponse::new(headers);
    if outgoing.set_status_code(response.status).is_err() {
        eprintln!("push-devices: invalid status {}", response.status);
    }
    if let Err(e) = out.set_with_body(outgoing, response.body).await {
        eprintln!("push-devices: could not send the response: {e}");
    }
}

struct Spin;

impl Platform for Spin {
    type Store = SpinStore;

    fn variable(&self, name: &str) -> Option<String> {
        match spin_sdk::variables::get(name) {
            Ok(value) => Some(value),
            Err(spin_sdk::variables::Error::Undefined(_)) => None,
            Err(e) => {
                eprintln!("push-devices: variable `{name}`: {e}");
                None
            }
        }
    }

    fn open_store(&self, label: &str) -> Result<SpinStore, StoreError> {
        store::open(label)
            .map(SpinStore)
            .map_err(|e| StoreError::Unavailable(format!("opening store `{label}` (variable `kv_store`): {e:?}")))
    }

    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

struct SpinStore(store::Bucket);

fn unavailable(e: store::Error) -> StoreError {
    StoreError::Unavailable(format!("{e:?}"))
}

impl KvStore for SpinStore {
    type Cas = atomics::Cas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key).map_err(unavailable)
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let found = batch::get_many(&self.0, keys).map_err(unavailable)?;
        Ok(crate::store::match_by_name(keys, &found))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.set(key, value).map_err(unavailable)
    }

    fn watch(&self, key: &str) -> Result<(atomics::Cas, Option<Vec<u8>>), StoreError> {
        let cas = atomics::Cas::new(&self.0, key).map_err(unavailable)?;
        let current = cas.current().map_err(unavailable)?;
        Ok((cas, current))
    }

    fn swap(&self, cas: atomics::Cas, value: &[u8]) -> Result<Swap, StoreError> {
        match atomics::swap(cas, value) {
            Ok(()) => Ok(Swap::Swapped),
            Err(atomics::CasError::CasFailed(_)) => Ok(Swap::Conflict),
            Err(atomics::CasError::StoreError(e)) => Err(unavailable(e)),
        }
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        atomics::increment(&self.0, key, delta).map_err(unavailable)
    }
}

/// The typed interface `push:devices/registry@0.1.0` (see `wit/push-devices.wit`).
mod bindings {
    wit_bindgen::generate!({ world: "push-devices", path: "wit" });
}

use crate::device::{Device, InvalidationReason, Provider};
use crate::error::ApiError;
use bindings::exports::push::devices::registry as wit;

struct Exports;

bindings::export!(Exports with_types_in bindings);

impl wit::Guest for Exports {
    fn list_devices(user_id: u64) -> Result<Vec<wit::Device>, wit::Error> {
        if user_id == 0 {
            return Err(wit::Error::InvalidUserId);
        }
        let devices = service::list_devices(&Spin, user_id).map_err(wit_error)?;
        Ok(devices.into_iter().map(wit_device).collect())
    }

    fn invalidate(
        provider: wit::Provider,
        token: String,
        reason: wit::InvalidationReason,
    ) -> Result<u32, wit::Error> {
        let provider = from_wit_provider(provider);
        crate::form::validate_token(provider, &token).map_err(wit::Error::InvalidToken)?;
        let reason = match reason {
            wit::InvalidationReason::Unregistered => InvalidationReason::Unregistered,
            wit::InvalidationReason::BadDeviceToken => InvalidationReason::BadDeviceToken,
            wit::InvalidationReason::DeviceTokenNotForTopic => InvalidationReason::DeviceTokenNotForTopic,
            wit::InvalidationReason::SenderIdMismatch => InvalidationReason::SenderIdMismatch,
            wit::InvalidationReason::Manual => InvalidationReason::Manual,
        };
        let removed = service::invalidate(&Spin, provider, &token, reason).map_err(wit_error)?;
        Ok(u32::try_from(removed).unwrap_or(u32::MAX))
    }
}

fn wit_error(e: ApiError) -> wit::Error {
    match e {
        ApiError::Config { variable, problem } => {
            wit::Error::Misconfigured(format!("variable `{variable}` {problem}"))
        }
        ApiError::Store(StoreError::Corrupt(detail)) => wit::Error::CorruptRecord(detail),
        ApiError::Store(other) => wit::Error::StoreUnavailable(other.to_string()),
        other => wit::Error::StoreUnavailable(format!("unexpected: {other:?}")),
    }
}

fn from_wit_provider(p: wit::Provider) -> Provider {
    match p {
        wit::Provider::Gcm => Provider::Gcm,
        wit::Provider::Apns => Provider::Apns,
        wit::Provider::ApnsInternal => Provider::ApnsInternal,
        wit::Provider::ApnsVoip => Provider::ApnsVoip,
        wit::Provider::ApnsInternalVoip => Provider::ApnsInternalVoip,
    }
}

fn to_wit_provider(p: Provider) -> wit::Provider {
    match p {
        Provider::Gcm => wit::Provider::Gcm,
        Provider::Apns => wit::Provider::Apns,
        Provider::ApnsInternal => wit::Provider::ApnsInternal,
        Provider::ApnsVoip => wit::Provider::ApnsVoip,
        Provider::ApnsInternalVoip => wit::Provider::ApnsInternalVoip,
    }
}

fn wit_device(d: Device) -> wit::Device {
    wit::Device {
        provider: to_wit_provider(d.provider),
        token: d.token,
        voip: d.voip.map(|v| wit::VoipToken { provider: to_wit_provider(v.provider), token: v.token }),
        bundle_id: d.bundle_id,
        bypass_server_throttling_supported: d.bypass_server_throttling_supported,
        last_registered_at: d.registered_at,
    }
}
