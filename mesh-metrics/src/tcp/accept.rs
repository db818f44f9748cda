use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use mesh_core::{
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
    /// now that its TLS status is known.
    #[derive(Debug)]
    pub struct AcceptFuture<F> {
        #[pin]
        inner: F,
        slot: Arc<ConnSlot>,
        metrics: TcpMetrics,
        direction: Direction,
    }
}

impl<F, T> Future for AcceptFuture<F>
where
    F: Future<Output = Result<Accepted<T>, BoxError>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let accepted = ready!(this.inner.poll(cx))?;
        let handles = this.metrics.conn(*this.direction, Peer::Src, &accepted.tls);
        this.slot.open(handles);
        Poll::Ready(Ok(accepted))
    }
}
