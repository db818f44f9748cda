use std::sync::Arc;

use tower_layer::Layer;

use super::{Retire, RetireShared};

/// Lets a [`TlsConnector`](crate::TlsConnector)'s connections be retired
/// from hyper-util's pool. Build it with
/// [`TlsConnector::retire_layer`](crate::TlsConnector::retire_layer) and put
/// it around the client using that connector.
#[derive(Clone, Debug)]
pub struct RetireLayer {
    shared: Arc<RetireShared>,
}

impl RetireLayer {
    pub(crate) fn new(shared: Arc<RetireShared>) -> Self {
        Self { shared }
    }
}

impl<S> Layer<S> for RetireLayer {
    type Service = Retire<S>;

    fn layer(&self, inner: S) -> Retire<S> {
        Retire::new(inner, self.shared.clone())
    }
}
