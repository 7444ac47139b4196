//! One worker process: a single mio reactor holding many SSE streams.
//!
//! Per connection it keeps about 64 bytes (socket, phase, parser state and
//! two counters); every read goes into one shared buffer and is parsed
//! incrementally, so the response head is the only thing ever buffered per
//! connection, and only while it is incomplete.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::sse::{Chunked, Event, Kind, SseParser};
use crate::stats::{Histogram, Totals};

pub const WAKER: Token = Token(usize::MAX);
/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Shared read buffer.
const BUF: usize = 64 * 1024;
/// Marks with a higher seq are not tracked one by one.
pub const MAX_MARKS: usize = 1 << 20;

pub struct Config {
    pub target: SocketAddrV4,
    /// The request head; with `logs` > 1, split where the log number goes:
    /// global connection g asks for log `g % logs`.
    pub request: Vec<u8>,
    pub request_rest: Option<Vec<u8>>,
    pub logs: usize,
    /// `[<RFC 3339>]` data lines are marks too (SseParser::with_time_lines).
    pub time_lines: bool,
    pub streams: usize,
    /// Connections started per second; 0 = as fast as possible.
    pub ramp: f64,
    /// At most this many started connections without their response head
    /// yet (0 = no limit): a closed-loop ramp.
    pub max_pending: usize,
    /// Source addresses to bind to before connecting; empty = let the kernel pick.
    pub sources: Vec<Ipv4Addr>,
    /// Source ports to use with `sources` (inclusive).
    pub port_range: (u16, u16),
    /// This worker's index and the number of workers: local connection j is
    /// global connection `index + j * count`, which picks its source address.
    pub index: usize,
    pub count: usize,
    /// Connect + response head must complete within this.
    pub timeout: Duration,
    /// Marks stamped before this (unix ns) are from an earlier run.
    pub run_start_ns: u64,
    /// Hard stop, whatever the parent says.
    pub deadline: Duration,
}

/// Shared with the thread that reads the parent's commands.
#[derive(Default)]
pub struct Control {
    pub stop: AtomicBool,
    /// Marks the parent wrote (u64::MAX: unknown).
    pub written: AtomicU64,
}

pub struct Outcome {
    pub totals: Totals,
    pub latency: Histogram,
    /// Per mark seq: (first, last) arrival latency in µs over this
    /// worker's streams; (u32::MAX, 0) for a mark no stream got.
    pub per_mark: Vec<(u32, u32)>,
    pub connect: Histogram,
    pub statuses: BTreeMap<u16, u64>,
}

const P_CONNECTING: u8 = 0;
const P_WRITING: u8 = 1;
const P_HEAD: u8 = 2;
const P_STREAMING: u8 = 3;
const P_FAILED: u8 = 4; // never got a 200 head
const P_CLOSED: u8 = 5; // got a 200 head, then closed

struct Conn {
    sock: Option<TcpStream>,
    /// An incomplete response head; boxed so that it costs 8 bytes, not 24,
    /// in the many connections that have none.
    #[allow(clippy::box_collection)]
    head: Option<Box<Vec<u8>>>,
    parser: SseParser,
    chunk: Chunked,
    marks: u32,
    /// seq + 1 of the last mark received, 0: none yet
    last_seq: u32,
    /// µs since the worker started (wrapping), when connect was called
    t0_us: u32,
    sent: u16,
    phase: u8,
    chunked: bool,
}

enum Why {
    Refused,
    Timeout,
    Reset,
    Other,
}

fn classify(e: &io::Error) -> Why {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Why::Refused,
        io::ErrorKind::TimedOut => Why::Timeout,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Why::Reset,
        _ => Why::Other,
    }
}

pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

struct Ctx<'a> {
    totals: &'a mut Totals,
    latency: &'a mut Histogram,
    per_mark: &'a mut Vec<(u32, u32)>,
    now_ns: u64,
    run_start_ns: u64,
}

fn on_event(e: Event, marks: &mut u32, last_seq: &mut u32, ctx: &mut Ctx) {
    ctx.totals.events += 1;
    match e.kind {
        Kind::End => ctx.totals.end_events += 1,
        Kind::Shutdown => ctx.totals.shutdown_events += 1,
        Kind::Reset => ctx.totals.reset_events += 1,
        _ => {}
    }
    if let Some((ns, seq)) = e.mark {
        if ns < ctx.run_start_ns {
            ctx.totals.marks_stale += 1;
            return;
        }
        if let Some(s) = seq {
            if *last_seq != 0 && s < *last_seq {
                ctx.totals.marks_duplicate += 1;
                return;
            }
            *last_seq = s.saturating_add(1);
        }
        *marks += 1;
        ctx.totals.marks_received += 1;
        let us = ctx.now_ns.saturating_sub(ns) / 1000;
        ctx.latency.record(us);
        if let Some(s) = seq {
            let s = s as usize;
            if s < MAX_MARKS {
                if ctx.per_mark.len() <= s {
                    ctx.per_mark.resize(s + 1, (u32::MAX, 0));
                }
                let us = us.min(u32::MAX as u64 - 1) as u32;
                let e = &mut ctx.per_mark[s];
                e.0 = e.0.min(us);
                e.1 = e.1.max(us);
            }
        }
    }
}

/// Feeds response body bytes; Err on a chunked-coding error.
fn feed_body(c: &mut Conn, data: &[u8], ctx: &mut Ctx) -> Result<(), ()> {
    let Conn {
        parser,
        chunk,
        chunked,
        marks,
        last_seq,
        ..
    } = c;
    if *chunked {
        chunk.feed(data, |s| {
            parser.feed(s, |e| on_event(e, marks, last_seq, ctx));
        })
    } else {
        parser.feed(data, |e| on_event(e, marks, last_seq, ctx));
        Ok(())
    }
}

pub struct Worker {
    cfg: Config,
    conns: Vec<Conn>,
    buf: Vec<u8>,
    /// The request of the connection being written (multi-log runs).
    req: Vec<u8>,
    totals: Totals,
    latency: Histogram,
    per_mark: Vec<(u32, u32)>,
    connect: Histogram,
    statuses: BTreeMap<u16, u64>,
    pending: VecDeque<(Instant, u32)>,
    resolved: usize,
    start: Instant,
    errors_shown: u32,
}

impl Worker {
    pub fn new(cfg: Config) -> Worker {
        Worker {
            conns: Vec::with_capacity(cfg.streams),
            buf: vec![0; BUF],
            req: Vec::new(),
            totals: Totals::default(),
            latency: Histogram::new(),
            per_mark: Vec::new(),
            connect: Histogram::new(),
            statuses: BTreeMap::new(),
            pending: VecDeque::new(),
            resolved: 0,
            start: Instant::now(),
            errors_shown: 0,
            cfg,
        }
    }

    fn note_error(&mut self, what: &str, e: &dyn std::fmt::Display) {
        if self.errors_shown < 5 {
            self.errors_shown += 1;
            eprintln!("logcast-load[{}]: {what}: {e}", self.cfg.index);
        }
    }

    fn open(&self, global: usize) -> io::Result<TcpStream> {
        // A connect from an explicitly bound port fails with EADDRNOTAVAIL
        // when that 4-tuple is already in use (a connection of another
        // program from the same source port to the same server port, or one
        // still in TIME_WAIT): try another port, as the kernel's own search
        // would have.
        let mut tries = 0;
        loop {
            let fd = self.bound_socket(global, tries > 0)?;
            match rustix::net::connect_v4(&fd, &self.cfg.target) {
                Ok(()) => {}
                Err(e) if e == rustix::io::Errno::INPROGRESS => {}
                Err(e)
                    if e == rustix::io::Errno::ADDRNOTAVAIL
                        && !self.cfg.sources.is_empty()
                        && tries < 32 =>
                {
                    tries += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            return Ok(TcpStream::from_std(std::net::TcpStream::from(fd)));
        }
    }

    /// A nonblocking socket, bound to connection `global`'s source address
    /// and port when sources are given (a random port when `random_port`).
    fn bound_socket(&self, global: usize, random_port: bool) -> io::Result<std::os::fd::OwnedFd> {
        let fd = rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        if self.cfg.sources.is_empty() {
            return Ok(fd);
        }
        // The source port is chosen here, not by bind(addr, 0): the
        // kernel's search for a free port to bind scans the bound ports
        // and, with tens of thousands bound, costs milliseconds per
        // socket (a 100,000-stream ramp stalls in inet_csk_get_port).
        // Global connection g takes port lo + g / K of address g % K,
        // so the workers never pick the same one; a port taken by
        // someone else is replaced by a random one.
        // SO_REUSEADDR: a port whose last connection is in TIME_WAIT
        // may be bound again.
        rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
        let k = self.cfg.sources.len();
        let src = self.cfg.sources[global % k];
        let (lo, hi) = self.cfg.port_range;
        let span = (hi - lo) as usize + 1;
        let random = || lo + (rand::random::<u32>() as usize % span) as u16;
        let mut port = if random_port {
            random()
        } else {
            lo + ((global / k) % span) as u16
        };
        let mut tries = 0;
        loop {
            match rustix::net::bind_v4(&fd, &SocketAddrV4::new(src, port)) {
                Ok(()) => return Ok(fd),
                Err(e) if e == rustix::io::Errno::ADDRINUSE && tries < 32 => {
                    tries += 1;
                    port = random();
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Started connections still waiting for their response head are at
    /// `--max-pending`.
    fn too_many_pending(&self) -> bool {
        self.cfg.max_pending > 0
            && self.conns.len().saturating_sub(self.resolved) >= self.cfg.max_pending
    }

    fn start_one(&mut self, poll: &Poll) {
        let j = self.conns.len();
        let global = self.cfg.index + j * self.cfg.count;
        let t0_us = self.start.elapsed().as_micros() as u32;
        self.totals.attempted += 1;
        let mut conn = Conn {
            sock: None,
            head: None,
            parser: if self.cfg.time_lines {
                SseParser::with_time_lines()
            } else {
                SseParser::new()
            },
            chunk: Chunked::new(),
            marks: 0,
            last_seq: 0,
            t0_us,
            sent: 0,
            phase: P_FAILED,
            chunked: false,
        };
        let opened = self.open(global).and_then(|mut s| {
            poll.registry()
                .register(&mut s, Token(j), Interest::READABLE | Interest::WRITABLE)
                .map(|_| s)
        });
        match opened {
            Ok(s) => {
                conn.sock = Some(s);
                conn.phase = P_CONNECTING;
                self.pending
                    .push_back((Instant::now() + self.cfg.timeout, j as u32));
            }
            Err(e) => {
                self.count_failure(classify(&e));
                self.resolved += 1;
                self.note_error("connect", &e);
            }
        }
        self.conns.push(conn);
    }

    fn count_failure(&mut self, why: Why) {
        match why {
            Why::Refused => self.totals.failed_refused += 1,
            Why::Timeout => self.totals.failed_timeout += 1,
            Why::Reset => self.totals.failed_reset += 1,
            Why::Other => self.totals.failed_other += 1,
        }
    }

    /// A connection that never got its 200 head failed.
    fn fail(&mut self, idx: usize, why: Why, e: Option<&io::Error>) {
        let c = &mut self.conns[idx];
        c.sock = None;
        c.head = None;
        c.phase = P_FAILED;
        self.resolved += 1;
        self.count_failure(why);
        if let Some(e) = e {
            self.note_error("stream", e);
        }
    }

    /// A stream closed after its 200 head.
    fn closed(&mut self, idx: usize, reset: bool) {
        let c = &mut self.conns[idx];
        c.sock = None;
        c.phase = P_CLOSED;
        if reset {
            self.totals.closed_early_reset += 1;
        } else {
            self.totals.closed_early_eof += 1;
        }
    }

    fn handle(&mut self, idx: usize, now_ns: u64) {
        loop {
            let phase = self.conns[idx].phase;
            match phase {
                P_CONNECTING => {
                    let s = self.conns[idx].sock.as_ref().expect("socket");
                    match s.take_error() {
                        Ok(None) => {}
                        Ok(Some(e)) | Err(e) => return self.fail(idx, classify(&e), Some(&e)),
                    }
                    match s.peer_addr() {
                        Ok(_) => self.conns[idx].phase = P_WRITING,
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                        Err(e) => return self.fail(idx, classify(&e), Some(&e)),
                    }
                }
                P_WRITING => {
                    let global = self.cfg.index + idx * self.cfg.count;
                    let req: &[u8] = match &self.cfg.request_rest {
                        None => &self.cfg.request,
                        Some(rest) => {
                            self.req.clear();
                            self.req.extend_from_slice(&self.cfg.request);
                            self.req
                                .extend_from_slice((global % self.cfg.logs).to_string().as_bytes());
                            self.req.extend_from_slice(rest);
                            &self.req
                        }
                    };
                    let c = &mut self.conns[idx];
                    let mut s = c.sock.as_ref().expect("socket");
                    match s.write(&req[c.sent as usize..]) {
                        Ok(n) => {
                            c.sent += n as u16;
                            if c.sent as usize == req.len() {
                                c.phase = P_HEAD;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return self.fail(idx, classify(&e), Some(&e)),
                    }
                }
                P_HEAD => {
                    let c = &mut self.conns[idx];
                    let mut s = c.sock.as_ref().expect("socket");
                    match s.read(&mut self.buf) {
                        Ok(0) => return self.fail(idx, Why::Reset, None),
                        Ok(n) => {
                            if !self.on_head_bytes(idx, n, now_ns) {
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return self.fail(idx, classify(&e), Some(&e)),
                    }
                }
                P_STREAMING => {
                    let c = &mut self.conns[idx];
                    let mut s = c.sock.as_ref().expect("socket");
                    match s.read(&mut self.buf) {
                        Ok(0) => return self.closed(idx, false),
                        Ok(n) => {
                            self.totals.bytes += n as u64;
                            let mut ctx = Ctx {
                                totals: &mut self.totals,
                                latency: &mut self.latency,
                                per_mark: &mut self.per_mark,
                                now_ns,
                                run_start_ns: self.cfg.run_start_ns,
                            };
                            let ok = feed_body(c, &self.buf[..n], &mut ctx).is_ok();
                            if !ok || (c.chunked && c.chunk.done()) {
                                return self.closed(idx, false);
                            }
                            // A short read drained the socket: epoll reports
                            // the next data as a new edge, no need to read
                            // again just to see WouldBlock.
                            if n < self.buf.len() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let reset = matches!(classify(&e), Why::Reset);
                            if !reset {
                                self.note_error("read", &e);
                            }
                            return self.closed(idx, reset);
                        }
                    }
                }
                _ => return,
            }
        }
    }

    /// `n` head bytes are in the shared buffer. Returns whether to go on
    /// reading this connection.
    fn on_head_bytes(&mut self, idx: usize, n: usize, now_ns: u64) -> bool {
        let mut owned = self.conns[idx].head.take();
        if let Some(h) = owned.as_mut() {
            h.extend_from_slice(&self.buf[..n]);
        }
        let data: &[u8] = match &owned {
            Some(h) => h,
            None => &self.buf[..n],
        };
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(data) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let chunked = resp.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("transfer-encoding")
                        && String::from_utf8_lossy(h.value)
                            .to_ascii_lowercase()
                            .contains("chunked")
                });
                if status != 200 {
                    *self.statuses.entry(status).or_insert(0) += 1;
                    self.fail(idx, Why::Other, None);
                    // it was not "other": move the count
                    self.totals.failed_other -= 1;
                    self.totals.failed_status += 1;
                    return false;
                }
                self.totals.connected += 1;
                self.resolved += 1;
                let c = &mut self.conns[idx];
                c.phase = P_STREAMING;
                c.chunked = chunked;
                let us = (self.start.elapsed().as_micros() as u32).wrapping_sub(c.t0_us);
                self.connect.record(us as u64);
                let body = &data[len..];
                if !body.is_empty() {
                    self.totals.bytes += body.len() as u64;
                    let mut ctx = Ctx {
                        totals: &mut self.totals,
                        latency: &mut self.latency,
                        per_mark: &mut self.per_mark,
                        now_ns,
                        run_start_ns: self.cfg.run_start_ns,
                    };
                    if feed_body(c, body, &mut ctx).is_err() {
                        self.closed(idx, false);
                        return false;
                    }
                }
                true
            }
            Ok(httparse::Status::Partial) => {
                if data.len() > MAX_HEAD {
                    self.fail(idx, Why::Other, None);
                    self.note_error("response head", &"too large");
                    return false;
                }
                let h = match owned {
                    Some(h) => h,
                    None => Box::new(self.buf[..n].to_vec()),
                };
                self.conns[idx].head = Some(h);
                true
            }
            Err(e) => {
                self.fail(idx, Why::Other, None);
                self.note_error("bad response head", &e);
                false
            }
        }
    }

    fn check_timeouts(&mut self, now: Instant) {
        while let Some(&(deadline, idx)) = self.pending.front() {
            if deadline > now {
                break;
            }
            self.pending.pop_front();
            let idx = idx as usize;
            if self.conns[idx].phase < P_STREAMING {
                self.fail(idx, Why::Timeout, None);
            }
        }
    }

    /// Runs until `control.stop` (or the deadline). `on_ready` is called once
    /// every connection has either got its 200 head or failed.
    pub fn run(
        mut self,
        mut poll: Poll,
        control: Arc<Control>,
        mut on_progress: impl FnMut(&Totals, bool),
    ) -> io::Result<Outcome> {
        let mut events = Events::with_capacity(1024);
        let mut ready = false;
        let mut last_progress = Instant::now();
        let mut cpu_at_ready = 0u64;
        loop {
            if control.stop.load(Ordering::SeqCst) || self.start.elapsed() > self.cfg.deadline {
                break;
            }
            // start the connections that are due
            let elapsed = self.start.elapsed().as_secs_f64();
            let due = if self.cfg.ramp > 0.0 {
                ((elapsed * self.cfg.ramp) as usize + 1).min(self.cfg.streams)
            } else {
                self.cfg.streams
            };
            // at most 256 at a time, so that established ones are served
            let mut budget = 256;
            while self.conns.len() < due
                && budget > 0
                && !self.too_many_pending()
                && !control.stop.load(Ordering::Relaxed)
            {
                self.start_one(&poll);
                budget -= 1;
            }
            let timeout = if self.conns.len() < due && self.too_many_pending() {
                Duration::from_millis(10) // an answer frees a slot (and wakes us)
            } else if self.conns.len() < due {
                Duration::ZERO
            } else if self.conns.len() < self.cfg.streams {
                if self.cfg.ramp > 0.0 {
                    let next = (self.conns.len() as f64) / self.cfg.ramp;
                    Duration::from_secs_f64((next - elapsed).clamp(0.001, 0.1))
                } else {
                    Duration::ZERO
                }
            } else {
                Duration::from_millis(100)
            };
            match poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now_ns = unix_ns();
            for ev in events.iter() {
                if ev.token() == WAKER {
                    continue;
                }
                self.handle(ev.token().0, now_ns);
            }
            self.check_timeouts(Instant::now());
            if !ready && self.conns.len() == self.cfg.streams && self.resolved == self.cfg.streams {
                ready = true;
                self.totals.ramp_ms = self.start.elapsed().as_millis() as u64;
                cpu_at_ready = crate::procstat::own_ticks().unwrap_or(0);
                on_progress(&self.totals, true);
            } else if !ready && last_progress.elapsed() >= Duration::from_secs(2) {
                last_progress = Instant::now();
                on_progress(&self.totals, false);
            }
        }
        if ready {
            let now = crate::procstat::own_ticks().unwrap_or(0);
            self.totals.self_cpu_ticks = now.saturating_sub(cpu_at_ready);
        }
        let written = control.written.load(Ordering::SeqCst);
        for c in &self.conns {
            if c.phase == P_STREAMING {
                self.totals.open_at_end += 1;
            }
            if written != u64::MAX && (c.phase == P_STREAMING || c.phase == P_CLOSED) {
                self.totals.marks_expected += written;
                let missing = written.saturating_sub(c.marks as u64);
                if missing > 0 {
                    self.totals.streams_missing_marks += 1;
                    self.totals.marks_missing += missing;
                }
            }
        }
        // Close with RST (linger 0): no TIME_WAIT left on the client ports,
        // so back-to-back runs do not run out of ports.
        for c in &mut self.conns {
            if let Some(s) = c.sock.take() {
                let _ = rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO));
            }
        }
        drop(poll);
        Ok(Outcome {
            totals: self.totals,
            latency: self.latency,
            per_mark: self.per_mark,
            connect: self.connect,
            statuses: self.statuses,
        })
    }
}

/// A poll and a waker on it, for the command thread.
pub fn poll_with_waker() -> io::Result<(Poll, Arc<Waker>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    Ok((poll, waker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_state_is_small() {
        // debug builds of mio add a selector id to every socket
        let limit = if cfg!(debug_assertions) { 72 } else { 64 };
        assert!(
            std::mem::size_of::<Conn>() <= limit,
            "{}",
            std::mem::size_of::<Conn>()
        );
    }

    #[test]
    fn duplicate_and_stale_marks() {
        let mut totals = Totals::default();
        let mut lat = Histogram::new();
        let mut per_mark = Vec::new();
        let mut ctx = Ctx {
            totals: &mut totals,
            latency: &mut lat,
            per_mark: &mut per_mark,
            now_ns: 10_000_000,
            run_start_ns: 1_000_000,
        };
        let (mut marks, mut last) = (0u32, 0u32);
        let ev = |ns, seq| Event {
            kind: Kind::Message,
            mark: Some((ns, seq)),
        };
        on_event(ev(5, Some(0)), &mut marks, &mut last, &mut ctx); // stale
        on_event(ev(9_000_000, Some(0)), &mut marks, &mut last, &mut ctx);
        on_event(ev(9_000_000, Some(0)), &mut marks, &mut last, &mut ctx); // dup
        on_event(ev(8_000_000, Some(1)), &mut marks, &mut last, &mut ctx);
        on_event(ev(8_000_000, None), &mut marks, &mut last, &mut ctx);
        assert_eq!(marks, 3);
        assert_eq!(totals.marks_stale, 1);
        assert_eq!(totals.marks_duplicate, 1);
        assert_eq!(totals.events, 5);
        assert_eq!(lat.count(), 3);
        assert_eq!(lat.max(), 2000);
        assert_eq!(per_mark, vec![(1000, 1000), (2000, 2000)]);
    }
}
