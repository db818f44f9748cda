use std::{
    fmt,
    future::{Ready, ready},
    pin::Pin,
};

use tokio::time::Instant;

use super::Protocol;
use crate::{
    conn::{NoTlsReason, Tls},
    error::BoxError,
    io::Io,
};

/// A connection after the [`Accept`] hook has run.
#[derive(Debug)]
pub struct Accepted<I> {
    /// The stream to serve: the TCP stream itself, or a TLS stream over it.
    pub io: I,
    /// How the peer was authenticated.
    pub tls: Tls,
    /// The HTTP version ALPN settled on, when the hook negotiated one. It
    /// skips protocol detection; an HTTP/2 peer must still open with the
    /// preface within the detection timeout.
    pub alpn: Option<HttpVersion>,
    /// When the connection's authentication goes stale.
    pub retire: Retirement,
}

/// When a connection should stop being served, because what authenticated
/// it is going stale: TLS credentials that rotated, or a certificate near
/// its `notAfter`.
///
/// Once `drain` resolves, the server stops taking new requests on the
/// connection, lets those in flight finish, and closes it (HTTP/1.1 closes
/// after the current response, HTTP/2 sends GOAWAY), so clients move to a
/// fresh connection without losing a request. At `close_at` the connection
/// is closed whatever it is doing, opaque byte pipes and upgraded
/// connections included (the proxy's tunnels, or a WebSocket the
/// application serves itself), which cannot be drained: no connection
/// outlives the certificate it was authenticated with.
pub struct Retirement {
    drain: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    close_at: Option<Instant>,
}

impl Retirement {
    /// A connection served until it ends or the server shuts down.
    pub fn never() -> Self {
        Self {
            drain: None,
            close_at: None,
        }
    }

    /// Drained when `drain` resolves, and closed at `close_at`, if given.
    pub fn new(
        drain: impl Future<Output = ()> + Send + 'static,
        close_at: Option<Instant>,
    ) -> Self {
        Self {
            drain: Some(Box::pin(drain)),
            close_at,
        }
    }

    /// When the connection is closed regardless, if ever.
    pub fn close_at(&self) -> Option<Instant> {
        self.close_at
    }

    /// The drain signal, pending forever when there is none, and the time
    /// the connection is closed regardless.
    pub(super) fn split(self) -> (impl Future<Output = ()> + Send, Option<Instant>) {
        let drain = self.drain;
        let signal = async move {
            match drain {
                Some(drain) => drain.await,
                None => std::future::pending().await,
            }
        };
        (signal, self.close_at)
    }
}

impl Default for Retirement {
    fn default() -> Self {
        Self::never()
    }
}

impl fmt::Debug for Retirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retirement")
            .field("drains", &self.drain.is_some())
            .field("close_at", &self.close_at)
            .finish()
    }
}

/// Resolves at `at`; never, when there is none.
pub(super) async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// An HTTP version a connection is served with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 (and 1.0).
    Http1,
    /// HTTP/2.
    Http2,
}

/// The hook every accepted connection passes through before it is served.
///
/// This is where TLS plugs in: an implementation may read the first bytes,
/// run a handshake and report the peer's identity. Returning an error closes
/// the connection.
///
/// The server puts no timer on the hook (a shutdown does end it): an
/// implementation that waits on the peer bounds that wait itself, as
/// mesh-tls's handshake timeout does, or a silent peer holds its place
/// under the connection limit for as long as it likes.
///
/// What to do with a peer that stays silent can depend on what the port
/// carries: the client of a server-speaks-first protocol (MySQL, SMTP)
/// sends nothing until the application greets it. So the server tells
/// the hook its port's [`Protocol`] through
/// [`for_protocol`](Self::for_protocol), once, when it starts serving a
/// listener; connections are then accepted by the hook that returns,
/// which pays nothing per connection for knowing.
pub trait Accept<I>: Clone + Send + Sync + 'static {
    /// The stream handed on to the protocol handlers.
    type Io: Io;
    /// The future of an accepted connection.
    type Future: Future<Output = Result<Accepted<Self::Io>, BoxError>> + Send + 'static;

    /// Runs the hook on a newly accepted connection.
    fn accept(&self, io: I) -> Self::Future;

    /// The hook for a listener whose port carries `protocol`, called once
    /// when a server starts serving one. By default the hook itself. A
    /// hook that wraps another passes the call on to it, or the inner one
    /// never learns the port's protocol.
    fn for_protocol(&self, protocol: Protocol) -> Self {
        let _ = protocol;
        self.clone()
    }
}

/// The [`Accept`] hook of a plaintext listener: it takes the connection as it
/// is and records that the peer offered no TLS.
#[derive(Clone, Copy, Debug, Default)]
pub struct PlaintextAccept;

impl<I: Io> Accept<I> for PlaintextAccept {
    type Io = I;
    type Future = Ready<Result<Accepted<I>, BoxError>>;

    fn accept(&self, io: I) -> Self::Future {
        ready(Ok(Accepted {
            io,
            tls: Tls::Plaintext(NoTlsReason::NotProvidedByRemote),
            alpn: None,
            retire: Retirement::never(),
        }))
    }
}
