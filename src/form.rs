//! Request bodies: parsing and validation, every bad field reported at once in Discord's
//! "Invalid Form Body" shape (`{"code": 50035, "message": ..., "errors": {field: {"_errors": [...]}}}`).

use crate::device::{DEFAULT_BUNDLE_ID, InvalidationReason, Provider, VoipToken};
use crate::error::ApiError;
use crate::json;
use serde::Serialize;
use serde_json::{Map, Value};

pub const MAX_TOKEN_LEN: usize = 4096;
pub const MAX_BUNDLE_ID_LEN: usize = 255;
pub const MAX_SYNC_TOKENS: usize = 32;

/// Field errors keyed by path; array entries are keyed by their index as a string.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FormErrors {
    root: Map<String, Value>,
}

#[derive(Serialize)]
struct FormBody<'a> {
    code: u32,
    message: &'a str,
    errors: &'a Map<String, Value>,
}

impl FormErrors {
    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    /// Adds an error at `path` (empty path: the body itself).
    pub fn add(&mut self, path: &[&str], code: &str, message: &str) {
        let mut node = &mut self.root;
        for segment in path {
            let child = node
                .entry((*segment).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(map) = child else { return };
            node = map;
        }
        let list = node
            .entry("_errors".to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(serde_json::json!({"code": code, "message": message}));
        }
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
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
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
        None | Some(Value::Null) => {
            errors.add(&["push_sync_tokens"], "BASE_TYPE_REQUIRED", REQUIRED);
        }
        Some(Value::Array(items)) => {
            if items.len() > MAX_SYNC_TOKENS {
                errors.add(
                    &["push_sync_tokens"],
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 32 or fewer in length.",
                );
            }
            for (i, item) in items.iter().enumerate().take(MAX_SYNC_TOKENS) {
                match item {
                    Value::String(s) => push_sync_tokens.push(s.clone()),
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
            let names: Vec<String> =
                InvalidationReason::ALL.iter().map(|r| format!("'{}'", r.as_str())).collect();
            let message = format!("Value must be one of {{{}}}.", names.join(", "));
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
        .get("token")
        .and_then(|v| v.pointer("/_errors/0/message"))
        .and_then(Value::as_str)
        .unwrap_or("invalid token");
    Err(message.to_owned())
}

const REQUIRED: &str = "This field is required";
const NOT_STRING: &str = "Must be a string.";

/// An empty body counts as `{}`, so a bare request is told which fields it lacks.
fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    // JSON's own whitespace only: a form feed is not blank to a JSON parser.
    if body.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => {
            let mut errors = FormErrors::default();
            errors.add(&[], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType");
            Err(ApiError::InvalidForm(errors))
        }
        Err(_) => Err(ApiError::InvalidJson),
    }
}

fn present(obj: &Map<String, Value>, field: &str) -> bool {
    !matches!(obj.get(field), None | Some(Value::Null))
}

/// A string field; `null` counts as absent.
fn string<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    required: bool,
    errors: &mut FormErrors,
) -> Option<&'a str> {
    match obj.get(field) {
        None | Some(Value::Null) => {
            if required {
                errors.add(&[field], "BASE_TYPE_REQUIRED", REQUIRED);
            }
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.add(&[field], "BASE_TYPE_STRING", NOT_STRING);
            None
        }
    }
}

fn choice(
    obj: &Map<String, Value>,
    field: &str,
    allowed: &[Provider],
    required: bool,
    errors: &mut FormErrors,
) -> Option<Provider> {
    let value = string(obj, field, required, errors)?;
    match Provider::parse(value).filter(|p| allowed.contains(p)) {
        Some(p) => Some(p),
        None => {
            let names: Vec<String> = allowed.iter().map(|p| format!("'{}'", p.as_str())).collect();
            let message = format!("Value must be one of {{{}}}.", names.join(", "));
            errors.add(&[field], "BASE_TYPE_CHOICES", &message);
            None
        }
    }
}

fn push_token(
    obj: &Map<String, Value>,
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
        assert_eq!(body_of(parse_push_token(&[0xff, 0xfe]).unwrap_err()).contains("50109"), true);
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

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            for result in [parse_registration(&body).err(), parse_push_token(&body).err(), parse_sync(&body).err()] {
                if let Some(err) = result {
                    prop_assert_eq!(err.status(), 400);
                }
            }
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
