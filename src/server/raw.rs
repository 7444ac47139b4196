//! `GET /api/logs/<id>/raw` (SPEC section 3): a log's bytes as they are
//! when asked for, whole or one range, and the reactor's side of sending
//! them. The state of one body (descriptor, range, position) is a
//! [`FileBody`]; here are the answer's headers and the queue that sends
//! file bodies a bounded piece at a time.
//!
//! The size is fixed when the file is opened: bytes appended later are not
//! sent (the `Content-Length` said how many come), and a file that shrinks
//! under a download ends its connection, since that length can no longer
//! be honoured. A client that takes no byte for `--stall-timeout-ms` is
//! dropped, and its descriptor with it.
//!
//! No turn sends more than [`TURN_BYTES`] of file bodies, and no connection
//! more than [`PIECE_BYTES`] of them, so a thousand downloads cannot hold
//! the loop: a body whose socket still has room goes back to the end of
//! the queue, and the next turn does not wait for readiness.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;

use mio::event::Event;

use super::Server;
use crate::conn::Phase;
use crate::http::range::{self, Ranged};
use crate::http::response::TEXT;
use crate::http::{etag, Method, RequestHead, Response};
use crate::reply::{FileBody, Sent, Then};
use crate::routes::RawRequest;

/// At most this much of one body per turn (when its socket takes it).
const PIECE_BYTES: usize = 256 * 1024;

/// At most this much of all file bodies together per turn.
const TURN_BYTES: usize = 4 * 1024 * 1024;

impl Server {
    /// The answer to `GET`/`HEAD /api/logs/<id>/raw`, and the body to send
    /// after it (`None` for HEAD, 304, errors and empty ranges).
    pub(super) fn open_raw(
        &mut self,
        head: &RequestHead,
        req: &RawRequest,
    ) -> (Response, Option<FileBody>) {
        // The id passed `valid_id` in routing: this path is inside the log dir.
        let (file, meta) = match crate::logs::open_regular(&self.dir.file_of(&req.id)) {
            Ok(opened) => opened,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return (Response::error(404, "no such log"), None)
            }
            Err(e) => return (Response::error(500, &format!("cannot open log: {e}")), None),
        };
        let size = meta.len();
        let tag = entity_tag(&meta);
        let unchanged = head
            .if_none_match
            .as_deref()
            .is_some_and(|tags| etag::if_none_match(tags, &tag));
        if unchanged {
            let response = Response::new(304, TEXT, &b""[..]);
            return (validators(response, tag, &meta), None);
        }
        // RFC 9110 section 14.2: `Range` is for GET only; HEAD describes
        // the whole file.
        let range = match head.method {
            Method::Get => head.range.as_deref(),
            _ => None,
        };
        let (status, range) = match range::resolve(range, size) {
            Ranged::Full => (200, 0..size),
            Ranged::Partial(range) => (206, range),
            Ranged::Unsatisfiable => {
                let refusal = Response::error(416, "range not satisfiable")
                    .header("Content-Range", range::unsatisfied_range(size));
                return (refusal, None);
            }
        };
        let mut response = Response::announcing(status, TEXT, range.end - range.start)
            .header("Accept-Ranges", "bytes")
            // Served as text, whatever a log holds: no browser may guess HTML.
            .header("X-Content-Type-Options", "nosniff");
        if status == 206 {
            response = response.header("Content-Range", range::content_range(&range, size));
        }
        if req.download {
            response = response.header(
                "Content-Disposition",
                // Ids are [A-Za-z0-9._-]: nothing to escape.
                format!("attachment; filename=\"{}.log\"", req.id),
            );
        }
        let response = validators(response, tag, &meta);
        let body = (head.method == Method::Get && !range.is_empty())
            .then(|| FileBody::new(file, range, Then::KeepAlive));
        (response, body)
    }

    /// The response's head is queued: its body follows, and the connection
    /// reads no request until it is sent.
    pub(super) fn start_file(&mut self, key: usize, mut body: FileBody) {
        let stall_deadline = self.now_ms() + self.config.stall_timeout_ms;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        // What the head promised for afterwards (`respond` chose the phase).
        body.then = match conn.phase() {
            Phase::Waiting { .. } => Then::KeepAlive,
            Phase::PeerClosed { .. } => Then::PeerClosed,
            _ => Then::Close,
        };
        log::debug!("conn {key}: sending {} bytes of a log", body.remaining());
        conn.send_file(body, stall_deadline);
        self.arm_conn_timer(key);
        self.queue_file(key);
    }

    /// Readiness of a connection sending a file: a writable edge (or the
    /// client leaving, which the next write finds out) puts it back in the
    /// queue. Requests it sends meanwhile wait in the socket.
    pub(super) fn file_event(&mut self, key: usize, event: &Event) {
        if event.is_writable() || event.is_error() || event.is_write_closed() {
            self.queue_file(key);
        }
    }

    fn queue_file(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let generation = conn.generation;
        if let Some(body) = conn.file_body() {
            if !body.queued {
                body.queued = true;
                self.files.push_back((key, generation));
            }
        }
    }

    /// One turn's share of file bodies, in queue order, within [`TURN_BYTES`].
    pub(crate) fn run_files(&mut self) {
        if self.files.is_empty() {
            return;
        }
        let now = self.now_ms();
        let mut budget = TURN_BYTES;
        for _ in 0..self.files.len() {
            let Some((key, generation)) = self.files.pop_front() else {
                break;
            };
            let sent = self.send_piece(key, generation, budget.min(PIECE_BYTES), now);
            budget = budget.saturating_sub(sent);
            if budget == 0 {
                break;
            }
        }
    }

    /// Sends the head (if still queued) and up to `max` bytes of the body
    /// of connection `key`; returns the bytes sent.
    fn send_piece(&mut self, key: usize, generation: u32, max: usize, now: u64) -> usize {
        let Some(conn) = self.conns.get_mut(key) else {
            return 0;
        };
        if conn.generation != generation {
            return 0; // the slot was reused
        }
        match conn.file_body() {
            Some(body) => body.queued = false,
            None => return 0,
        }
        if !matches!(conn.phase(), Phase::SendingFile { .. }) {
            return 0; // a stop made it close: only `out` is flushed
        }
        let mut sent = 0;
        if conn.has_output() {
            let (flow, n) = conn.flush();
            sent += n;
            match flow {
                crate::conn::Flow::Done => {}
                crate::conn::Flow::WouldBlock => return self.progressed(key, sent, now),
                crate::conn::Flow::Closed => {
                    self.close(key);
                    return sent;
                }
            }
        }
        let (outcome, n) = conn.pump_file(max, &mut self.scratch);
        sent += n;
        self.progressed(key, sent, now);
        match outcome {
            Sent::Finished => {
                log::trace!("conn {key}: file body sent");
                self.finish_file(key)
            }
            Sent::Blocked => {} // its writable edge queues it again
            Sent::Budget => self.queue_file(key),
            Sent::Closed => {
                log::debug!("conn {key}: the client left during a file body");
                self.close(key);
            }
            Sent::Shrunk => {
                log::info!("conn {key}: the log shrank during its download: closing");
                self.close(key);
            }
            Sent::Failed(e) => {
                log::warn!("conn {key}: reading the log failed: {e}");
                self.close(key);
            }
        }
        sent
    }

    /// Counts bytes the socket took; any byte moves the stall deadline.
    fn progressed(&mut self, key: usize, sent: usize, now: u64) -> usize {
        self.metrics.bytes_sent += sent as u64;
        if sent > 0 {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.set_phase(Phase::SendingFile {
                    stall_deadline_ms: now + self.config.stall_timeout_ms,
                });
            }
        }
        sent
    }

    /// The whole body went out: let the file go, and carry on as the head
    /// said (the next request, or closing).
    fn finish_file(&mut self, key: usize) {
        let idle_deadline = self.now_ms() + self.config.idle_timeout_ms;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let then = conn.file_body().map_or(Then::Close, |body| body.then);
        conn.end_file();
        conn.set_phase(match then {
            Then::KeepAlive => Phase::Waiting {
                deadline_ms: idle_deadline,
            },
            Then::PeerClosed => Phase::PeerClosed {
                deadline_ms: idle_deadline,
            },
            Then::Close => Phase::Closing {
                deadline_ms: idle_deadline,
            },
        });
        self.arm_conn_timer(key);
        // Requests that arrived meanwhile are in the socket or the buffer,
        // and no readable edge may come for them again.
        self.http_ready(key);
    }
}

/// A weak tag from the file's identity, size and modification time: a log
/// that grows or is replaced gets a new one. Weak, because that time is
/// coarse (a few ms on some file systems): a rewrite of the same length
/// within one tick could keep it.
fn entity_tag(meta: &Metadata) -> String {
    format!(
        "W/\"{:x}-{:x}-{:x}.{:x}\"",
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    )
}

/// `ETag`, `Last-Modified`, and `Cache-Control: no-cache` (a log changes:
/// a cache must ask again each time, and the tag makes that cheap).
fn validators(response: Response, tag: String, meta: &Metadata) -> Response {
    let response = response
        .header("ETag", tag)
        .header("Cache-Control", "no-cache");
    match meta.modified() {
        Ok(modified) => response.header("Last-Modified", crate::clock::http_date(modified)),
        Err(_) => response,
    }
}
