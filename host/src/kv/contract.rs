//! The behaviour every correct [`KvBackend`] must have; run against each implementation.

use super::{KvBackend, KvError, SwapOutcome};

/// Checks the full contract on an empty backend.
pub(crate) fn check_backend(b: &dyn KvBackend) {
    // get / set / exists / delete
    assert_eq!(b.get("default", "k").unwrap(), None);
    assert!(!b.exists("default", "k").unwrap());
    b.set("default", "k", b"v1").unwrap();
    assert_eq!(b.get("default", "k").unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(b.exists("default", "k").unwrap());
    b.set("default", "k", b"v2").unwrap();
    assert_eq!(b.get("default", "k").unwrap().as_deref(), Some(&b"v2"[..]));
    b.delete("default", "k").unwrap();
    assert_eq!(b.get("default", "k").unwrap(), None);
    b.delete("default", "k").unwrap(); // deleting a missing key is fine

    // labels are separate namespaces
    b.set("default", "shared", b"d").unwrap();
    b.set("other", "shared", b"o").unwrap();
    assert_eq!(
        b.get("default", "shared").unwrap().as_deref(),
        Some(&b"d"[..])
    );
    assert_eq!(
        b.get("other", "shared").unwrap().as_deref(),
        Some(&b"o"[..])
    );
    b.delete("other", "shared").unwrap();
    assert_eq!(
        b.get("default", "shared").unwrap().as_deref(),
        Some(&b"d"[..])
    );
    b.delete("default", "shared").unwrap();

    // empty values are values, not absence
    b.set("default", "empty", b"").unwrap();
    assert_eq!(
        b.get("default", "empty").unwrap().as_deref(),
        Some(&b""[..])
    );
    assert!(b.exists("default", "empty").unwrap());
    b.delete("default", "empty").unwrap();

    // list-keys: all keys of one label, sorted
    b.set("default", "b", b"2").unwrap();
    b.set("default", "a", b"1").unwrap();
    b.set("other", "z", b"9").unwrap();
    assert_eq!(b.list_keys("default").unwrap(), vec!["a", "b"]);
    assert_eq!(b.list_keys("other").unwrap(), vec!["z"]);
    assert!(b.list_keys("nothing-here").unwrap().is_empty());

    // get-many keeps request order and reports missing keys as None
    let got = b
        .get_many("default", &["b".into(), "missing".into(), "a".into()])
        .unwrap();
    assert_eq!(
        got,
        vec![
            ("b".to_string(), Some(b"2".to_vec())),
            ("missing".to_string(), None),
            ("a".to_string(), Some(b"1".to_vec())),
        ]
    );
    b.set_many(
        "default",
        &[("c".into(), b"3".to_vec()), ("a".into(), b"1b".to_vec())],
    )
    .unwrap();
    assert_eq!(b.get("default", "c").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(b.get("default", "a").unwrap().as_deref(), Some(&b"1b"[..]));
    b.delete_many(
        "default",
        &["a".into(), "b".into(), "c".into(), "nope".into()],
    )
    .unwrap();
    assert!(b.list_keys("default").unwrap().is_empty());
    b.delete("other", "z").unwrap();

    // compare-and-swap: absent counts as a value
    assert_eq!(
        b.swap("default", "c", None, b"first").unwrap(),
        SwapOutcome::Swapped
    );
    assert_eq!(
        b.get("default", "c").unwrap().as_deref(),
        Some(&b"first"[..])
    );
    // expecting absent while it exists fails and writes nothing
    assert_eq!(
        b.swap("default", "c", None, b"blind").unwrap(),
        SwapOutcome::Conflict
    );
    assert_eq!(
        b.get("default", "c").unwrap().as_deref(),
        Some(&b"first"[..])
    );
    // stale expectation fails
    assert_eq!(
        b.swap("default", "c", Some(b"stale"), b"x").unwrap(),
        SwapOutcome::Conflict
    );
    assert_eq!(
        b.get("default", "c").unwrap().as_deref(),
        Some(&b"first"[..])
    );
    // matching expectation succeeds
    assert_eq!(
        b.swap("default", "c", Some(b"first"), b"second").unwrap(),
        SwapOutcome::Swapped
    );
    assert_eq!(
        b.get("default", "c").unwrap().as_deref(),
        Some(&b"second"[..])
    );
    // expecting a value on an absent key fails and creates nothing
    assert_eq!(
        b.swap("default", "absent", Some(b"v"), b"x").unwrap(),
        SwapOutcome::Conflict
    );
    assert_eq!(b.get("default", "absent").unwrap(), None);
    // the empty value is not absence
    b.set("default", "e", b"").unwrap();
    assert_eq!(
        b.swap("default", "e", None, b"x").unwrap(),
        SwapOutcome::Conflict
    );
    assert_eq!(
        b.swap("default", "e", Some(b""), b"x").unwrap(),
        SwapOutcome::Swapped
    );
    b.delete_many("default", &["c".into(), "e".into()]).unwrap();

    // increment: absent is 0, stored as 8-byte little-endian i64
    assert_eq!(b.increment("default", "n", 5).unwrap(), 5);
    assert_eq!(
        b.get("default", "n").unwrap(),
        Some(5i64.to_le_bytes().to_vec())
    );
    assert_eq!(b.increment("default", "n", -7).unwrap(), -2);
    assert_eq!(
        b.get("default", "n").unwrap(),
        Some((-2i64).to_le_bytes().to_vec())
    );
    assert_eq!(
        b.increment("other", "n", 1).unwrap(),
        1,
        "counters are per label"
    );
    // a value that is not a counter is reported, and left alone
    b.set("default", "text", b"hello").unwrap();
    assert!(matches!(
        b.increment("default", "text", 1),
        Err(KvError::Other(_))
    ));
    assert_eq!(
        b.get("default", "text").unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    // overflow is reported, and the counter left alone
    b.set("default", "big", &i64::MAX.to_le_bytes()).unwrap();
    assert!(matches!(
        b.increment("default", "big", 1),
        Err(KvError::Other(_))
    ));
    assert_eq!(
        b.get("default", "big").unwrap(),
        Some(i64::MAX.to_le_bytes().to_vec())
    );
    b.delete_many("default", &["n".into(), "text".into(), "big".into()])
        .unwrap();
    b.delete("other", "n").unwrap();

    assert!(b.list_keys("default").unwrap().is_empty());
    assert!(b.list_keys("other").unwrap().is_empty());
}
