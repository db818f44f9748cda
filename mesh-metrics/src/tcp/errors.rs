use std::{
    error::Error,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll, ready},
};

use mesh_core::{error::BoxError, serve::OpaqueConnection};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::TcpMetrics;
use crate::{errors::ProxyError, labels::Direction};

/// Names the error a failed connection is counted under, or `None` for
/// one not counted (a policy's refusal, which its own families count).
pub type Classify = fn(&(dyn Error + 'static)) -> Option<ProxyError>;

/// An opaque connection handler whose failures are counted in
/// `inbound_tcp_errors_total` or `outbound_tcp_errors_total`, once per
/// connection, under the address the connection came to (see
/// [`TcpMetrics::count_error`]). A connection it serves to its end costs
/// one address copied: the series is found only for a failure.
///
/// ```
/// use mesh_metrics::{Direction, TcpMetrics, tcp::CountErrors};
/// use tower::service_fn;
///
/// let mut registry = prometheus_client::registry::Registry::default();
/// let tcp = TcpMetrics::register(&mut registry);
/// let pipe = CountErrors::new(
///     &tcp,
///     Direction::Outbound,
///     service_fn(|_conn: mesh_core::serve::OpaqueConnection| async {
///         Ok::<(), std::io::Error>(())
///     }),
/// );
/// # drop(pipe);
/// ```
#[derive(Clone, Debug)]
pub struct CountErrors<S> {
    inner: S,
    metrics: TcpMetrics,
    direction: Direction,
    target_port: Option<u16>,
    classify: Classify,
}

impl<S> CountErrors<S> {
    /// Counts the failures of `inner`'s connections in `direction`,
    /// each under [`ProxyError::of_error`].
    pub fn new(metrics: &TcpMetrics, direction: Direction, inner: S) -> Self {
        Self {
            inner,
            metrics: metrics.clone(),
            direction,
            target_port: None,
            classify: |error| Some(ProxyError::of_error(error)),
        }
    }

    /// Labels failures with `target_port` `port`, in place of the port the
    /// connection was accepted on: a proxy that listens on one port for an
    /// application on another names the application's, as its HTTP
    /// families do.
    #[must_use]
    pub fn with_target_port(mut self, port: u16) -> Self {
        self.target_port = Some(port);
        self
    }

    /// Names each failure with `classify`, which may leave some out.
    #[must_use]
    pub fn with_classify(mut self, classify: Classify) -> Self {
        self.classify = classify;
        self
    }
}

impl<S> Service<OpaqueConnection> for CountErrors<S>
where
    S: Service<OpaqueConnection, Response = ()>,
    S::Error: Into<BoxError>,
{
    type Response = ();
    type Error = BoxError;
    type Future = CountErrorsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, conn: OpaqueConnection) -> Self::Future {
        let local = conn.info.local_addr;
        let target = SocketAddr::new(local.ip(), self.target_port.unwrap_or(local.port()));
        CountErrorsFuture {
            inner: self.inner.call(conn),
            counter: Some(Counting {
                metrics: self.metrics.clone(),
                direction: self.direction,
                target,
                classify: self.classify,
            }),
        }
    }
}

/// What a failure is counted with.
#[derive(Debug)]
struct Counting {
    metrics: TcpMetrics,
    direction: Direction,
    target: SocketAddr,
    classify: Classify,
}

pin_project! {
    /// The connection's handling, counted if it fails.
    #[derive(Debug)]
    pub struct CountErrorsFuture<F> {
        #[pin]
        inner: F,
        counter: Option<Counting>,
    }
}

impl<F, E> Future for CountErrorsFuture<F>
where
    F: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx)).map_err(Into::into);
        if let (Err(error), Some(c)) = (&result, this.counter.take())
            && let Some(kind) = (c.classify)(&**error)
        {
            c.metrics.count_error(c.direction, c.target, kind);
        }
        Poll::Ready(result)
    }
}
