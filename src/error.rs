//! The API's error type and its one mapping to Discord's status codes and bodies.

use crate::form::FormErrors;
use crate::http::Response;
use crate::json;
use crate::ratelimit::{self, Standing};
use crate::store::StoreError;
use serde::Serialize;

/// Everything a request can fail with. Client mistakes are ordinary answers; `Config` and `Store`
/// are the operator's problem and are logged with detail.
#[derive(Debug)]
pub enum ApiError {
    NotFound,
    MethodNotAllowed,
    Unauthorized,
    InvalidJson,
    PayloadTooLarge,
    InvalidForm(FormErrors),
    /// A variable is missing or unusable; the message names it.
    Config { variable: &'static str, problem: &'static str },
    Store(StoreError),
    /// Over the per-user write limit.
    RateLimited(Standing),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl From<FormErrors> for ApiError {
    fn from(e: FormErrors) -> Self {
        ApiError::InvalidForm(e)
    }
}

#[derive(Serialize)]
struct MessageBody<'a> {
    message: &'a str,
    code: u32,
}

#[derive(Serialize)]
struct CodeFirstBody<'a> {
    code: u32,
    message: &'a str,
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::Unauthorized => 401,
            ApiError::InvalidJson | ApiError::InvalidForm(_) => 400,
            ApiError::PayloadTooLarge => 413,
            ApiError::Config { .. } => 500,
            ApiError::Store(e) => e.status(),
            ApiError::RateLimited(_) => 429,
        }
    }

    /// The one place an error becomes a response.
    pub fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::RateLimited(standing) = &self {
            // Seconds with millisecond precision, as Discord sends it; written as digits rather
            // than through an f64, which would pull float parsing and printing into the .wasm.
            let digits = ratelimit::seconds(standing.reset_after_ms());
            let trimmed = digits.trim_end_matches('0');
            // The body's one variable part is this number, so it is written straight out, in
            // `json::to_vec`'s spacing.
            let mut body = Vec::with_capacity(96);
            body.extend_from_slice(br#"{"message": "You are being rate limited.", "retry_after": "#);
            body.extend_from_slice(trimmed.as_bytes());
            if trimmed.ends_with('.') {
                body.push(b'0');
            }
            body.extend_from_slice(br#", "global": false}"#);
            let mut response = Response::json(status, body);
            response.headers.extend(standing.headers());
            return response;
        }
        let body = match &self {
            ApiError::NotFound => json::to_vec(&MessageBody { message: "404: Not Found", code: 0 }),
            ApiError::MethodNotAllowed => {
                json::to_vec(&MessageBody { message: "405: Method Not Allowed", code: 0 })
            }
            ApiError::Unauthorized => {
                json::to_vec(&MessageBody { message: "401: Unauthorized", code: 0 })
            }
            ApiError::InvalidJson => json::to_vec(&CodeFirstBody {
                code: 50109,
                message: "The request body contains invalid JSON.",
            }),
            ApiError::PayloadTooLarge => {
                json::to_vec(&MessageBody { message: "Request entity too large", code: 40005 })
            }
            ApiError::InvalidForm(errors) => errors.to_body(),
            ApiError::Config { variable, problem } => {
                let message = format!("500: Server misconfigured: variable `{variable}` {problem}");
                eprintln!("push-devices: {message}");
                json::to_vec(&MessageBody { message: &message, code: 0 })
            }
            ApiError::Store(e) => {
                eprintln!("push-devices: key-value store failure: {e}");
                let message = match status {
                    503 => "503: Service Unavailable",
                    _ => "500: Internal Server Error",
                };
                json::to_vec(&MessageBody { message, code: 0 })
            }
            ApiError::RateLimited(_) => Vec::new(), // answered above
        };
        Response::json(status, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry_after(reset_after_ms: u64) -> String {
        let standing = Standing { limit: 10, remaining: 0, reset_at_ms: 1_000_000 + reset_after_ms, now_ms: 1_000_000, limited: true };
        let body = String::from_utf8(ApiError::RateLimited(standing).into_response().body).unwrap();
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["global"], false);
        body.split("\"retry_after\": ").nth(1).unwrap().split(',').next().unwrap().to_owned()
    }

    #[test]
    fn retry_after_is_a_plain_json_number() {
        assert_eq!(retry_after(59_000), "59.0");
        assert_eq!(retry_after(44_500), "44.5");
        assert_eq!(retry_after(58_750), "58.75");
        assert_eq!(retry_after(1), "0.001");
        assert_eq!(retry_after(0), "0.0");
    }
}
