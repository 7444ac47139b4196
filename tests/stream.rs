//! Integration tests of `GET /api/logs/<id>/stream` over real sockets: exact SSE
//! bytes, resume by byte offset, tail, truncation/rotation/deletion, heartbeats,
//! graceful stop and disconnect detection. Most tests write the log file
//! themselves so every byte on the wire is known in advance.

mod common;

use common::raw::*;
use common::{append, eventually, make_read_only, write_file, Daemon, Event, SseStream};
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

const FAST: &[&str] = &["--write-interval-ms", "50", "--poll-interval-ms", "20"];
const SHUTDOWN: &str = "event: shutdown\ndata: {\"reason\": \"shutdown\"}\n\n";
const RESET: &str = "id: 0\nevent: reset\ndata: {\"offset\": 0}\n\n";

// ---------------------------------------------------------------------------
// File helpers: the test is the log writer (write_file, append and
// make_read_only are in tests/common).

fn stream_url(id: &str) -> String {
    format!("/api/logs/{id}/stream")
}

fn no_content_length(s: &SseStream) -> bool {
    s.head.header("content-length").is_none()
}

// ---------------------------------------------------------------------------
// Headers

#[test]
fn headers_are_exact_and_sent_before_any_line_exists() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("empty.log");
    write_file(&path, b"");
    let started = Instant::now();
    let mut s = SseStream::open(&d, &stream_url("empty"), &[]);
    let head_after = started.elapsed();
    assert!(
        head_after < Duration::from_secs(2),
        "head took {head_after:?} on an empty log"
    );
    assert_eq!(s.head.status, 200, "{:?}", s.head);
    assert_eq!(
        s.head.header("content-type"),
        Some("text/event-stream"),
        "{:?}",
        s.head.headers
    );
    assert_eq!(
        s.head.header("cache-control"),
        Some("no-cache"),
        "{:?}",
        s.head.headers
    );
    assert_eq!(
        s.head.header("x-accel-buffering"),
        Some("no"),
        "{:?}",
        s.head.headers
    );
    assert_eq!(
        s.head.header("connection"),
        Some("keep-alive"),
        "{:?}",
        s.head.headers
    );
    assert_eq!(
        s.head.header("server"),
        Some("logcast"),
        "{:?}",
        s.head.headers
    );
    assert!(
        no_content_length(&s),
        "SSE response must not carry Content-Length: {:?}",
        s.head.headers
    );
    assert!(
        s.head.header("content-encoding").is_none(),
        "never compressed: {:?}",
        s.head.headers
    );
    // No preamble: the body is only events, and there is no line yet.
    assert!(
        quiet(&mut s, Duration::from_millis(300)),
        "bytes before any line: {:?}",
        show(&s.raw)
    );
    append(&path, b"first\n");
    expect_raw(
        &mut s,
        "id: 6\ndata: first\n\n",
        Duration::from_secs(2),
        "first line",
    );
}

// ---------------------------------------------------------------------------
// A log created by POST, streamed from its first line to its end

#[test]
fn posted_log_streams_every_line_then_end_then_204_on_reconnect() {
    let d = Daemon::start(FAST);
    let id = d.create_log(1);
    let path = d.log_path(&id);
    let mut s = SseStream::open(&d, &stream_url(&id), &[]);
    assert_eq!(s.head.status, 200, "{:?}", s.head);

    let first = s.next_event(Duration::from_secs(2)).expect("first event");
    let data = first.data.clone().expect("first event has data");
    assert!(data.starts_with("[LOG CREATED] "), "first event: {first:?}");
    let content = fs::read(&path).expect("read log");
    let first_line_len = content
        .iter()
        .position(|&b| b == b'\n')
        .expect("first line complete");
    assert_eq!(
        first.id.as_deref(),
        Some((first_line_len + 1).to_string().as_str()),
        "{first:?}"
    );
    assert_eq!(data.as_bytes(), &content[..first_line_len]);

    assert!(
        read_to_close(&mut s, Duration::from_secs(8)),
        "server did not close after the end event"
    );
    let mode = fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode, 0o444, "a finished log is read-only");
    let content = fs::read(&path).expect("read log");
    assert!(
        line_count(&content) > 5,
        "writer wrote only {} lines",
        line_count(&content)
    );
    let expected = frames(&content, 0) + &end_frame(&content);
    assert_eq!(show(&s.raw), expected, "whole stream of a POSTed log");

    // Reconnecting at the end of a finished log: 204, which stops EventSource.
    let bytes = content.len();
    let r = SseStream::open(&d, &stream_url(&id), &[&format!("Last-Event-ID: {bytes}")]);
    assert_eq!(r.head.status, 204, "{:?}", r.head);
    assert!(
        r.head.header("content-length").is_none(),
        "204 has no Content-Length: {:?}",
        r.head.headers
    );
    let r = SseStream::open(
        &d,
        &format!("{}?last_event_id={bytes}", stream_url(&id)),
        &[],
    );
    assert_eq!(
        r.head.status, 204,
        "?last_event_id at the end: {:?}",
        r.head
    );
}

// ---------------------------------------------------------------------------
// Exact bytes

#[test]
fn exact_bytes_for_crlf_bare_cr_invalid_utf8_and_a_partial_line() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("exact.log");
    write_file(&path, b"a\nbb\r\nc\rd\n\xff\xfeok\ntail-without-newline");
    let mut s = SseStream::open(&d, &stream_url("exact"), &[]);
    assert_eq!(s.head.status, 200);

    let mut expected =
        String::from("id: 2\ndata: a\n\nid: 6\ndata: bb\n\nid: 10\ndata: c\ndata: d\n\nid: 15\ndata: \u{FFFD}\u{FFFD}ok\n\n");
    assert_eq!(
        frames(&fs::read(&path).unwrap(), 0),
        expected,
        "test's own framing"
    );
    expect_raw(&mut s, &expected, Duration::from_secs(2), "complete lines");

    // The partial line is held back until its `\n` arrives.
    assert!(
        quiet(&mut s, Duration::from_millis(400)),
        "partial line sent early: {:?}",
        show(&s.raw)
    );
    append(&path, b"\n");
    expected.push_str("id: 36\ndata: tail-without-newline\n\n");
    expect_raw(&mut s, &expected, Duration::from_secs(2), "completed line");

    make_read_only(&path);
    expected
        .push_str("event: end\ndata: {\"reason\": \"finished\", \"lines\": 5, \"bytes\": 36}\n\n");
    expect_raw(&mut s, &expected, Duration::from_secs(2), "end event");
    assert!(
        read_to_close(&mut s, Duration::from_secs(2)),
        "server closes after end"
    );
    assert_eq!(show(&s.raw), expected, "nothing after the end event");
}

#[test]
fn finished_log_sends_its_unterminated_last_line_with_the_file_size_as_id() {
    let d = Daemon::start(FAST);
    // Already finished when the stream opens.
    let path = d.log_dir.join("done.log");
    write_file(&path, b"x\nlast");
    make_read_only(&path);
    let mut s = SseStream::open(&d, &stream_url("done"), &[]);
    assert_eq!(s.head.status, 200);
    assert!(
        read_to_close(&mut s, Duration::from_secs(3)),
        "server closes after end"
    );
    let expected = "id: 2\ndata: x\n\nid: 6\ndata: last\n\n\
                    event: end\ndata: {\"reason\": \"finished\", \"lines\": 2, \"bytes\": 6}\n\n";
    assert_eq!(show(&s.raw), expected);
    let r = SseStream::open(&d, &stream_url("done"), &["Last-Event-ID: 6"]);
    assert_eq!(r.head.status, 204, "{:?}", r.head);
    // "at or past the end of a finished log" -> 204, by header or query.
    for (target, header) in [
        (format!("{}?from=6", stream_url("done")), vec![]),
        (format!("{}?last_event_id=6", stream_url("done")), vec![]),
    ] {
        let r = SseStream::open(&d, &target, &header);
        assert_eq!(r.head.status, 204, "{target} {header:?}: {:?}", r.head);
    }

    // Finished while streaming: the held-back line goes out at the finish.
    let path = d.log_dir.join("later.log");
    write_file(&path, b"x\nlast");
    let mut s = SseStream::open(&d, &stream_url("later"), &[]);
    expect_raw(
        &mut s,
        "id: 2\ndata: x\n\n",
        Duration::from_secs(2),
        "complete line",
    );
    assert!(
        quiet(&mut s, Duration::from_millis(300)),
        "partial line sent early: {:?}",
        show(&s.raw)
    );
    make_read_only(&path);
    expect_raw(
        &mut s,
        expected,
        Duration::from_secs(2),
        "finish while streaming",
    );
    assert!(
        read_to_close(&mut s, Duration::from_secs(2)),
        "server closes after end"
    );
}

/// SPEC section 3: only an offset exactly at the end of a finished log gets
/// 204 (EventSource then stops for good); past the end means the file was
/// replaced, and it is replayed from 0 (tests/regressions.rs guards that).
#[test]
fn reconnect_at_the_end_of_a_finished_log_is_204() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("done.log");
    write_file(&path, b"x\nlast\n");
    make_read_only(&path);
    for (target, header) in [
        (stream_url("done"), vec!["Last-Event-ID: 7"]),
        (format!("{}?from=7", stream_url("done")), vec![]),
    ] {
        let mut r = SseStream::open(&d, &target, &header);
        if r.head.status != 204 {
            read_to_close(&mut r, Duration::from_secs(2));
        }
        assert_eq!(
            r.head.status,
            204,
            "{target} {header:?}: body {:?}",
            show(&r.raw)
        );
    }
}

#[test]
fn empty_lines_are_events_with_empty_data() {
    let d = Daemon::start(FAST);
    write_file(&d.log_dir.join("blank.log"), b"\n\r\nx\n");
    let mut s = SseStream::open(&d, &stream_url("blank"), &[]);
    let expected = "id: 1\ndata: \n\nid: 3\ndata: \n\nid: 5\ndata: x\n\n";
    expect_raw(&mut s, expected, Duration::from_secs(2), "empty lines");
}

/// Rebuilds the file's lines from events. The contract frames one event per
/// line; a daemon that caps event size may send a long line as several pieces
/// (ids inside the line): pieces are joined until an id at a line end.
fn lines_from_events(events: &[Event], content: &[u8]) -> Vec<String> {
    let ends: std::collections::HashSet<usize> = content
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut last_id = 0;
    for ev in events {
        let id: usize = ev.id.as_deref().expect("id").parse().expect("numeric id");
        assert!(id > last_id, "ids not increasing: {last_id} then {id}");
        last_id = id;
        current.push_str(ev.data.as_deref().expect("data"));
        if ends.contains(&id) {
            lines.push(std::mem::take(&mut current));
        }
    }
    assert!(
        current.is_empty(),
        "events end inside a line (last id {last_id})"
    );
    lines
}

/// Lines far longer than any read buffer, made of multi-byte characters whose
/// bytes straddle every buffer boundary and are written in pieces that split
/// characters: delivered whole (or in pieces that join to the line), never
/// corrupted, live and by catch-up.
#[test]
fn long_lines_and_split_multibyte_characters_arrive_uncorrupted() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("long.log");
    let mut content = b"a".to_vec();
    content.extend_from_slice("\u{e9}".repeat(150_000).as_bytes()); // 300 KB
    content.push(b'\n');
    content.extend_from_slice("\u{20ac}".repeat(700_000).as_bytes()); // 2.1 MB
    content.push(b'\n');
    content.extend_from_slice("short \u{1F600}\n".as_bytes());
    write_file(&path, b"");
    let mut live = SseStream::open(&d, &stream_url("long"), &[]);
    // Pieces of prime length: most cuts fall inside a character.
    let mut at = 0;
    let mut piece = 0;
    while at < content.len() {
        let len = [1, 65_537, 7, 262_147, 1_048_583][piece % 5].min(content.len() - at);
        append(&path, &content[at..at + len]);
        at += len;
        piece += 1;
        std::thread::sleep(Duration::from_millis(25));
    }
    let size = content.len().to_string();
    let want: Vec<String> = show(&content).lines().map(str::to_string).collect();
    let mut late = SseStream::open(&d, &stream_url("long"), &[]);
    for (name, s) in [("live", &mut live), ("catch-up", &mut late)] {
        let done = read_until(s, Duration::from_secs(5), |raw| {
            raw.ends_with(b"\n\n")
                && raw_events(raw).last().and_then(|e| e.id.clone()) == Some(size.clone())
        });
        assert!(
            done,
            "{name}: the last line never arrived ({} bytes)",
            s.raw.len()
        );
        let body = show(&s.raw);
        if let Some(at) = body.find('\u{FFFD}') {
            let before: String = body[..at]
                .chars()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let after: String = body[at..].chars().take(40).collect();
            panic!("{name}: U+FFFD in valid UTF-8 at body byte {at}: {before:?} + {after:?}");
        }
        let got = lines_from_events(&raw_events(&s.raw), &content);
        assert!(
            got == want,
            "{name}: lines differ (got {} lines, want {})",
            got.len(),
            want.len()
        );
    }
}

/// Resuming from any id the daemon sent, even one inside a long line, loses
/// nothing and repeats nothing.
#[test]
fn resume_from_any_id_of_a_long_line_loses_nothing() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("longresume.log");
    let mut content = Vec::new();
    for (i, len) in [700_000usize, 10, 300_000, 70_000].iter().enumerate() {
        let unit = format!("{i}abcdefghijklmnopqrstuvwxyz");
        content.extend_from_slice(&unit.repeat(len / unit.len() + 1).as_bytes()[..*len]);
        content.push(b'\n');
    }
    write_file(&path, &content);
    make_read_only(&path);
    let url = stream_url("longresume");
    let mut all = SseStream::open(&d, &url, &[]);
    assert!(
        read_to_close(&mut all, Duration::from_secs(5)),
        "full stream not closed"
    );
    let events = raw_events(&all.raw);
    let want: Vec<String> = show(&content).lines().map(str::to_string).collect();
    assert_eq!(
        lines_from_events(&events[..events.len() - 1], &content),
        want,
        "full stream"
    );
    // Reconnect after each event the first connection delivered.
    for (k, ev) in events.iter().enumerate().filter(|(_, e)| e.event.is_none()) {
        let id: usize = ev.id.as_deref().unwrap().parse().unwrap();
        if id == content.len() {
            continue;
        }
        let mut s = SseStream::open(&d, &url, &[&format!("Last-Event-ID: {id}")]);
        assert_eq!(s.head.status, 200, "resume at {id}");
        assert!(
            read_to_close(&mut s, Duration::from_secs(5)),
            "resume at {id} not closed"
        );
        let mut joined: Vec<Event> = events[..=k].to_vec();
        let rest = raw_events(&s.raw);
        joined.extend(rest[..rest.len() - 1].iter().cloned());
        let data: String = joined.iter().map(|e| e.data.clone().unwrap()).collect();
        assert_eq!(
            data.len(),
            want.concat().len(),
            "resume at id {id} (event {k}): {} bytes of line text delivered, file has {}; resumed stream starts at id {:?}",
            data.len(),
            want.concat().len(),
            rest.first().and_then(|e| e.id.clone())
        );
        assert_eq!(lines_from_events(&joined, &content), want, "resume at {id}");
    }
}

// ---------------------------------------------------------------------------
// Liveness

#[test]
fn appended_lines_arrive_promptly() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("live.log");
    write_file(&path, b"start\n");
    let mut s = SseStream::open(&d, &stream_url("live"), &[]);
    expect_raw(
        &mut s,
        "id: 6\ndata: start\n\n",
        Duration::from_secs(2),
        "initial line",
    );
    for i in 0..5 {
        append(&path, format!("appended line {i}\n").as_bytes());
        let content = fs::read(&path).unwrap();
        let t = Instant::now();
        expect_raw(
            &mut s,
            &frames(&content, 0),
            Duration::from_secs(2),
            "appended line",
        );
        assert!(t.elapsed() < Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(30 * i));
    }
    // Several lines in one write all arrive.
    append(&path, b"burst 1\nburst 2\nburst 3\n");
    let content = fs::read(&path).unwrap();
    expect_raw(
        &mut s,
        &frames(&content, 0),
        Duration::from_secs(2),
        "burst",
    );
}

// ---------------------------------------------------------------------------
// Resume

enum Resume {
    Header,
    LastEventIdParam,
    FromParam,
}

fn check_resume(how: Resume) {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("resume.log");
    let mut content = Vec::new();
    for i in 1..=6 {
        content.extend_from_slice(format!("line {i} of the resume test\n").as_bytes());
    }
    write_file(&path, &content);

    let mut s1 = SseStream::open(&d, &stream_url("resume"), &[]);
    let mut seen: Vec<Event> = Vec::new();
    for _ in 0..3 {
        seen.push(
            s1.next_event(Duration::from_secs(2))
                .expect("event before disconnect"),
        );
    }
    let last: usize = seen[2]
        .id
        .as_deref()
        .expect("id")
        .parse()
        .expect("numeric id");
    drop(s1);

    // Lines written while the client is away.
    for i in 7..=10 {
        append(&path, format!("line {i} of the resume test\n").as_bytes());
    }
    let content = fs::read(&path).unwrap();

    let header = format!("Last-Event-ID: {last}");
    let (target, headers): (String, Vec<&str>) = match how {
        Resume::Header => (stream_url("resume"), vec![header.as_str()]),
        Resume::LastEventIdParam => (
            format!("{}?last_event_id={last}", stream_url("resume")),
            vec![],
        ),
        Resume::FromParam => (format!("{}?from={last}", stream_url("resume")), vec![]),
    };
    let mut s2 = SseStream::open(&d, &target, &headers);
    assert_eq!(s2.head.status, 200, "{:?}", s2.head);
    expect_raw(
        &mut s2,
        &frames(&content, last),
        Duration::from_secs(2),
        "resumed stream",
    );
    assert!(
        quiet(&mut s2, Duration::from_millis(300)),
        "extra bytes after resume: {:?}",
        show(&s2.raw)
    );

    // Nothing lost, nothing repeated.
    let mut lines: Vec<String> = seen.iter().map(|e| e.data.clone().unwrap()).collect();
    lines.extend(raw_events(&s2.raw).into_iter().map(|e| e.data.unwrap()));
    let file_lines: Vec<String> = show(&content).lines().map(str::to_string).collect();
    assert_eq!(lines, file_lines);
}

#[test]
fn resume_with_last_event_id_header() {
    check_resume(Resume::Header);
}

#[test]
fn resume_with_last_event_id_query_parameter() {
    check_resume(Resume::LastEventIdParam);
}

#[test]
fn resume_with_from_query_parameter() {
    check_resume(Resume::FromParam);
}

#[test]
fn resume_offsets_inside_a_line_past_the_end_and_not_numbers() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("offs.log");
    let content = b"aaaa\nbbbb\ncccc\n"; // lines end at 5, 10, 15
    write_file(&path, content);
    let all = "id: 5\ndata: aaaa\n\nid: 10\ndata: bbbb\n\nid: 15\ndata: cccc\n\n";
    let url = stream_url("offs");
    let cases: Vec<(String, Vec<String>, &str, &str)> = vec![
        (format!("{url}?from=0"), vec![], all, "from=0"),
        (
            format!("{url}?from=5"),
            vec![],
            "id: 10\ndata: bbbb\n\nid: 15\ndata: cccc\n\n",
            "at a line start",
        ),
        (
            format!("{url}?from=7"),
            vec![],
            "id: 15\ndata: cccc\n\n",
            "inside a line",
        ),
        (
            format!("{url}?last_event_id=1"),
            vec![],
            "id: 10\ndata: bbbb\n\nid: 15\ndata: cccc\n\n",
            "inside line 1",
        ),
        (
            url.clone(),
            vec!["Last-Event-ID: 7".into()],
            "id: 15\ndata: cccc\n\n",
            "header inside a line",
        ),
        (format!("{url}?from=1000"), vec![], all, "past the end"),
        (
            url.clone(),
            vec!["Last-Event-ID: 99999".into()],
            all,
            "header past the end",
        ),
        (format!("{url}?from=abc"), vec![], all, "not a number"),
        (format!("{url}?last_event_id=-3"), vec![], all, "negative"),
        (
            url.clone(),
            vec!["Last-Event-ID: xyz".into()],
            all,
            "header not a number",
        ),
    ];
    for (target, headers, expected, what) in cases {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let mut s = SseStream::open(&d, &target, &headers);
        assert_eq!(s.head.status, 200, "{what}: {:?}", s.head);
        expect_raw(&mut s, expected, Duration::from_secs(2), what);
        assert!(
            quiet(&mut s, Duration::from_millis(150)),
            "{what}: extra bytes {:?}",
            show(&s.raw)
        );
    }

    // At the end of a log still being written: nothing yet, then the next line.
    let mut s = SseStream::open(&d, &format!("{url}?from=15"), &[]);
    assert_eq!(s.head.status, 200);
    assert!(
        quiet(&mut s, Duration::from_millis(300)),
        "at the end: {:?}",
        show(&s.raw)
    );
    append(&path, b"dddd\n");
    expect_raw(
        &mut s,
        "id: 20\ndata: dddd\n\n",
        Duration::from_secs(2),
        "line after resume at end",
    );
}

// ---------------------------------------------------------------------------
// Tail

#[test]
fn tail_gives_the_last_complete_lines_and_last_event_id_wins() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("tail.log");
    write_file(&path, b"l1\nl2\nl3\nl4\npartial"); // ends at 3, 6, 9, 12
    let url = stream_url("tail");

    let mut s = SseStream::open(&d, &format!("{url}?tail=2"), &[]);
    assert_eq!(s.head.status, 200);
    let mut expected = String::from("id: 9\ndata: l3\n\nid: 12\ndata: l4\n\n");
    expect_raw(&mut s, &expected, Duration::from_secs(2), "tail=2");
    assert!(
        quiet(&mut s, Duration::from_millis(200)),
        "tail=2 extra: {:?}",
        show(&s.raw)
    );

    let mut s1 = SseStream::open(&d, &format!("{url}?tail=1"), &["Last-Event-ID: 3"]);
    expect_raw(
        &mut s1,
        "id: 6\ndata: l2\n\nid: 9\ndata: l3\n\nid: 12\ndata: l4\n\n",
        Duration::from_secs(2),
        "Last-Event-ID wins over tail",
    );

    let mut s2 = SseStream::open(&d, &format!("{url}?tail=10"), &[]);
    expect_raw(
        &mut s2,
        &frames(b"l1\nl2\nl3\nl4\n", 0),
        Duration::from_secs(2),
        "tail larger than the file",
    );

    append(&path, b"\n");
    expected.push_str("id: 20\ndata: partial\n\n");
    expect_raw(
        &mut s,
        &expected,
        Duration::from_secs(2),
        "tail stream continues",
    );
}

fn io_rchar(pid: u32) -> Option<u64> {
    let io = fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("rchar:"))
        .and_then(|v| v.trim().parse().ok())
}

fn reads(d: &Daemon) -> f64 {
    d.metric("logcast_tail_reads_total")
        .expect("logcast_tail_reads_total")
        + d.metric("logcast_catchup_reads_total")
            .expect("logcast_catchup_reads_total")
}

#[test]
fn tail_on_a_gigabyte_file_does_not_read_the_gigabyte() {
    let d = Daemon::start(&["--poll-interval-ms", "100"]);
    let path = d.log_dir.join("big.log");
    let end_of_hole = (1u64 << 30) - 100;
    {
        let mut f = File::create(&path).expect("create big file");
        f.write_all(b"first line\nsecond line\n").unwrap();
        // A hole: costs no disk, reads as NULs (one giant line with no `\n`).
        f.seek(SeekFrom::Start(end_of_hole)).unwrap();
        f.write_all(b"\nlast-1\nlast-2\n").unwrap();
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let size = end_of_hole + 15;
    assert_eq!(fs::metadata(&path).unwrap().len(), size);

    let reads_before = reads(&d);
    let rchar_before = io_rchar(d.pid());
    let t = Instant::now();
    let mut s = SseStream::open(&d, &format!("{}?tail=2", stream_url("big")), &[]);
    assert_eq!(s.head.status, 200, "{:?}", s.head);
    let expected = format!(
        "id: {}\ndata: last-1\n\nid: {}\ndata: last-2\n\n",
        end_of_hole + 8,
        size
    );
    expect_raw(&mut s, &expected, Duration::from_secs(5), "tail=2 of 1 GiB");
    let took = t.elapsed();
    assert!(
        quiet(&mut s, Duration::from_millis(300)),
        "extra bytes: {:?}",
        show(&s.raw)
    );

    let reads_after = reads(&d);
    let rchar_after = io_rchar(d.pid());
    eprintln!(
        "tail=2 of 1 GiB: {took:?}, {} tail+catchup reads, rchar {:?} -> {:?}",
        reads_after - reads_before,
        rchar_before,
        rchar_after
    );
    assert!(
        reads_after - reads_before < 100.0,
        "tail + catchup reads grew by {} for tail=2 (took {took:?})",
        reads_after - reads_before
    );
    if let (Some(a), Some(b)) = (rchar_before, io_rchar(d.pid())) {
        assert!(
            b - a < 64 << 20,
            "the daemon read {} bytes for tail=2 of a 1 GiB file",
            b - a
        );
    }

    append(&path, b"after\n");
    let expected = format!("{expected}id: {}\ndata: after\n\n", size + 6);
    expect_raw(
        &mut s,
        &expected,
        Duration::from_secs(2),
        "line appended to the big file",
    );
}

// ---------------------------------------------------------------------------
// Truncation, rotation, deletion

#[test]
fn truncation_sends_reset_then_the_new_lines_from_zero() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("trunc.log");
    write_file(&path, b"one\ntwo\n");
    let mut s = SseStream::open(&d, &stream_url("trunc"), &[]);
    let mut expected = String::from("id: 4\ndata: one\n\nid: 8\ndata: two\n\n");
    expect_raw(
        &mut s,
        &expected,
        Duration::from_secs(2),
        "before truncation",
    );

    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(0)
        .unwrap();
    std::thread::sleep(Duration::from_millis(200)); // several polls see the shrunk file
    append(&path, b"new1\n");
    expected.push_str(RESET);
    expected.push_str("id: 5\ndata: new1\n\n");
    expect_raw(
        &mut s,
        &expected,
        Duration::from_secs(2),
        "after truncation",
    );
    append(&path, b"new2\n");
    expected.push_str("id: 10\ndata: new2\n\n");
    expect_raw(
        &mut s,
        &expected,
        Duration::from_secs(2),
        "after truncation, next line",
    );
}

#[test]
fn rotation_sends_reset_then_the_new_files_lines() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("rot.log");
    write_file(&path, b"one\ntwo\n");
    let mut s = SseStream::open(&d, &stream_url("rot"), &[]);
    let mut expected = String::from("id: 4\ndata: one\n\nid: 8\ndata: two\n\n");
    expect_raw(&mut s, &expected, Duration::from_secs(2), "before rotation");

    // The new file is longer than the old offset: only a replaced-file check
    // (not a size check) notices it.
    fs::rename(&path, d.log_dir.join("rot.old")).unwrap();
    let tmp = d.log_dir.join("rot.tmp");
    write_file(&tmp, b"rotated-1\nrotated-2\n");
    fs::rename(&tmp, &path).unwrap();
    expected.push_str(RESET);
    expected.push_str("id: 10\ndata: rotated-1\n\nid: 20\ndata: rotated-2\n\n");
    expect_raw(&mut s, &expected, Duration::from_secs(3), "after rotation");

    append(&path, b"rotated-3\n");
    append(&d.log_dir.join("rot.old"), b"old file line\n");
    expected.push_str("id: 30\ndata: rotated-3\n\n");
    expect_raw(
        &mut s,
        &expected,
        Duration::from_secs(2),
        "follows the new file",
    );
    assert!(
        quiet(&mut s, Duration::from_millis(200)),
        "extra bytes: {:?}",
        show(&s.raw)
    );
}

/// Missing for less than a second, then back: a rotation, not a deletion.
#[test]
fn deleted_and_recreated_within_a_second_is_a_rotation() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("back.log");
    write_file(&path, b"one\ntwo\n");
    let mut s = SseStream::open(&d, &stream_url("back"), &[]);
    let mut expected = String::from("id: 4\ndata: one\n\nid: 8\ndata: two\n\n");
    expect_raw(&mut s, &expected, Duration::from_secs(2), "before deletion");
    fs::remove_file(&path).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    write_file(&path, b"again\n");
    expected.push_str(RESET);
    expected.push_str("id: 6\ndata: again\n\n");
    expect_raw(&mut s, &expected, Duration::from_secs(2), "recreated");
    assert!(
        quiet(&mut s, Duration::from_millis(1200)),
        "extra bytes: {:?}",
        show(&s.raw)
    );
}

#[test]
fn deletion_ends_the_stream_with_reason_deleted() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("gone.log");
    write_file(&path, b"x\n");
    let mut s = SseStream::open(&d, &stream_url("gone"), &[]);
    expect_raw(
        &mut s,
        "id: 2\ndata: x\n\n",
        Duration::from_secs(2),
        "before deletion",
    );
    fs::remove_file(&path).unwrap();
    let t = Instant::now();
    let ended = read_until(&mut s, Duration::from_secs(4), |raw| {
        raw.ends_with(b"\n\n") && raw.len() > 15
    });
    assert!(ended, "no end event after deletion: {:?}", show(&s.raw));
    let took = t.elapsed();
    let events = raw_events(&s.raw);
    let end = events.last().unwrap();
    assert_eq!(end.event.as_deref(), Some("end"), "{:?}", show(&s.raw));
    assert!(
        end.data
            .as_deref()
            .unwrap_or("")
            .contains("\"reason\": \"deleted\""),
        "{end:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "end after deletion took {took:?}"
    );
    assert!(
        read_to_close(&mut s, Duration::from_secs(2)),
        "server closes after the deleted end"
    );
    assert_eq!(raw_events(&s.raw).len(), 2, "{:?}", show(&s.raw));
    let r = d.get("/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
}

// ---------------------------------------------------------------------------
// Heartbeat, graceful stop, disconnects, unknown log

#[test]
fn heartbeat_comment_after_silence() {
    let d = Daemon::start(&["--poll-interval-ms", "20", "--heartbeat-interval-ms", "200"]);
    let path = d.log_dir.join("quiet.log");
    write_file(&path, b"x\n");
    let mut s = SseStream::open(&d, &stream_url("quiet"), &[]);
    let expected = "id: 2\ndata: x\n\n: keepalive\n\n";
    expect_raw(&mut s, expected, Duration::from_secs(2), "heartbeat");
    // And it keeps coming while nothing is written.
    let more = read_until(&mut s, Duration::from_secs(2), |raw| {
        raw.len() >= expected.len() + 13
    });
    assert!(more, "second heartbeat missing: {:?}", show(&s.raw));
    assert!(
        show(&s.raw).starts_with(&format!("{expected}: keepalive\n\n")),
        "{:?}",
        show(&s.raw)
    );
}

#[test]
fn sigterm_sends_shutdown_to_every_stream_and_exits_zero() {
    let mut d = Daemon::start(FAST);
    let path = d.log_dir.join("ext.log");
    write_file(&path, b"x\n");
    let id = d.create_log(60);
    let mut streams = [
        SseStream::open(&d, &stream_url("ext"), &[]),
        SseStream::open(&d, &stream_url("ext"), &[]),
        SseStream::open(&d, &stream_url(&id), &[]),
    ];
    for s in streams.iter_mut() {
        assert_eq!(s.head.status, 200);
        assert!(
            read_until(s, Duration::from_secs(2), |raw| raw.ends_with(b"\n\n")),
            "first event"
        );
    }
    let status = d
        .terminate(Duration::from_secs(3))
        .expect("daemon did not exit within 3 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    for (i, s) in streams.iter_mut().enumerate() {
        assert!(
            read_to_close(s, Duration::from_secs(2)),
            "stream {i} not closed"
        );
        let body = show(&s.raw);
        assert!(
            body.ends_with(SHUTDOWN),
            "stream {i} did not end with the shutdown event: {body:?}"
        );
        assert_eq!(
            body.matches("event: shutdown").count(),
            1,
            "stream {i}: {body:?}"
        );
    }
    let mode = fs::metadata(d.log_path(&id)).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o444,
        "a writer's log is finished by the graceful stop"
    );
}

#[test]
fn client_disconnects_are_noticed() {
    let d = Daemon::start(FAST);
    write_file(&d.log_dir.join("many.log"), b"x\n");
    write_file(&d.log_dir.join("other.log"), b"y\n");
    let streams_open = || d.metric("logcast_streams_open");
    let logs_tailed = || d.metric("logcast_logs_tailed");
    let mut streams: Vec<SseStream> = (0..20)
        .map(|i| {
            let id = if i % 2 == 0 { "many" } else { "other" };
            SseStream::open(&d, &stream_url(id), &[])
        })
        .collect();
    for s in streams.iter_mut() {
        assert_eq!(s.head.status, 200);
        assert!(read_until(s, Duration::from_secs(2), |raw| raw.ends_with(b"\n\n")));
    }
    let all_open = eventually(Duration::from_secs(2), || streams_open() == Some(20.0));
    assert!(all_open, "streams_open = {:?}", streams_open());
    assert_eq!(logs_tailed(), Some(2.0), "two logs followed");
    drop(streams);
    let released = eventually(Duration::from_secs(1), || streams_open() == Some(0.0));
    assert!(
        released,
        "streams_open after disconnect = {:?}",
        streams_open()
    );
    let untailed = eventually(Duration::from_secs(1), || logs_tailed() == Some(0.0));
    assert!(
        untailed,
        "logs_tailed after every stream left = {:?}",
        logs_tailed()
    );
}

#[test]
fn unknown_log_stream_is_404_json() {
    let d = Daemon::start(FAST);
    let r = d.get(&stream_url("no-such-log"));
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("server"), Some("logcast"));
    assert!(r.text().starts_with("{\"error\": \""), "{}", r.text());
    let r = d.get(&format!("{}?tail=3", stream_url("no-such-log")));
    assert_eq!(r.status, 404, "{r:?}");
}

/// A client resuming at an offset this daemon's tail has not read yet (it got
/// that line from another daemon sharing the directory, or just after a
/// write and before the next poll) continues right after it: the offset is
/// not mistaken for one past the end (which would replay the whole log).
#[test]
fn resume_ahead_of_the_tail_continues_exactly() {
    // Polls only when asked: the tail sees new lines only through the resume.
    let d = Daemon::start(&["--poll-interval-ms", "60000"]);
    let path = d.log_dir.join("ahead.log");
    write_file(&path, b"a\nb\n");
    let mut first = SseStream::open(&d, &stream_url("ahead"), &[]);
    expect_raw(
        &mut first,
        "id: 2\ndata: a\n\nid: 4\ndata: b\n\n",
        Duration::from_secs(2),
        "first stream",
    );
    append(&path, b"c\nd\n");
    let mut resumed = SseStream::open(&d, &stream_url("ahead"), &["Last-Event-ID: 6"]);
    assert_eq!(resumed.head.status, 200);
    expect_raw(
        &mut resumed,
        "id: 8\ndata: d\n\n",
        Duration::from_secs(2),
        "resumed after c",
    );
    // The poll it caused also brought the first stream up to date, once.
    expect_raw(
        &mut first,
        "id: 2\ndata: a\n\nid: 4\ndata: b\n\nid: 6\ndata: c\n\nid: 8\ndata: d\n\n",
        Duration::from_secs(2),
        "first stream after the poll",
    );
}
