//! The response future of a [`RouteStack`](super::RouteStack) that
//! [peeks](super::RouteStackLayer::peek_grpc_trailers).
//!
//! # Why a future of its own
//!
//! A gRPC server may fail a call with an ordinary head followed at once by
//! trailers carrying the status (see [`retry::peek`](crate::retry::peek)).
//! Retrying that means reading the first frame of the answer before
//! deciding on it, and handing that frame on first when it is not
//! retried: the response body becomes a [`PeekBody`], a type of its own,
//! and the future gains a state that holds an answer while its first
//! frame is read. This future starts from the head-only stack's, unpolled,
//! and runs the same state machine in the peeking mode: the mode's steps
//! (hold the answer, read its frame, decide by its trailers) are the only
//! difference, and in the head-only mode, which every route's plain
//! requests go through, they are no code at all.

use std::{
    fmt,
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll},
};

use http::{Request, Response};
use http_body::Body;
use mesh_core::BoxError;
use tower_service::Service;

use super::{
    Config,
    future::{self as head_only, Machine, Mode, Steps},
};
use crate::{
    replay::ReplayBody,
    retry::{
        PeekBody, PeekTrailers,
        attempts::{Attempts, Decision},
    },
    timeout::TimeoutBody,
};

pin_project_lite::pin_project! {
    /// Sends a request, reads the first frame of a gRPC answer that could
    /// be retried for its trailers, and retries while the policy, the
    /// body, the deadline and the budget allow; holds each attempt to its
    /// per-try timeout (its first frame included, when one is read) and
    /// the whole to the deadline.
    pub struct ResponseFuture<S, B, RB>
    where
        S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
        RB: Body,
    {
        #[pin]
        inner: Machine<S, B, PeekTrailers>,
        body: PhantomData<fn() -> RB>,
    }
}

impl<S, B, RB> ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    RB: Body,
{
    /// Goes on from the head-only stack's future, not polled yet.
    pub(super) fn new(from: head_only::ResponseFuture<S, B>) -> Self {
        Self {
            inner: from.into_mode(),
            body: PhantomData,
        }
    }
}

/// The peeking mode holds an answer while its first frame is read.
impl<RB: Body> Mode<Response<RB>> for PeekTrailers {
    type Held = Option<Response<RB>>;
    type Output = Response<PeekBody<RB>>;
}

impl<RB: Body + Unpin> Steps<RB> for PeekTrailers {
    #[inline]
    fn outcome<S, B>(
        result: Result<Response<RB>, BoxError>,
        retry: Option<&Attempts<S, B, Config>>,
    ) -> Result<Result<Response<PeekBody<RB>>, BoxError>, Option<Response<RB>>>
    where
        S: Service<Request<ReplayBody<B>>>,
        S::Error: Into<BoxError>,
    {
        match result {
            Ok(res) if retry.is_some_and(|retry| retry.peeks(&res)) => Err(Some(res)),
            result => Ok(result.map(|res| res.map(PeekBody::new))),
        }
    }

    #[inline]
    fn poll_first(
        held: &mut Option<Response<RB>>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Response<PeekBody<RB>>>> {
        let Some(res) = held.as_mut() else {
            return Poll::Ready(None);
        };
        let first = std::task::ready!(Pin::new(res.body_mut()).poll_frame(cx));
        Poll::Ready(
            held.take()
                .map(|res| res.map(|body| PeekBody::peeked(body, first))),
        )
    }

    #[inline]
    fn unread(held: &mut Option<Response<RB>>) -> Option<Response<PeekBody<RB>>> {
        held.take().map(|res| res.map(PeekBody::new))
    }

    #[inline]
    fn decide<S, B>(
        retry: &mut Attempts<S, B, Config>,
        result: &Result<Response<PeekBody<RB>>, BoxError>,
    ) -> Decision
    where
        S: Service<Request<ReplayBody<B>>>,
        S::Error: Into<BoxError>,
    {
        let trailers = result
            .as_ref()
            .ok()
            .and_then(|res| res.body().peeked_trailers());
        retry.decide_peeked(result, trailers)
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: Body + Default + Unpin,
{
    type Output = Result<Response<TimeoutBody<PeekBody<RB>>>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl<S, B, RB> fmt::Debug for ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    RB: Body,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt_fields(f)
    }
}
