//! The component's settings, read from Spin variables on each request (Spin may change them
//! between requests). Secrets that are missing or weak fail only the routes that need them.

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
    Token { keys: Secret<Keyring>, lifetime_secs: u64 },
    /// `x-user-id` vouched for by `x-gateway-key` == `gateway_key`.
    Gateway { key: Secret<String> },
}

/// A secret, or why its variable cannot be used.
pub type Secret<T> = Result<T, (&'static str, &'static str)>;

#[derive(Debug, Clone)]
pub struct Config {
    pub auth: AuthMode,
    pub sync_keys: Secret<Keyring>,
    pub sync_lifetime_secs: u64,
    pub store_label: String,
    pub limits: Limits,
    /// `None` when `admin_key` is unset: the internal API is off and answers 404.
    pub admin_key: Option<Secret<String>>,
    /// Writes per user and window across the write routes.
    pub rate_limit: Policy,
}

/// Turns a missing or weak secret into the 500 that names its variable.
pub fn require<T: Clone>(secret: &Secret<T>) -> Result<T, ApiError> {
    secret.clone().map_err(|(variable, problem)| ApiError::Config { variable, problem })
}

impl Config {
    /// Reads the variables through `lookup`; unset or blank values take the defaults above.
    pub fn load(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ApiError> {
        let get = |name: &'static str| -> String {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .or_else(|| {
                    VARIABLES.iter().find(|(n, _)| *n == name).map(|(_, d)| (*d).to_owned())
                })
                .unwrap_or_default()
        };
        let number = |name: &'static str, min: u64| -> Result<u64, ApiError> {
            get(name)
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= min)
                .ok_or(ApiError::Config {
                    variable: name,
                    problem: if min == 0 { "must be a whole number" } else { "must be a whole number of at least 1" },
                })
        };
        let keyring = |name: &'static str| -> Secret<Keyring> {
            Keyring::parse(&get(name)).map_err(|e| match e {
                KeyringError::Missing => (name, "is not set"),
                KeyringError::TooShort => (name, "holds a key shorter than 32 bytes"),
            })
        };
        let shared_key = |name: &'static str| -> Secret<String> {
            let key = get(name);
            match key.len() {
                0 => Err((name, "is not set")),
                1..32 => Err((name, "is shorter than 32 bytes")),
                _ => Ok(key),
            }
        };
        let auth = match get("auth_mode").as_str() {
            "token" => AuthMode::Token {
                keys: keyring("auth_token_secret"),
                lifetime_secs: number("auth_token_ttl_seconds", 1)?,
            },
            "gateway" => AuthMode::Gateway { key: shared_key("gateway_key") },
            _ => {
                return Err(ApiError::Config {
                    variable: "auth_mode",
                    problem: "must be `token` or `gateway`",
                });
            }
        };
        let max_devices = number("max_devices_per_user", 1)?;
        let ttl_days = number("device_ttl_days", 1)?;
        Ok(Config {
            auth,
            sync_keys: keyring("sync_token_secret"),
            sync_lifetime_secs: number("sync_token_ttl_seconds", 1)?,
            store_label: get("kv_store"),
            limits: Limits {
                max_devices: usize::try_from(max_devices).unwrap_or(usize::MAX),
                device_ttl_ms: ttl_days.saturating_mul(86_400_000),
            },
            admin_key: (!get("admin_key").is_empty()).then(|| shared_key("admin_key")),
            rate_limit: Policy {
                limit: u32::try_from(number("rate_limit_writes", 0)?).unwrap_or(u32::MAX),
                window_ms: number("rate_limit_window_seconds", 1)?.saturating_mul(1000),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ApiError> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.store_label, "default");
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.sync_lifetime_secs, 604_800);
        assert_eq!(c.sync_keys.unwrap_err(), ("sync_token_secret", "is not set"));
        match c.auth {
            AuthMode::Token { keys, lifetime_secs } => {
                assert_eq!(keys.unwrap_err(), ("auth_token_secret", "is not set"));
                assert_eq!(lifetime_secs, 86_400);
            }
            AuthMode::Gateway { .. } => panic!("token mode is the default"),
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = load(&[("max_devices_per_user", "0")]).unwrap_err();
        let body = String::from_utf8(err.into_response().body).unwrap();
        assert!(body.contains("max_devices_per_user"), "{body}");
        assert!(load(&[("auth_mode", "magic")]).is_err());
        let c = load(&[("auth_mode", "gateway"), ("gateway_key", "short")]).unwrap();
        let AuthMode::Gateway { key } = c.auth else { panic!() };
        assert_eq!(key.unwrap_err().0, "gateway_key");
        let c = load(&[("sync_token_secret", "too-short")]).unwrap();
        assert_eq!(c.sync_keys.unwrap_err(), ("sync_token_secret", "holds a key shorter than 32 bytes"));
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
