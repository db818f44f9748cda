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
//! Ending an upgraded connection is the lease's other half: it ends when
//! the server's grace period runs out, or at the connection's
//! [`Retirement`](super::Retirement) close time, whichever comes first: an
//! upgraded connection, like an opaque one, cannot be drained, and it must
//! not outlive the credentials that let it in. The proxy's tunnel holds a
//! lease of its own, a request extension on upgrade and `CONNECT`
//! requests, and closes both of its sides when it ends. An application's
//! own upgrade handler knows nothing of it, so the server also cuts the
//! I/O itself ([`Cut`]): once the lease ends, the upgraded connection's
//! reads and writes fail, and its handler, whatever it is, closes it.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    task::{Context, Poll},
};

use futures_util::task::AtomicWaker;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::{Notify, OwnedSemaphorePermit, watch},
};

use super::accept::Close;

/// A connection's place under the server's limit, the server's signal
/// that the grace period is over, and the connection's close time. A
/// request extension on upgrade and `CONNECT` requests.
#[derive(Clone, Debug)]
pub(crate) struct Lease {
    held: Arc<Held>,
    cut: watch::Receiver<bool>,
    close: Close,
    /// The connection's peer, once known: for the log.
    peer: Option<SocketAddr>,
}

/// What the clones of one lease share.
#[derive(Debug)]
struct Held {
    _permit: OwnedSemaphorePermit,
    /// Whether the close time has been logged: the proxy's tunnel and the
    /// server's [`Cut`] each wait for it, and one line says it.
    close_logged: AtomicBool,
}

impl Lease {
    pub(super) fn new(permit: OwnedSemaphorePermit, cut: watch::Receiver<bool>) -> Self {
        Self {
            held: Arc::new(Held {
                _permit: permit,
                close_logged: AtomicBool::new(false),
            }),
            cut,
            close: Close::never(),
            peer: None,
        }
    }

    /// The same lease, ending at `close` too: the connection's retirement
    /// close, once the accept hook has given it; `peer` is whom the
    /// connection serves.
    pub(super) fn closing(self, close: Close, peer: SocketAddr) -> Self {
        Self {
            close,
            peer: Some(peer),
            ..self
        }
    }

    /// Completes when the server's grace period is over, the server is
    /// gone, or the connection's close time has come; the place is held
    /// until then.
    pub(crate) async fn cut(self) {
        let Self {
            held,
            mut cut,
            close,
            peer,
        } = self;
        tokio::select! {
            // An error means the server is gone, which also means cut.
            _ = cut.wait_for(|cut| *cut) => {}
            () = close.wait() => {
                if !held.close_logged.swap(true, Ordering::Relaxed) {
                    tracing::debug!(
                        peer = peer.map(tracing::field::display),
                        "upgraded connection closed: its credentials expired"
                    );
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection's I/O, holding the connection's [`Lease`] for as long
    /// as it lives: after an upgrade, that is as long as the upgraded
    /// connection. Once [`Cut::cut`] is called, its reads and writes
    /// fail, waiting ones included.
    pub(super) struct Leased<I> {
        #[pin]
        io: I,
        _lease: Lease,
        cut: Arc<Cut>,
    }

    impl<I> PinnedDrop for Leased<I> {
        fn drop(this: Pin<&mut Self>) {
            this.cut.gone.notify_one();
        }
    }
}

/// The way to end a [`Leased`] I/O from outside, when it has been handed
/// over (to an application's upgrade handler). Its reads and writes check
/// one flag; they note their wakers, when they wait, only once the
/// connection is [`arm`](Self::arm)ed, which a request that may upgrade
/// it does: the other connections, nearly all, pay one load per call.
#[derive(Debug, Default)]
pub(super) struct Cut {
    /// `OPEN`, `ARMED` or `CUT`.
    state: AtomicU8,
    read: AtomicWaker,
    write: AtomicWaker,
    /// Notified when the I/O is dropped.
    gone: Notify,
}

const OPEN: u8 = 0;
const ARMED: u8 = 1;
const CUT: u8 = 2;

impl Cut {
    /// The connection may be upgraded: waiting reads and writes note their
    /// wakers from now on. Called before the upgrade's response is sent,
    /// so before anyone else holds the I/O.
    pub(super) fn arm(&self) {
        let _ = self
            .state
            .compare_exchange(OPEN, ARMED, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Fails the I/O's reads and writes from now on, and wakes those
    /// waiting.
    fn cut(&self) {
        self.state.store(CUT, Ordering::Release);
        self.read.wake();
        self.write.wake();
    }

    /// Passes on an operation's `result`, an error once cut; a waiting
    /// operation of an armed connection notes its waker in `waker`.
    #[inline]
    fn check<T>(
        &self,
        waker: &AtomicWaker,
        cx: &Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_pending() && self.state.load(Ordering::Acquire) == ARMED {
            waker.register(cx.waker());
        }
        if self.state.load(Ordering::Acquire) == CUT {
            return Poll::Ready(Err(cut_error()));
        }
        result
    }

    /// Cuts the I/O when `lease` ends (the server's grace period, or the
    /// connection's close time), unless it is dropped first; for I/O that
    /// outlives its connection's task, an upgraded connection.
    pub(super) async fn when_lease_ends(self: Arc<Self>, lease: Lease) {
        let gone = self.gone.notified();
        tokio::select! {
            () = lease.cut() => self.cut(),
            () = gone => {}
        }
    }
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "upgraded connection closed by the server: its shutdown grace period ended or its \
         credentials expired",
    )
}

impl<I> Leased<I> {
    pub(super) fn new(io: I, lease: Lease, cut: Arc<Cut>) -> Self {
        Self {
            io,
            _lease: lease,
            cut,
        }
    }
}

impl<I: AsyncRead> AsyncRead for Leased<I> {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let read = this.io.poll_read(cx, buf);
        this.cut.check(&this.cut.read, cx, read)
    }
}

impl<I: AsyncWrite> Leased<I> {
    /// Passes on a write (or flush) `op`, failing it once cut.
    #[inline]
    fn write_op<T>(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut I>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let this = self.project();
        let done = op(this.io, cx);
        this.cut.check(&this.cut.write, cx, done)
    }
}

impl<I: AsyncWrite> AsyncWrite for Leased<I> {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_op(cx, |io, cx| io.poll_write(cx, buf))
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.write_op(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write_op(cx, |io, cx| io.poll_flush(cx))
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}
