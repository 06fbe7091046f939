//! An in-memory [`KvStore`] with real compare-and-swap, and switches that reproduce Spin's store
//! quirks, for the unit tests and the native benchmark.

use crate::store::{KvStore, StoreError, Swap};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Spin 4's store behaviours that a correct store would not have.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quirks {
    /// SQLite store: a swap whose `current()` saw the key absent is a blind upsert.
    pub blind_create: bool,
    /// Redis store: a swap that wrote may still report `cas-failed`.
    pub false_conflict: bool,
}

#[derive(Default)]
pub struct MemStore {
    data: Mutex<BTreeMap<String, Vec<u8>>>,
    quirks: Quirks,
    calls: AtomicU64,
}

pub struct MemCas {
    key: String,
    seen: Option<Vec<u8>>,
}

impl MemCas {
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    pub fn with_quirks(quirks: Quirks) -> MemStore {
        MemStore { quirks, ..MemStore::default() }
    }

    /// Store calls made so far (each is a round trip behind a networked store).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// A copy of everything stored.
    pub fn dump(&self) -> BTreeMap<String, Vec<u8>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-updated: every update is
        // one insert. Keep serving.
        self.data.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

impl KvStore for MemStore {
    type Cas = MemCas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.count();
        Ok(self.lock().get(key).cloned())
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.count();
        let data = self.lock();
        Ok(keys.iter().map(|k| data.get(k).cloned()).collect())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.count();
        self.lock().insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn watch(&self, key: &str) -> Result<(MemCas, Option<Vec<u8>>), StoreError> {
        self.count();
        let seen = self.lock().get(key).cloned();
        Ok((MemCas { key: key.to_owned(), seen: seen.clone() }, seen))
    }

    fn swap(&self, cas: MemCas, value: &[u8]) -> Result<Swap, StoreError> {
        self.count();
        if cas.seen.is_none() && self.quirks.blind_create {
            // Widen the race window the way a busy host would, so tests meet the quirk.
            std::thread::yield_now();
            self.lock().insert(cas.key, value.to_vec());
            return Ok(Swap::Swapped);
        }
        let mut data = self.lock();
        if data.get(&cas.key) != cas.seen.as_ref() {
            return Ok(Swap::Conflict);
        }
        data.insert(cas.key, value.to_vec());
        Ok(if self.quirks.false_conflict { Swap::Conflict } else { Swap::Swapped })
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.count();
        let mut data = self.lock();
        let current = match data.get(key) {
            None => 0,
            Some(v) => i64::from_le_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt(format!("{key} is not a counter")))?,
            ),
        };
        let next = current.wrapping_add(delta);
        data.insert(key.to_owned(), next.to_le_bytes().to_vec());
        Ok(next)
    }
}

/// A whole platform in memory: variables, one store and a settable clock. It runs the component's
/// request pipeline natively, for tests and for the benchmark's native baseline.
pub struct MemPlatform {
    pub store: std::sync::Arc<MemStore>,
    pub variables: BTreeMap<String, String>,
    pub now_ms: AtomicU64,
}

impl MemPlatform {
    pub fn new(variables: &[(&str, &str)], now_ms: u64) -> MemPlatform {
        MemPlatform {
            store: std::sync::Arc::new(MemStore::new()),
            variables: variables.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            now_ms: AtomicU64::new(now_ms),
        }
    }
}

impl crate::service::Platform for MemPlatform {
    type Store = std::sync::Arc<MemStore>;

    fn variable(&self, name: &str) -> Option<String> {
        self.variables.get(name).cloned()
    }

    fn open_store(&self, label: &str) -> Result<Self::Store, StoreError> {
        if label == "default" {
            Ok(std::sync::Arc::clone(&self.store))
        } else {
            Err(StoreError::Unavailable(format!("no such store `{label}`")))
        }
    }

    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }
}
