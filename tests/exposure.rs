//! Integration tests of what a daemon exposed beyond localhost needs (SPEC
//! section 1 `--read-only`, `--token-file`, `--cors-origin`,
//! `--stall-timeout-ms`, and the read-only fallback for a log dir that cannot
//! be written; section 3 `POST`/`DELETE` 403 and 401).
//!
//! Writes (`POST`, `DELETE`) are what these options guard; reads (`GET`, the
//! streams) stay open to anyone who can reach the port. The stall timeout's
//! behaviour is tested in tests/regressions.rs; only its option is here.

mod common;

use common::{
    assert_error, eventually, json_str_field, make_read_only, Daemon, Launch, RemoveOnDrop,
    Response, SseStream, Stderr, BIN,
};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const FAST: &[&str] = &["--write-interval-ms", "50", "--poll-interval-ms", "20"];

fn launch(dir: &Path, args: &[&str], how: &Launch) -> (Daemon, Stderr) {
    Daemon::launch(dir, args, how).unwrap_or_else(|why| panic!("{why}"))
}

fn start(dir: &Path, args: &[&str]) -> Daemon {
    launch(dir, args, &Launch::default()).0
}

fn with(args: &[&str], more: &[&str]) -> Vec<String> {
    args.iter().chain(more).map(|s| s.to_string()).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The `*.log` files in `dir`, sorted.
fn log_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names
}

/// A finished foreign log `<id>.log` with lines `one`, `two`.
fn put_finished(dir: &Path, id: &str) -> PathBuf {
    let path = dir.join(format!("{id}.log"));
    fs::write(&path, b"one\ntwo\n").expect("write");
    make_read_only(&path);
    path
}

/// The stream of a finished `one\ntwo\n` log: both lines, then `end`.
fn assert_streams_finished_log(d: &Daemon, id: &str, extra: &[&str]) -> SseStream {
    let mut s = SseStream::open(d, &format!("/api/logs/{id}/stream"), extra);
    assert_eq!(s.head.status, 200, "stream of {id}: {:?}", s.head);
    let events = s.read_to_close(Duration::from_secs(5));
    let data: Vec<&str> = events.iter().filter_map(|e| e.data.as_deref()).collect();
    assert_eq!(data.len(), 3, "stream of {id}: {events:?}");
    assert_eq!(&data[..2], ["one", "two"]);
    assert_eq!(events[2].event.as_deref(), Some("end"), "{events:?}");
    s
}

// ---------------------------------------------------------------------------
// --read-only, and a log dir that cannot be written

/// SPEC section 1, `--read-only`: no endpoint creates or deletes anything:
/// `POST /api/logs` and `DELETE /api/logs/<id>` are 403 JSON and the
/// directory is left as it was, while the list, the info and the streams work.
#[test]
fn read_only_refuses_post_and_delete_with_403() {
    let dir = common::temp_dir("exposure-ro");
    let _cleanup = RemoveOnDrop(vec![dir.clone()]);
    let ext = put_finished(&dir, "ext");
    let d = start(&dir, &strs(&with(FAST, &["--read-only"])));
    for target in ["/api/logs", "/api/logs?duration=1"] {
        assert_error(&d.request_with("POST", target, &[]), 403, target);
    }
    assert_error(
        &d.request_with("DELETE", "/api/logs/ext", &[]),
        403,
        "DELETE",
    );
    assert!(ext.exists(), "DELETE removed a file in read-only mode");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        log_files(&dir),
        ["ext.log"],
        "files created in read-only mode"
    );

    let r = d.get("/api/logs");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\"ext\""), "{}", r.text());
    assert_eq!(d.get("/api/logs/ext").status, 200);
    assert_eq!(d.get("/healthz").status, 200);
    assert_streams_finished_log(&d, "ext", &[]);
    drop(d);
}

/// Whether `setpriv` can run `program args` as nobody (uid/gid 65534).
fn runs_as_nobody(program: &Path, args: &[&str]) -> bool {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// SPEC section 1: a log dir the daemon can read but not write (as
/// `/var/log/nginx` is for an unprivileged user) is served read-only, with a
/// warning at start, as if `--read-only` were given: streams of its files
/// work, `POST` is 403. Permission bits do not stop root, so as root the
/// daemon is run as nobody through `setpriv` (the test is skipped, saying so,
/// when that is not possible).
#[test]
fn an_unwritable_log_dir_is_served_read_only_with_a_warning() {
    let dir = common::temp_dir("exposure-rodir");
    let bin_dir = common::temp_dir("exposure-bin");
    let _cleanup = RemoveOnDrop(vec![dir.clone(), bin_dir.clone()]);
    put_finished(&dir, "ext");
    let mut how = Launch {
        env: vec![("RUST_LOG".into(), "info".into())],
        ..Launch::default()
    };
    if rustix::process::geteuid().is_root() {
        if !runs_as_nobody(Path::new("/usr/bin/env"), &["true"]) {
            eprintln!("skipped: running as root and `setpriv` cannot run a program as nobody");
            return;
        }
        // Readable, not writable, by nobody.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
        let ext = dir.join("ext.log");
        if !runs_as_nobody(
            Path::new("/usr/bin/env"),
            &["test", "-r", &ext.to_string_lossy()],
        ) {
            eprintln!("skipped: nobody cannot reach {}", ext.display());
            return;
        }
        let mut binary = PathBuf::from(BIN);
        if !runs_as_nobody(&binary, &["--version"]) {
            // A parent of the build directory is closed to nobody: a copy.
            fs::set_permissions(&bin_dir, fs::Permissions::from_mode(0o755)).expect("chmod");
            binary = bin_dir.join("logcast");
            fs::copy(BIN, &binary).expect("copy the binary");
            fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        how.wrapper = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]
        .map(String::from)
        .to_vec();
        how.binary = Some(binary);
    } else {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).expect("chmod 0555");
        if fs::write(dir.join("probe"), b"x").is_ok() {
            eprintln!("skipped: this process can write a 0555 directory it owns");
            return;
        }
    }

    let (d, stderr) = launch(&dir, FAST, &how);
    let warned = || {
        stderr
            .text()
            .lines()
            .any(|l| l.to_ascii_lowercase().contains("read-only"))
    };
    assert!(
        eventually(Duration::from_secs(2), warned),
        "no read-only warning at start: {:?}",
        stderr.text()
    );
    assert_streams_finished_log(&d, "ext", &[]);
    assert_error(
        &d.request_with("POST", "/api/logs?duration=1", &[]),
        403,
        "POST",
    );
    assert_error(
        &d.request_with("DELETE", "/api/logs/ext", &[]),
        403,
        "DELETE",
    );
    assert!(dir.join("ext.log").exists(), "DELETE removed the file");
    assert_eq!(d.get("/api/logs").status, 200);
}

// ---------------------------------------------------------------------------
// --token-file

const TOKEN: &str = "s3cr3t-T0ken-9f8e7d6c";

/// A 401 for want of the right token: JSON, and a `WWW-Authenticate: Bearer`
/// challenge (RFC 6750 section 3).
fn assert_unauthorized(r: &Response, what: &str) {
    assert_error(r, 401, what);
    let challenge = r
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: 401 without WWW-Authenticate: {:?}", r.headers));
    assert!(
        challenge.to_ascii_lowercase().starts_with("bearer"),
        "{what}: WWW-Authenticate {challenge:?}"
    );
}

/// SPEC section 1, `--token-file PATH`: `POST` and `DELETE` need
/// `Authorization: Bearer <the file's first line>` (its newline is not part
/// of it); without it, or with any other token (a prefix of it, it with more
/// after it, no scheme), they are 401 with `WWW-Authenticate: Bearer` and
/// change nothing. `GET`s need no token. The token never appears on stderr,
/// even at `RUST_LOG=debug`.
#[test]
fn token_file_guards_post_and_delete() {
    let base = common::temp_dir("exposure-token");
    let _cleanup = RemoveOnDrop(vec![base.clone()]);
    let token_file = base.join("token");
    fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).expect("chmod");
    let logs = base.join("logs");
    fs::create_dir(&logs).expect("mkdir");
    let ext = put_finished(&logs, "ext");
    let args = with(FAST, &["--token-file", token_file.to_str().expect("utf-8")]);
    let how = Launch {
        env: vec![("RUST_LOG".into(), "debug".into())],
        ..Launch::default()
    };
    let (mut d, stderr) = launch(&logs, &strs(&args), &how);

    let right = format!("Authorization: Bearer {TOKEN}");
    let wrong = [
        None,
        Some("Authorization: Bearer wrong".to_string()),
        Some(format!("Authorization: Bearer {TOKEN}x")),
        Some(format!(
            "Authorization: Bearer {}",
            &TOKEN[..TOKEN.len() - 1]
        )),
        Some(format!("Authorization: {TOKEN}")),
        Some("Authorization: Bearer".to_string()),
    ];
    for h in &wrong {
        let headers: Vec<&str> = h.iter().map(String::as_str).collect();
        assert_unauthorized(
            &d.request_with("POST", "/api/logs?duration=1", &headers),
            &format!("POST with {h:?}"),
        );
        assert_unauthorized(
            &d.request_with("DELETE", "/api/logs/ext", &headers),
            &format!("DELETE with {h:?}"),
        );
    }
    assert!(ext.exists(), "a DELETE without the token removed the file");
    assert_eq!(
        log_files(&logs),
        ["ext.log"],
        "a POST without the token created a log"
    );

    let r = d.request_with("POST", "/api/logs?duration=1", &[&right]);
    assert_eq!(r.status, 201, "POST with the token: {}", r.text());
    let id = json_str_field(&r.text(), "log_id").expect("log_id");

    // Reads need no token.
    assert_eq!(d.get("/api/logs").status, 200);
    assert_eq!(d.get(&format!("/api/logs/{id}")).status, 200);
    assert_eq!(d.get("/healthz").status, 200);
    assert_streams_finished_log(&d, "ext", &[]);

    let (r, rest) = d.request_full("DELETE", "/api/logs/ext", &[&right]);
    assert_eq!(r.status, 204, "DELETE with the token: {r:?}");
    assert!(rest.is_empty(), "204 with a body");
    assert!(!ext.exists(), "DELETE with the token left the file");

    let status = d.terminate(Duration::from_secs(5));
    assert!(status.is_some(), "no exit after SIGTERM");
    stderr.wait_closed(Duration::from_secs(5));
    let text = stderr.text();
    assert!(!text.contains(TOKEN), "the token is on stderr: {text}");
    assert!(
        !text.contains(&TOKEN[4..16]),
        "part of the token is on stderr: {text}"
    );
    drop(d);
}

/// SPEC section 1: a token file that is missing or whose first line is empty
/// cannot guard anything: the daemon refuses to start (exit 2 or 1) with a
/// message naming `--token-file`. A good file starts it.
#[test]
fn a_missing_or_empty_token_file_refuses_to_start() {
    let base = common::temp_dir("exposure-badtoken");
    let _cleanup = RemoveOnDrop(vec![base.clone()]);
    let logs = base.join("logs");
    fs::create_dir(&logs).expect("mkdir");
    let good = base.join("good");
    fs::write(&good, format!("{TOKEN}\n")).expect("write");
    let (mut d, _) = launch(
        &logs,
        &["--token-file", good.to_str().expect("utf-8")],
        &Launch::default(),
    );
    assert!(d.terminate(Duration::from_secs(5)).is_some());
    drop(d);

    let empty = base.join("empty");
    fs::write(&empty, b"").expect("write");
    let blank = base.join("blank");
    fs::write(&blank, b"\nsecond line\n").expect("write");
    let missing = base.join("missing");
    let logs_arg = logs.to_str().expect("utf-8").to_string();
    for file in [&missing, &empty, &blank] {
        let f = file.to_str().expect("utf-8");
        let run = common::run_to_exit(&["--port", "0", "--log-dir", &logs_arg, "--token-file", f]);
        assert!(
            matches!(run.code, Some(1) | Some(2)),
            "{f}: exit {:?}; stderr {:?}",
            run.code,
            run.stderr
        );
        assert!(run.stderr.contains("--token-file"), "{f}: {:?}", run.stderr);
        assert!(!run.stdout.contains("listening on"), "{f}: started anyway");
    }
}

// ---------------------------------------------------------------------------
// --cors-origin

const DASH: &str = "https://dash.example";
const OTHER: &str = "https://other.example";
const EVIL: &str = "https://evil.example";

/// The comma-separated tokens of every header line named `name`, lower-cased.
fn tokens(r: &Response, name: &str) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n == name)
        .flat_map(|(_, v)| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn access_control_headers(r: &Response) -> Vec<&(String, String)> {
    r.headers
        .iter()
        .filter(|(n, _)| n.starts_with("access-control-"))
        .collect()
}

fn assert_allowed(r: &Response, origin: &str, what: &str) {
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some(origin),
        "{what}: {:?}",
        r.headers
    );
}

fn assert_preflight(r: &Response, origin: &str, what: &str) {
    assert_eq!(r.status, 204, "{what}: {:?} {}", r.headers, r.text());
    assert_allowed(r, origin, what);
    let methods = tokens(r, "access-control-allow-methods");
    for m in ["get", "post", "delete"] {
        assert!(
            methods.iter().any(|t| t == m),
            "{what}: methods {methods:?} lack {m}"
        );
    }
    let headers = tokens(r, "access-control-allow-headers");
    for h in ["authorization", "last-event-id"] {
        assert!(
            headers.iter().any(|t| t == h),
            "{what}: headers {headers:?} lack {h}"
        );
    }
}

/// SPEC section 1, `--cors-origin ORIGIN` (repeatable): for a listed origin,
/// responses under `/api/` carry `Access-Control-Allow-Origin: <it>` and
/// `Vary: Origin` (GET, POST and the SSE stream alike), and a preflight
/// `OPTIONS` is 204 with `Access-Control-Allow-Methods` (GET, POST, DELETE)
/// and `Access-Control-Allow-Headers` (Authorization, Last-Event-ID). Any
/// other origin gets no `Access-Control-Allow-*` header at all.
#[test]
fn cors_answers_the_listed_origins_and_no_other() {
    let dir = common::temp_dir("exposure-cors");
    let _cleanup = RemoveOnDrop(vec![dir.clone()]);
    put_finished(&dir, "ext");
    let args = with(FAST, &["--cors-origin", DASH, "--cors-origin", OTHER]);
    let d = start(&dir, &strs(&args));
    for origin in [DASH, OTHER] {
        let what = format!("GET /api/logs from {origin}");
        let r = d.request_with("GET", "/api/logs", &[&format!("Origin: {origin}")]);
        assert_eq!(r.status, 200, "{what}");
        assert_allowed(&r, origin, &what);
        assert!(
            tokens(&r, "vary").iter().any(|t| t == "origin"),
            "{what}: no Vary: Origin: {:?}",
            r.headers
        );
    }
    let origin = format!("Origin: {DASH}");
    let r = d.request_with(
        "OPTIONS",
        "/api/logs",
        &[&origin, "Access-Control-Request-Method: POST"],
    );
    assert_preflight(&r, DASH, "preflight POST /api/logs");
    let r = d.request_with(
        "OPTIONS",
        "/api/logs/ext",
        &[
            &origin,
            "Access-Control-Request-Method: DELETE",
            "Access-Control-Request-Headers: authorization",
        ],
    );
    assert_preflight(&r, DASH, "preflight DELETE /api/logs/ext");

    let r = d.request_with("POST", "/api/logs?duration=1", &[&origin]);
    assert_eq!(r.status, 201, "POST from {DASH}: {}", r.text());
    assert_allowed(&r, DASH, "POST");

    let s = assert_streams_finished_log(&d, "ext", &[&origin]);
    assert_allowed(&s.head, DASH, "SSE stream");

    // Another origin: served as before, but nothing that lets a browser read it.
    let evil = format!("Origin: {EVIL}");
    let r = d.request_with("GET", "/api/logs", &[&evil]);
    assert_eq!(r.status, 200);
    let allow: Vec<_> = r
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("access-control-allow-"))
        .collect();
    assert!(allow.is_empty(), "GET from {EVIL}: {allow:?}");
    let r = d.request_with(
        "OPTIONS",
        "/api/logs",
        &[&evil, "Access-Control-Request-Method: POST"],
    );
    let allow: Vec<_> = r
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("access-control-allow-"))
        .collect();
    assert!(
        allow.is_empty(),
        "preflight from {EVIL}: {} {allow:?}",
        r.status
    );
    let s = SseStream::open(&d, "/api/logs/ext/stream", &[&evil]);
    assert_eq!(
        s.head.header("access-control-allow-origin"),
        None,
        "stream from {EVIL}"
    );
    drop(d);
}

/// SPEC section 1, `--cors-origin '*'`: any origin is answered with
/// `Access-Control-Allow-Origin: *`, on requests and preflights.
#[test]
fn cors_star_allows_any_origin() {
    let dir = common::temp_dir("exposure-cors-star");
    let _cleanup = RemoveOnDrop(vec![dir.clone()]);
    let d = start(&dir, &["--cors-origin", "*"]);
    for origin in [DASH, EVIL, "http://localhost:8080"] {
        let r = d.request_with("GET", "/api/logs", &[&format!("Origin: {origin}")]);
        assert_eq!(r.status, 200);
        assert_allowed(&r, "*", origin);
        let r = d.request_with(
            "OPTIONS",
            "/api/logs",
            &[
                &format!("Origin: {origin}"),
                "Access-Control-Request-Method: POST",
            ],
        );
        assert_eq!(r.status, 204, "preflight from {origin}: {:?}", r.headers);
        assert_allowed(&r, "*", origin);
    }
    drop(d);
}

/// SPEC section 1: CORS is off unless `--cors-origin` is given: no
/// `Access-Control-*` header on any response, whatever the `Origin`.
#[test]
fn without_cors_origin_no_access_control_headers() {
    let dir = common::temp_dir("exposure-nocors");
    let _cleanup = RemoveOnDrop(vec![dir.clone()]);
    put_finished(&dir, "ext");
    let d = start(&dir, FAST);
    let origin = format!("Origin: {DASH}");
    for target in ["/api/logs", "/api/logs/ext"] {
        let r = d.request_with("GET", target, &[&origin]);
        assert_eq!(r.status, 200, "{target}");
        assert!(
            access_control_headers(&r).is_empty(),
            "{target}: {:?}",
            r.headers
        );
    }
    let r = d.request_with(
        "OPTIONS",
        "/api/logs",
        &[&origin, "Access-Control-Request-Method: POST"],
    );
    assert!(
        access_control_headers(&r).is_empty(),
        "preflight: {} {:?}",
        r.status,
        r.headers
    );
    let s = SseStream::open(&d, "/api/logs/ext/stream", &[&origin]);
    assert!(
        access_control_headers(&s.head).is_empty(),
        "stream: {:?}",
        s.head.headers
    );
    drop(d);
}

// ---------------------------------------------------------------------------
// --stall-timeout-ms

/// SPEC section 1, `--stall-timeout-ms N` (default 300000): takes a number of
/// milliseconds; anything else exits 2 with one line naming the option. (What
/// it does is tested in tests/regressions.rs.)
#[test]
fn stall_timeout_option_takes_milliseconds_and_refuses_bad_values() {
    let dir = common::temp_dir("exposure-stallopt");
    let _cleanup = RemoveOnDrop(vec![dir.clone()]);
    for value in ["300000", "1000"] {
        let (mut d, _) = launch(&dir, &["--stall-timeout-ms", value], &Launch::default());
        assert!(d.terminate(Duration::from_secs(5)).is_some(), "{value}");
    }
    let dir_arg = dir.to_str().expect("utf-8").to_string();
    for bad in ["abc", "-1", "1.5", ""] {
        let run = common::run_to_exit(&[
            "--port",
            "0",
            "--log-dir",
            &dir_arg,
            "--stall-timeout-ms",
            bad,
        ]);
        assert_eq!(run.code, Some(2), "{bad:?}: stderr {:?}", run.stderr);
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "{bad:?}: {:?}", run.stderr);
        assert!(
            lines[0].contains("--stall-timeout-ms"),
            "{bad:?}: {:?}",
            lines[0]
        );
    }
}
