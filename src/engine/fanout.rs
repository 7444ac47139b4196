//! The subscribers of one tail, and the one place a framed block of lines is
//! written to them. A block is framed once per change and written straight
//! to every stream sitting exactly at its start with nothing pending; any
//! other stream (behind, or with a full socket) is left to catch up from the
//! file by itself. Backpressure is that byte offset, never a queue
//! (SSE-NOTES, "What users of SSE servers report most").

use slab::Slab;

use crate::conn::{Conn, Flow, Role, Stall};
use crate::metrics::Metrics;
use crate::sse::{self, Block};

/// A connection's place in a log: what the engine keeps per stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamState {
    /// Key of the tail it follows.
    pub tail: usize,
    /// File offset this stream has sent (or is sending, in `out`) up to.
    pub offset: u64,
    /// Its index in the tail's [`Fanout`].
    pub index: usize,
    /// Waiting in the engine's catch-up queue.
    pub queued: bool,
    /// Waiting for the scan that finds where it starts (`offset` means
    /// nothing yet): no fan-out, heartbeat or `end` reaches it.
    pub seeking: bool,
}

/// The streams following one tail.
#[derive(Debug, Default)]
pub struct Fanout {
    streams: Vec<usize>,
    /// Last time anything was sent to the streams at the tail (heartbeats
    /// are due a heartbeat interval after it).
    last_sent_ms: u64,
}

impl Fanout {
    pub fn new(now_ms: u64) -> Fanout {
        Fanout {
            streams: Vec::new(),
            last_sent_ms: now_ms,
        }
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    pub fn keys(&self) -> &[usize] {
        &self.streams
    }

    /// When the next heartbeat is due.
    pub fn heartbeat_due(&self, every_ms: u64) -> u64 {
        self.last_sent_ms + every_ms
    }

    /// Adds connection `key`; returns its index (kept in its [`StreamState`]).
    pub fn add(&mut self, key: usize) -> usize {
        self.streams.push(key);
        self.streams.len() - 1
    }

    /// Removes the stream at `index`; the stream moved into its place gets
    /// its new index.
    pub fn remove(&mut self, index: usize, conns: &mut Slab<Conn>) {
        if index >= self.streams.len() {
            return;
        }
        self.streams.swap_remove(index);
        if let Some(&moved) = self.streams.get(index) {
            if let Some(s) = conns.get_mut(moved).and_then(Conn::stream_mut) {
                s.index = index;
            }
        }
    }

    /// Writes `block` to every stream at its start; peers found gone are
    /// pushed to `closed`.
    pub fn send(
        &mut self,
        block: &Block,
        conns: &mut Slab<Conn>,
        now_ms: u64,
        m: &mut Metrics,
        closed: &mut Vec<usize>,
    ) {
        self.last_sent_ms = now_ms;
        for &key in &self.streams {
            if let Some(conn) = conns.get_mut(key) {
                if write_block(conn, block, m) == Flow::Closed {
                    closed.push(key);
                }
            }
        }
    }

    /// Sends `frame` to every stream after whatever it has pending. With
    /// `close`, each stream ends after it; otherwise (a `reset`) each starts
    /// again at offset 0. Streams that need a flush are pushed to `queue`.
    pub fn control(
        &self,
        frame: &[u8],
        close: bool,
        conns: &mut Slab<Conn>,
        queue: &mut Vec<usize>,
    ) {
        for &key in &self.streams {
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if conn.is_closing() {
                continue;
            }
            conn.out.extend_from_slice(frame);
            if close {
                conn.close_when_flushed();
            }
            if let Role::Stream(s) = &mut conn.role {
                // After a reset the new content starts at 0, scan or not.
                s.offset = 0;
                s.seeking = false;
            }
            queue.push(key);
        }
    }

    /// Streams (not already ending) that have everything up to `offset`.
    pub fn caught_up(&self, offset: u64, conns: &Slab<Conn>) -> Vec<usize> {
        self.streams
            .iter()
            .copied()
            .filter(|&k| {
                conns.get(k).is_some_and(|c| {
                    !c.is_closing()
                        && c.stream().is_some_and(|s| !s.seeking && s.offset >= offset)
                })
            })
            .collect()
    }

    /// Stall checks (`--stall-timeout-ms`): a stream whose socket has been
    /// full since a check `stall_ms` ago, with no byte taken since, is
    /// pushed to `stalled`; one whose socket is full is pushed to `waiting`
    /// (a step tries to write: no writable edge may come to ask for one).
    pub fn check_stalls(
        &self,
        now_ms: u64,
        stall_ms: u64,
        conns: &mut Slab<Conn>,
        found: &mut StallCheck,
    ) {
        for &key in &self.streams {
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            match conn.check_stall(now_ms, stall_ms) {
                Stall::Moving => {}
                Stall::Waiting => found.waiting.push(key),
                Stall::Stalled => found.stalled.push(key),
            }
        }
    }

    /// A `: keepalive` comment to every stream at the tail's `offset` that
    /// is idle and writable (the others are busy sending lines anyway).
    pub fn heartbeat(
        &mut self,
        offset: u64,
        conns: &mut Slab<Conn>,
        now_ms: u64,
        m: &mut Metrics,
        closed: &mut Vec<usize>,
    ) {
        self.last_sent_ms = now_ms;
        for &key in &self.streams {
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let at_tail = conn
                .stream()
                .is_some_and(|s| !s.seeking && s.offset == offset);
            if !at_tail || conn.has_output() || !conn.writable || conn.is_closing() {
                continue;
            }
            let (flow, n) = conn.write_direct(sse::KEEPALIVE);
            m.bytes_sent += n as u64;
            match flow {
                Flow::Done => {}
                Flow::WouldBlock => conn.out.extend_from_slice(&sse::KEEPALIVE[n..]),
                Flow::Closed => closed.push(key),
            }
        }
    }
}

/// What stall checks found: streams to close, and streams to move on.
#[derive(Debug, Default)]
pub struct StallCheck {
    pub stalled: Vec<usize>,
    pub waiting: Vec<usize>,
}

/// Writes `block` to a stream that sits exactly at its start with nothing
/// pending; any other stream is left to catch up by itself. A cut event's
/// rest is kept, and the stream's offset moves past it.
pub fn write_block(conn: &mut Conn, block: &Block, m: &mut Metrics) -> Flow {
    let ready = conn.writable && !conn.has_output() && !conn.is_closing();
    match conn.stream() {
        Some(s) if ready && !s.seeking && s.offset == block.base => {}
        _ => return Flow::Done,
    }
    let (flow, n) = conn.write_direct(&block.bytes);
    m.bytes_sent += n as u64;
    let written = block.written(n);
    m.events_sent += block.events.partition_point(|e| e.pos <= n) as u64;
    if flow == Flow::WouldBlock {
        conn.out.extend_from_slice(&block.bytes[written.rest]);
    }
    if let Some(s) = conn.stream_mut() {
        s.offset = written.offset;
    }
    flow
}

/// Writes what the connection has pending.
pub fn flush(conn: &mut Conn, m: &mut Metrics) -> Flow {
    if !conn.has_output() {
        return Flow::Done;
    }
    let (flow, n) = conn.flush();
    m.bytes_sent += n as u64;
    flow
}
