//! `serve --dev` helpers: throwaway secrets and a valid user token for trying the API.
//!
//! The token recipe mirrors the component's (kept here in one function, [`user_token`],
//! used only for `--dev` minting): three base64url (no padding) parts joined by `.`:
//! the user id as decimal ASCII, the issue time as a 4-byte big-endian `u32` of Unix
//! seconds, and the first 20 bytes of `HMAC-SHA256(key, "auth." part1 "." part2)`,
//! where `key` is the first comma-separated entry of `auth_token_secret`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

/// The variables `--dev` fills with random secrets when they are not already set.
pub const DEV_SECRETS: [&str; 2] = ["auth_token_secret", "sync_token_secret"];

/// The demo user `--dev` mints a token for.
pub const DEMO_USER_ID: u64 = 80351110224678912;

/// 32 random bytes as 64 lowercase hex characters.
pub fn random_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Sets each of [`DEV_SECRETS`] that is missing or empty (the manifest's `default = ""`
/// means unset) to a fresh random secret; returns the names it set.
pub fn fill_dev_secrets(
    variables: &mut BTreeMap<String, String>,
) -> Result<Vec<&'static str>, getrandom::Error> {
    let mut set = Vec::new();
    for name in DEV_SECRETS {
        if variables.get(name).is_none_or(|v| v.is_empty()) {
            variables.insert(name.to_owned(), random_secret()?);
            set.push(name);
        }
    }
    Ok(set)
}

/// A user token for `user_id` issued at `issued_at` (Unix seconds), signed with the
/// first key of `auth_token_secret` (comma-separated, newest first).
pub fn user_token(auth_token_secret: &str, user_id: u64, issued_at: u32) -> String {
    let key = auth_token_secret.split(',').next().unwrap_or_default();
    let part1 = B64.encode(user_id.to_string());
    let part2 = B64.encode(issued_at.to_be_bytes());
    #[allow(clippy::expect_used)] // HMAC accepts keys of any length
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("auth.{part1}.{part2}").as_bytes());
    let tag = mac.finalize().into_bytes();
    let tag = tag.get(..20).unwrap_or(&tag[..]);
    format!("{part1}.{part2}.{}", B64.encode(tag))
}

/// A ready-to-paste curl command registering a demo device at `addr`.
pub fn curl_register(addr: &str, token: &str) -> String {
    format!(
        "curl -i -X POST http://{addr}/users/@me/devices \\\n  -H 'Authorization: {token}' \\\n  -H 'Content-Type: application/json' \\\n  -d '{{\"provider\":\"gcm\",\"token\":\"dev-fcm-token:APA91b\"}}'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_an_independent_computation() {
        // Computed with Python's hmac/hashlib/base64 from the same recipe.
        let t = user_token("k1,k0", DEMO_USER_ID, 1_700_000_000);
        assert_eq!(t, EXPECTED);
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(B64.decode(parts[0]).unwrap(), b"80351110224678912");
        assert_eq!(
            B64.decode(parts[1]).unwrap(),
            1_700_000_000u32.to_be_bytes()
        );
        assert_eq!(B64.decode(parts[2]).unwrap().len(), 20);
        assert!(!t.contains('='));
        // Only the first key signs.
        assert_eq!(user_token("k1", DEMO_USER_ID, 1_700_000_000), t);
        assert_ne!(user_token("k0,k1", DEMO_USER_ID, 1_700_000_000), t);
    }

    const EXPECTED: &str = "ODAzNTExMTAyMjQ2Nzg5MTI.ZVPxAA.bVc--2x-aLaacfr3ks17-Oe_15A";

    #[test]
    fn dev_secrets_fill_only_missing() {
        let mut vars = BTreeMap::from([
            ("auth_token_secret".to_owned(), "mine".to_owned()),
            ("sync_token_secret".to_owned(), String::new()),
        ]);
        let set = fill_dev_secrets(&mut vars).unwrap();
        assert_eq!(set, vec!["sync_token_secret"]);
        assert_eq!(vars["auth_token_secret"], "mine");
        let s = &vars["sync_token_secret"];
        assert_eq!(s.len(), 64);
        assert!(
            s.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(random_secret().unwrap(), random_secret().unwrap());
    }
}
