//! `--workers N`: more cores are served by more processes of the same
//! single-threaded reactor, never by threads inside one (the nginx model).
//! The supervisor checks the port is free (a plain bind: `SO_REUSEPORT`
//! would otherwise let a second daemon share it silently), reserves it,
//! starts N copies of its own binary as workers, each binding the port with
//! `SO_REUSEPORT` so the kernel spreads connections across them, and then
//! only watches: it restarts a worker that dies (with backoff), passes
//! SIGTERM/SIGINT on, and exits 0 once all workers have stopped.
//! Workers share nothing but the log directory and the snapshots of
//! [`crate::cluster`], in a private state directory the supervisor makes at
//! start and removes at exit ([`crate::statedir`]).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use rustix::process::{kill_process, Pid, Signal};
use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::cluster::{Cluster, ENV_COUNT, ENV_INDEX, ENV_MAX_CONNECTIONS, ENV_STATE};
use crate::config::Config;
use crate::statedir::StateDir;

/// A worker that lived this long before dying is restarted at once.
const STABLE_AFTER: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Workers get this long to stop gracefully before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// This process was started by a supervisor as one of its workers.
pub fn is_worker() -> bool {
    std::env::var_os(ENV_INDEX).is_some()
}

struct Worker {
    child: Option<Child>,
    started: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
}

struct Supervisor {
    config: Config,
    addr: SocketAddr,
    state_dir: StateDir,
    workers: Vec<Worker>,
}

/// Runs the daemon as a supervisor of `config.workers` workers.
pub fn run(config: Config) -> Result<(), String> {
    let count = config.workers.resolve();
    let wanted = SocketAddr::new(config.bind, config.port);
    drop(
        crate::listener::bind(wanted, false)
            .map_err(|e| crate::listener::bind_error_message(wanted, &e))?,
    );
    let (_guard, addr) = crate::listener::reserve(wanted)
        .map_err(|e| crate::listener::bind_error_message(wanted, &e))?;
    let state_dir = StateDir::create()?;
    log::debug!("state dir {}", state_dir.path().display());
    let mut sup = Supervisor {
        config,
        addr,
        state_dir,
        workers: Vec::new(),
    };
    let result = sup.start_all(count).and_then(|()| {
        crate::announce(addr);
        log::info!("supervising {count} workers");
        sup.watch()
    });
    sup.stop_all();
    if let Err(e) = sup.state_dir.remove_all() {
        log::warn!(
            "cannot remove state dir {}: {e}",
            sup.state_dir.path().display()
        );
    }
    result
}

impl Supervisor {
    /// Starts every worker at once, then waits for each to be ready: with
    /// 64 workers, starting them one after the other would add up their
    /// start times. A worker already started is stopped by `stop_all` if
    /// another fails.
    fn start_all(&mut self, count: usize) -> Result<(), String> {
        for index in 0..count {
            let child = self.launch(index, count)?;
            self.workers.push(Worker {
                child: Some(child),
                started: Instant::now(),
                backoff: Duration::from_millis(100),
                restart_at: None,
            });
        }
        for index in 0..count {
            if let Some(child) = self.workers[index].child.as_mut() {
                wait_ready(index, child)?;
            }
        }
        Ok(())
    }

    /// Starts worker `index` and waits for its `listening on` line.
    fn spawn(&self, index: usize, count: usize) -> Result<Child, String> {
        let mut child = self.launch(index, count)?;
        wait_ready(index, &mut child)?;
        Ok(child)
    }

    /// Starts worker `index` of `count`.
    fn launch(&self, index: usize, count: usize) -> Result<Child, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("logcast: cannot find own binary: {e}"))?;
        let c = &self.config;
        let share = |total: usize| total.div_ceil(count).to_string();
        // SO_REUSEPORT does not spread connections exactly evenly: a worker
        // may hold up to 25% more than its share, while the whole daemon is
        // held to the total through the workers' published counts.
        let conn_cap = (c.max_connections.div_ceil(count) * 5)
            .div_ceil(4)
            .min(c.max_connections);
        Command::new(exe)
            .arg("--bind")
            .arg(c.bind.to_string())
            .arg("--port")
            .arg(self.addr.port().to_string())
            .arg("--log-dir")
            .arg(&c.log_dir)
            .arg("--write-interval-ms")
            .arg(c.write_interval_ms.to_string())
            .arg("--poll-interval-ms")
            .arg(c.poll_interval_ms.to_string())
            .arg("--heartbeat-interval-ms")
            .arg(c.heartbeat_interval_ms.to_string())
            .arg("--heartbeat-burst")
            .arg(c.heartbeat_burst.to_string())
            .arg("--header-timeout-ms")
            .arg(c.header_timeout_ms.to_string())
            .arg("--idle-timeout-ms")
            .arg(c.idle_timeout_ms.to_string())
            .arg("--max-connections")
            .arg(conn_cap.to_string())
            .arg("--max-writers")
            .arg(share(c.max_writers))
            .env(ENV_INDEX, index.to_string())
            .env(ENV_COUNT, count.to_string())
            .env(ENV_STATE, self.state_dir.path())
            .env(ENV_MAX_CONNECTIONS, c.max_connections.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("logcast: cannot start worker {index}: {e}"))
    }

    /// Waits for signals: SIGCHLD (a worker died: restart it) or
    /// SIGTERM/SIGINT (stop everything).
    fn watch(&mut self) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("logcast: supervisor: {e}");
        let mut poll = Poll::new().map_err(fail)?;
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGCHLD]).map_err(fail)?;
        poll.registry()
            .register(&mut signals, Token(0), Interest::READABLE)
            .map_err(fail)?;
        let mut events = Events::with_capacity(8);
        loop {
            self.reap();
            self.restart_due();
            let timeout = self
                .next_restart()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(fail(e));
                }
            }
            if signals.pending().any(|s| s == SIGTERM || s == SIGINT) {
                log::info!("signal received: stopping workers");
                return Ok(());
            }
        }
    }

    /// Notices dead workers and schedules their restart.
    fn reap(&mut self) {
        for (index, w) in self.workers.iter_mut().enumerate() {
            let Some(child) = w.child.as_mut() else {
                continue;
            };
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            w.child = None;
            if w.started.elapsed() >= STABLE_AFTER {
                w.backoff = Duration::from_millis(100);
            }
            log::warn!(
                "worker {index} exited ({status}); restarting in {} ms",
                w.backoff.as_millis()
            );
            w.restart_at = Some(Instant::now() + w.backoff);
            w.backoff = (w.backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn restart_due(&mut self) {
        let count = self.workers.len();
        for index in 0..count {
            let due = self.workers[index]
                .restart_at
                .is_some_and(|at| at <= Instant::now());
            if !due {
                continue;
            }
            match self.spawn(index, count) {
                Ok(child) => {
                    let w = &mut self.workers[index];
                    w.child = Some(child);
                    w.started = Instant::now();
                    w.restart_at = None;
                }
                Err(e) => {
                    let w = &mut self.workers[index];
                    log::warn!("{e}; retrying in {} ms", w.backoff.as_millis());
                    w.restart_at = Some(Instant::now() + w.backoff);
                    w.backoff = (w.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn next_restart(&self) -> Option<Instant> {
        self.workers.iter().filter_map(|w| w.restart_at).min()
    }

    /// SIGTERM to every worker, then wait; SIGKILL what outlives the grace.
    fn stop_all(&mut self) {
        for w in &self.workers {
            if let Some(pid) = w.child.as_ref().and_then(|c| Pid::from_raw(c.id() as i32)) {
                let _ = kill_process(pid, Signal::Term);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for w in &mut self.workers {
            let Some(child) = w.child.as_mut() else {
                continue;
            };
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Waits for worker `index`'s `listening on` line.
fn wait_ready(index: usize, child: &mut Child) -> Result<(), String> {
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if !line.starts_with("listening on ") {
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        return Err(format!(
            "logcast: worker {index} failed to start ({status})"
        ));
    }
    log::debug!("worker {index} (pid {}) ready", child.id());
    Ok(())
}

/// Descriptors a worker keeps beyond its connections: the engine's log
/// files ([`crate::engine::MAX_OPEN_FILES`]), and room to take what is
/// queued on its listener when it closes it (see [`crate::server::Listen`]),
/// for writers' files, the index and the state directory.
const SPARE_FDS: u64 = crate::engine::MAX_OPEN_FILES as u64 + 64;

/// Connections at which a worker stops listening: its share of
/// `--max-connections` (already in `max_connections`), or what its open-file
/// limit leaves once `open` descriptors and the spare ones are counted (a
/// quarter of a small limit at most is kept spare).
pub fn listen_cap(max_connections: usize, nofile: u64, open: u64) -> usize {
    let spare = SPARE_FDS.min(nofile / 4);
    let room = nofile.saturating_sub(open + spare);
    (room.min(max_connections as u64) as usize).max(1)
}

/// Runs this process as worker `LOGCAST_WORKER` of a supervisor.
pub fn run_worker(config: Config) -> Result<(), String> {
    // If the supervisor dies without stopping us, stop too.
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::Term));
    let cluster = Cluster::from_env()?;
    let dir = crate::logs::LogDir::open(&config.log_dir)?;
    crate::sys::raise_nofile_limit();
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = crate::listener::bind(addr, true)
        .map_err(|e| crate::listener::bind_error_message(addr, &e))?;
    let max_connections = config.max_connections;
    let mut server =
        crate::server::Server::new(config, dir, listener).map_err(|e| format!("logcast: {e}"))?;
    server.join_cluster(cluster);
    let cap = listen_cap(
        max_connections,
        crate::sys::nofile_limit(),
        crate::sys::open_fds(),
    );
    server.stop_listening_when_full(crate::server::Listen::new(addr, cap));
    crate::announce(addr);
    server
        .run()
        .map_err(|e| format!("logcast: reactor failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_stops_listening_where_its_files_run_out() {
        // 20,000 files, 12 open: the engine's 512 files and 64 spare are kept.
        assert_eq!(listen_cap(100_000, 20_000, 12), 20_000 - 12 - 576);
        // Its share of --max-connections when that comes first.
        assert_eq!(listen_cap(15_000, 20_000, 12), 15_000);
        // A small limit keeps a quarter spare.
        assert_eq!(listen_cap(100_000, 64, 10), 64 - 10 - 16);
        assert_eq!(listen_cap(100_000, 8, 10), 1);
    }
}
