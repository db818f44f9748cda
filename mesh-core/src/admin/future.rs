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
        }
    }
}
