//! Every route and every documented body, byte for byte, through the real component over HTTP.

mod common;

use common::*;
use push_devices_host::StoreChoice;

const UNAUTHORIZED: &str = r#"{"message": "401: Unauthorized", "code": 0}"#;
const NOT_FOUND: &str = r#"{"message": "404: Not Found", "code": 0}"#;
const NOT_ALLOWED: &str = r#"{"message": "405: Method Not Allowed", "code": 0}"#;
const INVALID_JSON: &str = r#"{"code": 50109, "message": "The request body contains invalid JSON."}"#;

fn assert_reply(reply: &Reply, status: u16, body: &str) {
    assert_eq!((reply.status, reply.body.as_str()), (status, body));
}

#[test]
fn register_delete_and_list() {
    let s = Server::memory();
    let r = s.call(
        "POST",
        "/users/@me/devices",
        Some(10),
        r#"{"provider": "apns", "token": "0A1b2C3d", "voip_provider": "apns_voip", "voip_token": "ffee",
            "bypass_server_throttling_supported": true, "bundle_id": "com.hammerandchisel.discord"}"#,
    );
    assert_reply(&r, 204, "");
    assert_eq!(r.header("content-type"), None);
    assert_reply(&s.register(10, "gcm", "fcm:APA91b-x_y"), 204, "");
    // Re-registering updates, never duplicates.
    assert_reply(&s.register(10, "gcm", "fcm:APA91b-x_y"), 204, "");
    let list = s.admin("GET", "/internal/users/10/devices", "");
    assert_eq!(list.status, 200);
    assert_eq!(list.header("content-type"), Some("application/json"));
    let devices = list.json()["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 2);
    let apns = devices.iter().find(|d| d["provider"] == "apns").unwrap();
    assert_eq!(apns["token"], "0A1b2C3d");
    assert_eq!(apns["voip_provider"], "apns_voip");
    assert_eq!(apns["voip_token"], "ffee");
    assert_eq!(apns["bypass_server_throttling_supported"], true);
    assert_eq!(apns["bundle_id"], "com.hammerandchisel.discord");
    assert!(apns["last_registered_at"].as_str().unwrap().ends_with('Z'));
    let gcm = devices.iter().find(|d| d["provider"] == "gcm").unwrap();
    assert_eq!(gcm["bundle_id"], "com.discord");
    assert_eq!(gcm["voip_token"], serde_json::Value::Null);

    let r = s.call("DELETE", "/users/@me/devices", Some(10), r#"{"provider": "gcm", "token": "fcm:APA91b-x_y"}"#);
    assert_reply(&r, 204, "");
    // Deleting what the caller does not have is fine too.
    let r = s.call("DELETE", "/users/@me/devices", Some(10), r#"{"provider": "gcm", "token": "never"}"#);
    assert_reply(&r, 204, "");
    assert_eq!(s.tokens_of(10), ["0A1b2C3d"]);
    assert_store_invariants(&dump(&*s.backend()), 20);
}

#[test]
fn percent_encoded_me_is_me() {
    let s = Server::memory();
    let r = s.call("POST", "/users/%40me/devices", Some(11), r#"{"provider": "gcm", "token": "t1"}"#);
    assert_reply(&r, 204, "");
    assert_eq!(s.tokens_of(11), ["t1"]);
}

#[test]
fn sync_token_is_ours_and_verifiable() {
    let s = Server::memory();
    let r = s.call("GET", "/users/@me/devices/sync-token", Some(852892297661906993), "");
    assert_eq!(r.status, 200);
    let token = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(r.body, format!(r#"{{"token": "{token}"}}"#));
    assert!(token.starts_with("ODUyODkyMjk3NjYxOTA2OTkz."));
    let keys = push_devices::token::Keyring::parse(SYNC_SECRET).unwrap();
    let user = keys.verify(push_devices::token::Purpose::Sync, &token, now_secs(), 604_800);
    assert_eq!(user, Ok(852892297661906993));
}

#[test]
fn three_account_sync_story() {
    let s = Server::memory();
    let (a, b, c) = (1001, 1002, 1003);
    let token_of = |user| {
        let r = s.call("GET", "/users/@me/devices/sync-token", Some(user), "");
        r.json()["token"].as_str().unwrap().to_owned()
    };
    let (tb, tc) = (token_of(b), token_of(c));
    // C logs in on the phone first; then A syncs the phone for A, B and C.
    assert_reply(&s.register(c, "gcm", "phone"), 204, "");
    let body = format!(r#"{{"provider": "gcm", "token": "phone", "push_sync_tokens": ["{tb}", "{tc}"]}}"#);
    let r = s.call("PUT", "/users/@me/devices/sync", Some(a), &body);
    assert_reply(&r, 200, r#"{"invalid_push_sync_tokens": []}"#);
    for user in [a, b, c] {
        assert_eq!(s.tokens_of(user), ["phone"], "user {user}");
    }
    // C logs out on the phone: the next sync names only B, plus an expired and a forged token.
    let expired = sync_token_at(c, now_secs() - 604_801);
    let forged = {
        let mut t = tb.clone();
        let last = t.pop().unwrap();
        t.push(if last == 'A' { 'B' } else { 'A' });
        t
    };
    let example = "ODUyODkyMjk3NjYxOTA2OTkz.ZfoufA.rHvCtpfHjr9kdRab1ZTl83PRhhZ";
    let body = format!(
        r#"{{"provider": "gcm", "token": "phone", "push_sync_tokens": ["{expired}", "{tb}", "{forged}", "{example}"]}}"#
    );
    let r = s.call("PUT", "/users/@me/devices/sync", Some(a), &body);
    assert_reply(&r, 200, &format!(r#"{{"invalid_push_sync_tokens": ["{expired}", "{forged}", "{example}"]}}"#));
    assert_eq!(s.tokens_of(a), ["phone"]);
    assert_eq!(s.tokens_of(b), ["phone"]);
    assert!(s.tokens_of(c).is_empty(), "C logged out and must stop getting pushes");
    assert_store_invariants(&dump(&*s.backend()), 20);
}

#[test]
fn auth_failures_are_one_401() {
    let s = Server::memory();
    let body = r#"{"provider": "gcm", "token": "t"}"#;
    let sync_as_auth = sync_token_at(5, now_secs());
    for headers in [
        vec![],
        vec![("authorization", "Bearer")],
        vec![("authorization", "Bearer not.a.token")],
        vec![("authorization", sync_as_auth.as_str())],
        vec![("x-gateway-key", GATEWAY_KEY), ("x-user-id", "5")],
    ] {
        let r = s.send("POST", "/users/@me/devices", &headers, body.as_bytes());
        assert_reply(&r, 401, UNAUTHORIZED);
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let expired = push_devices::token::Keyring::parse(AUTH_SECRET)
        .unwrap()
        .mint(push_devices::token::Purpose::Auth, 5, now_secs() - 86_401);
    let r = s.send("GET", "/users/@me/devices/sync-token", &[("authorization", &expired)], b"");
    assert_reply(&r, 401, UNAUTHORIZED);
}

#[test]
fn gateway_auth_mode() {
    let mut vars = default_variables();
    vars.insert("auth_mode".into(), "gateway".into());
    vars.insert("gateway_key".into(), GATEWAY_KEY.into());
    let s = Server::start(vars, StoreChoice::Memory);
    let body = br#"{"provider": "gcm", "token": "gw-token"}"#;
    let r = s.send("POST", "/users/@me/devices", &[("x-gateway-key", GATEWAY_KEY), ("x-user-id", "80351110224678912")], body);
    assert_reply(&r, 204, "");
    assert_eq!(s.tokens_of(80351110224678912), ["gw-token"]);
    let wrong = s.send("POST", "/users/@me/devices", &[("x-gateway-key", "nope"), ("x-user-id", "1")], body);
    assert_reply(&wrong, 401, UNAUTHORIZED);
    let bad_id = s.send("POST", "/users/@me/devices", &[("x-gateway-key", GATEWAY_KEY), ("x-user-id", "-1")], body);
    assert_reply(&bad_id, 401, UNAUTHORIZED);
    // A user token means nothing in gateway mode.
    let token = s.call("POST", "/users/@me/devices", Some(1), std::str::from_utf8(body).unwrap());
    assert_reply(&token, 401, UNAUTHORIZED);
}

#[test]
fn routing_errors() {
    let s = Server::memory();
    assert_reply(&s.call("GET", "/users/@me/devices", Some(1), ""), 405, NOT_ALLOWED);
    assert_reply(&s.call("PATCH", "/users/@me/devices", Some(1), ""), 405, NOT_ALLOWED);
    assert_reply(&s.call("POST", "/users/@me/devices/sync-token", Some(1), ""), 405, NOT_ALLOWED);
    assert_reply(&s.call("GET", "/users/@me/devices/sync", Some(1), ""), 405, NOT_ALLOWED);
    assert_reply(&s.call("GET", "/users/@me/nothing", Some(1), ""), 404, NOT_FOUND);
    assert_reply(&s.call("POST", "/users/123/devices", Some(1), ""), 404, NOT_FOUND);
    assert_reply(&s.call("GET", "/", None, ""), 404, NOT_FOUND);
}

#[test]
fn body_errors() {
    let s = Server::memory();
    let post = |body: &str| s.call("POST", "/users/@me/devices", Some(2), body);
    assert_reply(&post("{\"provider\": \"gcm\","), 400, INVALID_JSON);
    assert_reply(&post("not json"), 400, INVALID_JSON);
    assert_reply(
        &post(""),
        400,
        r#"{"code": 50035, "message": "Invalid Form Body", "errors": {"provider": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}, "token": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}}}"#,
    );
    assert_reply(
        &post(r#"{"provider": "sms", "token": 5, "bypass_server_throttling_supported": 1}"#),
        400,
        r#"{"code": 50035, "message": "Invalid Form Body", "errors": {"bypass_server_throttling_supported": {"_errors": [{"code": "BASE_TYPE_BOOLEAN", "message": "Must be either true or false."}]}, "provider": {"_errors": [{"code": "BASE_TYPE_CHOICES", "message": "Value must be one of {'gcm', 'apns', 'apns_internal', 'apns_voip', 'apns_internal_voip'}."}]}, "token": {"_errors": [{"code": "BASE_TYPE_STRING", "message": "Must be a string."}]}}}"#,
    );
    let r = s.call(
        "PUT",
        "/users/@me/devices/sync",
        Some(2),
        r#"{"provider": "gcm", "token": "t", "push_sync_tokens": ["ok", {"x": 1}]}"#,
    );
    assert_reply(
        &r,
        400,
        r#"{"code": 50035, "message": "Invalid Form Body", "errors": {"push_sync_tokens": {"1": {"_errors": [{"code": "BASE_TYPE_STRING", "message": "Must be a string."}]}}}}"#,
    );
    let huge = format!(r#"{{"provider": "gcm", "token": "t", "pad": "{}"}}"#, "x".repeat(17 * 1024));
    assert_reply(&post(&huge), 413, r#"{"message": "Request entity too large", "code": 40005}"#);
    assert!(dump(&*s.backend()).keys().all(|k| !k.starts_with("pd:u:")), "bad requests store nothing");
}

#[test]
fn missing_secrets_name_their_variable() {
    let s = Server::start(Default::default(), StoreChoice::Memory);
    let r = s.send("GET", "/users/@me/devices/sync-token", &[("authorization", "x")], b"");
    assert_reply(
        &r,
        500,
        r#"{"message": "500: Server misconfigured: variable `auth_token_secret` is not set", "code": 0}"#,
    );
    let mut vars = default_variables();
    vars.insert("sync_token_secret".into(), "short".into());
    let s = Server::start(vars, StoreChoice::Memory);
    let r = s.call("GET", "/users/@me/devices/sync-token", Some(3), "");
    assert_reply(
        &r,
        500,
        r#"{"message": "500: Server misconfigured: variable `sync_token_secret` holds a key shorter than 32 bytes", "code": 0}"#,
    );
    assert!(s.output.contents().contains("sync_token_secret"), "the problem is logged too");
    // Routes that do not need the broken secret keep working.
    assert_reply(&s.register(3, "gcm", "still-works"), 204, "");
}

#[test]
fn internal_api_is_off_without_admin_key_and_guarded_with_it() {
    let mut vars = default_variables();
    vars.remove("admin_key");
    let off = Server::start(vars, StoreChoice::Memory);
    for (method, path) in [("GET", "/internal/users/1/devices"), ("POST", "/internal/devices/invalidate"), ("PUT", "/internal/devices/invalidate")] {
        assert_reply(&off.admin(method, path, "{}"), 404, NOT_FOUND);
    }
    let on = Server::memory();
    let r = on.send("GET", "/internal/users/1/devices", &[("x-admin-key", "wrong-wrong-wrong-wrong-wrong-wrong")], b"");
    assert_reply(&r, 401, UNAUTHORIZED);
    assert_reply(&on.send("GET", "/internal/users/1/devices", &[], b""), 401, UNAUTHORIZED);
    assert_reply(&on.admin("GET", "/internal/users/1/devices", ""), 200, r#"{"devices": []}"#);
    assert_reply(&on.admin("DELETE", "/internal/users/1/devices", ""), 405, NOT_ALLOWED);
    let r = on.admin("POST", "/internal/devices/invalidate", r#"{"provider": "gcm", "token": "x"}"#);
    assert_reply(
        &r,
        400,
        r#"{"code": 50035, "message": "Invalid Form Body", "errors": {"reason": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}}}"#,
    );
}

#[test]
fn invalidation_reaches_every_account_and_voip_alone() {
    let s = Server::memory();
    let body = r#"{"provider": "apns", "token": "aabb", "voip_provider": "apns_voip", "voip_token": "ccdd"}"#;
    assert_reply(&s.call("POST", "/users/@me/devices", Some(1), body), 204, "");
    let tokens: Vec<String> = [2, 3]
        .iter()
        .map(|u| s.call("GET", "/users/@me/devices/sync-token", Some(*u), "").json()["token"].as_str().unwrap().to_owned())
        .collect();
    let sync = format!(r#"{{"provider": "apns", "token": "aabb", "push_sync_tokens": ["{}", "{}"]}}"#, tokens[0], tokens[1]);
    assert_reply(&s.call("PUT", "/users/@me/devices/sync", Some(1), &sync), 200, r#"{"invalid_push_sync_tokens": []}"#);
    for user in [1, 2, 3] {
        let d = s.admin("GET", &format!("/internal/users/{user}/devices"), "").json();
        assert_eq!(d["devices"][0]["voip_token"], "ccdd", "the caller's VoIP token rides along to {user}");
    }
    let r = s.admin("POST", "/internal/devices/invalidate", r#"{"provider": "apns_voip", "token": "ccdd", "reason": "bad_device_token"}"#);
    assert_reply(&r, 204, "");
    for user in [1, 2, 3] {
        let d = s.admin("GET", &format!("/internal/users/{user}/devices"), "").json();
        assert_eq!(d["devices"][0]["token"], "aabb", "the regular token stays for {user}");
        assert_eq!(d["devices"][0]["voip_token"], serde_json::Value::Null);
    }
    let r = s.admin("POST", "/internal/devices/invalidate", r#"{"provider": "apns", "token": "aabb", "reason": "unregistered"}"#);
    assert_reply(&r, 204, "");
    for user in [1, 2, 3] {
        assert!(s.tokens_of(user).is_empty());
    }
    let log = s.output.contents();
    assert!(log.contains("invalidated apns:") && !log.contains("aabb"), "logged without the token: {log}");
    assert_store_invariants(&dump(&*s.backend()), 20);
}

#[test]
fn eleventh_write_is_rate_limited_then_the_window_reopens() {
    let mut vars = default_variables();
    vars.insert("rate_limit_window_seconds".into(), "2".into());
    let s = Server::start(vars, StoreChoice::Memory);
    for i in 0..10 {
        let r = s.register(7, "gcm", &format!("t{i}"));
        assert_eq!(r.status, 204);
        assert_eq!(r.header("x-ratelimit-limit"), Some("10"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some((9 - i).to_string().as_str()));
        assert_eq!(r.header("x-ratelimit-bucket"), Some("devices-write"));
    }
    let r = s.register(7, "gcm", "t10");
    assert_eq!(r.status, 429);
    let body = r.json();
    assert_eq!(body["message"], "You are being rate limited.");
    assert_eq!(body["global"], false);
    let retry_after = body["retry_after"].as_f64().unwrap();
    assert!(retry_after > 0.0 && retry_after <= 2.0, "{retry_after}");
    assert_eq!(
        r.body,
        format!(r#"{{"message": "You are being rate limited.", "retry_after": {}, "global": false}}"#, body["retry_after"])
    );
    assert_eq!(r.header("retry-after"), Some(retry_after.ceil().to_string().as_str()));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-ratelimit-scope"), Some("user"));
    assert!(r.header("x-ratelimit-reset-after").is_some() && r.header("x-ratelimit-reset").is_some());
    assert!(!s.tokens_of(7).contains(&"t10".to_owned()), "a refused write stores nothing");
    // Another user is not limited; reads are not limited.
    assert_eq!(s.register(8, "gcm", "other").status, 204);
    assert_eq!(s.call("GET", "/users/@me/devices/sync-token", Some(7), "").status, 200);
    std::thread::sleep(std::time::Duration::from_secs_f64(retry_after + 0.05));
    assert_eq!(s.register(7, "gcm", "t10").status, 204);
}
