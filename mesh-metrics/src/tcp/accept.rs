use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use mesh_core::{
    conn::{NoTlsReason, Tls},
    error::BoxError,
    io::Io,
    serve::{Accept, Accepted, Protocol},
};
use pin_project_lite::pin_project;

use super::{TcpMetrics, io::ConnSlot};
use crate::{
    labels::{Direction, Peer},
    tcp::CountingIo,
};

/// An [`Accept`] hook that counts each accepted connection's transport
/// metrics, then runs the inner hook (plaintext, or mesh-tls's handshake)
/// over the counted stream. See the [module docs](super).
///
/// ```
/// use mesh_core::serve::{PlaintextAccept, Server, ServerConfig};
/// use mesh_metrics::{TcpAccept, TcpMetrics};
///
/// let mut registry = prometheus_client::registry::Registry::default();
/// let tcp = TcpMetrics::register(&mut registry);
/// let server = Server::new(ServerConfig::default())
///     .with_accept(TcpAccept::inbound(&tcp, PlaintextAccept));
/// # drop(server);
/// ```
#[derive(Clone, Debug)]
pub struct TcpAccept<A> {
    inner: A,
    metrics: TcpMetrics,
    direction: Direction,
}

impl<A> TcpAccept<A> {
    /// Counts connections accepted by a server (`direction="inbound"`,
    /// `peer="src"`), then hands them to `inner`.
    pub fn inbound(metrics: &TcpMetrics, inner: A) -> Self {
        Self {
            inner,
            metrics: metrics.clone(),
            direction: Direction::Inbound,
        }
    }

    /// Counts connections the local application opened to the proxy's
    /// outbound listener (`direction="outbound"`, `peer="src"`), then hands
    /// them to `inner`. Linkerd counts both ends of each direction: an
    /// outbound proxy's accepted connections are its `peer="src"` series,
    /// beside the `peer="dst"` ones [`TcpConnect`](super::TcpConnect)
    /// counts.
    pub fn outbound(metrics: &TcpMetrics, inner: A) -> Self {
        Self {
            inner,
            metrics: metrics.clone(),
            direction: Direction::Outbound,
        }
    }
}

impl<I, A> Accept<I> for TcpAccept<A>
where
    I: Io,
    A: Accept<CountingIo<I>>,
{
    type Io = A::Io;
    type Future = AcceptFuture<A::Future>;

    fn accept(&self, io: I) -> Self::Future {
        let slot = Arc::new(ConnSlot::default());
        AcceptFuture {
            inner: self.inner.accept(CountingIo::new(io, slot.clone())),
            slot,
            metrics: self.metrics.clone(),
            direction: self.direction,
            settled: false,
        }
    }

    fn for_protocol(&self, protocol: Protocol) -> Self {
        Self {
            inner: self.inner.for_protocol(protocol),
            metrics: self.metrics.clone(),
            direction: self.direction,
        }
    }
}

pin_project! {
    /// Runs the inner hook, then attaches the connection's label handles,
    /// now that its TLS status is known. A connection whose hook fails, or
    /// whose future is dropped before the hook returns (a shutdown, a
    /// timer around the hook), is counted too, under [`UNSETTLED`]: it was
    /// accepted, and its bytes and its end are real.
    #[derive(Debug)]
    pub struct AcceptFuture<F> {
        #[pin]
        inner: F,
        slot: Arc<ConnSlot>,
        metrics: TcpMetrics,
        direction: Direction,
        // Whether the slot has its handles.
        settled: bool,
    }

    impl<F> PinnedDrop for AcceptFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.settled {
                // Counted before the hook's future, and the stream it may
                // hold, are dropped: the stream's drop then counts the close.
                let handles = this.metrics.conn(*this.direction, Peer::Src, &UNSETTLED);
                this.slot.open(handles);
            }
        }
    }
}

/// The TLS status a connection is counted under when its hook did not
/// settle one: no TLS session was established with the peer. It is
/// Linkerd's label for a peer that sent no ClientHello
/// (`no_tls_from_remote`), the closest of its values: the handshake of
/// such a connection did not complete, if it started.
static UNSETTLED: Tls = Tls::Plaintext(NoTlsReason::NotProvidedByRemote);

impl<F, T> Future for AcceptFuture<F>
where
    F: Future<Output = Result<Accepted<T>, BoxError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let tls = match &result {
            Ok(accepted) => &accepted.tls,
            // Counted open and closed now if the hook dropped the stream,
            // else when whoever holds it drops it.
            Err(_) => &UNSETTLED,
        };
        let handles = this.metrics.conn(*this.direction, Peer::Src, tls);
        this.slot.open(handles);
        *this.settled = true;
        Poll::Ready(result)
    }
}
