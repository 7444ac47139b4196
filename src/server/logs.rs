//! The log directory on the reactor: keeping the index of logs current
//! (bounded steps each turn, fed by the engine's directory events),
//! answering the list and `DELETE`, and retention's ticks. The index itself
//! is [`crate::logs::index`]; which log retention picks is
//! [`crate::logs::retention`].

use std::io;

use super::{Server, Timer};
use crate::engine::watch::DirEvent;
use crate::http::Response;
use crate::logs::index::{wall_ms, Cursor};
use crate::logs::retention;

impl Server {
    /// One turn's share of index work: the names the directory reported,
    /// then a bounded step (a share of a pass, where one runs).
    pub(crate) fn run_index(&mut self, now: u64) {
        for event in self.engine.take_dir_events() {
            match event {
                DirEvent::Content(name) | DirEvent::Name(name) => self.index.note(&name),
                DirEvent::MovedFrom { name, .. } | DirEvent::MovedTo { name, .. } => {
                    self.index.note(&name)
                }
                DirEvent::Overflow => self.index.rescan(),
                DirEvent::DirGone | DirEvent::Modified(_) | DirEvent::Unwatched(_) => {}
            }
        }
        self.index.set_rescanning(!self.engine.is_watching());
        if self.index.has_work() || self.index.next_pass_ms().is_some_and(|t| t <= now) {
            self.index.step(now);
        }
    }

    /// `GET /api/logs`: one page, newest first, with `Link` to the next
    /// (RFC 8288) and `X-Total-Count`.
    pub(super) fn list_logs(&mut self, limit: usize, before: Option<&Cursor>) -> Response {
        // One stat: a directory that is gone is an error, not an empty
        // list, even before its notification arrives.
        if let Err(e) = std::fs::metadata(self.dir.path()) {
            return Response::error(500, &format!("cannot read log dir: {e}"));
        }
        let page = self.index.page(limit, before);
        let mut body = String::with_capacity(2 + page.logs.len() * 192);
        body.push('[');
        for (i, log) in page.logs.iter().enumerate() {
            if i > 0 {
                body.push_str(", ");
            }
            log.push_json(&mut body, None);
        }
        body.push(']');
        let mut response = Response::new(200, crate::http::response::JSON, body.into_bytes())
            .header("X-Total-Count", page.total.to_string())
            // Where this list stands in the journal of changes: subscribing
            // to `GET /api/events?since=<it>` misses nothing after it.
            .header("X-Events-Id", self.index.changes().current_id());
        if let Some(next) = page.next {
            response = response.header(
                "Link",
                format!(
                    "</api/logs?limit={limit}&before={}>; rel=\"next\"",
                    next.to_text()
                ),
            );
        }
        response
    }

    /// `DELETE /api/logs/<id>`: its writer stops, its file goes, its
    /// streams get `end` (deleted) now.
    pub(super) fn delete_log(&mut self, id: &str) -> Response {
        let path = self.dir.file_of(id);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if !meta.is_dir() => {}
            Ok(_) => return Response::error(404, "no such log"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Response::error(404, "no such log")
            }
            Err(e) => return Response::error(500, &format!("cannot delete log: {e}")),
        }
        self.writers.stop(id);
        self.metrics.writers_active = self.writers.len() as u64;
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != io::ErrorKind::NotFound {
                return Response::error(500, &format!("cannot delete log: {e}"));
            }
        }
        log::info!("log {id}: deleted by request");
        self.forget_log(id);
        Response::new(204, crate::http::response::TEXT, &b""[..])
    }

    /// A log's file was removed on purpose: out of the index, and its
    /// streams end at once (not after the missing-file grace).
    fn forget_log(&mut self, id: &str) {
        self.index.remove(id);
        self.engine.delete_log(id, &mut self.conns);
        self.engine_effects();
    }

    /// Removes the oldest finished logs logcast created while a
    /// `--retain-*` limit is passed, at most
    /// [`retention::REMOVALS_PER_TICK`] per tick.
    pub(super) fn retention_tick(&mut self, now: u64) {
        if !self.retains {
            return;
        }
        let policy = self.config.retain;
        let wall = wall_ms();
        for _ in 0..retention::REMOVALS_PER_TICK {
            let Some(victim) = retention::next_victim(&self.index, &policy, wall) else {
                break;
            };
            match retention::remove_if_unchanged(&self.dir, &victim) {
                Ok(true) => {
                    log::info!("log {}: removed by retention", victim.id);
                    self.metrics.logs_retired += 1;
                    self.forget_log(&victim.id);
                }
                Ok(false) => {
                    // Changed since the index looked: look again, and if it
                    // still comes first, leave it for a later look.
                    self.index.refresh(&victim.id);
                    if self
                        .index
                        .oldest_retained()
                        .is_some_and(|v| v.id == victim.id)
                    {
                        self.index.give_up(&victim.id);
                    }
                }
                Err(e) => {
                    log::warn!("log {}: retention cannot remove it: {e}", victim.id);
                    self.index.give_up(&victim.id);
                }
            }
        }
        self.timers
            .insert(now + retention::TICK_MS, Timer::Retention);
    }
}
