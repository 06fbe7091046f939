//! Application variables from a Spin manifest, as Spin resolves them.
//!
//! `spin.toml`'s `[variables]` table declares each variable with an optional `default`,
//! `secret` and `required`. Spin's default provider then lets the environment override:
//! `SPIN_VARIABLE_<NAME_UPPERCASE>`. The library never reads the process environment
//! itself: callers pass it in, so tests stay independent of it.

use crate::is_valid_variable_name;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One `[variables]` entry.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    /// Value when nothing overrides it.
    #[serde(default)]
    pub default: Option<String>,
    /// Whether the value is a secret (never printed).
    #[serde(default)]
    pub secret: bool,
    /// Whether a value must be provided (a required variable has no default).
    #[serde(default)]
    pub required: bool,
}

/// What the host takes from a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The `[variables]` declarations.
    pub variables: BTreeMap<String, VariableDecl>,
    /// The `route`s of the `[[trigger.http]]` entries (private routes, written as
    /// tables, are skipped). This host runs one component, so it serves all of them.
    pub http_routes: Vec<String>,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: toml::Value,
}

/// Parses a manifest's variables and HTTP routes.
pub fn parse_manifest(text: &str) -> Result<Manifest, String> {
    let m: RawManifest = toml::from_str(text).map_err(|e| format!("invalid manifest: {e}"))?;
    for (name, decl) in &m.variables {
        if !is_valid_variable_name(name) {
            return Err(format!("invalid variable name {name:?} in [variables]"));
        }
        if decl.required && decl.default.is_some() {
            return Err(format!("variable {name:?} is required but has a default"));
        }
    }
    let http_routes = m
        .trigger
        .http
        .into_iter()
        .filter_map(|t| t.route.as_str().map(str::to_owned))
        .collect();
    Ok(Manifest {
        variables: m.variables,
        http_routes,
    })
}

/// Reads and parses the manifest at `path`.
pub fn load_manifest(path: &Path) -> Result<Manifest, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_manifest(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The environment variable that overrides `name`: `SPIN_VARIABLE_<NAME_UPPERCASE>`.
pub fn env_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

/// Resolves declared variables: an `env` override (looked up by [`env_name`]) wins over
/// the `default`. Returns the values and the names of required variables left without
/// one. Only declared variables are resolved, as in Spin.
pub fn resolve(
    decls: &BTreeMap<String, VariableDecl>,
    env: impl Fn(&str) -> Option<String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, decl) in decls {
        match env(&env_name(name)).or_else(|| decl.default.clone()) {
            Some(v) => {
                values.insert(name.clone(), v);
            }
            None if decl.required => missing.push(name.clone()),
            None => {}
        }
    }
    (values, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
spin_manifest_version = 2

[application]
name = "push-devices"

[variables]
auth_token_secret = { required = true, secret = true }
sync_token_secret = { required = true, secret = true }
max_devices = { default = "10" }
log_level = { default = "info" }

[[trigger.http]]
route = "/users/..."
component = "push-devices"

[[trigger.http]]
route = "/internal/..."
component = "push-devices"

[[trigger.http]]
route = { private = true }
component = "push-devices"

[component.push-devices]
source = "target/wasm32-wasip2/release/push_devices.wasm"
key_value_stores = ["default"]
[component.push-devices.variables]
auth_token_secret = "{{ auth_token_secret }}"
"#;

    #[test]
    fn parses_declarations() {
        let m = parse_manifest(MANIFEST).unwrap();
        assert_eq!(m.http_routes, vec!["/users/...", "/internal/..."]);
        let d = m.variables;
        assert_eq!(d.len(), 4);
        assert!(d["auth_token_secret"].required && d["auth_token_secret"].secret);
        assert_eq!(d["max_devices"].default.as_deref(), Some("10"));
    }

    #[test]
    fn env_overrides_default_and_fills_required() {
        let d = parse_manifest(MANIFEST).unwrap().variables;
        let env = |k: &str| match k {
            "SPIN_VARIABLE_AUTH_TOKEN_SECRET" => Some("k1,k0".to_owned()),
            "SPIN_VARIABLE_LOG_LEVEL" => Some("debug".to_owned()),
            _ => None,
        };
        let (values, missing) = resolve(&d, env);
        assert_eq!(values["auth_token_secret"], "k1,k0");
        assert_eq!(values["log_level"], "debug");
        assert_eq!(values["max_devices"], "10");
        assert_eq!(missing, vec!["sync_token_secret"]);
        assert!(!values.contains_key("sync_token_secret"));
    }

    #[test]
    fn rejects_bad_declarations() {
        assert!(parse_manifest("[variables]\nBad = { default = \"x\" }").is_err());
        assert!(parse_manifest("[variables]\na = { default = \"x\", required = true }").is_err());
        assert!(parse_manifest("[variables]\na = { dflt = \"x\" }").is_err());
        assert_eq!(parse_manifest("").unwrap(), Manifest::default());
    }
}
