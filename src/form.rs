//! Request bodies: parsing and validation, every bad field reported at once in Discord's
//! "Invalid Form Body" shape (`{"code": 50035, "message": ..., "errors": {field: {"_errors": [...]}}}`).

use crate::device::{DEFAULT_BUNDLE_ID, InvalidationReason, Provider, VoipToken};
use crate::error::ApiError;
use crate::json::{self, Json, Object};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::fmt;

pub const MAX_TOKEN_LEN: usize = 4096;
pub const MAX_BUNDLE_ID_LEN: usize = 255;
pub const MAX_SYNC_TOKENS: usize = 32;

/// Field errors keyed by path; array entries are keyed by their index as a string.
#[derive(Default, Clone, PartialEq)]
pub struct FormErrors {
    root: Node,
}

/// Shown as the errors' JSON, which the body already knows how to write.
impl fmt::Debug for FormErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = json::to_vec(&self.root);
        write!(f, "FormErrors({})", std::str::from_utf8(&body).unwrap_or_default())
    }
}

/// One level of the error tree. Written as a JSON object whose keys (children and `_errors`)
/// come in byte order, as Discord's bodies (and `serde_json::Map`, which built them before) have them.
#[derive(Default, Clone, PartialEq)]
struct Node {
    /// `_errors`, in the order added.
    errors: Vec<FieldError>,
    /// Sorted by key.
    children: Vec<(String, Node)>,
}

#[derive(Clone, PartialEq, serde::Serialize)]
struct FieldError {
    code: String,
    message: String,
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const ERRORS: &str = "_errors";
        let len = self.children.len() + usize::from(!self.errors.is_empty());
        let mut map = serializer.serialize_map(Some(len))?;
        let mut errors_due = !self.errors.is_empty();
        for (key, child) in &self.children {
            if errors_due && key.as_str() > ERRORS {
                map.serialize_entry(ERRORS, &self.errors)?;
                errors_due = false;
            }
            map.serialize_entry(key, child)?;
        }
        if errors_due {
            map.serialize_entry(ERRORS, &self.errors)?;
        }
        map.end()
    }
}

#[derive(serde::Serialize)]
struct FormBody<'a> {
    code: u32,
    message: &'a str,
    errors: &'a Node,
}

impl FormErrors {
    pub fn is_empty(&self) -> bool {
        self.root.errors.is_empty() && self.root.children.is_empty()
    }

    /// Adds an error at `path` (empty path: the body itself).
    pub fn add(&mut self, path: &[&str], code: &str, message: &str) {
        let mut node = &mut self.root;
        for segment in path {
            let at = match node.children.binary_search_by(|(key, _)| key.as_str().cmp(segment)) {
                Ok(at) => at,
                Err(at) => {
                    node.children.insert(at, ((*segment).to_owned(), Node::default()));
                    at
                }
            };
            let Some((_, child)) = node.children.get_mut(at) else { return };
            node = child;
        }
        node.errors.push(FieldError { code: code.to_owned(), message: message.to_owned() });
    }

    pub fn to_body(&self) -> Vec<u8> {
        json::to_vec(&FormBody { code: 50035, message: "Invalid Form Body", errors: &self.root })
    }

    fn finish<T>(self, value: T) -> Result<T, ApiError> {
        if self.is_empty() { Ok(value) } else { Err(ApiError::InvalidForm(self)) }
    }
}

/// `POST /users/@me/devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub provider: Provider,
    pub token: String,
    pub voip: Option<VoipToken>,
    pub bypass_server_throttling_supported: bool,
    pub bundle_id: String,
}

/// `DELETE /users/@me/devices`, and the device named by a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushToken {
    pub provider: Provider,
    pub token: String,
}

/// `PUT /users/@me/devices/sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub device: PushToken,
    pub push_sync_tokens: Vec<String>,
}

pub fn parse_registration(body: &[u8]) -> Result<Registration, ApiError> {
    let obj = object(body)?;
    let mut errors = FormErrors::default();
    let device = push_token(&obj, "provider", "token", &Provider::ALL, &mut errors);
    let voip_provider = choice(&obj, "voip_provider", &Provider::VOIP, false, &mut errors);
    let voip_token = string(&obj, "voip_token", false, &mut errors);
    let voip = match (voip_provider, voip_token) {
        (Some(provider), Some(token)) => {
            check_token(Some(provider), token, &["voip_token"], &mut errors)
                .then(|| VoipToken { provider, token: token.to_owned() })
        }
        (None, None) => None,
        (Some(_), None) if !present(&obj, "voip_token") => {
            errors.add(&["voip_token"], "BASE_TYPE_REQUIRED", REQUIRED);
            None
        }
        (None, Some(_)) if !present(&obj, "voip_provider") => {
            errors.add(&["voip_provider"], "BASE_TYPE_REQUIRED", REQUIRED);
            None
        }
        _ => None, // the other field is present but invalid and already reported
    };
    let bypass = match obj.get("bypass_server_throttling_supported") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(_) => {
            errors.add(
                &["bypass_server_throttling_supported"],
                "BASE_TYPE_BOOLEAN",
                "Must be either true or false.",
            );
            false
        }
    };
    let bundle_id = match string(&obj, "bundle_id", false, &mut errors) {
        None => DEFAULT_BUNDLE_ID.to_owned(),
        Some(id) => {
            let chars = id.chars().count();
            if chars == 0 || chars > MAX_BUNDLE_ID_LEN {
                errors.add(
                    &["bundle_id"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 255 in length.",
                );
            } else if id.chars().any(char::is_control) {
                errors.add(&["bundle_id"], "BUNDLE_ID_INVALID", "Must not contain control characters.");
            }
            id.to_owned()
        }
    };
    // A missing device was reported above, so `device` is `Some` whenever `errors` is empty.
    let device = errors.finish(device)?.ok_or(ApiError::InvalidJson)?;
    Ok(Registration {
        provider: device.provider,
        token: device.token,
        voip,
        bypass_server_throttling_supported: bypass,
        bundle_id,
    })
}

pub fn parse_push_token(body: &[u8]) -> Result<PushToken, ApiError> {
    let obj = object(body)?;
    let mut errors = FormErrors::default();
    let device = push_token(&obj, "provider", "token", &Provider::ALL, &mut errors);
    errors.finish(device).and_then(|d| d.ok_or(ApiError::InvalidJson))
}

pub fn parse_sync(body: &[u8]) -> Result<SyncRequest, ApiError> {
    let obj = object(body)?;
    let mut errors = FormErrors::default();
    let device = push_token(&obj, "provider", "token", &Provider::ALL, &mut errors);
    let mut push_sync_tokens = Vec::new();
    match obj.get("push_sync_tokens") {
        None | Some(Json::Null) => {
            errors.add(&["push_sync_tokens"], "BASE_TYPE_REQUIRED", REQUIRED);
        }
        Some(Json::Array(items)) => {
            if items.len() > MAX_SYNC_TOKENS {
                errors.add(
                    &["push_sync_tokens"],
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 32 or fewer in length.",
                );
            }
            for (i, item) in items.iter().enumerate().take(MAX_SYNC_TOKENS) {
                match item {
                    Json::Str(s) => push_sync_tokens.push(s.as_ref().to_owned()),
                    _ => errors.add(&["push_sync_tokens", &i.to_string()], "BASE_TYPE_STRING", NOT_STRING),
                }
            }
        }
        Some(_) => errors.add(
            &["push_sync_tokens"],
            "LIST_TYPE_CONVERT",
            "Only iterables may be used in a ListType",
        ),
    }
    errors
        .finish(device)
        .and_then(|d| d.ok_or(ApiError::InvalidJson))
        .map(|device| SyncRequest { device, push_sync_tokens })
}

/// `POST /internal/devices/invalidate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    pub device: PushToken,
    pub reason: InvalidationReason,
}

pub fn parse_invalidation(body: &[u8]) -> Result<Invalidation, ApiError> {
    let obj = object(body)?;
    let mut errors = FormErrors::default();
    let device = push_token(&obj, "provider", "token", &Provider::ALL, &mut errors);
    let reason = string(&obj, "reason", true, &mut errors).and_then(|r| {
        let parsed = InvalidationReason::parse(r);
        if parsed.is_none() {
            let message = one_of(InvalidationReason::ALL.iter().map(|r| r.as_str()));
            errors.add(&["reason"], "BASE_TYPE_CHOICES", &message);
        }
        parsed
    });
    errors.finish((device, reason)).and_then(|pair| match pair {
        (Some(device), Some(reason)) => Ok(Invalidation { device, reason }),
        _ => Err(ApiError::InvalidJson),
    })
}

/// Checks a token outside a body (the typed interface): the message of the first rule broken.
pub fn validate_token(provider: Provider, token: &str) -> Result<(), String> {
    let mut errors = FormErrors::default();
    if check_token(Some(provider), token, &["token"], &mut errors) {
        return Ok(());
    }
    let message = errors
        .root
        .children
        .iter()
        .find(|(key, _)| key == "token")
        .and_then(|(_, node)| node.errors.first())
        .map_or("invalid token", |e| e.message.as_str());
    Err(message.to_owned())
}

const REQUIRED: &str = "This field is required";

/// `Value must be one of {'a', 'b'}.`, Discord's message for a value outside a choice.
fn one_of<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut message = String::from("Value must be one of {");
    for (i, name) in names.enumerate() {
        if i > 0 {
            message.push_str(", ");
        }
        message.push('\'');
        message.push_str(name);
        message.push('\'');
    }
    message.push_str("}.");
    message
}
const NOT_STRING: &str = "Must be a string.";

/// An empty body counts as `{}`, so a bare request is told which fields it lacks.
fn object(body: &[u8]) -> Result<Object<'_>, ApiError> {
    // JSON's own whitespace only: a form feed is not blank to a JSON parser.
    if body.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        return Ok(Object::default());
    }
    match json::parse(body) {
        Ok(Json::Object(members)) => Ok(members),
        Ok(_) => {
            let mut errors = FormErrors::default();
            errors.add(&[], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType");
            Err(ApiError::InvalidForm(errors))
        }
        Err(_) => Err(ApiError::InvalidJson),
    }
}

fn present(obj: &Object<'_>, field: &str) -> bool {
    !matches!(obj.get(field), None | Some(Json::Null))
}

/// A string field; `null` counts as absent.
fn string<'a>(
    obj: &'a Object<'_>,
    field: &str,
    required: bool,
    errors: &mut FormErrors,
) -> Option<&'a str> {
    match obj.get(field) {
        None | Some(Json::Null) => {
            if required {
                errors.add(&[field], "BASE_TYPE_REQUIRED", REQUIRED);
            }
            None
        }
        Some(Json::Str(s)) => Some(s),
        Some(_) => {
            errors.add(&[field], "BASE_TYPE_STRING", NOT_STRING);
            None
        }
    }
}

fn choice(
    obj: &Object<'_>,
    field: &str,
    allowed: &[Provider],
    required: bool,
    errors: &mut FormErrors,
) -> Option<Provider> {
    let value = string(obj, field, required, errors)?;
    match Provider::parse(value).filter(|p| allowed.contains(p)) {
        Some(p) => Some(p),
        None => {
            let message = one_of(allowed.iter().map(|p| p.as_str()));
            errors.add(&[field], "BASE_TYPE_CHOICES", &message);
            None
        }
    }
}

fn push_token(
    obj: &Object<'_>,
    provider_field: &str,
    token_field: &str,
    allowed: &[Provider],
    errors: &mut FormErrors,
) -> Option<PushToken> {
    let provider = choice(obj, provider_field, allowed, true, errors);
    let token = string(obj, token_field, true, errors)?;
    let valid = check_token(provider, token, &[token_field], errors);
    match provider {
        Some(provider) if valid => Some(PushToken { provider, token: token.to_owned() }),
        _ => None,
    }
}

/// Tokens are 1 to 4096 bytes of printable ASCII; Apple's are even-length hex of any length.
fn check_token(provider: Option<Provider>, token: &str, path: &[&str], errors: &mut FormErrors) -> bool {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        errors.add(path, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 4096 in length.");
        return false;
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        errors.add(path, "PUSH_TOKEN_INVALID", "Push tokens may only contain printable ASCII characters.");
        return false;
    }
    let apple = provider.is_some_and(Provider::is_apple);
    if apple && (token.len() % 2 != 0 || !token.bytes().all(|b| b.is_ascii_hexdigit())) {
        errors.add(path, "PUSH_TOKEN_INVALID", "APNs tokens must be an even number of hexadecimal digits.");
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body_of(err: ApiError) -> String {
        String::from_utf8(err.into_response().body).unwrap()
    }

    #[test]
    fn minimal_registration_gets_defaults() {
        let r = parse_registration(br#"{"provider": "gcm", "token": "fcm:abc-_1"}"#).unwrap();
        assert_eq!(r.provider, Provider::Gcm);
        assert_eq!(r.token, "fcm:abc-_1");
        assert_eq!(r.voip, None);
        assert!(!r.bypass_server_throttling_supported);
        assert_eq!(r.bundle_id, "com.discord");
    }

    #[test]
    fn full_registration() {
        let r = parse_registration(
            br#"{"provider": "apns", "token": "ABCDEF0123", "voip_provider": "apns_voip",
                "voip_token": "00ff", "bypass_server_throttling_supported": true,
                "bundle_id": "com.hammerandchisel.discord", "unknown": 1}"#,
        )
        .unwrap();
        assert_eq!(r.voip, Some(VoipToken { provider: Provider::ApnsVoip, token: "00ff".into() }));
        assert!(r.bypass_server_throttling_supported);
        assert_eq!(r.bundle_id, "com.hammerandchisel.discord");
    }

    #[test]
    fn missing_fields_reported_together() {
        let err = parse_registration(b"{}").unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(
            body_of(err),
            r#"{"code": 50035, "message": "Invalid Form Body", "errors": {"provider": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}, "token": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}}}"#
        );
    }

    #[test]
    fn each_field_error_has_its_exact_body() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"provider": "fax", "token": "t"}"#,
             r#""provider": {"_errors": [{"code": "BASE_TYPE_CHOICES", "message": "Value must be one of {'gcm', 'apns', 'apns_internal', 'apns_voip', 'apns_internal_voip'}."}]}"#),
            (br#"{"provider": 1, "token": "t"}"#,
             r#""provider": {"_errors": [{"code": "BASE_TYPE_STRING", "message": "Must be a string."}]}"#),
            (br#"{"provider": "gcm", "token": ""}"#,
             r#""token": {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH", "message": "Must be between 1 and 4096 in length."}]}"#),
            (br#"{"provider": "gcm", "token": "caf\u00e9"}"#,
             r#""token": {"_errors": [{"code": "PUSH_TOKEN_INVALID", "message": "Push tokens may only contain printable ASCII characters."}]}"#),
            (br#"{"provider": "apns", "token": "abc"}"#,
             r#""token": {"_errors": [{"code": "PUSH_TOKEN_INVALID", "message": "APNs tokens must be an even number of hexadecimal digits."}]}"#),
            (br#"{"provider": "gcm", "token": "t", "bypass_server_throttling_supported": "yes"}"#,
             r#""bypass_server_throttling_supported": {"_errors": [{"code": "BASE_TYPE_BOOLEAN", "message": "Must be either true or false."}]}"#),
            (br#"{"provider": "gcm", "token": "t", "voip_provider": "gcm", "voip_token": "00"}"#,
             r#""voip_provider": {"_errors": [{"code": "BASE_TYPE_CHOICES", "message": "Value must be one of {'apns_voip', 'apns_internal_voip'}."}]}"#),
            (br#"{"provider": "gcm", "token": "t", "voip_provider": "apns_voip"}"#,
             r#""voip_token": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}"#),
            (br#"{"provider": "gcm", "token": "t", "voip_token": "00"}"#,
             r#""voip_provider": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}"#),
        ];
        for (body, expected) in cases {
            let got = body_of(parse_registration(body).unwrap_err());
            let want = format!(r#"{{"code": 50035, "message": "Invalid Form Body", "errors": {{{expected}}}}}"#);
            assert_eq!(got, want, "for {}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn length_limits() {
        let long = "a".repeat(MAX_TOKEN_LEN);
        assert!(parse_registration(format!(r#"{{"provider":"gcm","token":"{long}"}}"#).as_bytes()).is_ok());
        let err = parse_registration(format!(r#"{{"provider":"gcm","token":"{long}a"}}"#).as_bytes()).unwrap_err();
        assert!(body_of(err).contains("BASE_TYPE_BAD_LENGTH"));
        let apns = "ab".repeat(100);
        assert!(parse_registration(format!(r#"{{"provider":"apns","token":"{apns}"}}"#).as_bytes()).is_ok());
        let bundle = "b".repeat(256);
        let err = parse_registration(format!(r#"{{"provider":"gcm","token":"t","bundle_id":"{bundle}"}}"#).as_bytes()).unwrap_err();
        assert!(body_of(err).contains(r#""bundle_id": {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH""#));
    }

    #[test]
    fn not_json_and_not_object() {
        let err = parse_push_token(b"{\"provider\": ").unwrap_err();
        assert_eq!(body_of(err), r#"{"code": 50109, "message": "The request body contains invalid JSON."}"#);
        assert!(body_of(parse_push_token(&[0xff, 0xfe]).unwrap_err()).contains("50109"));
        assert_eq!(
            body_of(parse_push_token(b"[1]").unwrap_err()),
            r#"{"code": 50035, "message": "Invalid Form Body", "errors": {"_errors": [{"code": "DICT_TYPE_CONVERT", "message": "Only dictionaries may be used in a DictType"}]}}"#
        );
    }

    #[test]
    fn sync_entries_keyed_by_index() {
        let err = parse_sync(br#"{"provider": "gcm", "token": "t", "push_sync_tokens": ["a", 2, null]}"#).unwrap_err();
        assert_eq!(
            body_of(err),
            r#"{"code": 50035, "message": "Invalid Form Body", "errors": {"push_sync_tokens": {"1": {"_errors": [{"code": "BASE_TYPE_STRING", "message": "Must be a string."}]}, "2": {"_errors": [{"code": "BASE_TYPE_STRING", "message": "Must be a string."}]}}}}"#
        );
        let many: Vec<String> = (0..33).map(|i| format!("\"t{i}\"")).collect();
        let body = format!(r#"{{"provider": "gcm", "token": "t", "push_sync_tokens": [{}]}}"#, many.join(","));
        assert!(body_of(parse_sync(body.as_bytes()).unwrap_err()).contains("Must be 32 or fewer in length."));
        let ok = parse_sync(br#"{"provider": "gcm", "token": "t", "push_sync_tokens": []}"#).unwrap();
        assert!(ok.push_sync_tokens.is_empty());
        let err = parse_sync(br#"{"provider": "gcm", "token": "t", "push_sync_tokens": "x"}"#).unwrap_err();
        assert!(body_of(err).contains("LIST_TYPE_CONVERT"));
    }

    #[test]
    fn invalidation_bodies() {
        let ok = parse_invalidation(br#"{"provider": "apns_voip", "token": "00ff", "reason": "bad_device_token"}"#).unwrap();
        assert_eq!(ok.reason, InvalidationReason::BadDeviceToken);
        let err = parse_invalidation(br#"{"provider": "gcm", "token": "x", "reason": "INVALID_ARGUMENT"}"#).unwrap_err();
        assert_eq!(
            body_of(err),
            r#"{"code": 50035, "message": "Invalid Form Body", "errors": {"reason": {"_errors": [{"code": "BASE_TYPE_CHOICES", "message": "Value must be one of {'unregistered', 'bad_device_token', 'device_token_not_for_topic', 'sender_id_mismatch', 'manual'}."}]}}}"#
        );
        assert_eq!(validate_token(Provider::Apns, "xyz").unwrap_err(), "APNs tokens must be an even number of hexadecimal digits.");
        assert!(validate_token(Provider::Gcm, "a:b").is_ok());
    }

    /// The old representation, `serde_json::Value`, as the reference for what a body reads as.
    fn reference(body: &[u8]) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ()> {
        if body.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            return Ok(Some(serde_json::Map::new()));
        }
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
            Ok(_) => Ok(None),
            Err(_) => Err(()),
        }
    }

    /// What the rules see of a field: absent/null, a bool, a string, an array of strings and
    /// non-strings, or something else.
    fn seen(value: Option<&Json<'_>>) -> String {
        match value {
            None | Some(Json::Null) => "absent".into(),
            Some(Json::Bool(b)) => format!("bool {b}"),
            Some(Json::Str(s)) => format!("str {s:?}"),
            Some(Json::Array(items)) => format!(
                "array {:?}",
                items.iter().map(|i| match i { Json::Str(s) => Some(s.to_string()), _ => None }).collect::<Vec<_>>()
            ),
            Some(_) => "other".into(),
        }
    }

    fn seen_reference(value: Option<&serde_json::Value>) -> String {
        use serde_json::Value;
        match value {
            None | Some(Value::Null) => "absent".into(),
            Some(Value::Bool(b)) => format!("bool {b}"),
            Some(Value::String(s)) => format!("str {s:?}"),
            Some(Value::Array(items)) => {
                format!("array {:?}", items.iter().map(|i| i.as_str().map(str::to_owned)).collect::<Vec<_>>())
            }
            Some(_) => "other".into(),
        }
    }

    const FIELDS: [&str; 9] = [
        "provider", "token", "voip_provider", "voip_token", "bypass_server_throttling_supported",
        "bundle_id", "push_sync_tokens", "reason", "x",
    ];

    /// Bodies reads the same as through `serde_json::Value`: JSON or not, object or not, and
    /// every field the rules look at.
    fn assert_reads_like_value(body: &[u8]) {
        let ours = object(body);
        match (reference(body), ours) {
            (Err(()), Err(ApiError::InvalidJson)) => {}
            (Ok(None), Err(ApiError::InvalidForm(e))) => assert!(String::from_utf8(e.to_body()).unwrap().contains("DICT_TYPE_CONVERT")),
            (Ok(Some(map)), Ok(obj)) => {
                for field in FIELDS {
                    assert_eq!(seen(obj.get(field)), seen_reference(map.get(field)), "{field} in {}", String::from_utf8_lossy(body));
                }
            }
            (expected, got) => panic!("{}: reference {expected:?}, ours {got:?}", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn bodies_read_like_serde_json_values() {
        let deep_ok = format!(r#"{{"x": {}1{}}}"#, "[".repeat(126), "]".repeat(126));
        let too_deep = format!(r#"{{"x": {}1{}}}"#, "[".repeat(200), "]".repeat(200));
        let cases: &[&[u8]] = &[
            b"", b" \n", b"\x0c{}", b"{}", b"[]", b"null", b"1", b"\"s\"", b"{", b"{} x", b"{}}",
            br#"{"provider": "gcm", "provider": 1}"#, br#"{"provider": 1, "provider": "gcm"}"#,
            br#"{"token": "a\u0062c", "bundle_id": "\ud83d\ude00"}"#, br#"{"token": "\ud800"}"#,
            b"{\"token\": \"\xff\"}", br#"{"x": 1e400}"#, br#"{"x": -1e-400, "token": "t"}"#,
            br#"{"x": 18446744073709551616}"#, br#"{"x": 01}"#, br#"{"x": 1.}"#, br#"{"x": NaN}"#,
            br#"{"push_sync_tokens": ["a", 2, null, ["b"], {"c": "d"}, true, 1.5]}"#,
            br#"{"bypass_server_throttling_supported": false, "voip_token": null}"#,
            br#"{"x": {"y": [1, {"z": "\u0000"}]}}"#, b"{\"x\": \"\t\"}", br#"{"x": "\q"}"#,
            br#"{"$serde_json::private::Number": "1"}"#, b"{\"provider\":\"gcm\"}\n",
            deep_ok.as_bytes(), too_deep.as_bytes(),
        ];
        for body in cases {
            assert_reads_like_value(body);
        }
    }

    #[test]
    fn form_errors_debug_as_their_json() {
        let mut errors = FormErrors::default();
        errors.add(&["token"], "BASE_TYPE_REQUIRED", REQUIRED);
        assert_eq!(
            format!("{errors:?}"),
            r#"FormErrors({"token": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}})"#
        );
    }

    #[test]
    fn error_keys_come_in_json_map_order() {
        // Indices sort as strings ("10" before "2") and before "_errors"; built from a
        // `serde_json::Map`, as the bodies were before.
        let items: Vec<String> = (0..33).map(|i| if i == 2 || i == 10 { "1".into() } else { format!("\"t{i}\"") }).collect();
        let body = format!(r#"{{"provider": "x", "push_sync_tokens": [{}]}}"#, items.join(", "));
        let got = body_of(parse_sync(body.as_bytes()).unwrap_err());
        let error = |code: &str, message: &str| serde_json::json!({"_errors": [{"code": code, "message": message}]});
        let not_string = error("BASE_TYPE_STRING", "Must be a string.");
        let mut tokens = serde_json::Map::new();
        tokens.insert("_errors".into(), serde_json::json!([{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 32 or fewer in length."}]));
        tokens.insert("2".into(), not_string.clone());
        tokens.insert("10".into(), not_string);
        let mut errors = serde_json::Map::new();
        errors.insert("push_sync_tokens".into(), serde_json::Value::Object(tokens));
        errors.insert("token".into(), error("BASE_TYPE_REQUIRED", REQUIRED));
        errors.insert("provider".into(), error("BASE_TYPE_CHOICES", &one_of(Provider::ALL.iter().map(|p| p.as_str()))));
        let errors = String::from_utf8(json::to_vec(&errors)).unwrap();
        assert_eq!(got, format!(r#"{{"code": 50035, "message": "Invalid Form Body", "errors": {errors}}}"#));
        assert!(got.contains(r#""push_sync_tokens": {"10": {"_errors""#), "{got}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let errors = [parse_registration(&body).err(), parse_push_token(&body).err(), parse_sync(&body).err()];
            for err in errors.into_iter().flatten() {
                prop_assert_eq!(err.status(), 400);
            }
        }

        #[test]
        fn json_ish_bodies_read_like_serde_json_values(parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "{", "}", "[", "]", ":", ",", " ", "\"provider\"", "\"token\"", "\"push_sync_tokens\"",
                "\"bypass_server_throttling_supported\"", "\"gcm\"", "\"a\\\"b\"", "\"\\ud800\"", "null",
                "true", "false", "1", "-0.5e3", "1e999", "\"x\"",
            ]),
            0..24,
        )) {
            assert_reads_like_value(parts.concat().as_bytes());
        }

        #[test]
        fn arbitrary_tokens_are_accepted_iff_printable(token in "\\PC{0,64}", provider in 0usize..5) {
            let provider = Provider::ALL[provider];
            let body = serde_json::json!({"provider": provider.as_str(), "token": token}).to_string();
            let ok = parse_push_token(body.as_bytes()).is_ok();
            let printable = !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic());
            let hex = token.len() % 2 == 0 && token.bytes().all(|b| b.is_ascii_hexdigit());
            prop_assert_eq!(ok, printable && (!provider.is_apple() || hex));
        }
    }
}
