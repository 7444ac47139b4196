//! Integration tests of `GET /api/events` (SPEC section 3, issue 12 item 2):
//! the directory as it changes, over real sockets. `created`, `finished` and
//! `deleted` for the daemon's own logs and for files another program puts in
//! the directory; ids `<epoch>-<seq>` that make list-then-subscribe and
//! reconnects exact (`X-Events-Id` on the list, `?since=`, `Last-Event-ID`);
//! `reset` for ids the daemon cannot resume from; heartbeats, CORS, a client
//! leaving, shutdown and a subscriber too slow for the journal.

mod common;

use common::followers::{assert_turns_bounded, open_targets};
use common::{
    eventually, json_raw_field, json_str_field, make_read_only, raise_own_nofile_limit, Daemon,
    Event, SseStream,
};
use std::fs;
use std::io::Write;
use std::time::{Duration, Instant};

const FAST: &[&str] = &["--write-interval-ms", "50", "--poll-interval-ms", "20"];
const WAIT: Duration = Duration::from_secs(5);

/// Where `GET /api/logs` says the list stands: its `X-Events-Id`.
fn list_id(d: &Daemon) -> String {
    let r = d.get("/api/logs?limit=1");
    assert_eq!(r.status, 200, "{}", r.text());
    r.header("x-events-id")
        .unwrap_or_else(|| panic!("no X-Events-Id: {:?}", r.headers))
        .to_string()
}

/// `(epoch, seq)` of an event id.
fn split_id(id: &str) -> (String, u64) {
    let (epoch, seq) = id.rsplit_once('-').unwrap_or_else(|| panic!("id {id:?}"));
    (
        epoch.to_string(),
        seq.parse().unwrap_or_else(|_| panic!("id {id:?}")),
    )
}

fn id_with_seq(id: &str, seq: u64) -> String {
    format!("{}-{seq}", split_id(id).0)
}

/// The list's id once the first pass over the directory is over (before
/// it, the id is `<epoch>-0` and a `reset` follows: see `a_list_taken_...`).
fn built_id(d: &Daemon) -> String {
    let mut id = list_id(d);
    assert!(
        eventually(WAIT, || {
            id = list_id(d);
            split_id(&id).1 > 0
        }),
        "index never built: {id}"
    );
    id
}

/// Opens the events stream and checks its head (SPEC section 3: as streams).
fn subscribe(d: &Daemon, target: &str, headers: &[&str]) -> SseStream {
    let s = SseStream::open(d, target, headers);
    assert_eq!(s.head.status, 200, "{target}: {:?}", s.head);
    for (name, value) in [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
        ("x-accel-buffering", "no"),
    ] {
        assert_eq!(s.head.header(name), Some(value), "{target}: {:?}", s.head);
    }
    assert_eq!(s.head.header("content-length"), None);
    s
}

/// The next event that is not a comment.
fn next(s: &mut SseStream, what: &str) -> Event {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = s
            .next_event(left)
            .unwrap_or_else(|| panic!("{what}: no event; got {:?}", show(&s.raw)));
        if ev.event.is_some() || ev.data.is_some() {
            return ev;
        }
    }
}

/// The next event, which must be `kind`; returns it.
fn expect(s: &mut SseStream, kind: &str, what: &str) -> Event {
    let ev = next(s, what);
    assert_eq!(ev.event.as_deref(), Some(kind), "{what}: {ev:?}");
    assert!(ev.data.is_some(), "{what}: every event carries data");
    ev
}

/// The next event, which must be `kind` for log `id`.
fn expect_log(s: &mut SseStream, kind: &str, id: &str, what: &str) -> Event {
    let ev = expect(s, kind, what);
    let data = ev.data.clone().unwrap_or_default();
    assert_eq!(
        json_str_field(&data, "log_id").as_deref(),
        Some(id),
        "{what}: {data}"
    );
    assert_eq!(
        json_str_field(&data, "stream_url"),
        Some(format!("/api/logs/{id}/stream")),
        "{what}: {data}"
    );
    for field in ["file_size", "writing"] {
        assert!(json_raw_field(&data, field).is_some(), "{what}: {data}");
    }
    assert!(
        json_str_field(&data, "created_at").is_some(),
        "{what}: {data}"
    );
    ev
}

fn writing(ev: &Event) -> String {
    json_raw_field(ev.data.as_deref().unwrap_or(""), "writing").unwrap_or_default()
}

fn seq(ev: &Event) -> u64 {
    split_id(ev.id.as_deref().expect("every change has an id")).1
}

/// No event (other than comments) arrives within `wait`.
fn assert_quiet(s: &mut SseStream, wait: Duration, what: &str) {
    let deadline = Instant::now() + wait;
    while let Some(ev) = s.next_event(deadline.saturating_duration_since(Instant::now())) {
        assert!(
            ev.event.is_none() && ev.data.is_none(),
            "{what}: unexpected {ev:?}"
        );
    }
}

/// The last 2,000 characters of what a stream received (for messages).
fn show(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let skip = text.chars().count().saturating_sub(2000);
    text.chars().skip(skip).collect()
}

/// A log's life from the daemon's own POST, its writer finishing and a
/// DELETE: exactly `created`, `finished`, `deleted`, with consecutive ids
/// of one epoch, each once (the directory's notifications about the same
/// changes add nothing), as exact bytes.
#[test]
fn own_log_created_finished_deleted_once_each() {
    let d = Daemon::start(FAST);
    let since = built_id(&d);
    let mut s = subscribe(&d, &format!("/api/events?since={since}"), &[]);
    let ready = expect(&mut s, "ready", "ready");
    assert_eq!(ready.id.as_deref(), Some(since.as_str()));
    assert_eq!(ready.data, Some(format!("{{\"id\": \"{since}\"}}")));

    let id = d.create_log(1);
    let created = expect_log(&mut s, "created", &id, "created");
    assert_eq!(writing(&created), "true");
    assert_eq!(
        created.id,
        Some(id_with_seq(&since, split_id(&since).1 + 1))
    );
    let finished = expect_log(&mut s, "finished", &id, "finished");
    assert_eq!(writing(&finished), "false");
    assert_eq!(seq(&finished), seq(&created) + 1);
    let size = json_raw_field(finished.data.as_deref().unwrap_or(""), "file_size");
    assert_eq!(
        size,
        Some(
            fs::metadata(d.log_path(&id))
                .expect("log")
                .len()
                .to_string()
        ),
        "finished carries the final size"
    );
    assert_quiet(&mut s, Duration::from_millis(500), "after finished");

    let r = d.request("DELETE", &format!("/api/logs/{id}"));
    assert_eq!(r.status, 204);
    let deleted = expect_log(&mut s, "deleted", &id, "deleted");
    assert_eq!(seq(&deleted), seq(&finished) + 1);
    assert_quiet(&mut s, Duration::from_millis(500), "after deleted");

    // The bytes of one change, as sent.
    let frame = format!(
        "id: {}\nevent: deleted\ndata: {}\n\n",
        deleted.id.as_deref().unwrap_or(""),
        deleted.data.as_deref().unwrap_or("")
    );
    assert!(show(&s.raw).ends_with(&frame), "{:?}", show(&s.raw));
    assert_eq!(list_id(&d), deleted.id.unwrap_or_default());
}

/// A file another program drops into the directory, finishes (clears its
/// write bits) and removes: `created`, `finished`, `deleted`, with change
/// notification and with `--watch poll` (a rescan every second, which
/// reads names only: there a known file's new mode is seen when it is
/// next looked at, for example when it is listed).
#[test]
fn a_file_another_program_drops_and_removes() {
    for mode in ["auto", "poll"] {
        let mut args = FAST.to_vec();
        args.extend(["--watch", mode]);
        let d = Daemon::start(&args);
        built_id(&d);
        let mut s = subscribe(&d, "/api/events", &[]);
        expect(&mut s, "ready", mode);
        let path = d.log_dir.join("dropped.log");
        let mut file = fs::File::create(&path).expect("create");
        file.write_all(b"one line\n").expect("write");
        drop(file);
        let created = expect_log(&mut s, "created", "dropped", mode);
        assert_eq!(writing(&created), "true", "{mode}");
        // Not a log: no event.
        fs::write(d.log_dir.join("notes.txt"), b"x").expect("write");
        make_read_only(&path);
        if mode == "poll" {
            assert_quiet(&mut s, Duration::from_millis(1500), "a rescan reads names");
            assert!(d.get("/api/logs").text().contains("\"writing\": false"));
        }
        let finished = expect_log(&mut s, "finished", "dropped", mode);
        assert_eq!(writing(&finished), "false", "{mode}");
        fs::remove_file(&path).expect("rm");
        let deleted = expect_log(&mut s, "deleted", "dropped", mode);
        assert_eq!(seq(&deleted), seq(&created) + 2, "{mode}");
        assert_quiet(&mut s, Duration::from_millis(1500), mode);
    }
}

/// List, then a log is created before the client subscribes: subscribing
/// from the list's `X-Events-Id` (by `?since=` or `Last-Event-ID`) brings
/// its `created`, so the list plus the events miss nothing.
#[test]
fn list_then_subscribe_misses_nothing() {
    let d = Daemon::start(FAST);
    let listed = built_id(&d);
    let id = d.create_log(60);
    for how in ["query", "header"] {
        let mut s = match how {
            "query" => subscribe(&d, &format!("/api/events?since={listed}"), &[]),
            _ => subscribe(&d, "/api/events", &[&format!("Last-Event-ID: {listed}")]),
        };
        let ready = expect(&mut s, "ready", how);
        assert_eq!(ready.id.as_deref(), Some(listed.as_str()), "{how}");
        let created = expect_log(&mut s, "created", &id, how);
        assert_eq!(seq(&created), split_id(&listed).1 + 1, "{how}");
        assert_quiet(&mut s, Duration::from_millis(300), how);
    }
}

/// A client that drops and reconnects with the last id it saw gets exactly
/// the changes it missed, byte for byte as a client that stayed connected
/// received them, and nothing twice.
#[test]
fn reconnect_with_last_event_id_gets_exactly_what_was_missed() {
    let d = Daemon::start(FAST);
    built_id(&d);
    let mut stayed = subscribe(&d, "/api/events", &[]);
    expect(&mut stayed, "ready", "stayed");
    let mut first = subscribe(&d, "/api/events", &[]);
    expect(&mut first, "ready", "first");
    let a = d.create_log(60);
    let seen = expect_log(&mut first, "created", &a, "first");
    expect_log(&mut stayed, "created", &a, "stayed");
    drop(first);

    let b = d.create_log(60);
    assert_eq!(d.request("DELETE", &format!("/api/logs/{a}")).status, 204);
    let missed = [
        expect_log(&mut stayed, "created", &b, "stayed"),
        expect_log(&mut stayed, "deleted", &a, "stayed"),
    ];
    let last = seen.id.clone().unwrap_or_default();
    let mut again = subscribe(&d, "/api/events", &[&format!("Last-Event-ID: {last}")]);
    let ready = expect(&mut again, "ready", "again");
    assert_eq!(ready.id, Some(last));
    for want in &missed {
        assert_eq!(&next(&mut again, "replay"), want);
    }
    assert_quiet(&mut again, Duration::from_millis(300), "after the replay");
    // And it is live again.
    assert_eq!(d.request("DELETE", &format!("/api/logs/{b}")).status, 204);
    let live = expect_log(&mut again, "deleted", &b, "live");
    assert_eq!(live, expect_log(&mut stayed, "deleted", &b, "stayed"));
}

/// An id the daemon cannot resume from gets `reset` (list again) carrying
/// the current id, then live changes: another epoch (another run), an id
/// from the future, garbage, and one older than the journal.
#[test]
fn foreign_future_garbage_and_too_old_ids_get_reset() {
    let d = Daemon::start(FAST);
    let current = built_id(&d);
    let (epoch, now) = split_id(&current);
    let other_epoch = if epoch.starts_with('0') { "1" } else { "0" };
    let cases = [
        (format!("{other_epoch}{}-{now}", &epoch[1..]), "unknown_id"),
        (format!("{epoch}-{}", now + 5), "unknown_id"),
        ("not-an-id".to_string(), "unknown_id"),
        ("12345".to_string(), "unknown_id"),
    ];
    for (id, reason) in &cases {
        let mut s = subscribe(&d, &format!("/api/events?since={id}"), &[]);
        let reset = expect(&mut s, "reset", id);
        assert_eq!(reset.id.as_deref(), Some(current.as_str()), "{id}");
        assert_eq!(
            reset.data,
            Some(format!("{{\"reason\": \"{reason}\"}}")),
            "{id}"
        );
    }

    // More changes than the journal keeps (4096): files dropped in, in
    // bursts bigger than one block, which a reading subscriber gets whole.
    let mut live = subscribe(&d, &format!("/api/events?since={current}"), &[]);
    expect(&mut live, "ready", "live");
    let n = 4200;
    for i in 0..n {
        fs::write(d.log_dir.join(format!("f{i:05}.log")), b"x\n").expect("write");
    }
    let target = now + n;
    let mut latest = current.clone();
    assert!(
        eventually(Duration::from_secs(20), || {
            latest = list_id(&d);
            split_id(&latest).1 >= target
        }),
        "{n} files never all indexed: {latest}"
    );
    for want in now + 1..=target {
        let ev = expect(&mut live, "created", "live burst");
        assert_eq!(seq(&ev), want, "an unbroken run");
    }
    let mut s = subscribe(&d, "/api/events", &[&format!("Last-Event-ID: {current}")]);
    let reset = expect(&mut s, "reset", "too old");
    assert_eq!(reset.data.as_deref(), Some("{\"reason\": \"too_old\"}"));
    assert_eq!(reset.id, Some(latest.clone()));
    let id = d.create_log(60);
    let created = expect_log(&mut s, "created", &id, "live after reset");
    assert_eq!(seq(&created), split_id(&latest).1 + 1);
    // The oldest change the journal still holds can be resumed from.
    let oldest = split_id(&latest).1 + 1 - 4096;
    let mut s = subscribe(&d, &format!("/api/events?since={epoch}-{oldest}"), &[]);
    expect(&mut s, "ready", "oldest kept");
    let mut s = subscribe(
        &d,
        &format!("/api/events?since={epoch}-{}", oldest - 1),
        &[],
    );
    expect(&mut s, "reset", "just older");
}

/// While the index is first built nothing is recorded (a directory of many
/// files would be a flood of `created`): its end is a `reset` in the
/// journal, so a client that listed before it (id `<epoch>-0`) lists again.
#[test]
fn a_list_taken_before_the_index_is_built_is_followed_by_reset() {
    let dir = common::temp_dir("events-build");
    let _cleanup = common::RemoveOnDrop(vec![dir.clone()]);
    let n = 5000;
    for i in 0..n {
        fs::write(dir.join(format!("b{i:05}.log")), b"x\n").expect("write");
    }
    let d = Daemon::start_in(&dir, FAST);
    let early = list_id(&d);
    let pre_build = id_with_seq(&early, 0);
    let mut s = subscribe(&d, &format!("/api/events?since={pre_build}"), &[]);
    expect(&mut s, "ready", "ready");
    let reset = expect(&mut s, "reset", "the build's end");
    assert_eq!(reset.data.as_deref(), Some("{\"reason\": \"indexed\"}"));
    assert_eq!(reset.id, Some(id_with_seq(&early, 1)));
    assert_quiet(
        &mut s,
        Duration::from_millis(300),
        "no created for the build",
    );
    let r = d.get("/api/logs?limit=1");
    assert_eq!(r.header("x-total-count"), Some(n.to_string().as_str()));
    assert_eq!(r.header("x-events-id"), reset.id.as_deref());
}

/// `: keepalive` after a heartbeat interval of silence, and again.
#[test]
fn heartbeat_after_silence() {
    let mut args = FAST.to_vec();
    args.extend(["--heartbeat-interval-ms", "200"]);
    let d = Daemon::start(&args);
    let since = built_id(&d);
    let mut s = subscribe(&d, &format!("/api/events?since={since}"), &[]);
    let started = Instant::now();
    expect(&mut s, "ready", "ready");
    let ready = format!("id: {since}\nevent: ready\ndata: {{\"id\": \"{since}\"}}\n\n");
    let beats = format!("{ready}: keepalive\n\n: keepalive\n\n");
    assert!(
        eventually(Duration::from_secs(3), || {
            let _ = s.next_event(Duration::from_millis(50));
            s.raw.len() >= beats.len()
        }),
        "{:?}",
        show(&s.raw)
    );
    assert_eq!(show(&s.raw[..beats.len()]), beats);
    assert!(started.elapsed() >= Duration::from_millis(350), "too early");
}

/// With `--cors-origin`, an allowed origin's subscription carries
/// `Access-Control-Allow-Origin`, and the list exposes `X-Events-Id` to it;
/// another origin gets no CORS header.
#[test]
fn cors_headers_for_an_allowed_origin() {
    let dash = "https://dash.example";
    let mut args = FAST.to_vec();
    args.extend(["--cors-origin", dash]);
    let d = Daemon::start(&args);
    let mut s = subscribe(&d, "/api/events", &[&format!("Origin: {dash}")]);
    assert_eq!(s.head.header("access-control-allow-origin"), Some(dash));
    expect(&mut s, "ready", "ready");
    let r = d.request_with("GET", "/api/logs", &[&format!("Origin: {dash}")]);
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-events-id"), "{:?}", r.headers);
    let s = subscribe(&d, "/api/events", &["Origin: https://evil.example"]);
    assert_eq!(s.head.header("access-control-allow-origin"), None);
}

/// A subscriber that leaves is released at once (watched for EOF, not
/// found at its next write), and the method is checked.
#[test]
fn a_subscriber_that_leaves_is_released_at_once() {
    let d = Daemon::start(FAST);
    let s = subscribe(&d, "/api/events", &[]);
    assert!(eventually(WAIT, || d
        .metric("logcast_streams_open")
        .is_some_and(|v| v == 1.0)));
    drop(s);
    assert!(
        eventually(Duration::from_secs(1), || d
            .metric("logcast_streams_open")
            .is_some_and(|v| v == 0.0)),
        "still held"
    );
    let r = d.request("POST", "/api/events");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
}

/// SIGTERM: every subscriber gets `event: shutdown` and is closed; the
/// daemon exits 0.
#[test]
fn shutdown_reaches_subscribers() {
    let mut d = Daemon::start(FAST);
    built_id(&d);
    let mut subs: Vec<SseStream> = (0..3).map(|_| subscribe(&d, "/api/events", &[])).collect();
    for s in subs.iter_mut() {
        expect(s, "ready", "ready");
    }
    let status = d.terminate(WAIT).expect("exits");
    assert!(status.success(), "{status:?}");
    for s in subs.iter_mut() {
        let ev = expect(s, "shutdown", "shutdown");
        assert_eq!(ev.data.as_deref(), Some("{\"reason\": \"shutdown\"}"));
        assert_eq!(ev.id, None, "shutdown keeps the client's last id");
        assert!(s.next_event(Duration::from_secs(1)).is_none(), "closed");
    }
}

/// A subscriber that reads nothing while far more changes than the journal
/// holds happen is not buffered for: when it reads again it finds an
/// unbroken run of changes, then `reset` (list again), then live ones.
/// The changes (about 8 MB of events) outgrow the socket's buffers (at
/// most 4 MB here) plus the journal.
#[test]
fn a_subscriber_too_slow_for_the_journal_gets_reset() {
    let d = Daemon::start(FAST);
    let since = built_id(&d);
    let sock = d.connect_small(4096);
    let mut s = SseStream::on(sock, &format!("/api/events?since={since}"), &[]);
    assert_eq!(s.head.status, 200);
    let n = 20_000u64;
    let long = "l".repeat(120);
    for i in 0..n {
        fs::write(d.log_dir.join(format!("{long}{i:05}.log")), b"x\n").expect("write");
    }
    let target = split_id(&since).1 + n;
    assert!(
        eventually(Duration::from_secs(30), || split_id(&list_id(&d)).1
            >= target),
        "never indexed"
    );
    expect(&mut s, "ready", "ready");
    let mut expected = split_id(&since).1 + 1;
    let reset = loop {
        let ev = next(&mut s, "catching up");
        if ev.event.as_deref() == Some("reset") {
            break ev;
        }
        assert_eq!(ev.event.as_deref(), Some("created"));
        assert_eq!(seq(&ev), expected, "an unbroken run");
        expected += 1;
    };
    assert!(expected < target, "the socket held everything: no test");
    assert_eq!(reset.data.as_deref(), Some("{\"reason\": \"too_old\"}"));
    let after = split_id(reset.id.as_deref().unwrap_or("")).1;
    assert!(after >= target, "reset carries the current id: {after}");
    let id = d.create_log(60);
    expect_log(&mut s, "created", &id, "live after reset");
}

/// `--stall-timeout-ms` applies: a subscriber whose socket has taken no
/// byte for that long while it has changes to send (it reads nothing while
/// changes fill its socket, and more keep coming) is closed and let go.
/// (With nothing left to send it is idle, not stalled, as log streams are.)
#[test]
fn a_subscriber_that_reads_nothing_is_closed_after_the_stall_timeout() {
    let mut args = FAST.to_vec();
    args.extend(["--stall-timeout-ms", "1000"]);
    let d = Daemon::start(&args);
    built_id(&d);
    let mut silent = d.connect_small(4096);
    silent
        .write_all(b"GET /api/events HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("request");
    assert!(eventually(WAIT, || d.metric("logcast_streams_open") == Some(1.0)));
    let long = "l".repeat(120);
    for i in 0..20_000 {
        fs::write(d.log_dir.join(format!("{long}{i:05}.log")), b"x\n").expect("write");
    }
    let mut more = 0;
    assert!(
        eventually(Duration::from_secs(20), || {
            // Enough changes that the daemon's send buffer (which the
            // kernel grows while the peer's window is shut) stays full.
            for _ in 0..200 {
                more += 1;
                let name = format!("{long}more{more}.log");
                fs::write(d.log_dir.join(name), b"x\n").expect("write");
            }
            std::thread::sleep(Duration::from_millis(100));
            d.metric("logcast_streams_open") == Some(0.0)
        }),
        "the silent subscriber is still held: at {}, {:?} stall timeouts",
        list_id(&d),
        d.metric("logcast_timeouts_total{kind=\"stall\"}")
    );
    assert!(d
        .metric("logcast_timeouts_total{kind=\"stall\"}")
        .is_some_and(|n| n >= 1.0));
}

/// 5,000 subscribers: a change reaches every one of them exactly once, and
/// so does a heartbeat round after it, yet no turn writes to more than
/// 2,048 of them (the rest are caught up, or beat, in the next turns).
#[test]
fn a_change_to_more_subscribers_than_a_turn_writes_reaches_each_once() {
    const SUBSCRIBERS: usize = 5_000;
    raise_own_nofile_limit();
    let d = Daemon::start(&["--heartbeat-interval-ms", "1000"]);
    built_id(&d);
    let mut subs = open_targets(&d, &vec!["/api/events".to_string(); SUBSCRIBERS], 250);
    fs::write(d.log_dir.join("wide.log"), b"one line\n").expect("write");
    let created = b"event: created\n";
    let keepalive = b": keepalive\n\n";
    let count =
        |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).filter(|w| w == &needle).count();
    let done = |body: &[u8]| {
        let at = body.windows(created.len()).position(|w| w == created);
        at.is_some_and(|at| count(&body[at..], keepalive) > 0)
    };
    let mut chunk = [0u8; 4096];
    let mut pending: Vec<usize> = (0..SUBSCRIBERS).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|&j| {
            let s = &mut subs[j];
            assert!(s.take(&mut chunk), "subscriber {j}: closed by the server");
            !done(&s.body)
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        pending.is_empty(),
        "{} of {SUBSCRIBERS} subscribers lack `created` then a heartbeat within 10 s; one has {}",
        pending.len(),
        pending
            .first()
            .map(|&j| show(&subs[j].body))
            .unwrap_or_default()
    );
    for (j, s) in subs.iter().enumerate() {
        assert_eq!(
            count(&s.body, created),
            1,
            "subscriber {j}: {}",
            show(&s.body)
        );
        assert!(
            String::from_utf8_lossy(&s.body).contains("\"log_id\": \"wide\""),
            "subscriber {j}: {}",
            show(&s.body)
        );
    }
    assert_turns_bounded(&d, "a change and heartbeats to subscribers");
}
