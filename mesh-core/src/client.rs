//! The pooled upstream client.
//!
//! Connections to an upstream are expensive to open and cheap to reuse, so
//! the client keeps idle ones in a pool per `scheme://authority`. It speaks
//! the HTTP version of each request: HTTP/2 requests go over HTTP/2 (prior
//! knowledge, or ALPN when the connector negotiates TLS), HTTP/1 requests
//! over HTTP/1.1. The connector is pluggable: plaintext TCP by default, and
//! mesh-tls's connector for mutual TLS.
//!
//! # One endpoint per client, and the authority a request asked for
//!
//! A proxy connects to the endpoint its balancer picked, yet the request
//! it sends must still name the authority its client asked for: over
//! HTTP/2 an intermediary builds `:authority` from the original request
//! (RFC 9113 §8.3.1), and servers (Go's net/http, grpc-go, Envoy) route
//! and pick virtual hosts by it, not by `Host`. hyper-util's client
//! connects to, pools by, and sends as `:authority`, one and the same
//! thing: the request URI's authority. So a URI that named the endpoint
//! reached the connection, but sent the endpoint's address as
//! `:authority`.
//!
//! [`ForEndpoint::for_endpoint`] splits the two. It makes a client of its
//! own for one endpoint, whose connector opens every connection to that
//! endpoint whatever the request URI names; the URI then keeps the
//! authority the client asked for. A [`Forward`](crate::proxy::Forward)
//! makes one such client when an endpoint joins its balancer, not per
//! request, and drops it when the endpoint leaves, with its pooled
//! connections. The connector still sees the endpoint's URI, as before:
//! mesh-tls's connector picks its TLS target and server name from it.
//!
//! Within one endpoint's client connections are pooled per authority, as
//! hyper-util pools: requests for two hosts on one endpoint travel over
//! HTTP/2 on two connections. Nothing bounds how many: a caller that names
//! fifty hosts for one service (which a destination override, not `Host`,
//! picked) has fifty connections opened to each of its endpoints, each
//! kept for the HTTP/2 idle timeout. A client of its own over
//! `hyper::client::conn`, one HTTP/2 connection per endpoint whatever the
//! authority, would avoid that, but lose what hyper-util's pool does and
//! mesh-tls relies on (retiring pooled connections when credentials
//! rotate).
//!
//! # `Host`: the one the caller named, never one made up
//!
//! An HTTP/1.0 request may name no host at all, and a proxy passes it on
//! as it came: the upstream must not read, in a `Host` its client never
//! wrote, the address of the endpoint it was sent to. Yet hyper-util's
//! client, asked for an HTTP/1 request without `Host`, writes one from
//! the URI's authority, which over HTTP/1 is the endpoint's address
//! ([`Forward`](crate::proxy::Forward) keeps the authority the request
//! was sent for in `Host`). Linkerd's HTTP/1 client sends only the `Host`
//! it was given (`set_host(false)`, but for a request in absolute form,
//! whose URI is the caller's own).
//!
//! A caller in the process, on the other hand, names its host in the URI
//! (`Client::new(..)` and `http://orders/list`) and expects it as `Host`,
//! as from any HTTP client. So the two kinds of client differ, each set
//! once when it is built, with nothing to decide per request:
//!
//! - a [`Client`] made with [`new`](Client::new) or
//!   [`with_connector`](Client::with_connector) writes `Host` from the URI
//!   when a request has none, as hyper-util does;
//! - one made for an endpoint ([`ForEndpoint::for_endpoint`]), what
//!   `Forward` sends through, never does: its URIs name the endpoint, not
//!   a host anyone asked for. `Forward` puts the caller's host in `Host`,
//!   from the request's own `Host` or its absolute-form target; a request
//!   that named none goes without.
//!
//! A response head may be as large over HTTP/2 as the server lets a
//! request head be, 64 KiB, rather than hyper's HTTP/2 default of 16 KiB:
//! a response that crosses over HTTP/1.1 must not fail once two sidecars
//! speak HTTP/2 to each other.

use std::{
    fmt,
    net::SocketAddr,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderValue, Request, Response, Uri, Version, header, uri::Authority};
use http_body::Body;
use hyper::{
    body::Incoming,
    rt::{Read, Write},
};
use hyper_util::{
    client::legacy::{
        self, Builder,
        connect::{Connection, HttpConnector},
    },
    rt::{TokioExecutor, TokioTimer},
};
use tower::Service;

use crate::{
    error::BoxError,
    proxy::balance::{EndpointConnects, reconnect::ConnectUnderWay},
    serve::{HTTP2_KEEP_ALIVE_INTERVAL, HTTP2_KEEP_ALIVE_TIMEOUT, MAX_REQUEST_HEAD_BYTES},
};

/// The largest HTTP/2 response head (its header list, as HTTP/2 counts
/// it) the client takes: the server's default request head bound,
/// [`MAX_REQUEST_HEAD_BYTES`], 64 KiB.
const HTTP2_MAX_RESPONSE_HEAD: u32 = MAX_REQUEST_HEAD_BYTES as u32;

/// How the client connects and pools.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// How long a TCP connect may take. Default 1 second.
    pub connect_timeout: Duration,
    /// How long an idle pooled HTTP/1 connection is kept. Default 3
    /// seconds, as in Linkerd's proxy.
    ///
    /// A server closes a keep-alive connection after a few quiet seconds
    /// of its own (Node.js and Apache after 5), and HTTP/1 has no way to
    /// say so ahead: a request sent on a connection as the server closes
    /// it is dropped unanswered, and having been written, it cannot be
    /// sent again. Keeping idle connections for less time than servers do
    /// keeps requests out of that race. Keep it below the keep-alive
    /// timeout of the upstreams this client talks to. Zero keeps no idle
    /// connection: each closes once its request is done.
    pub pool_idle_timeout: Duration,
    /// How long an idle pooled HTTP/2 connection is kept. Default 30
    /// seconds.
    ///
    /// HTTP/2 has no such race: a server that closes a connection says
    /// first, with `GOAWAY`, which requests it took, and the client sends
    /// no more on it. A connection between two proxies is mutual TLS,
    /// whose handshake is worth keeping the connection through a lull.
    /// Zero keeps no idle connection, as for HTTP/1.
    pub http2_pool_idle_timeout: Duration,
    /// How many idle connections are kept per upstream. Default no limit.
    pub pool_max_idle_per_host: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(3),
            http2_pool_idle_timeout: Duration::from_secs(30),
            pool_max_idle_per_host: usize::MAX,
        }
    }
}

impl ClientConfig {
    /// The plaintext TCP connector this configuration describes: Nagle off,
    /// the connect timeout applied, and TCP keepalive on.
    ///
    /// An upstream whose host died, or whose path dropped, sends no FIN:
    /// without probes, a pooled connection to it looks alive, and a request
    /// sent on it waits until the kernel gives up retransmitting, a quarter
    /// of an hour later. Keepalive probes after 10 seconds of quiet (as
    /// Linkerd's connect keepalive), then every 10 seconds, and gives up
    /// after three unanswered ones.
    pub fn http_connector(&self) -> HttpConnector {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(self.connect_timeout));
        connector.set_keepalive(Some(Duration::from_secs(10)));
        connector.set_keepalive_interval(Some(Duration::from_secs(10)));
        connector.set_keepalive_retries(Some(3));
        connector
    }
}

/// A pooled HTTP/1.1 and HTTP/2 client over the connector `C`, sending
/// request bodies of type `B`.
///
/// Clones share the pools. A clone costs one reference count: stacks
/// clone their innermost service for every request (a retry, for one), and
/// each of the two hyper-util clients inside is a dozen reference counts
/// and a copy of the connector.
pub struct Client<B, C = HttpConnector> {
    inner: Arc<Versions<B, C>>,
}

/// One hyper-util client per HTTP version: the HTTP/2 one speaks HTTP/2
/// only, so an HTTP/2 request is never downgraded. The builder and the
/// connector stay, to make clients for one endpoint.
struct Versions<B, C> {
    http1: legacy::Client<ToEndpoint<C>, B>,
    http2: legacy::Client<ToEndpoint<C>, B>,
    builder: Builder,
    /// How long each client keeps an idle connection.
    idle: Idle,
    connector: ToEndpoint<C>,
}

/// How long the HTTP/1 and the HTTP/2 client keep an idle connection.
///
/// A zero timeout keeps none: hyper-util's pool runs no sweep for a zero
/// timeout, and finds an idle connection expired only when it next looks
/// for one to the same upstream, so a connection put back after the last
/// request there would stay open for good. Such a client keeps no idle
/// connection at all (`pool_max_idle_per_host(0)`), and closes each one
/// once its request is done.
#[derive(Clone, Copy, Debug)]
struct Idle {
    http1: Duration,
    http2: Duration,
}

impl<B, C> Clone for Client<B, C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B, C> fmt::Debug for Client<B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl<B> Client<B>
where
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// A plaintext client.
    pub fn new(config: &ClientConfig) -> Self {
        Self::with_connector(config, config.http_connector())
    }
}

impl<B, C> Client<B, C>
where
    C: Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: Read + Write + Connection + Unpin + Send + 'static,
    C::Future: Unpin + Send + 'static,
    C::Error: Into<BoxError>,
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// A client that opens connections with `connector`.
    pub fn with_connector(config: &ClientConfig, connector: C) -> Self {
        let mut builder = legacy::Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            // Requests multiplexed on an HTTP/2 connection whose upstream
            // stopped answering would wait for it for ever; pings notice,
            // with the server's timings, idle pooled connections included.
            .http2_keep_alive_interval(Some(HTTP2_KEEP_ALIVE_INTERVAL))
            .http2_keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT)
            .http2_keep_alive_while_idle(true)
            // hyper's HTTP/2 default, 16 KiB, refused (with a 502) response
            // heads the same upstream sends over HTTP/1.1, where hyper
            // reads about 400 KiB: a session cookie of 20 KiB broke once
            // sidecars spoke HTTP/2 to each other. The server's request
            // head bound, Envoy's 60 KiB near enough, fits both ways.
            .http2_max_header_list_size(HTTP2_MAX_RESPONSE_HEAD);
        let idle = Idle {
            http1: config.pool_idle_timeout,
            http2: config.http2_pool_idle_timeout,
        };
        Self::build(
            builder,
            idle,
            ToEndpoint {
                inner: connector,
                endpoint: None,
            },
            None,
        )
    }

    /// The two clients, over `connector`; the HTTP/2 one's connects
    /// finish on their own and report to `connects`, if given, when the
    /// connector has an endpoint.
    fn build(
        builder: Builder,
        idle: Idle,
        connector: ToEndpoint<C>,
        connects: Option<EndpointConnects>,
    ) -> Self {
        let pooled = |timeout: Duration, http2: bool, connector: ToEndpoint<C>| {
            let mut builder = builder.clone();
            builder.http2_only(http2).pool_idle_timeout(timeout);
            if timeout.is_zero() {
                // See `Idle`: else idle connections outlive the timeout.
                builder.pool_max_idle_per_host(0);
            }
            builder.build(connector)
        };
        let http1 = pooled(idle.http1, false, connector.clone());
        let reporting = match (&connector.endpoint, connects) {
            (Some(endpoint), Some(connects)) => ToEndpoint {
                inner: connector.inner.clone(),
                endpoint: Some(Arc::new(Dest {
                    uri: endpoint.uri.clone(),
                    connects: Some(connects),
                })),
            },
            _ => connector.clone(),
        };
        let http2 = pooled(idle.http2, true, reporting);
        Self {
            inner: Arc::new(Versions {
                http1,
                http2,
                builder,
                idle,
                connector,
            }),
        }
    }
}

/// A client that can be made to send every request to one endpoint,
/// whatever the request URI names: what a
/// [`Forward`](crate::proxy::Forward) needs of its client, so that the
/// URI can keep the authority the request was sent for (see the
/// [module docs](self)).
///
/// `Forward` makes one client per endpoint, when the endpoint joins its
/// balancer, polls the client it was given for readiness, and calls a
/// clone of the endpoint's. So a client made for an endpoint must be
/// ready whenever the one it was made from is, and cheap to clone, as
/// [`Client`] is (a pool connects on demand; a clone is one reference
/// count).
pub trait ForEndpoint {
    /// A client like this one whose every request goes to `endpoint`.
    #[must_use]
    fn for_endpoint(&self, endpoint: SocketAddr) -> Self;

    /// A client like [`for_endpoint`](Self::for_endpoint)'s for the
    /// endpoint `connects` names, whose HTTP/2 connects end on their own
    /// when the request that started one is given up on (a timeout above
    /// cut it, its caller went away), and report to `connects` how they
    /// ended, so that an endpoint whose connects never end in time still
    /// backs off (see [`reconnect`](crate::proxy::balance::reconnect)).
    /// A [`Forward`](crate::proxy::Forward) makes its endpoints' clients
    /// with this.
    ///
    /// The default is `for_endpoint`'s client: a connect given up on is
    /// dropped with its request, and teaches nothing. A client that
    /// sends through a [`Client`] passes `connects` on to it.
    #[must_use]
    fn for_endpoint_reporting(&self, connects: &EndpointConnects) -> Self
    where
        Self: Sized,
    {
        self.for_endpoint(connects.addr())
    }

    /// Whether this client will send `req`, as it is handed over, as
    /// HTTP/2.
    ///
    /// A [`Forward`](crate::proxy::Forward) backs off an endpoint whose
    /// HTTP/2 connect failed, as Linkerd's proxy reconnects an HTTP/2
    /// endpoint, and connects per request to a plain HTTP/1 one (see
    /// [`reconnect`](crate::proxy::balance::reconnect)). Which of the two
    /// a request's connect was is the client's to say: one that carries
    /// HTTP/1.1 requests as HTTP/2 itself
    /// ([`orig_proto::upgrade`](crate::proxy::orig_proto::upgrade) inside
    /// its `call`) answers `true` for those it upgrades, with the same
    /// test its `call` makes, or an endpoint that refuses them never
    /// backs off. It is asked once per request, so it must be as cheap
    /// as that test.
    ///
    /// The default is the request's own version, for a client that sends
    /// each request in the version it comes with.
    fn sends_http2<B>(&self, req: &Request<B>) -> bool {
        req.version() == Version::HTTP_2
    }
}

impl<B, C> ForEndpoint for Client<B, C>
where
    C: Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: Read + Write + Connection + Unpin + Send + 'static,
    C::Future: Unpin + Send + 'static,
    C::Error: Into<BoxError>,
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// A client with pools of its own, whose connector is handed
    /// `http://<endpoint>` for every connection it opens. Nothing is
    /// shared with `self` but the connector's own state.
    ///
    /// It sends an HTTP/1 request with the `Host` the request carries, and
    /// none when it carries none: it never makes one from the URI, which
    /// over HTTP/1 names the endpoint (see the [module docs](self)).
    fn for_endpoint(&self, endpoint: SocketAddr) -> Self {
        self.made_for(endpoint, None)
    }

    /// As [`for_endpoint`](Self::for_endpoint), and the HTTP/2 client's
    /// connects (TCP, and the connector's TLS, each bounded by its own
    /// timeout) run as tasks of their own, one per connect, not per
    /// request: one whose request was given up on still ends, and
    /// reports to `connects`. A request served from the pool connects
    /// nothing, and pays nothing for this.
    fn for_endpoint_reporting(&self, connects: &EndpointConnects) -> Self {
        self.made_for(connects.addr(), Some(connects.clone()))
    }
}

impl<B, C> Client<B, C>
where
    C: Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: Read + Write + Connection + Unpin + Send + 'static,
    C::Future: Unpin + Send + 'static,
    C::Error: Into<BoxError>,
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// A client for `endpoint` (see [`ForEndpoint::for_endpoint`]),
    /// reporting to `connects` if given.
    fn made_for(&self, endpoint: SocketAddr, connects: Option<EndpointConnects>) -> Self {
        let connector = ToEndpoint {
            inner: self.inner.connector.inner.clone(),
            endpoint: Some(Arc::new(Dest {
                uri: endpoint_uri(endpoint),
                connects: None,
            })),
        };
        let mut builder = self.inner.builder.clone();
        builder.set_host(false);
        Self::build(builder, self.inner.idle, connector, connects)
    }
}

/// `http://<endpoint>`, the URI a connector is handed for `endpoint`
/// (an IPv6 scope is not part of it, as the balancer names endpoints).
fn endpoint_uri(endpoint: SocketAddr) -> Uri {
    let uri = match endpoint {
        SocketAddr::V4(v4) => format!("http://{v4}"),
        SocketAddr::V6(v6) => format!("http://[{}]:{}", v6.ip(), v6.port()),
    };
    // An address and a port always make a URI. Were one not to, the
    // connections fail: they never go where the request URI names.
    Uri::try_from(uri).unwrap_or_else(|_| Uri::from_static("http://0.0.0.0:0"))
}

/// A connector that connects to its endpoint, if it has one, whatever
/// URI it is asked for.
///
/// hyper-util clones its connector for every request, whether or not the
/// request opens a connection: the endpoint is behind an `Arc`, one
/// reference count to clone where a `Uri` is several, and what its
/// connects report to with it.
#[derive(Clone, Debug)]
struct ToEndpoint<C> {
    inner: C,
    endpoint: Option<Arc<Dest>>,
}

/// Where a connector made for an endpoint connects, and what its connects
/// report to when they end after their requests gave up on them.
#[derive(Debug)]
struct Dest {
    uri: Uri,
    connects: Option<EndpointConnects>,
}

impl<C> Service<Uri> for ToEndpoint<C>
where
    C: Service<Uri>,
    C::Future: Unpin + Send + 'static,
    C::Response: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Connect<C::Future, C::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let Some(dest) = &self.endpoint else {
            return Connect::Inline(self.inner.call(uri));
        };
        let connect = self.inner.call(dest.uri.clone());
        match (&dest.connects, tokio::runtime::Handle::try_current()) {
            (Some(connects), Ok(runtime)) => Connect::detached(connect, connects.start(), &runtime),
            _ => Connect::Inline(connect),
        }
    }
}

/// A connect of [`ToEndpoint`]: run by the request that asked for it, or
/// by a task of its own, which the request waits for.
///
/// A connect hyper-util's pool starts is part of its request's future,
/// and dropped with it: a request given up on mid-connect (a route
/// timeout shorter than the connect timeout) leaves nothing learnt of
/// the endpoint. Run as a task, the connect ends all the same, bounded
/// by the connector's own timeouts, and its outcome is reported to the
/// endpoint's [`EndpointConnects`]. The connection it made is closed:
/// hyper-util's pool takes a connection only from the request's own
/// connect, which is gone, and a connection kept aside for a later
/// request would be one made before a credential rotation that the pool
/// retires. At a runtime's shutdown the task is dropped with the rest,
/// its connect unfinished: it holds nothing the shutdown waits for.
///
/// Whether the request saw the outcome is told where it reads it, not
/// where the task hands it over: a request may go after the outcome is
/// handed over and before it reads it, and a failure it never read must
/// back the endpoint off as one given up on does.
enum Connect<F, T> {
    Inline(F),
    Detached(tokio::sync::oneshot::Receiver<Ended<T>>),
}

/// How a connect run as a task ended, on its way to its request. Read,
/// it is the request's to report ([`ConnectUnderWay::seen`]); dropped
/// unread (the request went before the task ended, or before it read
/// this), it is reported as a connect given up on
/// ([`ConnectUnderWay::given_up`]), and its connection closed.
struct Ended<T> {
    /// Taken when read.
    outcome: Option<(Result<T, BoxError>, ConnectUnderWay)>,
}

impl<T> Ended<T> {
    /// The outcome, for the request that reads it.
    fn read(mut self) -> Result<T, BoxError> {
        let Some((result, under_way)) = self.outcome.take() else {
            return Err(BoxError::from("the connect's outcome was read already"));
        };
        under_way.seen(result.is_ok());
        result
    }
}

impl<T> Drop for Ended<T> {
    fn drop(&mut self) {
        if let Some((result, under_way)) = self.outcome.take() {
            under_way.given_up(result.as_ref().map(drop));
        }
    }
}

impl<F, T, E> Connect<F, T>
where
    F: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError>,
{
    /// `connect`, run on `runtime` as a task of its own, reporting to
    /// `under_way` how it ended and whether its request read it.
    fn detached(connect: F, under_way: ConnectUnderWay, runtime: &tokio::runtime::Handle) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel();
        runtime.spawn(async move {
            let result = connect.await.map_err(Into::into);
            // Not taken (the request is gone), it is dropped here, and
            // reports so; taken, it reports when read or dropped unread.
            let _ = tx.send(Ended {
                outcome: Some((result, under_way)),
            });
        });
        Self::Detached(rx)
    }
}

impl<F, T, E> Future for Connect<F, T>
where
    F: Future<Output = Result<T, E>> + Unpin,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Inline(connect) => std::pin::Pin::new(connect).poll(cx).map_err(Into::into),
            Self::Detached(rx) => std::pin::Pin::new(rx).poll(cx).map(|ended| match ended {
                Ok(ended) => ended.read(),
                Err(_) => Err(BoxError::from("the connect's task ended unfinished")),
            }),
        }
    }
}

impl<B, C> Service<Request<B>> for Client<B, C>
where
    C: Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: Read + Write + Connection + Unpin + Send + 'static,
    C::Future: Unpin + Send + 'static,
    C::Error: Into<BoxError>,
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = ClientError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The pool opens connections on demand; there is nothing to wait for.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let client = if req.version() == Version::HTTP_2 {
            &self.inner.http2
        } else {
            &self.inner.http1
        };
        // Where the request goes, for its error to name: a client for an
        // endpoint shares the address it was made with; any other names
        // the request's authority, shared with its URI.
        let target = match &self.inner.connector.endpoint {
            Some(endpoint) => Target::Endpoint(Arc::clone(endpoint)),
            None => Target::Authority(req.uri().authority().cloned()),
        };
        ResponseFuture {
            inner: client.request(req),
            target: Some(target),
        }
    }
}

/// The response future of [`Client`].
pub struct ResponseFuture {
    inner: legacy::ResponseFuture,
    /// Taken by the error, if there is one.
    target: Option<Target>,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Incoming>, ClientError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = std::task::ready!(std::pin::Pin::new(&mut self.inner).poll(cx));
        Poll::Ready(result.map_err(|inner| ClientError {
            inner,
            target: self.target.take(),
        }))
    }
}

/// Where a request was sent: the endpoint a client was made for, or the
/// authority of the request's URI (none for a URI without one).
#[derive(Clone, Debug)]
enum Target {
    Endpoint(Arc<Dest>),
    Authority(Option<Authority>),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Endpoint(dest) => match dest.uri.authority() {
                Some(authority) => f.write_str(authority.as_str()),
                None => write!(f, "{}", dest.uri),
            },
            Self::Authority(Some(authority)) => f.write_str(authority.as_str()),
            Self::Authority(None) => f.write_str("-"),
        }
    }
}

/// A request the client could not complete.
///
/// It names where the request was sent, `upstream connect error
/// (10.0.0.7:8080)`, with the reason in its sources: hyper-util's
/// errors, and the plaintext connector's (`tcp connect error:
/// Connection refused`), name no address, and an operator reading one
/// of them from a client talking to many upstreams could not tell which
/// one failed. A client made for an endpoint names the endpoint, where
/// it connects, not the authority the request was sent for.
#[derive(Debug)]
pub struct ClientError {
    inner: legacy::Error,
    target: Option<Target>,
}

impl ClientError {
    /// Whether the connection to the upstream could not be opened. Nothing
    /// of the request was sent, so it is always safe to retry.
    pub fn is_connect(&self) -> bool {
        self.inner.is_connect()
    }
}

impl From<legacy::Error> for ClientError {
    fn from(inner: legacy::Error) -> Self {
        Self {
            inner,
            target: None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_connect() {
            f.write_str("upstream connect error")?;
        } else {
            f.write_str("upstream request failed")?;
        }
        match &self.target {
            Some(target) => write!(f, " ({target})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.inner)
    }
}

/// The authority `req` was sent for: its URI's, without userinfo (which
/// never belongs in `:authority`, RFC 9113 §8.3.1), else its `Host`
/// header's if that is one. `None` when it names none.
///
/// The URI's authority is shared, not copied, unless it carries
/// userinfo; one from `Host` is a copy.
pub fn requested_authority<B>(req: &Request<B>) -> Option<Authority> {
    match req.uri().authority() {
        Some(authority) => match authority.as_str().rsplit_once('@') {
            None => Some(authority.clone()),
            Some((_, host)) => Authority::try_from(host).ok(),
        },
        None => req.headers().get(header::HOST).and_then(host_authority),
    }
}

/// Gives `req`'s URI the authority of its `Host` header, if it has one
/// that is an authority, keeping the rest: for a request turned into
/// HTTP/2 after [`Forward`](crate::proxy::Forward) pointed its URI at the
/// endpoint ([`orig_proto::upgrade`](crate::proxy::orig_proto::upgrade)),
/// whose `Host` holds the authority it was sent for. The authority is a
/// copy of the header's bytes.
pub fn authority_from_host<B>(req: &mut Request<B>) {
    let Some(authority) = req.headers().get(header::HOST).and_then(host_authority) else {
        return;
    };
    let mut parts = req.uri().clone().into_parts();
    parts.scheme.get_or_insert(http::uri::Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// `host` as an authority, if it is one without userinfo.
fn host_authority(host: &HeaderValue) -> Option<Authority> {
    let authority = Authority::try_from(host.as_bytes()).ok()?;
    (!authority.as_str().contains('@')).then_some(authority)
}
