//! Who `@me` is. Every failure is the same 401; the reason is never told to the client.

use crate::config::AuthMode;
use crate::error::ApiError;
use crate::http::Request;
use crate::token::{Purpose, parse_user_id};
use subtle::ConstantTimeEq;

pub fn authenticate(auth: &AuthMode, req: &Request, now_secs: u64) -> Result<u64, ApiError> {
    match auth {
        AuthMode::Token { keys, lifetime_secs } => {
            let header = req.header("authorization").ok_or(ApiError::Unauthorized)?.trim();
            let token = strip_bearer(header);
            keys.verify(Purpose::Auth, token, now_secs, *lifetime_secs)
                .map_err(|_| ApiError::Unauthorized)
        }
        AuthMode::Gateway { key } => {
            let presented = req.header("x-gateway-key").ok_or(ApiError::Unauthorized)?;
            if !bool::from(presented.as_bytes().ct_eq(key.as_bytes())) {
                return Err(ApiError::Unauthorized);
            }
            let user = req.header("x-user-id").ok_or(ApiError::Unauthorized)?;
            parse_user_id(user.trim().as_bytes()).ok_or(ApiError::Unauthorized)
        }
    }
}

/// The internal API's caller: whoever presents `admin_key` (`None`: unset) in `x-admin-key`.
pub fn authenticate_admin(admin_key: Option<&str>, req: &Request) -> Result<(), ApiError> {
    let key = admin_key.ok_or(ApiError::NotFound)?;
    let presented = req.header("x-admin-key").ok_or(ApiError::Unauthorized)?;
    if bool::from(presented.as_bytes().ct_eq(key.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn strip_bearer(header: &str) -> &str {
    match header.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => header[7..].trim_start(),
        _ => header,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Keyring;

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_760_000_000;

    fn token_config() -> AuthMode {
        AuthMode::Token { keys: Keyring::parse(KEY).unwrap(), lifetime_secs: 86_400 }
    }

    fn gateway_config() -> AuthMode {
        AuthMode::Gateway { key: KEY.to_owned() }
    }

    fn status(config: &AuthMode, req: Request) -> Result<u64, u16> {
        authenticate(config, &req, NOW).map_err(|e| e.status())
    }

    #[test]
    fn token_mode() {
        let c = token_config();
        let token = Keyring::parse(KEY).unwrap().mint(Purpose::Auth, 77, NOW);
        let req = || Request::new("GET", "/", b"");
        assert_eq!(status(&c, req().with_header("Authorization", &token)), Ok(77));
        assert_eq!(status(&c, req().with_header("authorization", &format!("Bearer {token}"))), Ok(77));
        assert_eq!(status(&c, req().with_header("authorization", &format!("bearer  {token}"))), Ok(77));
        assert_eq!(status(&c, req()), Err(401));
        assert_eq!(status(&c, req().with_header("authorization", "Bearer ")), Err(401));
        let sync = Keyring::parse(KEY).unwrap().mint(Purpose::Sync, 77, NOW);
        assert_eq!(status(&c, req().with_header("authorization", &sync)), Err(401));
        let expired = AuthMode::Token { keys: Keyring::parse(KEY).unwrap(), lifetime_secs: 1 };
        let old = Keyring::parse(KEY).unwrap().mint(Purpose::Auth, 77, NOW - 2);
        assert_eq!(status(&expired, req().with_header("authorization", &old)), Err(401));
    }

    #[test]
    fn admin_key() {
        let req = |key: &str| Request::new("GET", "/", b"").with_header("x-admin-key", key);
        assert_eq!(authenticate_admin(None, &req(KEY)).map_err(|e| e.status()), Err(404));
        assert_eq!(authenticate_admin(Some(KEY), &req(KEY)).map_err(|e| e.status()), Ok(()));
        assert_eq!(authenticate_admin(Some(KEY), &req("nope")).map_err(|e| e.status()), Err(401));
        assert_eq!(authenticate_admin(Some(KEY), &Request::new("GET", "/", b"")).map_err(|e| e.status()), Err(401));
    }

    #[test]
    fn gateway_mode() {
        let c = gateway_config();
        let req = |key: &str, user: &str| {
            Request::new("GET", "/", b"").with_header("x-gateway-key", key).with_header("x-user-id", user)
        };
        assert_eq!(status(&c, req(KEY, "80351110224678912")), Ok(80351110224678912));
        assert_eq!(status(&c, req("0123456789abcdef0123456789abcdeX", "1")), Err(401));
        assert_eq!(status(&c, req(KEY, "0")), Err(401));
        assert_eq!(status(&c, req(KEY, "abc")), Err(401));
        assert_eq!(status(&c, req(KEY, "18446744073709551616")), Err(401));
        assert_eq!(status(&c, Request::new("GET", "/", b"").with_header("x-user-id", "1")), Err(401));
    }
}
