use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::Uri;
use hyper_util::rt::TokioIo;
use mesh_core::conn::Tls;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{CountingIo, TcpMetrics, io::ConnSlot};
use crate::labels::{Direction, Peer};

/// A hyper-util connector that counts the transport metrics of each
/// connection it opens (`peer="dst"`): to other workloads
/// (`direction="outbound"`), or on the inbound side to the local
/// application (`direction="inbound"`). See the [module docs](super).
///
/// It wraps a connector whose streams are [`TokioIo`], such as hyper-util's
/// `HttpConnector`, and sits under any TLS connector, so it counts the bytes
/// on the wire.
///
/// ```
/// use mesh_core::{body::BoxBody, client::{Client, ClientConfig}, conn::{NoTlsReason, Tls}};
/// use mesh_metrics::{TcpConnect, TcpMetrics};
///
/// let mut registry = prometheus_client::registry::Registry::default();
/// let tcp = TcpMetrics::register(&mut registry);
/// let config = ClientConfig::default();
/// let connector = TcpConnect::outbound(
///     &tcp,
///     &Tls::Plaintext(NoTlsReason::Disabled),
///     config.http_connector(),
/// );
/// let client: Client<BoxBody, _> = Client::with_connector(&config, connector);
/// # drop(client);
/// ```
#[derive(Clone, Debug)]
pub struct TcpConnect<C> {
    inner: C,
    metrics: TcpMetrics,
    tls: Arc<Tls>,
    direction: Direction,
}

impl<C> TcpConnect<C> {
    /// Counts the connections `inner` opens, labelled with `tls`: the TLS
    /// status the client expects of its servers, typically
    /// `Tls::Mutual { peer }` naming the identity it verifies.
    pub fn outbound(metrics: &TcpMetrics, tls: &Tls, inner: C) -> Self {
        Self {
            inner,
            metrics: metrics.clone(),
            tls: Arc::new(tls.clone()),
            direction: Direction::Outbound,
        }
    }

    /// Counts the connections `inner` opens on the inbound side: an
    /// inbound proxy's connections to its local application
    /// (`direction="inbound"`, `peer="dst"`), labelled with `tls`,
    /// typically `Tls::Plaintext(NoTlsReason::Loopback)`, as Linkerd labels
    /// them.
    pub fn inbound(metrics: &TcpMetrics, tls: &Tls, inner: C) -> Self {
        Self {
            inner,
            metrics: metrics.clone(),
            tls: Arc::new(tls.clone()),
            direction: Direction::Inbound,
        }
    }
}

impl<C, T> Service<Uri> for TcpConnect<C>
where
    C: Service<Uri, Response = TokioIo<T>>,
{
    type Response = TokioIo<CountingIo<T>>;
    type Error = C::Error;
    type Future = ConnectFuture<C::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        ConnectFuture {
            inner: self.inner.call(uri),
            metrics: self.metrics.clone(),
            tls: self.tls.clone(),
            direction: self.direction,
        }
    }
}

pin_project! {
    /// Opens the connection, then wraps it in a [`CountingIo`] and counts
    /// it open.
    #[derive(Debug)]
    pub struct ConnectFuture<F> {
        #[pin]
        inner: F,
        metrics: TcpMetrics,
        tls: Arc<Tls>,
        direction: Direction,
    }
}

impl<F, T, E> Future for ConnectFuture<F>
where
    F: Future<Output = Result<TokioIo<T>, E>>,
{
    type Output = Result<TokioIo<CountingIo<T>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let io = ready!(this.inner.poll(cx))?.into_inner();
        // Found once the connection is open, not before: one that could
        // not be opened is no observation, and must not count as a fold.
        // Found again for each connection (a lock-free lookup once the
        // labels have series): a label set folded into the overflow series
        // is then counted as a fold per connection, as on the server side.
        let handles = this.metrics.conn(*this.direction, Peer::Dst, this.tls);
        let slot = Arc::new(ConnSlot::default());
        slot.open(handles);
        Poll::Ready(Ok(TokioIo::new(CountingIo::new(io, slot))))
    }
}
