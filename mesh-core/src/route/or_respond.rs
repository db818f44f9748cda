//! The future of a layer that either calls its inner service or answers
//! the request itself: a redirect, an authorization's refusal.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;
use pin_project_lite::pin_project;

pin_project! {
    /// The inner service's response, or the layer's own answer, which
    /// needs no waiting.
    pub struct OrRespond<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Inner { #[pin] future: F },
        Respond { response: Option<Response<B>> },
    }
}

impl<F, B> OrRespond<F, B> {
    /// Waits for the inner service's `future`.
    pub fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    /// Answers with `response` at once.
    pub fn respond(response: Response<B>) -> Self {
        Self {
            state: State::Respond {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for OrRespond<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            StateProj::Respond { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after it finished.
                None => Poll::Pending,
            },
        }
    }
}

impl<F, B> std::fmt::Debug for OrRespond<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrRespond").finish_non_exhaustive()
    }
}
