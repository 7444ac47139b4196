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

use std::io;

use super::tail::{Tail, CHUNK};
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

impl Seek {
    /// Reads at most one [`PIECE`] of the file.
    pub fn step(&mut self, tail: &mut Tail, buf: &mut Vec<u8>) -> io::Result<Step> {
        match *self {
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

#[cfg(test)]
mod tests {
    use super::super::tail::tests::temp_file;
    use super::*;

    /// Runs a start to its end, counting the steps it took.
    fn run(start: Start, tail: &mut Tail) -> (u64, usize) {
        let mut seek = match start {
            Start::At(at) => return (at, 0),
            Start::Seek(seek) => seek,
        };
        let mut buf = Vec::new();
        for steps in 1.. {
            if let Step::Found(at) = seek.step(tail, &mut buf).expect("step") {
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
}
