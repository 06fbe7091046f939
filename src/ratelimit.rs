//! Per-user write limits, shared by every instance through the key-value store: one small
//! fixed-window record per user and bucket (`pd:r:<user>:<bucket>`), updated by compare-and-swap,
//! so nothing piles up per window.

use crate::cas::{self, Record, SCHEMA, Step};
use crate::store::{KvStore, StoreError};
use serde::{Deserialize, Serialize};
use std::hash::BuildHasher;

/// The bucket all write routes share, as named in `X-RateLimit-Bucket`.
pub const WRITE_BUCKET: &str = "devices-write";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Requests allowed per window; 0 turns limiting off.
    pub limit: u32,
    pub window_ms: u64,
}

/// Where a user stands after a request was counted (or refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub limit: u32,
    pub remaining: u32,
    /// Unix milliseconds when the window reopens.
    pub reset_at_ms: u64,
    pub now_ms: u64,
    pub limited: bool,
}

impl Standing {
    pub fn reset_after_ms(&self) -> u64 {
        self.reset_at_ms.saturating_sub(self.now_ms)
    }

    /// Discord's `X-RateLimit-*` headers; `Retry-After` too when refused.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            ("x-ratelimit-reset", seconds(self.reset_at_ms)),
            ("x-ratelimit-reset-after", seconds(self.reset_after_ms())),
            ("x-ratelimit-bucket", WRITE_BUCKET.to_owned()),
            ("x-ratelimit-scope", "user".to_owned()),
        ];
        if self.limited {
            headers.push(("retry-after", self.reset_after_ms().div_ceil(1000).to_string()));
        }
        headers
    }
}

/// Milliseconds as seconds with three decimals, the way Discord writes them.
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Window {
    v: u32,
    start: u64,
    count: u32,
    /// Makes every write unique, so a swap that Spin's Redis store misreports as failed is
    /// recognised by its bytes without mistaking a concurrent equal count for ours.
    nonce: u64,
}

impl Record for Window {
    fn version(&self) -> u32 {
        self.v
    }
}

pub fn key(user: u64, bucket: &str) -> String {
    format!("pd:r:{user}:{bucket}")
}

/// Counts one request against `user`'s window, unless the window is full.
/// A refused request writes nothing.
pub fn consume<S: KvStore>(store: &S, user: u64, policy: Policy, now_ms: u64) -> Result<Option<Standing>, StoreError> {
    if policy.limit == 0 {
        return Ok(None);
    }
    let (standing, _) = cas::update(store, &key(user, WRITE_BUCKET), |current: Option<Window>| {
        let window = current.filter(|w| now_ms < w.start.saturating_add(policy.window_ms) && w.start <= now_ms);
        let (start, count) = window.map_or((now_ms, 0), |w| (w.start, w.count));
        let mut standing = Standing {
            limit: policy.limit,
            remaining: 0,
            reset_at_ms: start.saturating_add(policy.window_ms),
            now_ms,
            limited: count >= policy.limit,
        };
        if standing.limited {
            return Ok(Step::Keep(standing));
        }
        standing.remaining = policy.limit - count - 1;
        let nonce = std::collections::hash_map::RandomState::new().hash_one(now_ms);
        Ok(Step::Write(Window { v: SCHEMA, start, count: count + 1, nonce }, standing))
    })?;
    Ok(Some(standing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemStore, Quirks};
    use std::sync::Arc;

    const NOW: u64 = 1_760_000_000_000;
    const POLICY: Policy = Policy { limit: 10, window_ms: 60_000 };

    #[test]
    fn eleventh_write_is_refused_until_the_window_reopens() {
        let store = MemStore::new();
        for i in 0..10 {
            let s = consume(&store, 1, POLICY, NOW + i * 1000).unwrap().unwrap();
            assert!(!s.limited);
            assert_eq!(s.remaining, 9 - i as u32);
        }
        let before = store.dump();
        let refused = consume(&store, 1, POLICY, NOW + 15_500).unwrap().unwrap();
        assert!(refused.limited);
        assert_eq!(refused.reset_after_ms(), 44_500);
        assert_eq!(store.dump(), before, "a refused request writes nothing");
        let headers = refused.headers();
        assert!(headers.contains(&("retry-after", "45".to_owned())));
        assert!(headers.contains(&("x-ratelimit-reset-after", "44.500".to_owned())));
        // Other users are not affected; the window reopens on time.
        assert!(!consume(&store, 2, POLICY, NOW + 15_500).unwrap().unwrap().limited);
        assert!(consume(&store, 1, POLICY, NOW + 59_999).unwrap().unwrap().limited);
        let reopened = consume(&store, 1, POLICY, NOW + 60_000).unwrap().unwrap();
        assert!(!reopened.limited);
        assert_eq!(reopened.remaining, 9);
    }

    #[test]
    fn zero_turns_it_off() {
        let store = MemStore::new();
        assert_eq!(consume(&store, 1, Policy { limit: 0, window_ms: 60_000 }, NOW).unwrap(), None);
        assert!(store.dump().is_empty());
    }

    #[test]
    fn concurrent_requests_are_each_counted_even_with_spin_quirks() {
        let store = Arc::new(MemStore::with_quirks(Quirks { blind_create: true, false_conflict: true }));
        let policy = Policy { limit: 1000, window_ms: 60_000 };
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        consume(&*store, 1, policy, NOW).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let last = consume(&*store, 1, policy, NOW).unwrap().unwrap();
        assert_eq!(last.remaining, 1000 - 161);
    }
}
