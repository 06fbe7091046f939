//! JSON written the way Discord's API writes it: `{"message": "...", "code": 0}`, with a space
//! after every `:` and `,`, so clients comparing bodies byte for byte see what they expect.
//!
//! And JSON read as a [`Json`] tree: request bodies are looked at through it, and stored records
//! are deserialized from it ([`from_slice`]). serde_json does all the reading, but only through
//! `deserialize_any`; its typed path builds every type error's message at once, through
//! `Unexpected`'s `Display`, which prints floats, and that alone kept float formatting (about
//! 25 KB) in the component, which has no floats.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserialize, Deserializer, Expected, IntoDeserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::Serialize;
use serde_json::ser::Formatter;
use std::borrow::Cow;
use std::{fmt, io};

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

/// A JSON document. Strings without escapes borrow from the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// An object's members in document order, duplicates kept; keys are always [`Json::Str`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Object<'a>(pub Vec<(Json<'a>, Json<'a>)>);

impl<'a> Object<'a> {
    /// The member named `name`; of duplicates the last, as a `serde_json::Map` keeps it.
    pub fn get(&self, name: &str) -> Option<&Json<'a>> {
        self.0.iter().rev().find(|(key, _)| matches!(key, Json::Str(k) if k == name)).map(|(_, v)| v)
    }
}

/// Reads a document. Accepts exactly what `serde_json::from_slice::<serde_json::Value>` accepts:
/// the same parser on the same path, nesting limit included.
pub fn parse(bytes: &[u8]) -> Result<Json<'_>, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Why a document did not fit a type: serde's messages, except that a float is not printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Syntax(String),
    Shape(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax(m) | Error::Shape(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Shape(msg.to_string())
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Error::Shape(format!("invalid type: {}, expected {exp}", Described(unexp)))
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Error::Shape(format!("invalid value: {}, expected {exp}", Described(unexp)))
    }
}

/// `Unexpected` as serde_json words it, without the value of a float.
struct Described<'a>(Unexpected<'a>);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Bool(b) => write!(f, "boolean `{b}`"),
            Unexpected::Unsigned(i) => write!(f, "integer `{i}`"),
            Unexpected::Signed(i) => write!(f, "integer `{i}`"),
            Unexpected::Float(_) => f.write_str("floating point"),
            Unexpected::Char(c) => write!(f, "character `{c}`"),
            Unexpected::Str(s) => write!(f, "string {s:?}"),
            Unexpected::Bytes(_) => f.write_str("byte array"),
            Unexpected::Unit => f.write_str("null"),
            Unexpected::Option => f.write_str("Option value"),
            Unexpected::NewtypeStruct => f.write_str("newtype struct"),
            Unexpected::Seq => f.write_str("sequence"),
            Unexpected::Map => f.write_str("map"),
            Unexpected::Enum => f.write_str("enum"),
            Unexpected::UnitVariant => f.write_str("unit variant"),
            Unexpected::NewtypeVariant => f.write_str("newtype variant"),
            Unexpected::TupleVariant => f.write_str("tuple variant"),
            Unexpected::StructVariant => f.write_str("struct variant"),
            Unexpected::Other(other) => f.write_str(other),
        }
    }
}

/// Deserializes a `T` from JSON bytes, through a [`Json`] tree. Accepts the documents
/// `serde_json::from_slice::<T>` accepts, with differences only hand-made input shows: a struct
/// must be an object (serde_json also reads one from an array of its fields, which every
/// struct visitor then carries, ~6 KB in all), a unit enum variant a string (not
/// `{"variant": null}`), and members a type ignores must still be valid JSON (serde_json skips
/// them without checking UTF-8 or number range). Records are only ever written as objects.
pub fn from_slice<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Error> {
    T::deserialize(tree(bytes)?)
}

/// [`parse`] with [`Error`]; not generic, so compiled once for every `from_slice::<T>`. Says
/// the error's category and position rather than serde_json's message, whose `Display` would
/// be ~1 KB more in the component for a text only logs see.
#[inline(never)]
fn tree(bytes: &[u8]) -> Result<Json<'_>, Error> {
    parse(bytes).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "invalid data",
            serde_json::error::Category::Eof => "unexpected end of input",
        };
        Error::Syntax(format!("{kind} at line {} column {}", e.line(), e.column()))
    })
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::I64(n))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::U64(n))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Json<'de>, E> {
        Ok(Json::F64(n))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::Str(Cow::Borrowed(s)))
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::new();
        while let Some(entry) = map.next_entry()? {
            members.push(entry);
        }
        Ok(Json::Object(Object(members)))
    }
}

impl Json<'_> {
    /// The error a visitor's default method gives for this value.
    fn invalid_type(&self, expected: &dyn Expected) -> Error {
        let unexpected = match self {
            Json::Null => Unexpected::Unit,
            Json::Bool(b) => Unexpected::Bool(*b),
            Json::U64(n) => Unexpected::Unsigned(*n),
            Json::I64(n) => Unexpected::Signed(*n),
            Json::F64(n) => Unexpected::Float(*n),
            Json::Str(s) => Unexpected::Str(s),
            Json::Array(_) => Unexpected::Seq,
            Json::Object(_) => Unexpected::Map,
        };
        de::Error::invalid_type(unexpected, expected)
    }
}

/// Hands an array to `visitor`; every item must be taken.
fn visit_array<'de, V: Visitor<'de>>(items: Vec<Json<'de>>, visitor: V) -> Result<V::Value, Error> {
    let mut seq = SeqDeserializer::new(items.into_iter());
    let value = visitor.visit_seq(&mut seq)?;
    seq.end()?;
    Ok(value)
}

/// Hands an object's members to `visitor`; every member must be taken.
fn visit_object<'de, V: Visitor<'de>>(members: Vec<(Json<'de>, Json<'de>)>, visitor: V) -> Result<V::Value, Error> {
    let mut map = MapDeserializer::new(members.into_iter());
    let value = visitor.visit_map(&mut map)?;
    map.end()?;
    Ok(value)
}

impl<'de> IntoDeserializer<'de, Error> for Json<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// A tree is a serde data format, as `serde_json::Value` is, but with [`Error`].
impl<'de> Deserializer<'de> for Json<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Null => visitor.visit_unit(),
            Json::Bool(b) => visitor.visit_bool(b),
            Json::U64(n) => visitor.visit_u64(n),
            Json::I64(n) => visitor.visit_i64(n),
            Json::F64(n) => visitor.visit_f64(n),
            Json::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Json::Str(Cow::Owned(s)) => visitor.visit_string(s),
            Json::Array(items) => visit_array(items, visitor),
            Json::Object(Object(members)) => visit_object(members, visitor),
        }
    }

    // The typed entry points below call only the visits the expected type can take; any other
    // value gets the error the visitor's default methods would give, built in one place
    // instead of in each of a dozen instantiations of `deserialize_any`.

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Json::Object(Object(members)) => visit_object(members, visitor),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Object(Object(members)) => visit_object(members, visitor),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Array(items) => visit_array(items, visitor),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Str(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Json::Str(Cow::Owned(s)) => visitor.visit_string(s),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_string(visitor)
    }

    /// Field names: serde_json's map keys are strings; a field's index is a number.
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::U64(n) => visitor.visit_u64(n),
            other => other.deserialize_string(visitor),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::U64(n) => visitor.visit_u64(n),
            Json::I64(n) => visitor.visit_i64(n),
            Json::F64(n) => visitor.visit_f64(n),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Bool(b) => visitor.visit_bool(b),
            other => Err(other.invalid_type(&visitor)),
        }
    }

    /// As `serde_json::Value` does: whatever the value, it is ignored whole.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Json::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Json::Str(s) => s.into_deserializer().deserialize_enum(name, variants, visitor),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u128 f32 f64 char bytes byte_buf unit unit_struct tuple
        tuple_struct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::device::{Device, Provider, VoipToken};
    use crate::registry::{IndexShard, UserRecord};
    use serde::de::DeserializeOwned;

    /// `from_slice` accepts what `serde_json::from_slice` accepts and reads the same value.
    fn agrees<T: DeserializeOwned + PartialEq + fmt::Debug>(doc: &str) -> Result<T, Error> {
        let ours = from_slice::<T>(doc.as_bytes());
        let reference = serde_json::from_str::<T>(doc);
        match (&ours, &reference) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{doc}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{doc}: ours {ours:?}, serde_json {reference:?}"),
        }
        ours
    }

    #[test]
    fn records_read_like_serde_json() {
        let device = r#"{"provider":"apns_voip","token":"00ff","voip":{"provider":"apns_voip","token":"a\"b\\c\u00e9"},"bypass_server_throttling_supported":true,"bundle_id":"com.x","registered_at":1760000000000}"#;
        let user = agrees::<UserRecord>(&format!(r#"{{"v":1,"rev":7,"devices":[{device}]}}"#)).unwrap();
        assert_eq!(user.devices[0].voip, Some(VoipToken { provider: Provider::ApnsVoip, token: "a\"b\\c\u{e9}".into() }));
        let ok: &[&str] = &[
            r#"{"v":1,"rev":0,"devices":[]}"#,
            r#" {"devices":[],"rev":18446744073709551615,"v":1,"unknown":[1,{"a":null}]} "#,
            r#"{"v":1,"rev":0,"devices":[{"provider":"gcm","token":"t","bundle_id":"b","registered_at":0}]}"#,
            r#"{"v":1,"rev":0,"devices":[{"provider":"gcm","token":"t","voip":null,"bundle_id":"b","registered_at":0}]}"#,
        ];
        for doc in ok {
            assert!(agrees::<UserRecord>(doc).is_ok(), "{doc}");
        }
        let refused: &[&str] = &[
            "", "{", r#"{"v":1,"rev":0}"#, r#"{"v":1,"rev":0,"devices":[]} x"#, r#"{"v":1.0,"rev":0,"devices":[]}"#,
            r#"{"v":-1,"rev":0,"devices":[]}"#, r#"{"v":4294967296,"rev":0,"devices":[]}"#, r#"{"v":"1","rev":0,"devices":[]}"#,
            r#"{"v":1,"v":1,"rev":0,"devices":[]}"#, r#"{"v":null,"rev":0,"devices":[]}"#, r#"{"v":1,"rev":1e3,"devices":[]}"#,
            r#"{"v":1,"rev":0,"devices":{}}"#, r#"{"v":1,"rev":0,"devices":[{"provider":"fax","token":"t","bundle_id":"b","registered_at":0}]}"#,
            r#"{"v":1,"rev":0,"devices":[{"provider":1,"token":"t","bundle_id":"b","registered_at":0}]}"#,
            r#"{"v":1,"rev":0,"devices":[{"provider":"gcm","token":"t","bundle_id":"b","registered_at":0,"token":"u"}]}"#,
            r#"[1, 2]"#, r#"[1, 2, [], 3]"#, "null", "7",
        ];
        for doc in refused {
            assert!(agrees::<UserRecord>(doc).is_err(), "{doc}");
        }
        // The one documented difference a well-formed document can show: a struct as an array.
        assert!(serde_json::from_str::<UserRecord>("[1, 2, []]").is_ok());
        assert_eq!(from_slice::<UserRecord>(b"[1, 2, []]").unwrap_err().to_string(), "invalid type: sequence, expected struct UserRecord");
        let shard = agrees::<IndexShard>(r#"{"v":1,"tokens":{"a":[1,5,18446744073709551615],"b":[2],"a":[7]}}"#).unwrap();
        assert_eq!((shard.holders("a"), shard.holders("b")), (&[7][..], &[2][..]));
        assert!(agrees::<IndexShard>(r#"{"v":1,"tokens":{"a":[1,-5]}}"#).is_err());
        assert!(agrees::<IndexShard>(r#"{"v":1,"tokens":[["a",[1]]]}"#).is_err());
        assert!(agrees::<Device>(r#"{"provider":"gcm","token":5,"bundle_id":"b","registered_at":0}"#).is_err());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(agrees::<IndexShard>(&deep).is_err());
    }

    #[test]
    fn shape_errors_say_what_was_wrong() {
        let err = |doc: &str| from_slice::<UserRecord>(doc.as_bytes()).unwrap_err().to_string();
        assert_eq!(err(r#"{"v":1,"rev":0}"#), "missing field `devices`");
        assert_eq!(err(r#"{"v":"1","rev":0,"devices":[]}"#), "invalid type: string \"1\", expected u32");
        assert_eq!(err(r#"{"v":1.5,"rev":0,"devices":[]}"#), "invalid type: floating point, expected u32");
        assert_eq!(err(r#"{"v":null,"rev":0,"devices":[]}"#), "invalid type: null, expected u32");
        assert_eq!(err(r#"{"v":4294967296,"rev":0,"devices":[]}"#), "invalid value: integer `4294967296`, expected u32");
        assert_eq!(err(r#"{"v":1,"v":1,"rev":0,"devices":[]}"#), "duplicate field `v`");
        assert!(err(r#"{"v":1,"rev":0,"devices":[{"provider":"fax","token":"t","bundle_id":"b","registered_at":0}]}"#)
            .starts_with("unknown variant `fax`, expected one of `gcm`"));
        assert_eq!(err("{"), "unexpected end of input at line 1 column 1");
        assert_eq!(err("{\"v\":1,]"), "syntax error at line 1 column 8");
    }

    #[test]
    fn spacing_matches_discord() {
        let v = serde_json::json!({"a": [1, 2], "b": {"c": "d"}, "e": []});
        assert_eq!(to_vec(&v), br#"{"a": [1, 2], "b": {"c": "d"}, "e": []}"#);
    }
}
