//! The server engine: accept, authenticate, detect, serve, drain.
//!
//! Every inbound connection walks the same path. The listener accepts it
//! and waits for a place under the server's connection limit, its own or
//! one it shares with other servers ([`ConnectionLimit`]): past the limit,
//! one accepted connection waits for a place and a flood waits in the
//! kernel's backlog instead of exhausting memory. A listener anyone can
//! reach can also bound each peer address's share
//! ([`ConnectionLimit::per_peer`]): past it, a connection is closed as soon
//! as it is accepted, so that one client cannot hold every place. Then `TCP_NODELAY` is
//! turned on, and TCP keepalive (probes after 10 seconds of quiet), so that
//! a peer that vanished without a FIN gives its place up. The [`Accept`]
//! hook runs next: plaintext by default, a TLS handshake when mesh-tls plugs
//! in. Then the port's [`Protocol`] decides: HTTP is served with hyper, at the
//! version ALPN chose or the first bytes show; anything else goes to the
//! opaque handler as a byte stream. Every request carries the
//! [`ConnectionInfo`](crate::conn::ConnectionInfo) of its connection.
//!
//! A connection on a [`Protocol::Detect`] port whose first bytes decide
//! nothing within the detection timeout (a server-speaks-first
//! protocol's client waits for its greeting) goes to the opaque handler,
//! as Linkerd's proxy forwards it; an HTTP-only port closes it. The
//! accept hook is told the port's protocol once, when the listener is
//! served ([`Accept::for_protocol`]), since its own wait for the first
//! bytes meets the same silent clients: mesh-tls serves one on an opaque
//! port as plaintext rather than close it.
//!
//! No peer holds a connection by doing nothing: detection, the HTTP/1
//! header read and HTTP/2's preface are timed, idle HTTP/2 connections
//! are pinged, and a peer that stops reading its responses is cut
//! ([`ServerConfig::write_stall_timeout`]). A stream that goes quiet can
//! be ended too, when [`ServerConfig::stream_idle_timeout`] is set; it is
//! off by default, so that long-lived quiet gRPC streams live on. Nor
//! does a peer cost the services calls it never means to wait for: an
//! HTTP/2 client that resets half of its streams within a second of
//! opening them (rapid reset, CVE-2023-44487) is sent away
//! ([`ServerConfig::http2_premature_reset_total_streams`]).
//!
//! Shutdown is graceful. When the [`Shutdown`] signal fires the listener
//! closes, so new connections are refused; connections still in their
//! handshake or detection, with no request yet, close at once; HTTP
//! connections finish the requests in flight and close; whatever is still
//! open when the grace period ends is cut, upgraded connections included
//! (the proxy's tunnels, or a WebSocket the application serves itself). An
//! upgraded connection keeps its place under the limit until it closes,
//! and the drain waits for it.
//!
//! A single connection can be retired the same way: the accept hook hands
//! the server a [`Retirement`] with each connection (mesh-tls does when the
//! certificates that authenticated it rotate or near expiry), and the
//! server drains that connection when it fires and closes it at its close
//! time.
//!
//! Every connection is served in a `tracing` span of its own,
//! `conn{peer=10.0.0.7:41522 port=4143}`, HTTP/2 streams' tasks included:
//! what the accept hook (a refused TLS handshake), detection and the
//! services log while it is served names the peer and the port it came
//! in on, though the hook is handed the stream alone. The span is at
//! `error`, so that it is on whenever anything from mesh-core is logged.
//!
//! ```
//! use http_body_util::{BodyExt, Empty};
//! use mesh_core::serve::{self, Server, ServerConfig};
//! use tower::service_fn;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let (trigger, shutdown) = serve::shutdown::channel();
//! let hello = service_fn(|_req| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(mesh_core::body::full("hello\n")))
//! });
//! let server = tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, hello, shutdown));
//!
//! let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
//!     .build_http::<Empty<bytes::Bytes>>();
//! let res = client.get(format!("http://{addr}/").parse()?).await?;
//! assert_eq!(res.into_body().collect().await?.to_bytes(), "hello\n");
//!
//! // Stop accepting, drain the open connections, and return.
//! trigger.trigger();
//! server.await?;
//! # Ok(()) }
//! ```

mod accept;
mod builders;
mod config;
mod connection;
mod errors;
mod idle;
pub(crate) mod lease;
mod limit;
mod listener;
mod on_wake;
pub mod shutdown;
mod stall;

use std::{sync::Arc, time::Duration};

use futures_util::{FutureExt, future::Fuse};
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tower::Service;

pub use self::{
    accept::{Accept, Accepted, HttpVersion, PlaintextAccept, Retirement},
    config::{
        HTTP2_KEEP_ALIVE_INTERVAL, HTTP2_KEEP_ALIVE_TIMEOUT, HTTP2_MAX_CONCURRENT_STREAMS,
        HTTP2_PREMATURE_RESET_MIN_STREAM_LIFETIME, HTTP2_PREMATURE_RESET_TOTAL_STREAMS,
        MAX_REQUEST_HEAD_BYTES, Protocol, ServerConfig, WRITE_STALL_TIMEOUT,
    },
    connection::{OpaqueConnection, RefuseOpaque},
    errors::{ConnectionError, ConnectionErrorKind},
    limit::{ConnectionLimit, PeerIo, PerPeerFuture, PerPeerLimit},
    listener::{bind, bind_reuseport},
    shutdown::Shutdown,
};
use crate::error::BoxError;

/// An HTTP/1.1, HTTP/2 and opaque TCP server. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Server<A = PlaintextAccept> {
    inner: Arc<Shared>,
    accept: A,
}

#[derive(Clone, Debug)]
struct Shared {
    config: ServerConfig,
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<builders::InSpan>,
    /// Told of each connection that ends with an error of the server's
    /// own, when set.
    on_error: Option<errors::ErrorHook>,
}

impl Server {
    /// A plaintext server.
    pub fn new(config: ServerConfig) -> Self {
        let (http1, http2) = builders::hyper(&config);
        Self {
            inner: Arc::new(Shared {
                config,
                http1,
                http2,
                on_error: None,
            }),
            accept: PlaintextAccept,
        }
    }
}

impl<A> Server<A> {
    /// Runs `accept` on every connection before it is served: this is where
    /// TLS plugs in.
    #[must_use]
    pub fn with_accept<A2>(self, accept: A2) -> Server<A2> {
        Server {
            inner: self.inner,
            accept,
        }
    }

    /// Calls `hook` with each connection that ends with an error of the
    /// server's own, as it ends: one whose protocol detection failed, or
    /// whose HTTP connection hyper ended with an error. Those no service
    /// sees, so that only the server can tell of them; a proxy counts
    /// them as Linkerd's counts them in its `*_tcp_errors_total`. The
    /// accept hook's failures and the opaque handler's are not told: see
    /// [`ConnectionError`].
    ///
    /// The hook runs in the connection's task, only when it fails.
    #[must_use]
    pub fn on_connection_error(
        mut self,
        hook: impl Fn(&ConnectionError<'_>) + Send + Sync + 'static,
    ) -> Self {
        Arc::make_mut(&mut self.inner).on_error = Some(errors::ErrorHook(Arc::new(hook)));
        self
    }

    /// The server's configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Serves HTTP on `listener` until `shutdown` fires and the connections
    /// drain. Opaque connections are refused.
    pub async fn serve_http<S, B>(self, listener: TcpListener, http: S, shutdown: Shutdown)
    where
        A: Accept<tokio::net::TcpStream>,
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.serve(listener, http, RefuseOpaque, shutdown).await
    }

    /// Serves `listener` until `shutdown` fires and the connections drain:
    /// HTTP requests go to `http`, opaque connections to `opaque`.
    pub async fn serve<S, B, O>(self, listener: TcpListener, http: S, opaque: O, shutdown: Shutdown)
    where
        A: Accept<tokio::net::TcpStream>,
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
        O: Service<OpaqueConnection, Response = ()> + Clone + Send + 'static,
        O::Future: Send + 'static,
        O::Error: Into<BoxError>,
    {
        // Told once what the port carries, not per connection.
        let accept = self.accept.for_protocol(self.inner.config.protocol);
        let permits = match &self.inner.config.shared_limit {
            Some(limit) => limit.permits.clone(),
            None => ConnectionLimit::new(self.inner.config.max_connections).permits,
        };
        // Upgraded connections outlive their tasks; they hold their permit
        // in a lease (their I/O does), and are cut through this when the
        // grace period ends.
        let (cut, cut_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        // Which listener the server's own events are about: a process
        // has several.
        let local = listener.local_addr().map_or_else(
            |error| format!("unknown ({error})"),
            |addr| addr.to_string(),
        );
        // The port each connection's span names, read once.
        let port = listener.local_addr().ok().map(|addr| addr.port());
        let stop = shutdown.clone().wait();
        tokio::pin!(stop);
        // A connection is accepted first and then waits for a place: when
        // servers share a limit, a listener that took a place before its
        // connection came would hold it while another listener's
        // connection waited. So at most one accepted connection per
        // listener waits here; the rest wait in the kernel's backlog.
        let mut waiting: Option<(tokio::net::TcpStream, std::net::SocketAddr)> = None;
        // Its wait for a place, kept across the loop's turns: made afresh
        // each turn, it would give up its turn in the semaphore's queue
        // whenever one of this listener's connections ended (that is when
        // a place frees), and the place would go to another listener
        // sharing the limit, however long this connection had waited.
        let mut place = std::pin::pin!(Fuse::terminated());
        let mut failures = listener::AcceptFailures::default();
        loop {
            tokio::select! {
                biased;
                () = &mut stop => {
                    if shutdown.was_abandoned() {
                        // Dropping the trigger is a shutdown, but a
                        // server that stops for it, at once when it was
                        // never kept, would otherwise look like one that
                        // never started.
                        tracing::warn!(
                            listener = %local,
                            "shutting down: every ShutdownTrigger of this server's signal was \
                             dropped without firing; keep the trigger from \
                             shutdown::channel() for as long as the server is to serve"
                        );
                    }
                    break;
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                accepted = listener.accept(), if waiting.is_none() => match accepted {
                    Ok(accepted) => {
                        failures.accepted(&local);
                        waiting = Some(accepted);
                        place.set(permits.clone().acquire_owned().fuse());
                    }
                    Err(error) if !listener::AcceptFailures::backs_off(&error) => {
                        listener::AcceptFailures::connection_failed(&local, &error);
                    }
                    Err(error) => {
                        // Usually out of file descriptors: back off so the
                        // loop does not spin while connections close.
                        failures.failed(&local, &error);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                permit = place.as_mut(), if waiting.is_some() => {
                    let (Ok(permit), Some((tcp, peer))) = (permit, waiting.take()) else { break };
                    let conn = connection::Connection {
                        shared: self.inner.clone(),
                        accept: accept.clone(),
                        http: http.clone(),
                        opaque: opaque.clone(),
                        shutdown: shutdown.clone(),
                        lease: lease::Lease::new(permit, cut_rx.clone()),
                    };
                    tasks.spawn(conn.run(tcp, peer, connection_span(peer, port)));
                }
            }
        }
        // Closing the listener refuses new connections from here on (and
        // the one waiting for a place); no lease is handed out any more.
        // The wait for a place leaves the limit's queue too: kept through
        // the drain, it would be given the next place a connection frees
        // and hold it, unused, until the drain ends, while another
        // listener sharing the limit had a connection waiting behind it.
        place.set(Fuse::terminated());
        drop(waiting);
        drop(listener);
        drop(cut_rx);
        let open = tasks.len();
        tracing::debug!(listener = %local, open, "draining connections");
        let drained = tokio::time::timeout(self.inner.config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
            // Then the upgraded connections: each holds a lease, and with
            // it a receiver of `cut`, until it closes.
            cut.closed().await;
        })
        .await;
        if drained.is_err() {
            cut.send_replace(true);
            tracing::info!(
                listener = %local,
                remaining = tasks.len(),
                "grace period over; closing connections"
            );
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// The span a connection is served in, made once per connection: every
/// line logged while it is served, by the accept hook (a TLS handshake
/// refused), detection or a request's service, names the peer, and the
/// local port that tells the listeners apart, through it, as
/// `conn{peer=10.0.0.7:41522 port=4143}`. The hook cannot name the peer
/// itself: it is handed the stream alone.
///
/// At `error`, so that it is on whenever a line from mesh-core is: a
/// span is filtered as an event is, and one at `info` would be off under
/// a `warn` filter, leaving the warnings in it without their peer. When it
/// is off (no subscriber, or mesh-core's logs filtered out), it is
/// [`Span::none`](tracing::Span::none): the address is not formatted and
/// nothing is allocated.
fn connection_span(peer: std::net::SocketAddr, port: Option<u16>) -> tracing::Span {
    tracing::error_span!("conn", peer = %peer, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_span_that_is_off_is_none() {
        // No subscriber: the span is off, and costs nothing.
        let span = connection_span(([10, 0, 0, 7], 41522).into(), Some(4143));
        assert!(span.is_none());
    }

    #[test]
    fn idle_server_connections_outlive_the_clients_idle_pool() {
        // A server that closes idle connections before a client's pool does
        // races that client's next request on the connection.
        let client = crate::client::ClientConfig::default();
        let server = ServerConfig::default();
        assert!(client.pool_idle_timeout < server.header_read_timeout);
    }
}
