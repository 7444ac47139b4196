//! One followed file, shared by every stream of that log. The tail polls its
//! file once per tick (one `stat` by path, then `pread`s of the new bytes)
//! however many streams follow it, and frames new complete lines once; the
//! [`crate::stream`] module fans that block out. The tail holds the log's
//! only descriptor; streams that fell behind read their catch-up through it
//! with `pread`, so a stream costs no descriptor of its own.
//!
//! `offset` is the end of the last line framed: every stream is at or before
//! it. It only moves forward, except on truncation or rotation (`Reset`).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

use crate::sse::{Block, MAX_LINE};
use crate::timer::TimerId;

/// Bytes read from the file at once.
pub const CHUNK: usize = MAX_LINE;

/// A file missing this long is deleted, not being rotated (SPEC section 3).
pub const DELETED_AFTER_MS: u64 = 1000;

/// What a poll found about the file itself.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    /// Truncated or replaced: the tail is back at offset 0.
    Reset,
    /// Missing for [`DELETED_AFTER_MS`].
    Deleted,
}

/// Opens a log for reading, refusing anything but a regular file: opening a
/// FIFO would block the whole reactor until a writer appears, so the open is
/// non-blocking and the type is checked on the opened descriptor.
fn open_regular(path: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::ErrorKind::NotFound.into());
    }
    Ok(file)
}

#[derive(Debug)]
pub struct Tail {
    pub id: String,
    path: PathBuf,
    file: File,
    /// (device, inode) of `file`: a different one at `path` means rotation.
    identity: (u64, u64),
    /// End of the last framed line.
    pub offset: u64,
    /// File size at the last poll.
    pub size: u64,
    /// The file had no write bit at the last poll.
    pub finished: bool,
    missing_since_ms: Option<u64>,
    /// Keys of the connections streaming this log.
    pub streams: Vec<usize>,
    /// Last time anything was sent to the streams at `offset` (for heartbeats).
    pub last_sent_ms: u64,
    lines: LineCount,
    pub timer: Option<TimerId>,
    pub generation: u32,
}

/// Newlines counted so far, for the `lines` of the `end` event.
#[derive(Debug, Default, Clone, Copy)]
struct LineCount {
    counted_to: u64,
    newlines: u64,
}

impl Tail {
    /// Opens the log's file and places the tail at the end of its last
    /// complete line (or at the end of a finished file).
    pub fn open(id: &str, path: PathBuf, now_ms: u64, generation: u32) -> io::Result<Tail> {
        let file = open_regular(&path)?;
        let meta = file.metadata()?;
        let finished = super::is_finished(&meta);
        let mut tail = Tail {
            id: id.to_string(),
            path,
            file,
            identity: (meta.dev(), meta.ino()),
            offset: 0,
            size: meta.len(),
            finished,
            missing_since_ms: None,
            streams: Vec::new(),
            last_sent_ms: now_ms,
            lines: LineCount::default(),
            timer: None,
            generation,
        };
        tail.offset = if finished {
            tail.size
        } else {
            tail.last_line_end(tail.size)?
        };
        Ok(tail)
    }

    /// The tail has framed the whole file and the file will not grow.
    pub fn is_complete(&self) -> bool {
        self.finished && self.offset >= self.size
    }

    /// `stat`s the path: notices truncation, rotation, deletion and the
    /// finished bit, and records the size for [`Tail::read_new`].
    pub fn refresh(&mut self, now_ms: u64) -> Change {
        let meta = match fs::metadata(&self.path) {
            Ok(meta) => meta,
            // "Not a directory": the log dir itself was replaced by a file.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                let since = *self.missing_since_ms.get_or_insert(now_ms);
                return if now_ms.saturating_sub(since) >= DELETED_AFTER_MS {
                    Change::Deleted
                } else {
                    Change::Unchanged
                };
            }
            Err(_) => return Change::Unchanged,
        };
        self.missing_since_ms = None;
        if (meta.dev(), meta.ino()) != self.identity {
            return self.reopen();
        }
        self.size = meta.len();
        self.finished = super::is_finished(&meta);
        if self.size < self.offset {
            self.restart();
            return Change::Reset;
        }
        Change::Unchanged
    }

    fn reopen(&mut self) -> Change {
        let Ok(file) = open_regular(&self.path) else {
            return Change::Unchanged;
        };
        let Ok(meta) = file.metadata() else {
            return Change::Unchanged;
        };
        self.file = file;
        self.identity = (meta.dev(), meta.ino());
        self.size = meta.len();
        self.finished = super::is_finished(&meta);
        self.restart();
        Change::Reset
    }

    fn restart(&mut self) {
        self.offset = 0;
        self.lines = LineCount::default();
    }

    /// Reads the next chunk of new bytes into `buf` and frames its complete
    /// lines into `block` (cleared first). Returns false when nothing new.
    pub fn read_new(&mut self, buf: &mut Vec<u8>, block: &mut Block) -> io::Result<bool> {
        block.clear(self.offset);
        if self.offset >= self.size {
            return Ok(false);
        }
        let want = (self.size - self.offset).min(CHUNK as u64) as usize;
        let n = self.read_at(self.offset, want, buf)?;
        let reaches_end = self.offset + n as u64 >= self.size;
        block.frame(&buf[..n], self.finished && reaches_end);
        self.offset = block.end_offset();
        Ok(!block.is_empty())
    }

    /// `pread` of up to `len` bytes at `offset` into `buf` (resized to fit).
    pub fn read_at(&self, offset: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
        buf.resize(len, 0);
        let mut filled = 0;
        while filled < len {
            match self
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    /// Lines in the whole file (a final line without `\n` counts when the
    /// log is finished). Counted incrementally and remembered.
    pub fn line_count(&mut self, buf: &mut Vec<u8>) -> io::Result<u64> {
        while self.lines.counted_to < self.size {
            let want = (self.size - self.lines.counted_to).min(1 << 20) as usize;
            let n = self.read_at(self.lines.counted_to, want, buf)?;
            if n == 0 {
                break;
            }
            self.lines.newlines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            self.lines.counted_to += n as u64;
        }
        let mut last = [0u8; 1];
        let unterminated = self.size > 0
            && self
                .file
                .read_at(&mut last, self.size - 1)
                .map(|n| n == 1 && last[0] != b'\n')
                .unwrap_or(false);
        Ok(self.lines.newlines + u64::from(self.finished && unterminated))
    }

    /// Where a stream asking for the last `n` lines starts: found by reading
    /// backwards from the end, so a huge log is not read whole.
    pub fn tail_start(&self, n: u64, buf: &mut Vec<u8>) -> io::Result<u64> {
        if n == 0 || self.offset == 0 {
            return Ok(self.offset);
        }
        let mut region_end = self.offset;
        if self.byte_at(self.offset - 1)? == Some(b'\n') {
            region_end -= 1;
        }
        let mut found = 0;
        let mut end = region_end;
        while end > 0 {
            let start = end.saturating_sub(CHUNK as u64);
            let got = self.read_at(start, (end - start) as usize, buf)?;
            for (i, &b) in buf[..got].iter().enumerate().rev() {
                if b == b'\n' {
                    found += 1;
                    if found == n {
                        return Ok(start + i as u64 + 1);
                    }
                }
            }
            end = start;
        }
        Ok(0)
    }

    /// Where a stream resuming at `requested` starts (SPEC section 3): past
    /// the end means the file was truncated (start at 0); inside a line means
    /// the next line; never beyond the tail.
    pub fn resume_start(&self, requested: u64, buf: &mut Vec<u8>) -> io::Result<u64> {
        if requested > self.size.max(self.offset) {
            return Ok(0);
        }
        if requested == 0 || requested >= self.offset {
            return Ok(requested.min(self.offset));
        }
        if self.byte_at(requested - 1)? == Some(b'\n') || self.is_piece_boundary(requested, buf)? {
            return Ok(requested);
        }
        let mut pos = requested;
        while pos < self.offset {
            let want = (self.offset - pos).min(CHUNK as u64) as usize;
            let got = self.read_at(pos, want, buf)?;
            if got == 0 {
                break;
            }
            if let Some(i) = buf[..got].iter().position(|&b| b == b'\n') {
                return Ok(pos + i as u64 + 1);
            }
            pos += got as u64;
        }
        Ok(self.offset)
    }

    /// Whether `at`, inside a line, is where a line longer than [`MAX_LINE`]
    /// was cut into pieces (its id is a valid place to resume). Re-runs the
    /// cut rule from the start of the line; rare, and bounded by the line.
    fn is_piece_boundary(&self, at: u64, buf: &mut Vec<u8>) -> io::Result<bool> {
        let mut pos = self.line_start(at, buf)?;
        if at - pos < MAX_LINE as u64 {
            return Ok(false);
        }
        while pos < at {
            let n = self.read_at(pos, MAX_LINE, buf)?;
            if n < MAX_LINE || buf[..n].contains(&b'\n') {
                return Ok(false);
            }
            pos += crate::sse::char_boundary(&buf[..n], MAX_LINE) as u64;
        }
        Ok(pos == at)
    }

    /// Start of the line that contains byte `at - 1`.
    fn line_start(&self, at: u64, buf: &mut Vec<u8>) -> io::Result<u64> {
        let mut end = at;
        while end > 0 {
            let start = end.saturating_sub(CHUNK as u64);
            let got = self.read_at(start, (end - start) as usize, buf)?;
            if let Some(i) = buf[..got].iter().rposition(|&b| b == b'\n') {
                return Ok(start + i as u64 + 1);
            }
            end = start;
        }
        Ok(0)
    }

    fn byte_at(&self, offset: u64) -> io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        Ok((self.file.read_at(&mut b, offset)? == 1).then_some(b[0]))
    }

    /// End of the last complete line before `size`: scanning back at most one
    /// [`MAX_LINE`] (a longer unterminated run is cut into pieces anyway).
    fn last_line_end(&self, size: u64) -> io::Result<u64> {
        let start = size.saturating_sub(MAX_LINE as u64);
        let mut buf = Vec::new();
        let got = self.read_at(start, (size - start) as usize, &mut buf)?;
        Ok(match buf[..got].iter().rposition(|&b| b == b'\n') {
            Some(i) => start + i as u64 + 1,
            None => start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    /// A test's own directory, removed when the test ends.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("logcast-tail-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn temp_file(name: &str, content: &[u8]) -> (TempDir, PathBuf) {
        let dir = TempDir::new(name);
        let path = dir.0.join(name);
        fs::write(&path, content).expect("write");
        (dir, path)
    }

    #[test]
    fn opens_at_last_complete_line_and_reads_new_lines() {
        let (_dir, path) = temp_file("a.log", b"one\ntwo\npart");
        let mut tail = Tail::open("a", path.clone(), 0, 1).expect("open");
        assert_eq!(tail.offset, 8);
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        f.write_all(b"ial\nthree\n").expect("append");
        assert_eq!(tail.refresh(100), Change::Unchanged);
        let (mut buf, mut block) = (Vec::new(), Block::default());
        assert!(tail.read_new(&mut buf, &mut block).expect("read"));
        assert_eq!(
            std::str::from_utf8(&block.bytes).expect("utf8"),
            "id: 16\ndata: partial\n\nid: 22\ndata: three\n\n"
        );
        assert_eq!(tail.offset, 22);
        assert!(!tail.read_new(&mut buf, &mut block).expect("read"));
    }

    #[test]
    fn tail_and_resume_positions() {
        let (_dir, path) = temp_file("b.log", b"l1\nl2\nl3\nl4\n");
        let tail = Tail::open("b", path, 0, 1).expect("open");
        let mut buf = Vec::new();
        assert_eq!(tail.tail_start(2, &mut buf).expect("tail"), 6);
        assert_eq!(tail.tail_start(10, &mut buf).expect("tail"), 0);
        assert_eq!(tail.tail_start(0, &mut buf).expect("tail"), 12);
        assert_eq!(tail.resume_start(3, &mut buf).expect("resume"), 3);
        assert_eq!(tail.resume_start(4, &mut buf).expect("resume"), 6);
        assert_eq!(tail.resume_start(99, &mut buf).expect("resume"), 0);
    }

    #[test]
    fn resuming_at_a_piece_of_a_long_line_continues_there() {
        let mut content = b"short\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', MAX_LINE * 2 + 100));
        content.extend_from_slice(b"\nend\n");
        let (_dir, path) = temp_file("e.log", &content);
        let tail = Tail::open("e", path, 0, 1).expect("open");
        let mut buf = Vec::new();
        let piece = 6 + MAX_LINE as u64;
        assert_eq!(tail.resume_start(piece, &mut buf).expect("resume"), piece);
        assert_eq!(
            tail.resume_start(piece + MAX_LINE as u64, &mut buf)
                .expect("resume"),
            piece + MAX_LINE as u64
        );
        let next_line = content.len() as u64 - 4;
        assert_eq!(
            tail.resume_start(piece + 1, &mut buf).expect("resume"),
            next_line
        );
    }

    #[test]
    fn a_fifo_is_not_a_log() {
        let dir = TempDir::new("fifo");
        let path = dir.0.join("fifo.log");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if made {
            let err = Tail::open("fifo", path, 0, 1).expect_err("a fifo must be refused");
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
        }
    }

    #[test]
    fn truncation_and_deletion() {
        let (_dir, path) = temp_file("c.log", b"l1\nl2\n");
        let mut tail = Tail::open("c", path.clone(), 0, 1).expect("open");
        fs::write(&path, b"x\n").expect("truncate");
        assert_eq!(tail.refresh(10), Change::Reset);
        assert_eq!(tail.offset, 0);
        fs::remove_file(&path).expect("rm");
        assert_eq!(tail.refresh(20), Change::Unchanged);
        assert_eq!(tail.refresh(20 + DELETED_AFTER_MS), Change::Deleted);
    }

    #[test]
    fn finished_counts_a_last_unterminated_line() {
        let (_dir, path) = temp_file("d.log", b"a\nb\nc");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).expect("chmod");
        let mut tail = Tail::open("d", path, 0, 1).expect("open");
        assert!(tail.is_complete());
        assert_eq!(tail.line_count(&mut Vec::new()).expect("count"), 3);
    }
}
