//! Where a new stream starts, found without freezing the reactor.
//!
//! Most starts cost nothing or one byte read: the whole file (0), a resume
//! point right after a `\n`, one past the end (the file was replaced:
//! replay from 0). The others are scans of the file, and a file can be
//! 10 GB: `?tail=n` reads backwards from the tail's offset counting lines;
//! a resume point inside a line looks for that line's start (to tell a
//! piece of an over-long line, a valid place to resume, from a mid-line
//! offset) and then for the next line. A [`Seek`] is such a scan, cut into
//! [`PIECE`]-sized reads: the engine runs one piece of each waiting seek
//! per turn, within the turn's budget, and the stream waits (its head
//! already sent) until its start is found.
//!
//! A filtered `?tail=n` counts matching lines instead: each line read back
//! is matched once. A line longer than a piece is not matched on the way
//! back (its pieces are matched as they are sent): a rare pattern in a huge
//! file is looked for all the way back, a piece per turn.

use std::io;

use super::tail::{Tail, CHUNK};
use crate::filter::Filter;
use crate::sse::{char_boundary, MAX_LINE};

/// Most bytes one step of a scan reads.
pub const PIECE: usize = CHUNK;

/// Where a stream starts: known now, or found by a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    At(u64),
    Seek(Seek),
}

/// A scan for a stream's start, resumable between reactor turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// The start of the last `wanted` lines: reading back from `end`,
    /// `found` newlines so far.
    LastLines { wanted: u64, found: u64, end: u64 },
    /// A resume point `at` inside a line: back from `end` to the line's start.
    LineStart { at: u64, end: u64 },
    /// Replays the cut of an over-long line from `pos`: is `at` a cut?
    Pieces { at: u64, pos: u64 },
    /// The start of the last `wanted` lines that pass the stream's filter,
    /// reading back from `end` (a line start unless `skipping` a line
    /// longer than a piece), `found` so far.
    LastMatching {
        wanted: u64,
        found: u64,
        end: u64,
        skipping: bool,
    },
    /// On from `pos` to the start of the next line.
    NextLine { pos: u64 },
}

/// What one step of a [`Seek`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The stream starts here.
    Found(u64),
    /// Read this many bytes; more steps to go.
    Read(usize),
}

/// Where a stream resuming at `requested` starts (SPEC section 3): past
/// the end means the file was replaced or truncated (start at 0); inside a
/// line means the next line; never beyond the tail.
pub fn resume(tail: &mut Tail, requested: u64) -> io::Result<Start> {
    if requested > tail.size().max(tail.offset()) {
        return Ok(Start::At(0));
    }
    if requested == 0 || requested >= tail.offset() {
        return Ok(Start::At(requested.min(tail.offset())));
    }
    if tail.byte_at(requested - 1)? == Some(b'\n') {
        return Ok(Start::At(requested));
    }
    Ok(Start::Seek(Seek::LineStart {
        at: requested,
        end: requested,
    }))
}

/// Where a stream asking for the last `n` lines starts.
pub fn last_lines(tail: &mut Tail, n: u64) -> io::Result<Start> {
    let offset = tail.offset();
    if n == 0 || offset == 0 {
        return Ok(Start::At(offset));
    }
    // The `\n` ending the last line is not the start of another.
    let end = offset - u64::from(tail.byte_at(offset - 1)? == Some(b'\n'));
    Ok(Start::Seek(Seek::LastLines {
        wanted: n,
        found: 0,
        end,
    }))
}

/// Where a stream asking for the last `n` lines its filter passes starts.
pub fn last_matching(tail: &Tail, n: u64) -> Start {
    let offset = tail.offset();
    if n == 0 || offset == 0 {
        return Start::At(offset);
    }
    Start::Seek(Seek::LastMatching {
        wanted: n,
        found: 0,
        end: offset,
        skipping: false,
    })
}

impl Seek {
    /// Reads at most one [`PIECE`] of the file; `filter` is the stream's.
    pub fn step(
        &mut self,
        tail: &mut Tail,
        buf: &mut Vec<u8>,
        filter: Option<&Filter>,
    ) -> io::Result<Step> {
        match *self {
            Seek::LastMatching {
                wanted,
                found,
                end,
                skipping,
            } => {
                let back = Back {
                    wanted,
                    found,
                    end,
                    skipping,
                };
                self.last_matching_step(tail, buf, filter, back)
            }
            Seek::LastLines { wanted, found, end } => {
                self.last_lines_step(tail, buf, wanted, found, end)
            }
            Seek::LineStart { at, end } => self.line_start_step(tail, buf, at, end),
            Seek::Pieces { at, pos } => self.pieces_step(tail, buf, at, pos),
            Seek::NextLine { pos } => self.next_line_step(tail, buf, pos),
        }
    }

    fn last_lines_step(
        &mut self,
        tail: &mut Tail,
        buf: &mut Vec<u8>,
        wanted: u64,
        mut found: u64,
        end: u64,
    ) -> io::Result<Step> {
        if end == 0 {
            return Ok(Step::Found(0));
        }
        let start = end.saturating_sub(PIECE as u64);
        let got = tail.read_at(start, (end - start) as usize, buf)?;
        if got == 0 {
            return Ok(Step::Found(0)); // shrank: the coming look resets
        }
        for (i, &b) in buf[..got].iter().enumerate().rev() {
            if b == b'\n' {
                found += 1;
                if found == wanted {
                    return Ok(Step::Found(start + i as u64 + 1));
                }
            }
        }
        *self = Seek::LastLines {
            wanted,
            found,
            end: start,
        };
        Ok(Step::Read(got))
    }

    fn last_matching_step(
        &mut self,
        tail: &mut Tail,
        buf: &mut Vec<u8>,
        filter: Option<&Filter>,
        mut back: Back,
    ) -> io::Result<Step> {
        if back.end == 0 {
            return Ok(Step::Found(0));
        }
        let start = back.end.saturating_sub(PIECE as u64);
        let got = tail.read_at(start, (back.end - start) as usize, buf)?;
        if got == 0 {
            return Ok(Step::Found(0)); // shrank: the coming look resets
        }
        let passes = |line: &[u8]| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            filter.is_none_or(|f| f.passes(line))
        };
        match back.lines(&buf[..got], start, passes) {
            Some(at) => return Ok(Step::Found(at)),
            None if start == 0 => return Ok(Step::Found(0)),
            None => {}
        }
        *self = Seek::LastMatching {
            wanted: back.wanted,
            found: back.found,
            end: back.end,
            skipping: back.skipping,
        };
        Ok(Step::Read(got))
    }

    fn line_start_step(
        &mut self,
        tail: &mut Tail,
        buf: &mut Vec<u8>,
        at: u64,
        end: u64,
    ) -> io::Result<Step> {
        let start = end.saturating_sub(PIECE as u64);
        let got = tail.read_at(start, (end - start) as usize, buf)?;
        let line_start = match buf[..got].iter().rposition(|&b| b == b'\n') {
            Some(i) => start + i as u64 + 1,
            None if start == 0 => 0,
            None => {
                *self = Seek::LineStart { at, end: start };
                return Ok(Step::Read(got.max(1)));
            }
        };
        *self = if at - line_start < MAX_LINE as u64 {
            Seek::NextLine { pos: at } // too short to have been cut
        } else {
            Seek::Pieces {
                at,
                pos: line_start,
            }
        };
        Ok(Step::Read(got.max(1)))
    }

    /// Re-runs the cut rule for lines longer than [`MAX_LINE`] (the one
    /// [`crate::sse::Block::frame`] applies) from the line's start.
    fn pieces_step(
        &mut self,
        tail: &mut Tail,
        buf: &mut Vec<u8>,
        at: u64,
        pos: u64,
    ) -> io::Result<Step> {
        let n = tail.read_at(pos, MAX_LINE, buf)?;
        if n < MAX_LINE || buf[..n].contains(&b'\n') {
            *self = Seek::NextLine { pos: at };
            return Ok(Step::Read(n.max(1)));
        }
        let next = pos + char_boundary(&buf[..n], MAX_LINE) as u64;
        if next == at {
            return Ok(Step::Found(at));
        }
        *self = if next > at {
            Seek::NextLine { pos: at }
        } else {
            Seek::Pieces { at, pos: next }
        };
        Ok(Step::Read(n))
    }

    fn next_line_step(&mut self, tail: &mut Tail, buf: &mut Vec<u8>, pos: u64) -> io::Result<Step> {
        let limit = tail.offset();
        if pos >= limit {
            return Ok(Step::Found(limit));
        }
        let want = (limit - pos).min(PIECE as u64) as usize;
        let got = tail.read_at(pos, want, buf)?;
        if got == 0 {
            return Ok(Step::Found(limit));
        }
        if let Some(i) = buf[..got].iter().position(|&b| b == b'\n') {
            return Ok(Step::Found(pos + i as u64 + 1));
        }
        *self = Seek::NextLine {
            pos: pos + got as u64,
        };
        Ok(Step::Read(got))
    }
}

/// The state of a backward scan for matching lines, while one piece is
/// looked at.
struct Back {
    wanted: u64,
    found: u64,
    end: u64,
    skipping: bool,
}

impl Back {
    /// Goes through the lines of `data` (the file from `start` to `end`),
    /// newest first; returns where the stream starts once `wanted` lines
    /// passed, else moves `end` back to the first line start it can vouch
    /// for (the piece's first line may begin before it).
    fn lines(&mut self, data: &[u8], start: u64, passes: impl Fn(&[u8]) -> bool) -> Option<u64> {
        let got = data.len();
        // `end` is just past a `\n`, except at the tail's offset (a final
        // line or a piece without one) or while skipping a long line.
        let mut line_end = got;
        if !self.skipping && data[got - 1] == b'\n' {
            line_end = got - 1;
        }
        let mut any = false;
        while let Some(q) = data[..line_end].iter().rposition(|&b| b == b'\n') {
            if self.take(&data[q + 1..line_end], &passes) {
                return Some(start + q as u64 + 1);
            }
            any = true;
            line_end = q;
        }
        if start == 0 {
            // The first line of the file is whole.
            return self.take(&data[..line_end], &passes).then_some(0);
        }
        if any {
            self.end = start + line_end as u64 + 1;
        } else {
            // One line fills the piece: longer than a piece, not matched.
            self.skipping = true;
            self.end = start;
        }
        None
    }

    /// Counts `line` if it passes (a skipped long line's part does not);
    /// whether that makes `wanted`.
    fn take(&mut self, line: &[u8], passes: &impl Fn(&[u8]) -> bool) -> bool {
        let skipped = std::mem::take(&mut self.skipping);
        if !skipped && passes(line) {
            self.found += 1;
        }
        self.found == self.wanted
    }
}

#[cfg(test)]
mod tests {
    use super::super::tail::tests::temp_file;
    use super::*;

    /// Runs a start to its end, counting the steps it took.
    fn run(start: Start, tail: &mut Tail) -> (u64, usize) {
        run_filtered(start, tail, None)
    }

    fn run_filtered(start: Start, tail: &mut Tail, filter: Option<&Filter>) -> (u64, usize) {
        let mut seek = match start {
            Start::At(at) => return (at, 0),
            Start::Seek(seek) => seek,
        };
        let mut buf = Vec::new();
        for steps in 1.. {
            if let Step::Found(at) = seek.step(tail, &mut buf, filter).expect("step") {
                return (at, steps);
            }
        }
        unreachable!()
    }

    #[test]
    fn tail_and_resume_positions() {
        let (_dir, path) = temp_file("b.log", b"l1\nl2\nl3\nl4\n");
        let mut t = Tail::open(path).expect("open");
        let at = |s: io::Result<Start>, t: &mut Tail| run(s.expect("start"), t).0;
        assert_eq!(at(last_lines(&mut t, 2), &mut t), 6);
        assert_eq!(at(last_lines(&mut t, 10), &mut t), 0);
        assert_eq!(at(last_lines(&mut t, 0), &mut t), 12);
        assert_eq!(at(resume(&mut t, 3), &mut t), 3);
        assert_eq!(at(resume(&mut t, 4), &mut t), 6);
        assert_eq!(at(resume(&mut t, 99), &mut t), 0);
        assert_eq!(at(resume(&mut t, 12), &mut t), 12);
    }

    #[test]
    fn resuming_at_a_piece_of_a_long_line_continues_there() {
        let mut content = b"short\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', MAX_LINE * 2 + 100));
        content.extend_from_slice(b"\nend\n");
        let (_dir, path) = temp_file("e.log", &content);
        let mut t = Tail::open(path).expect("open");
        let piece = 6 + MAX_LINE as u64;
        let at = |requested: u64, t: &mut Tail| run(resume(t, requested).expect("start"), t).0;
        assert_eq!(at(piece, &mut t), piece);
        assert_eq!(at(piece + MAX_LINE as u64, &mut t), piece + MAX_LINE as u64);
        assert_eq!(at(piece + 1, &mut t), content.len() as u64 - 4);
    }

    #[test]
    fn each_step_reads_at_most_one_piece() {
        // 4 MiB without a newline but the first: `tail=1` and a resume in
        // the middle both take many small steps instead of one long read.
        let mut content = b"first\n".to_vec();
        content.extend(std::iter::repeat_n(b'y', 4 << 20));
        content.push(b'\n');
        let (_dir, path) = temp_file("f.log", &content);
        let mut t = Tail::open(path).expect("open");
        let pieces = (4 << 20) / PIECE;
        let (at, steps) = run(last_lines(&mut t, 1).expect("start"), &mut t);
        assert_eq!(at, 6);
        assert!(steps > pieces, "{steps} steps");
        let (at, steps) = run(resume(&mut t, 7).expect("start"), &mut t);
        assert_eq!(at, content.len() as u64);
        assert!(steps > pieces, "{steps} steps");
    }

    fn filter(grep: &str) -> Filter {
        let spec = crate::filter::FilterSpec {
            grep: Some(grep.to_string()),
            exclude: None,
        };
        Filter::compile(&spec).expect("compile")
    }

    #[test]
    fn last_matching_lines() {
        let (_dir, path) = temp_file("m.log", b"a1\nb1\na2\nb2\r\na3\nb3\n");
        let mut t = Tail::open(path).expect("open");
        let b = filter("^b");
        let at = |n: u64, t: &mut Tail, f: &Filter| run_filtered(last_matching(t, n), t, Some(f)).0;
        assert_eq!(at(1, &mut t, &b), 16);
        assert_eq!(at(2, &mut t, &b), 9, "b2\\r still matches ^b");
        assert_eq!(at(3, &mut t, &b), 3);
        assert_eq!(at(9, &mut t, &b), 0);
        assert_eq!(at(1, &mut t, &filter("a3")), 13);
        assert_eq!(at(1, &mut t, &filter("nothing")), 0);
    }

    #[test]
    fn last_matching_lines_across_pieces_and_past_long_lines() {
        // Matching lines between filler, a line longer than a piece, and
        // lines that straddle piece boundaries.
        let mut content = Vec::new();
        let mut starts = Vec::new();
        for i in 0..2000 {
            if i == 700 {
                content.extend(std::iter::repeat_n(b'z', PIECE + 10));
                content.push(b'\n');
            }
            if i % 100 == 0 {
                starts.push(content.len() as u64);
                content.extend_from_slice(format!("MATCH {i}\n").as_bytes());
            } else {
                content.extend_from_slice(format!("{} {i}\n", "filler".repeat(i % 37)).as_bytes());
            }
        }
        let (_dir, path) = temp_file("n.log", &content);
        let mut t = Tail::open(path).expect("open");
        let m = filter("^MATCH");
        for n in [1u64, 5, 12, 19, 20] {
            let (at, _) = run_filtered(last_matching(&t, n), &mut t, Some(&m));
            assert_eq!(at, starts[starts.len() - n as usize], "n={n}");
        }
        let (at, _) = run_filtered(last_matching(&t, 21), &mut t, Some(&m));
        assert_eq!(at, 0);
    }
}
