//! What worker processes share: nothing but the log directory and a small
//! state directory where each worker publishes, once a second, its counters
//! and how many streams it holds per log. Any worker answering `/metrics` or
//! `GET /api/logs/<id>` adds the others' latest snapshots to its own live
//! figures, so the answer describes the whole daemon whichever worker the
//! kernel picked (figures of other workers are at most a second old).
//! Snapshots are written to a temporary file and renamed: readers never see
//! half a file.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::PathBuf;

use crate::metrics::Metrics;

/// How often a worker publishes its snapshot.
pub const PUBLISH_MS: u64 = 1000;

/// This process's place among the workers.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub index: usize,
    pub workers: usize,
    pub state_dir: PathBuf,
    /// `--max-connections` of the whole daemon.
    pub max_connections: usize,
}

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
    /// The cluster this worker belongs to, from the supervisor's environment.
    pub fn from_env() -> Option<Cluster> {
        let index = std::env::var(ENV_INDEX).ok()?.parse().ok()?;
        let workers = std::env::var(ENV_COUNT).ok()?.parse().ok()?;
        let state_dir = PathBuf::from(std::env::var_os(ENV_STATE)?);
        let max_connections = std::env::var(ENV_MAX_CONNECTIONS).ok()?.parse().ok()?;
        Some(Cluster {
            index,
            workers,
            state_dir,
            max_connections,
        })
    }

    fn file_of(&self, index: usize) -> PathBuf {
        self.state_dir.join(format!("worker-{index}"))
    }

    /// Writes this worker's snapshot.
    pub fn publish<'a>(
        &self,
        metrics: &Metrics,
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
            crate::sys::open_fds()
        ));
        for (id, n) in subscribers {
            text.push_str(&format!("sub {id} {n}\n"));
        }
        let tmp = self.state_dir.join(format!(".worker-{}.tmp", self.index));
        fs::write(&tmp, text)?;
        fs::rename(&tmp, self.file_of(self.index))
    }

    /// Removes this worker's snapshot when it stops, and the state directory
    /// with the last one out (also when the supervisor was killed: workers
    /// are told to stop by their parent-death signal).
    pub fn withdraw(&self) {
        let _ = fs::remove_file(self.file_of(self.index));
        let _ = fs::remove_dir(&self.state_dir);
    }

    /// The latest snapshots of every other worker (missing ones are skipped).
    pub fn others(&self) -> Vec<Snapshot> {
        (0..self.workers)
            .filter(|&i| i != self.index)
            .filter_map(|i| fs::read_to_string(self.file_of(i)).ok())
            .map(|text| parse_snapshot(&text))
            .collect()
    }
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
        let dir = std::env::temp_dir().join(format!("logcast-cluster-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let a = Cluster {
            index: 0,
            workers: 2,
            state_dir: dir.clone(),
            max_connections: 10,
        };
        let b = Cluster {
            index: 1,
            workers: 2,
            state_dir: dir.clone(),
            max_connections: 10,
        };
        let m = Metrics {
            streams_open: 5,
            ..Metrics::default()
        };
        a.publish(&m, [("log-a", 3u64)].into_iter())
            .expect("publish");
        let others = b.others();
        assert_eq!(others.len(), 1);
        assert_eq!(others[0].values[1], 5);
        assert_eq!(others[0].subscribers.get("log-a"), Some(&3));
        assert!(others[0].rss_bytes > 0);
        let _ = fs::remove_dir_all(&dir);
    }
}
