//! Integration tests of the logs API: `POST /api/logs`, `GET /api/logs`,
//! `GET /api/logs/<id>`, and the id rules (no path traversal, ever).

mod common;

use common::{
    assert_error, assert_json, eventually, json_array_objects, json_raw_field, json_str_field,
    write_file, Daemon, SseStream,
};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const FAST: &[&str] = &["--write-interval-ms", "50", "--poll-interval-ms", "20"];

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn line_count(path: &Path) -> usize {
    fs::read(path)
        .map(|c| c.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}

/// `xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`, lower-case hex.
fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Parses an RFC 3339 date-time in UTC (`Z` or `+00:00`, optional fraction) to Unix seconds.
fn parse_rfc3339_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    if !matches!(rest, "Z" | "z" | "+00:00") {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Checks the fields shared by list entries and info bodies.
fn check_log_object(obj: &str, id: &str, path: &Path) {
    assert_eq!(json_str_field(obj, "log_id").as_deref(), Some(id), "{obj}");
    assert_eq!(
        json_str_field(obj, "stream_url"),
        Some(format!("/api/logs/{id}/stream")),
        "{obj}"
    );
    let size: u64 = json_raw_field(obj, "file_size")
        .and_then(|v| v.parse().ok())
        .expect("file_size");
    let created = json_str_field(obj, "created_at").expect("created_at is a string");
    assert!(!created.is_empty(), "{obj}");
    let writing = json_raw_field(obj, "writing").expect("writing");
    assert!(
        writing == "true" || writing == "false",
        "writing must be a boolean: {obj}"
    );
    // When the file is not being written, file_size is exact.
    if writing == "false" {
        assert_eq!(size, fs::metadata(path).unwrap().len(), "{obj}");
    }
}

/// A directory removed on drop (declared before the daemon, so dropped after it).
struct TempBase(PathBuf);
impl Drop for TempBase {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// POST /api/logs

#[test]
fn post_creates_a_log_that_is_written_then_finished() {
    let d = Daemon::start(FAST);
    let r = d.request("POST", "/api/logs?duration=1");
    assert_json(&r, 201, "POST");
    let body = r.text();
    let id = json_str_field(&body, "log_id").expect("log_id");
    assert!(is_uuid_v4(&id), "log id is not a lower-case uuid v4: {id}");
    assert_eq!(
        r.header("location"),
        Some(format!("/api/logs/{id}").as_str()),
        "{:?}",
        r.headers
    );
    assert_eq!(
        body,
        format!(
            "{{\"log_id\": \"{id}\", \"message\": \"Log file created with ID: {id}\", \
             \"stream_url\": \"/api/logs/{id}/stream\"}}"
        )
    );

    let path = d.log_path(&id);
    let content = fs::read_to_string(&path).expect("log file exists once 201 is sent");
    let first = content.lines().next().expect("first line");
    let stamp = first
        .strip_prefix("[LOG CREATED] ")
        .unwrap_or_else(|| panic!("first line: {first:?}"));
    let t =
        parse_rfc3339_utc(stamp).unwrap_or_else(|| panic!("not an RFC 3339 UTC time: {stamp:?}"));
    assert!(
        (t - now_unix()).abs() < 60,
        "creation time {stamp} is not now"
    );
    assert_eq!(mode(&path), 0o644, "a log being written is 0644");

    let info = d.get(&format!("/api/logs/{id}"));
    assert_json(&info, 200, "info while writing");
    assert_eq!(
        json_raw_field(&info.text(), "writing").as_deref(),
        Some("true"),
        "{}",
        info.text()
    );

    // Lines grow while the writer runs.
    let n0 = line_count(&path);
    assert!(
        eventually(Duration::from_secs(1), || line_count(&path) > n0 + 2),
        "lines did not grow: {n0} -> {}",
        line_count(&path)
    );
    // Then the file becomes read-only and `writing` false.
    assert!(
        eventually(Duration::from_secs(4), || mode(&path) == 0o444),
        "mode stays {:o}",
        mode(&path)
    );
    let n = line_count(&path);
    assert!(n >= 10, "one line every 50 ms for 1 s wrote only {n} lines");
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(line_count(&path), n, "lines written after the finish");
    let info = d.get(&format!("/api/logs/{id}"));
    assert_json(&info, 200, "info when finished");
    check_log_object(&info.text(), &id, &path);
    assert_eq!(
        json_raw_field(&info.text(), "writing").as_deref(),
        Some("false"),
        "{}",
        info.text()
    );
}

#[test]
fn post_accepts_default_and_boundary_durations() {
    let d = Daemon::start(FAST);
    for target in [
        "/api/logs",
        "/api/logs?duration=1",
        "/api/logs?duration=3600",
    ] {
        let r = d.request("POST", target);
        assert_json(&r, 201, target);
        let id = json_str_field(&r.text(), "log_id").expect("log_id");
        assert!(d.log_path(&id).exists(), "{target}: no file");
    }
}

#[test]
fn post_rejects_bad_durations_with_400_json() {
    let d = Daemon::start(FAST);
    for bad in [
        "0",
        "-1",
        "abc",
        "99999",
        "3601",
        "1.5",
        "",
        "1e3",
        "4294967297",
    ] {
        let target = format!("/api/logs?duration={bad}");
        let r = d.request("POST", &target);
        assert_error(&r, 400, &target);
    }
    let entries: Vec<_> = fs::read_dir(&d.log_dir).unwrap().collect();
    assert!(
        entries.is_empty(),
        "a rejected POST created files: {entries:?}"
    );

    // A bad parameter closes the connection even when keep-alive was asked for.
    let mut s = d.connect();
    s.write_all(b"POST /api/logs?duration=0 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let r = common::read_response(&mut s, false).expect("response");
    assert_error(&r, 400, "keep-alive 400");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        common::is_closed(&mut s, Duration::from_secs(2)),
        "connection kept open after a 400"
    );
}

// ---------------------------------------------------------------------------
// GET /api/logs and /api/logs/<id>

#[test]
fn list_is_newest_first_with_all_fields() {
    let d = Daemon::start(FAST);
    let mut ids = Vec::new();
    for i in 0..3 {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(1300));
        }
        ids.push(d.create_log(1));
    }
    for id in &ids {
        let path = d.log_path(id);
        assert!(
            eventually(Duration::from_secs(3), || mode(&path) == 0o444),
            "{id} not finished"
        );
    }
    let r = d.get("/api/logs");
    assert_json(&r, 200, "list");
    let objects = json_array_objects(&r.text());
    let listed: Vec<String> = objects
        .iter()
        .map(|o| json_str_field(o, "log_id").expect("log_id"))
        .collect();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first, "{}", r.text());
    for (obj, id) in objects.iter().zip(&listed) {
        check_log_object(obj, id, &d.log_path(id));
        assert_eq!(
            json_raw_field(obj, "writing").as_deref(),
            Some("false"),
            "{obj}"
        );
    }

    // An empty dir lists as an empty array.
    let e = Daemon::start(FAST);
    let r = e.get("/api/logs");
    assert_json(&r, 200, "empty list");
    assert_eq!(r.text().replace(' ', ""), "[]");
}

#[test]
fn info_has_all_fields_and_counts_subscribers() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("sub.log");
    write_file(&path, b"x\n");
    let subscribers = || {
        let r = d.get("/api/logs/sub");
        assert_json(&r, 200, "info");
        json_raw_field(&r.text(), "subscribers").and_then(|v| v.parse::<u64>().ok())
    };
    let r = d.get("/api/logs/sub");
    assert_json(&r, 200, "info");
    check_log_object(&r.text(), "sub", &path);
    assert_eq!(
        json_raw_field(&r.text(), "file_size").as_deref(),
        Some("2"),
        "{}",
        r.text()
    );
    assert_eq!(
        json_raw_field(&r.text(), "writing").as_deref(),
        Some("true"),
        "{}",
        r.text()
    );
    assert_eq!(subscribers(), Some(0), "{}", r.text());

    let a = SseStream::open(&d, "/api/logs/sub/stream", &[]);
    let b = SseStream::open(&d, "/api/logs/sub/stream", &[]);
    assert_eq!((a.head.status, b.head.status), (200, 200));
    assert!(
        eventually(Duration::from_secs(1), || subscribers() == Some(2)),
        "got {:?}",
        subscribers()
    );
    drop(a);
    drop(b);
    assert!(
        eventually(Duration::from_secs(1), || subscribers() == Some(0)),
        "got {:?}",
        subscribers()
    );
}

#[test]
fn external_file_is_listed_and_described() {
    let d = Daemon::start(FAST);
    let path = d.log_dir.join("external-1.log");
    write_file(&path, b"hello\nworld\n");
    let find = || {
        let r = d.get("/api/logs");
        assert_json(&r, 200, "list");
        json_array_objects(&r.text())
            .into_iter()
            .find(|o| json_str_field(o, "log_id").as_deref() == Some("external-1"))
    };
    assert!(
        eventually(Duration::from_secs(2), || find().is_some()),
        "not listed: {}",
        d.get("/api/logs").text()
    );
    let obj = find().unwrap();
    check_log_object(&obj, "external-1", &path);
    assert_eq!(
        json_raw_field(&obj, "file_size").as_deref(),
        Some("12"),
        "{obj}"
    );
    assert_eq!(
        json_raw_field(&obj, "writing").as_deref(),
        Some("true"),
        "{obj}"
    );

    let r = d.get("/api/logs/external-1");
    assert_json(&r, 200, "info");
    check_log_object(&r.text(), "external-1", &path);
    assert_eq!(
        json_raw_field(&r.text(), "subscribers").as_deref(),
        Some("0"),
        "{}",
        r.text()
    );

    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    let r = d.get("/api/logs/external-1");
    assert_eq!(
        json_raw_field(&r.text(), "writing").as_deref(),
        Some("false"),
        "{}",
        r.text()
    );
    check_log_object(&r.text(), "external-1", &path);
}

// ---------------------------------------------------------------------------
// Ids

#[test]
fn unknown_id_is_404_json() {
    let d = Daemon::start(FAST);
    for target in [
        "/api/logs/does-not-exist",
        "/api/logs/does-not-exist/stream",
        "/api/logs/x.log",
    ] {
        assert_error(&d.get(target), 404, target);
    }
    // `x.log` names x.log.log, not x.log.
    write_file(&d.log_dir.join("x.log"), b"x\n");
    assert_error(&d.get("/api/logs/x.log"), 404, "x.log id");
    assert_json(&d.get("/api/logs/x"), 200, "x id");
}

#[test]
fn traversal_and_invalid_ids_are_404_and_leak_nothing() {
    let base = TempBase(common::temp_dir("traversal"));
    let dir = base.0.join("logs");
    fs::create_dir_all(dir.join("sub")).unwrap();
    // Targets a traversal would reach, each with a recognisable content.
    write_file(&base.0.join("secret.log"), b"TOPSECRET-outside\n");
    write_file(&dir.join(".hidden.log"), b"HIDDEN-content\n");
    write_file(&dir.join("a b.log"), b"SPACE-content\n");
    write_file(&dir.join("sub").join("x.log"), b"SUBDIR-content\n");
    let long129 = "a".repeat(129);
    write_file(&dir.join(format!("{long129}.log")), b"LONG-content\n");
    write_file(&dir.join("ok.log"), b"OK-content\n");
    let d = Daemon::start_in(&dir, FAST);

    let ids = [
        "..",
        "%2e%2e",
        "%2E%2E",
        ".%2e",
        "..%2Fsecret",
        "%2e%2e%2fsecret",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "../secret",
        "..%5csecret",
        ".hidden",
        "%2ehidden",
        long129.as_str(),
        "a%20b",
        "a+b",
        "sub%2Fx",
        "sub/x",
        "ok%00",
        "ok%00.txt",
        "%00",
        "ok%0a",
        "%C3%A9t%C3%A9",
        ".",
    ];
    let leaked = |body: &str| {
        [
            "TOPSECRET",
            "HIDDEN",
            "SPACE-content",
            "SUBDIR",
            "LONG-content",
            "root:",
        ]
        .iter()
        .find(|m| body.contains(*m))
        .copied()
    };
    for id in ids {
        for target in [format!("/api/logs/{id}"), format!("/api/logs/{id}/stream")] {
            let r = d.get(&target);
            assert_eq!(r.status, 404, "{target}: {} {}", r.status, r.text());
            assert_error(&r, 404, &target);
            assert_eq!(
                leaked(&r.text()),
                None,
                "{target} leaked content: {}",
                r.text()
            );
        }
    }
    // Malformed percent-encoding: 400 or 404, never a log.
    for id in ["ok%", "ok%zz", "ok%2"] {
        for target in [format!("/api/logs/{id}"), format!("/api/logs/{id}/stream")] {
            let r = d.get(&target);
            assert!(
                r.status == 404 || r.status == 400,
                "{target}: {} {}",
                r.status,
                r.text()
            );
            assert_eq!(
                leaked(&r.text()),
                None,
                "{target} leaked content: {}",
                r.text()
            );
        }
    }
    // The real one still works.
    assert_json(&d.get("/api/logs/ok"), 200, "ok");
    // Files whose names are not valid ids are not offered in the list either.
    let list = d.get("/api/logs").text();
    let listed: Vec<String> = json_array_objects(&list)
        .iter()
        .filter_map(|o| json_str_field(o, "log_id"))
        .collect();
    assert!(listed.contains(&"ok".to_string()), "{list}");
    for bad in [".hidden", "a b", long129.as_str()] {
        assert!(
            !listed.iter().any(|l| l == bad),
            "list offers invalid id {bad:?}: {list}"
        );
    }
}

#[test]
fn id_of_exactly_128_chars_works() {
    let d = Daemon::start(FAST);
    let unit = "Ab9._-xY";
    let id: String = unit.repeat(16);
    assert_eq!(id.len(), 128);
    let path = d.log_dir.join(format!("{id}.log"));
    write_file(&path, b"line128\n");
    let r = d.get(&format!("/api/logs/{id}"));
    assert_json(&r, 200, "128-char id");
    check_log_object(&r.text(), &id, &path);
    let mut s = SseStream::open(&d, &format!("/api/logs/{id}/stream"), &[]);
    assert_eq!(s.head.status, 200, "{:?}", s.head);
    let ev = s.next_event(Duration::from_secs(2)).expect("first event");
    assert_eq!(
        (ev.id.as_deref(), ev.data.as_deref()),
        (Some("8"), Some("line128"))
    );
}
