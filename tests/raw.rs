//! `GET /api/logs/<id>/raw` (SPEC section 3, issue 12 item 3) over real
//! sockets: the whole file, one range (206) or none (416), HEAD,
//! `?download=1`, the id rules, keep-alive after a body, a big file sent
//! while other requests keep being answered, and a client that reads
//! nothing being dropped.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// `len` bytes of numbered lines: every offset has a known, distinct byte.
fn content(len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while bytes.len() < len {
        bytes.extend_from_slice(format!("line {i:08}\n").as_bytes());
        i += 1;
    }
    bytes.truncate(len);
    bytes
}

/// A daemon with log `id` holding `bytes`.
fn daemon_with(id: &str, bytes: &[u8], args: &[&str]) -> Daemon {
    let d = Daemon::start(args);
    std::fs::write(d.log_path(id), bytes).expect("write log");
    d
}

fn get_range(d: &Daemon, target: &str, range: &str) -> Response {
    d.request_with("GET", target, &[&format!("Range: {range}")])
}

/// Reads one response with a `Content-Length` body from a keep-alive socket.
fn read_one(s: &mut TcpStream, what: &str) -> Response {
    read_response(s, false).unwrap_or_else(|| panic!("{what}: no complete response"))
}

#[test]
fn the_whole_file_with_its_headers() {
    let bytes = content(100_000);
    let d = daemon_with("app", &bytes, &[]);
    let r = d.get("/api/logs/app/raw");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("100000"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("server"), Some("logcast"));
    assert!(r.header("etag").is_some_and(|t| t.ends_with('"')), "{r:?}");
    assert!(r
        .header("last-modified")
        .is_some_and(|t| t.ends_with(" GMT")));
    assert_eq!(r.header("content-disposition"), None);
    assert!(r.body == bytes, "the body differs from the file");
}

#[test]
fn an_empty_log_is_an_empty_body() {
    let d = daemon_with("empty", b"", &[]);
    let r = d.get("/api/logs/empty/raw");
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
    assert!(r.body.is_empty());
}

#[test]
fn one_range_of_each_form() {
    let bytes = content(10_000);
    let d = daemon_with("app", &bytes, &[]);
    let cases = [
        ("bytes=10-19", 10..20),
        ("bytes=9990-", 9990..10_000),
        ("bytes=-25", 9975..10_000),
        ("bytes=0-0", 0..1),
        // A last position past the end means "to the end".
        ("bytes=9000-999999999", 9000..10_000),
        ("bytes=-999999", 0..10_000),
    ];
    for (range, want) in cases {
        let r = get_range(&d, "/api/logs/app/raw", range);
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {}-{}/10000", want.start, want.end - 1).as_str()),
            "{range}"
        );
        let len = (want.end - want.start).to_string();
        assert_eq!(r.header("content-length"), Some(len.as_str()), "{range}");
        assert!(r.body == bytes[want.clone()], "{range}: wrong bytes");
    }
}

#[test]
fn a_range_past_the_end_is_416_with_the_size() {
    let d = daemon_with("app", &content(1000), &[]);
    for range in ["bytes=1000-", "bytes=5000-6000", "bytes=-0"] {
        let r = get_range(&d, "/api/logs/app/raw", range);
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("content-range"), Some("bytes */1000"), "{range}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.text().contains("\"error\""), "{range}: {}", r.text());
    }
}

/// RFC 9110 section 14.2: a Range header that cannot be read is ignored;
/// several ranges are answered with the whole file (see src/http/range.rs).
#[test]
fn a_malformed_range_or_several_ranges_get_the_whole_file() {
    let bytes = content(5000);
    let d = daemon_with("app", &bytes, &[]);
    for range in [
        "bytes=abc",
        "bytes=20-10",
        "bytes=",
        "lines=0-5",
        "bytes=1-2-3",
        "bytes=0-1,5-6",
    ] {
        let r = get_range(&d, "/api/logs/app/raw", range);
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.header("content-range"), None, "{range}");
        assert!(r.body == bytes, "{range}: not the whole file");
    }
}

#[test]
fn head_announces_the_whole_file_and_sends_nothing() {
    let d = daemon_with("app", &content(70_000), &[]);
    for headers in [&[][..], &["Range: bytes=0-9"][..]] {
        let (r, rest) = d.request_full("HEAD", "/api/logs/app/raw", headers);
        assert_eq!(r.status, 200, "{headers:?}");
        assert_eq!(r.header("content-length"), Some("70000"), "{headers:?}");
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert!(rest.is_empty(), "HEAD sent {} body bytes", rest.len());
    }
}

#[test]
fn download_asks_for_an_attachment_named_after_the_log() {
    let bytes = content(3000);
    let d = daemon_with("build-42.x", &bytes, &[]);
    let r = d.get("/api/logs/build-42.x/raw?download=1");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"build-42.x.log\"")
    );
    assert!(r.body == bytes);
    let r = d.get("/api/logs/build-42.x/raw?download=0");
    assert_eq!(r.header("content-disposition"), None);
}

#[test]
fn unknown_logs_and_hostile_ids_are_404_and_touch_nothing_outside() {
    let base = temp_dir("raw-hostile");
    let _cleanup = RemoveOnDrop(vec![base.clone()]);
    let logs = base.join("logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    std::fs::write(base.join("secret.log"), b"SECRET\n").expect("secret");
    std::fs::write(logs.join(".hidden.log"), b"HIDDEN\n").expect("hidden");
    std::fs::create_dir(logs.join("dir.log")).expect("a directory named like a log");
    let d = Daemon::start_in(&logs, &[]);
    for target in [
        "/api/logs/nope/raw",
        "/api/logs/dir/raw",
        "/api/logs/..%2fsecret/raw",
        "/api/logs/..%2Fsecret/raw",
        "/api/logs/%2e%2e%2fsecret/raw",
        "/api/logs/../secret/raw",
        "/api/logs/..%5csecret/raw",
        "/api/logs/.hidden/raw",
        "/api/logs/%2ehidden/raw",
        "/api/logs/secret%00/raw",
        "/api/logs/%2fetc%2fpasswd/raw",
        "/api/logs//raw",
    ] {
        let r = d.get(target);
        assert_eq!(r.status, 404, "{target}");
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{target}"
        );
        assert!(!r.text().contains("SECRET") && !r.text().contains("HIDDEN"));
    }
}

/// A read-only daemon (and a finished, 0444 log) still serves files.
#[test]
fn read_only_daemons_serve_finished_logs() {
    let bytes = content(2000);
    let d = daemon_with("done", &bytes, &["--read-only"]);
    make_read_only(&d.log_path("done"));
    let r = d.get("/api/logs/done/raw");
    assert_eq!(r.status, 200);
    assert!(r.body == bytes);
}

/// Keep-alive after a body: the connection reads the next request, also
/// one that was sent (pipelined) before the body was complete.
#[test]
fn the_connection_reads_the_next_request_after_a_body() {
    let bytes = content(600_000);
    let d = daemon_with("app", &bytes, &[]);
    let mut s = d.connect();
    s.write_all(b"GET /api/logs/app/raw HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let r = read_one(&mut s, "response 1");
    assert_eq!(r.status, 200);
    assert!(r.body == bytes);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let r = read_one(&mut s, "response 2");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    // Pipelined: a range, the whole file, then a request after them.
    s.write_all(
        b"GET /api/logs/app/raw HTTP/1.1\r\nHost: t\r\nRange: bytes=5-9\r\n\r\n\
          GET /api/logs/app/raw HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /api/logs/nope/raw HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let r = read_one(&mut s, "response 3");
    assert_eq!(r.status, 206);
    assert!(r.body == bytes[5..10]);
    let r = read_one(&mut s, "response 4");
    assert_eq!(r.status, 200);
    assert!(r.body == bytes, "second body differs");
    let r = read_one(&mut s, "response 5");
    assert_eq!(r.status, 404);
    assert!(is_closed(&mut s, Duration::from_secs(5)), "not closed");
}

/// A 64 MiB file: sent whole and exact, in bounded pieces (the daemon's
/// memory does not grow by the file), while `/healthz` keeps answering.
#[test]
fn a_big_file_is_sent_while_other_requests_are_answered() {
    let bytes = content(64 << 20);
    let d = daemon_with("big", &bytes, &[]);
    let rss_before = d.rss_kib();
    let mut s = d.connect();
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(b"GET /api/logs/big/raw HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let head = read_head(&mut s).expect("head");
    assert!(head.starts_with(b"HTTP/1.1 200 "), "{head:?}");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (received, statuses, rss_during) = std::thread::scope(|scope| {
        let poller = scope.spawn(|| {
            let mut statuses = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) || statuses.is_empty() {
                statuses.push(d.get("/healthz").status);
            }
            statuses
        });
        let mut received = Vec::with_capacity(bytes.len());
        let mut buf = vec![0u8; 1 << 16];
        let mut rss_during = 0;
        while received.len() < bytes.len() {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
            if rss_during == 0 && received.len() > 8 << 20 {
                rss_during = d.rss_kib();
            }
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (received, poller.join().expect("poller"), rss_during)
    });
    assert_eq!(received.len(), bytes.len(), "short body");
    assert!(received == bytes, "the body differs from the file");
    assert!(
        !statuses.is_empty() && statuses.iter().all(|&s| s == 200),
        "{statuses:?}"
    );
    assert!(
        rss_during < rss_before + 16 * 1024,
        "memory grew with the file: {rss_before} KiB -> {rss_during} KiB"
    );
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    assert_eq!(read_one(&mut s, "response 6").status, 200);
}

/// `--stall-timeout-ms` covers file bodies: a client that asks for a big
/// file and reads nothing is dropped, and the file's descriptor with it.
#[test]
fn a_client_that_reads_nothing_is_dropped_and_its_file_released() {
    let d =
        Daemon::try_start(&["--stall-timeout-ms", "1000"]).unwrap_or_else(|why| panic!("{why}"));
    std::fs::write(d.log_path("big"), content(20 << 20)).expect("write log");
    let mut silent = d.connect_small(4096);
    silent
        .write_all(b"GET /api/logs/big/raw HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    assert!(
        eventually(Duration::from_secs(5), || d.open_fds_under(&d.log_dir) == 1),
        "the file is not open while it is being sent"
    );
    assert!(
        eventually(Duration::from_secs(10), || d
            .metric("logcast_timeouts_total{kind=\"stall\"}")
            == Some(1.0)),
        "no stall timeout: {:?}",
        d.metric("logcast_timeouts_total{kind=\"stall\"}")
    );
    assert_eq!(d.open_fds_under(&d.log_dir), 0, "the file is still open");
    // Whatever was in flight, then the end: never the whole file.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    loop {
        match silent.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the connection was not closed: {e} after {got} bytes"),
        }
    }
    assert!(got < 20 << 20, "the whole file arrived ({got} bytes)");
}

/// The file is held open from the request on: bytes appended later are
/// not sent (the length was announced), and a file that shrinks ends the
/// connection rather than sending less than announced.
#[test]
fn the_size_is_fixed_when_asked_and_a_shrunk_file_ends_the_connection() {
    let bytes = content(8 << 20);
    let d = daemon_with("app", &bytes, &[]);
    let mut s = d.connect_small(4096);
    s.write_all(b"GET /api/logs/app/raw HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let head = read_head(&mut s).expect("head");
    let text = String::from_utf8_lossy(&head);
    assert!(text.contains("Content-Length: 8388608\r\n"), "{text}");
    assert!(
        eventually(Duration::from_secs(5), || d.open_fds_under(&d.log_dir) == 1),
        "the file is not held open"
    );
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(d.log_path("app"))
        .expect("open");
    file.set_len(1 << 20).expect("truncate");
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the connection was not ended: {e} after {got} bytes"),
        }
    }
    assert!(got < 8 << 20, "{got} bytes of a file cut to 1 MiB");
    assert!(
        eventually(Duration::from_secs(5), || d.open_fds_under(&d.log_dir) == 0),
        "the file is still open"
    );
}
