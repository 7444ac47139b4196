//! `?grep=` and `?exclude=` on streams (SPEC section 3), over real sockets:
//! which lines arrive, that ids stay file offsets (so resume is exact),
//! `?tail=n` counting matching lines, bad expressions, live lines, and
//! streams of one log sharing a filter group.

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

const FAST: &[&str] = &["--poll-interval-ms", "20", "--write-interval-ms", "50"];

/// A finished log with lines `n level text`, levels cycling INFO, WARN,
/// ERROR, debug; returns the file's bytes.
fn levelled_log(d: &Daemon, id: &str, lines: usize) -> Vec<u8> {
    let levels = ["INFO", "WARN", "ERROR", "debug"];
    let mut content = Vec::new();
    for i in 0..lines {
        content.extend_from_slice(format!("{i} {} text {i}\n", levels[i % 4]).as_bytes());
    }
    let path = d.log_path(id);
    std::fs::write(&path, &content).expect("write");
    make_read_only(&path);
    content
}

/// `(id, line)` of every line of `content` that `keep` accepts, with the
/// id the daemon must give it: the offset just past the line.
fn expected(content: &[u8], keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in content.split_inclusive(|&b| b == b'\n') {
        offset += line.len();
        let text = String::from_utf8_lossy(line)
            .trim_end_matches('\n')
            .to_string();
        if keep(&text) {
            out.push((offset.to_string(), text));
        }
    }
    out
}

/// The line events of a stream read to its close, and its last event.
fn lines_and_end(d: &Daemon, target: &str, headers: &[&str]) -> (Vec<(String, String)>, Event) {
    let mut s = SseStream::open(d, target, headers);
    assert_eq!(s.head.status, 200, "{target}: {:?}", s.head);
    let events = s.read_to_close(Duration::from_secs(10));
    let end = events.last().cloned().expect("an end event");
    assert_eq!(end.event.as_deref(), Some("end"), "{target}: {events:?}");
    (line_events(&events), end)
}

#[test]
fn grep_sends_only_matching_lines_with_file_offsets_as_ids() {
    let d = Daemon::start(FAST);
    let content = levelled_log(&d, "lv", 200);
    let (lines, end) = lines_and_end(&d, "/api/logs/lv/stream?grep=ERROR", &[]);
    assert_eq!(lines, expected(&content, |l| l.contains("ERROR")));
    // `end` describes the whole file, not the filtered lines.
    let data = end.data.unwrap_or_default();
    assert_eq!(json_raw_field(&data, "lines"), Some("200".into()), "{data}");
    assert_eq!(
        json_raw_field(&data, "bytes"),
        Some(content.len().to_string()),
        "{data}"
    );
}

#[test]
fn exclude_and_case_insensitive_and_both_together() {
    let d = Daemon::start(FAST);
    let content = levelled_log(&d, "lv", 100);
    let (lines, _) = lines_and_end(&d, "/api/logs/lv/stream?exclude=debug", &[]);
    assert_eq!(lines, expected(&content, |l| !l.contains("debug")));
    let (lines, _) = lines_and_end(&d, "/api/logs/lv/stream?grep=%28%3Fi%29DEBUG", &[]);
    assert_eq!(lines, expected(&content, |l| l.contains("debug")));
    // Lines with a 7 in them, but not the warnings: grep and exclude at once.
    let (lines, _) = lines_and_end(&d, "/api/logs/lv/stream?grep=7&exclude=WARN", &[]);
    assert_eq!(
        lines,
        expected(&content, |l| l.contains('7') && !l.contains("WARN"))
    );
}

#[test]
fn a_filtered_stream_resumes_exactly_with_last_event_id() {
    let d = Daemon::start(FAST);
    let content = levelled_log(&d, "lv", 120);
    let all = expected(&content, |l| l.contains("WARN"));
    // Resume from the id of the 10th match: the rest arrive, nothing twice.
    let resume = format!("Last-Event-ID: {}", all[9].0);
    let (lines, _) = lines_and_end(&d, "/api/logs/lv/stream?grep=WARN", &[&resume]);
    assert_eq!(lines, all[10..].to_vec());
    // A resume point inside a line starts at the next line, filtered.
    let inside = all[3].0.parse::<u64>().expect("id") - 3;
    let (lines, _) = lines_and_end(
        &d,
        &format!("/api/logs/lv/stream?grep=WARN&from={inside}"),
        &[],
    );
    assert_eq!(
        lines,
        all[4..].to_vec(),
        "inside the 4th match: from the 5th"
    );
}

#[test]
fn tail_n_with_a_filter_gives_the_last_n_matching_lines() {
    let d = Daemon::start(FAST);
    let content = levelled_log(&d, "lv", 5000);
    let all = expected(&content, |l| l.contains("ERROR"));
    for n in [1usize, 3, 250] {
        let (lines, _) =
            lines_and_end(&d, &format!("/api/logs/lv/stream?tail={n}&grep=ERROR"), &[]);
        assert_eq!(lines, all[all.len() - n..].to_vec(), "tail={n}");
    }
    // More than there are: all of them.
    let (lines, _) = lines_and_end(&d, "/api/logs/lv/stream?tail=100000&grep=ERROR", &[]);
    assert_eq!(lines, all);
    // None match: nothing but `end`.
    let (lines, _) = lines_and_end(&d, "/api/logs/lv/stream?tail=5&grep=nomatch", &[]);
    assert!(lines.is_empty(), "{lines:?}");
}

#[test]
fn a_bad_or_oversized_expression_is_a_400_naming_the_problem() {
    let d = Daemon::start(FAST);
    levelled_log(&d, "lv", 4);
    let fds = d.open_fds();
    for (target, want) in [
        (
            "/api/logs/lv/stream?grep=%28unclosed",
            "grep: invalid regular expression",
        ),
        (
            "/api/logs/lv/stream?exclude=a%5B",
            "exclude: invalid regular expression",
        ),
        (
            "/api/logs/lv/stream?grep=%5Cw%7B1000%7D%5Cw%7B1000%7D",
            "grep: expression too big",
        ),
        (
            "/api/logs/lv/stream?grep=%ZZ",
            "grep: not valid percent-encoded UTF-8",
        ),
    ] {
        let r = d.get(target);
        assert_eq!(r.status, 400, "{target}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{target}"
        );
        assert!(r.text().contains(want), "{target}: {}", r.text());
    }
    let long = format!("/api/logs/lv/stream?grep={}", "a".repeat(2000));
    let r = d.get(&long);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("longer than"), "{}", r.text());
    // Nothing is left behind: no tail, no descriptor.
    assert!(
        eventually(Duration::from_secs(2), || d.open_fds() <= fds),
        "descriptors {} > {fds}",
        d.open_fds()
    );
    assert_eq!(d.metric("logcast_logs_tailed"), Some(0.0));
    // An empty expression is no filter.
    let (lines, _) = lines_and_end(&d, "/api/logs/lv/stream?grep=", &[]);
    assert_eq!(lines.len(), 4);
}

#[test]
fn live_lines_are_filtered_and_streams_with_other_filters_get_theirs() {
    let d = Daemon::start(FAST);
    let path = d.log_path("live");
    std::fs::write(&path, b"").expect("create");
    let mut errors = SseStream::open(&d, "/api/logs/live/stream?grep=ERROR", &[]);
    let mut errors2 = SseStream::open(&d, "/api/logs/live/stream?grep=ERROR", &[]);
    let mut quiet = SseStream::open(&d, "/api/logs/live/stream?exclude=ERROR", &[]);
    let mut all = SseStream::open(&d, "/api/logs/live/stream", &[]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    f.write_all(b"one ok\ntwo ERROR\nthree ok\nfour ERROR\n")
        .expect("append");
    let data = |s: &mut SseStream, n: usize| -> Vec<String> {
        (0..n)
            .filter_map(|_| s.next_event(Duration::from_secs(5)))
            .filter_map(|e| e.data)
            .collect()
    };
    assert_eq!(data(&mut errors, 2), ["two ERROR", "four ERROR"]);
    assert_eq!(data(&mut errors2, 2), ["two ERROR", "four ERROR"]);
    assert_eq!(data(&mut quiet, 2), ["one ok", "three ok"]);
    assert_eq!(
        data(&mut all, 4),
        ["one ok", "two ERROR", "three ok", "four ERROR"]
    );
    // Two distinct filters and the unfiltered group: three framings.
    f.write_all(b"five ERROR\n").expect("append");
    assert_eq!(data(&mut errors, 1), ["five ERROR"]);
    assert_eq!(data(&mut all, 1), ["five ERROR"]);
    // The ok-stream got nothing of it, and its next line comes with the
    // right id (offsets are the file's).
    f.write_all(b"six ok\n").expect("append");
    let e = quiet.next_event(Duration::from_secs(5)).expect("six");
    assert_eq!(e.data.as_deref(), Some("six ok"));
    let size = std::fs::metadata(&path).expect("meta").len();
    assert_eq!(e.id, Some(size.to_string()));
}

#[test]
fn a_filtered_stream_with_no_matches_still_gets_heartbeats() {
    let d = Daemon::start(&["--heartbeat-interval-ms", "200", "--poll-interval-ms", "20"]);
    let path = d.log_path("hb");
    std::fs::write(&path, b"").expect("create");
    let mut s = SseStream::open(&d, "/api/logs/hb/stream?grep=never", &[]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    // Lines keep coming, none match: the stream must still hear keepalives.
    let mut keepalives = 0;
    for i in 0..12 {
        writeln!(f, "line {i}").expect("append");
        std::thread::sleep(Duration::from_millis(50));
    }
    while let Some(e) = s.next_event(Duration::from_millis(700)) {
        assert!(e.data.is_none(), "no line matches: {e:?}");
        keepalives += e
            .comments
            .iter()
            .filter(|c| c.trim() == "keepalive")
            .count();
        if keepalives >= 2 {
            break;
        }
    }
    assert!(keepalives >= 2, "keepalives: {keepalives}");
}
