//! Fan-out and backpressure over real sockets: many streams of one log get the
//! same bytes from one poll per tick, and a client that stops reading costs the
//! daemon no memory and loses no line. A fan-out (or a heartbeat burst) to more
//! streams than one reactor turn writes goes on over the next turns, and still
//! reaches every stream exactly once, whoever leaves meanwhile.

mod common;

use common::followers::{assert_turns_bounded, expect_followers, open_followers, Follower};
use common::raw::frames;
use common::{
    append, eventually, make_read_only, raise_own_nofile_limit, write_file, Daemon, SseStream,
};
use std::fs;
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

/// The contract's framing of every complete line, then the finished `end` event.
fn expected_body(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() * 2);
    let mut start = 0;
    let mut lines = 0;
    while let Some(pos) = content[start..].iter().position(|&b| b == b'\n') {
        let end = start + pos + 1;
        let line = &content[start..start + pos];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(format!("id: {end}\n").as_bytes());
        for part in String::from_utf8_lossy(line).split('\r') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(part.as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        lines += 1;
        start = end;
    }
    assert_eq!(start, content.len(), "test writes whole lines only");
    out.extend_from_slice(
        format!(
            "event: end\ndata: {{\"reason\": \"finished\", \"lines\": {lines}, \"bytes\": {}}}\n\n",
            content.len()
        )
        .as_bytes(),
    );
    out
}

/// Reads into `raw` until the server closes (true) or the limit passes (false).
fn read_to_close(s: &mut SseStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        s.sock
            .set_read_timeout(Some(deadline - now))
            .expect("timeout");
        match s.sock.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => s.raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Reads until `raw` ends with `suffix` or the limit passes.
fn read_until_suffix(s: &mut SseStream, suffix: &[u8], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut chunk = vec![0u8; 65536];
    while !s.raw.ends_with(suffix) {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        s.sock
            .set_read_timeout(Some(deadline - now))
            .expect("timeout");
        match s.sock.read(&mut chunk) {
            Ok(0) => return s.raw.ends_with(suffix),
            Ok(n) => s.raw.extend_from_slice(&chunk[..n]),
            Err(_) => return false,
        }
    }
    true
}

/// Asserts two large byte sequences are equal, reporting the first difference briefly.
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let ctx = |b: &[u8]| {
        let lo = at.saturating_sub(120);
        let hi = (at + 120).min(b.len());
        String::from_utf8_lossy(&b[lo..hi]).into_owned()
    };
    panic!(
        "{what}: bodies differ at byte {at} (got {} bytes, want {})\n got: {:?}\nwant: {:?}",
        got.len(),
        want.len(),
        ctx(got),
        ctx(want)
    );
}

#[test]
fn five_hundred_streams_get_identical_bytes_from_one_poll_per_tick() {
    const STREAMS: usize = 500;
    const POLL_MS: u128 = 50;
    // Poll mode: this test is about one poll per tick for the log, however
    // many streams follow it.
    let d = Daemon::start(&["--watch", "poll", "--poll-interval-ms", "50"]);
    let path = d.log_dir.join("fan.log");
    write_file(&path, b"fan-out starts here\n");
    let url = "/api/logs/fan/stream";
    let mut streams: Vec<SseStream> = (0..STREAMS)
        .map(|_| SseStream::open(&d, url, &[]))
        .collect();
    for (i, s) in streams.iter().enumerate() {
        assert_eq!(s.head.status, 200, "stream {i}: {:?}", s.head);
    }
    assert!(
        eventually(Duration::from_secs(5), || d.metric("logcast_streams_open")
            == Some(STREAMS as f64)),
        "streams_open = {:?}",
        d.metric("logcast_streams_open")
    );

    let t0 = Instant::now();
    let polls0 = d
        .metric("logcast_tail_polls_total")
        .expect("logcast_tail_polls_total");
    for i in 0..24 {
        match i % 4 {
            0 => append(&path, format!("single line {i}\n").as_bytes()),
            1 => append(
                &path,
                format!("burst {i} a\nburst {i} b\nburst {i} c\n").as_bytes(),
            ),
            // A line written in two halves, a poll or more apart.
            2 => append(&path, format!("first half of line {i} ").as_bytes()),
            _ => append(
                &path,
                format!("and its second half\r\nbare\rcr {i} \u{e9}t\u{e9}\n").as_bytes(),
            ),
        }
        std::thread::sleep(Duration::from_millis(60));
    }
    let polls1 = d
        .metric("logcast_tail_polls_total")
        .expect("logcast_tail_polls_total");
    let elapsed = t0.elapsed();
    make_read_only(&path);

    let content = fs::read(&path).unwrap();
    let expected = expected_body(&content);
    for (i, s) in streams.iter_mut().enumerate() {
        assert!(
            read_to_close(s, Duration::from_secs(5)),
            "stream {i} not closed after the end event"
        );
        assert_same_bytes(&s.raw, &expected, &format!("stream {i}"));
    }

    // One poll per tick for the log, not one per stream.
    let ticks = elapsed.as_millis() / POLL_MS;
    let polls = polls1 - polls0;
    eprintln!(
        "fan-out: {polls} tail polls in {elapsed:?} ({ticks} ticks), {} bytes per stream",
        expected.len()
    );
    assert!(polls >= 1.0, "the log was not polled at all");
    assert!(
        polls <= (ticks + 5) as f64,
        "{polls} tail polls in {elapsed:?} ({ticks} ticks of {POLL_MS} ms) with {STREAMS} streams"
    );
}

#[test]
fn slow_consumer_costs_no_memory_and_loses_no_line() {
    let d = Daemon::start(&["--poll-interval-ms", "20"]);
    let path = d.log_dir.join("slow.log");
    write_file(&path, b"slow consumer begins\n");
    let mut s = SseStream::open(&d, "/api/logs/slow/stream", &[]);
    assert_eq!(s.head.status, 200);
    assert!(
        read_until_suffix(
            &mut s,
            b"data: slow consumer begins\n\n",
            Duration::from_secs(2)
        ),
        "first line"
    );

    // From here on the client does not read. The kernel buffers a few MB at most.
    std::thread::sleep(Duration::from_millis(200));
    let rss0 = d.rss_kib();
    assert!(rss0 > 0, "cannot read the daemon's RSS");
    let mut max_rss = rss0;
    let filler = "x".repeat(88);
    let mut n = 0u64;
    let mut written = 0usize;
    // ~20 MB in 40 chunks of ~512 KiB, over about 3 s.
    for _ in 0..40 {
        let mut chunk = String::with_capacity(520 * 1024);
        while chunk.len() < 512 * 1024 {
            n += 1;
            chunk.push_str(&format!("{n:010} {filler}\n"));
        }
        append(&path, chunk.as_bytes());
        written += chunk.len();
        std::thread::sleep(Duration::from_millis(75));
        max_rss = max_rss.max(d.rss_kib());
    }
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(50));
        max_rss = max_rss.max(d.rss_kib());
    }
    assert!(written >= 20_000_000);
    eprintln!(
        "slow consumer: RSS {rss0} KiB -> max {max_rss} KiB while {written} bytes were written"
    );
    assert!(
        max_rss.saturating_sub(rss0) < 4096,
        "daemon RSS grew from {rss0} KiB to {max_rss} KiB while {written} bytes passed a client that does not read"
    );

    // The client reads again: every line, in order, then the end event.
    make_read_only(&path);
    assert!(
        read_to_close(&mut s, Duration::from_secs(30)),
        "stream not closed after the end event"
    );
    let content = fs::read(&path).unwrap();
    assert_same_bytes(&s.raw, &expected_body(&content), "slow consumer");
}

/// Streams that start at different offsets (some far behind the shared tail)
/// each get exactly their suffix of the file while lines keep arriving, and
/// end together.
#[test]
fn streams_at_different_offsets_each_get_their_exact_suffix() {
    let d = Daemon::start(&["--poll-interval-ms", "20"]);
    let path = d.log_dir.join("offsets.log");
    let mut content = Vec::new();
    let mut n = 0;
    while content.len() < 1_000_000 {
        n += 1;
        content.extend_from_slice(format!("{n:08} {}\n", "y".repeat(n % 200)).as_bytes());
    }
    write_file(&path, &content);
    // Line starts spread over the file, plus the end.
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            content
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect();
    let picks: Vec<usize> = (0..40)
        .map(|i| starts[i * (starts.len() - 1) / 39])
        .collect();
    let mut streams: Vec<(usize, SseStream)> = picks
        .iter()
        .map(|&from| {
            (
                from,
                SseStream::open(&d, &format!("/api/logs/offsets/stream?from={from}"), &[]),
            )
        })
        .collect();
    for i in 0..20 {
        append(&path, format!("live line {i}\n").as_bytes());
        std::thread::sleep(Duration::from_millis(30));
    }
    make_read_only(&path);
    let content = fs::read(&path).unwrap();
    let full = expected_body(&content);
    for (from, s) in streams.iter_mut() {
        assert_eq!(s.head.status, 200);
        assert!(
            read_to_close(s, Duration::from_secs(10)),
            "stream from {from} not closed"
        );
        // The expected suffix: the full body from the frame of the line starting at `from`.
        let want = if *from == 0 {
            full.clone()
        } else {
            let marker = format!("id: {from}\n");
            let at = find(&full, marker.as_bytes()).expect("frame of the line before `from`");
            let next = at + find(&full[at..], b"\n\n").unwrap() + 2;
            full[next..].to_vec()
        };
        assert_same_bytes(&s.raw, &want, &format!("stream from {from}"));
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A client whose socket is full cannot take the shutdown event; the graceful
/// stop must not wait for it forever.
#[test]
fn sigterm_with_a_stuck_client_still_exits_promptly() {
    let mut d = Daemon::start(&["--poll-interval-ms", "20"]);
    let path = d.log_dir.join("stuck.log");
    write_file(&path, b"start\n");
    let mut stuck = SseStream::open(&d, "/api/logs/stuck/stream", &[]);
    let mut fine = SseStream::open(&d, "/api/logs/stuck/stream", &[]);
    assert_eq!((stuck.head.status, fine.head.status), (200, 200));
    // Fill the stuck client's socket buffers (the fine one reads along).
    let line = format!("{}\n", "z".repeat(999));
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut chunk = vec![0u8; 1 << 20];
    fine.sock.set_nonblocking(true).unwrap();
    while Instant::now() < deadline {
        append(&path, line.repeat(1024).as_bytes());
        std::thread::sleep(Duration::from_millis(30));
        while let Ok(n) = fine.sock.read(&mut chunk) {
            if n == 0 {
                break;
            }
        }
    }
    fine.sock.set_nonblocking(false).unwrap();
    let t = Instant::now();
    let status = d
        .terminate(Duration::from_secs(5))
        .expect("daemon did not exit within 5 s of SIGTERM");
    let took = t.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took < Duration::from_secs(3),
        "graceful stop took {took:?} with a stuck client"
    );
    // The reading client got its shutdown event.
    assert!(
        read_to_close(&mut fine, Duration::from_secs(5)),
        "reading client not closed"
    );
    assert!(
        fine.raw
            .ends_with(b"event: shutdown\ndata: {\"reason\": \"shutdown\"}\n\n"),
        "reading client: {:?}",
        String::from_utf8_lossy(&fine.raw[fine.raw.len().saturating_sub(200)..])
    );
    // The stuck client is closed (possibly cut short), not left hanging.
    assert!(
        read_to_close(&mut stuck, Duration::from_secs(10)),
        "stuck client never closed"
    );
}

// ---------------------------------------------------------------------------
// Fan-outs wider than a turn (SPEC section 4: no step does unbounded work)

/// Streams of one log: more than two turns' writes.
const WIDE: usize = 5_000;

/// A daemon with `args`, an empty log `wide` and [`WIDE`] streams following it.
fn wide_log(args: &[&str]) -> (Daemon, std::path::PathBuf, Vec<Follower>) {
    raise_own_nofile_limit();
    let d = Daemon::start(args);
    let path = d.log_path("wide");
    write_file(&path, b"");
    let followers = open_followers(&d, &vec!["wide".to_string(); WIDE], 250);
    (d, path, followers)
}

/// Lines to 5,000 streams of one log: no turn writes to more than 2,048
/// sockets, and every stream gets every line, once, in order.
#[test]
fn a_line_to_more_streams_than_a_turn_writes_goes_out_over_several_turns() {
    let (d, path, mut followers) = wide_log(&["--heartbeat-interval-ms", "600000"]);
    for i in 0..5 {
        append(&path, format!("wide line {i}\n").as_bytes());
        std::thread::sleep(Duration::from_millis(20));
    }
    let content = fs::read(&path).expect("read log");
    expect_followers(&mut followers, &frames(&content, 0), "5,000 streams");
    assert_turns_bounded(&d, "lines");
}

/// Streams that leave while lines go out over several turns take nobody
/// else's line with them: of 5,000 streams, half close, a few at a time,
/// while a line is appended every 5 ms (fan-outs every 40 ms: the batching
/// gap, capped at the poll interval); each of the others gets every line.
#[test]
fn streams_leaving_mid_fan_out_take_no_line_from_the_others() {
    let (d, path, followers) = wide_log(&[
        "--poll-interval-ms",
        "40",
        "--heartbeat-interval-ms",
        "600000",
    ]);
    let (leaving, mut staying): (Vec<_>, Vec<_>) = followers
        .into_iter()
        .enumerate()
        .partition(|(j, _)| j % 2 == 1);
    let mut staying: Vec<Follower> = staying.drain(..).map(|(_, f)| f).collect();
    let mut leaving = leaving.into_iter().map(|(_, f)| f);
    let mut chunk = [0u8; 16384];
    for i in 0..250 {
        append(
            &path,
            format!("line {i:03} while streams leave\n").as_bytes(),
        );
        for f in leaving.by_ref().take(10) {
            drop(f);
        }
        // Read along, so no socket fills up and falls behind.
        for f in &mut staying {
            f.take(&mut chunk);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let content = fs::read(&path).expect("read log");
    expect_followers(
        &mut staying,
        &frames(&content, 0),
        "the streams that stayed",
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            d.metric("logcast_streams_open") == Some(staying.len() as f64)
        }),
        "the streams that left were not all closed"
    );
    assert_turns_bounded(&d, "lines while streams leave");
}

/// A heartbeat burst to 5,000 silent streams also goes out over several
/// turns: every stream gets its `: keepalive`, no turn writes more than 2,048.
#[test]
fn heartbeats_to_more_streams_than_a_turn_writes_go_out_over_several_turns() {
    let (d, _path, mut followers) = wide_log(&["--heartbeat-interval-ms", "1000"]);
    let keepalive = b": keepalive\n\n";
    let mut chunk = [0u8; 256];
    let mut pending: Vec<usize> = (0..followers.len()).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|&j| {
            let f = &mut followers[j];
            assert!(f.take(&mut chunk), "stream {j}: closed by the server");
            !f.body.starts_with(keepalive)
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        pending.is_empty(),
        "{} of {WIDE} streams got no heartbeat within 5 s (interval 1 s)",
        pending.len()
    );
    assert_turns_bounded(&d, "heartbeats");
}
