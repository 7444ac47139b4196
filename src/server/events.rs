//! `GET /api/events` on the reactor: the directory as it changes (SPEC
//! section 3). The index of logs records every change in its journal
//! ([`crate::logs::changes`], which also explains the ids); this file hands
//! the journal to its subscribers.
//!
//! A subscriber is a connection and a position in the journal (the last
//! change it was given), nothing else: as with log streams, backpressure is
//! a position, never a queue. At the end of each reactor turn the changes
//! recorded in it, framed once when recorded, go out as one block written
//! to every subscriber that was at the previous end with room in its
//! socket. Any other subscriber (its socket full, or still replaying)
//! keeps at most the unsent rest of one event and catches up from the
//! journal when its socket drains, [`CATCHUP_BYTES`] per turn. One that
//! falls further behind than the journal reaches (more than
//! [`crate::logs::changes::JOURNAL_LEN`] changes) gets `event: reset` and
//! goes on from the current change: it lists again, and memory never grows
//! because a client is slow.
//!
//! Like log streams: a `: keepalive` comment after a heartbeat interval of
//! silence, closed when its socket takes no byte for the stall timeout,
//! noticed at once when the client leaves, `event: shutdown` on a graceful
//! stop. One wheel timer serves every subscriber.
//!
//! The subscribers write within the turn's writes that log streams use
//! ([`crate::engine::TURN_WRITES`] in all, counted by the engine): while
//! there are any, [`SUBSCRIBERS_SHARE`] of each turn's writes are kept
//! for them, and they also get whatever the streams left. Past that, the
//! block's other subscribers are behind and catch up in the next turns,
//! and a heartbeat round goes on where it stopped.

use std::collections::VecDeque;

use mio::event::Event;
use slab::Slab;

use super::{Server, Timer};
use crate::conn::{Conn, Flow, Role, Stall, Subscription};
use crate::engine::TURN_WRITES;
use crate::http::response;
use crate::logs::changes::{Changes, Frames, ResetReason, Start};
use crate::metrics::Metrics;
use crate::sse;

/// Most bytes of journal one subscriber catches up in one turn.
const CATCHUP_BYTES: usize = 64 * 1024;

/// The frame buffer keeps at most this capacity between turns.
const FRAMES_KEEP: usize = 256 * 1024;

/// The turn's writes kept for the subscribers while there are any, so
/// that fan-outs wider than a turn cannot starve them (unused, they cost
/// a wide fan-out one more turn in eight).
const SUBSCRIBERS_SHARE: usize = TURN_WRITES / 8;

/// The connections subscribed to the directory's changes.
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    keys: Vec<usize>,
    /// The last change written to the subscribers that keep up.
    delivered: u64,
    /// Last time anything went to every subscriber (heartbeats are due a
    /// heartbeat interval after it).
    last_sent_ms: u64,
    stall_check_ms: u64,
    /// When the armed timer fires; an earlier-superseded one is ignored.
    armed_at: Option<u64>,
    /// Subscribers to move forward this turn: `(key, generation)`.
    work: VecDeque<(usize, u32)>,
    /// A heartbeat round cut at a turn's writes goes on from this index.
    beat_from: Option<usize>,
    /// The turn's writes lent for the work under way
    /// ([`Subscribers::lend_writes`]), and how many of them it used.
    writes_lent: usize,
    writes_used: usize,
    /// Found gone or stalled: the server closes them.
    closed: Vec<usize>,
    frames: Frames,
}

/// What moving a subscriber forward left it in.
#[derive(Debug, PartialEq, Eq)]
enum Advance {
    /// Waiting for its socket to drain (or for the next change).
    Waiting,
    /// Used its budget while behind: queue it again.
    MoreWork,
    /// Close it (it ended, or the peer left).
    Close,
}

impl Subscribers {
    pub(crate) fn has_work(&self) -> bool {
        !self.work.is_empty() || self.beat_from.is_some()
    }

    /// Lets the work that follows make `writes` writes (or catch-up steps).
    fn lend_writes(&mut self, writes: usize) {
        self.writes_lent = writes;
        self.writes_used = 0;
    }

    /// Takes one of the lent writes; `false` when none is left.
    fn take_write(&mut self) -> bool {
        if self.writes_used >= self.writes_lent {
            return false;
        }
        self.writes_used += 1;
        true
    }

    /// The writes used since [`Subscribers::lend_writes`]; none is left.
    fn settle_writes(&mut self) -> usize {
        self.writes_lent = 0;
        std::mem::take(&mut self.writes_used)
    }

    /// The turn's writes the engine must keep for them.
    pub(super) fn writes_to_keep(&self) -> usize {
        if !self.keys.is_empty() {
            SUBSCRIBERS_SHARE
        } else {
            0
        }
    }

    fn add(&mut self, key: usize, now_ms: u64, stall_ms: u64) -> usize {
        if self.keys.is_empty() {
            self.last_sent_ms = now_ms;
            self.stall_check_ms = now_ms + stall_period(stall_ms);
        }
        self.keys.push(key);
        self.keys.len() - 1
    }

    /// Removes the subscriber at `index`; the one moved into its place
    /// learns its new index.
    fn remove(&mut self, index: usize, conns: &mut Slab<Conn>) {
        if index >= self.keys.len() {
            return;
        }
        self.keys.swap_remove(index);
        if let Some(&moved) = self.keys.get(index) {
            if let Some(Role::Events(s)) = conns.get_mut(moved).map(|c| &mut c.role) {
                s.index = index;
            }
        }
    }

    fn queue(&mut self, key: usize, conn: &mut Conn) {
        if let Role::Events(s) = &mut conn.role {
            if !s.queued {
                s.queued = true;
                self.work.push_back((key, conn.generation));
            }
        }
    }

    /// Writes the changes recorded since the last call, as one block (of
    /// at most [`CATCHUP_BYTES`]), to every subscriber at the previous end
    /// with room in its socket, and queues the others that can move.
    fn publish(&mut self, changes: &Changes, conns: &mut Slab<Conn>, m: &mut Metrics, now: u64) {
        let from = self.delivered;
        let last = changes.last_seq();
        if last == from {
            return;
        }
        self.delivered = last;
        self.last_sent_ms = now;
        if self.keys.is_empty() {
            return;
        }
        let mut frames = std::mem::take(&mut self.frames);
        frames.clear(from);
        changes.frames_after(from, CATCHUP_BYTES, &mut frames);
        for i in 0..self.keys.len() {
            let key = self.keys[i];
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let at_start = matches!(conn.role, Role::Events(s) if s.seq == from);
            let ready = conn.writable && !conn.has_output() && !conn.is_closing();
            let flow = if at_start && ready && !frames.is_empty() && self.take_write() {
                write_frames(conn, &frames, m)
            } else {
                Flow::Done
            };
            let behind = matches!(conn.role, Role::Events(s) if s.seq < last);
            match flow {
                Flow::Closed => self.closed.push(key),
                // Behind (replaying, a burst bigger than the block, or more
                // changes than the journal holds) with room in its socket:
                // it catches up in its own turn. A full socket's writable
                // edge brings it back by itself.
                _ if behind && conn.writable && !conn.is_closing() => self.queue(key, conn),
                _ => {}
            }
        }
        self.keep_frames(frames);
    }

    fn keep_frames(&mut self, frames: Frames) {
        if frames.bytes.capacity() <= FRAMES_KEEP {
            self.frames = frames;
        }
    }

    /// Flushes what a subscriber has pending, then catches it up from the
    /// journal until it has every change, its socket is full or its
    /// budget is spent.
    fn advance(
        &mut self,
        key: usize,
        changes: &Changes,
        conns: &mut Slab<Conn>,
        m: &mut Metrics,
    ) -> Advance {
        let Some(conn) = conns.get_mut(key) else {
            return Advance::Waiting;
        };
        let Role::Events(s) = &mut conn.role else {
            return Advance::Waiting;
        };
        s.queued = false;
        match flush(conn, m) {
            Flow::Done if conn.is_closing() => return Advance::Close,
            Flow::Done => {}
            Flow::WouldBlock => return Advance::Waiting,
            Flow::Closed => return Advance::Close,
        }
        let mut frames = std::mem::take(&mut self.frames);
        let advance = catch_up(conn, changes, &mut frames, m);
        self.keep_frames(frames);
        advance
    }

    /// `: keepalive` to every subscriber (from `beat_from`, where an
    /// earlier turn stopped) that has every change, nothing pending and
    /// room in its socket (the others are busy anyway); past a turn's
    /// writes, the round goes on next turn.
    fn heartbeat(&mut self, conns: &mut Slab<Conn>, m: &mut Metrics, now: u64) {
        let from = self.beat_from.take().unwrap_or(0);
        if from == 0 {
            self.last_sent_ms = now;
        }
        for i in from..self.keys.len() {
            let key = self.keys[i];
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let caught_up = matches!(conn.role, Role::Events(s) if s.seq == self.delivered);
            if !caught_up || conn.has_output() || !conn.writable || conn.is_closing() {
                continue;
            }
            if !self.take_write() {
                self.beat_from = Some(i);
                return;
            }
            if send(conn, sse::KEEPALIVE, m) == Flow::Closed {
                self.closed.push(key);
            }
        }
    }

    /// Stall checks (`--stall-timeout-ms`), as for log streams
    /// ([`Conn::check_stall`]).
    fn check_stalls(&mut self, conns: &mut Slab<Conn>, m: &mut Metrics, now: u64, stall_ms: u64) {
        self.stall_check_ms = now + stall_period(stall_ms);
        for i in 0..self.keys.len() {
            let key = self.keys[i];
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            match conn.check_stall(now, stall_ms) {
                Stall::Moving => {}
                Stall::Waiting => self.queue(key, conn),
                Stall::Stalled => {
                    m.stall_timeouts += 1;
                    log::debug!("conn {key}: events subscriber stalled");
                    self.closed.push(key);
                }
            }
        }
    }

    /// The time of the next wake, if one must be armed: the heartbeat or
    /// the stall check, whichever comes first.
    fn next_wake(&mut self, heartbeat_ms: u64) -> Option<u64> {
        if self.keys.is_empty() {
            return None;
        }
        let due = (self.last_sent_ms + heartbeat_ms).min(self.stall_check_ms);
        if self.armed_at.is_some_and(|at| at <= due) {
            return None; // it fires earlier and re-arms then
        }
        self.armed_at = Some(due);
        Some(due)
    }

    /// Every subscriber gets `shutdown` after what it has pending, then closes.
    fn shutdown(&mut self, conns: &mut Slab<Conn>) {
        for i in 0..self.keys.len() {
            let key = self.keys[i];
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if conn.is_closing() {
                continue;
            }
            conn.out.extend_from_slice(sse::SHUTDOWN);
            conn.close_when_flushed();
            self.queue(key, conn);
        }
    }
}

/// Stall checks run at least every quarter stall timeout (as streams').
fn stall_period(stall_ms: u64) -> u64 {
    (stall_ms / 4).max(1)
}

/// Writes the changes after the subscriber's position, a budget's worth;
/// one that fell out of the journal gets `reset` and the current position.
fn catch_up(conn: &mut Conn, changes: &Changes, frames: &mut Frames, m: &mut Metrics) -> Advance {
    let mut budget = CATCHUP_BYTES;
    loop {
        let Role::Events(s) = &mut conn.role else {
            return Advance::Close;
        };
        if s.seq >= changes.last_seq() {
            return Advance::Waiting;
        }
        if budget == 0 {
            return Advance::MoreWork;
        }
        let flow = if changes.covers(s.seq) {
            frames.clear(s.seq);
            changes.frames_after(s.seq, budget, frames);
            budget = budget.saturating_sub(frames.bytes.len());
            write_frames(conn, frames, m)
        } else {
            s.seq = changes.last_seq();
            log::debug!("events subscriber fell behind the journal: reset");
            send(conn, &changes.reset_frame(ResetReason::TooOld), m)
        };
        match flow {
            Flow::Done => {}
            Flow::WouldBlock => return Advance::Waiting,
            Flow::Closed => return Advance::Close,
        }
    }
}

/// Writes `frames` to a subscriber with nothing pending; a cut event's rest
/// is kept, and its position moves past it.
fn write_frames(conn: &mut Conn, frames: &Frames, m: &mut Metrics) -> Flow {
    let (flow, n) = conn.write_direct(&frames.bytes);
    m.bytes_sent += n as u64;
    let (seq, rest) = frames.written(n);
    m.events_sent += seq - frames.base();
    if flow == Flow::WouldBlock {
        conn.out.extend_from_slice(&frames.bytes[rest]);
    }
    if let Role::Events(s) = &mut conn.role {
        s.seq = seq;
    }
    flow
}

/// Writes a control frame after whatever is pending.
fn send(conn: &mut Conn, frame: &[u8], m: &mut Metrics) -> Flow {
    if conn.has_output() {
        conn.out.extend_from_slice(frame);
        return Flow::Done;
    }
    let (flow, n) = conn.write_direct(frame);
    m.bytes_sent += n as u64;
    if flow == Flow::WouldBlock {
        conn.out.extend_from_slice(&frame[n..]);
    }
    flow
}

fn flush(conn: &mut Conn, m: &mut Metrics) -> Flow {
    if !conn.has_output() {
        return Flow::Done;
    }
    let (flow, n) = conn.flush();
    m.bytes_sent += n as u64;
    flow
}

impl Server {
    /// `GET /api/events`: always a stream (200). It starts with `ready`
    /// (where it resumes) or `reset` (list again), then the changes the
    /// client missed, then live ones.
    pub(super) fn open_events(
        &mut self,
        key: usize,
        since: Option<&str>,
        extra_headers: &[(&'static str, String)],
    ) {
        let now = self.now_ms();
        let changes = self.index.changes();
        let (seq, first) = match changes.start(since) {
            Start::After(seq) => (seq, changes.ready_frame(seq)),
            Start::Reset(reason) => (changes.last_seq(), changes.reset_frame(reason)),
        };
        if !self.conns.contains(key) {
            return;
        }
        let index = self.subscribers.add(key, now, self.config.stall_timeout_ms);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        response::stream_head(&mut conn.out, extra_headers);
        conn.out.extend_from_slice(&first);
        conn.become_events(Subscription {
            seq,
            index,
            queued: false,
        });
        if let Some((id, _)) = conn.timer.take() {
            self.timers.cancel(id);
        }
        self.metrics.streams_open += 1;
        self.metrics.events_sent += 1;
        self.arm_events();
        log::debug!(
            "conn {key}: events after {}",
            self.index.changes().id_of(seq)
        );
    }

    /// A request just became a subscription: send its head, first event
    /// and what it missed.
    pub(super) fn events_started(&mut self, key: usize) {
        self.advance_subscriber(key);
    }

    /// A subscriber's socket is readable (the client sent something, or
    /// left) or writable (it drained).
    pub(super) fn events_event(&mut self, key: usize, event: &Event) {
        self.pushing_event(key, event, Server::advance_subscriber);
    }

    fn advance_subscriber(&mut self, key: usize) {
        let changes = self.index.changes();
        match self
            .subscribers
            .advance(key, changes, &mut self.conns, &mut self.metrics)
        {
            Advance::Waiting => {}
            Advance::MoreWork => {
                if let Some(conn) = self.conns.get_mut(key) {
                    self.subscribers.queue(key, conn);
                }
            }
            Advance::Close => self.close(key),
        }
    }

    /// The turn's changes to every subscriber, then the subscribers queued
    /// for catch-up (each once: one cannot starve the rest; at most a
    /// turn's writes of them), then a heartbeat round cut short last turn.
    pub(super) fn run_events(&mut self) {
        self.lend_writes();
        let now = self.now_ms();
        let changes = self.index.changes();
        self.subscribers
            .publish(changes, &mut self.conns, &mut self.metrics, now);
        if self.subscribers.beat_from.is_some() {
            self.subscribers
                .heartbeat(&mut self.conns, &mut self.metrics, now);
        }
        for _ in 0..self.subscribers.work.len() {
            if !self.subscribers.take_write() {
                break; // the rest stay queued for the next turn
            }
            let Some((key, generation)) = self.subscribers.work.pop_front() else {
                break;
            };
            let current = self
                .conns
                .get(key)
                .is_some_and(|c| c.generation == generation && matches!(c.role, Role::Events(_)));
            if current {
                self.advance_subscriber(key);
            }
        }
        self.close_subscribers();
        self.settle_writes();
    }

    /// Lends the subscribers what is left of the turn's writes.
    fn lend_writes(&mut self) {
        self.subscribers
            .lend_writes(self.engine.writes_for_others());
    }

    /// Counts what the subscribers wrote against the turn's writes.
    fn settle_writes(&mut self) {
        let used = self.subscribers.settle_writes();
        self.engine.count_writes(used);
    }

    /// The subscribers' wake: heartbeats and stall checks when due.
    pub(super) fn events_timer(&mut self, at: u64, now: u64) {
        if self.subscribers.armed_at != Some(at) {
            return;
        }
        self.subscribers.armed_at = None;
        let heartbeat_ms = self.config.heartbeat_interval_ms;
        if now >= self.subscribers.last_sent_ms + heartbeat_ms {
            self.lend_writes();
            self.subscribers
                .heartbeat(&mut self.conns, &mut self.metrics, now);
            self.settle_writes();
        }
        if now >= self.subscribers.stall_check_ms {
            let stall_ms = self.config.stall_timeout_ms;
            self.subscribers
                .check_stalls(&mut self.conns, &mut self.metrics, now, stall_ms);
        }
        self.close_subscribers();
        self.arm_events();
    }

    fn arm_events(&mut self) {
        if let Some(at) = self
            .subscribers
            .next_wake(self.config.heartbeat_interval_ms)
        {
            self.timers.insert(at, Timer::Events(at));
        }
    }

    fn close_subscribers(&mut self) {
        while let Some(key) = self.subscribers.closed.pop() {
            self.close(key);
        }
    }

    /// A subscriber's connection is closing: it leaves the list.
    pub(super) fn unsubscribe(&mut self, subscription: &Subscription) {
        self.subscribers.remove(subscription.index, &mut self.conns);
        self.metrics.streams_open -= 1;
    }

    /// The daemon is stopping: every subscriber gets `shutdown`.
    pub(super) fn shutdown_events(&mut self) {
        self.subscribers.shutdown(&mut self.conns);
    }
}
