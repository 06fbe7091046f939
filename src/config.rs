//! The component's settings, read from Spin variables on each request (Spin may change them
//! between requests, and an instance serves one request).

use crate::error::ApiError;
use crate::ratelimit::Policy;
use crate::registry::Limits;
use crate::token::{Keyring, KeyringError};

/// Every variable the component reads, with its default ("" means none). `spin.toml` declares
/// the same names and defaults; a test keeps the two in step.
pub const VARIABLES: &[(&str, &str)] = &[
    ("auth_mode", "token"),
    ("auth_token_secret", ""),
    ("auth_token_ttl_seconds", "86400"),
    ("gateway_key", ""),
    ("sync_token_secret", ""),
    ("sync_token_ttl_seconds", "604800"),
    ("kv_store", "default"),
    ("max_devices_per_user", "20"),
    ("device_ttl_days", "270"),
    ("admin_key", ""),
    ("rate_limit_writes", "10"),
    ("rate_limit_window_seconds", "60"),
];

#[derive(Debug, Clone)]
pub enum AuthMode {
    /// `Authorization: [Bearer ]<user token>` signed with `auth_token_secret`.
    Token { keys: Keyring, lifetime_secs: u64 },
    /// `x-user-id` vouched for by `x-gateway-key` == `gateway_key`.
    Gateway { key: String },
}

/// The variables of one request, read on demand: each read is a host call, so a route reads
/// only what it uses (sync-token 4 of the 12, a device write 8), and a missing or bad variable
/// fails only the routes that need it. Unset or blank values take the defaults above.
pub struct Variables<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Variables<F> {
    pub fn new(lookup: F) -> Self {
        Variables { lookup }
    }

    fn get(&self, name: &'static str) -> String {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .or_else(|| VARIABLES.iter().find(|(n, _)| *n == name).map(|(_, d)| (*d).to_owned()))
            .unwrap_or_default()
    }

    fn number(&self, name: &'static str, min: u64) -> Result<u64, ApiError> {
        self.get(name).parse::<u64>().ok().filter(|n| *n >= min).ok_or(ApiError::Config {
            variable: name,
            problem: if min == 0 { "must be a whole number" } else { "must be a whole number of at least 1" },
        })
    }

    fn keyring(&self, name: &'static str) -> Result<Keyring, ApiError> {
        Keyring::parse(&self.get(name)).map_err(|e| ApiError::Config {
            variable: name,
            problem: match e {
                KeyringError::Missing => "is not set",
                KeyringError::TooShort => "holds a key shorter than 32 bytes",
            },
        })
    }

    /// A key compared as a whole (`gateway_key`, `admin_key`); `None` when unset.
    fn shared_key(&self, name: &'static str) -> Result<Option<String>, ApiError> {
        let key = self.get(name);
        match key.len() {
            0 => Ok(None),
            1..32 => Err(ApiError::Config { variable: name, problem: "is shorter than 32 bytes" }),
            _ => Ok(Some(key)),
        }
    }

    /// How callers of the public routes prove who they are.
    pub fn auth(&self) -> Result<AuthMode, ApiError> {
        match self.get("auth_mode").as_str() {
            "token" => Ok(AuthMode::Token {
                keys: self.keyring("auth_token_secret")?,
                lifetime_secs: self.number("auth_token_ttl_seconds", 1)?,
            }),
            "gateway" => match self.shared_key("gateway_key")? {
                Some(key) => Ok(AuthMode::Gateway { key }),
                None => Err(ApiError::Config { variable: "gateway_key", problem: "is not set" }),
            },
            _ => Err(ApiError::Config { variable: "auth_mode", problem: "must be `token` or `gateway`" }),
        }
    }

    pub fn sync_keys(&self) -> Result<Keyring, ApiError> {
        self.keyring("sync_token_secret")
    }

    pub fn sync_lifetime_secs(&self) -> Result<u64, ApiError> {
        self.number("sync_token_ttl_seconds", 1)
    }

    /// The key-value store's label.
    pub fn store_label(&self) -> String {
        self.get("kv_store")
    }

    pub fn limits(&self) -> Result<Limits, ApiError> {
        let max_devices = self.number("max_devices_per_user", 1)?;
        let ttl_days = self.number("device_ttl_days", 1)?;
        Ok(Limits {
            max_devices: usize::try_from(max_devices).unwrap_or(usize::MAX),
            device_ttl_ms: ttl_days.saturating_mul(86_400_000),
        })
    }

    /// Writes per user and window across the write routes; the window is not read when
    /// limiting is off.
    pub fn rate_limit(&self) -> Result<Policy, ApiError> {
        let limit = u32::try_from(self.number("rate_limit_writes", 0)?).unwrap_or(u32::MAX);
        let window_ms = match limit {
            0 => 0,
            _ => self.number("rate_limit_window_seconds", 1)?.saturating_mul(1000),
        };
        Ok(Policy { limit, window_ms })
    }

    /// `None` when `admin_key` is unset: the internal API is off and answers 404.
    pub fn admin_key(&self) -> Result<Option<String>, ApiError> {
        self.shared_key("admin_key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> Variables<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Variables::new(move |name| map.get(name).cloned())
    }

    fn problem<T: std::fmt::Debug>(r: Result<T, ApiError>) -> (&'static str, &'static str) {
        match r {
            Err(ApiError::Config { variable, problem }) => (variable, problem),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let v = vars(&[]);
        assert_eq!(v.store_label(), "default");
        assert_eq!(v.limits().unwrap(), Limits::default());
        assert_eq!(v.rate_limit().unwrap(), Policy { limit: 10, window_ms: 60_000 });
        assert_eq!(v.sync_lifetime_secs().unwrap(), 604_800);
        assert_eq!(problem(v.sync_keys()), ("sync_token_secret", "is not set"));
        assert_eq!(problem(v.auth()), ("auth_token_secret", "is not set"));
        assert_eq!(v.admin_key().unwrap(), None);
        let key = "k".repeat(32);
        match vars(&[("auth_token_secret", &key)]).auth().unwrap() {
            AuthMode::Token { lifetime_secs, .. } => assert_eq!(lifetime_secs, 86_400),
            AuthMode::Gateway { .. } => panic!("token mode is the default"),
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = vars(&[("max_devices_per_user", "0")]).limits().unwrap_err();
        let body = String::from_utf8(err.into_response().body).unwrap();
        assert!(body.contains("max_devices_per_user"), "{body}");
        assert_eq!(problem(vars(&[("auth_mode", "magic")]).auth()).0, "auth_mode");
        let short = vars(&[("auth_mode", "gateway"), ("gateway_key", "short")]);
        assert_eq!(problem(short.auth()), ("gateway_key", "is shorter than 32 bytes"));
        assert_eq!(problem(vars(&[("auth_mode", "gateway")]).auth()), ("gateway_key", "is not set"));
        let weak = vars(&[("sync_token_secret", "too-short")]);
        assert_eq!(problem(weak.sync_keys()), ("sync_token_secret", "holds a key shorter than 32 bytes"));
        assert_eq!(problem(vars(&[("admin_key", "short")]).admin_key()).0, "admin_key");
        assert_eq!(problem(vars(&[("rate_limit_window_seconds", "0")]).rate_limit()).0, "rate_limit_window_seconds");
    }

    #[test]
    fn reads_only_what_is_asked_for() {
        let read = RefCell::new(Vec::new());
        let v = Variables::new(|name: &str| {
            read.borrow_mut().push(name.to_owned());
            None
        });
        let off = vars(&[("rate_limit_writes", "0"), ("rate_limit_window_seconds", "bad")]);
        assert_eq!(off.rate_limit().unwrap(), Policy { limit: 0, window_ms: 0 }, "the window is unused when off");
        let _ = v.auth();
        assert_eq!(*read.borrow(), ["auth_mode", "auth_token_secret"], "stops at the first problem");
        read.borrow_mut().clear();
        let _ = v.limits();
        assert_eq!(*read.borrow(), ["max_devices_per_user", "device_ttl_days"]);
    }

    #[test]
    fn spin_manifest_declares_every_variable_with_the_same_default() {
        let manifest = include_str!("../spin.toml");
        for (name, default) in VARIABLES {
            let line = manifest
                .lines()
                .find(|l| l.starts_with(&format!("{name} = {{")))
                .unwrap_or_else(|| panic!("spin.toml does not declare {name}"));
            assert!(line.contains(&format!("default = \"{default}\"")), "{line}");
            assert!(manifest.contains(&format!("{name} = \"{{{{ {name} }}}}\"")), "{name} not passed to the component");
        }
    }
}
