//! # logcast: `tail -f` over Server-Sent Events, for tens of thousands of clients
//!
//! A tour of the architecture, in the order a request travels:
//!
//! - [`config`] turns command-line flags into a validated [`config::Config`];
//!   errors name the flag. `src/main.rs` is a thin shell that maps errors to
//!   exit codes (0 stopped, 1 cannot start, 2 bad command line).
//! - [`server`] is the reactor: one thread, one `mio::Poll`, the only caller of
//!   `Poll::poll` and of the clock. It owns the connection slab, the
//!   [`timer::TimerWheel`] and the log engine, and dispatches readiness events
//!   and expired timers. [`listener`] binds its socket.
//! - [`supervisor`] runs several reactors as processes on one port
//!   (`--workers`); [`cluster`] is the little they share: per-worker snapshots
//!   that make metrics, subscriber counts and the connection limit daemon-wide.
//! - [`conn`] is one connection: its socket, its phase (reading HTTP requests,
//!   sending a file, or streaming a log) and its small bounded output buffer.
//!   [`reply`] is what follows that buffer on the wire without being copied
//!   into it: the page's bytes from the binary (one `writev` with the head),
//!   or a range of a file (`GET /api/logs/<id>/raw`) sent with `sendfile` a
//!   bounded piece at a time as the socket drains.
//! - [`http`] parses request heads with `httparse`, decodes and discards bodies,
//!   and formats responses. Pure: no I/O, so it is tested byte by byte.
//! - [`routes`] maps a parsed request to what the server must do.
//! - [`engine`] follows logs and streams them, testable without the
//!   reactor: [`engine::watch`] (inotify on the log directory, registered in
//!   the same `Poll`) and simulated writers say which log changed;
//!   [`engine::tail`] follows one file (offset, identity, rotation drain);
//!   [`engine::fanout`] writes each framed block once to every stream at the
//!   tail's offset, and streams that fell behind catch up from the file
//!   itself: backpressure is a byte offset, never a queue. The engine asks
//!   the server for wakes (heartbeats, polls where nothing notifies) rather
//!   than touching the wheel.
//! - [`logs`] owns ids and the log directory, the simulated
//!   [`logs::writer`]s and their random text, and the index of logs
//!   ([`logs::index`]) with its journal of changes ([`logs::changes`]),
//!   which `GET /api/events` streams.
//! - [`sse`] frames lines as events (WHATWG HTML, "Server-sent events"). Pure.
//! - [`timer`] is a hierarchical timing wheel: the single source of timed work
//!   (writes, polls, heartbeats, timeouts). Pure: time is passed in.
//! - [`metrics`] counts, and renders the Prometheus text format; [`sys`]
//!   reads the process's own memory and descriptors, [`clock`] formats RFC 3339
//!   times and [`json`] writes the few small objects the API returns.
//! - [`csp`] computes the page's Content-Security-Policy: its one inline
//!   script and style allowed by SHA-256 hash, nothing else inline.
#![deny(unsafe_code)]

pub mod clock;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod csp;
pub mod engine;
pub mod filter;
pub mod http;
pub mod json;
pub mod listener;
pub mod logs;
pub mod metrics;
pub mod reply;
pub mod routes;
pub mod server;
pub mod sse;
pub mod statedir;
pub mod supervisor;
pub mod sys;
pub mod timer;

/// Prints the one line a user (or a test, or a supervisor) waits for.
pub fn announce(addr: std::net::SocketAddr) {
    use std::io::Write;
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    log::info!("listening on http://{addr}");
}
