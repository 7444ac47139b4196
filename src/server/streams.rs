//! Streams on the reactor: socket events of streaming connections, the
//! queue of streams with catch-up work, and the tails' poll timers. The
//! engine ([`crate::engine`]) decides; this file connects it to sockets,
//! timers and closing.

use mio::event::Event;

use super::{Server, Timer};
use crate::conn::Flow;

impl Server {
    /// A stream socket is readable (the client sent something, or left) or
    /// writable (it drained).
    pub(crate) fn stream_event(&mut self, key: usize, event: &Event) {
        self.pushing_event(key, event, Server::advance);
    }

    /// A socket event of a connection the daemon pushes to (a log stream,
    /// an events subscriber): a client that left is closed at once; one
    /// whose socket drained moves on with `advance`.
    pub(crate) fn pushing_event(
        &mut self,
        key: usize,
        event: &Event,
        advance: fn(&mut Server, usize),
    ) {
        let input = event.is_readable() || event.is_read_closed() || event.is_error();
        if input && self.client_left(key) {
            return self.close(key);
        }
        if event.is_writable() {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.made_progress();
            }
            advance(self, key);
        }
    }

    /// Drains whatever a streaming client sends (nothing is expected) and
    /// reports whether it has gone: EOF or an error. This is how a client
    /// that disconnects is noticed at once rather than at the next write.
    pub(super) fn client_left(&mut self, key: usize) -> bool {
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
        self.engine.step(key, &mut self.conns, &mut self.metrics);
        self.engine_effects();
    }

    /// The engine's turn: changes noticed, streams with queued work; then
    /// the directory's subscribers, with their share of the turn's writes
    /// and what the streams left; then the turn's budgets close.
    pub(crate) fn run_work(&mut self) {
        let now = self.now_ms();
        self.engine.run(now, &mut self.conns, &mut self.metrics);
        self.engine_effects();
        self.run_index(now);
        self.run_events();
        self.run_files();
        let keep = self.subscribers.writes_to_keep();
        self.engine.end_turn(&mut self.metrics, keep);
    }

    /// The change-notification descriptor is readable.
    pub(crate) fn watch_event(&mut self) {
        self.engine.notified();
    }

    /// A simulated writer wrote to (or finished) log `id`.
    pub(crate) fn log_written(&mut self, id: &str, now: u64) {
        self.engine
            .file_written(id, now, &mut self.conns, &mut self.metrics);
        self.engine_effects();
    }

    /// A tail's wake.
    pub(crate) fn tail_timer(&mut self, key: usize, generation: u32, at: u64, now: u64) {
        self.engine
            .timer(key, generation, at, now, &mut self.conns, &mut self.metrics);
        self.engine_effects();
    }

    /// Arms the wakes the engine asked for and closes the connections it
    /// is done with.
    pub(crate) fn engine_effects(&mut self) {
        for wake in self.engine.take_wakes() {
            self.timers.insert(
                wake.at_ms,
                Timer::Tail(wake.tail, wake.generation, wake.at_ms),
            );
        }
        while let Some(key) = self.engine.pop_closed() {
            self.close(key);
        }
    }
}
