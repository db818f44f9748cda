use tower_layer::Layer;

use super::{Authorize, RateLimitHook};
use crate::PolicyStore;

/// Wraps services in [`Authorize`].
#[derive(Clone, Debug)]
pub struct AuthorizeLayer {
    store: PolicyStore,
    port: Option<u16>,
    on_rate_limited: Option<RateLimitHook>,
}

impl AuthorizeLayer {
    /// Authorizes against the policy in `store`, by the port each request's
    /// connection was accepted on. In process, where that is the
    /// listener's own port, give [`with_port`](Self::with_port) the port
    /// your Servers select: a port no Server covers falls to the default
    /// policy (`all-unauthenticated` unless configured otherwise).
    pub fn new(store: PolicyStore) -> Self {
        Self {
            store,
            port: None,
            on_rate_limited: None,
        }
    }

    /// Authorizes every request as if it arrived on `port`, rather than the
    /// port its connection was accepted on.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Calls `hook` for each request a Server's rate limit refused, with
    /// the request's head, an [`Authorized`](mesh_core::labels::Authorized)
    /// naming the Server (its route and authorization too) inserted in its
    /// extensions, and the head of the answer (429, or gRPC
    /// `RESOURCE_EXHAUSTED`, with the [`ProxyErrorKind`](mesh_core::ProxyErrorKind)
    /// extension a metrics layer reads), before the answer is sent.
    ///
    /// The answer is sent from here, so a metrics layer inside never sees
    /// the request: a hook is how an embedder counts it, say in
    /// `inbound_http_errors_total` with the Server's labels, where Linkerd
    /// counts a rate-limited request (its proxy's error layer wraps its
    /// policy, and leaves out only authorization's and routing's refusals).
    /// The hook runs on the request's task, so it should be quick. A
    /// request that is allowed, denied, finds no route, or is redirected
    /// is not told of. Default: none.
    #[must_use]
    pub fn on_rate_limited(
        mut self,
        hook: impl Fn(&http::request::Parts, &http::response::Parts) + Send + Sync + 'static,
    ) -> Self {
        self.on_rate_limited = Some(RateLimitHook::new(hook));
        self
    }
}

impl<S> Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize {
            inner,
            store: self.store.clone(),
            port: self.port,
            on_rate_limited: self.on_rate_limited.clone(),
        }
    }
}
