//! Retiring pooled client connections before their credentials go stale.
//!
//! A TLS session is authenticated once, at the handshake. A pooled
//! connection can then live for hours, long after the certificate it was
//! authenticated with has been rotated away or has expired; Envoy users
//! report exactly this (envoy#17999, envoy#28386). The mesh retires such
//! connections instead, without cutting requests that are running on them.
//!
//! Retiring means *poisoning* the connection in hyper-util's pool: the pool
//! never hands it out again, requests in flight on it finish, and the pool
//! drops it once they have (or at its next idle sweep). A client connection
//! is retired
//!
//! - when the local credentials rotate: at once, for every connection made
//!   with the old ones;
//! - shortly before the local or the server chain expires
//!   ([`ConnectConfig::retire_before_expiry`](crate::ConnectConfig::retire_before_expiry)
//!   ahead of the earliest `notAfter` of the two chains: a workload
//!   certificate's, or an intermediate's that expires before it).
//!
//! At that `notAfter` itself a connection still open is closed
//! (unless [`ConnectConfig::close_at_expiry`](crate::ConnectConfig::close_at_expiry)
//! is off): no connection outlives the certificates that authenticated it.
//!
//! hyper-util reaches the pool's handle to a connection only through a
//! request that ran on it, so poisoning needs [`RetireLayer`] around the
//! client. While a connection has not yet answered a request, or no usable
//! connection exists, the layer asks hyper-util to report which connection
//! each request ran on, and the first response on a connection *claims*
//! its handle. Once every connection is claimed, requests pass through
//! untouched. A connection retired before it is claimed is poisoned when
//! claimed, so it can carry one more request; with several targets on one
//! connector, a connection opened while others are usable is claimed by
//! the second request it carries. Without the layer, connections are still
//! closed at expiry, but not retired early.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mesh_core::client::{Client, ClientConfig};
//! use mesh_tls::{CredentialStore, OutboundTls, TlsConnector, TlsTargets};
//! use tower::ServiceBuilder;
//!
//! let store = CredentialStore::default();
//! let config = ClientConfig::default();
//! let peer = "spiffe://example.org/ns/shop/sa/web".parse()?;
//! let connector = TlsConnector::new(&config, store, TlsTargets::new(OutboundTls::Mtls(peer)))?;
//! let client = ServiceBuilder::new()
//!     .layer(connector.retire_layer())
//!     .service(Client::<mesh_core::body::BoxBody, _>::with_connector(&config, connector));
//! # drop(client);
//! # Ok(()) }
//! ```

pub mod future;
mod layer;
mod state;

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use hyper_util::client::legacy::connect::capture_connection;
use tower_service::Service;

use self::future::ResponseFuture;
pub use self::layer::RetireLayer;
pub(crate) use self::state::{ConnState, RetireList, RetireShared};

/// When a connection authenticated with certificates expiring at `expiry`
/// is retired (`retire_before` ahead of it) and when it is closed (at it),
/// as instants of tokio's clock. `now` is the time by the store's clock,
/// the one that found the certificates valid and that `expiry` is read
/// against: a certificate with a minute left by that clock is not used
/// for longer because the system clock is behind it.
pub(crate) fn deadlines(
    expiry: std::time::SystemTime,
    retire_before: std::time::Duration,
    now: std::time::SystemTime,
) -> (tokio::time::Instant, tokio::time::Instant) {
    /// Far enough that no connection lives to see it.
    const FAR_FUTURE: std::time::Duration = std::time::Duration::from_secs(30 * 365 * 86_400);
    let remaining = expiry.duration_since(now).unwrap_or_default();
    let now = tokio::time::Instant::now();
    let at = |d| now.checked_add(d).unwrap_or(now + FAR_FUTURE);
    (at(remaining.saturating_sub(retire_before)), at(remaining))
}

/// A client whose TLS connections can be retired. See the
/// [module docs](self).
#[derive(Clone, Debug)]
pub struct Retire<S> {
    inner: S,
    shared: Arc<RetireShared>,
}

impl<S, B, R> Service<Request<B>> for Retire<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let capture = self
            .shared
            .wants_capture()
            .then(|| capture_connection(&mut req));
        ResponseFuture::new(self.inner.call(req), capture)
    }
}

impl<S> Retire<S> {
    fn new(inner: S, shared: Arc<RetireShared>) -> Self {
        Self { inner, shared }
    }
}
