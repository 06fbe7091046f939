//! Durability and concurrency through the real component: SQLite persistence across restarts,
//! a limit shared by two hosts on one file, and 64 concurrent clients against perfect and
//! Spin-quirky stores.

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
