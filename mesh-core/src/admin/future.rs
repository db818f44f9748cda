//! The future [`Admin`](super::Admin) returns.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{Request, Response, StatusCode, header};
use http_body::Body as _;
use tower::util::Oneshot;

use super::AdminExtension;
use crate::body::{self, BoxBody};

pin_project_lite::pin_project! {
    /// The response to an admin request: the admin's own, ready at once, or
    /// the one its extension is producing.
    #[derive(Debug)]
    pub struct ResponseFuture {
        #[pin]
        state: State,
        // Whether the request was a `HEAD`, whose answer goes without
        // its body ([`head_only`]).
        head: bool,
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
            head: false,
        }
    }

    pub(super) fn extension(call: Oneshot<AdminExtension, Request<BoxBody>>) -> Self {
        Self {
            state: State::Extension { call },
            head: false,
        }
    }

    /// An answer the admin has to wait for, such as one that reads the
    /// request body first.
    pub(super) fn boxed(answer: Pin<Box<dyn Future<Output = Response<BoxBody>> + Send>>) -> Self {
        Self {
            state: State::Boxed {
                answer: Answer(answer),
            },
            head: false,
        }
    }

    /// The answer to a `HEAD` request: see [`head_only`].
    pub(super) fn head(self) -> Self {
        Self { head: true, ..self }
    }
}

/// `response` as the answer to a `HEAD`: its head, with the length its
/// body would have had, and no body.
///
/// hyper leaves the body out of an HTTP/1 answer to `HEAD` itself, but
/// sends it on HTTP/2, where DATA frames on a `HEAD` stream are a protocol
/// error (RFC 9113 §8.1.1): curl and hyper reset the stream, and the
/// client gets no answer at all. The length is what the `GET` would
/// answer, as RFC 9110 §9.3.2 lets a `HEAD` answer say.
fn head_only(response: Response<BoxBody>) -> Response<BoxBody> {
    let (mut parts, content) = response.into_parts();
    let bodiless = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    if let Some(length) = content.size_hint().exact().filter(|_| !bodiless) {
        parts
            .headers
            .entry(header::CONTENT_LENGTH)
            .or_insert_with(|| length.into());
    }
    Response::from_parts(parts, body::empty())
}

impl Future for ResponseFuture {
    type Output = Result<Response<BoxBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.state.project() {
            StateProj::Ready { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled again after it completed: there is nothing left
                // to give, and an admin future never fails.
                None => Poll::Pending,
            },
            StateProj::Extension { call } => call.poll(cx),
            StateProj::Boxed { answer } => answer.0.as_mut().poll(cx).map(Ok),
        };
        if *this.head {
            response.map_ok(head_only)
        } else {
            response
        }
    }
}
