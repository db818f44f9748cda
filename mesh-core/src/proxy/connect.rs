//! Answering `CONNECT` with a tunnel to a known target.
//!
//! # Why
//!
//! Many clients reach the outside through an HTTP proxy
//! (`HTTPS_PROXY=http://127.0.0.1:4140`): they send `CONNECT host:port`,
//! and once the proxy answers `200`, speak their own protocol (TLS, a
//! database's) over the connection. A mesh proxy that tunnels those
//! bytes to the target's endpoints, over mutual TLS, meshes a client that
//! knows nothing of the mesh. [`Forward`](super::Forward) cannot: it
//! answers `CONNECT` with `501`.
//!
//! # How
//!
//! [`ConnectTunnel`] sits in front of a stack. A `CONNECT` whose authority
//! its `targets` function maps to a [`ForwardTcp`] is not answered until
//! the forwarder has picked an endpoint and connected to it (mutual TLS
//! included, within its connect timeout, counted by its balancer as a
//! forwarded connection is). Then the answer is `200`, and when the
//! client's side of the upgrade completes, the connection (bytes the
//! client sent after its request head included) is joined with the
//! endpoint's. Every other request, a `CONNECT` to an unknown target
//! included, goes to the inner stack unchanged, which answers as it does
//! (a `404` from a router, a `501` from `Forward`). So does an HTTP/2
//! extended `CONNECT` (RFC 8441, with a `:protocol` such as `websocket`,
//! on a server that takes them): it names a resource by its path, and
//! is no request for a raw tunnel to its authority.
//!
//! A target that cannot be reached gets the mesh's error answer, never a
//! `200`: `502` (`mesh-error: upstream connect error`) when the endpoint
//! refused, failed the handshake or took too long, `503` (`mesh-error:
//! service unavailable`) when there is no endpoint to try. The `502`
//! carries [`UpstreamCause::Connect`] beside its kind, as `Forward`'s
//! answer to a request carries its cause, so that the layers above (a
//! route's backend metrics) count it as they count a failed connect of
//! a request. A `CONNECT`
//! that finds no endpoint ready first waits in the target's queue, as a
//! forwarded connection does ([`ForwardTcp`]); past its fail-fast
//! timeout it is answered `503` with `mesh-error: service in fail-fast`,
//! as an HTTP request is, and every later one `service unavailable`
//! until an endpoint is ready. Envoy and
//! Squid also connect before they answer, and answer a failed connect
//! with an error status (503, both); ours are the ones `Forward` gives
//! an HTTP request in the same plight. It is what clients can use: curl
//! reports `CONNECT tunnel failed, response 502`, where a `200` followed
//! by a closed connection reads as a TLS handshake cut short, with no
//! hint that the target was the trouble. Clients wait for the `200`
//! before they send, so answering before the connect would save them
//! nothing.
//!
//! These answers are made in front of the stack, outside whatever counts
//! its requests: [`ConnectTunnel::on_error`] tells of each, so that a
//! proxy counts them where Linkerd's counts a `CONNECT` it failed, in its
//! HTTP error family (`outbound_http_errors_total`). It is called only
//! when a `CONNECT` fails.
//!
//! A `CONNECT` that declares content (a `Content-Length` other than zero,
//! or a `Transfer-Encoding`) is answered `400` with `mesh-error: connect
//! with content`, and its connection closed: a `CONNECT` has none (RFC
//! 9110 §9.3.6), and whether the client meant those bytes for the
//! tunnel or as a body cannot be told, so neither is guessed.
//!
//! Once the `200` is sent the server's connection task is over. When the
//! request carries the server's lease (see [`serve`](crate::serve)), the
//! tunnel holds it: the connection keeps its place under the server's
//! limit until the tunnel closes, and the tunnel is cut when the server's
//! grace period ends. Without one, the tunnel is not counted under the
//! limit and runs until either side closes it or its runtime stops;
//! [`open_tunnels`] lets the owner of the runtime wait for the tunnels to
//! close before stopping it.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use futures_util::future::Either;
use http::{
    HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header, uri::Authority,
};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tower::Service;

use super::{
    forward::NoEndpoints,
    queue::{IN_FAILFAST, InFailFast},
    tcp::{ConnectFailed, Connected, Connecting, ForwardTcp},
};
use crate::{
    conn::ConnectionInfo,
    error::{BoxError, MESH_ERROR, ProxyErrorKind, UpstreamCause},
    serve::{OpaqueConnection, lease::Lease},
};

/// Answers `CONNECT` to the targets `T` knows with a tunnel, and hands
/// every other request to `S`. See the [module docs](self).
///
/// `T` is a function from the `CONNECT`'s authority to the forwarder
/// whose endpoints the tunnel goes to, or `None` for a target it does not
/// know.
#[derive(Clone)]
pub struct ConnectTunnel<S, T> {
    inner: S,
    targets: T,
    open: Option<OpenTunnels>,
    on_error: Option<OnError>,
}

/// The hook [`ConnectTunnel::on_error`] is given.
type OnError = Arc<dyn Fn(ProxyErrorKind, &HeaderMap, Option<UpstreamCause>) + Send + Sync>;

impl<S: fmt::Debug, T> fmt::Debug for ConnectTunnel<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectTunnel")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, T> ConnectTunnel<S, T> {
    /// Tunnels `CONNECT`s to what `targets` maps their authority to; the
    /// rest goes to `inner`.
    pub fn new(inner: S, targets: T) -> Self {
        Self {
            inner,
            targets,
            open: None,
            on_error: None,
        }
    }

    /// Each tunnel holds a clone of `open` until it closes, so that the
    /// [`TunnelsClosed`] of the pair knows when the last one has. Default:
    /// tunnels are not tracked.
    #[must_use]
    pub fn with_open_tunnels(mut self, open: OpenTunnels) -> Self {
        self.open = Some(open);
        self
    }

    /// Calls `hook` with each `CONNECT` the tunnel answered with an
    /// error of its own (`502`, `503`, or `400` for one with content):
    /// the answer's kind, head and, for a `502`, the
    /// [`UpstreamCause`] it carries, what a metrics layer reads of a
    /// response the proxy answered itself. A `CONNECT` the inner stack
    /// answers is not told of: the stack counts its own. Default: none.
    #[must_use]
    pub fn on_error(
        mut self,
        hook: impl Fn(ProxyErrorKind, &HeaderMap, Option<UpstreamCause>) + Send + Sync + 'static,
    ) -> Self {
        self.on_error = Some(Arc::new(hook));
        self
    }
}

impl<S, T, C, B, RB> Service<Request<B>> for ConnectTunnel<S, T>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
    T: Fn(&Authority) -> Option<ForwardTcp<C>>,
    C: Service<Uri>,
    C::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Either<TunnelFuture<C, C::Future, RB, S::Error>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // An extended CONNECT (RFC 8441: `:protocol`, a WebSocket over
        // HTTP/2 say) is a request with a path for the stack, not a tunnel.
        let extended = req.extensions().get::<hyper::ext::Protocol>().is_some();
        if req.method() != Method::CONNECT || extended {
            return Either::Right(self.inner.call(req));
        }
        let target = req.uri().authority().and_then(|a| (self.targets)(a));
        let Some(target) = target else {
            return Either::Right(self.inner.call(req));
        };
        if has_content(&req) {
            tracing::debug!(target = %req.uri(), "refusing a CONNECT with content");
            return Either::Left(TunnelFuture {
                connecting: None,
                tunnel: None,
                on_error: self.on_error.clone(),
                _marker: PhantomData,
            });
        }
        let Some(downstream) = req.extensions_mut().remove::<OnUpgrade>() else {
            // Nothing to tunnel over (a server without upgrades): the
            // inner stack answers as it does.
            return Either::Right(self.inner.call(req));
        };
        let lease = req.extensions_mut().remove::<Lease>();
        let info = req.extensions_mut().remove::<ConnectionInfo>();
        tracing::debug!(target = %req.uri(), "connecting a CONNECT tunnel");
        Either::Left(TunnelFuture {
            connecting: Some(target.connect_for(info.as_ref().map(|info| info.remote_addr))),
            tunnel: Some(Tunnel {
                downstream,
                info,
                lease,
                open: self.open.clone(),
            }),
            on_error: self.on_error.clone(),
            _marker: PhantomData,
        })
    }
}

pin_project_lite::pin_project! {
    /// The answer to a `CONNECT` [`ConnectTunnel`] tunnels: `200` once
    /// its target is connected, and the tunnel spawned; `503` or `502`
    /// when there is no endpoint or it cannot be reached; `400` at once
    /// when the `CONNECT` has content.
    pub struct TunnelFuture<C, F, RB, E> {
        // `None` for a `CONNECT` with content, refused.
        #[pin]
        connecting: Option<Connecting<C, F>>,
        // Taken when the connect ends.
        tunnel: Option<Tunnel>,
        on_error: Option<OnError>,
        _marker: PhantomData<fn() -> (RB, E)>,
    }
}

impl<C, F, RB, E> fmt::Debug for TunnelFuture<C, F, RB, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelFuture")
            .field("connecting", &self.connecting)
            .finish_non_exhaustive()
    }
}

/// What a tunnel needs once its target is connected.
struct Tunnel {
    downstream: OnUpgrade,
    info: Option<ConnectionInfo>,
    lease: Option<Lease>,
    open: Option<OpenTunnels>,
}

impl<C, IO, RB, E> Future for TunnelFuture<C, C::Future, RB, E>
where
    C: Service<Uri, Response = IO>,
    C::Error: Into<BoxError>,
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    RB: Default,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = |res: Response<RB>| {
            if let (Some(hook), Some(&kind)) = (this.on_error, res.extensions().get()) {
                hook(kind, res.headers(), res.extensions().get().copied());
            }
            Poll::Ready(Ok(res))
        };
        let Some(connecting) = this.connecting.as_pin_mut() else {
            return answer(connect_with_content());
        };
        let result = ready!(connecting.poll(cx));
        let Some(tunnel) = this.tunnel.take() else {
            return answer(ProxyErrorKind::Unavailable.response_for(false));
        };
        match result {
            Ok(connected) => {
                tunnel.spawn(connected);
                Poll::Ready(Ok(Response::new(RB::default())))
            }
            Err(error) => {
                if error.is::<InFailFast>() {
                    tracing::debug!(%error, "cannot connect a CONNECT tunnel");
                    return answer(
                        ProxyErrorKind::Unavailable.response_with_reason(false, IN_FAILFAST),
                    );
                }
                let kind = if error.is::<NoEndpoints>() {
                    ProxyErrorKind::Unavailable
                } else {
                    ProxyErrorKind::UpstreamUnreachable
                };
                let failed = error.downcast_ref::<ConnectFailed>();
                // The connector's error, or the timeout: `error` only
                // names the endpoint.
                let cause = failed
                    .and_then(std::error::Error::source)
                    .map(ToString::to_string);
                tracing::debug!(
                    endpoint = ?failed.map(ConnectFailed::endpoint),
                    %error,
                    cause,
                    status = kind.http_status().as_u16(),
                    "cannot connect a CONNECT tunnel"
                );
                let mut res = kind.response_for(false);
                if kind == ProxyErrorKind::UpstreamUnreachable {
                    // For the layers above, as `Forward` tells them: a
                    // connect that failed, or timed out, is one cause,
                    // whatever the connector said; any other error says
                    // what it says.
                    let upstream = match failed {
                        Some(_) => Some(UpstreamCause::Connect),
                        None => UpstreamCause::of(&*error),
                    };
                    if let Some(upstream) = upstream {
                        res.extensions_mut().insert(upstream);
                    }
                }
                answer(res)
            }
        }
    }
}

/// Whether a `CONNECT` declares content. It has none (RFC 9110 §9.3.6):
/// the bytes after its head are the tunnel's. An HTTP/1 server that
/// honours a `Content-Length` or `Transfer-Encoding` on one reads those
/// bytes as a body, which the tunnel never sees, and tunnels only what
/// follows; the client meant one or the other, and neither guess is
/// safe. (HTTP/2 servers refuse a `CONNECT` with a length themselves.)
///
/// A length of zero declares none however many digits it is written
/// with (`00`): hyper reads it as an empty body, as RFC 9110 §8.6's
/// grammar, a run of digits, has it.
///
/// Public for a proxy that takes some `CONNECT`s before a
/// [`ConnectTunnel`] sees them (a sidecar's egress tunnels), so that it
/// refuses the same ones, with [`connect_with_content`]'s answer.
pub fn has_content<B>(req: &Request<B>) -> bool {
    let headers = req.headers();
    let zero = |len: &[u8]| !len.is_empty() && len.iter().all(|&b| b == b'0');
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|len| !zero(len.as_bytes()))
}

/// The answer to a `CONNECT` with content: `400`, `mesh-error: connect
/// with content` ([`CONNECT_WITH_CONTENT`]), and the connection closed,
/// as its framing is in doubt.
pub fn connect_with_content<RB: Default>() -> Response<RB> {
    let mut res = Response::new(RB::default());
    *res.status_mut() = StatusCode::BAD_REQUEST;
    let h = res.headers_mut();
    h.insert(MESH_ERROR, HeaderValue::from_static(CONNECT_WITH_CONTENT));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    res.extensions_mut().insert(ProxyErrorKind::InvalidRequest);
    res
}

/// The `mesh-error` of a `CONNECT` refused for having content.
pub const CONNECT_WITH_CONTENT: &str = "connect with content";

impl Tunnel {
    /// Once the client's side of the upgrade completes, joins it with
    /// `connected`, until either is done or the lease's server cuts it.
    fn spawn<IO>(self, connected: Connected<IO>)
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let Self {
            downstream,
            info,
            lease,
            open,
        } = self;
        tokio::spawn(async move {
            let _open = open;
            let cut = async move {
                match lease {
                    Some(lease) => lease.cut().await,
                    None => std::future::pending().await,
                }
            };
            let run = async move {
                let upgraded = downstream.await?;
                let unknown = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
                let conn = OpaqueConnection {
                    io: Box::new(TokioIo::new(upgraded)),
                    info: info.unwrap_or_else(|| ConnectionInfo::plaintext(unknown, unknown)),
                };
                connected.forward(conn).await
            };
            tokio::select! {
                result = run => if let Err(error) = result {
                    tracing::debug!(%error, "CONNECT tunnel ended with an error");
                },
                () = cut => tracing::debug!("CONNECT tunnel cut at the end of shutdown"),
            }
        });
    }
}

/// Held by every open tunnel of the [`ConnectTunnel`]s it was given to.
/// See [`open_tunnels`].
#[derive(Clone, Debug)]
pub struct OpenTunnels {
    _held: mpsc::Sender<Infallible>,
}

/// Completes once every [`OpenTunnels`] of its pair is gone: the
/// `ConnectTunnel`s holding it dropped, and their tunnels closed.
#[derive(Debug)]
pub struct TunnelsClosed {
    rx: mpsc::Receiver<Infallible>,
}

impl TunnelsClosed {
    /// Waits until every tunnel has closed and every `ConnectTunnel`
    /// holding the pair's [`OpenTunnels`] is dropped.
    pub async fn wait(mut self) {
        // Nothing is ever sent: `None` means every sender is gone.
        while self.rx.recv().await.is_some() {}
    }
}

/// A pair to wait for tunnels with: give the [`OpenTunnels`] to each
/// [`ConnectTunnel`] ([`ConnectTunnel::with_open_tunnels`]), and wait on
/// the [`TunnelsClosed`] once the servers are done, to let the tunnels
/// finish before the runtime stops.
pub fn open_tunnels() -> (OpenTunnels, TunnelsClosed) {
    let (tx, rx) = mpsc::channel(1);
    (OpenTunnels { _held: tx }, TunnelsClosed { rx })
}

#[cfg(test)]
mod tests;
