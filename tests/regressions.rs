//! One test per defect, named after what it guards; each failed before its fix.

mod common;

use std::time::Duration;

use common::followers::{assert_turns_bounded, expect_followers, open_followers, open_targets};
use common::raw::frames;
use common::*;

/// `?from=` (or `Last-Event-ID`) past the end of a finished log answered 204,
/// and EventSource then stopped for good. SPEC section 3: past the end means
/// the file was replaced: replay it from 0.
#[test]
fn resume_past_the_end_of_a_finished_log_replays_it_from_zero() {
    let d = Daemon::start(&[]);
    let path = d.log_dir.join("done.log");
    std::fs::write(&path, b"x\nlast\n").expect("write");
    let mut perms = std::fs::metadata(&path).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o444);
    std::fs::set_permissions(&path, perms).expect("chmod");
    for (target, header) in [
        ("/api/logs/done/stream?from=600", None),
        ("/api/logs/done/stream", Some("Last-Event-ID: 9")),
    ] {
        let headers: Vec<&str> = header.into_iter().collect();
        let mut s = SseStream::open(&d, target, &headers);
        assert_eq!(s.head.status, 200, "{target} {headers:?}");
        let events = s.read_to_close(Duration::from_secs(5));
        let data: Vec<&str> = events
            .iter()
            .map(|e| e.data.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(data.len(), 3, "{target}: {data:?}");
        assert_eq!(&data[..2], ["x", "last"], "{target}");
        assert!(data[2].contains("\"finished\""), "{target}: {data:?}");
    }
}

// ---------------------------------------------------------------------------
// Stalled clients, failed scans, the workers' state directory, big tails.

/// A log file of about `bytes` bytes of numbered lines (0644: a foreign log
/// still being written, so its streams never end on their own).
fn write_big_log(path: &std::path::Path, bytes: usize) {
    let mut content = Vec::with_capacity(bytes + 200);
    let mut i = 0u64;
    while content.len() < bytes {
        content.extend_from_slice(format!("line {i:09} {}\n", "y".repeat(80)).as_bytes());
        i += 1;
    }
    std::fs::write(path, &content).expect("write big log");
    let mut perms = std::fs::metadata(path).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(path, perms).expect("chmod");
}

/// Sends a stream request on `sock` and reads nothing, ever.
fn send_stream_request(sock: &mut std::net::TcpStream, id: &str) {
    use std::io::Write;
    let req = format!("GET /api/logs/{id}/stream HTTP/1.1\r\nHost: test\r\n\r\n");
    sock.write_all(req.as_bytes()).expect("write request");
}

/// Reads `sock` until the daemon closes it (EOF or reset), at most `limit`;
/// a read that waits 3 s for a byte means the connection is still open.
fn closed_by_peer(sock: &mut std::net::TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    let deadline = std::time::Instant::now() + limit;
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut buf = vec![0u8; 1 << 16];
    while std::time::Instant::now() < deadline {
        match sock.read(&mut buf) {
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
    false
}

/// Streams had no stall timeout: a client that connected, asked for a big
/// log and then read nothing held its connection, its stream and the
/// daemon's attention forever. SPEC section 1, `--stall-timeout-ms`: a stream
/// whose socket has accepted no byte for that long is closed. A client that
/// reads slowly but steadily (64 KiB every 200 ms) is not stalled and keeps
/// its stream. Both clients have small receive buffers, so the daemon's
/// writes to them really wait on their reads.
#[test]
fn a_client_that_reads_nothing_is_dropped_after_the_stall_timeout() {
    use std::io::Read;
    let d = Daemon::try_start(&["--stall-timeout-ms", "1000", "--poll-interval-ms", "20"])
        .unwrap_or_else(|why| panic!("{why}"));
    write_big_log(&d.log_path("big"), 20 << 20);
    let mut silent = d.connect_small(4096);
    send_stream_request(&mut silent, "big");
    let mut steady = d.connect_small(64 << 10);
    send_stream_request(&mut steady, "big");
    assert!(
        eventually(Duration::from_secs(5), || d.metric("logcast_streams_open")
            == Some(2.0)),
        "streams_open {:?}",
        d.metric("logcast_streams_open")
    );
    let (steady_reads, streams_at_end) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut buf = vec![0u8; 64 << 10];
            let mut reads = Vec::new();
            let start = std::time::Instant::now();
            steady
                .set_read_timeout(Some(Duration::from_secs(3)))
                .expect("timeout");
            while start.elapsed() < Duration::from_secs(4) {
                std::thread::sleep(Duration::from_millis(200));
                reads.push(steady.read(&mut buf).map_err(|e| e.kind()));
            }
            // Still reading steadily: the daemon must still count this stream.
            (reads, d.metric("logcast_streams_open"))
        });
        let dropped = eventually(Duration::from_secs(10), || {
            d.metric("logcast_streams_open") == Some(1.0)
        });
        let result = reader.join().expect("steady reader");
        assert!(
            dropped,
            "the silent client was not dropped: streams_open {:?}",
            d.metric("logcast_streams_open")
        );
        result
    });
    for (i, r) in steady_reads.iter().enumerate() {
        assert!(
            matches!(r, Ok(n) if *n > 0),
            "steady reader, read {i}: {r:?} (all: {steady_reads:?})"
        );
    }
    assert!(
        streams_at_end.is_some_and(|n| n >= 1.0),
        "the steady reader's stream was closed: streams_open {streams_at_end:?} after 4 s"
    );
    assert!(
        closed_by_peer(&mut silent, Duration::from_secs(20)),
        "the silent client's connection is still open"
    );
}

/// A stream of a deleted log whose client read nothing kept the log's
/// descriptor (of a file that no longer exists) for as long as the client
/// stayed connected: the `end` it was sent could not be flushed, so the
/// stream, its tail and the descriptor stayed. SPEC section 1
/// `--stall-timeout-ms`: the stalled stream is closed, and with it the last
/// hold on the file. Checked for a log removed by `DELETE /api/logs/<id>`
/// (whose streams are ended at once, SPEC section 3) and for one removed by
/// another program.
#[test]
fn a_stalled_client_of_a_deleted_log_does_not_hold_its_file() {
    let d = Daemon::try_start(&["--stall-timeout-ms", "1000", "--poll-interval-ms", "20"])
        .unwrap_or_else(|why| panic!("{why}"));
    for (id, how) in [("by-api", "DELETE"), ("by-rm", "rm")] {
        let path = d.log_path(id);
        write_big_log(&path, 20 << 20);
        let mut silent = d.connect_small(4096);
        send_stream_request(&mut silent, id);
        assert!(
            eventually(Duration::from_secs(5), || d.open_fds_under(&d.log_dir) > 0),
            "{how}: the daemon never opened the log"
        );
        std::thread::sleep(Duration::from_millis(300));
        if how == "DELETE" {
            let r = d.request_with("DELETE", &format!("/api/logs/{id}"), &[]);
            assert_eq!(r.status, 204, "DELETE: {r:?}");
            assert!(!path.exists(), "DELETE left the file");
        } else {
            std::fs::remove_file(&path).expect("rm");
        }
        assert!(
            eventually(Duration::from_secs(10), || d.open_fds_under(&d.log_dir)
                == 0),
            "{how}: the daemon still holds {} descriptors under the log dir (the deleted log)",
            d.open_fds_under(&d.log_dir)
        );
        drop(silent);
    }
}

/// A scan that a new stream needs before its first line (`?tail=n` reading
/// back from the end, or a resume point checked against the file) can fail on
/// a file that opens but cannot be read. The failure must not leave the log's
/// tail behind, half made, for the next stream of the same id to join: once
/// the name is a real file, a stream of it gets its lines. The unreadable
/// file is a symbolic link to `/sys/class/net/lo/speed` (a 4096-byte regular
/// file whose reads fail with EINVAL); the test is skipped, saying so, where
/// that file is missing or readable.
#[test]
fn a_failed_open_scan_leaves_no_dead_tail() {
    let target = std::path::Path::new("/sys/class/net/lo/speed");
    let usable = std::fs::metadata(target).is_ok_and(|m| m.is_file() && m.len() > 0)
        && std::fs::read(target).is_err();
    if !usable {
        eprintln!("skipped: {} is missing or readable here", target.display());
        return;
    }
    // `--watch poll` too: there no change notification can stumble on a
    // tail left behind and repair it by chance.
    for watch in ["auto", "poll"] {
        failed_scan_then_real_file(target, watch);
    }
}

fn failed_scan_then_real_file(target: &std::path::Path, watch: &str) {
    use std::io::Write;
    let d = Daemon::start(&["--poll-interval-ms", "20", "--watch", watch]);
    let path = d.log_path("flaky");
    std::os::unix::fs::symlink(target, &path).expect("symlink");
    for req in [
        "/api/logs/flaky/stream?tail=1",
        "/api/logs/flaky/stream?from=5",
        "/api/logs/flaky/stream?tail=1",
    ] {
        let mut s = d.connect();
        write!(
            s,
            "GET {req} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let head = read_response(&mut s, false);
        let _ = closed_by_peer(&mut s, Duration::from_secs(2));
        eprintln!(
            "--watch {watch}: {req} on an unreadable file: {:?}",
            head.map(|r| r.status)
        );
    }
    std::thread::sleep(Duration::from_millis(300));

    // The name becomes a real, finished log.
    let aside = d.log_dir.join(".flaky.tmp");
    std::fs::write(&aside, b"one\ntwo\nthree\n").expect("write");
    make_read_only(&aside);
    std::fs::rename(&aside, &path).expect("rename over the link");

    for (req, want) in [
        ("/api/logs/flaky/stream?tail=1", &["three"][..]),
        ("/api/logs/flaky/stream", &["one", "two", "three"][..]),
    ] {
        let mut s = SseStream::open(&d, req, &[]);
        assert_eq!(s.head.status, 200, "--watch {watch}: {req}: {:?}", s.head);
        let events = s.read_to_close(Duration::from_secs(5));
        let lines: Vec<&str> = events
            .iter()
            .filter(|e| e.event.is_none())
            .filter_map(|e| e.data.as_deref())
            .collect();
        assert_eq!(lines, want, "--watch {watch}: {req}: {events:?}");
        let end = events.last().expect("events");
        assert_eq!(
            end.event.as_deref(),
            Some("end"),
            "--watch {watch}: {req}: {events:?}"
        );
        let data = end.data.as_deref().unwrap_or("");
        assert_eq!(
            json_raw_field(data, "lines").as_deref(),
            Some("3"),
            "--watch {watch}: {req}: {data}"
        );
    }
}

/// Entries of `dir` (names), sorted.
fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Checks a worker state directory: a directory, 0700, owned by this user.
fn assert_private_dir(path: &std::path::Path, what: &str) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).expect("state dir metadata");
    assert!(
        meta.is_dir(),
        "{what}: {} is not a directory",
        path.display()
    );
    assert_eq!(
        meta.mode() & 0o777,
        0o700,
        "{what}: mode of {}",
        path.display()
    );
    assert_eq!(
        meta.uid(),
        rustix::process::geteuid().as_raw(),
        "{what}: owner of {}",
        path.display()
    );
}

/// With `--workers`, the supervisor kept the workers' state in
/// `/tmp/logcast-<pid>`: a predictable name in a shared directory, created
/// with the default mode (readable by all; and a local user could create it
/// first and feed the workers' figures). The state directory belongs in
/// `$XDG_RUNTIME_DIR` when set, else under `$TMPDIR` with an unpredictable
/// name; mode 0700, owned by the daemon's user, either way.
#[test]
fn workers_keep_their_state_in_a_private_directory() {
    use std::os::unix::fs::PermissionsExt;
    let (logs, xdg, tmpdir) = (
        temp_dir("state-logs"),
        temp_dir("state-xdg"),
        temp_dir("state-tmpdir"),
    );
    let _cleanup = RemoveOnDrop(vec![logs.clone(), xdg.clone(), tmpdir.clone()]);
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).expect("chmod");

    // With XDG_RUNTIME_DIR, and no TMPDIR (so the old place is /tmp).
    let how = Launch {
        env: vec![("XDG_RUNTIME_DIR".into(), xdg.to_string_lossy().into_owned())],
        env_remove: vec!["TMPDIR".into()],
        ..Launch::default()
    };
    let (mut d, stderr) =
        Daemon::launch(&logs, &["--workers", "2"], &how).unwrap_or_else(|why| panic!("{why}"));
    let old = std::path::PathBuf::from(format!("/tmp/logcast-{}", d.pid()));
    let found = eventually(Duration::from_secs(5), || {
        entries(&xdg).iter().any(|n| n.starts_with("logcast"))
    });
    assert!(
        found,
        "no state directory named logcast* in XDG_RUNTIME_DIR: {:?}; {} exists: {}; stderr {:?}",
        entries(&xdg),
        old.display(),
        old.exists(),
        stderr.text()
    );
    for n in entries(&xdg).iter().filter(|n| n.starts_with("logcast")) {
        assert_private_dir(&xdg.join(n), "under XDG_RUNTIME_DIR");
    }
    assert!(!old.exists(), "{} was created", old.display());
    let _ = d.terminate(Duration::from_secs(10));
    drop(d);

    // Without XDG_RUNTIME_DIR: under TMPDIR, not named just logcast-<pid>.
    let how = Launch {
        env: vec![("TMPDIR".into(), tmpdir.to_string_lossy().into_owned())],
        env_remove: vec!["XDG_RUNTIME_DIR".into()],
        ..Launch::default()
    };
    let (mut d, stderr) =
        Daemon::launch(&logs, &["--workers", "2"], &how).unwrap_or_else(|why| panic!("{why}"));
    let pid = d.pid();
    let found = eventually(Duration::from_secs(5), || !entries(&tmpdir).is_empty());
    assert!(
        found,
        "no state directory under TMPDIR; stderr {:?}",
        stderr.text()
    );
    let in_tmp = entries(&tmpdir);
    assert_eq!(in_tmp.len(), 1, "under TMPDIR: {in_tmp:?}");
    assert_ne!(
        in_tmp[0],
        format!("logcast-{pid}"),
        "a predictable name under TMPDIR"
    );
    assert_private_dir(&tmpdir.join(&in_tmp[0]), "under TMPDIR");
    let _ = d.terminate(Duration::from_secs(10));
}

/// `?tail=1` on a big finished log: the `end` that follows the last line
/// carries the whole file's `lines` and `bytes` (SPEC section 3), counted in
/// bounded pieces per reactor turn; the count must still be exact, and the
/// daemon keeps answering other connections while it counts (every
/// `/healthz` meanwhile is 200; no timing is asserted).
#[test]
fn end_event_counts_lines_of_a_big_log_opened_with_tail() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let d = Daemon::start(&["--poll-interval-ms", "20"]);
    let path = d.log_path("huge");
    let mut content = Vec::with_capacity(51 << 20);
    let mut lines = 0u64;
    while content.len() < 50 << 20 {
        content.extend_from_slice(
            format!("{lines:08} {}\n", "z".repeat((lines % 97) as usize)).as_bytes(),
        );
        lines += 1;
    }
    content.extend_from_slice(b"the last line\n");
    lines += 1;
    let bytes = content.len() as u64;
    std::fs::write(&path, &content).expect("write");
    drop(content);
    make_read_only(&path);

    let stop = AtomicBool::new(false);
    let (events, statuses) = std::thread::scope(|scope| {
        let health = scope.spawn(|| {
            let mut statuses = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                statuses.push(d.get("/healthz").status);
                std::thread::sleep(Duration::from_millis(5));
            }
            statuses
        });
        let mut s = SseStream::open(&d, "/api/logs/huge/stream?tail=1", &[]);
        assert_eq!(s.head.status, 200, "{:?}", s.head);
        let events = s.read_to_close(Duration::from_secs(60));
        stop.store(true, Ordering::Relaxed);
        (events, health.join().expect("healthz thread"))
    });
    assert!(!statuses.is_empty(), "no /healthz answered");
    assert!(
        statuses.iter().all(|&s| s == 200),
        "/healthz statuses while counting: {statuses:?}"
    );
    assert_eq!(events.len(), 2, "want the last line then end: {events:?}");
    assert_eq!(
        events[0].data.as_deref(),
        Some("the last line"),
        "{:?}",
        events[0]
    );
    assert_eq!(events[0].id, Some(bytes.to_string()), "{:?}", events[0]);
    assert_eq!(events[1].event.as_deref(), Some("end"), "{:?}", events[1]);
    let data = events[1].data.as_deref().unwrap_or("");
    assert_eq!(
        json_str_field(data, "reason").as_deref(),
        Some("finished"),
        "{data}"
    );
    assert_eq!(
        json_raw_field(data, "lines"),
        Some(lines.to_string()),
        "{data}"
    );
    assert_eq!(
        json_raw_field(data, "bytes"),
        Some(bytes.to_string()),
        "{data}"
    );
}

/// Issue 11: each stream catching up got up to 1 MiB of file per pass and
/// the pass as a whole had no budget, so many clients resuming at once (a
/// reconnect storm) meant gigabytes read in one turn while every other
/// connection waited. Now one budget bounds a turn's stream work: the
/// daemon reports the most it ever read in one turn (a gauge, not a
/// timing), which stays near the budget however many streams catch up.
#[test]
fn a_reconnect_storm_reads_a_bounded_amount_per_turn() {
    let d = Daemon::start(&["--poll-interval-ms", "20"]);
    let path = d.log_path("storm");
    write_big_log(&path, 8 << 20);
    let size = std::fs::metadata(&path).expect("meta").len();
    let clients: Vec<std::net::TcpStream> = (0..40)
        .map(|_| {
            use std::io::Write;
            let mut s = d.connect();
            let req = "GET /api/logs/storm/stream HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 0\r\n\r\n";
            s.write_all(req.as_bytes()).expect("write request");
            s
        })
        .collect();
    // Every client reads the whole log, all at once.
    std::thread::scope(|scope| {
        for mut s in clients {
            scope.spawn(move || {
                use std::io::Read;
                s.set_read_timeout(Some(Duration::from_secs(30)))
                    .expect("timeout");
                let mut buf = vec![0u8; 1 << 16];
                let mut tail = Vec::new();
                let want = format!("id: {size}\n");
                loop {
                    let n = s.read(&mut buf).expect("read");
                    assert!(n > 0, "closed before the end");
                    tail.extend_from_slice(&buf[..n]);
                    let keep = tail.len().saturating_sub(64);
                    if String::from_utf8_lossy(&tail).contains(&want) {
                        break;
                    }
                    tail.drain(..keep);
                }
            });
        }
    });
    let metrics = d.get("/metrics").text();
    let max: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("logcast_turn_read_bytes_max "))
        .and_then(|v| v.trim().parse().ok())
        .expect("logcast_turn_read_bytes_max in /metrics");
    // The budget is 1 MiB; a turn may overshoot it by a few 256 KiB pieces.
    assert!(max > 0, "nothing counted: {metrics}");
    assert!(max <= 2 << 20, "{max} bytes read in one turn");
}

/// Every worker published its figures once a second with a count of its
/// open descriptors made by listing `/proc/self/fd`: ~10 ms of CPU a second
/// with 15,000 streams, over half a core for 64 workers at a million
/// streams, where it had been taken for the cost of heartbeats. Two idle
/// workers holding 6,000 streams each now spend a small fraction of that.
#[test]
fn idle_workers_with_many_streams_do_not_list_their_descriptors_every_second() {
    raise_own_nofile_limit();
    let d = Daemon::start(&["--workers", "2", "--heartbeat-interval-ms", "600000"]);
    write_file(&d.log_path("idle"), b"");
    let _streams = followers::open_followers(&d, &vec!["idle".to_string(); 12_000], 250);
    let workers = children(d.pid());
    assert_eq!(workers.len(), 2, "workers of {}: {workers:?}", d.pid());
    std::thread::sleep(Duration::from_secs(2));
    let before: Vec<u64> = workers.iter().map(|&w| cpu_ns(w)).collect();
    std::thread::sleep(Duration::from_secs(5));
    for (&w, b) in workers.iter().zip(before) {
        let used_ms = (cpu_ns(w) - b) as f64 / 1e6;
        assert!(
            used_ms < 10.0,
            "worker {w} used {used_ms:.1} ms of CPU in 5 idle seconds"
        );
    }
}

/// Every worker replaced its snapshot in the state directory once a second
/// (unlink, create, rename): three changes to the directory, under its lock,
/// which 64 workers on two busy cores queued for (an `openat` blocked a
/// reactor for 761 ms at a million streams). Each worker now rewrites its
/// own file in place: after start the directory does not change, while the
/// snapshots still do.
#[test]
fn workers_publish_without_changing_the_state_directory() {
    use std::os::unix::fs::MetadataExt;
    let (logs, xdg) = (temp_dir("publish-logs"), temp_dir("publish-xdg"));
    let _cleanup = RemoveOnDrop(vec![logs.clone(), xdg.clone()]);
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let how = Launch {
        env: vec![("XDG_RUNTIME_DIR".into(), xdg.to_string_lossy().into_owned())],
        ..Launch::default()
    };
    let (mut d, stderr) =
        Daemon::launch(&logs, &["--workers", "2"], &how).unwrap_or_else(|why| panic!("{why}"));
    let state = || {
        entries(&xdg)
            .into_iter()
            .find(|n| n.starts_with("logcast"))
            .map(|n| xdg.join(n))
    };
    let published = eventually(Duration::from_secs(5), || {
        state().is_some_and(|dir| {
            let names = entries(&dir);
            names.contains(&"worker-0".to_string()) && names.contains(&"worker-1".to_string())
        })
    });
    assert!(
        published,
        "no snapshots of both workers; stderr {:?}",
        stderr.text()
    );
    let dir = state().expect("state dir");
    let snapshot_mtime = || {
        std::fs::metadata(dir.join("worker-0"))
            .map(|m| (m.mtime(), m.mtime_nsec()))
            .expect("worker-0")
    };
    let dir_before = std::fs::metadata(&dir).expect("state dir");
    let (names_before, snapshot_before) = (entries(&dir), snapshot_mtime());
    std::thread::sleep(Duration::from_millis(3_500));
    let dir_after = std::fs::metadata(&dir).expect("state dir");
    assert_eq!(entries(&dir), names_before, "files in the state directory");
    assert_eq!(
        (
            dir_after.mtime(),
            dir_after.mtime_nsec(),
            dir_after.ctime_nsec()
        ),
        (
            dir_before.mtime(),
            dir_before.mtime_nsec(),
            dir_before.ctime_nsec()
        ),
        "the state directory changed while the workers only published"
    );
    assert_ne!(
        snapshot_mtime(),
        snapshot_before,
        "worker-0 stopped publishing"
    );
    let _ = d.terminate(Duration::from_secs(10));
}

/// A quiet log lets its descriptor go at a heartbeat, however many streams
/// follow it. The end of a heartbeat burst cut over several turns (5,000
/// streams: more than one turn's 2,048 writes) used to look at the file
/// again, as the end of a line's fan-out must, and so reopened it every
/// heartbeat interval.
#[test]
fn a_quiet_log_with_more_streams_than_a_turn_writes_lets_its_descriptor_go() {
    raise_own_nofile_limit();
    let d = Daemon::start(&["--heartbeat-interval-ms", "1000"]);
    write_file(&d.log_path("quiet"), b"");
    let _streams = followers::open_followers(&d, &vec!["quiet".to_string(); 5_000], 250);
    assert!(
        eventually(Duration::from_secs(5), || d.open_fds_under(&d.log_dir) == 0),
        "the quiet log's file is still open after its heartbeats"
    );
    let deadline = std::time::Instant::now() + Duration::from_millis(2_500);
    while std::time::Instant::now() < deadline {
        assert_eq!(
            d.open_fds_under(&d.log_dir),
            0,
            "the quiet log's file was opened again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// One turn's writes, shared.

/// `/api/events` kept a write bound of its own beside the engine's, so the
/// turn in which a log finished (its last line and `end` to 3,000 streams,
/// `finished` to 3,000 subscribers) wrote to 4,096 sockets. A turn's 2,048
/// writes are shared by both, and every stream and subscriber still gets
/// its events, once.
#[test]
fn a_turn_shares_its_writes_between_log_streams_and_directory_subscribers() {
    const EACH: usize = 3_000;
    raise_own_nofile_limit();
    let d = Daemon::start(&[]);
    let id = d.create_log(8);
    // Subscribers first: one that came after the log finished would never
    // get `finished`. Then the streams, which must be following before the
    // last line for the two to share turns.
    let mut subs = open_targets(&d, &vec!["/api/events".to_string(); EACH], 250);
    let mut streams = open_followers(&d, &vec![id.clone(); EACH], 250);
    let info = d.get(&format!("/api/logs/{id}")).text();
    assert!(
        info.contains("\"writing\": true"),
        "the 8 s log finished before 6,000 connections were open: {info}"
    );
    let finished = format!("event: finished\ndata: {{\"log_id\": \"{id}\"");
    let mut chunk = [0u8; 16384];
    let mut open: Vec<usize> = (0..EACH).collect();
    let mut waiting: Vec<usize> = (0..EACH).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(open.is_empty() && waiting.is_empty()) && std::time::Instant::now() < deadline {
        open.retain(|&j| streams[j].take(&mut chunk));
        waiting.retain(|&j| {
            assert!(subs[j].take(&mut chunk), "subscriber {j}: closed");
            !String::from_utf8_lossy(&subs[j].body).contains(&finished)
        });
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        open.is_empty() && waiting.is_empty(),
        "after 20 s: {} streams not ended, {} subscribers without `finished`",
        open.len(),
        waiting.len()
    );
    for (j, s) in streams.iter().enumerate() {
        let body = String::from_utf8_lossy(&s.body);
        assert_eq!(
            body.matches("event: end\n").count(),
            1,
            "stream {j}: {body}"
        );
        assert!(
            body.contains("\"reason\": \"finished\""),
            "stream {j}: {body}"
        );
    }
    for (j, s) in subs.iter().enumerate() {
        let body = String::from_utf8_lossy(&s.body);
        assert_eq!(body.matches(&finished).count(), 1, "subscriber {j}: {body}");
    }
    assert_turns_bounded(&d, "a log finishing before streams and subscribers");
}

// ---------------------------------------------------------------------------
// Rotation while a batch is held.

/// A log with 1,000 streams batches its lines (one read per 100 ms), and
/// drops its file's watch while a batch is held. When the batch came due
/// just after the file was renamed away (a rotation, before the new file
/// was created), the watch could not be set on the missing path, and that
/// was taken for a full watch table: the tail was polled from then on
/// (here every 60 s), so after the new file's first line, nothing more
/// came. The missing file now waits for the directory to name it again,
/// and the new file is watched once it is read.
#[test]
fn a_rotation_while_a_batch_is_held_keeps_watching_the_new_file() {
    use std::io::Write;
    const STREAMS: usize = 1_000;
    raise_own_nofile_limit();
    let d = Daemon::start(&[
        "--poll-interval-ms",
        "60000",
        "--heartbeat-interval-ms",
        "600000",
    ]);
    let path = d.log_path("rot");
    write_file(&path, b"");
    let mut streams = open_followers(&d, &vec!["rot".to_string(); STREAMS], 250);
    // Three appends within the batch gap: the second is held, and the
    // third, coming while it is held, drops the file's watch.
    let mut old = Vec::new();
    for i in 0..3 {
        let line = format!("old line {i}\n");
        append(&path, line.as_bytes());
        old.extend_from_slice(line.as_bytes());
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::rename(&path, d.log_dir.join("rot.log.1")).expect("rename");
    // The held batch comes due while no file has the name.
    std::thread::sleep(Duration::from_millis(400));
    let mut writer = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .expect("create the new file");
    let mut new = Vec::new();
    for i in 0..5 {
        let line = format!("new line {i}\n");
        writer.write_all(line.as_bytes()).expect("append");
        new.extend_from_slice(line.as_bytes());
        std::thread::sleep(Duration::from_millis(150));
    }
    let reset = "id: 0\nevent: reset\ndata: {\"offset\": 0}\n\n";
    let want = frames(&old, 0) + reset + &frames(&new, 0);
    expect_followers(&mut streams, &want, "1,000 streams of a rotated log");
}

// ---------------------------------------------------------------------------
// State directories of daemons that are gone.

/// A supervisor killed with SIGKILL (an OOM kill, a crash, `kill -9`)
/// cannot remove its state directory, and nothing else did: this machine
/// had 928 of them in /tmp. The next start removes those of processes that
/// are gone, and only those: ours, mode 0700, named as a state directory
/// is, nothing in them changed for ten minutes; a living process's
/// directory and anything else are left alone.
#[test]
fn a_dead_supervisors_state_directory_is_removed_at_the_next_start() {
    use std::os::unix::fs::PermissionsExt;
    let (logs, xdg) = (temp_dir("sweep-logs"), temp_dir("sweep-xdg"));
    let _cleanup = RemoveOnDrop(vec![logs.clone(), xdg.clone()]);
    std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let mut gone = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let dead = gone.id();
    gone.wait().expect("wait for true");
    // Written an hour ago, as a killed supervisor's would be by now.
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let state_dir = |name: &str, mode: u32| {
        let dir = xdg.join(name);
        std::fs::create_dir(&dir).expect("mkdir");
        let file = std::fs::File::create(dir.join("connections")).expect("create");
        file.set_modified(an_hour_ago).expect("set mtime");
        std::fs::File::open(&dir)
            .and_then(|d| d.set_modified(an_hour_ago))
            .expect("set the directory's mtime");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
        dir
    };
    let leftover = state_dir(&format!("logcast-{dead}-0123456789abcdef"), 0o700);
    let living = state_dir(
        &format!("logcast-{}-0123456789abcdef", std::process::id()),
        0o700,
    );
    let open_to_others = state_dir(&format!("logcast-{dead}-fedcba9876543210"), 0o755);
    let other_name = state_dir(&format!("logcast-{dead}-notours"), 0o700);
    // Gone from here, but written a moment ago: perhaps a supervisor in
    // another pid namespace that shares this directory.
    let recent = xdg.join(format!("logcast-{dead}-00000000000000aa"));
    std::fs::create_dir(&recent).expect("mkdir");
    std::fs::write(recent.join("connections"), b"3\n").expect("write");
    std::fs::set_permissions(&recent, std::fs::Permissions::from_mode(0o700)).expect("chmod");

    let how = Launch {
        env: vec![("XDG_RUNTIME_DIR".into(), xdg.to_string_lossy().into_owned())],
        ..Launch::default()
    };
    let (mut d, stderr) =
        Daemon::launch(&logs, &["--workers", "2"], &how).unwrap_or_else(|why| panic!("{why}"));
    let own = format!("logcast-{}-", d.pid());
    let started = eventually(Duration::from_secs(5), || {
        entries(&xdg).iter().any(|n| n.starts_with(&own))
    });
    assert!(
        started,
        "no state directory of its own: {:?}",
        entries(&xdg)
    );
    assert!(
        !leftover.exists(),
        "the dead supervisor's state directory is still there: {:?}; stderr {}",
        entries(&xdg),
        stderr.text()
    );
    for kept in [&living, &open_to_others, &other_name, &recent] {
        assert!(kept.exists(), "{} was removed", kept.display());
    }
    assert!(living.join("connections").exists());
    let _ = d.terminate(Duration::from_secs(10));
}
