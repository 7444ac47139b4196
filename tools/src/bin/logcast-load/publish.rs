//! Publishing marks by HTTP POST (nchan's publisher location, or any server
//! that takes a message as a request body), pipelined on one keep-alive
//! connection.
//!
//! A mark is sent and the mark loop goes on at once, as it does after
//! appending a line to a file: a thread reads the answers (nchan answers a
//! publish only once it has fanned the message out, which takes as long as
//! the fan-out; waiting for it would hold the next mark back and cap the
//! publish rate at one fan-out at a time). nginx answers pipelined requests
//! in order. The mark's time is taken before its request is sent, as it is
//! before a mark line is appended to a file, so the latencies compare.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sse::Chunked;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Counters a connection's reader thread keeps.
#[derive(Default)]
struct Answers {
    ok: AtomicU64,
    not_ok: AtomicU64,
    /// The connection can take no more requests (closed, error, or
    /// `Connection: close`).
    dead: AtomicBool,
}

struct Conn {
    sock: TcpStream,
    answers: Arc<Answers>,
    reader: std::thread::JoinHandle<()>,
    sent: u64,
}

pub struct Publisher {
    addr: SocketAddrV4,
    host: String,
    conn: Option<Conn>,
    timeout: Duration,
    /// Requests answered 2xx, and the others (answered otherwise, not sent,
    /// or never answered), over all connections so far.
    pub ok: u64,
    pub failed: u64,
    /// Connections opened (1 when keep-alive held throughout).
    pub connects: u64,
    /// First error seen, for the report.
    pub first_error: Option<String>,
}

impl Publisher {
    pub fn new(addr: SocketAddrV4, host: &str, timeout: Duration) -> Publisher {
        Publisher {
            addr,
            host: host.to_string(),
            conn: None,
            timeout,
            ok: 0,
            failed: 0,
            connects: 0,
            first_error: None,
        }
    }

    fn error(&mut self, e: String) {
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    /// Sends a POST of `body` to `path` without waiting for its answer. A
    /// connection that the server has closed is replaced first; a send that
    /// fails is retried once on a new connection. Err when it could not be
    /// sent at all.
    pub fn post(&mut self, path: &str, body: &[u8]) -> Result<(), String> {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nUser-Agent: logcast-load/0.1\r\n\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        for attempt in 0..2 {
            if self
                .conn
                .as_ref()
                .is_some_and(|c| c.answers.dead.load(Ordering::SeqCst))
            {
                self.close(Duration::ZERO);
            }
            if self.conn.is_none() {
                if let Err(e) = self.connect() {
                    self.failed += 1;
                    self.error(e.clone());
                    return Err(e);
                }
            }
            let c = self.conn.as_mut().expect("connection");
            match c.sock.write_all(&req) {
                Ok(()) => {
                    c.sent += 1;
                    return Ok(());
                }
                Err(e) => {
                    self.error(format!("send: {e}"));
                    self.close(Duration::ZERO);
                    if attempt == 1 {
                        self.failed += 1;
                        return Err(format!("send: {e}"));
                    }
                }
            }
        }
        unreachable!()
    }

    fn connect(&mut self) -> Result<(), String> {
        let s = TcpStream::connect_timeout(&self.addr.into(), self.timeout)
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        let r = s.try_clone().map_err(|e| e.to_string())?;
        let answers = Arc::new(Answers::default());
        let a = answers.clone();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(r);
            let mut head = Vec::new();
            while let Ok((code, keep)) = read_response(&mut r, &mut head) {
                if (200..300).contains(&code) {
                    a.ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    a.not_ok.fetch_add(1, Ordering::SeqCst);
                }
                if !keep {
                    break;
                }
            }
            a.dead.store(true, Ordering::SeqCst);
        });
        self.connects += 1;
        self.conn = Some(Conn {
            sock: s,
            answers,
            reader,
            sent: 0,
        });
        Ok(())
    }

    /// Waits up to `wait` for the answers of the current connection, closes
    /// it and counts them: a request without an answer failed.
    fn close(&mut self, wait: Duration) {
        let Some(c) = self.conn.take() else { return };
        let until = Instant::now() + wait;
        let answered = |c: &Conn| {
            c.answers.ok.load(Ordering::SeqCst) + c.answers.not_ok.load(Ordering::SeqCst)
        };
        while answered(&c) < c.sent
            && !c.answers.dead.load(Ordering::SeqCst)
            && Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = c.sock.shutdown(Shutdown::Both);
        let _ = c.reader.join();
        let ok = c.answers.ok.load(Ordering::SeqCst);
        let not_ok = c.answers.not_ok.load(Ordering::SeqCst);
        self.ok += ok;
        self.failed += c.sent.saturating_sub(ok);
        if not_ok > 0 {
            self.error(format!(
                "{not_ok} publish(es) answered with a status not 2xx"
            ));
        }
        if ok + not_ok < c.sent {
            self.error(format!("{} publish(es) not answered", c.sent - ok - not_ok));
        }
    }

    /// Waits (up to `wait`) for every answer, then closes.
    pub fn finish(&mut self, wait: Duration) {
        self.close(wait);
    }
}

/// Reads one response from `r` (head, then a Content-Length, chunked or
/// until-close body, which is discarded), leaving whatever follows it in `r`.
/// Returns the status and whether the connection may be used again.
pub fn read_response<R: BufRead>(r: &mut R, head: &mut Vec<u8>) -> Result<(u16, bool), String> {
    // the head, line by line
    head.clear();
    loop {
        let before = head.len();
        let n = r
            .read_until(b'\n', head)
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(if head.is_empty() {
                "connection closed before a response".into()
            } else {
                "connection closed inside a response head".into()
            });
        }
        if head.len() > MAX_HEAD {
            return Err("response head too large".into());
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete response head".into()),
        Err(e) => return Err(format!("bad response head: {e}")),
    }
    let code = resp.code.unwrap_or(0);
    let mut body = Body::UntilClose;
    let mut keep = resp.version == Some(1);
    for h in resp.headers.iter() {
        let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = v.trim().parse().map_err(|_| "bad Content-Length")?;
            body = Body::Length(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked") {
            body = Body::Chunked;
        } else if h.name.eq_ignore_ascii_case("connection") {
            if v.contains("close") {
                keep = false;
            } else if v.contains("keep-alive") {
                keep = true;
            }
        }
    }
    if code == 204 || code == 304 || (100..200).contains(&code) {
        body = Body::Length(0);
    }
    match body {
        Body::Length(n) => {
            let got =
                io::copy(&mut r.take(n), &mut io::sink()).map_err(|e| format!("read: {e}"))?;
            if got < n {
                return Err("connection closed inside the body".into());
            }
            Ok((code, keep))
        }
        Body::Chunked => {
            // byte by byte, so that nothing past the last chunk is consumed
            let mut c = Chunked::new();
            while !c.done() {
                let buf = r.fill_buf().map_err(|e| format!("read: {e}"))?;
                if buf.is_empty() {
                    return Err("connection closed inside the body".into());
                }
                let mut used = 0;
                while used < buf.len() && !c.done() {
                    c.feed(&buf[used..used + 1], |_| {})
                        .map_err(|_| "bad chunked body")?;
                    used += 1;
                }
                r.consume(used);
            }
            Ok((code, keep))
        }
        Body::UntilClose => {
            io::copy(r, &mut io::sink()).map_err(|e| format!("read: {e}"))?;
            Ok((code, false))
        }
    }
}

enum Body {
    Length(u64),
    Chunked,
    UntilClose,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Reads a byte string cut into pieces of `step` bytes.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    // nchan 1.3.6's answer to a publish, as captured
    const NCHAN_201: &[u8] = b"HTTP/1.1 201 Created\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 08:16:37 GMT\r\nContent-Type: text/plain\r\nContent-Length: 100\r\nConnection: keep-alive\r\n\r\nqueued messages: 1\r\nlast requested: 0 sec. ago\r\nactive subscribers: 1\r\nlast message id: 1796112997:0";

    #[test]
    fn reads_pipelined_responses_of_every_framing_in_any_pieces() {
        let mut all = NCHAN_201.to_vec();
        all.extend_from_slice(
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        );
        all.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
        all.extend_from_slice(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno");
        all.extend_from_slice(b"HTTP/1.0 200 OK\r\n\r\nuntil close");
        for step in [1, 2, 7, 100, 4096] {
            let mut r = BufReader::with_capacity(64, Trickle(&all, step));
            let mut head = Vec::new();
            assert_eq!(read_response(&mut r, &mut head), Ok((201, true)), "{step}");
            assert_eq!(read_response(&mut r, &mut head), Ok((202, true)), "{step}");
            assert_eq!(read_response(&mut r, &mut head), Ok((204, true)), "{step}");
            assert_eq!(read_response(&mut r, &mut head), Ok((403, true)), "{step}");
            assert_eq!(read_response(&mut r, &mut head), Ok((200, false)), "{step}");
            assert!(read_response(&mut r, &mut head).is_err());
        }
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
        let mut head = Vec::new();
        assert_eq!(
            read_response(&mut BufReader::new(Trickle(close, 3)), &mut head),
            Ok((200, false))
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"[..],
            b"",
            b"garbage\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Len",
        ] {
            assert!(read_response(&mut BufReader::new(Trickle(bad, 4096)), &mut head).is_err());
        }
    }

    /// Reads requests on a connection and answers each like nchan does
    /// (after `delay`), closing the first connection after 2; returns the
    /// paths and bodies seen.
    fn server(l: TcpListener, delay: Duration) -> std::thread::JoinHandle<Vec<(String, String)>> {
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for per_conn in [2, 1] {
                let (s, _) = l.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                for _ in 0..per_conn {
                    let mut len = 0usize;
                    let mut path = String::new();
                    loop {
                        let mut line = String::new();
                        r.read_line(&mut line).unwrap();
                        if line.starts_with("POST ") {
                            path = line.split_whitespace().nth(1).unwrap().to_string();
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    seen.push((path, String::from_utf8(body).unwrap()));
                    std::thread::sleep(delay);
                    w.write_all(NCHAN_201).unwrap();
                }
            }
            seen
        })
    }

    fn listener() -> (TcpListener, SocketAddrV4) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = match l.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        (l, addr)
    }

    #[test]
    fn posts_without_waiting_and_reconnects_when_closed() {
        let (l, addr) = listener();
        // answers take 200 ms each: sending two must not take 400 ms
        let srv = server(l, Duration::from_millis(200));
        let mut p = Publisher::new(addr, "127.0.0.1", Duration::from_secs(5));
        let t = Instant::now();
        p.post("/pub/a", b"MARK 1 0").unwrap();
        p.post("/pub/b-7", b"MARK 2 1").unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
        // the server closes the first connection after its second answer:
        // once the reader has seen that, the next post opens a new one
        std::thread::sleep(Duration::from_millis(800));
        p.post("/pub/a", b"MARK 3 2").unwrap();
        p.finish(Duration::from_secs(5));
        assert_eq!(
            (p.ok, p.failed, p.connects),
            (3, 0, 2),
            "{:?}",
            p.first_error
        );
        assert_eq!(
            srv.join().unwrap(),
            vec![
                ("/pub/a".to_string(), "MARK 1 0".to_string()),
                ("/pub/b-7".to_string(), "MARK 2 1".to_string()),
                ("/pub/a".to_string(), "MARK 3 2".to_string()),
            ]
        );
    }

    #[test]
    fn unanswered_and_unreachable_publishes_fail() {
        let (l, addr) = listener();
        // a server that reads and never answers, then closes
        let srv = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            std::thread::sleep(Duration::from_millis(100));
        });
        let mut p = Publisher::new(addr, "127.0.0.1", Duration::from_millis(500));
        p.post("/pub/a", b"MARK 1 0").unwrap();
        srv.join().unwrap();
        p.finish(Duration::from_secs(5));
        assert_eq!((p.ok, p.failed), (0, 1));
        assert!(p.first_error.is_some());
        // nobody listens there any more
        let mut p = Publisher::new(addr, "127.0.0.1", Duration::from_millis(500));
        assert!(p.post("/pub/a", b"x").is_err());
        p.finish(Duration::from_secs(5));
        assert_eq!((p.ok, p.failed), (0, 1));
    }
}
