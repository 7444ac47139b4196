//! Simulated writers (the proof of concept's `POST /api/logs`): each creates
//! `<uuid>.log`, writes `[LOG CREATED] <time>`, then one random line every
//! write interval until its duration is over, and finally clears the file's
//! write bits, which tells every stream (in this or any other daemon sharing
//! the directory) that the log is finished. Writers hold no thread and no
//! timer of their own: the reactor's wheel calls [`Writers::tick`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use slab::Slab;

use super::{text, LogDir};

/// One running writer.
#[derive(Debug)]
pub struct Writer {
    pub id: String,
    path: PathBuf,
    file: File,
    /// When its last line is due (ms on the reactor's clock).
    ends_at_ms: u64,
    pub generation: u32,
}

/// What a tick of one writer did.
#[derive(Debug, PartialEq, Eq)]
pub enum Tick {
    /// Wrote a line; call again after the interval.
    Wrote,
    /// Its duration is over; the file is now read-only.
    Finished,
    /// A write failed (disk full, directory gone): the writer is ended.
    Failed(String),
}

/// All running writers.
#[derive(Debug, Default)]
pub struct Writers {
    writers: Slab<Writer>,
    next_generation: u32,
}

impl Writers {
    pub fn len(&self) -> usize {
        self.writers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writers.is_empty()
    }

    /// Creates a new log and writes its first line; returns the writer's key
    /// and generation, and the log id.
    pub fn create(
        &mut self,
        dir: &LogDir,
        duration_ms: u64,
        now_ms: u64,
    ) -> io::Result<(usize, u32, String)> {
        let id = uuid::Uuid::new_v4().to_string();
        let path = dir.file_of(&id);
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)?;
        // The mark that lets retention know this log is logcast's; where the
        // file system has no extended attributes, only this run knows.
        if let Err(e) = super::index::mark_ours(&file) {
            log::debug!("log {id}: cannot mark as created by logcast: {e}");
        }
        let first = format!("[LOG CREATED] {}\n", crate::clock::now_rfc3339());
        if let Err(e) = file.write_all(first.as_bytes()) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let writer = Writer {
            id: id.clone(),
            path,
            file,
            ends_at_ms: now_ms + duration_ms,
            generation,
        };
        Ok((self.writers.insert(writer), generation, id))
    }

    /// The log id of the writer at `key`.
    pub fn id(&self, key: usize) -> Option<&str> {
        self.writers.get(key).map(|w| w.id.as_str())
    }

    /// The writer at `key` if its generation matches (a stale timer finds nothing).
    pub fn is_live(&self, key: usize, generation: u32) -> bool {
        self.writers
            .get(key)
            .is_some_and(|w| w.generation == generation)
    }

    /// Writes the next random line: one `write` on an O_APPEND descriptor, so
    /// a line is never interleaved with another writer's.
    pub fn tick<R: rand::Rng>(&mut self, key: usize, now_ms: u64, rng: &mut R) -> Tick {
        let Some(writer) = self.writers.get_mut(key) else {
            return Tick::Finished;
        };
        let mut line = text::random_line(rng);
        line.push('\n');
        if let Err(e) = writer.file.write_all(line.as_bytes()) {
            let message = format!("log {}: write failed: {e}", writer.id);
            self.finish(key);
            return Tick::Failed(message);
        }
        if now_ms >= writer.ends_at_ms {
            self.finish(key);
            return Tick::Finished;
        }
        Tick::Wrote
    }

    /// Ends a writer: closes its file and makes it read-only (finished).
    pub fn finish(&mut self, key: usize) {
        if let Some(writer) = self.writers.try_remove(key) {
            if let Err(e) = fs::set_permissions(&writer.path, fs::Permissions::from_mode(0o444)) {
                log::warn!("log {}: cannot mark finished: {e}", writer.id);
            }
        }
    }

    /// Stops the writer of log `id`, if one runs (its log is being
    /// deleted: no finish, the file is about to go).
    pub fn stop(&mut self, id: &str) {
        let key = self
            .writers
            .iter()
            .find(|(_, w)| w.id == id)
            .map(|(k, _)| k);
        if let Some(key) = key {
            self.writers.remove(key);
        }
    }

    /// Ends every writer (the daemon is stopping).
    pub fn finish_all(&mut self) {
        let keys: Vec<usize> = self.writers.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.finish(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_lines_then_finishes_read_only() {
        let dir_path = std::env::temp_dir().join(format!("logcast-writer-{}", std::process::id()));
        let dir = LogDir::open(&dir_path).expect("dir");
        let mut writers = Writers::default();
        let (key, generation, id) = writers.create(&dir, 1000, 0).expect("create");
        assert!(writers.is_live(key, generation));
        let mut rng = rand::thread_rng();
        assert_eq!(writers.tick(key, 500, &mut rng), Tick::Wrote);
        assert_eq!(writers.tick(key, 1000, &mut rng), Tick::Finished);
        assert!(!writers.is_live(key, generation));
        let content = fs::read_to_string(dir.file_of(&id)).expect("read");
        assert!(content.starts_with("[LOG CREATED] "));
        assert_eq!(content.lines().count(), 3);
        let meta = fs::metadata(dir.file_of(&id)).expect("meta");
        assert!(super::super::is_finished(&meta));
        let _ = fs::remove_dir_all(&dir_path);
    }
}
