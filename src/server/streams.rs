//! Streams on the reactor: socket events of streaming connections, the
//! queue of streams with catch-up work, and the tails' poll timers. The
//! engine ([`crate::stream`]) decides; this file connects it to sockets,
//! timers and closing.

use mio::event::Event;

use super::{Server, Timer};
use crate::conn::Flow;
use crate::stream::Advance;

impl Server {
    /// A stream socket is readable (the client sent something, or left) or
    /// writable (it drained).
    pub(crate) fn stream_event(&mut self, key: usize, event: &Event) {
        let input = event.is_readable() || event.is_read_closed() || event.is_error();
        if input && self.client_left(key) {
            return self.close(key);
        }
        if event.is_writable() {
            self.advance(key);
        }
    }

    /// Drains whatever a streaming client sends (nothing is expected) and
    /// reports whether it has gone: EOF or an error. This is how a client
    /// that disconnects is noticed at once rather than at the next write.
    fn client_left(&mut self, key: usize) -> bool {
        let mut scratch = std::mem::take(&mut self.scratch);
        let left = match self.conns.get_mut(key) {
            Some(conn) => loop {
                match conn.read_some(&mut scratch) {
                    Ok(_) => continue,
                    Err(Flow::WouldBlock) => break false,
                    Err(_) => break true,
                }
            },
            None => false,
        };
        self.scratch = scratch;
        left
    }

    /// A request just became a stream: send its head and first lines now.
    pub(crate) fn stream_started(&mut self, key: usize) {
        self.advance(key);
    }

    fn advance(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match self.engine.advance(conn, &mut self.metrics) {
            Advance::Blocked | Advance::CaughtUp => {}
            Advance::MoreWork => {
                let generation = conn.generation;
                if let Some(s) = conn.stream_mut() {
                    s.queued = true;
                }
                self.engine.work.push_back((key, generation));
            }
            Advance::Close => self.close(key),
        }
    }

    /// Streams queued for catch-up or control frames; each gets one turn,
    /// so a long catch-up cannot starve the rest of the reactor.
    pub(crate) fn run_work(&mut self) {
        for _ in 0..self.engine.work.len() {
            let Some((key, generation)) = self.engine.work.pop_front() else {
                break;
            };
            if self
                .conns
                .get(key)
                .is_some_and(|c| c.generation == generation && c.stream().is_some())
            {
                self.advance(key);
            }
        }
    }

    /// A tail's poll tick.
    pub(crate) fn tail_timer(&mut self, key: usize, generation: u32, now: u64) {
        if self.engine.tails.get(key).map(|t| t.generation) != Some(generation) {
            return;
        }
        let polled = self.engine.poll(
            key,
            &mut self.conns,
            now,
            self.config.heartbeat_interval_ms,
            &mut self.metrics,
        );
        if polled.rearm {
            let id = self.timers.insert(
                now + self.config.poll_interval_ms,
                Timer::Tail(key, generation),
            );
            self.engine.tails[key].timer = Some(id);
        } else if let Some(tail) = self.engine.tails.get_mut(key) {
            tail.timer = None;
        }
        for conn_key in polled.closed {
            self.close(conn_key);
        }
    }
}
