//! `mesh-client-id`: the caller's mesh identity, told to the application,
//! and never forged.
//!
//! An application behind the sidecar cannot see the TLS session the sidecar
//! terminated, so the sidecar tells it who called in a request header, as
//! Linkerd does with `l5d-client-id`. The header is only worth anything if
//! a client cannot set it itself: [`ClientId`] removes every copy a request
//! arrives with, then sets it from the connection when, and only when, the
//! peer proved an identity with mutual TLS.
//!
//! It sets Linkerd's own header, [`L5D_CLIENT_ID`], the same way and to the
//! same value, so that an application written for Linkerd reads the
//! caller as it did there. Left alone, that header would be the one a
//! client could forge: an application trusting it would take whatever a
//! plaintext client, or an mTLS client naming someone else, wrote in it.
//!
//! It reads the peer from the [`ConnectionInfo`] the mesh's server puts on
//! every request, so it works behind any mesh server: the sidecar puts it
//! in front of the application, and an in-process service can put it in
//! front of handlers that authorize by caller.
//!
//! ```
//! use mesh_core::ConnectionInfo;
//! use mesh_tls::client_id::{ClientIdLayer, MESH_CLIENT_ID};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = service_fn(|req: http::Request<()>| async move {
//!     Ok::<_, std::convert::Infallible>(req.headers().get(MESH_CLIENT_ID).cloned())
//! });
//! let svc = ServiceBuilder::new().layer(ClientIdLayer::new()).service(app);
//! let mut req = http::Request::builder().header("mesh-client-id", "forged").body(())?;
//! req.extensions_mut().insert(ConnectionInfo::plaintext(
//!     "127.0.0.1:4143".parse()?,
//!     "127.0.0.1:50000".parse()?,
//! ));
//! // A plaintext peer has no identity: the forged header is gone.
//! assert_eq!(svc.oneshot(req).await?, None);
//! # Ok(()) }
//! ```

use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request};
use mesh_core::ConnectionInfo;
use tower_layer::Layer;
use tower_service::Service;

/// The header that carries the caller's mesh identity to the application.
pub const MESH_CLIENT_ID: HeaderName = HeaderName::from_static("mesh-client-id");

/// Linkerd's header for the same, set to the same value.
pub const L5D_CLIENT_ID: HeaderName = HeaderName::from_static("l5d-client-id");

/// Builds [`ClientId`]. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientIdLayer(());

impl ClientIdLayer {
    /// The layer.
    pub fn new() -> Self {
        Self(())
    }
}

impl<S> Layer<S> for ClientIdLayer {
    type Service = ClientId<S>;

    fn layer(&self, inner: S) -> ClientId<S> {
        ClientId { inner }
    }
}

/// Strips any incoming `mesh-client-id` and `l5d-client-id` and sets both
/// to the mTLS peer's identity. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct ClientId<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for ClientId<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let peer = req
            .extensions()
            .get::<ConnectionInfo>()
            .and_then(ConnectionInfo::peer_identity)
            .and_then(|id| HeaderValue::from_str(id.as_str()).ok());
        let headers = req.headers_mut();
        // `remove` drops every value of the header, not just the first.
        headers.remove(&MESH_CLIENT_ID);
        headers.remove(&L5D_CLIENT_ID);
        if let Some(peer) = peer {
            headers.insert(L5D_CLIENT_ID, peer.clone());
            headers.insert(MESH_CLIENT_ID, peer);
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use mesh_core::conn::Tls;
    use tower::{ServiceExt, service_fn};

    use super::*;

    /// What the application sees of `mesh-client-id`, after a request
    /// that carried `forged` in both headers; `l5d-client-id` must say
    /// the same.
    async fn seen(info: Option<ConnectionInfo>, forged: &[&str]) -> Vec<String> {
        let app = service_fn(|req: Request<()>| async move {
            let values = |name| {
                req.headers()
                    .get_all(name)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            };
            let (mesh, l5d) = (values(MESH_CLIENT_ID), values(L5D_CLIENT_ID));
            assert_eq!(mesh, l5d);
            Ok::<_, std::convert::Infallible>(mesh)
        });
        let mut req = Request::new(());
        for value in forged {
            let value = HeaderValue::from_str(value).unwrap();
            req.headers_mut().append(MESH_CLIENT_ID, value.clone());
            req.headers_mut().append(L5D_CLIENT_ID, value);
        }
        if let Some(info) = info {
            req.extensions_mut().insert(info);
        }
        ClientIdLayer::new().layer(app).oneshot(req).await.unwrap()
    }

    fn info(tls: Tls) -> ConnectionInfo {
        ConnectionInfo {
            tls,
            ..ConnectionInfo::plaintext(
                "127.0.0.1:4143".parse().unwrap(),
                "127.0.0.1:5000".parse().unwrap(),
            )
        }
    }

    #[tokio::test]
    async fn an_mtls_peer_is_named_once_and_forgeries_are_dropped() {
        let peer = "spiffe://example.org/ns/shop/sa/web".parse().unwrap();
        let values = seen(
            Some(info(Tls::Mutual { peer })),
            &["spiffe://example.org/ns/shop/sa/admin", "x"],
        )
        .await;
        assert_eq!(values, ["spiffe://example.org/ns/shop/sa/web"]);
    }

    #[tokio::test]
    async fn peers_without_an_identity_get_no_header() {
        for tls in [
            Tls::NoClientCert,
            Tls::Plaintext(mesh_core::conn::NoTlsReason::NotProvidedByRemote),
        ] {
            assert!(seen(Some(info(tls)), &["forged", "twice"]).await.is_empty());
        }
        assert!(seen(None, &["forged"]).await.is_empty());
    }
}
