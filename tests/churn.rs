//! Connection churn: 50,000 connections opened and dropped against one
//! daemon, half in the middle of a request head, half in the middle of a
//! stream (head read, events in flight, then gone). Afterwards the daemon
//! must hold exactly what it held before: the same descriptors, no open
//! connection or stream in its metrics, and no memory growth beyond what a
//! warm-up round leaves in the allocator's caches.
//!
//! Ports: a mid-request drop closes from the client side first, which leaves
//! a TIME_WAIT socket on the client for 60 s; a mid-stream drop closes with
//! unread data, which sends RST and leaves none. 27,500 TIME_WAIT sockets fit
//! in Linux's default ephemeral range (32768..60999), and loopback reuses
//! them anyway (`net.ipv4.tcp_tw_reuse` = 2). Should connect() still run out
//! (EADDRNOTAVAIL), the client waits briefly and retries; the number of such
//! waits is printed.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{eventually, Daemon, Response};

const TOTAL: usize = 50_000;
const WARMUP: usize = 5_000;
const THREADS: usize = 4;
/// The whole 50,000 must finish within this (a debug build takes far less).
const LIMIT: Duration = Duration::from_secs(120);

/// What one round of churn did.
#[derive(Default, Debug)]
struct Stats {
    mid_request: usize,
    mid_stream: usize,
    port_waits: usize,
}

/// Connects, waiting out a momentary lack of ephemeral ports.
fn connect(addr: SocketAddr, stats: &mut Stats) -> Result<TcpStream, String> {
    let mut tries = 0;
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == ErrorKind::AddrNotAvailable && tries < 1000 => {
                stats.port_waits += 1;
                tries += 1;
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                return Err(format!(
                    "connect to {addr} (after {tries} waits for a port): {e}"
                ))
            }
        }
    }
}

/// One connection dropped in the middle of a request head.
fn mid_request(addr: SocketAddr, stats: &mut Stats) -> Result<(), String> {
    let mut s = connect(addr, stats)?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: churn\r\nX-Half: ")
        .map_err(|e| format!("mid-request: write: {e}"))?;
    stats.mid_request += 1;
    Ok(())
}

/// One connection that opens a stream, reads its head (and whatever events
/// came with it), and leaves with the rest in flight.
fn mid_stream(addr: SocketAddr, request: &[u8], stats: &mut Stats) -> Result<(), String> {
    let mut s = connect(addr, stats)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    s.write_all(request)
        .map_err(|e| format!("mid-stream: write: {e}"))?;
    let mut got = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) => {
                return Err(format!(
                    "mid-stream: closed before the head: {:?}",
                    String::from_utf8_lossy(&got)
                ))
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("mid-stream: read head: {e}")),
        }
    }
    if !got.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "mid-stream: unexpected head {:?}",
            String::from_utf8_lossy(&got)
        ));
    }
    stats.mid_stream += 1;
    Ok(())
}

/// `n` connections from `THREADS` threads, alternating the two kinds.
fn churn(addr: SocketAddr, n: usize) -> Stats {
    let request = b"GET /api/logs/churn/stream HTTP/1.1\r\nHost: churn\r\n\r\n".to_vec();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let request = request.clone();
            thread::spawn(move || -> Result<Stats, String> {
                let mut stats = Stats::default();
                for i in (t..n).step_by(THREADS) {
                    let r = if i % 2 == 0 {
                        mid_request(addr, &mut stats)
                    } else {
                        mid_stream(addr, &request, &mut stats)
                    };
                    r.map_err(|e| format!("thread {t}, connection #{i}: {e}"))?;
                }
                Ok(stats)
            })
        })
        .collect();
    let mut total = Stats::default();
    for w in workers {
        let stats = w
            .join()
            .unwrap_or_else(|_| panic!("a churn thread panicked"))
            .unwrap_or_else(|e| panic!("churn failed: {e}"));
        total.mid_request += stats.mid_request;
        total.mid_stream += stats.mid_stream;
        total.port_waits += stats.port_waits;
    }
    total
}

fn get(addr: SocketAddr, target: &str) -> Result<Response, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    s.write_all(
        format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("write: {e}"))?;
    common::read_response(&mut s, false).ok_or_else(|| format!("GET {target}: no response"))
}

fn metric(addr: SocketAddr, name: &str) -> Result<f64, String> {
    let body = get(addr, "/metrics")?.text();
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse::<f64>().ok()).flatten()
        })
        .ok_or_else(|| format!("{name} missing from /metrics"))
}

/// Connections (besides the scrape itself) and streams the daemon reports open.
fn open_counts(addr: SocketAddr) -> Result<(f64, f64), String> {
    Ok((
        metric(addr, "logcast_connections_open")?,
        metric(addr, "logcast_streams_open")?,
    ))
}

/// Waits until the daemon holds no connection but the scrape and no stream.
fn wait_settled(d: &Daemon, ctx: &str) {
    let mut last = Err(String::from("never read"));
    let ok = eventually(Duration::from_secs(5), || {
        last = open_counts(d.addr);
        matches!(last, Ok((c, s)) if c <= 1.0 && s == 0.0)
    });
    assert!(
        ok,
        "{ctx}: (logcast_connections_open, logcast_streams_open) = {last:?} 5 s later, \
         expected (1 = the scrape itself, 0)"
    );
}

#[test]
fn fifty_thousand_dropped_connections_leave_nothing_behind() {
    let mut d = Daemon::start(&[]);
    // A log with enough lines that a stream's head comes with events behind it.
    let mut lines = String::new();
    for i in 0..200 {
        lines.push_str(&format!(
            "churn line {i}: the quick brown fox jumps over the lazy dog\n"
        ));
    }
    std::fs::write(d.log_dir.join("churn.log"), lines).expect("write churn.log");
    let r = get(d.addr, "/healthz").expect("first /healthz");
    assert_eq!(r.status, 200, "first /healthz");
    std::thread::sleep(Duration::from_millis(200));
    let fds0 = d.open_fds();
    assert!(fds0 > 0, "cannot read /proc/{}/fd", d.pid());

    // Warm-up: let the allocator and the slab reach their working size.
    let warm = churn(d.addr, WARMUP);
    assert_eq!(
        warm.mid_request + warm.mid_stream,
        WARMUP,
        "warm-up: {warm:?}"
    );
    wait_settled(&d, "after the warm-up");
    let rss_warm = d.rss_kib();
    assert!(rss_warm > 0, "cannot read the daemon's RSS");

    let t0 = Instant::now();
    let stats = churn(d.addr, TOTAL);
    let took = t0.elapsed();
    eprintln!(
        "churn: {TOTAL} connections ({} mid-request, {} mid-stream) in {took:?} \
         ({:.0}/s), {} waits for a free port",
        stats.mid_request,
        stats.mid_stream,
        TOTAL as f64 / took.as_secs_f64(),
        stats.port_waits
    );
    assert_eq!(stats.mid_request + stats.mid_stream, TOTAL, "{stats:?}");
    assert!(took < LIMIT, "{TOTAL} connections took {took:?}");

    if let Ok(Some(status)) = d.child.try_wait() {
        panic!("the daemon exited during the churn: {status}");
    }
    wait_settled(&d, "after the churn");
    let mut fds = 0;
    let back = eventually(Duration::from_secs(5), || {
        fds = d.open_fds();
        fds.abs_diff(fds0) <= 2
    });
    assert!(
        back,
        "daemon fds: {fds} after the churn, {fds0} at the start"
    );
    let rss = d.rss_kib();
    eprintln!("churn: RSS {rss_warm} KiB after the warm-up, {rss} KiB after {TOTAL} connections; fds {fds0} -> {fds}");
    assert!(
        rss <= rss_warm + 4 * 1024,
        "RSS grew from {rss_warm} KiB (after a warm-up of {WARMUP}) to {rss} KiB after {TOTAL} connections"
    );
    let r = get(d.addr, "/healthz").expect("/healthz after the churn");
    assert!(
        r.status == 200 && r.body == b"ok",
        "/healthz after the churn: {} {:?}",
        r.status,
        r.text()
    );
}
