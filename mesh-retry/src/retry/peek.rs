//! Reading a gRPC answer's first frame before deciding on it.
//!
//! # Why
//!
//! A gRPC server fails a call before any message in one of two ways: a
//! trailers-only answer (the head carries `grpc-status`), or an ordinary
//! head (`200`, `content-type: application/grpc`, no `grpc-status`)
//! followed at once by trailers that carry it. The caller's gRPC client
//! sees the same failed call either way, but a retry layer that decides by
//! the head alone retries only the first. linkerd2-proxy's retries read
//! the first frame of the body of an answer they could retry
//! (`PeekTrailersBody`, in its `linkerd-http-retry` crate) so that the
//! second is retried too; [`RetryLayer::peek_grpc_trailers`] does the same.
//!
//! # What is read, and when
//!
//! Only an answer whose trailers could change what is done or counted is
//! held for its first frame: a gRPC call (gRPC `content-type` on the
//! request), answered by a gRPC head with no `grpc-status`, on a policy
//! that retries some gRPC code, when the call may be retried at all and
//! its body was recorded whole, and either another attempt is still
//! possible (it has attempts left, its deadline has not passed, and the
//! budget has a retry to spare) or the call was retried already: then the
//! trailers say whether the retries ended in a success or ran out, as
//! linkerd2-proxy, which reads every attempt's first frame, counts them.
//! Every other answer, a plain HTTP one first of all, is decided on by its
//! head and handed on at once, its body unread.
//!
//! Then one frame is read:
//!
//! - trailers whose `grpc-status` is a code the policy retries: the call is
//!   retried (within the attempts, the budget and the deadline, as a
//!   trailers-only answer would be), and counted as one;
//! - any other trailers, or the end of the body: the answer is the
//!   caller's, and the trailers reach it unchanged;
//! - a message: the call has produced output, which a retry would repeat,
//!   so the answer is the caller's, and the message reaches it first,
//!   byte for byte, then the rest of the body as the upstream sends it;
//! - nothing, for as long as the wait allows (the per-try timeout given to
//!   [`peek_grpc_trailers`](RetryLayer::peek_grpc_trailers), counted from
//!   the attempt's start, as it bounds the head): the answer goes on to
//!   the caller as it is, unread, and is not retried.
//!
//! An answer held for its first frame counts in the retry metrics as a
//! trailers-only answer with the same status does: a retry sent, the
//! attempts or the budget exhausted, a success after a retry.
//!
//! # Why a separate mode
//!
//! The frame that was read has to reach the caller first, so the response
//! body becomes a [`PeekBody`] around the upstream's: a different type
//! from the one a [`Retry`] that only reads heads answers with, which
//! stacks name. The default layer is left as it was. The same holds for
//! the [`RouteStack`](crate::RouteStack): by default it decides by the
//! head, and one built with
//! [`RouteStackLayer::peek_grpc_trailers`](crate::RouteStackLayer::peek_grpc_trailers)
//! reads as this module says, its per-try timeout bounding the wait, and
//! answers with a [`TimeoutBody`](crate::timeout::TimeoutBody) of a
//! [`PeekBody`].

use std::{
    fmt,
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use mesh_core::BoxError;
use tokio::time::{Instant, Sleep, sleep_until};
use tower_service::Service;

use super::{
    Retry, RetryLayer, Shared,
    attempts::{Attempts, Decision},
    future::{Machine, Mode, Start, Steps},
};
use crate::replay::ReplayBody;

/// The mode of a [`Retry`] that decides by the response head alone: the
/// default.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadOnly;

/// The mode of a [`Retry`] that reads a gRPC answer's first frame before
/// deciding on it; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct PeekTrailers {
    wait: Option<Duration>,
}

impl RetryLayer<HeadOnly> {
    /// Also retries a gRPC call whose answer carries a retried code in
    /// trailers that come right after an ordinary head, reading the first
    /// frame of such an answer before deciding on it, as linkerd2-proxy
    /// does. `wait` bounds the wait for that frame, counted from the
    /// attempt's start: pass the per-try timeout, if any. A zero is no
    /// bound, as `None` is.
    ///
    /// The response body becomes a [`PeekBody`] of the upstream's. See the
    /// [module docs](self) for which answers are read, and how.
    #[must_use]
    pub fn peek_grpc_trailers(self, wait: Option<Duration>) -> RetryLayer<PeekTrailers> {
        RetryLayer {
            shared: self.shared,
            mode: PeekTrailers {
                wait: wait.filter(|wait| !wait.is_zero()),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body whose first frame may have been read already: that
    /// frame comes first, then the rest of the body, unchanged.
    pub struct PeekBody<B: Body> {
        first: Option<Result<Frame<B::Data>, B::Error>>,
        // The body ended while its first frame was read.
        ended: bool,
        #[pin]
        inner: B,
    }
}

impl<B: Body> PeekBody<B> {
    /// `inner`, nothing read.
    pub fn new(inner: B) -> Self {
        Self {
            first: None,
            ended: false,
            inner,
        }
    }

    /// `inner`, whose first frame (or its end, `None`) was read.
    pub(crate) fn peeked(inner: B, first: Option<Result<Frame<B::Data>, B::Error>>) -> Self {
        Self {
            ended: first.is_none(),
            first,
            inner,
        }
    }

    /// The trailers that were read as the body's first frame, if they were.
    pub fn peeked_trailers(&self) -> Option<&HeaderMap> {
        match &self.first {
            Some(Ok(frame)) => frame.trailers_ref(),
            _ => None,
        }
    }

    /// The upstream's body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body + Default> Default for PeekBody<B> {
    fn default() -> Self {
        Self::new(B::default())
    }
}

impl<B: Body> Body for PeekBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(first));
        }
        if *this.ended {
            return Poll::Ready(None);
        }
        this.inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // Trailers end a body: one whose first frame was its trailers has
        // no data left, which says how little a retry holds by keeping it.
        if self.ended || self.peeked_trailers().is_some() {
            return SizeHint::with_exact(first_len(&self.first));
        }
        let inner = self.inner.size_hint();
        let first = first_len(&self.first);
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(first));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(first));
        }
        hint
    }
}

/// The bytes of a data frame that was read.
fn first_len<D: bytes::Buf, E>(first: &Option<Result<Frame<D>, E>>) -> u64 {
    match first {
        Some(Ok(frame)) => frame.data_ref().map_or(0, |data| data.remaining() as u64),
        _ => 0,
    }
}

impl<B: Body + fmt::Debug> fmt::Debug for PeekBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeekBody")
            .field("peeked", &self.first.is_some())
            .field("ended", &self.ended)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, B, RB> Service<Request<B>> for Retry<S, PeekTrailers>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: Body + Unpin,
    B::Error: Into<BoxError>,
    RB: Body + Default + Unpin,
{
    type Response = Response<PeekBody<RB>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut fut: ResponseFuture<S, B, RB> = super::start(&mut self.inner, &self.shared, req);
        fut.inner.attempt_mut().wait = self.mode.wait;
        fut
    }
}

pin_project_lite::pin_project! {
    /// The response future of a [`Retry`] that
    /// [peeks](RetryLayer::peek_grpc_trailers): sends a request, reads the
    /// first frame of a gRPC answer that could be retried for its
    /// trailers, and retries while the policy, the body, the deadline and
    /// the budget allow.
    ///
    /// It runs the head-only future's state machine in the peeking mode:
    /// the mode's steps (hold the answer, read its frame, decide by its
    /// trailers) are the only difference, and in the head-only mode they
    /// are no code at all.
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

/// What the peeking mode keeps of the current attempt: the bound on the
/// wait for a first frame, and when the attempt started, if the bound
/// needs it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Attempt {
    wait: Option<Duration>,
    started: Option<Instant>,
}

pin_project_lite::pin_project! {
    /// An answer held for its first frame, until `sleep` ends, if set.
    pub(crate) struct Held<RB> {
        res: Option<Response<RB>>,
        #[pin]
        sleep: Option<Sleep>,
        until: Option<Instant>,
    }
}

impl<RB: Body> Mode<Response<RB>> for PeekTrailers {
    type Held = Held<RB>;
    type Output = Response<PeekBody<RB>>;
    type Attempt = Attempt;
}

impl<RB: Body + Unpin> Steps<RB> for PeekTrailers {
    #[inline]
    fn outcome<S, B>(
        result: Result<Response<RB>, BoxError>,
        retry: Option<&Attempts<S, B, Shared>>,
        attempt: &Attempt,
    ) -> Result<Result<Response<PeekBody<RB>>, BoxError>, Held<RB>>
    where
        S: Service<Request<ReplayBody<B>>>,
        S::Error: Into<BoxError>,
    {
        match result {
            Ok(res) if retry.is_some_and(|retry| retry.peeks(&res)) => Err(Held {
                res: Some(res),
                sleep: None,
                until: attempt
                    .wait
                    .zip(attempt.started)
                    .and_then(|(wait, started)| started.checked_add(wait)),
            }),
            result => Ok(result.map(|res| res.map(PeekBody::new))),
        }
    }

    #[inline]
    fn poll_first(
        held: Pin<&mut Held<RB>>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Response<PeekBody<RB>>>> {
        let mut held = held.project();
        let Some(res) = held.res.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(first) = Pin::new(res.body_mut()).poll_frame(cx) {
            let res = held.res.take();
            return Poll::Ready(res.map(|res| res.map(|body| PeekBody::peeked(body, first))));
        }
        let Some(until) = *held.until else {
            return Poll::Pending;
        };
        if held.sleep.as_mut().as_pin_mut().is_none() {
            held.sleep.set(Some(sleep_until(until)));
        }
        if let Some(sleep) = held.sleep.as_pin_mut() {
            ready!(sleep.poll(cx));
        }
        // Out of time: the answer goes on unread.
        tracing::debug!("no first frame within the per-try timeout");
        Poll::Ready(held.res.take().map(|res| res.map(PeekBody::new)))
    }

    #[inline]
    fn starts(attempt: &mut Attempt) {
        if attempt.wait.is_some() {
            attempt.started = Some(Instant::now());
        }
    }

    #[inline]
    fn decide<S, B>(
        retry: &mut Attempts<S, B, Shared>,
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

impl<S, B, RB> Start<S, B> for ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    RB: Body,
{
    fn once(fut: S::Future) -> Self {
        Self {
            inner: Machine::calling(fut, None, Attempt::default()),
            body: PhantomData,
        }
    }

    fn expired(grpc: bool) -> Self {
        Self {
            inner: Machine::expired(grpc, Attempt::default()),
            body: PhantomData,
        }
    }

    fn attempts(fut: S::Future, retry: Attempts<S, B, Shared>, now: Instant) -> Self {
        let attempt = Attempt {
            wait: None,
            started: Some(now),
        };
        Self {
            inner: Machine::calling(fut, Some(retry), attempt),
            body: PhantomData,
        }
    }
}

impl<S, B, RB> Future for ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    RB: Body + Default + Unpin,
{
    type Output = Result<Response<PeekBody<RB>>, BoxError>;

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
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.inner.attempts())
            .field("wait", &self.inner.attempt().wait)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};

    use super::*;

    fn trailers() -> HeaderMap {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("14"));
        trailers
    }

    #[tokio::test]
    async fn a_message_read_comes_first_then_the_rest() {
        let rest = Full::new(Bytes::from_static(b" world"));
        let first = Some(Ok(Frame::data(Bytes::from_static(b"hello"))));
        let body = PeekBody::peeked(rest, first);
        assert!(body.peeked_trailers().is_none());
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(11));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "hello world");
    }

    #[tokio::test]
    async fn trailers_read_are_the_bodys_last_frame() {
        let first = Some(Ok(Frame::trailers(trailers())));
        let body = PeekBody::peeked(Empty::<Bytes>::new(), first);
        assert_eq!(body.peeked_trailers(), Some(&trailers()));
        assert!(!body.is_end_stream(), "the trailers are still to come");
        assert_eq!(body.size_hint().exact(), Some(0));
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers()));
    }

    #[tokio::test]
    async fn a_body_that_ended_while_read_is_not_polled_again() {
        let mut body = PeekBody::peeked(Full::new(Bytes::from_static(b"unread")), None);
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_body_nothing_was_read_of_is_the_upstreams() {
        let body = PeekBody::new(Full::new(Bytes::from_static(b"as is")));
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "as is");
        assert!(PeekBody::<Empty<Bytes>>::default().is_end_stream());
    }
}
