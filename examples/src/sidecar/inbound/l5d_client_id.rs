//! Linkerd's `l5d-client-id`, kept as trustworthy as `mesh-client-id`.
//!
//! An application written for Linkerd reads the caller's identity in
//! `l5d-client-id`, which Linkerd's proxy sets from the mutual-TLS peer
//! and removes from every request that arrives with it. Behind this
//! sidecar such an application would otherwise get whatever a client
//! wrote in that header, over plaintext as over mutual TLS: a client could
//! name itself `admin`. [`L5dClientId`] removes every copy a request
//! brings and sets it to the `mesh-client-id` the sidecar itself set just
//! before ([`ClientId`](mesh_tls::ClientId)), so both headers say the same
//! thing, or nothing.

use std::task::{Context, Poll};

use http::{HeaderName, Request};
use mesh_tls::MESH_CLIENT_ID;
use tower::{Layer, Service};

/// Linkerd's header for the caller's identity.
pub(crate) const L5D_CLIENT_ID: HeaderName = HeaderName::from_static("l5d-client-id");

/// Builds [`L5dClientId`]; it goes right under mesh-tls's `ClientIdLayer`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct L5dClientIdLayer;

impl<S> Layer<S> for L5dClientIdLayer {
    type Service = L5dClientId<S>;

    fn layer(&self, inner: S) -> L5dClientId<S> {
        L5dClientId { inner }
    }
}

/// Sets `l5d-client-id` to the request's `mesh-client-id`, and removes
/// it when there is none. See the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct L5dClientId<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for L5dClientId<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        let headers = req.headers_mut();
        let peer = headers.get(MESH_CLIENT_ID).cloned();
        // `remove` drops every copy, not just the first.
        headers.remove(L5D_CLIENT_ID);
        if let Some(peer) = peer {
            headers.insert(L5D_CLIENT_ID, peer);
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::HeaderValue;
    use tower::{ServiceExt, service_fn};

    use super::*;

    async fn seen(headers: &[(&HeaderName, &'static str)]) -> Vec<String> {
        let app = service_fn(|req: Request<()>| async move {
            let values = req
                .headers()
                .get_all(L5D_CLIENT_ID)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>();
            Ok::<_, Infallible>(values)
        });
        let mut req = Request::new(());
        for (name, value) in headers {
            let name = HeaderName::clone(name);
            req.headers_mut()
                .append(name, HeaderValue::from_static(value));
        }
        L5dClientIdLayer.layer(app).oneshot(req).await.unwrap()
    }

    #[tokio::test]
    async fn copies_the_identity_the_sidecar_set_and_drops_forgeries() {
        let forged = [(&L5D_CLIENT_ID, "admin"), (&L5D_CLIENT_ID, "root")];
        assert!(seen(&forged).await.is_empty());
        let with_peer = [
            (&L5D_CLIENT_ID, "admin"),
            (&MESH_CLIENT_ID, "spiffe://example.org/ns/shop/sa/web"),
        ];
        assert_eq!(
            seen(&with_peer).await,
            ["spiffe://example.org/ns/shop/sa/web"]
        );
    }
}
