//! `openapi.json` against the running component: every documented (path, method, status) is
//! produced for real and its body validated against the documented schema, and every answer the
//! component gives is documented. The contract cannot drift from the code.

mod common;

use common::*;
use push_devices_host::kv::{Faults, MemoryStore};
use push_devices_host::{KvBackend, StoreChoice};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

struct Contract {
    doc: Value,
    covered: BTreeSet<(String, String, String)>,
}

impl Contract {
    fn load() -> Contract {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap();
        Contract { doc: serde_json::from_str(&text).unwrap(), covered: BTreeSet::new() }
    }

    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => self.resolve(self.doc.pointer(r.trim_start_matches('#')).unwrap()),
            None => v,
        }
    }

    /// Checks one real answer against the contract of `template` `method`.
    fn check(&mut self, template: &str, method: &str, reply: &Reply) {
        let status = reply.status.to_string();
        let ops = &self.doc["paths"][template];
        assert!(ops.is_object(), "{template} is not documented");
        // 405 comes from methods the path does not have: it is documented on every operation.
        let methods: Vec<String> = if reply.status == 405 {
            ops.as_object().unwrap().keys().filter(|k| *k != "parameters").cloned().collect()
        } else {
            vec![method.to_lowercase()]
        };
        for m in methods {
            let response = ops[&m]["responses"][&status].clone();
            assert!(!response.is_null(), "{method} {template} answered {status}, which is undocumented: {}", reply.body);
            let response = self.resolve(&response).clone();
            match response.pointer("/content/application~1json/schema") {
                None => assert_eq!(reply.body, "", "{m} {template} {status} documents no body"),
                Some(_) => {
                    let pointer = format!(
                        "/paths/{}/{m}/responses/{status}",
                        template.replace('~', "~0").replace('/', "~1")
                    );
                    let mut root = self.doc.clone();
                    root["$ref"] = Value::String(self.schema_ref(&pointer));
                    let validator = jsonschema::validator_for(&root).unwrap();
                    let body: Value = reply.json();
                    let errors: Vec<String> = validator.iter_errors(&body).map(|e| e.to_string()).collect();
                    assert!(errors.is_empty(), "{m} {template} {status}: {} violates the contract: {errors:?}", reply.body);
                }
            }
            if let Some(headers) = response.get("headers").and_then(Value::as_object) {
                if reply.status == 429 || reply.header("x-ratelimit-limit").is_some() {
                    for name in headers.keys() {
                        assert!(reply.header(&name.to_lowercase()).is_some(), "{m} {template} {status} lacks {name}");
                    }
                }
            }
            self.covered.insert((template.to_owned(), m, status.clone()));
        }
    }

    /// A `$ref` to the schema of the response at `pointer`, through `components/responses`
    /// when the response is a reference; braces of path templates are URI-escaped.
    fn schema_ref(&self, pointer: &str) -> String {
        let response = self.doc.pointer(pointer).unwrap();
        let base = match response.get("$ref").and_then(Value::as_str) {
            Some(r) => r.to_owned(),
            None => format!("#{pointer}"),
        };
        format!("{base}/content/application~1json/schema").replace('{', "%7B").replace('}', "%7D")
    }

    fn assert_all_covered(&self) {
        let mut missing = Vec::new();
        for (path, ops) in self.doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                for status in op["responses"].as_object().unwrap().keys() {
                    if !self.covered.contains(&(path.clone(), method.clone(), status.clone())) {
                        missing.push(format!("{method} {path} {status}"));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "documented but never produced: {missing:?}");
    }
}

const DEVICES: &str = "/users/@me/devices";
const SYNC_TOKEN: &str = "/users/@me/devices/sync-token";
const SYNC: &str = "/users/@me/devices/sync";
const LIST: &str = "/internal/users/{user_id}/devices";
const INVALIDATE: &str = "/internal/devices/invalidate";

fn variables(extra: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    let mut vars = default_variables();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    vars
}

#[test]
fn every_documented_response_is_real_and_valid() {
    let mut c = Contract::load();
    let s = Server::memory();
    let reg = r#"{"provider": "apns", "token": "aabb", "voip_provider": "apns_voip", "voip_token": "ccdd"}"#;
    let big = format!(r#"{{"pad": "{}"}}"#, "x".repeat(17_000));

    // Public routes: successes, then every error.
    c.check(DEVICES, "POST", &s.call("POST", DEVICES, Some(1), reg));
    c.check(DEVICES, "POST", &s.call("POST", DEVICES, Some(1), r#"{"provider": 1}"#));
    c.check(DEVICES, "POST", &s.call("POST", DEVICES, Some(1), "{"));
    c.check(DEVICES, "POST", &s.call("POST", DEVICES, None, reg));
    c.check(DEVICES, "POST", &s.call("GET", DEVICES, Some(1), ""));
    c.check(DEVICES, "POST", &s.call("POST", DEVICES, Some(1), &big));
    c.check(DEVICES, "DELETE", &s.call("DELETE", DEVICES, Some(1), r#"{"provider": "gcm", "token": "x"}"#));
    c.check(DEVICES, "DELETE", &s.call("DELETE", DEVICES, Some(1), r#"{"token": ""}"#));
    c.check(DEVICES, "DELETE", &s.call("DELETE", DEVICES, Some(1), "nope"));
    c.check(DEVICES, "DELETE", &s.call("DELETE", DEVICES, None, "{}"));
    c.check(DEVICES, "DELETE", &s.call("DELETE", DEVICES, Some(1), &big));
    let token = s.call("GET", SYNC_TOKEN, Some(2), "");
    c.check(SYNC_TOKEN, "GET", &token);
    c.check(SYNC_TOKEN, "GET", &s.call("GET", SYNC_TOKEN, None, ""));
    c.check(SYNC_TOKEN, "GET", &s.call("DELETE", SYNC_TOKEN, Some(2), ""));
    let sync = format!(
        r#"{{"provider": "apns", "token": "aabb", "push_sync_tokens": ["{}", "bogus"]}}"#,
        token.json()["token"].as_str().unwrap()
    );
    c.check(SYNC, "PUT", &s.call("PUT", SYNC, Some(1), &sync));
    c.check(SYNC, "PUT", &s.call("PUT", SYNC, Some(1), r#"{"provider": "gcm", "token": "t", "push_sync_tokens": [1]}"#));
    c.check(SYNC, "PUT", &s.call("PUT", SYNC, Some(1), "]"));
    c.check(SYNC, "PUT", &s.call("PUT", SYNC, None, &sync));
    c.check(SYNC, "PUT", &s.call("POST", SYNC, Some(1), &sync));
    c.check(SYNC, "PUT", &s.call("PUT", SYNC, Some(1), &big));

    // Internal routes.
    c.check(LIST, "GET", &s.admin("GET", "/internal/users/2/devices", ""));
    c.check(LIST, "GET", &s.send("GET", "/internal/users/2/devices", &[], b""));
    c.check(LIST, "GET", &s.admin("POST", "/internal/users/2/devices", ""));
    c.check(INVALIDATE, "POST", &s.admin("POST", INVALIDATE, r#"{"provider": "apns_voip", "token": "ccdd", "reason": "unregistered"}"#));
    c.check(INVALIDATE, "POST", &s.admin("POST", INVALIDATE, r#"{"provider": "gcm", "token": "x", "reason": "INVALID_ARGUMENT"}"#));
    c.check(INVALIDATE, "POST", &s.admin("POST", INVALIDATE, "[1,"));
    c.check(INVALIDATE, "POST", &s.send("POST", INVALIDATE, &[("x-admin-key", "wrong")], b"{}"));
    c.check(INVALIDATE, "POST", &s.admin("GET", INVALIDATE, ""));
    c.check(INVALIDATE, "POST", &s.admin("POST", INVALIDATE, &big));
    let mut off = default_variables();
    off.remove("admin_key");
    let off = Server::start(off, StoreChoice::Memory);
    c.check(LIST, "GET", &off.admin("GET", "/internal/users/2/devices", ""));
    c.check(INVALIDATE, "POST", &off.admin("POST", INVALIDATE, "{}"));

    // 429: a limit of one write per window.
    let limited = Server::start(variables(&[("rate_limit_writes", "1")]), StoreChoice::Memory);
    for (path, method, body) in [(DEVICES, "POST", reg), (DEVICES, "DELETE", reg), (SYNC, "PUT", sync.as_str())] {
        let user = match method { "POST" => 10, "DELETE" => 11, _ => 12 };
        limited.call(method, path, Some(user), body);
        let r = limited.call(method, path, Some(user), body);
        assert_eq!(r.status, 429);
        c.check(path, method, &r);
    }

    // 500: a variable the component cannot use (it names it). Routes read only the variables
    // they need: every public route reads the auth ones, the internal ones the registry's.
    let broken = Server::start(
        variables(&[("auth_token_ttl_seconds", "lots"), ("max_devices_per_user", "lots")]),
        StoreChoice::Memory,
    );
    for (path, method, body) in [(DEVICES, "POST", reg), (DEVICES, "DELETE", reg), (SYNC_TOKEN, "GET", ""), (SYNC, "PUT", sync.as_str())] {
        let r = broken.call(method, path, Some(1), body);
        assert_eq!(r.status, 500);
        assert!(r.body.contains("auth_token_ttl_seconds"), "{}", r.body);
        c.check(path, method, &r);
    }
    let r = broken.admin("GET", "/internal/users/2/devices", "");
    assert_eq!(r.status, 500);
    assert!(r.body.contains("max_devices_per_user"), "{}", r.body);
    c.check(LIST, "GET", &broken.admin("GET", "/internal/users/2/devices", ""));
    c.check(INVALIDATE, "POST", &broken.admin("POST", INVALIDATE, r#"{"provider": "gcm", "token": "x", "reason": "manual"}"#));

    // 503: a store that fails every call.
    let faults = Arc::new(Faults::new(MemoryStore::new(), 1.0, 1));
    let backend: Arc<dyn KvBackend> = faults.clone();
    let down = Server::start(default_variables(), StoreChoice::Custom(backend));
    for (path, method, body) in [(DEVICES, "POST", reg), (DEVICES, "DELETE", reg), (SYNC, "PUT", sync.as_str())] {
        let r = down.call(method, path, Some(1), body);
        assert_eq!(r.status, 503);
        c.check(path, method, &r);
    }
    c.check(LIST, "GET", &down.admin("GET", "/internal/users/2/devices", ""));
    c.check(INVALIDATE, "POST", &down.admin("POST", INVALIDATE, r#"{"provider": "gcm", "token": "x", "reason": "manual"}"#));

    c.assert_all_covered();
}
