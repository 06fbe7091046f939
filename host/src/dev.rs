//! `serve --dev` helpers: throwaway secrets and a valid user token for trying the API.
//!
//! The token is minted by the component's own code ([`push_devices::token::Keyring`]), so
//! the host can never drift from the recipe the component verifies.

use push_devices::token::{Keyring, KeyringError, Purpose};
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
/// first key of `auth_token_secret` (comma-separated, newest first). Fails when the
/// component itself would refuse the variable (no key, or a key under 32 bytes).
pub fn user_token(
    auth_token_secret: &str,
    user_id: u64,
    issued_at: u32,
) -> Result<String, KeyringError> {
    Ok(Keyring::parse(auth_token_secret)?.mint(Purpose::Auth, user_id, u64::from(issued_at)))
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

    const KEY: &str = "dev-key-0123456789abcdef0123456789ab";

    #[test]
    fn token_matches_an_independent_computation() {
        // Computed with Python's hmac/hashlib/base64: base64url (no padding) of the decimal
        // user id, of the 4-byte big-endian issue time, and of the first 20 bytes of
        // HMAC-SHA256(key, "auth." part1 "." part2).
        let t = user_token(KEY, DEMO_USER_ID, 1_700_000_000).unwrap();
        assert_eq!(t, EXPECTED);
        // Only the first key signs; blanks around keys are ignored, as the component does.
        let other = "another-key-0123456789abcdef012345";
        assert_eq!(user_token(&format!(" {KEY} ,{other}"), DEMO_USER_ID, 1_700_000_000).unwrap(), t);
        assert_ne!(user_token(&format!("{other},{KEY}"), DEMO_USER_ID, 1_700_000_000).unwrap(), t);
        // The component verifies what we mint.
        let ring = Keyring::parse(KEY).unwrap();
        assert_eq!(ring.verify(Purpose::Auth, &t, 1_700_000_001, 60), Ok(DEMO_USER_ID));
    }

    const EXPECTED: &str = "ODAzNTExMTAyMjQ2Nzg5MTI.ZVPxAA.VWN8JoAOV6DItCJWsiaNlYyVo_s";

    #[test]
    fn unusable_secrets_mint_nothing() {
        assert_eq!(user_token("", DEMO_USER_ID, 1), Err(KeyringError::Missing));
        assert_eq!(user_token("k1,k0", DEMO_USER_ID, 1), Err(KeyringError::TooShort));
    }

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
