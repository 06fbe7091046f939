use super::*;
use crate::device::VoipToken;
use crate::memory::{MemStore, Quirks};
use std::collections::BTreeSet;
use std::sync::Arc;

const NOW: u64 = 1_760_000_000_000;
const DAY_MS: u64 = 86_400_000;

fn reg(provider: Provider, token: &str) -> Registration {
    Registration {
        provider,
        token: token.to_owned(),
        voip: None,
        bypass_server_throttling_supported: false,
        bundle_id: DEFAULT_BUNDLE_ID.to_owned(),
    }
}

fn push(provider: Provider, token: &str) -> PushToken {
    PushToken { provider, token: token.to_owned() }
}

fn registry(store: &MemStore, now: u64) -> Registry<'_, MemStore> {
    Registry::new(store, Limits::default(), now)
}

fn tokens(store: &MemStore, user: u64, now: u64) -> Vec<String> {
    registry(store, now).devices(user).unwrap().into_iter().map(|d| d.token).collect()
}

/// Every token held by an account is listed in its holders entry, and no record exceeds the cap.
fn assert_invariants(store: &MemStore, max_devices: usize) {
    for (key, bytes) in store.dump() {
        let Some(user) = key.strip_prefix("pd:u:").and_then(|u| u.parse::<u64>().ok()) else { continue };
        let record: UserRecord = cas::decode(&key, &bytes).unwrap();
        assert!(record.devices.len() <= max_devices, "{key} holds {}", record.devices.len());
        let mut seen = BTreeSet::new();
        for device in &record.devices {
            assert!(seen.insert((device.provider, device.token.clone())), "duplicate in {key}");
            for (provider, token) in device.push_tokens() {
                let holders = Registry::new(store, Limits::default(), NOW).holders(provider, token).unwrap();
                assert!(holders.contains(&user), "index misses holder {user} of {token}");
            }
        }
    }
}

#[test]
fn register_is_an_idempotent_upsert() {
    let store = MemStore::new();
    registry(&store, NOW).register(1, &reg(Provider::Gcm, "a")).unwrap();
    registry(&store, NOW + 5).register(1, &reg(Provider::Gcm, "a")).unwrap();
    let devices = registry(&store, NOW + 5).devices(1).unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].registered_at, NOW + 5);
    // Same token, other provider: another registration.
    registry(&store, NOW).register(1, &reg(Provider::ApnsInternal, "ab")).unwrap();
    assert_eq!(tokens(&store, 1, NOW), ["a", "ab"]);
    assert_eq!(registry(&store, NOW).holders(Provider::Gcm, "a").unwrap(), [1]);
    assert_invariants(&store, 20);
}

#[test]
fn re_registering_updates_settings_and_voip_index() {
    let store = MemStore::new();
    let mut r = reg(Provider::Apns, "aa");
    r.voip = Some(VoipToken { provider: Provider::ApnsVoip, token: "b1".into() });
    registry(&store, NOW).register(1, &r).unwrap();
    assert_eq!(registry(&store, NOW).holders(Provider::ApnsVoip, "b1").unwrap(), [1]);
    r.voip = Some(VoipToken { provider: Provider::ApnsVoip, token: "b2".into() });
    r.bundle_id = "com.example".into();
    registry(&store, NOW + 1).register(1, &r).unwrap();
    let d = &registry(&store, NOW).devices(1).unwrap()[0];
    assert_eq!(d.bundle_id, "com.example");
    assert_eq!(d.voip.as_ref().unwrap().token, "b2");
    assert!(registry(&store, NOW).holders(Provider::ApnsVoip, "b1").unwrap().is_empty());
    assert_eq!(registry(&store, NOW).holders(Provider::ApnsVoip, "b2").unwrap(), [1]);
    assert_invariants(&store, 20);
}

#[test]
fn unregister_removes_and_tolerates_absence() {
    let store = MemStore::new();
    registry(&store, NOW).register(1, &reg(Provider::Gcm, "a")).unwrap();
    registry(&store, NOW).unregister(1, &push(Provider::Gcm, "zzz")).unwrap();
    registry(&store, NOW).unregister(2, &push(Provider::Gcm, "a")).unwrap();
    assert_eq!(tokens(&store, 1, NOW), ["a"]);
    registry(&store, NOW).unregister(1, &push(Provider::Gcm, "a")).unwrap();
    assert!(tokens(&store, 1, NOW).is_empty());
    assert!(registry(&store, NOW).holders(Provider::Gcm, "a").unwrap().is_empty());
    assert_invariants(&store, 20);
}

#[test]
fn unregister_clears_a_stale_holders_entry() {
    // An earlier request indexed the token, then failed before writing the account record.
    let store = MemStore::new();
    Registry::new(&store, Limits::default(), NOW).index_add(&keys::token_index(Provider::Gcm, "t"), 9).unwrap();
    assert_eq!(registry(&store, NOW).holders(Provider::Gcm, "t").unwrap(), [9]);
    let before = store.calls();
    registry(&store, NOW).unregister(9, &push(Provider::Gcm, "t")).unwrap();
    assert!(registry(&store, NOW).holders(Provider::Gcm, "t").unwrap().is_empty());
    // Removing what is nowhere costs a read of each, no fence.
    let before_nothing = store.calls();
    registry(&store, NOW).unregister(9, &push(Provider::Gcm, "t")).unwrap();
    assert_eq!(store.calls() - before_nothing, 2);
    assert!(store.calls() - before > 2);
}

#[test]
fn cap_evicts_the_least_recently_registered() {
    let store = MemStore::new();
    let limits = Limits { max_devices: 3, ..Limits::default() };
    for (i, t) in ["a", "b", "c"].iter().enumerate() {
        Registry::new(&store, limits, NOW + i as u64).register(1, &reg(Provider::Gcm, t)).unwrap();
    }
    // Refresh "a", so "b" is now the oldest.
    Registry::new(&store, limits, NOW + 10).register(1, &reg(Provider::Gcm, "a")).unwrap();
    Registry::new(&store, limits, NOW + 11).register(1, &reg(Provider::Gcm, "d")).unwrap();
    let mut held = tokens(&store, 1, NOW + 11);
    held.sort();
    assert_eq!(held, ["a", "c", "d"]);
    assert!(registry(&store, NOW).holders(Provider::Gcm, "b").unwrap().is_empty());
    assert_invariants(&store, 3);
}

#[test]
fn stale_registrations_disappear() {
    let store = MemStore::new();
    registry(&store, NOW).register(1, &reg(Provider::Gcm, "old")).unwrap();
    registry(&store, NOW + 200 * DAY_MS).register(1, &reg(Provider::Gcm, "new")).unwrap();
    let later = NOW + 271 * DAY_MS;
    assert_eq!(tokens(&store, 1, later), ["new"]);
    // The next write drops it from the record and from the index.
    registry(&store, later).register(1, &reg(Provider::Gcm, "new")).unwrap();
    assert!(registry(&store, later).holders(Provider::Gcm, "old").unwrap().is_empty());
    let record: UserRecord = cas::decode("k", &store.get("pd:u:1").unwrap().unwrap()).unwrap();
    assert_eq!(record.devices.len(), 1);
}

#[test]
fn sync_sets_exactly_the_named_accounts() {
    let store = MemStore::new();
    let phone = push(Provider::Gcm, "phone");
    let mut r = reg(Provider::Gcm, "phone");
    r.bundle_id = "com.example.app".into();
    registry(&store, NOW).register(1, &r).unwrap();
    registry(&store, NOW).sync(1, &phone, &[2, 3]).unwrap();
    for user in [1, 2, 3] {
        let devices = registry(&store, NOW).devices(user).unwrap();
        assert_eq!(devices.len(), 1, "user {user}");
        assert_eq!(devices[0].bundle_id, "com.example.app", "the caller's settings are copied");
    }
    assert_eq!(registry(&store, NOW).holders(Provider::Gcm, "phone").unwrap(), [1, 2, 3]);
    // 3 logged out on the phone: the next sync names only 2.
    registry(&store, NOW).sync(1, &phone, &[2]).unwrap();
    assert!(registry(&store, NOW).devices(3).unwrap().is_empty());
    assert_eq!(registry(&store, NOW).holders(Provider::Gcm, "phone").unwrap(), [1, 2]);
    // Sync from an account that had nothing registers it too, with defaults.
    registry(&store, NOW).sync(4, &push(Provider::Gcm, "tablet"), &[]).unwrap();
    assert_eq!(registry(&store, NOW).devices(4).unwrap()[0].bundle_id, "com.discord");
    assert_invariants(&store, 20);
}

#[test]
fn sync_touches_only_accounts_that_change() {
    let store = MemStore::new();
    let phone = push(Provider::Gcm, "phone");
    let named: Vec<u64> = (2..34).collect();
    registry(&store, NOW).sync(1, &phone, &named).unwrap();
    let before = store.calls();
    registry(&store, NOW).sync(1, &phone, &named).unwrap();
    // Index read + one batched read of all 33 accounts; nothing written.
    assert_eq!(store.calls() - before, 2);
}

#[test]
fn invalidate_removes_from_every_holder_and_voip_alone() {
    let store = MemStore::new();
    let mut r = reg(Provider::Apns, "aa");
    r.voip = Some(VoipToken { provider: Provider::ApnsVoip, token: "cc".into() });
    registry(&store, NOW).register(1, &r).unwrap();
    registry(&store, NOW).sync(1, &push(Provider::Apns, "aa"), &[2, 3]).unwrap();
    assert_eq!(registry(&store, NOW).invalidate(Provider::ApnsVoip, "cc").unwrap(), 3);
    for user in [1, 2, 3] {
        let devices = registry(&store, NOW).devices(user).unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].voip, None);
    }
    assert_eq!(registry(&store, NOW).invalidate(Provider::Apns, "aa").unwrap(), 3);
    for user in [1, 2, 3] {
        assert!(registry(&store, NOW).devices(user).unwrap().is_empty());
    }
    assert_eq!(registry(&store, NOW).invalidate(Provider::Apns, "aa").unwrap(), 0);
    assert_invariants(&store, 20);
}

/// `n` GCM tokens other than `token` whose index entries land in `token`'s shard.
fn same_shard_as(token: &str, n: usize) -> Vec<String> {
    let shard = keys::token_index(Provider::Gcm, token).shard;
    (0u64..)
        .map(|i| format!("{token}-{i}"))
        .filter(|t| keys::token_index(Provider::Gcm, t).shard == shard)
        .take(n)
        .collect()
}

#[test]
fn tokens_come_and_go_without_growing_the_store() {
    // A broken or hostile client cycling through ever-new tokens, by every route that removes
    // one: once they are gone the store is exactly as large as after the first such round,
    // because entries leave their shard and the shards are a fixed set of keys.
    fn round(store: &MemStore, tokens: &[String]) {
        let r = registry(store, NOW);
        for (i, t) in tokens.iter().enumerate() {
            r.register(1, &reg(Provider::Gcm, t)).unwrap();
            match i % 3 {
                0 => r.unregister(1, &push(Provider::Gcm, t)).unwrap(),
                1 => {
                    r.sync(1, &push(Provider::Gcm, t), &[2, 3]).unwrap();
                    assert_eq!(r.invalidate(Provider::Gcm, t).unwrap(), 3);
                }
                _ => {
                    r.sync(1, &push(Provider::Gcm, t), &[2]).unwrap();
                    r.sync(2, &push(Provider::Gcm, t), &[]).unwrap(); // 1 loses it
                    r.unregister(2, &push(Provider::Gcm, t)).unwrap();
                }
            }
        }
    }
    let store = MemStore::new();
    registry(&store, NOW).register(1, &reg(Provider::Gcm, "kept")).unwrap();
    let first: Vec<String> = (0..24).map(|i| format!("first-{i}")).collect();
    round(&store, &first);
    let settled = store.dump();
    let second: Vec<String> = first.iter().map(|t| same_shard_as(t, 1).remove(0)).collect();
    round(&store, &second);
    let after = store.dump();

    let index = |dump: &std::collections::BTreeMap<String, Vec<u8>>| -> Vec<(String, String)> {
        dump.iter()
            .filter(|(k, _)| k.starts_with("pd:i:") && !k.ends_with(":claim"))
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    };
    assert_eq!(after.keys().collect::<Vec<_>>(), settled.keys().collect::<Vec<_>>(), "new keys");
    assert_eq!(index(&after), index(&settled), "the index kept something of a gone token");
    // Account records differ only in their revision counter.
    for (key, bytes) in after.iter().filter(|(k, _)| k.starts_with("pd:u:") && !k.ends_with(":claim")) {
        let devices = |b: &[u8]| cas::decode::<UserRecord>(key, b).unwrap().devices;
        assert_eq!(devices(bytes), devices(&settled[key]), "{key}");
    }
    // Only the kept token is left in the index, and it is still found.
    let entries: usize = index(&after)
        .iter()
        .map(|(k, v)| cas::decode::<IndexShard>(k, v.as_bytes()).unwrap().tokens.len())
        .sum();
    assert_eq!(entries, 1);
    assert_eq!(registry(&store, NOW).holders(Provider::Gcm, "kept").unwrap(), [1]);
    assert_invariants(&store, 20);
}

#[test]
fn store_call_budget() {
    let store = MemStore::new();
    registry(&store, NOW).register(1, &reg(Provider::Gcm, "a")).unwrap();
    let before = store.calls();
    registry(&store, NOW + 1).register(1, &reg(Provider::Gcm, "a")).unwrap();
    assert_eq!(store.calls() - before, 2, "re-registering: read and swap the account");
    let before = store.calls();
    registry(&store, NOW + 2).register(1, &reg(Provider::Gcm, "b")).unwrap();
    assert_eq!(store.calls() - before, 5, "new device, new shard: read the account, read, claim and write the shard, swap");
    // Once the shard exists, a token landing in it costs a read and a swap of the shard.
    let c = same_shard_as("b", 1)[0].clone();
    let before = store.calls();
    registry(&store, NOW + 3).register(1, &reg(Provider::Gcm, &c)).unwrap();
    assert_eq!(store.calls() - before, 4, "new device: read the account, read and swap the shard, swap");
}

fn hammer(store: Arc<MemStore>, writers: usize, same_user: bool) {
    let limits = Limits { max_devices: writers, ..Limits::default() };
    let threads: Vec<_> = (0..writers)
        .map(|i| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let user = if same_user { 1 } else { 100 + i as u64 };
                Registry::new(&*store, limits, NOW)
                    .register(user, &reg(Provider::Gcm, &format!("token-{i}")))
                    .unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    if same_user {
        let mut held = tokens(&store, 1, NOW);
        held.sort();
        let mut want: Vec<String> = (0..writers).map(|i| format!("token-{i}")).collect();
        want.sort();
        assert_eq!(held, want, "a concurrent registration was lost");
    } else {
        for i in 0..writers {
            assert_eq!(tokens(&store, 100 + i as u64, NOW), [format!("token-{i}")]);
        }
    }
    assert_invariants(&store, writers);
}

#[test]
fn concurrent_registrations_lose_nothing() {
    hammer(Arc::new(MemStore::new()), 32, true);
    hammer(Arc::new(MemStore::new()), 32, false);
}

#[test]
fn concurrent_registrations_survive_spin_quirks() {
    for quirks in [
        Quirks { blind_create: true, false_conflict: false },
        Quirks { blind_create: false, false_conflict: true },
        Quirks { blind_create: true, false_conflict: true },
    ] {
        hammer(Arc::new(MemStore::with_quirks(quirks)), 32, true);
    }
}

#[test]
fn concurrent_add_and_remove_keep_the_index_complete() {
    // One thread keeps registering and unregistering a token while others sync it around;
    // whatever interleaving happens, every holder stays indexed.
    let store = Arc::new(MemStore::with_quirks(Quirks { blind_create: true, false_conflict: true }));
    let threads: Vec<_> = (0..8u64)
        .map(|i| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for round in 0..20u64 {
                    let r = Registry::new(&*store, Limits::default(), NOW + round);
                    let phone = push(Provider::Gcm, "shared");
                    match (i + round) % 3 {
                        0 => r.register(i + 1, &reg(Provider::Gcm, "shared")).unwrap(),
                        1 => r.unregister(i + 1, &phone).unwrap(),
                        _ => r.sync(i + 1, &phone, &[(i + 1) % 8 + 1]).unwrap(),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_invariants(&store, 20);
}

/// The `KvStore` methods a staging fake passes through untouched (each fake stages swaps,
/// watches or claims), so each impl shows only what it changes.
macro_rules! plain_reads_and_sets {
    () => {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
        fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
            self.inner.get_many(keys)
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.inner.set(key, value)
        }
    };
}

/// A store that runs a hook around the first swap of one key, to stage an exact interleaving.
struct Staged<'a> {
    inner: &'a MemStore,
    key: &'static str,
    before_first_swap: Option<Box<dyn Fn() + Send + Sync + 'a>>,
    after_first_swap: Option<Box<dyn Fn() + Send + Sync + 'a>>,
    /// Runs before the first `increment` of `key`'s creation claim (a creating write).
    before_first_claim: Option<Box<dyn Fn() + Send + Sync + 'a>>,
    swaps: std::sync::atomic::AtomicUsize,
    claims: std::sync::atomic::AtomicUsize,
}

impl KvStore for Staged<'_> {
    type Cas = crate::memory::MemCas;
    plain_reads_and_sets!();
    fn watch(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), StoreError> {
        self.inner.watch(key)
    }
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<crate::store::Swap, StoreError> {
        let first = key_of(&cas) == self.key
            && self.swaps.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        if first && let Some(hook) = &self.before_first_swap {
            hook();
        }
        let outcome = self.inner.swap(cas, value);
        if first && let Some(hook) = &self.after_first_swap {
            hook();
        }
        outcome
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        if key == keys::creation_claim(self.key)
            && self.claims.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
            && let Some(hook) = &self.before_first_claim
        {
            hook();
        }
        self.inner.increment(key, delta)
    }
}

fn key_of(cas: &crate::memory::MemCas) -> &str {
    cas.key()
}

/// A `Staged` store with no hooks yet (set them with struct update syntax).
fn staged<'a>(inner: &'a MemStore, key: &'static str) -> Staged<'a> {
    Staged {
        inner,
        key,
        before_first_swap: None,
        after_first_swap: None,
        before_first_claim: None,
        swaps: Default::default(),
        claims: Default::default(),
    }
}

/// A unregisters "t" from account 1 while B registers it again, staged so that B checks the
/// index (still listing the account) after A wrote the account record but before A unindexes,
/// and B swaps the account record only after A is done: without A's fence B's swap would land
/// and the index would miss the account. With `index_meanwhile`, A's first swap of an index
/// shard lands but reports a conflict, after running it (see [`LandedButConflicted`]).
/// Returns whether that happened.
fn race_removal_against_re_add(store: &MemStore, index_meanwhile: Option<Box<dyn Fn() + Send + Sync + '_>>) -> bool {
    use std::sync::Mutex;
    use std::sync::mpsc::channel;
    let (a_wrote, a_wrote_rx) = channel::<()>();
    let (b_ready, b_ready_rx) = channel::<()>();
    let (a_done, a_done_rx) = channel::<()>();
    let (a_wrote, b_ready_rx) = (Mutex::new(a_wrote), Mutex::new(b_ready_rx));
    let (b_ready, a_done_rx) = (Mutex::new(b_ready), Mutex::new(a_done_rx));
    let a_staged = Staged {
        after_first_swap: Some(Box::new(|| {
            a_wrote.lock().unwrap().send(()).unwrap();
            b_ready_rx.lock().unwrap().recv().unwrap();
        })),
        ..staged(store, "pd:u:1")
    };
    let a_store = LandedButConflicted {
        inner: &a_staged,
        prefix: "pd:i:",
        meanwhile: index_meanwhile,
        lied: Default::default(),
    };
    let b_store = Staged {
        before_first_swap: Some(Box::new(|| {
            b_ready.lock().unwrap().send(()).unwrap();
            a_done_rx.lock().unwrap().recv().unwrap();
        })),
        ..staged(store, "pd:u:1")
    };
    std::thread::scope(|s| {
        let (a_store, a_done) = (&a_store, &a_done);
        let a = s.spawn(move || {
            Registry::new(a_store, Limits::default(), NOW + 1).unregister(1, &push(Provider::Gcm, "t")).unwrap();
            a_done.send(()).unwrap();
        });
        a_wrote_rx.recv().unwrap();
        Registry::new(&b_store, Limits::default(), NOW + 2).register(1, &reg(Provider::Gcm, "t")).unwrap();
        a.join().unwrap();
    });
    a_store.lied.load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn a_removal_racing_a_re_add_never_unindexes_a_holder() {
    let store = MemStore::new();
    registry(&store, NOW).register(1, &reg(Provider::Gcm, "t")).unwrap();
    assert!(!race_removal_against_re_add(&store, None));
    assert_eq!(tokens(&store, 1, NOW + 2), ["t"]);
    assert_invariants(&store, 20);
}

/// A store whose swaps of one key fail as if the connection dropped; with `land_first`, the
/// first of them drops only the answer (the write lands, the caller sees an error), and from
/// then on compare-and-swap reads of the key fail too: only plain reads get through.
struct FailingSwaps<'a> {
    inner: &'a MemStore,
    key: &'static str,
    land_first: bool,
    swaps: std::sync::atomic::AtomicUsize,
}

impl KvStore for FailingSwaps<'_> {
    type Cas = crate::memory::MemCas;
    plain_reads_and_sets!();
    fn watch(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), StoreError> {
        if self.land_first && key == self.key && self.swaps.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            return Err(StoreError::Unavailable("connection reset".into()));
        }
        self.inner.watch(key)
    }
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<crate::store::Swap, StoreError> {
        if key_of(&cas) == self.key {
            if self.land_first && self.swaps.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                self.inner.swap(cas, value)?;
            }
            return Err(StoreError::Unavailable("connection reset".into()));
        }
        self.inner.swap(cas, value)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.inner.increment(key, delta)
    }
}

#[test]
fn a_registration_that_fails_takes_its_index_entries_back() {
    let store = MemStore::new();
    registry(&store, NOW).register(1, &reg(Provider::Gcm, "a")).unwrap();
    let failing = FailingSwaps { inner: &store, key: "pd:u:1", land_first: false, swaps: Default::default() };
    let mut r = reg(Provider::Apns, "bb");
    r.voip = Some(VoipToken { provider: Provider::ApnsVoip, token: "cc".into() });
    let err = Registry::new(&failing, Limits::default(), NOW).register(1, &r).unwrap_err();
    assert_eq!(err, StoreError::Unavailable("connection reset".into()));
    assert!(registry(&store, NOW).holders(Provider::Apns, "bb").unwrap().is_empty());
    assert!(registry(&store, NOW).holders(Provider::ApnsVoip, "cc").unwrap().is_empty());
    assert_eq!(registry(&store, NOW).holders(Provider::Gcm, "a").unwrap(), [1]);
    assert_eq!(tokens(&store, 1, NOW), ["a"]);
    assert_invariants(&store, 20);
}

#[test]
fn a_registration_reported_failed_that_landed_stays_indexed() {
    // The swap wrote but the answer was lost, and the store keeps failing: the entries must
    // stay, since the account now holds the token.
    let store = MemStore::new();
    registry(&store, NOW).register(1, &reg(Provider::Gcm, "z")).unwrap();
    let failing = FailingSwaps { inner: &store, key: "pd:u:1", land_first: true, swaps: Default::default() };
    let err = Registry::new(&failing, Limits::default(), NOW).register(1, &reg(Provider::Gcm, "a")).unwrap_err();
    assert_eq!(err, StoreError::Unavailable("connection reset".into()));
    assert_eq!(tokens(&store, 1, NOW), ["z", "a"]);
    assert_eq!(registry(&store, NOW).holders(Provider::Gcm, "a").unwrap(), [1]);
    assert_invariants(&store, 20);
}

/// A store whose first swap of a key starting with `prefix` lands, then runs `meanwhile` (another
/// writer changing the key), then reports `cas-failed`: Spin's Redis quirk, at its worst moment,
/// since the re-read then cannot recognise the write. Without `meanwhile` it passes every call
/// through.
struct LandedButConflicted<'a, S> {
    inner: &'a S,
    prefix: &'static str,
    meanwhile: Option<Box<dyn Fn() + Send + Sync + 'a>>,
    lied: std::sync::atomic::AtomicBool,
}

impl<S: KvStore<Cas = crate::memory::MemCas>> KvStore for LandedButConflicted<'_, S> {
    type Cas = crate::memory::MemCas;
    plain_reads_and_sets!();
    fn watch(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), StoreError> {
        self.inner.watch(key)
    }
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<crate::store::Swap, StoreError> {
        let lie = self.meanwhile.as_ref().filter(|_| {
            key_of(&cas).starts_with(self.prefix) && !self.lied.swap(true, std::sync::atomic::Ordering::SeqCst)
        });
        let outcome = self.inner.swap(cas, value)?;
        if let Some(meanwhile) = lie {
            assert_eq!(outcome, crate::store::Swap::Swapped, "the staged swap should land");
            meanwhile();
            return Ok(crate::store::Swap::Conflict);
        }
        Ok(outcome)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.inner.increment(key, delta)
    }
}

#[test]
fn a_removal_that_landed_unseen_is_still_unindexed() {
    // With a cap of one device, registering "u" evicts "t". The swap lands but reports a
    // conflict, and "u" is re-registered meanwhile, so the retry finds "t" already gone and
    // removes nothing. The index must still lose the account for "t".
    let store = MemStore::new();
    let one = Limits { max_devices: 1, ..Limits::default() };
    Registry::new(&store, one, NOW).register(1, &reg(Provider::Gcm, "t")).unwrap();
    let lying = LandedButConflicted {
        inner: &store,
        prefix: "pd:u:1",
        meanwhile: Some(Box::new(|| Registry::new(&store, one, NOW + 1).register(1, &reg(Provider::Gcm, "u")).unwrap())),
        lied: Default::default(),
    };
    Registry::new(&lying, one, NOW + 2).register(1, &reg(Provider::Gcm, "u")).unwrap();
    assert!(lying.lied.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(tokens(&store, 1, NOW + 2), ["u"]);
    assert!(registry(&store, NOW).holders(Provider::Gcm, "t").unwrap().is_empty());
    assert_invariants(&store, 1);
}

#[test]
fn an_unindexing_that_landed_unseen_still_fences() {
    // As `a_removal_racing_a_re_add_never_unindexes_a_holder`, but A's swap taking the account
    // out of the shard reports a conflict although it landed, and another token of the shard
    // changed meanwhile: A's retry finds nothing to remove, and A must fence all the same.
    let store = MemStore::new();
    registry(&store, NOW).register(1, &reg(Provider::Gcm, "t")).unwrap();
    let neighbour = same_shard_as("t", 1).remove(0);
    let meanwhile = || registry(&store, NOW).register(7, &reg(Provider::Gcm, &neighbour)).unwrap();
    assert!(race_removal_against_re_add(&store, Some(Box::new(meanwhile))));
    assert_eq!(tokens(&store, 1, NOW + 2), ["t"]);
    assert_eq!(registry(&store, NOW).holders(Provider::Gcm, &neighbour).unwrap(), [7]);
    assert_invariants(&store, 20);
}

#[test]
fn clearing_a_leftover_entry_fences_an_account_being_created() {
    // Account 1 has no record, only an index entry for "t" left by a failed request. B creates
    // the record with "t": it checks the index (listed, nothing to add), and before its creating
    // write, A's unregister clears the leftover. A must fence the absent record, or B's write
    // lands with the index missing the account.
    use std::sync::mpsc::channel;
    let store = MemStore::new();
    registry(&store, NOW).index_add(&keys::token_index(Provider::Gcm, "t"), 1).unwrap();
    let (b_ready, b_ready_rx) = channel::<()>();
    let (a_done, a_done_rx) = channel::<()>();
    let (b_ready, a_done_rx) = (std::sync::Mutex::new(b_ready), std::sync::Mutex::new(a_done_rx));
    let b_store = Staged {
        before_first_claim: Some(Box::new(|| {
            b_ready.lock().unwrap().send(()).unwrap();
            a_done_rx.lock().unwrap().recv().unwrap();
        })),
        ..staged(&store, "pd:u:1")
    };
    std::thread::scope(|s| {
        let b_store = &b_store;
        let b = s.spawn(move || {
            Registry::new(b_store, Limits::default(), NOW + 2).register(1, &reg(Provider::Gcm, "t")).unwrap();
        });
        b_ready_rx.recv().unwrap();
        registry(&store, NOW + 1).unregister(1, &push(Provider::Gcm, "t")).unwrap();
        a_done.send(()).unwrap();
        b.join().unwrap();
    });
    assert_eq!(tokens(&store, 1, NOW + 2), ["t"]);
    assert_eq!(registry(&store, NOW).holders(Provider::Gcm, "t").unwrap(), [1]);
    assert_invariants(&store, 20);
}
