//! Change notification for the log directory: one inotify instance (through
//! `rustix`, no `unsafe` here), one watch on the directory, its descriptor
//! registered in the reactor's `mio::Poll` like a socket. No thread.
//!
//! One directory watch reports every file in it (inotify(7)): a writer
//! closing (`IN_CLOSE_WRITE`), a finish by chmod (`IN_ATTRIB`), and the name
//! changes of rotation and deletion (`IN_CREATE`, `IN_MOVED_FROM`/
//! `IN_MOVED_TO` with a cookie pairing the two, `IN_DELETE`). Appends
//! (`IN_MODIFY`) come from a watch on each *followed* file instead
//! ([`Watcher::watch_file`]): a file nobody follows can be written as fast
//! as it likes without waking the reactor, and a followed log whose lines
//! are being batched drops its watch until its batch is due, so a fast
//! writer costs a wake per batch, not per write. A full event queue
//! (`IN_Q_OVERFLOW`) means events were lost: every tail must look again.
//! The directory itself going away ends the watch.
//!
//! Where the kernel or the file system gives no notification, [`Watcher::new`]
//! says why, and the engine polls instead: network and FUSE file systems
//! (a change made on another host never reaches this kernel's inotify), told
//! apart by `statfs`, and a full watch table or instance limit.

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

/// Bytes of events read per `read` (about 100 events with short names).
const READ_BUF: usize = 4096;

/// One event about the directory, reduced to what the engine acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirEvent {
    /// Bytes or mode changed (the file's own descriptor tells what).
    Content(String),
    /// The name may now point to another file, or to none.
    Name(String),
    /// `name` was renamed away; `MovedTo` with the same cookie says where.
    MovedFrom {
        name: String,
        cookie: u32,
    },
    MovedTo {
        name: String,
        cookie: u32,
    },
    /// A followed file, by its watch ([`Watcher::watch_file`]), was written.
    Modified(i32),
    /// That file's watch is gone (removed, or the file deleted).
    Unwatched(i32),
    /// Events were lost: look at everything again.
    Overflow,
    /// The directory was deleted, moved or unmounted: the watch is over.
    DirGone,
}

/// Why a directory is polled instead of watched.
#[derive(Debug)]
pub enum NoWatch {
    /// A network or userspace file system: changes made elsewhere are not seen.
    FileSystem(&'static str),
    /// inotify could not be had (instance or watch limit, or not supported).
    Unavailable(io::Error),
}

impl fmt::Display for NoWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoWatch::FileSystem(name) => {
                write!(f, "it is on {name}, which gives no change notification")
            }
            NoWatch::Unavailable(e) => write!(f, "inotify is unavailable: {e}"),
        }
    }
}

/// The inotify instance watching the log directory.
#[derive(Debug)]
pub struct Watcher {
    fd: OwnedFd,
    dir_watch: i32,
}

/// `statfs` magic numbers of file systems whose files can change without
/// this kernel noticing (linux/magic.h and the file systems' own headers).
const UNWATCHABLE: [(i64, &str); 12] = [
    (0x6969, "NFS"),
    (0x517B, "SMB"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
    (0x6573_5546, "FUSE"),
    (0x0102_1997, "9p"),
    (0x00C3_6400, "Ceph"),
    (0x5346_414F, "AFS"),
    (0x7375_7245, "Coda"),
    (0x564C, "NCP"),
    (0x0116_1970, "GFS2"),
    (0x7461_636F, "OCFS2"),
];

/// The name of an unwatchable file system type, if `f_type` is one.
pub fn unwatchable_fs(f_type: i64) -> Option<&'static str> {
    UNWATCHABLE
        .iter()
        .find(|(magic, _)| *magic == f_type)
        .map(|(_, name)| *name)
}

impl Watcher {
    /// Watches `dir`, or says why it cannot be watched.
    pub fn new(dir: &Path) -> Result<Watcher, NoWatch> {
        let unavailable = |e: rustix::io::Errno| NoWatch::Unavailable(e.into());
        let stat = rustix::fs::statfs(dir).map_err(unavailable)?;
        #[allow(clippy::unnecessary_cast)]
        if let Some(name) = unwatchable_fs(stat.f_type as i64) {
            return Err(NoWatch::FileSystem(name));
        }
        let fd =
            inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).map_err(unavailable)?;
        let mask = WatchFlags::CLOSE_WRITE
            | WatchFlags::ATTRIB
            | WatchFlags::CREATE
            | WatchFlags::DELETE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ONLYDIR;
        let dir_watch = inotify::add_watch(&fd, dir, mask).map_err(unavailable)?;
        Ok(Watcher { fd, dir_watch })
    }

    /// Watches one followed file for appends; the watch descriptor comes
    /// back in [`DirEvent::Modified`]. Fails when the watch table is full
    /// (the file is then polled).
    pub fn watch_file(&self, path: &Path) -> io::Result<i32> {
        inotify::add_watch(&self.fd, path, WatchFlags::MODIFY).map_err(io::Error::from)
    }

    /// Drops a file's watch (the kernel then reports [`DirEvent::Unwatched`]).
    pub fn unwatch_file(&self, wd: i32) {
        // An error means the watch is gone already (its file was deleted).
        let _ = inotify::remove_watch(&self.fd, wd);
    }

    /// The descriptor to register for readability.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads up to `max_reads` buffers of events into `out`. Returns true
    /// when the queue is drained (`EAGAIN`: the next readiness edge will
    /// come), false when there may be more (call again next turn).
    pub fn read(&mut self, max_reads: usize, out: &mut Vec<DirEvent>) -> io::Result<bool> {
        let mut buf = [MaybeUninit::<u8>::uninit(); READ_BUF];
        let mut reader = inotify::Reader::new(&self.fd, &mut buf);
        let mut reads = 0;
        loop {
            if reader.is_buffer_empty() {
                if reads == max_reads {
                    return Ok(false);
                }
                reads += 1;
            }
            match reader.next() {
                Ok(event) => {
                    let name = event.file_name().map(|n| n.to_string_lossy().into_owned());
                    let (wd, mask) = (event.wd(), event.events());
                    let e = if wd == self.dir_watch || mask.contains(ReadFlags::QUEUE_OVERFLOW) {
                        classify(wd == self.dir_watch, mask, event.cookie(), name)
                    } else {
                        classify_file(wd, mask)
                    };
                    out.extend(e);
                }
                Err(rustix::io::Errno::AGAIN) => return Ok(true),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// What one event of a followed file's watch means.
fn classify_file(wd: i32, mask: ReadFlags) -> Option<DirEvent> {
    if mask.contains(ReadFlags::IGNORED) {
        return Some(DirEvent::Unwatched(wd));
    }
    mask.contains(ReadFlags::MODIFY)
        .then_some(DirEvent::Modified(wd))
}

/// What one raw event of the directory's watch means for the engine.
fn classify(ours: bool, mask: ReadFlags, cookie: u32, name: Option<String>) -> Option<DirEvent> {
    if mask.contains(ReadFlags::QUEUE_OVERFLOW) {
        return Some(DirEvent::Overflow);
    }
    if !ours {
        return None;
    }
    let gone =
        ReadFlags::IGNORED | ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF | ReadFlags::UNMOUNT;
    if mask.intersects(gone) {
        return Some(DirEvent::DirGone);
    }
    let name = name?;
    if mask.contains(ReadFlags::ISDIR) {
        return None;
    }
    if mask.contains(ReadFlags::MOVED_FROM) {
        return Some(DirEvent::MovedFrom { name, cookie });
    }
    if mask.contains(ReadFlags::MOVED_TO) {
        return Some(DirEvent::MovedTo { name, cookie });
    }
    if mask.intersects(ReadFlags::CREATE | ReadFlags::DELETE) {
        return Some(DirEvent::Name(name));
    }
    Some(DirEvent::Content(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;

    fn drain(w: &mut Watcher) -> Vec<DirEvent> {
        let mut out = Vec::new();
        for _ in 0..50 {
            let _ = w.read(16, &mut out);
            if !out.is_empty() {
                std::thread::sleep(std::time::Duration::from_millis(20));
                let _ = w.read(16, &mut out);
                return out;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        out
    }

    #[test]
    fn reports_appends_renames_and_deletes_by_name() {
        let dir = std::env::temp_dir().join(format!("logcast-watch-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        let mut w = Watcher::new(&dir).expect("watch");
        let path = dir.join("a.log");
        fs::write(&path, b"x\n").expect("write");
        let events = drain(&mut w);
        assert!(
            events.contains(&DirEvent::Name("a.log".into())),
            "{events:?}"
        );
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        let wd = w.watch_file(&path).expect("watch the file");
        f.write_all(b"y\n").expect("append");
        let events = drain(&mut w);
        assert!(events.contains(&DirEvent::Modified(wd)), "{events:?}");
        assert!(
            !events.contains(&DirEvent::Content("a.log".into())),
            "appends come from the file's watch only: {events:?}"
        );
        fs::rename(&path, dir.join("a.log.1")).expect("rename");
        let events = drain(&mut w);
        let from = events.iter().find_map(|e| match e {
            DirEvent::MovedFrom { name, cookie } if name == "a.log" => Some(*cookie),
            _ => None,
        });
        let to = events.iter().find_map(|e| match e {
            DirEvent::MovedTo { name, cookie } if name == "a.log.1" => Some(*cookie),
            _ => None,
        });
        assert!(from.is_some() && from == to, "{events:?}");
        fs::remove_file(dir.join("a.log.1")).expect("rm");
        assert!(drain(&mut w).contains(&DirEvent::Name("a.log.1".into())));
        // The kernel says IN_DELETE_SELF only once nothing holds the
        // directory: an open file that was in it (even unlinked) does.
        drop(f);
        fs::remove_dir(&dir).expect("rm dir");
        let events = drain(&mut w);
        assert!(events.contains(&DirEvent::DirGone), "{events:?}");
    }

    #[test]
    fn network_file_systems_are_not_watched() {
        assert_eq!(unwatchable_fs(0x6969), Some("NFS"));
        assert_eq!(unwatchable_fs(0x6573_5546), Some("FUSE"));
        assert_eq!(unwatchable_fs(0xEF53), None); // ext4
        assert_eq!(unwatchable_fs(0x0102_1994), None); // tmpfs
    }
}
