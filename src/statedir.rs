//! The private directory where workers publish their snapshots
//! ([`crate::cluster`]). A local user who could predict its name, create it
//! first or plant a file or symlink in it could feed workers false figures,
//! or have them write where they should not (the classic /tmp race), so it
//! is made the way ssh-agent and systemd make theirs:
//!
//! - it lives under `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`, the
//!   first of several), else `$XDG_RUNTIME_DIR`, else the temp dir. A base
//!   named by the environment must be a real directory (not a symlink) of
//!   ours that others cannot write to; one that is not is skipped with a
//!   warning, as the XDG Base Directory spec asks. The temp dir may also be
//!   root's, and shared only with the sticky bit (as /tmp is);
//! - its name, `logcast-<pid>-<64 random bits>`, cannot be guessed, and one
//!   exclusive `mkdir` makes it: an existing directory is never reused;
//! - it is opened once (`O_DIRECTORY | O_NOFOLLOW`) and checked through that
//!   descriptor: a directory, ours, mode 0700. Files are then reached
//!   relative to the descriptor, so replacing a component of its path later
//!   changes nothing; they are opened with `O_NOFOLLOW` and created with
//!   mode 0600 (a worker opens its files once, and rewrites them in place).
//!
//! A supervisor removes its directory when it stops, but one killed with
//! SIGKILL cannot. So each new one first removes, in its base, the state
//! directories of processes that are gone: named as this file names them,
//! ours and mode 0700 (a directory anyone else could have made or entered
//! is left alone), quiet for [`LEFTOVER_QUIET`], and no more than
//! [`SWEEP_MAX`] names looked at per start.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// Names tried before giving up (a collision of 64 random bits means
/// something else is going on).
const ATTEMPTS: usize = 8;

/// Most names of a base looked at for leftovers at one start.
const SWEEP_MAX: usize = 4096;

/// A leftover is removed only when nothing in it changed for this long:
/// a living supervisor's workers rewrite their files every second, and
/// one in another pid namespace (sharing the base) looks gone from here.
const LEFTOVER_QUIET: std::time::Duration = std::time::Duration::from_secs(600);

/// Where the state directory may be made, in order of preference.
const BASE_VARS: [&str; 2] = ["RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR"];

/// An open, checked state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
    dir: Arc<File>,
}

impl StateDir {
    /// Makes a fresh private state directory under the preferred base.
    /// Errors are one line naming the directory and the reason.
    pub fn create() -> Result<StateDir, String> {
        let (base, base_dir) = choose_base()?;
        StateDir::make(&base, &base_dir)
    }

    /// Makes a fresh private state directory in `base`, which must be safe
    /// to make one in (as the temp dir must).
    pub fn create_in(base: &Path) -> Result<StateDir, String> {
        let base_dir = open_base(base, true).map_err(|why| base_error(base, &why))?;
        StateDir::make(base, &base_dir)
    }

    fn make(base: &Path, base_dir: &File) -> Result<StateDir, String> {
        let removed = sweep_leftovers(base);
        if removed > 0 {
            log::info!(
                "removed {removed} state director{} in {} left by processes that are gone",
                if removed == 1 { "y" } else { "ies" },
                base.display()
            );
        }
        for _ in 0..ATTEMPTS {
            let name = format!(
                "logcast-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            );
            let path = base.join(&name);
            let fail = |e: io::Error| format!("logcast: state dir {}: {e}", path.display());
            match rustix::fs::mkdirat(base_dir, name.as_str(), Mode::RWXU) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(fail(e.into())),
            }
            let dir = open_dir(base_dir, name.as_str()).map_err(fail)?;
            // The umask may have taken bits away; nothing else can have
            // added any, and this descriptor is the directory just made.
            rustix::fs::fchmod(&dir, Mode::RWXU).map_err(|e| fail(e.into()))?;
            let state = StateDir {
                path: path.clone(),
                dir: Arc::new(dir),
            };
            state.check().map_err(fail)?;
            return Ok(state);
        }
        Err(format!(
            "logcast: state dir logcast-{}-* in {}: {ATTEMPTS} random names were all taken",
            std::process::id(),
            base.display()
        ))
    }

    /// Opens the state directory a supervisor made, checking it again
    /// rather than trusting the path it was given.
    pub fn open(path: &Path) -> Result<StateDir, String> {
        let fail = |e: io::Error| format!("logcast: state dir {}: {e}", path.display());
        let dir = open_dir(rustix::fs::CWD, path).map_err(fail)?;
        let state = StateDir {
            path: path.to_path_buf(),
            dir: Arc::new(dir),
        };
        state.check().map_err(fail)?;
        Ok(state)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Still a directory of ours that nobody else may enter.
    pub fn check(&self) -> io::Result<()> {
        let meta = self.dir.metadata()?;
        if !meta.is_dir() {
            return Err(refused("not a directory".into()));
        }
        check_owner(&meta, false)?;
        let mode = meta.mode() & 0o7777;
        if mode != 0o700 {
            return Err(refused(format!("mode {mode:04o}, not 0700")));
        }
        Ok(())
    }

    /// The content of file `name`, which must be a regular file of ours
    /// (a symlink, a FIFO or another user's file is refused, not followed).
    pub fn read(&self, name: &str) -> io::Result<String> {
        self.check()?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let mut file = File::from(rustix::fs::openat(&*self.dir, name, flags, Mode::empty())?);
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(refused(format!("{name} is not a regular file")));
        }
        check_owner(&meta, false)?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok(text)
    }

    /// File `name`, opened for reading and writing and created (mode 0600)
    /// when missing: one file several workers share, each at its own
    /// offset. Like [`StateDir::read`], a symlink or anything but a regular
    /// file of ours is refused.
    pub fn open_shared(&self, name: &str) -> io::Result<File> {
        self.check()?;
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = File::from(rustix::fs::openat(&*self.dir, name, flags, file_mode())?);
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(refused(format!("{name} is not a regular file")));
        }
        check_owner(&meta, false)?;
        Ok(file)
    }

    /// Removes file `name` (not what a symlink there points to).
    pub fn remove(&self, name: &str) -> io::Result<()> {
        rustix::fs::unlinkat(&*self.dir, name, AtFlags::empty())?;
        Ok(())
    }

    /// Removes the directory if it is empty.
    pub fn remove_if_empty(&self) -> io::Result<()> {
        std::fs::remove_dir(&self.path)
    }

    /// Whether neither the directory nor any file in it changed for
    /// `quiet` (a file whose time cannot be read counts as changed).
    fn quiet_for(&self, quiet: std::time::Duration) -> bool {
        let old = |meta: io::Result<std::fs::Metadata>| {
            meta.and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= quiet)
        };
        let Ok(files) = std::fs::read_dir(&self.path) else {
            return false;
        };
        old(self.dir.metadata())
            && files
                .take(SWEEP_MAX)
                .all(|f| f.is_ok_and(|f| old(f.metadata())))
    }

    /// Removes the directory and what is in it (symlinks are removed, not
    /// followed).
    pub fn remove_all(&self) -> io::Result<()> {
        std::fs::remove_dir_all(&self.path)
    }
}

/// Removes the state directories in `base` of processes that are gone;
/// returns how many. Failures only leave a directory where it was.
fn sweep_leftovers(base: &Path) -> usize {
    let Ok(names) = std::fs::read_dir(base) else {
        return 0;
    };
    let mut removed = 0;
    for entry in names.take(SWEEP_MAX).flatten() {
        let name = entry.file_name();
        let Some(pid) = leftover_pid(&name) else {
            continue;
        };
        if pid == std::process::id() || process_alive(pid) {
            continue;
        }
        // Opened and checked as a worker opens its supervisor's: ours and
        // closed to others, so nobody else can have put anything in.
        let Ok(state) = StateDir::open(&base.join(&name)) else {
            continue;
        };
        if state.quiet_for(LEFTOVER_QUIET) && state.remove_all().is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The pid in a state directory's name, `logcast-<pid>-<16 hex digits>`.
fn leftover_pid(name: &OsStr) -> Option<u32> {
    let rest = name.to_str()?.strip_prefix("logcast-")?;
    let (pid, random) = rest.split_once('-')?;
    let hex = random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` exists (one of another user's counts: signalling
/// it is refused, not unknown).
fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// The first acceptable base: `$RUNTIME_DIRECTORY`, `$XDG_RUNTIME_DIR`
/// (each skipped with a warning when unfit), else the temp dir.
fn choose_base() -> Result<(PathBuf, File), String> {
    for var in BASE_VARS {
        let Some(value) = std::env::var_os(var) else {
            continue;
        };
        let value = value.as_bytes();
        // systemd joins several RuntimeDirectory= entries with ':'.
        let first = match var {
            "RUNTIME_DIRECTORY" => value.split(|b| *b == b':').next().unwrap_or_default(),
            _ => value,
        };
        if first.is_empty() {
            continue;
        }
        let base = Path::new(OsStr::from_bytes(first));
        match open_base(base, false) {
            Ok(dir) => return Ok((base.to_path_buf(), dir)),
            Err(why) => log::warn!(
                "${var} {} is not used for the state dir: {why}",
                base.display()
            ),
        }
    }
    // The temp dir is the system's choice: resolve it if it is a symlink
    // (/tmp -> /private/tmp) and check the directory itself.
    let tmp = std::env::temp_dir();
    let base = std::fs::canonicalize(&tmp).map_err(|e| base_error(&tmp, &e.to_string()))?;
    let dir = open_base(&base, true).map_err(|why| base_error(&tmp, &why))?;
    Ok((base, dir))
}

fn base_error(base: &Path, why: &str) -> String {
    format!("logcast: state dir base {}: {why}", base.display())
}

/// Opens `base` if a directory made in it would be safe: an absolute path
/// to a real directory, ours (or, for the temp dir, root's), that others
/// cannot write to unless the sticky bit keeps them off our entries.
fn open_base(base: &Path, root_may_own: bool) -> Result<File, String> {
    if !base.is_absolute() {
        return Err("not an absolute path".into());
    }
    let dir = open_dir(rustix::fs::CWD, base).map_err(|e| e.to_string())?;
    let meta = dir.metadata().map_err(|e| e.to_string())?;
    check_owner(&meta, root_may_own).map_err(|e| e.to_string())?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "writable by others (mode {mode:04o}) without the sticky bit"
        ));
    }
    Ok(dir)
}

/// Opens a directory, refusing a symlink in its last component.
fn open_dir<P: rustix::path::Arg + Copy>(at: impl rustix::fd::AsFd, path: P) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(&at, path, flags, Mode::empty()) {
        Ok(fd) => Ok(File::from(fd)),
        // Linux says ENOTDIR for a symlink when O_DIRECTORY is given.
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
            let is_link = rustix::fs::statat(&at, path, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
            let why = if is_link {
                "a symbolic link"
            } else {
                "not a directory"
            };
            Err(refused(why.into()))
        }
        Err(e) => Err(e.into()),
    }
}

fn check_owner(meta: &std::fs::Metadata, root_may_own: bool) -> io::Result<()> {
    let us = rustix::process::geteuid().as_raw();
    let owner = meta.uid();
    if owner == us || (root_may_own && owner == 0) {
        Ok(())
    } else {
        Err(refused(format!("owned by uid {owner}, not by us ({us})")))
    }
}

fn file_mode() -> Mode {
    Mode::RUSR | Mode::WUSR
}

fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    /// A base for one test, removed at the end.
    struct Base(PathBuf);

    impl Base {
        fn new(tag: &str) -> Base {
            let path = std::env::temp_dir().join(format!(
                "logcast-statedir-test-{tag}-{}-{:x}",
                std::process::id(),
                rand::random::<u32>()
            ));
            std::fs::create_dir(&path).expect("base");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
            Base(path)
        }
    }

    impl Drop for Base {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777
    }

    #[test]
    fn each_state_dir_is_new_private_and_unpredictable() {
        let base = Base::new("new");
        let a = StateDir::create_in(&base.0).expect("a");
        let b = StateDir::create_in(&base.0).expect("b");
        assert_ne!(a.path(), b.path());
        let prefix = format!("logcast-{}-", std::process::id());
        for s in [&a, &b] {
            let name = s.path().file_name().unwrap().to_str().unwrap();
            let random = name.strip_prefix(&prefix).expect("name");
            assert_eq!(random.len(), 16, "{name}");
            assert_eq!(mode_of(s.path()), 0o700);
        }
        a.open_shared("x")
            .and_then(|mut f| f.write_all(b"one"))
            .expect("write");
        assert_eq!(mode_of(&a.path().join("x")) & 0o077, 0);
        assert_eq!(
            StateDir::open(a.path()).expect("open").read("x").unwrap(),
            "one"
        );
    }

    #[test]
    fn a_directory_open_to_others_or_a_symlink_is_refused() {
        let base = Base::new("refuse");
        let loose = base.0.join("loose");
        std::fs::create_dir(&loose).unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = StateDir::open(&loose).expect_err("0755");
        assert!(
            e.contains("0755") && e.contains(loose.to_str().unwrap()),
            "{e}"
        );

        let real = StateDir::create_in(&base.0).expect("real");
        let link = base.0.join("link");
        std::os::unix::fs::symlink(real.path(), &link).unwrap();
        let e = StateDir::open(&link).expect_err("symlink");
        assert!(e.contains("symbolic link"), "{e}");

        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = StateDir::create_in(&loose).expect_err("world-writable base");
        assert!(e.contains("sticky"), "{e}");
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o1777)).unwrap();
        StateDir::create_in(&loose).expect("sticky base");
        assert!(StateDir::create_in(&link).is_err(), "symlinked base");
    }

    #[test]
    fn planted_symlinks_are_neither_read_nor_written_through() {
        let base = Base::new("plant");
        let state = StateDir::create_in(&base.0).expect("state");
        let victim = base.0.join("victim");
        std::fs::write(&victim, "secret").unwrap();
        let plant = |name: &str| std::os::unix::fs::symlink(&victim, state.path().join(name));
        plant("worker-1").unwrap();
        assert!(
            state.read("worker-1").is_err(),
            "followed a symlink to read"
        );
        // A symlink at a worker's own file is refused, not written through.
        plant("worker-0").unwrap();
        assert!(
            state.open_shared("worker-0").is_err(),
            "followed a symlink to write"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret");
        state.remove_all().expect("remove");
        assert!(!state.path().exists());
        assert!(victim.exists());
    }
}
