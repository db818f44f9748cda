//! The layer that answers with a redirect.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::Redirect;

/// Answers every request with a [`Redirect`], never calling the service it
/// wraps; or, without one, passes every request through.
///
/// Put it where the route is already chosen (it does not match requests
/// itself): each of a route's requests gets the route's redirect.
#[derive(Clone, Debug, Default)]
pub struct RedirectLayer {
    redirect: Option<Arc<Redirect>>,
}

impl RedirectLayer {
    /// Answers every request with `redirect`.
    pub fn new(redirect: Redirect) -> Self {
        Self {
            redirect: Some(Arc::new(redirect)),
        }
    }

    /// Passes every request through: the layer of a route without a
    /// redirect. The same as `default()`.
    pub fn pass_through() -> Self {
        Self::default()
    }

    /// The redirect, if any.
    pub fn redirect(&self) -> Option<&Redirect> {
        self.redirect.as_deref()
    }
}

impl From<Option<Redirect>> for RedirectLayer {
    fn from(redirect: Option<Redirect>) -> Self {
        Self {
            redirect: redirect.map(Arc::new),
        }
    }
}

impl<S> Layer<S> for RedirectLayer {
    type Service = Redirecting<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Redirecting {
            inner,
            redirect: self.redirect.clone(),
        }
    }
}

/// The service [`RedirectLayer`] makes.
#[derive(Clone, Debug)]
pub struct Redirecting<S> {
    inner: S,
    redirect: Option<Arc<Redirect>>,
}

impl<S, B, RB> Service<Request<B>> for Redirecting<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = RedirectFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.redirect {
            // The inner service is never called, so its readiness does
            // not matter: a redirect does not wait for a backend.
            Some(_) => Poll::Ready(Ok(())),
            None => self.inner.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match &self.redirect {
            Some(redirect) => {
                tracing::trace!(status = %redirect.status(), "answering with a redirect");
                RedirectFuture::respond(redirect.response(&req))
            }
            None => RedirectFuture::inner(self.inner.call(req)),
        }
    }
}

/// The response future of [`Redirecting`]: the redirect, or the inner
/// service's response.
pub type RedirectFuture<F, B> = crate::route::OrRespond<F, B>;
