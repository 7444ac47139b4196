//! `GET /` as a fixed answer (issue 12 item 5): the page's bytes written
//! from the binary beside the head, a strong `ETag`, `Cache-Control:
//! no-cache`, and `If-None-Match` answered with 304 and no body.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

const PAGE: &[u8] = include_bytes!("../src/page/index.html");

fn etag_of(d: &Daemon) -> String {
    let r = d.get("/");
    r.header("etag").expect("an ETag on GET /").to_string()
}

#[test]
fn the_page_has_a_strong_etag_and_no_cache() {
    let d = Daemon::start(&[]);
    let r = d.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let tag = r.header("etag").expect("ETag");
    assert!(
        tag.starts_with('"') && tag.ends_with('"') && tag.len() > 2,
        "not a strong tag: {tag}"
    );
    assert!(r.body == PAGE, "the page differs from src/page/index.html");
    assert_eq!(
        r.header("content-length"),
        Some(PAGE.len().to_string().as_str())
    );
    // The same bytes, the same tag (also for `/?log=`, the same page).
    let again = d.get("/?log=abc");
    assert_eq!(again.header("etag"), Some(tag));
}

#[test]
fn a_matching_if_none_match_gets_304_without_a_body() {
    let d = Daemon::start(&[]);
    let tag = etag_of(&d);
    let weak = format!("W/{tag}");
    let listed = format!("\"nope\", {tag}");
    for value in [tag.as_str(), weak.as_str(), listed.as_str(), "*"] {
        for method in ["GET", "HEAD"] {
            let header = format!("If-None-Match: {value}");
            let (r, rest) = d.request_full(method, "/", &[&header]);
            assert_eq!(r.status, 304, "{method} {value}");
            assert_eq!(r.header("etag"), Some(tag.as_str()), "{method} {value}");
            assert_eq!(r.header("cache-control"), Some("no-cache"));
            // No length either: clients framing by it alone would wait for a body.
            assert_eq!(r.header("content-length"), None, "{method} {value}");
            assert!(
                r.body.is_empty() && rest.is_empty(),
                "{method} {value}: a body"
            );
        }
    }
}

#[test]
fn a_different_if_none_match_gets_the_page() {
    let d = Daemon::start(&[]);
    let tag = etag_of(&d);
    let other = format!("\"x{}", &tag[1..]);
    for value in [other.as_str(), "\"\"", "garbage", "W/\"0\""] {
        let r = d.request_with("GET", "/", &[&format!("If-None-Match: {value}")]);
        assert_eq!(r.status, 200, "{value}");
        assert!(r.body == PAGE, "{value}");
    }
}

#[test]
fn head_of_the_page_announces_it_and_sends_nothing() {
    let d = Daemon::start(&[]);
    let (r, rest) = d.request_full("HEAD", "/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(PAGE.len().to_string().as_str())
    );
    assert!(r.header("etag").is_some());
    assert!(rest.is_empty(), "HEAD sent {} bytes", rest.len());
}

/// Pipelined requests around pages come back whole and in order: a body
/// written from the binary holds back what follows it until it is sent.
#[test]
fn pipelined_pages_come_back_in_order() {
    let d = Daemon::start(&[]);
    let mut s = d.connect();
    let mut batch = Vec::new();
    for _ in 0..8 {
        batch.extend_from_slice(
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
        );
    }
    batch.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(&batch).expect("write");
    for i in 0..8 {
        let page = read_response(&mut s, false).expect("page");
        assert_eq!(page.status, 200, "page {i}");
        assert!(page.body == PAGE, "page {i} differs");
        let ok = read_response(&mut s, false).expect("healthz");
        assert_eq!((ok.status, ok.text().as_str()), (200, "ok"), "healthz {i}");
    }
    let head = read_response(&mut s, true).expect("head");
    assert_eq!(head.status, 200);
    assert!(is_closed(&mut s, Duration::from_secs(5)), "not closed");
}
