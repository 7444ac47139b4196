//! Process lifecycle (SPEC section 1): start-up line, option errors, port and
//! log-dir failures, --help/--version, graceful stop on SIGTERM/SIGINT, and
//! resource stability under many requests and connections.

mod common;

use common::{is_closed, read_response, temp_dir, wait_timeout, Daemon, BIN};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

fn dir_arg(dir: &Path) -> String {
    dir.to_str().unwrap().to_string()
}

fn healthz_ok(addr: std::net::SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    matches!(read_response(&mut s, false), Some(r) if r.status == 200 && r.body == b"ok")
}

/// A keep-alive connection that has completed one request.
fn keep_alive_conn(d: &Daemon) -> TcpStream {
    let mut s = d.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false).expect("response");
    assert_eq!(r.status, 200);
    s
}

// ---------------------------------------------------------------------------
// start-up
// ---------------------------------------------------------------------------

#[test]
fn port_zero_prints_the_listening_url_and_answers() {
    let dir = temp_dir("lifecycle-port0");
    let mut child = Command::new(BIN)
        .args(["--port", "0", "--log-dir", &dir_arg(&dir)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let rest = line
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("no newline-terminated line: {line:?}"));
    let port = rest
        .strip_prefix("listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("first stdout line: {line:?}"));
    let port: u16 = port.parse().unwrap_or_else(|_| panic!("port in {line:?}"));
    assert_ne!(port, 0, "printed port 0: {line:?}");
    let ok = healthz_ok(([127, 0, 0, 1], port).into());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "printed port {port} does not answer /healthz");
}

#[test]
fn missing_log_dir_is_created() {
    let parent = temp_dir("lifecycle-mkdir");
    let dir = parent.join("a").join("b");
    let d = Daemon::start_in(&dir, &[]);
    assert!(dir.is_dir(), "log dir {dir:?} not created");
    assert!(healthz_ok(d.addr));
    drop(d);
    let _ = std::fs::remove_dir_all(&parent);
}

#[test]
fn bad_options_exit_2_with_one_line_naming_the_option() {
    let dir = temp_dir("lifecycle-badopt");
    let dir = dir_arg(&dir);
    let cases: &[(&[&str], &str)] = &[
        (&["--port", "abc"], "--port"),
        (&["--port=abc"], "--port"),
        (&["--port", "70000"], "--port"),
        (&["--port", "-1"], "--port"),
        (&["--bogus"], "--bogus"),
        (&["--port"], "--port"),
        (&["--write-interval-ms", "0"], "--write-interval-ms"),
        (&["--write-interval-ms", "x"], "--write-interval-ms"),
        (&["--poll-interval-ms", "0"], "--poll-interval-ms"),
        (&["--workers", "0"], "--workers"),
        (&["--workers", "many"], "--workers"),
        (&["--header-timeout-ms", "abc"], "--header-timeout-ms"),
        (&["--idle-timeout-ms", ""], "--idle-timeout-ms"),
        (&["--max-connections", "lots"], "--max-connections"),
        (&["--max-writers", "-3"], "--max-writers"),
        (
            &["--heartbeat-interval-ms", "1.5"],
            "--heartbeat-interval-ms",
        ),
        (&["--bind", "not-an-address"], "--bind"),
        (&["--log-dir"], "--log-dir"),
        (&["stray-positional"], "stray-positional"),
    ];
    for (bad, name) in cases {
        let mut args = vec!["--port", "0", "--log-dir", &dir];
        args.extend_from_slice(bad);
        let run = common::run_to_exit(&args);
        assert_eq!(
            run.code,
            Some(2),
            "{bad:?}: exit code; stderr {:?} stdout {:?}",
            run.stderr,
            run.stdout
        );
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{bad:?}: expected exactly one stderr line, got {:?}",
            run.stderr
        );
        assert!(
            lines[0].contains(name),
            "{bad:?}: stderr line does not name {name}: {:?}",
            lines[0]
        );
        assert!(
            !run.stdout.contains("listening on"),
            "{bad:?}: started anyway: {:?}",
            run.stdout
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn port_in_use_exits_1() {
    let dir = temp_dir("lifecycle-inuse");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let run = common::run_to_exit(&[
        "--bind",
        "127.0.0.1",
        "--port",
        &port,
        "--log-dir",
        &dir_arg(&dir),
    ]);
    assert_eq!(run.code, Some(1), "taken port: stderr {:?}", run.stderr);
    assert!(
        run.stderr.to_ascii_lowercase().contains("already in use"),
        "taken port: stderr {:?}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("listening on"),
        "stdout {:?}",
        run.stdout
    );
    drop(l);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn second_daemon_on_the_same_port_exits_1() {
    // The first daemon may use SO_REUSEPORT: a second one must still refuse.
    let d = Daemon::start(&[]);
    let dir = temp_dir("lifecycle-second");
    let port = d.addr.port().to_string();
    let run = common::run_to_exit(&[
        "--bind",
        "127.0.0.1",
        "--port",
        &port,
        "--log-dir",
        &dir_arg(&dir),
    ]);
    assert_eq!(
        run.code,
        Some(1),
        "second daemon: stderr {:?} stdout {:?}",
        run.stderr,
        run.stdout
    );
    assert!(
        run.stderr.to_ascii_lowercase().contains("already in use"),
        "stderr {:?}",
        run.stderr
    );
    assert!(healthz_ok(d.addr), "first daemon disturbed");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn port_in_use_exits_1_with_two_workers() {
    let dir = temp_dir("lifecycle-inuse-w2");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let run = common::run_to_exit(&[
        "--bind",
        "127.0.0.1",
        "--port",
        &port,
        "--workers",
        "2",
        "--log-dir",
        &dir_arg(&dir),
    ]);
    assert_eq!(
        run.code,
        Some(1),
        "taken port, 2 workers: stderr {:?}",
        run.stderr
    );
    assert!(
        run.stderr.to_ascii_lowercase().contains("already in use"),
        "stderr {:?}",
        run.stderr
    );
    drop(l);

    // And a second 2-worker daemon next to a running 2-worker daemon.
    let d = Daemon::start(&["--workers", "2"]);
    let port = d.addr.port().to_string();
    let run = common::run_to_exit(&[
        "--bind",
        "127.0.0.1",
        "--port",
        &port,
        "--workers",
        "2",
        "--log-dir",
        &dir_arg(&dir),
    ]);
    assert_eq!(
        run.code,
        Some(1),
        "second 2-worker daemon: stderr {:?} stdout {:?}",
        run.stderr,
        run.stdout
    );
    assert!(
        run.stderr.to_ascii_lowercase().contains("already in use"),
        "stderr {:?}",
        run.stderr
    );
    // Every request to the port still reaches the first daemon.
    for _ in 0..20 {
        assert!(healthz_ok(d.addr), "first daemon disturbed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_workers_stop_on_sigterm_and_free_the_port() {
    let mut d = Daemon::start(&["--workers", "2"]);
    for _ in 0..10 {
        assert!(healthz_ok(d.addr));
    }
    let status = d
        .terminate(Duration::from_secs(2))
        .expect("no exit within 2 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    // No worker process keeps the port.
    let freed = common::eventually(Duration::from_secs(2), || {
        TcpStream::connect(d.addr).is_err()
    });
    assert!(freed, "something still accepts on {} after SIGTERM", d.addr);
}

#[test]
fn uncreatable_log_dir_exits_1_naming_it() {
    let parent = temp_dir("lifecycle-baddir");
    let file = parent.join("regular-file");
    std::fs::write(&file, "not a dir").unwrap();
    for dir in [file.join("sub"), file.clone()] {
        common::assert_refuses_log_dir(&dir, "log dir under a regular file");
    }
    let _ = std::fs::remove_dir_all(&parent);
}

#[test]
fn help_mentions_every_option() {
    let run = common::run_to_exit(&["--help"]);
    assert_eq!(run.code, Some(0), "--help: stderr {:?}", run.stderr);
    for opt in [
        "--bind",
        "--port",
        "--log-dir",
        "--write-interval-ms",
        "--poll-interval-ms",
        "--heartbeat-interval-ms",
        "--header-timeout-ms",
        "--idle-timeout-ms",
        "--max-connections",
        "--max-writers",
        "--workers",
        "--help",
        "--version",
    ] {
        assert!(
            run.stdout.contains(opt),
            "--help does not mention {opt}:\n{}",
            run.stdout
        );
    }
    assert!(!run.stdout.contains("listening on"));
}

#[test]
fn version_prints_name_and_version() {
    let run = common::run_to_exit(&["--version"]);
    assert_eq!(run.code, Some(0), "--version: stderr {:?}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        format!("logcast {}", env!("CARGO_PKG_VERSION"))
    );
}

// ---------------------------------------------------------------------------
// graceful stop
// ---------------------------------------------------------------------------

fn stop_with(signal: &str) {
    let mut d = Daemon::start(&[]);
    let mut conns: Vec<TcpStream> = (0..3).map(|_| keep_alive_conn(&d)).collect();
    // A connection in the middle of a request head, and one that never spoke.
    let mut partial = d.connect();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: ")
        .unwrap();
    conns.push(partial);
    conns.push(d.connect());
    // A client flooding pipelined requests without reading its responses.
    let mut flood = d.connect();
    flood
        .write_all("GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(500).as_bytes())
        .unwrap();
    conns.push(flood);
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    common::signal(d.pid(), signal);
    let status = wait_timeout(&mut d.child, Duration::from_secs(1));
    let took = start.elapsed();
    eprintln!("SIG{signal}: exited after {took:?}");
    let status = status.unwrap_or_else(|| panic!("no exit within 1 s of SIG{signal}"));
    assert_eq!(
        status.code(),
        Some(0),
        "SIG{signal}: exit status {status:?} after {took:?}"
    );
    for (i, c) in conns.iter_mut().enumerate() {
        assert!(
            is_closed(c, Duration::from_secs(1)),
            "SIG{signal}: connection #{i} not closed"
        );
    }
}

#[test]
fn sigterm_exits_0_within_1s_with_open_connections() {
    stop_with("TERM");
}

#[test]
fn sigint_exits_0_within_1s_with_open_connections() {
    stop_with("INT");
}

#[test]
fn sigterm_right_after_start_exits_0() {
    let mut d = Daemon::start(&[]);
    let status = d
        .terminate(Duration::from_secs(1))
        .expect("no exit within 1 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

// ---------------------------------------------------------------------------
// resource stability
// ---------------------------------------------------------------------------

/// A buffered reader of pipelined `/healthz` responses.
struct Pipeline {
    s: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl Pipeline {
    fn new(s: TcpStream) -> Pipeline {
        Pipeline {
            s,
            buf: Vec::with_capacity(1 << 16),
            start: 0,
        }
    }

    fn fill(&mut self) {
        if self.start > 0 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = [0u8; 65536];
        let n = self.s.read(&mut chunk).expect("read responses");
        assert!(n > 0, "connection closed in the middle of a pipeline");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next response's status and body.
    fn next(&mut self) -> (u16, Vec<u8>) {
        loop {
            let avail = &self.buf[self.start..];
            if let Some(end) = avail.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&avail[..end]).expect("ascii head");
                assert!(head.starts_with("HTTP/1.1 "), "bad head {head:?}");
                let status: u16 = head[9..12].parse().unwrap();
                let len: usize = head
                    .split("\r\n")
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())
                            .flatten()
                    })
                    .expect("Content-Length");
                if avail.len() >= end + 4 + len {
                    let body = avail[end + 4..end + 4 + len].to_vec();
                    self.start += end + 4 + len;
                    return (status, body);
                }
            }
            self.fill();
        }
    }
}

#[test]
fn many_requests_and_connections_leave_no_leak() {
    let d = Daemon::start(&[]);
    assert!(healthz_ok(d.addr));
    std::thread::sleep(Duration::from_millis(200));
    let fds0 = d.open_fds();
    let conns0 = d
        .metric("logcast_connections_open")
        .expect("logcast_connections_open metric");
    assert!(fds0 > 0);

    // 100,000 keep-alive requests over 4 connections, pipelined 100 at a time.
    let batch: Vec<u8> = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n".repeat(100);
    let addr = d.addr;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let batch = batch.clone();
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut p = Pipeline::new(s);
                for b in 0..250 {
                    p.s.write_all(&batch)
                        .unwrap_or_else(|e| panic!("conn {w} batch {b}: write {e}"));
                    for i in 0..100 {
                        let (status, body) = p.next();
                        assert!(
                            status == 200 && body == b"ok",
                            "conn {w} batch {b} #{i}: {status} {body:?}"
                        );
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("pipelining worker failed");
    }

    // 10,000 connect/close cycles of four kinds.
    for i in 0..10_000 {
        let mut s = TcpStream::connect(d.addr).unwrap_or_else(|e| panic!("connect #{i}: {e}"));
        match i % 4 {
            0 => {} // connect and leave at once
            1 => {
                // a full exchange with Connection: close
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut all = Vec::new();
                let _ = s.read_to_end(&mut all);
                assert!(
                    all.starts_with(b"HTTP/1.1 200"),
                    "cycle {i}: {:?}",
                    String::from_utf8_lossy(&all)
                );
            }
            2 => {
                // half a request head, then leave
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHo");
            }
            _ => {
                // a full keep-alive request, leave without reading the response
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
            }
        }
    }

    assert!(healthz_ok(d.addr), "daemon stopped answering");
    let back = common::eventually(Duration::from_secs(5), || d.open_fds() <= fds0);
    assert!(
        back,
        "open fds: {} now, {} at the start",
        d.open_fds(),
        fds0
    );
    let mut last = None;
    let back = common::eventually(Duration::from_secs(5), || {
        last = d.metric("logcast_connections_open");
        last == Some(conns0)
    });
    assert!(
        back,
        "logcast_connections_open: {last:?} now, {conns0} at the start"
    );
    assert!(
        conns0 <= 1.0,
        "logcast_connections_open with only the /metrics request open: {conns0}"
    );
}

#[test]
fn option_equals_value_form_is_accepted() {
    let dir = temp_dir("lifecycle-eq");
    let log_dir = format!("--log-dir={}", dir_arg(&dir));
    let mut child = Command::new(BIN)
        .args([
            "--port=0",
            &log_dir,
            "--header-timeout-ms=300",
            "--workers=1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: Option<std::net::SocketAddr> = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|a| a.parse().ok());
    // --header-timeout-ms=300 took effect: a silent connection is closed quickly.
    let closed_fast = addr.map(|a| {
        let mut s = TcpStream::connect(a).unwrap();
        is_closed(&mut s, Duration::from_secs(2))
    });
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(addr.is_some(), "--opt=value: first line {line:?}");
    assert_eq!(
        closed_fast,
        Some(true),
        "--header-timeout-ms=300 not applied"
    );
}

#[test]
fn ipv6_bind_prints_a_bracketed_url() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    let d = Daemon::start(&["--bind", "::1"]);
    assert!(d.addr.is_ipv6(), "{:?}", d.addr);
    assert!(healthz_ok(d.addr));
}

#[test]
fn soft_open_file_limit_is_raised_to_the_hard_limit() {
    let dir = temp_dir("lifecycle-rlimit");
    // Start with a low soft limit, as a login shell would give.
    let script = format!(
        "ulimit -Sn 256 && exec {BIN} --port 0 --log-dir {} --max-connections 1000000000",
        dir_arg(&dir)
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        line.starts_with("listening on "),
        "first line {line:?}, stderr {stderr:?}"
    );
    let row = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open files row in {limits}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // "Max open files <soft> <hard> files"
    assert_eq!(
        cols[3], cols[4],
        "soft limit not raised to the hard limit: {row:?}"
    );
    assert_ne!(cols[3], "256", "{row:?}");
    // The hard limit is surely below 10^9: the daemon says so.
    let warned = stderr
        .lines()
        .any(|l| l.to_ascii_lowercase().contains("limit") && l.contains("1000000000"));
    assert!(
        warned,
        "no warning about the open-file limit below --max-connections: {stderr:?}"
    );
}

#[test]
fn workers_die_with_a_killed_supervisor() {
    let mut d = Daemon::start(&["--workers", "2"]);
    assert!(healthz_ok(d.addr));
    let _ = d.child.kill(); // SIGKILL: no chance to stop the workers itself
    let _ = d.child.wait();
    let freed = common::eventually(Duration::from_secs(3), || {
        TcpStream::connect(d.addr).is_err()
    });
    assert!(
        freed,
        "orphaned workers still accept on {} after the supervisor was killed",
        d.addr
    );
}
