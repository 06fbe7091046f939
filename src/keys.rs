//! Every key this component writes, in one place. Keys never carry raw client input: device
//! tokens appear only as a digest, user ids only as the number we parsed.

use crate::device::Provider;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// One account's devices: `pd:u:<user id>`.
pub fn user(user_id: u64) -> String {
    format!("pd:u:{user_id}")
}

/// How many keys the holders index is spread over. Tokens are client input, so the index keys
/// must not grow with them: each token is an entry inside one of these shards, and leaves it
/// when its last holder does. 65,536 keeps a shard at a few entries up to millions of devices.
pub const INDEX_SHARDS: usize = 1 << 16;

/// Where the accounts holding one (provider, token) are listed: entry `entry` of the index
/// shard `shard` (`pd:i:<4 hex digits>`), both taken from a 128-bit digest of the pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSlot {
    pub shard: String,
    pub entry: String,
}

pub fn token_index(provider: Provider, token: &str) -> IndexSlot {
    let mut hash = Sha256::new();
    hash.update(provider.as_str().as_bytes());
    hash.update(b"\n");
    hash.update(token.as_bytes());
    let digest: [u8; 32] = hash.finalize().into();
    let [a, b, rest @ ..] = digest;
    IndexSlot {
        shard: format!("pd:i:{a:02x}{b:02x}"),
        entry: URL_SAFE_NO_PAD.encode(rest.get(..14).unwrap_or_default()),
    }
}

/// A counter that elects the one writer allowed to create `key` (see `cas::create`).
/// Only ever touched by `increment`, as Spin's SQLite store requires of counters.
pub fn creation_claim(key: &str) -> String {
    format!("{key}:claim")
}

/// A short, non-reversible label for logs, so no device token is ever printed.
pub fn log_label(provider: Provider, token: &str) -> String {
    let slot = token_index(provider, token);
    format!("{}:{}{}", provider.as_str(), &slot.shard[5..], &slot.entry[..4])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_opaque() {
        assert_eq!(user(42), "pd:u:42");
        let slot = token_index(Provider::Gcm, "secret-token");
        assert!(slot.shard.starts_with("pd:i:") && slot.shard.len() == 5 + 4, "{slot:?}");
        assert!(slot.shard[5..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(slot.entry.len(), 19);
        assert!(!slot.shard.contains("secret") && !slot.entry.contains("secret"));
        assert_ne!(slot, token_index(Provider::Apns, "secret-token"));
        assert_eq!(slot, token_index(Provider::Gcm, "secret-token"));
        assert_eq!(creation_claim(&user(1)), "pd:u:1:claim");
        let label = log_label(Provider::Gcm, "secret-token");
        assert!(!label.contains("secret") && label.starts_with("gcm:") && label.len() == 4 + 8);
    }

    #[test]
    fn tokens_spread_over_every_shard() {
        // 2^18 tokens over 2^16 shards: about 4 each, so ~1.8 % of shards stay empty by
        // chance; a broken spread (a constant byte, a truncated digest) would leave most empty.
        let mut counts = vec![0u32; INDEX_SHARDS];
        for i in 0..(1u32 << 18) {
            let shard = token_index(Provider::Gcm, &format!("t{i}")).shard;
            let n = usize::from_str_radix(&shard[5..], 16).unwrap();
            counts[n] += 1;
        }
        let empty = counts.iter().filter(|&&c| c == 0).count();
        assert!(empty < INDEX_SHARDS / 25, "{empty} shards never used");
        assert!(counts.iter().all(|&c| c < 32), "a shard is overloaded");
    }
}
