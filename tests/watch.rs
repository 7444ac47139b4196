//! Integration tests of change-driven tails (SPEC section 1 `--watch`, section 3
//! `GET /api/logs/<id>/stream`, section 4 Engine). Most daemons here run with
//! `--poll-interval-ms 60000`: a line, finish, rotation or deletion that reaches
//! a stream within a second or two cannot have been found by the poll, so it was
//! the change notification (or, for logcast's own writers, the writer itself).
//! `--watch poll` must really only poll; a kernel queue overflow must lose
//! nothing; thousands of idle logs must not cost a descriptor each.
//!
//! The test is the other program writing the logs (O_APPEND writes, renames,
//! chmod, rm), so every byte on the wire is known in advance and compared
//! exactly. Time limits are generous "arrives within" bounds, never speed
//! measurements.

mod common;

use common::followers::{expect_followers, open_followers, Follower};
use common::raw::*;
use common::{append, eventually, make_read_only, write_file, Daemon, SseStream};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A poll interval no test waits for: what arrives came by notification.
const NO_POLL: &str = "60000";
/// "At once": generous for a loaded machine, sixty times shorter than `NO_POLL`.
const PROMPT: Duration = Duration::from_secs(1);
const RESET: &str = "id: 0\nevent: reset\ndata: {\"offset\": 0}\n\n";
const KEEPALIVE: &str = ": keepalive\n\n";

/// Held while a daemon starts, and by the overflow test for as long as the
/// system-wide inotify queue limit is lowered, so that no other test's daemon
/// starts with the lowered limit.
static STARTING: Mutex<()> = Mutex::new(());

fn start(args: &[&str]) -> Daemon {
    let _starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    Daemon::start(args)
}

// ---------------------------------------------------------------------------
// File helpers: the test is the log writer (write_file, append and
// make_read_only are in tests/common).

/// Creates a file that must not exist yet (the new file of a rotation) and
/// writes `bytes` into it with one `write`.
fn create_new(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .expect("create the new log file");
    f.set_permissions(fs::Permissions::from_mode(0o644))
        .expect("chmod 0644");
    f.write_all(bytes).expect("write the new log file");
}

fn stream_url(id: &str) -> String {
    format!("/api/logs/{id}/stream")
}

fn open_stream(d: &Daemon, id: &str) -> SseStream {
    let s = SseStream::open(d, &stream_url(id), &[]);
    assert_eq!(s.head.status, 200, "stream of {id}: {:?}", s.head);
    s
}

// ---------------------------------------------------------------------------
// 1. With --watch auto, new lines do not wait for the poll

/// A simulated writer's line is fanned out when it is written: each line
/// arrives within a second of the previous one (the writer writes every
/// 200 ms; the poll is a minute), and the finished log's `end` follows at once.
#[test]
fn auto_own_writer_lines_arrive_without_waiting_for_the_poll() {
    let d = start(&[
        "--watch",
        "auto",
        "--poll-interval-ms",
        NO_POLL,
        "--write-interval-ms",
        "200",
    ]);
    let id = d.create_log(3);
    let mut s = open_stream(&d, &id);
    for n in 1..=4 {
        let arrived = read_until(&mut s, PROMPT, |raw| event_count(raw) >= n);
        assert!(
            arrived,
            "event {n} of a log written every 200 ms did not arrive within {PROMPT:?} \
             (poll interval {NO_POLL} ms): {:?}",
            show(&s.raw)
        );
    }
    assert!(
        read_to_close(&mut s, Duration::from_secs(6)),
        "the stream of a 3 s log was not closed after its end: {:?}",
        show(&s.raw)
    );
    let content = fs::read(d.log_path(&id)).expect("read log");
    assert!(
        content.iter().filter(|&&b| b == b'\n').count() >= 8,
        "the writer wrote only {:?}",
        show(&content)
    );
    assert_eq!(
        show(&s.raw),
        frames(&content, 0) + &end_frame(&content),
        "every line of the posted log once, in order, then its end"
    );
}

/// Another program appends to a file that is already streamed: each append
/// arrives at once; a line written in two pieces is held back until complete.
#[test]
fn auto_external_appends_arrive_without_waiting_for_the_poll() {
    let d = start(&["--watch", "auto", "--poll-interval-ms", NO_POLL]);
    let path = d.log_dir.join("ext.log");
    write_file(&path, b"first\n");
    let mut s = open_stream(&d, "ext");
    expect_raw(&mut s, "id: 6\ndata: first\n\n", PROMPT, "initial line");
    for i in 0..5 {
        append(&path, format!("appended line {i}\n").as_bytes());
        let content = fs::read(&path).expect("read");
        expect_raw(&mut s, &frames(&content, 0), PROMPT, &format!("append {i}"));
    }
    append(&path, b"burst 1\nburst 2\nburst 3\n");
    let content = fs::read(&path).expect("read");
    expect_raw(
        &mut s,
        &frames(&content, 0),
        PROMPT,
        "three lines in one write",
    );

    append(&path, b"half a ");
    assert!(
        quiet(&mut s, Duration::from_millis(300)),
        "an incomplete line was sent: {:?}",
        show(&s.raw)
    );
    append(&path, b"line\n");
    let content = fs::read(&path).expect("read");
    assert!(frames(&content, 0).ends_with("data: half a line\n\n"));
    expect_raw(&mut s, &frames(&content, 0), PROMPT, "the completed line");
}

// ---------------------------------------------------------------------------
// 2. The polling fallback can be forced

#[test]
fn poll_mode_delivers_appends_within_the_poll_interval() {
    let d = start(&["--watch", "poll", "--poll-interval-ms", "100"]);
    let path = d.log_dir.join("ext.log");
    write_file(&path, b"first\n");
    let mut s = open_stream(&d, "ext");
    expect_raw(&mut s, "id: 6\ndata: first\n\n", PROMPT, "initial line");
    for i in 0..3 {
        append(&path, format!("polled line {i}\n").as_bytes());
        let content = fs::read(&path).expect("read");
        expect_raw(
            &mut s,
            &frames(&content, 0),
            Duration::from_secs(2),
            &format!("append {i} with a 100 ms poll"),
        );
    }
}

/// `--watch poll` with a one-minute poll: an append is NOT delivered within
/// 1.5 s, so poll mode really takes no change notification (the previous test
/// shows the same append does arrive when the poll runs).
#[test]
fn poll_mode_does_not_use_change_notifications() {
    let d = start(&["--watch", "poll", "--poll-interval-ms", NO_POLL]);
    let path = d.log_dir.join("ext.log");
    write_file(&path, b"first\n");
    let mut s = open_stream(&d, "ext");
    expect_raw(&mut s, "id: 6\ndata: first\n\n", PROMPT, "initial line");
    // Clear of anything the stream's start may have scheduled.
    std::thread::sleep(Duration::from_millis(200));
    append(&path, b"second\n");
    assert!(
        quiet(&mut s, Duration::from_millis(1500)),
        "--watch poll --poll-interval-ms {NO_POLL} delivered an append (or closed) \
         within 1.5 s: {:?}",
        show(&s.raw)
    );
}

// ---------------------------------------------------------------------------
// 3. The option itself

#[test]
fn watch_option_takes_auto_or_poll_and_refuses_anything_else() {
    let dir = common::temp_dir("watch-opt");
    let dir_arg = dir.to_str().expect("utf-8 temp dir").to_string();
    let bad: &[&[&str]] = &[&["--watch", "bogus"], &["--watch=bogus"], &["--watch"]];
    for args in bad {
        let mut all = vec!["--port", "0", "--log-dir", &dir_arg];
        all.extend_from_slice(args);
        let run = common::run_to_exit(&all);
        assert_eq!(
            run.code,
            Some(2),
            "{args:?}: exit code; stderr {:?} stdout {:?}",
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
            "{args:?}: one stderr line: {:?}",
            run.stderr
        );
        assert!(
            lines[0].contains("--watch"),
            "{args:?}: the message does not name --watch: {:?}",
            lines[0]
        );
        assert!(
            !run.stdout.contains("listening on"),
            "{args:?}: started anyway"
        );
    }
    let _ = fs::remove_dir_all(&dir);

    for args in [
        &["--watch", "auto"][..],
        &["--watch", "poll"],
        &["--watch=poll"],
    ] {
        let d = start(args);
        let r = d.get("/healthz");
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{args:?}");
    }

    let help = common::run_to_exit(&["--help"]);
    assert_eq!(help.code, Some(0), "{help:?}");
    assert!(
        help.stdout.contains("--watch"),
        "--help does not list --watch: {}",
        help.stdout
    );
}

// ---------------------------------------------------------------------------
// 4. Rename rotation (logrotate's default): the old file's last lines first

/// Streams `<dir>/ext.log`, then rotates it `rounds` times the way logrotate
/// does by default, with no pause between the steps: append a line to the old
/// file, rename it to `ext.log.1`, create a new `ext.log` with two lines. Each
/// round must give exactly: the old file's last line (its id an offset in the
/// old file), one reset, the new file's two lines. Then appends to the old
/// file are not followed, appends to the new one are. In the rounds where
/// `stopped(round)`, the daemon is SIGSTOPped during the three steps, so it
/// learns of the append, the rename and the new file all at once (and, when
/// polling, they certainly fall between two polls): only a daemon that reads
/// the old file to its end before switching gets the last line.
fn check_rename_rotations(
    args: &[&str],
    rounds: usize,
    stopped: impl Fn(usize) -> bool,
    pause: impl Fn(usize) -> Duration,
) {
    let d = start(args);
    let path = d.log_dir.join("ext.log");
    let rotated = d.log_dir.join("ext.log.1");
    let mut content = b"one\ntwo\n".to_vec();
    write_file(&path, &content);
    let mut s = open_stream(&d, "ext");
    let mut expected = frames(&content, 0);
    expect_raw(&mut s, &expected, PROMPT, "before rotating");

    for round in 0..rounds {
        let last = if round == 0 {
            "before-rename\n".to_string()
        } else {
            format!("before-rename-{round}\n")
        };
        let new = if round == 0 {
            "new-1\nnew-2\n".to_string()
        } else {
            format!("new-{round}-1\nnew-{round}-2\n")
        };
        {
            let _stopped = stopped(round).then(|| Stopped::stop(d.pid()));
            append(&path, last.as_bytes());
            fs::rename(&path, &rotated).expect("rename ext.log -> ext.log.1");
            create_new(&path, new.as_bytes());
        }

        content.extend_from_slice(last.as_bytes());
        expected.push_str(&frame(last.trim_end().as_bytes(), content.len()));
        expected.push_str(RESET);
        expected.push_str(&frames(new.as_bytes(), 0));
        if round == 0 {
            assert!(
                expected.ends_with(&format!(
                    "id: 22\ndata: before-rename\n\n{RESET}id: 6\ndata: new-1\n\nid: 12\ndata: new-2\n\n"
                )),
                "the test's own expectation: {expected:?}"
            );
        }
        content = new.into_bytes();
        expect_raw(
            &mut s,
            &expected,
            Duration::from_secs(2),
            &format!("rotation {round}"),
        );
        std::thread::sleep(pause(round));
    }

    append(&rotated, b"written to the old file after the rotation\n");
    append(&path, b"after\n");
    content.extend_from_slice(b"after\n");
    expected.push_str(&frame(b"after", content.len()));
    expect_raw(
        &mut s,
        &expected,
        Duration::from_secs(2),
        "follows the new file",
    );
    assert!(
        quiet(&mut s, Duration::from_millis(300)),
        "extra bytes after the rotations: {:?}",
        show(&s.raw)
    );
}

#[test]
fn auto_rename_rotation_sends_the_old_files_last_line_then_one_reset() {
    check_rename_rotations(
        &["--poll-interval-ms", NO_POLL],
        1,
        |_| false,
        |_| Duration::ZERO,
    );
}

/// Six rotations in a row; in every other one the daemon sees the append, the
/// rename and the new file at once.
#[test]
fn auto_repeated_rename_rotations_lose_and_repeat_nothing() {
    check_rename_rotations(
        &["--poll-interval-ms", NO_POLL],
        6,
        |round| round % 2 == 0,
        |round| Duration::from_millis(10 * round as u64),
    );
}

/// With only the 100 ms poll, the append and the rename both happen between
/// two polls (for certain in the rounds where the daemon is stopped
/// meanwhile): the poll finds a new file at the path, and must still read the
/// old file to its end before the reset. The pauses vary so the rotations land
/// at different points of the poll period.
#[test]
fn poll_rename_rotation_between_two_polls_loses_nothing() {
    check_rename_rotations(
        &["--watch", "poll", "--poll-interval-ms", "100"],
        6,
        |round| round % 2 == 0,
        |round| Duration::from_millis(130 + 37 * round as u64),
    );
}

// ---------------------------------------------------------------------------
// 5. Finished by chmod

#[test]
fn auto_finish_by_chmod_ends_the_stream_at_once() {
    let d = start(&["--poll-interval-ms", NO_POLL]);
    let path = d.log_dir.join("done.log");
    write_file(&path, b"a\nb\n");
    let mut s = open_stream(&d, "done");
    let mut expected = String::from("id: 2\ndata: a\n\nid: 4\ndata: b\n\n");
    expect_raw(&mut s, &expected, PROMPT, "before finishing");

    // The last line and the finish come together, as a writer's last act.
    append(&path, b"c\n");
    make_read_only(&path);
    let content = fs::read(&path).expect("read");
    expected.push_str("id: 6\ndata: c\n\n");
    expected.push_str(&end_frame(&content));
    assert!(expected.ends_with("{\"reason\": \"finished\", \"lines\": 3, \"bytes\": 6}\n\n"));
    expect_raw(&mut s, &expected, PROMPT, "last line, then end");
    assert!(
        read_to_close(&mut s, PROMPT),
        "the server did not close the finished stream: {:?}",
        show(&s.raw)
    );
    assert_eq!(show(&s.raw), expected, "nothing after the end event");
}

// ---------------------------------------------------------------------------
// 6. Deletion, and deletion that is really a rotation

#[test]
fn auto_deletion_ends_the_stream_without_waiting_for_the_poll() {
    let d = start(&["--poll-interval-ms", NO_POLL]);
    let path = d.log_dir.join("gone.log");
    write_file(&path, b"x\n");
    let mut s = open_stream(&d, "gone");
    expect_raw(&mut s, "id: 2\ndata: x\n\n", PROMPT, "before deletion");
    fs::remove_file(&path).expect("rm");
    let ended = read_until(&mut s, Duration::from_secs(3), |raw| event_count(raw) >= 2);
    assert!(
        ended,
        "no end event within 3 s of the deletion: {:?}",
        show(&s.raw)
    );
    let events = raw_events(&s.raw);
    let end = &events[1];
    assert_eq!(end.event.as_deref(), Some("end"), "{:?}", show(&s.raw));
    assert!(
        end.data
            .as_deref()
            .unwrap_or("")
            .contains("\"reason\": \"deleted\""),
        "{end:?}"
    );
    assert!(
        read_to_close(&mut s, PROMPT),
        "the server did not close after the deleted end: {:?}",
        show(&s.raw)
    );
    assert_eq!(raw_events(&s.raw).len(), 2, "{:?}", show(&s.raw));
}

/// Removed and created again 100 ms later: a rotation (one reset, the new
/// lines), and no `end` even after the one-second "deleted" threshold.
#[test]
fn auto_deleted_and_recreated_within_200ms_is_a_rotation() {
    let d = start(&["--poll-interval-ms", NO_POLL]);
    let path = d.log_dir.join("back.log");
    write_file(&path, b"one\ntwo\n");
    let mut s = open_stream(&d, "back");
    let mut expected = String::from("id: 4\ndata: one\n\nid: 8\ndata: two\n\n");
    expect_raw(&mut s, &expected, PROMPT, "before deletion");
    fs::remove_file(&path).expect("rm");
    std::thread::sleep(Duration::from_millis(100));
    write_file(&path, b"again\n");
    expected.push_str(RESET);
    expected.push_str("id: 6\ndata: again\n\n");
    expect_raw(&mut s, &expected, Duration::from_secs(2), "recreated");
    assert!(
        quiet(&mut s, Duration::from_millis(1500)),
        "a recreated file was treated as deleted (or sent more): {:?}",
        show(&s.raw)
    );
    append(&path, b"more\n");
    expected.push_str("id: 11\ndata: more\n\n");
    expect_raw(&mut s, &expected, PROMPT, "follows the recreated file");
}

// ---------------------------------------------------------------------------
// 7. A notification queue overflow loses nothing

const QUEUE_LIMIT: &str = "/proc/sys/fs/inotify/max_queued_events";

/// Lowers the system-wide inotify queue limit (read by the kernel at each
/// `inotify_init`); the original value is written back on drop, panic or not.
struct LoweredQueueLimit {
    original: String,
}

impl LoweredQueueLimit {
    fn lower(to: u32) -> Result<LoweredQueueLimit, String> {
        let original = fs::read_to_string(QUEUE_LIMIT).map_err(|e| format!("read: {e}"))?;
        fs::write(QUEUE_LIMIT, to.to_string()).map_err(|e| format!("write: {e}"))?;
        Ok(LoweredQueueLimit { original })
    }
}

impl Drop for LoweredQueueLimit {
    fn drop(&mut self) {
        if let Err(e) = fs::write(QUEUE_LIMIT, self.original.trim()) {
            eprintln!(
                "could not restore {QUEUE_LIMIT} to {}: {e}",
                self.original.trim()
            );
        }
    }
}

/// Stops a process (SIGSTOP) until dropped, panic or not (SIGCONT).
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        common::signal(pid, "STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        common::signal(self.0, "CONT");
    }
}

/// One interleaved burst: line `i` of every log, for each `i` in `lines`,
/// each line one `write` through a descriptor opened with O_APPEND.
fn burst(paths: &[std::path::PathBuf], lines: std::ops::Range<usize>) {
    let mut writers: Vec<File> = paths
        .iter()
        .map(|p| {
            OpenOptions::new()
                .append(true)
                .open(p)
                .expect("open for append")
        })
        .collect();
    for i in lines {
        for (j, w) in writers.iter_mut().enumerate() {
            w.write_all(format!("log {j:02} line {i:03}\n").as_bytes())
                .expect("append");
        }
    }
}

/// Every stream must hold exactly its log's whole content, framed, within
/// `limit`, and nothing more.
fn expect_every_line(
    streams: &mut [SseStream],
    paths: &[std::path::PathBuf],
    limit: Duration,
    what: &str,
) {
    let expected: Vec<String> = paths
        .iter()
        .map(|p| frames(&fs::read(p).expect("read"), 0))
        .collect();
    let deadline = Instant::now() + limit;
    let mut pending: Vec<usize> = (0..streams.len()).collect();
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|&j| {
            let want = expected[j].as_bytes();
            let done = |raw: &[u8]| raw.len() >= want.len() || !want.starts_with(raw);
            !read_until(&mut streams[j], Duration::from_millis(20), done)
        });
    }
    for (j, s) in streams.iter_mut().enumerate() {
        assert!(
            s.raw == expected[j].as_bytes(),
            "{what}: q{j:02}: not every line exactly once in order within {limit:?}: {}",
            first_difference(&s.raw, expected[j].as_bytes())
        );
    }
    for (j, s) in streams.iter_mut().enumerate() {
        assert!(
            quiet(s, Duration::from_millis(5)),
            "{what}: q{j:02}: extra bytes: {}",
            first_difference(&s.raw, expected[j].as_bytes())
        );
    }
}

/// 50 external logs, one stream each, the daemon's inotify queue limited to
/// 64 events. Round 1: 100 lines to each log in a tight interleaved burst
/// while the daemon runs (5,000 appends; the queue overflows whenever the
/// daemon falls behind). Round 2: the daemon is stopped, its queue is filled
/// by appends to two other files, then 100 more lines go to each log, so the
/// kernel drops every event of those lines and reports only IN_Q_OVERFLOW;
/// then the daemon continues. After each round every stream must have every
/// line of its own log, exactly once, in order, within 10 s (the poll is a
/// minute away): an overflow must make the daemon look at every log again.
#[test]
fn auto_queue_overflow_loses_nothing() {
    const LOGS: usize = 50;
    let (d, mut streams, paths, forced) = {
        let _starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let lowered = LoweredQueueLimit::lower(64);
        if let Err(e) = &lowered {
            eprintln!(
                "auto_queue_overflow_loses_nothing: overflow could not be forced \
                 ({QUEUE_LIMIT}: {e}); running the bursts anyway"
            );
        }
        let d = Daemon::start(&["--poll-interval-ms", NO_POLL]);
        let mut paths = Vec::new();
        let mut streams = Vec::new();
        for j in 0..LOGS {
            let path = d.log_dir.join(format!("q{j:02}.log"));
            write_file(&path, format!("start {j}\n").as_bytes());
            paths.push(path);
        }
        // An inotify instance made after start would not have the lowered
        // limit yet: keep it lowered until the streams are open, if so.
        let early = d.has_inotify();
        for j in 0..LOGS {
            streams.push(open_stream(&d, &format!("q{j:02}")));
        }
        if lowered.is_ok() && !early {
            eprintln!(
                "auto_queue_overflow_loses_nothing: no inotify descriptor right after start \
                 (has one after opening streams: {})",
                d.has_inotify()
            );
        }
        (d, streams, paths, lowered.is_ok())
    };
    expect_every_line(&mut streams, &paths, PROMPT, "first lines");

    burst(&paths, 0..100);
    expect_every_line(
        &mut streams,
        &paths,
        Duration::from_secs(10),
        "burst while running",
    );

    let noise = [d.log_dir.join("noise-a.log"), d.log_dir.join("noise-b.log")];
    for p in &noise {
        write_file(p, b"");
    }
    {
        let _stopped = Stopped::stop(d.pid());
        let mut writers: Vec<File> = noise
            .iter()
            .map(|p| OpenOptions::new().append(true).open(p).expect("open noise"))
            .collect();
        // Alternating names, so the kernel cannot merge the events into one.
        for i in 0..200 {
            writers[i % 2].write_all(b"noise\n").expect("noise");
        }
        burst(&paths, 100..200);
    }
    if forced {
        eprintln!("auto_queue_overflow_loses_nothing: the second burst's events were dropped (queue limit 64)");
    }
    expect_every_line(
        &mut streams,
        &paths,
        Duration::from_secs(10),
        "burst after an overflow",
    );
    let r = d.get("/healthz");
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------------------
// 8. Many distinct logs, one stream each

/// N logs, each with its own stream, on one daemon (N = 2,000, or
/// `LOGCAST_TEST_DISTINCT_LOGS`, e.g. 19,000 in a manual run of this test
/// alone; capped by this process's open-file limit). Every stream gets its
/// head; one line appended to each of N/4 (at most 500) logs reaches exactly
/// its own stream, promptly; the others get nothing; and the daemon does not
/// hold a descriptor per idle log.
#[test]
fn auto_many_distinct_logs_each_get_their_own_lines_without_a_descriptor_each() {
    let wanted: usize = std::env::var("LOGCAST_TEST_DISTINCT_LOGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let soft = common::raise_own_nofile_limit();
    // Room for this process's other descriptors and the other tests' sockets.
    let room = (soft as usize).saturating_sub(500);
    let n = wanted.min(room);
    if n < wanted {
        eprintln!(
            "auto_many_distinct_logs: {wanted} logs asked for, {n} used (open-file limit {soft})"
        );
    }
    assert!(n >= 100, "open-file limit {soft} is too low for this test");

    let d = start(&[
        "--poll-interval-ms",
        NO_POLL,
        "--heartbeat-interval-ms",
        "600000",
    ]);
    let ids: Vec<String> = (0..n).map(|j| format!("d{j:05}")).collect();
    for id in &ids {
        write_file(&d.log_path(id), b"");
    }
    let started = Instant::now();
    let mut followers = open_followers(&d, &ids, 256);
    eprintln!(
        "auto_many_distinct_logs: {n} streams open in {:?}, daemon descriptors {}",
        started.elapsed(),
        d.open_fds()
    );

    let k = (n / 4).min(500);
    let step = n / k;
    let chosen: Vec<usize> = (0..k).map(|i| i * step).collect();
    let line = |j: usize| format!("line for {}\n", ids[j]);
    for &j in &chosen {
        append(&d.log_path(&ids[j]), line(j).as_bytes());
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut pending = chosen.clone();
    let mut chunk = [0u8; 4096];
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|&j| {
            let want = frame(line(j).trim_end().as_bytes(), line(j).len());
            followers[j].read_toward(want.as_bytes(), &mut chunk)
        });
    }
    for &j in &chosen {
        let want = frame(line(j).trim_end().as_bytes(), line(j).len());
        assert_eq!(
            show(&followers[j].body),
            want,
            "{}: its appended line (within 10 s of the appends)",
            ids[j]
        );
    }
    // Nothing for the logs nobody wrote, nothing more for those written once.
    std::thread::sleep(Duration::from_millis(200));
    for (j, f) in followers.iter_mut().enumerate() {
        match f.sock.read(&mut chunk) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok(0) => panic!("{}: the server closed the stream", ids[j]),
            Ok(got) => panic!(
                "{}: unexpected bytes {:?} (after {:?})",
                ids[j],
                show(&chunk[..got]),
                show(&f.body)
            ),
            Err(e) => panic!("{}: {e}", ids[j]),
        }
    }

    // Each stream is a socket in the daemon; the log files must not each be a
    // descriptor too.
    let file_limit = n / 2 + 100;
    let settled = eventually(Duration::from_secs(5), || {
        d.open_fds_under(&d.log_dir) < file_limit
    });
    let (log_fds, all_fds) = (d.open_fds_under(&d.log_dir), d.open_fds());
    assert!(
        settled,
        "the daemon holds {log_fds} descriptors on log files for {n} idle streamed logs \
         ({all_fds} descriptors in all); want < {file_limit}"
    );
    assert!(
        all_fds < n + file_limit,
        "the daemon holds {all_fds} descriptors for {n} streams; want < {}",
        n + file_limit
    );
    let r = d.get("/healthz");
    assert_eq!(r.status, 200);
}

// ---------------------------------------------------------------------------
// 9. Heartbeats do not ride on the poll

fn check_heartbeats(args: &[&str]) {
    let mut all = vec!["--heartbeat-interval-ms", "300"];
    all.extend_from_slice(args);
    let d = start(&all);
    let path = d.log_dir.join("idle.log");
    write_file(&path, b"x\n");
    let mut s = open_stream(&d, "idle");
    let one = format!("id: 2\ndata: x\n\n{KEEPALIVE}");
    expect_raw(
        &mut s,
        &one,
        Duration::from_millis(1500),
        &format!("first heartbeat, {args:?}"),
    );
    let two = format!("{one}{KEEPALIVE}");
    expect_raw(
        &mut s,
        &two,
        Duration::from_millis(1500),
        &format!("second heartbeat, {args:?}"),
    );
}

#[test]
fn auto_heartbeats_come_on_an_idle_stream_without_the_poll() {
    check_heartbeats(&["--poll-interval-ms", NO_POLL]);
}

#[test]
fn poll_mode_heartbeats_come_between_polls() {
    check_heartbeats(&["--watch", "poll", "--poll-interval-ms", NO_POLL]);
}

#[test]
fn poll_mode_heartbeats_come_with_a_fast_poll() {
    check_heartbeats(&["--watch", "poll", "--poll-interval-ms", "100"]);
}

// ---------------------------------------------------------------------------
// 10. Lines written fast go out in batches where the fan-out is large

/// `logcast_tail_reads_total`: reads of a tail that found new bytes.
fn tail_reads(d: &Daemon) -> f64 {
    d.metric("logcast_tail_reads_total")
        .expect("logcast_tail_reads_total")
}

/// Appends `n` lines to `path`, one `write` each, `every` apart; returns the
/// file's content afterwards.
fn append_paced(path: &Path, n: usize, every: Duration) -> Vec<u8> {
    for i in 0..n {
        append(path, format!("paced line {i:03}\n").as_bytes());
        std::thread::sleep(every);
    }
    fs::read(path).expect("read log")
}

/// A daemon that neither polls nor sends heartbeats within a test, an empty
/// log `id` in it, and `streams` streams following it.
fn followed_empty_log(id: &str, streams: usize) -> (Daemon, std::path::PathBuf, Vec<Follower>) {
    let d = start(&[
        "--poll-interval-ms",
        NO_POLL,
        "--heartbeat-interval-ms",
        "600000",
    ]);
    let path = d.log_path(id);
    write_file(&path, b"");
    let followers = open_followers(&d, &vec![id.to_string(); streams], 100);
    (d, path, followers)
}

/// 40 lines appended 5 ms apart to a log with 300 streams: they reach every
/// stream, exactly, but in batches (a 300-stream fan-out waits 30 ms after
/// the last one), so the daemon reads the log far fewer than 40 times. The
/// same appends to a log with one stream are read as they come.
#[test]
fn auto_fast_lines_to_a_log_with_many_streams_go_out_in_batches() {
    let (d, many, mut followers) = followed_empty_log("many", 300);
    let before = tail_reads(&d);
    let content = append_paced(&many, 40, Duration::from_millis(5));
    expect_followers(&mut followers, &frames(&content, 0), "300 streams");
    let batched = tail_reads(&d) - before;
    assert!(
        (1.0..=20.0).contains(&batched),
        "40 appends 5 ms apart to a log with 300 streams were read {batched} times; \
         want batches (at most 20 reads)"
    );

    let one = d.log_path("one");
    write_file(&one, b"");
    let mut single = open_followers(&d, &["one".to_string()], 1);
    let before = tail_reads(&d);
    let content = append_paced(&one, 40, Duration::from_millis(10));
    expect_followers(&mut single, &frames(&content, 0), "one stream");
    let unbatched = tail_reads(&d) - before;
    assert!(
        unbatched >= 10.0,
        "40 appends 10 ms apart to a log with one stream were read only {unbatched} \
         times; a log with one stream must not wait for a batch"
    );
}

/// 2,200 idle streams of one log, heartbeats every second, at most 1,100
/// in one turn (`--heartbeat-burst`): the group gets its heartbeats in two
/// slices half an interval apart, and every stream gets one within two
/// intervals.
#[test]
fn heartbeats_of_a_large_group_are_spread_over_the_interval() {
    const STREAMS: usize = 2_200;
    common::raise_own_nofile_limit();
    let d = start(&[
        "--heartbeat-interval-ms",
        "1000",
        "--heartbeat-burst",
        "1100",
    ]);
    write_file(&d.log_path("quiet"), b"");
    let ids = vec!["quiet".to_string(); STREAMS];
    let mut followers = open_followers(&d, &ids, 250);
    let opened = Instant::now();
    let mut first: Vec<Option<Duration>> = vec![None; STREAMS];
    let mut chunk = [0u8; 256];
    while first.iter().any(Option::is_none) && opened.elapsed() < Duration::from_secs(4) {
        for (j, f) in followers.iter_mut().enumerate() {
            if first[j].is_some() {
                continue;
            }
            match f.sock.read(&mut chunk) {
                Ok(0) => panic!("stream {j}: closed by the server"),
                Ok(n) => f.body.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("stream {j}: {e}"),
            }
            if f.body.starts_with(KEEPALIVE.as_bytes()) {
                first[j] = Some(opened.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let missing = first.iter().filter(|t| t.is_none()).count();
    assert_eq!(
        missing, 0,
        "streams without a heartbeat within 4 s (interval 1 s)"
    );
    let times: Vec<Duration> = first.into_iter().flatten().collect();
    let (earliest, latest) = (times.iter().min(), times.iter().max());
    let spread = latest
        .zip(earliest)
        .map(|(l, e)| *l - *e)
        .unwrap_or_default();
    assert!(
        spread >= Duration::from_millis(300),
        "the first heartbeats of 2,200 streams came within {spread:?} of each other \
         (earliest {earliest:?}, latest {latest:?}); want two slices ~500 ms apart"
    );
    for (j, f) in followers.iter().enumerate() {
        assert!(
            KEEPALIVE.as_bytes().starts_with(&f.body) || f.body.starts_with(KEEPALIVE.as_bytes()),
            "stream {j}: {}",
            show(&f.body)
        );
    }
}

// ---------------------------------------------------------------------------
// 11. Appends wake the daemon only for logs someone follows

/// Context switches the daemon's one thread has made by sleeping: each is a
/// reactor wake-up.
fn daemon_wakes(d: &Daemon) -> u64 {
    let status = fs::read_to_string(format!("/proc/{}/status", d.pid())).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches")
}

/// 200 appends, 2 ms apart, to a file in the log directory that no stream
/// follows: the daemon sleeps through them (one watch per followed file
/// reports appends; the directory's own watch reports names, closes and
/// modes). Once a stream follows the file, every append reaches it.
#[test]
fn appends_to_a_file_nobody_follows_do_not_wake_the_daemon() {
    let d = start(&["--poll-interval-ms", NO_POLL]);
    let path = d.log_path("busy");
    write_file(&path, b"");
    std::thread::sleep(Duration::from_millis(300)); // the create is indexed
    let mut f = OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open for append");
    let before = daemon_wakes(&d);
    for i in 0..200 {
        f.write_all(format!("unfollowed {i:03}\n").as_bytes())
            .expect("append");
        std::thread::sleep(Duration::from_millis(2));
    }
    let woke = daemon_wakes(&d) - before;
    assert!(
        woke < 50,
        "200 appends to a file nobody follows woke the daemon {woke} times"
    );

    let mut s = open_stream(&d, "busy");
    let mut content = fs::read(&path).expect("read");
    expect_raw(&mut s, &frames(&content, 0), PROMPT, "the file so far");
    for i in 0..5 {
        let line = format!("followed {i}\n");
        f.write_all(line.as_bytes()).expect("append");
        content.extend_from_slice(line.as_bytes());
        expect_raw(
            &mut s,
            &frames(&content, 0),
            PROMPT,
            "an append once followed",
        );
    }
    // The list still shows the file's size, though its appends wake no one.
    let r = d.get("/api/logs");
    assert!(
        r.text()
            .contains(&format!("\"file_size\": {},", content.len())),
        "the list's size of busy.log: {}",
        r.text()
    );
}

/// A log with `streams` streams written every 2 ms and rotated by rename
/// between two appends; the new file's writer keeps it open (so no close
/// for the directory's watch to report, only appends for the file's own):
/// every stream gets every line of the old file, one `reset`, then every
/// line of the new file, without the poll (the watch moved to it).
fn rotate_mid_burst(streams: usize) {
    let (d, path, mut followers) = followed_empty_log("fast", streams);
    let old = append_paced(&path, 30, Duration::from_millis(2));
    fs::rename(&path, d.log_dir.join("fast.log.1")).expect("rename");
    create_new(&path, b"");
    let mut writer = OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open the new file");
    for i in 0..30 {
        writer
            .write_all(format!("new line {i:02}\n").as_bytes())
            .expect("append");
        std::thread::sleep(Duration::from_millis(2));
    }
    let new = fs::read(&path).expect("read the new file");
    let want = frames(&old, 0) + RESET + &frames(&new, 0);
    expect_followers(&mut followers, &want, &format!("{streams} stream(s)"));
}

#[test]
fn auto_rotation_mid_burst_moves_the_watch_to_the_new_file() {
    rotate_mid_burst(1);
}

/// The same with 200 streams: lines batched, the watch dropped while a batch
/// is held.
#[test]
fn auto_rotation_of_a_batched_log_loses_nothing() {
    rotate_mid_burst(200);
}
