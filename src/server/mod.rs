//! The reactor: one thread, one `mio::Poll`, the only caller of `poll` and
//! of the clock. It owns every connection (a `Slab` addressed by `Token`),
//! the timer wheel that drives all timed work, the streaming engine and the
//! simulated writers, and turns readiness events and expired timers into
//! calls on them. Handling of HTTP requests lives in `server/http.rs`, the
//! endpoints in `server/api.rs` (the page in `server/page.rs`, files in
//! `server/raw.rs`), streams in `server/streams.rs`, the directory's changes
//! (`GET /api/events`) in `server/events.rs`; this file is the loop,
//! accepting, timers and the stop.
//!
//! Modelled on mio's `examples/tcp_server.rs`: edge-triggered readiness, so
//! every handler drains its socket until `WouldBlock` or it may never be
//! woken again.

mod access;
mod api;
mod events;
mod http;
mod logs;
mod page;
mod raw;
mod streams;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use rand::rngs::StdRng;
use rand::SeedableRng;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::conn::{Conn, Role};
use crate::engine::{Engine, EngineConfig};
use crate::logs::index::LogIndex;
use crate::logs::writer::Writers;
use crate::logs::LogDir;
use crate::metrics::Metrics;
use crate::timer::TimerWheel;
use access::Access;

const SIGNAL: Token = Token(usize::MAX);
const LISTENER: Token = Token(usize::MAX - 1);
const WATCH: Token = Token(usize::MAX - 2);

/// After `accept` fails for lack of descriptors, try again this much later
/// (instead of spinning on a listener that stays readable).
const ACCEPT_RETRY_MS: u64 = 100;

/// Most readiness events handled in one turn: each may be a request that
/// opens a stream (tens of µs), so a storm of them is spread over turns;
/// epoll keeps the rest ready for the next `poll`.
const EVENTS_PER_TURN: usize = 256;

/// Most connections accepted in one turn: a storm of 10,000 reconnecting
/// clients is let in over many turns, between which everyone else is served.
const ACCEPTS_PER_TURN: usize = 128;
/// A worker that stopped listening at its cap listens again once its
/// connections fall to this share of the cap (sozu's hysteresis: it does
/// not flap at the boundary).
const RESUME_PERCENT: usize = 90;

/// After a failed attempt to listen again, try again this much later.
const RELISTEN_RETRY_MS: u64 = 100;

/// How long a graceful stop may spend flushing final frames.
const STOP_FLUSH_MS: u64 = 700;

/// Everything the wheel can fire; each carries a slab key and the generation
/// it was armed for, so a timer can never hit a reused slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    Conn(usize, u32),
    /// A tail's wake, and the time it was asked for (a later wake of the
    /// same tail supersedes it).
    Tail(usize, u32, u64),
    Writer(usize, u32),
    ResumeAccept,
    /// Publish this worker's snapshot for its siblings.
    Publish,
    /// Retention's look at the index (`--retain-*`).
    Retention,
    /// The events subscribers' wake (heartbeats, stall checks), and the
    /// time it was asked for.
    Events(u64),
}

pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    signals: Signals,
    conns: Slab<Conn>,
    timers: TimerWheel<Timer>,
    engine: Engine,
    /// Every log in the directory: the list and retention's candidates.
    index: LogIndex,
    /// The connections of `GET /api/events`.
    subscribers: events::Subscribers,
    access: Access,
    /// This reactor applies `--retain-*` (one process of a cluster does).
    retains: bool,
    writers: Writers,
    metrics: Metrics,
    config: Config,
    dir: LogDir,
    rng: StdRng,
    started: Instant,
    /// Read buffer shared by every connection: input is copied into a
    /// connection only when a request is incomplete.
    scratch: Vec<u8>,
    next_generation: u32,
    accept_paused: bool,
    /// The listener may have connections waiting beyond this turn's share.
    accept_backlog: bool,
    /// Accepts are failing for lack of descriptors (logged once per episode).
    accept_starved: bool,
    expired: Vec<Timer>,
    /// Connections with a file body to send and room in their socket, as
    /// `(slab key, generation)`: served in order, a bounded piece each.
    files: VecDeque<(usize, u32)>,
    /// Set when this reactor is one of several worker processes.
    cluster: Option<Cluster>,
    /// This process's open descriptors, for its published snapshot.
    fd_count: crate::sys::FdCount,
    /// Connections of the other workers at their last snapshot.
    sibling_connections: usize,
    /// In a worker: where it listens and when it stops (see [`Listen`]).
    listen: Option<Listen>,
}

/// A worker's listening socket is one of several on the port
/// (`SO_REUSEPORT`), and the kernel hashes each new connection to one of
/// them without asking whether that worker has room. A worker that has
/// reached its cap (its share of `--max-connections`, or what its open-file
/// limit leaves) therefore closes its listener, after taking what is
/// already queued on it, so that the kernel sends new connections to the
/// workers that have room; it listens again once it is below
/// [`RESUME_PERCENT`] of the cap. Its clients never wait on a worker that
/// cannot take them, and never get a 503 while the daemon has room.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    pub addr: SocketAddr,
    /// Connections at which this worker stops listening.
    pub cap: usize,
    /// Not listening because it is full; a retry time after a failed rebind.
    full: bool,
    retry_at: u64,
}

impl Listen {
    pub fn new(addr: SocketAddr, cap: usize) -> Listen {
        Listen {
            addr,
            cap: cap.max(1),
            full: false,
            retry_at: 0,
        }
    }

    /// Connections at which a full worker listens again.
    pub fn resume_at(&self) -> usize {
        self.cap * RESUME_PERCENT / 100
    }
}

impl Server {
    /// A reactor serving `listener` (already bound) with `config`.
    pub fn new(config: Config, dir: LogDir, listener: std::net::TcpListener) -> io::Result<Server> {
        // The page's memory file is made now, not at the first request: a
        // descriptor held for the process's life belongs to its start.
        page::prepare();
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        poll.registry()
            .register(&mut signals, SIGNAL, Interest::READABLE)?;
        let engine = Engine::new(
            EngineConfig {
                watch: config.watch,
                poll_interval_ms: config.poll_interval_ms,
                heartbeat_interval_ms: config.heartbeat_interval_ms,
                heartbeat_burst: config.heartbeat_burst,
                stall_timeout_ms: config.stall_timeout_ms,
            },
            dir.clone(),
        );
        if let Some(fd) = engine.watch_fd() {
            poll.registry()
                .register(&mut mio::unix::SourceFd(&fd), WATCH, Interest::READABLE)?;
        }
        let access = Access::new(&config, dir.is_writable());
        let retains = !access.is_read_only() && !config.retain.is_unlimited();
        let mut timers = TimerWheel::new(0);
        if retains {
            timers.insert(crate::logs::retention::TICK_MS, Timer::Retention);
        }
        Ok(Server {
            poll,
            listener: Some(listener),
            signals,
            conns: Slab::with_capacity(1024),
            timers,
            index: LogIndex::new(dir.path()),
            subscribers: events::Subscribers::default(),
            access,
            retains,
            engine,
            writers: Writers::default(),
            metrics: Metrics::default(),
            config,
            dir,
            rng: StdRng::from_entropy(),
            started: Instant::now(),
            scratch: vec![0; 64 * 1024],
            next_generation: 0,
            accept_paused: false,
            accept_backlog: false,
            accept_starved: false,
            expired: Vec::new(),
            files: VecDeque::new(),
            cluster: None,
            fd_count: crate::sys::FdCount::default(),
            sibling_connections: 0,
            listen: None,
        })
    }

    /// Makes this reactor one worker of several: it publishes its figures
    /// and adds its siblings' to what it reports.
    pub fn join_cluster(&mut self, cluster: Cluster) {
        // Workers share the directory: one of them removing old logs is enough.
        self.retains &= cluster.index == 0;
        self.cluster = Some(cluster);
        self.timers.insert(self.now_ms(), Timer::Publish);
    }

    /// Makes this worker close its listener at `listen.cap` connections and
    /// listen again below [`RESUME_PERCENT`] of it (see [`Listen`]).
    pub fn stop_listening_when_full(&mut self, listen: Listen) {
        log::info!(
            "stops listening at {} connections, listens again at {}",
            listen.cap,
            listen.resume_at()
        );
        self.listen = Some(listen);
    }

    fn publish(&mut self, now: u64) {
        let Some(cluster) = &self.cluster else { return };
        self.metrics.logs_tailed = self.engine.tails_len() as u64;
        let held = (self.conns.len() + self.engine.files_open()) as u64;
        let fds = self.fd_count.get(held);
        if let Err(e) = cluster.publish(&self.metrics, fds, self.engine.subscriber_counts()) {
            log::warn!("cannot publish worker state: {e}");
        }
        self.sibling_connections = cluster.sibling_connections();
        self.timers
            .insert(now + crate::cluster::PUBLISH_MS, Timer::Publish);
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(l) => l.local_addr(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Milliseconds on the reactor's monotonic clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Runs until SIGTERM or SIGINT, then stops gracefully.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_PER_TURN);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let turn_started = Instant::now();
            let mut stop = false;
            for event in events.iter() {
                match event.token() {
                    SIGNAL => stop |= self.signalled(),
                    LISTENER => self.accept_all(),
                    WATCH => self.watch_event(),
                    Token(key) => self.conn_event(key, event),
                }
            }
            if stop {
                self.stop();
                return Ok(());
            }
            self.run_timers();
            if self.accept_backlog {
                self.accept_all();
            }
            self.run_work();
            self.relisten_if_room();
            let turn_us = turn_started.elapsed().as_micros() as u64;
            self.metrics.turn_us_max = self.metrics.turn_us_max.max(turn_us);
            let writes = std::mem::take(&mut self.metrics.turn_writes);
            self.metrics.turn_writes_max = self.metrics.turn_writes_max.max(writes);
        }
    }

    /// Until the next timer, or no wait at all while streams have work queued.
    fn poll_timeout(&self) -> Option<Duration> {
        if self.engine.has_work()
            || self.index.has_work()
            || self.subscribers.has_work()
            || self.accept_backlog
            || !self.files.is_empty()
        {
            return Some(Duration::ZERO);
        }
        let next = match (self.timers.next_deadline(), self.index.next_pass_ms()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(Duration::from_millis(next.saturating_sub(self.now_ms())))
    }

    fn signalled(&mut self) -> bool {
        let stop = self.signals.pending().any(|s| s == SIGTERM || s == SIGINT);
        if stop {
            log::info!("signal received: stopping");
        }
        stop
    }

    /// Accepts what the listener has, up to [`ACCEPTS_PER_TURN`]; the
    /// listener is edge-triggered, so a turn that stops early says so.
    fn accept_all(&mut self) {
        self.accept_backlog = false;
        for _ in 0..ACCEPTS_PER_TURN {
            if self.accept_paused {
                return;
            }
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((socket, peer)) => {
                    if self.accept_starved {
                        self.accept_starved = false;
                        log::info!("accept: descriptors available again");
                    }
                    self.admit(socket, peer);
                    if self.listen.is_some_and(|l| self.conns.len() >= l.cap) {
                        self.stop_listening();
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => self.accept_failed(&e),
            }
        }
        self.accept_backlog = !self.accept_paused;
    }

    /// Full: takes the connections the kernel has already queued on this
    /// listener (closing it would reset them), then closes it, so that new
    /// connections go to the workers that have room. The cap leaves
    /// descriptors for this (see `run_worker`); what a full queue holds
    /// beyond them is reset, as Linux resets the queue of any listener that
    /// closes (`net.ipv4.tcp_migrate_req=1` hands it to the others).
    fn stop_listening(&mut self) {
        let Some(mut listener) = self.listener.take() else {
            return;
        };
        let mut taken = 0usize;
        loop {
            match listener.accept() {
                Ok((socket, peer)) => {
                    self.admit_queued(socket, peer);
                    taken += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::warn!("accept while closing a full listener: {e}");
                    break;
                }
            }
        }
        let _ = self.poll.registry().deregister(&mut listener);
        drop(listener);
        self.metrics.listen_stops += 1;
        if let Some(l) = self.listen.as_mut() {
            l.full = true;
        }
        log::info!(
            "full at {} connections ({taken} taken from the queue): stopped listening",
            self.conns.len()
        );
    }

    /// A worker that closed its listener when full listens again once it
    /// is below [`RESUME_PERCENT`] of its cap.
    fn relisten_if_room(&mut self) {
        let Some(l) = self.listen else { return };
        if !l.full || self.conns.len() > l.resume_at() || self.now_ms() < l.retry_at {
            return;
        }
        let listener = crate::listener::bind(l.addr, true).and_then(|std| {
            let mut listener = TcpListener::from_std(std);
            self.poll
                .registry()
                .register(&mut listener, LISTENER, Interest::READABLE)?;
            Ok(listener)
        });
        match listener {
            Ok(listener) => {
                self.listener = Some(listener);
                if let Some(l) = self.listen.as_mut() {
                    l.full = false;
                }
                log::info!("at {} connections: listening again", self.conns.len());
                self.accept_all();
            }
            Err(e) => {
                log::warn!("cannot listen again on {}: {e}", l.addr);
                let at = self.now_ms() + RELISTEN_RETRY_MS;
                if let Some(l) = self.listen.as_mut() {
                    l.retry_at = at;
                }
            }
        }
    }

    /// Out of descriptors (EMFILE, ENFILE) or kernel memory: stop accepting
    /// and retry on a timer; the listener stays readable, so retrying now
    /// would spin a core. Other errors (a connection reset while queued)
    /// concern one connection only.
    fn accept_failed(&mut self, e: &io::Error) {
        self.metrics.accept_errors += 1;
        let exhausted = matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12));
        if exhausted {
            // Warn once per episode; the metric counts every retry.
            if !self.accept_starved {
                log::warn!("accept: {e}; pausing accepts, retrying every {ACCEPT_RETRY_MS} ms");
            }
            self.accept_starved = true;
            self.accept_paused = true;
            let at = self.now_ms() + ACCEPT_RETRY_MS;
            self.timers.insert(at, Timer::ResumeAccept);
        } else {
            log::debug!("accept: {e}");
        }
    }

    fn admit(&mut self, socket: TcpStream, peer: SocketAddr) {
        if self.at_connection_limit() {
            self.refuse(socket);
            return;
        }
        self.register_conn(socket, peer);
    }

    /// A connection queued on a listener that is closing because this
    /// worker is full: taken over its own cap (into the descriptors kept
    /// for this), refused only at the whole daemon's limit.
    fn admit_queued(&mut self, socket: TcpStream, peer: SocketAddr) {
        if self.at_daemon_limit() {
            self.refuse(socket);
            return;
        }
        self.register_conn(socket, peer);
    }

    fn register_conn(&mut self, mut socket: TcpStream, peer: SocketAddr) {
        let _ = socket.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut socket,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("register: {e}");
            return;
        }
        self.next_generation = self.next_generation.wrapping_add(1);
        let deadline = self.started.elapsed().as_millis() as u64 + self.config.header_timeout_ms;
        entry.insert(Conn::new(socket, self.next_generation, deadline));
        self.arm_conn_timer(key);
        self.metrics.connections_open += 1;
        self.metrics.connections_accepted += 1;
        log::debug!("conn {key}: accepted from {peer}");
    }

    /// This reactor's own cap, and in a worker also the whole daemon's
    /// (its siblings' connections as of their last snapshot).
    fn at_connection_limit(&self) -> bool {
        self.conns.len() >= self.config.max_connections || self.at_daemon_limit()
    }

    /// The whole daemon's `--max-connections`, in a worker.
    fn at_daemon_limit(&self) -> bool {
        match &self.cluster {
            Some(c) => self.conns.len() + self.sibling_connections >= c.max_connections,
            None => false,
        }
    }

    /// Over `--max-connections`: one best-effort 503, then close.
    fn refuse(&mut self, socket: TcpStream) {
        use std::io::Write;
        self.metrics.connections_refused += 1;
        self.metrics.count_request(None, 503);
        let body = crate::http::Response::error(503, "server at its connection limit")
            .closing()
            .to_bytes(false);
        let _ = (&socket).write(&body);
    }

    /// Arms (or moves earlier) the connection's timer to its deadline.
    pub(crate) fn arm_conn_timer(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let deadline = conn.phase().deadline_ms();
        if deadline == crate::conn::NEVER {
            return;
        }
        if let Some((_, at)) = conn.timer {
            if at <= deadline {
                return; // fires earlier and re-checks the deadline then
            }
        }
        if let Some((id, _)) = conn.timer.take() {
            self.timers.cancel(id);
        }
        let id = self
            .timers
            .insert(deadline, Timer::Conn(key, conn.generation));
        conn.timer = Some((id, deadline));
    }

    fn run_timers(&mut self) {
        let now = self.now_ms();
        let mut expired = std::mem::take(&mut self.expired);
        self.timers.poll_to(now, &mut expired);
        for timer in expired.drain(..) {
            match timer {
                Timer::Conn(key, generation) => self.conn_timer(key, generation, now),
                Timer::Tail(key, generation, at) => self.tail_timer(key, generation, at, now),
                Timer::Writer(key, generation) => self.writer_timer(key, generation, now),
                Timer::ResumeAccept => {
                    self.accept_paused = false;
                    self.accept_all();
                }
                Timer::Publish => self.publish(now),
                Timer::Retention => self.retention_tick(now),
                Timer::Events(at) => self.events_timer(at, now),
            }
        }
        self.expired = expired;
    }

    fn writer_timer(&mut self, key: usize, generation: u32, now: u64) {
        if !self.writers.is_live(key, generation) {
            return;
        }
        let id = self.writers.id(key).map(str::to_string);
        match self.writers.tick(key, now, &mut self.rng) {
            crate::logs::writer::Tick::Wrote => {
                self.timers.insert(
                    now + self.config.write_interval_ms,
                    Timer::Writer(key, generation),
                );
            }
            crate::logs::writer::Tick::Finished => log::info!("writer {key}: finished"),
            crate::logs::writer::Tick::Failed(why) => log::warn!("{why}"),
        }
        if let Some(id) = &id {
            if !self.writers.is_live(key, generation) {
                self.index.refresh(id);
            }
        }
        self.metrics.writers_active = self.writers.len() as u64;
        // The line goes out in this same turn, not at the next poll.
        if let Some(id) = id {
            self.log_written(&id, now);
        }
    }

    /// Closes a connection and releases everything it held.
    pub(crate) fn close(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        match conn.role {
            Role::Stream(stream) => {
                self.engine.detach(&mut self.conns, &stream);
                self.metrics.streams_open -= 1;
                self.metrics.logs_tailed = self.engine.tails_len() as u64;
            }
            Role::Events(subscription) => self.unsubscribe(&subscription),
            Role::Http(_) => {}
        }
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        if let Some((id, _)) = conn.timer.take() {
            self.timers.cancel(id);
        }
        let _ = self.poll.registry().deregister(&mut conn.socket);
        self.metrics.connections_open -= 1;
        log::debug!("conn {key}: closed");
    }

    /// Graceful stop: no new connections, writers end (their files turn
    /// read-only), every stream gets `shutdown`, and what can be flushed
    /// within [`STOP_FLUSH_MS`] is flushed.
    fn stop(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.writers.finish_all();
        // Every stream gets `shutdown` (SPEC section 3), even one of a log
        // that just finished: its reconnect gets 204 from the next daemon.
        self.engine.shutdown_all(&mut self.conns);
        self.engine_effects();
        self.shutdown_events();
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.role, Role::Http(_)) && !c.has_output())
            .map(|(k, _)| k)
            .collect();
        for key in idle {
            self.close(key);
        }
        for (_, conn) in self.conns.iter_mut() {
            conn.close_when_flushed();
        }
        let deadline = self.now_ms() + STOP_FLUSH_MS;
        let mut events = Events::with_capacity(1024);
        while !self.conns.is_empty() && self.now_ms() < deadline {
            self.run_work();
            if self.conns.is_empty() {
                break;
            }
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(10)));
            for event in events.iter() {
                let Token(key) = event.token();
                if key < LISTENER.0 {
                    self.conn_event(key, event);
                }
            }
        }
        log::info!(
            "stopped ({} connections cut at the deadline)",
            self.conns.len()
        );
        if let Some(cluster) = &self.cluster {
            cluster.withdraw();
        }
    }
}
