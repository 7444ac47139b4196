//! Many streams at once from one test thread: plain sockets that have had
//! their `200 text/event-stream` head, read without blocking, their bodies
//! compared exactly with what the test wrote.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::raw::first_difference;
use super::{read_response, Daemon};

/// One stream socket that has received its head (nonblocking from then
/// on): the body bytes so far.
pub struct Follower {
    pub sock: TcpStream,
    pub body: Vec<u8>,
}

impl Follower {
    /// Takes what has arrived, without waiting; `true` while the body is
    /// still a proper start of `want`, i.e. worth reading again.
    pub fn read_toward(&mut self, want: &[u8], chunk: &mut [u8]) -> bool {
        self.take(chunk);
        self.body.len() < want.len() && want.starts_with(&self.body)
    }

    /// Appends what has arrived to `body`; `false` once the server closed.
    pub fn take(&mut self, chunk: &mut [u8]) -> bool {
        loop {
            match self.sock.read(chunk) {
                Ok(0) => return false,
                Ok(n) => self.body.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// Opens one stream per target path, `batch` requests in flight at a
/// time; every stream must get a 200 event-stream head within 5 s.
pub fn open_targets(d: &Daemon, targets: &[String], batch: usize) -> Vec<Follower> {
    let mut out = Vec::with_capacity(targets.len());
    for chunk in targets.chunks(batch) {
        let mut socks = Vec::with_capacity(chunk.len());
        for target in chunk {
            let mut sock = TcpStream::connect(d.addr).unwrap_or_else(|e| {
                panic!(
                    "connect for stream {} of {}: {e}",
                    out.len() + socks.len(),
                    targets.len()
                )
            });
            let req =
                format!("GET {target} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n");
            sock.write_all(req.as_bytes())
                .expect("write stream request");
            socks.push(sock);
        }
        for (mut sock, target) in socks.into_iter().zip(chunk) {
            sock.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let head = read_response(&mut sock, true).unwrap_or_else(|| {
                panic!(
                    "stream {} of {} ({target}): no response head within 5 s \
                     (daemon descriptors: {})",
                    out.len(),
                    targets.len(),
                    d.open_fds()
                )
            });
            assert_eq!(head.status, 200, "{target}: {head:?}");
            assert_eq!(
                head.header("content-type"),
                Some("text/event-stream"),
                "{target}: {head:?}"
            );
            sock.set_nonblocking(true).expect("nonblocking");
            out.push(Follower {
                sock,
                body: Vec::new(),
            });
        }
    }
    out
}

/// Opens one stream of each log `ids` names (see [`open_targets`]).
pub fn open_followers(d: &Daemon, ids: &[String], batch: usize) -> Vec<Follower> {
    let targets: Vec<String> = ids
        .iter()
        .map(|id| format!("/api/logs/{id}/stream"))
        .collect();
    open_targets(d, &targets, batch)
}

/// Reads every follower until it holds `want` (or `limit` passes); each
/// must then hold exactly `want`.
pub fn expect_followers_within(
    followers: &mut [Follower],
    want: &str,
    what: &str,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    let mut chunk = [0u8; 16384];
    let mut pending: Vec<usize> = (0..followers.len()).collect();
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|&j| followers[j].read_toward(want.as_bytes(), &mut chunk));
        std::thread::sleep(Duration::from_millis(1));
    }
    for (j, f) in followers.iter().enumerate() {
        assert!(
            f.body == want.as_bytes(),
            "{what}: stream {j}: {}",
            first_difference(&f.body, want.as_bytes())
        );
    }
}

/// [`expect_followers_within`] 10 s.
pub fn expect_followers(followers: &mut [Follower], want: &str, what: &str) {
    expect_followers_within(followers, want, what, Duration::from_secs(10));
}

/// Most socket writes one turn makes, log streams and `/api/events`
/// subscribers together (the engine's `TURN_WRITES`).
pub const TURN_WRITES: f64 = 2048.0;

/// The most writes one turn made: at most a turn's, and some (so the
/// fan-outs the test caused did write).
pub fn assert_turns_bounded(d: &Daemon, what: &str) {
    let most = d
        .metric("logcast_turn_writes_max")
        .expect("turn writes metric");
    assert!(
        (1.0..=TURN_WRITES).contains(&most),
        "{what}: a turn wrote to {most} sockets (at most {TURN_WRITES})"
    );
}
