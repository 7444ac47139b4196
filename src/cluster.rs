//! What worker processes share: nothing but the log directory and a small
//! state directory where each worker publishes, once a second, its counters
//! and how many streams it holds per log. Any worker answering `/metrics` or
//! `GET /api/logs/<id>` adds the others' latest snapshots to its own live
//! figures, so the answer describes the whole daemon whichever worker the
//! kernel picked (figures of other workers are at most a second old).
//! Snapshots are written to a temporary file and renamed: readers never see
//! half a file. The directory is private to the daemon's user, and checked
//! again by every worker ([`crate::statedir`]): nobody else can plant a
//! snapshot there.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

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
        Ok(Cluster {
            index: var(ENV_INDEX)?,
            workers: var(ENV_COUNT)?,
            state_dir: StateDir::open(&state_dir)?,
            max_connections: var(ENV_MAX_CONNECTIONS)?,
            supervisor: rustix::process::getppid(),
        })
    }

    fn file_of(index: usize) -> String {
        format!("worker-{index}")
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
        let tmp = format!(".worker-{}.tmp", self.index);
        self.state_dir
            .write_atomic(&tmp, &Cluster::file_of(self.index), text.as_bytes())
    }

    /// Removes this worker's snapshot when it stops. The supervisor removes
    /// the state directory at exit; if it was killed (workers are then told
    /// to stop by their parent-death signal, and have a new parent), the
    /// last worker out does. While the supervisor lives the directory stays,
    /// for the workers it restarts.
    pub fn withdraw(&self) {
        let _ = self.state_dir.remove(&Cluster::file_of(self.index));
        if rustix::process::getppid() != self.supervisor {
            let _ = self.state_dir.remove_if_empty();
        }
    }

    /// The latest snapshots of every other worker (missing ones are skipped).
    pub fn others(&self) -> Vec<Snapshot> {
        (0..self.workers)
            .filter(|&i| i != self.index)
            .filter_map(|i| self.state_dir.read(&Cluster::file_of(i)).ok())
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
        let dir = StateDir::create_in(&std::env::temp_dir()).expect("dir");
        let a = Cluster {
            index: 0,
            workers: 2,
            state_dir: dir.clone(),
            max_connections: 10,
            supervisor: None,
        };
        let b = Cluster {
            index: 1,
            ..a.clone()
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
        dir.remove_all().expect("remove");
    }
}
