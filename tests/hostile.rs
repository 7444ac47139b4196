//! Hostile input (issue 6): property tests that throw random bytes, random
//! splits of valid requests and mutated valid requests at ONE live daemon per
//! property, plus explicit classic attacks (request smuggling shapes, control
//! bytes, overlong lines, non-UTF-8 and traversal paths).
//!
//! For every exchange: the reply is either nothing (closed) or a sequence of
//! complete `HTTP/1.1 NNN` responses; no 5xx except 501/503; every response
//! carries `Server: logcast`; the daemon still answers `/healthz` afterwards;
//! and when the test ends its open descriptors are back at the start level.

mod common;

use common::{read_response, Daemon};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use std::time::Duration;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

fn lossy(b: &[u8]) -> String {
    let cut = &b[..b.len().min(300)];
    format!(
        "{:?}{}",
        String::from_utf8_lossy(cut),
        if b.len() > 300 { "..." } else { "" }
    )
}

/// One parsed response out of a raw reply.
#[derive(Debug, Clone)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn closes(&self) -> bool {
        self.header("connection")
            .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            .unwrap_or(false)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits a raw reply into complete responses. Fails on anything that is not a
/// sequence of `HTTP/1.1 NNN ...` heads each followed by exactly its body
/// (`Content-Length` bytes, or none for HEAD/204/304).
fn parse_reply(reply: &[u8]) -> Result<Vec<Resp>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < reply.len() {
        let rest = &reply[pos..];
        if !rest.starts_with(b"HTTP/1.1 ")
            || rest.len() < 13
            || !rest[9..12].iter().all(u8::is_ascii_digit)
            || rest[12] != b' '
        {
            return Err(format!(
                "at byte {pos}: not an `HTTP/1.1 NNN ` status line: {}",
                lossy(rest)
            ));
        }
        let head_len = find(rest, b"\r\n\r\n")
            .ok_or_else(|| format!("at byte {pos}: incomplete head: {}", lossy(rest)))?
            + 4;
        let head = String::from_utf8_lossy(&rest[..head_len]).into_owned();
        let status: u16 = head[9..12].parse().unwrap();
        let mut headers = Vec::new();
        for line in head.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
            let (n, v) = line
                .split_once(':')
                .ok_or_else(|| format!("header line without colon: {line:?}"))?;
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        let after = pos + head_len;
        if resp
            .header("content-type")
            .map(|v| v.starts_with("text/event-stream"))
            .unwrap_or(false)
        {
            resp.body = reply[after..].to_vec();
            out.push(resp);
            break;
        }
        let cl = match resp.header("content-length") {
            Some(v) => Some(
                v.parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {v:?}"))?,
            ),
            None => None,
        };
        let next_ok = |at: usize| {
            at == reply.len() || (at < reply.len() && reply[at..].starts_with(b"HTTP/1.1 "))
        };
        match cl {
            Some(n) if after + n <= reply.len() && next_ok(after + n) => {
                resp.body = reply[after..after + n].to_vec();
                pos = after + n;
            }
            // HEAD responses, 204, 304: no body follows the head.
            _ if next_ok(after) => pos = after,
            _ => {
                return Err(format!(
                    "status {status}: body does not match Content-Length {cl:?}: head {head:?}, then {}",
                    lossy(&reply[after..])
                ))
            }
        }
        out.push(resp);
    }
    Ok(out)
}

/// Sends `pieces` (one write each, optional pause between them), half-closes the
/// write side, and reads everything until the daemon closes. Fails if the daemon
/// does not close within 2 s of a read.
fn exchange(d: &Daemon, pieces: &[&[u8]], pause: Duration) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect_timeout(&d.addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_nodelay(true).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    for (i, p) in pieces.iter().enumerate() {
        if s.write_all(p).is_err() {
            break; // the daemon answered and closed early (e.g. a 400): fine
        }
        if !pause.is_zero() && i + 1 < pieces.len() {
            std::thread::sleep(pause);
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err(format!(
                    "daemon did not close the connection within 2 s after the client's EOF; got so far {}",
                    lossy(&out)
                ));
            }
            Err(_) => break, // reset after the daemon closed with unread input
        }
    }
    Ok(out)
}

/// Checks the invariants of one reply and returns its statuses.
fn check_reply(reply: &[u8]) -> Result<Vec<Resp>, String> {
    let resps = parse_reply(reply)?;
    for r in &resps {
        if r.status >= 500 && r.status != 501 && r.status != 503 {
            return Err(format!("5xx response {}: {r:?}", r.status));
        }
        if r.header("server") != Some("logcast") {
            return Err(format!("response without `Server: logcast`: {r:?}"));
        }
        if r.status < 100 || r.status > 599 {
            return Err(format!("nonsense status {}", r.status));
        }
    }
    Ok(resps)
}

fn healthz(d: &Daemon) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&d.addr, Duration::from_secs(2))
        .map_err(|e| format!("healthz connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("healthz write: {e}"))?;
    match read_response(&mut s, false) {
        Some(r) if r.status == 200 && r.body == b"ok" => Ok(()),
        other => Err(format!("daemon no longer answers /healthz: {other:?}")),
    }
}

/// A daemon, a bystander keep-alive connection (which no other request may
/// disturb) and the daemon's descriptor count at the start.
struct Fixture {
    d: Daemon,
    fds0: usize,
    bystander: TcpStream,
}

impl Fixture {
    fn new(d: Daemon) -> Fixture {
        healthz(&d).unwrap();
        let mut bystander = d.connect();
        bystander
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: bystander\r\n\r\n")
            .unwrap();
        assert_eq!(
            read_response(&mut bystander, false)
                .expect("bystander")
                .status,
            200
        );
        std::thread::sleep(Duration::from_millis(200));
        let fds0 = d.open_fds();
        assert!(fds0 > 0, "cannot read /proc/<pid>/fd");
        Fixture { d, fds0, bystander }
    }

    fn start(args: &[&str]) -> Fixture {
        Fixture::new(Daemon::start(args))
    }

    /// Asserts the bystander still works and the descriptors are back to the start level.
    fn finish(mut self) {
        self.bystander
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: bystander\r\n\r\n")
            .unwrap();
        let r =
            read_response(&mut self.bystander, false).expect("bystander connection was disturbed");
        assert_eq!(r.status, 200, "bystander: {r:?}");
        let d = &self.d;
        let fds0 = self.fds0;
        let ok = common::eventually(Duration::from_secs(5), || d.open_fds() <= fds0);
        assert!(
            ok,
            "daemon open fds: {} at the end, {} at the start",
            d.open_fds(),
            fds0
        );
    }

    /// One exchange (single write) with invariant checks; returns the responses.
    fn probe(&self, req: &[u8], ctx: &str) -> Vec<Resp> {
        let reply =
            exchange(&self.d, &[req], Duration::ZERO).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let resps =
            check_reply(&reply).unwrap_or_else(|e| panic!("{ctx}: {e}\nreply: {}", lossy(&reply)));
        healthz(&self.d).unwrap_or_else(|e| panic!("after {ctx}: {e}"));
        resps
    }

    /// Like `probe`, and asserts the sequence of statuses is one of `allowed`;
    /// a sequence ending in an error that closes (400, 408, 413, 414, 431, 501)
    /// must say `Connection: close` on that last response.
    fn expect(&self, req: &[u8], allowed: &[&[u16]], ctx: &str) -> Vec<Resp> {
        let resps = self.probe(req, ctx);
        let statuses: Vec<u16> = resps.iter().map(|r| r.status).collect();
        assert!(
            allowed.contains(&statuses.as_slice()),
            "{ctx}: statuses {statuses:?}, expected one of {allowed:?}\nrequest: {}\nresponses: {resps:?}",
            lossy(req)
        );
        if let Some(last) = resps.last() {
            if [400, 408, 413, 414, 431, 501].contains(&last.status) {
                assert!(
                    last.closes(),
                    "{ctx}: {} without `Connection: close`: {last:?}",
                    last.status
                );
            }
            if last.status >= 400 {
                let ct = last.header("content-type").unwrap_or("");
                assert!(
                    ct.starts_with("application/json"),
                    "{ctx}: error not JSON: {last:?}"
                );
                let body = String::from_utf8_lossy(&last.body);
                assert!(body.contains("\"error\""), "{ctx}: error body {body:?}");
            }
        }
        resps
    }
}

const NOPE: &str = "GET /api/logs/nope HTTP/1.1\r\nHost: t\r\n\r\n";

// ---------------------------------------------------------------------------
// properties
// ---------------------------------------------------------------------------

/// Valid requests (possibly pipelined) and the statuses they must get.
const VALID: &[(&str, &[u16])] = &[
    ("GET /healthz HTTP/1.1\r\nHost: a\r\nUser-Agent: prop\r\n\r\n", &[200]),
    (
        "GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /api/logs/nope HTTP/1.1\r\nHost: a\r\n\r\n",
        &[200, 404],
    ),
    (
        "GET /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nwxyz\r\n0\r\nT: 1\r\n\r\nHEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        &[200, 200],
    ),
    ("GET /metrics HTTP/1.0\r\n\r\n", &[200]),
    ("DELETE /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /api/logs HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &[405, 200]),
    ("GET /api/logs/nope/stream?last_event_id=5 HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 7\r\n\r\n", &[404]),
    ("HEAD /api/logs/..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", &[404, 200]),
];

/// Counts what the daemon answered over a property run, so a run that never
/// reached the daemon's parser (every reply empty, say) cannot pass silently.
#[derive(Default)]
struct Tally(std::sync::Mutex<std::collections::BTreeMap<String, usize>>);

impl Tally {
    fn add(&self, resps: &[Resp]) {
        let mut m = self.0.lock().unwrap();
        if resps.is_empty() {
            *m.entry("closed".into()).or_default() += 1;
        }
        for r in resps {
            *m.entry(r.status.to_string()).or_default() += 1;
        }
        *m.entry("cases".into()).or_default() += 1;
    }
    fn get(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }
    fn show(&self) -> String {
        format!("{:?}", self.0.lock().unwrap())
    }
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        max_shrink_time: 30_000,
        ..Config::default()
    }
}

fn run_case(d: &Daemon, pieces: &[&[u8]], pause: Duration) -> Result<Vec<Resp>, TestCaseError> {
    let all: Vec<u8> = pieces.concat();
    let reply = exchange(d, pieces, pause)
        .map_err(|e| TestCaseError::fail(format!("{e}\nrequest: {}", lossy(&all))))?;
    let resps = check_reply(&reply).map_err(|e| {
        TestCaseError::fail(format!(
            "{e}\nrequest: {}\nreply: {}",
            lossy(&all),
            lossy(&reply)
        ))
    })?;
    healthz(d).map_err(|e| TestCaseError::fail(format!("after request {}: {e}", lossy(&all))))?;
    Ok(resps)
}

const TOKENS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b" ",
    b"  ",
    b"/",
    b"/healthz",
    b"/metrics",
    b"/api/logs",
    b"/api/logs/",
    b"/stream",
    b"nope",
    b"?",
    b"tail=",
    b"last_event_id=",
    b"from=",
    b"&",
    b"=",
    b"%",
    b"%2e",
    b"%2F",
    b"%00",
    b"..",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/1.",
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b": ",
    b"Host",
    b"Content-Length",
    b"Transfer-Encoding",
    b"Connection",
    b"Last-Event-ID",
    b"chunked",
    b"close",
    b"keep-alive",
    b"gzip",
    b",",
    b";",
    b"0",
    b"1",
    b"5",
    b"a",
    b"ff",
    b"-1",
    b"99999999999999999999",
    b"\t",
    b"\0",
    b"\x7f",
    b"\xff",
    b"\r\n\r\n",
    b"0\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n",
];

#[test]
fn random_bytes_never_break_the_daemon() {
    let fx = Fixture::start(&[]);
    let d = &fx.d;
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..700),
        (
            prop::sample::select(vec![
                "GET /",
                "GET /healthz HTTP/1.1\r\n",
                "HEAD /api/logs/",
                "GET / HTTP/1.1\r\nHost: "
            ]),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(p, r)| [p.as_bytes(), &r].concat()),
        prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 0..48)
            .prop_map(|t| t.concat()),
    ];
    // Half the cases end with a blank line, so that the garbage reaches the
    // parser instead of waiting for the end of a head that never comes.
    let strategy = (strategy, any::<bool>()).prop_map(|(mut bytes, terminate)| {
        if terminate {
            bytes.extend_from_slice(b"\r\n\r\n");
        }
        bytes
    });
    let tally = Tally::default();
    let mut runner = TestRunner::new(config(1500));
    let result = runner.run(&strategy, |bytes| {
        tally.add(&run_case(d, &[&bytes], Duration::ZERO)?);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("random bytes: {}", tally.show());
    assert!(tally.get("cases") >= 1500, "{}", tally.show());
    assert!(tally.get("400") >= 500, "too few 400s: {}", tally.show());
    fx.finish();
}

#[test]
fn valid_requests_split_anywhere_are_answered_exactly() {
    let fx = Fixture::start(&[]);
    let d = &fx.d;
    let strategy = (
        0..VALID.len(),
        prop::collection::vec(any::<Index>(), 0..8),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(config(1000));
    let result = runner.run(&strategy, |(which, cuts, pause)| {
        let (req, want) = VALID[which];
        let req = req.as_bytes();
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(req.len() + 1)).collect();
        at.push(0);
        at.push(req.len());
        at.sort_unstable();
        at.dedup();
        let pieces: Vec<&[u8]> = at.windows(2).map(|w| &req[w[0]..w[1]]).collect();
        let pause = if pause {
            Duration::from_millis(1)
        } else {
            Duration::ZERO
        };
        let resps = run_case(d, &pieces, pause)?;
        let got: Vec<u16> = resps.iter().map(|r| r.status).collect();
        prop_assert_eq!(
            &got[..],
            want,
            "pieces {:?}",
            pieces.iter().map(|p| lossy(p)).collect::<Vec<_>>()
        );
        for r in &resps {
            if r.status == 200
                && r.header("content-type")
                    .map(|c| c.starts_with("text/plain; charset"))
                    .unwrap_or(false)
            {
                // /healthz (GET) carries "ok"; HEAD carries nothing.
                prop_assert!(
                    r.body.is_empty() || r.body == b"ok",
                    "healthz body {:?}",
                    lossy(&r.body)
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    fx.finish();
}

#[test]
fn mutated_valid_requests_never_break_the_daemon() {
    let fx = Fixture::start(&[]);
    let d = &fx.d;
    let strategy = (
        0..VALID.len(),
        prop::collection::vec((0u8..4, any::<Index>(), any::<u8>()), 1..8),
    );
    let tally = Tally::default();
    let mut runner = TestRunner::new(config(1500));
    let result = runner.run(&strategy, |(which, edits)| {
        let mut req = VALID[which].0.as_bytes().to_vec();
        for (op, idx, byte) in edits {
            match op {
                0 if !req.is_empty() => {
                    let i = idx.index(req.len());
                    req[i] ^= 1 << (byte % 8);
                }
                1 => {
                    let i = idx.index(req.len() + 1);
                    req.insert(i, byte);
                }
                2 if !req.is_empty() => {
                    let i = idx.index(req.len());
                    req.remove(i);
                }
                3 if !req.is_empty() => {
                    let i = idx.index(req.len());
                    req[i] = byte;
                }
                _ => {}
            }
        }
        tally.add(&run_case(d, &[&req], Duration::ZERO)?);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!("mutations: {}", tally.show());
    assert!(tally.get("cases") >= 1500, "{}", tally.show());
    assert!(
        tally.get("200") >= 100 && tally.get("400") >= 100,
        "too little variety: {}",
        tally.show()
    );
    fx.finish();
}

// ---------------------------------------------------------------------------
// classic attacks
// ---------------------------------------------------------------------------

/// A chunked body whose only chunk is itself a request for /metrics: a daemon
/// that does not parse the body as chunked answers it (or chokes on `22`).
const CHUNKED_SMUGGLE: &str = "22\r\nGET /metrics HTTP/1.1\r\nHost: y\r\n\r\n\r\n0\r\n\r\n";

fn te_probe(te_lines: &str) -> String {
    format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{te_lines}\r\n{CHUNKED_SMUGGLE}{NOPE}")
}

#[test]
fn smuggling_transfer_encoding_shapes() {
    let fx = Fixture::start(&[]);
    const OK: &[u16] = &[200, 404];
    let cases: &[(&str, &[&[u16]])] = &[
        ("Transfer-Encoding: chunked\r\n", &[OK]),
        ("Transfer-Encoding:chunked\r\n", &[OK]),
        (
            "Transfer-Encoding: \t chunked \t\r\n",
            &[OK, &[400], &[501]],
        ),
        ("Transfer-Encoding: CHUNKED\r\n", &[OK, &[501]]),
        ("Transfer-Encoding: chunked, gzip\r\n", &[&[400], &[501]]),
        ("Transfer-Encoding: gzip, chunked\r\n", &[&[400], &[501]]),
        (
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            &[&[400], &[501]],
        ),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            &[&[400], &[501]],
        ),
        (
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            &[OK, &[400], &[501]],
        ),
        ("Transfer-Encoding: identity\r\n", &[&[400], &[501]]),
        ("Transfer-Encoding: xchunked\r\n", &[&[400], &[501]]),
        ("Transfer-Encoding: chunkedx\r\n", &[&[400], &[501]]),
        ("Transfer-Encoding: \"chunked\"\r\n", &[&[400], &[501]]),
        ("Transfer-Encoding: chunked;q=1\r\n", &[&[400], &[501]]),
        ("Transfer-Encoding : chunked\r\n", &[&[400]]),
        ("Transfer-Encoding\t: chunked\r\n", &[&[400]]),
        (" Transfer-Encoding: chunked\r\n", &[&[400], &[200, 400]]),
        // obs-fold: either rejected, or unfolded to `chunked`
        ("Transfer-Encoding:\r\n chunked\r\n", &[OK, &[400]]),
        // obs-fold hiding the header inside another one: rejected, or the body
        // is not a body (then `22` is a malformed request line → 400)
        (
            "X-Pad: a\r\n Transfer-Encoding: chunked\r\n",
            &[&[400], &[200, 400]],
        ),
        (
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            &[&[400]],
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            &[&[400]],
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
            &[&[400]],
        ),
    ];
    for (lines, allowed) in cases {
        let req = te_probe(lines);
        fx.expect(req.as_bytes(), allowed, &format!("TE shape {lines:?}"));
    }
    fx.finish();
}

#[test]
fn smuggling_content_length_shapes() {
    let fx = Fixture::start(&[]);
    let smuggled = "GET /metrics HTTP/1.1\r\nHost: y\r\n\r\n"; // 34 bytes
    let body_long = format!("hello{smuggled}"); // 39 bytes
    assert_eq!(body_long.len(), 39);
    let cases: Vec<(String, &[&[u16]])> = vec![
        (
            format!("Content-Length: 5\r\nContent-Length: 39\r\n\r\n{body_long}"),
            &[&[400]],
        ),
        (
            format!("Content-Length: 39\r\nContent-Length: 5\r\n\r\n{body_long}"),
            &[&[400]],
        ),
        (
            format!("Content-Length: 5, 39\r\n\r\n{body_long}"),
            &[&[400]],
        ),
        (
            "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello".to_string(),
            &[&[200, 404], &[400]],
        ),
        (
            "Content-Length: 5, 5\r\n\r\nhello".to_string(),
            &[&[200, 404], &[400]],
        ),
        ("Content-Length: +5\r\n\r\nhello".to_string(), &[&[400]]),
        ("Content-Length: -5\r\n\r\nhello".to_string(), &[&[400]]),
        ("Content-Length: 0x5\r\n\r\nhello".to_string(), &[&[400]]),
        ("Content-Length: 5e0\r\n\r\nhello".to_string(), &[&[400]]),
        ("Content-Length: 5 5\r\n\r\nhello".to_string(), &[&[400]]),
        ("Content-Length: abc\r\n\r\nhello".to_string(), &[&[400]]),
        ("Content-Length: \r\n\r\nhello".to_string(), &[&[400]]),
        (
            "Content-Length: 99999999999999999999999\r\n\r\nhello".to_string(),
            &[&[400], &[413]],
        ),
        (
            "Content-Length: 18446744073709551621\r\n\r\nhello".to_string(),
            &[&[400], &[413]],
        ),
        (
            "Content-Length:  5 \r\n\r\nhello".to_string(),
            &[&[200, 404]],
        ),
        (
            "Content-Length: 05\r\n\r\nhello".to_string(),
            &[&[200, 404]],
        ),
    ];
    for (rest, allowed) in &cases {
        let req = format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{rest}{NOPE}");
        fx.expect(
            req.as_bytes(),
            allowed,
            &format!("CL shape {:?}", rest.lines().next().unwrap_or("")),
        );
    }
    fx.finish();
}

#[test]
fn malformed_chunked_bodies() {
    let fx = Fixture::start(&[]);
    let cases: &[(&str, &[&[u16]])] = &[
        (
            "FFFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n",
            &[&[400], &[413]],
        ),
        ("10000000000000000\r\nabc\r\n0\r\n\r\n", &[&[400], &[413]]),
        ("-1\r\nabc\r\n0\r\n\r\n", &[&[400]]),
        ("zz\r\nabc\r\n0\r\n\r\n", &[&[400]]),
        ("\r\nabc\r\n0\r\n\r\n", &[&[400]]),
        ("3\r\nabcXX0\r\n\r\n", &[&[400]]),
        ("3\r\nabcd\r\n0\r\n\r\n", &[&[400]]),
        ("0x3\r\nabc\r\n0\r\n\r\n", &[&[400]]),
        ("3 \r\nabc\r\n0\r\n\r\n", &[&[200, 404], &[400]]),
        ("3\nabc\n0\n\n", &[&[200, 404], &[400]]),
        (
            "3\r\nabc\r\n0\r\nBad Trailer\r\n\r\n",
            &[&[400], &[200, 404]],
        ),
    ];
    for (body, allowed) in cases {
        let req = format!(
            "GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}{NOPE}"
        );
        fx.expect(req.as_bytes(), allowed, &format!("chunked body {body:?}"));
    }
    fx.finish();
}

#[test]
fn nul_and_control_bytes_in_the_head() {
    let fx = Fixture::start(&[]);
    let nope = NOPE.as_bytes();
    let cases: &[(&[u8], &[&[u16]])] = &[
        (b"GET /heal\0thz HTTP/1.1\r\nHost: t\r\n\r\n", &[&[400]]),
        (b"GET /heal\x01thz HTTP/1.1\r\nHost: t\r\n\r\n", &[&[400]]),
        (b"\0GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", &[&[400]]),
        (b"GE\0T /healthz HTTP/1.1\r\nHost: t\r\n\r\n", &[&[400]]),
        (b"GET /healthz HTTP/1.1\0\r\nHost: t\r\n\r\n", &[&[400]]),
        (
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n",
            &[&[400]],
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-\0A: ab\r\n\r\n",
            &[&[400]],
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n",
            &[&[400]],
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\x1bb\r\n\r\n",
            &[&[400]],
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n",
            &[&[400]],
        ),
        (b"GET /healthz HTTP/1.1\r\nHost: t\r\n\0\r\n\r\n", &[&[400]]),
        (
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\x7fb\r\n\r\n",
            &[&[200, 404], &[400]],
        ),
        (
            b"GET /healthz HTTP/1.1\nHost: t\n\n",
            &[&[200, 404], &[400]],
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: \xff\xfe\r\n\r\n",
            &[&[200, 404], &[400]],
        ),
    ];
    for (head, allowed) in cases {
        let req = [*head, nope].concat();
        fx.expect(&req, allowed, &format!("head {}", lossy(head)));
    }
    fx.finish();
}

#[test]
fn overlong_request_line_is_rejected() {
    let fx = Fixture::start(&[]);
    let req = format!(
        "GET /{} HTTP/1.1\r\nHost: t\r\n\r\n{NOPE}",
        "a".repeat(100 * 1024)
    );
    fx.expect(req.as_bytes(), &[&[431], &[414]], "100 KiB request line");
    let req = format!(
        "GET /api/logs/{} HTTP/1.1\r\nHost: t\r\n\r\n{NOPE}",
        "b".repeat(100 * 1024)
    );
    fx.expect(req.as_bytes(), &[&[431], &[414]], "100 KiB log id");
    // An endless head without CRLF at all.
    let req = vec![b'G'; 64 * 1024];
    fx.expect(&req, &[&[400], &[431]], "64 KiB of `G`");
    fx.finish();
}

#[test]
fn non_utf8_path_bytes() {
    let fx = Fixture::start(&[]);
    let nope = NOPE.as_bytes();
    let cases: &[&[u8]] = &[
        b"GET /api/logs/\xff\xfe HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /api/logs/\xff\xfe/stream HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /\xc3\x28 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /api/logs/%ff%fe HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /api/logs/%ff%fe/stream HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /api/logs/%c3%28/stream HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /api/logs/% HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /api/logs/%zz/stream HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /api/logs/%e2%80%ae HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /api/logs/nope?tail=%ff HTTP/1.1\r\nHost: t\r\n\r\n",
    ];
    for head in cases {
        let req = [*head, nope].concat();
        fx.expect(
            &req,
            &[&[404, 404], &[400]],
            &format!("path {}", lossy(head)),
        );
    }
    fx.finish();
}

#[test]
fn encoded_traversal_never_leaves_the_log_dir() {
    // Log dir inside a parent that holds a "secret.log" next to it.
    let parent = common::temp_dir("hostile-traversal");
    let log_dir = parent.join("logs");
    std::fs::create_dir_all(&log_dir).unwrap();
    std::fs::write(parent.join("secret.log"), "TOP-SECRET-CONTENT\n").unwrap();
    std::fs::write(log_dir.join(".hidden.log"), "HIDDEN-CONTENT\n").unwrap();
    std::fs::write(log_dir.join("real.log"), "real line\n").unwrap();
    let fx = Fixture::new(Daemon::start_in(&log_dir, &[]));
    let d = &fx.d;

    // Sanity: a real log is served (so 404s below are not just a broken router).
    let r = d.get("/api/logs/real");
    assert_eq!(r.status, 200, "GET /api/logs/real: {r:?}");

    let targets = [
        "/api/logs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/logs/%2e%2e%2f%2e%2e%2fetc%2fpasswd/stream",
        "/api/logs/..%2F..%2Fetc%2Fpasswd/stream",
        "/api/logs/..%2F..%2Fetc%2Fpasswd",
        "/api/logs/..%2fsecret",
        "/api/logs/..%2fsecret/stream",
        "/api/logs/%2e%2e%2fsecret",
        "/api/logs/%2e%2e%2fsecret/stream",
        "/api/logs/%2E%2E%2Fsecret/stream",
        "/api/logs/..%5csecret/stream",
        "/api/logs/../secret",
        "/api/logs/../secret/stream",
        "/api/logs/%2e%2e/secret/stream",
        "/api/logs/%2Fetc%2Fpasswd",
        "/api/logs/%2Fetc%2Fpasswd/stream",
        "/api/logs/.hidden",
        "/api/logs/.hidden/stream",
        "/api/logs/%2ehidden/stream",
        "/api/logs/real%00/stream",
        "/api/logs/real%2f/stream",
        "/api/logs/real.log/stream",
        "/api/logs/..",
        "/api/logs/../stream",
        "/api/logs/%2e%2e/stream",
    ];
    for target in targets {
        for method in ["GET", "HEAD"] {
            if method == "HEAD" && target.ends_with("/stream") {
                continue;
            }
            let r = d.request(method, target);
            assert_eq!(r.status, 404, "{method} {target}: {r:?} {}", r.text());
            let text = r.text();
            for leak in ["TOP-SECRET", "HIDDEN-CONTENT", "root:"] {
                assert!(
                    !text.contains(leak),
                    "{method} {target} leaked {leak}: {text}"
                );
            }
        }
    }
    // The listing does not show the hidden file or anything outside.
    let list = d.get("/api/logs").text();
    assert!(list.contains("\"real\""), "listing: {list}");
    assert!(
        !list.contains("secret") && !list.contains("hidden"),
        "listing: {list}"
    );
    fx.finish();
    let _ = std::fs::remove_dir_all(&parent);
}

#[test]
fn header_flood_and_many_small_requests_stay_bounded() {
    let fx = Fixture::start(&[]);
    // Thousands of tiny headers (each valid) exceed the 8 KiB head limit.
    let mut req = String::from("GET /healthz HTTP/1.1\r\n");
    for i in 0..3000 {
        req.push_str(&format!("a{i}: b\r\n"));
    }
    req.push_str("\r\n");
    fx.expect(req.as_bytes(), &[&[431]], "3000 headers");
    // Many tiny headers well under 8 KiB: answered, or refused cleanly.
    let mut req = String::from("GET /healthz HTTP/1.1\r\n");
    for i in 0..200 {
        req.push_str(&format!("a{i}: b\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(NOPE);
    fx.expect(
        req.as_bytes(),
        &[&[200, 404], &[431], &[400]],
        "200 tiny headers",
    );
    // 1000 pipelined requests in one write on one connection: all answered in order.
    let mut req = String::new();
    for _ in 0..1000 {
        req.push_str("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    let resps = fx.probe(req.as_bytes(), "1000 pipelined");
    assert_eq!(resps.len(), 1000);
    assert!(resps.iter().all(|r| r.status == 200 && r.body == b"ok"));
    fx.finish();
}

#[test]
fn http10_with_transfer_encoding_closes_after_the_response() {
    // RFC 9112 section 6.1: a server that receives an HTTP/1.0 message with
    // Transfer-Encoding MUST treat the framing as faulty and close the
    // connection after processing it (even when it asked for keep-alive).
    let fx = Fixture::start(&[]);
    let req = format!(
        "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n\
         {CHUNKED_SMUGGLE}{NOPE}"
    );
    fx.expect(
        req.as_bytes(),
        &[&[200], &[400], &[501]],
        "HTTP/1.0 keep-alive + chunked",
    );
    fx.finish();
}

#[test]
fn chunk_extensions_and_trailers_count_toward_the_body_limit() {
    // Bodies are read and discarded up to 1 MiB (SPEC section 2). Chunk
    // extensions and trailer fields are body bytes too: a server that skips
    // them without counting reads an unbounded amount from one request
    // (the shape of Node.js CVE-2024-22019).
    let fx = Fixture::start(&[]);
    let two_mib = 2 * 1024 * 1024;
    let head = "GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    let ext = format!("{head}1;{}\r\nx\r\n0\r\n\r\n{NOPE}", "e".repeat(two_mib));
    fx.expect(ext.as_bytes(), &[&[413], &[400]], "2 MiB chunk extension");
    let field = format!("X-T: {}\r\n", "t".repeat(1000));
    let trailers = format!(
        "{head}1\r\nx\r\n0\r\n{}\r\n{NOPE}",
        field.repeat(two_mib / field.len() + 1)
    );
    fx.expect(
        trailers.as_bytes(),
        &[&[413], &[400], &[431]],
        "2 MiB of trailer fields",
    );
    fx.finish();
}

#[test]
fn pipelined_flood_without_reading_stays_bounded() {
    // 1000 pipelined `GET /` (tens of MB of responses) from a client that does
    // not read: the daemon stops reading instead of buffering everything, still
    // serves everyone else, and answers all 1000 in order once the client reads.
    let fx = Fixture::start(&[]);
    let d = &fx.d;
    let page_len = d.get("/").body.len();
    assert!(page_len > 1000);
    let rss0 = d.rss_kib();
    let n = 1000;
    let mut s = d.connect();
    let req = "GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(n);
    s.write_all(req.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    healthz(d).expect("another connection while one is flooded");
    let grown = d.rss_kib().saturating_sub(rss0);
    assert!(
        grown < 12 * 1024,
        "daemon RSS grew by {grown} KiB while holding {} MB of unread responses",
        n * page_len / 1_000_000
    );
    let mut got = 0;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let mut pos = 0;
    while got < n {
        if let Some(end) = find(&buf[pos..], b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[pos..pos + end]).into_owned();
            assert!(
                head.starts_with("HTTP/1.1 200"),
                "response #{got}: {head:?}"
            );
            let len: usize = head
                .split("\r\n")
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no Content-Length: {head:?}"));
            assert_eq!(len, page_len, "response #{got}");
            if buf.len() >= pos + end + 4 + len {
                pos += end + 4 + len;
                got += 1;
                if pos > (1 << 20) {
                    buf.drain(..pos);
                    pos = 0;
                }
                continue;
            }
        }
        let k = s.read(&mut chunk).expect("read responses");
        assert!(k > 0, "closed after {got} responses");
        buf.extend_from_slice(&chunk[..k]);
    }
    assert_eq!(pos, buf.len(), "extra bytes after {n} responses");
    drop(s);
    fx.finish();
}

#[test]
fn clients_resetting_with_responses_pending_do_not_hurt() {
    let fx = Fixture::start(&[]);
    let d = &fx.d;
    // The bystander and the /metrics request itself are open while counting.
    let base = d
        .metric("logcast_connections_open")
        .expect("connections metric");
    let req = "GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(200);
    for i in 0..40 {
        let mut s = d.connect();
        s.write_all(req.as_bytes()).unwrap();
        if i % 2 == 0 {
            // read a little, so the daemon is mid-write
            let mut b = [0u8; 4096];
            let _ = s.read(&mut b);
        }
        rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO)).unwrap();
        drop(s); // RST
    }
    healthz(d).unwrap();
    let ok = common::eventually(Duration::from_secs(5), || {
        d.metric("logcast_connections_open") == Some(base)
    });
    assert!(
        ok,
        "connections_open: {:?}",
        d.metric("logcast_connections_open")
    );
    fx.finish();
}

#[test]
fn more_than_one_host_is_400() {
    // RFC 9112 section 3.2: a server MUST respond 400 to a request with more
    // than one Host header field line (which one names the target?).
    let fx = Fixture::start(&[]);
    for hosts in [
        "Host: a\r\nHost: b\r\n",
        "Host: a\r\nHost: a\r\n",
        "Host: a\r\nhost: b\r\n",
    ] {
        let req = format!("GET /healthz HTTP/1.1\r\n{hosts}\r\n{NOPE}");
        fx.expect(req.as_bytes(), &[&[400]], &format!("{hosts:?}"));
    }
    fx.finish();
}

#[test]
fn a_fifo_in_the_log_dir_does_not_freeze_the_daemon() {
    // Other programs put files in the log dir (SPEC section 3). A named pipe
    // there must not block the single reactor thread: open(2) of a FIFO for
    // reading waits for a writer unless O_NONBLOCK is given, and stat-after-open
    // is too late to refuse it.
    let dir = common::temp_dir("hostile-fifo");
    let fifo = dir.join("pipe.log");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !made {
        eprintln!("skipped: mkfifo unavailable");
        return;
    }
    let d = Daemon::start_in(&dir, &[]);
    healthz(&d).unwrap();
    // Listing and info only stat the file.
    let list = d.get("/api/logs");
    assert_eq!(list.status, 200, "{list:?}");
    let mut s = d.connect();
    s.write_all(b"GET /api/logs/pipe/stream HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let alive = healthz(&d);
    // Unblock a daemon stuck in open(2) so it can be killed and cleaned up.
    let _w = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc_o_nonblock())
        .open(&fifo);
    drop(s);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
    alive.unwrap_or_else(|e| panic!("GET /api/logs/pipe/stream on a FIFO froze the daemon: {e}"));
}

/// O_NONBLOCK on Linux (opening a FIFO for writing without waiting).
fn libc_o_nonblock() -> i32 {
    0o4000
}
