//! The registry's rules: which accounts hold which device tokens, kept in two kinds of record.
//!
//! - `pd:u:<user>` ([`UserRecord`]): the account's devices, newest registration wins, at most
//!   `max_devices` (the least recently registered is evicted), expired after `device_ttl`.
//! - `pd:i:<shard>` ([`IndexShard`]): for each (provider, token) whose digest falls in the shard,
//!   the accounts holding it, so sync and invalidation find them without a scan. A token's entry
//!   leaves the shard with its last holder, so the index never outgrows the live tokens plus a
//!   fixed number of shard keys ([`keys::INDEX_SHARDS`]), whatever tokens clients send: keys
//!   cannot be deleted safely (a delete is a blind write), entries inside a key can.
//!
//! Invariant: the holders index never misses a holder. Adding a token writes the index before
//! the account record. Removing one writes the account record, then the index, then *fences* the
//! account record (bumps its `rev` by compare-and-swap, creating it empty if absent, re-adding
//! the index entry if a concurrent request put the token back meanwhile), so a writer that checked the index before our removal
//! cannot then store a record holding the token without its swap failing and going round again.

use crate::cas::{self, Record, SCHEMA, Step};
use crate::device::{DEFAULT_BUNDLE_ID, Device, Provider};
use crate::form::{PushToken, Registration};
use crate::keys::{self, IndexSlot};
use crate::store::{KvStore, StoreError};
use serde::{Deserialize, Serialize};

/// Registry settings from the component's variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_devices: usize,
    pub device_ttl_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_devices: 20, device_ttl_ms: 270 * 86_400_000 }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub v: u32,
    /// Bumped on every write, so no two writes store the same bytes (compare-and-swap compares
    /// values: without it a removal's fence could be mistaken for an older state).
    pub rev: u64,
    pub devices: Vec<Device>,
}

impl Record for UserRecord {
    fn version(&self) -> u32 {
        self.v
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexShard {
    pub v: u32,
    /// Token entry ([`IndexSlot::entry`]) to the accounts holding it: sorted, unique, never
    /// empty. May list an account that no longer holds the token (after a failure mid-request)
    /// but never misses one that does.
    pub tokens: Tokens,
}

impl IndexShard {
    pub fn holders(&self, entry: &str) -> &[u64] {
        self.tokens.find(entry).ok().and_then(|at| self.tokens.0.get(at)).map_or(&[], |(_, h)| h.as_slice())
    }
}

/// A shard's entries sorted by key, stored as a JSON object: a `BTreeMap`'s format without
/// its code in the component (a `BTreeMap` cost 32 KB of the .wasm, `litemap` 13 KB more
/// than this).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens(Vec<(String, Vec<u64>)>);

impl Tokens {
    fn find(&self, entry: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(entry))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Inserts or replaces, as `BTreeMap::insert`.
    fn insert(&mut self, entry: String, holders: Vec<u64>) {
        match self.find(&entry) {
            Ok(at) => {
                if let Some(slot) = self.0.get_mut(at) {
                    slot.1 = holders;
                }
            }
            Err(at) => self.0.insert(at, (entry, holders)),
        }
    }
}

impl FromIterator<(String, Vec<u64>)> for Tokens {
    fn from_iter<I: IntoIterator<Item = (String, Vec<u64>)>>(iter: I) -> Self {
        let mut tokens = Tokens::default();
        for (k, v) in iter {
            tokens.insert(k, v);
        }
        tokens
    }
}

impl Serialize for Tokens {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for Tokens {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Tokens;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Tokens, A::Error> {
                let mut tokens = Tokens::default();
                while let Some((k, v)) = map.next_entry()? {
                    tokens.insert(k, v);
                }
                Ok(tokens)
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

impl Record for IndexShard {
    fn version(&self) -> u32 {
        self.v
    }
}

/// Sorted, unique (a sorted `Vec` rather than a `BTreeSet`: far less code in the component).
type TokenSet = Vec<(Provider, String)>;

/// Adds `item` to the sorted, unique `set`; returns whether it was new. The sets here hold
/// tens of items, so inserting in place beats sorting (and keeps the sort's 8 KB of code out
/// of the component).
fn insert_sorted<T: Ord>(set: &mut Vec<T>, item: T) -> bool {
    match set.binary_search(&item) {
        Ok(_) => false,
        Err(at) => {
            set.insert(at, item);
            true
        }
    }
}

/// The sorted, unique set of `items`.
fn sorted_set<T: Ord>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut set = Vec::new();
    for item in items {
        insert_sorted(&mut set, item);
    }
    set
}

fn tokens_of(devices: &[Device]) -> TokenSet {
    sorted_set(devices.iter().flat_map(Device::push_tokens).map(|(p, t)| (p, t.to_owned())))
}

/// The tokens of `a` not in `b`, in order.
fn minus<'a>(a: &'a TokenSet, b: &'a TokenSet) -> impl Iterator<Item = &'a (Provider, String)> {
    a.iter().filter(move |t| b.binary_search(t).is_err())
}

/// The tokens of `a` also in `b`, in order.
fn both<'a>(a: &'a TokenSet, b: &'a TokenSet) -> impl Iterator<Item = &'a (Provider, String)> {
    a.iter().filter(move |t| b.binary_search(t).is_ok())
}

pub struct Registry<'s, S> {
    store: &'s S,
    limits: Limits,
    now_ms: u64,
}

impl<'s, S: KvStore> Registry<'s, S> {
    pub fn new(store: &'s S, limits: Limits, now_ms: u64) -> Self {
        Registry { store, limits, now_ms }
    }

    fn fresh(&self, device: &Device) -> bool {
        self.now_ms.saturating_sub(device.registered_at) <= self.limits.device_ttl_ms
    }

    /// An account's live devices, oldest registration first.
    pub fn devices(&self, user: u64) -> Result<Vec<Device>, StoreError> {
        let key = keys::user(user);
        let Some(bytes) = self.store.get(&key)? else { return Ok(Vec::new()) };
        let record: UserRecord = cas::decode(&key, &bytes)?;
        Ok(record.devices.into_iter().filter(|d| self.fresh(d)).collect())
    }

    /// Accounts the holders index lists for a token (a superset of the true holders).
    pub fn holders(&self, provider: Provider, token: &str) -> Result<Vec<u64>, StoreError> {
        let slot = keys::token_index(provider, token);
        match self.store.get(&slot.shard)? {
            None => Ok(Vec::new()),
            Some(bytes) => Ok(cas::decode::<IndexShard>(&slot.shard, &bytes)?.holders(&slot.entry).to_vec()),
        }
    }

    /// Registers or refreshes a device for `user`.
    pub fn register(&self, user: u64, reg: &Registration) -> Result<(), StoreError> {
        let device = Device {
            provider: reg.provider,
            token: reg.token.clone(),
            voip: reg.voip.clone(),
            bypass_server_throttling_supported: reg.bypass_server_throttling_supported,
            bundle_id: reg.bundle_id.clone(),
            registered_at: self.now_ms,
        };
        self.edit_user(user, |devices| {
            self.upsert(devices, device.clone());
            true
        })
    }

    /// Removes a device (or a device's VoIP token) from `user`; removing one it does not have is
    /// fine, and also clears a holders entry left behind by an earlier failed request.
    pub fn unregister(&self, user: u64, token: &PushToken) -> Result<(), StoreError> {
        self.drop_token(user, token.provider, &token.token).map(|_| ())
    }

    /// Makes `device` registered for exactly `caller` and `named`: accounts lacking it get it
    /// (with the caller's settings for it, if the caller has it), accounts holding it that are
    /// not named lose it. Touches only accounts that change.
    pub fn sync(&self, caller: u64, device: &PushToken, named: &[u64]) -> Result<(), StoreError> {
        let targets = sorted_set(named.iter().copied().chain([caller]));
        let listed = self.holders(device.provider, &device.token)?;
        let accounts = sorted_set(targets.iter().chain(listed.iter()).copied());
        let records = self.read_users(&accounts)?;
        let held = |user: u64| -> Option<&Device> {
            records
                .iter()
                .find(|(u, _)| *u == user)
                .and_then(|(_, r)| r.devices.iter().find(|d| d.is(device.provider, &device.token) && self.fresh(d)))
        };
        let template = match held(caller) {
            Some(d) => Device { registered_at: self.now_ms, ..d.clone() },
            None => Device {
                provider: device.provider,
                token: device.token.clone(),
                voip: None,
                bypass_server_throttling_supported: false,
                bundle_id: DEFAULT_BUNDLE_ID.to_owned(),
                registered_at: self.now_ms,
            },
        };
        for &user in &targets {
            if held(user).is_none() {
                self.edit_user(user, |devices| {
                    if devices.iter().any(|d| d.is(device.provider, &device.token)) {
                        return false;
                    }
                    self.upsert(devices, template.clone());
                    true
                })?;
            }
        }
        for &user in listed.iter().filter(|u| !targets.contains(u)) {
            self.drop_token(user, device.provider, &device.token)?;
        }
        Ok(())
    }

    /// Removes a (provider, token) from every account holding it, through the holders index.
    /// A VoIP token is removed on its own: the device keeps its regular token.
    /// Returns how many accounts held it.
    pub fn invalidate(&self, provider: Provider, token: &str) -> Result<usize, StoreError> {
        let mut removed = 0;
        for user in self.holders(provider, token)? {
            if self.drop_token(user, provider, token)? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes `token` from `user`'s record, as a device's own token or as its VoIP token, and
    /// clears the index entry even if the record did not hold it (a leftover of a failure).
    fn drop_token(&self, user: u64, provider: Provider, token: &str) -> Result<bool, StoreError> {
        let mut held = false;
        self.edit_user(user, |devices| {
            let before = devices.clone();
            devices.retain(|d| !d.is(provider, token));
            for d in devices.iter_mut() {
                if d.voip.as_ref().is_some_and(|v| v.provider == provider && v.token == token) {
                    d.voip = None;
                }
            }
            let changed = *devices != before;
            held |= changed; // an earlier attempt may have landed unseen (see `edit_user`)
            changed
        })?;
        if !held {
            let gone: TokenSet = vec![(provider, token.to_owned())];
            self.unindex(user, &gone)?;
        }
        Ok(held)
    }

    fn upsert(&self, devices: &mut Vec<Device>, device: Device) {
        match devices.iter_mut().find(|d| d.is(device.provider, &device.token)) {
            Some(existing) => *existing = device.clone(),
            None => devices.push(device.clone()),
        }
        while devices.len() > self.limits.max_devices.max(1) {
            let oldest = devices
                .iter()
                .enumerate()
                .filter(|(_, d)| !d.is(device.provider, &device.token))
                .min_by_key(|(_, d)| d.registered_at)
                .map(|(i, _)| i);
            match oldest {
                Some(i) => {
                    devices.remove(i);
                }
                None => break,
            }
        }
    }

    fn read_users(&self, users: &[u64]) -> Result<Vec<(u64, UserRecord)>, StoreError> {
        let keys: Vec<String> = users.iter().map(|u| keys::user(*u)).collect();
        let values = self.store.get_many(&keys)?;
        let mut out = Vec::with_capacity(users.len());
        for ((user, key), value) in users.iter().zip(&keys).zip(values) {
            if let Some(bytes) = value {
                out.push((*user, cas::decode(key, &bytes)?));
            }
        }
        Ok(out)
    }

    /// The one way an account record changes. `edit` gets the live devices (expired ones
    /// already dropped) and says whether it changed them. Tokens the edit adds are indexed
    /// before the record is written; tokens it removes are unindexed after, then fenced.
    /// When the write fails, the index entries this call added are taken back, so a failed
    /// request does not leave the account listed for a token it does not hold.
    fn edit_user(
        &self,
        user: u64,
        mut edit: impl FnMut(&mut Vec<Device>) -> bool,
    ) -> Result<(), StoreError> {
        let key = keys::user(user);
        // Both accumulate over attempts: an attempt whose swap was reported failed may have
        // landed (see `cas`), and the attempt after it then sees nothing left to add or remove.
        let mut indexed = TokenSet::new();
        let mut removed = TokenSet::new();
        let outcome = cas::update(self.store, &key, |current: Option<UserRecord>| {
            let mut record = current.unwrap_or(UserRecord { v: SCHEMA, rev: 0, devices: Vec::new() });
            let before = tokens_of(&record.devices);
            let count = record.devices.len();
            record.devices.retain(|d| self.fresh(d));
            let expired = record.devices.len() != count;
            if !edit(&mut record.devices) && !expired {
                return Ok(Step::Keep(()));
            }
            let after = tokens_of(&record.devices);
            for (provider, token) in minus(&after, &before) {
                self.index_add(&keys::token_index(*provider, token), user)?;
                insert_sorted(&mut indexed, (*provider, token.clone()));
            }
            record.rev += 1;
            for gone in minus(&before, &after) {
                insert_sorted(&mut removed, gone.clone());
            }
            Ok(Step::Write(record, ()))
        });
        if let Err(e) = outcome {
            if !indexed.is_empty() {
                self.take_back(user, &indexed);
            }
            return Err(e);
        }
        if !removed.is_empty() {
            self.unindex(user, &removed)?;
        }
        Ok(())
    }

    /// After a failed write: unindexes the tokens the account record does not hold. The record
    /// is read again first, because a write reported failed may have landed, and then its
    /// tokens must stay indexed. Best effort: the store has just failed, and the caller gets
    /// that first error, not this one.
    fn take_back(&self, user: u64, indexed: &TokenSet) {
        let key = keys::user(user);
        let held = match self.store.get(&key) {
            Ok(None) => TokenSet::new(),
            Ok(Some(bytes)) => match cas::decode::<UserRecord>(&key, &bytes) {
                Ok(record) => tokens_of(&record.devices),
                Err(_) => return,
            },
            Err(_) => return,
        };
        let stray: TokenSet = minus(indexed, &held).cloned().collect();
        if !stray.is_empty() {
            let _ = self.unindex(user, &stray);
        }
    }

    /// Drops `user` from the index of each token in `gone`, then fences the account record.
    fn unindex(&self, user: u64, gone: &TokenSet) -> Result<(), StoreError> {
        let mut removed_any = false;
        for (provider, token) in gone {
            removed_any |= self.index_remove(&keys::token_index(*provider, token), user)?;
        }
        if !removed_any {
            return Ok(()); // nothing was unindexed, so no concurrent re-add can have been missed
        }
        let key = keys::user(user);
        cas::update(self.store, &key, |current: Option<UserRecord>| {
            // An absent record is fenced too, by creating it empty: a request creating it with
            // one of these tokens may have checked the index before we unindexed, and creation
            // is elected (see `cas::create`), so that request then goes round again and
            // re-indexes instead of writing unchecked.
            let mut record = current.unwrap_or(UserRecord { v: SCHEMA, rev: 0, devices: Vec::new() });
            let now_held = tokens_of(&record.devices);
            for (provider, token) in both(gone, &now_held) {
                self.index_add(&keys::token_index(*provider, token), user)?;
            }
            record.rev += 1;
            Ok(Step::Write(record, ()))
        })?;
        Ok(())
    }

    /// Shards are created once and then always exist, so they are read and swapped directly;
    /// the first write to a shard also claims its creation (one call more, once per shard).
    fn index_add(&self, slot: &IndexSlot, user: u64) -> Result<(), StoreError> {
        cas::update(self.store, &slot.shard, |current: Option<IndexShard>| {
            let mut shard = current.unwrap_or(IndexShard { v: SCHEMA, tokens: Tokens::default() });
            let at = match shard.tokens.find(&slot.entry) {
                Ok(at) => at,
                Err(at) => {
                    shard.tokens.0.insert(at, (slot.entry.clone(), Vec::new()));
                    at
                }
            };
            let Some((_, holders)) = shard.tokens.0.get_mut(at) else { return Ok(Step::Keep(())) };
            match insert_sorted(holders, user) {
                true => Ok(Step::Write(shard, ())),
                false => Ok(Step::Keep(())),
            }
        })?;
        Ok(())
    }

    /// Returns whether `user` was listed (and so removed). A token's last holder takes its entry
    /// out of the shard; the shard key itself stays (deleting a key is a blind write that could
    /// drop an entry added concurrently).
    ///
    /// "Was listed" is true if any attempt removed it: a removal reported failed may have landed,
    /// and the next attempt then finds nothing to remove, but the caller must still fence.
    fn index_remove(&self, slot: &IndexSlot, user: u64) -> Result<bool, StoreError> {
        let mut removed = false;
        cas::update(self.store, &slot.shard, |current: Option<IndexShard>| {
            let Some(mut shard) = current else { return Ok(Step::Keep(())) };
            let Ok(slot_at) = shard.tokens.find(&slot.entry) else { return Ok(Step::Keep(())) };
            let Some((_, holders)) = shard.tokens.0.get_mut(slot_at) else { return Ok(Step::Keep(())) };
            let Ok(at) = holders.binary_search(&user) else { return Ok(Step::Keep(())) };
            holders.remove(at);
            if holders.is_empty() {
                shard.tokens.0.remove(slot_at);
            }
            removed = true;
            Ok(Step::Write(shard, ()))
        })?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
