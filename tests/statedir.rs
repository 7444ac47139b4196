//! The workers' state directory (issue 11, "A private state directory"):
//! made fresh with an unpredictable name and mode 0700 under
//! `$XDG_RUNTIME_DIR` (or `$TMPDIR`), never at `/tmp/logcast-<pid>`; an
//! unsafe base from the environment is skipped with a warning; an unsafe temp
//! dir stops the start. Checked over real processes with their own
//! environment, which `Daemon::start` does not set: the small `EnvDaemon`
//! below does.

mod common;

use common::{read_response, temp_dir, wait_timeout, BIN};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A daemon started with `env` (and no inherited `RUNTIME_DIRECTORY`,
/// `XDG_RUNTIME_DIR` or `TMPDIR`), its stderr kept for the test.
struct EnvDaemon {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    log_dir: PathBuf,
}

fn command(log_dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--port")
        .arg("0")
        .arg("--log-dir")
        .arg(log_dir)
        .args(args);
    for var in ["RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR", "TMPDIR"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl EnvDaemon {
    fn start(args: &[&str], env: &[(&str, &Path)]) -> EnvDaemon {
        let log_dir = temp_dir("statedir-logs");
        let mut child = command(&log_dir, args, env).spawn().expect("spawn");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("no listening line: {line:?}, stderr {stderr:?}"))
            .parse()
            .expect("address");
        std::thread::spawn(move || {
            let _ = out.read_to_end(&mut Vec::new());
        });
        EnvDaemon {
            child,
            addr,
            stderr,
            log_dir,
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Stops the daemon with SIGTERM; it must exit 0.
    fn stop(&mut self) {
        common::signal(self.child.id(), "TERM");
        let status = wait_timeout(&mut self.child, Duration::from_secs(10)).expect("exit");
        assert!(status.success(), "exit {status}");
    }
}

impl Drop for EnvDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

/// One keep-alive request on `s`.
fn ask(s: &mut TcpStream, target: &str) -> common::Response {
    let req = format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    read_response(s, false).expect("response")
}

fn worker_of(r: &common::Response) -> usize {
    r.header("x-logcast-worker")
        .expect("X-Logcast-Worker")
        .parse()
        .expect("worker index")
}

fn metric(body: &str, name: &str) -> Option<u64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.rsplit_once(' ').filter(|(n, _)| *n == name))
        .and_then(|(_, v)| v.parse().ok())
}

/// The entries of `dir` whose name starts with `logcast-<pid>-`.
fn state_dirs_in(dir: &Path, pid: u32) -> Vec<PathBuf> {
    // With the dash: pid 103's prefix must not match logcast-1039-...
    let prefix = format!("logcast-{pid}-");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The one state directory of daemon `pid` under `base`: a real directory
/// named `logcast-<pid>-<random>`, ours, mode 0700.
fn the_private_state_dir(base: &Path, pid: u32) -> PathBuf {
    let found = state_dirs_in(base, pid);
    assert_eq!(
        found.len(),
        1,
        "state dirs of {pid} in {}: {found:?}",
        base.display()
    );
    let dir = found[0].clone();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let bare = format!("logcast-{pid}");
    assert!(
        name.len() > bare.len() + 8 && name.starts_with(&format!("{bare}-")),
        "predictable name {name}"
    );
    let meta = std::fs::symlink_metadata(&dir).expect("stat state dir");
    assert!(meta.file_type().is_dir(), "{name} is not a real directory");
    assert_eq!(meta.mode() & 0o7777, 0o700, "mode of {name}");
    assert_eq!(
        meta.uid(),
        rustix::process::geteuid().as_raw(),
        "owner of {name}"
    );
    dir
}

/// Both workers publish a private snapshot, and `/metrics` from either sums
/// both: with connections held open on each worker, every worker reports
/// them all (plus the asking connection), more than it holds itself.
fn check_both_workers_are_summed(d: &EnvDaemon, state: &Path) {
    let published = common::eventually(Duration::from_secs(5), || {
        (0..2).all(|i| state.join(format!("worker-{i}")).exists())
    });
    assert!(published, "snapshots in {}", state.display());
    for i in 0..2 {
        let meta = std::fs::symlink_metadata(state.join(format!("worker-{i}"))).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o077, 0, "snapshot {i} is open to others");
    }
    let mut held: Vec<(TcpStream, usize)> = Vec::new();
    for _ in 0..100 {
        let per = |w| held.iter().filter(|(_, x)| *x == w).count();
        if per(0) >= 2 && per(1) >= 2 {
            break;
        }
        let mut s = d.connect();
        let w = worker_of(&ask(&mut s, "/healthz"));
        held.push((s, w));
    }
    let want = held.len() as u64 + 1;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut agreed = [false; 2];
    let mut last = Vec::new();
    while agreed != [true, true] && Instant::now() < deadline {
        let mut s = d.connect();
        let w = worker_of(&ask(&mut s, "/healthz"));
        let open = metric(&ask(&mut s, "/metrics").text(), "logcast_connections_open");
        // A sibling's snapshot may still count its own last probe.
        agreed[w] |= open.is_some_and(|n| n == want || n == want + 1);
        last.push((w, open));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        agreed,
        [true, true],
        "logcast_connections_open from each worker, want {want}: {last:?}"
    );
}

#[test]
fn workers_keep_their_state_in_a_private_directory() {
    // Under $XDG_RUNTIME_DIR.
    let runtime = temp_dir("statedir-xdg");
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut d = EnvDaemon::start(&["--workers", "2"], &[("XDG_RUNTIME_DIR", &runtime)]);
    let pid = d.child.id();
    let state = the_private_state_dir(&runtime, pid);
    for tmp in [PathBuf::from("/tmp"), std::env::temp_dir()] {
        assert!(
            state_dirs_in(&tmp, pid).is_empty(),
            "a logcast-{pid} dir in {}",
            tmp.display()
        );
    }
    check_both_workers_are_summed(&d, &state);
    d.stop();
    assert!(!state.exists(), "{} left after exit", state.display());

    // Without it, under $TMPDIR.
    let tmpdir = temp_dir("statedir-tmpdir");
    let mut d = EnvDaemon::start(&["--workers", "2"], &[("TMPDIR", &tmpdir)]);
    let pid = d.child.id();
    let state = the_private_state_dir(&tmpdir, pid);
    assert!(state_dirs_in(Path::new("/tmp"), pid).is_empty());
    check_both_workers_are_summed(&d, &state);
    d.stop();
    assert!(!state.exists(), "{} left after exit", state.display());
    let _ = std::fs::remove_dir_all(&runtime);
    let _ = std::fs::remove_dir_all(&tmpdir);
}

/// An `$XDG_RUNTIME_DIR` that others may write to, or that is a symlink, is
/// not used (the XDG spec asks for a directory of ours, 0700): the daemon
/// warns, naming it, and makes its state dir in the temp dir instead.
#[test]
fn an_unsafe_runtime_dir_is_skipped_for_the_temp_dir_with_a_warning() {
    let open = temp_dir("statedir-open");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let target = temp_dir("statedir-target");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = temp_dir("statedir-link").join("runtime");
    std::os::unix::fs::symlink(&target, &link).unwrap();

    for (runtime, why) in [(&open, "without the sticky bit"), (&link, "symbolic link")] {
        let tmpdir = temp_dir("statedir-fallback");
        let env = [("XDG_RUNTIME_DIR", runtime.as_path()), ("TMPDIR", &tmpdir)];
        let mut d = EnvDaemon::start(&["--workers", "2"], &env);
        let pid = d.child.id();
        let state = the_private_state_dir(&tmpdir, pid);
        for base in [&open, &target] {
            assert!(
                state_dirs_in(base, pid).is_empty(),
                "used {}",
                base.display()
            );
        }
        let stderr = d.stderr.lock().unwrap().clone();
        let warning = stderr.lines().find(|l| l.contains("XDG_RUNTIME_DIR"));
        assert!(
            warning.is_some_and(|l| l.contains(runtime.to_str().unwrap()) && l.contains(why)),
            "no warning naming {} ({why}): {stderr}",
            runtime.display()
        );
        check_both_workers_are_summed(&d, &state);
        d.stop();
        assert!(!state.exists());
        let _ = std::fs::remove_dir_all(&tmpdir);
    }
    for dir in [&open, &target, &link.parent().unwrap().to_path_buf()] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The temp dir is the last resort: if it is unsafe or missing, the daemon
/// exits 1 with one line naming it and the reason.
#[test]
fn an_unsafe_or_missing_temp_dir_stops_the_start() {
    let open = temp_dir("statedir-open-tmp");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let missing = open.join("missing");
    let log_dir = temp_dir("statedir-refused-logs");
    for (tmpdir, why) in [(&open, "sticky"), (&missing, "No such file")] {
        let mut child = command(&log_dir, &["--workers", "2"], &[("TMPDIR", tmpdir)])
            .spawn()
            .expect("spawn");
        let Some(status) = wait_timeout(&mut child, Duration::from_secs(10)) else {
            let _ = child.kill();
            panic!("started with TMPDIR {}", tmpdir.display());
        };
        let (mut stdout, mut stderr) = (String::new(), String::new());
        let _ = child.stdout.take().unwrap().read_to_string(&mut stdout);
        let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
        assert_eq!(status.code(), Some(1), "stderr {stderr}");
        assert!(stdout.is_empty(), "started: {stdout:?}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.contains(tmpdir.to_str().unwrap()) && last.contains(why),
            "last line does not name {} ({why}): {stderr}",
            tmpdir.display()
        );
    }
    assert_eq!(
        std::fs::read_dir(&open).unwrap().count(),
        0,
        "made something"
    );
    let _ = std::fs::remove_dir_all(&open);
    let _ = std::fs::remove_dir_all(&log_dir);
}
