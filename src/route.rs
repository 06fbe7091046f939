//! The routes this component answers, parsed from method and raw path.
//!
//! Spin matches its routes on the raw path, so `/users/%40me/devices` reaches us undecoded; we
//! decode each segment before matching, so both spellings of `@me` work.

use crate::error::ApiError;
use crate::token::parse_user_id;
use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    RegisterDevice,
    UnregisterDevice,
    SyncToken,
    SyncDevices,
    /// `GET /internal/users/{user_id}/devices`, for push senders.
    InternalDevices { user_id: u64 },
    /// `POST /internal/devices/invalidate`, for push senders.
    InternalInvalidate,
}

impl Route {
    /// 404 for a path we do not serve, 405 for a known path with another method.
    pub fn parse(method: &str, raw_path: &str) -> Result<Route, ApiError> {
        let segments = segments(raw_path);
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match segments.as_slice() {
            ["users", "@me", "devices"] => match method {
                "POST" => Ok(Route::RegisterDevice),
                "DELETE" => Ok(Route::UnregisterDevice),
                _ => Err(ApiError::MethodNotAllowed),
            },
            ["users", "@me", "devices", "sync-token"] => match method {
                "GET" => Ok(Route::SyncToken),
                _ => Err(ApiError::MethodNotAllowed),
            },
            ["users", "@me", "devices", "sync"] => match method {
                "PUT" => Ok(Route::SyncDevices),
                _ => Err(ApiError::MethodNotAllowed),
            },
            ["internal", "users", user_id, "devices"] => {
                let user_id = parse_user_id(user_id.as_bytes()).ok_or(ApiError::NotFound)?;
                match method {
                    "GET" => Ok(Route::InternalDevices { user_id }),
                    _ => Err(ApiError::MethodNotAllowed),
                }
            }
            ["internal", "devices", "invalidate"] => match method {
                "POST" => Ok(Route::InternalInvalidate),
                _ => Err(ApiError::MethodNotAllowed),
            },
            _ => Err(ApiError::NotFound),
        }
    }

    /// Routes for push senders, behind `admin_key` instead of a user's credentials.
    pub fn internal(self) -> bool {
        matches!(self, Route::InternalDevices { .. } | Route::InternalInvalidate)
    }

    /// Routes that change the registry (and so read a body).
    pub fn writes(self) -> bool {
        !matches!(self, Route::SyncToken | Route::InternalDevices { .. })
    }
}

/// Whether a path lies under `/internal/`, however spelled: the whole tree is hidden (404)
/// while `admin_key` is unset.
pub fn is_internal(raw_path: &str) -> bool {
    segments(raw_path).first().is_some_and(|s| s == "internal")
}

fn segments(raw_path: &str) -> Vec<String> {
    let path = raw_path.split(['?', '#']).next().unwrap_or("");
    // A path without its leading slash matches no route.
    let Some(path) = path.strip_prefix('/') else { return Vec::new() };
    // A segment that does not decode to UTF-8 matches no route: it stands as U+FFFD, which no
    // route's segment contains (as lossy decoding left it, without pulling that code in).
    path.split('/')
        .map(|s| percent_decode_str(s).decode_utf8().map_or_else(|_| "\u{FFFD}".to_owned(), |s| s.into_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(method: &str, path: &str) -> Result<Route, u16> {
        Route::parse(method, path).map_err(|e| e.status())
    }

    #[test]
    fn routes() {
        assert_eq!(status("POST", "/users/@me/devices"), Ok(Route::RegisterDevice));
        assert_eq!(status("DELETE", "/users/@me/devices"), Ok(Route::UnregisterDevice));
        assert_eq!(status("GET", "/users/@me/devices/sync-token"), Ok(Route::SyncToken));
        assert_eq!(status("PUT", "/users/@me/devices/sync"), Ok(Route::SyncDevices));
        assert_eq!(status("POST", "/users/%40me/devices"), Ok(Route::RegisterDevice));
        assert_eq!(status("GET", "/users/@me/devices/sync-token?x=1"), Ok(Route::SyncToken));
    }

    #[test]
    fn not_found_versus_method_not_allowed() {
        assert_eq!(status("GET", "/users/@me/devices"), Err(405));
        assert_eq!(status("PUT", "/users/@me/devices"), Err(405));
        assert_eq!(status("POST", "/users/@me/devices/sync-token"), Err(405));
        assert_eq!(status("GET", "/users/@me/devices/sync"), Err(405));
        assert_eq!(status("POST", "/users/123/devices"), Err(404));
        assert_eq!(status("POST", "/users/@me/devices/"), Err(404));
        assert_eq!(status("GET", "/"), Err(404));
        assert_eq!(status("GET", ""), Err(404));
        assert_eq!(status("POST", "users/@me/devices"), Err(404));
        assert_eq!(status("GET", "/users/@me/devices/sync-token/x"), Err(404));
    }

    #[test]
    fn internal_routes() {
        assert_eq!(status("GET", "/internal/users/42/devices"), Ok(Route::InternalDevices { user_id: 42 }));
        assert_eq!(status("POST", "/internal/devices/invalidate"), Ok(Route::InternalInvalidate));
        assert_eq!(status("DELETE", "/internal/users/42/devices"), Err(405));
        assert_eq!(status("GET", "/internal/devices/invalidate"), Err(405));
        assert_eq!(status("GET", "/internal/users/0/devices"), Err(404));
        assert_eq!(status("GET", "/internal/users/042/devices"), Err(404));
        assert_eq!(status("GET", "/internal/users/@me/devices"), Err(404));
        assert!(Route::InternalInvalidate.internal() && !Route::SyncToken.internal());
        assert!(is_internal("/internal/x") && is_internal("/%69nternal/users") && !is_internal("/users/@me/devices"));
        // Segments that are not UTF-8 once decoded match nothing, wherever they stand.
        assert_eq!(status("POST", "/users/%ff/devices"), Err(404));
        assert_eq!(status("GET", "/internal/users/4%ff/devices"), Err(404));
        assert_eq!(status("POST", "/users/@me/devices/%c3"), Err(404));
        assert!(!is_internal("/%ffinternal/x"));
    }
}
