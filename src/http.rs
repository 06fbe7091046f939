//! The plain HTTP shapes the core works on, free of any SDK so it runs natively in tests and
//! benchmarks. The Spin glue converts from and to these in one place.

/// Largest request body read: anything longer is answered 413 without being buffered whole.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The request headers the core reads; hosts need pass no others (Spin adds half a dozen
/// `spin-*` headers to every request, and copying them into the guest is not free).
pub const READ_HEADERS: [&str; 4] = ["authorization", "x-gateway-key", "x-user-id", "x-admin-key"];

/// An incoming request, with header names lower-cased.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The raw path as sent, possibly with a query string and percent-escapes.
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Body,
}

/// A body read up to [`MAX_BODY_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Complete(Vec<u8>),
    TooLarge,
}

impl Default for Body {
    fn default() -> Self {
        Body::Complete(Vec::new())
    }
}

impl Request {
    /// Builds a request; handy for tests, benchmarks and in-process callers.
    pub fn new(method: &str, path: &str, body: &[u8]) -> Request {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: if body.len() > MAX_BODY_BYTES {
                Body::TooLarge
            } else {
                Body::Complete(body.to_vec())
            },
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }

    /// The first value of a header as text; names are compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// An outgoing response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body,
        }
    }

    pub fn no_content() -> Response {
        Response { status: 204, headers: Vec::new(), body: Vec::new() }
    }
}
