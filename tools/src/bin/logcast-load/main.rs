//! logcast-load: a load generator for Server-Sent Events streams.
//!
//! The parent process never holds a stream: it re-executes itself as P worker
//! processes (each a single mio reactor holding fewer than 19,000 sockets,
//! see client.rs), waits until every stream is connected, then measures the
//! daemon (RSS, CPU) and writes marker lines into a log file while the workers
//! time their arrival. Workers report counters and a raw latency histogram on
//! one `RESULT` line each; the parent sums them exactly.
//!
//! Marks go to a log file (`--mark-file`, appended), to an HTTP publisher
//! (`--publish-url`, POSTed: nchan's publisher location), or both with the
//! same time; with `--logs N` there are N logs (files, channels) and `{i}` in
//! the URLs and the file name is the log's number. With `--time-lines`, the
//! time stamped in logcast's own simulated lines (`[<RFC 3339>] ...`) makes
//! them marks too, for a writer the load generator does not drive.
//!
//! Parent <-> worker protocol, one line each way:
//! worker stdout: `PROGRESS attempted=N connected=N failed=N ramp_ms=N` every
//! 2 s during the ramp, `READY ...` (same fields) once every stream has got
//! its 200 head or failed, then
//! `RESULT key=value ... statuses=code:n,... lat=<hist> conn=<hist>`;
//! worker stdin: `STOP <marks written to each log>` (EOF also stops it).

mod client;
mod procstat;
mod publish;
mod sse;
mod stats;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use client::{unix_ns, Config, Control, Worker};
use rand::Rng;
use stats::{Histogram, Totals};

const USAGE: &str = "\
usage: logcast-load [OPTIONS]
  --url URL             http://HOST:PORT/PATH of the SSE stream
  --host H --port N --path P   the same, in parts (default 127.0.0.1:5000 /)
  --streams N           concurrent streams (default 1000)
  --ramp N              connections started per second, all processes (default 2000; 0 = no limit)
  --max-pending N       at most N connections per process waiting for their response head
                        (default 0 = no limit): the ramp then follows what the server
                        accepts instead of overflowing its listen queues (whose
                        overflow ends in SYN-ACK retries and resets)
  --hold SECS           how long to hold the streams once all are connected (default 10)
  --source-addrs A,B    source addresses to spread connections over (127.x.y.z)
  --source-count K      the same: 127.0.0.1 .. 127.0.0.K (default: 1 per 25,000 streams)
  --processes P         worker processes (default: one per 18,000 streams)
  --timeout SECS        connect + response head deadline per stream (default 10)
  --ready-timeout SECS  give up waiting for every stream to connect after this
                        (default 2 x streams / ramp + --timeout + 60)
  --mark-file PATH      append `MARK <unix-ns> <seq>` lines to this log during the hold
                        (created before the streams connect when missing)
  --publish-url URL     POST each mark (`MARK <unix-ns> <seq>`, no newline) to URL as well
                        or instead: nchan's publisher location, http://H:P/pub/CHANNEL; one
                        keep-alive connection, pipelined: a thread reads the answers,
                        the marks keep their schedule as file appends do
  --mark-rate R         marks per second per log (default 2), each at a random point of its period
  --no-jitter           marks exactly every 1/R s instead (logs evenly spread over the period)
  --logs N              N logs (default 1): `{i}` in --url, --mark-file and --publish-url
                        is the log number 0..N-1; stream g follows log g % N; every log
                        gets --mark-rate marks per second (N x R lines per second in all);
                        over 4096 logs a mark file is opened for each mark (before its time
                        is taken) instead of held open
  --time-lines          data lines starting `[<RFC 3339 time>]` or `[LOG CREATED] <RFC 3339
                        time>` (logcast's simulated writer, ms resolution) are marks too,
                        timed from that stamp (the stamp is truncated to the ms: +0..1 ms)
  --drain-ms MS         wait after the last mark before stopping (default 1000)
  --expect-marks        every stream must get every mark: report those that did not, exit 3
  --pid PID[,PID..]     the daemon's process(es): RSS and CPU are reported
  --pid-tree            include the descendants of --pid (worker processes)
  --idle-secs S         measure the daemon's CPU for S seconds before the marks start
  --json                print one JSON line on stdout (the table goes to stderr)
  --help
Latencies are now - embedded time of each mark, per stream, in ms. CPU is
on-CPU time from /proc/PID/task/*/schedstat (ns), or where that is missing
utime+stime from /proc/PID/stat in clock ticks (getconf CLK_TCK, usually 100/s;
the ticks figure is reported too, as a cross-check).";

struct Opts {
    host: String,
    port: u16,
    path: String,
    streams: usize,
    ramp: f64,
    max_pending: usize,
    ready_timeout: Option<f64>,
    hold: f64,
    sources: Vec<Ipv4Addr>,
    processes: Option<usize>,
    timeout: f64,
    mark_file: Option<String>,
    publish: Option<(String, u16, String)>,
    logs: usize,
    time_lines: bool,
    mark_rate: f64,
    drain_ms: u64,
    expect_marks: bool,
    mark_jitter: bool,
    pids: Vec<u32>,
    pid_tree: bool,
    idle_secs: f64,
    json: bool,
    // worker mode
    child: bool,
    child_index: usize,
    child_count: usize,
    run_start_ns: u64,
    deadline: f64,
}

fn die(msg: &str) -> ! {
    eprintln!("logcast-load: {msg}");
    std::process::exit(2)
}

fn num<T: std::str::FromStr>(opt: &str, v: &str) -> T {
    v.parse()
        .unwrap_or_else(|_| die(&format!("{opt}: invalid value '{v}'")))
}

fn parse_url(url: &str) -> (String, u16, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| die(&format!("--url: only http:// URLs: '{url}'")));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, num::<u16>("--url port", p)),
        None => (authority, 80),
    };
    (host.to_string(), port, path.to_string())
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        host: "127.0.0.1".into(),
        port: 5000,
        path: "/".into(),
        streams: 1000,
        ramp: 2000.0,
        max_pending: 0,
        ready_timeout: None,
        hold: 10.0,
        sources: Vec::new(),
        processes: None,
        timeout: 10.0,
        mark_file: None,
        publish: None,
        logs: 1,
        time_lines: false,
        mark_rate: 2.0,
        drain_ms: 1000,
        expect_marks: false,
        mark_jitter: true,
        pids: Vec::new(),
        pid_tree: false,
        idle_secs: 0.0,
        json: false,
        child: false,
        child_index: 0,
        child_count: 1,
        run_start_ns: 0,
        deadline: 3600.0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let (name, inline) = match args[i].split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (args[i].clone(), None),
        };
        i += 1;
        let flag = |o: &mut Opts, n: &str| match n {
            "--expect-marks" => o.expect_marks = true,
            "--no-jitter" => o.mark_jitter = false,
            "--pid-tree" => o.pid_tree = true,
            "--json" => o.json = true,
            "--child" => o.child = true,
            "--time-lines" => o.time_lines = true,
            _ => unreachable!(),
        };
        match name.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            "--expect-marks" | "--no-jitter" | "--pid-tree" | "--json" | "--child"
            | "--time-lines" => {
                flag(&mut o, &name);
                continue;
            }
            _ => {}
        }
        let v = match inline {
            Some(v) => v,
            None => {
                let v = args
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| die(&format!("{name}: missing value")));
                i += 1;
                v
            }
        };
        match name.as_str() {
            "--url" => {
                let (h, p, path) = parse_url(&v);
                o.host = h;
                o.port = p;
                o.path = path;
            }
            "--host" => o.host = v,
            "--port" => o.port = num(&name, &v),
            "--path" => o.path = v,
            "--streams" => o.streams = num(&name, &v),
            "--ramp" => o.ramp = num(&name, &v),
            "--max-pending" => o.max_pending = num(&name, &v),
            "--ready-timeout" => o.ready_timeout = Some(num(&name, &v)),
            "--hold" => o.hold = num(&name, &v),
            "--source-addrs" => {
                o.sources = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| num::<Ipv4Addr>(&name, s))
                    .collect()
            }
            "--source-count" => {
                let k: u32 = num(&name, &v);
                if k == 0 || k > 65_000 {
                    die("--source-count: 1..=65000");
                }
                o.sources = (1..=k)
                    .map(|n| Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + n))
                    .collect();
            }
            "--processes" => o.processes = Some(num(&name, &v)),
            "--timeout" => o.timeout = num(&name, &v),
            "--mark-file" => o.mark_file = Some(v),
            "--publish-url" => o.publish = Some(parse_url(&v)),
            "--logs" => o.logs = num(&name, &v),
            "--mark-rate" => o.mark_rate = num(&name, &v),
            "--drain-ms" => o.drain_ms = num(&name, &v),
            "--pid" => {
                o.pids = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| num::<u32>(&name, s))
                    .collect()
            }
            "--idle-secs" => o.idle_secs = num(&name, &v),
            "--child-index" => o.child_index = num(&name, &v),
            "--child-count" => o.child_count = num(&name, &v),
            "--run-start-ns" => o.run_start_ns = num(&name, &v),
            "--deadline" => o.deadline = num(&name, &v),
            _ => die(&format!("unknown option '{name}' (see --help)")),
        }
    }
    if o.streams == 0 {
        die("--streams: must be at least 1");
    }
    if !o.hold.is_finite() || o.hold < 0.0 || !o.ramp.is_finite() || o.ramp < 0.0 {
        die("--hold and --ramp must be >= 0");
    }
    if o.mark_rate <= 0.0 || !o.mark_rate.is_finite() {
        die("--mark-rate: must be > 0");
    }
    if o.processes == Some(0) {
        die("--processes: must be at least 1");
    }
    if o.logs == 0 {
        die("--logs: must be at least 1");
    }
    if o.logs > 1 && !o.child {
        if !o.path.contains("{i}") {
            die("--logs: the --url needs `{i}` where the log number goes");
        }
        if o.mark_file.as_ref().is_some_and(|f| !f.contains("{i}"))
            || o.publish.as_ref().is_some_and(|p| !p.2.contains("{i}"))
        {
            die("--logs: --mark-file and --publish-url need `{i}` where the log number goes");
        }
    }
    o
}

/// `template` with `{i}` replaced by `i`.
fn for_log(template: &str, i: usize) -> String {
    template.replace("{i}", &i.to_string())
}

fn resolve(host: &str, port: u16) -> SocketAddrV4 {
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return SocketAddrV4::new(ip, port);
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| {
            it.find_map(|a| match a {
                std::net::SocketAddr::V4(v4) => Some(v4),
                _ => None,
            })
        })
        .unwrap_or_else(|| die(&format!("cannot resolve '{host}' to an IPv4 address")))
}

/// The request head, split where the log number goes when the path has `{i}`
/// (only its first `{i}` is replaced per connection).
fn request(o: &Opts) -> (Vec<u8>, Option<Vec<u8>>) {
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}:{}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nUser-Agent: logcast-load/0.1\r\n\r\n",
        o.path, o.host, o.port
    );
    match head.split_once("{i}") {
        Some((a, b)) => (a.as_bytes().to_vec(), Some(b.as_bytes().to_vec())),
        None => (head.into_bytes(), None),
    }
}

// ---------------------------------------------------------------- worker

fn worker_main(o: Opts) {
    logcast::sys::raise_nofile_limit();
    let (request, request_rest) = request(&o);
    let cfg = Config {
        target: resolve(&o.host, o.port),
        request,
        request_rest,
        logs: o.logs,
        time_lines: o.time_lines,
        streams: o.streams,
        ramp: o.ramp,
        max_pending: o.max_pending,
        sources: o.sources.clone(),
        port_range: local_port_range(),
        index: o.child_index,
        count: o.child_count.max(1),
        timeout: Duration::from_secs_f64(o.timeout),
        run_start_ns: o.run_start_ns,
        deadline: Duration::from_secs_f64(o.deadline),
    };
    let (poll, waker) = client::poll_with_waker().unwrap_or_else(|e| die(&format!("poll: {e}")));
    let control = Arc::new(Control::default());
    control.written.store(u64::MAX, Ordering::SeqCst);
    {
        // keep a waker alive here: if the thread's were the last, closing it
        // could drop the wake-up from the epoll set before it is seen
        let control = control.clone();
        let waker = waker.clone();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut line = String::new();
            loop {
                line.clear();
                match stdin.lock().read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if let Some(n) = line.trim().strip_prefix("STOP") {
                            if let Ok(n) = n.trim().parse::<u64>() {
                                control.written.store(n, Ordering::SeqCst);
                            }
                            break;
                        }
                    }
                }
            }
            control.stop.store(true, Ordering::SeqCst);
            let _ = waker.wake();
        });
    }
    let out = Worker::new(cfg).run(poll, control, |t, ready| {
        println!(
            "{} attempted={} connected={} failed={} ramp_ms={}",
            if ready { "READY" } else { "PROGRESS" },
            t.attempted,
            t.connected,
            t.failed(),
            t.ramp_ms
        );
    });
    let out = out.unwrap_or_else(|e| die(&format!("poll: {e}")));
    let mut line = String::from("RESULT");
    for (k, v) in out.totals.fields() {
        line.push_str(&format!(" {k}={v}"));
    }
    let statuses: Vec<String> = out
        .statuses
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    let marks: Vec<String> = out
        .per_mark
        .iter()
        .enumerate()
        .filter(|(_, m)| m.0 != u32::MAX)
        .map(|(i, m)| format!("{i}:{}:{}", m.0, m.1))
        .collect();
    line.push_str(&format!(
        " statuses={} marks={} lat={} conn={}",
        statuses.join(","),
        marks.join(","),
        out.latency.encode(),
        out.connect.encode()
    ));
    println!("{line}");
}

struct Merged {
    totals: Totals,
    latency: Histogram,
    /// Per mark seq: first and last arrival over all streams (µs).
    per_mark: Vec<(u32, u32)>,
    connect: Histogram,
    statuses: BTreeMap<u16, u64>,
}

fn parse_result(line: &str, m: &mut Merged) -> Result<(), String> {
    let mut t = Totals::default();
    for kv in line.split_whitespace().skip(1) {
        let (k, v) = kv.split_once('=').ok_or(format!("bad field '{kv}'"))?;
        match k {
            "lat" => m.latency.merge(&Histogram::decode(v)?),
            "conn" => m.connect.merge(&Histogram::decode(v)?),
            "marks" => {
                for item in v.split(',').filter(|s| !s.is_empty()) {
                    let f: Vec<u64> = item.split(':').filter_map(|x| x.parse().ok()).collect();
                    if f.len() != 3 || f[0] as usize >= client::MAX_MARKS {
                        return Err(format!("bad mark '{item}'"));
                    }
                    let i = f[0] as usize;
                    if m.per_mark.len() <= i {
                        m.per_mark.resize(i + 1, (u32::MAX, 0));
                    }
                    let e = &mut m.per_mark[i];
                    e.0 = e.0.min(f[1] as u32);
                    e.1 = e.1.max(f[2] as u32);
                }
            }
            "statuses" => {
                for s in v.split(',').filter(|s| !s.is_empty()) {
                    let (code, n) = s.split_once(':').ok_or("bad statuses")?;
                    let code: u16 = code.parse().map_err(|_| "bad status")?;
                    let n: u64 = n.parse().map_err(|_| "bad status count")?;
                    *m.statuses.entry(code).or_insert(0) += n;
                }
            }
            _ => {
                let n: u64 = v.parse().map_err(|_| format!("bad number in '{kv}'"))?;
                if !t.set(k, n) {
                    return Err(format!("unknown field '{k}'"));
                }
            }
        }
    }
    // ramp_ms: the slowest worker, not the sum
    let ramp = m.totals.ramp_ms.max(t.ramp_ms);
    m.totals.add(&t);
    m.totals.ramp_ms = ramp;
    Ok(())
}

// ---------------------------------------------------------------- parent

/// The kernel's ephemeral port range (inclusive), 32768..=60999 if unknown.
fn local_port_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let v: Vec<u16> = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 2 && v[1] >= v[0] && v[0] > 0).then(|| (v[0], v[1]))
        })
        .unwrap_or((32768, 60999))
}

fn port_range() -> u64 {
    let (lo, hi) = local_port_range();
    (hi - lo) as u64 + 1
}

struct Report {
    merged: Merged,
    processes: usize,
    sources: usize,
    /// Mark lines written (all logs), rounds of one mark per log, logs.
    marks_written: u64,
    marks_secs: f64,
    rounds: u64,
    logs: usize,
    mark_rate: f64,
    /// Marks POSTed: answered 2xx, failed; None without --publish-url.
    publish: Option<(u64, u64)>,
    clk: u64,
    daemon: bool,
    rss_base_kib: u64,
    rss_kib: u64,
    rss_end_kib: u64,
    cpu_idle_pct: Option<f64>,
    cpu_hold_pct: f64,
    cpu_marks_secs: f64,
    cpu_marks_secs_ticks: f64,
    cpu_source: &'static str,
    hold_window_secs: f64,
    loadgen_cpu_pct: f64,
    /// The worker processes' resident memory while the streams are held.
    loadgen_rss_kib: u64,
    target: String,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Over the marks written: (mean, max) of the first arrival, (mean, max) of
/// last minus first arrival, in ms, and how many marks no stream got.
fn mark_spread(per_mark: &[(u32, u32)], written: u64) -> ((f64, f64), (f64, f64), u64) {
    let (mut n, mut first_sum, mut first_max, mut spread_sum, mut spread_max, mut lost) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for i in 0..written as usize {
        match per_mark.get(i) {
            Some(&(lo, hi)) if lo != u32::MAX => {
                n += 1;
                first_sum += lo as u64;
                first_max = first_max.max(lo as u64);
                spread_sum += (hi - lo) as u64;
                spread_max = spread_max.max((hi - lo) as u64);
            }
            _ => lost += 1,
        }
    }
    let mean = |sum: u64| {
        if n == 0 {
            0.0
        } else {
            sum as f64 / n as f64 / 1000.0
        }
    };
    (
        (mean(first_sum), first_max as f64 / 1000.0),
        (mean(spread_sum), spread_max as f64 / 1000.0),
        lost,
    )
}

impl Report {
    fn spread(&self) -> ((f64, f64), (f64, f64), u64) {
        mark_spread(&self.merged.per_mark, self.rounds)
    }

    /// Lines per second the marks went out at: over the schedule (rounds /
    /// rate), or over the time writing them took when that was longer.
    fn marks_per_sec(&self) -> f64 {
        let span = self
            .marks_secs
            .max(self.rounds as f64 / self.mark_rate)
            .max(1e-9);
        self.marks_written as f64 / span
    }

    fn rss_per_stream(&self) -> f64 {
        let c = self.merged.totals.connected;
        if c == 0 {
            0.0
        } else {
            (self.rss_kib.saturating_sub(self.rss_base_kib)) as f64 * 1024.0 / c as f64
        }
    }

    fn cpu_per_event_us(&self) -> f64 {
        let n = self.merged.totals.marks_received;
        if n == 0 {
            0.0
        } else {
            self.cpu_marks_secs * 1e6 / n as f64
        }
    }

    fn table(&self) -> String {
        let t = &self.merged.totals;
        let l = &self.merged.latency;
        let c = &self.merged.connect;
        let mut s = String::new();
        let mut row = |k: &str, v: String| s.push_str(&format!("  {k:<16} {v}\n"));
        row("target", self.target.clone());
        row(
            "streams",
            format!(
                "{} connected of {} (worker processes {}, source addresses {}), ramp {:.1} s",
                t.connected,
                t.attempted,
                self.processes,
                self.sources.max(1),
                t.ramp_ms as f64 / 1000.0
            ),
        );
        row(
            "connect ms",
            format!(
                "p50 {:.1}  p99 {:.1}  max {:.1}",
                ms(c.percentile(50.0)),
                ms(c.percentile(99.0)),
                ms(c.max())
            ),
        );
        let statuses: Vec<String> = self
            .merged
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}x{v}"))
            .collect();
        row(
            "failed",
            format!(
                "{} (refused {}, timeout {}, status {}{}, reset {}, other {})",
                t.failed(),
                t.failed_refused,
                t.failed_timeout,
                t.failed_status,
                if statuses.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", statuses.join(" "))
                },
                t.failed_reset,
                t.failed_other
            ),
        );
        row(
            "closed early",
            format!(
                "{} (eof {}, reset {}), open at end {}; server events end {}, shutdown {}, reset {}",
                t.closed_early(),
                t.closed_early_eof,
                t.closed_early_reset,
                t.open_at_end,
                t.end_events,
                t.shutdown_events,
                t.reset_events
            ),
        );
        row(
            "events",
            format!("{} ({:.1} MB)", t.events, t.bytes as f64 / 1e6),
        );
        if self.rounds > 0 {
            row(
                "marks sent",
                format!(
                    "{} log(s) x {} round(s) at {} per s per log, in {:.1} s ({:.1} lines/s){}",
                    self.logs,
                    self.rounds,
                    self.mark_rate,
                    self.marks_secs,
                    self.marks_per_sec(),
                    match self.publish {
                        Some((ok, failed)) => format!("; published {ok} (2xx), failed {failed}"),
                        None => String::new(),
                    }
                ),
            );
        }
        row(
            "marks",
            format!(
                "written {}, received {} of {} expected; streams missing any {} ({} marks); stale {}, duplicate {}",
                self.marks_written,
                t.marks_received,
                t.marks_expected,
                t.streams_missing_marks,
                t.marks_missing,
                t.marks_stale,
                t.marks_duplicate
            ),
        );
        row(
            "latency ms",
            format!(
                "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  (n={})",
                ms(l.percentile(50.0)),
                ms(l.percentile(90.0)),
                ms(l.percentile(99.0)),
                ms(l.max()),
                l.count()
            ),
        );
        let ((fm, fx), (sm, sx), lost) = self.spread();
        // one mark per round per log: across logs, "first" and "last" mean little
        if self.logs == 1 && self.rounds > 0 {
            row(
            "per mark ms",
            format!(
                "first stream to get it: mean {fm:.1} max {fx:.1}; last minus first: mean {sm:.1} max {sx:.1}; marks no stream got {lost}"
            ),
        );
        }
        if self.daemon {
            row(
                "daemon RSS",
                format!(
                    "{} KiB held ({} KiB before, {} KiB at end) = {:.0} B per stream",
                    self.rss_kib,
                    self.rss_base_kib,
                    self.rss_end_kib,
                    self.rss_per_stream()
                ),
            );
            row(
                "daemon CPU",
                format!(
                    "idle {}, hold {:.2} % over {:.1} s, {:.3} s during marks = {:.2} us per event received ({}; utime+stime: {:.2} s at CLK_TCK {})",
                    self.cpu_idle_pct
                        .map_or("-".to_string(), |p| format!("{p:.2} %")),
                    self.cpu_hold_pct,
                    self.hold_window_secs,
                    self.cpu_marks_secs,
                    self.cpu_per_event_us(),
                    self.cpu_source,
                    self.cpu_marks_secs_ticks,
                    self.clk
                ),
            );
        }
        row(
            "load generator",
            format!(
                "{:.1} % CPU during the hold, {} KiB resident (all workers) = {:.0} B per stream",
                self.loadgen_cpu_pct,
                self.loadgen_rss_kib,
                self.loadgen_rss_kib as f64 * 1024.0 / self.merged.totals.connected.max(1) as f64
            ),
        );
        s
    }

    fn json(&self) -> String {
        let ((fm, fx), (sm, sx), lost) = self.spread();
        let t = &self.merged.totals;
        let l = &self.merged.latency;
        let c = &self.merged.connect;
        let statuses: Vec<String> = self
            .merged
            .statuses
            .iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect();
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
        let daemon = |v: String| if self.daemon { v } else { "null".into() };
        format!(
            concat!(
                "{{\"target\": \"{}\", \"streams\": {}, \"processes\": {}, \"source_addrs\": {}, ",
                "\"connected\": {}, \"failed\": {{\"refused\": {}, \"timeout\": {}, \"status\": {}, \"reset\": {}, \"other\": {}}}, ",
                "\"statuses\": {{{}}}, \"closed_early\": {}, \"closed_early_eof\": {}, \"closed_early_reset\": {}, \"open_at_end\": {}, ",
                "\"ramp_secs\": {:.3}, \"connect_ms\": {{\"p50\": {:.3}, \"p99\": {:.3}, \"max\": {:.3}}}, ",
                "\"events\": {}, \"bytes\": {}, \"end_events\": {}, \"shutdown_events\": {}, \"reset_events\": {}, ",
                "\"logs\": {}, \"rounds\": {}, \"mark_rate_per_log\": {}, \"marks_secs\": {:.3}, \"marks_per_sec\": {:.3}, \"publish_ok\": {}, \"publish_failed\": {}, ",
                "\"marks_written\": {}, \"marks_received\": {}, \"marks_expected\": {}, \"marks_missing\": {}, ",
                "\"streams_missing_marks\": {}, \"marks_stale\": {}, \"marks_duplicate\": {}, ",
                "\"latency_ms\": {{\"count\": {}, \"p50\": {:.3}, \"p90\": {:.3}, \"p99\": {:.3}, \"max\": {:.3}, \"mean\": {:.3}}}, ",
                "\"mark_first_ms\": {{\"mean\": {:.3}, \"max\": {:.3}}}, \"mark_spread_ms\": {{\"mean\": {:.3}, \"max\": {:.3}}}, \"marks_lost\": {}, ",
                "\"rss_base_kib\": {}, \"rss_kib\": {}, \"rss_end_kib\": {}, \"rss_per_stream_bytes\": {}, ",
                "\"cpu_idle_pct\": {}, \"cpu_hold_pct\": {}, \"hold_window_secs\": {:.3}, \"cpu_marks_secs\": {}, \"cpu_per_event_us\": {}, ",
                "\"cpu_source\": \"{}\", \"cpu_marks_secs_ticks\": {}, \"clk_tck\": {}, \"loadgen_cpu_pct\": {:.2}, \"loadgen_rss_kib\": {}, \"latency_cdf_ms\": [{}]}}"
            ),
            self.target,
            t.attempted,
            self.processes,
            self.sources,
            t.connected,
            t.failed_refused,
            t.failed_timeout,
            t.failed_status,
            t.failed_reset,
            t.failed_other,
            statuses.join(", "),
            t.closed_early(),
            t.closed_early_eof,
            t.closed_early_reset,
            t.open_at_end,
            t.ramp_ms as f64 / 1000.0,
            ms(c.percentile(50.0)),
            ms(c.percentile(99.0)),
            ms(c.max()),
            t.events,
            t.bytes,
            t.end_events,
            t.shutdown_events,
            t.reset_events,
            self.logs,
            self.rounds,
            self.mark_rate,
            self.marks_secs,
            self.marks_per_sec(),
            self.publish.map_or("null".to_string(), |p| p.0.to_string()),
            self.publish.map_or("null".to_string(), |p| p.1.to_string()),
            self.marks_written,
            t.marks_received,
            t.marks_expected,
            t.marks_missing,
            t.streams_missing_marks,
            t.marks_stale,
            t.marks_duplicate,
            l.count(),
            ms(l.percentile(50.0)),
            ms(l.percentile(90.0)),
            ms(l.percentile(99.0)),
            ms(l.max()),
            l.mean() / 1000.0,
            fm,
            fx,
            sm,
            sx,
            lost,
            daemon(self.rss_base_kib.to_string()),
            daemon(self.rss_kib.to_string()),
            daemon(self.rss_end_kib.to_string()),
            daemon(format!("{:.1}", self.rss_per_stream())),
            if self.daemon { opt(self.cpu_idle_pct) } else { "null".into() },
            daemon(format!("{:.3}", self.cpu_hold_pct)),
            self.hold_window_secs,
            daemon(format!("{:.3}", self.cpu_marks_secs)),
            daemon(format!("{:.3}", self.cpu_per_event_us())),
            self.cpu_source,
            daemon(format!("{:.3}", self.cpu_marks_secs_ticks)),
            self.clk,
            self.loadgen_cpu_pct,
            self.loadgen_rss_kib,
            latency_cdf(l),
        )
    }
}

/// The latency distribution as `[percentile, ms]` pairs (every whole
/// percentile, then 99.5, 99.9 and 100), for a report's CDF plot.
fn latency_cdf(h: &Histogram) -> String {
    if h.count() == 0 {
        return String::new();
    }
    let points = (0..100).map(f64::from).chain([99.5, 99.9, 100.0]);
    let pairs: Vec<String> = points
        .map(|p| format!("[{p}, {:.3}]", ms(h.percentile(p))))
        .collect();
    pairs.join(", ")
}

enum Msg {
    Line(usize, String),
    Eof(usize),
}

fn parent_main(o: Opts) {
    let soft = logcast::sys::raise_nofile_limit();
    let per_proc_max = 19_000usize.min(soft.saturating_sub(100) as usize).max(1);
    let processes = o
        .processes
        .unwrap_or_else(|| o.streams.div_ceil(18_000).max(1));
    let per_proc = o.streams.div_ceil(processes);
    if per_proc > per_proc_max {
        die(&format!(
            "{} streams over {} process(es) is {} sockets per process, over {} (open-file limit {}): use --processes {} or more",
            o.streams,
            processes,
            per_proc,
            per_proc_max,
            soft,
            o.streams.div_ceil(per_proc_max)
        ));
    }
    let target = resolve(&o.host, o.port);
    let mut sources = o.sources.clone();
    let ports = port_range();
    let per_source_max = ports.saturating_sub(500).max(1) as usize;
    if sources.is_empty() && o.streams > 25_000 && target.ip().is_loopback() {
        let k = o.streams.div_ceil(25_000);
        sources = (1..=k as u32)
            .map(|n| Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + n))
            .collect();
    }
    if o.streams.div_ceil(sources.len().max(1)) > per_source_max {
        die(&format!(
            "{} streams from {} source address(es) needs more than the {} local ports per address: use --source-count {}",
            o.streams,
            sources.len().max(1),
            per_source_max,
            o.streams.div_ceil(per_source_max)
        ));
    }
    let clk = procstat::clk_tck();
    let pids: Vec<u32> = if o.pid_tree {
        let mut v = Vec::new();
        for &p in &o.pids {
            for q in procstat::with_descendants(p) {
                if !v.contains(&q) {
                    v.push(q);
                }
            }
        }
        v
    } else {
        o.pids.clone()
    };
    let daemon = !pids.is_empty();
    if daemon && procstat::sample(&pids).alive != pids.len() {
        die(&format!("--pid: no such process in {pids:?}"));
    }
    // the mark files exist before any stream asks for them (a log that does
    // not exist is a 404); up to 4096 are held open for the whole run
    let mut mark_files: Vec<Option<File>> = Vec::new();
    if let Some(tpl) = &o.mark_file {
        for i in 0..o.logs {
            let path = for_log(tpl, i);
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| die(&format!("--mark-file {path}: {e}")));
            mark_files.push((o.logs <= 4096).then_some(f));
        }
    }
    let mut publisher = o.publish.as_ref().map(|(h, p, _)| {
        publish::Publisher::new(resolve(h, *p), &format!("{h}:{p}"), Duration::from_secs(10))
    });
    let base = procstat::sample(&pids);
    let run_start_ns = unix_ns();
    let ramp_secs = if o.ramp > 0.0 {
        o.streams as f64 / o.ramp
    } else {
        5.0
    };
    let ready_secs = o
        .ready_timeout
        .unwrap_or(2.0 * ramp_secs + o.timeout + 60.0);
    // Workers stop by themselves after this, whatever the parent says.
    let deadline = ready_secs + o.idle_secs + o.hold + o.drain_ms as f64 / 1000.0 + 120.0;
    let exe = std::env::current_exe().unwrap_or_else(|e| die(&format!("current_exe: {e}")));
    let src_arg: Vec<String> = sources.iter().map(|a| a.to_string()).collect();
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut children: Vec<Child> = Vec::new();
    for i in 0..processes {
        // worker i holds global connections i, i+P, i+2P, ...
        let n = (o.streams + processes - 1 - i) / processes;
        let mut cmd = Command::new(&exe);
        cmd.args(["--child", "--host", &o.host, "--path", &o.path])
            .args(["--port", &o.port.to_string()])
            .args(["--streams", &n.to_string()])
            .args(["--ramp", &(o.ramp / processes as f64).to_string()])
            .args(["--max-pending", &o.max_pending.to_string()])
            .args(["--timeout", &o.timeout.to_string()])
            .args(["--child-index", &i.to_string()])
            .args(["--child-count", &processes.to_string()])
            .args(["--run-start-ns", &run_start_ns.to_string()])
            .args(["--deadline", &deadline.to_string()])
            .args(["--logs", &o.logs.to_string()]);
        if o.time_lines {
            cmd.arg("--time-lines");
        }
        if !src_arg.is_empty() {
            cmd.args(["--source-addrs", &src_arg.join(",")]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| die(&format!("spawn worker: {e}")));
        let out = child.stdout.take().expect("stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(Msg::Line(i, l)).is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send(Msg::Eof(i));
        });
        children.push(child);
    }
    drop(tx);
    let kill_all = |children: &mut Vec<Child>| {
        for c in children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    };
    eprintln!(
        "logcast-load: {} streams to {}:{}{} over {} process(es), ramp {}/s",
        o.streams, o.host, o.port, o.path, processes, o.ramp
    );

    // wait until every worker has every stream connected (or failed)
    // per worker: (ready, attempted, connected, failed) from its last line
    let mut progress = vec![(false, 0u64, 0u64, 0u64); processes];
    let mut results: Vec<Option<String>> = vec![None; processes];
    let wait_until = Instant::now() + Duration::from_secs_f64(ready_secs);
    let mut last_report = Instant::now();
    let mut incomplete = false;
    let sum = |p: &[(bool, u64, u64, u64)]| {
        p.iter()
            .fold((0, 0, 0), |a, x| (a.0 + x.1, a.1 + x.2, a.2 + x.3))
    };
    while progress.iter().any(|r| !r.0) {
        let left = wait_until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(Msg::Line(i, l)) if l.starts_with("READY") || l.starts_with("PROGRESS") => {
                let p = &mut progress[i];
                p.0 = l.starts_with("READY");
                for kv in l.split_whitespace().skip(1) {
                    let v = kv
                        .split_once('=')
                        .map(|(k, v)| (k, v.parse::<u64>().unwrap_or(0)));
                    match v {
                        Some(("attempted", v)) => p.1 = v,
                        Some(("connected", v)) => p.2 = v,
                        Some(("failed", v)) => p.3 = v,
                        _ => {}
                    }
                }
            }
            Ok(Msg::Line(i, l)) if l.starts_with("RESULT") => results[i] = Some(l),
            Ok(Msg::Line(_, l)) => eprintln!("{l}"),
            Ok(Msg::Eof(i)) => {
                kill_all(&mut children);
                die(&format!("worker {i} exited before it was ready"));
            }
            Err(_) => {}
        }
        if Instant::now() >= wait_until {
            let (a, c, f) = sum(&progress);
            eprintln!(
                "logcast-load: not every stream resolved in time ({a} started, {c} connected, {f} failed): stopping"
            );
            incomplete = true;
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let (a, c, f) = sum(&progress);
            eprintln!("logcast-load: ramp: {a} started, {c} connected, {f} failed");
        }
    }
    let t_ready = Instant::now();
    let (_, ready_connected, ready_failed) = sum(&progress);
    if !incomplete {
        eprintln!(
            "logcast-load: ramp done: {ready_connected} connected, {ready_failed} failed, in {:.1} s",
            run_start_ns.abs_diff(unix_ns()) as f64 / 1e9
        );
    }
    // let the daemon settle, then measure what the idle streams cost
    if !incomplete {
        std::thread::sleep(Duration::from_millis(500));
    }
    let held = procstat::sample(&pids);
    let own: Vec<u32> = children.iter().map(Child::id).collect();
    let loadgen_held = procstat::sample(&own);
    let mut cpu_idle_pct = None;
    if o.idle_secs > 0.0 && !incomplete {
        let t0 = Instant::now();
        let a = procstat::sample(&pids);
        std::thread::sleep(Duration::from_secs_f64(o.idle_secs));
        let b = procstat::sample(&pids);
        let secs = t0.elapsed().as_secs_f64();
        cpu_idle_pct = Some(a.cpu_secs_until(&b, clk) / secs * 100.0);
    }

    // the hold, with marks
    let hold_t0 = Instant::now();
    let hold_s0 = procstat::sample(&pids);
    let mut written = 0u64;
    let mut rounds = 0u64;
    // marks that reached every target, per log
    let mut per_log = vec![0u32; o.logs];
    if (o.mark_file.is_some() || o.publish.is_some()) && !incomplete {
        let period = 1.0 / o.mark_rate;
        let n = ((o.hold * o.mark_rate).floor() as u64).max(1);
        let mut rng = rand::thread_rng();
        let mut order: Vec<(f64, usize)> = Vec::with_capacity(o.logs);
        let mut errors = 0u32;
        let mut error = |what: String| {
            errors += 1;
            if errors <= 5 {
                eprintln!("logcast-load: {what}");
            }
        };
        for seq in 0..n {
            // Each log's mark goes out at a random point of its period: a
            // fixed phase would lock onto the daemon's poll tick (500 ms is
            // 5 x 100 ms) and measure one point of the latency distribution.
            order.clear();
            for i in 0..o.logs {
                let u: f64 = if o.mark_jitter {
                    rng.gen()
                } else {
                    i as f64 / o.logs as f64
                };
                order.push((u, i));
            }
            order.sort_by(|a, b| a.0.total_cmp(&b.0));
            for &(u, i) in &order {
                let at = hold_t0 + Duration::from_secs_f64((seq as f64 + u) * period);
                if let Some(d) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                // a file opened for this mark is opened before its time is taken
                let mut opened = None;
                if let Some(tpl) = &o.mark_file {
                    if mark_files[i].is_none() {
                        let path = for_log(tpl, i);
                        match OpenOptions::new().append(true).open(&path) {
                            Ok(f) => opened = Some(f),
                            Err(e) => {
                                error(format!("--mark-file {path}: {e}"));
                                continue;
                            }
                        }
                    }
                }
                let ns = unix_ns();
                let line = format!("MARK {ns} {seq}\n");
                let mut ok = true;
                if o.mark_file.is_some() {
                    let f = match opened.as_mut() {
                        Some(f) => f,
                        None => mark_files[i].as_mut().expect("held open"),
                    };
                    match f.write(line.as_bytes()) {
                        Ok(k) if k == line.len() => {}
                        Ok(k) => error(format!("short write of a mark ({k} of {})", line.len())),
                        Err(e) => {
                            error(format!("writing a mark: {e}"));
                            ok = false;
                        }
                    }
                }
                if let (Some(p), Some((_, _, path))) = (publisher.as_mut(), o.publish.as_ref()) {
                    let body = &line.as_bytes()[..line.len() - 1];
                    match p.post(&for_log(path, i), body) {
                        Ok(()) => {}
                        Err(e) => {
                            error(format!("publishing a mark: {e}"));
                            ok = false;
                        }
                    }
                }
                if ok {
                    written += 1;
                    per_log[i] += 1;
                }
            }
            rounds += 1;
        }
        if errors > 5 {
            eprintln!("logcast-load: {errors} errors writing or publishing marks in all");
        }
    }
    // how long writing the marks took: longer than the hold when the writer
    // could not keep the schedule
    let marks_secs = hold_t0.elapsed().as_secs_f64();
    // every stream is expected to get every mark of its log
    let expected = per_log.iter().copied().min().unwrap_or(0) as u64;
    if per_log.iter().any(|&c| c as u64 != expected) {
        eprintln!(
            "logcast-load: some marks could not be written: each stream is expected to get {expected}"
        );
    }
    let hold_end = hold_t0 + Duration::from_secs_f64(o.hold);
    if let Some(d) = hold_end
        .checked_duration_since(Instant::now())
        .filter(|_| !incomplete)
    {
        std::thread::sleep(d);
    }
    // every publish answered (nchan answers once it has fanned out)
    // (a server slower than the marks answers long after the last one)
    if let Some(p) = publisher.as_mut() {
        p.finish(Duration::from_secs(60));
        if p.failed > 0 {
            eprintln!(
                "logcast-load: {} of {} publishes failed: {}",
                p.failed,
                p.ok + p.failed,
                p.first_error.as_deref().unwrap_or("?")
            );
        }
    }
    if !incomplete {
        std::thread::sleep(Duration::from_millis(o.drain_ms));
    }
    let hold_s1 = procstat::sample(&pids);
    let hold_window_secs = hold_t0.elapsed().as_secs_f64();
    let end = procstat::sample(&pids);

    // stop the workers and collect their results
    let t_stop = Instant::now();
    for c in children.iter_mut() {
        if let Some(stdin) = c.stdin.as_mut() {
            let _ = writeln!(stdin, "STOP {expected}");
        }
    }
    let mut eofs = 0;
    let collect_until = Instant::now() + Duration::from_secs(60);
    while eofs < processes {
        let left = collect_until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Msg::Line(i, l)) if l.starts_with("RESULT") => results[i] = Some(l),
            Ok(Msg::Line(_, l)) => eprintln!("{l}"),
            Ok(Msg::Eof(_)) => eofs += 1,
            Err(_) => break,
        }
    }
    kill_all(&mut children);
    let mut merged = Merged {
        totals: Totals::default(),
        latency: Histogram::new(),
        per_mark: Vec::new(),
        connect: Histogram::new(),
        statuses: BTreeMap::new(),
    };
    for (i, r) in results.iter().enumerate() {
        match r {
            Some(l) => {
                if let Err(e) = parse_result(l, &mut merged) {
                    die(&format!("worker {i}: {e}"));
                }
            }
            None => die(&format!("worker {i} gave no result")),
        }
    }
    let stop_secs = t_stop.duration_since(t_ready).as_secs_f64().max(1e-3);
    let cpu_marks_secs = hold_s0.cpu_secs_until(&hold_s1, clk);
    let cpu_marks_secs_ticks = hold_s0.ticks_secs_until(&hold_s1, clk);
    let cpu_source = if hold_s0.ns.is_some() && hold_s1.ns.is_some() {
        "schedstat"
    } else {
        "ticks"
    };
    let report = Report {
        loadgen_cpu_pct: merged.totals.self_cpu_ticks as f64 / clk as f64 / stop_secs * 100.0,
        merged,
        processes,
        sources: sources.len(),
        marks_written: written,
        marks_secs,
        rounds,
        logs: o.logs,
        mark_rate: o.mark_rate,
        publish: publisher.as_ref().map(|p| (p.ok, p.failed)),
        clk,
        daemon,
        rss_base_kib: base.rss_kib,
        rss_kib: held.rss_kib,
        rss_end_kib: end.rss_kib,
        cpu_idle_pct,
        cpu_hold_pct: cpu_marks_secs / hold_window_secs * 100.0,
        cpu_marks_secs,
        cpu_marks_secs_ticks,
        cpu_source,
        hold_window_secs,
        loadgen_rss_kib: loadgen_held.rss_kib,
        target: format!("http://{}:{}{}", o.host, o.port, o.path),
    };
    if o.json {
        eprint!("{}", report.table());
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    let t = &report.merged.totals;
    if incomplete {
        std::process::exit(1);
    }
    if o.expect_marks && (t.streams_missing_marks > 0 || t.connected < t.attempted || written == 0)
    {
        eprintln!(
            "logcast-load: --expect-marks: {} of {} streams connected, {} missed marks",
            t.connected, t.attempted, t.streams_missing_marks
        );
        std::process::exit(3);
    }
}

fn main() {
    let o = parse_opts();
    if o.child {
        worker_main(o)
    } else {
        parent_main(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_merge_across_workers() {
        let mut m = Merged {
            totals: Totals::default(),
            latency: Histogram::new(),
            per_mark: Vec::new(),
            connect: Histogram::new(),
            statuses: BTreeMap::new(),
        };
        let mut h1 = Histogram::new();
        h1.record(1000);
        let mut h2 = Histogram::new();
        h2.record(3000);
        let l1 = format!(
            "RESULT connected=2 events=5 ramp_ms=10 statuses=503:1 marks=0:100:900,1:50:60 lat={} conn={}",
            h1.encode(),
            Histogram::new().encode()
        );
        let l2 = format!(
            "RESULT connected=3 events=1 ramp_ms=30 statuses=503:2,404:1 marks=0:80:1000 lat={} conn={}",
            h2.encode(),
            Histogram::new().encode()
        );
        parse_result(&l1, &mut m).unwrap();
        parse_result(&l2, &mut m).unwrap();
        assert_eq!(m.totals.connected, 5);
        assert_eq!(m.totals.events, 6);
        assert_eq!(m.totals.ramp_ms, 30);
        assert_eq!(m.statuses[&503], 3);
        assert_eq!(m.statuses[&404], 1);
        assert_eq!(m.latency.count(), 2);
        assert_eq!(m.latency.max(), 3000);
        assert_eq!(m.per_mark, vec![(80, 1000), (50, 60)]);
        let ((fm, fx), (sm, sx), lost) = mark_spread(&m.per_mark, 3);
        assert!((fm - 0.065).abs() < 1e-9 && (fx - 0.08).abs() < 1e-9);
        assert!((sm - 0.465).abs() < 1e-9 && (sx - 0.92).abs() < 1e-9);
        assert_eq!(lost, 1);
        assert!(parse_result("RESULT bogus=1", &mut m).is_err());
        assert!(parse_result("RESULT marks=1:2", &mut m).is_err());
    }

    #[test]
    fn url_parsing() {
        assert_eq!(
            parse_url("http://127.0.0.1:5000/api/logs/x/stream?tail=0"),
            ("127.0.0.1".into(), 5000, "/api/logs/x/stream?tail=0".into())
        );
        assert_eq!(
            parse_url("http://localhost"),
            ("localhost".into(), 80, "/".into())
        );
    }
}
