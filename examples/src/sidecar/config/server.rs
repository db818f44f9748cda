//! The admin listener and the tuning every listener shares.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::NonZeroUsize;
use std::time::Duration;

/// The default admin listener, `0.0.0.0:4191` (Linkerd's admin port).
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 4191));

/// The admin section: where `/live`, `/ready`, `/metrics` and `/shutdown`
/// are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminConfig {
    /// The address the admin server binds. Default
    /// [`DEFAULT_ADMIN_LISTEN`].
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: DEFAULT_ADMIN_LISTEN,
        }
    }
}

/// The server section: limits and timeouts shared by every listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerTuning {
    /// How long a client may take to send a request's headers before the
    /// connection is closed. Default 10 seconds. Never zero.
    pub header_read_timeout: Duration,
    /// How long protocol detection waits for a connection's first bytes.
    /// Default 10 seconds. Never zero.
    pub detect_timeout: Duration,
    /// The most connections served at once; further ones wait to be
    /// accepted. Default 10,000.
    pub max_connections: NonZeroUsize,
    /// How long a graceful shutdown lets in-flight requests finish after
    /// the listeners close. Default 30 seconds. Zero closes at once.
    pub shutdown_grace: Duration,
    /// How many runtimes (one thread each) serve traffic. Default 0, which
    /// means one per CPU core (see [`ServerTuning::worker_threads`]).
    pub threads: usize,
}

impl ServerTuning {
    /// The default `header_read_timeout`: 60 seconds, longer than the
    /// upstream client's 30-second pool idle timeout, so that one sidecar
    /// never reuses a connection the next one is closing.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);
    /// The default `detect_timeout`: 10 seconds.
    pub const DEFAULT_DETECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The default `max_connections`: 10,000.
    pub const DEFAULT_MAX_CONNECTIONS: NonZeroUsize = NonZeroUsize::MIN.saturating_add(9_999);
    /// The default `shutdown_grace`: 30 seconds.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

    /// The number of runtime threads to start: `threads`, or the number of
    /// CPU cores available to the process when `threads` is 0 (1 if that
    /// cannot be known).
    pub fn worker_threads(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.threads)
            .unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN))
    }
}

impl Default for ServerTuning {
    fn default() -> Self {
        ServerTuning {
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            detect_timeout: Self::DEFAULT_DETECT_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
            threads: 0,
        }
    }
}
