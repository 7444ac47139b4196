//! Raw SSE for the stream tests: the framing a file's bytes must produce,
//! computed independently of the daemon, and socket reading into
//! `SseStream::raw` for byte-exact assertions. Once a test reads a stream
//! with these helpers it must not call `next_event` on it again.

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use super::{parse_event, Event, SseStream};

// ---------------------------------------------------------------------------
// Expected framing, computed independently from the file's bytes.

/// One line (without its `\n`) ending at byte offset `id`, as the contract frames it.
pub fn frame(line: &[u8], id: usize) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    let mut out = format!("id: {id}\n");
    for part in text.split('\r') {
        out.push_str("data: ");
        out.push_str(part);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Every complete line of `content` that starts at or after `from`.
pub fn frames(content: &[u8], from: usize) -> String {
    let mut out = String::new();
    let mut start = from;
    while let Some(pos) = content[start..].iter().position(|&b| b == b'\n') {
        let end = start + pos + 1;
        out.push_str(&frame(&content[start..start + pos], end));
        start = end;
    }
    out
}

pub fn line_count(content: &[u8]) -> usize {
    let newlines = content.iter().filter(|&&b| b == b'\n').count();
    newlines + usize::from(!content.is_empty() && !content.ends_with(b"\n"))
}

pub fn end_frame(content: &[u8]) -> String {
    format!(
        "event: end\ndata: {{\"reason\": \"finished\", \"lines\": {}, \"bytes\": {}}}\n\n",
        line_count(content),
        content.len()
    )
}

// ---------------------------------------------------------------------------
// Raw socket reading: everything goes into `SseStream::raw`. Once a test reads
// a stream with these helpers it must not call `next_event` on it again.

pub enum Got {
    Bytes,
    Timeout,
    Closed,
}

pub fn read_some(s: &mut SseStream, wait: Duration) -> Got {
    s.sock
        .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
        .expect("timeout");
    let mut chunk = vec![0u8; 65536];
    match s.sock.read(&mut chunk) {
        Ok(0) => Got::Closed,
        Ok(n) => {
            s.raw.extend_from_slice(&chunk[..n]);
            Got::Bytes
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
            Got::Timeout
        }
        Err(_) => Got::Closed,
    }
}

/// Reads until `done(raw)` holds, the limit passes, or the peer closes.
pub fn read_until(s: &mut SseStream, limit: Duration, mut done: impl FnMut(&[u8]) -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done(&s.raw) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        if let Got::Closed = read_some(s, deadline - now) {
            return done(&s.raw);
        }
    }
}

/// Reads until the server closes; true if it closed within the limit.
pub fn read_to_close(s: &mut SseStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        if let Got::Closed = read_some(s, deadline - now) {
            return true;
        }
    }
}

/// True when nothing arrives (and the connection stays open) for `dur`.
pub fn quiet(s: &mut SseStream, dur: Duration) -> bool {
    let deadline = Instant::now() + dur;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        match read_some(s, deadline - now) {
            Got::Timeout => continue,
            Got::Bytes | Got::Closed => return false,
        }
    }
}

pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads until the body is at least as long as `expected` (or diverges from
/// it), then asserts the whole raw body equals `expected` byte for byte.
pub fn expect_raw(s: &mut SseStream, expected: &str, limit: Duration, what: &str) {
    let want = expected.as_bytes();
    read_until(s, limit, |raw| {
        raw.len() >= want.len() || !want.starts_with(raw)
    });
    assert_eq!(show(&s.raw), show(want), "{what}: raw SSE body differs");
}

/// Splits a raw body into its events (complete blocks only).
pub fn raw_events(raw: &[u8]) -> Vec<Event> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(pos) = rest.windows(2).position(|w| w == b"\n\n") {
        out.push(parse_event(&rest[..pos + 1]));
        rest = &rest[pos + 2..];
    }
    out
}

pub fn event_count(raw: &[u8]) -> usize {
    raw.windows(2).filter(|w| w == b"\n\n").count()
}

/// Where two byte strings first differ, with a little context, for failures
/// whose whole bodies are too long to print.
pub fn first_difference(got: &[u8], want: &[u8]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let from = at.saturating_sub(60);
    format!(
        "{} bytes received, {} expected; first difference at byte {at}: got {:?}, want {:?}",
        got.len(),
        want.len(),
        show(&got[from..got.len().min(at + 60)]),
        show(&want[from..want.len().min(at + 60)])
    )
}
