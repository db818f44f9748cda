//! The pooled upstream client.
//!
//! Connections to an upstream are expensive to open and cheap to reuse, so
//! the client keeps idle ones in a pool per `scheme://authority`. It speaks
//! the HTTP version of each request: HTTP/2 requests go over HTTP/2 (prior
//! knowledge, or ALPN when the connector negotiates TLS), HTTP/1 requests
//! over HTTP/1.1. The connector is pluggable: plaintext TCP by default, and
//! mesh-tls's connector for mutual TLS.
//!
//! A response head may be as large over HTTP/2 as the server lets a
//! request head be, 64 KiB, rather than hyper's HTTP/2 default of 16 KiB:
//! a response that crosses over HTTP/1.1 must not fail once two sidecars
//! speak HTTP/2 to each other.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{TryFutureExt, future::MapErr};
use http::{Request, Response, Uri, Version};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{self, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use tower::Service;

use crate::{
    error::BoxError,
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
    /// How long an idle pooled connection is kept. Default 30 seconds.
    pub pool_idle_timeout: Duration,
    /// How many idle connections are kept per upstream. Default no limit.
    pub pool_max_idle_per_host: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(30),
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
/// only, so an HTTP/2 request is never downgraded.
struct Versions<B, C> {
    http1: legacy::Client<C, B>,
    http2: legacy::Client<C, B>,
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
    C: legacy::connect::Connect + Clone + Send + Sync + 'static,
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
            .pool_idle_timeout(config.pool_idle_timeout)
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
        let http1 = builder.build(connector.clone());
        let http2 = builder.http2_only(true).build(connector);
        Self {
            inner: Arc::new(Versions { http1, http2 }),
        }
    }
}

impl<B, C> Service<Request<B>> for Client<B, C>
where
    C: legacy::connect::Connect + Clone + Send + Sync + 'static,
    B: Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = ClientError;
    type Future = MapErr<legacy::ResponseFuture, fn(legacy::Error) -> ClientError>;

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
        client.request(req).map_err(ClientError::from as fn(_) -> _)
    }
}

/// A request the client could not complete.
#[derive(Debug)]
pub struct ClientError {
    inner: legacy::Error,
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
        Self { inner }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_connect() {
            f.write_str("upstream connect error")
        } else {
            f.write_str("upstream request failed")
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.inner)
    }
}

/// Builds `http://<authority><path>` for a request to `authority`.
pub(crate) fn upstream_uri(authority: &http::uri::Authority, original: &Uri) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(
        original
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).unwrap_or_else(|_| original.clone())
}
