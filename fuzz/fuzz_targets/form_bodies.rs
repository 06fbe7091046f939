//! Every body parser on arbitrary bytes, checked against an independent model of the documented
//! rules: a parser accepts exactly what the model accepts, returns the values the model reads,
//! and refuses everything else with a 400 whose body is Discord's JSON error shape.
//!
//! Rules (src/form.rs): a blank body is `{}`; `null` counts as absent; tokens are 1..=4096 bytes
//! of ASCII graphic characters, even-length hex for Apple providers; `bundle_id` is 1..=255
//! chars without control characters (default `com.discord`); `voip_provider` and `voip_token`
//! come together, the provider one of the VoIP ones; at most 32 sync tokens, all strings.

#![no_main]

use libfuzzer_sys::fuzz_target;
use push_devices::device::{DEFAULT_BUNDLE_ID, InvalidationReason, Provider};
use push_devices::error::ApiError;
use push_devices::form::{self, MAX_BUNDLE_ID_LEN, MAX_SYNC_TOKENS, MAX_TOKEN_LEN};
use serde_json::{Map, Value};

/// What a body decodes to before any field is looked at.
enum Shape {
    /// Not JSON at all (nor blank): 50109.
    NotJson,
    /// JSON, but not an object: 50035 `DICT_TYPE_CONVERT`.
    NotObject,
    Object(Map<String, Value>),
}

fn shape(body: &[u8]) -> Shape {
    if body.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        return Shape::Object(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Shape::Object(map),
        Ok(_) => Shape::NotObject,
        Err(_) => Shape::NotJson,
    }
}

/// A field as the rules see it: `null` and missing are the same.
enum Field<'a> {
    Absent,
    Str(&'a str),
    Other,
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Field<'a> {
    match obj.get(name) {
        None | Some(Value::Null) => Field::Absent,
        Some(Value::String(s)) => Field::Str(s),
        Some(_) => Field::Other,
    }
}

fn token_ok(apple: bool, token: &str) -> bool {
    (1..=MAX_TOKEN_LEN).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_graphic())
        && (!apple || (token.len() % 2 == 0 && token.bytes().all(|b| b.is_ascii_hexdigit())))
}

/// The documented invariants of an accepted token, asserted on the parser's output directly.
fn assert_token(provider: Provider, token: &str) {
    assert!((1..=MAX_TOKEN_LEN).contains(&token.len()), "token length {}", token.len());
    assert!(token.bytes().all(|b| b.is_ascii_graphic()), "non-graphic token {token:?}");
    if provider.is_apple() {
        assert!(token.len() % 2 == 0, "odd-length Apple token {token:?}");
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "non-hex Apple token {token:?}");
    }
}

fn model_push_token(obj: &Map<String, Value>) -> Option<(Provider, String)> {
    let Field::Str(p) = field(obj, "provider") else { return None };
    let provider = Provider::parse(p)?;
    let Field::Str(token) = field(obj, "token") else { return None };
    token_ok(provider.is_apple(), token).then(|| (provider, token.to_owned()))
}

struct ModelRegistration {
    provider: Provider,
    token: String,
    voip: Option<(Provider, String)>,
    bypass: bool,
    bundle_id: String,
}

fn model_registration(obj: &Map<String, Value>) -> Option<ModelRegistration> {
    let (provider, token) = model_push_token(obj)?;
    let voip = match (field(obj, "voip_provider"), field(obj, "voip_token")) {
        (Field::Absent, Field::Absent) => None,
        (Field::Str(p), Field::Str(t)) => {
            let p = Provider::parse(p).filter(|p| Provider::VOIP.contains(p))?;
            if !token_ok(true, t) {
                return None;
            }
            Some((p, t.to_owned()))
        }
        _ => return None,
    };
    let bypass = match obj.get("bypass_server_throttling_supported") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return None,
    };
    let bundle_id = match field(obj, "bundle_id") {
        Field::Absent => DEFAULT_BUNDLE_ID.to_owned(),
        Field::Str(id) => {
            let chars = id.chars().count();
            if chars == 0 || chars > MAX_BUNDLE_ID_LEN || id.chars().any(char::is_control) {
                return None;
            }
            id.to_owned()
        }
        Field::Other => return None,
    };
    Some(ModelRegistration { provider, token, voip, bypass, bundle_id })
}

fn model_sync(obj: &Map<String, Value>) -> Option<((Provider, String), Vec<String>)> {
    let device = model_push_token(obj)?;
    let Some(Value::Array(items)) = obj.get("push_sync_tokens") else { return None };
    if items.len() > MAX_SYNC_TOKENS {
        return None;
    }
    let tokens = items.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>()?;
    Some((device, tokens))
}

fn model_invalidation(obj: &Map<String, Value>) -> Option<((Provider, String), InvalidationReason)> {
    let device = model_push_token(obj)?;
    let Field::Str(reason) = field(obj, "reason") else { return None };
    Some((device, InvalidationReason::parse(reason)?))
}

/// `errors` of a 50035 body: a non-empty tree whose leaves are `_errors` lists of
/// `{"code", "message"}`; array entries are keyed by their index.
fn check_error_tree(node: &Value, fields: &[&str], depth: usize) {
    let map = node.as_object().unwrap_or_else(|| panic!("error node is not an object: {node}"));
    assert!(!map.is_empty(), "empty error node");
    for (key, child) in map {
        if key == "_errors" {
            let list = child.as_array().unwrap_or_else(|| panic!("_errors is not a list: {child}"));
            assert!(!list.is_empty(), "empty _errors");
            for entry in list {
                let code = entry.get("code").and_then(Value::as_str).unwrap_or_default();
                let message = entry.get("message").and_then(Value::as_str).unwrap_or_default();
                assert!(
                    !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                    "bad error code in {entry}"
                );
                assert!(!message.is_empty(), "empty message in {entry}");
                assert_eq!(entry.as_object().map(Map::len), Some(2), "extra keys in {entry}");
            }
        } else {
            match depth {
                0 => assert!(fields.contains(&key.as_str()), "error for unknown field {key:?}"),
                _ => assert!(
                    key.parse::<usize>().is_ok_and(|i| i < MAX_SYNC_TOKENS),
                    "error under a non-index key {key:?}"
                ),
            }
            check_error_tree(child, fields, depth + 1);
        }
    }
}

/// A refusal is a 400 with Discord's JSON body, of the kind the body's shape calls for.
fn check_error(err: ApiError, shape: &Shape, fields: &[&str]) {
    assert_eq!(err.status(), 400, "{err:?}");
    let response = err.into_response();
    assert_eq!(response.status, 400);
    let body: Value = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!("error body is not JSON ({e}): {:?}", String::from_utf8_lossy(&response.body))
    });
    let code = body.get("code").and_then(Value::as_u64);
    match shape {
        Shape::NotJson => {
            assert_eq!(code, Some(50109), "{body}");
        }
        Shape::NotObject => {
            assert_eq!(code, Some(50035), "{body}");
            let errors = &body["errors"];
            assert_eq!(errors["_errors"][0]["code"], "DICT_TYPE_CONVERT", "{body}");
            check_error_tree(errors, fields, 0);
        }
        Shape::Object(_) => {
            // A JSON object is never "invalid JSON": what is wrong with it is named field by field.
            assert_eq!(code, Some(50035), "{body}");
            assert_eq!(body["message"], "Invalid Form Body");
            check_error_tree(&body["errors"], fields, 0);
        }
    }
}

fn object(shape: &Shape) -> Option<&Map<String, Value>> {
    match shape {
        Shape::Object(obj) => Some(obj),
        _ => None,
    }
}

const DEVICE_FIELDS: &[&str] = &["provider", "token"];
const REGISTRATION_FIELDS: &[&str] = &[
    "provider",
    "token",
    "voip_provider",
    "voip_token",
    "bypass_server_throttling_supported",
    "bundle_id",
];
const SYNC_FIELDS: &[&str] = &["provider", "token", "push_sync_tokens"];
const INVALIDATION_FIELDS: &[&str] = &["provider", "token", "reason"];

fuzz_target!(|data: &[u8]| {
    let shape = shape(data);

    let expected = object(&shape).and_then(model_registration);
    match form::parse_registration(data) {
        Ok(r) => {
            let m = expected.expect("registration accepted that the rules refuse");
            assert_token(r.provider, &r.token);
            if let Some(v) = &r.voip {
                assert!(Provider::VOIP.contains(&v.provider), "voip provider {:?}", v.provider);
                assert_token(v.provider, &v.token);
            }
            let chars = r.bundle_id.chars().count();
            assert!((1..=MAX_BUNDLE_ID_LEN).contains(&chars), "bundle_id of {chars} chars");
            assert!(!r.bundle_id.chars().any(char::is_control), "control char in bundle_id");
            assert_eq!((r.provider, r.token.as_str()), (m.provider, m.token.as_str()));
            assert_eq!(r.voip.map(|v| (v.provider, v.token)), m.voip);
            assert_eq!(r.bypass_server_throttling_supported, m.bypass);
            assert_eq!(r.bundle_id, m.bundle_id);
        }
        Err(err) => {
            assert!(expected.is_none(), "registration refused that the rules accept");
            check_error(err, &shape, REGISTRATION_FIELDS);
        }
    }

    let expected = object(&shape).and_then(model_push_token);
    match form::parse_push_token(data) {
        Ok(d) => {
            assert_token(d.provider, &d.token);
            assert_eq!(Some((d.provider, d.token)), expected, "push token differs from the rules");
        }
        Err(err) => {
            assert!(expected.is_none(), "push token refused that the rules accept");
            check_error(err, &shape, DEVICE_FIELDS);
        }
    }

    let expected = object(&shape).and_then(model_sync);
    match form::parse_sync(data) {
        Ok(s) => {
            assert_token(s.device.provider, &s.device.token);
            assert!(s.push_sync_tokens.len() <= MAX_SYNC_TOKENS, "{} sync tokens", s.push_sync_tokens.len());
            let got = ((s.device.provider, s.device.token), s.push_sync_tokens);
            assert_eq!(Some(got), expected, "sync differs from the rules");
        }
        Err(err) => {
            assert!(expected.is_none(), "sync refused that the rules accept");
            check_error(err, &shape, SYNC_FIELDS);
        }
    }

    let expected = object(&shape).and_then(model_invalidation);
    match form::parse_invalidation(data) {
        Ok(i) => {
            assert_token(i.device.provider, &i.device.token);
            let got = ((i.device.provider, i.device.token), i.reason);
            assert_eq!(Some(got), expected, "invalidation differs from the rules");
        }
        Err(err) => {
            assert!(expected.is_none(), "invalidation refused that the rules accept");
            check_error(err, &shape, INVALIDATION_FIELDS);
        }
    }

    // The typed interface's check on a bare token: first byte picks the provider.
    if let Some((&first, rest)) = data.split_first() {
        let provider = Provider::ALL[usize::from(first) % Provider::ALL.len()];
        let token = String::from_utf8_lossy(rest);
        match form::validate_token(provider, &token) {
            Ok(()) => assert!(token_ok(provider.is_apple(), &token), "validate_token accepted {token:?}"),
            Err(message) => {
                assert!(!token_ok(provider.is_apple(), &token), "validate_token refused {token:?}");
                assert!(!message.is_empty());
            }
        }
    }
});
