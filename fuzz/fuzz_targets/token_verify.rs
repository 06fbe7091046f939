//! Signed tokens (src/token.rs) under attack.
//!
//! 1. Forgery: the input, as a string, is verified against a fixed keyring with the most lenient
//!    clock (any issue time, endless lifetime). If it verifies, it must be byte for byte the
//!    token this run mints for the user and issue time it names with one of the ring's keys:
//!    nothing else may ever pass.
//! 2. Tampering: the same input, read with `arbitrary`, picks a user, a clock, a signing key and
//!    a purpose; the freshly minted token must verify exactly as the rules say (signature, then
//!    user id, then skew, then expiry), and one input-chosen edit of one byte (replace, insert,
//!    delete) must make it fail, whatever the clock.
//! 3. Key lists: the input as a `Keyring` variable parses exactly when the rules say, and a
//!    ring that parses verifies its own tokens.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use push_devices::token::{Keyring, KeyringError, MAX_CLOCK_SKEW_SECS, MAX_TOKEN_LEN, MIN_KEY_LEN, Purpose, TokenError};
use std::sync::LazyLock;

const KEY_A: &str = "fuzz-key-A-0123456789abcdef0123456789abcdef0123456789abcdef0123";
const KEY_B: &str = "fuzz-key-B-0123456789abcdef0123456789abcdef0123456789abcdef0123";
/// Not in the verifying ring.
const KEY_C: &str = "fuzz-key-C-0123456789abcdef0123456789abcdef0123456789abcdef0123";
const NOW: u64 = 1_760_000_000;
const DAY: u64 = 86_400;

/// The verifying ring: B signs (rotated in), A still verifies.
static RING: LazyLock<Keyring> = LazyLock::new(|| ring(&format!("{KEY_B}, {KEY_A}")));
static ONLY: LazyLock<[Keyring; 3]> = LazyLock::new(|| [ring(KEY_A), ring(KEY_B), ring(KEY_C)]);

fn ring(keys: &str) -> Keyring {
    Keyring::parse(keys).unwrap_or_else(|e| panic!("fixed keyring refused: {e:?}"))
}

const PURPOSES: [Purpose; 2] = [Purpose::Sync, Purpose::Auth];

/// A verified token must be exactly what one of the ring's keys mints for what it claims.
fn assert_genuine(purpose: Purpose, token: &str, user: u64) {
    let issued = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .unwrap_or_else(|| panic!("verified token without a readable issue time: {token:?}"));
    let genuine = ONLY[..2].iter().any(|k| k.mint(purpose, user, u64::from(issued)) == token);
    assert!(genuine, "forged {purpose:?} token verified as user {user} issued {issued}: {token:?}");
}

fn forgery(input: &str) {
    let mut verified = None;
    for purpose in PURPOSES {
        let lenient = RING.verify(purpose, input, u64::MAX, u64::MAX);
        let realistic = RING.verify(purpose, input, NOW, DAY);
        if let Ok(user) = realistic {
            assert_eq!(lenient, Ok(user), "verifies now but not with a lenient clock");
        }
        if let Ok(user) = lenient {
            assert_genuine(purpose, input, user);
            assert!(verified.replace(purpose).is_none(), "one token verified for both purposes: {input:?}");
        }
        // A key outside the ring never vouches for anything the ring accepts.
        if lenient.is_ok() {
            assert!(ONLY[2].verify(purpose, input, u64::MAX, u64::MAX).is_err());
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Replace { at: u16, byte: u8 },
    Insert { at: u16, byte: u8 },
    Delete { at: u16 },
}

#[derive(Arbitrary, Debug)]
struct Case {
    user: u64,
    /// Unix seconds the token is minted at (saturates to u32 on the wire).
    minted_at: u64,
    /// Verifier's clock relative to `minted_at`, in seconds.
    age: i64,
    lifetime: u32,
    /// 0: A alone, 1: B alone, 2: C (not in the ring), 3: the rotated ring itself.
    signer: u8,
    sync: bool,
    /// Verify for the other purpose.
    cross: bool,
    edit: Edit,
}

fn tampering(case: &Case) {
    let purpose = if case.sync { Purpose::Sync } else { Purpose::Auth };
    let signer = usize::from(case.signer % 4);
    let token = match signer {
        3 => RING.mint(purpose, case.user, case.minted_at),
        i => ONLY[i].mint(purpose, case.user, case.minted_at),
    };
    assert!(token.len() <= MAX_TOKEN_LEN, "minted token of {} bytes", token.len());
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{token:?}");
    assert_eq!(token.matches('.').count(), 2, "{token:?}");

    let checked_for = if case.cross { other(purpose) } else { purpose };
    let now = case.minted_at.saturating_add_signed(case.age);
    let lifetime = u64::from(case.lifetime);
    let issued = case.minted_at.min(u64::from(u32::MAX));
    let expected = if signer == 2 || case.cross {
        Err(TokenError::Signature)
    } else if case.user == 0 {
        Err(TokenError::UserId)
    } else if issued > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        Err(TokenError::FromTheFuture)
    } else if now.saturating_sub(issued) > lifetime {
        Err(TokenError::Expired)
    } else {
        Ok(case.user)
    };
    assert_eq!(RING.verify(checked_for, &token, now, lifetime), expected, "{case:?} {token:?}");

    let mut bytes = token.clone().into_bytes();
    let len = bytes.len();
    match case.edit {
        Edit::Replace { at, byte } => bytes[usize::from(at) % len] = byte,
        Edit::Insert { at, byte } => bytes.insert(usize::from(at) % (len + 1), byte),
        Edit::Delete { at } => {
            bytes.remove(usize::from(at) % len);
        }
    }
    if bytes == token.as_bytes() {
        return; // replaced a byte by itself
    }
    let tampered = String::from_utf8_lossy(&bytes);
    for purpose in PURPOSES {
        for (now, lifetime) in [(u64::MAX, u64::MAX), (now, lifetime)] {
            let got = RING.verify(purpose, &tampered, now, lifetime);
            assert!(got.is_err(), "tampered token verified as {got:?}: {token:?} -> {tampered:?} ({case:?})");
        }
    }
}

fn other(purpose: Purpose) -> Purpose {
    match purpose {
        Purpose::Sync => Purpose::Auth,
        Purpose::Auth => Purpose::Sync,
    }
}

fn key_list(input: &str) {
    let keys: Vec<&str> = input.split(',').map(str::trim).filter(|k| !k.is_empty()).collect();
    let expected = if keys.is_empty() {
        Err(KeyringError::Missing)
    } else if keys.iter().any(|k| k.len() < MIN_KEY_LEN) {
        Err(KeyringError::TooShort)
    } else {
        Ok(())
    };
    let parsed = Keyring::parse(input);
    assert_eq!(parsed.as_ref().map(|_| ()).map_err(Clone::clone), expected, "{input:?}");
    if let Ok(ring) = parsed {
        for purpose in PURPOSES {
            let token = ring.mint(purpose, 42, NOW);
            assert_eq!(ring.verify(purpose, &token, NOW, DAY), Ok(42));
            assert_eq!(ring.verify(other(purpose), &token, NOW, DAY), Err(TokenError::Signature));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    forgery(&input);
    key_list(&input);
    if let Ok(case) = Case::arbitrary(&mut Unstructured::new(data)) {
        tampering(&case);
    }
});
