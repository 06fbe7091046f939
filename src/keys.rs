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

/// The accounts holding one (provider, token): `pd:t:<128-bit digest>`.
pub fn token_holders(provider: Provider, token: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(provider.as_str().as_bytes());
    hash.update(b"\n");
    hash.update(token.as_bytes());
    let digest = hash.finalize();
    format!("pd:t:{}", URL_SAFE_NO_PAD.encode(digest.get(..16).unwrap_or_default()))
}

/// A counter that elects the one writer allowed to create `key` (see `cas::create`).
/// Only ever touched by `increment`, as Spin's SQLite store requires of counters.
pub fn creation_claim(key: &str) -> String {
    format!("{key}:claim")
}

/// A short, non-reversible label for logs, so no device token is ever printed.
pub fn log_label(provider: Provider, token: &str) -> String {
    let key = token_holders(provider, token);
    format!("{}:{}", provider.as_str(), &key[5..13])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_opaque() {
        assert_eq!(user(42), "pd:u:42");
        let k = token_holders(Provider::Gcm, "secret-token");
        assert!(k.starts_with("pd:t:") && k.len() == 5 + 22);
        assert!(!k.contains("secret"));
        assert_ne!(k, token_holders(Provider::Apns, "secret-token"));
        assert_eq!(k, token_holders(Provider::Gcm, "secret-token"));
        assert_eq!(creation_claim(&user(1)), "pd:u:1:claim");
        assert!(!log_label(Provider::Gcm, "secret-token").contains("secret"));
    }
}
