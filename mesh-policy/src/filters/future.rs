//! The future of [`ApplyFilters`](super::ApplyFilters).

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::Response;
use mesh_core::route::RouteFilters;
use pin_project_lite::pin_project;

pin_project! {
    /// The inner service's response with the route's response edit, or
    /// the route's redirect.
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner {
            #[pin]
            future: F,
            // Only when the edit changes something.
            filters: Option<Arc<RouteFilters>>,
        },
        Respond { response: Option<Response<B>> },
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(super) fn inner(future: F, filters: Option<Arc<RouteFilters>>) -> Self {
        Self {
            state: State::Inner { future, filters },
        }
    }

    pub(super) fn respond(response: Response<B>) -> Self {
        Self {
            state: State::Respond {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future, filters } => {
                let mut result = ready!(future.poll(cx));
                if let (Ok(res), Some(filters)) = (&mut result, filters.as_ref()) {
                    filters.response_headers.apply(res.headers_mut());
                }
                Poll::Ready(result)
            }
            StateProj::Respond { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after it finished.
                None => Poll::Pending,
            },
        }
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
