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
//! its `targets` function maps to an opaque-connection service (a
//! [`ForwardTcp`](super::ForwardTcp), typically) is answered `200` at
//! once; when the client's side of the upgrade completes, the connection
//! (bytes the client sent after its request head included) is handed to
//! that service as an [`OpaqueConnection`]. Every other request, a
//! `CONNECT` to an unknown target included, goes to the inner stack
//! unchanged, which answers as it does (a `404` from a router, a `501`
//! from `Forward`).
//!
//! Once the `200` is sent the server's connection task is over. When the
//! request carries the server's lease (see [`serve`](crate::serve)), the
//! tunnel holds it: the connection keeps its place under the server's
//! limit until the tunnel closes, and the tunnel is cut when the server's
//! grace period ends. Without one, the tunnel is not counted under the
//! limit and runs until either side closes it or its runtime stops;
//! [`open_tunnels`] lets the owner of the runtime wait for the tunnels to
//! close before stopping it.
//!
//! A target that cannot be reached closes the tunnel: the `200` is sent
//! before the connect, as most HTTP proxies do, so that the client's
//! first bytes need not wait for a round trip, and a byte stream has no
//! way to carry the error after it.

use std::{
    convert::Infallible,
    fmt,
    task::{Context, Poll},
};

use futures_util::future::Either;
use http::{Method, Request, Response, uri::Authority};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tower::{Service, ServiceExt};

use crate::{conn::ConnectionInfo, error::BoxError, serve::OpaqueConnection, serve::lease::Lease};

/// Answers `CONNECT` to the targets `T` knows with a tunnel, and hands
/// every other request to `S`. See the [module docs](self).
///
/// `T` is a function from the `CONNECT`'s authority to the service that
/// takes the tunnelled connection, or `None` for a target it does not
/// know.
#[derive(Clone)]
pub struct ConnectTunnel<S, T> {
    inner: S,
    targets: T,
    open: Option<OpenTunnels>,
}

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
}

impl<S, T, F, B, RB> Service<Request<B>> for ConnectTunnel<S, T>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
    T: Fn(&Authority) -> Option<F>,
    F: Service<OpaqueConnection, Response = ()> + Send + 'static,
    F::Future: Send,
    F::Error: Into<BoxError>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Either<std::future::Ready<Result<Response<RB>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if req.method() != Method::CONNECT {
            return Either::Right(self.inner.call(req));
        }
        let target = req.uri().authority().and_then(|a| (self.targets)(a));
        let Some(target) = target else {
            return Either::Right(self.inner.call(req));
        };
        let Some(downstream) = req.extensions_mut().remove::<OnUpgrade>() else {
            // Nothing to tunnel over (a server without upgrades): the
            // inner stack answers as it does.
            return Either::Right(self.inner.call(req));
        };
        let lease = req.extensions_mut().remove::<Lease>();
        let info = req.extensions_mut().remove::<ConnectionInfo>();
        tracing::debug!(target = %req.uri(), "tunnelling CONNECT");
        tunnel(downstream, target, info, lease, self.open.clone());
        Either::Left(std::future::ready(Ok(Response::new(RB::default()))))
    }
}

/// Once the client's side of the upgrade completes, hands the connection
/// to `target`, until it is done or the `lease`'s server cuts it.
fn tunnel<F>(
    downstream: OnUpgrade,
    target: F,
    info: Option<ConnectionInfo>,
    lease: Option<Lease>,
    open: Option<OpenTunnels>,
) where
    F: Service<OpaqueConnection, Response = ()> + Send + 'static,
    F::Future: Send,
    F::Error: Into<BoxError>,
{
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
            target.oneshot(conn).await.map_err(Into::into)
        };
        tokio::select! {
            result = run => if let Err(error) = result {
                tracing::debug!(%error, "CONNECT tunnel ended with an error");
            },
            () = cut => tracing::debug!("CONNECT tunnel cut at the end of shutdown"),
        }
    });
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
