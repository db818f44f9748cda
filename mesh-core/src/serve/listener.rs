use std::{io, net::SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// How many connections may wait in the kernel's accept queue.
const BACKLOG: i32 = 1024;

/// Binds `count` listening sockets (at least one) to `addr`, all sharing
/// its port through `SO_REUSEPORT`, so that each runtime thread can accept
/// on its own socket and the kernel spreads connections among them.
///
/// With port 0, the first socket picks the port and the rest join it. The
/// sockets are non-blocking, ready for [`tokio::net::TcpListener::from_std`]
/// on whichever runtime serves them.
///
/// # Errors
///
/// When a socket cannot be created or bound, for example because the port is
/// taken.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(count.max(1));
    let first = bind_one(addr, count > 1)?;
    let bound = first.local_addr()?;
    listeners.push(first);
    for _ in 1..count {
        listeners.push(bind_one(bound, true)?);
    }
    Ok(listeners)
}

/// Binds one listening socket, non-blocking.
///
/// # Errors
///
/// When the socket cannot be created or bound.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    bind_one(addr, false)
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// How a listener's accept failures are logged: the first of a run as a
/// warning, the rest at `debug`, and the run's end with its count.
///
/// An accept fails mostly for want of file descriptors, and then every
/// attempt fails, twenty a second with the loop's back-off, for as long as
/// the shortage lasts: a warning for each would flood the logs that are
/// needed to find out why.
#[derive(Debug, Default)]
pub(super) struct AcceptFailures {
    /// How many accepts failed since the last that succeeded.
    run: u64,
}

impl AcceptFailures {
    /// Whether an accept that failed with `error` should wait before the
    /// next: when the process is short of something (descriptors, memory,
    /// buffers), every accept fails until a connection closes somewhere,
    /// and retrying at once would spin. When only the connection being
    /// accepted failed, the next accept does not share its fate and is
    /// made at once, as hyper's and Linkerd's accept loops do: otherwise a
    /// run of such failures (a peer that resets while queued, or, since
    /// Linux hands them on from `accept(2)`, a network error pending on its
    /// socket) would slow every other client's connections to twenty a
    /// second.
    pub(super) fn backs_off(error: &io::Error) -> bool {
        !Self::one_connections(error)
    }

    /// Whether `error` is the accepted connection's own: the kinds
    /// `accept(2)` returns for it, and on Linux the pending network errors
    /// its man page says to retry at once.
    fn one_connections(error: &io::Error) -> bool {
        use io::ErrorKind as K;
        if matches!(
            error.kind(),
            K::ConnectionAborted
                | K::ConnectionReset
                | K::ConnectionRefused
                | K::NetworkDown
                | K::NetworkUnreachable
                | K::HostUnreachable
                // EPERM: a firewall rule refused this connection.
                | K::PermissionDenied
        ) {
            return true;
        }
        // ENONET, EPROTO, ENOPROTOOPT, EOPNOTSUPP and EHOSTDOWN, which
        // have no kind of their own, by their numbers in
        // `asm-generic/errno.h`.
        #[cfg(all(
            target_os = "linux",
            not(any(
                target_arch = "mips",
                target_arch = "mips64",
                target_arch = "sparc",
                target_arch = "sparc64",
            ))
        ))]
        if let Some(code) = error.raw_os_error() {
            return matches!(code, 64 | 71 | 92 | 95 | 112);
        }
        false
    }

    /// An accept failed for the connection being accepted only.
    pub(super) fn connection_failed(listener: &str, error: &io::Error) {
        tracing::debug!(listener = %listener, %error, "a connection failed as it was accepted");
    }

    pub(super) fn failed(&mut self, listener: &str, error: &io::Error) {
        self.run += 1;
        if self.run == 1 {
            tracing::warn!(listener = %listener, %error, "accept failed");
        } else {
            tracing::debug!(listener = %listener, %error, "accept failed");
        }
    }

    pub(super) fn accepted(&mut self, listener: &str) {
        if self.run > 0 {
            tracing::info!(listener = %listener, failures = self.run, "accepting connections again");
            self.run = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_a_shortage_backs_the_accept_loop_off() {
        // Out of descriptors or memory: every accept fails until something
        // closes, so the loop waits.
        for shortage in [
            io::Error::from(io::ErrorKind::OutOfMemory),
            io::Error::other("unknown"),
        ] {
            assert!(AcceptFailures::backs_off(&shortage), "{shortage}");
        }
        // One connection's own failure, which the next accept does not
        // share: a peer that reset while queued, or (Linux hands them on
        // from `accept`) a network error pending on its socket.
        for connection in [
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::NetworkUnreachable,
            io::ErrorKind::HostUnreachable,
            io::ErrorKind::NetworkDown,
        ] {
            assert!(
                !AcceptFailures::backs_off(&io::Error::from(connection)),
                "{connection:?}"
            );
        }
        #[cfg(target_os = "linux")]
        for (code, name) in [
            (24, "EMFILE"),
            (23, "ENFILE"),
            (105, "ENOBUFS"),
            (12, "ENOMEM"),
        ] {
            let e = io::Error::from_raw_os_error(code);
            assert!(AcceptFailures::backs_off(&e), "{name}");
        }
        #[cfg(target_os = "linux")]
        for (code, name) in [
            (103, "ECONNABORTED"),
            (71, "EPROTO"),
            (92, "ENOPROTOOPT"),
            (112, "EHOSTDOWN"),
            (64, "ENONET"),
            (113, "EHOSTUNREACH"),
            (95, "EOPNOTSUPP"),
            (101, "ENETUNREACH"),
            (100, "ENETDOWN"),
            (1, "EPERM"),
        ] {
            let e = io::Error::from_raw_os_error(code);
            assert!(!AcceptFailures::backs_off(&e), "{name}");
        }
    }

    #[test]
    fn reuseport_binds_as_many_sockets_as_asked_and_at_least_one() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let three = bind_reuseport(addr, 3).unwrap();
        assert_eq!(three.len(), 3);
        let port = three[0].local_addr().unwrap().port();
        assert!(three.iter().all(|l| l.local_addr().unwrap().port() == port));
        assert_eq!(bind_reuseport(addr, 0).unwrap().len(), 1);
    }
}
