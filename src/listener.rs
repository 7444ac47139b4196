//! Listening sockets. A plain `bind` is tried first so that a port already
//! in use is reported as such (exit 1) even when logcast itself would use
//! `SO_REUSEPORT`: the kernel lets reuse-port sockets of the same user share
//! a port silently, and a second daemon must never do that by accident.
//! Worker processes then bind their own sockets with `SO_REUSEPORT`, and the
//! kernel spreads new connections across them.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SocketType};

/// Binds a listening socket; `reuse_port` lets sibling workers share it.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let fd = bound_socket(addr, reuse_port)?;
    rustix::net::listen(&fd, 4096)?;
    let listener = TcpListener::from(fd);
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// A TCP socket bound to `addr`, not yet listening.
fn bound_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket(family, SocketType::STREAM, None)?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
    if reuse_port {
        rustix::net::sockopt::set_socket_reuseport(&fd, true)?;
    }
    rustix::net::bind(&fd, &addr)?;
    Ok(fd)
}

/// Binds, but does not listen on, a reuse-port socket: it holds the port for
/// a supervisor's workers (a plain `bind` by anyone else now fails) without
/// taking part in accepting, since only listening sockets receive connections.
pub fn reserve(addr: SocketAddr) -> io::Result<(OwnedFd, SocketAddr)> {
    let fd = bound_socket(addr, true)?;
    let local = match rustix::net::getsockname(&fd)? {
        rustix::net::SocketAddrAny::V4(a) => SocketAddr::V4(a),
        rustix::net::SocketAddrAny::V6(a) => SocketAddr::V6(a),
        _ => addr,
    };
    Ok((fd, local))
}

/// A human message for a bind failure, naming the address.
pub fn bind_error_message(addr: SocketAddr, err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::AddrInUse => {
            format!("logcast: cannot listen on {addr}: address already in use")
        }
        io::ErrorKind::PermissionDenied => {
            format!("logcast: cannot listen on {addr}: permission denied")
        }
        _ => format!("logcast: cannot listen on {addr}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_refused_even_with_reuse_port() {
        let first = bind("127.0.0.1:0".parse().expect("addr"), true).expect("bind");
        let addr = first.local_addr().expect("addr");
        let err = bind(addr, false).expect_err("plain bind must fail");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(bind_error_message(addr, &err).contains("already in use"));
        // A sibling worker may share it.
        bind(addr, true).expect("reuse-port sibling");
    }
}
