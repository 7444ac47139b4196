//! What worker processes share: nothing but the log directory and a small
//! state directory where each worker publishes, once a second, its counters
//! and how many streams it holds per log. Any worker answering `/metrics` or
//! `GET /api/logs/<id>` adds the others' latest snapshots to its own live
//! figures, so the answer describes the whole daemon whichever worker the
//! kernel picked (figures of other workers are at most a second old).
//! Each worker rewrites its own snapshot file in place, with one `pwrite`:
//! no file is created or renamed after start, since every change to a
//! directory takes its lock, and 64 workers doing that every second on two
//! busy cores queued behind whichever held it (761 ms in one `openat`). A
//! snapshot carries its length and a checksum, so a reader that raced the
//! write sees the mismatch and reads again. The directory is private to
//! the daemon's user, and checked again by every worker
//! ([`crate::statedir`]): nobody else can plant a snapshot there.
//!
//! What a worker needs every second, its siblings' connection count (for
//! the daemon-wide `--max-connections`), is not read from their snapshots:
//! with W workers that is W-1 opens and parses per worker per second, W²
//! in all (4,000 a second at 64 workers). Each worker instead owns one
//! 8-byte slot of a shared file, `connections`, and reads every slot with
//! one `pread`: O(W) system calls a second for the whole daemon. The
//! snapshots are read only when someone asks (`/metrics`, subscribers).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use rustix::process::Pid;

use crate::metrics::Metrics;
use crate::statedir::StateDir;

/// How often a worker publishes its snapshot.
pub const PUBLISH_MS: u64 = 1000;

/// This process's place among the workers.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub index: usize,
    pub workers: usize,
    pub state_dir: StateDir,
    /// `--max-connections` of the whole daemon.
    pub max_connections: usize,
    /// The supervisor that made the state directory and removes it.
    pub supervisor: Option<Pid>,
    /// The shared file of connection counts, a slot per worker.
    counts: Arc<File>,
    /// This worker's snapshot file, rewritten in place.
    snapshot: Arc<File>,
}

/// The shared file of connection counts.
const COUNTS: &str = "connections";
/// Bytes per worker in [`COUNTS`]: a little-endian u64.
const SLOT: usize = 8;

/// Another worker's latest figures.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub values: Vec<u64>,
    pub rss_bytes: u64,
    pub open_fds: u64,
    pub subscribers: HashMap<String, u64>,
}

pub const ENV_INDEX: &str = "LOGCAST_WORKER";
pub const ENV_COUNT: &str = "LOGCAST_WORKERS";
pub const ENV_STATE: &str = "LOGCAST_STATE_DIR";
pub const ENV_MAX_CONNECTIONS: &str = "LOGCAST_MAX_CONNECTIONS";

impl Cluster {
    /// The cluster this worker belongs to, from the supervisor's
    /// environment; its state directory is checked before any use.
    pub fn from_env() -> Result<Cluster, String> {
        fn var<T: std::str::FromStr>(name: &str) -> Result<T, String> {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("logcast: worker started without a valid ${name}"))
        }
        let state_dir = std::env::var_os(ENV_STATE)
            .map(PathBuf::from)
            .ok_or_else(|| format!("logcast: worker started without ${ENV_STATE}"))?;
        Cluster::join(
            var(ENV_INDEX)?,
            var(ENV_COUNT)?,
            StateDir::open(&state_dir)?,
            var(ENV_MAX_CONNECTIONS)?,
            rustix::process::getppid(),
        )
    }

    /// Worker `index` of `workers` sharing `state_dir`.
    pub fn join(
        index: usize,
        workers: usize,
        state_dir: StateDir,
        max_connections: usize,
        supervisor: Option<Pid>,
    ) -> Result<Cluster, String> {
        let counts = state_dir.open_shared(COUNTS).map_err(|e| {
            format!(
                "logcast: worker {index}: cannot open {}/{COUNTS}: {e}",
                state_dir.path().display()
            )
        })?;
        let name = Cluster::file_of(index);
        let snapshot = state_dir.open_shared(&name).map_err(|e| {
            format!(
                "logcast: worker {index}: cannot open {}/{name}: {e}",
                state_dir.path().display()
            )
        })?;
        Ok(Cluster {
            index,
            workers,
            state_dir,
            max_connections,
            supervisor,
            counts: Arc::new(counts),
            snapshot: Arc::new(snapshot),
        })
    }

    /// Puts this worker's connection count in its slot of the shared file.
    fn write_count(&self, connections: u64) -> io::Result<()> {
        let offset = (self.index * SLOT) as u64;
        self.counts.write_all_at(&connections.to_le_bytes(), offset)
    }

    /// The other workers' connections, as they last wrote them: one read of
    /// the shared file. A slot not yet written counts 0; a value above the
    /// daemon's limit (a write torn by a concurrent read) counts as that limit.
    pub fn sibling_connections(&self) -> usize {
        let mut bytes = vec![0u8; self.workers * SLOT];
        let mut got = 0;
        while got < bytes.len() {
            match self.counts.read_at(&mut bytes[got..], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        bytes
            .chunks_exact(SLOT)
            .enumerate()
            .filter(|&(i, _)| i != self.index)
            .map(|(_, slot)| {
                let mut b = [0u8; SLOT];
                b.copy_from_slice(slot);
                (u64::from_le_bytes(b) as usize).min(self.max_connections)
            })
            .sum()
    }

    fn file_of(index: usize) -> String {
        format!("worker-{index}")
    }

    /// Writes this worker's snapshot (`open_fds`: its open descriptors).
    pub fn publish<'a>(
        &self,
        metrics: &Metrics,
        open_fds: u64,
        subscribers: impl Iterator<Item = (&'a str, u64)>,
    ) -> io::Result<()> {
        let mut text = String::from("metrics");
        for v in metrics.to_values() {
            text.push(' ');
            text.push_str(&v.to_string());
        }
        text.push_str(&format!(
            "\nprocess {} {}\n",
            crate::sys::resident_bytes(),
            open_fds
        ));
        for (id, n) in subscribers {
            text.push_str(&format!("sub {id} {n}\n"));
        }
        let framed = format!(
            "snapshot {} {:016x}\n{text}",
            text.len(),
            fnv1a(text.as_bytes())
        );
        self.snapshot.write_all_at(framed.as_bytes(), 0)?;
        self.write_count(metrics.connections_open)
    }

    /// Removes this worker's snapshot when it stops. The supervisor removes
    /// the state directory at exit; if it was killed (workers are then told
    /// to stop by their parent-death signal, and have a new parent), the
    /// last worker out does. While the supervisor lives the directory stays,
    /// for the workers it restarts.
    pub fn withdraw(&self) {
        let _ = self.write_count(0);
        let _ = self.state_dir.remove(&Cluster::file_of(self.index));
        if rustix::process::getppid() != self.supervisor {
            let _ = self.state_dir.remove_if_empty();
        }
    }

    /// The latest snapshots of every other worker (missing ones, and ones
    /// still torn after a few reads, are skipped).
    pub fn others(&self) -> Vec<Snapshot> {
        (0..self.workers)
            .filter(|&i| i != self.index)
            .filter_map(|i| self.read_snapshot(i))
            .map(|text| parse_snapshot(&text))
            .collect()
    }

    /// Worker `i`'s snapshot text, once a read of it is whole.
    fn read_snapshot(&self, i: usize) -> Option<String> {
        (0..4).find_map(|_| {
            let file = self.state_dir.read(&Cluster::file_of(i)).ok()?;
            unframe(&file).map(str::to_string)
        })
    }
}

/// The text of a snapshot file whose length and checksum match (a read that
/// raced the writer's `pwrite` does not); longer files keep the rest of an
/// older, longer snapshot after it.
fn unframe(file: &str) -> Option<&str> {
    let (head, rest) = file.split_once('\n')?;
    let mut words = head.split(' ');
    if words.next() != Some("snapshot") {
        return None;
    }
    let len: usize = words.next()?.parse().ok()?;
    let sum = u64::from_str_radix(words.next()?, 16).ok()?;
    let text = rest.get(..len)?;
    (fnv1a(text.as_bytes()) == sum).then_some(text)
}

/// FNV-1a, 64 bits: enough to tell a torn snapshot from a whole one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn parse_snapshot(text: &str) -> Snapshot {
    let mut snap = Snapshot::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("metrics") => snap.values = words.filter_map(|w| w.parse().ok()).collect(),
            Some("process") => {
                snap.rss_bytes = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                snap.open_fds = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            }
            Some("sub") => {
                if let (Some(id), Some(n)) =
                    (words.next(), words.next().and_then(|w| w.parse().ok()))
                {
                    snap.subscribers.insert(id.to_string(), n);
                }
            }
            _ => {}
        }
    }
    snap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_between_workers() {
        let dir = StateDir::create_in(&std::env::temp_dir()).expect("dir");
        let a = Cluster::join(0, 2, dir.clone(), 10, None).expect("join");
        let b = Cluster::join(1, 2, dir.clone(), 10, None).expect("join");
        assert_eq!(b.sibling_connections(), 0, "nothing published yet");
        let m = Metrics {
            connections_open: 7,
            streams_open: 5,
            ..Metrics::default()
        };
        a.publish(&m, 7, [("log-a", 3u64)].into_iter())
            .expect("publish");
        assert_eq!(b.sibling_connections(), 7);
        assert_eq!(a.sibling_connections(), 0, "a worker does not count itself");
        let others = b.others();
        assert_eq!(others.len(), 1);
        assert_eq!(others[0].values[1], 5);
        assert_eq!(others[0].subscribers.get("log-a"), Some(&3));
        assert!(others[0].rss_bytes > 0);
        assert_eq!(others[0].open_fds, 7);
        a.withdraw();
        assert_eq!(
            b.sibling_connections(),
            0,
            "a stopped worker counts nothing"
        );
        dir.remove_all().expect("remove");
    }

    #[test]
    fn a_torn_or_stale_snapshot_is_told_from_a_whole_one() {
        let text = "metrics 1 2 3\nprocess 10 20\n";
        let whole = format!(
            "snapshot {} {:016x}\n{text}",
            text.len(),
            fnv1a(text.as_bytes())
        );
        assert_eq!(unframe(&whole), Some(text));
        // An older, longer snapshot's tail after it is not part of it.
        assert_eq!(unframe(&format!("{whole}sub old-log 4\n")), Some(text));
        // A read that raced the writer: new head, old body.
        let torn = whole.replace("metrics 1 2 3", "metrics 1 2 9");
        assert_eq!(unframe(&torn), None);
        assert_eq!(unframe(&whole[..whole.len() - 3]), None, "cut short");
        assert_eq!(unframe(""), None);
    }
}
