//! Retention (`--retain-files`, `--retain-bytes`, `--retain-age`): which
//! finished log logcast created goes next, and removing it only if it is
//! still that log. The candidates and their order (oldest first) are the
//! index's ([`super::index::LogIndex::oldest_retained`]), so a check costs
//! no directory scan: the wheel runs it every [`TICK_MS`].

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;

use super::index::{LogIndex, Retained};
use super::{is_finished, LogDir};
use crate::config::Retention;

/// How often retention looks (it acts within a second of a limit passed).
pub const TICK_MS: u64 = 250;

/// Most files removed per tick: a burst of finished logs goes over several
/// ticks (an `unlink` is 10-20 µs: 256 keep a tick near 5 ms).
pub const REMOVALS_PER_TICK: usize = 256;

/// The log retention removes next, if a limit is passed.
pub fn next_victim(index: &LogIndex, policy: &Retention, now_wall_ms: u64) -> Option<Retained> {
    let (files, bytes) = index.retained_totals();
    let oldest = index.oldest_retained()?;
    let too_many = policy.files > 0 && files > policy.files;
    let too_big = policy.bytes > 0 && bytes > policy.bytes;
    let too_old =
        policy.age_ms > 0 && now_wall_ms.saturating_sub(oldest.created_ms) >= policy.age_ms;
    (too_many || too_big || too_old).then_some(oldest)
}

/// Removes the victim's file if it is still the file the index knew (same
/// device and inode, a regular file, finished); `Ok(false)` if it changed,
/// which leaves it alone. A file swapped in between this check and the
/// `unlink` cannot be told apart: that window is one system call wide.
pub fn remove_if_unchanged(dir: &LogDir, victim: &Retained) -> io::Result<bool> {
    let path = dir.file_of(&victim.id);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let same = meta.is_file()
        && meta.dev() == victim.dev
        && meta.ino() == victim.ino
        && is_finished(&meta);
    if !same {
        return Ok(false);
    }
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
