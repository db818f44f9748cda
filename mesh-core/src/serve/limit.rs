//! A connection limit several servers share, and one per peer address.

use std::sync::Arc;

use tokio::sync::Semaphore;

pub use self::per_peer::{PeerIo, PerPeerFuture, PerPeerLimit};

mod per_peer;

/// How many connections several servers serve at once, together: a
/// process with many listeners (and a runtime per core serving each) caps
/// its connections once, however they spread. Cloning shares the limit.
#[derive(Clone, Debug)]
pub struct ConnectionLimit {
    pub(super) permits: Arc<Semaphore>,
}

impl ConnectionLimit {
    /// A limit of `max` connections (at least 1).
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))),
        }
    }

    /// How many more connections may be served now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// The [`Accept`](super::Accept) hook `accept`, behind a limit of
    /// `max` connections (at least 1) held at once by any one peer IP
    /// address.
    ///
    /// Why: a server's own limit ([`ServerConfig::max_connections`], or
    /// a shared [`ConnectionLimit`]) is one pool for every client. On a
    /// listener anyone can reach, such as an admin port that listens on
    /// every interface so that the kubelet can probe it, one client that
    /// opens as many connections as there are places and keeps them idle
    /// (an HTTP/1 one until the header read timeout, an HTTP/2 one for as
    /// long as it answers pings) leaves every probe waiting in the
    /// kernel's accept queue until the pod is marked unready or killed.
    /// Under this limit it holds `max` places, the rest stay for
    /// everybody else, and filling them takes as many addresses as there
    /// are places divided by `max`.
    ///
    /// How: a connection from a peer that already holds `max` is closed
    /// as soon as it is accepted, before `accept` sees it (so it costs no
    /// TLS handshake), as Envoy's connection limit filter closes a
    /// connection over its limit. The kernel's accept queue cannot be
    /// filtered by peer, so the connection must be accepted to be looked
    /// at, and keeping it open for a place would leave the server's
    /// queue behind it. It holds a place under the server's limit only
    /// for that moment: the server's limit still bounds every peer
    /// together, and a connection it keeps waiting is not refused. A
    /// peer's first refusal is logged at `info`, and the next only once
    /// it has closed every connection; the rest at `debug`, with the
    /// connection's close. The hook's `refused()` counts them all, for a
    /// metric.
    ///
    /// Peers are told apart by IP address, without the port; an IPv4
    /// address mapped into IPv6 is the same peer as itself. A client with
    /// many addresses (an IPv6 prefix, say) gets a share for each, but no
    /// more than the server's limit together. A connection
    /// holds its place until it closes, upgraded ones too. The counts
    /// are shared by the hook's clones, and so by every listener it
    /// serves: one hook given to several servers bounds each peer across
    /// them all. Only peers that hold a connection are remembered.
    ///
    /// ```
    /// use mesh_core::serve::{ConnectionLimit, PlaintextAccept, Server, ServerConfig};
    ///
    /// // An admin server: the kubelet's probes are answered whoever else
    /// // holds connections.
    /// let config = ServerConfig { max_connections: 64, ..ServerConfig::default() };
    /// let server = Server::new(config).with_accept(ConnectionLimit::per_peer(PlaintextAccept, 8));
    /// # let _ = server;
    /// ```
    ///
    /// [`ServerConfig::max_connections`]: super::ServerConfig::max_connections
    pub fn per_peer<A>(accept: A, max: usize) -> PerPeerLimit<A> {
        PerPeerLimit::new(accept, max)
    }
}
