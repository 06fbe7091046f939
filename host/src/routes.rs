//! Spin's HTTP trigger routing, for the routes of one component.
//!
//! A route is exact (`/health`) or a wildcard (`/users/...`, matching `/users` and
//! everything under it; `/...` matches all). Matching is on the raw (still
//! percent-encoded) path, as Spin does; exact routes win over wildcards, and the longest
//! wildcard prefix wins. Requests matching no route get Spin's bare 404 without reaching
//! the component.

use wasmtime::format_err;

/// One parsed route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    raw: String,
    /// For a wildcard, the part before `/...` (`""` for `/...`); else the whole path.
    prefix: String,
    wildcard: bool,
}

/// What a request path matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    /// The route as written (`spin-matched-route`, `spin-raw-component-route`).
    pub raw: &'a str,
    /// The route without its `/...` (`spin-component-route`).
    pub component_route: &'a str,
    /// The rest of the path after the route prefix (`spin-path-info`).
    pub path_info: String,
}

/// The routes a component is mounted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes(Vec<Route>);

impl Default for Routes {
    /// The catch-all `/...`.
    fn default() -> Self {
        Routes(vec![Route {
            raw: "/...".into(),
            prefix: String::new(),
            wildcard: true,
        }])
    }
}

impl Routes {
    /// Parses routes as written in `spin.toml` (`"/users/..."`, `"/health"`).
    pub fn parse<S: AsRef<str>>(routes: &[S]) -> crate::Result<Routes> {
        let parsed = routes
            .iter()
            .map(|r| {
                let raw = r.as_ref();
                if !raw.starts_with('/') {
                    return Err(format_err!("route {raw:?} must start with '/'"));
                }
                Ok(match raw.strip_suffix("/...") {
                    Some(prefix) => Route {
                        raw: raw.into(),
                        prefix: prefix.into(),
                        wildcard: true,
                    },
                    None => Route {
                        raw: raw.into(),
                        prefix: raw.trim_end_matches('/').into(),
                        wildcard: false,
                    },
                })
            })
            .collect::<crate::Result<Vec<_>>>()?;
        if parsed.is_empty() {
            return Err(format_err!("no routes"));
        }
        Ok(Routes(parsed))
    }

    /// The best route for a raw request path, if any.
    pub fn find(&self, path: &str) -> Option<RouteMatch<'_>> {
        let trimmed = path.trim_end_matches('/');
        let exact = self.0.iter().find(|r| !r.wildcard && r.prefix == trimmed);
        let best = exact.or_else(|| {
            self.0
                .iter()
                .filter(|r| {
                    r.wildcard
                        && (path == r.prefix
                            || path
                                .strip_prefix(r.prefix.as_str())
                                .is_some_and(|rest| rest.starts_with('/')))
                })
                .max_by_key(|r| r.prefix.len())
        })?;
        let path_info = if best.wildcard {
            path.get(best.prefix.len()..).unwrap_or_default().to_owned()
        } else {
            String::new()
        };
        Some(RouteMatch {
            raw: &best.raw,
            component_route: &best.prefix,
            path_info,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_all_matches_everything() {
        let r = Routes::default();
        let m = r.find("/users/@me/devices").unwrap();
        assert_eq!(
            (m.raw, m.component_route, m.path_info.as_str()),
            ("/...", "", "/users/@me/devices")
        );
        assert_eq!(r.find("/").unwrap().path_info, "/");
    }

    #[test]
    fn wildcards_exact_and_misses() {
        let r =
            Routes::parse(&["/users/...", "/internal/...", "/health", "/users/admin/..."]).unwrap();
        let m = r.find("/users/@me/devices").unwrap();
        assert_eq!(
            (m.raw, m.component_route, m.path_info.as_str()),
            ("/users/...", "/users", "/@me/devices")
        );
        assert_eq!(r.find("/users").unwrap().path_info, "");
        assert_eq!(r.find("/users/%40me").unwrap().path_info, "/%40me");
        assert_eq!(
            r.find("/users/admin/x").unwrap().raw,
            "/users/admin/...",
            "longest prefix wins"
        );
        assert_eq!(r.find("/health").unwrap().raw, "/health");
        assert_eq!(r.find("/health/").unwrap().raw, "/health");
        assert!(r.find("/usersx").is_none());
        assert!(r.find("/health/x").is_none());
        assert!(r.find("/").is_none());
        assert!(r.find("/other").is_none());
        assert!(Routes::parse(&["users"]).is_err());
        assert!(Routes::parse::<&str>(&[]).is_err());
    }
}
