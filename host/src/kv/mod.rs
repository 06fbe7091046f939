//! Key-value backends behind `wasi:keyvalue@0.2.0-draft2`.
//!
//! The component sees buckets opened by label (`store.open("default")`); every label is
//! its own namespace in the backend, like the `store` column of Spin's SQLite table. The
//! [`KvBackend`] trait is the whole storage contract; the WIT glue in `crate::imports`
//! adds nothing but argument shuffling, so the semantics tested here are the ones the
//! component gets.
//!
//! Implementations:
//! - [`MemoryStore`]: in memory, with [`MemoryStore::dump`] for tests to assert on.
//! - [`SqliteStore`]: a SQLite file shared safely by several host processes.
//!
//! Wrappers for tests: [`Quirks`] (reproduce Spin's store quirks) and [`Faults`]
//! (fail a share of calls, before or after the write).

mod faults;
mod memory;
mod quirks;
mod sqlite;

pub use faults::{FaultCounts, Faults};
pub use memory::MemoryStore;
pub use quirks::{Quirks, QuirksConfig};
pub use sqlite::SqliteStore;

use std::fmt;

/// An error from a key-value backend; maps 1:1 onto `wasi:keyvalue/store.error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// The store label is not one the host allows (`error::no-such-store`).
    NoSuchStore,
    /// `error::access-denied`.
    AccessDenied,
    /// Anything else (`error::other`), with a message for the guest.
    Other(String),
    /// The call would have had to wait for another writer, and was made where waiting is
    /// off ([`may_wait`] false, in [`Dispatch::InlineUnlessBusy`]'s first try); it did
    /// nothing. Never reaches the guest: the host makes the call again where it may wait.
    WouldBlock,
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::NoSuchStore => f.write_str("no such store"),
            KvError::AccessDenied => f.write_str("access denied"),
            KvError::Other(msg) => write!(f, "key-value error: {msg}"),
            KvError::WouldBlock => f.write_str("would wait for another writer"),
        }
    }
}

impl std::error::Error for KvError {}

impl KvError {
    /// Shorthand for [`KvError::Other`].
    pub fn other(msg: impl fmt::Display) -> Self {
        KvError::Other(msg.to_string())
    }
}

/// Result of a compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwapOutcome {
    /// The value was written.
    Swapped,
    /// The stored value no longer matched the expected one (or, under
    /// [`QuirksConfig::cas_failed_after_success`], the write happened but is reported as a
    /// conflict); the guest sees `cas-error::cas-failed`.
    Conflict,
}

/// What a backend call does, for [`KvBackend::dispatch`]: a backend may serve reads one way
/// and writes another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `get`, `get-many`, `exists`, `list-keys`, and a `cas`'s `current`.
    Read,
    /// Everything that writes or may write: `set`, `delete`, `swap`, `increment`, the batches.
    Write,
}

/// How the host should call a backend from the async runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// Call it inline on the runtime thread (only for calls that never block).
    Inline,
    /// Yield to the runtime once, then call inline. Cheap, and lets concurrent requests
    /// interleave at every key-value call even on a current-thread runtime, so races in
    /// the component show up in tests.
    YieldThenInline,
    /// Run it on tokio's blocking thread pool (`spawn_blocking`): for backends that may
    /// wait on I/O or locks, such as SQLite with a busy timeout.
    Blocking,
    /// Call it inline with [`may_wait`] false; if it answers [`KvError::WouldBlock`] (it
    /// would have had to wait for a lock, and did nothing), call it again on the blocking
    /// pool, where it may wait. For backends whose calls are quick unless contended: the
    /// hand-off to the pool costs about 100 µs, a SQLite write a small fraction of that.
    InlineUnlessBusy,
}

thread_local! {
    static MAY_WAIT: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Whether a backend call on this thread may wait for a lock. False only during the inline
/// try of [`Dispatch::InlineUnlessBusy`], where a call that would wait must answer
/// [`KvError::WouldBlock`] instead, having changed nothing.
pub fn may_wait() -> bool {
    MAY_WAIT.with(std::cell::Cell::get)
}

/// Runs `f` with [`may_wait`] false on this thread.
pub fn without_waiting<T>(f: impl FnOnce() -> T) -> T {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            MAY_WAIT.with(|w| w.set(true));
        }
    }
    MAY_WAIT.with(|w| w.set(false));
    let _restore = Restore;
    f()
}

/// One answer of `get-many`: the key, and its value if it exists.
pub type KeyValue = (String, Option<Vec<u8>>);

/// A key-value backend. All methods take the store label (namespace) first.
///
/// Keys and values are opaque. Missing keys are `Ok(None)` / `Ok(false)`, never errors.
pub trait KvBackend: Send + Sync + 'static {
    /// Reads one value.
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Writes one value (insert or overwrite).
    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError>;
    /// Deletes one key; deleting a missing key succeeds.
    fn delete(&self, store: &str, key: &str) -> Result<(), KvError>;
    /// All keys of a store, sorted.
    fn list_keys(&self, store: &str) -> Result<Vec<String>, KvError>;
    /// Writes `value` only if the stored value equals `expected` (`None` = key absent).
    fn swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SwapOutcome, KvError>;
    /// Adds `delta` to an 8-byte little-endian i64 counter (absent counts as 0) and
    /// returns the new value. A value of another length is `KvError::Other`.
    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError>;

    /// Whether a key exists.
    fn exists(&self, store: &str, key: &str) -> Result<bool, KvError> {
        Ok(self.get(store, key)?.is_some())
    }
    /// One `(key, value)` per requested key, in request order, `None` for missing keys.
    fn get_many(&self, store: &str, keys: &[String]) -> Result<Vec<KeyValue>, KvError> {
        keys.iter()
            .map(|k| Ok((k.clone(), self.get(store, k)?)))
            .collect()
    }
    /// Writes several values (not necessarily atomically).
    fn set_many(&self, store: &str, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        entries.iter().try_for_each(|(k, v)| self.set(store, k, v))
    }
    /// Deletes several keys (not necessarily atomically).
    fn delete_many(&self, store: &str, keys: &[String]) -> Result<(), KvError> {
        keys.iter().try_for_each(|k| self.delete(store, k))
    }
    /// How the host should call this backend for a call of kind `access`; see [`Dispatch`].
    fn dispatch(&self, _access: Access) -> Dispatch {
        Dispatch::Blocking
    }
}

/// Sharing: an `Arc` of a backend is a backend, so tests can keep a typed handle (to dump
/// or flip faults) while the host holds another.
impl<B: KvBackend + ?Sized> KvBackend for std::sync::Arc<B> {
    fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        (**self).get(store, key)
    }
    fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        (**self).set(store, key, value)
    }
    fn delete(&self, store: &str, key: &str) -> Result<(), KvError> {
        (**self).delete(store, key)
    }
    fn list_keys(&self, store: &str) -> Result<Vec<String>, KvError> {
        (**self).list_keys(store)
    }
    fn swap(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<SwapOutcome, KvError> {
        (**self).swap(store, key, expected, value)
    }
    fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError> {
        (**self).increment(store, key, delta)
    }
    fn exists(&self, store: &str, key: &str) -> Result<bool, KvError> {
        (**self).exists(store, key)
    }
    fn get_many(&self, store: &str, keys: &[String]) -> Result<Vec<KeyValue>, KvError> {
        (**self).get_many(store, keys)
    }
    fn set_many(&self, store: &str, entries: &[(String, Vec<u8>)]) -> Result<(), KvError> {
        (**self).set_many(store, entries)
    }
    fn delete_many(&self, store: &str, keys: &[String]) -> Result<(), KvError> {
        (**self).delete_many(store, keys)
    }
    fn dispatch(&self, access: Access) -> Dispatch {
        (**self).dispatch(access)
    }
}

/// Decodes a stored counter (8-byte little-endian i64, Spin's SQLite encoding).
pub(crate) fn decode_counter(value: Option<&[u8]>) -> Result<i64, KvError> {
    match value {
        None => Ok(0),
        Some(bytes) => {
            let arr: [u8; 8] = bytes.try_into().map_err(|_| {
                KvError::other(format!(
                    "cannot increment: stored value is {} bytes, not an 8-byte counter",
                    bytes.len()
                ))
            })?;
            Ok(i64::from_le_bytes(arr))
        }
    }
}

/// Applies `delta` to a counter, refusing overflow.
pub(crate) fn add_counter(current: i64, delta: i64) -> Result<i64, KvError> {
    current
        .checked_add(delta)
        .ok_or_else(|| KvError::other("cannot increment: counter would overflow"))
}

#[cfg(test)]
pub(crate) mod contract;

#[cfg(test)]
pub(crate) mod testutil {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A SQLite file path in the temp dir, removed (with its WAL files) on drop.
    pub(crate) struct TempDb(PathBuf);

    impl TempDb {
        pub(crate) fn new(tag: &str) -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let name = format!("push-devices-host-{tag}-{}-{n}.db", std::process::id());
            let path = std::env::temp_dir().join(name);
            Self::remove(&path);
            TempDb(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }

        fn remove(path: &Path) {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.as_os_str().to_owned();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            Self::remove(&self.0);
        }
    }
}
