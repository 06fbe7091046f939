//! Failing stores and hostile input: every answer is a success whose data is really stored, a
//! 5xx JSON error, or the right 4xx body; never a panic, and the store's invariants hold.

mod common;

use common::*;
use proptest::prelude::*;
use push_devices_host::kv::{Faults, MemoryStore};
use push_devices_host::{KvBackend, StoreChoice};
use std::collections::BTreeSet;
use std::sync::Arc;

fn assert_server_error(r: &Reply) {
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    let body = r.json();
    assert!(body["message"].as_str().unwrap().starts_with(&r.status.to_string()), "{}", r.body);
    assert_eq!(body["code"], 0);
}

#[test]
fn store_faults_never_fake_a_success() {
    let faults = Arc::new(Faults::new(MemoryStore::new(), 0.15, 0x5eed));
    let backend: Arc<dyn KvBackend> = faults.clone();
    let mut vars = default_variables();
    vars.insert("rate_limit_writes".into(), "0".into()); // retries below would trip it
    let s = Server::start(vars, StoreChoice::Custom(backend));
    let mut surely_held = BTreeSet::new();
    let mut surely_gone = BTreeSet::new();
    let mut failures = 0;
    for user in 1..=8u64 {
        for t in 0..6 {
            let token = format!("u{user}-t{t}");
            let r = s.register(user, "gcm", &token);
            match r.status {
                204 => {
                    surely_held.insert((user, token));
                }
                _ => {
                    assert_server_error(&r);
                    failures += 1;
                }
            }
        }
        for t in 0..2 {
            let token = format!("u{user}-t{t}");
            let body = format!(r#"{{"provider": "gcm", "token": "{token}"}}"#);
            let r = s.call("DELETE", "/users/@me/devices", Some(user), &body);
            match r.status {
                204 => {
                    surely_held.remove(&(user, token.clone()));
                    surely_gone.insert((user, token));
                }
                _ => {
                    surely_held.remove(&(user, token));
                    assert_server_error(&r);
                    failures += 1;
                }
            }
        }
    }
    // A sync that succeeds leaves exactly the named accounts holding the device.
    let mut synced = None;
    for _ in 0..20 {
        let tb = s.call("GET", "/users/@me/devices/sync-token", Some(2), "");
        let body = format!(r#"{{"provider": "gcm", "token": "shared", "push_sync_tokens": ["{}"]}}"#, tb.json()["token"].as_str().unwrap());
        let r = s.call("PUT", "/users/@me/devices/sync", Some(1), &body);
        if r.status == 200 {
            synced = Some(r);
            break;
        }
        assert_server_error(&r);
        failures += 1;
    }
    let counts = faults.counts();
    assert!(counts.before > 0 && counts.after > 0, "faults were injected: {counts:?}");
    assert!(failures > 0, "some requests failed");
    faults.set_enabled(false);

    for (user, token) in &surely_held {
        assert!(s.tokens_of(*user).contains(token), "204 for {token} of {user}, yet not stored");
    }
    for (user, token) in &surely_gone {
        assert!(!s.tokens_of(*user).contains(token), "204 deleting {token} of {user}, yet still there");
    }
    if synced.is_some() {
        assert!(s.tokens_of(1).contains(&"shared".to_owned()));
        assert!(s.tokens_of(2).contains(&"shared".to_owned()));
    }
    assert_store_invariants(&faults.inner().dump("default"), 20);
    // Once the faults stop, everything works again.
    assert_eq!(s.register(1, "gcm", "after-the-storm").status, 204);
    assert!(s.tokens_of(1).contains(&"after-the-storm".to_owned()));
}

fn post(s: &Server, path: &str, body: &[u8]) -> Reply {
    let auth = format!("Bearer {}", user_token(42));
    s.send(if path.ends_with("sync") { "PUT" } else { "POST" }, path, &[("authorization", &auth)], body)
}

fn assert_client_error(r: &Reply) {
    assert!((400..500).contains(&r.status) || r.status == 204 || r.status == 200, "{} {}", r.status, r.body);
    if r.status >= 400 {
        let body = r.json();
        let code = body["code"].as_u64().unwrap();
        assert!([50035, 50109, 40005].contains(&code), "{}", r.body);
    }
}

#[test]
fn hostile_bodies_get_4xx_never_5xx() {
    let mut vars = default_variables();
    vars.insert("rate_limit_writes".into(), "0".into());
    let s = Server::start(vars, StoreChoice::Memory);
    let valid = br#"{"provider": "gcm", "token": "fcm:abc", "bundle_id": "com.discord"}"#;
    for cut in 0..valid.len() {
        assert_client_error(&post(&s, "/users/@me/devices", &valid[..cut]));
    }
    let cases: Vec<Vec<u8>> = vec![
        br#"{"provider": ["gcm"], "token": {"a": 1}}"#.to_vec(),
        br#"{"provider": "gcm", "token": "caf\u00e9"}"#.to_vec(),
        "{\"provider\": \"gcm\", \"token\": \"\u{1F600}\"}".as_bytes().to_vec(),
        br#"{"provider": "apns", "token": "zz"}"#.to_vec(),
        br#"{"provider": "gcm", "token": "a b"}"#.to_vec(),
        br#"null"#.to_vec(),
        br#"[]"#.to_vec(),
        br#"{"provider": "gcm", "token": "x", "push_sync_tokens": [[], null, 1e309]}"#.to_vec(),
        vec![0xff, 0x00, 0xfe],
        b"{\"a\":".repeat(4000),
        format!(r#"{{"provider": "gcm", "token": "{}"}}"#, "t".repeat(4097)).into_bytes(),
        vec![b'['; 20_000],
        vec![b' '; 900 << 10], // under the host's 1 MiB guard, so the component answers
    ];
    for body in &cases {
        for path in ["/users/@me/devices", "/users/@me/devices/sync"] {
            let r = post(&s, path, body);
            assert_client_error(&r);
            assert!(r.status >= 400, "{path} accepted {:?}", String::from_utf8_lossy(&body[..body.len().min(60)]));
        }
    }
    assert_eq!(post(&s, "/users/@me/devices", &vec![b' '; 16 * 1024 + 1]).status, 413);
    assert!(dump(&*s.backend()).keys().all(|k| !k.starts_with("pd:u:")), "nothing was stored");

    // The deepest bodies the parser accepts (127 levels), through the real component: they
    // must fit its stack (`.cargo/config.toml`) while parsed, read and dropped.
    let deep = |open: &str, close: &str| format!("{}1{}", open.repeat(126), close.repeat(126));
    let deepest = [deep("[", "]"), deep(r#"{"x": "#, "}")];
    for extra in &deepest {
        let body = format!(r#"{{"provider": "gcm", "token": "fcm:deep", "x": {extra}}}"#);
        assert_eq!(post(&s, "/users/@me/devices", body.as_bytes()).status, 204, "{}", &body[..60]);
        let body = format!(r#"{{"provider": "gcm", "token": "fcm:deep", "push_sync_tokens": {extra}}}"#);
        let r = post(&s, "/users/@me/devices/sync", body.as_bytes());
        assert_eq!((r.status, r.json()["code"].as_u64()), (400, Some(50035)), "{}", r.body);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_bodies_never_crash_the_component(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        token in "\\PC{0,40}",
    ) {
        static SERVER: std::sync::OnceLock<Server> = std::sync::OnceLock::new();
        let s = SERVER.get_or_init(|| {
            let mut vars = default_variables();
            vars.insert("rate_limit_writes".into(), "0".into());
            Server::start(vars, StoreChoice::Memory)
        });
        for path in ["/users/@me/devices", "/users/@me/devices/sync"] {
            let r = post(s, path, &body);
            prop_assert!(r.status < 500, "{} {}", r.status, r.body);
            assert_client_error(&r);
        }
        let json = serde_json::json!({"provider": "gcm", "token": token}).to_string();
        let r = post(s, "/users/@me/devices", json.as_bytes());
        let printable = !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic());
        prop_assert_eq!(r.status, if printable { 204 } else { 400 }, "{}", r.body);
    }
}
