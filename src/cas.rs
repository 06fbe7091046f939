//! Read-modify-write over compare-and-swap, with a bounded retry, hardened against the ways
//! Spin's real stores bend compare-and-swap (Spin 4.0.2, checked by running it):
//!
//! 1. SQLite store: when `current()` saw the key absent, `swap` is a blind upsert, so two first
//!    writes both "succeed" and one is lost. We never create a key by swapping; see `create`.
//! 2. Redis store: `swap` can report `cas-failed` although it wrote. After a failed swap we read
//!    the key again, and if it holds exactly the bytes we wrote, our write won.
//! 3. SQLite store: `increment` on a key that holds anything but an 8-byte counter panics and
//!    breaks the store until Spin restarts. We increment only `keys::creation_claim` keys, which
//!    nothing else ever writes, and read them only through `increment`'s return value.

use crate::json;
use crate::keys;
use crate::store::{KvStore, StoreError, Swap};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Schema version stamped into every stored record.
pub const SCHEMA: u32 = 1;

/// Attempts before giving up with [`StoreError::Contention`] (a 503 the client retries).
const MAX_ATTEMPTS: u32 = 64;

/// A stored JSON record carrying a schema version.
pub trait Record: Serialize + DeserializeOwned + Default {
    fn version(&self) -> u32;
}

pub fn decode<T: Record>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    // Through json's tree rather than serde_json's typed path: see `json`.
    let record: T = json::from_slice(bytes).map_err(|e| corrupt(key, &e))?;
    let version = record.version();
    if version != SCHEMA {
        return Err(corrupt(key, &format_args!("schema version {version} (this build reads {SCHEMA})")));
    }
    Ok(record)
}

/// Out of line, so the message is built in one place rather than in every `decode::<T>`.
#[cold]
#[inline(never)]
fn corrupt(key: &str, problem: &dyn std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{key}: {problem}"))
}

pub fn encode<T: Record>(record: &T) -> Vec<u8> {
    // Records are plain structs of strings and numbers: serializing them cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

/// What an edit decided.
pub enum Step<T, R> {
    /// Leave the stored value alone.
    Keep(R),
    /// Store this value.
    Write(T, R),
}

/// Applies `edit` to the record at `key` until a write lands unconflicted. `edit` may run several
/// times and may itself call the store (it runs between the read and the swap).
/// Returns the edit's result and, when it wrote, the exact bytes stored.
///
/// Only decoding, the edit and encoding are generic over the record; the store loop is
/// `update_bytes`, compiled once per store type rather than once per call site.
pub fn update<S, T, R>(
    store: &S,
    key: &str,
    mut edit: impl FnMut(Option<T>) -> Result<Step<T, R>, StoreError>,
) -> Result<(R, Option<Vec<u8>>), StoreError>
where
    S: KvStore,
    T: Record,
{
    let mut result = None;
    let written = update_bytes(store, key, &mut |current| {
        let record = current.map(|b| decode::<T>(key, b)).transpose()?;
        Ok(match edit(record)? {
            Step::Keep(r) => {
                result = Some(r);
                None
            }
            Step::Write(record, r) => {
                result = Some(r);
                Some(encode(&record))
            }
        })
    })?;
    // `update_bytes` returns `Ok` only after an edit ran, and every edit sets `result`.
    let result = result.ok_or(StoreError::Contention)?;
    Ok((result, written))
}

/// An edit of stored bytes: what is stored (`None`: absent) to what to store (`None`: nothing).
type ByteEdit<'a> = dyn FnMut(Option<&[u8]>) -> Result<Option<Vec<u8>>, StoreError> + 'a;

/// [`update`] on raw bytes: `edit` gets the stored bytes (`None`: absent) and returns the bytes
/// to store (`None`: leave the key alone). Returns the bytes written, if any.
fn update_bytes<S: KvStore>(
    store: &S,
    key: &str,
    edit: &mut ByteEdit<'_>,
) -> Result<Option<Vec<u8>>, StoreError> {
    for attempt in 0..MAX_ATTEMPTS {
        let (cas, current) = store.watch(key)?;
        let Some(bytes) = edit(current.as_deref())? else { return Ok(None) };
        let outcome = match current {
            None => create(store, key, &bytes)?,
            Some(_) => match store.swap(cas, &bytes)? {
                Swap::Swapped => Swap::Swapped,
                // Quirk 2: the swap may have written although it says it did not.
                Swap::Conflict if store.get(key)?.as_deref() == Some(bytes.as_slice()) => {
                    Swap::Swapped
                }
                Swap::Conflict => Swap::Conflict,
            },
        };
        if outcome == Swap::Swapped {
            return Ok(Some(bytes));
        }
        backoff(attempt);
    }
    Err(StoreError::Contention)
}

/// Writes a key that was absent. Quirk 1 makes a swap over an absent key blind, so creators are
/// elected instead: `increment` is atomic on every Spin store, and only the writer that moves the
/// key's claim counter from 0 to 1 creates it. Everyone else waits for that write to appear and
/// then competes by compare-and-swap on the existing key, which every store protects.
///
/// Keys written this way are never deleted (a delete is as blind as that swap), so a key is
/// created at most once. If the elected writer died between its claim and its write, the key
/// stays absent; after waiting about 100 ms a later writer writes it directly. That fallback is
/// the one window left: it loses data only if the elected writer stalls that long between two
/// consecutive store calls and then writes.
fn create<S: KvStore>(store: &S, key: &str, bytes: &[u8]) -> Result<Swap, StoreError> {
    if store.increment(&keys::creation_claim(key), 1)? == 1 {
        store.set(key, bytes)?;
        return Ok(Swap::Swapped);
    }
    for step in 0..7 {
        if store.get(key)?.is_some() {
            return Ok(Swap::Conflict); // created by the elected writer: go round again
        }
        std::thread::sleep(Duration::from_millis(1 << step));
    }
    store.set(key, bytes)?;
    Ok(Swap::Swapped)
}

/// Sleeps a random share of a window that doubles up to 16 ms, so writers that collided spread out.
fn backoff(attempt: u32) {
    if attempt == 0 {
        return;
    }
    let window_us = 1000u64 << attempt.min(4);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    std::thread::sleep(Duration::from_micros(jitter % window_us));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::IndexShard;

    #[test]
    fn unreadable_records_say_which_key_and_why() {
        let corrupt = |bytes: &[u8]| match decode::<IndexShard>("pd:i:x", bytes) {
            Err(StoreError::Corrupt(detail)) => detail,
            other => panic!("{other:?}"),
        };
        assert_eq!(corrupt(br#"{"v":2,"tokens":{}}"#), "pd:i:x: schema version 2 (this build reads 1)");
        assert_eq!(corrupt(br#"{"v":1,"tokens":"x"}"#), "pd:i:x: invalid type: string \"x\", expected a map");
        assert_eq!(corrupt(b"{"), "pd:i:x: unexpected end of input at line 1 column 1");
        let shard = IndexShard { v: SCHEMA, tokens: [("e".to_owned(), vec![3, 9])].into_iter().collect() };
        assert_eq!(decode::<IndexShard>("pd:i:x", &encode(&shard)), Ok(shard));
    }
}
