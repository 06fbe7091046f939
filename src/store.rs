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

/// Pairs a batch answer with the keys asked, by name. Spin's SQLite store leaves missing
/// keys out of the answer instead of pairing them with `none`, so position means nothing.
/// Redis answers in the keys' order and SQLite in key order, which is the order of the sorted
/// ids the registry asks for when they have as many digits (snowflakes do): the entry after
/// the last match is tried first, and a search over all is the fallback. Matching every key
/// against every entry was about 2 % of a 32-token sync. No `HashMap`: in the component its
/// hasher seed costs a host call.
pub fn match_by_name(keys: &[String], found: &[(String, Option<Vec<u8>>)]) -> Vec<Option<Vec<u8>>> {
    let mut next = 0;
    keys.iter()
        .map(|key| {
            let i = match found.get(next) {
                Some((name, _)) if name == key => next,
                _ => found.iter().position(|(name, _)| name == key)?,
            };
            next = i + 1;
            found.get(i).and_then(|(_, value)| value.clone())
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|k| (*k).to_owned()).collect()
    }

    fn entry(name: &str, value: Option<&str>) -> (String, Option<Vec<u8>>) {
        (name.to_owned(), value.map(|v| v.as_bytes().to_vec()))
    }

    fn text(values: Vec<Option<Vec<u8>>>) -> Vec<Option<String>> {
        values.into_iter().map(|v| v.map(|b| String::from_utf8(b).unwrap())).collect()
    }

    #[test]
    fn answers_in_any_order_and_with_missing_keys_left_out() {
        let asked = keys(&["a", "b", "c", "d"]);
        // Redis: every key, in order, `none` for the missing.
        let redis = [("a", Some("1")), ("b", None), ("c", Some("3")), ("d", None)].map(|(k, v)| entry(k, v));
        // SQLite: only the present keys, in the table's order.
        let sqlite = [entry("c", Some("3")), entry("a", Some("1"))];
        let want = vec![Some("1".to_owned()), None, Some("3".to_owned()), None];
        assert_eq!(text(match_by_name(&asked, &redis)), want);
        assert_eq!(text(match_by_name(&asked, &sqlite)), want);
        assert_eq!(text(match_by_name(&asked, &[])), vec![None; 4]);
    }

    #[test]
    fn a_key_asked_twice_gets_its_value_twice() {
        let asked = keys(&["a", "b", "a"]);
        let found = [entry("a", Some("1")), entry("b", Some("2"))];
        let want = vec![Some("1".to_owned()), Some("2".to_owned()), Some("1".to_owned())];
        assert_eq!(text(match_by_name(&asked, &found)), want);
    }

    type Answer = Vec<(String, Option<Vec<u8>>)>;

    /// A store's contents, the keys asked, and an answer in any order: Redis-like (every key
    /// asked, `none` for the missing) or SQLite-like (only the stored keys).
    fn batches() -> impl Strategy<Value = (BTreeMap<String, String>, Vec<String>, Answer)> {
        let stored = proptest::collection::btree_map("[a-d]{1,2}", "[0-9]{1,3}", 0..12);
        let asked = proptest::collection::vec("[a-d]{1,2}", 0..12);
        (stored, asked, any::<bool>()).prop_flat_map(|(stored, asked, redis)| {
            let value = |k: &String| stored.get(k).map(|v| v.as_bytes().to_vec());
            let found: Answer = match redis {
                true => asked.iter().map(|k| (k.clone(), value(k))).collect(),
                false => stored.keys().map(|k| (k.clone(), value(k))).collect(),
            };
            (Just(stored), Just(asked), Just(found).prop_shuffle())
        })
    }

    proptest! {
        /// Whatever the answer's order and whichever keys it leaves out, each key gets exactly
        /// the value stored under its name.
        #[test]
        fn matches_a_lookup_by_name((stored, asked, found) in batches()) {
            let want: Vec<Option<Vec<u8>>> =
                asked.iter().map(|k| stored.get(k).map(|v| v.as_bytes().to_vec())).collect();
            prop_assert_eq!(match_by_name(&asked, &found), want);
        }
    }
}
