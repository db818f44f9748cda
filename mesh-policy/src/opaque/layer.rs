use tower_layer::Layer;

use super::AuthorizeOpaque;
use crate::PolicyStore;

/// Wraps opaque connection handlers in [`AuthorizeOpaque`].
#[derive(Clone, Debug)]
pub struct AuthorizeOpaqueLayer {
    store: PolicyStore,
    port: Option<u16>,
}

impl AuthorizeOpaqueLayer {
    /// Authorizes against the policy in `store`.
    pub fn new(store: PolicyStore) -> Self {
        Self { store, port: None }
    }

    /// Authorizes every connection as if it arrived on `port`.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
}

impl<S> Layer<S> for AuthorizeOpaqueLayer {
    type Service = AuthorizeOpaque<S>;

    fn layer(&self, inner: S) -> AuthorizeOpaque<S> {
        AuthorizeOpaque {
            inner,
            store: self.store.clone(),
            port: self.port,
        }
    }
}
