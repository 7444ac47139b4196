//! The endpoints of SPEC section 3 that the reactor answers itself: each
//! turns a routed request ([`crate::routes::Endpoint`]) into a response, or
//! (for a stream) hands the connection to the engine. Parsing and the
//! connection's lifecycle are in `server/http.rs`; this file is only what
//! each endpoint says.

use std::io;
use std::sync::OnceLock;

use super::{Server, Timer};
use crate::engine::Opened;
use crate::http::response::{self, HTML, TEXT};
use crate::http::Response;
use crate::routes;

/// The page, embedded in the binary (SPEC section 3, `GET /`).
const PAGE: &str = include_str!("../page/index.html");

/// The page needs nothing from anywhere but its own origin, and runs only
/// its own inline script and style (allowed by hash, see [`crate::csp`]).
fn page_csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| crate::csp::page_policy(PAGE))
}

impl Server {
    /// `ok`; a worker also says which one it is (operators and tests can
    /// see connections spread across workers).
    pub(super) fn healthz(&self) -> Response {
        let ok = Response::new(200, TEXT, &b"ok"[..]);
        match &self.cluster {
            Some(c) => ok.header("X-Logcast-Worker", c.index.to_string()),
            None => ok,
        }
    }

    /// This reactor's figures plus, in a worker, its siblings' latest ones.
    pub(super) fn metrics_response(&mut self) -> Response {
        self.metrics.logs_tailed = self.engine.tails_len() as u64;
        let mut total = self.metrics.clone();
        let (mut rss, mut fds) = (crate::sys::resident_bytes(), crate::sys::open_fds());
        for other in self.cluster.iter().flat_map(|c| c.others()) {
            total.add_values(&other.values);
            rss += other.rss_bytes;
            fds += other.open_fds;
        }
        let body = total.render(rss, fds);
        Response::new(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            body.into_bytes(),
        )
    }

    /// Streams of log `id` in this reactor and, in a worker, its siblings.
    pub(super) fn subscribers(&self, id: &str) -> u64 {
        let others: u64 = self
            .cluster
            .iter()
            .flat_map(|c| c.others())
            .map(|s| s.subscribers.get(id).copied().unwrap_or(0))
            .sum();
        self.engine.subscribers(id) + others
    }

    pub(super) fn log_info(&self, id: &str) -> Response {
        match self.dir.info(id) {
            Ok(info) => Response::json(200, info.to_json(Some(self.subscribers(id)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Response::error(404, "no such log"),
            Err(e) => Response::error(500, &format!("cannot read log: {e}")),
        }
    }

    pub(super) fn create_log(&mut self, duration_s: u64) -> Response {
        if self.writers.len() >= self.config.max_writers {
            return Response::error(503, "too many logs being written; try again later");
        }
        let now = self.now_ms();
        let (key, generation, id) = match self.writers.create(&self.dir, duration_s * 1000, now) {
            Ok(created) => created,
            Err(e) => {
                log::warn!("cannot create log: {e}");
                return Response::error(500, &format!("cannot create log: {e}"));
            }
        };
        self.timers.insert(
            now + self.config.write_interval_ms,
            Timer::Writer(key, generation),
        );
        self.metrics.writers_active = self.writers.len() as u64;
        match std::fs::metadata(self.dir.file_of(&id)) {
            Ok(meta) => self.index.created(&id, &meta),
            Err(e) => log::warn!("log {id}: cannot stat the new file: {e}"),
        }
        log::info!("log {id}: created, writing for {duration_s} s");
        let body = crate::json::object(&[
            ("log_id", crate::json::Value::Str(&id)),
            (
                "message",
                crate::json::Value::Str(&format!("Log file created with ID: {id}")),
            ),
            (
                "stream_url",
                crate::json::Value::Str(&format!("/api/logs/{id}/stream")),
            ),
        ]);
        Response::json(201, body).header("Location", format!("/api/logs/{id}"))
    }

    /// Starts a stream, or returns the response that refuses it.
    pub(super) fn open_stream(
        &mut self,
        key: usize,
        req: &routes::StreamRequest,
        extra_headers: &[(&'static str, String)],
    ) -> Option<Response> {
        let now = self.now_ms();
        let opened = self
            .engine
            .open(req, now, &mut self.conns, &mut self.metrics);
        self.engine_effects();
        let opened = match opened {
            Ok(Opened::Stream {
                tail,
                start,
                filter,
            }) => (tail, start, filter),
            Ok(Opened::NotFound) => return Some(Response::error(404, "no such log")),
            Ok(Opened::NoContent) => return Some(Response::new(204, TEXT, &b""[..])),
            Ok(Opened::BadFilter(why)) => return Some(Response::error(400, &why)),
            Err(e) => return Some(Response::error(500, &format!("cannot open log: {e}"))),
        };
        let conn = self.conns.get_mut(key)?;
        response::stream_head(&mut conn.out, extra_headers);
        log::debug!("conn {key}: streaming {} from {:?}", req.id, opened.1);
        self.engine.attach(conn, key, opened, now);
        if let Some((id, _)) = conn.timer.take() {
            self.timers.cancel(id);
        }
        self.metrics.streams_open += 1;
        self.metrics.logs_tailed = self.engine.tails_len() as u64;
        None
    }
}

pub(super) fn page() -> Response {
    Response::new(200, HTML, PAGE.as_bytes())
        .header("Content-Security-Policy", page_csp())
        .header("Cache-Control", "no-cache")
}
