//! Server-Sent Events framing, without I/O. A block of file bytes becomes a
//! block of events, framed once and then written to every stream at that
//! offset. Rules from the WHATWG HTML standard, section "Server-sent events":
//! a CR, LF or CRLF ends a line on the client, so a bare CR inside a log line
//! must become a second `data:` field (it would split the line anyway); an
//! event is dispatched only when it has data, so every control event carries
//! a `data:` line; an event not ended by a blank line is discarded at close,
//! so every frame ends in `\n\n`.

use std::ops::Range;

/// A line longer than this without a `\n` is sent in pieces of at most this
/// size (cut between UTF-8 characters), so a runaway writer cannot make the
/// daemon read, or a slow stream hold, an unbounded line.
pub const MAX_LINE: usize = 256 * 1024;

/// A comment line that keeps proxies and browsers from cutting an idle stream.
pub const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// The file was truncated or replaced: the client starts again at offset 0.
/// It carries `id: 0` so a reconnect right after it resumes from the new start.
pub const RESET: &[u8] = b"id: 0\nevent: reset\ndata: {\"offset\": 0}\n\n";

/// The daemon is stopping; clients reconnect elsewhere with `Last-Event-ID`.
pub const SHUTDOWN: &[u8] = b"event: shutdown\ndata: {\"reason\": \"shutdown\"}\n\n";

/// The log's file has been gone for a second.
pub const END_DELETED: &[u8] = b"event: end\ndata: {\"reason\": \"deleted\"}\n\n";

/// The log is finished and the client has every line: `lines` and `bytes`
/// describe the whole file.
pub fn end_finished(lines: u64, bytes: u64) -> Vec<u8> {
    format!("event: end\ndata: {{\"reason\": \"finished\", \"lines\": {lines}, \"bytes\": {bytes}}}\n\n").into_bytes()
}

/// Where one framed event ends, in the block and in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventEnd {
    /// Position just past the event's `\n\n` in [`Block::bytes`].
    pub pos: usize,
    /// File offset just past the line (the event's id).
    pub offset: u64,
}

/// Consecutive lines of one file, framed as events (of a filtered stream:
/// only the lines that pass; the others are consumed without an event).
#[derive(Debug, Default, Clone)]
pub struct Block {
    pub bytes: Vec<u8>,
    pub events: Vec<EventEnd>,
    /// File offset where the block starts.
    pub base: u64,
    /// File offset just past the last line consumed (framed or filtered out).
    end: u64,
}

/// What a partial write of a block leaves a stream with.
#[derive(Debug, PartialEq, Eq)]
pub struct Written {
    /// The file offset the stream has now reached (including the event it is
    /// in the middle of sending).
    pub offset: u64,
    /// The unsent rest of a partly written event, to send before anything else.
    pub rest: Range<usize>,
}

impl Block {
    pub fn clear(&mut self, base: u64) {
        self.bytes.clear();
        self.events.clear();
        self.base = base;
        self.end = base;
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// File offset just past the last line consumed.
    pub fn end_offset(&self) -> u64 {
        self.end
    }

    /// Frames every complete line of `chunk`, which starts at file offset
    /// `self.end_offset()`, and returns how many bytes of `chunk` were used.
    /// A trailing line without `\n` is held back, unless `finished` (the file
    /// will never grow: send it as it is) or it is [`MAX_LINE`] long.
    pub fn frame(&mut self, chunk: &[u8], finished: bool) -> usize {
        self.frame_with(chunk, finished, |_| true)
    }

    /// [`Block::frame`], but only lines (or pieces of over-long lines) that
    /// `keep` accepts become events; the rest are consumed all the same,
    /// so a filtered stream's offset moves exactly like an unfiltered one.
    pub fn frame_with(
        &mut self,
        chunk: &[u8],
        finished: bool,
        keep: impl Fn(&[u8]) -> bool,
    ) -> usize {
        let mut used = 0;
        while let Some(nl) = chunk[used..].iter().position(|&b| b == b'\n') {
            self.push_line(&chunk[used..used + nl], nl + 1, &keep);
            used += nl + 1;
        }
        let rest = chunk.len() - used;
        if rest > 0 && (finished || rest >= MAX_LINE) {
            let take = if rest >= MAX_LINE {
                char_boundary(&chunk[used..used + MAX_LINE], MAX_LINE)
            } else {
                rest
            };
            self.push_line(&chunk[used..used + take], take, &keep);
            used += take;
        }
        used
    }

    /// Frames `consumed`, bytes that another block of the same file already
    /// consumed from this block's base, with the same lines and the same
    /// pieces, keeping only the lines `keep` takes: every complete line,
    /// and the rest (a final line, or a piece of an over-long one) as one.
    pub fn frame_consumed(&mut self, consumed: &[u8], keep: impl Fn(&[u8]) -> bool) {
        let mut used = 0;
        while let Some(nl) = consumed[used..].iter().position(|&b| b == b'\n') {
            self.push_line(&consumed[used..used + nl], nl + 1, &keep);
            used += nl + 1;
        }
        if used < consumed.len() {
            self.push_line(&consumed[used..], consumed.len() - used, &keep);
        }
    }

    /// Appends one event for `line` (without its `\n`) if `keep` takes it;
    /// `consumed` is how many file bytes the line took, including its `\n`.
    fn push_line(&mut self, line: &[u8], consumed: usize, keep: &impl Fn(&[u8]) -> bool) {
        let offset = self.end + consumed as u64;
        self.end = offset;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !keep(line) {
            return;
        }
        push_event(&mut self.bytes, offset, line);
        self.events.push(EventEnd {
            pos: self.bytes.len(),
            offset,
        });
    }

    /// After `n` bytes of the block went out: the offset reached and the
    /// unsent rest of the event that was cut.
    pub fn written(&self, n: usize) -> Written {
        if n >= self.bytes.len() {
            // All of it: past any lines filtered out at its end too.
            return Written {
                offset: self.end,
                rest: n..n,
            };
        }
        let idx = self.events.partition_point(|e| e.pos <= n);
        let start = if idx == 0 {
            0
        } else {
            self.events[idx - 1].pos
        };
        match self.events.get(idx) {
            Some(cut) if n > start => Written {
                offset: cut.offset,
                rest: n..cut.pos,
            },
            _ => Written {
                offset: if idx == 0 {
                    self.base
                } else {
                    self.events[idx - 1].offset
                },
                rest: n..n,
            },
        }
    }

    /// The bytes of the events from file offset `from` on (a stream that is
    /// inside this block because it resumed there); `None` if `from` is not
    /// an event boundary of this block.
    pub fn from_offset(&self, from: u64) -> Option<&[u8]> {
        if from == self.base {
            return Some(&self.bytes);
        }
        let idx = self.events.binary_search_by_key(&from, |e| e.offset).ok()?;
        Some(&self.bytes[self.events[idx].pos..])
    }
}

/// Where to cut an overlong line at or just below `at` so that no UTF-8
/// character is split: before a continuation byte at `at`, or before an
/// incomplete character at the end of `bytes` (backing off at most 3
/// bytes; invalid UTF-8 is cut where it is). Deterministic in the bytes, so
/// a resumed stream can tell where the pieces of a line were cut.
pub fn char_boundary(bytes: &[u8], at: usize) -> usize {
    let floor = at.saturating_sub(3).max(1);
    if at < bytes.len() {
        let cut = (floor..=at).rev().find(|&i| bytes[i] & 0xC0 != 0x80);
        return cut.unwrap_or(at);
    }
    let Some(lead) = (floor.saturating_sub(1)..at)
        .rev()
        .find(|&i| bytes[i] & 0xC0 != 0x80)
    else {
        return at;
    };
    let need = match bytes[lead] {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    };
    if lead > 0 && lead + need > at {
        lead
    } else {
        at
    }
}

/// `id: <offset>\n` + one `data:` field per CR-separated piece + `\n`.
/// Invalid UTF-8 becomes U+FFFD: the stream is UTF-8 by definition.
pub fn push_event(out: &mut Vec<u8>, offset: u64, line: &[u8]) {
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(offset.to_string().as_bytes());
    out.push(b'\n');
    let text = String::from_utf8_lossy(line);
    for piece in text.split('\r') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(piece.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(chunk: &[u8], finished: bool) -> (String, usize) {
        let mut b = Block::default();
        let used = b.frame(chunk, finished);
        (String::from_utf8(b.bytes).expect("utf8"), used)
    }

    #[test]
    fn frames_lines_with_offsets_as_ids() {
        let (text, used) = framed(b"a\nbb\r\nc\rd\n\xff\xfeok\npartial", false);
        assert_eq!(
            text,
            "id: 2\ndata: a\n\nid: 6\ndata: bb\n\nid: 10\ndata: c\ndata: d\n\nid: 15\ndata: \u{FFFD}\u{FFFD}ok\n\n"
        );
        assert_eq!(used, 15);
    }

    #[test]
    fn finished_sends_the_last_partial_line() {
        let (text, used) = framed(b"a\nlast", true);
        assert_eq!(text, "id: 2\ndata: a\n\nid: 6\ndata: last\n\n");
        assert_eq!(used, 6);
    }

    #[test]
    fn empty_lines_are_events_too() {
        assert_eq!(framed(b"\n", false).0, "id: 1\ndata: \n\n");
    }

    #[test]
    fn overlong_lines_are_cut() {
        let long = vec![b'x'; MAX_LINE + 10];
        let mut b = Block::default();
        assert_eq!(b.frame(&long, false), MAX_LINE);
        assert_eq!(b.end_offset(), MAX_LINE as u64);
    }

    #[test]
    fn overlong_lines_are_cut_between_characters() {
        for prefix in 0..4 {
            let long = format!(
                "{}{}",
                "a".repeat(prefix),
                "\u{20ac}".repeat(MAX_LINE / 3 + 10)
            );
            // Whether the chunk ends inside a character or not, the cut does not.
            for len in [MAX_LINE, MAX_LINE + 1, MAX_LINE + 2, long.len()] {
                let mut b = Block::default();
                let used = b.frame(&long.as_bytes()[..len], false);
                assert!(
                    used <= MAX_LINE && long.is_char_boundary(used),
                    "prefix {prefix} len {len}: cut at {used}"
                );
                assert!(!String::from_utf8_lossy(&b.bytes).contains('\u{FFFD}'));
            }
        }
    }

    #[test]
    fn char_boundaries() {
        let euro = "\u{20ac}".as_bytes(); // 3 bytes
        let text = [b"ab".as_slice(), euro, euro].concat();
        assert_eq!(char_boundary(&text, 2), 2);
        assert_eq!(char_boundary(&text, 3), 2);
        assert_eq!(char_boundary(&text, 4), 2);
        assert_eq!(char_boundary(&text, 5), 5);
        assert_eq!(char_boundary(&text[..7], 7), 5);
        assert_eq!(char_boundary(&text, 8), 8);
        assert_eq!(char_boundary(&[0x80; 8], 6), 6);
    }

    #[test]
    fn partial_writes_map_to_offsets() {
        let mut b = Block::default();
        b.clear(100);
        b.frame(b"a\nbb\n", false);
        let first = b.events[0].pos;
        assert_eq!(
            b.written(0),
            Written {
                offset: 100,
                rest: 0..0
            }
        );
        assert_eq!(
            b.written(3),
            Written {
                offset: 102,
                rest: 3..first
            }
        );
        assert_eq!(
            b.written(first),
            Written {
                offset: 102,
                rest: first..first
            }
        );
        assert_eq!(
            b.written(b.bytes.len()),
            Written {
                offset: 105,
                rest: b.bytes.len()..b.bytes.len()
            }
        );
        assert_eq!(b.from_offset(102), Some(&b.bytes[first..]));
        assert_eq!(b.from_offset(101), None);
    }

    #[test]
    fn control_events_all_carry_data() {
        for frame in [RESET, SHUTDOWN, END_DELETED, &end_finished(3, 40)[..]] {
            let text = std::str::from_utf8(frame).expect("utf8");
            assert!(text.contains("\ndata: {"), "{text}");
            assert!(text.ends_with("\n\n"));
        }
    }
}
