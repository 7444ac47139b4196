//! Response bodies that never pass through a connection's output buffer:
//! what follows the head (which is in the buffer) on the wire.
//!
//! - Fixed bytes embedded in the binary stay where they are and go out in
//!   one `writev` with the head: one copy, the kernel's. The page is also
//!   kept in a memory file and goes by reference (`sendfile`, the head sent
//!   with `MSG_MORE` just before): no copy at all.
//! - A range of a file is sent from the file as the socket drains, with
//!   `sendfile(2)` (or, where a file system refuses it, through the
//!   reactor's shared scratch buffer). The position in the file is the
//!   whole state: a 10 GB download holds a descriptor and a few integers,
//!   like a small one, and a slow client only falls behind in the file.

use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;

use mio::net::TcpStream;

/// What follows the connection's output buffer on the wire.
#[derive(Debug)]
pub enum Reply {
    /// Bytes from the binary; empty when nothing follows the buffer.
    Static(&'static [u8]),
    /// A range of a file.
    File(Box<FileBody>),
}

impl Default for Reply {
    fn default() -> Reply {
        Reply::Static(&[])
    }
}

impl Reply {
    /// Bytes still to send after the buffer: until they are gone, nothing
    /// else may be queued (responses go out in order).
    pub fn is_pending(&self) -> bool {
        match self {
            Reply::Static(bytes) => !bytes.is_empty(),
            Reply::File(_) => true,
        }
    }

    /// The fixed bytes still to send (none for a file).
    pub fn static_bytes(&self) -> &'static [u8] {
        match self {
            Reply::Static(bytes) => bytes,
            Reply::File(_) => &[],
        }
    }
}

/// A fixed body that also lives in a memory file, so that it can go to a
/// socket by reference (`sendfile`: the kernel hands the socket the file's
/// pages instead of copying the bytes, which for the 36 KB page was a third
/// of the daemon's work under load).
struct ByReference {
    bytes: &'static [u8],
    file: File,
}

static BY_REFERENCE: std::sync::OnceLock<Option<ByReference>> = std::sync::OnceLock::new();

/// Puts `bytes` (the page) in a memory file once, for [`by_reference`];
/// where that cannot be done, the body is written from memory as before.
pub fn keep_by_reference(bytes: &'static [u8]) {
    BY_REFERENCE.get_or_init(|| match memory_file(bytes) {
        Ok(file) => Some(ByReference { bytes, file }),
        Err(e) => {
            log::debug!("no memory file for the page ({e}): writing it from memory");
            None
        }
    });
}

fn memory_file(bytes: &[u8]) -> io::Result<File> {
    use rustix::fs::{memfd_create, MemfdFlags};
    let mut file = File::from(memfd_create("logcast-page", MemfdFlags::CLOEXEC)?);
    file.write_all(bytes)?;
    Ok(file)
}

/// The memory file holding `body` (a tail of a kept body) and where in it
/// `body` starts.
pub fn by_reference(body: &'static [u8]) -> Option<(&'static File, u64)> {
    if body.is_empty() {
        return None; // nothing follows the head: it must not wait (MSG_MORE)
    }
    let kept = BY_REFERENCE.get()?.as_ref()?;
    let start = kept.bytes.as_ptr() as usize;
    let at = (body.as_ptr() as usize).checked_sub(start)?;
    (at + body.len() == kept.bytes.len()).then_some((&kept.file, at as u64))
}

/// What the connection does once a file body is sent: what the response's
/// head promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Read the next request.
    KeepAlive,
    /// The client already shut its side: answer what it sent, then close.
    PeerClosed,
    /// `Connection: close`.
    Close,
}

/// How a [`FileBody::send`] ended.
#[derive(Debug)]
pub enum Sent {
    /// The whole range went out.
    Finished,
    /// The socket is full: wait for its writable edge.
    Blocked,
    /// The allowance ran out with the socket still taking bytes.
    Budget,
    /// The client went away.
    Closed,
    /// The file ended before the range: it shrank since it was opened, and
    /// the announced `Content-Length` cannot be honoured.
    Shrunk,
    /// Reading the file failed.
    Failed(io::Error),
}

/// A range of an open file being sent: the descriptor, held until the end
/// (its size was fixed when it was opened: bytes appended later are not
/// sent, and the name may be removed meanwhile), and the next position.
#[derive(Debug)]
pub struct FileBody {
    file: File,
    pos: u64,
    end: u64,
    /// `sendfile` is refused here (some FUSE and network file systems):
    /// copy through the scratch buffer instead.
    copy: bool,
    /// Waiting in the reactor's queue of bodies to send.
    pub queued: bool,
    pub then: Then,
}

impl FileBody {
    pub fn new(file: File, range: Range<u64>, then: Then) -> FileBody {
        FileBody {
            file,
            pos: range.start,
            end: range.end,
            copy: false,
            queued: false,
            then,
        }
    }

    /// Bytes still to send.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// Sends at most `max` bytes to `socket`; returns how it ended and how
    /// many bytes went out. `scratch` is used only where `sendfile` is not.
    pub fn send(&mut self, socket: &TcpStream, max: usize, scratch: &mut [u8]) -> (Sent, usize) {
        let mut sent = 0;
        loop {
            if self.pos >= self.end {
                return (Sent::Finished, sent);
            }
            if sent >= max {
                return (Sent::Budget, sent);
            }
            let want = self.remaining().min((max - sent) as u64) as usize;
            let result = if self.copy {
                self.copy_piece(socket, want, scratch)
            } else {
                self.sendfile_piece(socket, want)
            };
            match result {
                Ok(0) => return (Sent::Shrunk, sent),
                Ok(n) => {
                    self.pos += n as u64;
                    sent += n;
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return (Sent::Blocked, sent),
                    io::ErrorKind::Interrupted => {}
                    _ if is_peer_gone(&e) => return (Sent::Closed, sent),
                    _ => return (Sent::Failed(e), sent),
                },
            }
        }
    }

    /// One `sendfile`: page cache to socket, no copy through user space.
    /// `Ok(0)` is the end of the file.
    fn sendfile_piece(&mut self, socket: &TcpStream, want: usize) -> io::Result<usize> {
        let mut offset = self.pos;
        match rustix::fs::sendfile(socket, &self.file, Some(&mut offset), want) {
            Ok(n) => Ok(n),
            Err(e)
                if e == rustix::io::Errno::INVAL
                    || e == rustix::io::Errno::NOSYS
                    || e == rustix::io::Errno::OPNOTSUPP =>
            {
                log::debug!("sendfile refused ({e}): copying instead");
                self.copy = true;
                Err(io::ErrorKind::Interrupted.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One read into `scratch` and one write of it. Only what the socket
    /// took counts: the rest is read again next time (the page cache has
    /// it), so nothing is held between calls.
    fn copy_piece(
        &mut self,
        mut socket: &TcpStream,
        want: usize,
        scratch: &mut [u8],
    ) -> io::Result<usize> {
        let n = want.min(scratch.len());
        let read = self.file.read_at(&mut scratch[..n], self.pos)?;
        if read == 0 {
            return Ok(0);
        }
        match socket.write(&scratch[..read])? {
            0 => Err(io::ErrorKind::WriteZero.into()),
            written => Ok(written),
        }
    }
}

/// Errors that mean the client is gone rather than that something failed.
fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::WriteZero
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_pending_by_default() {
        assert!(!Reply::default().is_pending());
        assert!(Reply::Static(b"x").is_pending());
        assert_eq!(Reply::Static(b"xy").static_bytes(), b"xy");
    }

    #[test]
    fn replies_stay_small() {
        // A reply sits in every HTTP connection's state (see conn.rs).
        assert!(std::mem::size_of::<Reply>() <= 16);
    }
}
