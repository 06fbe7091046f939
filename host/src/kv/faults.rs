//! Fault injection: fail a chosen share of backend calls, deterministically.

use super::{Access, Dispatch, KeyValue, KvBackend, KvError, SwapOutcome};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How many faults a [`Faults`] wrapper has injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Calls failed before reaching the backend (nothing happened).
    pub before: u64,
    /// Calls that reached the backend, then were reported as failed (for writes: the
    /// write happened but the guest saw an error).
    pub after: u64,
}

/// A [`KvBackend`] wrapper that fails a share of calls with `error::other`.
///
/// Each call fails with the configured probability; a failing call is, with equal odds,
/// failed *before* the backend is called or *after* it returned successfully. The
/// random sequence comes from a seeded SplitMix64, so a single-threaded test replays
/// exactly. [`Faults::set_enabled`] turns injection off at runtime so a test can check
/// its invariants on the store afterwards.
#[derive(Debug)]
pub struct Faults<B> {
    inner: B,
    enabled: AtomicBool,
    rng: Mutex<(u64, f64)>, // (SplitMix64 state, probability)
    before: AtomicU64,
    after: AtomicU64,
}

enum When {
    Before,
    After,
}

impl<B: KvBackend> Faults<B> {
    /// Wraps `inner`, failing each call with `probability` (clamped to 0..=1), seeded
    /// with `seed`. Injection starts enabled.
    pub fn new(inner: B, probability: f64, seed: u64) -> Self {
        Self {
            inner,
            enabled: AtomicBool::new(true),
            rng: Mutex::new((seed, clamp(probability))),
            before: AtomicU64::new(0),
            after: AtomicU64::new(0),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Turns injection on or off (off: a transparent pass-through).
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
    }

    /// Changes the failure probability.
    pub fn set_probability(&self, probability: f64) {
        self.rng.lock().unwrap_or_else(|p| p.into_inner()).1 = clamp(probability);
    }

    /// Faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        FaultCounts {
            before: self.before.load(Ordering::SeqCst),
            after: self.after.load(Ordering::SeqCst),
        }
    }

    fn roll(&self) -> Option<When> {
        if !self.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let mut guard = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let (state, p) = &mut *guard;
        let r = next_u64(state);
        // Top 53 bits as a uniform float in [0, 1); the lowest bit picks before/after.
        let x = (r >> 11) as f64 / (1u64 << 53) as f64;
        if x >= *p {
            return None;
        }
        Some(if r & 1 == 0 {
            When::Before
        } else {
            When::After
        })
    }

    fn call<T>(&self, op: &str, f: impl FnOnce(&B) -> Result<T, KvError>) -> Result<T, KvError> {
        match self.roll() {
            None => f(&self.inner),
            Some(When::Before) => {
                self.before.fetch_add(1, Ordering::SeqCst);
                Err(KvError::other(format!("injected fault before {op}")))
            }
            Some(When::After) => {
                f(&self.inner)?;
                self.after.fetch_add(1, Ordering::SeqCst);
                Err(KvError::other(format!("injected fault after {op}")))
            }
        }
    }
}

fn clamp(p: f64) -> f64 {
    if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for fault schedules.
fn next_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<B: KvBackend> KvBackend for Faults<B> {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.call("get", |b| b.get(store, key))
    }
    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.call("set", |b| b.set(store, key, value))
    }
    fn delete(&self, store: &str, key: &str) -> Result<(), KvError> {
        self.call("delete", |b| b.delete(store, key))
    }
    fn list_keys(&self, store: &str) -> Result<Vec<String>, KvError> {
        self.call("list-keys", |b| b.list_keys(store))
    }
    fn exists(&self, store: &str, key: &str) -> Result<bool, KvError> {
        self.call("exists", |b| b.exists(store, key))
    }
    fn get_many(&self, store: &str, keys: &[String]) -> Result<Vec<KeyValue>, KvError> {
        self.call("get-many", |b| b.get_many(store, keys))
    }
    fn set_many(&self, store: &str, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        self.call("set-many", |b| b.set_many(store, entries))
    }
    fn delete_many(&self, store: &str, keys: &[String]) -> Result<(), KvError> {
        self.call("delete-many", |b| b.delete_many(store, keys))
    }
    fn swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SwapOutcome, KvError> {
        self.call("swap", |b| b.swap(store, key, expected, value))
    }
    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        self.call("increment", |b| b.increment(store, key, delta))
    }
    fn dispatch(&self, access: Access) -> Dispatch {
        self.inner.dispatch(access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemoryStore;

    #[test]
    fn disabled_or_zero_probability_is_a_correct_store() {
        crate::kv::contract::check_backend(&Faults::new(MemoryStore::new(), 0.0, 1));
        let f = Faults::new(MemoryStore::new(), 1.0, 1);
        f.set_enabled(false);
        crate::kv::contract::check_backend(&f);
        assert_eq!(f.counts(), FaultCounts::default());
    }

    #[test]
    fn fails_about_the_requested_share_with_both_kinds() {
        let f = Faults::new(MemoryStore::new(), 0.3, 42);
        let n = 2000;
        let mut failed = 0;
        let mut written_but_failed = 0;
        for i in 0..n {
            let key = format!("k{i}");
            if f.set("default", &key, b"v").is_err() {
                failed += 1;
                if f.inner().get("default", &key).unwrap().is_some() {
                    written_but_failed += 1;
                }
            }
        }
        let c = f.counts();
        assert_eq!(c.before + c.after, failed);
        assert_eq!(
            c.after, written_but_failed,
            "after-faults are exactly the writes that happened"
        );
        assert!(
            (480..=720).contains(&failed),
            "failed {failed} of {n} at p=0.3"
        );
        assert!(c.before > 150 && c.after > 150, "{c:?}");
        // Every key whose set succeeded is stored.
        assert_eq!(f.inner().dump("default").len() as u64, n - c.before);
    }

    #[test]
    fn same_seed_same_schedule_and_switch_off() {
        let run = |seed| {
            let f = Faults::new(MemoryStore::new(), 0.5, seed);
            (0..64)
                .map(|i| f.increment("default", "n", i).is_ok())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));

        let f = Faults::new(MemoryStore::new(), 1.0, 3);
        assert!(f.get("default", "k").is_err());
        f.set_enabled(false);
        assert_eq!(f.get("default", "k").unwrap(), None);
        f.set_enabled(true);
        f.set_probability(0.0);
        assert!(f.set("default", "k", b"v").is_ok());
    }

    #[test]
    fn after_fault_on_swap_means_written() {
        // p = 1: every call faults; find an "after" one and check the swap happened.
        let f = Faults::new(MemoryStore::new(), 1.0, 99);
        let mut saw_after = false;
        for i in 0..32 {
            let key = format!("k{i}");
            let before = f.counts();
            assert!(f.swap("default", &key, None, b"v").is_err());
            let stored = f.inner().get("default", &key).unwrap().is_some();
            let after = f.counts();
            if after.after > before.after {
                assert!(stored);
                saw_after = true;
            } else {
                assert!(!stored);
            }
        }
        assert!(saw_after);
    }
}
