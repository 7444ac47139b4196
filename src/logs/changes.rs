//! The journal of changes to the index of logs: what `GET /api/events`
//! sends (SPEC section 3), kept so that a client that lists and then
//! subscribes, or reconnects, misses nothing.
//!
//! Every change the index makes (a log `created`, `finished` or `deleted`)
//! gets the next number of a sequence that only grows, and is framed once as
//! an event whose `id` is `<epoch>-<seq>`: the epoch is a random number drawn
//! at start, so an id from another run of the daemon (or another worker,
//! which keeps its own index) is recognised as foreign instead of being
//! mistaken for a position in this journal. The last [`JOURNAL_LEN`] framed
//! changes are kept (each is a few hundred bytes: the journal holds at most
//! about 1.6 MB); a subscriber that names a change still in the journal gets
//! every change after it, and one that names anything else (too old, from
//! another epoch, from the future, or not an id at all) gets `event: reset`:
//! list again. `GET /api/logs` says where the list stands in the sequence
//! (`X-Events-Id`), so listing and then subscribing from that id leaves no
//! gap, and EventSource's `Last-Event-ID` makes a reconnect exact.
//!
//! The index records nothing while it is first built (a pass over a
//! directory of a million files would be a million `created` events that
//! no client needs): the build's end is itself a journal entry, a `reset`
//! (`{"reason": "indexed"}`), so a client that listed or subscribed before
//! it is told to list again, and one that lists after it misses nothing.
//!
//! Pure: no I/O. The server writes the frames to sockets.

use std::collections::VecDeque;
use std::ops::Range;

/// Changes kept for resumes.
pub const JOURNAL_LEN: usize = 4096;

/// What happened to a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The index learned of a new log (or of a new file under a known id).
    Created,
    /// A log turned read-only: its writer is done.
    Finished,
    /// Its file is gone (or was replaced: `deleted`, then `created`).
    Deleted,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Created => "created",
            Kind::Finished => "finished",
            Kind::Deleted => "deleted",
        }
    }
}

/// Why a subscriber must list again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetReason {
    /// The index finished its first pass: a list taken before may lack logs.
    Indexed,
    /// The id names a change the journal no longer holds.
    TooOld,
    /// The id is not one of this run of the daemon.
    Unknown,
}

impl ResetReason {
    fn name(self) -> &'static str {
        match self {
            ResetReason::Indexed => "indexed",
            ResetReason::TooOld => "too_old",
            ResetReason::Unknown => "unknown_id",
        }
    }
}

/// A subscriber's place in the journal: what the server keeps per
/// `GET /api/events` connection.
#[derive(Clone, Copy, Debug)]
pub struct Subscription {
    /// The last change handed to the connection (sent, or its rest queued).
    pub seq: u64,
    /// Its index in the server's list of subscribers.
    pub index: usize,
    /// Waiting in the server's queue of subscribers to move forward.
    pub queued: bool,
}

/// Where a new subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// After change `seq`: everything after it is in the journal.
    After(u64),
    /// The client must list again; live changes follow from the current one.
    Reset(ResetReason),
}

#[derive(Debug)]
pub struct Changes {
    epoch: u64,
    /// The last change recorded (0: none yet).
    last: u64,
    /// The framed events of the last changes, oldest first: the last one
    /// is change `last`.
    frames: VecDeque<Box<[u8]>>,
}

impl Changes {
    pub fn new(epoch: u64) -> Changes {
        Changes {
            epoch,
            last: 0,
            frames: VecDeque::new(),
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.last
    }

    /// The event id of change `seq`.
    pub fn id_of(&self, seq: u64) -> String {
        format!("{:016x}-{seq}", self.epoch)
    }

    /// The id of the last change: where a list taken now stands.
    pub fn current_id(&self) -> String {
        self.id_of(self.last)
    }

    /// Records a change of one log; `data` is its JSON object (one line).
    pub fn record(&mut self, kind: Kind, data: &str) {
        self.push(kind.name(), data);
    }

    /// Records a reset every subscriber must hear (the build's end).
    pub fn record_reset(&mut self, reason: ResetReason) {
        self.push("reset", &reset_data(reason));
    }

    fn push(&mut self, event: &str, data: &str) {
        self.last += 1;
        let frame = frame(&self.id_of(self.last), event, data);
        if self.frames.len() == JOURNAL_LEN {
            self.frames.pop_front();
        }
        self.frames.push_back(frame.into_boxed_slice());
    }

    /// Whether every change after `seq` is still in the journal.
    pub fn covers(&self, seq: u64) -> bool {
        let first = self.last + 1 - self.frames.len() as u64;
        seq <= self.last && seq + 1 >= first
    }

    /// Where a subscription that resumes from `id` (`Last-Event-ID` or
    /// `?since=`) starts; without an id, at the current change.
    pub fn start(&self, id: Option<&str>) -> Start {
        let Some(id) = id else {
            return Start::After(self.last);
        };
        match parse_id(id) {
            Some((epoch, seq)) if epoch == self.epoch && self.covers(seq) => Start::After(seq),
            Some((epoch, seq)) if epoch == self.epoch && seq < self.last => {
                Start::Reset(ResetReason::TooOld)
            }
            _ => Start::Reset(ResetReason::Unknown),
        }
    }

    /// Appends to `out` the frames of the changes after `seq`, until
    /// `max_bytes` are reached (at least one frame, if any follows).
    /// Nothing is appended if the journal no longer covers `seq`.
    pub fn frames_after(&self, seq: u64, max_bytes: usize, out: &mut Frames) {
        if !self.covers(seq) {
            return;
        }
        let first = self.last + 1 - self.frames.len() as u64;
        let skip = (seq + 1 - first) as usize;
        for (i, frame) in self.frames.iter().enumerate().skip(skip) {
            if !out.ends.is_empty() && out.bytes.len() + frame.len() > max_bytes {
                break;
            }
            out.bytes.extend_from_slice(frame);
            out.ends.push((out.bytes.len(), first + i as u64));
        }
    }

    /// The first event of a subscription that starts after change `seq`.
    pub fn ready_frame(&self, seq: u64) -> Vec<u8> {
        let id = self.id_of(seq);
        let mut data = String::new();
        crate::json::push_object(&mut data, &[("id", crate::json::Value::Str(&id))]);
        frame(&id, "ready", &data)
    }

    /// `reset` for one subscriber, carrying the current id: after it, the
    /// client lists again and the stream goes on from the current change.
    pub fn reset_frame(&self, reason: ResetReason) -> Vec<u8> {
        frame(&self.current_id(), "reset", &reset_data(reason))
    }
}

/// `id: <id>\nevent: <event>\ndata: <data>\n\n`; `data` has no line break
/// (it is JSON), so it is one `data:` field (WHATWG HTML, "Server-sent
/// events": every event carries data, or EventSource drops it).
fn frame(id: &str, event: &str, data: &str) -> Vec<u8> {
    format!("id: {id}\nevent: {event}\ndata: {data}\n\n").into_bytes()
}

fn reset_data(reason: ResetReason) -> String {
    crate::json::object(&[("reason", crate::json::Value::Str(reason.name()))])
}

/// `<epoch in hex>-<seq>`, or `None`.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (epoch, seq) = id.trim().split_once('-')?;
    if epoch.is_empty() || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((u64::from_str_radix(epoch, 16).ok()?, seq.parse().ok()?))
}

/// Consecutive framed changes to write, with where each one ends.
#[derive(Debug, Default)]
pub struct Frames {
    pub bytes: Vec<u8>,
    /// (position just past the frame in `bytes`, its change's seq).
    ends: Vec<(usize, u64)>,
    /// The change just before the first frame.
    base: u64,
}

impl Frames {
    pub fn clear(&mut self, base: u64) {
        self.bytes.clear();
        self.ends.clear();
        self.base = base;
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// After `n` bytes went out: the last change handed over (a frame cut
    /// in the middle counts, its rest is sent next) and that rest.
    pub fn written(&self, n: usize) -> (u64, Range<usize>) {
        let whole = self.ends.partition_point(|&(end, _)| end <= n);
        let start = whole.checked_sub(1).map_or(0, |i| self.ends[i].0);
        match self.ends.get(whole) {
            Some(&(end, seq)) if n > start => (seq, n..end),
            _ => (
                whole.checked_sub(1).map_or(self.base, |i| self.ends[i].1),
                n..n,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(n: u64) -> Changes {
        let mut c = Changes::new(0xabc);
        for i in 0..n {
            c.record(Kind::Created, &format!("{{\"n\": {i}}}"));
        }
        c
    }

    #[test]
    fn frames_carry_epoch_and_sequence() {
        let c = journal(2);
        let mut f = Frames::default();
        c.frames_after(0, usize::MAX, &mut f);
        assert_eq!(
            String::from_utf8_lossy(&f.bytes),
            "id: 0000000000000abc-1\nevent: created\ndata: {\"n\": 0}\n\n\
             id: 0000000000000abc-2\nevent: created\ndata: {\"n\": 1}\n\n"
        );
        assert_eq!(c.current_id(), "0000000000000abc-2");
    }

    #[test]
    fn resumes_within_the_journal_and_resets_outside() {
        let c = journal(JOURNAL_LEN as u64 + 10);
        let last = c.last_seq();
        assert_eq!(c.start(None), Start::After(last));
        assert_eq!(c.start(Some(&c.id_of(last))), Start::After(last));
        assert_eq!(c.start(Some(&c.id_of(11))), Start::After(11));
        assert_eq!(c.start(Some(&c.id_of(10))), Start::After(10));
        assert_eq!(
            c.start(Some(&c.id_of(9))),
            Start::Reset(ResetReason::TooOld)
        );
        assert_eq!(
            c.start(Some(&c.id_of(last + 1))),
            Start::Reset(ResetReason::Unknown),
            "from the future"
        );
        let foreign = format!("{:016x}-{last}", 0xabdu64);
        for bad in [&foreign[..], "", "12", "-3", "abc-", "abc-x", "zz-1", "42"] {
            assert_eq!(
                c.start(Some(bad)),
                Start::Reset(ResetReason::Unknown),
                "{bad}"
            );
        }
    }

    #[test]
    fn frames_after_respects_the_budget_and_the_journal() {
        let c = journal(5);
        let mut f = Frames::default();
        f.clear(2);
        c.frames_after(2, 1, &mut f);
        assert_eq!(f.len(), 1, "at least one frame");
        f.clear(2);
        c.frames_after(2, usize::MAX, &mut f);
        assert_eq!(f.len(), 3);
        assert_eq!(f.written(f.bytes.len()), (5, f.bytes.len()..f.bytes.len()));
        f.clear(5);
        c.frames_after(5, usize::MAX, &mut f);
        assert!(f.is_empty());
        let old = journal(JOURNAL_LEN as u64 + 2);
        f.clear(0);
        old.frames_after(0, usize::MAX, &mut f);
        assert!(f.is_empty(), "not covered: nothing");
    }

    #[test]
    fn partial_writes_map_to_changes() {
        let c = journal(3);
        let mut f = Frames::default();
        f.clear(0);
        c.frames_after(0, usize::MAX, &mut f);
        let first_end = f.bytes.len() / 3;
        assert_eq!(f.written(0), (0, 0..0));
        assert_eq!(f.written(5), (1, 5..first_end));
        assert_eq!(f.written(first_end), (1, first_end..first_end));
        assert_eq!(f.written(first_end + 1), (2, first_end + 1..2 * first_end));
    }

    #[test]
    fn control_frames_carry_ids_and_data() {
        let mut c = journal(1);
        c.record_reset(ResetReason::Indexed);
        let mut f = Frames::default();
        c.frames_after(1, usize::MAX, &mut f);
        assert_eq!(
            String::from_utf8_lossy(&f.bytes),
            "id: 0000000000000abc-2\nevent: reset\ndata: {\"reason\": \"indexed\"}\n\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&c.ready_frame(1)),
            "id: 0000000000000abc-1\nevent: ready\ndata: {\"id\": \"0000000000000abc-1\"}\n\n"
        );
        assert_eq!(
            String::from_utf8_lossy(&c.reset_frame(ResetReason::TooOld)),
            "id: 0000000000000abc-2\nevent: reset\ndata: {\"reason\": \"too_old\"}\n\n"
        );
    }
}
