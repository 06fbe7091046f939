//! Durability and concurrency through the real component: SQLite persistence across restarts,
//! a limit shared by two hosts on one file, 64 concurrent clients against perfect and
//! Spin-quirky stores, and a store that does not grow with the tokens clients send.

mod common;

use common::*;
use push_devices_host::kv::{MemoryStore, Quirks, QuirksConfig};
use push_devices_host::{KvBackend, StoreChoice};
use std::sync::Arc;

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("push-devices-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("registry.db")
}

#[test]
fn sqlite_store_survives_a_restart() {
    let db = temp_db("restart");
    let first = Server::start(default_variables(), StoreChoice::Sqlite(db.clone()));
    assert_eq!(first.register(21, "gcm", "persisted-1").status, 204);
    assert_eq!(first.register(21, "apns", "abcd").status, 204);
    first.stop();
    let second = Server::start(default_variables(), StoreChoice::Sqlite(db.clone()));
    assert_eq!(second.tokens_of(21), ["abcd", "persisted-1"]);
    assert_store_invariants(&dump(&*second.backend()), 20);
    let _ = std::fs::remove_dir_all(db.parent().unwrap());
}

#[test]
fn two_hosts_on_one_sqlite_file_share_registrations_and_the_limit() {
    let db = temp_db("shared");
    let a = Server::start(default_variables(), StoreChoice::Sqlite(db.clone()));
    let b = Server::start(default_variables(), StoreChoice::Sqlite(db.clone()));
    for i in 0..10 {
        let server = if i % 2 == 0 { &a } else { &b };
        assert_eq!(server.register(22, "gcm", &format!("t{i}")).status, 204);
    }
    assert_eq!(a.register(22, "gcm", "eleventh").status, 429);
    assert_eq!(b.register(22, "gcm", "eleventh").status, 429);
    assert_eq!(b.tokens_of(22).len(), 10);
    let _ = std::fs::remove_dir_all(db.parent().unwrap());
}

/// 64 clients at once, each registering its own token, all for one user or one user each.
fn stampede(server: &Server, same_user: bool) {
    std::thread::scope(|s| {
        for i in 0..64u64 {
            s.spawn(move || {
                let user = if same_user { 500 } else { 600 + i };
                let r = server.register(user, "gcm", &format!("stampede-{i}"));
                assert_eq!(r.status, 204, "client {i}: {}", r.body);
            });
        }
    });
    if same_user {
        let want: Vec<String> = {
            let mut v: Vec<String> = (0..64).map(|i| format!("stampede-{i}")).collect();
            v.sort();
            v
        };
        assert_eq!(server.tokens_of(500), want, "a concurrent registration was lost");
    } else {
        for i in 0..64 {
            assert_eq!(server.tokens_of(600 + i), [format!("stampede-{i}")]);
        }
    }
    assert_store_invariants(&dump(&*server.backend()), 64);
}

fn stampede_variables() -> std::collections::BTreeMap<String, String> {
    let mut vars = default_variables();
    vars.insert("max_devices_per_user".into(), "64".into());
    vars.insert("rate_limit_writes".into(), "0".into());
    vars
}

#[test]
fn sixty_four_concurrent_clients_lose_nothing() {
    let server = Server::start(stampede_variables(), StoreChoice::Memory);
    stampede(&server, true);
    stampede(&server, false);
}

#[test]
fn sixty_four_concurrent_clients_on_sqlite() {
    let db = temp_db("stampede");
    let server = Server::start(stampede_variables(), StoreChoice::Sqlite(db.clone()));
    stampede(&server, true);
    let _ = std::fs::remove_dir_all(db.parent().unwrap());
}

#[test]
fn sixty_four_concurrent_clients_survive_spin_store_quirks() {
    for config in [
        QuirksConfig { blind_create_on_absent: true, cas_failed_after_success: false },
        QuirksConfig { blind_create_on_absent: false, cas_failed_after_success: true },
        QuirksConfig { blind_create_on_absent: true, cas_failed_after_success: true },
    ] {
        let backend: Arc<dyn KvBackend> = Arc::new(Quirks::new(MemoryStore::new(), config));
        let server = Server::start(stampede_variables(), StoreChoice::Custom(backend));
        stampede(&server, true);
    }
}

#[test]
fn tokens_that_come_and_go_leave_the_store_as_large_as_before() {
    // A client stuck registering ever-new tokens and dropping them again (DELETE, or the
    // gateway invalidating them): after the first round has touched its index shards, a
    // second round of other tokens landing in the same shards adds no key and no byte to
    // the index. Only the account's revision counter moves.
    let server = Server::start(stampede_variables(), StoreChoice::Memory);
    let round = |tokens: &[String]| {
        for (i, token) in tokens.iter().enumerate() {
            assert_eq!(server.register(700, "gcm", token).status, 204);
            let device = format!(r#""provider": "gcm", "token": "{token}""#);
            let r = if i % 2 == 0 {
                server.call("DELETE", "/users/@me/devices", Some(700), &format!("{{{device}}}"))
            } else {
                let body = format!(r#"{{{device}, "reason": "unregistered"}}"#);
                server.admin("POST", "/internal/devices/invalidate", &body)
            };
            assert!(r.status == 204 || r.status == 200, "{}: {}", r.status, r.body);
        }
    };
    assert_eq!(server.register(700, "gcm", "kept").status, 204);
    let first: Vec<String> = (0..16).map(|i| format!("loop-{i}")).collect();
    round(&first);
    let settled = dump(&*server.backend());
    let shard = |t: &str| push_devices::keys::token_index(push_devices::device::Provider::Gcm, t).shard;
    let second: Vec<String> = first
        .iter()
        .map(|t| (0u64..).map(|i| format!("{t}-{i}")).find(|c| shard(c) == shard(t)).unwrap())
        .collect();
    round(&second);
    let after = dump(&*server.backend());
    assert_eq!(after.keys().collect::<Vec<_>>(), settled.keys().collect::<Vec<_>>());
    for (key, value) in after.iter().filter(|(k, _)| !k.starts_with("pd:u:") && !k.starts_with("pd:r:")) {
        assert_eq!(String::from_utf8_lossy(value), String::from_utf8_lossy(&settled[key]), "{key}");
    }
    assert_eq!(server.tokens_of(700), ["kept"]);
    assert_store_invariants(&after, 64);
}
