//! Shared helpers for the integration tests: start a real `logcast` process on
//! port 0 with its own temporary log dir, and speak raw HTTP/1.1 and SSE to it
//! over real sockets. Every test talks to the daemon the way a client would;
//! nothing here reaches into the daemon's memory.
#![allow(dead_code)]

pub mod followers;
pub mod raw;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Path of the daemon binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_logcast");

/// A running daemon; killed (SIGKILL) and its log dir removed on drop.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub log_dir: PathBuf,
    owns_dir: bool,
}

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory under the system temp dir, unique per test process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
    let dir =
        std::env::temp_dir().join(format!("logcast-test-{}-{}-{}", tag, std::process::id(), n));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

impl Daemon {
    /// Starts `logcast --port 0 --log-dir <fresh temp dir> <extra args>` and waits for
    /// its `listening on http://ADDR:PORT` line. Fast poll/write intervals are NOT
    /// set here: pass them in `args` when a test needs them.
    pub fn start(args: &[&str]) -> Daemon {
        let dir = temp_dir("daemon");
        let mut d = Daemon::start_in(&dir, args);
        d.owns_dir = true;
        d
    }

    /// Like `start`, but with a log dir the test owns (kept on drop).
    pub fn start_in(log_dir: &Path, args: &[&str]) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.arg("--port").arg("0").arg("--log-dir").arg(log_dir);
        cmd.args(args);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn logcast");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read listening line");
        let url = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        let addr: SocketAddr = url.parse().expect("listening address");
        // Keep draining stdout so the daemon never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        Daemon {
            child,
            addr,
            log_dir: log_dir.to_path_buf(),
            owns_dir: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        s
    }

    /// One request on a fresh connection with `Connection: close`; returns the response.
    pub fn request(&self, method: &str, target: &str) -> Response {
        let mut s = self.connect();
        let req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).expect("write request");
        read_response(&mut s, method == "HEAD").expect("response")
    }

    pub fn get(&self, target: &str) -> Response {
        self.request("GET", target)
    }

    /// `POST /api/logs?duration=N`; returns the new log's id (asserts 201).
    pub fn create_log(&self, duration: u32) -> String {
        let r = self.request("POST", &format!("/api/logs?duration={duration}"));
        assert_eq!(r.status, 201, "create log: {}", r.text());
        json_str_field(&r.text(), "log_id").expect("log_id in body")
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.log_dir.join(format!("{id}.log"))
    }

    /// Sends SIGTERM and waits (up to `limit`) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        signal(self.child.id(), "TERM");
        wait_timeout(&mut self.child, limit)
    }

    /// Number of open file descriptors of the daemon, from /proc.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Resident set size of the daemon in KiB, from /proc/<pid>/status.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// The value of one metric line (exact name including labels) from `GET /metrics`.
    pub fn metric(&self, name_with_labels: &str) -> Option<f64> {
        let body = self.get("/metrics").text();
        body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == name_with_labels)
                .then(|| value.parse().ok())
                .flatten()
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_dir {
            let _ = make_writable_recursive(&self.log_dir);
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

fn make_writable_recursive(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
    }
    Ok(())
}

/// Sends a signal by name (`TERM`, `INT`, `KILL`, `STOP`, `CONT`) with kill(1).
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` every 10 ms until it is true or `limit` passes; returns whether it became true.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `s`: the head, then a body of `Content-Length` bytes
/// (none for HEAD, 204 and 304). Returns None if the connection closes before a
/// complete head arrives.
pub fn read_response(s: &mut TcpStream, head_request: bool) -> Option<Response> {
    let head = read_head(s)?;
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next()?;
    let status: u16 = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut resp = Response {
        status,
        reason,
        headers,
        body: Vec::new(),
    };
    let no_body = head_request || status == 204 || status == 304;
    if !no_body {
        if let Some(len) = resp
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).ok()?;
            resp.body = body;
        }
    }
    Some(resp)
}

/// Reads byte by byte up to and including the blank line that ends a head.
pub fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// True when the peer has closed the connection (read returns 0 or an error other than a timeout).
pub fn is_closed(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// An open SSE stream: the response head, then events read incrementally.
pub struct SseStream {
    pub sock: TcpStream,
    pub head: Response,
    buf: Vec<u8>,
    /// Every raw byte of the body received so far (for exact-bytes assertions).
    pub raw: Vec<u8>,
}

/// One event as a client sees it: fields as sent, plus comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    /// `data:` lines joined with `\n`, as EventSource does.
    pub data: Option<String>,
    /// Comment lines (without the leading `:`), e.g. " keepalive".
    pub comments: Vec<String>,
}

impl SseStream {
    /// Opens `GET target` with extra header lines (each "Name: value").
    pub fn open(d: &Daemon, target: &str, extra_headers: &[&str]) -> SseStream {
        SseStream::on(d.connect(), target, extra_headers)
    }

    /// Sends the stream request on a connection the caller already holds
    /// (for example one whose earlier response said which worker it reached).
    pub fn on(mut sock: TcpStream, target: &str, extra_headers: &[&str]) -> SseStream {
        let mut req =
            format!("GET {target} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n");
        for h in extra_headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        sock.write_all(req.as_bytes()).expect("write");
        let head = read_response(&mut sock, true).expect("stream response head");
        SseStream {
            sock,
            head,
            buf: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// The next complete event (terminated by a blank line), or None on close/timeout.
    pub fn next_event(&mut self, limit: Duration) -> Option<Event> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(pos) = find_blank_line(&self.buf) {
                let block: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return Some(parse_event(&block[..pos + 1]));
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            self.sock.set_read_timeout(Some(deadline - now)).ok()?;
            let mut chunk = [0u8; 65536];
            match self.sock.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.raw.extend_from_slice(&chunk[..n]);
                }
                Err(_) => return None,
            }
        }
    }

    /// Reads events until one satisfies `pred` (returned) or the limit passes.
    pub fn events_until(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> (Vec<Event>, bool) {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        while let Some(ev) = self.next_event(deadline.saturating_duration_since(Instant::now())) {
            let done = pred(&ev);
            seen.push(ev);
            if done {
                return (seen, true);
            }
        }
        (seen, false)
    }

    /// Reads until the server closes the connection; returns every event received.
    pub fn read_to_close(&mut self, limit: Duration) -> Vec<Event> {
        let mut all = Vec::new();
        let deadline = Instant::now() + limit;
        while let Some(ev) = self.next_event(deadline.saturating_duration_since(Instant::now())) {
            all.push(ev);
        }
        all
    }
}

/// `(id, data)` of the line events (those without an `event:` type).
pub fn line_events(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e.event.is_none())
        .map(|e| {
            (
                e.id.clone().unwrap_or_default(),
                e.data.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\n\n")
}

/// Parses one event block (lines separated by `\n`, without the final blank line).
pub fn parse_event(block: &[u8]) -> Event {
    let text = String::from_utf8_lossy(block);
    let mut ev = Event {
        id: None,
        event: None,
        data: None,
        comments: Vec::new(),
    };
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        if let Some(c) = line.strip_prefix(':') {
            ev.comments.push(c.to_string());
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_string();
        match field {
            "id" => ev.id = Some(value),
            "event" => ev.event = Some(value),
            "data" => {
                ev.data = Some(match ev.data.take() {
                    Some(prev) => format!("{prev}\n{value}"),
                    None => value,
                })
            }
            _ => {}
        }
    }
    ev
}

/// Extracts a string field from a flat JSON object (test-side, minimal).
pub fn json_str_field(json: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\"");
    let rest = &json[json.find(&key)? + key.len()..];
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// Extracts a number or boolean field from a flat JSON object, as text.
pub fn json_raw_field(json: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\"");
    let rest = &json[json.find(&key)? + key.len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let end = rest.find([',', '}', ']']).unwrap_or(rest.len());
    Some(rest[..end].trim().to_string())
}

/// What a run of the binary that was expected to exit left behind.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with `args` and waits (up to 10 s) for it to exit; a daemon
/// that keeps running (e.g. because it ignored a bad option) is killed and the
/// test fails.
pub fn run_to_exit(args: &[&str]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logcast");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let Some(status) = wait_timeout(&mut child, Duration::from_secs(10)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("logcast {args:?} did not exit within 10 s (it should have refused to start)");
    };
    Run {
        code: status.code(),
        stdout: t_out.join().expect("stdout reader"),
        stderr: t_err.join().expect("stderr reader"),
    }
}

/// Starting with `--log-dir dir` must fail: exit 1, a message naming the
/// directory, and no `listening on` line.
pub fn assert_refuses_log_dir(dir: &Path, ctx: &str) -> Run {
    let d = dir.to_str().expect("utf-8 path").to_string();
    let run = run_to_exit(&["--port", "0", "--log-dir", &d]);
    assert_eq!(
        run.code,
        Some(1),
        "{ctx}: log dir {d}: exit {:?}, stderr {:?}, stdout {:?}",
        run.code,
        run.stderr,
        run.stdout
    );
    assert!(
        run.stderr.contains(&d),
        "{ctx}: stderr does not name {d}: {:?}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("listening on"),
        "{ctx}: started anyway: {:?}",
        run.stdout
    );
    run
}

// ---------------------------------------------------------------------------
// Descriptors the daemon holds, by target, and this test process's own file
// limit (added for tests/watch.rs).

/// The targets of a process's open descriptors (`/proc/<pid>/fd/*` links).
fn fd_targets(pid: u32) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect()
}

impl Daemon {
    /// Number of the daemon's open descriptors on files under `dir` (for
    /// example the log files it holds open), from the `/proc/<pid>/fd` links.
    pub fn open_fds_under(&self, dir: &Path) -> usize {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        fd_targets(self.pid())
            .iter()
            .filter(|t| t.starts_with(&dir))
            .count()
    }

    /// Whether the daemon holds an inotify instance (`anon_inode:inotify`).
    pub fn has_inotify(&self) -> bool {
        fd_targets(self.pid())
            .iter()
            .any(|t| t.as_os_str() == "anon_inode:inotify")
    }
}

/// Raises this test process's soft open-file limit to its hard limit (a test
/// holding thousands of sockets needs it); returns the soft limit now in force.
pub fn raise_own_nofile_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// Requests with extra headers, daemons started with a changed environment or
// through a wrapper command (setpriv), their stderr, and a client socket with
// a small receive buffer (added for tests/index.rs, tests/retention.rs,
// tests/exposure.rs and the stall regressions).

impl Daemon {
    /// One request with extra header lines (each "Name: value") on a fresh
    /// connection with `Connection: close`; returns the response.
    pub fn request_with(&self, method: &str, target: &str, headers: &[&str]) -> Response {
        self.request_full(method, target, headers).0
    }

    /// Like [`Daemon::request_with`], and also returns every byte that
    /// followed the response (read until the daemon closes, at most 5 s):
    /// for a response without a body, proof that none was sent.
    pub fn request_full(
        &self,
        method: &str,
        target: &str,
        headers: &[&str],
    ) -> (Response, Vec<u8>) {
        let mut s = self.connect();
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).expect("write request");
        let resp = read_response(&mut s, method == "HEAD").expect("response");
        let mut rest = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let _ = s.read_to_end(&mut rest);
        (resp, rest)
    }
}

/// How to start a daemon beyond [`Daemon::start_in`]: environment changes,
/// a wrapper command the binary is run through (for example `setpriv`), or
/// another copy of the binary. Its stderr is captured, not inherited.
#[derive(Debug, Default, Clone)]
pub struct Launch {
    /// Variables to set.
    pub env: Vec<(String, String)>,
    /// Variables to remove from the inherited environment.
    pub env_remove: Vec<String>,
    /// A command (and its arguments) that runs the binary, e.g.
    /// `["setpriv", "--reuid=65534", ...]`; it must exec the binary so that
    /// the child's pid is the daemon's.
    pub wrapper: Vec<String>,
    /// The binary to run instead of [`BIN`].
    pub binary: Option<PathBuf>,
}

/// A daemon's stderr, collected by a thread as it arrives.
#[derive(Debug, Clone, Default)]
pub struct Stderr {
    bytes: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Stderr {
    /// Everything received so far.
    pub fn text(&self) -> String {
        let bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits (up to `limit`) until the daemon's end of the pipe is closed
    /// (it exited) and everything it wrote has been collected.
    pub fn wait_closed(&self, limit: Duration) -> bool {
        eventually(limit, || self.closed.load(Ordering::SeqCst))
    }

    fn push(&self, chunk: &[u8]) {
        self.bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(chunk);
    }
}

/// Directories removed (recursively) on drop: declare one before the daemons
/// that use them, so that it is dropped after them, also when a test fails.
pub struct RemoveOnDrop(pub Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        for dir in &self.0 {
            // A test may have made it read-only; its files need no write bit.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Daemon {
    /// Starts `[wrapper] logcast --port 0 --log-dir <log_dir> <args>` as
    /// `how` says and waits for its `listening on` line. A daemon that exits
    /// instead is an `Err` carrying its exit status and stderr (so a test
    /// can say why it could not start). The log dir is the caller's.
    pub fn launch(log_dir: &Path, args: &[&str], how: &Launch) -> Result<(Daemon, Stderr), String> {
        let binary = how.binary.clone().unwrap_or_else(|| PathBuf::from(BIN));
        let mut cmd = match how.wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        cmd.arg("--port").arg("0").arg("--log-dir").arg(log_dir);
        cmd.args(args);
        for name in &how.env_remove {
            cmd.env_remove(name);
        }
        for (name, value) in &how.env {
            cmd.env(name, value);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| format!("spawn {binary:?}: {e}"))?;
        let stderr = Stderr::default();
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        let err_thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match err_pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.push(&chunk[..n]),
                }
            }
            sink.closed.store(true, Ordering::SeqCst);
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let Some(url) = line.trim().strip_prefix("listening on http://") else {
            let status = wait_timeout(&mut child, Duration::from_secs(10));
            if status.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = err_thread.join();
            return Err(format!(
                "logcast {args:?} did not start: first line {line:?}, exit {status:?}, stderr {:?}",
                stderr.text()
            ));
        };
        let addr: SocketAddr = url.parse().expect("listening address");
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let d = Daemon {
            child,
            addr,
            log_dir: log_dir.to_path_buf(),
            owns_dir: false,
        };
        Ok((d, stderr))
    }

    /// Like [`Daemon::start`] (a fresh log dir, removed on drop), but a
    /// daemon that refuses to start is an `Err` with its stderr, so that the
    /// test can say why (an option it does not know yet, for example).
    pub fn try_start(args: &[&str]) -> Result<Daemon, String> {
        let dir = temp_dir("daemon");
        match Daemon::launch(&dir, args, &Launch::default()) {
            Ok((mut d, _stderr)) => {
                d.owns_dir = true;
                Ok(d)
            }
            Err(why) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(why)
            }
        }
    }

    /// A connection to the daemon whose receive buffer is `rcvbuf` bytes
    /// (set before connecting, so the kernel does not grow it): a client
    /// that never reads fills it, and the daemon's send buffer, quickly.
    pub fn connect_small(&self, rcvbuf: usize) -> TcpStream {
        use rustix::net::{AddressFamily, SocketType};
        let family = if self.addr.is_ipv4() {
            AddressFamily::INET
        } else {
            AddressFamily::INET6
        };
        let fd = rustix::net::socket(family, SocketType::STREAM, None).expect("socket");
        rustix::net::sockopt::set_socket_recv_buffer_size(&fd, rcvbuf).expect("SO_RCVBUF");
        rustix::net::connect(&fd, &self.addr).expect("connect");
        let s = TcpStream::from(fd);
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        s
    }
}

/// Clears the write bits of a file: a read-only log is finished (SPEC section 3).
pub fn make_read_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).expect("chmod 0444");
}

/// The test as the log writer: writes `bytes` as the whole file, mode 0644
/// (a log still being written).
pub fn write_file(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).expect("write log file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).expect("chmod 0644");
}

/// Another program appending: open with O_APPEND, one `write`, close.
pub fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(bytes).expect("append");
}

/// A JSON answer: `status`, `Content-Type: application/json`, `Server:
/// logcast` and a `Content-Length` that matches the body.
pub fn assert_json(r: &Response, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{what}: {:?}",
        r.headers
    );
    assert_eq!(r.header("server"), Some("logcast"), "{what}");
    assert_eq!(
        r.header("content-length")
            .and_then(|v| v.parse::<usize>().ok()),
        Some(r.body.len()),
        "{what}: Content-Length"
    );
}

/// An error answer: `status`, `Content-Type: application/json` and the body
/// `{"error": "..."}`.
pub fn assert_error(r: &Response, status: u16, what: &str) {
    assert_json(r, status, what);
    let t = r.text();
    assert!(
        t.starts_with("{\"error\": \"") && t.ends_with("\"}"),
        "{what}: error body {t:?}"
    );
}

/// The flat objects of a JSON array of flat objects (no nested braces).
pub fn json_array_objects(text: &str) -> Vec<String> {
    let t = text.trim();
    assert!(
        t.starts_with('[') && t.ends_with(']'),
        "not a JSON array: {t:.200}"
    );
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(start) = rest.find('{') {
        let end = start + rest[start..].find('}').expect("closing brace");
        out.push(rest[start..=end].to_string());
        rest = &rest[end + 1..];
    }
    out
}

/// Pids of the direct children of `pid` (the workers of a supervisor).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// On-CPU nanoseconds of process `pid`'s main thread (`/proc/PID/schedstat`).
pub fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no schedstat for {pid}"))
}
