//! HTTP connections on the reactor: reading (into the shared scratch
//! buffer), parsing as many pipelined requests as arrived, answering them in
//! order into one output buffer flushed with one write. The endpoints are
//! in `server/api.rs`. A connection whose client does not read its responses stops
//! being read once its output passes [`OUT_HIGH_WATER`].

use mio::event::Event;

use super::Server;
use crate::conn::{Flow, Phase, Role, OUT_HIGH_WATER};
use crate::http::request::find_head_end;
use crate::http::{
    parse_head, BodyDecoder, BodyProgress, HttpError, Method, RequestHead, Response, MAX_HEAD,
};
use crate::routes::{self, Endpoint};

/// How long a closing connection's unread input is drained.
const LINGER_MS: u64 = 1000;

/// Reads per readiness event while lingering (64 KiB each), so a client
/// that keeps sending cannot hold the reactor.
const LINGER_READS: usize = 16;

impl Server {
    pub(crate) fn conn_event(&mut self, key: usize, event: &Event) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if event.is_writable() {
            conn.writable = true;
        }
        match conn.phase() {
            Phase::Lingering { .. } => return self.drain_lingering(key),
            Phase::SendingFile { .. } => return self.file_event(key, event),
            _ => {}
        }
        match conn.role {
            Role::Http(_) => self.http_ready(key),
            Role::Stream(_) => self.stream_event(key, event),
            Role::Events(_) => self.events_event(key, event),
        }
    }

    /// Flushes, answers buffered requests and reads until the socket would
    /// block (edge-triggered: stopping earlier could leave it silent forever).
    pub(super) fn http_ready(&mut self, key: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.has_output() {
                let (flow, n) = conn.flush();
                self.metrics.bytes_sent += n as u64;
                match flow {
                    Flow::Closed => return self.close(key),
                    Flow::WouldBlock => return, // the writable edge brings us back
                    Flow::Done => {}
                }
            }
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            match conn.phase() {
                Phase::Closing { .. } => return self.linger_or_close(key),
                // A file body's turn: `server/raw.rs` sends it, then comes back.
                Phase::SendingFile { .. } => return,
                _ => {}
            }
            let h = match &mut conn.role {
                Role::Http(h) => h,
                Role::Stream(_) => return self.stream_started(key),
                Role::Events(_) => return self.events_started(key),
            };
            if !h.buf.is_empty() && self.process_buffered(key) {
                continue;
            }
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if matches!(conn.phase(), Phase::PeerClosed { .. }) {
                return self.close(key);
            }
            if !self.read_requests(key) {
                return;
            }
        }
    }

    /// Closes in stages (RFC 9112 section 9.6): shut down our side, then
    /// read and discard until the client closes or [`LINGER_MS`] passes.
    /// Closing with unread input would make the kernel send a reset that can
    /// destroy the response before the client has read it.
    fn linger_or_close(&mut self, key: usize) {
        let deadline = self.now_ms() + LINGER_MS;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.socket.shutdown(std::net::Shutdown::Write).is_err() {
            return self.close(key);
        }
        conn.set_phase(Phase::Lingering {
            deadline_ms: deadline,
        });
        self.arm_conn_timer(key);
        self.drain_lingering(key);
    }

    fn drain_lingering(&mut self, key: usize) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut done = false;
        if let Some(conn) = self.conns.get_mut(key) {
            for _ in 0..LINGER_READS {
                match conn.read_some(&mut scratch) {
                    Ok(_) => continue,
                    Err(Flow::WouldBlock) => break,
                    Err(_) => {
                        done = true;
                        break;
                    }
                }
            }
        }
        self.scratch = scratch;
        if done {
            self.close(key);
        }
    }

    /// Answers requests held in the connection's buffer (after a partial
    /// head, or while output was over the high-water mark). Returns whether
    /// any input was used.
    fn process_buffered(&mut self, key: usize) -> bool {
        let Some(Role::Http(h)) = self.conns.get_mut(key).map(|c| &mut c.role) else {
            return false;
        };
        let buf = std::mem::take(&mut h.buf);
        let used = self.process(key, &buf);
        self.keep_leftover(key, &buf[used..]);
        used > 0
    }

    /// One read, and the requests it completes. Returns false when the
    /// socket had nothing more.
    fn read_requests(&mut self, key: usize) -> bool {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = match self.conns.get_mut(key) {
            Some(conn) => conn.read_some(&mut scratch),
            None => Err(Flow::Closed),
        };
        let progressed = match result {
            Ok(n) => {
                self.feed(key, &scratch[..n]);
                true
            }
            Err(Flow::Closed) => {
                if let Some(conn) = self.conns.get_mut(key) {
                    let deadline_ms = conn.phase().deadline_ms();
                    conn.set_phase(Phase::PeerClosed { deadline_ms });
                }
                true
            }
            Err(_) => false,
        };
        self.scratch = scratch;
        progressed
    }

    /// Appends input to whatever was left over and parses from the start.
    fn feed(&mut self, key: usize, input: &[u8]) {
        let Some(Role::Http(h)) = self.conns.get_mut(key).map(|c| &mut c.role) else {
            return;
        };
        if h.buf.is_empty() {
            let used = self.process(key, input);
            self.keep_leftover(key, &input[used..]);
        } else {
            h.buf.extend_from_slice(input);
            self.process_buffered(key);
        }
    }

    fn keep_leftover(&mut self, key: usize, rest: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Role::Http(h) = &mut conn.role {
            h.buf.clear();
            h.buf.extend_from_slice(rest);
        }
        conn.trim_input();
    }

    /// Answers every complete request at the start of `input`; returns how
    /// many bytes were used. Stops at a partial head, a stream, an error, or
    /// when the output is over its high-water mark.
    fn process(&mut self, key: usize, input: &[u8]) -> usize {
        let mut pos = 0;
        loop {
            let head_deadline = self.now_ms() + self.config.header_timeout_ms;
            let Some(conn) = self.conns.get_mut(key) else {
                return input.len();
            };
            if conn.is_closing() {
                return input.len();
            }
            // Responses go out in order: none is queued behind a body
            // that is not in `out`.
            if conn.out.len() >= OUT_HIGH_WATER || conn.reply_pending() {
                return pos;
            }
            let Role::Http(h) = &mut conn.role else {
                return input.len();
            };
            let rest = &input[pos..];
            if let Some(decoder) = &mut h.body {
                match decoder.feed(rest) {
                    Ok(BodyProgress::NeedMore) => return input.len(),
                    Ok(BodyProgress::Done(n)) => {
                        pos += n;
                        h.body = None;
                        if let Some(head) = h.pending.take() {
                            self.dispatch(key, &head);
                        }
                    }
                    Err(e) => {
                        self.reject(key, &e);
                        return input.len();
                    }
                }
                continue;
            }
            if rest.is_empty() {
                return pos;
            }
            if let Phase::Waiting { .. } = conn.phase() {
                conn.set_phase(Phase::ReadingHead {
                    deadline_ms: head_deadline,
                });
                self.arm_conn_timer(key);
            }
            match self.next_head(key, rest) {
                Ok(Some(n)) => pos += n,
                Ok(None) => return pos,
                Err(e) => {
                    self.reject(key, &e);
                    return input.len();
                }
            }
        }
    }

    /// Parses one head from `rest` and answers it (or starts its body).
    /// `Ok(None)`: the head is not complete yet.
    fn next_head(&mut self, key: usize, rest: &[u8]) -> Result<Option<usize>, HttpError> {
        let Some(Role::Http(h)) = self.conns.get_mut(key).map(|c| &mut c.role) else {
            return Ok(None);
        };
        if find_head_end(rest, h.scanned as usize).is_none() {
            if rest.len() > MAX_HEAD {
                return Err(HttpError::HeadTooLarge);
            }
            h.scanned = rest.len() as u32; // at most MAX_HEAD
            return Ok(None);
        }
        let Some((head, n)) = parse_head(rest)? else {
            return Ok(None);
        };
        h.scanned = 0;
        match BodyDecoder::new(head.body)? {
            Some(decoder) => {
                if head.expect_continue {
                    // RFC 9110 section 10.1.1: answer before the body is sent.
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                }
                let Some(Role::Http(h)) = self.conns.get_mut(key).map(|c| &mut c.role) else {
                    return Ok(None);
                };
                h.body = Some(decoder);
                h.pending = Some(Box::new(head));
            }
            None => self.dispatch(key, &head),
        }
        Ok(Some(n))
    }

    /// A request that cannot be answered: its error, and the connection closes.
    fn reject(&mut self, key: usize, e: &HttpError) {
        log::debug!("conn {key}: {e}");
        self.metrics.count_request(None, e.status());
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        Response::error(e.status(), &e.to_string())
            .closing()
            .write_to(&mut conn.out, false);
        conn.close_when_flushed();
    }

    /// Runs the endpoint a request names and queues its response.
    fn dispatch(&mut self, key: usize, head: &RequestHead) {
        let cors = self.access.cors_headers(head);
        let mut response = match routes::route(head) {
            // A bad parameter closes too: the client is not speaking our API.
            Err(response) if response.status == 400 => response.closing(),
            Err(response) => response,
            Ok(Endpoint::Preflight) => return self.respond(key, head, self.access.preflight(head)),
            Ok(Endpoint::Page { .. }) => super::page::page(head),
            Ok(Endpoint::Healthz) => self.healthz(),
            Ok(Endpoint::Metrics) => self.metrics_response(),
            Ok(Endpoint::ListLogs { limit, before }) => self.list_logs(limit, before.as_ref()),
            Ok(Endpoint::CreateLog { duration_s }) => match self.access.refuse_change(head) {
                Some(refusal) => refusal,
                None => self.create_log(duration_s),
            },
            Ok(Endpoint::DeleteLog { id }) => match self.access.refuse_change(head) {
                Some(refusal) => refusal,
                None => self.delete_log(&id),
            },
            Ok(Endpoint::LogInfo { id }) => self.log_info(&id),
            Ok(Endpoint::Raw(req)) => {
                let (mut response, file) = self.open_raw(head, &req);
                response.headers.extend(cors);
                self.respond(key, head, response);
                if let Some(file) = file {
                    self.start_file(key, file);
                }
                return;
            }
            Ok(Endpoint::Stream(req)) => match self.open_stream(key, &req, &cors) {
                Some(response) => response,
                None => return self.count(head, 200),
            },
            Ok(Endpoint::Events { since }) => {
                self.open_events(key, since.as_deref(), &cors);
                return self.count(head, 200);
            }
        };
        response.headers.extend(cors);
        self.respond(key, head, response);
    }

    fn count(&mut self, head: &RequestHead, status: u16) {
        self.metrics.count_request(Some(&head.method), status);
    }

    /// Queues a response; keep-alive connections get their idle deadline.
    fn respond(&mut self, key: usize, head: &RequestHead, mut response: Response) {
        self.count(head, response.status);
        let idle_deadline = self.now_ms() + self.config.idle_timeout_ms;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !head.keep_alive {
            response.close = true;
        }
        let peer_closed = matches!(conn.phase(), Phase::PeerClosed { .. });
        conn.set_phase(if response.close {
            Phase::Closing {
                deadline_ms: idle_deadline,
            }
        } else if peer_closed {
            Phase::PeerClosed {
                deadline_ms: idle_deadline,
            }
        } else {
            Phase::Waiting {
                deadline_ms: idle_deadline,
            }
        });
        if !response.close && head.minor_version == 0 {
            // An HTTP/1.0 client assumes close unless told otherwise.
            response
                .headers
                .push(("Connection", "keep-alive".to_string()));
        }
        conn.queue(&response, head.method == Method::Head);
        if let Role::Http(h) = &mut conn.role {
            h.requests += 1;
        }
        self.arm_conn_timer(key);
    }

    /// Header and idle timeouts, re-checked against the deadline when the
    /// timer fires (cheaper than re-arming on every byte).
    pub(crate) fn conn_timer(&mut self, key: usize, generation: u32, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.generation != generation {
            return;
        }
        conn.timer = None;
        let Role::Http(h) = &conn.role else { return };
        let phase = conn.phase();
        if now < phase.deadline_ms() {
            return self.arm_conn_timer(key);
        }
        match phase {
            Phase::ReadingHead { .. } => {
                self.metrics.header_timeouts += 1;
                self.metrics.count_request(None, 408);
                Response::error(408, "request head not received in time")
                    .closing()
                    .write_to(&mut conn.out, false);
                conn.set_phase(Phase::Closing {
                    deadline_ms: now + LINGER_MS,
                });
                log::debug!("conn {key}: header timeout");
                self.arm_conn_timer(key);
                self.http_ready(key)
            }
            Phase::Waiting { .. } if h.requests == 0 => {
                self.metrics.header_timeouts += 1;
                self.close(key)
            }
            Phase::Waiting { .. } => {
                self.metrics.idle_timeouts += 1;
                self.close(key)
            }
            Phase::SendingFile { .. } => {
                self.metrics.stall_timeouts += 1;
                log::debug!("conn {key}: file body stalled");
                self.close(key)
            }
            _ => self.close(key),
        }
    }
}
