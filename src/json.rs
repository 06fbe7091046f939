//! JSON written the way Discord's API writes it: `{"message": "...", "code": 0}`, with a space
//! after every `:` and `,`, so clients comparing bodies byte for byte see what they expect.

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io;

struct Spaced;

impl Formatter for Spaced {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// Serializes `value` in Discord's spacing. Our bodies are plain structs and maps of strings,
/// which cannot fail to serialize; should one ever fail, the body is `{}` rather than a panic.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Spaced);
    match value.serialize(&mut ser) {
        Ok(()) => out,
        Err(_) => b"{}".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_matches_discord() {
        let v = serde_json::json!({"a": [1, 2], "b": {"c": "d"}, "e": []});
        assert_eq!(to_vec(&v), br#"{"a": [1, 2], "b": {"c": "d"}, "e": []}"#);
    }
}
