//! The key-value interface the registry needs: the shape of `wasi:keyvalue` store, batch and
//! atomics, with no SDK types, so the registry runs on Spin, natively and in tests alike.

use std::fmt;

/// A store failure. Every variant becomes a 5xx; none is a client's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The store call failed (connection, I/O, access).
    Unavailable(String),
    /// Compare-and-swap kept losing to other writers; the client may retry.
    Contention,
    /// A stored value we cannot read: another schema version, or damage.
    Corrupt(String),
}

impl StoreError {
    pub fn status(&self) -> u16 {
        match self {
            StoreError::Unavailable(_) | StoreError::Contention => 503,
            StoreError::Corrupt(_) => 500,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(e) => write!(f, "store call failed: {e}"),
            StoreError::Contention => write!(f, "compare-and-swap retries exhausted"),
            StoreError::Corrupt(e) => write!(f, "unreadable stored value: {e}"),
        }
    }
}

/// What a compare-and-swap reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    Swapped,
    /// `cas-failed`: the value changed since `watch` (or the store says so; see `cas`).
    Conflict,
}

/// One bucket of `wasi:keyvalue@0.2.0-draft2`.
pub trait KvStore {
    /// An armed compare-and-swap handle (`atomics.cas` after `current()`).
    type Cas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Values of `keys`, in order, in one round trip.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Reads `key` and arms a swap that succeeds only while the value is unchanged.
    fn watch(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), StoreError>;
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<Swap, StoreError>;
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError>;
}

/// A shared store is a store: hosts and tests hand one out per request.
impl<S: KvStore> KvStore for std::sync::Arc<S> {
    type Cas = S::Cas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        (**self).get_many(keys)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        (**self).set(key, value)
    }
    fn watch(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), StoreError> {
        (**self).watch(key)
    }
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<Swap, StoreError> {
        (**self).swap(cas, value)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        (**self).increment(key, delta)
    }
}
