//! Who may change the log directory, and which other origins may read the
//! answers (SPEC section 1: `--read-only`, `--token-file`, `--cors-origin`).
//! Reading logs needs nothing: that is what the daemon is for. Creating and
//! deleting needs the daemon not to be read-only and, with a token file,
//! `Authorization: Bearer <token>`, compared in constant time and never
//! logged. CORS headers go only on `/api/` answers, and only to an origin
//! on the list (or to any with `*`); every other origin hears nothing.

use crate::config::{Config, Secret};
use crate::http::{RequestHead, Response};

/// What a preflight allows (SPEC section 1).
const ALLOW_METHODS: &str = "GET, HEAD, POST, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Last-Event-ID";
/// Response headers a cross-origin page may read: paging, `Location`, and
/// where a list stands in the events (`X-Events-Id`).
const EXPOSE_HEADERS: &str = "Link, X-Total-Count, Location, X-Events-Id";
/// How long a browser may cache a preflight, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

#[derive(Debug)]
pub struct Access {
    read_only: bool,
    token: Option<Secret>,
    cors_origins: Vec<String>,
}

impl Access {
    /// From the flags; a log dir the daemon cannot write makes it read-only.
    pub fn new(config: &Config, dir_writable: bool) -> Access {
        Access {
            read_only: config.read_only || !dir_writable,
            token: config.token.clone(),
            cors_origins: config.cors_origins.clone(),
        }
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// A request that creates or deletes: `None` when it may, else the
    /// response that refuses it (403 read-only, 401 without the token).
    pub fn refuse_change(&self, head: &RequestHead) -> Option<Response> {
        if self.read_only {
            return Some(Response::error(
                403,
                "this daemon is read-only: it creates and deletes nothing",
            ));
        }
        let token = self.token.as_ref()?;
        let given = head
            .authorization
            .as_deref()
            .and_then(bearer_token)
            .unwrap_or("");
        if same_secret(given.as_bytes(), token.expose().as_bytes()) {
            return None;
        }
        Some(
            Response::error(401, "a valid bearer token is required")
                .header("WWW-Authenticate", "Bearer realm=\"logcast\""),
        )
    }

    /// CORS headers for the answer to `head` (empty when none apply).
    pub fn cors_headers(&self, head: &RequestHead) -> Vec<(&'static str, String)> {
        if self.cors_origins.is_empty() || !is_api(&head.path) {
            return Vec::new();
        }
        let mut headers = vec![("Vary", "Origin".to_string())];
        if let Some(allowed) = self.allowed_origin(head) {
            headers.push(("Access-Control-Allow-Origin", allowed));
            headers.push(("Access-Control-Expose-Headers", EXPOSE_HEADERS.to_string()));
        }
        headers
    }

    /// The answer to a preflight: 204, with permissions only for an
    /// allowed origin.
    pub fn preflight(&self, head: &RequestHead) -> Response {
        let mut response = Response::new(204, crate::http::response::TEXT, &b""[..])
            .header("Allow", ALLOW_METHODS);
        if !self.cors_origins.is_empty() {
            response = response.header("Vary", "Origin");
        }
        if let Some(allowed) = self.allowed_origin(head) {
            response = response
                .header("Access-Control-Allow-Origin", allowed)
                .header("Access-Control-Allow-Methods", ALLOW_METHODS)
                .header("Access-Control-Allow-Headers", ALLOW_HEADERS)
                .header("Access-Control-Max-Age", PREFLIGHT_MAX_AGE);
        }
        response
    }

    /// What `Access-Control-Allow-Origin` says to this request, if anything.
    fn allowed_origin(&self, head: &RequestHead) -> Option<String> {
        let origin = head.origin.as_deref()?;
        if self.cors_origins.iter().any(|o| o == "*") {
            return Some("*".to_string());
        }
        self.cors_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| origin.to_string())
    }
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// The credentials of `Bearer <token>` (the scheme is case-insensitive,
/// RFC 9110 section 11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares in time that depends only on the real token's length, so a
/// client cannot find it byte by byte by timing the answers.
fn same_secret(given: &[u8], token: &[u8]) -> bool {
    let mut diff = given.len() ^ token.len();
    for (i, &t) in token.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= usize::from(g ^ t);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"abc"));
        assert_eq!(bearer_token("bearer  xyz "), Some("xyz"));
        assert_eq!(bearer_token("Basic xyz"), None);
    }
}
