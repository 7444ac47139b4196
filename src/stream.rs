//! The streaming engine: shared tails, fan-out and catch-up. Backpressure is
//! a byte offset, never a queue (SSE-NOTES, "What users of SSE servers report
//! most"). On each poll tick a tail frames its new lines once into one
//! [`Block`] and writes it straight to every stream sitting exactly at the
//! tail's offset with nothing pending. A stream whose socket was full keeps
//! only the unsent rest of the event it was cut in, and falls behind; when
//! its socket drains it reads its own catch-up from the file (through the
//! tail's descriptor, in bounded chunks) until it is back at the tail.
//! Memory therefore does not grow with client slowness, and no line is
//! skipped or repeated.

use std::collections::{HashMap, VecDeque};
use std::io;

use slab::Slab;

use crate::conn::{Conn, Flow, Phase, StreamState};
use crate::logs::tail::{Change, Tail, CHUNK};
use crate::logs::LogDir;
use crate::metrics::Metrics;
use crate::routes::StreamRequest;
use crate::sse::{self, Block};
use crate::timer::TimerId;

/// Most bytes of file a stream catches up in one turn before others get theirs.
const CATCHUP_BUDGET: usize = 4 * CHUNK;

/// Most chunks a tail reads in one poll tick (then the next tick goes on).
const CHUNKS_PER_TICK: usize = 16;

/// How a stream request is answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// No such log: 404.
    NotFound,
    /// A finished log and the client already has all of it: 204 tells
    /// EventSource to stop reconnecting.
    NoContent,
    /// Stream from `offset`; `new_tail` means the caller arms its poll timer.
    Stream {
        tail: usize,
        offset: u64,
        new_tail: bool,
    },
}

/// What [`Engine::advance`] left the stream in.
#[derive(Debug, PartialEq, Eq)]
pub enum Advance {
    /// Waiting for its socket to drain.
    Blocked,
    /// At the tail's offset: it will get the next fan-out.
    CaughtUp,
    /// Used its budget while behind: queue it again.
    MoreWork,
    /// Close the connection (sent its end, or the peer left).
    Close,
}

/// What a poll tick left behind.
#[derive(Debug, Default)]
pub struct Polled {
    /// Connections whose peer is gone.
    pub closed: Vec<usize>,
    /// Keep polling this tail.
    pub rearm: bool,
}

#[derive(Debug, Default)]
pub struct Engine {
    pub tails: Slab<Tail>,
    by_id: HashMap<String, usize>,
    /// The block a tail frames and fans out.
    block: Block,
    /// The block a stream frames its catch-up into.
    own: Block,
    buf: Vec<u8>,
    next_generation: u32,
    /// Streams with work to do outside a socket event: `(key, generation)`.
    pub work: VecDeque<(usize, u32)>,
}

impl Engine {
    /// Streams following log `id` right now.
    pub fn subscribers(&self, id: &str) -> u64 {
        self.by_id
            .get(id)
            .and_then(|&t| self.tails.get(t))
            .map_or(0, |t| t.streams.len() as u64)
    }

    /// `(log id, streams)` for every followed log.
    pub fn subscriber_counts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.tails
            .iter()
            .map(|(_, t)| (t.id.as_str(), t.streams.len() as u64))
    }

    /// The tail following log `id`, if any stream follows it.
    pub fn tail_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Finds (or opens) the log's tail and decides where the stream starts.
    pub fn open(&mut self, dir: &LogDir, req: &StreamRequest, now_ms: u64) -> io::Result<Opened> {
        let (tail_key, new_tail) = match self.by_id.get(&req.id) {
            Some(&key) => (key, false),
            None => match self.open_tail(dir, &req.id, now_ms) {
                Ok(key) => (key, true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Opened::NotFound),
                Err(e) => return Err(e),
            },
        };
        let tail = &self.tails[tail_key];
        let start = match (req.resume, req.tail) {
            (Some(at), _) if tail.is_complete() && at >= tail.size => None,
            (Some(at), _) => Some(tail.resume_start(at, &mut self.buf)?),
            (None, Some(n)) => Some(tail.tail_start(n, &mut self.buf)?),
            (None, None) => Some(0),
        };
        match start {
            Some(offset) => Ok(Opened::Stream {
                tail: tail_key,
                offset,
                new_tail,
            }),
            None => {
                if new_tail {
                    self.drop_tail(tail_key);
                }
                Ok(Opened::NoContent)
            }
        }
    }

    fn open_tail(&mut self, dir: &LogDir, id: &str, now_ms: u64) -> io::Result<usize> {
        self.next_generation = self.next_generation.wrapping_add(1);
        let tail = Tail::open(id, dir.file_of(id), now_ms, self.next_generation)?;
        let key = self.tails.insert(tail);
        self.by_id.insert(id.to_string(), key);
        Ok(key)
    }

    fn drop_tail(&mut self, key: usize) -> Option<TimerId> {
        let tail = self.tails.try_remove(key)?;
        if self.by_id.get(&tail.id) == Some(&key) {
            self.by_id.remove(&tail.id);
        }
        tail.timer
    }

    /// Makes connection `key` a stream of `tail` from `offset` and queues its
    /// first catch-up.
    pub fn attach(&mut self, conn: &mut Conn, key: usize, tail: usize, offset: u64) {
        let streams = &mut self.tails[tail].streams;
        let index = streams.len();
        streams.push(key);
        conn.phase = Phase::Stream(StreamState {
            tail,
            offset,
            index,
            queued: true,
        });
        self.work.push_back((key, conn.generation));
    }

    /// Removes a closing stream from its tail; returns the timer to cancel
    /// when that was the tail's last stream (it then holds no descriptor).
    pub fn detach(&mut self, conns: &mut Slab<Conn>, stream: &StreamState) -> Option<TimerId> {
        let tail = self.tails.get_mut(stream.tail)?;
        if tail.streams.get(stream.index).is_some() {
            tail.streams.swap_remove(stream.index);
            if let Some(&moved) = tail.streams.get(stream.index) {
                if let Some(s) = conns.get_mut(moved).and_then(Conn::stream_mut) {
                    s.index = stream.index;
                }
            }
        }
        if tail.streams.is_empty() {
            return self.drop_tail(stream.tail);
        }
        None
    }

    /// One poll tick of a tail: notice file changes, read and fan out new
    /// lines, end streams of a finished log, send heartbeats.
    pub fn poll(
        &mut self,
        key: usize,
        conns: &mut Slab<Conn>,
        now_ms: u64,
        heartbeat_ms: u64,
        m: &mut Metrics,
    ) -> Polled {
        let mut polled = Polled {
            closed: Vec::new(),
            rearm: true,
        };
        let Some(tail) = self.tails.get_mut(key) else {
            polled.rearm = false;
            return polled;
        };
        m.tail_polls += 1;
        match tail.refresh(now_ms) {
            Change::Unchanged => {}
            Change::Reset => self.control_all(key, conns, sse::RESET, false),
            Change::Deleted => {
                self.control_all(key, conns, sse::END_DELETED, true);
                let id = self.tails[key].id.clone();
                if self.by_id.get(&id) == Some(&key) {
                    self.by_id.remove(&id);
                }
                polled.rearm = false;
                return polled;
            }
        }
        self.read_and_fan_out(key, conns, now_ms, m, &mut polled.closed);
        if self.tails[key].is_complete() {
            self.end_caught_up(key, conns, m);
        } else {
            self.heartbeat(key, conns, now_ms, heartbeat_ms, m, &mut polled.closed);
        }
        polled
    }

    fn read_and_fan_out(
        &mut self,
        key: usize,
        conns: &mut Slab<Conn>,
        now_ms: u64,
        m: &mut Metrics,
        closed: &mut Vec<usize>,
    ) {
        let Engine {
            tails, block, buf, ..
        } = self;
        let tail = &mut tails[key];
        for _ in 0..CHUNKS_PER_TICK {
            m.tail_reads += u64::from(tail.offset < tail.size);
            match tail.read_new(buf, block) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    log::warn!("log {}: read failed: {e}", tail.id);
                    break;
                }
            }
            tail.last_sent_ms = now_ms;
            for &stream_key in &tail.streams {
                if let Some(conn) = conns.get_mut(stream_key) {
                    if write_block(conn, block, m) == Flow::Closed {
                        closed.push(stream_key);
                    }
                }
            }
        }
    }

    /// Sends a control frame to every stream of a tail, after whatever it
    /// has pending; `reset` streams restart at 0, `end` streams close.
    fn control_all(&mut self, key: usize, conns: &mut Slab<Conn>, frame: &[u8], close: bool) {
        let Engine { tails, work, .. } = self;
        for &stream_key in &tails[key].streams {
            let Some(conn) = conns.get_mut(stream_key) else {
                continue;
            };
            if conn.close_after_flush {
                continue;
            }
            conn.out.extend_from_slice(frame);
            conn.close_after_flush = close;
            if let Phase::Stream(s) = &mut conn.phase {
                s.offset = 0;
                enqueue(work, s, stream_key, conn.generation);
            }
        }
    }

    /// A finished log: every stream already at its end gets `end` and closes.
    fn end_caught_up(&mut self, key: usize, conns: &mut Slab<Conn>, m: &mut Metrics) {
        let tail = &self.tails[key];
        let waiting: Vec<usize> = tail
            .streams
            .iter()
            .copied()
            .filter(|&k| {
                conns.get(k).is_some_and(|c| {
                    !c.close_after_flush && c.stream().is_some_and(|s| s.offset >= tail.offset)
                })
            })
            .collect();
        if waiting.is_empty() {
            return;
        }
        let frame = self.end_frame(key);
        for stream_key in waiting {
            let Some(conn) = conns.get_mut(stream_key) else {
                continue;
            };
            conn.out.extend_from_slice(&frame);
            conn.close_after_flush = true;
            m.events_sent += 1;
            if let Phase::Stream(s) = &mut conn.phase {
                enqueue(&mut self.work, s, stream_key, conn.generation);
            }
        }
    }

    fn end_frame(&mut self, key: usize) -> Vec<u8> {
        let tail = &mut self.tails[key];
        let lines = tail.line_count(&mut self.buf).unwrap_or(0);
        sse::end_finished(lines, tail.size)
    }

    fn heartbeat(
        &mut self,
        key: usize,
        conns: &mut Slab<Conn>,
        now_ms: u64,
        every_ms: u64,
        m: &mut Metrics,
        closed: &mut Vec<usize>,
    ) {
        let tail = &mut self.tails[key];
        if now_ms.saturating_sub(tail.last_sent_ms) < every_ms {
            return;
        }
        tail.last_sent_ms = now_ms;
        for &stream_key in &tail.streams {
            let Some(conn) = conns.get_mut(stream_key) else {
                continue;
            };
            let at_tail = conn.stream().is_some_and(|s| s.offset == tail.offset);
            if !at_tail || conn.has_output() || !conn.writable {
                continue;
            }
            let (flow, n) = conn.write_direct(sse::KEEPALIVE);
            m.bytes_sent += n as u64;
            match flow {
                Flow::Done => {}
                Flow::WouldBlock => conn.out.extend_from_slice(&sse::KEEPALIVE[n..]),
                Flow::Closed => closed.push(stream_key),
            }
        }
    }

    /// Moves one stream forward: flush what it has pending, then catch up
    /// from the file until it reaches the tail, its budget runs out or its
    /// socket is full. A stream at the end of a finished log gets `end`.
    pub fn advance(&mut self, conn: &mut Conn, m: &mut Metrics) -> Advance {
        if let Some(s) = conn.stream_mut() {
            s.queued = false;
        }
        match flush(conn, m) {
            Flow::Done => {}
            Flow::WouldBlock => return Advance::Blocked,
            Flow::Closed => return Advance::Close,
        }
        if conn.close_after_flush {
            return Advance::Close;
        }
        let Some(stream) = conn.stream().copied() else {
            return Advance::Close;
        };
        let Some(tail) = self.tails.get(stream.tail) else {
            return Advance::Close;
        };
        let mut budget = CATCHUP_BUDGET;
        let mut offset = stream.offset;
        while offset < tail.offset {
            if budget == 0 {
                return Advance::MoreWork;
            }
            let len = (tail.offset - offset).min(CHUNK as u64) as usize;
            m.catchup_reads += 1;
            let n = match tail.read_at(offset, len, &mut self.buf) {
                Ok(n) if n > 0 => n,
                _ => return Advance::Blocked, // file shrank: the next poll resets
            };
            self.own.clear(offset);
            self.own
                .frame(&self.buf[..n], offset + n as u64 == tail.offset);
            if self.own.is_empty() {
                return Advance::Blocked;
            }
            let flow = write_block(conn, &self.own, m);
            offset = conn.stream().map_or(offset, |s| s.offset);
            match flow {
                Flow::Done => budget = budget.saturating_sub(n),
                Flow::WouldBlock => return Advance::Blocked,
                Flow::Closed => return Advance::Close,
            }
        }
        if tail.is_complete() {
            let frame = self.end_frame(stream.tail);
            conn.out.extend_from_slice(&frame);
            conn.close_after_flush = true;
            m.events_sent += 1;
            return match flush(conn, m) {
                Flow::WouldBlock => Advance::Blocked,
                _ => Advance::Close,
            };
        }
        Advance::CaughtUp
    }

    /// Every stream gets `shutdown` (the daemon is stopping).
    pub fn shutdown_all(&mut self, conns: &mut Slab<Conn>) {
        let keys: Vec<usize> = self.tails.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.control_all(key, conns, sse::SHUTDOWN, true);
        }
    }
}

fn enqueue(work: &mut VecDeque<(usize, u32)>, s: &mut StreamState, key: usize, generation: u32) {
    if !s.queued {
        s.queued = true;
        work.push_back((key, generation));
    }
}

/// Writes `block` to a stream that sits exactly at its start with nothing
/// pending; any other stream is left to catch up by itself. A cut event's
/// rest is kept, and the stream's offset moves past it.
fn write_block(conn: &mut Conn, block: &Block, m: &mut Metrics) -> Flow {
    let ready = conn.writable && !conn.has_output() && !conn.close_after_flush;
    match conn.stream() {
        Some(s) if ready && s.offset == block.base => {}
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

fn flush(conn: &mut Conn, m: &mut Metrics) -> Flow {
    if !conn.has_output() {
        return Flow::Done;
    }
    let (flow, n) = conn.flush();
    m.bytes_sent += n as u64;
    flow
}
