//! Forwarding opaque TCP connections to a set of endpoints.
//!
//! # Why
//!
//! A mesh that carries only HTTP leaves every database, cache and queue
//! client outside it: their bytes go out in plaintext, unbalanced, and
//! unseen. [`ForwardTcp`] is the TCP counterpart of
//! [`Forward`](super::Forward): each connection it is handed goes to one
//! endpoint of the set, through a connector that can be mesh-tls's, so the
//! bytes travel over mutual TLS to the peer sidecar whatever protocol they
//! carry.
//!
//! # How
//!
//! Per connection, the endpoint is picked by the same balancer `Forward`
//! uses ([`balance`](super::balance)): the cheaper of two drawn at random.
//! The connection counts as in flight against its endpoint from its
//! connect until it ends: a long-lived connection (a database client's
//! pooled one) is load for its whole life, so the next connections go to
//! the endpoints holding fewer, as HAProxy's `leastconn` balances long
//! sessions. The connect time is the endpoint's latency sample (connects
//! under [`CONNECT_RTT_FLOOR`](super::balance::CONNECT_RTT_FLOOR) count
//! as equally fast), and a connect that fails or times out is a failure,
//! which the balancer (and [failure accrual](super::accrual), when on)
//! holds against the endpoint, so the next connections avoid it. Once
//! connected, bytes are copied both ways, each direction's end (FIN)
//! passed on to the other side, until both directions are done or either
//! side fails. When one side fails, the bytes the other had already sent
//! are still passed on before the connection ends: an endpoint that
//! answers and resets the connection (closing it with the client's last
//! bytes unread) has its answer reach the client, as it would without
//! the proxy.
//!
//! The count is held by a value the copy owns, so whatever ends the
//! connection releases it: both directions done, an I/O error, the
//! future dropped (the server's grace period cut it, the client went
//! away) or a panic unwinding through it. An endpoint that leaves the
//! set while connections to it are open keeps them counted against the
//! old balancer, which no new connection reaches; one that stays keeps
//! its count in the new one. A lone endpoint's connections are counted
//! too, though there is nothing to choose yet: when the set grows, the
//! connections it holds are what sends the next ones to the newcomer.
//!
//! The connector is any `Service<Uri>` whose response is a hyper I/O, as
//! hyper-util's `HttpConnector` and mesh-tls's `TlsConnector` are. It is
//! called with `http://<endpoint>/`; the scheme means nothing here.
//!
//! A connect that fails closes the client's connection: a byte stream has
//! no way to carry an error, so the client sees its connection end.
//! The failure is returned as a [`ConnectFailed`], which names the
//! endpoint, and logged with the client, the endpoint and the whole
//! chain of causes: at `warn` when it is the first failed connect of the
//! endpoint since it last took a connection (or joined the set), at
//! `debug` for the rest of that streak, so that an endpoint that cannot
//! be reached shows at the default log level without a line per
//! connection, as [`Forward`](super::Forward) logs a request's failed
//! connect. A `CONNECT` tunnel's connect ([`ForwardTcp::connect`]) is
//! logged the same way.
//!
//! A connection that finds no endpoint ready (the set is still empty,
//! failure accrual took every one out, or the one left is probing) waits
//! for one in the balancer's queue, as an HTTP request does
//! ([`queue`](super::queue)), and as Linkerd's proxy queues outbound TCP
//! connections (`LINKERD2_PROXY_OUTBOUND_TCP_QUEUE_CAPACITY` and
//! `..._TCP_FAILFAST_TIMEOUT`, 10 000 connections and 3 s by default,
//! which are the defaults here too; [`with_queue`](ForwardTcp::with_queue)
//! or [`EndpointSet::with_queue`] sets others). Its client's connection
//! is held open meanwhile, and whatever the client sends waits in it.
//! When no endpoint has been ready for the fail-fast timeout, the waiting
//! connections are closed, and the service returns
//! [`InFailFast`](super::InFailFast) for each; every new one that finds
//! none is closed at once until an endpoint is ready again, shed with
//! [`NoEndpoints`], as is a connection beyond the queue's capacity. These
//! are Linkerd's `failfast` and `loadshed`, for TCP as for HTTP (its
//! opaque routes shed in front of the same queue).
//!
//! [`ForwardTcp::connect`] does the connect alone, for a caller that must
//! know the outcome before it has a connection to forward (a `CONNECT`
//! tunnel answers `502` rather than `200` when it fails; see
//! [`connect`](super::connect)). It waits in the same queue, and ends
//! with the same error where a connection would be closed.
//!
//! ```
//! use std::time::Duration;
//! use mesh_core::{client::ClientConfig, proxy::ForwardTcp};
//!
//! let connector = ClientConfig::default().http_connector();
//! let endpoints = ["127.0.0.1:5432".parse().unwrap()];
//! let forward = ForwardTcp::new(connector, endpoints)
//!     .unwrap()
//!     .with_connect_timeout(Duration::from_secs(2));
//! # drop(forward);
//! ```

use std::{
    fmt,
    future::Future,
    mem,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{Uri, uri::Authority};
use hyper_util::rt::TokioIo;
use tokio::time::Timeout;
use tower::Service;

use super::{
    accrual::FailureAccrual,
    balance::{Balancer, Established, Pending, Picked},
    endpoints::{EndpointSet, Reader},
    forward::NoEndpoints,
    queue::{Queue, Refused},
};
use crate::{
    conn::ConnectionInfo,
    error::BoxError,
    io::{BoxIo, copy_both_ways},
    serve::OpaqueConnection,
};

/// How long a connect may take by default, handshake included: see
/// [`ForwardTcp::with_connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Forwards each opaque connection to one of a set of endpoints through a
/// connector `C`, and copies bytes both ways until the connection ends.
/// See the [module docs](self).
#[derive(Debug)]
pub struct ForwardTcp<C> {
    connector: C,
    endpoints: Reader,
    connect_timeout: Duration,
}

impl<C: Clone> Clone for ForwardTcp<C> {
    fn clone(&self) -> Self {
        Self {
            connector: self.connector.clone(),
            endpoints: self.endpoints.clone(),
            connect_timeout: self.connect_timeout,
        }
    }
}

impl<C> ForwardTcp<C> {
    /// Forwards to the fixed `endpoints` through `connector`, balancing
    /// between them.
    ///
    /// # Errors
    ///
    /// [`NoEndpoints`] when `endpoints` is empty.
    pub fn new(
        connector: C,
        endpoints: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Self, NoEndpoints> {
        Ok(Self {
            connector,
            endpoints: Reader::Fixed(Arc::new(Balancer::non_empty(endpoints)?)),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        })
    }

    /// Forwards to whatever `endpoints` holds at each connection, through
    /// `connector`. While the set is [empty](EndpointSet::empty),
    /// connections wait for its first endpoints, then fail fast (see
    /// [`queue`](super::queue)).
    pub fn with_endpoints(connector: C, endpoints: &EndpointSet) -> Self {
        Self {
            connector,
            endpoints: endpoints.reader(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Takes endpoints whose connects keep failing out for a while, as
    /// `accrual` says (see [`accrual`](super::accrual)). Off by default.
    ///
    /// The endpoints start fresh, and are fixed from then on: a
    /// `ForwardTcp` over an [`EndpointSet`] should have its set built
    /// with [`EndpointSet::with_failure_accrual`] instead.
    #[must_use]
    pub fn with_failure_accrual(mut self, accrual: FailureAccrual) -> Self {
        let balancer = self.endpoints.peek().with_accrual(Some(accrual));
        self.endpoints = Reader::Fixed(Arc::new(balancer));
        self
    }

    /// Has connections that find no endpoint ready wait for one as `queue`
    /// says, then fail fast (see [`queue`](super::queue)); by default they
    /// wait as Linkerd's outbound TCP connections do, up to 10 000 of
    /// them for 3 s.
    ///
    /// As [`with_failure_accrual`](Self::with_failure_accrual), the
    /// endpoints start fresh and are fixed from then on: a `ForwardTcp`
    /// over an [`EndpointSet`] should have its set built with
    /// [`EndpointSet::with_queue`] instead.
    #[must_use]
    pub fn with_queue(mut self, queue: Queue) -> Self {
        let balancer = self.endpoints.peek().with_queue(queue);
        self.endpoints = Reader::Fixed(Arc::new(balancer));
        self
    }

    /// How long the connector may take to hand over a connection: the TCP
    /// connect and, with a TLS connector, the handshake. A connect still
    /// running then counts as a failure of the endpoint, and the client's
    /// connection is closed. Default [`DEFAULT_CONNECT_TIMEOUT`], 10
    /// seconds.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

impl<C> Service<OpaqueConnection> for ForwardTcp<C>
where
    C: Service<Uri> + Clone,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = ();
    type Error = BoxError;
    type Future = ResponseFuture<C, C::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.connector.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, conn: OpaqueConnection) -> Self::Future {
        let OpaqueConnection { io, info } = conn;
        let picked = self.endpoints.current().pick_connection();
        // The clone was never polled: the one driven to readiness connects.
        let clone = self.connector.clone();
        let mut connector = mem::replace(&mut self.connector, clone);
        let Some((endpoint, pending)) = picked else {
            // Rare: the connection waits for an endpoint, or is refused.
            let endpoints = self.endpoints.current().len();
            let forward = ForwardTcp {
                connector,
                endpoints: self.endpoints.clone(),
                connect_timeout: self.connect_timeout,
            };
            let state = match Waiting::admit(forward) {
                Ok(waiting) => {
                    waiting::log_none_ready(endpoints, info.remote_addr);
                    State::Waiting {
                        waiting: Box::new(waiting),
                        client: Some((io, info)),
                    }
                }
                Err(refused) => {
                    waiting::log_refused(refused, Some(info.remote_addr));
                    State::NoEndpoint { refused }
                }
            };
            return ResponseFuture { state };
        };
        let uri = endpoint_uri(endpoint.authority());
        let connect = tokio::time::timeout(self.connect_timeout, connector.call(uri));
        ResponseFuture {
            state: State::Connecting {
                connect,
                client: Some((io, info)),
                endpoint,
                pending,
            },
        }
    }
}

/// `http://<endpoint>/`, the URI connectors take.
fn endpoint_uri(endpoint: &Authority) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(endpoint.clone());
    parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    Uri::from_parts(parts).unwrap_or_default()
}

pin_project_lite::pin_project! {
    /// The future of one connection forwarded by [`ForwardTcp`]: it
    /// waits for an endpoint if none is ready, connects, then copies
    /// bytes both ways until the connection ends.
    pub struct ResponseFuture<C, F> {
        #[pin]
        state: State<C, F>,
    }
}

/// A byte pipe between the client and its endpoint: the copy is boxed, a
/// per-connection allocation, as tokio's copy has no type to name.
type Pipe = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<C, F> {
        // Refused at once: the queue is full or has no places, or the
        // service is in fail-fast (shed), or the queue's zero timeout
        // brought fail-fast.
        NoEndpoint {
            refused: Refused,
        },
        Waiting {
            // Boxed: only a connection that found no endpoint ready has it.
            waiting: Box<Waiting<C>>,
            // Taken when an endpoint is picked.
            client: Option<(BoxIo, ConnectionInfo)>,
        },
        Connecting {
            #[pin]
            connect: Timeout<F>,
            // Taken when the connect completes.
            client: Option<(BoxIo, ConnectionInfo)>,
            endpoint: Picked,
            // Counted against the endpoint; once connected, until the
            // connection ends.
            pending: Option<Pending>,
        },
        Copying {
            pipe: Pipe,
        },
        Done,
    }
}

impl<C, F> fmt::Debug for ResponseFuture<C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::NoEndpoint { .. } => "no endpoint",
            State::Waiting { .. } => "waiting for an endpoint",
            State::Connecting { .. } => "connecting",
            State::Copying { .. } => "copying",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<C, IO> Future for ResponseFuture<C, C::Future>
where
    C: Service<Uri, Response = IO>,
    C::Error: Into<BoxError>,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::NoEndpoint { refused } => {
                    let error = refused.into_error();
                    this.state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
                StateProj::Waiting { waiting, client } => match ready!(waiting.poll_pick(cx)) {
                    Ok((endpoint, pending)) => {
                        let forward = &mut waiting.forward;
                        let connect = forward.connector.call(endpoint_uri(endpoint.authority()));
                        State::Connecting {
                            connect: tokio::time::timeout(forward.connect_timeout, connect),
                            client: client.take(),
                            endpoint,
                            pending,
                        }
                    }
                    Err(refused) => {
                        waiting::log_refused(refused, client.as_ref().map(|c| c.1.remote_addr));
                        this.state.set(State::Done);
                        return Poll::Ready(Err(refused.into_error()));
                    }
                },
                StateProj::Connecting {
                    connect,
                    client,
                    endpoint,
                    pending,
                } => {
                    let result = ready!(connect.poll(cx));
                    let Some((io, info)) = client.take() else {
                        return Poll::Ready(Ok(()));
                    };
                    let peer = Some(info.remote_addr);
                    match connecting::settle(result, endpoint, pending.take(), peer) {
                        Ok((upstream, load)) => State::Copying {
                            pipe: Box::pin(pipe(io, upstream, info, endpoint.clone(), load)),
                        },
                        Err(failed) => {
                            // Logged by `settle`: the client's connection
                            // is closed, a byte stream has no way to
                            // carry the error.
                            drop(io);
                            this.state.set(State::Done);
                            return Poll::Ready(Err(failed.into()));
                        }
                    }
                }
                StateProj::Copying { pipe } => {
                    let result = ready!(pipe.as_mut().poll(cx));
                    this.state.set(State::Done);
                    return Poll::Ready(result);
                }
                StateProj::Done => return Poll::Ready(Ok(())),
            };
            this.state.set(next);
        }
    }
}

/// Copies bytes between `client` and `upstream` until both directions
/// are done or either side fails. The connection counts as `load`
/// against its endpoint for as long as the future lives.
async fn pipe<IO>(
    client: BoxIo,
    upstream: IO,
    info: ConnectionInfo,
    endpoint: Picked,
    load: Option<Established>,
) -> Result<(), BoxError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    // Owned by the future, so released however it ends: returned,
    // dropped or unwound.
    let _load = load;
    let upstream = TokioIo::new(upstream);
    match copy_both_ways(client, upstream).await {
        Ok((sent, received)) => {
            tracing::debug!(
                peer = %info.remote_addr,
                %endpoint,
                sent,
                received,
                "forwarded connection closed"
            );
            Ok(())
        }
        Err(error) => {
            tracing::debug!(peer = %info.remote_addr, %endpoint, %error, "forwarded connection failed");
            Err(error.into())
        }
    }
}

mod connecting;
mod error;
mod waiting;

use self::waiting::Waiting;

pub use self::{
    connecting::{Connected, Connecting},
    error::ConnectFailed,
};

#[cfg(test)]
pub(super) mod tests;

#[cfg(test)]
mod load_tests;
