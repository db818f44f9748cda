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
//! Only an answer that could be retried because of what its trailers say
//! is held for its first frame: a gRPC call (gRPC `content-type` on the
//! request), answered by a gRPC head with no `grpc-status`, on a policy
//! that retries some gRPC code, when another attempt is still possible (the
//! call may be retried at all, its body was recorded whole, it has
//! attempts left, its deadline has not passed, and the budget has a retry
//! to spare). Every other answer, a plain HTTP one first of all, is decided
//! on by its head and handed on at once, its body unread.
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
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use mesh_core::{BoxError, ProxyErrorKind};
use tokio::time::{Instant, Sleep, sleep, sleep_until};
use tower_service::Service;

use super::{
    Retry, RetryLayer, Shared,
    attempts::{Attempts, BODY_RELEASE_WAIT, Decision},
    future::{PolledAfterCompletion, Start},
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
        if self.ended {
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
    B: Body,
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
        fut.wait = self.mode.wait;
        fut
    }
}

pin_project_lite::pin_project! {
    /// The response future of a [`Retry`] that
    /// [peeks](RetryLayer::peek_grpc_trailers): sends a request, reads the
    /// first frame of a gRPC answer that could be retried for its
    /// trailers, and retries while the policy, the body, the deadline and
    /// the budget allow.
    pub struct ResponseFuture<S, B, RB>
    where
        S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
        RB: Body,
    {
        #[pin]
        state: State<S::Future, Response<RB>, Result<Response<PeekBody<RB>>, BoxError>>,
        retry: Option<Attempts<S, B, Shared>>,
        // The bound on the wait for a first frame, from the attempt's start.
        wait: Option<Duration>,
        // When the current attempt started, if `wait` needs it.
        started: Option<Instant>,
    }

    impl<S, B, RB> PinnedDrop for ResponseFuture<S, B, RB>
    where
        S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
        RB: Body,
    {
        // A retry decided on and not sent when the caller lets go goes
        // back to the budget.
        fn drop(this: Pin<&mut Self>) {
            if let Some(retry) = this.project().retry.as_mut() {
                retry.cancel();
            }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, Res, R> {
        Calling { #[pin] fut: F },
        // An answer held for its first frame, until `sleep` ends, if set.
        Peeking { res: Option<Res>, #[pin] sleep: Option<Sleep>, until: Option<Instant> },
        Backoff { #[pin] sleep: Sleep, last: Option<Box<R>> },
        Releasing { #[pin] sleep: Sleep, last: Option<Box<R>> },
        Ready { last: Option<Box<R>> },
        Expired { grpc: bool },
        Done,
    }
}

impl<S, B, RB> Start<S, B> for ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    RB: Body,
{
    fn once(fut: S::Future) -> Self {
        Self {
            state: State::Calling { fut },
            retry: None,
            wait: None,
            started: None,
        }
    }

    fn expired(grpc: bool) -> Self {
        Self {
            state: State::Expired { grpc },
            retry: None,
            wait: None,
            started: None,
        }
    }

    fn attempts(fut: S::Future, retry: Attempts<S, B, Shared>, now: Instant) -> Self {
        Self {
            state: State::Calling { fut },
            retry: Some(retry),
            wait: None,
            started: Some(now),
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let result = match this.state.as_mut().project() {
                StateProj::Calling { fut } => match ready!(fut.poll(cx)).map_err(Into::into) {
                    Ok(res) if this.retry.as_ref().is_some_and(|r| r.peeks(&res)) => {
                        let until = this
                            .wait
                            .zip(*this.started)
                            .and_then(|(wait, started)| started.checked_add(wait));
                        this.state.set(State::Peeking {
                            res: Some(res),
                            sleep: None,
                            until,
                        });
                        continue;
                    }
                    result => result.map(|res| res.map(PeekBody::new)),
                },
                StateProj::Peeking {
                    res,
                    mut sleep,
                    until,
                } => {
                    let Some(held) = res.as_mut() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    match Pin::new(held.body_mut()).poll_frame(cx) {
                        Poll::Ready(first) => match res.take() {
                            Some(held) => Ok(held.map(|body| PeekBody::peeked(body, first))),
                            None => return Poll::Ready(Err(PolledAfterCompletion.into())),
                        },
                        Poll::Pending => {
                            let Some(until) = *until else {
                                return Poll::Pending;
                            };
                            if sleep.as_mut().as_pin_mut().is_none() {
                                sleep.set(Some(sleep_until(until)));
                            }
                            if let Some(sleep) = sleep.as_pin_mut() {
                                ready!(sleep.poll(cx));
                            }
                            // Out of time: the answer goes on unread.
                            tracing::debug!("no first frame within the per-try timeout");
                            match res.take() {
                                Some(held) => Ok(held.map(PeekBody::new)),
                                None => return Poll::Ready(Err(PolledAfterCompletion.into())),
                            }
                        }
                    }
                }
                StateProj::Releasing { sleep, last } => {
                    let released = this
                        .retry
                        .as_ref()
                        .is_none_or(|retry| retry.poll_released(cx).is_ready());
                    if !released {
                        ready!(sleep.poll(cx));
                    }
                    match last.take() {
                        Some(last) => *last,
                        None => return Poll::Ready(Err(PolledAfterCompletion.into())),
                    }
                }
                StateProj::Backoff { sleep, last } => {
                    ready!(sleep.poll(cx));
                    let last = last.take();
                    this.state.set(State::Ready { last });
                    continue;
                }
                StateProj::Ready { last } => {
                    let Some(retry) = this.retry.as_mut() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    if let Err(error) = ready!(retry.poll_ready(cx)) {
                        retry.give_up(None);
                        this.state.set(State::Done);
                        return Poll::Ready(Err(error));
                    }
                    // As the head-only layer: no attempt goes upstream with
                    // no time left.
                    if !retry.refresh_deadline() {
                        retry.out_of_time();
                        let last = last.take();
                        this.state.set(State::Done);
                        return Poll::Ready(match last {
                            Some(last) => *last,
                            None => Err(PolledAfterCompletion.into()),
                        });
                    }
                    let Some(req) = retry.next_request() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    let Some(service) = retry.service.as_mut() else {
                        return Poll::Ready(Err(PolledAfterCompletion.into()));
                    };
                    if this.wait.is_some() {
                        *this.started = Some(Instant::now());
                    }
                    this.state.set(State::Calling {
                        fut: service.call(req),
                    });
                    continue;
                }
                StateProj::Expired { grpc } => {
                    let grpc = *grpc;
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(ProxyErrorKind::Timeout.response_for(grpc)));
                }
                StateProj::Done => return Poll::Ready(Err(PolledAfterCompletion.into())),
            };
            // Drop the attempt before deciding, so that it no longer holds
            // the request body.
            this.state.set(State::Done);
            let Some(retry) = this.retry.as_mut() else {
                return Poll::Ready(result);
            };
            let trailers = result
                .as_ref()
                .ok()
                .and_then(|res| res.body().peeked_trailers());
            match retry.decide_peeked(&result, trailers) {
                Decision::Return => return Poll::Ready(result),
                Decision::AwaitBody => this.state.set(State::Releasing {
                    sleep: sleep(BODY_RELEASE_WAIT),
                    last: Some(Box::new(result)),
                }),
                Decision::Retry { delay, .. } => {
                    let last = retry.deadline().map(|_| Box::new(result));
                    if delay.is_zero() {
                        this.state.set(State::Ready { last });
                    } else {
                        this.state.set(State::Backoff {
                            sleep: sleep(delay),
                            last,
                        });
                    }
                }
            }
        }
    }
}

impl<S, B, RB> fmt::Debug for ResponseFuture<S, B, RB>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<RB>>,
    RB: Body,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.retry.as_ref().map_or(1, |r| r.attempts))
            .field("wait", &self.wait)
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
