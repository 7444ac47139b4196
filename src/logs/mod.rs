//! Logs: files named `<id>.log` in the log directory. Any such file is a log,
//! whoever writes it (this is `tail -f` over HTTP); a log whose file has no
//! write bit is *finished* (SPEC section 3), which is how several daemons
//! sharing a directory agree without talking. This module owns ids, paths and
//! the directory; [`writer`] runs the simulated writers, [`text`] makes their
//! random lines. Following a file is the engine's ([`crate::engine::tail`]).

pub mod changes;
pub mod index;
pub mod retention;
pub mod text;
pub mod writer;

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::json::{self, Value};

/// The longest id accepted (SPEC section 3).
pub const MAX_ID_LEN: usize = 128;

/// Ids are `[A-Za-z0-9._-]{1,128}`, not starting with `.`: they can never
/// name a path outside the log dir (no `/`, no `..` prefix, no hidden files).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Permission denied, or a read-only file system.
fn is_not_writable(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(30)
}

/// Opens a log for reading, refusing anything but a regular file: opening a
/// FIFO would block the whole reactor until a writer appears, so the open is
/// non-blocking and the type is checked on the opened descriptor.
pub fn open_regular(path: &Path) -> io::Result<(File, fs::Metadata)> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::ErrorKind::NotFound.into());
    }
    Ok((file, meta))
}

/// A file mode with no write bit means the log is finished.
pub fn is_finished(meta: &fs::Metadata) -> bool {
    meta.permissions().mode() & 0o222 == 0
}

/// The directory of log files.
#[derive(Clone, Debug)]
pub struct LogDir {
    path: PathBuf,
    /// The daemon can create files in it (else it is served read-only).
    writable: bool,
}

/// What `GET /api/logs/<id>` and the listing report about one log.
#[derive(Clone, Debug)]
pub struct LogInfo {
    pub id: String,
    pub size: u64,
    pub created: SystemTime,
    pub writing: bool,
}

impl LogDir {
    /// Creates the directory if missing and checks it can be read; the
    /// error message names the directory (exit 1 at start). One that can be
    /// read but not written (`/var/log/nginx` for an unprivileged user, a
    /// read-only mount) is served read-only: [`LogDir::is_writable`] says so.
    pub fn open(path: &Path) -> Result<LogDir, String> {
        let fail = |e: io::Error| format!("logcast: log dir {}: {e}", path.display());
        fs::create_dir_all(path).map_err(fail)?;
        fs::read_dir(path).map_err(fail)?;
        // Trying is the only test that holds for root, ACLs and mounts alike.
        let probe = path.join(format!(".logcast-probe-{}", std::process::id()));
        let writable = match fs::write(&probe, b"") {
            Ok(()) => {
                let _ = fs::remove_file(&probe);
                true
            }
            Err(e) if is_not_writable(&e) => false,
            Err(e) => return Err(fail(e)),
        };
        Ok(LogDir {
            path: path.to_path_buf(),
            writable,
        })
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file of a log; callers pass only ids that passed [`valid_id`].
    pub fn file_of(&self, id: &str) -> PathBuf {
        self.path.join(format!("{id}.log"))
    }

    /// Facts about one log, or `NotFound`.
    pub fn info(&self, id: &str) -> io::Result<LogInfo> {
        if !valid_id(id) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let meta = fs::metadata(self.file_of(id))?;
        if !meta.is_file() {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(LogInfo::from_meta(id, &meta))
    }
}

impl LogInfo {
    fn from_meta(id: &str, meta: &fs::Metadata) -> LogInfo {
        // Birth time where the file system keeps it, else the last change.
        let created = meta
            .created()
            .or_else(|_| meta.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        LogInfo {
            id: id.to_string(),
            size: meta.len(),
            created,
            writing: !is_finished(meta),
        }
    }

    pub fn stream_url(&self) -> String {
        format!("/api/logs/{}/stream", self.id)
    }

    /// The JSON object of the listing; `subscribers` is added for the info endpoint.
    pub fn to_json(&self, subscribers: Option<u64>) -> String {
        let mut out = String::with_capacity(192);
        self.push_json(&mut out, subscribers);
        out
    }

    /// [`LogInfo::to_json`], appended to `out` (a list of 10,000 is built
    /// in one buffer).
    pub fn push_json(&self, out: &mut String, subscribers: Option<u64>) {
        let created = crate::clock::rfc3339(self.created);
        let url = self.stream_url();
        let mut fields = vec![
            ("log_id", Value::Str(&self.id)),
            ("file_size", Value::Num(self.size)),
            ("created_at", Value::Str(&created)),
            ("stream_url", Value::Str(&url)),
            ("writing", Value::Bool(self.writing)),
        ];
        if let Some(n) = subscribers {
            fields.push(("subscribers", Value::Num(n)));
        }
        json::push_object(out, &fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_rules() {
        for ok in ["a", "0b1e-uuid", "x.y_z-1", &"a".repeat(128)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "..%2F",
            "a b",
            "a\0",
            "é",
            &"a".repeat(129),
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
