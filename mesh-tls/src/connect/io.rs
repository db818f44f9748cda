use std::{
    io,
    pin::Pin,
    sync::{Arc, Weak},
    task::{Context, Poll},
    time::SystemTime,
};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::{
    client::legacy::connect::{Connected, Connection},
    rt::TokioIo,
};
use mesh_core::Identity;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::error::ConnectionExpired;
use crate::{
    metrics::RetireReason,
    retire::{ConnState, Deadline},
};

/// A connection the [`TlsConnector`](super::TlsConnector) opened: mutual
/// TLS, or plaintext for `plaintext` targets.
pub struct ClientIo<T> {
    kind: Kind<T>,
}

enum Kind<T> {
    Plain(T),
    Tls(Box<TlsConn<T>>),
}

struct TlsConn<T> {
    io: TokioIo<TlsStream<TokioIo<T>>>,
    h2: bool,
    info: ServerTls,
    state: Arc<ConnState>,
    expiry: Expiry,
}

/// What a response learns about the mutual TLS connection it came over.
///
/// The connector attaches it to the connection, and hyper-util's client
/// copies it into the extensions of every response: outbound metrics read
/// the server identity from it.
#[derive(Clone, Debug)]
pub struct ServerTls {
    server: Identity,
    id: u64,
    state: Weak<ConnState>,
}

impl ServerTls {
    /// The identity the server's certificate proved: the one the target
    /// was configured to expect.
    pub fn server_identity(&self) -> &Identity {
        &self.server
    }

    /// A number unique among the connections of one connector, to tell
    /// connections apart in logs.
    pub fn connection_id(&self) -> u64 {
        self.id
    }

    /// Whether the connection has been retired: the pool will not hand it
    /// out again.
    pub fn is_retired(&self) -> bool {
        self.state.upgrade().is_none_or(|s| s.is_retired())
    }

    pub(crate) fn state(&self) -> Option<Arc<ConnState>> {
        self.state.upgrade()
    }
}

/// When a connection is retired and when it is closed: one timer, for
/// the one and then the other, each due by the store's clock (see
/// [`Deadline`]).
struct Expiry {
    deadline: Deadline,
    phase: Phase,
}

#[derive(Clone, Copy)]
enum Phase {
    /// Waiting to retire; then to close at the time given by the store's
    /// clock (or the instant by tokio's), if any.
    Retire {
        close_at: Option<(SystemTime, Instant)>,
    },
    /// Retired; waiting to close.
    Close,
    /// Closed: every read and write fails.
    Expired,
    /// Retired, and never closed.
    Done,
}

impl<T> ClientIo<T> {
    pub(super) fn plain(io: T) -> Self {
        Self {
            kind: Kind::Plain(io),
        }
    }

    pub(super) fn mtls(
        io: TlsStream<TokioIo<T>>,
        server: Identity,
        state: Arc<ConnState>,
        id: u64,
        retire_at: Deadline,
        close_at: Option<(SystemTime, Instant)>,
    ) -> Self {
        let h2 = io.get_ref().1.alpn_protocol() == Some(crate::ALPN_H2);
        let info = ServerTls {
            server,
            id,
            state: Arc::downgrade(&state),
        };
        let expiry = Expiry {
            deadline: retire_at,
            phase: Phase::Retire { close_at },
        };
        Self {
            kind: Kind::Tls(Box::new(TlsConn {
                io: TokioIo::new(io),
                h2,
                info,
                state,
                expiry,
            })),
        }
    }

    /// The server's identity, for a mutual TLS connection.
    pub fn server_identity(&self) -> Option<&Identity> {
        match &self.kind {
            Kind::Plain(_) => None,
            Kind::Tls(tls) => Some(&tls.info.server),
        }
    }

    /// The TLS session, for a mutual TLS connection: the negotiated
    /// parameters and the server's certificates.
    pub fn tls(&self) -> Option<&rustls::ClientConnection> {
        match &self.kind {
            Kind::Plain(_) => None,
            Kind::Tls(tls) => Some(tls.io.inner().get_ref().1),
        }
    }

    /// Whether ALPN settled on HTTP/2.
    pub fn is_h2(&self) -> bool {
        matches!(&self.kind, Kind::Tls(tls) if tls.h2)
    }
}

impl Expiry {
    /// Advances the timers. Polled beside each read, so that an idle pooled
    /// connection (whose task waits on a read) wakes when one fires.
    fn poll(&mut self, cx: &mut Context<'_>, state: &ConnState) -> io::Result<()> {
        loop {
            match self.phase {
                Phase::Retire { close_at } => {
                    if self.deadline.poll_passed(cx).is_pending() {
                        return Ok(());
                    }
                    state.retire(RetireReason::Expiry);
                    self.phase = match close_at {
                        Some((at, until)) => {
                            self.deadline.reset(at, until);
                            Phase::Close
                        }
                        None => Phase::Done,
                    };
                }
                Phase::Close => {
                    if self.deadline.poll_passed(cx).is_pending() {
                        return Ok(());
                    }
                    tracing::debug!("closing a client connection whose certificate expired");
                    self.phase = Phase::Expired;
                }
                Phase::Expired => return Err(io::Error::other(ConnectionExpired)),
                Phase::Done => return Ok(()),
            }
        }
    }

    fn is_expired(&self) -> bool {
        matches!(self.phase, Phase::Expired)
    }
}

impl<T> Read for ClientIo<T>
where
    T: Read + Write + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().kind {
            Kind::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Kind::Tls(tls) => {
                tls.expiry.poll(cx, &tls.state)?;
                Pin::new(&mut tls.io).poll_read(cx, buf)
            }
        }
    }
}

impl<T> Write for ClientIo<T>
where
    T: Read + Write + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().kind {
            Kind::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Kind::Tls(tls) => {
                if tls.expiry.is_expired() {
                    return Poll::Ready(Err(io::Error::other(ConnectionExpired)));
                }
                Pin::new(&mut tls.io).poll_write(cx, buf)
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().kind {
            Kind::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Kind::Tls(tls) => {
                if tls.expiry.is_expired() {
                    return Poll::Ready(Err(io::Error::other(ConnectionExpired)));
                }
                Pin::new(&mut tls.io).poll_write_vectored(cx, bufs)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.kind {
            Kind::Plain(io) => io.is_write_vectored(),
            Kind::Tls(tls) => tls.io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().kind {
            Kind::Plain(io) => Pin::new(io).poll_flush(cx),
            Kind::Tls(tls) => Pin::new(&mut tls.io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().kind {
            Kind::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Kind::Tls(tls) => Pin::new(&mut tls.io).poll_shutdown(cx),
        }
    }
}

impl<T: Connection> Connection for ClientIo<T> {
    fn connected(&self) -> Connected {
        match &self.kind {
            Kind::Plain(io) => io.connected(),
            Kind::Tls(tls) => {
                let connected = tls.io.inner().get_ref().0.inner().connected();
                let connected = if tls.h2 {
                    connected.negotiated_h2()
                } else {
                    connected
                };
                connected.extra(tls.info.clone())
            }
        }
    }
}

impl<T> std::fmt::Debug for ClientIo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Plain(_) => f.debug_struct("ClientIo::Plain").finish_non_exhaustive(),
            Kind::Tls(tls) => f
                .debug_struct("ClientIo::Tls")
                .field("server", &tls.info.server)
                .field("h2", &tls.h2)
                .finish_non_exhaustive(),
        }
    }
}
