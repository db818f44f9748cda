use tower_layer::Layer;

use super::Authorize;
use crate::PolicyStore;

/// Wraps services in [`Authorize`].
#[derive(Clone, Debug)]
pub struct AuthorizeLayer {
    store: PolicyStore,
    port: Option<u16>,
}

impl AuthorizeLayer {
    /// Authorizes against the policy in `store`.
    pub fn new(store: PolicyStore) -> Self {
        Self { store, port: None }
    }

    /// Authorizes every request as if it arrived on `port`, rather than the
    /// port its connection was accepted on.
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
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
        }
    }
}
