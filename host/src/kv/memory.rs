//! In-memory backend for tests: fast, inspectable, gone when dropped.

use super::{Access, Dispatch, KvBackend, KvError, SwapOutcome, add_counter, decode_counter};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// Label to that store's keys. A hash map per label, as Redis keeps them: a lookup costs
/// about the same with 330,000 keys as with 70 (a `BTreeMap`'s walk down cold nodes made
/// the benchmark's typed list 1.13 × slower at that scale).
type Map = BTreeMap<String, HashMap<String, Vec<u8>>>;

/// An in-memory [`KvBackend`]. Every call is atomic (one mutex), so it is the
/// "correct store" against which quirks and faults are layered.
#[derive(Debug, Default)]
pub struct MemoryStore {
    data: Mutex<Map>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Map> {
        // A panic while holding the lock cannot leave a half-written map behind (every
        // mutation is a single insert/remove), so a poisoned lock is still consistent.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Everything stored under one label, sorted by key.
    pub fn dump(&self, store: &str) -> BTreeMap<String, Vec<u8>> {
        self.lock()
            .get(store)
            .map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Everything stored, by label then key.
    pub fn dump_all(&self) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
        self.lock()
            .iter()
            .map(|(label, s)| (label.clone(), s.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
            .collect()
    }

    /// Removes everything.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

impl KvBackend for MemoryStore {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.lock().get(store).and_then(|s| s.get(key)).cloned())
    }

    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.lock()
            .entry(store.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&self, store: &str, key: &str) -> Result<(), KvError> {
        if let Some(s) = self.lock().get_mut(store) {
            s.remove(key);
        }
        Ok(())
    }

    fn list_keys(&self, store: &str) -> Result<Vec<String>, KvError> {
        Ok(self
            .lock()
            .get(store)
            .map(|s| {
                let mut keys: Vec<String> = s.keys().cloned().collect();
                keys.sort_unstable();
                keys
            })
            .unwrap_or_default())
    }

    fn swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SwapOutcome, KvError> {
        let mut data = self.lock();
        let bucket = data.entry(store.to_owned()).or_default();
        if bucket.get(key).map(Vec::as_slice) != expected {
            return Ok(SwapOutcome::Conflict);
        }
        bucket.insert(key.to_owned(), value.to_vec());
        Ok(SwapOutcome::Swapped)
    }

    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        let mut data = self.lock();
        let bucket = data.entry(store.to_owned()).or_default();
        let next = add_counter(decode_counter(bucket.get(key).map(Vec::as_slice))?, delta)?;
        bucket.insert(key.to_owned(), next.to_le_bytes().to_vec());
        Ok(next)
    }

    fn dispatch(&self, _access: Access) -> Dispatch {
        Dispatch::YieldThenInline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract() {
        crate::kv::contract::check_backend(&MemoryStore::new());
    }

    #[test]
    fn dump_shows_each_label_separately() {
        let m = MemoryStore::new();
        m.set("default", "a", b"1").unwrap();
        m.set("other", "a", b"2").unwrap();
        assert_eq!(m.dump("default").get("a").unwrap(), b"1");
        assert_eq!(m.dump("other").get("a").unwrap(), b"2");
        assert_eq!(m.dump_all().len(), 2);
        assert!(m.dump("missing").is_empty());
    }
}
