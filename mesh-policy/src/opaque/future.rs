//! The future of [`AuthorizeOpaque`](super::AuthorizeOpaque).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use mesh_core::BoxError;

type Serving = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// A connection being served until it ends or a policy change denies it,
/// or one already closed.
///
/// Serving a connection is boxed once per connection, because it races the
/// handler against policy changes in an `async` block; requests never pay
/// for it.
pub struct ResponseFuture {
    serving: Option<Serving>,
}

impl ResponseFuture {
    pub(super) fn closed() -> Self {
        Self { serving: None }
    }

    pub(super) fn serving(
        future: impl Future<Output = Result<(), BoxError>> + Send + 'static,
    ) -> Self {
        Self {
            serving: Some(Box::pin(future)),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.serving.as_mut() {
            Some(serving) => serving.as_mut().poll(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("serving", &self.serving.is_some())
            .finish()
    }
}
