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
    fn reuseport_binds_as_many_sockets_as_asked_and_at_least_one() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let three = bind_reuseport(addr, 3).unwrap();
        assert_eq!(three.len(), 3);
        let port = three[0].local_addr().unwrap().port();
        assert!(three.iter().all(|l| l.local_addr().unwrap().port() == port));
        assert_eq!(bind_reuseport(addr, 0).unwrap().len(), 1);
    }
}
