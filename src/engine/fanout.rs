//! The subscribers of one tail, and the one place a framed block of lines is
//! written to them. A block is framed once per change and written straight
//! to every stream sitting exactly at its start with nothing pending; any
//! other stream (behind, or with a full socket) is left to catch up from the
//! file by itself. Backpressure is that byte offset, never a queue
//! (SSE-NOTES, "What users of SSE servers report most").
//!
//! Streams are grouped by filter (`?grep=`, `?exclude=`): the unfiltered
//! group gets the tail's own block; each filtered group frames the same
//! bytes once more, keeping only its lines, and shares that block among
//! its streams. So a line is matched once per distinct filter, not once per
//! stream; a group, and its compiled filter, lives while it has streams.
//!
//! Heartbeats are owed to a group a heartbeat interval after its last
//! lines. A group of up to `--heartbeat-burst` streams (16,384) gets them
//! all in one burst, like a fan-out; a larger one (where the file limit
//! allows that many sockets) in even slices spread over the interval
//! ([`Beat`]). Slices are kept large on purpose: measured on loopback with
//! a million streams, a heartbeat costs more the smaller its burst
//! (readers woken per write rather than per burst): 16.6 us in one burst
//! per worker, 18.3 us in 4 slices, 19.6 us in 8 (BENCHMARKS section 9).
//!
//! No turn writes to more than its budget of streams (the engine's
//! `TURN_WRITES`, counted down through `writes`): a fan-out or burst that
//! reaches it stops there ([`Unfinished`]) and goes on in the next turns,
//! which follow at once, so a line to 19,000 streams never holds a
//! `/healthz` or another log's line for the ~100 ms its writes take.
//! Streams not reached yet simply stay at their offset; the tail reads
//! nothing new until every stream has been offered the block.

use std::rc::Rc;

use slab::Slab;

use crate::conn::{Conn, Flow, Role, Stall};
use crate::filter::{Filter, FilterSpec};
use crate::metrics::Metrics;
use crate::sse::{self, Block};

/// A connection's place in a log: what the engine keeps per stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamState {
    /// Key of the tail it follows.
    pub tail: usize,
    /// File offset this stream has sent (or is sending, in `out`) up to.
    pub offset: u64,
    /// Its filter group in the tail's [`Fanout`], and its index there.
    pub group: usize,
    pub index: usize,
    /// Waiting in the engine's catch-up queue.
    pub queued: bool,
    /// Waiting for the scan that finds where it starts (`offset` means
    /// nothing yet): no fan-out, heartbeat or `end` reaches it.
    pub seeking: bool,
}

/// The streams of one tail with the same filter (or none).
#[derive(Debug)]
struct Group {
    filter: Option<Rc<Filter>>,
    streams: Vec<usize>,
    beat: Beat,
    /// While a block is [`Unfinished`]: `streams[..offered]` have been
    /// offered it, the rest wait for the next turn.
    offered: usize,
}

/// A fan-out that ran out of the turn's writes, to go on next turn.
#[derive(Debug)]
enum Unfinished {
    /// A block of lines (and the file bytes it framed, for the filtered
    /// groups): each group's streams from its `offered` on.
    Lines { block: Block, raw: Vec<u8> },
    /// Heartbeats to streams `next..end` of group `group` (its slice).
    Beats {
        group: usize,
        next: usize,
        end: usize,
    },
}

/// Where a group's heartbeats are: the next slice is due at `due_ms` and
/// starts at stream `cursor`. Lines sent to the group start it over, a
/// whole interval later. In a long silence each stream gets one heartbeat
/// per interval, in its slice's place.
#[derive(Debug, Clone, Copy)]
struct Beat {
    due_ms: u64,
    cursor: usize,
}

impl Beat {
    fn after_lines(now_ms: u64, every_ms: u64) -> Beat {
        Beat {
            due_ms: now_ms + every_ms,
            cursor: 0,
        }
    }

    /// The streams of the slice due now, out of `n`; moves to the next.
    fn take_slice(
        &mut self,
        n: usize,
        burst: usize,
        now_ms: u64,
        every_ms: u64,
    ) -> std::ops::Range<usize> {
        let slices = n.div_ceil(burst.max(1)).max(1);
        let start = if self.cursor < n { self.cursor } else { 0 };
        let end = (start + n.div_ceil(slices)).min(n);
        self.cursor = if end >= n { 0 } else { end };
        let period = (every_ms / slices as u64).max(1);
        self.due_ms = (self.due_ms + period).max(now_ms + 1);
        start..end
    }
}

/// The streams following one tail.
#[derive(Debug)]
pub struct Fanout {
    groups: Slab<Group>,
    streams: usize,
    /// A filtered group's block, framed afresh for each group.
    filtered: Block,
    /// `--heartbeat-interval-ms`.
    every_ms: u64,
    /// `--heartbeat-burst`.
    burst: usize,
    unfinished: Option<Unfinished>,
}

impl Fanout {
    pub fn new(heartbeat_every_ms: u64, heartbeat_burst: usize) -> Fanout {
        Fanout {
            groups: Slab::new(),
            streams: 0,
            filtered: Block::default(),
            every_ms: heartbeat_every_ms.max(1),
            burst: heartbeat_burst.max(1),
            unfinished: None,
        }
    }

    /// A fan-out or heartbeat burst is waiting for the next turn's writes
    /// ([`Fanout::resume`]); meanwhile the tail reads nothing new.
    pub fn is_unfinished(&self) -> bool {
        self.unfinished.is_some()
    }

    /// The unfinished work is a block of lines (not heartbeats): while it
    /// goes on, its tail leaves new bytes unread.
    pub fn is_sending_lines(&self) -> bool {
        matches!(self.unfinished, Some(Unfinished::Lines { .. }))
    }

    pub fn len(&self) -> usize {
        self.streams
    }

    pub fn is_empty(&self) -> bool {
        self.streams == 0
    }

    /// Filter groups in use.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The compiled filter already in use for `spec`, if any group has it.
    pub fn filter_for(&self, spec: &FilterSpec) -> Option<Rc<Filter>> {
        self.groups
            .iter()
            .filter_map(|(_, g)| g.filter.as_ref())
            .find(|f| f.spec() == spec)
            .cloned()
    }

    /// The filter of group `group` (`None`: every line).
    pub fn filter(&self, group: usize) -> Option<&Filter> {
        self.groups.get(group)?.filter.as_deref()
    }

    /// When the next heartbeat slice is due, of any group (none while a
    /// fan-out is unfinished: it goes on by itself, and lines reset beats).
    pub fn heartbeat_due(&self) -> u64 {
        if self.unfinished.is_some() {
            return u64::MAX;
        }
        self.groups
            .iter()
            .map(|(_, g)| g.beat.due_ms)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Adds connection `key` with `filter`; returns its `(group, index)`
    /// (kept in its [`StreamState`]).
    pub fn add(&mut self, key: usize, filter: Option<Rc<Filter>>, now_ms: u64) -> (usize, usize) {
        let spec = filter.as_ref().map(|f| f.spec());
        let found = self
            .groups
            .iter()
            .find(|(_, g)| g.filter.as_ref().map(|f| f.spec()) == spec)
            .map(|(k, _)| k);
        let group = found.unwrap_or_else(|| {
            self.groups.insert(Group {
                filter,
                streams: Vec::new(),
                beat: Beat::after_lines(now_ms, self.every_ms),
                offered: 0,
            })
        });
        let streams = &mut self.groups[group].streams;
        streams.push(key);
        self.streams += 1;
        (group, streams.len() - 1)
    }

    /// Removes the stream at `index` of `group`; the streams moved get
    /// their new index. An empty group goes, with its filter.
    pub fn remove(&mut self, group: usize, index: usize, conns: &mut Slab<Conn>) {
        let lines_unfinished = self.is_sending_lines();
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if index >= g.streams.len() {
            return;
        }
        let offered = if lines_unfinished {
            &mut g.offered
        } else {
            &mut 0
        };
        for (moved, at) in remove_keeping_order(&mut g.streams, offered, index) {
            if let Some(s) = conns.get_mut(moved).and_then(Conn::stream_mut) {
                s.index = at;
            }
        }
        self.streams -= 1;
        if g.streams.is_empty() {
            self.groups.remove(group);
        }
    }

    /// Every stream, group by group.
    fn all(&self) -> impl Iterator<Item = usize> + '_ {
        self.groups
            .iter()
            .flat_map(|(_, g)| g.streams.iter().copied())
    }

    /// Writes `block` to every unfiltered stream at its start, and each
    /// filtered group's lines of it (framed from `raw`, the file bytes the
    /// block consumed) to that group's streams; peers found gone are
    /// pushed to `closed`. Past `writes` it stops, to go on next turn
    /// ([`Fanout::resume`]). Replaces unfinished heartbeats: lines do for them.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        block: &Block,
        raw: &[u8],
        conns: &mut Slab<Conn>,
        now_ms: u64,
        m: &mut Metrics,
        closed: &mut Vec<usize>,
        writes: &mut usize,
    ) {
        for (_, g) in self.groups.iter_mut() {
            g.offered = 0;
        }
        self.unfinished = None;
        if !self.offer_lines(block, raw, conns, now_ms, m, closed, writes) {
            self.unfinished = Some(Unfinished::Lines {
                block: block.clone(),
                raw: raw.to_vec(),
            });
        }
    }

    /// Goes on with the unfinished fan-out or heartbeats, within `writes`
    /// (`offset`: the tail's). Finished when [`Fanout::is_unfinished`] says no.
    pub fn resume(
        &mut self,
        offset: u64,
        conns: &mut Slab<Conn>,
        now_ms: u64,
        m: &mut Metrics,
        closed: &mut Vec<usize>,
        writes: &mut usize,
    ) {
        match self.unfinished.take() {
            Some(Unfinished::Lines { block, raw }) => {
                let done = self.offer_lines(&block, &raw, conns, now_ms, m, closed, writes);
                if !done {
                    self.unfinished = Some(Unfinished::Lines { block, raw });
                }
            }
            beats @ Some(Unfinished::Beats { .. }) => {
                self.unfinished = beats;
                self.heartbeat(offset, conns, now_ms, m, closed, writes);
            }
            None => {}
        }
    }

    /// Offers `block` to each group's streams from its `offered` on;
    /// `false` when `writes` ran out first.
    #[allow(clippy::too_many_arguments)]
    fn offer_lines(
        &mut self,
        block: &Block,
        raw: &[u8],
        conns: &mut Slab<Conn>,
        now_ms: u64,
        m: &mut Metrics,
        closed: &mut Vec<usize>,
        writes: &mut usize,
    ) -> bool {
        let Fanout {
            groups,
            filtered,
            every_ms,
            ..
        } = self;
        for (_, g) in groups.iter_mut() {
            if g.offered >= g.streams.len() {
                continue;
            }
            let block = match &g.filter {
                None => block,
                Some(f) => {
                    filtered.clear(block.base);
                    filtered.frame_consumed(raw, |line| f.passes(line));
                    &*filtered
                }
            };
            if g.offered == 0 && !block.is_empty() {
                g.beat = Beat::after_lines(now_ms, *every_ms);
            }
            while let Some(&key) = g.streams.get(g.offered) {
                let Some(conn) = conns.get_mut(key) else {
                    g.offered += 1;
                    continue;
                };
                if is_at_block(conn, block) {
                    if *writes == 0 {
                        return false;
                    }
                    *writes -= 1;
                    if write_block(conn, block, m) == Flow::Closed {
                        closed.push(key);
                    }
                }
                g.offered += 1;
            }
        }
        true
    }

    /// Sends `frame` to every stream after whatever it has pending. With
    /// `close`, each stream ends after it; otherwise (a `reset`) each starts
    /// again at offset 0. Streams that need a flush are pushed to `queue`.
    /// An unfinished fan-out is dropped: its block was of the old content.
    pub fn control(
        &mut self,
        frame: &[u8],
        close: bool,
        conns: &mut Slab<Conn>,
        queue: &mut Vec<usize>,
    ) {
        self.unfinished = None;
        for key in self.all() {
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if conn.is_closing() {
                continue;
            }
            conn.out.extend_from_slice(frame);
            if close {
                conn.close_when_flushed();
            }
            if let Role::Stream(s) = &mut conn.role {
                // After a reset the new content starts at 0, scan or not.
                s.offset = 0;
                s.seeking = false;
            }
            queue.push(key);
        }
    }

    /// Streams (not already ending) that have everything up to `offset`.
    pub fn caught_up(&self, offset: u64, conns: &Slab<Conn>) -> Vec<usize> {
        self.all()
            .filter(|&k| {
                conns.get(k).is_some_and(|c| {
                    !c.is_closing() && c.stream().is_some_and(|s| !s.seeking && s.offset >= offset)
                })
            })
            .collect()
    }

    /// Stall checks (`--stall-timeout-ms`): a stream whose socket has been
    /// full since a check `stall_ms` ago, with no byte taken since, is
    /// pushed to `stalled`; one whose socket is full is pushed to `waiting`
    /// (a step tries to write: no writable edge may come to ask for one).
    pub fn check_stalls(
        &self,
        now_ms: u64,
        stall_ms: u64,
        conns: &mut Slab<Conn>,
        found: &mut StallCheck,
    ) {
        for key in self.all() {
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            match conn.check_stall(now_ms, stall_ms) {
                Stall::Moving => {}
                Stall::Waiting => found.waiting.push(key),
                Stall::Stalled => found.stalled.push(key),
            }
        }
    }

    /// A `: keepalive` comment to each stream of the slices due (see
    /// [`Beat`]) that is at the tail's `offset`, idle and writable (the
    /// others are busy sending lines anyway); past `writes` the slice
    /// stops, to go on next turn. Nothing while lines are unfinished.
    pub fn heartbeat(
        &mut self,
        offset: u64,
        conns: &mut Slab<Conn>,
        now_ms: u64,
        m: &mut Metrics,
        closed: &mut Vec<usize>,
        writes: &mut usize,
    ) {
        loop {
            match self.unfinished.take() {
                Some(Unfinished::Beats { group, next, end }) => {
                    let streams = self.groups.get(group).map_or(&[][..], |g| &g.streams);
                    let end = end.min(streams.len());
                    let slice = streams.get(next..end).unwrap_or_default();
                    let done = heartbeat_streams(slice, offset, conns, m, closed, writes);
                    if done < slice.len() {
                        let next = next + done;
                        self.unfinished = Some(Unfinished::Beats { group, next, end });
                        return;
                    }
                }
                lines @ Some(Unfinished::Lines { .. }) => {
                    self.unfinished = lines;
                    return;
                }
                None => {}
            }
            let due = self
                .groups
                .iter_mut()
                .find(|(_, g)| now_ms >= g.beat.due_ms);
            let Some((group, g)) = due else {
                return;
            };
            let n = g.streams.len();
            let slice = g.beat.take_slice(n, self.burst, now_ms, self.every_ms);
            self.unfinished = Some(Unfinished::Beats {
                group,
                next: slice.start,
                end: slice.end,
            });
        }
    }
}

/// Heartbeats to `streams`, within `writes`: how many streams were done.
fn heartbeat_streams(
    streams: &[usize],
    offset: u64,
    conns: &mut Slab<Conn>,
    m: &mut Metrics,
    closed: &mut Vec<usize>,
    writes: &mut usize,
) -> usize {
    for (done, &key) in streams.iter().enumerate() {
        let Some(conn) = conns.get_mut(key) else {
            continue;
        };
        let at_tail = conn
            .stream()
            .is_some_and(|s| !s.seeking && s.offset == offset);
        if !at_tail || conn.has_output() || !conn.writable || conn.is_closing() {
            continue;
        }
        if *writes == 0 {
            return done;
        }
        *writes -= 1;
        let (flow, n) = conn.write_direct(sse::KEEPALIVE);
        m.bytes_sent += n as u64;
        match flow {
            Flow::Done => {}
            Flow::WouldBlock => conn.out.extend_from_slice(&sse::KEEPALIVE[n..]),
            Flow::Closed => closed.push(key),
        }
    }
    streams.len()
}

/// Removes `streams[index]` by a swap with the last, as a `Vec` does,
/// except that while a block is unfinished the streams not yet offered it
/// (from `offered` on) stay there: a removal before `offered` first swaps
/// the last offered stream into the gap. Returns the streams moved, with
/// their new indices.
fn remove_keeping_order(
    streams: &mut Vec<usize>,
    offered: &mut usize,
    mut index: usize,
) -> Vec<(usize, usize)> {
    let mut moved = Vec::new();
    if index < *offered {
        *offered -= 1;
        streams.swap(index, *offered);
        if index != *offered {
            moved.push((streams[index], index));
        }
        index = *offered;
    }
    streams.swap_remove(index);
    if let Some(&key) = streams.get(index) {
        moved.push((key, index));
    }
    moved
}

/// What stall checks found: streams to close, and streams to move on.
#[derive(Debug, Default)]
pub struct StallCheck {
    pub stalled: Vec<usize>,
    pub waiting: Vec<usize>,
}

/// The stream sits exactly at `block`'s start with nothing pending and
/// room in its socket: a fan-out writes to it.
fn is_at_block(conn: &Conn, block: &Block) -> bool {
    let ready = conn.writable && !conn.has_output() && !conn.is_closing();
    conn.stream()
        .is_some_and(|s| ready && !s.seeking && s.offset == block.base)
}

/// Writes `block` to a stream that sits exactly at its start with nothing
/// pending; any other stream is left to catch up by itself. A cut event's
/// rest is kept, and the stream's offset moves past it.
pub fn write_block(conn: &mut Conn, block: &Block, m: &mut Metrics) -> Flow {
    if !is_at_block(conn, block) {
        return Flow::Done;
    }
    let (flow, n) = conn.write_direct(&block.bytes);
    m.bytes_sent += n as u64;
    let written = block.written(n);
    m.events_sent += block.events.partition_point(|e| e.pos <= n) as u64;
    if flow == Flow::WouldBlock {
        conn.out.extend_from_slice(&block.bytes[written.rest]);
    }
    if let Some(s) = conn.stream_mut() {
        s.offset = written.offset;
    }
    flow
}

/// Writes what the connection has pending.
pub fn flush(conn: &mut Conn, m: &mut Metrics) -> Flow {
    if !conn.has_output() {
        return Flow::Done;
    }
    let (flow, n) = conn.flush();
    m.bytes_sent += n as u64;
    flow
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--heartbeat-burst` in these tests.
    const BURST: usize = 2048;

    /// Slices of a silent group: `(start, end, due after)` for `rounds`
    /// slices, the first due at 1,000.
    fn slices(n: usize, every: u64, rounds: usize) -> Vec<(usize, usize, u64)> {
        let mut beat = Beat::after_lines(0, 1_000);
        let mut out = Vec::new();
        for _ in 0..rounds {
            let now = beat.due_ms;
            let r = beat.take_slice(n, BURST, now, every);
            out.push((r.start, r.end, beat.due_ms));
        }
        out
    }

    #[test]
    fn a_small_group_beats_whole_once_per_interval() {
        assert_eq!(
            slices(100, 1_000, 3),
            vec![(0, 100, 2_000), (0, 100, 3_000), (0, 100, 4_000)]
        );
    }

    #[test]
    fn a_large_group_beats_in_even_slices_each_stream_once_per_interval() {
        // 5,000 streams: 3 slices of at most 1,667, a third of the interval apart.
        assert_eq!(
            slices(5_000, 3_000, 4),
            vec![
                (0, 1_667, 2_000),
                (1_667, 3_334, 3_000),
                (3_334, 5_000, 4_000),
                (0, 1_667, 5_000)
            ]
        );
        // A full process's 19,900 streams: 10 slices of at most 1,990.
        let s = slices(19_900, 15_000, 11);
        assert_eq!(s[0], (0, 1_990, 2_500));
        assert_eq!(s[9], (17_910, 19_900, 16_000));
        assert_eq!(s[10], (0, 1_990, 17_500));
    }

    #[test]
    fn a_group_that_shrinks_mid_round_starts_over() {
        let mut beat = Beat::after_lines(0, 1_000);
        let first = beat.take_slice(5_000, BURST, 1_000, 3_000);
        assert_eq!(first, 0..1_667);
        assert_eq!(beat.take_slice(500, BURST, 2_000, 3_000), 0..500);
        assert_eq!(beat.due_ms, 5_000);
    }

    /// Removes `key` from `streams` as [`Fanout::remove`] would; checks that
    /// the streams not yet offered are exactly those they were, minus it.
    fn remove_checked(streams: &mut Vec<usize>, offered: &mut usize, key: usize) {
        let before: Vec<usize> = streams[*offered..]
            .iter()
            .copied()
            .filter(|&k| k != key)
            .collect();
        let index = streams.iter().position(|&k| k == key).unwrap();
        let moved = remove_keeping_order(streams, offered, index);
        for (k, at) in moved {
            assert_eq!(streams[at], k);
        }
        let mut after = streams[*offered..].to_vec();
        let mut before = before;
        after.sort_unstable();
        before.sort_unstable();
        assert_eq!(after, before, "streams not yet offered changed");
    }

    #[test]
    fn removing_streams_mid_fan_out_keeps_the_ones_not_yet_offered() {
        // 10 streams, the first 6 offered the block.
        let mut streams: Vec<usize> = (0..10).collect();
        let mut offered = 6;
        remove_checked(&mut streams, &mut offered, 2); // an offered one
        assert_eq!(offered, 5);
        remove_checked(&mut streams, &mut offered, 8); // one not yet offered
        assert_eq!(offered, 5);
        remove_checked(&mut streams, &mut offered, 5); // the last offered one
        assert_eq!(offered, 4);
        remove_checked(&mut streams, &mut offered, 9); // the last one
        for key in [0, 1, 3, 4, 6, 7] {
            remove_checked(&mut streams, &mut offered, key);
        }
        assert!(streams.is_empty());
        assert_eq!(offered, 0);
    }

    #[test]
    fn removing_with_nothing_unfinished_is_a_swap_remove() {
        let mut streams = vec![10, 11, 12, 13];
        let moved = remove_keeping_order(&mut streams, &mut 0, 1);
        assert_eq!(streams, vec![10, 13, 12]);
        assert_eq!(moved, vec![(13, 1)]);
    }
}
