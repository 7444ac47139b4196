//! One client connection: its socket, its role (HTTP, log stream or events),
//! the phase of its life with that phase's deadline, and its output buffer,
//! which an HTTP response's body may follow from elsewhere
//! ([`crate::reply`]: fixed bytes written beside it with `writev`, or a file
//! sent as the socket drains). The socket is registered once for read and write readiness
//! (edge-triggered, as sozu does): a writable edge only fires after a write
//! hit `WouldBlock`, so permanent write interest costs no wakeups and saves
//! two `epoll_ctl` calls per short write. `writable` remembers the last edge.
//!
//! Memory per connection is the point of the design: an idle stream holds no
//! heap at all (its buffers are released when empty); only a stream whose
//! socket is full holds the unsent rest of one event plus small control frames.

use std::io::{self, IoSlice, Read, Write};

use mio::net::TcpStream;

pub use crate::engine::StreamState;
use crate::http::{BodyDecoder, RequestHead, Response};
pub use crate::logs::changes::Subscription;
use crate::reply::{FileBody, Reply, Sent};
use crate::timer::TimerId;

/// Above this much unsent output a connection stops reading requests until
/// its client reads (pipelining without reading cannot grow memory).
pub const OUT_HIGH_WATER: usize = 64 * 1024;

/// An HTTP connection's buffers keep up to this capacity between requests.
const HTTP_BUF_KEEP: usize = 16 * 1024;

/// Fixed bodies from this size on are written from where they lie (with
/// `writev`); smaller ones cost less copied than as a second piece.
const STATIC_MIN: usize = 1024;

#[derive(Debug)]
pub struct Conn {
    pub socket: TcpStream,
    pub generation: u32,
    /// What the connection is for, with that role's own state.
    pub role: Role,
    /// Where it is in its life, with the deadline that applies there.
    phase: Phase,
    /// Bytes not yet written; `out_pos` of them already went out.
    pub out: Vec<u8>,
    pub out_pos: usize,
    /// The last write readiness seen: false after `WouldBlock` until the next
    /// writable edge.
    pub writable: bool,
    /// The armed timer and the time it fires.
    pub timer: Option<(TimerId, u64)>,
    /// Bytes the socket took, wrapping: stall checks compare it with
    /// `sent_at_check`, its value at the previous check.
    sent: u32,
    sent_at_check: u32,
}

#[derive(Debug)]
pub enum Role {
    /// Reading requests and writing responses.
    Http(HttpState),
    /// Sending a log as events; no more requests are read.
    Stream(StreamState),
    /// Sending the directory's changes (`GET /api/events`); no more
    /// requests are read.
    Events(Subscription),
}

/// No deadline (yet): a stream's stall deadline is set when a stall check
/// first finds its socket full.
pub const NEVER: u64 = u64::MAX;

/// A connection's lifecycle. Each phase carries the one deadline that
/// applies in it; the timer that fires re-checks it (moving a deadline
/// later costs no timer operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between requests: closed at `deadline_ms` (the header timeout for a
    /// new connection, the idle timeout after a response).
    Waiting { deadline_ms: u64 },
    /// Part of a request head arrived; the rest must come by `deadline_ms`
    /// or the client gets 408.
    ReadingHead { deadline_ms: u64 },
    /// Sending events. `stall_deadline_ms`: its socket has been full since
    /// a stall check; no byte taken by then and it is closed.
    Streaming { stall_deadline_ms: u64 },
    /// Sending a file body ([`Reply::File`]); no request is read meanwhile.
    /// Closed at `stall_deadline_ms`, which every byte the socket takes
    /// moves to a stall timeout later.
    SendingFile { stall_deadline_ms: u64 },
    /// The client shut its side: answer what it already sent, then close.
    PeerClosed { deadline_ms: u64 },
    /// Send what is queued, then close (an error, `Connection: close`, a
    /// stream's end).
    Closing { deadline_ms: u64 },
    /// Our side is shut down; unread input is drained until the client
    /// closes or `deadline_ms` passes.
    Lingering { deadline_ms: u64 },
}

impl Phase {
    pub fn deadline_ms(self) -> u64 {
        match self {
            Phase::Waiting { deadline_ms }
            | Phase::ReadingHead { deadline_ms }
            | Phase::PeerClosed { deadline_ms }
            | Phase::Closing { deadline_ms }
            | Phase::Lingering { deadline_ms } => deadline_ms,
            Phase::Streaming { stall_deadline_ms } | Phase::SendingFile { stall_deadline_ms } => {
                stall_deadline_ms
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct HttpState {
    /// Input not yet parsed (a partial head, or requests held back while the
    /// output is over [`OUT_HIGH_WATER`]).
    pub buf: Vec<u8>,
    /// How much of `buf` was already scanned for the end of a head (at
    /// most [`crate::http::MAX_HEAD`]; 32 bits keep the state small).
    pub scanned: u32,
    /// Requests answered on this connection.
    pub requests: u32,
    /// Discarding the body of `pending`.
    pub body: Option<BodyDecoder>,
    pub pending: Option<Box<RequestHead>>,
    /// The body that follows `out` on the wire.
    pub reply: Reply,
}

/// What a stall check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Stall {
    /// Idle with room in its socket.
    Moving,
    /// Its socket is full: give it a step, which tries to write (it may
    /// get no writable edge to ask for one).
    Waiting,
    /// Took no byte for the stall timeout: close it.
    Stalled,
}

/// How a socket operation ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Everything asked was done.
    Done,
    /// The socket is full (write) or empty (read); wait for the next edge.
    WouldBlock,
    /// The peer is gone (EOF, reset, broken pipe): close quietly.
    Closed,
}

impl Conn {
    pub fn new(socket: TcpStream, generation: u32, deadline_ms: u64) -> Conn {
        Conn {
            socket,
            generation,
            role: Role::Http(HttpState::default()),
            phase: Phase::Waiting { deadline_ms },
            out: Vec::new(),
            out_pos: 0,
            writable: true,
            timer: None,
            sent: 0,
            sent_at_check: 0,
        }
    }

    /// A request became a stream of a log.
    pub fn become_stream(&mut self, stream: StreamState) {
        self.role = Role::Stream(stream);
        self.phase = Phase::Streaming {
            stall_deadline_ms: NEVER,
        };
    }

    /// A request became a subscription to the directory's changes; its
    /// stall deadline works as a stream's.
    pub fn become_events(&mut self, subscription: Subscription) {
        self.role = Role::Events(subscription);
        self.phase = Phase::Streaming {
            stall_deadline_ms: NEVER,
        };
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    /// Closes once the output is flushed; keeps the current deadline.
    pub fn close_when_flushed(&mut self) {
        let deadline_ms = match self.phase {
            Phase::Streaming { .. } => NEVER,
            other => other.deadline_ms(),
        };
        self.phase = Phase::Closing { deadline_ms };
    }

    /// Queues `response`: its head into `out` and its body after it, from
    /// where it lies if it is fixed bytes of some size. Nothing may be
    /// queued while a reply is pending ([`Conn::reply_pending`]).
    pub fn queue(&mut self, response: &Response, head_only: bool) {
        let Role::Http(h) = &mut self.role else {
            return response.write_to(&mut self.out, head_only);
        };
        debug_assert!(!h.reply.is_pending());
        match response.body {
            std::borrow::Cow::Borrowed(body)
                if body.len() >= STATIC_MIN && !head_only && response.has_body() =>
            {
                response.write_head(&mut self.out);
                h.reply = Reply::Static(body);
            }
            _ => response.write_to(&mut self.out, head_only),
        }
    }

    /// A file body follows what is queued; the connection sends it before
    /// it reads another request.
    pub fn send_file(&mut self, body: FileBody, stall_deadline_ms: u64) {
        if let Role::Http(h) = &mut self.role {
            h.reply = Reply::File(Box::new(body));
            self.phase = Phase::SendingFile { stall_deadline_ms };
        }
    }

    /// The file body being sent, if any.
    pub fn file_body(&mut self) -> Option<&mut FileBody> {
        match &mut self.role {
            Role::Http(HttpState {
                reply: Reply::File(body),
                ..
            }) => Some(body),
            _ => None,
        }
    }

    /// Sends up to `max` bytes of the file body (after `out`, which must
    /// be flushed first); see [`FileBody::send`].
    pub fn pump_file(&mut self, max: usize, scratch: &mut [u8]) -> (Sent, usize) {
        debug_assert!(!self.has_output());
        let Role::Http(HttpState {
            reply: Reply::File(body),
            ..
        }) = &mut self.role
        else {
            return (Sent::Finished, 0);
        };
        let (outcome, written) = body.send(&self.socket, max, scratch);
        self.sent = self.sent.wrapping_add(written as u32);
        if matches!(outcome, Sent::Blocked) {
            self.writable = false;
        }
        (outcome, written)
    }

    /// Drops the file body (and with it its descriptor).
    pub fn end_file(&mut self) {
        if let Role::Http(h) = &mut self.role {
            h.reply = Reply::default();
        }
    }

    /// A body follows `out`: later responses must wait until it is sent.
    pub fn reply_pending(&self) -> bool {
        matches!(&self.role, Role::Http(h) if h.reply.is_pending())
    }

    /// Ending: nothing more is queued for it but what is already there.
    pub fn is_closing(&self) -> bool {
        matches!(self.phase, Phase::Closing { .. } | Phase::Lingering { .. })
    }

    /// Its socket is full and it has bytes waiting: a stall candidate.
    pub fn is_blocked(&self) -> bool {
        !self.writable && self.has_output()
    }

    /// A stall check of a stream (every quarter stall timeout or so).
    /// Progress is any byte the socket took since the last check, counted
    /// in `sent`, not writable edges: the kernel gives an edge only once a
    /// third of the send buffer is free, so a client reading slowly but
    /// steadily may take bytes for seconds without one. A stream with no
    /// progress and a full socket gets a deadline `stall_ms` from that
    /// check; past it, it has stalled.
    pub fn check_stall(&mut self, now_ms: u64, stall_ms: u64) -> Stall {
        let progressed = self.sent != self.sent_at_check;
        self.sent_at_check = self.sent;
        let idle = self.writable && !self.has_output();
        let (Phase::Streaming {
            stall_deadline_ms: deadline,
        }
        | Phase::Closing {
            deadline_ms: deadline,
        }) = &mut self.phase
        else {
            return Stall::Moving;
        };
        if idle {
            *deadline = NEVER;
            return Stall::Moving;
        }
        if progressed {
            *deadline = NEVER;
        } else if *deadline == NEVER {
            *deadline = now_ms.saturating_add(stall_ms);
        } else if now_ms >= *deadline {
            return Stall::Stalled;
        }
        // Probe, as a writable edge would: the next write tries the socket.
        self.writable = true;
        Stall::Waiting
    }

    /// The socket took bytes (a writable edge): not stalled.
    pub fn made_progress(&mut self) {
        let is_stream = matches!(self.role, Role::Stream(_) | Role::Events(_));
        match &mut self.phase {
            Phase::Streaming {
                stall_deadline_ms: d,
            } => *d = NEVER,
            Phase::Closing { deadline_ms: d } if is_stream => *d = NEVER,
            _ => {}
        }
    }

    /// Bytes wait in `out` or in a fixed body after it.
    pub fn has_output(&self) -> bool {
        self.out_pos < self.out.len() || !self.static_body().is_empty()
    }

    fn static_body(&self) -> &'static [u8] {
        match &self.role {
            Role::Http(h) => h.reply.static_bytes(),
            Role::Stream(_) | Role::Events(_) => &[],
        }
    }

    pub fn stream(&self) -> Option<&StreamState> {
        match &self.role {
            Role::Stream(s) => Some(s),
            Role::Http(_) | Role::Events(_) => None,
        }
    }

    pub fn stream_mut(&mut self) -> Option<&mut StreamState> {
        match &mut self.role {
            Role::Stream(s) => Some(s),
            Role::Http(_) | Role::Events(_) => None,
        }
    }

    /// Writes as much of `out`, and of a fixed body after it, as the socket
    /// takes (one `writev` for both); returns bytes written too.
    pub fn flush(&mut self) -> (Flow, usize) {
        let body = self.static_body();
        let queued = &self.out[self.out_pos..];
        let (flow, written) = match crate::reply::by_reference(body) {
            Some((file, at)) => send_by_reference(&mut self.socket, queued, body.len(), file, at),
            None => write_until_blocked(&mut self.socket, queued, body),
        };
        let from_out = written.min(queued.len());
        self.out_pos += from_out;
        if let Role::Http(h) = &mut self.role {
            if !body.is_empty() {
                h.reply = Reply::Static(&body[written - from_out..]);
            }
        }
        self.sent = self.sent.wrapping_add(written as u32);
        match flow {
            Flow::Done => self.release_output(),
            Flow::WouldBlock => self.writable = false,
            Flow::Closed => {}
        }
        (flow, written)
    }

    /// Empties `out`, keeping a little capacity for HTTP connections and
    /// none for streams (an idle stream must cost no heap).
    fn release_output(&mut self) {
        self.out_pos = 0;
        let keep = matches!(self.role, Role::Http(_)) && self.out.capacity() <= HTTP_BUF_KEEP;
        if keep {
            self.out.clear();
        } else {
            self.out = Vec::new();
        }
    }

    /// Writes `bytes` straight to the socket (only when `out` is empty, so
    /// order is kept); returns how many went out.
    pub fn write_direct(&mut self, bytes: &[u8]) -> (Flow, usize) {
        debug_assert!(!self.has_output());
        let (flow, written) = write_until_blocked(&mut self.socket, bytes, &[]);
        self.sent = self.sent.wrapping_add(written as u32);
        if flow == Flow::WouldBlock {
            self.writable = false;
        }
        (flow, written)
    }

    /// One read into `buf`: `Ok(n)` bytes, or how the read ended.
    pub fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, Flow> {
        loop {
            match self.socket.read(buf) {
                Ok(0) => return Err(Flow::Closed),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(Flow::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(closed(&e)),
            }
        }
    }

    /// Drops the HTTP input buffer's capacity if it grew large.
    pub fn trim_input(&mut self) {
        if let Role::Http(h) = &mut self.role {
            if h.buf.is_empty() && h.buf.capacity() > HTTP_BUF_KEEP {
                h.buf = Vec::new();
            }
        }
    }
}

/// Writes `first` then `second` until done or the socket is full, both in
/// one vectored write while both have bytes left; returns how it ended and
/// how many bytes went out.
fn write_until_blocked(socket: &mut TcpStream, first: &[u8], second: &[u8]) -> (Flow, usize) {
    write_all_of(first.len() + second.len(), |written| {
        if written < first.len() && !second.is_empty() {
            socket.write_vectored(&[IoSlice::new(&first[written..]), IoSlice::new(second)])
        } else if written < first.len() {
            socket.write(&first[written..])
        } else {
            socket.write(&second[written - first.len()..])
        }
    })
}

/// [`write_until_blocked`] for a body kept in a memory file: the head with
/// `MSG_MORE` (it waits for the body, and they leave in the same packets),
/// then the body's `len` bytes from `file` at `at` by `sendfile`, without
/// copying them.
fn send_by_reference(
    socket: &mut TcpStream,
    first: &[u8],
    len: usize,
    file: &std::fs::File,
    at: u64,
) -> (Flow, usize) {
    use rustix::net::{send, SendFlags};
    write_all_of(first.len() + len, |written| {
        let result = if written < first.len() {
            send(&*socket, &first[written..], SendFlags::MORE)
        } else {
            let done = written - first.len();
            let mut offset = at + done as u64;
            rustix::fs::sendfile(&*socket, file, Some(&mut offset), len - done)
        };
        result.map_err(io::Error::from)
    })
}

/// Calls `write(bytes written so far)` until `total` bytes are written or
/// the socket says stop; how it ended, and the bytes written.
fn write_all_of(total: usize, mut write: impl FnMut(usize) -> io::Result<usize>) -> (Flow, usize) {
    let mut written = 0;
    while written < total {
        match write(written) {
            Ok(0) => return (Flow::Closed, written),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (Flow::WouldBlock, written),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return (closed(&e), written),
        }
    }
    (Flow::Done, written)
}

/// Every socket error ends the connection; resets are the peer leaving and
/// are logged at debug by the caller, not treated as daemon errors.
fn closed(e: &io::Error) -> Flow {
    log::trace!("socket error: {e}");
    Flow::Closed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The density budget: a slab entry of an idle stream stays small
    /// (SPEC section 5: well under 1 KiB of user-space memory per stream).
    #[test]
    fn a_connection_is_small() {
        let size = std::mem::size_of::<Conn>();
        assert!(size <= 192, "Conn grew to {size} bytes");
    }
}
