//! What an upgraded connection keeps of the server that accepted it.
//!
//! Once hyper hands an upgraded connection (a WebSocket, say, or the
//! tunnel a `CONNECT` opens) to whoever serves it next, the server's
//! connection task is over, though the socket stays open. Were the task's
//! place under the connection limit released then, every upgrade would
//! free a place for another connection and the limit would bound
//! nothing; and shutdown, which waits for the tasks, would return with
//! upgraded connections still open.
//!
//! So the place is a [`Lease`], and the connection's I/O holds one
//! ([`Leased`]): hyper's upgraded connection owns that I/O, so the place
//! stays taken until the upgraded connection is dropped, by the proxy's
//! tunnel or by an application's own WebSocket handler alike, and the
//! server's shutdown waits for it, within the grace period.
//!
//! Ending a connection is another matter: the server cannot reach I/O it
//! has handed over. A lease also travels with each upgrade and `CONNECT`
//! request, as a request extension, for the proxy's tunnel to hold: it
//! ends the tunnel when the server's grace period runs out, or at the
//! connection's [`Retirement`](super::Retirement) close time, whichever
//! comes first: a tunnel, like an opaque connection, cannot be drained,
//! and it must not outlive the credentials that let it in. An application
//! that upgrades connections itself watches the [`Shutdown`](super::Shutdown)
//! it gave the server to close them in time; the server waits for them
//! until its grace period ends, and then returns.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{OwnedSemaphorePermit, watch},
    time::Instant,
};

/// A connection's place under the server's limit, the server's signal
/// that the grace period is over, and the connection's close time. A
/// request extension on upgrade and `CONNECT` requests.
#[derive(Clone, Debug)]
pub(crate) struct Lease {
    _permit: Arc<OwnedSemaphorePermit>,
    cut: watch::Receiver<bool>,
    close_at: Option<Instant>,
    /// The connection's peer, once known: for the log.
    peer: Option<SocketAddr>,
}

impl Lease {
    pub(super) fn new(permit: OwnedSemaphorePermit, cut: watch::Receiver<bool>) -> Self {
        Self {
            _permit: Arc::new(permit),
            cut,
            close_at: None,
            peer: None,
        }
    }

    /// The same lease, ending at `close_at` too: the connection's
    /// retirement close time, once the accept hook has given it; `peer`
    /// is whom the connection serves.
    pub(super) fn closing_at(self, close_at: Option<Instant>, peer: SocketAddr) -> Self {
        Self {
            close_at,
            peer: Some(peer),
            ..self
        }
    }

    /// Completes when the server's grace period is over, the server is
    /// gone, or the connection's close time has come; the place is held
    /// until then.
    pub(crate) async fn cut(mut self) {
        tokio::select! {
            // An error means the server is gone, which also means cut.
            _ = self.cut.wait_for(|cut| *cut) => {}
            () = super::accept::until(self.close_at) => {
                tracing::debug!(
                    peer = self.peer.map(tracing::field::display),
                    "upgraded connection closed: its credentials expired"
                );
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection's I/O, holding the connection's [`Lease`] for as long
    /// as it lives: after an upgrade, that is as long as the upgraded
    /// connection.
    pub(super) struct Leased<I> {
        #[pin]
        io: I,
        _lease: Lease,
    }
}

impl<I> Leased<I> {
    pub(super) fn new(io: I, lease: Lease) -> Self {
        Self { io, _lease: lease }
    }
}

impl<I: AsyncRead> AsyncRead for Leased<I> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<I: AsyncWrite> AsyncWrite for Leased<I> {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}
