//! One followed file, shared by every stream of that log: where its framed
//! lines end (`offset`), how big it is, whether it is finished, and which
//! file it is, by (device, inode). A tail only follows a file: it knows
//! nothing of streams, timers or clocks beyond the deletion grace period.
//!
//! The descriptor is opened on demand and may be closed while the log is
//! idle ([`Tail::close_file`]), so an idle log costs no descriptor; a
//! reopened path is trusted only if it is still the same (device, inode).
//!
//! Rotation without loss, as `tail -F` does it: when another file appears at
//! the path (logrotate's rename then create), the new file is held as the
//! `successor` while the old one is read to its end through the descriptor
//! still open (or, when that was closed, through the name the directory
//! reported it moved to); only then does the tail switch ([`Tail::switch`])
//! and the streams get `reset`. `copytruncate` cannot be made lossless: lines
//! written between the copy and the truncation are in neither file we see.
//!
//! `offset` is the end of the last line framed: every stream is at or before
//! it. It only moves forward, except on truncation or rotation.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::logs::open_regular;
use crate::sse::{Block, MAX_LINE};

/// Bytes read from the file at once.
pub const CHUNK: usize = MAX_LINE;

/// A file missing this long is deleted, not being rotated (SPEC section 3).
pub const DELETED_AFTER_MS: u64 = 1000;

/// What a look at the file found.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    /// Truncated in place: the tail is back at offset 0.
    Reset,
    /// The path is missing; it counts as deleted at the given time (ms).
    Missing {
        deleted_at_ms: u64,
    },
    /// Missing for [`DELETED_AFTER_MS`].
    Deleted,
}

fn identity(meta: &fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

fn is_gone(e: &io::Error) -> bool {
    // "Not a directory": the log dir itself was replaced by a file.
    e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory
}

#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    /// Our file, while open.
    file: Option<File>,
    /// (device, inode) of our file: a different one at `path` is a rotation.
    identity: (u64, u64),
    /// The file now at `path`, waiting until ours is read to its end.
    successor: Option<(File, fs::Metadata)>,
    /// End of the last framed line.
    offset: u64,
    /// File size at the last look.
    size: u64,
    /// The file had no write bit at the last look.
    finished: bool,
    missing_since_ms: Option<u64>,
    /// The path is a symbolic link: the directory's change notifications do
    /// not cover its target, so it must be polled.
    pub symlink: bool,
    lines: LineCount,
}

/// Newlines counted so far, for the `lines` of the `end` event.
#[derive(Debug, Default, Clone, Copy)]
struct LineCount {
    counted_to: u64,
    newlines: u64,
}

impl LineCount {
    /// `bytes` are the next ones after `counted_to`.
    fn add(&mut self, bytes: &[u8]) {
        self.newlines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        self.counted_to += bytes.len() as u64;
    }
}

impl Tail {
    /// Opens the log's file and places the tail at the end of its last
    /// complete line (or at the end of a finished file).
    pub fn open(path: PathBuf) -> io::Result<Tail> {
        let (file, meta) = open_regular(&path)?;
        let symlink = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        let mut tail = Tail {
            path,
            file: Some(file),
            identity: identity(&meta),
            successor: None,
            offset: 0,
            size: meta.len(),
            finished: crate::logs::is_finished(&meta),
            missing_since_ms: None,
            symlink,
            lines: LineCount::default(),
        };
        if tail.finished {
            tail.offset = tail.size;
            if tail.size <= CHUNK as u64 {
                // Small enough to count at once: its `end` need not wait.
                tail.count_some(CHUNK, &mut Vec::new())?;
            }
        } else {
            tail.offset = tail.last_line_end(tail.size)?;
        }
        Ok(tail)
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The path it follows.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The (device, inode) of the file it reads now.
    pub fn identity(&self) -> (u64, u64) {
        self.identity
    }

    /// Descriptors this tail holds (its file, and a successor in waiting).
    pub fn files_open(&self) -> usize {
        usize::from(self.file.is_some()) + usize::from(self.successor.is_some())
    }

    /// Lets the descriptor go while the log is idle; it is reopened (and
    /// checked to be the same file) when needed.
    pub fn close_file(&mut self) {
        if self.successor.is_none() {
            self.file = None;
        }
    }

    /// The tail has framed the whole file and the file will not grow.
    pub fn is_complete(&self) -> bool {
        self.finished && self.offset >= self.size && self.successor.is_none()
    }

    /// Another file is waiting at the path and ours has been read to its
    /// end: time to [`Tail::switch`].
    pub fn ready_to_switch(&self) -> bool {
        self.successor.is_some() && self.offset >= self.size
    }

    /// Looks at the file: its size and finished bit (through our
    /// descriptor, or one `stat` of the path when `check_path`) and, with
    /// `check_path`, what the path names now (rotation, deletion).
    /// `moved_to` is where the directory said our file was renamed to.
    pub fn refresh(&mut self, now_ms: u64, check_path: bool, moved_to: Option<&Path>) -> Change {
        if self.file.is_none() {
            self.reattach(now_ms, moved_to);
            self.fstat();
        } else if !check_path || !self.stat_path(now_ms) {
            self.fstat();
        }
        let change = self.missing_change(now_ms);
        if change != Change::Unchanged {
            return change;
        }
        if self.size < self.offset && self.successor.is_none() {
            self.restart();
            return Change::Reset;
        }
        Change::Unchanged
    }

    /// Size and finished bit from our open descriptor.
    fn fstat(&mut self) {
        if let Some(meta) = self.file.as_ref().and_then(|f| f.metadata().ok()) {
            self.note(&meta);
        }
    }

    fn note(&mut self, meta: &fs::Metadata) {
        self.size = meta.len();
        self.finished = crate::logs::is_finished(meta);
    }

    /// `stat`s the path. Returns true when it is still our file (and its
    /// size and mode are noted); a different file there becomes the
    /// successor, and a missing one starts the deletion grace period.
    fn stat_path(&mut self, now_ms: u64) -> bool {
        match fs::metadata(&self.path) {
            Ok(meta) if identity(&meta) == self.identity => {
                self.missing_since_ms = None;
                self.note(&meta);
                true
            }
            Ok(_) => {
                self.missing_since_ms = None;
                if self.successor.is_none() {
                    self.successor = open_regular(&self.path)
                        .ok()
                        .filter(|(_, meta)| identity(meta) != self.identity);
                }
                false
            }
            Err(e) if is_gone(&e) => {
                self.missing_since_ms.get_or_insert(now_ms);
                false
            }
            Err(_) => false,
        }
    }

    /// When a missing file counts as deleted, while it is missing.
    pub fn deleted_at_ms(&self) -> Option<u64> {
        self.missing_since_ms.map(|since| since + DELETED_AFTER_MS)
    }

    /// One `stat` of the path says nothing changed since the last look:
    /// the same file, size and mode.
    pub fn unchanged_on_disk(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|meta| {
            identity(&meta) == self.identity
                && meta.len() == self.size
                && crate::logs::is_finished(&meta) == self.finished
        })
    }

    /// Our descriptor was closed: reopen the path if it still names our
    /// file; otherwise the file at the path is a successor, and ours is
    /// looked for where it was moved to.
    fn reattach(&mut self, now_ms: u64, moved_to: Option<&Path>) {
        match open_regular(&self.path) {
            Ok((file, meta)) if identity(&meta) == self.identity => {
                self.missing_since_ms = None;
                self.file = Some(file);
                return;
            }
            Ok(successor) => {
                self.missing_since_ms = None;
                self.successor = Some(successor);
            }
            Err(e) if is_gone(&e) => {
                self.missing_since_ms.get_or_insert(now_ms);
            }
            Err(_) => return,
        }
        if let Some(old) = moved_to.and_then(|p| open_regular(p).ok()) {
            if identity(&old.1) == self.identity {
                self.file = Some(old.0);
                return;
            }
        }
        if self.successor.is_some() {
            // Our file is out of reach: what it gained since we last read
            // it is lost (it was moved out of the directory while idle).
            log::debug!("{}: rotated while idle", self.path.display());
            self.size = self.offset;
            self.finished = false;
        }
    }

    fn missing_change(&self, now_ms: u64) -> Change {
        let Some(since) = self.missing_since_ms else {
            return Change::Unchanged;
        };
        let deleted_at_ms = since + DELETED_AFTER_MS;
        if now_ms >= deleted_at_ms {
            Change::Deleted
        } else {
            Change::Missing { deleted_at_ms }
        }
    }

    /// Moves to the successor (call when [`Tail::ready_to_switch`]): the
    /// streams get `reset` and the new file is read from its start.
    pub fn switch(&mut self) -> bool {
        let Some((file, meta)) = self.successor.take() else {
            return false;
        };
        self.file = Some(file);
        self.identity = identity(&meta);
        self.size = meta.len();
        self.finished = crate::logs::is_finished(&meta);
        self.restart();
        true
    }

    fn restart(&mut self) {
        self.offset = 0;
        self.lines = LineCount::default();
    }

    /// Reads the next chunk of new bytes into `buf` and frames its complete
    /// lines into `block` (cleared first). Returns false when nothing new.
    /// The last line of a file that is finished, or that has been replaced
    /// at its path, is sent even without its `\n`: it will not grow.
    pub fn read_new(&mut self, buf: &mut Vec<u8>, block: &mut Block) -> io::Result<bool> {
        block.clear(self.offset);
        if self.offset >= self.size {
            return Ok(false);
        }
        let want = (self.size - self.offset).min(CHUNK as u64) as usize;
        let n = self.read_at(self.offset, want, buf)?;
        let reaches_end = self.offset + n as u64 >= self.size;
        let final_bytes = self.finished || self.successor.is_some();
        block.frame(&buf[..n], final_bytes && reaches_end);
        let framed = (block.end_offset() - self.offset) as usize;
        if self.lines.counted_to == self.offset {
            // Counted up to here: keep counting as the tail reads.
            self.lines.add(&buf[..framed]);
        }
        self.offset = block.end_offset();
        if n < want {
            // The file shrank under us: the next look resets.
            self.size = self.offset + n as u64;
        }
        Ok(!block.is_empty())
    }

    /// `pread` of up to `len` bytes at `offset` into `buf` (resized to fit),
    /// reopening our file if its descriptor was let go.
    pub fn read_at(&mut self, offset: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
        if self.file.is_none() {
            match open_regular(&self.path) {
                Ok((file, meta)) if identity(&meta) == self.identity => self.file = Some(file),
                Ok(_) => return Err(io::ErrorKind::NotFound.into()),
                Err(e) => return Err(e),
            }
        }
        let Some(file) = &self.file else {
            return Err(io::ErrorKind::NotFound.into());
        };
        read_full(file, offset, len, buf)
    }

    /// Whether every line of the file has been counted (see
    /// [`Tail::count_some`]); a tail that read the file from its start
    /// counted as it went.
    pub fn is_counted(&self) -> bool {
        self.lines.counted_to >= self.size
    }

    /// Counts lines on from where counting stopped, reading at most `max`
    /// bytes; returns the bytes read. The `end` event waits for the count,
    /// which a huge log gets a piece per reactor turn.
    pub fn count_some(&mut self, max: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
        let want = self
            .size
            .saturating_sub(self.lines.counted_to)
            .min(max as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.read_at(self.lines.counted_to, want, buf)?;
        if n == 0 {
            // Shorter than it was: what is there is counted.
            self.lines.counted_to = self.size;
        }
        self.lines.add(&buf[..n]);
        Ok(n)
    }

    /// Lines in the whole file, once [`Tail::is_counted`] (a final line
    /// without `\n` counts when the log is finished).
    pub fn line_count(&mut self) -> io::Result<u64> {
        let unterminated = self.size > 0 && self.byte_at(self.size - 1)? != Some(b'\n');
        Ok(self.lines.newlines + u64::from(self.finished && unterminated))
    }

    /// The byte at `offset`, if the file reaches it.
    pub fn byte_at(&mut self, offset: u64) -> io::Result<Option<u8>> {
        let mut b = Vec::with_capacity(1);
        Ok((self.read_at(offset, 1, &mut b)? == 1).then(|| b[0]))
    }

    /// End of the last complete line before `size`: scanning back at most one
    /// [`MAX_LINE`] (a longer unterminated run is cut into pieces anyway).
    fn last_line_end(&mut self, size: u64) -> io::Result<u64> {
        let start = size.saturating_sub(MAX_LINE as u64);
        let mut buf = Vec::new();
        let got = self.read_at(start, (size - start) as usize, &mut buf)?;
        let end = match buf[..got].iter().rposition(|&b| b == b'\n') {
            Some(i) => start + i as u64 + 1,
            None => start,
        };
        if start == 0 {
            // The whole file was read: count it now, and then as it grows.
            self.lines.add(&buf[..end as usize]);
        }
        Ok(end)
    }
}

/// `pread` until `len` bytes or the end of the file.
fn read_full(file: &File, offset: u64, len: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
    buf.resize(len, 0);
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    /// A test's own directory, removed when the test ends.
    pub(in crate::engine) struct TempDir(PathBuf);

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

    pub(in crate::engine) fn temp_file(name: &str, content: &[u8]) -> (TempDir, PathBuf) {
        let dir = TempDir::new(name);
        let path = dir.0.join(name);
        fs::write(&path, content).expect("write");
        (dir, path)
    }

    #[test]
    fn opens_at_last_complete_line_and_reads_new_lines() {
        let (_dir, path) = temp_file("a.log", b"one\ntwo\npart");
        let mut tail = Tail::open(path.clone()).expect("open");
        assert_eq!(tail.offset(), 8);
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        f.write_all(b"ial\nthree\n").expect("append");
        assert_eq!(tail.refresh(100, true, None), Change::Unchanged);
        let (mut buf, mut block) = (Vec::new(), Block::default());
        assert!(tail.read_new(&mut buf, &mut block).expect("read"));
        assert_eq!(
            std::str::from_utf8(&block.bytes).expect("utf8"),
            "id: 16\ndata: partial\n\nid: 22\ndata: three\n\n"
        );
        assert_eq!(tail.offset(), 22);
        assert!(!tail.read_new(&mut buf, &mut block).expect("read"));
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
            let err = Tail::open(path).expect_err("a fifo must be refused");
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
        }
    }

    #[test]
    fn truncation_and_deletion() {
        let (_dir, path) = temp_file("c.log", b"l1\nl2\n");
        let mut tail = Tail::open(path.clone()).expect("open");
        fs::write(&path, b"x\n").expect("truncate");
        assert_eq!(tail.refresh(10, true, None), Change::Reset);
        assert_eq!(tail.offset(), 0);
        fs::remove_file(&path).expect("rm");
        assert_eq!(
            tail.refresh(20, true, None),
            Change::Missing {
                deleted_at_ms: 20 + DELETED_AFTER_MS
            }
        );
        assert_eq!(
            tail.refresh(20 + DELETED_AFTER_MS, true, None),
            Change::Deleted
        );
    }

    #[test]
    fn finished_counts_a_last_unterminated_line() {
        let (_dir, path) = temp_file("d.log", b"a\nb\nc");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).expect("chmod");
        let mut tail = Tail::open(path).expect("open");
        assert!(tail.is_complete());
        assert!(tail.is_counted(), "a small file is counted when opened");
        assert_eq!(tail.line_count().expect("count"), 3);
    }

    #[test]
    fn rotation_reads_the_old_file_to_its_end_before_switching() {
        let (dir, path) = temp_file("r.log", b"one\n");
        let mut tail = Tail::open(path.clone()).expect("open");
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        f.write_all(b"two\npart").expect("append");
        fs::rename(&path, dir.0.join("r.log.1")).expect("rename");
        fs::write(&path, b"new\n").expect("create");
        assert_eq!(tail.refresh(10, true, None), Change::Unchanged);
        assert!(!tail.ready_to_switch());
        let (mut buf, mut block) = (Vec::new(), Block::default());
        assert!(tail.read_new(&mut buf, &mut block).expect("read"));
        // The old file will not grow: its unterminated last line goes too.
        assert_eq!(
            std::str::from_utf8(&block.bytes).expect("utf8"),
            "id: 8\ndata: two\n\nid: 12\ndata: part\n\n"
        );
        assert!(tail.ready_to_switch());
        assert!(tail.switch());
        assert_eq!((tail.offset(), tail.size()), (0, 4));
    }

    #[test]
    fn an_idle_tail_finds_its_renamed_file_by_the_moved_to_name() {
        let (dir, path) = temp_file("m.log", b"one\n");
        let mut tail = Tail::open(path.clone()).expect("open");
        tail.close_file();
        assert_eq!(tail.files_open(), 0);
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        f.write_all(b"two\n").expect("append");
        let moved = dir.0.join("m.log.1");
        fs::rename(&path, &moved).expect("rename");
        fs::write(&path, b"new\n").expect("create");
        assert_eq!(tail.refresh(10, true, Some(&moved)), Change::Unchanged);
        assert_eq!(tail.files_open(), 2);
        let (mut buf, mut block) = (Vec::new(), Block::default());
        assert!(tail.read_new(&mut buf, &mut block).expect("read"));
        assert_eq!(
            std::str::from_utf8(&block.bytes).expect("utf8"),
            "id: 8\ndata: two\n\n"
        );
        assert!(tail.ready_to_switch() && tail.switch());
        assert_eq!(tail.files_open(), 1);
    }
}
