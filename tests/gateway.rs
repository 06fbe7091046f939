//! The typed export `push:devices/registry@0.1.0` as a gateway embedding the host calls it:
//! `Host::list_devices` and `Host::invalidate` on the real release component, beside its HTTP
//! API on the same host and store. Also the host's own edge: the 413 it answers before the
//! component runs.

mod common;

use common::*;
use push_devices_host::kv::{Faults, MemoryStore};
use push_devices_host::{
    Device, InvalidationReason, KvBackend, KvError, Provider, RegistryError, StoreChoice, SwapOutcome, VoipToken,
};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn assert_recent(ms: u64, before: u64) {
    let after = now_ms();
    assert!(before <= ms && ms <= after, "last-registered-at {ms} not within [{before}, {after}]");
}

/// A device registered over HTTP with every field, so the typed view can be checked field by field.
const FULL_IOS: &str = r#"{"provider": "apns", "token": "0a1b2c3d", "voip_provider": "apns_voip", "voip_token": "ffee",
    "bypass_server_throttling_supported": true, "bundle_id": "com.hammerandchisel.discord"}"#;

/// Syncs `(provider, token)` of `from` to `others` through the HTTP API.
fn sync(s: &Server, from: u64, provider: &str, token: &str, others: &[u64]) {
    let tokens: Vec<String> = others.iter().map(|u| format!("\"{}\"", sync_token_at(*u, now_secs()))).collect();
    let body = format!(
        r#"{{"provider": "{provider}", "token": "{token}", "push_sync_tokens": [{}]}}"#,
        tokens.join(", ")
    );
    let r = s.call("PUT", "/users/@me/devices/sync", Some(from), &body);
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"invalid_push_sync_tokens": []}"#));
}

#[test]
fn list_after_register_has_every_field() {
    let s = Server::memory();
    assert!(s.host.has_registry());
    assert_eq!(s.list_devices(10), Ok(vec![]), "an unknown user has no devices");

    let before = now_ms();
    assert_eq!(s.call("POST", "/users/@me/devices", Some(10), FULL_IOS).status, 204);
    assert_eq!(s.register(10, "gcm", "fcm:APA91b-x_y").status, 204);

    let devices = s.list_devices(10).unwrap();
    assert_eq!(devices.len(), 2, "{devices:?}");
    // Oldest registration first.
    let (ios, android) = (&devices[0], &devices[1]);
    assert_eq!(
        ios,
        &Device {
            provider: Provider::Apns,
            token: "0a1b2c3d".into(),
            voip: Some(VoipToken { provider: Provider::ApnsVoip, token: "ffee".into() }),
            bundle_id: "com.hammerandchisel.discord".into(),
            bypass_server_throttling_supported: true,
            last_registered_at: ios.last_registered_at,
        }
    );
    assert_recent(ios.last_registered_at, before);
    assert_eq!(android.provider, Provider::Gcm);
    assert_eq!(android.token, "fcm:APA91b-x_y");
    assert_eq!(android.voip, None);
    assert_eq!(android.bundle_id, "com.discord", "the default bundle id");
    assert!(!android.bypass_server_throttling_supported);
    assert_recent(android.last_registered_at, ios.last_registered_at);

    // The typed view and the internal HTTP view agree.
    assert_eq!(s.tokens_of(10), ["0a1b2c3d", "fcm:APA91b-x_y"]);
    // Others' devices stay theirs.
    assert_eq!(s.list_devices(11), Ok(vec![]));
}

#[test]
fn list_after_sync_shows_the_device_on_every_account() {
    let s = Server::memory();
    let before = now_ms();
    assert_eq!(s.call("POST", "/users/@me/devices", Some(1), FULL_IOS).status, 204);
    sync(&s, 1, "apns", "0a1b2c3d", &[2, 3]);
    for user in [1, 2, 3] {
        let devices = s.list_devices(user).unwrap();
        assert_eq!(devices.len(), 1, "user {user}: {devices:?}");
        let d = &devices[0];
        assert_eq!((d.provider, d.token.as_str()), (Provider::Apns, "0a1b2c3d"), "user {user}");
        assert_eq!(
            d.voip,
            Some(VoipToken { provider: Provider::ApnsVoip, token: "ffee".into() }),
            "the caller's VoIP token rides along to {user}"
        );
        assert_recent(d.last_registered_at, before);
    }
    assert_store_invariants(&dump(&*s.backend()), 20);
}

#[test]
fn invalidate_removes_the_token_from_every_account_that_synced_it() {
    let s = Server::memory();
    assert_eq!(s.register(1, "gcm", "phone").status, 204);
    assert_eq!(s.register(1, "gcm", "tablet").status, 204);
    sync(&s, 1, "gcm", "phone", &[2, 3]);
    assert_eq!(s.register(4, "gcm", "elsewhere").status, 204);

    assert_eq!(s.invalidate(Provider::Gcm, "phone", InvalidationReason::Unregistered), Ok(3));
    assert_eq!(s.tokens_of(1), ["tablet"]);
    for user in [2, 3] {
        assert_eq!(s.list_devices(user), Ok(vec![]), "user {user}");
    }
    assert_eq!(s.tokens_of(4), ["elsewhere"], "an unrelated account is untouched");
    // Gone everywhere: a second report finds nobody, and is not an error.
    assert_eq!(s.invalidate(Provider::Gcm, "phone", InvalidationReason::Unregistered), Ok(0));
    // The provider is part of the identity: an APNs report of the same string removes nothing.
    assert_eq!(s.invalidate(Provider::Apns, "aabb", InvalidationReason::BadDeviceToken), Ok(0));
    assert_eq!(s.tokens_of(1), ["tablet"]);
    let log = s.output.contents();
    assert!(!log.contains("phone"), "tokens never reach the log: {log}");
    assert_store_invariants(&dump(&*s.backend()), 20);
}

#[test]
fn invalidating_a_voip_token_keeps_the_regular_one() {
    let s = Server::memory();
    assert_eq!(s.call("POST", "/users/@me/devices", Some(1), FULL_IOS).status, 204);
    sync(&s, 1, "apns", "0a1b2c3d", &[2, 3]);

    let removed = s.invalidate(Provider::ApnsVoip, "ffee", InvalidationReason::DeviceTokenNotForTopic);
    assert_eq!(removed, Ok(3));
    for user in [1, 2, 3] {
        let devices = s.list_devices(user).unwrap();
        assert_eq!(devices.len(), 1, "user {user} keeps the device: {devices:?}");
        assert_eq!((devices[0].provider, devices[0].token.as_str()), (Provider::Apns, "0a1b2c3d"));
        assert_eq!(devices[0].voip, None, "user {user}");
        assert_eq!(devices[0].bundle_id, "com.hammerandchisel.discord");
    }
    // Then the regular token goes too.
    assert_eq!(s.invalidate(Provider::Apns, "0a1b2c3d", InvalidationReason::Manual), Ok(3));
    for user in [1, 2, 3] {
        assert_eq!(s.list_devices(user), Ok(vec![]), "user {user}");
    }
    assert_store_invariants(&dump(&*s.backend()), 20);
}

#[test]
fn typed_errors_for_bad_input() {
    let s = Server::memory();
    assert_eq!(s.list_devices(0), Err(RegistryError::InvalidUserId));
    match s.invalidate(Provider::Apns, "not-hex!", InvalidationReason::BadDeviceToken) {
        Err(RegistryError::InvalidToken(why)) => assert!(why.contains("hexadecimal"), "{why}"),
        other => panic!("expected invalid-token, got {other:?}"),
    }
    match s.invalidate(Provider::ApnsInternalVoip, "abc", InvalidationReason::Manual) {
        Err(RegistryError::InvalidToken(_)) => {} // odd length
        other => panic!("expected invalid-token, got {other:?}"),
    }
    match s.invalidate(Provider::Gcm, "", InvalidationReason::SenderIdMismatch) {
        Err(RegistryError::InvalidToken(_)) => {}
        other => panic!("expected invalid-token, got {other:?}"),
    }
    // Bad input leaves nothing behind.
    assert!(dump(&*s.backend()).is_empty());
}

#[test]
fn misconfiguration_names_the_variable() {
    let mut vars = default_variables();
    vars.insert("max_devices_per_user".into(), "zero".into());
    let s = Server::start(vars, StoreChoice::Memory);
    for result in [
        s.list_devices(1).map(|_| 0),
        s.invalidate(Provider::Gcm, "phone", InvalidationReason::Unregistered),
    ] {
        match result {
            Err(RegistryError::Misconfigured(why)) => assert!(why.contains("max_devices_per_user"), "{why}"),
            other => panic!("expected misconfigured, got {other:?}"),
        }
    }
}

#[test]
fn a_failing_store_is_store_unavailable() {
    let backend: Arc<dyn KvBackend> = Arc::new(Faults::new(MemoryStore::new(), 1.0, 7));
    let s = Server::start(default_variables(), StoreChoice::Custom(backend));
    for result in [
        s.list_devices(1).map(|_| 0),
        s.invalidate(Provider::Gcm, "phone", InvalidationReason::Unregistered),
    ] {
        match result {
            Err(RegistryError::StoreUnavailable(why)) => assert!(!why.is_empty()),
            other => panic!("expected store-unavailable, got {other:?}"),
        }
    }
}

#[test]
fn every_call_gets_a_fresh_instance() {
    // Many calls in a row, each on its own instance: nothing leaks between them, and the host
    // keeps serving HTTP meanwhile.
    let s = Server::memory();
    assert_eq!(s.register(5, "gcm", "t0").status, 204);
    for _ in 0..50 {
        assert_eq!(s.list_devices(5).unwrap().len(), 1);
    }
    assert_eq!(s.register(5, "gcm", "t1").status, 204);
    assert_eq!(s.list_devices(5).unwrap().len(), 2);
}

/// A backend whose reads hang far past any request timeout.
struct Stuck(MemoryStore);

impl KvBackend for Stuck {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        std::thread::sleep(Duration::from_secs(2));
        self.0.get(store, key)
    }
    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.0.set(store, key, value)
    }
    fn delete(&self, store: &str, key: &str) -> Result<(), KvError> {
        self.0.delete(store, key)
    }
    fn list_keys(&self, store: &str) -> Result<Vec<String>, KvError> {
        self.0.list_keys(store)
    }
    fn swap(&self, store: &str, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<SwapOutcome, KvError> {
        self.0.swap(store, key, expected, value)
    }
    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.0.increment(store, key, delta)
    }
}

#[test]
fn typed_calls_time_out_like_requests() {
    let backend: Arc<dyn KvBackend> = Arc::new(Stuck(MemoryStore::new()));
    let s = Server::start_with(default_variables(), StoreChoice::Custom(backend), |c| {
        c.request_timeout = Duration::from_millis(200)
    });
    let start = Instant::now();
    let err = s.block_on(s.host.list_devices(1)).expect_err("a stuck store times the call out");
    assert!(format!("{err:#}").contains("timed out"), "{err:#}");
    assert!(start.elapsed() < Duration::from_millis(1500), "took {:?}", start.elapsed());
    let err = s
        .block_on(s.host.invalidate(Provider::Gcm, "t", InvalidationReason::Manual))
        .expect_err("a stuck store times the call out");
    assert!(format!("{err:#}").contains("timed out"), "{err:#}");
}

#[test]
fn the_hosts_body_cap_answers_like_the_component() {
    let s = Server::start_with(default_variables(), StoreChoice::Memory, |c| c.max_request_body = 1024);
    let r = s.call("POST", "/users/@me/devices", Some(1), &" ".repeat(2048));
    assert_eq!(r.status, 413);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, r#"{"message": "Request entity too large", "code": 40005}"#);
    // Same answer as the component's own, past its 16 KiB limit and under the host's default.
    let s = Server::memory();
    let component = s.call("POST", "/users/@me/devices", Some(1), &" ".repeat(16 * 1024 + 1));
    assert_eq!((component.status, component.body.as_str()), (r.status, r.body.as_str()));
}
