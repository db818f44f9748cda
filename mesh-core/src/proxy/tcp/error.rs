//! Why a forwarded connection has no endpoint connected.

use std::{fmt, net::SocketAddr};

use tokio::time::error::Elapsed;

use crate::error::BoxError;

/// [`ForwardTcp`](super::ForwardTcp) could not connect to the endpoint it picked, or not in
/// time. The cause is the [`source`](std::error::Error::source): the
/// connector's error, or [`Elapsed`] for a timeout.
#[derive(Debug)]
pub struct ConnectFailed {
    pub(super) endpoint: SocketAddr,
    pub(super) source: BoxError,
}

impl ConnectFailed {
    pub(super) fn new(endpoint: SocketAddr, source: BoxError) -> Self {
        Self { endpoint, source }
    }

    /// The endpoint that could not be reached.
    pub fn endpoint(&self) -> SocketAddr {
        self.endpoint
    }

    /// Whether the connect timed out, rather than failed.
    pub fn is_timeout(&self) -> bool {
        self.source.is::<Elapsed>()
    }
}

impl fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot connect to endpoint {}", self.endpoint)
    }
}

impl std::error::Error for ConnectFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
