//! `--workers N` (issue 7): a supervisor and N single-threaded worker
//! processes sharing one port with `SO_REUSEPORT`. These tests check, over
//! real sockets and /proc, that connections spread over the workers, that a
//! log written by one worker finishes the streams held by the others, that
//! `/metrics` and `subscribers` describe the whole daemon from any worker, that
//! a killed worker is restarted while the others keep serving, that SIGTERM
//! stops every worker gracefully, and that `--workers auto` means one per core.
//!
//! Which worker served a connection is learnt from the `X-Logcast-Worker`
//! header of `GET /healthz`; to know which worker holds a stream, the test
//! first asks `/healthz` on a keep-alive connection and then sends the stream
//! request on that same connection.
//!
//! (A taken port with `--workers 2` is covered in tests/lifecycle.rs.)

mod common;

use common::{
    children, eventually, line_events, read_response, signal, wait_timeout, Daemon, Event,
    SseStream,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// The worker index a process was started with (`LOGCAST_WORKER` in its environment).
fn worker_index_of_pid(pid: u32) -> Option<usize> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("LOGCAST_WORKER="))
        .and_then(|v| v.parse().ok())
}

/// True while `pid` is a live process (absent or zombie counts as gone).
fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// The `X-Logcast-Worker` index of a `/healthz` response.
fn worker_of(r: &common::Response) -> usize {
    assert_eq!(r.status, 200, "healthz status");
    r.header("x-logcast-worker")
        .unwrap_or_else(|| panic!("no X-Logcast-Worker header in {:?}", r.headers))
        .parse()
        .expect("X-Logcast-Worker is a number")
}

/// One keep-alive request on an existing connection.
fn ask(s: &mut TcpStream, method: &str, target: &str) -> common::Response {
    let req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write request");
    read_response(s, method == "HEAD").expect("response")
}

/// A fresh connection and the index of the worker that accepted it. A
/// connection queued on a worker's listener as that worker dies is reset
/// by the kernel (as any client would, it is tried again).
fn connect_known(d: &Daemon) -> (TcpStream, usize) {
    for _ in 0..20 {
        let mut s = d.connect();
        let req = "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
        if s.write_all(req.as_bytes()).is_ok() {
            if let Some(r) = read_response(&mut s, false) {
                return (s, worker_of(&r));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no worker answered /healthz on 20 fresh connections");
}

/// `GET target` on a fresh connection whose worker is known first.
fn get_on_known(d: &Daemon, target: &str) -> (usize, common::Response) {
    let (mut s, w) = connect_known(d);
    (w, ask(&mut s, "GET", target))
}

fn metric_value(body: &str, name: &str) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n == name).then(|| v.parse().ok()).flatten()
    })
}

/// `logcast_streams_open` read on a fresh connection, with the worker that answered.
fn streams_open(d: &Daemon) -> (usize, u64) {
    let (w, r) = get_on_known(d, "/metrics");
    assert_eq!(r.status, 200);
    let v = metric_value(&r.text(), "logcast_streams_open").expect("logcast_streams_open");
    (w, v as u64)
}

/// `subscribers` of a log read on a fresh connection, with the worker that answered.
fn subscribers(d: &Daemon, id: &str) -> (usize, u64) {
    let (w, r) = get_on_known(d, &format!("/api/logs/{id}"));
    assert_eq!(r.status, 200, "GET /api/logs/{id}: {}", r.text());
    let v = common::json_raw_field(&r.text(), "subscribers").expect("subscribers field");
    (w, v.parse().expect("subscribers is a number"))
}

/// Reads `probe` on fresh connections until every worker in `0..workers`
/// has answered `want` with no other answer since (snapshots are published
/// every second, so a sibling's figure may lag by up to ~1 s), then checks
/// 3 reads per worker more all give `want`.
fn converge_everywhere(
    what: &str,
    workers: usize,
    want: u64,
    limit: Duration,
    mut probe: impl FnMut() -> (usize, u64),
) {
    let start = Instant::now();
    let mut agreeing = BTreeSet::new();
    let mut last = Vec::new();
    while agreeing.len() < workers {
        assert!(
            start.elapsed() < limit,
            "{what}: not {want} from every worker within {limit:?}; agreeing workers {agreeing:?}, \
             last answers (worker, value) {last:?}"
        );
        let (w, v) = probe();
        last.push((w, v));
        if last.len() > 12 {
            last.remove(0);
        }
        if v == want {
            agreeing.insert(w);
        } else {
            agreeing.clear();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Settled: any worker now says the same.
    for _ in 0..3 * workers {
        let (w, v) = probe();
        assert_eq!(
            v, want,
            "{what}: worker {w} answered {v} after every worker agreed on {want}"
        );
    }
}

/// A stream and the worker that holds it.
struct Sse {
    stream: SseStream,
    worker: usize,
}

impl Sse {
    fn next_event(&mut self, limit: Duration) -> Option<Event> {
        self.stream.next_event(limit)
    }

    /// Every event until the server closes the connection (or `limit` passes:
    /// then the last element is not an end/shutdown event, and the caller's
    /// assertions say so).
    fn read_to_close(&mut self, limit: Duration) -> Vec<Event> {
        self.stream.read_to_close(limit)
    }
}

/// Opens a stream on a fresh connection, learning its worker first.
fn open_stream(d: &Daemon, target: &str) -> Sse {
    let (sock, worker) = connect_known(d);
    let stream = SseStream::on(sock, target, &[]);
    assert_eq!(
        stream.head.status, 200,
        "stream {target} on worker {worker}"
    );
    assert_eq!(
        stream.head.header("content-type"),
        Some("text/event-stream")
    );
    Sse { stream, worker }
}

/// Opens streams of `target` until there are at least `min` of them and they
/// are held by at least `min_workers` workers, one of them different from
/// `other_than` when given (bounded: the kernel hashes each new connection).
fn open_spread_streams(
    d: &Daemon,
    target: &str,
    min: usize,
    min_workers: usize,
    other_than: Option<usize>,
) -> Vec<Sse> {
    let mut streams: Vec<Sse> = Vec::new();
    for _ in 0..200 {
        let workers: BTreeSet<usize> = streams.iter().map(|s| s.worker).collect();
        let foreign = other_than.is_none_or(|w| workers.iter().any(|&x| x != w));
        if streams.len() >= min && workers.len() >= min_workers && foreign {
            return streams;
        }
        streams.push(open_stream(d, target));
    }
    let spread: Vec<usize> = streams.iter().map(|s| s.worker).collect();
    panic!("200 connections did not spread over {min_workers} workers: {spread:?}");
}

/// (id, data) of every line of a finished file, as the stream must send them.
fn expected_events(content: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in content.iter().enumerate() {
        if *b == b'\n' {
            let mut line = &content[start..i];
            if line.ends_with(b"\r") {
                line = &line[..line.len() - 1];
            }
            out.push((
                (i + 1).to_string(),
                String::from_utf8_lossy(line).into_owned(),
            ));
            start = i + 1;
        }
    }
    assert_eq!(start, content.len(), "finished log ends with a newline");
    out
}

fn count_by_worker(streams: &[Sse]) -> BTreeMap<usize, usize> {
    let mut m = BTreeMap::new();
    for s in streams {
        *m.entry(s.worker).or_insert(0) += 1;
    }
    m
}

// ---------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------

#[test]
fn connections_spread_over_three_worker_processes() {
    let d = Daemon::start(&["--workers", "3"]);
    let kids = children(d.pid());
    assert_eq!(kids.len(), 3, "supervisor {} children {kids:?}", d.pid());
    let mut indexes: Vec<usize> = kids
        .iter()
        .map(|&p| worker_index_of_pid(p).unwrap_or_else(|| panic!("pid {p}: no LOGCAST_WORKER")))
        .collect();
    indexes.sort();
    assert_eq!(indexes, vec![0, 1, 2], "worker indexes of the children");

    let mut seen = BTreeMap::new();
    for _ in 0..60 {
        let r = d.get("/healthz");
        assert_eq!(r.body, b"ok");
        *seen.entry(worker_of(&r)).or_insert(0) += 1;
    }
    assert!(
        seen.keys().all(|&w| w < 3),
        "worker index out of range: {seen:?}"
    );
    assert!(
        seen.len() >= 2,
        "60 connections all served by one worker: {seen:?}"
    );
    // Still exactly three workers.
    assert_eq!(children(d.pid()).len(), 3);
}

#[test]
fn a_log_written_by_one_worker_ends_the_streams_held_by_the_others() {
    let d = Daemon::start(&[
        "--workers",
        "3",
        "--write-interval-ms",
        "50",
        "--poll-interval-ms",
        "20",
    ]);
    // Create it on a connection whose worker is known: that worker writes it.
    let (mut s, writer) = connect_known(&d);
    let r = ask(&mut s, "POST", "/api/logs?duration=2");
    assert_eq!(r.status, 201, "create: {}", r.text());
    let id = common::json_str_field(&r.text(), "log_id").expect("log_id");
    drop(s);

    let target = format!("/api/logs/{id}/stream");
    let mut streams = open_spread_streams(&d, &target, 12, 2, Some(writer));
    let spread = count_by_worker(&streams);
    // While the writer runs, the file is writable: these streams saw it live.
    let mode = std::fs::metadata(d.log_path(&id))
        .unwrap()
        .permissions()
        .mode();
    assert!(
        mode & 0o222 != 0,
        "log already finished before the streams were open (mode {mode:o}); the test is too slow"
    );

    for st in &mut streams {
        let worker = st.worker;
        let events = st.read_to_close(Duration::from_secs(10));
        let content = std::fs::read(d.log_path(&id)).unwrap();
        let want = expected_events(&content);
        let (last, lines) = events
            .split_last()
            .unwrap_or_else(|| panic!("worker {worker}: no event at all"));
        let got = line_events(lines);
        assert!(
            lines.iter().all(|e| e.event.is_none()),
            "worker {worker} (writer {writer}): control event before the end: {:?}",
            lines
                .iter()
                .filter(|e| e.event.is_some())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            got.len(),
            want.len(),
            "worker {worker} (writer {writer}): line count"
        );
        assert_eq!(got, want, "worker {worker} (writer {writer}): lines");
        assert_eq!(
            last.event.as_deref(),
            Some("end"),
            "worker {worker} (writer {writer}): last event {last:?}"
        );
        let data = last.data.clone().unwrap_or_default();
        assert_eq!(
            common::json_str_field(&data, "reason").as_deref(),
            Some("finished"),
            "worker {worker}: {data}"
        );
        assert_eq!(
            common::json_raw_field(&data, "lines"),
            Some(want.len().to_string()),
            "worker {worker}: {data}"
        );
        assert_eq!(
            common::json_raw_field(&data, "bytes"),
            Some(content.len().to_string()),
            "worker {worker}: {data}"
        );
    }
    let mode = std::fs::metadata(d.log_path(&id))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o222, 0, "finished log is read-only (mode {mode:o})");
    eprintln!("streams per worker {spread:?}, writer {writer}");
}

#[test]
fn metrics_and_subscribers_describe_the_whole_daemon_from_any_worker() {
    let d = Daemon::start(&["--workers", "3", "--poll-interval-ms", "20"]);
    // A log another program writes: it stays writable, so its streams stay open.
    let id = "external-metrics";
    let path = d.log_path(id);
    std::fs::write(&path, "first line\nsecond line\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();

    converge_everywhere("streams before", 3, 0, Duration::from_secs(3), || {
        streams_open(&d)
    });

    let target = format!("/api/logs/{id}/stream");
    let mut streams = open_spread_streams(&d, &target, 9, 2, None);
    // Each stream has its first lines: it is registered in its worker.
    for st in &mut streams {
        let ev = st.next_event(Duration::from_secs(5)).expect("first line");
        assert_eq!(ev.data.as_deref(), Some("first line"));
    }
    let n = streams.len() as u64;
    let spread = count_by_worker(&streams);
    eprintln!("{n} streams per worker {spread:?}");

    converge_everywhere(
        &format!("logcast_streams_open with streams {spread:?}"),
        3,
        n,
        Duration::from_secs(3),
        || streams_open(&d),
    );
    converge_everywhere(
        &format!("subscribers with streams {spread:?}"),
        3,
        n,
        Duration::from_secs(3),
        || subscribers(&d, id),
    );

    // Half of them leave: every worker soon says so.
    let keep = streams.split_off(streams.len() / 2);
    drop(streams);
    let n = keep.len() as u64;
    converge_everywhere(
        "logcast_streams_open after clients left",
        3,
        n,
        Duration::from_secs(3),
        || streams_open(&d),
    );
    converge_everywhere(
        "subscribers after clients left",
        3,
        n,
        Duration::from_secs(3),
        || subscribers(&d, id),
    );
    drop(keep);
}

#[test]
fn a_killed_worker_is_restarted_while_the_others_keep_serving() {
    let d = Daemon::start(&["--workers", "3"]);
    let before = children(d.pid());
    assert_eq!(before.len(), 3, "children {before:?}");

    // Hammer /healthz on fresh connections all along; every failure is
    // recorded with its time.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<(Instant, String)>::new()));
    let addr = d.addr;
    let hammer = {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        std::thread::spawn(move || {
            let mut consecutive = 0usize;
            let mut worst = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let res = (|| -> Result<(), String> {
                    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                        .map_err(|e| format!("write: {e}"))?;
                    let r = read_response(&mut s, false).ok_or("no response")?;
                    if r.status != 200 || r.body != b"ok" {
                        return Err(format!("status {} body {:?}", r.status, r.text()));
                    }
                    Ok(())
                })();
                match res {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                        consecutive = 0;
                    }
                    Err(e) => {
                        failures.lock().unwrap().push((Instant::now(), e));
                        consecutive += 1;
                        worst = worst.max(consecutive);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            worst
        })
    };
    std::thread::sleep(Duration::from_millis(200));

    let victim = before[1];
    let victim_index = worker_index_of_pid(victim).expect("victim index");
    let killed_at = Instant::now();
    signal(victim, "KILL");
    let restarted = eventually(Duration::from_secs(2), || {
        let now = children(d.pid());
        now.len() == 3 && !now.contains(&victim)
    });
    let after = children(d.pid());
    assert!(
        restarted,
        "killed worker {victim} (index {victim_index}) not replaced within 2 s: children {after:?}"
    );
    let new: Vec<u32> = after
        .iter()
        .copied()
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(new.len(), 1, "before {before:?} after {after:?}");
    // Right after fork the child still has the supervisor's environment;
    // its own shows once it has exec'd.
    let mut index = None;
    eventually(Duration::from_secs(2), || {
        index = worker_index_of_pid(new[0]);
        index.is_some()
    });
    assert_eq!(
        index,
        Some(victim_index),
        "the replacement {} takes the dead worker's index",
        new[0]
    );
    for p in &before {
        if *p != victim {
            assert!(after.contains(p), "survivor {p} gone: {after:?}");
        }
    }

    // The replacement serves too.
    let served = eventually(Duration::from_secs(3), || {
        worker_of(&d.get("/healthz")) == victim_index
    });
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let worst_run = hammer.join().unwrap();
    let failures = failures.lock().unwrap().clone();
    let ok = ok.load(Ordering::SeqCst);
    assert!(
        served,
        "no connection served by the restarted worker {victim_index}"
    );
    assert!(ok > 50, "only {ok} healthz answered during the test");
    // A connection the dead worker had accepted (or that sat in its listen
    // queue: Linux resets those when a SO_REUSEPORT listener closes, unless
    // net.ipv4.tcp_migrate_req=1) is lost with it: that is SIGKILL. Any
    // other failure, or a retry that fails too, is the daemon's.
    let report: Vec<String> = failures
        .iter()
        .map(|(at, e)| {
            format!(
                "{e} at {:?} after the kill",
                at.saturating_duration_since(killed_at)
            )
        })
        .collect();
    assert!(
        failures.len() <= 3 && worst_run <= 1,
        "{} of {} /healthz failed around the worker's death (longest run {worst_run}): {report:?}",
        failures.len(),
        failures.len() + ok
    );
    for (at, e) in &failures {
        let since = at.saturating_duration_since(killed_at);
        assert!(
            *at >= killed_at && since < Duration::from_millis(500),
            "/healthz failed ({e}) away from the kill: {report:?}"
        );
    }
    if !failures.is_empty() {
        eprintln!("lost with the killed worker (retry succeeded): {report:?}");
    }
}

#[test]
fn sigterm_stops_every_worker_gracefully_and_exits_0() {
    let mut d = Daemon::start(&["--workers", "3", "--poll-interval-ms", "20"]);
    let workers = children(d.pid());
    assert_eq!(workers.len(), 3, "children {workers:?}");

    // A log one of the workers writes (must be read-only after the stop) ...
    let written = d.create_log(60);
    // ... and streams of an external log, held by several workers.
    let id = "external-shutdown";
    let path = d.log_path(id);
    std::fs::write(&path, "only line\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut streams = open_spread_streams(&d, &format!("/api/logs/{id}/stream"), 6, 2, None);
    for st in &mut streams {
        let ev = st.next_event(Duration::from_secs(5)).expect("first line");
        assert_eq!(ev.data.as_deref(), Some("only line"));
    }
    let spread = count_by_worker(&streams);

    let t = Instant::now();
    signal(d.pid(), "TERM");
    for st in &mut streams {
        let worker = st.worker;
        let rest = st.read_to_close(Duration::from_secs(3));
        let last = rest.last();
        assert_eq!(
            last.and_then(|e| e.event.as_deref()),
            Some("shutdown"),
            "stream on worker {worker} (streams {spread:?}): events after SIGTERM {rest:?}"
        );
        assert_eq!(
            last.and_then(|e| e.data.as_deref()),
            Some(r#"{"reason": "shutdown"}"#)
        );
    }
    let status = wait_timeout(&mut d.child, Duration::from_secs(3))
        .expect("supervisor still running 3 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    eprintln!("supervisor exited {:?} after SIGTERM", t.elapsed());
    for p in &workers {
        assert!(
            !process_running(*p),
            "worker pid {p} still runs after the supervisor exited"
        );
    }
    let mode = std::fs::metadata(d.log_path(&written))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o222,
        0,
        "a writer's log is read-only after the stop (mode {mode:o})"
    );
    assert!(
        TcpStream::connect(d.addr).is_err(),
        "something still accepts on {}",
        d.addr
    );
}

#[test]
fn workers_auto_starts_one_worker_per_core() {
    let out = std::process::Command::new("nproc")
        .output()
        .expect("run nproc");
    let cores: usize = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("nproc prints a number");
    let d = Daemon::start(&["--workers", "auto"]);
    let kids = children(d.pid());
    assert_eq!(
        kids.len(),
        cores,
        "--workers auto on {cores} cores: children {kids:?}"
    );
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let w = worker_of(&d.get("/healthz"));
        assert!(w < cores, "worker index {w} with {cores} workers");
        seen.insert(w);
    }
    if cores > 1 {
        assert!(seen.len() >= 2, "40 connections on one worker: {seen:?}");
    }
}

#[test]
fn streams_of_a_killed_worker_leave_the_totals_and_the_others_go_on() {
    let d = Daemon::start(&["--workers", "3", "--poll-interval-ms", "20"]);
    let id = "external-kill";
    let path = d.log_path(id);
    std::fs::write(&path, "one\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut streams = open_spread_streams(&d, &format!("/api/logs/{id}/stream"), 9, 2, None);
    for st in &mut streams {
        let ev = st.next_event(Duration::from_secs(5)).expect("first line");
        assert_eq!(ev.data.as_deref(), Some("one"));
    }
    let n = streams.len() as u64;
    converge_everywhere(
        "streams before the kill",
        3,
        n,
        Duration::from_secs(3),
        || streams_open(&d),
    );

    // Kill the worker holding the first stream.
    let victim_index = streams[0].worker;
    let victim = children(d.pid())
        .into_iter()
        .find(|&p| worker_index_of_pid(p) == Some(victim_index))
        .expect("pid of the victim worker");
    signal(victim, "KILL");
    let (lost, mut kept): (Vec<Sse>, Vec<Sse>) =
        streams.into_iter().partition(|s| s.worker == victim_index);
    for mut st in lost {
        assert!(
            st.next_event(Duration::from_secs(3)).is_none(),
            "a stream of the killed worker {victim_index} is still served"
        );
    }
    let survivors = kept.len() as u64;
    converge_everywhere(
        &format!("streams after worker {victim_index} was killed"),
        3,
        survivors,
        Duration::from_secs(4),
        || streams_open(&d),
    );
    converge_everywhere(
        &format!("subscribers after worker {victim_index} was killed"),
        3,
        survivors,
        Duration::from_secs(4),
        || subscribers(&d, id),
    );

    // The surviving streams still follow the file.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"two\n").unwrap();
    for st in &mut kept {
        let ev = st
            .next_event(Duration::from_secs(3))
            .unwrap_or_else(|| panic!("no new line on surviving worker {}", st.worker));
        assert_eq!(ev.data.as_deref(), Some("two"));
        assert_eq!(ev.id.as_deref(), Some("8"));
    }
}

#[test]
fn workers_stop_when_the_supervisor_is_killed() {
    let mut d = Daemon::start(&["--workers", "2"]);
    let workers = children(d.pid());
    assert_eq!(workers.len(), 2, "children {workers:?}");
    signal(d.pid(), "KILL");
    let _ = wait_timeout(&mut d.child, Duration::from_secs(2));
    // Each worker asked the kernel for SIGTERM when its parent dies.
    let gone = eventually(Duration::from_secs(3), || {
        workers.iter().all(|&p| !process_running(p))
    });
    let left: Vec<u32> = workers
        .iter()
        .copied()
        .filter(|&p| process_running(p))
        .collect();
    assert!(
        gone,
        "workers {left:?} outlive their SIGKILLed supervisor by 3 s"
    );
    assert!(
        eventually(Duration::from_secs(2), || TcpStream::connect(d.addr)
            .is_err()),
        "something still accepts on {} after the supervisor and its workers died",
        d.addr
    );
}

/// `--max-connections` is for the whole daemon: once the workers' snapshots
/// (published every second) show the total reached, every worker refuses
/// with 503; below it again, connections are accepted.
#[test]
fn max_connections_holds_for_the_whole_daemon() {
    let d = Daemon::start(&["--workers", "2", "--max-connections", "4"]);
    let mut kept = Vec::new();
    for _ in 0..50 {
        if kept.len() == 4 {
            break;
        }
        let mut s = d.connect();
        if ask(&mut s, "GET", "/healthz").status == 200 {
            kept.push(s);
        }
    }
    assert_eq!(
        kept.len(),
        4,
        "could not hold 4 connections under a limit of 4"
    );
    // A worker reads its siblings' counts when it publishes its own, from
    // files they wrote up to a second earlier: up to two seconds stale.
    std::thread::sleep(Duration::from_millis(2500));
    for i in 0..10 {
        let mut s = d.connect();
        let r = ask(&mut s, "GET", "/healthz");
        assert_eq!(
            r.status,
            503,
            "connection {i} over the daemon-wide limit: {}",
            r.text()
        );
    }
    kept.truncate(2);
    std::thread::sleep(Duration::from_millis(2500));
    let accepted = (0..20).any(|_| {
        let mut s = d.connect();
        ask(&mut s, "GET", "/healthz").status == 200
    });
    assert!(
        accepted,
        "below the limit again, no connection was accepted"
    );
}

/// A fresh connection's worker, or why there is none: `Err` with the
/// refusal (connect refused, a 503, or no answer within 3 s: starving).
fn try_connect_known(d: &Daemon) -> Result<(TcpStream, usize), String> {
    let mut s = TcpStream::connect_timeout(&d.addr, Duration::from_secs(3))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    match read_response(&mut s, false) {
        Some(r) if r.status == 200 => Ok((s, worker_of(&r))),
        Some(r) => Err(format!("status {}", r.status)),
        None => Err("no answer within 3 s".to_string()),
    }
}

/// Issue 13: `SO_REUSEPORT` hashes each new connection to any listening
/// worker, full or not. A worker at its cap (here what a 64-file limit
/// leaves it) takes what is queued, closes its listener so that the others
/// take the new connections, and listens again below 90% of its cap. So
/// connections fill both workers (none waits on a full one while the other
/// has room), and once one has room again it takes new connections.
#[test]
fn a_full_worker_stops_listening_and_listens_again_when_it_has_room() {
    let dir = common::temp_dir("full-worker");
    let how = common::Launch {
        wrapper: vec!["prlimit".into(), "--nofile=64".into(), "--".into()],
        ..common::Launch::default()
    };
    let args = ["--workers", "2", "--idle-timeout-ms", "120000"];
    let (d, stderr) = Daemon::launch(&dir, &args, &how).expect("start with 64 files");
    let mut held: Vec<(TcpStream, usize)> = Vec::new();
    let mut refusal = None;
    for _ in 0..200 {
        match try_connect_known(&d) {
            Ok(known) => held.push(known),
            Err(why) => {
                refusal = Some(why);
                break;
            }
        }
    }
    let count = |held: &[(TcpStream, usize)], w: usize| held.iter().filter(|h| h.1 == w).count();
    let (n0, n1) = (count(&held, 0), count(&held, 1));
    let refusal = refusal.expect("64 files each cannot hold 200 connections");
    // Both full: no listener is left, so the kernel refuses the connect.
    assert!(
        refusal.starts_with("connect:"),
        "the first connection the daemon could not take ({n0} + {n1} held) was not refused at connect but: {refusal}"
    );
    assert!(
        n0 >= 20 && n1 >= 20 && n0.abs_diff(n1) <= 4,
        "both workers must fill up to their caps before any refusal: {n0} and {n1}"
    );
    // The worker logs after it closed its listener, and the test collects
    // stderr on a thread, so the refusal can arrive before the second line.
    let stops = || stderr.text().matches("stopped listening").count();
    eventually(Duration::from_secs(5), || stops() >= 2);
    assert_eq!(
        stops(),
        2,
        "each worker stops listening once: {}",
        stderr.text()
    );

    // Worker 0 gets room: its clients leave. Worker 1 is still full and not
    // listening, so every new connection must be worker 0's.
    held.retain(|h| h.1 != 0);
    let again = eventually(Duration::from_secs(5), || {
        matches!(try_connect_known(&d), Ok((_, 0)))
    });
    assert!(again, "worker 0 did not listen again once it had room");
    for i in 0..10 {
        match try_connect_known(&d) {
            Ok((s, w)) => {
                assert_eq!(w, 0, "connection {i} went to the full worker");
                held.push((s, w));
            }
            Err(why) => panic!("connection {i} with room on worker 0: {why}"),
        }
    }
    drop(held);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}
