use std::{
    fmt,
    future::{Ready, ready},
    pin::Pin,
};

use futures_util::future::{FutureExt, Shared};
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
///
/// `close_at` is a time on tokio's clock, which stands still while the
/// machine sleeps and takes no notice of a wall clock stepped forward; a
/// certificate expires by the wall clock. A hook that keeps its close time
/// by a clock of its own hands the server that wait instead
/// ([`close_when`](Self::close_when)).
pub struct Retirement {
    drain: Option<Signal>,
    close_at: Option<Instant>,
    close: Option<Signal>,
}

/// A future that resolves once, when what it waits for has come.
type Signal = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Retirement {
    /// A connection served until it ends or the server shuts down.
    pub fn never() -> Self {
        Self {
            drain: None,
            close_at: None,
            close: None,
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
            close: None,
        }
    }

    /// The same retirement, closing the connection when `close` resolves,
    /// in place of a timer at `close_at`: for a close time kept by a clock
    /// other than tokio's (mesh-tls waits for a certificate's `notAfter` by
    /// its credential store's clock, so that a machine resumed from sleep
    /// does not keep the connection open for as long again as it slept).
    ///
    /// The connection, and whatever it is upgraded to, wait on this one
    /// future, which is polled only when it wakes the connection, never for
    /// the connection's reads or requests: `close` should be a timer, not
    /// work. [`close_at`](Self::close_at) still says what was given.
    #[must_use]
    pub fn close_when(self, close: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            close: Some(Box::pin(close)),
            ..self
        }
    }

    /// When the connection is closed regardless, if ever, by tokio's clock
    /// as it stood when the retirement was made.
    pub fn close_at(&self) -> Option<Instant> {
        self.close_at
    }

    /// The drain signal, pending forever when there is none, and the
    /// connection's close, made once here and shared by whoever waits
    /// for it.
    pub(super) fn split(self) -> (impl Future<Output = ()> + Send, Close) {
        let drain = self.drain;
        let signal = async move {
            match drain {
                Some(drain) => drain.await,
                None => std::future::pending().await,
            }
        };
        let close = self.close.or_else(|| {
            self.close_at
                .map(|at| -> Signal { Box::pin(tokio::time::sleep_until(at)) })
        });
        (signal, Close(close.map(FutureExt::shared)))
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
            .field("closes_by_its_own_clock", &self.close.is_some())
            .finish()
    }
}

/// When a connection is closed regardless: its retirement's close, one
/// wait (one timer) for the connection's task and, through its
/// [`Lease`](super::lease::Lease), for whatever the connection was
/// upgraded to.
#[derive(Clone)]
pub(crate) struct Close(Option<Shared<Signal>>);

impl Close {
    /// A connection closed only when it ends or the server shuts down.
    pub(super) fn never() -> Self {
        Self(None)
    }

    /// Whether the connection is ever closed this way.
    pub(super) fn is_armed(&self) -> bool {
        self.0.is_some()
    }

    /// Resolves at the close; never, when there is none.
    pub(super) async fn wait(self) {
        match self.0 {
            Some(close) => close.await,
            None => std::future::pending().await,
        }
    }
}

impl fmt::Debug for Close {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Close").field(&self.is_armed()).finish()
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
