//! Reproduces known quirks of Spin's own key-value stores, so the component can be
//! tested against the stores it will really meet.

use super::{Access, Dispatch, KeyValue, KvBackend, KvError, SwapOutcome};
use std::time::Duration;

/// Which quirks to switch on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuirksConfig {
    /// Spin's SQLite store: when `cas.current()` saw the key absent, `swap` is a blind
    /// upsert that always succeeds, overwriting any concurrent first write. The wrapper
    /// pauses briefly between that decision and the write so races really happen.
    pub blind_create_on_absent: bool,
    /// Spin's Redis store: a successful `swap` is still reported as `cas-failed`
    /// (conflicting swaps are refused as usual).
    pub cas_failed_after_success: bool,
}

/// How long the blind-create quirk waits between deciding and writing.
const BLIND_CREATE_PAUSE: Duration = Duration::from_millis(1);

/// A [`KvBackend`] wrapper that applies [`QuirksConfig`] to `swap`; everything else is
/// passed through. Always dispatched on the blocking pool, so the pause lets concurrent
/// requests run in between.
#[derive(Debug)]
pub struct Quirks<B> {
    inner: B,
    config: QuirksConfig,
}

impl<B: KvBackend> Quirks<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, config: QuirksConfig) -> Self {
        Self { inner, config }
    }

    /// The wrapped backend (e.g. a [`super::MemoryStore`] to dump).
    pub fn inner(&self) -> &B {
        &self.inner
    }
}

impl<B: KvBackend> KvBackend for Quirks<B> {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(store, key)
    }
    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.inner.set(store, key, value)
    }
    fn delete(&self, store: &str, key: &str) -> Result<(), KvError> {
        self.inner.delete(store, key)
    }
    fn list_keys(&self, store: &str) -> Result<Vec<String>, KvError> {
        self.inner.list_keys(store)
    }
    fn exists(&self, store: &str, key: &str) -> Result<bool, KvError> {
        self.inner.exists(store, key)
    }
    fn get_many(&self, store: &str, keys: &[String]) -> Result<Vec<KeyValue>, KvError> {
        self.inner.get_many(store, keys)
    }
    fn set_many(&self, store: &str, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        self.inner.set_many(store, entries)
    }
    fn delete_many(&self, store: &str, keys: &[String]) -> Result<(), KvError> {
        self.inner.delete_many(store, keys)
    }
    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.inner.increment(store, key, delta)
    }

    fn swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SwapOutcome, KvError> {
        let outcome = if expected.is_none() && self.config.blind_create_on_absent {
            std::thread::sleep(BLIND_CREATE_PAUSE);
            self.inner.set(store, key, value)?;
            SwapOutcome::Swapped
        } else {
            self.inner.swap(store, key, expected, value)?
        };
        if self.config.cas_failed_after_success {
            return Ok(SwapOutcome::Conflict);
        }
        Ok(outcome)
    }

    fn dispatch(&self, _access: Access) -> Dispatch {
        Dispatch::Blocking
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemoryStore;

    #[test]
    fn no_quirks_is_a_correct_store() {
        crate::kv::contract::check_backend(&Quirks::new(
            MemoryStore::new(),
            QuirksConfig::default(),
        ));
    }

    #[test]
    fn blind_create_overwrites_a_concurrent_first_write() {
        let q = Quirks::new(
            MemoryStore::new(),
            QuirksConfig {
                blind_create_on_absent: true,
                ..Default::default()
            },
        );
        // Two clients both saw the key absent; both "create" it: both succeed, last wins.
        assert_eq!(
            q.swap("default", "k", None, b"first").unwrap(),
            SwapOutcome::Swapped
        );
        assert_eq!(
            q.swap("default", "k", None, b"second").unwrap(),
            SwapOutcome::Swapped
        );
        assert_eq!(q.inner().dump("default")["k"], b"second");
        // Swaps with an expected value still compare.
        assert_eq!(
            q.swap("default", "k", Some(b"first"), b"third").unwrap(),
            SwapOutcome::Conflict
        );
        assert_eq!(
            q.swap("default", "k", Some(b"second"), b"third").unwrap(),
            SwapOutcome::Swapped
        );
        assert_eq!(q.inner().dump("default")["k"], b"third");
    }

    #[test]
    fn cas_failed_after_success_writes_but_reports_conflict() {
        let q = Quirks::new(
            MemoryStore::new(),
            QuirksConfig {
                cas_failed_after_success: true,
                ..Default::default()
            },
        );
        assert_eq!(
            q.swap("default", "k", None, b"v1").unwrap(),
            SwapOutcome::Conflict
        );
        assert_eq!(q.inner().dump("default")["k"], b"v1", "the write happened");
        // A real conflict is still refused: nothing is written.
        assert_eq!(
            q.swap("default", "k", None, b"blind").unwrap(),
            SwapOutcome::Conflict
        );
        assert_eq!(
            q.swap("default", "k", Some(b"stale"), b"x").unwrap(),
            SwapOutcome::Conflict
        );
        assert_eq!(q.inner().dump("default")["k"], b"v1");
        assert_eq!(
            q.swap("default", "k", Some(b"v1"), b"v2").unwrap(),
            SwapOutcome::Conflict
        );
        assert_eq!(q.inner().dump("default")["k"], b"v2");
    }
}
