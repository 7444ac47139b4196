//! HTTP/1.1 conformance of the daemon over real sockets (SPEC section 2):
//! incremental parsing, pipelining, request bodies (Content-Length and chunked),
//! error statuses and their `Connection: close`, keep-alive rules, HEAD,
//! header/idle timeouts and the connection limit.
//!
//! Every test starts its own daemon on port 0 and speaks raw bytes to it.

mod common;

use common::{is_closed, json_str_field, read_head, read_response, Daemon, Response};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// helpers (local to this file)
// ---------------------------------------------------------------------------

/// Connects and writes `bytes` in one write. A write timeout guards against a
/// daemon that stops reading without answering.
fn send(d: &Daemon, bytes: &[u8]) -> TcpStream {
    let mut s = d.connect();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).expect("write request");
    s
}

fn show(r: &Response) -> String {
    format!(
        "{} {} {:?} body={:?}",
        r.status,
        r.reason,
        r.headers,
        r.text()
    )
}

fn next(s: &mut TcpStream, ctx: &str) -> Response {
    read_response(s, false).unwrap_or_else(|| panic!("{ctx}: no (complete) response"))
}

/// The daemon still serves `/healthz` on a new connection.
fn assert_healthy(d: &Daemon) {
    let r = d.get("/healthz");
    assert_eq!(
        r.status,
        200,
        "healthz after the previous exchange: {}",
        show(&r)
    );
    assert_eq!(r.body, b"ok");
}

fn assert_server(r: &Response, ctx: &str) {
    assert_eq!(
        r.header("server"),
        Some("logcast"),
        "{ctx}: Server header: {}",
        show(r)
    );
}

fn assert_ok_healthz(r: &Response, ctx: &str) {
    assert_eq!(r.status, 200, "{ctx}: {}", show(r));
    assert_server(r, ctx);
    assert_eq!(r.header("content-length"), Some("2"), "{ctx}: {}", show(r));
    assert_eq!(r.body, b"ok", "{ctx}: {}", show(r));
}

/// A JSON error response: status, `Server`, `Content-Type: application/json`,
/// `Content-Length` matching the body, body `{"error": "..."}`.
fn assert_json_error(r: &Response, status: u16, ctx: &str) {
    assert_eq!(r.status, status, "{ctx}: status; got {}", show(r));
    assert_server(r, ctx);
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{ctx}: Content-Type {ct:?}; {}",
        show(r)
    );
    assert_eq!(
        r.header("content-length")
            .and_then(|v| v.parse::<usize>().ok()),
        Some(r.body.len()),
        "{ctx}: Content-Length; {}",
        show(r)
    );
    let text = r.text();
    let t = text.trim();
    assert!(
        t.starts_with('{') && t.ends_with('}'),
        "{ctx}: body is not a JSON object: {text:?}"
    );
    assert!(
        json_str_field(t, "error").is_some(),
        "{ctx}: body has no \"error\" string: {text:?}"
    );
}

fn has_connection_close(r: &Response) -> bool {
    r.header("connection")
        .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
        .unwrap_or(false)
}

/// Sends `req`, expects a JSON error `status` with `Connection: close`, then the
/// socket closed, then a healthy daemon on a new connection.
fn expect_error_and_close(d: &Daemon, req: &[u8], status: u16, ctx: &str) -> Response {
    let mut s = d.connect();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // The daemon may answer and close before reading everything: ignore write errors.
    let _ = s.write_all(req);
    let r = next(&mut s, ctx);
    assert_json_error(&r, status, ctx);
    assert!(
        has_connection_close(&r),
        "{ctx}: {status} without `Connection: close`: {}",
        show(&r)
    );
    assert!(
        is_closed(&mut s, Duration::from_secs(2)),
        "{ctx}: connection still open after {status}"
    );
    assert_healthy(d);
    r
}

/// Reads the next response head and checks it is the very next byte sequence
/// (no stray body bytes in front of it).
fn next_head_exact(s: &mut TcpStream, ctx: &str) -> String {
    let head = read_head(s).unwrap_or_else(|| panic!("{ctx}: no head"));
    let text = String::from_utf8_lossy(&head).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 "),
        "{ctx}: head does not start at the status line: {text:?}"
    );
    text
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
const NOPE: &str = "GET /api/logs/nope HTTP/1.1\r\nHost: test\r\n\r\n";

// ---------------------------------------------------------------------------
// parsing: incremental, pipelined, bodies
// ---------------------------------------------------------------------------

#[test]
fn request_delivered_one_byte_at_a_time() {
    let d = Daemon::start(&[]);
    let mut s = d.connect();
    let req =
        b"GET /healthz HTTP/1.1\r\nHost: test\r\nUser-Agent: trickle/1.0\r\nAccept: */*\r\n\r\n";
    for b in req {
        s.write_all(&[*b]).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let r = next(&mut s, "byte-at-a-time");
    assert_ok_healthz(&r, "byte-at-a-time");
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain"),
        "healthz content type: {}",
        show(&r)
    );
    // Still keep-alive afterwards.
    s.write_all(HEALTHZ.as_bytes()).unwrap();
    assert_ok_healthz(&next(&mut s, "after trickle"), "after trickle");
}

#[test]
fn three_pipelined_requests_answered_in_order() {
    let d = Daemon::start(&[]);
    let all = format!("{HEALTHZ}{NOPE}{HEALTHZ}");
    let mut s = send(&d, all.as_bytes());
    assert_ok_healthz(&next(&mut s, "pipelined #1"), "pipelined #1");
    let r = next(&mut s, "pipelined #2");
    assert_json_error(&r, 404, "pipelined #2");
    assert_ok_healthz(&next(&mut s, "pipelined #3"), "pipelined #3");
    // The connection is still usable.
    s.write_all(NOPE.as_bytes()).unwrap();
    assert_json_error(&next(&mut s, "after pipeline"), 404, "after pipeline");
}

#[test]
fn many_pipelined_requests_in_one_write() {
    let d = Daemon::start(&[]);
    let mut all = String::new();
    for i in 0..50 {
        all.push_str(if i % 2 == 0 { HEALTHZ } else { NOPE });
    }
    let mut s = send(&d, all.as_bytes());
    for i in 0..50 {
        let ctx = format!("pipelined #{i}");
        let r = next(&mut s, &ctx);
        if i % 2 == 0 {
            assert_ok_healthz(&r, &ctx);
        } else {
            assert_json_error(&r, 404, &ctx);
        }
    }
}

const CHUNKED_REQ: &str =
    "GET /healthz HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
5;name=value\r\nhello\r\n\
A;quoted=\"a;b\"\r\n0123456789\r\n\
22\r\nGET /metrics HTTP/1.1\r\nHost: y\r\n\r\n\r\n\
0\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n";

#[test]
fn chunked_body_with_extensions_and_trailers_then_pipelined() {
    let d = Daemon::start(&[]);
    // The third chunk's data is itself a request: it must be discarded as body.
    assert_eq!("GET /metrics HTTP/1.1\r\nHost: y\r\n\r\n".len(), 0x22);
    let all = format!("{CHUNKED_REQ}{NOPE}");
    let mut s = send(&d, all.as_bytes());
    assert_ok_healthz(&next(&mut s, "chunked request"), "chunked request");
    let r = next(&mut s, "request after chunked body");
    assert_json_error(
        &r,
        404,
        "request after chunked body (a 200 here means the body was parsed as a request)",
    );
    s.write_all(HEALTHZ.as_bytes()).unwrap();
    assert_ok_healthz(&next(&mut s, "third request"), "third request");
}

#[test]
fn chunked_body_byte_at_a_time_then_pipelined() {
    let d = Daemon::start(&[]);
    let all = format!("{CHUNKED_REQ}{NOPE}");
    let mut s = d.connect();
    for b in all.as_bytes() {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_micros(300));
    }
    assert_ok_healthz(
        &next(&mut s, "trickled chunked request"),
        "trickled chunked request",
    );
    assert_json_error(
        &next(&mut s, "request after trickled body"),
        404,
        "request after trickled body",
    );
}

#[test]
fn content_length_body_then_pipelined() {
    let d = Daemon::start(&[]);
    let body = "GET /metrics HTTP/1.1\r\nHost: smuggled\r\n\r\n";
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}{NOPE}{HEALTHZ}",
        body.len()
    );
    let mut s = send(&d, req.as_bytes());
    assert_ok_healthz(&next(&mut s, "CL request"), "CL request");
    assert_json_error(
        &next(&mut s, "after CL body"),
        404,
        "after CL body (the body must not be a request)",
    );
    assert_ok_healthz(&next(&mut s, "third"), "third");

    // The same with the body arriving late and split.
    let mut s = d.connect();
    s.write_all(
        format!(
            "GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&body.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&body.as_bytes()[10..]).unwrap();
    s.write_all(NOPE.as_bytes()).unwrap();
    assert_ok_healthz(&next(&mut s, "split CL request"), "split CL request");
    assert_json_error(
        &next(&mut s, "after split CL body"),
        404,
        "after split CL body",
    );
}

#[test]
fn body_of_exactly_one_mib_is_accepted() {
    let d = Daemon::start(&[]);
    let mut s = d.connect();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let len = 1024 * 1024;
    s.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    s.write_all(&vec![b'x'; len]).unwrap();
    s.write_all(HEALTHZ.as_bytes()).unwrap();
    assert_ok_healthz(&next(&mut s, "1 MiB body"), "1 MiB body");
    assert_ok_healthz(&next(&mut s, "after 1 MiB body"), "after 1 MiB body");
}

// ---------------------------------------------------------------------------
// error statuses
// ---------------------------------------------------------------------------

#[test]
fn head_over_8_kib_is_431() {
    let d = Daemon::start(&[]);
    let big = "a".repeat(9000);
    let req = format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n");
    expect_error_and_close(&d, req.as_bytes(), 431, "one 9000-byte header");

    let mut many = String::from("GET /healthz HTTP/1.1\r\nHost: t\r\n");
    for i in 0..100 {
        many.push_str(&format!("X-Header-{i:03}: {}\r\n", "v".repeat(80)));
    }
    many.push_str("\r\n");
    expect_error_and_close(&d, many.as_bytes(), 431, "100 headers of 95 bytes");

    // A head comfortably under the limit is fine.
    let ok = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(6000)
    );
    let mut s = send(&d, ok.as_bytes());
    assert_ok_healthz(&next(&mut s, "6000-byte header"), "6000-byte header");
}

#[test]
fn content_length_over_1_mib_is_413() {
    let d = Daemon::start(&[]);
    let req = "GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n";
    expect_error_and_close(
        &d,
        req.as_bytes(),
        413,
        "Content-Length: 2000000 (no body sent)",
    );
    let req = "POST /api/logs?duration=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n";
    expect_error_and_close(&d, req.as_bytes(), 413, "Content-Length: 1048577 on POST");
}

#[test]
fn chunked_body_over_1_mib_is_413() {
    let d = Daemon::start(&[]);
    let mut s = d.connect();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ =
            w.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
        let chunk = vec![b'z'; 65536];
        for _ in 0..20 {
            // 20 x 64 KiB = 1.25 MiB
            if w.write_all(b"10000\r\n").is_err()
                || w.write_all(&chunk).is_err()
                || w.write_all(b"\r\n").is_err()
            {
                return;
            }
        }
        let _ = w.write_all(b"0\r\n\r\n");
    });
    let r = next(&mut s, "chunked 1.25 MiB");
    assert_json_error(&r, 413, "chunked 1.25 MiB");
    assert!(
        has_connection_close(&r),
        "413 without Connection: close: {}",
        show(&r)
    );
    assert!(
        is_closed(&mut s, Duration::from_secs(2)),
        "connection open after chunked 413"
    );
    writer.join().unwrap();
    assert_healthy(&d);
}

#[test]
fn wrong_method_is_405_with_allow_for_each_route() {
    let d = Daemon::start(&[]);
    let id = d.create_log(1);
    let routes: Vec<(String, &[&str])> = vec![
        ("/".to_string(), &["GET", "HEAD"]),
        ("/healthz".to_string(), &["GET", "HEAD"]),
        ("/metrics".to_string(), &["GET", "HEAD"]),
        (format!("/api/logs/{id}"), &["GET", "HEAD", "DELETE"]),
        ("/api/logs".to_string(), &["GET", "HEAD", "POST"]),
        (format!("/api/logs/{id}/stream"), &["GET"]),
    ];
    for (path, allowed) in &routes {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            if allowed.contains(&method) {
                continue;
            }
            let ctx = format!("{method} {path}");
            let r = d.request(method, path);
            assert_json_error(&r, 405, &ctx);
            let allow = r
                .header("allow")
                .unwrap_or_else(|| panic!("{ctx}: 405 without Allow: {}", show(&r)));
            let mut got: Vec<String> = allow
                .split(',')
                .map(|m| m.trim().to_ascii_uppercase())
                .collect();
            got.sort();
            let mut want: Vec<String> = allowed.iter().map(|m| m.to_string()).collect();
            want.sort();
            assert_eq!(got, want, "{ctx}: Allow header {allow:?}");
        }
    }
    // A 405 does not close a keep-alive connection: the next request is answered.
    let mut s = send(
        &d,
        format!("DELETE /healthz HTTP/1.1\r\nHost: t\r\n\r\n{HEALTHZ}").as_bytes(),
    );
    assert_json_error(&next(&mut s, "pipelined 405"), 405, "pipelined 405");
    assert_ok_healthz(&next(&mut s, "after 405"), "after 405");
}

#[test]
fn unknown_path_is_404_json() {
    let d = Daemon::start(&[]);
    for path in [
        "/nope",
        "/api",
        "/api/logs/x/y/z",
        "/healthz/extra",
        "/api/logs/nope/stream",
    ] {
        let r = d.get(path);
        assert_json_error(&r, 404, &format!("GET {path}"));
    }
    let r = d.request("HEAD", "/nope");
    assert_eq!(r.status, 404, "HEAD /nope: {}", show(&r));
    assert_server(&r, "HEAD /nope");
}

#[test]
fn garbage_request_line_is_400() {
    let d = Daemon::start(&[]);
    let cases: &[&[u8]] = &[
        b"HELLO\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /healthz\r\n\r\n",
        b"GET /healthz HTTP/1.1 extra\r\nHost: t\r\n\r\n",
        b"GET /healthz FTP/1.1\r\nHost: t\r\n\r\n",
        b"G(T /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ];
    for req in cases {
        expect_error_and_close(&d, req, 400, &format!("{:?}", String::from_utf8_lossy(req)));
    }
    // A header line without a colon is malformed too.
    expect_error_and_close(
        &d,
        b"GET /healthz HTTP/1.1\r\nHost t\r\n\r\n",
        400,
        "header without colon",
    );
}

#[test]
fn http11_request_without_host_is_400() {
    // RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
    let d = Daemon::start(&[]);
    expect_error_and_close(
        &d,
        b"GET /healthz HTTP/1.1\r\n\r\n",
        400,
        "HTTP/1.1 without Host",
    );
    // HTTP/1.0 does not need one.
    let mut s = send(&d, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_ok_healthz(
        &next(&mut s, "HTTP/1.0 without Host"),
        "HTTP/1.0 without Host",
    );
}

#[test]
fn unsupported_http_version_is_rejected() {
    let d = Daemon::start(&[]);
    let mut s = send(&d, b"GET /healthz HTTP/2.0\r\nHost: t\r\n\r\n");
    let r = next(&mut s, "HTTP/2.0");
    assert!(
        r.status == 400 || r.status == 505,
        "HTTP/2.0 request: {}",
        show(&r)
    );
    assert_server(&r, "HTTP/2.0");
    assert!(
        is_closed(&mut s, Duration::from_secs(2)),
        "connection open after {}",
        r.status
    );
    assert_healthy(&d);
}

#[test]
fn transfer_encoding_gzip_is_501() {
    let d = Daemon::start(&[]);
    let req = "GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n";
    expect_error_and_close(&d, req.as_bytes(), 501, "Transfer-Encoding: gzip");
    let req =
        "GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
    expect_error_and_close(&d, req.as_bytes(), 501, "Transfer-Encoding: gzip, chunked");
}

#[test]
fn content_length_with_chunked_is_400() {
    let d = Daemon::start(&[]);
    let smuggled = "GET /metrics HTTP/1.1\r\nHost: s\r\n\r\n";
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
    );
    expect_error_and_close(&d, req.as_bytes(), 400, "CL then TE");
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{smuggled}"
    );
    expect_error_and_close(&d, req.as_bytes(), 400, "TE then CL");
}

#[test]
fn two_different_content_lengths_are_400() {
    let d = Daemon::start(&[]);
    let req = "GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 30\r\n\r\nhelloGET /metrics HTTP/1.1\r\nHost: s\r\n\r\n";
    expect_error_and_close(&d, req.as_bytes(), 400, "two Content-Length headers");
}

#[test]
fn every_response_carries_server_and_content_length() {
    let d = Daemon::start(&[]);
    let cases: &[(&str, &str, u16)] = &[
        ("GET", "/", 200),
        ("HEAD", "/", 200),
        ("GET", "/healthz", 200),
        ("HEAD", "/healthz", 200),
        ("GET", "/metrics", 200),
        ("HEAD", "/metrics", 200),
        ("GET", "/api/logs", 200),
        ("HEAD", "/api/logs", 200),
        ("GET", "/api/logs/nope", 404),
        ("GET", "/api/logs/nope/stream", 404),
        ("GET", "/nope", 404),
        ("DELETE", "/healthz", 405),
        ("POST", "/api/logs?duration=abc", 400),
        ("POST", "/api/logs?duration=0", 400),
    ];
    for (method, target, status) in cases {
        let ctx = format!("{method} {target}");
        let r = d.request(method, target);
        assert_eq!(r.status, *status, "{ctx}: {}", show(&r));
        assert_server(&r, &ctx);
        let cl = r
            .header("content-length")
            .unwrap_or_else(|| panic!("{ctx}: no Content-Length: {}", show(&r)));
        let cl: usize = cl
            .parse()
            .unwrap_or_else(|_| panic!("{ctx}: bad Content-Length {cl:?}"));
        if *method == "GET" || *method == "POST" || *method == "DELETE" {
            assert_eq!(cl, r.body.len(), "{ctx}");
        }
        if *status >= 400 && *method != "HEAD" {
            assert_json_error(&r, *status, &ctx);
        }
        if *method == "GET" && target.starts_with("/api/logs") && *status == 200 {
            assert!(
                r.header("content-type")
                    .unwrap_or("")
                    .starts_with("application/json"),
                "{ctx}: JSON content type: {}",
                show(&r)
            );
        }
    }
    // HEAD has the same Content-Length as GET.
    let get = d.get("/");
    let head = d.request("HEAD", "/");
    assert_eq!(
        get.header("content-length"),
        head.header("content-length"),
        "HEAD / vs GET /"
    );
    assert_eq!(
        get.header("content-type"),
        head.header("content-type"),
        "HEAD / vs GET /"
    );
}

// ---------------------------------------------------------------------------
// keep-alive and connection management
// ---------------------------------------------------------------------------

#[test]
fn http10_request_is_answered_then_closed() {
    let d = Daemon::start(&[]);
    let mut s = send(&d, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_ok_healthz(&next(&mut s, "HTTP/1.0"), "HTTP/1.0");
    assert!(
        is_closed(&mut s, Duration::from_secs(2)),
        "HTTP/1.0 connection left open"
    );
    // A pipelined second request after an HTTP/1.0 one is not answered.
    let mut s = send(
        &d,
        format!("GET /healthz HTTP/1.0\r\n\r\n{NOPE}").as_bytes(),
    );
    assert_ok_healthz(&next(&mut s, "HTTP/1.0 pipelined"), "HTTP/1.0 pipelined");
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "bytes after the HTTP/1.0 response: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn http10_keep_alive_stays_open() {
    let d = Daemon::start(&[]);
    let req = b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let mut s = send(&d, req);
    let r = next(&mut s, "HTTP/1.0 keep-alive #1");
    assert_ok_healthz(&r, "HTTP/1.0 keep-alive #1");
    assert!(
        r.header("connection")
            .map(|v| v.eq_ignore_ascii_case("keep-alive"))
            .unwrap_or(false),
        "an HTTP/1.0 client needs `Connection: keep-alive` in the response to reuse it: {}",
        show(&r)
    );
    assert!(
        !is_closed(&mut s, Duration::from_millis(300)),
        "HTTP/1.0 keep-alive connection closed"
    );
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req).unwrap();
    assert_ok_healthz(
        &next(&mut s, "HTTP/1.0 keep-alive #2"),
        "HTTP/1.0 keep-alive #2",
    );
}

#[test]
fn http11_keep_alive_serves_100_requests_on_one_connection() {
    let d = Daemon::start(&[]);
    let mut s = d.connect();
    let local = s.local_addr().unwrap();
    for i in 0..100 {
        let ctx = format!("request #{i}");
        s.write_all(HEALTHZ.as_bytes())
            .unwrap_or_else(|e| panic!("{ctx}: write: {e}"));
        let r = next(&mut s, &ctx);
        assert_ok_healthz(&r, &ctx);
        assert!(
            !has_connection_close(&r),
            "{ctx}: keep-alive response says close: {}",
            show(&r)
        );
    }
    assert_eq!(s.local_addr().unwrap(), local);
    assert!(
        !is_closed(&mut s, Duration::from_millis(200)),
        "connection closed after 100 requests"
    );
}

#[test]
fn connection_close_is_honoured() {
    let d = Daemon::start(&[]);
    let mut s = send(
        &d,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let r = next(&mut s, "Connection: close");
    assert_ok_healthz(&r, "Connection: close");
    assert!(
        has_connection_close(&r),
        "response to Connection: close lacks it: {}",
        show(&r)
    );
    assert!(
        is_closed(&mut s, Duration::from_secs(2)),
        "connection open after Connection: close"
    );

    // Requests pipelined after the `close` one are not answered.
    let req = format!("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n{NOPE}");
    let mut s = send(&d, req.as_bytes());
    assert_ok_healthz(&next(&mut s, "close + pipelined"), "close + pipelined");
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "answered a request after Connection: close: {:?}",
        String::from_utf8_lossy(&rest)
    );

    // Case-insensitive token in a list.
    let mut s = send(
        &d,
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: foo, CLOSE\r\n\r\n",
    );
    assert_ok_healthz(
        &next(&mut s, "Connection: foo, CLOSE"),
        "Connection: foo, CLOSE",
    );
    assert!(
        is_closed(&mut s, Duration::from_secs(2)),
        "connection open after `Connection: foo, CLOSE`"
    );
}

#[test]
fn head_healthz_has_headers_and_no_body() {
    let d = Daemon::start(&[]);
    let req = format!("HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n{NOPE}");
    let mut s = send(&d, req.as_bytes());
    let head = next_head_exact(&mut s, "HEAD /healthz");
    assert!(head.starts_with("HTTP/1.1 200"), "HEAD /healthz: {head:?}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("\r\ncontent-length: 2\r\n"),
        "HEAD /healthz Content-Length: {head:?}"
    );
    assert!(
        lower.contains("\r\nserver: logcast\r\n"),
        "HEAD /healthz Server: {head:?}"
    );
    // The next bytes are the next response's status line, not "ok".
    let head2 = next_head_exact(&mut s, "response after HEAD");
    assert!(
        head2.starts_with("HTTP/1.1 404"),
        "response after HEAD: {head2:?}"
    );
}

// ---------------------------------------------------------------------------
// timeouts
// ---------------------------------------------------------------------------

#[test]
fn incomplete_head_gets_408_after_header_timeout() {
    let d = Daemon::start(&["--header-timeout-ms", "300"]);
    let start = Instant::now();
    let mut s = send(&d, b"GET /healthz HTTP/1.1\r\nHost: te");
    let r = next(&mut s, "half a head");
    let took = start.elapsed();
    assert_json_error(&r, 408, "half a head");
    assert!(
        has_connection_close(&r),
        "408 without Connection: close: {}",
        show(&r)
    );
    assert!(
        took >= Duration::from_millis(200),
        "408 came before the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "408 took {took:?} with --header-timeout-ms 300"
    );
    assert!(
        is_closed(&mut s, Duration::from_secs(2)),
        "connection open after 408"
    );
    assert_healthy(&d);
}

#[test]
fn trickled_head_cannot_extend_the_header_timeout() {
    let d = Daemon::start(&["--header-timeout-ms", "300"]);
    let mut s = d.connect();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut w = s.try_clone().unwrap();
    let start = Instant::now();
    let trickler = std::thread::spawn(move || {
        if w.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ").is_err() {
            return;
        }
        for _ in 0..60 {
            std::thread::sleep(Duration::from_millis(50));
            if w.write_all(b"a").is_err() {
                return;
            }
        }
    });
    let r = next(&mut s, "slowloris");
    let took = start.elapsed();
    assert_json_error(&r, 408, "slowloris");
    assert!(
        took < Duration::from_secs(2),
        "slowloris held the connection for {took:?}"
    );
    assert!(
        is_closed(&mut s, Duration::from_secs(2)),
        "connection open after 408"
    );
    trickler.join().unwrap();
    assert_healthy(&d);
}

#[test]
fn silent_connection_is_closed_without_a_response() {
    let d = Daemon::start(&["--header-timeout-ms", "300", "--idle-timeout-ms", "300"]);
    let mut s = d.connect();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let res = s.read_to_end(&mut got);
    assert!(
        res.is_ok(),
        "silent connection not closed cleanly within 3 s: {res:?} after {:?}",
        start.elapsed()
    );
    assert!(
        got.is_empty(),
        "silent connection got bytes: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "closed after {:?}",
        start.elapsed()
    );
}

#[test]
fn idle_keep_alive_connection_is_closed_silently() {
    let d = Daemon::start(&["--idle-timeout-ms", "300"]);
    let mut s = send(&d, HEALTHZ.as_bytes());
    assert_ok_healthz(&next(&mut s, "before idling"), "before idling");
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut got = Vec::new();
    let res = s.read_to_end(&mut got);
    let took = start.elapsed();
    assert!(
        res.is_ok(),
        "idle connection not closed within 3 s: {res:?}"
    );
    assert!(
        got.is_empty(),
        "idle close sent bytes: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        took >= Duration::from_millis(200),
        "closed before the idle timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "idle close took {took:?} with --idle-timeout-ms 300"
    );
    assert_healthy(&d);
}

#[test]
fn busy_connection_is_not_cut_by_timeouts() {
    let d = Daemon::start(&["--idle-timeout-ms", "300", "--header-timeout-ms", "300"]);
    let mut s = d.connect();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        let ctx = format!("request #{i} at {:?}", start.elapsed());
        s.write_all(HEALTHZ.as_bytes())
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_ok_healthz(&next(&mut s, &ctx), &ctx);
        std::thread::sleep(Duration::from_millis(100));
        i += 1;
    }
    assert!(i >= 10);
}

#[test]
fn sse_stream_is_not_cut_by_idle_timeout() {
    let d = Daemon::start(&[
        "--idle-timeout-ms",
        "300",
        "--header-timeout-ms",
        "300",
        "--poll-interval-ms",
        "50",
    ]);
    // A log written by "another program": logcast streams it until the client leaves.
    let path = d.log_path("external");
    std::fs::write(&path, "first\n").unwrap();
    let mut st = common::SseStream::open(&d, "/api/logs/external/stream", &[]);
    assert_eq!(st.head.status, 200, "stream head: {:?}", st.head);
    let ev = st.next_event(Duration::from_secs(2)).expect("first event");
    assert_eq!(ev.data.as_deref(), Some("first"));
    // Silence for well over the idle timeout, then a new line must still arrive.
    std::thread::sleep(Duration::from_millis(1000));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"second\n").unwrap();
    let ev = st
        .next_event(Duration::from_secs(2))
        .expect("stream was cut by the idle/header timeout");
    assert_eq!(ev.data.as_deref(), Some("second"));
}

// ---------------------------------------------------------------------------
// connection limit
// ---------------------------------------------------------------------------

#[test]
fn over_max_connections_gets_503_then_recovers() {
    let d = Daemon::start(&["--max-connections", "5"]);
    let mut held = Vec::new();
    for i in 0..5 {
        let mut s = send(&d, HEALTHZ.as_bytes());
        assert_ok_healthz(&next(&mut s, &format!("held #{i}")), &format!("held #{i}"));
        held.push(s);
    }
    let mut s6 = d.connect();
    let _ = s6.write_all(HEALTHZ.as_bytes());
    let r = next(&mut s6, "6th connection");
    assert_json_error(&r, 503, "6th connection");
    assert!(
        has_connection_close(&r),
        "503 without Connection: close: {}",
        show(&r)
    );
    assert!(
        is_closed(&mut s6, Duration::from_secs(2)),
        "6th connection left open"
    );

    // The held connections still work.
    for (i, s) in held.iter_mut().enumerate() {
        s.write_all(HEALTHZ.as_bytes()).unwrap();
        assert_ok_healthz(
            &next(s, &format!("held #{i} again")),
            &format!("held #{i} again"),
        );
    }

    // Close two; new connections are accepted again.
    held.truncate(3);
    let ok = common::eventually(Duration::from_secs(3), || {
        let mut s = d.connect();
        if s.write_all(HEALTHZ.as_bytes()).is_err() {
            return false;
        }
        matches!(read_response(&mut s, false), Some(r) if r.status == 200)
    });
    assert!(ok, "no connection accepted after closing two of five");
    // And the refusal was counted.
    let refused = d.metric("logcast_connections_refused_total");
    assert!(
        refused.unwrap_or(0.0) >= 1.0,
        "logcast_connections_refused_total = {refused:?}"
    );
}

// ---------------------------------------------------------------------------
// robustness details (RFC 9110 / 9112)
// ---------------------------------------------------------------------------

#[test]
fn head_of_exactly_8_kib_is_accepted_one_more_byte_is_431() {
    let d = Daemon::start(&[]);
    let make = |total: usize| {
        let start = "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: ";
        let pad = total - start.len() - "\r\n\r\n".len();
        format!("{start}{}\r\n\r\n", "p".repeat(pad))
    };
    let exact = make(8192);
    assert_eq!(exact.len(), 8192);
    let mut s = send(&d, format!("{exact}{NOPE}").as_bytes());
    assert_ok_healthz(&next(&mut s, "8192-byte head"), "8192-byte head");
    assert_json_error(
        &next(&mut s, "after 8192-byte head"),
        404,
        "after 8192-byte head",
    );
    let over = make(8193);
    expect_error_and_close(&d, over.as_bytes(), 431, "8193-byte head");
}

#[test]
fn one_empty_line_before_a_request_line_is_ignored() {
    // RFC 9112 section 2.2: a server SHOULD ignore at least one empty line
    // received before the request-line (old clients send a CRLF after a body).
    let d = Daemon::start(&[]);
    let req =
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\r\n{NOPE}");
    let mut s = send(&d, req.as_bytes());
    assert_ok_healthz(&next(&mut s, "request with body"), "request with body");
    assert_json_error(
        &next(&mut s, "request after CRLF"),
        404,
        "request after CRLF",
    );
    let mut s = send(&d, format!("\r\n{HEALTHZ}").as_bytes());
    assert_ok_healthz(&next(&mut s, "leading CRLF"), "leading CRLF");
}

#[test]
fn expect_100_continue_gets_an_immediate_answer() {
    // RFC 9110 section 10.1.1: on `Expect: 100-continue` with a body to come,
    // an origin server MUST at once send either the final status (when the
    // head alone decides it) or `100 Continue`. curl waits 1 s otherwise.
    let d = Daemon::start(&[]);
    for (req, final_status) in [
        ("POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", 405),
        ("POST /api/logs?duration=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", 201),
    ] {
        let mut s = send(&d, req.as_bytes());
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let head = read_head(&mut s).unwrap_or_else(|| {
            panic!("no 100 Continue nor a final response within 500 ms for {req:?} (the daemon waits for the body)")
        });
        let head = String::from_utf8_lossy(&head).into_owned();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if head.starts_with("HTTP/1.1 100") {
            s.write_all(b"hello").unwrap();
            let r = next(&mut s, "final after 100");
            assert_eq!(r.status, final_status, "{req:?}: {}", show(&r));
        } else {
            assert!(head.starts_with(&format!("HTTP/1.1 {final_status}")), "{req:?}: {head:?}");
        }
    }
}

/// Reads to the end and tells whether the daemon ended with a clean FIN
/// (`Ok(0)`) rather than a reset.
fn ends_with_fin(s: &mut TcpStream) -> Result<(), std::io::Error> {
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => continue,
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn error_close_does_not_reset_unread_input() {
    // RFC 9112 section 9.6: closing at once while the client's bytes are still
    // unread makes the kernel send a reset, which "might erase the client's
    // unacknowledged input buffers before they can be read" -- the client can
    // lose the very error response. Servers close in stages: shut down the
    // write side, drain the input for a while, then close.
    let d = Daemon::start(&[]);
    let junk = vec![b'j'; 64 * 1024];
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (
            [
                &b"GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
                &junk,
            ]
            .concat(),
            501,
        ),
        (
            [
                &b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n"[..],
                &junk,
            ]
            .concat(),
            413,
        ),
        ([&b"HELLO\r\n\r\n"[..], &junk].concat(), 400),
    ];
    let mut failures = Vec::new();
    for (req, status) in &cases {
        let mut s = d.connect();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(req);
        let r = next(&mut s, &format!("{status} case"));
        assert_eq!(r.status, *status, "{}", show(&r));
        if let Err(e) = ends_with_fin(&mut s) {
            failures.push(format!(
                "{status}: connection ended with `{e}` instead of a clean close"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn header_timeout_does_not_cut_an_idle_keep_alive_connection() {
    // Between requests the idle timeout governs (SPEC: keep-alive idle for
    // 60 s); the header timeout runs from the first byte of a request head.
    let d = Daemon::start(&["--header-timeout-ms", "300", "--idle-timeout-ms", "3000"]);
    let mut s = send(&d, HEALTHZ.as_bytes());
    assert_ok_healthz(&next(&mut s, "first"), "first");
    std::thread::sleep(Duration::from_millis(800));
    s.write_all(HEALTHZ.as_bytes())
        .expect("write after 800 ms idle");
    let r = read_response(&mut s, false)
        .expect("keep-alive connection closed after 800 ms idle with --idle-timeout-ms 3000");
    assert_ok_healthz(&r, "after idling");
    // And the header timeout still applies to the next head, from its first byte.
    std::thread::sleep(Duration::from_millis(500));
    s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let start = Instant::now();
    let r = next(&mut s, "partial head after idling");
    assert_json_error(&r, 408, "partial head after idling");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "408 after {:?}",
        start.elapsed()
    );
}
