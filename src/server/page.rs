//! `GET /` (SPEC section 3): the page, embedded in the binary. Its bytes
//! are never copied into a connection's buffer: the head is, and the body
//! follows it by reference, from a memory file made at start, with
//! `sendfile` (or, where that file cannot be had, from the binary in the
//! same `writev`) ([`crate::reply`]). It
//! carries a strong `ETag` that the compiler computes from those bytes, and
//! `Cache-Control: no-cache`, so a browser asks again each time and an
//! unchanged page costs a `304 Not Modified` without a body.

use std::sync::OnceLock;

use crate::http::etag;
use crate::http::response::HTML;
use crate::http::{RequestHead, Response};

/// The page (SPEC section 3, `GET /`).
const PAGE: &str = include_str!("../page/index.html");

/// The page needs nothing from anywhere but its own origin, and runs only
/// its own inline script and style (allowed by hash, see [`crate::csp`]).
fn page_csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| crate::csp::page_policy(PAGE))
}

const PAGE_TAG: [u8; 18] = etag::strong_tag(PAGE.as_bytes());

/// The page's `ETag`: it changes exactly when the binary's page does.
pub const PAGE_ETAG: &str = match std::str::from_utf8(&PAGE_TAG) {
    Ok(tag) => tag,
    Err(_) => panic!("an entity tag is ASCII"),
};

/// The page, or 304 when the client's `If-None-Match` names this page
/// (for GET and HEAD alike, RFC 9110 section 13.1.2).
/// Keeps the page in a memory file, to be sent by reference
/// ([`crate::reply::by_reference`]).
pub(super) fn prepare() {
    crate::reply::keep_by_reference(PAGE.as_bytes());
}

pub(super) fn page(head: &RequestHead) -> Response {
    let unchanged = head
        .if_none_match
        .as_deref()
        .is_some_and(|tags| etag::if_none_match(tags, PAGE_ETAG));
    let response = if unchanged {
        Response::new(304, HTML, &b""[..])
    } else {
        Response::new(200, HTML, PAGE.as_bytes()).header("Content-Security-Policy", page_csp())
    };
    response
        .header("ETag", PAGE_ETAG)
        .header("Cache-Control", "no-cache")
}
