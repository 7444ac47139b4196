//! The index of logs: what `GET /api/logs` pages through and what retention
//! picks from, kept in memory so that no request scans the directory,
//! however many files it holds (SPEC section 3).
//!
//! It is built at start by a pass over the directory cut into bounded steps
//! ([`LogIndex::step`], [`ENTRIES_PER_STEP`] entries each), and kept current
//! from the daemon's own creates, finishes and deletes, and from the
//! directory's change notifications ([`LogIndex::note`]): each name that
//! changed is looked at once (one `stat`), at most [`LOOKS_PER_STEP`] per
//! step. Where there are no notifications (polling, or after a queue
//! overflow) a new pass starts every [`RESCAN_MS`]: a pass reads names only,
//! stats the names it does not know, and forgets, at its end, the ones it no
//! longer saw.
//!
//! Which logs logcast created is *known*, not guessed from the name: a log
//! logcast creates carries the extended attribute [`OURS_XATTR`] on its inode
//! (a file put in its place later is another inode and has none), and the
//! logs created in this run are remembered with their inode even where the
//! file system has no extended attributes.
//!
//! Each change of its state (a log added, finished or removed) is recorded
//! in its journal, [`Changes`], which `GET /api/events` streams; a log looked
//! at again without a change records nothing.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::changes::{Changes, Kind, ResetReason};
use super::{is_finished, valid_id, LogInfo};

/// The extended attribute that marks a file as created by logcast.
pub const OURS_XATTR: &str = "user.logcast";
const OURS_VALUE: &[u8] = b"created";

/// Directory entries read per step (each a `getdents` share and, for a new
/// name, one `statx` and one `getxattr`: ~15 µs, so a step takes ~4 ms;
/// 1,024 made 15 ms turns while a million files were indexed).
pub const ENTRIES_PER_STEP: usize = 256;

/// Changed names looked at per step.
pub const LOOKS_PER_STEP: usize = 256;

/// How often a pass over the directory starts where nothing notifies.
pub const RESCAN_MS: u64 = 1000;

/// The largest page of the list, and its default (SPEC section 3).
pub const MAX_PAGE: usize = 10_000;
pub const DEFAULT_PAGE: usize = 1000;

/// Where a page of the list starts: just older than this log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    created_ms: u64,
    id: String,
}

impl Cursor {
    /// `<created ms>-<id>`; anything else is `None`.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (ms, id) = text.split_once('-')?;
        if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) || !valid_id(id) {
            return None;
        }
        Some(Cursor {
            created_ms: ms.parse().ok()?,
            id: id.to_string(),
        })
    }

    pub fn to_text(&self) -> String {
        format!("{}-{}", self.created_ms, self.id)
    }
}

/// One page of the list, newest first.
#[derive(Debug)]
pub struct Page {
    pub logs: Vec<LogInfo>,
    /// Where the next page starts, when more remain.
    pub next: Option<Cursor>,
    /// Every log in the index.
    pub total: usize,
}

/// What the index knows of one log.
#[derive(Clone, Copy, Debug)]
struct Entry {
    created_ms: u64,
    size: u64,
    writing: bool,
    /// Created by logcast (see the module doc).
    ours: bool,
    dev: u64,
    ino: u64,
    /// The last directory pass that saw it.
    seen_pass: u32,
}

/// A retention candidate, with what proves it is still the same file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retained {
    pub id: Rc<str>,
    pub created_ms: u64,
    pub size: u64,
    pub dev: u64,
    pub ino: u64,
}

/// A pass over the directory in progress: reading its names, then
/// sweeping the index (in the same bounded steps) for names it did not see.
#[derive(Debug)]
enum Pass {
    Reading {
        entries: fs::ReadDir,
        number: u32,
    },
    Sweeping {
        number: u32,
        after: Option<(u64, Rc<str>)>,
    },
}

#[derive(Debug)]
pub struct LogIndex {
    dir: PathBuf,
    /// A B-tree, not a hash map: a hash map of a million logs doubles in
    /// one step (a rehash of every entry that froze the reactor ~150 ms).
    entries: BTreeMap<Rc<str>, Entry>,
    /// Every log by (created, id): the list's order, newest last.
    by_age: BTreeSet<(u64, Rc<str>)>,
    /// Finished logs logcast created, by (created, id): retention's order.
    retained: BTreeSet<(u64, Rc<str>)>,
    retained_bytes: u64,
    /// Names that changed and wait for a look.
    changed: VecDeque<String>,
    changed_set: HashSet<String>,
    pass: Option<Pass>,
    passes: u32,
    /// The first pass (the build at start) is over.
    built: bool,
    /// Passes repeat every [`RESCAN_MS`] (no notifications).
    rescanning: bool,
    next_pass_ms: u64,
    /// What changed, for `GET /api/events`.
    changes: Changes,
}

impl LogIndex {
    /// An empty index of `dir` whose first pass starts at the first step.
    pub fn new(dir: &Path) -> LogIndex {
        LogIndex {
            dir: dir.to_path_buf(),
            entries: BTreeMap::new(),
            by_age: BTreeSet::new(),
            retained: BTreeSet::new(),
            retained_bytes: 0,
            changed: VecDeque::new(),
            changed_set: HashSet::new(),
            pass: None,
            passes: 0,
            built: false,
            rescanning: false,
            next_pass_ms: 0,
            changes: Changes::new(rand::random()),
        }
    }

    /// The journal of changes (see [`super::changes`]).
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_built(&self) -> bool {
        self.built
    }

    /// Work is waiting that the next step would do now.
    pub fn has_work(&self) -> bool {
        self.pass.is_some() || !self.changed.is_empty()
    }

    /// When the next pass is due, if one waits for the clock.
    pub fn next_pass_ms(&self) -> Option<u64> {
        let waiting = self.pass.is_none() && (self.rescanning || !self.built);
        waiting.then_some(self.next_pass_ms)
    }

    /// With `true`, nothing notifies: the directory is re-read every
    /// [`RESCAN_MS`]. With `false`, passes run only when asked for.
    pub fn set_rescanning(&mut self, rescanning: bool) {
        self.rescanning = rescanning;
    }

    /// Notifications were lost: read the whole directory again.
    pub fn rescan(&mut self) {
        self.next_pass_ms = 0;
        if self.pass.is_none() {
            self.start_pass();
        }
    }

    /// The name `name` in the directory may have changed (created, removed,
    /// renamed, written, finished): look at it in a coming step.
    pub fn note(&mut self, name: &str) {
        let Some(id) = name.strip_suffix(".log") else {
            return;
        };
        if valid_id(id) {
            self.queue_look(id);
        }
    }

    /// One bounded step: changed names first, then a share of the pass.
    pub fn step(&mut self, now_ms: u64) {
        for _ in 0..LOOKS_PER_STEP {
            let Some(id) = self.changed.pop_front() else {
                break;
            };
            self.changed_set.remove(&id);
            self.look(&id);
        }
        if self.pass.is_none() && (!self.built || self.rescanning) && now_ms >= self.next_pass_ms {
            self.start_pass();
        }
        if self.pass.is_some() {
            self.continue_pass(now_ms);
        }
    }

    fn start_pass(&mut self) {
        match fs::read_dir(&self.dir) {
            Ok(entries) => {
                self.passes = self.passes.wrapping_add(1);
                self.pass = Some(Pass::Reading {
                    entries,
                    number: self.passes,
                });
            }
            Err(e) => log::warn!("log dir {}: cannot list: {e}", self.dir.display()),
        }
    }

    fn continue_pass(&mut self, now_ms: u64) {
        let next = match self.pass.take() {
            Some(Pass::Reading {
                mut entries,
                number,
            }) => Some(if self.read_names(&mut entries, number) {
                Pass::Reading { entries, number }
            } else {
                Pass::Sweeping {
                    number,
                    after: None,
                }
            }),
            Some(Pass::Sweeping { number, after }) => self.sweep(number, after),
            None => None,
        };
        if next.is_none() {
            self.pass_over(now_ms);
        }
        self.pass = next;
    }

    /// Reads up to [`ENTRIES_PER_STEP`] names; false when the directory is
    /// read to its end (the sweep comes next).
    fn read_names(&mut self, entries: &mut fs::ReadDir, number: u32) -> bool {
        for _ in 0..ENTRIES_PER_STEP {
            match entries.next() {
                Some(Ok(entry)) => self.saw(&entry, number),
                Some(Err(_)) => continue,
                None => return false,
            }
        }
        true
    }

    /// Queues a look at up to [`ENTRIES_PER_STEP`] known logs the pass did
    /// not see (removed meanwhile, or created after it began); `None` when
    /// the sweep is over.
    fn sweep(&mut self, number: u32, after: Option<(u64, Rc<str>)>) -> Option<Pass> {
        let chunk: Vec<(u64, Rc<str>)> = match &after {
            Some(a) => self
                .by_age
                .range((
                    std::ops::Bound::Excluded(a.clone()),
                    std::ops::Bound::Unbounded,
                ))
                .take(ENTRIES_PER_STEP)
                .cloned()
                .collect(),
            None => self.by_age.iter().take(ENTRIES_PER_STEP).cloned().collect(),
        };
        for (_, id) in &chunk {
            if self.entries.get(id).is_some_and(|e| e.seen_pass != number) {
                self.queue_look(id);
            }
        }
        if chunk.len() < ENTRIES_PER_STEP {
            return None;
        }
        Some(Pass::Sweeping {
            number,
            after: chunk.last().cloned(),
        })
    }

    /// A name the pass read: known ones are marked seen, new ones looked at.
    fn saw(&mut self, entry: &fs::DirEntry, pass: u32) {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            return;
        };
        if !valid_id(id) {
            return;
        }
        match self.entries.get_mut(id) {
            Some(e) => e.seen_pass = pass,
            None => {
                self.look(id);
                if let Some(e) = self.entries.get_mut(id) {
                    e.seen_pass = pass;
                }
            }
        }
    }

    fn pass_over(&mut self, now_ms: u64) {
        if !self.built {
            self.built = true;
            // Nothing was recorded during the build: whoever listed or
            // subscribed before its end must list again.
            self.changes.record_reset(ResetReason::Indexed);
            log::info!(
                "log dir {}: {} logs indexed",
                self.dir.display(),
                self.entries.len()
            );
        }
        self.next_pass_ms = now_ms + RESCAN_MS;
    }

    fn queue_look(&mut self, id: &str) {
        if self.changed_set.insert(id.to_string()) {
            self.changed.push_back(id.to_string());
        }
    }

    /// Looks at one log's file now and brings its entry up to date.
    fn look(&mut self, id: &str) {
        let path = self.dir.join(format!("{id}.log"));
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {
                let known_ours = self
                    .entries
                    .get(id)
                    .is_some_and(|e| e.ours && e.ino == meta.ino() && e.dev == meta.dev());
                let ours = known_ours || carries_ours_mark(&path);
                self.put(id, &meta, ours);
            }
            _ => self.remove(id),
        }
    }

    /// A log logcast just created (its inode is remembered as ours even
    /// where the mark could not be set).
    pub fn created(&mut self, id: &str, meta: &Metadata) {
        self.put(id, meta, true);
    }

    /// A log's file changed in a way the daemon itself caused (its writer
    /// finished): look at it now.
    pub fn refresh(&mut self, id: &str) {
        self.look(id);
    }

    /// Forgets a log (its file is gone).
    pub fn remove(&mut self, id: &str) {
        let Some((key, entry)) = self.entries.remove_entry(id) else {
            return;
        };
        self.by_age.remove(&(entry.created_ms, key.clone()));
        self.unretain(&key, &entry);
        self.journal(Kind::Deleted, &key, &entry);
    }

    fn put(&mut self, id: &str, meta: &Metadata, ours: bool) {
        let mut entry = Entry {
            created_ms: created_ms(meta),
            size: meta.len(),
            writing: !is_finished(meta),
            ours,
            dev: meta.dev(),
            ino: meta.ino(),
            seen_pass: self.passes,
        };
        let mut change = Some(Kind::Created);
        let key: Rc<str> = match self.entries.remove_entry(id) {
            Some((key, old)) => {
                self.by_age.remove(&(old.created_ms, key.clone()));
                self.unretain(&key, &old);
                if old.ino == entry.ino && old.dev == entry.dev {
                    // The same file: it keeps its place in the list.
                    entry.created_ms = old.created_ms;
                    change = (old.writing && !entry.writing).then_some(Kind::Finished);
                } else {
                    // Another file under that name: the old one is gone.
                    self.journal(Kind::Deleted, &key, &old);
                }
                key
            }
            None => Rc::from(id),
        };
        self.by_age.insert((entry.created_ms, key.clone()));
        if entry.ours && !entry.writing {
            self.retained.insert((entry.created_ms, key.clone()));
            self.retained_bytes += entry.size;
        }
        if let Some(kind) = change {
            self.journal(kind, &key, &entry);
        }
        self.entries.insert(key, entry);
    }

    /// Records a change of log `id`, once the first build is over (see
    /// [`super::changes`]: the build's end is recorded as a reset).
    fn journal(&mut self, kind: Kind, id: &str, entry: &Entry) {
        if self.built {
            self.changes.record(kind, &entry.info(id).to_json(None));
        }
    }

    fn unretain(&mut self, key: &Rc<str>, entry: &Entry) {
        if self.retained.remove(&(entry.created_ms, key.clone())) {
            self.retained_bytes -= entry.size;
        }
    }

    /// A page of at most `limit` logs older than `before`, newest first.
    /// Where nothing notifies (the index is rescanning), each listed log is
    /// looked at now (`limit` stats at most), so sizes and states are
    /// current. Where notifications keep the index current, only the logs
    /// still being written are: appends to a file nobody follows wake no
    /// one (see [`crate::engine::watch`]), so their sizes are read here.
    pub fn page(&mut self, limit: usize, before: Option<&Cursor>) -> Page {
        let ids: Vec<Rc<str>> = match before {
            Some(c) => self
                .by_age
                .range(..(c.created_ms, Rc::from(c.id.as_str())))
                .rev()
                .take(limit)
                .map(|(_, id)| id.clone())
                .collect(),
            None => self
                .by_age
                .iter()
                .rev()
                .take(limit)
                .map(|(_, id)| id.clone())
                .collect(),
        };
        let last = ids.last().and_then(|id| {
            let e = self.entries.get(id)?;
            Some(Cursor {
                created_ms: e.created_ms,
                id: id.to_string(),
            })
        });
        let mut logs = Vec::with_capacity(ids.len());
        for id in &ids {
            if self.rescanning || self.entries.get(id).is_some_and(|e| e.writing) {
                self.look(id);
            }
            if let Some(e) = self.entries.get(id) {
                logs.push(e.info(id));
            }
        }
        let more = last.as_ref().is_some_and(|c| {
            self.by_age
                .range(..(c.created_ms, Rc::from(c.id.as_str())))
                .next_back()
                .is_some()
        });
        Page {
            logs,
            next: if more { last } else { None },
            total: self.entries.len(),
        }
    }

    /// The oldest finished log logcast created, if any.
    pub fn oldest_retained(&self) -> Option<Retained> {
        let (created_ms, id) = self.retained.first()?;
        let e = self.entries.get(id)?;
        Some(Retained {
            id: id.clone(),
            created_ms: *created_ms,
            size: e.size,
            dev: e.dev,
            ino: e.ino,
        })
    }

    /// How many finished logs logcast created, and their bytes.
    pub fn retained_totals(&self) -> (u64, u64) {
        (self.retained.len() as u64, self.retained_bytes)
    }

    /// Retention could not remove this log: it stays listed but stops being
    /// a candidate (a later look at it makes it one again).
    pub fn give_up(&mut self, id: &str) {
        if let Some((key, entry)) = self.entries.get_key_value(id) {
            let (key, entry) = (key.clone(), *entry);
            self.unretain(&key, &entry);
        }
    }

    /// The file this index last saw for `id`: (device, inode).
    pub fn identity(&self, id: &str) -> Option<(u64, u64)> {
        self.entries.get(id).map(|e| (e.dev, e.ino))
    }
}

impl Entry {
    fn info(&self, id: &str) -> LogInfo {
        LogInfo {
            id: id.to_string(),
            size: self.size,
            created: UNIX_EPOCH + std::time::Duration::from_millis(self.created_ms),
            writing: self.writing,
        }
    }
}

/// Birth time where the file system keeps it, else the last change; in ms.
fn created_ms(meta: &Metadata) -> u64 {
    let t = meta
        .created()
        .or_else(|_| meta.modified())
        .unwrap_or(UNIX_EPOCH);
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Milliseconds since the epoch now (retention by age compares to it).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Marks a file logcast just created as its own (see the module doc).
/// Fails where the file system has no user extended attributes.
pub fn mark_ours(file: &File) -> io::Result<()> {
    rustix::fs::fsetxattr(
        file,
        OURS_XATTR,
        OURS_VALUE,
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(io::Error::from)
}

/// Whether the file at `path` carries logcast's mark (not through a symlink:
/// a link to a file elsewhere is never ours to delete).
pub fn carries_ours_mark(path: &Path) -> bool {
    let mut value = [0u8; 16];
    match rustix::fs::lgetxattr(path, OURS_XATTR, &mut value) {
        Ok(n) => value.get(..n) == Some(OURS_VALUE),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("logcast-index-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        dir
    }

    fn build(index: &mut LogIndex) -> usize {
        let mut steps = 0;
        while !index.is_built() || index.has_work() {
            index.step(0);
            steps += 1;
        }
        steps
    }

    #[test]
    fn builds_in_bounded_steps_and_pages_newest_first() {
        let dir = temp_dir("build");
        let n = ENTRIES_PER_STEP * 2 + 10;
        for i in 0..n {
            fs::write(dir.join(format!("log{i:05}.log")), b"x\n").expect("write");
        }
        fs::write(dir.join("notes.txt"), b"").expect("write");
        fs::write(dir.join(".hidden.log"), b"").expect("write");
        let mut index = LogIndex::new(&dir);
        assert!(
            build(&mut index) >= 3,
            "one step reads at most ENTRIES_PER_STEP"
        );
        assert_eq!(index.len(), n);
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = index.page(1000, before.as_ref());
            assert_eq!(page.total, n);
            seen.extend(page.logs.iter().map(|l| l.id.clone()));
            match page.next {
                Some(c) => before = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), n);
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), n);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_marked_or_own_finished_logs_are_retained() {
        let dir = temp_dir("ours");
        let mut index = LogIndex::new(&dir);
        build(&mut index);
        let ours_path = dir.join("mine.log");
        let mut file = File::create(&ours_path).expect("create");
        file.write_all(b"a\n").expect("write");
        let marked = mark_ours(&file).is_ok();
        index.created("mine", &fs::metadata(&ours_path).expect("meta"));
        assert_eq!(index.retained_totals().0, 0, "still being written");
        let mut perms = fs::metadata(&ours_path).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o444);
        fs::set_permissions(&ours_path, perms.clone()).expect("chmod");
        index.refresh("mine");
        assert_eq!(index.retained_totals(), (1, 2));
        let foreign = dir.join("0b7c3a52-49a3-4f43-9d0d-6b4b7a0f1e55.log");
        fs::write(&foreign, b"zz\n").expect("write");
        fs::set_permissions(&foreign, perms).expect("chmod");
        index.note("0b7c3a52-49a3-4f43-9d0d-6b4b7a0f1e55.log");
        index.step(0);
        assert_eq!(index.len(), 2);
        assert_eq!(index.retained_totals().0, 1, "a uuid name is no proof");
        // A fresh index (a restart) knows ours by its mark.
        let mut again = LogIndex::new(&dir);
        build(&mut again);
        let expected = if marked { 1 } else { 0 };
        assert_eq!(again.retained_totals().0, expected);
        let _ = fs::remove_dir_all(&dir);
    }

    /// The event names the journal holds after change `after`.
    fn journaled(index: &LogIndex, after: u64) -> Vec<String> {
        let mut frames = crate::logs::changes::Frames::default();
        index.changes().frames_after(after, usize::MAX, &mut frames);
        String::from_utf8_lossy(&frames.bytes)
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn changes_are_journaled_once_and_not_during_the_build() {
        let dir = temp_dir("changes");
        fs::write(dir.join("old.log"), b"x\n").expect("write");
        let mut index = LogIndex::new(&dir);
        build(&mut index);
        assert_eq!(journaled(&index, 0), ["reset"], "the build: one reset");
        let built = index.changes().last_seq();
        let path = dir.join("new.log");
        fs::write(&path, b"a\n").expect("write");
        for _ in 0..2 {
            index.note("new.log");
            index.step(0);
        }
        let mut perms = fs::metadata(&path).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o444);
        fs::set_permissions(&path, perms).expect("chmod");
        for _ in 0..2 {
            index.refresh("new");
        }
        fs::remove_file(&path).expect("rm");
        for _ in 0..2 {
            index.note("new.log");
            index.step(0);
        }
        assert_eq!(journaled(&index, built), ["created", "finished", "deleted"]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor::parse("1733050000123-abc-def.x").expect("parse");
        assert_eq!(c.to_text(), "1733050000123-abc-def.x");
        for bad in ["", "x-abc", "123", "123-", "123-.hidden", "-abc", "12a-b"] {
            assert!(Cursor::parse(bad).is_none(), "{bad}");
        }
    }
}
