//! Faults a daemon meets when it runs unattended for weeks: a log dir that is
//! missing, unusable, removed or full; logs deleted under their streams;
//! clients that reset connections in the middle of a frame; the writer,
//! connection and descriptor limits; and a graceful stop with thousands of
//! streams followed by a resume on a new daemon. Every test talks to a real
//! daemon over real sockets, checks what the client sees (status, bytes), and
//! checks that the daemon still answers `GET /healthz` afterwards.
//!
//! Tests that need privileges (mounting a tmpfs, `prlimit` on another
//! process) print a `skipped: <reason>` line and return when the sandbox does
//! not allow them. The tests run one at a time (a process-wide lock): several
//! of them assert timings and descriptor counts that parallel load on a small
//! machine would blur.

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{eventually, is_closed, read_response, temp_dir, Daemon, Event, Response, SseStream};

/// The exact bytes of the control frames (CONTRACT.md).
const END_DELETED: &[u8] = b"event: end\ndata: {\"reason\": \"deleted\"}\n\n";
const SHUTDOWN: &[u8] = b"event: shutdown\ndata: {\"reason\": \"shutdown\"}\n\n";

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs the tests of this file one at a time (a failed test does not block the rest).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One request on a fresh connection with `Connection: close`; errors say what failed.
fn http(addr: SocketAddr, method: &str, target: &str) -> Result<Response, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    let req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{method} {target}: write: {e}"))?;
    read_response(&mut s, method == "HEAD")
        .ok_or_else(|| format!("{method} {target}: no complete response (closed or timed out)"))
}

/// The daemon process is alive and answers `GET /healthz` with `200 ok`.
fn assert_healthy(d: &mut Daemon, ctx: &str) {
    if let Ok(Some(status)) = d.child.try_wait() {
        panic!("{ctx}: the daemon exited ({status})");
    }
    match http(d.addr, "GET", "/healthz") {
        Ok(r) if r.status == 200 && r.body == b"ok" => {}
        Ok(r) => panic!("{ctx}: GET /healthz answered {} {:?}", r.status, r.text()),
        Err(e) => panic!("{ctx}: GET /healthz failed: {e}"),
    }
}

/// Asserts a JSON error response with `status`; returns its `error` text.
fn json_error(r: &Response, status: u16, ctx: &str) -> String {
    assert_eq!(
        r.status,
        status,
        "{ctx}: expected {status}, got {} {:?}",
        r.status,
        r.text()
    );
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{ctx}: {status} with Content-Type {ct:?}, body {:?}",
        r.text()
    );
    common::json_str_field(&r.text(), "error").unwrap_or_else(|| {
        panic!(
            "{ctx}: {status} body has no \"error\" field: {:?}",
            r.text()
        )
    })
}

/// One metric (exact name with labels) from `GET /metrics`.
fn metric(addr: SocketAddr, name: &str) -> Result<f64, String> {
    let r = http(addr, "GET", "/metrics")?;
    if r.status != 200 {
        return Err(format!("GET /metrics answered {}", r.status));
    }
    r.text()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse::<f64>().ok()).flatten()
        })
        .ok_or_else(|| format!("metric {name} missing from /metrics"))
}

/// Waits until `name` equals `want`; panics with the last value seen.
fn wait_metric(d: &Daemon, name: &str, want: f64, limit: Duration, ctx: &str) {
    let mut last = Err(String::from("never read"));
    let ok = eventually(limit, || {
        last = metric(d.addr, name);
        matches!(last, Ok(v) if v == want)
    });
    assert!(
        ok,
        "{ctx}: {name} = {last:?} after {limit:?}, expected {want}"
    );
}

/// Appends bytes to a file (opened and closed each time, like a log writer).
fn append(path: &Path, bytes: &[u8]) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for append: {e}", path.display()));
    f.write_all(bytes)
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

fn stream_url(id: &str) -> String {
    format!("/api/logs/{id}/stream")
}

/// Opens a stream and asserts its 200 `text/event-stream` head.
fn open_stream(d: &Daemon, id: &str, headers: &[&str]) -> SseStream {
    let st = SseStream::open(d, &stream_url(id), headers);
    assert_eq!(
        st.head.status, 200,
        "stream of {id}: status {} ({:?})",
        st.head.status, st.head.headers
    );
    st
}

/// Reads events until an `end` event; returns the events and when the end arrived.
fn read_until_end(st: &mut SseStream, limit: Duration) -> (Vec<Event>, Option<Instant>) {
    let (events, found) = st.events_until(limit, |e| e.event.as_deref() == Some("end"));
    (events, found.then(Instant::now))
}

/// A directory removed (after restoring write bits) when dropped.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(&self.0)
            .status();
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A tmpfs mounted for the test; unmounted when dropped (also when the test fails).
struct Mount {
    dir: PathBuf,
}

impl Mount {
    fn tmpfs(dir: &Path, options: &str) -> Result<Mount, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs -o {options} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Mount {
            dir: dir.to_path_buf(),
        })
    }

    fn remount(&self, options: &str) -> Result<(), String> {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "mount -o remount,{options} {}: {}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a process still holds a file there): detach it lazily.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Checks that `events` (message events from file offset `from`) are exactly
/// the lines of `content[from..to]`: each event's id is the offset just past
/// its line and its data is the line. A final line without `\n` is allowed
/// when `last_unterminated` (a finished log).
fn assert_events_match_file(
    events: &[Event],
    content: &[u8],
    from: u64,
    to: u64,
    last_unterminated: bool,
    ctx: &str,
) {
    let mut pos = from as usize;
    for (i, ev) in events.iter().enumerate() {
        let id: usize = ev
            .id
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{ctx}: event #{i} has no numeric id: {ev:?}"));
        assert!(
            id > pos && id <= content.len(),
            "{ctx}: event #{i} id {id} not after {pos} within the file of {} bytes: {ev:?}",
            content.len()
        );
        let raw = &content[pos..id];
        let line = match raw.strip_suffix(b"\n") {
            Some(l) => l,
            None => {
                assert!(
                    last_unterminated && id == content.len(),
                    "{ctx}: event #{i} (id {id}) does not end at a line end"
                );
                raw
            }
        };
        let want = String::from_utf8_lossy(line);
        assert_eq!(
            ev.data.as_deref(),
            Some(want.as_ref()),
            "{ctx}: event #{i} (id {id}): data differs from the file's line at offset {pos}"
        );
        pos = id;
    }
    assert_eq!(
        pos as u64, to,
        "{ctx}: events cover file offsets {from}..{pos}, expected up to {to}"
    );
}

fn is_message(e: &Event) -> bool {
    e.event.is_none() && e.data.is_some()
}

/// The message events (log lines) of a raw SSE body.
fn body_events(raw: &[u8]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(pos) = rest.windows(2).position(|w| w == b"\n\n") {
        let ev = common::parse_event(&rest[..pos + 1]);
        if is_message(&ev) {
            out.push(ev);
        }
        rest = &rest[pos + 2..];
    }
    out
}

// ---------------------------------------------------------------------------
// the log dir at start
// ---------------------------------------------------------------------------

#[test]
fn missing_nested_log_dir_is_created_and_used() {
    let _serial = serial();
    let parent = temp_dir("faults-mkdir");
    let _cleanup = Cleanup(parent.clone());
    let dir = parent.join("a").join("b").join("logs");
    let mut d = Daemon::start_in(&dir, &["--write-interval-ms", "50"]);
    assert!(dir.is_dir(), "{} was not created", dir.display());
    let id = d.create_log(1);
    assert!(
        d.log_path(&id).is_file(),
        "POST answered 201 but {} does not exist",
        d.log_path(&id).display()
    );
    assert_healthy(&mut d, "after creating a log in a created dir");
}

#[test]
fn unusable_log_dir_at_start_exits_1_naming_it() {
    let _serial = serial();
    let parent = temp_dir("faults-baddir");
    let _cleanup = Cleanup(parent.clone());

    // Cannot be created: its parent is a regular file (root cannot do that either).
    let file = parent.join("regular-file");
    fs::write(&file, "not a directory").expect("write regular file");
    common::assert_refuses_log_dir(&file.join("logs"), "log dir under a regular file");

    // Not writable: a read-only file system stops root too. Reading is all
    // `tail -f` over HTTP needs: it is served read-only, with a warning.
    let ro = parent.join("ro-mount");
    fs::create_dir(&ro).expect("mkdir ro-mount");
    match Mount::tmpfs(&ro, "size=64k") {
        Ok(mount) => {
            fs::write(ro.join("old.log"), "one\ntwo\n").expect("write a log");
            match mount.remount("ro") {
                Ok(()) => assert_served_read_only(&ro),
                Err(why) => eprintln!("skipped (read-only mount case): {why}"),
            }
        }
        Err(why) => eprintln!("skipped (read-only mount case): {why}"),
    }
}

/// A log dir the daemon can read but not write: it starts, warns, streams
/// the logs there, and answers POST with 403.
fn assert_served_read_only(dir: &std::path::Path) {
    let (d, stderr) =
        Daemon::launch(dir, &["--port", "0"], &common::Launch::default()).expect("starts");
    let r = http(d.addr, "POST", "/api/logs?duration=1").expect("POST");
    json_error(&r, 403, "POST on a read-only log dir");
    let mut s = open_stream(&d, "old", &[]);
    let (evs, ok) = s.events_until(Duration::from_secs(3), |e| e.data.as_deref() == Some("two"));
    assert!(ok, "the read-only dir's log did not stream: {evs:?}");
    assert!(
        // The log is read by a thread: on a loaded machine it may lag.
        eventually(Duration::from_secs(5), || stderr
            .text()
            .contains("read-only")),
        "no warning at start: {:?}",
        stderr.text()
    );
}

// ---------------------------------------------------------------------------
// the log dir while running
// ---------------------------------------------------------------------------

#[test]
fn log_dir_removed_while_running() {
    let _serial = serial();
    let parent = temp_dir("faults-gone");
    let _cleanup = Cleanup(parent.clone());
    let dir = parent.join("logs");
    let mut d = Daemon::start_in(
        &dir,
        &["--poll-interval-ms", "50", "--write-interval-ms", "50"],
    );
    // An external log, and one of logcast's own writers.
    let ext = dir.join("ext.log");
    append(&ext, b"one\ntwo\n");
    let own = d.create_log(3);
    let mut s_ext = open_stream(&d, "ext", &[]);
    let mut s_own = open_stream(&d, &own, &[]);
    let (evs, ok) =
        s_ext.events_until(Duration::from_secs(3), |e| e.data.as_deref() == Some("two"));
    assert!(ok, "external log's lines did not arrive: {evs:?}");
    let first = s_own.next_event(Duration::from_secs(3));
    assert!(
        first
            .as_ref()
            .and_then(|e| e.data.as_deref())
            .is_some_and(|l| l.starts_with("[LOG CREATED] ")),
        "first event of the writer's log: {first:?}"
    );

    fs::remove_dir_all(&dir).expect("remove the log dir");
    let removed = Instant::now();

    // Creating a log now fails with a 500 that names the cause.
    let r = http(d.addr, "POST", "/api/logs?duration=5").expect("POST after removal");
    let err = json_error(&r, 500, "POST /api/logs with the log dir removed");
    assert!(
        err.contains("No such file or directory"),
        "the 500 does not name the cause: {err:?}"
    );
    // Listing fails too, with a JSON 500, not a crash or an empty list.
    let r = http(d.addr, "GET", "/api/logs").expect("GET /api/logs after removal");
    json_error(&r, 500, "GET /api/logs with the log dir removed");
    assert_healthy(&mut d, "right after the log dir was removed");

    // Both files went with the directory: both streams end with `deleted`
    // after about one second, and are closed.
    for (name, st) in [("external", &mut s_ext), ("writer's", &mut s_own)] {
        let (evs, at) = read_until_end(st, Duration::from_secs(4));
        let at = at.unwrap_or_else(|| panic!("{name} stream: no `end` event within 4 s: {evs:?}"));
        let waited = at.duration_since(removed);
        assert!(
            waited >= Duration::from_millis(900) && waited <= Duration::from_millis(2500),
            "{name} stream: `end` {waited:?} after the removal (expected about 1 s)"
        );
        assert!(
            st.raw.ends_with(END_DELETED),
            "{name} stream: last bytes {:?}",
            String::from_utf8_lossy(&st.raw[st.raw.len().saturating_sub(80)..])
        );
        assert!(
            is_closed(&mut st.sock, Duration::from_secs(2)),
            "{name} stream: not closed after `end`"
        );
    }
    wait_metric(
        &d,
        "logcast_streams_open",
        0.0,
        Duration::from_secs(2),
        "after the ends",
    );

    // The directory comes back: creating logs works again.
    fs::create_dir_all(&dir).expect("recreate the log dir");
    let r = http(d.addr, "POST", "/api/logs?duration=1").expect("POST after recreating");
    assert_eq!(
        r.status,
        201,
        "POST after the log dir came back: {} {:?}",
        r.status,
        r.text()
    );
    // The writer whose file vanished still ends (its duration was 3 s).
    wait_metric(
        &d,
        "logcast_writers_active",
        0.0,
        Duration::from_secs(6),
        "writers after removal",
    );
    assert_healthy(&mut d, "at the end");
}

#[test]
fn log_dir_replaced_by_a_file_while_running() {
    let _serial = serial();
    let parent = temp_dir("faults-replaced");
    let _cleanup = Cleanup(parent.clone());
    let dir = parent.join("logs");
    let mut d = Daemon::start_in(&dir, &["--poll-interval-ms", "50"]);
    let ext = dir.join("ext.log");
    append(&ext, b"one\n");
    let mut st = open_stream(&d, "ext", &[]);
    let ev = st.next_event(Duration::from_secs(3));
    assert_eq!(
        ev.and_then(|e| e.data),
        Some("one".to_string()),
        "first line"
    );

    fs::remove_dir_all(&dir).expect("remove the log dir");
    fs::write(&dir, "a regular file where the log dir was").expect("put a file there");
    let replaced = Instant::now();

    let r = http(d.addr, "POST", "/api/logs?duration=5").expect("POST after replacement");
    let err = json_error(
        &r,
        500,
        "POST /api/logs with the log dir replaced by a file",
    );
    assert!(
        err.contains("Not a directory"),
        "the 500 does not name the cause: {err:?}"
    );
    assert_healthy(&mut d, "after the log dir was replaced by a file");

    // The log's file is gone (its path now fails with ENOTDIR, not ENOENT):
    // the stream must still end with `deleted` after about a second.
    let (evs, at) = read_until_end(&mut st, Duration::from_secs(4));
    let at = at.unwrap_or_else(|| {
        panic!(
            "no `end` event within 4 s after the log dir was replaced by a file \
             (the stream's file is gone): got {evs:?}"
        )
    });
    let waited = at.duration_since(replaced);
    assert!(
        waited >= Duration::from_millis(900) && waited <= Duration::from_millis(2500),
        "`end` {waited:?} after the replacement (expected about 1 s)"
    );
    assert!(
        st.raw.ends_with(END_DELETED),
        "last bytes {:?}",
        String::from_utf8_lossy(&st.raw[st.raw.len().saturating_sub(80)..])
    );
    assert_healthy(&mut d, "at the end");
}

#[test]
fn log_dir_remounted_read_only_while_running() {
    let _serial = serial();
    let parent = temp_dir("faults-remount");
    let _cleanup = Cleanup(parent.clone());
    let dir = parent.join("logs");
    fs::create_dir(&dir).expect("mkdir");
    let mount = match Mount::tmpfs(&dir, "size=1m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let mut d = Daemon::start_in(&dir, &["--poll-interval-ms", "50"]);
    let ext = dir.join("ext.log");
    append(&ext, b"before\n");
    let mut st = open_stream(&d, "ext", &[]);
    let ev = st.next_event(Duration::from_secs(3));
    assert_eq!(
        ev.and_then(|e| e.data),
        Some("before".to_string()),
        "first line"
    );

    // No file is open for writing, so the remount succeeds.
    mount.remount("ro").expect("remount read-only");
    let r = http(d.addr, "POST", "/api/logs?duration=5").expect("POST on a read-only dir");
    let err = json_error(&r, 500, "POST /api/logs on a read-only log dir");
    assert!(
        err.contains("Read-only file system"),
        "the 500 does not name the cause: {err:?}"
    );
    let r = http(d.addr, "GET", "/api/logs").expect("GET /api/logs");
    assert_eq!(r.status, 200, "listing a read-only dir: {:?}", r.text());
    assert!(r.text().contains("\"ext\""), "listing: {:?}", r.text());
    assert_healthy(&mut d, "with the log dir read-only");

    // The stream is untouched: still open, and it continues once the file grows.
    assert!(
        st.next_event(Duration::from_millis(500)).is_none(),
        "the stream received something while nothing was written"
    );
    mount.remount("rw").expect("remount read-write");
    append(&ext, b"after\n");
    let ev = st.next_event(Duration::from_secs(3));
    assert_eq!(
        ev.and_then(|e| e.data),
        Some("after".to_string()),
        "the stream did not continue after the dir became writable again"
    );
    let r = http(d.addr, "POST", "/api/logs?duration=1").expect("POST after remount rw");
    assert_eq!(r.status, 201, "POST after remount rw: {:?}", r.text());
    assert_healthy(&mut d, "at the end");
    drop(st);
    drop(d);
    drop(mount);
}

#[test]
fn full_disk_ends_the_writer_and_refuses_new_logs() {
    let _serial = serial();
    let parent = temp_dir("faults-full");
    let _cleanup = Cleanup(parent.clone());
    let dir = parent.join("logs");
    fs::create_dir(&dir).expect("mkdir");
    // Declared before the daemon: dropped (unmounted) after it is killed.
    let _mount = match Mount::tmpfs(&dir, "size=64k") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let mut d = Daemon::start_in(
        &dir,
        &["--write-interval-ms", "5", "--poll-interval-ms", "20"],
    );
    let id = d.create_log(3600);
    let path = d.log_path(&id);
    let mut st = open_stream(&d, &id, &[]);
    assert!(
        st.next_event(Duration::from_secs(3)).is_some(),
        "no first event on the writer's log"
    );

    // Fill the file system.
    let filler = dir.join("filler.bin");
    let mut f = fs::File::create(&filler).expect("create filler");
    let chunk = [b'x'; 4096];
    let full = loop {
        match f.write(&chunk) {
            Ok(0) => break String::from("write returned 0"),
            Ok(_) => continue,
            Err(e) => break e.to_string(),
        }
    };
    drop(f);
    assert!(
        full.contains("No space left"),
        "filling the tmpfs stopped with {full:?}"
    );

    // The writer meets ENOSPC and ends cleanly: its file turns read-only.
    let mut info = None;
    let ended = eventually(Duration::from_secs(5), || {
        info = http(d.addr, "GET", &format!("/api/logs/{id}")).ok();
        info.as_ref()
            .and_then(|r| common::json_raw_field(&r.text(), "writing"))
            .as_deref()
            == Some("false")
    });
    assert!(
        ended,
        "the writer did not end on a full disk: {:?}",
        info.map(|r| r.text())
    );
    let mode = fs::metadata(&path).expect("log file").permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o444,
        "mode of the log after its writer failed: {mode:o}"
    );
    wait_metric(
        &d,
        "logcast_writers_active",
        0.0,
        Duration::from_secs(2),
        "full disk",
    );

    // The stream gets the whole file, then `end` finished.
    let events = st.read_to_close(Duration::from_secs(5));
    let content = fs::read(&path).expect("read the log");
    let last = events.last().cloned();
    let last = last.unwrap_or_else(|| panic!("the stream ended without events"));
    assert_eq!(
        last.event.as_deref(),
        Some("end"),
        "last event on a log whose writer hit a full disk: {last:?}"
    );
    let data = last.data.clone().unwrap_or_default();
    assert!(
        data.contains("\"reason\": \"finished\"")
            && data.contains(&format!("\"bytes\": {}", content.len())),
        "end event {data:?} for a file of {} bytes",
        content.len()
    );
    let lines = body_events(&st.raw);
    assert_events_match_file(
        &lines,
        &content,
        0,
        content.len() as u64,
        true,
        "stream of a log cut by a full disk",
    );
    assert!(
        is_closed(&mut st.sock, Duration::from_secs(1)),
        "the stream stayed open after `end`"
    );

    // New logs cannot be created: 500 naming the cause; nothing left behind.
    let r = http(d.addr, "POST", "/api/logs?duration=5").expect("POST on a full disk");
    let err = json_error(&r, 500, "POST /api/logs on a full disk");
    assert!(
        err.contains("No space left on device"),
        "the 500 does not name the cause: {err:?}"
    );
    let logs = fs::read_dir(&dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .count();
    assert_eq!(logs, 1, "a failed POST left a file behind");
    wait_metric(
        &d,
        "logcast_writers_active",
        0.0,
        Duration::from_secs(1),
        "after the 500",
    );
    assert_healthy(&mut d, "on a full disk");

    // Space comes back: so does POST.
    fs::remove_file(&filler).expect("remove filler");
    let r = http(d.addr, "POST", "/api/logs?duration=1").expect("POST after freeing space");
    assert_eq!(r.status, 201, "POST after freeing space: {:?}", r.text());
    assert_healthy(&mut d, "at the end");
}

// ---------------------------------------------------------------------------
// logs deleted under their streams
// ---------------------------------------------------------------------------

#[test]
fn log_deleted_while_streamed_ends_with_deleted_after_a_second() {
    let _serial = serial();
    let mut d = Daemon::start(&["--poll-interval-ms", "50", "--write-interval-ms", "50"]);
    let ext = d.log_dir.join("ext.log");
    append(&ext, b"alpha\nbeta\n");
    let own = d.create_log(2);
    let mut s_ext = open_stream(&d, "ext", &[]);
    let mut s_own = open_stream(&d, &own, &[]);
    let (evs, ok) = s_ext.events_until(Duration::from_secs(3), |e| {
        e.data.as_deref() == Some("beta")
    });
    assert!(ok, "lines of the external log: {evs:?}");
    assert!(
        s_own.next_event(Duration::from_secs(3)).is_some(),
        "no first event on the writer's log"
    );

    // Delete both files: the writer keeps writing into its unlinked file.
    fs::remove_file(&ext).expect("delete external log");
    fs::remove_file(d.log_path(&own)).expect("delete the writer's log");
    let deleted = Instant::now();
    for (name, st) in [("external", &mut s_ext), ("writer's", &mut s_own)] {
        let (evs, at) = read_until_end(st, Duration::from_secs(4));
        let at =
            at.unwrap_or_else(|| panic!("{name} log: no `end` within 4 s of deletion: {evs:?}"));
        let waited = at.duration_since(deleted);
        assert!(
            waited >= Duration::from_millis(900) && waited <= Duration::from_millis(2000),
            "{name} log: `end` {waited:?} after deletion (expected about 1 s)"
        );
        assert!(
            st.raw.ends_with(END_DELETED),
            "{name} log: the stream does not end with {:?}: last bytes {:?}",
            String::from_utf8_lossy(END_DELETED),
            String::from_utf8_lossy(&st.raw[st.raw.len().saturating_sub(80)..])
        );
        assert!(
            is_closed(&mut st.sock, Duration::from_secs(2)),
            "{name} log: the connection stayed open after `end`"
        );
    }
    wait_metric(
        &d,
        "logcast_streams_open",
        0.0,
        Duration::from_secs(2),
        "after deletion",
    );
    wait_metric(
        &d,
        "logcast_logs_tailed",
        0.0,
        Duration::from_secs(2),
        "after deletion",
    );
    let r = http(d.addr, "GET", &format!("/api/logs/{own}")).expect("info of a deleted log");
    json_error(&r, 404, "GET /api/logs/<deleted id>");
    let r = http(d.addr, "GET", &stream_url(&own)).expect("stream of a deleted log");
    json_error(&r, 404, "stream of a deleted log");
    // The writer of the deleted file still ends at its duration.
    wait_metric(
        &d,
        "logcast_writers_active",
        0.0,
        Duration::from_secs(4),
        "writer of a deleted log",
    );
    assert_healthy(&mut d, "after deleting streamed logs");
}

// ---------------------------------------------------------------------------
// clients resetting connections in the middle of a frame
// ---------------------------------------------------------------------------

/// Sets SO_LINGER to 0: `close` then sends RST instead of FIN.
fn set_linger_zero(s: &TcpStream) {
    rustix::net::sockopt::set_socket_linger(s, Some(Duration::ZERO))
        .expect("setsockopt SO_LINGER 0");
}

#[test]
fn clients_resetting_mid_frame_release_streams_and_fds() {
    let _serial = serial();
    let mut d = Daemon::start(&["--poll-interval-ms", "20", "--write-interval-ms", "2"]);
    // A 4 MiB log: a stream replaying it always has more in flight than the
    // socket buffers hold, so the daemon is in the middle of a frame.
    let big = d.log_dir.join("big.log");
    let mut content = Vec::with_capacity(4 << 20);
    let mut n = 0u64;
    while content.len() < 4 << 20 {
        content.extend_from_slice(
            format!(
                "line {n} of the big log, padded so that frames are neither tiny nor huge: {}\n",
                "x".repeat((n % 97) as usize)
            )
            .as_bytes(),
        );
        n += 1;
    }
    fs::write(&big, &content).expect("write big log");
    let fast = d.create_log(120); // a writer every 2 ms
                                  // A bystander stream that must not notice anything.
    let mut bystander = open_stream(&d, &fast, &[]);
    assert!(
        bystander.next_event(Duration::from_secs(3)).is_some(),
        "bystander: no first event"
    );
    std::thread::sleep(Duration::from_millis(300));
    let fds0 = d.open_fds();

    let mut resets = 0;
    for round in 0..4 {
        let mut socks = Vec::new();
        for i in 0..100 {
            let target = if i % 2 == 0 { "big" } else { fast.as_str() };
            let mut s = d.connect();
            s.write_all(
                format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", stream_url(target)).as_bytes(),
            )
            .unwrap_or_else(|e| panic!("round {round} stream {i}: write request: {e}"));
            socks.push(s);
        }
        // Read a little of each (the head and part of a frame), leave the rest in flight.
        for (i, s) in socks.iter_mut().enumerate() {
            let mut buf = [0u8; 1500];
            let n = s
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("round {round} stream {i}: read: {e}"));
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 200"),
                "round {round} stream {i}: {:?}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
        std::thread::sleep(Duration::from_millis(50));
        // Reset them all: RST with unread data in both directions.
        for s in socks.drain(..) {
            set_linger_zero(&s);
            drop(s);
            resets += 1;
        }
    }
    assert_eq!(resets, 400);

    wait_metric(
        &d,
        "logcast_streams_open",
        1.0,
        Duration::from_secs(3),
        "after 400 resets (bystander left)",
    );
    let mut last = 0;
    let back = eventually(Duration::from_secs(3), || {
        last = d.open_fds();
        last <= fds0
    });
    assert!(back, "daemon fds: {last} after the resets, {fds0} before");
    // The bystander still receives new lines, and every line it got is the file's.
    let more: Vec<Event> = (0..5)
        .filter_map(|_| bystander.next_event(Duration::from_secs(2)))
        .collect();
    assert_eq!(more.len(), 5, "bystander stopped receiving lines: {more:?}");
    let got = body_events(&bystander.raw);
    let upto = got
        .last()
        .and_then(|e| e.id.as_deref())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("bystander: last event id");
    let file = fs::read(d.log_path(&fast)).expect("read the writer's log");
    assert_events_match_file(&got, &file, 0, upto, false, "bystander stream");
    drop(bystander);
    wait_metric(
        &d,
        "logcast_streams_open",
        0.0,
        Duration::from_secs(2),
        "after the bystander left",
    );
    let conns = metric(d.addr, "logcast_connections_open").expect("connections_open");
    assert!(
        conns <= 1.0,
        "logcast_connections_open = {conns} with only the scrape open"
    );
    assert_healthy(&mut d, "after the resets");
}

// ---------------------------------------------------------------------------
// limits
// ---------------------------------------------------------------------------

#[test]
fn max_writers_refuses_the_third_then_recovers() {
    let _serial = serial();
    let mut d = Daemon::start(&["--max-writers", "2", "--write-interval-ms", "50"]);
    let a = d.create_log(1);
    let b = d.create_log(1);
    let r = http(d.addr, "POST", "/api/logs?duration=1").expect("third POST");
    let err = json_error(&r, 503, "third concurrent writer with --max-writers 2");
    assert!(!err.is_empty(), "503 without an error text");
    let logs = fs::read_dir(&d.log_dir)
        .expect("read log dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .count();
    assert_eq!(logs, 2, "the refused POST created a file");
    assert_healthy(&mut d, "after the 503");

    // Both writers finish after their second: POST works again.
    wait_metric(
        &d,
        "logcast_writers_active",
        0.0,
        Duration::from_secs(4),
        "writers finishing",
    );
    for id in [&a, &b] {
        let mode = fs::metadata(d.log_path(id))
            .expect("log")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(
            mode, 0o444,
            "log {id} after its writer finished: mode {mode:o}"
        );
    }
    let r = http(d.addr, "POST", "/api/logs?duration=1").expect("POST after the writers finished");
    assert_eq!(
        r.status,
        201,
        "POST after the writers finished: {:?}",
        r.text()
    );
    assert_healthy(&mut d, "at the end");
}

#[test]
fn streams_count_toward_max_connections() {
    let _serial = serial();
    let mut d = Daemon::start(&["--max-connections", "3", "--poll-interval-ms", "50"]);
    let ext = d.log_dir.join("ext.log");
    append(&ext, b"first\n");
    let mut streams: Vec<SseStream> = (0..3).map(|_| open_stream(&d, "ext", &[])).collect();
    for (i, st) in streams.iter_mut().enumerate() {
        let ev = st.next_event(Duration::from_secs(3));
        assert_eq!(ev.and_then(|e| e.data), Some("first".into()), "stream #{i}");
    }

    // A fourth connection, for anything, gets 503 and is closed.
    let mut s = d.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write on the 4th connection");
    let r = read_response(&mut s, false).expect("a response on the 4th connection");
    json_error(
        &r,
        503,
        "4th connection with 3 streams open and --max-connections 3",
    );
    assert!(
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close")),
        "503 without Connection: close: {:?}",
        r.headers
    );
    assert!(
        is_closed(&mut s, Duration::from_secs(2)),
        "the refused connection was left open"
    );

    // The held streams are unaffected.
    append(&ext, b"second\n");
    for (i, st) in streams.iter_mut().enumerate() {
        let ev = st.next_event(Duration::from_secs(3));
        assert_eq!(
            ev.and_then(|e| e.data),
            Some("second".into()),
            "stream #{i} after the refusal"
        );
    }

    // Closing a stream frees a slot.
    streams.truncate(2);
    let ok = eventually(
        Duration::from_secs(3),
        || matches!(http(d.addr, "GET", "/healthz"), Ok(r) if r.status == 200),
    );
    assert!(
        ok,
        "no connection accepted after closing one of three streams"
    );
    let refused = metric(d.addr, "logcast_connections_refused_total").expect("refused metric");
    assert!(
        refused >= 1.0,
        "logcast_connections_refused_total = {refused}"
    );
    wait_metric(
        &d,
        "logcast_streams_open",
        2.0,
        Duration::from_secs(2),
        "two streams left",
    );
    streams.clear();
    wait_metric(
        &d,
        "logcast_streams_open",
        0.0,
        Duration::from_secs(2),
        "no streams left",
    );
    assert_healthy(&mut d, "at the end");
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // After the command: field 3 (state) is index 0; utime (14) is 11, stime (15) is 12.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

#[test]
fn out_of_file_descriptors_pauses_accepts_without_spinning() {
    let _serial = serial();
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("skipped: prlimit (util-linux) is not installed");
        return;
    }
    let mut d = Daemon::start(&["--header-timeout-ms", "60000", "--idle-timeout-ms", "60000"]);
    let pid = d.pid();
    let out = Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg("--nofile=200:200")
        .output()
        .expect("run prlimit");
    if !out.status.success() {
        eprintln!(
            "skipped: prlimit --pid {pid} --nofile=200:200 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return;
    }
    let fds0 = d.open_fds();

    // 300 connections, each with a complete request: the daemon can take
    // fewer than 200; the rest wait in the listen backlog.
    let mut conns = Vec::new();
    for i in 0..300 {
        let mut s = TcpStream::connect(d.addr).unwrap_or_else(|e| panic!("connect #{i}: {e}"));
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap_or_else(|e| panic!("write #{i}: {e}"));
        conns.push(s);
    }
    // While they wait, the daemon must not spin on a readable listener.
    std::thread::sleep(Duration::from_millis(300));
    let t0 = cpu_ticks(pid).expect("read /proc/<pid>/stat");
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let t1 = cpu_ticks(pid).expect("read /proc/<pid>/stat");
    let wall = w0.elapsed().as_secs_f64();
    let share = (t1 - t0) as f64 / clock_ticks_per_second() as f64 / wall;
    assert!(
        share < 0.30,
        "the daemon used {:.0}% of a core while out of descriptors (spinning on accept?)",
        share * 100.0
    );

    let mut answered = 0;
    for s in &mut conns {
        s.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 256];
        if let Ok(n) = s.read(&mut buf) {
            if buf[..n].starts_with(b"HTTP/1.1 200") {
                answered += 1;
            }
        }
    }
    eprintln!(
        "out of descriptors: {answered} of 300 connections answered, daemon CPU {:.1}% of a core",
        share * 100.0
    );
    assert!(
        answered < 300 && answered > 100,
        "{answered} of 300 connections answered with the daemon at 200 descriptors \
         ({fds0} in use before)"
    );

    // Let go: the daemon retries accepts on a timer and serves again.
    drop(conns);
    let mut last = String::new();
    let ok = eventually(Duration::from_secs(5), || {
        match http(d.addr, "GET", "/healthz") {
            Ok(r) if r.status == 200 => true,
            Ok(r) => {
                last = format!("status {}", r.status);
                false
            }
            Err(e) => {
                last = e;
                false
            }
        }
    });
    assert!(
        ok,
        "no /healthz within 5 s after closing the connections: {last}"
    );
    let errors = metric(d.addr, "logcast_accept_errors_total").expect("accept errors metric");
    assert!(errors > 0.0, "logcast_accept_errors_total = {errors}");
    wait_metric(
        &d,
        "logcast_connections_open",
        1.0,
        Duration::from_secs(5),
        "after closing",
    );
    assert_healthy(&mut d, "after running out of descriptors");
}

// ---------------------------------------------------------------------------
// graceful stop with thousands of streams, then resume on a new daemon
// ---------------------------------------------------------------------------

/// One client of many, read by a single mio loop.
struct Client {
    sock: mio::net::TcpStream,
    raw: Vec<u8>,
    eof: bool,
    log: usize,
}

impl Client {
    /// The body after the response head, if the head has arrived.
    fn body(&self) -> Option<&[u8]> {
        let end = self.raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        Some(&self.raw[end + 4..])
    }
}

/// Reads every readable client until `done` holds or `limit` passes.
fn pump(
    poll: &mut mio::Poll,
    clients: &mut [Client],
    limit: Duration,
    mut done: impl FnMut(&[Client]) -> bool,
) -> bool {
    let mut events = mio::Events::with_capacity(4096);
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if done(clients) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wait = (deadline - now).min(Duration::from_millis(50));
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            assert_eq!(e.kind(), ErrorKind::Interrupted, "poll: {e}");
        }
        for ev in events.iter() {
            let c = &mut clients[ev.token().0];
            while !c.eof {
                match c.sock.read(&mut buf) {
                    Ok(0) => c.eof = true,
                    Ok(n) => c.raw.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => c.eof = true,
                }
            }
        }
    }
}

#[test]
fn graceful_stop_with_2000_streams_then_resume_on_a_new_daemon() {
    const STREAMS: usize = 2000;
    const LOGS: usize = 20;
    let _serial = serial();
    let dir = temp_dir("faults-stop");
    let _cleanup = Cleanup(dir.clone());
    let args = ["--write-interval-ms", "50", "--poll-interval-ms", "50"];
    let mut d = Daemon::start_in(&dir, &args);
    let ids: Vec<String> = (0..LOGS).map(|_| d.create_log(120)).collect();

    let mut poll = mio::Poll::new().expect("mio poll");
    let mut clients = Vec::with_capacity(STREAMS);
    for i in 0..STREAMS {
        let log = i % LOGS;
        let mut s = TcpStream::connect(d.addr).unwrap_or_else(|e| panic!("connect #{i}: {e}"));
        s.write_all(
            format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", stream_url(&ids[log])).as_bytes(),
        )
        .unwrap_or_else(|e| panic!("request #{i}: {e}"));
        s.set_nonblocking(true).expect("nonblocking");
        let mut sock = mio::net::TcpStream::from_std(s);
        poll.registry()
            .register(&mut sock, mio::Token(i), mio::Interest::READABLE)
            .expect("register");
        clients.push(Client {
            sock,
            raw: Vec::new(),
            eof: false,
            log,
        });
    }
    // Every stream has its head and at least one line.
    let started = pump(&mut poll, &mut clients, Duration::from_secs(30), |cs| {
        cs.iter()
            .all(|c| c.body().is_some_and(|b| b.windows(2).any(|w| w == b"\n\n")))
    });
    let waiting = clients
        .iter()
        .filter(|c| !c.body().is_some_and(|b| b.windows(2).any(|w| w == b"\n\n")))
        .count();
    assert!(
        started,
        "{waiting} of {STREAMS} streams got no first event within 30 s"
    );
    for (i, c) in clients.iter().enumerate() {
        assert!(
            c.raw.starts_with(b"HTTP/1.1 200"),
            "stream #{i}: {:?}",
            String::from_utf8_lossy(&c.raw[..c.raw.len().min(200)])
        );
        assert!(!c.eof, "stream #{i} closed before the stop");
    }
    // Let lines flow for a while, then stop.
    pump(&mut poll, &mut clients, Duration::from_millis(500), |_| {
        false
    });
    common::signal(d.pid(), "TERM");
    let stopped = Instant::now();
    let mut exit = None;
    let all_closed = pump(&mut poll, &mut clients, Duration::from_secs(5), |cs| {
        if exit.is_none() {
            if let Ok(Some(status)) = d.child.try_wait() {
                exit = Some((status, stopped.elapsed()));
            }
        }
        cs.iter().all(|c| c.eof)
    });
    let open = clients.iter().filter(|c| !c.eof).count();
    assert!(
        all_closed,
        "{open} of {STREAMS} streams still open 5 s after SIGTERM"
    );
    let (status, took) = match exit {
        Some(e) => e,
        None => {
            let s = common::wait_timeout(&mut d.child, Duration::from_secs(3))
                .expect("the daemon did not exit within 8 s of SIGTERM");
            (s, stopped.elapsed())
        }
    };
    eprintln!("graceful stop with {STREAMS} streams: exited in {took:?}");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status:?}"
    );
    assert!(
        took <= Duration::from_secs(2),
        "the daemon took {took:?} to exit with {STREAMS} streams"
    );

    // Every stream: whole events, then exactly one shutdown frame as its last bytes.
    for (i, c) in clients.iter().enumerate() {
        let body = c.body().expect("head");
        assert!(
            body.ends_with(SHUTDOWN),
            "stream #{i}: last bytes are {:?}",
            String::from_utf8_lossy(&body[body.len().saturating_sub(120)..])
        );
        let before = &body[..body.len() - SHUTDOWN.len()];
        assert!(
            before.is_empty() || before.ends_with(b"\n\n"),
            "stream #{i}: a cut event before the shutdown frame: {:?}",
            String::from_utf8_lossy(&before[before.len().saturating_sub(120)..])
        );
        assert!(
            !before.windows(15).any(|w| w == b"event: shutdown"),
            "stream #{i}: more than one shutdown frame"
        );
    }
    // Writers' files are finished.
    for id in &ids {
        let mode = fs::metadata(dir.join(format!("{id}.log")))
            .expect("log file")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o444, "log {id} after SIGTERM: mode {mode:o}");
    }

    // A new daemon on the same dir: a sample of 20 streams (one per log)
    // reconnects with the last id it saw and continues with the next line.
    let mut d2 = Daemon::start_in(&dir, &args);
    for c in clients.iter().step_by(STREAMS / 20) {
        let id = &ids[c.log];
        let content = fs::read(dir.join(format!("{id}.log"))).expect("read log");
        let seen = body_events(c.body().expect("head"));
        let last: u64 = seen
            .last()
            .and_then(|e| e.id.as_deref())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("log {id}: the stream saw no line before the stop"));
        assert_events_match_file(
            &seen,
            &content,
            0,
            last,
            false,
            &format!("log {id} before the stop"),
        );
        let mut st = SseStream::open(&d2, &stream_url(id), &[&format!("Last-Event-ID: {last}")]);
        if last == content.len() as u64 {
            assert_eq!(
                st.head.status, 204,
                "log {id}: resume at the end of a finished log"
            );
            continue;
        }
        assert_eq!(st.head.status, 200, "log {id}: resume at {last}");
        let events = st.read_to_close(Duration::from_secs(5));
        let end = events.last().cloned();
        assert!(
            end.as_ref()
                .is_some_and(|e| e.event.as_deref() == Some("end")),
            "log {id}: the resumed stream did not end with `end`: {end:?}"
        );
        let lines: Vec<Event> = events.into_iter().filter(is_message).collect();
        let next_line_end = content[last as usize..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| last as usize + p + 1)
            .expect("a next line");
        assert_eq!(
            lines.first().and_then(|e| e.id.as_deref()),
            Some(next_line_end.to_string().as_str()),
            "log {id}: resumed at {last}, the first event is not the next line"
        );
        assert_events_match_file(
            &lines,
            &content,
            last,
            content.len() as u64,
            false,
            &format!("log {id} resumed at {last}"),
        );
    }
    assert_healthy(&mut d2, "the new daemon after the resumes");
}
