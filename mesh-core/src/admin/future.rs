//! The future [`Admin`](super::Admin) returns.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower::util::Oneshot;

use super::AdminExtension;
use crate::body::BoxBody;

pin_project_lite::pin_project! {
    /// The response to an admin request: the admin's own, ready at once, or
    /// the one its extension is producing.
    #[derive(Debug)]
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State {
        Ready { response: Option<Response<BoxBody>> },
        Extension { #[pin] call: Oneshot<AdminExtension, Request<BoxBody>> },
        Boxed { answer: Answer },
    }
}

/// An answer being worked out.
struct Answer(Pin<Box<dyn Future<Output = Response<BoxBody>> + Send>>);

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Answer")
    }
}

impl ResponseFuture {
    pub(super) fn ready(response: Response<BoxBody>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    pub(super) fn extension(call: Oneshot<AdminExtension, Request<BoxBody>>) -> Self {
        Self {
            state: State::Extension { call },
        }
    }

    /// An answer the admin has to wait for, such as one that reads the
    /// request body first.
    pub(super) fn boxed(answer: Pin<Box<dyn Future<Output = Response<BoxBody>> + Send>>) -> Self {
        Self {
            state: State::Boxed {
                answer: Answer(answer),
            },
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<BoxBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after it completed: there is nothing left
                // to give, and an admin future never fails.
                None => Poll::Pending,
            },
            StateProj::Extension { call } => call.poll(cx),
            StateProj::Boxed { answer } => answer.0.as_mut().poll(cx).map(Ok),
        }
    }
}
