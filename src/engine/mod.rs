//! The streaming engine: from a change in a log file to bytes on every
//! socket that follows it, testable without the reactor. Follow one line:
//!
//! 1. Something says a log changed: a change notification ([`watch`]: the
//!    followed file's own watch for appends, the directory's for names,
//!    closes and modes), the simulated writer that just appended
//!    ([`Engine::file_written`]), or, where no notification covers the file,
//!    its poll timer. The tail is marked stale.
//! 2. In the same reactor turn, [`Engine::run`] looks at each stale tail
//!    ([`tail::Tail::refresh`]): one `fstat` of its descriptor, plus a `stat`
//!    of the path when a name changed. New bytes are read once and framed
//!    once into a [`crate::sse::Block`], however many streams follow the log.
//!    (A log with many streams that was fanned out moments ago waits out a
//!    short batching gap first, [`Engine::batch_gap_ms`], with its file's
//!    watch dropped: written fast, its lines go out in batches, at a wake
//!    per batch, never costing more per line than polling.)
//! 3. [`fanout::Fanout::send`] writes that block straight to every stream
//!    at the tail's offset. A stream whose socket was full keeps only the
//!    unsent rest of one event and falls behind; when its socket drains,
//!    [`Engine::advance`] lets it catch up from the file itself, in bounded
//!    chunks. Backpressure is a byte offset, never a queue.
//!
//! Time enters only through wakes the engine asks for ([`Wake`]): the server
//! arms them on its wheel and calls [`Engine::timer`] when they fire. A
//! watched log asks for one wake per heartbeat interval (heartbeats, and
//! every fourth time a `stat` as the floor under the notifications); a
//! polled one, one per poll interval. A log nobody writes costs no work
//! per tick, and no descriptor once idle: descriptors are opened on change
//! and let go when the log has been quiet for a heartbeat interval, or
//! when more than [`MAX_OPEN_FILES`] are open.
//!
//! Every step is bounded: each turn reads at most [`TURN_BYTES`] of new
//! file data, looks at most at 512 tails and writes fan-outs and heartbeats
//! to at most [`TURN_WRITES`] sockets; the rest waits for the next turn (a
//! fan-out cut there goes on first, and its tail reads nothing new until
//! every stream has been offered the block). The engine keeps the turn's
//! count of writes, and the directory's subscribers write within the same
//! ([`Engine::writes_for_others`], [`Engine::count_writes`], a share kept
//! for them by [`Engine::end_turn`]): one turn writes to at most
//! [`TURN_WRITES`] sockets in all.
//! Everything a single stream asks of the file beyond that shares one
//! budget per turn ([`TURN_BUDGET`]): catching up, the scan for where it
//! starts ([`scan`]: `?tail=n`, a resume point inside a line) and the line
//! count its `end` event carries. A stream whose start needs a scan gets
//! its head at once and its first line when the scan is done; one whose
//! `end` needs a count waits for it. No request can freeze the others.

pub mod fanout;
pub mod scan;
pub mod tail;
pub mod watch;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::rc::Rc;

use slab::Slab;

pub use fanout::StreamState;
use fanout::{flush, write_block, Fanout, StallCheck};
pub use scan::Start;
use scan::{Seek, Step, PIECE};
use tail::{Change, Tail, CHUNK};
use watch::{DirEvent, Watcher};

use crate::conn::{Conn, Flow};
use crate::filter::Filter;
use crate::logs::LogDir;
use crate::metrics::Metrics;
use crate::routes::StreamRequest;
use crate::sse::{self, Block};

/// Most bytes of file a stream catches up in one turn before others get theirs.
const CATCHUP_BUDGET: usize = 4 * CHUNK;

/// Most bytes of new file data all tails together read in one turn.
pub const TURN_BYTES: usize = 4 * CHUNK;

/// Most bytes of file the streams' own work reads in one turn, all streams
/// together: catch-up, start scans and line counts (about 1 ms of reading
/// and writing on this kind of machine).
pub const TURN_BUDGET: usize = 4 * CHUNK;

/// What a stream step costs the turn's budget beyond the bytes it reads:
/// a budget's worth of steps is 1,024 system calls or so.
const STEP_COST: usize = TURN_BUDGET / 1024;

/// Most socket writes of fan-outs and heartbeats in one turn, all tails
/// together (about 5 to 10 ms of writes on this kind of machine): a line
/// to 19,000 streams goes out over ten turns that follow each other at
/// once, with socket events and timers served between them.
pub const TURN_WRITES: usize = 2048;

/// Most tails looked at in one turn (an overflow marks every tail: with
/// 19,000 logs, that is spread over turns instead of frozen into one).
const LOOKS_PER_TURN: usize = 512;

/// A quiet watched log's file is checked by `stat` (the floor under the
/// notifications, which miss writes through `mmap` or through a hard link
/// in another directory) at a heartbeat wake at most once per this many
/// heartbeat intervals: once a minute by default.
const STAT_FLOOR_BEATS: u64 = 4;

/// Most notification reads (4 KiB each) per turn.
const NOTIFY_READS: usize = 64;

/// Streams per millisecond of batching gap: a log's notified changes are
/// read at once while its fan-outs stay under about 10,000 socket writes
/// a second; beyond that its lines wait for the next batch (see
/// [`Engine::batch_gap_ms`]).
const STREAMS_PER_GAP_MS: u64 = 10;

/// Descriptors of watched logs kept open at most; beyond it the least
/// recently used log lets its descriptor go.
/// 512 leaves room for 19,000 streams' sockets under a 20,000-file cap.
pub const MAX_OPEN_FILES: usize = 512;

/// How tails learn of new bytes (`--watch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchMode {
    /// Change notification where the kernel gives it, polling elsewhere.
    Auto,
    /// The `--poll-interval-ms` poll only.
    Poll,
}

/// The engine's share of the configuration.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    pub watch: WatchMode,
    pub poll_interval_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// Heartbeats one group gets in one burst at most (`--heartbeat-burst`).
    pub heartbeat_burst: usize,
    /// A stream whose socket takes no byte for this long is closed.
    pub stall_timeout_ms: u64,
}

/// Run [`Engine::timer`] for `tail` of `generation` at `at_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wake {
    pub tail: usize,
    pub generation: u32,
    pub at_ms: u64,
}

/// How a stream request is answered.
#[derive(Debug)]
pub enum Opened {
    /// No such log: 404.
    NotFound,
    /// A finished log and the client already has all of it: 204 tells
    /// EventSource to stop reconnecting.
    NoContent,
    /// A `?grep=` or `?exclude=` that does not compile: 400, saying why.
    BadFilter(String),
    /// Stream from where `start` says, the lines `filter` passes.
    Stream {
        tail: usize,
        start: Start,
        filter: Option<Rc<Filter>>,
    },
}

/// What [`Engine::advance`] left the stream in.
#[derive(Debug, PartialEq, Eq)]
pub enum Advance {
    /// Waiting for its socket to drain.
    Blocked,
    /// At the tail's offset: it will get the next fan-out.
    CaughtUp,
    /// Used its budget while behind: queued again.
    MoreWork,
    /// Close the connection (sent its end, or the peer left).
    Close,
}

/// One followed log.
#[derive(Debug)]
struct Followed {
    id: String,
    tail: Tail,
    fanout: Fanout,
    generation: u32,
    /// No notification covers this file: it is polled every interval.
    polled: bool,
    next_poll_ms: u64,
    /// The wake armed for this tail; earlier-superseded wakes are ignored.
    armed_at: Option<u64>,
    /// Waiting in the stale queue, and whether that look must stat the path.
    stale: bool,
    check_path: bool,
    /// The stale mark came from content notifications only: the look may
    /// wait for the batching gap.
    batchable: bool,
    /// When a look held back for batching is due.
    batch_due_ms: Option<u64>,
    /// When new bytes were last read and fanned out.
    last_fanout_ms: u64,
    /// When the file was last looked at (or found unchanged by `stat`).
    checked_ms: u64,
    /// The watch on the file for its appends, and the file it was set on:
    /// none while polled, or while its lines are held for a batch.
    watch: Option<(i32, (u64, u64))>,
    /// Where the directory said our file was renamed to.
    moved_to: Option<PathBuf>,
    last_change_ms: u64,
    /// When its descriptor was last used, in [`Engine::recent`]'s sequence.
    used_seq: u64,
    /// Sent `end` (deleted): no more looks; it goes when its streams do.
    ended: bool,
    /// The next stall check (heartbeat wakes check too).
    stall_check_ms: u64,
    /// Waiting in the count queue: an `end` waits for the line count.
    counting: bool,
    /// Waiting in the queue of fan-outs that go on next turn.
    resuming: bool,
    /// A look came while its fan-out was unfinished: it is owed at the end.
    look_deferred: bool,
}

/// A stream waiting for the scan that finds where it starts.
#[derive(Debug)]
struct SeekJob {
    conn: usize,
    generation: u32,
    seek: Seek,
}

#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    dir: LogDir,
    tails: Slab<Followed>,
    by_id: HashMap<String, usize>,
    watcher: Option<Watcher>,
    /// The notification queue may hold more events than were read.
    notify_backlog: bool,
    events: Vec<DirEvent>,
    /// The events read, kept for [`Engine::take_dir_events`].
    dir_events: Vec<DirEvent>,
    /// `IN_MOVED_FROM` cookies of followed logs, until their `IN_MOVED_TO`.
    moves: HashMap<u32, usize>,
    /// The tails each file watch serves (hard links share one watch).
    by_watch: HashMap<i32, Vec<usize>>,
    /// The watch table was found full once (said once in the log).
    watch_table_full: bool,
    /// Tails to look at, in order.
    stale: VecDeque<usize>,
    /// Streams with work to do outside a socket event: `(key, generation)`.
    work: VecDeque<(usize, u32)>,
    /// Streams waiting for their start, one scan piece per turn each.
    seeks: VecDeque<SeekJob>,
    /// Tails whose `end` waits for their line count: `(key, generation)`.
    counts: VecDeque<(usize, u32)>,
    /// Tails whose fan-out (or heartbeat burst) ran out of a turn's writes:
    /// `(key, generation)`, served first in the next turn.
    resumes: VecDeque<(usize, u32)>,
    /// What the streams may still write of this turn's [`TURN_WRITES`].
    writes_left: usize,
    /// The turn's writes kept from the streams for the rest of the reactor
    /// (`/api/events` subscribers), not yet used.
    writes_kept: usize,
    /// What is left of this turn's [`TURN_BUDGET`].
    turn_left: usize,
    /// Bytes stream work read this turn (for the metric of the largest).
    turn_read: usize,
    wakes: Vec<Wake>,
    closed: Vec<usize>,
    touched: Vec<usize>,
    /// The block a tail frames and fans out.
    block: Block,
    /// The block a stream frames its catch-up into.
    own: Block,
    buf: Vec<u8>,
    next_generation: u32,
    files_open: usize,
    /// Tails in the order their descriptors were used, oldest first: the
    /// eviction order. Entries whose `used_seq` is stale are skipped.
    recent: VecDeque<(usize, u64)>,
    next_seq: u64,
    /// This process's phase on the heartbeat grid ([`Engine::beat_wake`]).
    beat_phase: u64,
}

impl Engine {
    /// An engine for the logs of `dir`; with [`WatchMode::Auto`] it watches
    /// the directory, or says once why it polls instead.
    pub fn new(config: EngineConfig, dir: LogDir) -> Engine {
        let watcher = match config.watch {
            WatchMode::Poll => None,
            WatchMode::Auto => match Watcher::new(dir.path()) {
                Ok(w) => {
                    log::info!("watching {} for changes", dir.path().display());
                    Some(w)
                }
                Err(why) => {
                    log::warn!(
                        "log dir {}: {why}; polling every {} ms",
                        dir.path().display(),
                        config.poll_interval_ms
                    );
                    None
                }
            },
        };
        Engine {
            config,
            dir,
            tails: Slab::new(),
            by_id: HashMap::new(),
            watcher,
            notify_backlog: false,
            events: Vec::new(),
            dir_events: Vec::new(),
            moves: HashMap::new(),
            by_watch: HashMap::new(),
            watch_table_full: false,
            stale: VecDeque::new(),
            work: VecDeque::new(),
            seeks: VecDeque::new(),
            counts: VecDeque::new(),
            resumes: VecDeque::new(),
            writes_left: TURN_WRITES,
            writes_kept: 0,
            turn_left: TURN_BUDGET,
            turn_read: 0,
            wakes: Vec::new(),
            closed: Vec::new(),
            touched: Vec::new(),
            block: Block::default(),
            own: Block::default(),
            buf: Vec::new(),
            next_generation: 0,
            files_open: 0,
            recent: VecDeque::new(),
            next_seq: 0,
            beat_phase: rand::random::<u64>(),
        }
    }

    /// The change-notification descriptor to register for readability.
    pub fn watch_fd(&self) -> Option<RawFd> {
        self.watcher.as_ref().map(Watcher::raw_fd)
    }

    /// Whether the directory is watched (false: every tail is polled).
    pub fn is_watching(&self) -> bool {
        self.watcher.is_some()
    }

    /// Work is waiting that should run without waiting for an event.
    pub fn has_work(&self) -> bool {
        !self.work.is_empty()
            || !self.stale.is_empty()
            || self.notify_backlog
            || !self.seeks.is_empty()
            || !self.counts.is_empty()
            || !self.resumes.is_empty()
    }

    /// Wakes to arm on the timer wheel, since the last call.
    pub fn take_wakes(&mut self) -> std::vec::Drain<'_, Wake> {
        self.wakes.drain(..)
    }

    /// A connection whose peer is gone or whose stream ended, to close.
    pub fn pop_closed(&mut self) -> Option<usize> {
        self.closed.pop()
    }

    /// Logs followed right now.
    pub fn tails_len(&self) -> usize {
        self.tails.len()
    }

    /// Log descriptors held right now.
    pub fn files_open(&self) -> usize {
        self.files_open
    }

    /// Streams following log `id` right now.
    pub fn subscribers(&self, id: &str) -> u64 {
        self.by_id
            .get(id)
            .and_then(|&t| self.tails.get(t))
            .map_or(0, |f| f.fanout.len() as u64)
    }

    /// `(log id, streams)` for every followed log.
    pub fn subscriber_counts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.tails
            .iter()
            .map(|(_, f)| (f.id.as_str(), f.fanout.len() as u64))
    }

    /// Finds (or opens) the log's tail and decides where the stream starts.
    pub fn open(
        &mut self,
        req: &StreamRequest,
        now_ms: u64,
        conns: &mut Slab<Conn>,
        m: &mut Metrics,
    ) -> io::Result<Opened> {
        let (key, new_tail) = match self.by_id.get(&req.id) {
            Some(&key) => {
                // A client resuming past what this tail has read (it got
                // those lines from another daemon sharing the directory, or
                // the change is not processed yet): look at the file now, so
                // the resume point is judged against the file as it is.
                if req
                    .resume
                    .is_some_and(|at| at > self.tails[key].tail.offset())
                {
                    self.look(key, now_ms, true, conns, m);
                }
                (key, false)
            }
            None => match self.open_tail(&req.id, now_ms) {
                Ok(key) => (key, true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Opened::NotFound),
                Err(e) => return Err(e),
            },
        };
        let opened = match self.filter_for(key, req) {
            Err(why) => Ok(Opened::BadFilter(why)),
            Ok(filter) => self
                .start_of(key, req, filter.is_some())
                .map(|start| match start {
                    Some(start) => Opened::Stream {
                        tail: key,
                        start,
                        filter,
                    },
                    None => Opened::NoContent,
                }),
        };
        // A tail opened for this request lives only if a stream follows it.
        if new_tail {
            match opened {
                Ok(Opened::Stream { .. }) => self.arm_next(key, now_ms),
                _ => self.drop_tail(key),
            }
        }
        opened
    }

    /// The request's filter: the one its group already compiled, or a new
    /// one (`Err` says what is wrong with it).
    fn filter_for(&self, key: usize, req: &StreamRequest) -> Result<Option<Rc<Filter>>, String> {
        if req.filter.is_none() {
            return Ok(None);
        }
        if let Some(f) = self.tails[key].fanout.filter_for(&req.filter) {
            return Ok(Some(f));
        }
        Filter::compile(&req.filter).map(|f| Some(Rc::new(f)))
    }

    /// Where a stream starts (at most a byte read now; a scan, if one is
    /// needed, runs in later turns), or `None` for a client that already
    /// has the whole of a finished log. With a filter, `?tail=n` counts
    /// matching lines.
    fn start_of(
        &mut self,
        key: usize,
        req: &StreamRequest,
        filtered: bool,
    ) -> io::Result<Option<Start>> {
        let tail = &mut self.tails[key].tail;
        let before = tail.files_open();
        let start = match (req.resume, req.tail) {
            (Some(at), _) if tail.is_complete() && at == tail.size() => Ok(None),
            (Some(at), _) => scan::resume(tail, at).map(Some),
            (None, Some(n)) if filtered => Ok(Some(scan::last_matching(tail, n))),
            (None, Some(n)) => scan::last_lines(tail, n).map(Some),
            (None, None) => Ok(Some(Start::At(0))),
        };
        self.recount(key, before);
        self.limit_open_files(key);
        start
    }

    fn open_tail(&mut self, id: &str, now_ms: u64) -> io::Result<usize> {
        let tail = Tail::open(self.dir.file_of(id))?;
        self.next_generation = self.next_generation.wrapping_add(1);
        self.files_open += tail.files_open();
        let polled = self.watcher.is_none() || tail.symlink;
        let key = self.tails.insert(Followed {
            id: id.to_string(),
            tail,
            fanout: Fanout::new(
                self.config.heartbeat_interval_ms,
                self.config.heartbeat_burst,
            ),
            generation: self.next_generation,
            polled,
            next_poll_ms: now_ms + self.config.poll_interval_ms,
            armed_at: None,
            stale: false,
            check_path: false,
            batchable: false,
            batch_due_ms: None,
            last_fanout_ms: 0,
            checked_ms: now_ms,
            watch: None,
            moved_to: None,
            last_change_ms: now_ms,
            used_seq: 0,
            ended: false,
            stall_check_ms: now_ms + self.stall_check_period(),
            counting: false,
            resuming: false,
            look_deferred: false,
        });
        self.by_id.insert(id.to_string(), key);
        self.touch(key);
        self.watch_file(key);
        Ok(key)
    }

    fn drop_tail(&mut self, key: usize) {
        self.unwatch_file(key);
        let Some(f) = self.tails.try_remove(key) else {
            return;
        };
        self.files_open -= f.tail.files_open();
        if self.by_id.get(&f.id) == Some(&key) {
            self.by_id.remove(&f.id);
        }
    }

    /// Makes connection `key` a stream of `tail` from `start`, sent the
    /// lines `filter` passes: queues its first catch-up, or the scan that
    /// finds where it starts.
    pub fn attach(
        &mut self,
        conn: &mut Conn,
        key: usize,
        opened: (usize, Start, Option<Rc<Filter>>),
        now_ms: u64,
    ) {
        let (tail, start, filter) = opened;
        let (group, index) = self.tails[tail].fanout.add(key, filter, now_ms);
        let (offset, seek) = match start {
            Start::At(offset) => (offset, None),
            Start::Seek(seek) => (0, Some(seek)),
        };
        conn.become_stream(StreamState {
            tail,
            offset,
            group,
            index,
            queued: seek.is_none(),
            seeking: seek.is_some(),
        });
        // A new group's heartbeats are due from now.
        self.arm_next(tail, now_ms);
        match seek {
            None => self.work.push_back((key, conn.generation)),
            Some(seek) => self.seeks.push_back(SeekJob {
                conn: key,
                generation: conn.generation,
                seek,
            }),
        }
    }

    /// Removes a closing stream from its tail; the tail goes with its last
    /// stream (and with it its descriptor).
    pub fn detach(&mut self, conns: &mut Slab<Conn>, stream: &StreamState) {
        let Some(f) = self.tails.get_mut(stream.tail) else {
            return;
        };
        f.fanout.remove(stream.group, stream.index, conns);
        if f.fanout.is_empty() {
            self.drop_tail(stream.tail);
        }
    }

    /// A simulated writer appended to (or finished) log `id`: its streams
    /// get the line in this same turn.
    pub fn file_written(&mut self, id: &str, now_ms: u64, conns: &mut Slab<Conn>, m: &mut Metrics) {
        if let Some(&key) = self.by_id.get(id) {
            self.look(key, now_ms, false, conns, m);
        }
    }

    /// The notification descriptor is readable: note which tails changed.
    /// They are looked at by [`Engine::run`] in this same turn.
    pub fn notified(&mut self) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let mut events = std::mem::take(&mut self.events);
        match watcher.read(NOTIFY_READS, &mut events) {
            Ok(drained) => self.notify_backlog = !drained,
            Err(e) => {
                log::warn!("change notification failed: {e}");
                events.push(DirEvent::DirGone);
            }
        }
        self.dir_events.extend(events.iter().cloned());
        for event in events.drain(..) {
            self.apply(event);
        }
        self.events = events;
        if self.moves.len() > 1024 {
            self.moves.clear();
        }
    }

    fn apply(&mut self, event: DirEvent) {
        match event {
            DirEvent::Modified(wd) => {
                for key in self.by_watch.get(&wd).cloned().unwrap_or_default() {
                    let Some(f) = self.tails.get(key) else {
                        continue;
                    };
                    // The index keeps sizes from these as from the directory's.
                    self.dir_events
                        .push(DirEvent::Content(format!("{}.log", f.id)));
                    self.mark_content(key);
                }
            }
            DirEvent::Unwatched(wd) => {
                // Its file is gone: the directory's events tell the rest.
                for key in self.by_watch.remove(&wd).unwrap_or_default() {
                    if let Some(f) = self.tails.get_mut(key) {
                        f.watch = None;
                    }
                }
            }
            DirEvent::Content(name) => {
                if let Some(key) = self.key_of_name(&name) {
                    self.mark_content(key);
                }
            }
            DirEvent::Name(name) => self.mark_name(&name, true),
            DirEvent::MovedFrom { name, cookie } => {
                if let Some(key) = self.key_of_name(&name) {
                    self.moves.insert(cookie, key);
                    self.mark(key, true);
                }
            }
            DirEvent::MovedTo { name, cookie } => {
                if let Some(key) = self.moves.remove(&cookie) {
                    if let Some(f) = self.tails.get_mut(key) {
                        f.moved_to = Some(self.dir.path().join(&name));
                    }
                }
                self.mark_name(&name, true);
            }
            DirEvent::Overflow => {
                log::info!("change notification queue overflowed: looking at every log again");
                let keys: Vec<usize> = self.tails.iter().map(|(k, _)| k).collect();
                for key in keys {
                    self.mark(key, true);
                }
            }
            DirEvent::DirGone => self.stop_watching(),
        }
    }

    /// The directory is gone (or its watch failed): every tail is polled
    /// from now on, which is also how their streams learn of the deletion.
    fn stop_watching(&mut self) {
        if self.watcher.take().is_none() {
            return;
        }
        log::warn!(
            "log dir {}: no longer watched; polling every {} ms",
            self.dir.path().display(),
            self.config.poll_interval_ms
        );
        self.notify_backlog = false;
        self.by_watch.clear();
        let keys: Vec<usize> = self.tails.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.tails[key].watch = None;
            self.tails[key].polled = true;
            self.mark(key, true);
        }
    }

    /// Watches tail `key`'s file for appends. Where the watch table is
    /// full, the tail is polled instead (said once). A path with no file
    /// (renamed away mid-rotation, deleted) is not a full table: the
    /// directory's watch reports the name when it is back, and the look
    /// that follows watches it ([`Engine::follow_watch`]).
    fn watch_file(&mut self, key: usize) {
        let (Some(watcher), Some(f)) = (&self.watcher, self.tails.get_mut(key)) else {
            return;
        };
        if f.polled || f.ended || f.watch.is_some() {
            return;
        }
        match watcher.watch_file(f.tail.path()) {
            Ok(wd) => {
                f.watch = Some((wd, f.tail.identity()));
                self.by_watch.entry(wd).or_default().push(key);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                f.polled = true;
                if !std::mem::replace(&mut self.watch_table_full, true) {
                    log::warn!(
                        "cannot watch {}: {e}; logs that cannot be watched are polled every {} ms",
                        f.tail.path().display(),
                        self.config.poll_interval_ms
                    );
                }
            }
        }
    }

    /// Drops tail `key`'s file watch, if it has one.
    fn unwatch_file(&mut self, key: usize) {
        let Some((wd, _)) = self.tails.get_mut(key).and_then(|f| f.watch.take()) else {
            return;
        };
        let Some(keys) = self.by_watch.get_mut(&wd) else {
            return;
        };
        keys.retain(|&k| k != key);
        if keys.is_empty() {
            self.by_watch.remove(&wd);
            if let Some(w) = &self.watcher {
                w.unwatch_file(wd);
            }
        }
    }

    /// After a look: a tail that now reads another file (a rotation) moves
    /// its watch there, and one left unwatched (its path had no file when
    /// it was to be watched) is watched again, unless a held batch watches
    /// it when due; either looks once more for what was written before the
    /// new watch was set.
    fn follow_watch(&mut self, key: usize) {
        let Some(f) = self.tails.get(key) else {
            return;
        };
        let moved = f
            .watch
            .is_some_and(|(_, identity)| identity != f.tail.identity());
        let unwatched = f.watch.is_none() && f.batch_due_ms.is_none();
        if moved || unwatched {
            self.unwatch_file(key);
            self.watch_file(key);
            if self.tails.get(key).is_some_and(|f| f.watch.is_some()) {
                self.mark(key, false);
            }
        }
    }

    fn key_of_name(&self, name: &str) -> Option<usize> {
        let id = name.strip_suffix(".log")?;
        self.by_id.get(id).copied()
    }

    fn mark_name(&mut self, name: &str, check_path: bool) {
        if let Some(key) = self.key_of_name(name) {
            self.mark(key, check_path);
        }
    }

    /// Queues a look at tail `key` in this turn.
    fn mark(&mut self, key: usize, check_path: bool) {
        let Some(f) = self.tails.get_mut(key) else {
            return;
        };
        f.check_path |= check_path;
        f.batchable = false;
        if !f.stale {
            f.stale = true;
            self.stale.push_back(key);
        }
    }

    /// Queues a look at tail `key` for new content; [`Engine::run`] may
    /// hold it back for batching. Any other reason to look wins.
    fn mark_content(&mut self, key: usize) {
        let Some(f) = self.tails.get_mut(key) else {
            return;
        };
        if !f.stale {
            f.stale = true;
            f.batchable = true;
            self.stale.push_back(key);
        }
    }

    /// How long after its last fan-out a log's next notified change waits,
    /// so that lines written fast go out in batches: a fan-out costs a
    /// write per stream, and polling would cost one per poll interval. So
    /// a log with few streams is read at every change (1 to 9 streams: no
    /// gap), one with 1,000 or more at most once per poll interval, as
    /// polling would: CPU per delivered line never above polling's, and
    /// the first line after a quiet spell still goes out at once.
    fn batch_gap_ms(&self, streams: usize) -> u64 {
        (streams as u64 / STREAMS_PER_GAP_MS).min(self.config.poll_interval_ms)
    }

    /// Holds a content look at tail `key` back until its batching gap has
    /// passed since its last fan-out; `false` when it may look now. A
    /// change that comes in the last eighth of the gap is read at once (a
    /// wake saved for lines that come about once per gap); a second change
    /// while one is held drops the file's watch until the batch is due, so
    /// a fast writer wakes the reactor once per batch, not once per write.
    fn hold_for_batch(&mut self, key: usize, now_ms: u64) -> bool {
        let f = &self.tails[key];
        if !f.batchable || f.polled {
            return false;
        }
        let gap = self.batch_gap_ms(f.fanout.len());
        let due = f.last_fanout_ms + gap;
        if now_ms + gap / 8 >= due {
            return false;
        }
        let f = &mut self.tails[key];
        let held_already = f.batch_due_ms.is_some();
        f.batch_due_ms = Some(f.batch_due_ms.map_or(due, |d| d.min(due)));
        self.arm(key, due);
        if held_already {
            self.unwatch_file(key);
        }
        true
    }

    /// One turn of engine work: read notifications left over, look at stale
    /// tails, then move queued streams forward; each within its budget.
    pub fn run(&mut self, now_ms: u64, conns: &mut Slab<Conn>, m: &mut Metrics) {
        if self.notify_backlog {
            self.notified();
        }
        self.run_resumes(now_ms, conns, m);
        let mut read = 0;
        for _ in 0..self.stale.len().min(LOOKS_PER_TURN) {
            if read >= TURN_BYTES {
                break;
            }
            let Some(key) = self.stale.pop_front() else {
                break;
            };
            let Some(f) = self.tails.get_mut(key) else {
                continue;
            };
            let check_path = std::mem::take(&mut f.check_path);
            f.stale = false;
            if self.hold_for_batch(key, now_ms) {
                continue;
            }
            read += self.look(key, now_ms, check_path, conns, m);
        }
        self.run_seeks(conns);
        self.run_streams(conns, m);
        self.run_counts(conns, m);
    }

    /// The writes of this turn the rest of the reactor may still make:
    /// those kept for it, and what the streams left.
    pub fn writes_for_others(&self) -> usize {
        self.writes_kept + self.writes_left
    }

    /// Counts `n` writes made outside the engine against this turn's: the
    /// kept ones first.
    pub fn count_writes(&mut self, n: usize) {
        let from_kept = n.min(self.writes_kept);
        self.writes_kept -= from_kept;
        self.writes_left = self.writes_left.saturating_sub(n - from_kept);
    }

    /// The reactor's turn is over: its figures go to the metrics, and the
    /// next turn's budgets are whole, with `keep` of its writes kept from
    /// the streams for the rest of the reactor (so that fan-outs however
    /// wide, started by timers, socket events or the run, cannot take them
    /// all). Socket events spend the budgets before the next
    /// [`Engine::run`].
    pub fn end_turn(&mut self, m: &mut Metrics, keep: usize) {
        m.turn_read_max = m.turn_read_max.max(self.turn_read as u64);
        m.turn_writes += (TURN_WRITES - self.writes_left - self.writes_kept) as u64;
        self.turn_left = TURN_BUDGET;
        self.turn_read = 0;
        self.writes_kept = keep.min(TURN_WRITES);
        self.writes_left = TURN_WRITES - self.writes_kept;
    }

    /// The fan-outs and heartbeat bursts cut short by an earlier turn's
    /// writes go on, oldest first, within this turn's. A tail whose lines
    /// are all out is looked at again (it read nothing new meanwhile), and
    /// so is one whose look waited for the end of a heartbeat burst; a
    /// quiet log's burst alone does not reopen its file.
    fn run_resumes(&mut self, now_ms: u64, conns: &mut Slab<Conn>, m: &mut Metrics) {
        for _ in 0..self.resumes.len() {
            if self.writes_left == 0 {
                break;
            }
            let Some((key, generation)) = self.resumes.pop_front() else {
                break;
            };
            let Some(f) = live_tail(&mut self.tails, key, generation) else {
                continue;
            };
            f.resuming = false;
            let lines = f.fanout.is_sending_lines();
            let offset = f.tail.offset();
            f.fanout.resume(
                offset,
                conns,
                now_ms,
                m,
                &mut self.closed,
                &mut self.writes_left,
            );
            if self.queue_resume(key) {
                continue;
            }
            let deferred = std::mem::take(&mut self.tails[key].look_deferred);
            if lines || deferred {
                self.mark(key, false);
            }
            self.arm_next(key, now_ms);
        }
    }

    /// Queues tail `key`'s fan-out for the next turn if it is unfinished;
    /// says whether it is.
    fn queue_resume(&mut self, key: usize) -> bool {
        let Some(f) = self.tails.get_mut(key) else {
            return false;
        };
        if !f.fanout.is_unfinished() {
            return false;
        }
        if !f.resuming {
            f.resuming = true;
            self.resumes.push_back((key, f.generation));
        }
        true
    }

    /// The writes a new fan-out may use now: while others wait to go on,
    /// half of the turn's are kept for them.
    fn writes_for_new(&self) -> usize {
        if self.resumes.is_empty() {
            self.writes_left
        } else {
            self.writes_left.saturating_sub(TURN_WRITES / 2)
        }
    }

    /// One piece of each waiting scan (the first even over budget, so
    /// scans move while catch-ups use the budget); a stream whose start is
    /// found is queued to catch up from there.
    fn run_seeks(&mut self, conns: &mut Slab<Conn>) {
        for i in 0..self.seeks.len() {
            if i > 0 && self.turn_left == 0 {
                break;
            }
            let Some(mut job) = self.seeks.pop_front() else {
                break;
            };
            match self.seek_step(&mut job, conns) {
                Ok(Some(offset)) => self.seek_found(&job, offset, conns),
                Ok(None) => self.seeks.push_back(job),
                Err(e) => {
                    log::warn!("conn {}: cannot find where to start: {e}", job.conn);
                    self.closed.push(job.conn);
                }
            }
        }
    }

    /// One piece of `job`'s scan: `Ok(None)` while it goes on; a stream
    /// that left, or was reset meanwhile, ends the scan where it is.
    fn seek_step(&mut self, job: &mut SeekJob, conns: &Slab<Conn>) -> io::Result<Option<u64>> {
        let stream = conns
            .get(job.conn)
            .filter(|c| c.generation == job.generation && !c.is_closing())
            .and_then(Conn::stream)
            .filter(|s| s.seeking);
        let Some((s, f)) = stream.and_then(|s| Some((s, self.tails.get_mut(s.tail)?))) else {
            return Ok(Some(0)); // nothing waits for it any more
        };
        let before = f.tail.files_open();
        let filter = f.fanout.filter(s.group);
        let step = job.seek.step(&mut f.tail, &mut self.buf, filter);
        self.recount(s.tail, before);
        match step? {
            Step::Found(offset) => Ok(Some(offset)),
            Step::Read(n) => {
                self.spend(n);
                Ok(None)
            }
        }
    }

    fn seek_found(&mut self, job: &SeekJob, offset: u64, conns: &mut Slab<Conn>) {
        let Some(conn) = conns.get_mut(job.conn) else {
            return;
        };
        if conn.generation != job.generation {
            return;
        }
        match conn.stream_mut() {
            Some(s) if s.seeking => {
                s.seeking = false;
                s.offset = offset;
            }
            _ => return,
        }
        self.enqueue(job.conn, conns);
    }

    /// One piece of each waiting line count; a tail counted to its end
    /// sends `end` to the streams that have all of it.
    fn run_counts(&mut self, conns: &mut Slab<Conn>, m: &mut Metrics) {
        for i in 0..self.counts.len() {
            if i > 0 && self.turn_left == 0 {
                break;
            }
            let Some((key, generation)) = self.counts.pop_front() else {
                break;
            };
            let Some(f) = live_tail(&mut self.tails, key, generation) else {
                continue;
            };
            let before = f.tail.files_open();
            let counted = f.tail.count_some(PIECE, &mut self.buf);
            let done = f.tail.is_counted();
            self.recount(key, before);
            match counted {
                Ok(n) => self.spend(n),
                Err(e) => {
                    log::warn!("log {}: cannot count lines: {e}", self.tails[key].id);
                    self.tails[key].counting = false;
                    continue; // the next look or stream asks again
                }
            }
            if done {
                self.tails[key].counting = false;
                self.end_caught_up(key, conns, m);
            } else {
                self.counts.push_back((key, generation));
            }
        }
    }

    /// Queues tail `key`'s line count, unless it is queued already.
    fn count_lines(&mut self, key: usize) {
        let Some(f) = self.tails.get_mut(key) else {
            return;
        };
        if !f.counting {
            f.counting = true;
            self.counts.push_back((key, f.generation));
        }
    }

    /// Takes `bytes` (and a step's fixed cost) from this turn's budget.
    fn spend(&mut self, bytes: usize) {
        self.turn_left = self.turn_left.saturating_sub(bytes + STEP_COST);
        self.turn_read += bytes;
    }

    /// Looks at a tail's file and sends what changed: new lines, `reset`
    /// (truncation, or rotation once the old file is read to its end),
    /// `end` (finished or deleted). Returns the bytes read; a tail with
    /// more to read than one turn allows is queued again.
    fn look(
        &mut self,
        key: usize,
        now_ms: u64,
        check_path: bool,
        conns: &mut Slab<Conn>,
        m: &mut Metrics,
    ) -> usize {
        let Some(f) = self.tails.get_mut(key) else {
            return 0;
        };
        if f.ended {
            return 0;
        }
        if f.fanout.is_unfinished() {
            // Its end marks it again (see `run_resumes`).
            f.check_path |= check_path;
            f.look_deferred = true;
            return 0;
        }
        let before = f.tail.files_open();
        f.checked_ms = now_ms;
        let moved_to = f.moved_to.take();
        let change = f.tail.refresh(now_ms, check_path, moved_to.as_deref());
        self.recount(key, before);
        let mut read = 0;
        match change {
            Change::Unchanged => {}
            Change::Reset => self.control(key, sse::RESET, false, conns),
            Change::Missing { deleted_at_ms } => self.arm(key, deleted_at_ms),
            Change::Deleted => {
                // What was appended before the deletion still goes out (up
                // to a turn's budget: the file is gone, nobody can resume it).
                self.read_and_fan_out(key, TURN_BYTES, now_ms, conns, m);
                self.end_deleted(key, conns);
                return 0;
            }
        }
        read += self.read_and_fan_out(key, TURN_BYTES, now_ms, conns, m);
        let f = &mut self.tails[key];
        let unfinished = f.fanout.is_unfinished();
        if !unfinished && read < TURN_BYTES && f.tail.ready_to_switch() && f.tail.switch() {
            self.control(key, sse::RESET, false, conns);
            read += self.read_and_fan_out(key, TURN_BYTES, now_ms, conns, m);
        }
        let f = &self.tails[key];
        if f.fanout.is_unfinished() {
            // The rest of the fan-out first; its end looks again.
        } else if read >= TURN_BYTES {
            self.mark(key, false); // more next turn
        } else if f.tail.is_complete() {
            self.end_caught_up(key, conns, m);
        }
        self.follow_watch(key);
        self.limit_open_files(key);
        read
    }

    /// Reads new bytes (up to `budget`), frames them once and writes them to
    /// every stream at the tail; returns the bytes read. A fan-out that runs
    /// out of the turn's writes stops the reading, and goes on next turn.
    fn read_and_fan_out(
        &mut self,
        key: usize,
        budget: usize,
        now_ms: u64,
        conns: &mut Slab<Conn>,
        m: &mut Metrics,
    ) -> usize {
        self.spend_writes(key, |engine, writes| {
            let Engine {
                tails,
                block,
                buf,
                closed,
                ..
            } = engine;
            let f = &mut tails[key];
            let mut read = 0;
            while read < budget && !f.fanout.is_unfinished() {
                let before = f.tail.offset();
                m.tail_reads += u64::from(before < f.tail.size());
                match f.tail.read_new(buf, block) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        log::warn!("log {}: read failed: {e}", f.id);
                        break;
                    }
                }
                let consumed = (f.tail.offset() - before) as usize;
                read += consumed;
                f.last_change_ms = now_ms;
                f.last_fanout_ms = now_ms;
                let raw = &buf[..consumed];
                f.fanout.send(block, raw, conns, now_ms, m, closed, writes);
            }
            read
        })
    }

    /// Runs `send` (a fan-out or heartbeats of tail `key`) with the writes
    /// a new fan-out may use now ([`Engine::writes_for_new`]), takes what
    /// it wrote from the turn's, and queues the tail to go on next turn if
    /// it ran out.
    fn spend_writes<R>(
        &mut self,
        key: usize,
        send: impl FnOnce(&mut Engine, &mut usize) -> R,
    ) -> R {
        let allowed = self.writes_for_new();
        let mut writes = allowed;
        let out = send(self, &mut writes);
        self.writes_left -= allowed - writes;
        self.queue_resume(key);
        out
    }

    /// Sends a control frame to every stream of a tail (see
    /// [`Fanout::control`]) and queues them to flush it.
    fn control(&mut self, key: usize, frame: &[u8], close: bool, conns: &mut Slab<Conn>) {
        let mut touched = std::mem::take(&mut self.touched);
        self.tails[key]
            .fanout
            .control(frame, close, conns, &mut touched);
        for stream_key in touched.drain(..) {
            self.enqueue(stream_key, conns);
        }
        self.touched = touched;
    }

    /// The log's file has been gone for a second: its streams get `end`;
    /// the name is free for a new log of the same id.
    fn end_deleted(&mut self, key: usize, conns: &mut Slab<Conn>) {
        self.control(key, sse::END_DELETED, true, conns);
        let f = &mut self.tails[key];
        f.ended = true;
        let id = f.id.clone();
        if self.by_id.get(&id) == Some(&key) {
            self.by_id.remove(&id);
        }
    }

    /// A finished log: every stream already at its end gets `end` and
    /// closes, once the lines are counted.
    fn end_caught_up(&mut self, key: usize, conns: &mut Slab<Conn>, m: &mut Metrics) {
        let f = &self.tails[key];
        let waiting = f.fanout.caught_up(f.tail.offset(), conns);
        if waiting.is_empty() {
            return;
        }
        if !f.tail.is_counted() {
            return self.count_lines(key);
        }
        let frame = self.end_frame(key);
        for stream_key in waiting {
            let Some(conn) = conns.get_mut(stream_key) else {
                continue;
            };
            conn.out.extend_from_slice(&frame);
            conn.close_when_flushed();
            m.events_sent += 1;
            self.enqueue(stream_key, conns);
        }
    }

    /// `end` (finished) with the whole file's lines: call once counted.
    fn end_frame(&mut self, key: usize) -> Vec<u8> {
        let tail = &mut self.tails[key].tail;
        let before = tail.files_open();
        let lines = tail.line_count().unwrap_or(0);
        let size = tail.size();
        self.recount(key, before);
        sse::end_finished(lines, size)
    }

    /// Keeps the descriptors of watched logs under [`MAX_OPEN_FILES`]: the
    /// least recently changed one (other than `keep`) lets its go.
    fn limit_open_files(&mut self, keep: usize) {
        while self.files_open > MAX_OPEN_FILES {
            let Some((key, seq)) = self.recent.pop_front() else {
                return;
            };
            let Some(f) = self.tails.get(key) else {
                continue;
            };
            if f.used_seq != seq || f.polled || f.tail.files_open() == 0 {
                continue; // used again since, polled, or already closed
            }
            if key == keep {
                self.touch(key);
                continue;
            }
            self.close_file(key);
        }
    }

    /// Tail `key` may have opened or closed descriptors since it held
    /// `before`; it has just been used.
    fn recount(&mut self, key: usize, before: usize) {
        if let Some(f) = self.tails.get(key) {
            self.files_open = self.files_open + f.tail.files_open() - before;
            self.touch(key);
        }
    }

    /// Records a use of tail `key`'s descriptor (the eviction order). Stale
    /// entries are dropped when the list grows past a few times the tails.
    fn touch(&mut self, key: usize) {
        let Some(f) = self.tails.get_mut(key) else {
            return;
        };
        self.next_seq += 1;
        f.used_seq = self.next_seq;
        self.recent.push_back((key, self.next_seq));
        if self.recent.len() > 4 * (self.tails.len() + MAX_OPEN_FILES) {
            let tails = &self.tails;
            self.recent
                .retain(|&(k, seq)| tails.get(k).is_some_and(|f| f.used_seq == seq));
        }
    }

    fn close_file(&mut self, key: usize) {
        let tail = &mut self.tails[key].tail;
        let before = tail.files_open();
        tail.close_file();
        self.files_open = self.files_open + tail.files_open() - before;
    }

    /// Asks for a wake at `at_ms`, unless one at or before it is armed (it
    /// will re-check when it fires).
    fn arm(&mut self, key: usize, at_ms: u64) {
        let Some(f) = self.tails.get_mut(key) else {
            return;
        };
        if f.armed_at.is_some_and(|a| a <= at_ms) {
            return;
        }
        f.armed_at = Some(at_ms);
        self.wakes.push(Wake {
            tail: key,
            generation: f.generation,
            at_ms,
        });
    }

    /// When the wake for a heartbeat due at `due_ms` fires: on a grid of
    /// 1/32 heartbeat interval, so that the heartbeats of many quiet logs
    /// share one turn and go out as one burst of writes. Each process has
    /// its own phase on that grid: workers started together do not all
    /// write their heartbeats in the same instant.
    fn beat_wake(&self, due_ms: u64) -> u64 {
        let grid = (self.config.heartbeat_interval_ms / 32).max(1);
        let phase = self.beat_phase % grid;
        let after = due_ms.saturating_sub(phase);
        after
            .div_ceil(grid)
            .saturating_mul(grid)
            .saturating_add(phase)
    }

    /// The next wake a tail needs: its heartbeat, its poll, or the end of a
    /// deletion grace period.
    fn arm_next(&mut self, key: usize, now_ms: u64) {
        let Some(f) = self.tails.get(key) else {
            return;
        };
        if f.ended {
            // Only its streams' `end` is left to flush: stall checks close
            // the ones that never take it (and with them the descriptor).
            let at = f.stall_check_ms;
            return self.arm(key, at.max(now_ms));
        }
        let mut due = self.beat_wake(f.fanout.heartbeat_due());
        if f.polled {
            due = due.min(f.next_poll_ms);
        }
        if let Some(deleted_at) = f.tail.deleted_at_ms() {
            due = due.min(deleted_at);
        }
        if let Some(batch) = f.batch_due_ms {
            due = due.min(batch);
        }
        due = due.min(f.stall_check_ms);
        self.arm(key, due.max(now_ms));
    }

    /// A wake fired: poll a polled tail, end a deletion grace period, look
    /// at a tail held back for batching, send heartbeats and, for a watched
    /// tail, now and then check the file by `stat` ([`STAT_FLOOR_BEATS`])
    /// and let an idle descriptor go.
    pub fn timer(
        &mut self,
        key: usize,
        generation: u32,
        at_ms: u64,
        now_ms: u64,
        conns: &mut Slab<Conn>,
        m: &mut Metrics,
    ) {
        let Some(f) = self.tails.get_mut(key) else {
            return;
        };
        if f.generation != generation || f.armed_at != Some(at_ms) {
            return; // superseded by an earlier wake
        }
        f.armed_at = None;
        if f.ended {
            self.check_stalls(key, now_ms, conns, m);
            return self.arm_next(key, now_ms);
        }
        let heartbeat_due = now_ms >= f.fanout.heartbeat_due();
        // Looks for a deletion, a poll or the stat floor check the path too;
        // a batch's look only reads what the file's watch reported.
        let mut look = f.tail.deleted_at_ms().is_some_and(|t| now_ms >= t);
        let batch_due = f.batch_due_ms.is_some_and(|t| now_ms >= t);
        if batch_due {
            f.batch_due_ms = None;
            // Watch again before reading: nothing written after the read
            // can go unnoticed.
            self.watch_file(key);
        }
        let Some(f) = self.tails.get_mut(key) else {
            return;
        };
        if f.polled && now_ms >= f.next_poll_ms {
            f.next_poll_ms = now_ms + self.config.poll_interval_ms;
            m.tail_polls += 1;
            look = true;
        }
        let check_due =
            now_ms >= f.checked_ms + STAT_FLOOR_BEATS * self.config.heartbeat_interval_ms;
        if heartbeat_due && !f.polled && check_due {
            f.checked_ms = now_ms;
            look |= !f.tail.unchanged_on_disk();
        }
        if look || batch_due {
            self.look(key, now_ms, look, conns, m);
        }
        let Some(f) = self.tails.get_mut(key) else {
            return;
        };
        let stall_check_near = now_ms + self.config.heartbeat_interval_ms >= f.stall_check_ms;
        if now_ms >= f.stall_check_ms || (heartbeat_due && stall_check_near) {
            self.check_stalls(key, now_ms, conns, m);
        }
        if heartbeat_due && self.tails.contains(key) {
            self.send_heartbeats(key, now_ms, conns, m);
            let f = &self.tails[key];
            if !f.polled
                && now_ms.saturating_sub(f.last_change_ms) >= self.config.heartbeat_interval_ms
            {
                self.close_file(key);
            }
        }
        self.arm_next(key, now_ms);
    }

    /// The heartbeats due to tail `key`'s streams, within the turn's writes
    /// (the rest go on next turn).
    fn send_heartbeats(
        &mut self,
        key: usize,
        now_ms: u64,
        conns: &mut Slab<Conn>,
        m: &mut Metrics,
    ) {
        self.spend_writes(key, |engine, writes| {
            let f = &mut engine.tails[key];
            let offset = f.tail.offset();
            f.fanout
                .heartbeat(offset, conns, now_ms, m, &mut engine.closed, writes);
        });
    }

    /// Stall checks run about every quarter stall timeout: a stall is
    /// caught within about 1.5 timeouts of the last byte taken. A heartbeat
    /// wake less than a heartbeat interval before a check does it early,
    /// so while heartbeats run (the default 15 s beside 300 s) stall checks
    /// cost no wake of their own, and a tail's streams are looked at once
    /// per check, not once per heartbeat slice.
    fn stall_check_period(&self) -> u64 {
        (self.config.stall_timeout_ms / 4).max(1)
    }

    /// Closes the streams of tail `key` whose sockets stalled.
    fn check_stalls(&mut self, key: usize, now_ms: u64, conns: &mut Slab<Conn>, m: &mut Metrics) {
        let stall_ms = self.config.stall_timeout_ms;
        let period = self.stall_check_period();
        let f = &mut self.tails[key];
        let mut found = StallCheck::default();
        f.fanout.check_stalls(now_ms, stall_ms, conns, &mut found);
        f.stall_check_ms = now_ms + period;
        if !found.stalled.is_empty() {
            m.stall_timeouts += found.stalled.len() as u64;
            log::debug!(
                "{}: closing {} stalled stream(s)",
                f.id,
                found.stalled.len()
            );
            self.closed.append(&mut found.stalled);
        }
        for stream in found.waiting {
            self.enqueue(stream, conns);
        }
    }

    fn enqueue(&mut self, key: usize, conns: &mut Slab<Conn>) {
        let Some(conn) = conns.get_mut(key) else {
            return;
        };
        let generation = conn.generation;
        if let Some(s) = conn.stream_mut() {
            if !s.queued {
                s.queued = true;
                self.work.push_back((key, generation));
            }
        }
    }

    /// Streams queued for catch-up or control frames; each gets one turn,
    /// so a long catch-up cannot starve the rest of the reactor.
    fn run_streams(&mut self, conns: &mut Slab<Conn>, m: &mut Metrics) {
        for _ in 0..self.work.len() {
            if self.turn_left == 0 {
                break; // the rest stay queued for the next turn
            }
            let Some((key, generation)) = self.work.pop_front() else {
                break;
            };
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if conn.generation == generation && conn.stream().is_some() {
                self.spend(0);
                self.step(key, conns, m);
            }
        }
    }

    /// A stream's socket drained, or it just started: move it forward.
    pub fn step(&mut self, key: usize, conns: &mut Slab<Conn>, m: &mut Metrics) {
        let Some(conn) = conns.get_mut(key) else {
            return;
        };
        match self.advance(conn, m) {
            Advance::Blocked | Advance::CaughtUp => {}
            Advance::MoreWork => {
                let generation = conn.generation;
                if let Some(s) = conn.stream_mut() {
                    s.queued = true;
                }
                self.work.push_back((key, generation));
            }
            Advance::Close => self.closed.push(key),
        }
    }

    /// Moves one stream forward: flush what it has pending, then catch up
    /// from the file until it reaches the tail, its budget runs out or its
    /// socket is full. A stream at the end of a finished log gets `end`.
    pub fn advance(&mut self, conn: &mut Conn, m: &mut Metrics) -> Advance {
        if let Some(s) = conn.stream_mut() {
            s.queued = false;
        }
        match flush(conn, m) {
            Flow::Done => {}
            Flow::WouldBlock => return Advance::Blocked,
            Flow::Closed => return Advance::Close,
        }
        if conn.is_closing() {
            return Advance::Close;
        }
        let Some(stream) = conn.stream().copied() else {
            return Advance::Close;
        };
        if stream.seeking {
            return Advance::CaughtUp; // its scan queues it when done
        }
        let Some(f) = self.tails.get_mut(stream.tail) else {
            return Advance::Close;
        };
        let filter = f.fanout.filter(stream.group);
        let tail = &mut f.tail;
        let mut files_before = tail.files_open();
        let mut budget = CATCHUP_BUDGET.min(self.turn_left);
        let mut offset = stream.offset;
        while offset < tail.offset() {
            if budget == 0 {
                self.turn_left = self.turn_left.saturating_sub(STEP_COST);
                return Advance::MoreWork;
            }
            let len = (tail.offset() - offset).min(CHUNK as u64) as usize;
            m.catchup_reads += 1;
            let read = tail.read_at(offset, len, &mut self.buf);
            if tail.files_open() > files_before {
                // Reopened to catch up.
                self.files_open += tail.files_open() - files_before;
                files_before = tail.files_open();
            }
            let n = match read {
                Ok(n) if n > 0 => n,
                _ => return Advance::Blocked, // file shrank or went: the next look resets
            };
            self.own.clear(offset);
            let last = offset + n as u64 == tail.offset();
            match filter {
                None => self.own.frame(&self.buf[..n], last),
                Some(f) => self.own.frame_with(&self.buf[..n], last, |l| f.passes(l)),
            };
            if self.own.end_offset() == offset {
                return Advance::Blocked; // not a whole line yet
            }
            let flow = write_block(conn, &self.own, m);
            offset = conn.stream().map_or(offset, |s| s.offset);
            // `spend`, field by field: `tail` borrows the tails meanwhile.
            self.turn_left = self.turn_left.saturating_sub(n + STEP_COST);
            self.turn_read += n;
            match flow {
                Flow::Done => budget = budget.saturating_sub(n),
                Flow::WouldBlock => return Advance::Blocked,
                Flow::Closed => return Advance::Close,
            }
        }
        if f.tail.is_complete() {
            if !f.tail.is_counted() {
                self.count_lines(stream.tail);
                return Advance::CaughtUp; // `end` goes out with the count
            }
            let frame = self.end_frame(stream.tail);
            conn.out.extend_from_slice(&frame);
            conn.close_when_flushed();
            m.events_sent += 1;
            return match flush(conn, m) {
                Flow::WouldBlock => Advance::Blocked,
                _ => Advance::Close,
            };
        }
        Advance::CaughtUp
    }

    /// The directory's events read since the last call: the index of logs
    /// follows the directory through them too.
    pub fn take_dir_events(&mut self) -> Vec<DirEvent> {
        std::mem::take(&mut self.dir_events)
    }

    /// Log `id` was deleted on purpose (`DELETE`, retention): its streams
    /// get `end` (deleted) now, and a new file of that id starts afresh.
    pub fn delete_log(&mut self, id: &str, conns: &mut Slab<Conn>) {
        if let Some(&key) = self.by_id.get(id) {
            self.end_deleted(key, conns);
            let at = self.tails[key].stall_check_ms;
            self.arm(key, at);
        }
    }

    /// Every stream gets `shutdown` (the daemon is stopping).
    pub fn shutdown_all(&mut self, conns: &mut Slab<Conn>) {
        let keys: Vec<usize> = self.tails.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.control(key, sse::SHUTDOWN, true, conns);
        }
    }
}

/// Tail `key` if it is still the log it was when queued with `generation`
/// (a key freed and reused is another log).
fn live_tail(tails: &mut Slab<Followed>, key: usize, generation: u32) -> Option<&mut Followed> {
    tails.get_mut(key).filter(|f| f.generation == generation)
}
