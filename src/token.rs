//! Signed tokens: sync tokens we mint, and user tokens a gateway mints for us.
//!
//! Wire shape (the interoperability contract, documented in the README):
//! `B64(user id, decimal ASCII) "." B64(issued at, u32 Unix seconds, big-endian) "." B64(tag)`,
//! B64 being base64url without padding and `tag` the first 20 bytes of
//! `HMAC-SHA256(key, PURPOSE "." part1 "." part2)`. The purpose is signed, so a sync token can
//! never pass for a user token or the other way round.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC kept in a token: 160 bits, as long as the documented example's tag.
pub const TAG_LEN: usize = 20;
/// The shortest key accepted: 256 bits, HMAC-SHA256's own strength.
pub const MIN_KEY_LEN: usize = 32;
/// Longest token looked at; real ones are about 62 bytes.
pub const MAX_TOKEN_LEN: usize = 128;
/// How far in the future an issue time may lie, for clocks that disagree a little.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// What a token is for; signed into the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Minted by `GET /users/@me/devices/sync-token`, redeemed by `PUT /users/@me/devices/sync`.
    Sync,
    /// Minted by the gateway in front of us; says who `@me` is.
    Auth,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Sync => b"sync",
            Purpose::Auth => b"auth",
        }
    }
}

/// Why a token was refused. Callers answer every variant the same way (401 or "invalid"); the
/// variants exist for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    TooLong,
    Shape,
    Encoding,
    UserId,
    Signature,
    FromTheFuture,
    Expired,
}

/// Why a key variable could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringError {
    Missing,
    TooShort,
}

/// Keys from one variable: the first signs, every one verifies, so keys rotate by prepending.
#[derive(Clone)]
pub struct Keyring {
    /// Keys are kept as HMACs that have absorbed them: keying costs two SHA-256 blocks, as much
    /// as a whole tag, so it is paid once per key, not once per token.
    signer: HmacSha256,
    /// The keys after the first, which only verify.
    older: Vec<HmacSha256>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys)", 1 + self.older.len())
    }
}

impl Keyring {
    /// Parses a comma-separated key list; blanks around keys are ignored.
    pub fn parse(value: &str) -> Result<Keyring, KeyringError> {
        let keys: Vec<&str> = value.split(',').map(str::trim).filter(|k| !k.is_empty()).collect();
        let Some(signer) = keys.first() else {
            return Err(KeyringError::Missing);
        };
        if keys.iter().any(|k| k.len() < MIN_KEY_LEN) {
            return Err(KeyringError::TooShort);
        }
        Ok(Keyring {
            signer: keyed(signer.as_bytes()),
            older: keys.iter().skip(1).map(|k| keyed(k.as_bytes())).collect(),
        })
    }

    /// Mints a token for `user_id` issued at `now` (Unix seconds) with the signing key.
    pub fn mint(&self, purpose: Purpose, user_id: u64, now: u64) -> String {
        let part1 = URL_SAFE_NO_PAD.encode(user_id.to_string());
        // Issue times are u32 on the wire (valid until 2106); saturate rather than wrap.
        let issued = u32::try_from(now).unwrap_or(u32::MAX);
        let part2 = URL_SAFE_NO_PAD.encode(issued.to_be_bytes());
        let mut mac = self.signer.clone();
        feed(&mut mac, purpose, &part1, &part2);
        let tag = mac.finalize().into_bytes();
        let part3 = URL_SAFE_NO_PAD.encode(tag.get(..TAG_LEN).unwrap_or_default());
        format!("{part1}.{part2}.{part3}")
    }

    /// Returns the user a token names, if one of our keys signed it for `purpose` no more than
    /// `lifetime_secs` ago.
    pub fn verify(
        &self,
        purpose: Purpose,
        token: &str,
        now: u64,
        lifetime_secs: u64,
    ) -> Result<u64, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(part1), Some(part2), Some(part3), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Shape);
        };
        let id_bytes = decode(part1)?;
        let time_bytes: [u8; 4] = decode(part2)?
            .try_into()
            .map_err(|_| TokenError::Encoding)?;
        let tag: [u8; TAG_LEN] = decode(part3)?
            .try_into()
            .map_err(|_| TokenError::Encoding)?;

        // The signature first: nothing about an unsigned token deserves a more specific answer.
        let signed = std::iter::once(&self.signer).chain(&self.older).any(|key| {
            let mut mac = key.clone();
            feed(&mut mac, purpose, part1, part2);
            mac.verify_truncated_left(&tag).is_ok()
        });
        if !signed {
            return Err(TokenError::Signature);
        }
        let user_id = parse_user_id(&id_bytes).ok_or(TokenError::UserId)?;
        let issued = u64::from(u32::from_be_bytes(time_bytes));
        if issued > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(TokenError::FromTheFuture);
        }
        if now.saturating_sub(issued) > lifetime_secs {
            return Err(TokenError::Expired);
        }
        Ok(user_id)
    }
}

/// Parses a snowflake as canonical decimal: digits only, no leading zero, non-zero, fits u64.
pub fn parse_user_id(bytes: &[u8]) -> Option<u64> {
    let canonical = !bytes.is_empty()
        && bytes.len() <= 20
        && bytes.iter().all(u8::is_ascii_digit)
        && bytes.first() != Some(&b'0');
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts every key length"),
    }
}

fn feed(mac: &mut HmacSha256, purpose: Purpose, part1: &str, part2: &str) {
    mac.update(purpose.label());
    mac.update(b".");
    mac.update(part1.as_bytes());
    mac.update(b".");
    mac.update(part2.as_bytes());
}

/// The engine rejects padding and non-zero trailing bits, so every token has one spelling.
fn decode(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Encoding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const KEY_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const NOW: u64 = 1_760_000_000;
    const DAY: u64 = 86_400;

    fn ring(s: &str) -> Keyring {
        Keyring::parse(s).unwrap()
    }

    #[test]
    fn mints_the_documented_shape() {
        let token = ring(KEY_A).mint(Purpose::Sync, 852892297661906993, NOW);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "ODUyODkyMjk3NjYxOTA2OTkz");
        assert_eq!(parts[1].len(), 6);
        assert_eq!(parts[2].len(), 27);
        assert_eq!(
            ring(KEY_A).verify(Purpose::Sync, &token, NOW, DAY),
            Ok(852892297661906993)
        );
    }

    #[test]
    fn the_documented_example_is_not_ours() {
        // Discord's example tag ends in non-zero trailing bits: not canonical for our engine.
        let example = "ODUyODkyMjk3NjYxOTA2OTkz.ZfoufA.rHvCtpfHjr9kdRab1ZTl83PRhhZ";
        assert_eq!(
            ring(KEY_A).verify(Purpose::Sync, example, NOW, u64::MAX),
            Err(TokenError::Encoding)
        );
    }

    #[test]
    fn purpose_is_signed() {
        let sync = ring(KEY_A).mint(Purpose::Sync, 42, NOW);
        assert_eq!(
            ring(KEY_A).verify(Purpose::Auth, &sync, NOW, DAY),
            Err(TokenError::Signature)
        );
        let auth = ring(KEY_A).mint(Purpose::Auth, 42, NOW);
        assert_eq!(ring(KEY_A).verify(Purpose::Auth, &auth, NOW, DAY), Ok(42));
        assert_eq!(
            ring(KEY_A).verify(Purpose::Sync, &auth, NOW, DAY),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let token = ring(KEY_A).mint(Purpose::Sync, 80351110224678912, NOW);
        let bytes = token.as_bytes();
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x02, 0x20, 0x80] {
                let mut forged = bytes.to_vec();
                forged[i] ^= flip;
                let Ok(forged) = String::from_utf8(forged) else { continue };
                assert!(
                    ring(KEY_A).verify(Purpose::Sync, &forged, NOW, DAY).is_err(),
                    "flipping byte {i} with {flip:#x} still verified: {forged}"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let token = ring(KEY_A).mint(Purpose::Sync, 80351110224678912, NOW);
        for len in 0..token.len() {
            assert!(ring(KEY_A).verify(Purpose::Sync, &token[..len], NOW, DAY).is_err());
            assert!(ring(KEY_A).verify(Purpose::Sync, &token[len + 1..], NOW, DAY).is_err());
        }
    }

    #[test]
    fn expiry_and_skew() {
        let r = ring(KEY_A);
        let token = r.mint(Purpose::Sync, 7, NOW);
        assert_eq!(r.verify(Purpose::Sync, &token, NOW + DAY, DAY), Ok(7));
        assert_eq!(
            r.verify(Purpose::Sync, &token, NOW + DAY + 1, DAY),
            Err(TokenError::Expired)
        );
        assert_eq!(r.verify(Purpose::Sync, &token, NOW - 300, DAY), Ok(7));
        assert_eq!(
            r.verify(Purpose::Sync, &token, NOW - 301, DAY),
            Err(TokenError::FromTheFuture)
        );
    }

    #[test]
    fn rotation_first_signs_all_verify() {
        let old = ring(KEY_A).mint(Purpose::Sync, 9, NOW);
        let rotated = ring(&format!("{KEY_B}, {KEY_A}"));
        assert_eq!(rotated.verify(Purpose::Sync, &old, NOW, DAY), Ok(9));
        let new = rotated.mint(Purpose::Sync, 9, NOW);
        assert_eq!(ring(KEY_B).verify(Purpose::Sync, &new, NOW, DAY), Ok(9));
        assert_eq!(
            ring(KEY_A).verify(Purpose::Sync, &new, NOW, DAY),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn keyring_rules() {
        assert_eq!(Keyring::parse("").unwrap_err(), KeyringError::Missing);
        assert_eq!(Keyring::parse(" , ").unwrap_err(), KeyringError::Missing);
        assert_eq!(Keyring::parse("short").unwrap_err(), KeyringError::TooShort);
        assert_eq!(
            Keyring::parse(&format!("{KEY_A},short")).unwrap_err(),
            KeyringError::TooShort
        );
        assert!(Keyring::parse(&"k".repeat(32)).is_ok());
    }

    #[test]
    fn refuses_bad_shapes_and_ids() {
        let r = ring(KEY_A);
        let sign = |p1: &str, p2: &str| {
            let mut mac = keyed(KEY_A.as_bytes());
            feed(&mut mac, Purpose::Sync, p1, p2);
            let tag = mac.finalize().into_bytes();
            format!("{p1}.{p2}.{}", URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN]))
        };
        let time = URL_SAFE_NO_PAD.encode((NOW as u32).to_be_bytes());
        for bad_id in ["0", "012", "-1", "+1", "1a", "", "18446744073709551616", " 1"] {
            let token = sign(&URL_SAFE_NO_PAD.encode(bad_id), &time);
            assert_eq!(
                r.verify(Purpose::Sync, &token, NOW, DAY),
                Err(TokenError::UserId),
                "{bad_id:?}"
            );
        }
        let max = sign(&URL_SAFE_NO_PAD.encode("18446744073709551615"), &time);
        assert_eq!(r.verify(Purpose::Sync, &max, NOW, DAY), Ok(u64::MAX));
        let good = r.mint(Purpose::Sync, 5, NOW);
        assert_eq!(
            r.verify(Purpose::Sync, &format!("{good}.x"), NOW, DAY),
            Err(TokenError::Shape)
        );
        assert_eq!(
            r.verify(Purpose::Sync, &"A".repeat(200), NOW, DAY),
            Err(TokenError::TooLong)
        );
        // Padding is not canonical.
        let padded = good.replacen('.', "=.", 1);
        assert!(r.verify(Purpose::Sync, &padded, NOW, DAY).is_err());
    }

    proptest! {
        #[test]
        fn verifies_iff_minted_with_a_configured_key(
            user in 1u64..,
            issued in 0u64..u32::MAX as u64,
            age in 0u64..(2 * DAY),
            signer in 0usize..3,
            purpose_matches: bool,
        ) {
            let keys = [KEY_A, KEY_B, "cccccccccccccccccccccccccccccccccccccccc"];
            let verifier = ring(&format!("{KEY_A},{KEY_B}"));
            let minted_for = if purpose_matches { Purpose::Sync } else { Purpose::Auth };
            let token = ring(keys[signer]).mint(minted_for, user, issued);
            let now = issued + age;
            let expected = signer < 2 && purpose_matches && age <= DAY;
            prop_assert_eq!(verifier.verify(Purpose::Sync, &token, now, DAY).is_ok(), expected);
        }

        #[test]
        fn arbitrary_input_never_panics_nor_verifies(input in ".{0,200}") {
            prop_assert!(ring(KEY_A).verify(Purpose::Sync, &input, NOW, DAY).is_err());
        }
    }
}
